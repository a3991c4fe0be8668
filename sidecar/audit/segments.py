"""On-disk layout of the audit trail and reading it back (CONTRACT section 4).

``DIR/segments/<first seq, 20 digits>.jsonl`` holds the records, one per line, and every
segment but the first has a ``.start`` file (where it takes over); ``DIR/checkpoint``
holds the latest signed checkpoint. Readers stream each segment in large
blocks and hand out complete lines; bytes after the last newline of the last segment
are a torn tail (a write cut short by a crash), reported separately, and so, at start,
is its end from the line holding its first NUL byte (``hole_start``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt

SEGMENTS_DIR = "segments"
CHECKPOINT_FILE = "checkpoint"
LOCK_FILE = "lock"
SEGMENT_SUFFIX = ".jsonl"
BROKEN_SUFFIX = ".broken"
START_SUFFIX = ".start"
# ASCII digits only: a regex \d (and int()) also take other scripts' digits, which would
# make a stray file a second segment of the same seq.
_SEGMENT_NAME = re.compile(r"([0-9]{20})\.jsonl")
_READ_BLOCK = 8 * 2**20
# A .start holds at most 64 hashes (one per bit of a seq): about 4.4 KiB.
_START_MAX_BYTES = 8192
_START_KEYS = frozenset({"frontier", "prev", "seq"})
_TAIL_WINDOW = 65536
HOLE_BEFORE_NEWEST = (
    "holds NUL bytes (disk blocks never written) in a segment before the newest, where "
    "a power loss cannot leave them: a disk fault, or the trail was changed"
)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


@dataclass(frozen=True)
class Segment:
    first_seq: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def list_segments(directory: Path) -> list[Segment]:
    """Segments of the trail in seq order; other files (``.broken``, temp) are ignored."""
    segments_dir = directory / SEGMENTS_DIR
    segments = []
    with os.scandir(segments_dir) as entries:
        for entry in entries:
            match = _SEGMENT_NAME.fullmatch(entry.name)
            if match is not None:
                # A gate writes regular files only: a FIFO would hang every reader, a
                # link could stand for anything (a dangling one, /dev/zero).
                if not entry.is_file(follow_symlinks=False):
                    raise corrupt(entry.name, None, "it is not a regular file")
                segments.append(Segment(int(match.group(1)), Path(entry.path)))
    segments.sort(key=lambda segment: segment.first_seq)
    return segments


@dataclass(frozen=True)
class TornTail:
    """The end of the newest segment that no check was answered on, cut off at start:
    the bytes after its last newline, or from the line holding its first NUL byte on."""

    segment: Segment
    offset: int
    data: bytes


def iter_line_blocks(path: Path) -> Iterator[list[bytes]]:
    """Yield the complete lines of ``path`` (without newlines) a large block at a time.

    The final unterminated fragment, if any, is not yielded; see ``torn_tail``.
    """
    pending = b""
    with open(path, "rb", buffering=0) as handle:
        while True:
            block = handle.read(_READ_BLOCK)
            if not block:
                return
            if pending:
                block = pending + block
            lines = block.split(b"\n")
            pending = lines.pop()
            if lines:
                yield lines


def iter_lines_holding(path: Path, needle: bytes, block_size: int = _READ_BLOCK) -> Iterator[bytes]:
    """Yield the complete lines of ``path`` (without newlines) that hold ``needle``.

    The lines are those ``iter_line_blocks`` yields, in the same order, less those
    without ``needle`` (which must not hold a newline). A block is searched for it as
    a whole (``bytes.find``) and cut into lines only around a hit: screening a long
    trail for rare records costs about a read of it, not a Python step per line.
    """
    if b"\n" in needle or not needle:
        raise ValueError("needle must be non-empty and hold no newline")
    pending = b""  # the start of a line that continues in the next block
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(block_size):
            complete = block.rfind(b"\n") + 1  # this block's complete lines end here
            if complete == 0:
                pending += block
                continue
            start = 0
            if pending:
                # The line across the boundary, joined alone: the block is not copied.
                start = block.index(b"\n") + 1
                line = pending + block[: start - 1]
                if needle in line:
                    yield line
            found = block.find(needle, start, complete)
            while found >= 0:
                # Its line starts after the newline before it (block[start - 1] is one).
                end = block.index(b"\n", found)
                yield block[block.rfind(b"\n", 0, found) + 1 : end]
                found = block.find(needle, end + 1, complete)
            pending = block[complete:]


def last_line_end(handle: BinaryIO, size: int) -> int:
    """Offset just after the last newline in the first ``size`` bytes of ``handle``."""
    end = size
    while end > 0:
        # Walk back block by block; a torn tail is normally short.
        start = max(0, end - _TAIL_WINDOW)
        handle.seek(start)
        block = handle.read(end - start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def torn_tail(segment: Segment, offset: int) -> TornTail | None:
    """The bytes of ``segment`` from ``offset`` on, or None if it ends there."""
    with open(segment.path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    return TornTail(segment, offset, data) if data else None


def hole_start(segment: Segment) -> int | None:
    """Where the line holding the first NUL byte of ``segment`` starts; None without one.

    A record never holds a raw NUL (canonical JSON writes U+0000 as ``\\u0000``): NUL
    bytes are file blocks that were never written, as a power loss leaves at the end of
    a file whose size had grown before its data reached the disk.
    """
    with open(segment.path, "rb", buffering=0) as handle:
        offset = 0
        while block := handle.read(_READ_BLOCK):
            nul = block.find(b"\0")
            if nul >= 0:
                return last_line_end(handle, offset + nul)
            offset += len(block)
    return None


@dataclass(frozen=True)
class SegmentStart:
    """Where a segment takes over: its first seq, the hash before it, the Merkle frontier.

    Written beside every segment but the first when it is created, so that older
    segments can be shipped off the volume and deleted (retention): the trail then
    resumes from the oldest segment that is left.
    """

    seq: int
    prev: bytes
    frontier: tuple[bytes, ...]
    # Read from a file that held exactly ``encode()``, as the writer writes it; see
    # ``check_start_form`` (a reader compares the values first: the graver fault).
    canonical: bool = field(default=True, compare=False)

    def encode(self) -> bytes:
        return canonical_bytes(
            {
                "frontier": [node.hex() for node in self.frontier],
                "prev": self.prev.hex(),
                "seq": self.seq,
            }
        )


def start_path(segment_path: Path) -> Path:
    return segment_path.with_suffix(START_SUFFIX)


def read_start(segment: Segment) -> SegmentStart:
    """The ``.start`` file of ``segment``; AuditCorrupt if it is missing or malformed."""
    start = load_start(segment)
    if start is None:
        name = start_path(segment.path).name
        raise corrupt(
            segment,
            None,
            f"records before seq {segment.first_seq} are missing and there is no {name}",
        )
    return start


def load_start(segment: Segment) -> SegmentStart | None:
    """The ``.start`` file of ``segment``, None if there is none; AuditCorrupt if it is
    not what the writer writes.

    That is a regular file holding canonical JSON with no newline after it, the keys
    ``frontier`` (hex hashes, one per set bit of ``seq``), ``prev`` (a hex hash) and
    ``seq`` (the segment's first seq), and nothing else (docs/audit.md, "On disk"). The
    form alone is left to ``check_start_form``, once the values have been compared.
    """
    path = start_path(segment.path)
    try:
        data = read_small_file(path, _START_MAX_BYTES)
    except NotASmallFile as exc:
        raise corrupt(segment, None, str(exc)) from exc
    except OSError as exc:
        raise corrupt(segment, None, f"{path.name} cannot be read ({exc.strerror or exc})") from exc
    if data is None:
        return None
    start = _parse_start(data, segment, path.name)
    if start.encode() != data:
        start = replace(start, canonical=False)
    if (
        start.seq != segment.first_seq
        or len(start.prev) != 32
        or any(len(node) != 32 for node in start.frontier)
        or len(start.frontier) != bin(start.seq).count("1")
    ):
        raise corrupt(segment, None, f"{path.name} does not describe seq {segment.first_seq}")
    return start


def check_start_form(segment: Segment, start: SegmentStart) -> None:
    """AuditCorrupt unless ``start`` was read as written: canonical JSON, no newline."""
    if not start.canonical:
        name = start_path(segment.path).name
        raise corrupt(
            segment,
            None,
            f"{name} is not in the form the gate writes (canonical JSON with no newline "
            "after it): changed after it was written",
        )


def _parse_start(data: bytes, segment: Segment, name: str) -> SegmentStart:
    try:
        fields = json.loads(data)
        if not isinstance(fields, dict) or set(fields) != _START_KEYS:
            raise ValueError(f"its keys must be {', '.join(sorted(_START_KEYS))}")
        seq, prev, frontier = fields["seq"], fields["prev"], fields["frontier"]
        if type(seq) is not int or seq < 0:
            raise ValueError("seq is not a non-negative integer")
        if not isinstance(prev, str) or not isinstance(frontier, list):
            raise ValueError("prev must be a string and frontier a list")
        if not all(isinstance(node, str) for node in frontier):
            raise ValueError("frontier must hold strings")
        return SegmentStart(
            seq, bytes.fromhex(prev), tuple(bytes.fromhex(node) for node in frontier)
        )
    except (ValueError, RecursionError) as exc:
        raise corrupt(segment, None, f"{name} is malformed ({exc})") from exc


# The gate writes only files it creates or opens itself: never through a symbolic link,
# and never opening a FIFO or device (which would block the event loop) that someone
# planted under a name it writes. A non-blocking open of a FIFO for writing with no
# reader fails (ENXIO), and every file it opens is checked to be regular.
WRITE_FLAGS = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def open_regular_for_writing(path: Path, flags: int, mode: int = 0o640) -> int:
    """``os.open(path, WRITE_FLAGS | flags)``, refused unless it opened a regular file.

    Raises ``OSError`` (ELOOP for a symbolic link, ENXIO for a FIFO, EINVAL otherwise).
    """
    return opened_regular_for_writing(path, flags, mode)[0]


def opened_regular_for_writing(
    path: Path, flags: int, mode: int = 0o640
) -> tuple[int, os.stat_result]:
    """``open_regular_for_writing``, and the file's stat (one ``fstat`` for both)."""
    fd = os.open(path, WRITE_FLAGS | flags, mode)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{path.name} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (temp file, fsync, rename, fsync dir)."""
    temporary = path.with_name(f".{path.name}.tmp")
    # Created afresh (whatever is left under the name is removed, not opened): a link or
    # a FIFO planted there is never written through or waited on.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = open_regular_for_writing(temporary, os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(path.parent)


class NotASmallFile(ValueError):
    """A file of the audit directory that is no regular file, or too large to be one the
    gate wrote there."""


def read_small_file(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``, or None when there is none. Raises ``NotASmallFile`` when it
    is not a regular file or holds more than ``limit`` bytes, and ``OSError`` when it
    cannot be read: anyone who can write the volume could put a FIFO there (it would hang
    the reader) or a link to /dev/zero (it would fill memory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotASmallFile(f"{path.name} is not a regular file")
        data = b""
        while len(data) <= limit and (block := os.read(fd, limit + 1)):
            data += block
    finally:
        os.close(fd)
    if len(data) > limit:
        raise NotASmallFile(f"{path.name} is malformed (over {limit} bytes)")
    return data


# DIR/checkpoint holds one signed note: a few hundred bytes (64 signatures at most).
CHECKPOINT_MAX_BYTES = 64 * 1024


def open_segment(path: Path | str) -> BinaryIO:
    """A segment opened for reading, which must be a regular file (see ``list_segments``:
    it could have been replaced since it was listed)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise corrupt(Path(path).name, None, "it is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def corrupt(segment: Segment | str, line: int | None, message: str) -> AuditCorrupt:
    """An AuditCorrupt naming the segment and line, as operators need to find it."""
    name = segment.name if isinstance(segment, Segment) else segment
    where = f"{SEGMENTS_DIR}/{name}" + (f" line {line}" if line is not None else "")
    return AuditCorrupt(f"audit trail corrupt at {where}: {message}")


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
