"""Large requests: what one check costs when its body is tens of kilobytes.

An agent writes files through the shell (``cat > f <<'EOF' ... EOF``), runs long scripts
and sends configuration in ``context``. Each such check is parsed, its command line
analysed, decided, redacted and recorded on the event loop, which meanwhile answers no
other request, ``/health`` included. This times ``Gate.check`` in this process, one
check at a time, from the request bytes to the durable record (a real ``AuditLog``,
fsync and all, on the audit directory's file system), for request shapes near the
64 KiB body limit, each against the request mix of the other tables (the same
1,000-rule policy) timed in the same run. Reported, never judged: the issue sets no
target for large bodies, and only ``--only large`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.policies import IDENTITY, policy_yaml, request_mix
from bench.results import Section, ratio
from sidecar.audit.log import AuditLog
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource

POLICY_RULES = 1_000
ROUNDS = 5
BODY_BYTES = 60_000
CONTEXT_BYTES = 15_000
SOURCE = Path(__file__).resolve().parent.parent / "sidecar" / "gate.py"


def _exec(command_line: str) -> dict[str, Any]:
    return {"action": "process.exec", "commandLine": command_line, "cwd": "/app"}


def shapes() -> dict[str, dict[str, Any]]:
    """The large requests, by what they stand for: bodies just under 64 KiB, and a
    ``context`` just under its own limit."""
    code = SOURCE.read_text(encoding="utf-8") * 4
    plain = code.replace("$", "").replace("`", "").replace("\\", "")
    config = "\n".join(f"  key_{i}: value {i} for the service" for i in range(2_000))
    return {
        "a file written with a quoted here-document (60 KB of Python)": _exec(
            f"cat > /app/gate.py <<'EOF'\n{code[:BODY_BYTES]}\nEOF"
        ),
        "the same, unquoted (the shell expands the text)": _exec(
            f"cat > /app/gate.py <<EOF\n{plain[:BODY_BYTES]}\nEOF"
        ),
        "a script of 2,500 short commands joined by &&": _exec(
            " && ".join(f"echo {i} >> /app/log" for i in range(2_500))
        ),
        "one command with 5,000 secret options (--password=pw1 ...)": _exec(
            "deploy " + " ".join(f"--password=pw{i}" for i in range(5_000))[:BODY_BYTES]
        ),
        "15 KB of YAML in context (its limit is 16 KiB)": {
            "action": "file.read",
            "path": "/app/data/config.yaml",
            "context": {"config": config[:CONTEXT_BYTES]},
        },
    }


async def _timed(gate: Gate, body: bytes, rounds: int) -> float:
    """The median wall time of ``Gate.check(body)``, in milliseconds."""
    durations = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await gate.check(body)
        durations.append(time.perf_counter() - started)
        if answer.status != 200:
            raise RuntimeError(f"check answered {answer.status}: {answer.payload}")
    return statistics.median(durations) * 1e3


Measured = tuple[float, tuple[int, int], list[tuple[str, int, float]]]


async def _measure(directory: Path, rounds: int) -> Measured:
    """The mix's median check (ms) and its smallest and largest body, then each large
    request's size and median check."""
    policy = directory / "policy.yaml"
    policy.write_bytes(policy_yaml(POLICY_RULES))
    audit = AuditLog.open(directory / "audit", identity=IDENTITY)
    await audit.start()
    gate = Gate(audit=audit, source=PolicySource(str(policy)), identity=IDENTITY)
    if not await gate.load_policy():
        raise RuntimeError(f"policy rejected: {gate.policy.last_error}")
    try:
        mix = [json.dumps(body).encode() for body in request_mix(POLICY_RULES)]
        large = [(name, json.dumps(body).encode()) for name, body in shapes().items()]
        small: list[float] = []
        measured: dict[str, list[float]] = {name: [] for name, _ in large}
        # Interleaved, so that a busy moment of the machine moves both sides.
        for _ in range(rounds):
            small.append(statistics.median([await _timed(gate, body, 3) for body in mix]))
            for name, body in large:
                measured[name].append(await _timed(gate, body, 1))
        rows = [(name, len(body), statistics.median(measured[name])) for name, body in large]
        sizes = (min(map(len, mix)), max(map(len, mix)))
        return statistics.median(small), sizes, rows
    finally:
        await audit.close()


def run(rounds: int = ROUNDS, audit_parent: str | None = None) -> Section:
    directory = Path(tempfile.mkdtemp(prefix="tollgate-large-bench-", dir=audit_parent))
    try:
        small_ms, (smallest, largest), rows = asyncio.run(_measure(directory, rounds))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    section = Section(
        "Large requests: one check in process, from the bytes to the durable record",
        ("request", "body bytes", "median ms", "against a check of the mix"),
    )
    mix = ("the request mix (median of its checks)", f"{smallest} - {largest}", f"{small_ms:.2f}")
    section.rows.append((*mix, "1x"))
    section.rows += [
        (name, f"{size:,}", f"{ms:,.1f}", ratio(ms / small_ms)) for name, size, ms in rows
    ]
    section.notes.append(
        f"Gate.check awaited one at a time on a real AuditLog (one fsync per check), "
        f"{POLICY_RULES:,}-rule policy, medians of {rounds} rounds interleaved with the "
        "request mix. For that long the event loop answers nothing else: a pod's other "
        'checks and its probes wait (docs/performance.md, "Large requests").'
    )
    return section
