"""Which file system holds a directory, and whether an fdatasync there reaches a disk.

The judged rows measure ``/check`` with the durable audit trail. On tmpfs or ramfs (the
system temp dir of Fedora, Arch and Debian 13, or ``/dev/shm``) a sync costs nothing,
and the latency target would "hold" without a disk in the loop, so those rows refuse
to run there. A file system's name does not always tell (an overlay whose upper
directory is on tmpfs), so the sync itself is timed there too, and one no disk could
answer that fast is refused as well.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# File systems held in memory: their fdatasync writes nothing to a disk.
IN_MEMORY = frozenset({"tmpfs", "ramfs"})
_ESCAPE = re.compile(r"\\([0-7]{3})")
# An append + fdatasync that reaches a device takes tens of µs even on an NVMe drive
# whose cache survives power loss (the journal commit and the device's flush are
# round trips), about 90 - 200 µs on the benchmark's VMs; in memory about 1 µs.
# 5 µs lies far from both, with room for a busy machine's stray slow sample.
SYNC_FLOOR_US = 5.0
PROBE_SYNCS = 9


class NotDurable(RuntimeError):
    """The audit trails' directory is not on a disk, or its file system is unknown."""


@dataclass(frozen=True)
class FileSystem:
    type: str  # as the kernel names it: ext4, xfs, tmpfs ...
    source: str  # the device or the pseudo-source (/dev/vda, tmpfs)
    mount_point: str

    def __str__(self) -> str:
        return f"{self.type} ({self.source})"

    @property
    def in_memory(self) -> bool:
        return self.type in IN_MEMORY


def _unescape(field: str) -> str:
    # mountinfo writes a space, tab, newline or backslash in a path as three octal digits.
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _holds(mount_point: str, path: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def nearest_existing(path: str | Path) -> str:
    """``path`` with symbolic links resolved, or its closest ancestor that exists (the
    trails' directory need not exist yet): where its file system can be asked."""
    existing = os.path.realpath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


def file_system_of(
    path: str | Path, mountinfo: Path = MOUNTINFO, device: int | None = None
) -> FileSystem:
    """The mount that holds ``path`` (symbolic links resolved; the path need not exist
    yet): of the mounts on the path's device (``device``, by default its nearest existing
    ancestor's ``st_dev``), the longest mount point that is a prefix of the path, the
    last mounted on a tie, as that one hides the others."""
    resolved = os.path.realpath(path)
    if device is None:
        device = os.stat(nearest_existing(resolved)).st_dev
    wanted = f"{os.major(device)}:{os.minor(device)}"
    holding: list[tuple[FileSystem, bool]] = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as mounts:
        for line in mounts:
            # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            fields = line.split()
            separator = fields.index("-")
            mount_point = _unescape(fields[4])
            if _holds(mount_point, resolved):
                fs_type, source = fields[separator + 1], _unescape(fields[separator + 2])
                holding.append((FileSystem(fs_type, source, mount_point), fields[2] == wanted))
    # By device, a mount hidden under a later one (or listed at the path but not what it
    # reaches) is not taken for it. A btrfs subvolume's files report a device number of
    # their own, which no mount shows: there the mount points alone decide.
    on_device = [found for found, same_device in holding if same_device]
    candidates = on_device or [found for found, _ in holding]
    if not candidates:
        raise NotDurable(f"no mount in {mountinfo} holds {resolved}")
    longest = max(len(found.mount_point) for found in candidates)
    return [found for found in candidates if len(found.mount_point) == longest][-1]


def sync_latency_us(directory: str | Path, count: int = PROBE_SYNCS) -> float:
    """Median time of one record-sized append + fdatasync in ``directory``, as the gate
    writes a batch (the least a check costs on that disk)."""
    fd, probe = tempfile.mkstemp(prefix=".tollgate-sync-probe-", dir=directory)
    samples: list[float] = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * 600 + b"\n")
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(probe)
    return statistics.median(samples) * 1e6


def require_on_disk(path: str | Path, mountinfo: Path = MOUNTINFO) -> FileSystem:
    """The file system holding ``path``, or ``NotDurable`` if it is in memory, answers
    an fdatasync faster than a disk can, or cannot be told (the judged rows then measure
    no disk, so they do not run)."""
    try:
        found = file_system_of(path, mountinfo)
    except (OSError, ValueError, IndexError) as exc:
        raise NotDurable(f"cannot tell which file system holds {path}: {exc}") from exc
    if found.in_memory:
        raise NotDurable(
            f"the audit trails would go to {path}, on {found.type}, which is held in memory "
            "(an fdatasync there reaches no disk): the gate is measured with its durable "
            "trail. Give a directory on a disk with --dir DIR."
        )
    try:
        took_us = sync_latency_us(nearest_existing(path))
    except OSError as exc:
        raise NotDurable(f"cannot time an fdatasync where {path} is: {exc}") from exc
    if took_us < SYNC_FLOOR_US:
        raise NotDurable(
            f"the audit trails would go to {path}, on {found}, where an append + fdatasync "
            f"took {took_us:.1f} µs, which no disk does (under {SYNC_FLOOR_US:g} µs: it is "
            "held in memory, an overlay over tmpfs say, or the sync is skipped): the gate is "
            "measured with its durable trail. Give a directory on a disk with --dir DIR."
        )
    return found
