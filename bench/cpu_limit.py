"""Run a benchmark's server under a CPU limit, as Kubernetes runs a container.

A container's ``resources.limits.cpu`` becomes a CFS quota on its cgroup: with 500m, the
container's processes together get 50 ms of CPU in every 100 ms period, however many
CPUs are idle. ``CpuLimit.create`` makes a cgroup with such a quota (cgroup v2
``cpu.max``, or v1 ``cpu.cfs_quota_us``); a process joins it before it runs the server
(``join``, as a ``preexec_fn``), so its children join too. That needs root and a
writable cgroup file system with the cpu controller; where there is none, ``create``
says why and the benchmark reports the row as not measured.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CpuLimit:
    """A cgroup whose processes share ``millicores`` thousandths of one CPU."""

    def __init__(self, directory: Path, procs_file: str, millicores: int) -> None:
        self.directory = directory
        self.millicores = millicores
        self._procs = str(directory / procs_file)

    @classmethod
    def create(cls, millicores: int, root: Path = CGROUP_ROOT) -> CpuLimit | str:
        """The cgroup, or why none could be made."""
        name = f"tollgate-bench-{os.getpid()}"
        quota = PERIOD_US * millicores // 1000
        try:
            if (root / "cgroup.controllers").exists():  # cgroup v2, unified
                if "cpu" not in (root / "cgroup.controllers").read_text().split():
                    return "the cgroup v2 hierarchy has no cpu controller"
                if "cpu" not in (root / "cgroup.subtree_control").read_text().split():
                    # Enables the controller for the root's children; it stays enabled,
                    # as systemd hosts have it anyway.
                    (root / "cgroup.subtree_control").write_text("+cpu")
                directory = root / name
                directory.mkdir()
                (directory / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                return cls(directory, "cgroup.procs", millicores)
            v1 = root / "cpu"
            if not (v1 / "cpu.cfs_quota_us").exists():
                return f"no cgroup cpu controller under {root}"
            directory = v1 / name
            directory.mkdir()
            (directory / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (directory / "cpu.cfs_quota_us").write_text(str(quota))
            return cls(directory, "tasks", millicores)
        except OSError as exc:
            return f"cannot make a cgroup with a CPU quota ({exc.strerror or exc})"

    def join(self) -> None:
        """Move the calling process into the cgroup (its children follow)."""
        with open(self._procs, "w") as procs:
            procs.write(str(os.getpid()))

    def remove(self) -> None:
        """Delete the cgroup; its processes must have ended."""
        # A process still in it keeps it; an empty group left behind is harmless.
        with contextlib.suppress(OSError):
            self.directory.rmdir()
