"""``bench.daemon_memory`` samples the real daemon as its own check counter passes each
mark, and reads the RSS of the daemon and of its sync helper, not of the benchmark."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.__main__ import container_target
from bench.daemon_memory import measure, private_kib


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


def test_the_container_is_judged_with_the_helpers_private_memory() -> None:
    """The daemon alone holds its 80 MiB, but the container holds the helper as well."""
    marks = [100_000, 200_000, 1_000_000]
    daemon, helper_private = [70.0, 74.0, 76.0], [5.6, 5.7, 5.8]

    target = container_target(marks, daemon, helper_private)

    assert not target.holds
    assert target.name.startswith("the sidecar container after 1,000,000 checks")
    assert target.measured == "81.8 MiB (76.0 + 5.8)"
    assert container_target(marks, [70.0, 70.0, 70.0], helper_private).holds
