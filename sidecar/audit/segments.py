"""On-disk layout of the audit trail and reading it back (CONTRACT section 4).

``DIR/segments/<first seq, 20 digits>.jsonl`` holds the records, one per line;
``DIR/checkpoint`` the latest signed checkpoint. Readers stream each segment in large
blocks and hand out complete lines; bytes after the last newline of the last segment
are a torn tail (a write cut short by a crash), reported separately.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sidecar.errors import AuditCorrupt

SEGMENTS_DIR = "segments"
CHECKPOINT_FILE = "checkpoint"
LOCK_FILE = "lock"
SEGMENT_SUFFIX = ".jsonl"
BROKEN_SUFFIX = ".broken"
_SEGMENT_NAME = re.compile(r"(\d{20})\.jsonl")
_READ_BLOCK = 8 * 2**20
_TAIL_WINDOW = 65536


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
                segments.append(Segment(int(match.group(1)), Path(entry.path)))
    segments.sort(key=lambda segment: segment.first_seq)
    return segments


@dataclass(frozen=True)
class TornTail:
    """Bytes after the last newline of the last segment."""

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


def torn_tail(segment: Segment) -> TornTail | None:
    """The unterminated bytes at the end of ``segment``, or None if it ends cleanly."""
    with open(segment.path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = last_line_end(handle, size)
        if offset == size:
            return None
        handle.seek(offset)
        return TornTail(segment, offset, handle.read())


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
