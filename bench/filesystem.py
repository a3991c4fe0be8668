"""Which file system holds a directory, and whether an fdatasync there reaches a disk.

The judged rows measure ``/check`` with the durable audit trail. On tmpfs or ramfs (the
system temp dir of Fedora, Arch and Debian 13, or ``/dev/shm``) a sync costs nothing,
and the latency target would "hold" without a disk in the loop, so those rows refuse
to run there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# File systems held in memory: their fdatasync writes nothing to a disk.
IN_MEMORY = frozenset({"tmpfs", "ramfs"})
_ESCAPE = re.compile(r"\\([0-7]{3})")


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


def file_system_of(path: str | Path, mountinfo: Path = MOUNTINFO) -> FileSystem:
    """The mount that holds ``path`` (symbolic links resolved; the path need not exist
    yet): the longest mount point that is a prefix of it, the last mounted on a tie, as
    that one hides the others."""
    resolved = os.path.realpath(path)
    found: FileSystem | None = None
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as mounts:
        for line in mounts:
            # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            fields = line.split()
            separator = fields.index("-")
            mount_point = _unescape(fields[4])
            if _holds(mount_point, resolved) and (
                found is None or len(mount_point) >= len(found.mount_point)
            ):
                fs_type, source = fields[separator + 1], _unescape(fields[separator + 2])
                found = FileSystem(fs_type, source, mount_point)
    if found is None:
        raise NotDurable(f"no mount in {mountinfo} holds {resolved}")
    return found


def require_on_disk(path: str | Path) -> FileSystem:
    """The file system holding ``path``, or ``NotDurable`` if it is in memory or cannot
    be told (the judged rows then measure no disk, so they do not run)."""
    try:
        found = file_system_of(path)
    except (OSError, ValueError, IndexError) as exc:
        raise NotDurable(f"cannot tell which file system holds {path}: {exc}") from exc
    if found.in_memory:
        raise NotDurable(
            f"the audit trails would go to {path}, on {found.type}, which is held in memory "
            "(an fdatasync there reaches no disk): the judged rows measure the durable "
            "trail. Give a directory on a disk with --dir DIR."
        )
    return found
