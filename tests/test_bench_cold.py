"""``bench.cold`` pauses the way each row says: a spin keeps the CPU, a sleep gives it
up, a synced append grows the file it syncs. Otherwise the table would compare pauses
other than the ones it names."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from bench import cold

PAUSE_US = 2_000


def _waits_and_wall(pause: cold.Pause) -> tuple[int, float]:
    """Voluntary context switches of this thread during ``pause``, and its wall time.

    A thread that gives its CPU up switches voluntarily; one preempted by a busy machine
    switches involuntarily, which is not counted, so the test holds under load too.
    """
    waits = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    started = time.perf_counter()
    pause()
    wall = time.perf_counter() - started
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - waits, wall


def test_spinning_keeps_the_cpu_for_the_whole_pause() -> None:
    waits, wall = _waits_and_wall(cold.spinning(PAUSE_US))
    assert wall >= PAUSE_US / 1e6
    assert waits == 0


def test_asleep_gives_the_cpu_up_for_the_whole_pause() -> None:
    waits, wall = _waits_and_wall(cold.asleep(PAUSE_US))
    assert wall >= PAUSE_US / 1e6
    assert waits >= 1


def test_a_synced_append_adds_one_record_sized_line(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "synced", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        pause = cold.synced_append(fd)
        pause()
        pause()
    finally:
        os.close(fd)
    assert (tmp_path / "synced").read_bytes() == cold.RECORD_LINE * 2


def test_the_section_has_a_row_per_pause_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # The run decides every body of the mix after every pause: a body the pipeline
    # refused would raise here.
    section = cold.run(calls=20, pause_us=50, audit_parent=str(tmp_path))
    names = [row[0] for row in section.rows]
    assert names == [cold.WARM, "spinning", "asleep", "append + fdatasync"]
    assert section.rows[0][3] == "1.00x"
    for _name, median, p90, _ratio in section.rows:
        assert 0 < float(median) <= float(p90)
    assert list(tmp_path.iterdir()) == []
