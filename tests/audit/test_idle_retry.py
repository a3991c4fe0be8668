"""An idle log tries a failed trail again by itself (``/ready`` reads ``writable``),
with or without a signing key, so a gate no check reaches is ready again once the
fault is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditUnavailable
from tests.audit.conftest import decision

OpenLog = Callable[..., AuditLog]


async def _writable_within(log: AuditLog, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not log.writable and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return log.writable


def test_an_idle_log_without_a_signing_key_is_writable_again_once_the_fault_is_gone(
    open_log: OpenLog, tmp_path: Path
) -> None:
    # rt26 crash review, F1: only the checkpoint timer ran the idle retry, and it ran
    # only with a signing key: a gate without one stayed unready until a check came.
    log = open_log(signer=None, sync_helper=False)
    segment = tmp_path / "audit" / "segments" / "00000000000000000000.jsonl"
    aside = tmp_path / "aside.jsonl"

    async def run() -> None:
        await log.start()
        await log.append("startup", {})
        segment.rename(aside)
        with pytest.raises(AuditUnavailable, match="No such file"):
            await log.append("decision", decision(1))
        await asyncio.sleep(1.5)  # tried meanwhile: still gone
        assert not log.writable and "No such file" in (log.last_error or "")
        aside.rename(segment)
        assert await _writable_within(log, 3), log.last_error  # no append in between
        assert log.status()["lastError"] is None
        assert (await log.append("decision", decision(2))).seq == 1
        await log.close()

    asyncio.run(run())
    assert verify_trail(tmp_path / "audit").intact
