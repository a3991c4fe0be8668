"""The sync helper process, and the audit log handing its batches to it.

Everything here is real: the helper is a real process, the stalls and deaths are real
signals (SIGSTOP, SIGKILL), the files are real. Only the "disk reports EIO" case is
injected at the boundary, as in test_faults.py: no file system here fails a sync on
demand.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit import log as log_module
from sidecar.audit.log import AuditLog
from sidecar.audit.syncer import HelperGone, SyncHelper
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditUnavailable
from tests.audit.conftest import decision, records

OpenLog = Callable[..., AuditLog]


async def _sync_once(helper: SyncHelper, fd: int) -> BaseException | None:
    answered: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    helper.sync(fd, answered.set_result)
    return await asyncio.wait_for(answered, timeout=10)


def test_the_helper_syncs_the_descriptor_it_is_handed(tmp_path: Path) -> None:
    async def run() -> tuple[BaseException | None, BaseException | None, int | None]:
        helper = SyncHelper.start(asyncio.get_running_loop())
        assert helper is not None and helper.alive
        path = tmp_path / "segment"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.write(fd, b"record\n")
        on_file = await _sync_once(helper, fd)
        os.close(fd)
        # fdatasync on a FIFO fails with EINVAL: the answer comes from the kernel's
        # fdatasync on exactly the descriptor that was handed over.
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        fifo_fd = os.open(fifo, os.O_RDWR)
        on_fifo = await _sync_once(helper, fifo_fd)
        os.close(fifo_fd)
        pid = helper.pid
        helper.stop()
        return on_file, on_fifo, pid

    on_file, on_fifo, pid = asyncio.run(run())
    assert on_file is None
    assert isinstance(on_fifo, OSError) and on_fifo.errno == errno.EINVAL
    assert (tmp_path / "segment").read_bytes() == b"record\n"
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # stopped and reaped: no zombie left


def test_the_helper_outlives_sigterm_and_leaves_when_the_gate_hangs_up(tmp_path: Path) -> None:
    async def run() -> None:
        helper = SyncHelper.start(asyncio.get_running_loop())
        assert helper is not None and helper.pid is not None
        process = helper._process
        assert process is not None
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o640)
        assert await _sync_once(helper, fd) is None  # up and serving
        os.kill(helper.pid, signal.SIGTERM)  # the gate drains on SIGTERM; the helper stays
        await asyncio.sleep(0.1)
        assert await _sync_once(helper, fd) is None
        os.close(fd)
        helper.stop()
        assert process.returncode == 0  # it exited by itself once our end closed

    asyncio.run(run())


def test_a_dead_helper_is_reported_and_no_request_is_sent(tmp_path: Path) -> None:
    async def run() -> None:
        helper = SyncHelper.start(asyncio.get_running_loop())
        assert helper is not None and helper.pid is not None
        os.kill(helper.pid, signal.SIGKILL)
        fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o640)
        answered: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        try:
            helper.sync(fd, answered.set_result)
        except HelperGone:
            pass  # the socket already said so
        else:  # sent before the death was noticed: the end of file answers
            assert isinstance(await asyncio.wait_for(answered, timeout=10), HelperGone)
        os.close(fd)
        assert not helper.alive
        with pytest.raises(HelperGone):
            helper.sync(0, answered.set_result)

    asyncio.run(run())


async def _append_many(log: AuditLog, first: int, count: int) -> list[Any]:
    return await asyncio.gather(
        *(log.append("decision", decision(first + i)) for i in range(count)),
        return_exceptions=True,
    )


def test_checks_started_as_a_sync_ends_join_the_batch_gathered_during_it(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """Under load the batch gathered during the helper's sync is written two loop
    iterations after that sync ends, not at once: checks whose requests were read while
    the sync was settled join it, instead of waiting for a sync of their own."""
    log = open_log(signer=None)
    joining: list[asyncio.Future[list[Any]]] = []

    def as_the_sync_ends(_seconds: float) -> None:
        # Called on the loop as the helper's answer is read, before anything is settled:
        # appends made now start in the next loop iteration, like requests read now.
        if not joining and log._pending is not None:
            joining.append(asyncio.ensure_future(_append_many(log, 10, 3)))

    log.on_sync(as_the_sync_ends)

    async def run() -> int:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        os.kill(helper.pid, signal.SIGSTOP)
        try:
            first = asyncio.ensure_future(_append_many(log, 0, 5))  # handed to the helper
            await asyncio.sleep(0.2)
            gathered = asyncio.ensure_future(_append_many(log, 5, 5))  # during its sync
            await asyncio.sleep(0.1)
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(first, gathered), 10)
        assert joining, "the helper's sync never ended with a batch gathered"
        await asyncio.wait_for(joining[0], 10)
        syncs = log.syncs
        await log.close()
        return syncs

    assert asyncio.run(run()) == 2  # the first five; then the other eight together
    assert [r["seq"] for r in records(tmp_path / "audit")] == list(range(13))
    assert verify_trail(tmp_path / "audit").intact


def test_batches_are_synced_by_the_helper_and_a_lone_append_on_the_loop(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)

    async def run() -> None:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        # With the helper stopped, a batch handed to it cannot finish...
        os.kill(helper.pid, signal.SIGSTOP)
        try:
            batch = asyncio.ensure_future(_append_many(log, 0, 5))
            await asyncio.sleep(0.3)
            assert not batch.done()
            assert log._in_flight is not None
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        assert [r.seq for r in await asyncio.wait_for(batch, 10)] == [0, 1, 2, 3, 4]
        # ...while a lone append on an idle gate does not wait for the helper at all.
        os.kill(helper.pid, signal.SIGSTOP)
        try:
            alone = await asyncio.wait_for(log.append("decision", decision(5)), timeout=5)
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        assert alone.seq == 5
        await log.close()
        assert not helper.alive

    asyncio.run(run())
    assert [r["seq"] for r in records(tmp_path / "audit")] == list(range(6))
    assert verify_trail(tmp_path / "audit").intact


def test_a_helper_killed_with_a_sync_in_flight_costs_speed_not_records(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)
    waits: list[float] = []
    log.on_sync(waits.append)

    async def run() -> list[Any]:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        os.kill(helper.pid, signal.SIGSTOP)
        batch = asyncio.ensure_future(_append_many(log, 0, 10))
        await asyncio.sleep(0.2)
        later = asyncio.ensure_future(_append_many(log, 10, 10))  # gathers meanwhile
        await asyncio.sleep(0.1)
        os.kill(helper.pid, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(batch, later), timeout=10)
        assert log._syncer is None  # from now on the loop syncs
        results.append(await _append_many(log, 20, 10))
        await log.close()
        return [r for group in results for r in group]

    results = asyncio.run(run())
    assert [r.seq for r in results] == list(range(30))
    assert [r["seq"] for r in records(tmp_path / "audit")] == list(range(30))
    assert verify_trail(tmp_path / "audit").intact
    # The batch the helper died with waited from its hand-over (0.3 s of stopped helper)
    # to the loop's own sync of it; every sync was reported.
    assert len(waits) == log.syncs
    assert waits[0] >= 0.3


def test_a_stalled_sync_makes_the_trail_unwritable_and_fails_new_appends_at_once(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SYNC_STALL_SECONDS", 0.3)
    log = open_log(signer=None)

    async def run() -> None:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        os.kill(helper.pid, signal.SIGSTOP)  # a disk that does not answer
        try:
            batch = asyncio.ensure_future(_append_many(log, 0, 4))
            await asyncio.sleep(0.1)
            assert log.writable  # slow, not yet stalled
            await asyncio.sleep(0.4)
            status = log.status()
            assert status["writable"] is False
            assert "has not finished a sync" in status["lastError"]
            started = time.monotonic()
            with pytest.raises(AuditUnavailable, match="has not finished a sync"):
                await log.append("decision", decision(99))
            assert time.monotonic() - started < 0.1  # failed at once, not queued
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        assert [r.seq for r in await asyncio.wait_for(batch, 10)] == [0, 1, 2, 3]
        assert log.writable and log.last_error is None
        assert (await log.append("decision", decision(4))).seq == 4
        await log.close()

    asyncio.run(run())
    assert verify_trail(tmp_path / "audit").intact


def test_a_failed_helper_sync_fails_its_batch_and_the_one_gathered_on_top(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})

    def failing_sync(fd: int, done: Callable[[BaseException | None], None]) -> None:
        # The disk answers EIO after a while, as a helper's fdatasync would report it.
        asyncio.get_running_loop().call_later(0.2, done, OSError(errno.EIO, "Input/output error"))

    async def run() -> tuple[list[Any], list[Any], Any]:
        await log.start()
        assert log._syncer is not None
        with monkeypatch.context() as patch:
            patch.setattr(log._syncer, "sync", failing_sync)
            first = asyncio.ensure_future(_append_many(log, 1, 5))
            await asyncio.sleep(0.05)
            on_top = asyncio.ensure_future(_append_many(log, 6, 5))
            failed = await asyncio.wait_for(first, 10)
            failed_on_top = await asyncio.wait_for(on_top, 10)
        recovered = await log.append("decision", decision(11))
        await log.close()
        return failed, failed_on_top, recovered

    failed, failed_on_top, recovered = asyncio.run(run())
    for result in failed + failed_on_top:
        assert isinstance(result, AuditUnavailable) and "Input/output error" in str(result)
    assert recovered.seq == 1  # nothing of the failed batches used up a seq
    assert [r["seq"] for r in records(tmp_path / "audit")] == [0, 1]
    assert verify_trail(tmp_path / "audit").intact


def test_the_wait_for_each_sync_is_reported_a_stalled_one_included(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)
    waits: list[float] = []
    log.on_sync(waits.append)

    async def run() -> None:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        assert len(await _append_many(log, 0, 5)) == 5  # one batch, handed to the helper
        os.kill(helper.pid, signal.SIGSTOP)  # the disk "stalls" for 0.4 s
        try:
            stalled = asyncio.ensure_future(_append_many(log, 5, 5))
            await asyncio.sleep(0.4)
        finally:
            os.kill(helper.pid, signal.SIGCONT)
        await asyncio.wait_for(stalled, 10)
        await log.close()

    asyncio.run(run())
    assert len(waits) == log.syncs == 2
    assert waits[0] < 0.4 <= waits[1] < 5


def test_a_failing_sync_listener_loses_no_record(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(signer=None)

    def broken(_seconds: float) -> None:
        raise RuntimeError("observer bug")

    log.on_sync(broken)

    async def run() -> list[Any]:
        await log.start()
        results = [*await asyncio.wait_for(_append_many(log, 0, 5), 10)]  # via the helper
        alone = await asyncio.wait_for(log.append("decision", decision(5)), 10)  # on the loop
        results.append(alone)
        await log.close()
        return results

    results = asyncio.run(run())
    assert [r.seq for r in results] == list(range(6))
    assert log.syncs == 2
    assert verify_trail(tmp_path / "audit").intact


def _fast_restarts(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.2) -> None:
    monkeypatch.setattr(log_module, "_STALL_WATCH_SECONDS", 0.05)
    monkeypatch.setattr(log_module, "HELPER_RESTART_SECONDS", seconds)


async def _new_helper(log: AuditLog, old_pid: int | None, timeout: float = 10) -> int:
    """The pid of the helper started after ``old_pid``'s, once one is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        helper = log._syncer
        if helper is not None and helper.alive and helper.pid != old_pid:
            assert helper.pid is not None
            return helper.pid
        await asyncio.sleep(0.02)
    raise AssertionError("no new sync helper was started")


async def _handed_over(log: AuditLog, pid: int, first: int) -> list[Any]:
    """Append a batch while helper ``pid`` is stopped: it is the helper's to sync."""
    os.kill(pid, signal.SIGSTOP)
    try:
        batch = asyncio.ensure_future(_append_many(log, first, 5))
        await asyncio.sleep(0.2)
        assert not batch.done() and log._in_flight is not None
    finally:
        os.kill(pid, signal.SIGCONT)
    return await asyncio.wait_for(batch, 10)


def test_a_helper_killed_while_idle_is_started_again_and_used(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_restarts(monkeypatch)
    log = open_log(signer=None)

    async def run() -> list[Any]:
        await log.start()
        first = log._syncer
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        assert not first.alive
        # Meanwhile the loop syncs: appends go on.
        results = await _append_many(log, 0, 5)
        pid = await _new_helper(log, first.pid)
        results += await _handed_over(log, pid, 5)
        await log.close()
        assert log._syncer is None
        return results

    results = asyncio.run(run())
    assert [r.seq for r in results] == list(range(10))
    assert [r["seq"] for r in records(tmp_path / "audit")] == list(range(10))
    assert verify_trail(tmp_path / "audit").intact


def test_a_stalled_helper_given_up_on_is_replaced_once_its_sync_ends(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SYNC_STALL_SECONDS", 0.3)
    _fast_restarts(monkeypatch)
    log = open_log(signer=None)

    async def run() -> list[Any]:
        await log.start()
        first = log._syncer
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGSTOP)  # stuck: killed after 0.3 s, its sync taken over
        results = await asyncio.wait_for(_append_many(log, 0, 4), 10)
        assert log._syncer is None
        pid = await _new_helper(log, first.pid)
        results += await _handed_over(log, pid, 4)
        await log.close()
        return results

    results = asyncio.run(run())
    assert [r.seq for r in results] == list(range(9))
    assert verify_trail(tmp_path / "audit").intact


def test_a_helper_that_keeps_dying_is_restarted_less_and_less_often(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_restarts(monkeypatch, seconds=0.15)
    log = open_log(signer=None)

    async def run() -> list[float]:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        pid = helper.pid
        started: list[float] = []
        for _ in range(4):
            os.kill(pid, signal.SIGKILL)  # dies before it synced anything
            lost = time.monotonic()
            pid = await _new_helper(log, pid)
            started.append(time.monotonic() - lost)
        # One that syncs a batch has lasted: the next loss waits the least again.
        await _handed_over(log, pid, 0)
        os.kill(pid, signal.SIGKILL)
        lost = time.monotonic()
        await _new_helper(log, pid)
        started.append(time.monotonic() - lost)
        await log.close()
        return started

    waits = asyncio.run(run())
    # At least 0.15, 0.3, 0.6, 1.2 s (the watch sees a loss up to 0.05 s late), then
    # after a helper that synced, 0.15 s again rather than 2.4.
    for wait, delay in zip(waits, [0.15, 0.3, 0.6, 1.2, 0.15], strict=True):
        assert wait >= delay, waits
    assert waits[4] < 1.2, waits
    assert verify_trail(tmp_path / "audit").intact
