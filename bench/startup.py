"""Startup to ready and policy reload, with a policy of 1,000 rules.

- Startup: from spawning ``tollgate serve`` (a fresh interpreter, imports, an empty
  audit trail, the policy compiled) to the first 200 from ``GET /ready``, polled every
  5 ms. Median of three starts.
- Restart on a kept trail (reported, not a target): the same, on an audit directory
  already holding ``KEPT_RECORDS`` decision records, as a restarted pod finds its
  volume. A start reads the whole trail kept there: the writer's state is rebuilt and
  checked (CONTRACT section 4: corruption anywhere refuses to start), and the approvals
  are replayed from it. Median of three starts; the difference from an empty trail,
  per 100,000 records, is what keeping more records on the volume adds.
- Reload in the daemon: from the moment a changed policy is renamed over the watched
  file (an atomic swap, like kubelet's) to the moment ``GET /v1/status`` reports its
  hash, polled every 5 ms. It includes the watcher's batching of file events (it
  yields a batch one to two ``EVENT_STEP_MS`` after the change). Median of five
  reloads.
- Reload in process: ``load_policy_bytes`` (YAML, schema, compile, index) of the same
  bytes, the part of a reload that grows with the policy. Median of five.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

import sidecar
from bench.audit_bench import decision_body
from bench.cpu_limit import CpuLimit
from bench.filesystem import require_on_disk
from bench.http_load import Server, serve_argv
from bench.policies import IDENTITY, policy_yaml
from bench.results import Section, Target
from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.segments import list_segments
from sidecar.keys import generate_keypair
from sidecar.policy.loader import load_policy_bytes, policy_hash
from sidecar.policy.watch import EVENT_STEP_MS

POLICY_RULES = 1_000
STARTUP_LIMIT_S = 1.0
RELOAD_LIMIT_S = 0.2
POLL_S = 0.005
KEPT_RECORDS = 300_000
# The gate's CPU limit in k8s/deployment.yaml.
POD_CPU_MILLICORES = 500


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def time_startup(
    policy: Path,
    audit_dir: Path,
    log: Path,
    cwd: Path | None = None,
    limit: CpuLimit | None = None,
    signing_key: Path | None = None,
) -> float:
    """Seconds from spawning ``tollgate serve`` on ``audit_dir`` to its first ready:
    the build in ``cwd`` (the current directory's by default), in ``limit``'s cgroup."""
    key_args = ["--signing-key", str(signing_key)] if signing_key is not None else []
    server = Server(
        "gate",
        serve_argv(policy, audit_dir, *key_args),
        log,
        cwd=cwd,
        preexec=limit.join if limit is not None else None,
    )
    started = time.perf_counter()
    server.start(timeout=120, poll=POLL_S)
    elapsed = time.perf_counter() - started
    server.stop()
    return elapsed


def compiled_copy(directory: Path) -> Path:
    """A copy of the gate's package under ``directory`` with its bytecode compiled, as
    the image ships it (pip compiles at install). Run from ``directory``, ``python -m``
    imports this copy. The working tree's own start may compile every module from
    source instead: with ``PYTHONDONTWRITEBYTECODE`` set, or on the first start."""
    shutil.copytree(
        Path(sidecar.__file__).parent,
        directory / "sidecar",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(directory)], check=True)
    return directory


def build_kept_trail(
    directory: Path, records: int, signing_key: Path, concurrency: int = 256
) -> None:
    """Write ``records`` decision records to a trail under ``directory``, as a gate with
    that signing key would have (group commit, fsync, a signed checkpoint every 1,000
    records, rotation at 64 MiB), then close it."""

    async def write() -> None:
        log = AuditLog.open(
            directory, identity=IDENTITY, signer=Signer.from_key_file(str(signing_key))
        )
        await log.start()

        async def producer(offset: int) -> None:
            for index in range(offset, records, concurrency):
                await log.append("decision", decision_body(index))

        await asyncio.gather(*(producer(offset) for offset in range(concurrency)))
        await log.close()

    # The checkpoints' JSON lines (which a gate prints for its log) are not the report.
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        asyncio.run(write())


def _trail_size(directory: Path) -> tuple[int, int]:
    """(segments, bytes) of the trail under ``directory``."""
    segments = list_segments(directory)
    return len(segments), sum(segment.path.stat().st_size for segment in segments)


def _variant(base: bytes, number: int) -> bytes:
    """The same policy with different bytes (so another hash) and the same rule count."""
    return base + f"# variant {number}\n".encode()


def time_reloads(work: Path, policy: Path, count: int = 5) -> list[float]:
    server = Server("gate", serve_argv(policy, work / "audit-reload"), work / "reload.log")
    base = policy.read_bytes()
    durations: list[float] = []
    server.start(timeout=30)
    try:
        for number in range(1, count + 1):
            data = _variant(base, number)
            wanted = policy_hash(data)
            staged = policy.with_name(f".staged-{number}")
            staged.write_bytes(data)
            time.sleep(0.5)  # let the watcher settle after the previous swap
            started = time.perf_counter()
            os.replace(staged, policy)
            deadline = started + 10
            while time.perf_counter() < deadline:
                status, body = _get_json(server.url + "/v1/status")
                if status == 200 and body["policy"]["hash"] == wanted:
                    break
                time.sleep(POLL_S)
            else:
                raise RuntimeError("the daemon did not load the changed policy within 10 s")
            durations.append(time.perf_counter() - started)
    finally:
        server.stop()
    return durations


def time_bare_start(log: Path) -> float:
    """Seconds from spawning the bare Starlette + uvicorn app to its first ready."""
    server = Server("bare app", [sys.executable, "-m", "bench.bare_start", "--port", "{port}"], log)
    started = time.perf_counter()
    server.start(timeout=60, poll=POLL_S)
    elapsed = time.perf_counter() - started
    server.stop()
    return elapsed


def time_yaml_parse(data: bytes, count: int = 5) -> list[float]:
    """Seconds to parse ``data`` with PyYAML's libyaml loader (or its Python one) alone."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        yaml.load(data, Loader=loader)
        durations.append(time.perf_counter() - started)
    return durations


def time_compile(data: bytes, count: int = 5) -> list[float]:
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        load_policy_bytes(data, "bench.yaml")
        durations.append(time.perf_counter() - started)
    return durations


def run(*, audit_parent: str | None = None, kept_records: int = KEPT_RECORDS) -> Section:
    trail_on = require_on_disk(audit_parent or tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="tollgate-startup-bench-", dir=audit_parent))
    try:
        policy = work / "policy.yaml"
        policy.write_bytes(policy_yaml(POLICY_RULES))
        starts: list[float] = []
        bare_starts: list[float] = []
        for n in range(3):  # interleaved: the baseline in the same minutes
            starts.append(time_startup(policy, work / f"audit-start-{n}", work / f"start-{n}.log"))
            bare_starts.append(time_bare_start(work / f"bare-{n}.log"))
        compiled = compiled_copy(work / "compiled")
        compiled_starts = [
            time_startup(policy, work / f"audit-pyc-{n}", work / f"pyc-{n}.log", cwd=compiled)
            for n in range(3)
        ]
        kept = work / "audit-kept"
        key, _ = generate_keypair(work / "keys")
        build_kept_trail(kept, kept_records, key)
        segments, size = _trail_size(kept)
        restarts = [
            time_startup(policy, kept, work / f"restart-{n}.log", signing_key=key) for n in range(3)
        ]
        limit = CpuLimit.create(POD_CPU_MILLICORES)
        limited_starts: list[float] = []
        limited_restarts: list[float] = []
        if isinstance(limit, CpuLimit):
            try:
                for n in range(3):
                    audit = work / f"audit-pod-{n}"
                    log = work / f"pod-{n}.log"
                    limited_starts.append(time_startup(policy, audit, log, compiled, limit))
                    log = work / f"pod-restart-{n}.log"
                    limited_restarts.append(
                        time_startup(policy, kept, log, compiled, limit, signing_key=key)
                    )
            finally:
                limit.remove()
        compiles = time_compile(policy.read_bytes())
        parses = time_yaml_parse(policy.read_bytes())
        reloads = time_reloads(work, policy)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    start_s, reload_s = statistics.median(starts), statistics.median(reloads)
    compile_s = statistics.median(compiles)
    bare_s, parse_s = statistics.median(bare_starts), statistics.median(parses)

    def per_100k(restarted: list[float], started: list[float]) -> str:
        added = statistics.median(restarted) - statistics.median(started)
        return f"{added / kept_records * 100_000 * 1000:.0f}"

    section = Section(
        f"Startup and reload, policy of {POLICY_RULES:,} rules (ms)",
        ("measure", "median", "all runs"),
    )
    pod = f"in a cgroup with the pod's CPU limit ({POD_CPU_MILLICORES}m)"
    pod_label = f"the same, {pod}"
    # The notes name these rows by their labels: rows come and go with the machine.
    start_label = "startup to ready (spawn → GET /ready 200)"
    compiled_label = "the same, bytecode compiled beforehand (as in the image)"
    kept_label = (
        f"restart to ready on a kept trail of {kept_records:,} records "
        f"({segments} segments, {size / 2**20:,.0f} MiB)"
    )
    for label, values in (
        (start_label, starts),
        ("baseline: a bare Starlette + uvicorn app, the same (interleaved)", bare_starts),
        (compiled_label, compiled_starts),
        *([(pod_label, limited_starts)] if limited_starts else []),
        (kept_label, restarts),
        *([(f"the same, bytecode compiled, {pod}", limited_restarts)] if limited_restarts else []),
        ("reload in the daemon (rename → new hash in /v1/status)", reloads),
        ("reload in process (load_policy_bytes)", compiles),
        ("baseline: the same file parsed by PyYAML's libyaml loader alone", parses),
    ):
        runs = ", ".join(f"{v * 1000:.0f}" for v in values)
        section.rows.append((label, f"{statistics.median(values) * 1000:.0f}", runs))
    section.rows.append(
        ("startup to ready, times the bare app's (reported)", f"{start_s / bare_s:.2f}x", "")
    )
    section.rows.append(
        (
            "reload in process, times the YAML parse alone (reported)",
            f"{compile_s / parse_s:.2f}x",
            "",
        )
    )
    added = "what the kept trail adds to a start, per 100,000 records"
    section.rows.append((added, per_100k(restarts, starts), ""))
    if limited_starts:
        section.rows.append((f"{added}, {pod}", per_100k(limited_restarts, limited_starts), ""))
    else:
        section.rows.append((pod_label, "not measured", str(limit)))
    section.targets += [
        Target(
            f"startup to ready, {POLICY_RULES:,} rules",
            f"{start_s * 1000:.0f} ms",
            f"≤ {STARTUP_LIMIT_S * 1000:.0f} ms",
            start_s <= STARTUP_LIMIT_S,
        ),
        Target(
            f"reload of a {POLICY_RULES:,}-rule policy in the daemon",
            f"{reload_s * 1000:.0f} ms (compile alone {compile_s * 1000:.0f} ms)",
            f"≤ {RELOAD_LIMIT_S * 1000:.0f} ms",
            reload_s <= RELOAD_LIMIT_S,
        ),
    ]
    section.notes.append(
        "Startup includes the interpreter and every import; /ready is polled every 5 ms. "
        f"The audit trails were on {trail_on}. "
        f"The daemon reload includes the watcher's batching of file events "
        f"({EVENT_STEP_MS}-{2 * EVENT_STEP_MS} ms after the change)."
    )
    section.notes.append(
        f'The target is judged on the row "{start_label}": the working tree\'s start, which '
        "here compiles every module from source when no bytecode is cached "
        "(PYTHONDONTWRITEBYTECODE set, or a first start). The image ships compiled bytecode "
        f'(the row "{compiled_label}"). In the pod, the container\'s CPU limit is a CFS '
        "quota: the start's CPU time counts, not the idle CPUs (the row "
        f'"{pod_label}", reported, not judged).'
    )
    section.notes.append(
        "The baselines say how fast this machine is in the same minutes (the targets are "
        "absolute, and a shared VM's speed moves by a factor of two or more from one hour "
        "to the next): a bare Starlette + uvicorn app that imports nothing of the gate "
        "(bench/bare_start.py), started alternately with the gate, and the policy file "
        "parsed by PyYAML's C loader with nothing else done. Their ratios are reported, "
        "not judged."
    )
    section.notes.append(
        "The restart is not a target. A start reads the whole trail kept on the volume "
        "(the writer's state rebuilt and checked, the approvals replayed), so its time "
        "grows with the records kept there; docs/deploy.md says how to keep it within "
        "the startup probe's budget."
    )
    return section


if __name__ == "__main__":
    from bench.results import render

    print(render([run()]))
