"""Run checks through a real ``Gate`` and ``AuditLog`` in the test's own process: the
records written are the gate's own (encoded, screened, redacted, fsynced to the trail in
``tmp_path``), without a daemon's start-up. For what happens over HTTP, see
``tests.daemon``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sidecar.audit.log import AuditLog
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource


def check_in_process(
    directory: Path, policy: str | bytes, bodies: list[dict[str, Any]], identity: str
) -> Path:
    """Check every body under ``policy`` (each must be answered 200) and close the trail;
    the audit directory, whose segments hold the records."""
    path = directory / "policy.yaml"
    path.write_bytes(policy if isinstance(policy, bytes) else policy.encode())
    audit_dir = directory / "audit"

    async def check_all() -> None:
        audit = AuditLog.open(audit_dir, identity=identity, sync_helper=False)
        await audit.start()
        gate = Gate(audit=audit, source=PolicySource(str(path)), identity=identity)
        try:
            assert await gate.load_policy(), gate.policy.last_error
            for body in bodies:
                answer = await gate.check(json.dumps(body).encode())
                assert answer.status == 200, answer.payload
        finally:
            await audit.close()

    asyncio.run(check_all())
    return audit_dir


def trail_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record of the trail in ``audit_dir``, in order."""
    return [
        json.loads(line)
        for segment in sorted(audit_dir.rglob("*.jsonl"))
        for line in segment.read_text().splitlines()
        if line.strip()
    ]
