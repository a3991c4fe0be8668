"""The trail's readers size their worker pools by the CPUs the process can keep busy:
its affinity, and its cgroup's CPU quota (a container's CPU limit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpu_limit import CpuLimit
from sidecar.cpus import _usable_cpus, cpu_quota_from

REPO = Path(__file__).resolve().parent.parent


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_v2_the_tightest_quota_along_the_path_counts(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _write(mount, {"cpu.max": "max 100000\n"})
    _write(mount / "kubepods" / "pod1", {"cpu.max": "50000 100000\n"})  # the pod's limit
    _write(mount / "kubepods" / "pod1" / "ctr", {"cpu.max": "max 100000\n"})
    mountinfo = f"30 23 0:26 / {mount} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"

    quota = cpu_quota_from("0::/kubepods/pod1/ctr\n", mountinfo)

    assert quota == 0.5


def test_v1_cpu_controller_mounted_with_cpuacct(tmp_path: Path) -> None:
    mount = tmp_path / "cpu,cpuacct"
    _write(mount, {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"})
    _write(mount / "agent", {"cpu.cfs_quota_us": "150000\n", "cpu.cfs_period_us": "100000\n"})
    _write(mount / "agent" / "gate", {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"})
    mountinfo = (
        f"25 23 0:22 / {tmp_path / 'cpuset'} rw - cgroup cgroup rw,cpuset\n"
        f"26 23 0:23 / {mount} rw - cgroup cgroup rw,cpu,cpuacct\n"
        f"27 23 0:24 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
    )
    proc_cgroup = "3:cpuset:/\n2:cpu,cpuacct:/agent/gate\n0::/\n"

    assert cpu_quota_from(proc_cgroup, mountinfo) == 1.5


def test_a_container_sees_only_its_own_cgroup_mounted(tmp_path: Path) -> None:
    # Without a cgroup namespace, v1 bind-mounts the container's group at the mount
    # point: its path in /proc/self/cgroup is the mount's root, with a space escaped.
    mount = tmp_path / "cpu dir"
    _write(mount, {"cpu.cfs_quota_us": "25000\n", "cpu.cfs_period_us": "100000\n"})
    escaped = str(mount).replace(" ", "\\040")
    mountinfo = f"40 31 0:29 /kubepods/pod2/abc {escaped} ro - cgroup cgroup rw,cpu\n"

    assert cpu_quota_from("5:cpu:/kubepods/pod2/abc\n", mountinfo) == 0.25


def test_no_quota_or_nothing_readable_is_no_limit(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _write(mount, {"cpu.max": "max 100000\n"})
    mountinfo = f"30 23 0:26 / {mount} rw - cgroup2 cgroup2 rw\n"

    assert cpu_quota_from("0::/\n", mountinfo) is None
    assert cpu_quota_from("0::/gone\n", mountinfo) is None  # no such group
    assert cpu_quota_from("0::/\n", "") is None  # no cgroup file system mounted
    assert cpu_quota_from("garbage\n", mountinfo) is None


@pytest.mark.parametrize(
    ("affinity", "quota", "usable"),
    [(4, None, 4), (4, 0.5, 1), (4, 2.5, 2), (2, 8.0, 2), (1, None, 1), (16, 0.1, 1)],
)
def test_usable_cpus_is_the_affinity_capped_by_whole_cpus_of_quota(
    affinity: int, quota: float | None, usable: int
) -> None:
    assert _usable_cpus(affinity, quota) == usable


def test_in_a_real_cgroup_with_a_half_cpu_limit_the_rebuild_runs_in_one_process() -> None:
    limit = CpuLimit.create(500)
    if not isinstance(limit, CpuLimit):
        pytest.skip(limit)
    probe = (
        "from types import SimpleNamespace\n"
        "from sidecar.audit.chunks import CHUNK_BYTES, default_workers\n"
        "from sidecar.cpus import cgroup_cpu_quota\n"
        "plans = [SimpleNamespace(clean_end=64 * CHUNK_BYTES)]\n"
        "print(cgroup_cpu_quota(), default_workers(plans))\n"
    )
    try:
        limited = subprocess.run(
            [sys.executable, "-c", probe],
            preexec_fn=limit.join,
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        free = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
        )
    finally:
        limit.remove()

    assert limited.stdout.split() == ["0.5", "1"]
    quota, workers = free.stdout.split()
    if quota == "None":  # this machine's own group has no quota: every CPU counts
        assert int(workers) == min(4, len(os.sched_getaffinity(0)))
