"""Cutting segments into line-aligned chunks and processing them in parallel, in order.

``tollgate audit verify`` and ``export`` read every record; on a long trail the per-line
work (JSON decoding, hashing, formatting) dominates, so segments are cut at newlines
into chunks of a few MiB that worker processes handle while the caller consumes the
results strictly in trail order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sidecar.audit.segments import Segment, last_line_end, list_segments

CHUNK_BYTES = 4 * 2**20
_SCAN_WINDOW = 65536
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class SegmentPlan:
    """A segment, its chunk ranges, the end of its last complete line, and its size."""

    segment: Segment
    ranges: list[tuple[int, int]]
    clean_end: int
    size: int


def plan_trail(directory: Path) -> list[SegmentPlan]:
    return [_plan_segment(segment) for segment in list_segments(directory)]


def _plan_segment(segment: Segment) -> SegmentPlan:
    """Byte ranges of about CHUNK_BYTES, cut after newlines.

    Bytes after the last newline are a torn tail and belong to no range.
    """
    size = segment.path.stat().st_size
    ranges: list[tuple[int, int]] = []
    with open(segment.path, "rb") as handle:
        clean_end = last_line_end(handle, size)
        start = 0
        while start < clean_end:
            target = start + CHUNK_BYTES
            end = clean_end if target >= clean_end else _next_line_end(handle, target, clean_end)
            ranges.append((start, end))
            start = end
    return SegmentPlan(segment, ranges, clean_end, size)


def _next_line_end(handle: BinaryIO, offset: int, limit: int) -> int:
    handle.seek(offset - 1)
    position = offset - 1
    while position < limit:
        block = handle.read(_SCAN_WINDOW)
        newline = block.find(b"\n")
        if newline >= 0:
            return min(limit, position + newline + 1)
        position += len(block)
    return limit


def read_lines(path: str, start: int, end: int) -> list[bytes]:
    """The complete lines in ``path[start:end]`` (a range from ``plan_trail``)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    lines = data.split(b"\n")
    lines.pop()  # the range ends just after a newline
    return lines


def default_workers(plans: Sequence[SegmentPlan]) -> int:
    """Up to 4 processes, one per CPU, and only when there are several chunks to share."""
    total = sum(plan.clean_end for plan in plans)
    if total < 2 * CHUNK_BYTES:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


def ordered_map(
    function: Callable[..., _Result], jobs: Sequence[tuple[Any, ...]], workers: int
) -> Iterator[_Result]:
    """``function(*job)`` for every job, yielded in job order.

    With ``workers`` > 1 the jobs run in forked worker processes, a few ahead of the
    consumer so memory stays bounded. Close the iterator to stop early.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield function(*job)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[_Result]] = deque()
        queue = iter(jobs)
        for job in queue:
            pending.append(pool.submit(function, *job))
            if len(pending) >= 3 * workers:
                break
        try:
            while pending:
                result = pending.popleft().result()
                for job in queue:
                    pending.append(pool.submit(function, *job))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()
