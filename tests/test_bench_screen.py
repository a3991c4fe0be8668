"""The benchmark's requests, recorded by a real gate, pass the redaction screen: none of
them holds a secret, so none may take redaction's slow path. A screen trigger that
matched every network record's ``"scheme":"https"`` cost the gate a fifth of its
throughput before a benchmark run caught it (docs/performance-history.md, the
twenty-seventh session); this catches the next one before it lands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench.policies import IDENTITY, policy_yaml, request_mix
from sidecar.audit import redact
from sidecar.audit.log import AuditLog
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource


def test_no_record_of_the_benchmark_mix_is_flagged_by_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flagged: list[bytes] = []
    screen = redact.Redactor.may_hold_secret

    def watched(encoded: bytes) -> bool:
        held = screen(encoded)
        if held:
            flagged.append(encoded)
        return held

    monkeypatch.setattr(redact.Redactor, "may_hold_secret", staticmethod(watched))
    (tmp_path / "policy.yaml").write_bytes(policy_yaml(1_000))
    bodies = request_mix(1_000)

    async def check_all() -> int:
        audit = AuditLog.open(tmp_path / "audit", identity=IDENTITY, sync_helper=False)
        await audit.start()
        gate = Gate(
            audit=audit, source=PolicySource(str(tmp_path / "policy.yaml")), identity=IDENTITY
        )
        try:
            assert await gate.load_policy()
            for body in bodies:
                answer = await gate.check(json.dumps(body).encode())
                assert answer.status == 200, answer.payload
        finally:
            await audit.close()
        return int(audit.status()["seq"])

    recorded = asyncio.run(check_all())
    assert recorded >= len(bodies)  # the screen saw every decision's record
    assert flagged == []
