"""``bench.daemon_memory`` samples the real daemon as its own check counter passes each
mark, and reads the RSS of the daemon and of its sync helper, not of the benchmark."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import daemon_memory
from bench.__main__ import add_daemon_results, container_target
from bench.daemon_memory import DaemonMemory, PrivateUnread, measure, private_kib
from bench.filesystem import FileSystem
from bench.results import Section, render


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_samples_follow_the_daemons_own_check_count(tmp_path: Path) -> None:
    result = measure(3_000, 1_000, audit_parent=str(tmp_path))

    assert len(result.marks) == 3
    for mark, answered in zip((1_000, 2_000, 3_000), result.marks, strict=True):
        assert answered >= mark
    assert result.marks == sorted(result.marks)
    # A daemon with a 1,000-rule policy holds tens of MiB; its helper is a small process
    # of its own.
    assert all(20 < mib < 200 for mib in result.daemon_mib)
    assert all(0 < mib < result.daemon_mib[0] for mib in result.helper_mib)
    # Its private memory is part of its RSS: the rest it shares with the daemon.
    for private, rss in zip(result.helper_private_mib, result.helper_mib, strict=True):
        assert 0 < private < rss
    assert result.daemon_peak_mib >= max(result.daemon_mib)
    assert list(tmp_path.iterdir()) == []  # the daemon's trail was removed


def test_private_memory_is_read_from_smaps_rollup() -> None:
    with open("/proc/self/status") as status:
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    assert 0 < private_kib(os.getpid()) <= rss_kib


def _fake_proc(tmp_path: Path, pid: int, files: dict[str, str]) -> Path:
    (tmp_path / str(pid)).mkdir()
    for name, text in files.items():
        (tmp_path / str(pid) / name).write_text(text)
    return tmp_path


ROLLUP = "Rss: 9000 kB\nPrivate_Clean: 100 kB\nPrivate_Dirty: 20 kB\nSwap: 0 kB\n"
# Two mappings, as a kernel before 4.14 lists them, with no smaps_rollup beside.
SMAPS = (
    "00400000-00452000 r-xp 00000000 fd:00 12 /usr/bin/python3\n"
    "Rss: 300 kB\nShared_Clean: 200 kB\nPrivate_Clean: 64 kB\nPrivate_Dirty: 0 kB\n"
    "7f0000000000-7f0000100000 rw-p 00000000 00:00 0\n"
    "Rss: 1024 kB\nPrivate_Clean: 0 kB\nPrivate_Dirty: 1000 kB\n"
)


def test_private_memory_prefers_smaps_rollup(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 41, {"smaps_rollup": ROLLUP, "smaps": SMAPS})
    assert private_kib(41, proc) == 120


def test_private_memory_is_summed_over_smaps_without_a_rollup(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 42, {"smaps": SMAPS})
    assert private_kib(42, proc) == 64 + 1000


def test_private_memory_unreadable_says_which_files(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 43, {})
    with pytest.raises(PrivateUnread, match=r"neither .*/43/smaps_rollup .* nor .*/43/smaps "):
        private_kib(43, proc)


def test_without_the_helpers_private_memory_the_container_is_not_measured() -> None:
    """The rest of the memory section stands; the container row says why it is empty."""
    served = DaemonMemory(
        marks=[100_000, 200_000],
        daemon_mib=[70.0, 71.0],
        helper_mib=[12.0, 12.5],
        helper_private_mib=None,
        daemon_peak_mib=72.0,
        seconds=9.0,
        private_unread="neither /proc/9/smaps_rollup (No such file or directory) nor ...",
    )
    section = Section("Memory", ("checks", "100k", "200k"))

    add_daemon_results(section, [100_000, 200_000], served, FileSystem("ext4", "/dev/vda", "/"))

    rows = {row[0]: row[1:] for row in section.rows}
    assert rows["the daemon over HTTP, RSS MiB"] == ("70.0", "71.0")
    container = rows["the sidecar container: the daemon's RSS + the helper's private, MiB"]
    assert container == ("not measured", "not measured")
    assert not any(t.name.startswith("the sidecar container") for t in section.targets)
    assert [t.holds for t in section.targets] == [True, True]  # the daemon's two
    assert "not judged in this run: neither /proc/9/smaps_rollup" in render([section])


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_a_run_where_proc_has_no_private_memory_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a kernel without smaps_rollup whose smaps cannot be read either.
    monkeypatch.setattr(daemon_memory, "PROC", tmp_path / "proc")
    result = measure(2_000, 1_000, audit_parent=str(tmp_path))

    assert len(result.marks) == 2 and all(20 < mib < 200 for mib in result.daemon_mib)
    assert result.helper_private_mib is None
    assert "smaps_rollup" in result.private_unread


def test_the_container_is_judged_with_the_helpers_private_memory() -> None:
    """The daemon alone holds its 80 MiB, but the container holds the helper as well."""
    marks = [100_000, 200_000, 1_000_000]
    daemon, helper_private = [70.0, 74.0, 76.0], [5.6, 5.7, 5.8]

    target = container_target(marks, daemon, helper_private)

    assert not target.holds
    assert target.name.startswith("the sidecar container after 1,000,000 checks")
    assert target.measured == "81.8 MiB (76.0 + 5.8)"
    assert container_target(marks, [70.0, 70.0, 70.0], helper_private).holds
