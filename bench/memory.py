"""Memory after many checks: RSS every 100,000 checks up to 1,000,000.

The checks go through ``Gate.check`` in this process (not over HTTP, to keep the run to
a few minutes): the same code path the HTTP handler calls, from the request bytes to
the durable audit record, with a real ``AuditLog`` (group commit, fsync) in a temporary
directory and 64 checks in flight. The process imports only what the daemon imports, so
its RSS is the gate's. Run on its own by ``bench`` as a subprocess:

    python -m bench.memory [--checks 1000000] [--dir DIR]

prints one JSON line: ``{"checks": [...], "rss_mib": [...], "seconds": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.policies import IDENTITY, policy_yaml, request_mix
from sidecar.audit.log import AuditLog
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource

SAMPLE_EVERY = 100_000
IN_FLIGHT = 64
POLICY_RULES = 1_000


def rss_mib() -> float:
    """The resident set size of this process now (not its peak)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def run_checks(directory: Path, total: int) -> tuple[list[int], list[float]]:
    policy = directory / "policy.yaml"
    policy.write_bytes(policy_yaml(POLICY_RULES))
    bodies = [json.dumps(body).encode() for body in request_mix(POLICY_RULES)]
    audit = AuditLog.open(directory / "audit", identity=IDENTITY)
    await audit.start()
    gate = Gate(audit=audit, source=PolicySource(str(policy)), identity=IDENTITY)
    if not await gate.load_policy():
        raise RuntimeError(f"policy rejected: {gate.policy.last_error}")
    done = 0
    marks: list[int] = []
    samples: list[float] = []

    async def worker(offset: int) -> None:
        nonlocal done
        for index in range(offset, total, IN_FLIGHT):
            answer = await gate.check(bodies[index % len(bodies)])
            if answer.status != 200:
                raise RuntimeError(f"check answered {answer.status}: {answer.payload}")
            done += 1
            if done % SAMPLE_EVERY == 0:
                marks.append(done)
                samples.append(rss_mib())

    await asyncio.gather(*(worker(offset) for offset in range(IN_FLIGHT)))
    await audit.close()
    return marks, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="parent directory for the audit trail")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="tollgate-memory-bench-", dir=args.dir))
    started = time.perf_counter()
    try:
        marks, samples = asyncio.run(run_checks(directory, args.checks))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(
        json.dumps(
            {
                "checks": marks,
                "rss_mib": [round(s, 2) for s in samples],
                "seconds": round(time.perf_counter() - started, 1),
            }
        ),
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
