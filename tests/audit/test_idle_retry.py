"""An idle log tries a failed trail again by itself (``/ready`` reads ``writable``),
with or without a signing key, so a gate no check reaches is ready again once the
fault is gone; and it believes that try, which writes nothing, only until a real
write shows it cannot see the fault.

The faults are real where a file can make them (the segment moved aside) and injected
at the system call where only a real write meets them, as ``ulimit -f`` (EFBIG) does.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
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


@pytest.mark.parametrize(
    ("call", "fault"),
    [
        ("write", OSError(errno.EFBIG, "File too large")),  # what ``ulimit -f`` gives
        ("fdatasync", OSError(errno.EIO, "Input/output error")),
    ],
)
def test_a_fault_only_writes_meet_keeps_the_trail_unwritable_until_a_write_succeeds(
    open_log: OpenLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    call: str,
    fault: OSError,
) -> None:
    # rt26 crash review, F2: under ``ulimit -f`` every write failed with EFBIG, and the
    # idle retry, which writes nothing, said "writable again" every second: /ready 200,
    # /v1/status writable, lastError null, while every check was 503.
    log = open_log(signer=None, sync_helper=False)
    real = getattr(os, call)
    faulty = {"on": False}

    def failing(fd: int, *args: object) -> object:
        if faulty["on"]:
            raise fault
        return real(fd, *args)

    monkeypatch.setattr(os, call, failing)
    caplog.set_level(logging.WARNING, logger="tollgate.audit")
    segment = tmp_path / "audit" / "segments" / "00000000000000000000.jsonl"
    aside = tmp_path / "aside.jsonl"

    async def run() -> None:
        await log.start()
        await log.append("startup", {})
        faulty["on"] = True
        with pytest.raises(AuditUnavailable, match=fault.strerror):
            await log.append("decision", decision(1))
        await asyncio.sleep(2.5)  # the idle retry's time, twice over
        status = log.status()
        assert (status["writable"], log.writable) == (False, False)
        assert status["lastError"] == f"{segment}: {fault.strerror}"
        with pytest.raises(AuditUnavailable, match=fault.strerror):
            await log.append("decision", decision(2))  # checks still write
        faulty["on"] = False
        await asyncio.sleep(1.5)
        assert not log.writable  # gone, but only a write can tell
        assert (await log.append("decision", decision(3))).seq == 1
        assert (log.status()["writable"], log.status()["lastError"]) == (True, None)
        # A write succeeded: a fault the retry can see is tried again while idle.
        segment.rename(aside)
        with pytest.raises(AuditUnavailable, match="No such file"):
            await log.append("decision", decision(4))
        aside.rename(segment)
        assert await _writable_within(log, 3), log.last_error
        await log.close()

    asyncio.run(run())
    said = [r.getMessage() for r in caplog.records]
    again = [m for m in said if m.startswith("audit trail is writable again")]
    assert len(again) == 2, said  # the write of decision 3, the retry after decision 4
    assert sum("idle retry, which writes nothing, cannot see" in m for m in said) == 1, said
    assert verify_trail(tmp_path / "audit").intact
