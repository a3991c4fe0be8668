"""Fail closed: real disk faults make appends fail, nothing half-written stays, and the
log resumes by itself once the disk is writable again.

The file-system faults are real: a tmpfs that is full, and one remounted read-only
(needs root and mount; skipped otherwise). Faults that cannot be produced on demand
(EIO from fdatasync) are injected at the system call.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import leaf_hash
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditUnavailable
from tests.audit.conftest import decision, fill_volume, segment_lines

OpenLog = Callable[..., AuditLog]
Tmpfs = Callable[[str], Path]


def _segment_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in (directory / "segments").glob("*.jsonl"))


def _big(index: int) -> dict[str, object]:
    # Larger than a page, so it needs fresh blocks even if the last page has room.
    return decision(index, request={"action": "file.read", "path": "/app/" + "x" * 9000})


def test_full_disk_fails_the_append_then_resumes(open_log: OpenLog, tmpfs: Tmpfs) -> None:
    mount = tmpfs("256k")
    directory = mount / "audit"
    log = open_log(directory, checkpoint_every=1000)
    log.append_blocking("startup", {})
    log.append_blocking("decision", decision(1))
    before = _segment_bytes(directory)
    filler = fill_volume(mount)

    with pytest.raises(AuditUnavailable, match="No space left"):
        log.append_blocking("decision", _big(2))
    assert log.writable is False
    assert "No space left" in (log.last_error or "")
    assert log.status()["writable"] is False
    assert _segment_bytes(directory) == before  # the partial write was undone
    with pytest.raises(AuditUnavailable):
        log.append_blocking("decision", _big(3))  # still full: still failing

    filler.unlink()
    appended = log.append_blocking("decision", _big(4))
    assert appended.seq == 2  # the failed records took no seq
    assert log.writable is True and log.last_error is None
    log.close_blocking()
    report = verify_trail(directory)
    assert report.intact, report.summary()


def test_full_disk_fails_a_whole_group_commit_batch(open_log: OpenLog, tmpfs: Tmpfs) -> None:
    mount = tmpfs("512k")
    directory = mount / "audit"
    log = open_log(directory)

    async def run() -> None:
        await log.start()
        await log.append("startup", {})
        filler = fill_volume(mount)
        results = await asyncio.gather(
            *(log.append("decision", _big(i)) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, AuditUnavailable) for r in results), results
        assert not log.writable
        filler.unlink()
        resumed = await asyncio.gather(*(log.append("decision", decision(i)) for i in range(20)))
        assert sorted(r.seq for r in resumed) == list(range(1, 21))
        assert log.writable
        await log.close()

    asyncio.run(run())
    assert verify_trail(directory).intact


def _remount(mount: Path, mode: str) -> None:
    result = subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot remount {mode}: {result.stderr.decode().strip()}")


def test_read_only_directory_fails_the_append_then_resumes(open_log: OpenLog, tmpfs: Tmpfs) -> None:
    mount = tmpfs("4m")
    directory = mount / "audit"
    log = open_log(directory)
    log.append_blocking("startup", {})
    _remount(mount, "ro")
    try:
        with pytest.raises(AuditUnavailable, match="Read-only"):
            log.append_blocking("decision", decision(1))
        assert log.writable is False
        assert "Read-only" in (log.last_error or "")
    finally:
        _remount(mount, "rw")
    assert log.append_blocking("decision", decision(2)).seq == 1
    assert log.writable is True
    log.close_blocking()
    assert len(segment_lines(directory)) == 3  # startup, decision, final checkpoint
    assert verify_trail(directory).intact


def test_fsync_failure_is_undone(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    before = _segment_bytes(tmp_path / "audit")
    real_fdatasync = os.fdatasync
    failures = iter([True])

    def failing_fdatasync(fd: int) -> None:
        if next(failures, False):
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    with pytest.raises(AuditUnavailable, match="Input/output error"):
        log.append_blocking("decision", decision(1))
    assert not log.writable
    assert _segment_bytes(tmp_path / "audit") == before
    assert log.append_blocking("decision", decision(2)).seq == 1
    assert log.writable
    assert verify_trail(tmp_path / "audit").intact


def test_a_failed_undo_is_finished_before_the_next_write(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If even the truncation fails, the leftover bytes are cut before the next append."""
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    before = _segment_bytes(tmp_path / "audit")
    real_fdatasync, real_ftruncate = os.fdatasync, os.ftruncate
    state = {"fail": True}

    def failing_fdatasync(fd: int) -> None:
        if state["fail"]:
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)

    def failing_ftruncate(fd: int, length: int) -> None:
        if state["fail"]:
            raise OSError(errno.EIO, "Input/output error")
        real_ftruncate(fd, length)

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    monkeypatch.setattr(os, "ftruncate", failing_ftruncate)
    with pytest.raises(AuditUnavailable):
        log.append_blocking("decision", decision(1))
    assert _segment_bytes(tmp_path / "audit") > before  # the rejected record is still there
    state["fail"] = False
    assert log.append_blocking("decision", decision(2)).seq == 1
    lines = segment_lines(tmp_path / "audit")
    assert len(lines) == 2 and b"/app/data/2.csv" in lines[1]
    assert verify_trail(tmp_path / "audit").intact


def test_a_segment_changed_behind_the_writer_stops_it(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    segment = next((tmp_path / "audit" / "segments").glob("*.jsonl"))
    with open(segment, "ab") as handle:
        handle.write(b'{"forged":true}\n')
    found = segment.read_bytes()
    for attempt in range(2):
        with pytest.raises(AuditUnavailable, match="changed outside Tollgate"):
            log.append_blocking("decision", decision(attempt))
        assert not log.writable
        # Left exactly as found: the evidence is not cut away, nothing is added to it.
        assert segment.read_bytes() == found


def test_a_segment_shortened_behind_the_writer_is_not_padded_back(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    log.append_blocking("decision", decision(1))
    segment = next((tmp_path / "audit" / "segments").glob("*.jsonl"))
    kept = segment_lines(tmp_path / "audit")[0] + b"\n"
    segment.write_bytes(kept)  # the last record deleted
    with pytest.raises(AuditUnavailable, match="changed outside Tollgate"):
        log.append_blocking("decision", decision(2))
    assert segment.read_bytes() == kept


def test_a_segment_replaced_by_a_file_of_the_same_size_stops_the_writer(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    log.append_blocking("decision", decision(1))
    segment = next((tmp_path / "audit" / "segments").glob("*.jsonl"))
    original = segment.read_bytes()
    # The last record's decision id changed, the length kept: a forgery of the same size,
    # put in place the way editors and `sed -i` save a file (a new file renamed over it).
    forged = original.replace(b'"decision":"allow"', b'"decision":"deny!"')
    assert forged != original and len(forged) == len(original)
    moved_away = segment.with_suffix(".orig")
    os.rename(segment, moved_away)
    segment.write_bytes(forged)
    for attempt in range(2):
        with pytest.raises(AuditUnavailable, match="replaced outside Tollgate"):
            log.append_blocking("decision", decision(2 + attempt))
        assert not log.writable
        assert segment.read_bytes() == forged  # left exactly as found
    # The original file moved back (not a copy): the writer takes it again.
    os.rename(moved_away, segment)
    log.append_blocking("decision", decision(4))
    assert log.writable
    assert verify_trail(tmp_path / "audit").intact


def test_a_segment_replaced_before_the_gate_started_is_the_one_it_writes(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """A restart takes the segment found on disk (after checking the trail) as its own."""
    first = open_log(signer=None)
    first.append_blocking("startup", {})
    first.close_blocking()
    segment = next((tmp_path / "audit" / "segments").glob("*.jsonl"))
    copy = segment.read_bytes()
    segment.unlink()
    segment.write_bytes(copy)  # restored from a backup: a new inode, the same records
    second = open_log(signer=None)
    second.append_blocking("decision", decision(1))
    assert verify_trail(tmp_path / "audit").intact


def test_appends_after_a_failed_batch_are_written_on_the_durable_trail(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(signer=None)
    log.append_blocking("startup", {})
    real_fdatasync = os.fdatasync
    failures = iter([True])

    def slow_failing_fdatasync(fd: int) -> None:
        if next(failures, False):
            time.sleep(0.1)  # a slow failure: the loop waits on it
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)

    async def run() -> list[object]:
        await log.start()
        monkeypatch.setattr(os, "fdatasync", slow_failing_fdatasync)
        first = asyncio.ensure_future(log.append("decision", decision(0)))
        await asyncio.sleep(0.02)  # the first batch was written and failed
        rest = [log.append("decision", decision(i)) for i in range(1, 51)]
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        await log.close()
        return results

    first, *rest = asyncio.run(run())
    assert isinstance(first, AuditUnavailable)
    assert [r.seq for r in rest] == list(range(1, 51))  # type: ignore[attr-defined]
    lines = segment_lines(tmp_path / "audit")
    assert len(lines) == 51
    assert [leaf_hash(line).hex() for line in lines[1:]] == [r.hash for r in rest]  # type: ignore[attr-defined]
    assert verify_trail(tmp_path / "audit").intact
    assert log.writable
