"""The gate writes only regular files of its own in the audit directory: a symbolic link
or a FIFO planted under a name it writes (a checkpoint's temporary file, a segment, the
``.broken`` file of a torn tail, the lock) is never written through and never waited on.

Found by the red-team review of 2026-12-07: ``.checkpoint.tmp`` as a link emptied its
target and wrote the checkpoint note into it; ``<segment>.broken`` as a link had the
torn bytes (chosen by whoever tore the line) appended to any file the gate could write,
an older segment say; a FIFO at either name blocked the event loop (checks and probes
unanswered, SIGTERM ignored) or the start.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditUnavailable
from tests.audit.conftest import decision, records

OpenLog = Callable[..., AuditLog]
VICTIM = b"a file the gate must never write\n"
RESCUE_AFTER_S = 10.0


def _fill(open_log: OpenLog, count: int) -> Path:
    log = open_log()
    for i in range(count):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return sorted((log.directory / "segments").glob("*.jsonl"))[-1]


def _fifo(path: Path) -> threading.Event:
    """A FIFO at ``path``, with a reader arriving after a while: a regression that opens
    it for writing blocks only until then, and fails the test instead of hanging it.
    The event returned is set when the reader comes: the code under test waited for it.
    """
    os.mkfifo(path)
    rescued = threading.Event()

    def rescue() -> None:
        time.sleep(RESCUE_AFTER_S)
        rescued.set()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return  # gone or replaced: nobody opened it
        with contextlib.suppress(OSError):
            while True:
                time.sleep(0.05)
                try:
                    if not os.read(fd, 65536):
                        break
                except BlockingIOError:
                    continue
        os.close(fd)

    threading.Thread(target=rescue, daemon=True).start()
    return rescued


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    return victim


@pytest.mark.parametrize("plant", ["symlink", "fifo", "dangling symlink"])
def test_a_file_planted_at_the_checkpoints_temporary_name_is_replaced_not_used(
    plant: str, open_log: OpenLog, tmp_path: Path
) -> None:
    victim = _victim(tmp_path)
    log = open_log(checkpoint_every=2)
    temporary = tmp_path / "audit" / ".checkpoint.tmp"
    rescued = threading.Event()
    if plant == "symlink":
        temporary.symlink_to(victim)
    elif plant == "fifo":
        rescued = _fifo(temporary)
    else:
        temporary.symlink_to(tmp_path / "nowhere")
    log.append_blocking("decision", decision(0))
    log.append_blocking("decision", decision(1))  # a checkpoint: DIR/checkpoint replaced
    assert log.checkpoint_file_error is None
    checkpoint = tmp_path / "audit" / "checkpoint"
    assert not checkpoint.is_symlink()
    newest = [r for r in records(tmp_path / "audit") if r["type"] == "checkpoint"][-1]
    assert checkpoint.read_text() == newest["note"]
    assert victim.read_bytes() == VICTIM
    assert not (tmp_path / "nowhere").exists()
    assert not rescued.is_set()
    log.close_blocking()
    assert verify_trail(tmp_path / "audit").intact


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_file_planted_at_the_broken_name_refuses_the_start_untouched(
    plant: str, open_log: OpenLog, tmp_path: Path
) -> None:
    victim = _victim(tmp_path)
    segment = _fill(open_log, 3)
    good = segment.read_bytes()
    torn = b"\x00\nplanted line\n"[:-1]  # a hole, then bytes of the planter's choice
    with open(segment, "ab") as handle:
        handle.write(torn)
    broken = segment.with_name(segment.name + ".broken")
    rescued = threading.Event()
    if plant == "symlink":
        broken.symlink_to(victim)
    else:
        rescued = _fifo(broken)
    with pytest.raises(AuditUnavailable, match="cannot repair the torn end"):
        open_log()
    # Nothing moved, nothing cut: the evidence is left as found.
    assert victim.read_bytes() == VICTIM
    assert segment.read_bytes() == good + torn
    assert not rescued.is_set()  # refused at once, not after waiting for a reader


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_file_planted_at_the_next_segments_name_is_not_written(
    plant: str, open_log: OpenLog, tmp_path: Path
) -> None:
    victim = _victim(tmp_path)
    log = open_log(segment_bytes=600, sync_helper=False)
    log.append_blocking("decision", decision(0))
    segments = tmp_path / "audit" / "segments"
    # The next segment starts at the next record's seq: plant at every name it may take.
    first = sorted(segments.glob("*.jsonl"))[0]
    rescues = []
    for seq in range(int(first.stem) + 1, int(first.stem) + 8):
        name = segments / f"{seq:020d}.jsonl"
        if plant == "symlink":
            name.symlink_to(victim)
        else:
            rescues.append(_fifo(name))
    with pytest.raises(AuditUnavailable):
        for i in range(1, 8):
            log.append_blocking("decision", decision(i))
    assert victim.read_bytes() == VICTIM
    assert not any(rescued.is_set() for rescued in rescues)
    log.close_blocking()


def test_a_lock_file_that_is_a_link_refuses_the_start(open_log: OpenLog, tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    _fill(open_log, 1)
    lock = tmp_path / "audit" / "lock"
    assert lock.exists() and not lock.is_symlink()
    lock.unlink()
    lock.symlink_to(victim)
    with pytest.raises(AuditUnavailable, match="cannot open audit directory"):
        open_log()
    assert victim.read_bytes() == VICTIM
