"""Cutting segments into line-aligned chunks and processing them in parallel, in order.

``tollgate audit verify`` and ``export`` read every record; on a long trail the per-line
work (JSON decoding, hashing, formatting) dominates, so segments are cut at newlines
into chunks of a few MiB that worker processes handle while the caller consumes the
results strictly in trail order.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sidecar.audit.segments import Segment, last_line_end, list_segments, open_segment
from sidecar.cpus import usable_cpus

CHUNK_BYTES = 4 * 2**20
_SCAN_WINDOW = 65536
# Jobs in flight per worker process: enough to keep every worker busy.
_AHEAD_PER_WORKER = 3
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class SegmentPlan:
    """A segment, its chunk ranges, the end of its last complete line, and its size."""

    segment: Segment
    ranges: list[tuple[int, int]]
    clean_end: int
    size: int


def plan_trail(directory: Path, chunk_bytes: int | None = None) -> list[SegmentPlan]:
    """Every segment cut into chunks of about ``chunk_bytes`` (default CHUNK_BYTES)."""
    size = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    return [plan_segment(segment, size) for segment in list_segments(directory)]


def plan_segment(
    segment: Segment, chunk_bytes: int | None = None, end: int | None = None
) -> SegmentPlan:
    """Byte ranges of about ``chunk_bytes`` (default CHUNK_BYTES), cut after newlines.

    Bytes after the last newline (or after ``end``, a line's start, when given) are a
    torn tail and belong to no range.
    """
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    ranges: list[tuple[int, int]] = []
    with open_segment(segment.path) as handle:
        size = os.fstat(handle.fileno()).st_size
        clean_end = last_line_end(handle, size if end is None else min(end, size))
        start = 0
        while start < clean_end:
            target = start + chunk_bytes
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


def read_range(path: str, start: int, end: int) -> bytes:
    """The bytes ``path[start:end]`` (a range from ``plan_trail``)."""
    with open_segment(path) as handle:
        handle.seek(start)
        return handle.read(end - start)


def read_lines(path: str, start: int, end: int) -> list[bytes]:
    """The complete lines in ``path[start:end]`` (a range from ``plan_trail``)."""
    lines = read_range(path, start, end).split(b"\n")
    lines.pop()  # the range ends just after a newline
    return lines


def default_workers(plans: Sequence[SegmentPlan]) -> int:
    """Up to 4 processes, one per CPU this process can keep busy (its affinity, and its
    cgroup's CPU quota: under a container's limit of 500m, one), and only when there
    are several chunks to share."""
    total = sum(plan.clean_end for plan in plans)
    if total < 2 * CHUNK_BYTES:
        return 1
    return min(4, usable_cpus())


def in_flight(workers: int) -> int:
    """How many jobs ``ordered_map`` has started but not yet yielded, at most."""
    return _AHEAD_PER_WORKER * workers


def ordered_map(
    function: Callable[..., _Result],
    jobs: Sequence[tuple[Any, ...]],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Generator[_Result, None, None]:
    """``function(*job)`` for every job, yielded in job order.

    With ``workers`` > 1 the jobs run in forked worker processes (each first runs
    ``initializer(*initargs)``; fork passes the arguments without pickling them), at
    most ``in_flight(workers)`` ahead of the consumer, so memory stays bounded; the
    job ``in_flight(workers)`` places further on starts only after the consumer took
    a result. Close the iterator to stop early.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield function(*job)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        pending: deque[Future[_Result]] = deque()
        queue = iter(jobs)
        for job in queue:
            pending.append(pool.submit(function, *job))
            if len(pending) >= in_flight(workers):
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


class SharedSlots:
    """Slots of anonymous shared memory through which worker processes hand large
    results to the parent, instead of pickling them through a pipe (which costs
    several copies and a context switch per pipe buffer).

    Create it before the workers fork (pass it as an ``ordered_map`` initarg). Job
    ``n`` uses slot ``n % count``; with ``count`` above ``in_flight(workers)``, a slot
    is only reused after the parent consumed the result that was in it.
    """

    def __init__(self, count: int, size: int) -> None:
        self._count = count
        self._size = size
        self._memory = mmap.mmap(-1, count * size)  # MAP_SHARED: seen across fork

    def put(self, job: int, data: bytes | bytearray) -> bool:
        """In a worker: copy ``data`` into the job's slot; False if it does not fit."""
        if len(data) > self._size:
            return False
        offset = (job % self._count) * self._size
        self._memory[offset : offset + len(data)] = data
        return True

    def write_to(self, out: BinaryIO, job: int, length: int) -> None:
        """In the parent: write the first ``length`` bytes of the job's slot to ``out``."""
        offset = (job % self._count) * self._size
        with memoryview(self._memory) as view, view[offset : offset + length] as data:
            out.write(data)

    def close(self) -> None:
        self._memory.close()
