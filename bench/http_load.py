"""``/check`` over HTTP under wrk, against the bare Starlette + uvicorn ceiling.

Two servers run side by side on loopback ports: ``tollgate serve`` (the real daemon, a
real audit trail on disk, one fdatasync per group commit) and ``bench.ceiling_app`` (parse
the JSON body, answer). wrk drives both with the same request mix, interleaved run by run
(ceiling, gate, ceiling, gate ...) so a change in the machine's load hits both, in
``rounds`` at every concurrency. Each round's gate is compared with the same round's
ceiling, and the median of those ratios is the figure judged: one busy moment on a
shared machine moves one round, not the verdict.
A third server, the gate with its audit trail on tmpfs (where a sync costs nothing),
shows what the gate costs apart from the disk; a fourth, at concurrency 1 only, is the
ceiling plus one append + fdatasync per request on the gate's disk, what the latency
target's "one fsync" costs here. Both are reported, never judged.

After the runs the gate is stopped (SIGTERM: final checkpoint) and its trail verified:
every answered check must be a decision record in an intact chain. The trail's directory must be
on a disk: on tmpfs or ramfs the run is refused (``bench.filesystem``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.ceiling_app import describe as describe_ceiling
from bench.filesystem import require_on_disk, sync_latency_us
from bench.policies import IDENTITY, policy_yaml, request_mix
from bench.results import Section, Target, ratio, us
from sidecar.audit.segments import iter_line_blocks, list_segments
from sidecar.audit.verify import verify_trail

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "check.lua"
CONCURRENCY = (1, 16, 64)
POLICY_RULES = 1_000
THROUGHPUT_LEVEL, THROUGHPUT_SHARE = 16, 0.5
LATENCY_LEVEL, LATENCY_LIMIT = 1, 3.0
ROUNDS = 3
# The servers that are the gate (tollgate serve): the errors target counts theirs only.
GATE_SERVERS = ("gate", "gate-tmpfs")


class WrkMissing(RuntimeError):
    """wrk is not installed (``apt-get install -y wrk``)."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_us: float
    p99_us: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing("wrk is not installed; install it with: apt-get install -y wrk")
    return path


class Server:
    """A server process on a loopback port, started and stopped by the benchmark."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        cwd: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        # ``python -m`` imports from the working directory first: it decides the build.
        self.cwd = cwd
        self.preexec = preexec  # run in the child before the server (a cgroup to join)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [arg.replace("{port}", str(self.port)) for arg in argv]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, poll: float = 0.05) -> Server:
        """Spawn the server and wait for ``GET /ready`` to answer 200, asking every
        ``poll`` seconds."""
        env = {**os.environ, "TOLLGATE_IDENTITY": IDENTITY}
        with open(self.log, "wb") as log:
            # stdout carries the audit checkpoint lines; only errors are kept.
            self.process = subprocess.Popen(
                self.argv,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                cwd=self.cwd,
                preexec_fn=self.preexec,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(poll)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve_argv(policy: Path, audit_dir: Path, *extra: str) -> list[str]:
    """``tollgate serve`` of the working directory's build on a free port ({port})."""
    return [
        sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
        "--audit-dir", str(audit_dir), "--port", "{port}", *extra,
    ]  # fmt: skip


def write_inputs(work: Path, rules: int = POLICY_RULES) -> tuple[Path, Path]:
    """The benchmark policy of ``rules`` rules and the request mix for wrk, in ``work``."""
    policy = work / "policy.yaml"
    policy.write_bytes(policy_yaml(rules))
    bodies = work / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(b) + "\n" for b in request_mix(rules)))
    return policy, bodies


def run_wrk(wrk: str, url: str, bodies: Path, connections: int, seconds: float) -> WrkResult:
    threads = min(2, connections)
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(LUA_SCRIPT), url + "/check", "--", str(bodies),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in reversed(output.splitlines()) if x.startswith("{"))
    data = json.loads(line)
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_us=float(data["p50_us"]),
        p99_us=float(data["p99_us"]),
    )


def decision_records(audit_dir: Path) -> int:
    """How many ``decision`` records the trail holds: one per answered check. The other
    types (startup, policyLoaded, approval, checkpoint, shutdown) answer no check."""
    return sum(
        json.loads(line)["type"] == "decision"
        for segment in list_segments(audit_dir)
        for block in iter_line_blocks(segment.path)
        for line in block
    )


SYNC_FAMILY = "tollgate_audit_sync_duration_seconds"


def sync_totals(url: str) -> tuple[float, float]:
    """(batches synced, seconds they waited) so far, from the gate's own /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode("utf-8")
    count = total = None
    for family in text_string_to_metric_families(text):
        if family.name == SYNC_FAMILY:
            for sample in family.samples:
                if sample.name == SYNC_FAMILY + "_count":
                    count = sample.value
                elif sample.name == SYNC_FAMILY + "_sum":
                    total = sample.value
    if count is None or total is None:
        raise RuntimeError(f"{url}/metrics has no {SYNC_FAMILY}")
    return count, total


@dataclass(frozen=True)
class SyncWait:
    """The gate's syncs during one wrk run, as the gate itself timed them."""

    batches: float
    seconds: float

    @property
    def mean_us(self) -> float:
        return self.seconds / self.batches * 1e6 if self.batches else 0.0


@dataclass(frozen=True)
class Runs:
    """One server's wrk runs at one concurrency, a run per round, in round order."""

    results: tuple[WrkResult, ...]

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.results)

    @property
    def p50_us(self) -> float:
        return statistics.median(r.p50_us for r in self.results)

    @property
    def p99_us(self) -> float:
        return statistics.median(r.p99_us for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    def shares(self, ceiling: Runs) -> list[float]:
        """Each round's throughput as a share of the same round's ceiling."""
        return [r.rate / c.rate for r, c in zip(self.results, ceiling.results, strict=True)]

    def slowdowns(self, ceiling: Runs) -> list[float]:
        """Each round's p50 as a multiple of the same round's ceiling's."""
        return [r.p50_us / c.p50_us for r, c in zip(self.results, ceiling.results, strict=True)]


def run(
    *,
    seconds: float = 5.0,
    rounds: int = ROUNDS,
    audit_parent: str | None = None,
    with_tmpfs: bool = True,
) -> Section:
    wrk = require_wrk()
    trail_on = require_on_disk(audit_parent or tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="tollgate-http-bench-", dir=audit_parent))
    tmpfs = Path("/dev/shm")
    tmpfs_work = (
        Path(tempfile.mkdtemp(prefix="tollgate-http-bench-", dir=tmpfs))
        if with_tmpfs and tmpfs.is_dir()
        else None
    )
    policy, bodies = write_inputs(work)
    ceiling = Server(
        "ceiling",
        [sys.executable, "-m", "bench.ceiling_app", "--port", "{port}"],
        work / "ceiling.log",
    )
    # The ceiling plus one fdatasync per request on the gate's disk, at concurrency 1
    # only: what "the extra is one fsync" comes to on this machine, in the same run.
    ceiling_sync = Server(
        "ceiling-sync",
        [
            *[sys.executable, "-m", "bench.ceiling_app", "--port", "{port}"],
            *["--sync-dir", str(work / "ceiling-sync")],
        ],
        work / "ceiling-sync.log",
    )
    gate = Server("gate", serve_argv(policy, work / "audit"), work / "gate.log")
    servers = [ceiling, ceiling_sync, gate]
    gate_tmpfs = None
    if tmpfs_work is not None:
        gate_tmpfs = Server(
            "gate-tmpfs",
            serve_argv(policy, tmpfs_work / "audit"),
            work / "gate-tmpfs.log",
        )
        servers.append(gate_tmpfs)
    results: dict[tuple[str, int], list[WrkResult]] = {}
    sync_batches = sync_seconds = 0.0
    answered = warmup_errors = 0
    try:
        fsync_us = sync_latency_us(work, count=200)
        for server in servers:
            server.start()
            warmup = run_wrk(wrk, server.url, bodies, 16, 2)
            answered += warmup.requests if server is gate else 0
            # A gate that fails its first requests must not show 0 errors.
            warmup_errors += warmup.errors if server.name in GATE_SERVERS else 0
        for connections in CONCURRENCY:
            for _ in range(rounds):
                for server in servers:
                    if server is gate_tmpfs and connections == 64:
                        continue
                    if server is ceiling_sync and connections != LATENCY_LEVEL:
                        continue
                    watch = server is gate and connections == LATENCY_LEVEL
                    before = sync_totals(server.url) if watch else (0.0, 0.0)
                    result = run_wrk(wrk, server.url, bodies, connections, seconds)
                    if watch:
                        after = sync_totals(server.url)
                        sync_batches += after[0] - before[0]
                        sync_seconds += after[1] - before[1]
                    results.setdefault((server.name, connections), []).append(result)
                    answered += result.requests if server is gate else 0
    finally:
        for server in servers:
            server.stop()
    try:
        report = verify_trail(work / "audit")
        decisions = decision_records(work / "audit") if report.intact else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmpfs_work is not None:
            shutil.rmtree(tmpfs_work, ignore_errors=True)
    if not sync_batches:
        raise RuntimeError("the gate's syncs were not read during the concurrency-1 runs")
    runs = {key: Runs(tuple(value)) for key, value in results.items()}
    sync_wait = SyncWait(sync_batches, sync_seconds)
    return judged_section(
        runs,
        fsync_us,
        sync_wait,
        report.intact,
        decisions,
        answered,
        seconds,
        rounds,
        trail_on=str(trail_on),
        gate_warmup_errors=warmup_errors,
    )


def _rounds(values: list[float], fmt: str) -> str:
    return ", ".join(format(v, fmt) for v in values)


def judged_section(
    runs: dict[tuple[str, int], Runs],
    fsync_us: float,
    sync_wait: SyncWait,
    intact: bool,
    decisions: int,
    answered: int,
    seconds: float,
    rounds: int,
    *,
    trail_on: str,
    gate_warmup_errors: int,
) -> Section:
    """The HTTP table, its targets judged on each round's ratios, and the notes;
    ``decisions`` counts the trail's decision records, ``trail_on`` names the file
    system of the gate's trail ("ext4 (/dev/vda)")."""
    section = Section(
        "/check over HTTP under wrk (requests/s; latency µs p50 / p99; medians of the rounds)",
        ("concurrency", "server", "requests/s", "latency p50 / p99", "errors", "vs ceiling"),
    )
    for connections in CONCURRENCY:
        base = runs[("ceiling", connections)]
        for name in ("ceiling", "ceiling-sync", "gate", "gate-tmpfs"):
            server = runs.get((name, connections))
            if server is None:
                continue
            label = {
                "ceiling": "bare Starlette + uvicorn",
                "ceiling-sync": "the same + append and fdatasync of each body",
                "gate": "tollgate serve",
                "gate-tmpfs": "tollgate serve, audit on tmpfs",
            }[name]
            versus = "-"
            if name != "ceiling":
                share = statistics.median(server.shares(base))
                slower = statistics.median(server.slowdowns(base))
                versus = f"{share:.2f} of throughput, {ratio(slower)} p50"
            section.rows.append(
                (
                    str(connections),
                    label,
                    f"{server.rate:,.0f}",
                    f"{us(server.p50_us)} / {us(server.p99_us)}",
                    str(server.errors),
                    versus,
                )
            )
    gate16, base16 = runs[("gate", THROUGHPUT_LEVEL)], runs[("ceiling", THROUGHPUT_LEVEL)]
    shares = gate16.shares(base16)
    share = statistics.median(shares)
    section.targets.append(
        Target(
            f"throughput at concurrency {THROUGHPUT_LEVEL}, share of the ceiling",
            # Three decimals: a share just under the limit must not print as the limit.
            f"{share:.3f} ({gate16.rate:,.0f} vs {base16.rate:,.0f} requests/s; "
            f"rounds: {_rounds(shares, '.3f')})",
            f"≥ {THROUGHPUT_SHARE:g}",
            share >= THROUGHPUT_SHARE,
        )
    )
    gate1, base1 = runs[("gate", LATENCY_LEVEL)], runs[("ceiling", LATENCY_LEVEL)]
    slowdowns = gate1.slowdowns(base1)
    slower = statistics.median(slowdowns)
    apart = max(0.0, gate1.p50_us - sync_wait.mean_us) / base1.p50_us
    section.targets.append(
        Target(
            f"p50 at concurrency {LATENCY_LEVEL}, times the ceiling's",
            f"{ratio(slower)} ({us(gate1.p50_us)} vs {us(base1.p50_us)} µs; rounds: "
            f"{_rounds(slowdowns, '.2f')}; the gate's mean fdatasync meanwhile: "
            f"{us(sync_wait.mean_us)} µs)",
            f"≤ {LATENCY_LIMIT:g}x",
            slower <= LATENCY_LIMIT,
        )
    )
    errors = gate_warmup_errors + sum(
        r.errors for (name, _), r in runs.items() if name in GATE_SERVERS
    )
    section.targets.append(
        Target(
            "errors (non-2xx, socket errors, timeouts) from the gate, warm-up included",
            str(errors),
            "0",
            errors == 0,
        )
    )
    section.targets.append(
        Target(
            "audit trail after the run: intact, a decision record per answered check",
            f"{'intact' if intact else 'NOT INTACT'}, {decisions:,} decision records for "
            f"{answered:,} checks",
            "intact, decision records ≥ checks",
            intact and decisions >= answered,
        )
    )
    section.notes += [
        f"wrk 4.1 (Debian), {rounds} rounds of {seconds:g} s per server and concurrency, 2 "
        f"threads (1 at concurrency 1), keep-alive; policy of {POLICY_RULES:,} synthetic "
        "rules; bodies cycle through the same mix as the in-process table. Runs are "
        "interleaved server by server within each round; each server had a warm-up run. "
        "Requests/s and latencies are the medians of the rounds; a ratio to the ceiling is "
        "the median of each round's ratio to the same round's ceiling. The ceiling: "
        f"{describe_ceiling()}, access log off. The gate's audit "
        f"trail, and the syncing ceiling's file, were on {trail_on}.",
        f"At concurrency 1 the gate synced {sync_wait.batches:,.0f} batches for "
        f"{gate1.requests:,} checks, and by its own /metrics "
        f"(tollgate_audit_sync_duration_seconds) each fdatasync took "
        f"{us(sync_wait.mean_us)} µs on average: the floor under every answer there. "
        f"Less that, the gate's p50 would be {ratio(apart)} the ceiling's. A record-sized "
        f"append + fdatasync repeated in a tight loop on the same file system takes "
        f"{us(fsync_us)} µs (median)"
        + (
            ": a disk synced back to back can answer faster than one synced between "
            "other work, as the gate's is."
            if fsync_us < sync_wait.mean_us
            else "."
        ),
        "The tmpfs row is the same daemon with its trail in /dev/shm, where a sync costs "
        "nothing: it shows the gate's own cost apart from the disk.",
    ]
    synced = runs.get(("ceiling-sync", LATENCY_LEVEL))
    if synced is not None:
        baseline = statistics.median(synced.slowdowns(base1))
        beside = statistics.median(
            g / c for g, c in zip(gate1.slowdowns(base1), synced.slowdowns(base1), strict=True)
        )
        section.notes.append(
            f"The ceiling with one append + fdatasync per request, on the gate's disk and on "
            f"its event loop as a lone check's is, answers at concurrency 1 with a p50 of "
            f"{us(synced.p50_us)} µs, {ratio(baseline)} the bare ceiling's: what the "
            f'"one fsync" of the target costs here. The gate\'s p50 is {ratio(beside)} that '
            "of this baseline (not a target)."
        )
    return section
