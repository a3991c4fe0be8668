"""Where a check's time goes in a loaded server: the pipeline stage by stage, under wrk.

A profiler samples one process and a loop timing one step alone measures it with warm
caches; neither says what a step costs inside a server busy with uvicorn, asyncio and
the other steps. This runs, side by side at concurrency 16, the bare Starlette ceiling,
``bench.stage_app`` at each stage (HTTP only, + parse, + normalise, + decide) and the
real gate (audit trail on tmpfs, then on disk), interleaved round by round, and reports
the server time per request (1 / throughput: the server is the saturated side) and what
each stage adds to the one before. Reported, never judged.

    python -m bench --only stages
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.http_load import Server, require_wrk, run_wrk
from bench.policies import policy_yaml, request_mix
from bench.results import Section, us
from bench.stage_app import STAGES

CONNECTIONS = 16
POLICY_RULES = 1_000
STEP_NAMES = {
    "http": "uvicorn + read body + JSON answer (no Starlette)",
    "parse": "+ strict JSON and schema",
    "normalise": "+ normalisation",
    "decide": "+ decision",
    "gate-tmpfs": "+ the rest of Gate.check: ids, approvals, metrics, audit record (trail on tmpfs)",
    "gate": "+ the audit trail on disk (write, fdatasync in the helper)",
}


def run(*, seconds: float = 5.0, rounds: int = 3, audit_parent: str | None = None) -> Section:
    wrk = require_wrk()
    work = Path(tempfile.mkdtemp(prefix="tollgate-stages-bench-", dir=audit_parent))
    # Without a tmpfs the "trail on tmpfs" row is left out, as bench.http_load does.
    tmpfs = (
        Path(tempfile.mkdtemp(prefix="tollgate-stages-bench-", dir="/dev/shm"))
        if Path("/dev/shm").is_dir()
        else None
    )
    policy = work / "policy.yaml"
    policy.write_bytes(policy_yaml(POLICY_RULES))
    bodies = work / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(b) + "\n" for b in request_mix(POLICY_RULES)))
    serve = [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy)]
    servers = [
        Server(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling_app", "--port", "{port}"],
            work / "ceiling.log",
        ),
        *(
            Server(
                stage,
                [sys.executable, "-m", "bench.stage_app", "--stage", stage, "--port", "{port}"],
                work / f"{stage}.log",
            )
            for stage in STAGES
        ),
        *(
            [
                Server(
                    "gate-tmpfs",
                    [*serve, "--port", "{port}", "--audit-dir", str(tmpfs / "audit")],
                    work / "gate-tmpfs.log",
                )
            ]
            if tmpfs is not None
            else []
        ),
        Server(
            "gate",
            [*serve, "--port", "{port}", "--audit-dir", str(work / "audit")],
            work / "gate.log",
        ),
    ]
    per_request: dict[str, list[float]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            server.start()
            run_wrk(wrk, server.url, bodies, CONNECTIONS, 1)  # warm-up
        for _ in range(rounds):
            for server in servers:
                result = run_wrk(wrk, server.url, bodies, CONNECTIONS, seconds)
                if result.errors:
                    raise RuntimeError(f"{server.name} answered {result.errors} errors")
                per_request[server.name].append(1e6 / result.rate)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if tmpfs is not None:
            shutil.rmtree(tmpfs, ignore_errors=True)
    return _section(
        {name: statistics.median(times) for name, times in per_request.items()}, seconds, rounds
    )


def _section(median_us: dict[str, float], seconds: float, rounds: int) -> Section:
    section = Section(
        f"Server time per /check at concurrency {CONNECTIONS}, stage by stage (µs per request)",
        ("server", "µs per request", "added by this step", "share of the ceiling"),
    )
    ceiling = median_us["ceiling"]
    section.rows.append(("bare Starlette + uvicorn (the ceiling)", us(ceiling), "-", "1.00"))
    previous: float | None = None
    for name, label in STEP_NAMES.items():
        if name not in median_us:
            continue  # no tmpfs on this machine
        if name == "gate" and "gate-tmpfs" not in median_us:
            label = "+ the rest of Gate.check and the audit trail on disk"
        value = median_us[name]
        added = "-" if previous is None else f"{value - previous:+,.1f}"
        section.rows.append((label, us(value), added, f"{ceiling / value:.2f}"))
        previous = value
    section.notes.append(
        f"wrk at concurrency {CONNECTIONS}, {seconds:g} s per run, {rounds} rounds interleaved "
        "server by server, median of the rounds; time per request is 1 / requests per second, "
        "the server being the saturated side. Stages 1-4 are bench/stage_app.py, the last two "
        "rows tollgate serve; 1,000-rule policy, the request mix of the other tables."
    )
    section.notes.append(
        f"The share of the ceiling is the throughput target's measure: ≥ 0.5 means at most "
        f"{us(2 * ceiling)} µs per request in this run."
    )
    return section
