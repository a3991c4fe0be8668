"""How many CPUs this process can keep busy: its CPU affinity and its cgroup's CPU quota.

A container's ``resources.limits.cpu`` is a CFS quota on its cgroup (cgroup v2
``cpu.max``, v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``): with 500m its processes
together get half a CPU's time, however many CPUs the node has and the affinity shows.
Worker processes then share that half and only add their own overhead, so the trail's
readers (start-up rebuild, ``verify``, ``export``) size their pools by this count, as Go's
runtime and the JVM size theirs by the container's limit.

The quota is read along the process's cgroup path (``/proc/self/cgroup``) from the
mount of its hierarchy (``/proc/self/mountinfo``) up to that mount's root, and the
tightest one counts: a pod-level limit binds its containers too. What cannot be read
(no cgroup file system, another layout) counts as no quota.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")


def usable_cpus() -> int:
    """CPUs in the affinity mask, fewer when the cgroup quota allows less (at least 1).

    A quota of 2.5 CPUs' time counts as 2: a share of a CPU does not pay for a worker.
    """
    return _usable_cpus(len(os.sched_getaffinity(0)), cgroup_cpu_quota())


def _usable_cpus(affinity: int, quota: float | None) -> int:
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.floor(quota)))


@functools.cache
def cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the process's cgroup quota allows, None without a quota."""
    try:
        return cpu_quota_from(PROC_CGROUP.read_text(), MOUNTINFO.read_text())
    except OSError:
        return None


def cpu_quota_from(proc_cgroup: str, mountinfo: str) -> float | None:
    """The tightest CPU quota along the cgroup path that ``proc_cgroup`` (the text of
    ``/proc/<pid>/cgroup``) names, read under the mounts ``mountinfo`` lists."""
    for version, path in _cpu_cgroup_paths(proc_cgroup):
        for mount_root, mount_point in _cgroup_mounts(mountinfo, version):
            if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
                continue
            inside = Path(path).relative_to(mount_root)
            return _tightest(Path(mount_point), inside, version)
    return None


def _cpu_cgroup_paths(proc_cgroup: str) -> list[tuple[int, str]]:
    """(cgroup version, path) of the hierarchies holding the cpu controller: v1 first,
    since on a hybrid host the cpu controller is a v1 one and v2 has none."""
    found = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            found.append((2, path))
        elif "cpu" in controllers.split(","):
            found.insert(0, (1, path))
    return found


def _cgroup_mounts(mountinfo: str, version: int) -> list[tuple[str, str]]:
    """(root within the hierarchy, mount point) of each mount of that hierarchy."""
    mounts = []
    for line in mountinfo.splitlines():
        fields, _, after = line.partition(" - ")
        parts, described = fields.split(), after.split()
        if len(parts) < 5 or len(described) < 3:
            continue
        root, mount_point = _unescape(parts[3]), _unescape(parts[4])
        fs_type, super_options = described[0], described[2].split(",")
        if (version == 2 and fs_type == "cgroup2") or (
            version == 1 and fs_type == "cgroup" and "cpu" in super_options
        ):
            mounts.append((root, mount_point))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline and backslash in a path as octal escapes."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def _tightest(mount_point: Path, inside: Path, version: int) -> float | None:
    """The smallest quota from the process's cgroup up to the mount's root."""
    tightest: float | None = None
    directory = mount_point / inside
    while True:
        quota = _read_quota(directory, version)
        if quota is not None and (tightest is None or quota < tightest):
            tightest = quota
        if directory == mount_point:
            return tightest
        directory = directory.parent


def _read_quota(directory: Path, version: int) -> float | None:
    try:
        if version == 2:
            quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period)
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        if quota_us <= 0:  # -1: no quota
            return None
        return quota_us / int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None
