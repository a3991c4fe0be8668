"""Audit trail benchmarks: append (group commit + fsync), redaction, startup, verify, export.

Targets (CONTRACT section 4 and the audit issue): append >= 20k records/s end to end with
fsync; startup rebuild and verify >= 200k records/s; export >= 100k records/s.

    python bench/audit_bench.py [--records 200000] [--concurrency 256] [--dir DIR] [--repeat 3]
    python bench/audit_bench.py --trail DIR [--repeat 3]     # reads only, on an existing trail

The trail is written to a temporary directory on the same file system as ``--dir``
(default: the system temp dir), so fsync costs what the disk costs. The reads are timed
``--repeat`` times in rounds; each line gives the best, median and worst wall-clock rate,
the rate per CPU second of all processes involved (the steadier figure on a shared
machine), and the ratio to a bare loop that only reads and decodes the same trail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, cast

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.chunks import plan_trail, read_lines
from sidecar.audit.export import export
from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.rebuild import rebuild
from sidecar.audit.redact import Redactor
from sidecar.audit.verify import verify_trail
from sidecar.canonical import canonical_bytes


def decision_body(index: int, secret: bool = False) -> dict[str, Any]:
    """A decision record like the gate writes for a network.request check."""
    command = "curl -H 'Authorization: Bearer abcdef0123456789xyz' https://x" if secret else None
    request: dict[str, Any] = {
        "action": "network.request",
        "host": "api.openai.com",
        "port": 443,
        "scheme": "https",
        "method": "POST",
        "path": f"/v1/chat/completions/{index % 97}",
        "context": {"task": "summarise the quarterly report", "step": index % 13},
    }
    if command:
        request["context"]["cmd"] = command
    return {
        "decisionId": f"01JBENCH{index:018d}",
        "action": "network.request",
        "request": request,
        "decision": "allow",
        "allowed": True,
        "rule": "llm-apis",
        "reason": "allowed by rule llm-apis",
        "risk": "low",
        "mode": "enforce",
        "policy": "sha256:" + "ab" * 32,
        "identity": "apps-prod/agent-7f9c4d/agent",
    }


def rate(count: int, seconds: float, cpu: float | None = None) -> str:
    text = f"{count / seconds:>10,.0f} records/s  ({count:,} in {seconds:.2f} s"
    if cpu:
        # CPU time of this process: what the work costs when the machine is shared.
        text += f"; {count / cpu:,.0f}/s of this process's CPU time"
    return text + ")"


async def bench_group_commit(
    directory: Path, signer: Signer, records: int, concurrency: int
) -> None:
    log = AuditLog.open(directory, identity="bench", signer=signer)
    await log.start()
    latencies: list[float] = []

    async def producer(offset: int) -> None:
        for index in range(offset, records, concurrency):
            started = time.perf_counter()
            await log.append("decision", decision_body(index))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(producer(offset) for offset in range(concurrency)))
    elapsed = time.perf_counter() - started
    await log.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"append, group commit + fsync ({concurrency} concurrent): {rate(records, elapsed)}")
    print(f"    append latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def bench_blocking(directory: Path, signer: Signer, records: int) -> None:
    log = AuditLog.open(directory, identity="bench", signer=signer)
    started = time.perf_counter()
    for index in range(records):
        log.append_blocking("decision", decision_body(index))
    elapsed = time.perf_counter() - started
    log.close_blocking()
    print(f"append_blocking, one fsync per record:        {rate(records, elapsed)}")


def bench_redaction(records: int) -> None:
    redactor = Redactor(b"k" * 32)
    clean = [canonical_bytes(decision_body(i)) for i in range(1000)]
    dirty_bodies = [decision_body(i, secret=True) for i in range(1000)]
    started = time.perf_counter()
    for _ in range(records // 1000):
        for line in clean:
            Redactor.may_hold_secret(line)
    screen = (time.perf_counter() - started) / records * 1e6
    started = time.perf_counter()
    for _ in range(max(1, records // 10_000)):
        for body in dirty_bodies:
            redactor.redact(body)
    rounds = max(1, records // 10_000) * 1000
    slow = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(max(1, records // 10_000)):
        for index in range(1000):
            canonical_bytes(decision_body(index))
    encode = (time.perf_counter() - started) / rounds * 1e6
    print(
        f"redaction: screen {screen:.2f} us/record (clean), rewrite {slow:.1f} us/record "
        f"(with a secret); canonical encoding {encode:.1f} us/record"
    )


READ_TARGETS = {"verify": 200_000, "export": 100_000, "startup": 200_000}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timer:
    """Wall clock and CPU time (this process and its workers) over a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = _cpu_seconds() - self.cpu


def bare_decode_loop(directory: Path) -> None:
    """The yardstick: read every segment and msgspec-decode each line, nothing else."""
    decode = msgspec.json.Decoder().decode
    for plan in plan_trail(directory):
        for start, end in plan.ranges:
            for line in read_lines(str(plan.segment.path), start, end):
                decode(line)


def _measure(label: str, count: int, runs: list[tuple[float, float]], yardstick: float) -> str:
    """One line: best, median and worst wall rate; CPU rate and the ratio to the
    yardstick (both from the best run)."""
    walls = sorted(count / wall for wall, _ in runs)
    best_wall, best_cpu = min(runs)
    text = f"{label:<30}{walls[-1]:>9,.0f}/s"
    if len(walls) > 1:
        text += f" (median {walls[len(walls) // 2]:,.0f}, worst {walls[0]:,.0f})"
    text += f"; {count / best_cpu:,.0f}/s of CPU"
    if yardstick:
        text += f"; {count / best_wall / yardstick:.2f}x the bare decode loop"
    kind = label.split()[0]
    target = READ_TARGETS.get(kind)
    if target is not None:
        text += f"  [target {target // 1000}k: {'met' if walls[-1] >= target else 'MISSED'}]"
    return text


def bench_open(directory: Path, signer: Signer) -> None:
    with Timer() as timer:
        log = AuditLog.open(directory, identity="bench", signer=signer)
    log.close_blocking()
    count = rebuild(directory).size
    print(f"AuditLog.open on the trail:             {rate(count, timer.wall, timer.cpu)}")


def bench_reads(directory: Path, signer: Signer | None, repeat: int) -> None:
    """Startup, verify and export on the trail, each timed ``repeat`` times.

    The bare decode loop is timed in every round too: the ratio to it says how far
    a figure is from the cost of merely reading the trail, whatever the machine's load.
    """
    size = sum(p.stat().st_size for p in (directory / "segments").glob("*.jsonl"))
    count = rebuild(directory).size
    print(f"trail: {count:,} records, {size / count:.0f} bytes per record on disk")
    public_keys = [signer.public_key] if signer is not None else []
    jobs: dict[str, Callable[[], object]] = {
        "bare decode loop (1 process)": lambda: bare_decode_loop(directory),
        "startup rebuild": lambda: rebuild(directory),
    }
    for workers in (None, 1):
        name = "default workers" if workers is None else "1 process"
        jobs[f"verify ({name})"] = functools.partial(_verify, directory, public_keys, workers)
    for fmt in ("jsonl", "csv", "ocsf"):
        for workers in (None, 1):
            name = "default workers" if workers is None else "1 process"
            jobs[f"export {fmt} ({name})"] = functools.partial(_export, directory, fmt, workers)
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in jobs}
    for _ in range(repeat):  # rounds, so that every job sees the same spread of load
        for label, job in jobs.items():
            with Timer() as timer:
                job()
            runs[label].append((timer.wall, timer.cpu))
    yardsticks = runs.pop("bare decode loop (1 process)")
    yardstick = count / min(yardsticks)[0]
    print(_measure("bare decode loop (1 process)", count, yardsticks, 0.0))
    for label, timings in runs.items():
        print(_measure(label, count, timings, yardstick))


def _verify(directory: Path, public_keys: list[Any], workers: int | None) -> None:
    report = verify_trail(directory, public_keys=public_keys, workers=workers)
    assert report.intact, report.summary()


def _export(directory: Path, fmt: str, workers: int | None) -> None:
    with open(os.devnull, "wb") as sink:
        export(directory, fmt, sink, workers=workers)


class _WithoutCheckpointLines(io.TextIOBase):
    """stdout minus the checkpoint log lines the audit log prints by design."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        if '"msg":"audit checkpoint"' not in text:
            self._target.write(text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--dir", default=None, help="parent directory for the temporary trail")
    parser.add_argument(
        "--trail",
        type=Path,
        help="time startup, verify and export on this existing trail only (no append)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of the read benchmarks (default 3)"
    )
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}")
    if args.trail is not None:
        bench_reads(args.trail, None, args.repeat)
        return 0
    signer = Signer(Ed25519PrivateKey.generate())
    root = Path(tempfile.mkdtemp(prefix="tollgate-audit-bench-", dir=args.dir))
    print(f"trail in {root}")
    try:
        # A text stream in all but typeshed's eyes (redirect_stdout wants an IO[str]).
        quiet = cast(TextIO, _WithoutCheckpointLines(sys.stdout))
        with contextlib.redirect_stdout(quiet):
            asyncio.run(bench_group_commit(root / "trail", signer, args.records, args.concurrency))
            bench_blocking(root / "blocking", signer, min(2000, args.records))
            bench_redaction(args.records)
            bench_open(root / "trail", signer)
            bench_reads(root / "trail", signer, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
