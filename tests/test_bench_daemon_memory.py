"""``bench.daemon_memory`` samples the real daemon as its own check counter passes each
mark, and reads the RSS of the daemon and of its sync helper, not of the benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.daemon_memory import measure


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
    assert result.daemon_peak_mib >= max(result.daemon_mib)
    assert list(tmp_path.iterdir()) == []  # the daemon's trail was removed
