"""Rebuild the writer's state from the trail at startup (CONTRACT section 4).

Reads every segment once and recomputes the record count, the hash of the last record
and the Merkle frontier. It checks what a crash or a damaged disk could break -- every
line is a JSON object, carries the ``prev`` that is the hash of the line before, holds
no NUL byte, segments are named by the seq they continue from -- without parsing every
line. Only the last record is parsed in full. The newest segment's end after its last
newline, or from the line holding its first NUL byte (a power loss), is a torn tail.
Proving that nobody rewrote the trail on purpose is the job of ``tollgate audit
verify``, which parses and checks everything.

Segments are cut into line-aligned chunks (``sidecar.audit.chunks``); on a long trail
worker processes hash the lines and check the links inside their chunks, and this
process checks the link across each chunk boundary and grows the Merkle frontier,
taking the chunks strictly in trail order. With a stored checkpoint the gate's own key
signed, the frontier is grown only from the segment its tree size falls in, from the
frontier that segment's ``.start`` holds; the checkpoint's root (RFC 6962, recomputed
at its size and compared by ``AuditLog.open``) vouches for that frontier. A checkpoint
the gate cannot authenticate vouches for nothing: the frontier is grown from the
oldest segment kept.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from sidecar.audit.chunks import (
    SegmentPlan,
    default_workers,
    ordered_map,
    plan_segment,
    plan_trail,
    read_range,
)
from sidecar.audit.merkle import Frontier
from sidecar.audit.records import RECORD_TYPES, TS_PATTERN, ZERO_HASH
from sidecar.audit.segments import (
    HOLE_BEFORE_NEWEST,
    Segment,
    SegmentStart,
    TornTail,
    corrupt,
    hole_start,
    read_start,
    segment_name,
    start_path,
    torn_tail,
)
from sidecar.audit.verify_chunks import canonical_record
from sidecar.errors import AuditCorrupt

_HASH_SIZE = 32
_NOT_AN_OBJECT = "not a JSON object"
_BROKEN_LINK = "prev is not the hash of the record before it"


@dataclass
class TrailState:
    size: int = 0
    head: bytes = bytes(32)
    frontier: Frontier = field(default_factory=Frontier)
    last_segment: Segment | None = None
    last_segment_bytes: int = 0
    torn: TornTail | None = None
    last_record: dict[str, Any] | None = None
    roots: dict[int, bytes] = field(default_factory=dict)
    base: int = 0  # seq of the oldest record kept (older ones were pruned)


@dataclass(frozen=True)
class ChunkScan:
    """What one chunk of a segment holds, as far as the rebuild needs to know."""

    leaf_hashes: bytes  # 32 bytes per line, in order (up to the fault, if any)
    lines: int
    first_line: bytes
    last_line: bytes
    fault: tuple[int, str] | None  # (index of the first bad line in the chunk, why)


def _link(prev_hash_hex: bytes) -> bytes:
    return b'"prev":"' + prev_hash_hex + b'"'


def scan_chunk(path: str, start: int, end: int) -> ChunkScan:
    """Hash every line of ``path[start:end]`` and check the links between them.

    The first line's link points into the chunk before, which the caller checks.
    """
    data = read_range(path, start, end)
    lines = data.split(b"\n")
    lines.pop()  # the range ends just after a newline
    hashes = [sha256(b"\x00" + line).digest() for line in lines]
    # A NUL is found at C speed here; a line holding one may pass the checks below (its
    # link can come before the NULs) and must not: it is reported as itself.
    nul = data.find(b"\0")
    hole = data.count(b"\n", 0, nul) if nul >= 0 else len(lines)
    fault = None
    previous: bytes | None = None
    for index, line in enumerate(lines[:hole]):
        if not (line.startswith(b"{") and line.endswith(b"}")):
            fault = (index, _NOT_AN_OBJECT)
            break
        # The chain link proves the line before is intact and nothing is missing or
        # reordered; the seq values themselves are checked on the last record.
        if previous is not None and _link(previous.hex().encode("ascii")) not in line:
            fault = (index, _BROKEN_LINK)
            break
        previous = hashes[index]
    if fault is None and hole < len(lines):
        # Only reached before the newest segment, whose end is cut at its first NUL.
        fault = (hole, HOLE_BEFORE_NEWEST)
    return ChunkScan(b"".join(hashes), len(lines), lines[0], lines[-1], fault)


def rebuild(
    directory: Path,
    roots_at: Collection[int] = (),
    workers: int | None = None,
    *,
    trust_starts: bool = True,
) -> TrailState:
    """Scan the trail under ``directory``; raise AuditCorrupt naming segment and line.

    ``roots_at`` lists tree sizes whose Merkle roots the caller wants (to check a stored
    checkpoint); they are returned in ``TrailState.roots`` when the trail reaches them.
    ``workers`` defaults to one process per CPU (up to four) on a trail of several
    chunks, and this process alone otherwise. Where worker processes cannot run (a
    pid limit, no shared memory, a worker killed), this process does it all: a slower
    start, never a gate that cannot start. ``trust_starts=False`` (a stored checkpoint
    this gate cannot authenticate) grows the frontier from the oldest segment kept, as
    without a checkpoint, and still returns the roots at ``roots_at``.
    """
    plans = plan_trail(directory)
    if plans:
        plans[-1] = _cut_at_hole(plans[-1])
    count = default_workers(plans) if workers is None else workers
    if count > 1:
        try:
            return _rebuild(plans, roots_at, count, trust_starts)
        except (OSError, BrokenExecutor):
            pass  # a read error will come back below, in this process
    return _rebuild(plans, roots_at, 1, trust_starts)


def _cut_at_hole(plan: SegmentPlan) -> SegmentPlan:
    """The newest segment planned up to the line holding its first NUL byte, if any.

    A power loss can leave the end of the newest segment a hole: its size grew, but some
    blocks of its last batch never reached the disk and read as NUL bytes, possibly
    followed by lines of the same batch that did. A batch is answered only after its
    fdatasync, which makes every earlier write to the file durable, and the next batch
    (or segment) is written only after that: nothing from the hole on was answered.
    From the start of its line it is a torn tail, moved aside like one.
    """
    hole = hole_start(plan.segment)
    return plan if hole is None else plan_segment(plan.segment, end=hole)


def _rebuild(
    plans: list[SegmentPlan], roots_at: Collection[int], workers: int, trust_starts: bool
) -> TrailState:
    state = TrailState()
    if plans and plans[0].segment.first_seq > 0:
        # Older segments were shipped off and deleted: resume where the oldest left starts.
        start = read_start(plans[0].segment)
        state.base = start.seq
        state.frontier = Frontier.from_nodes(start.seq, start.frontier)
        size = start.seq
        prev_hex = start.prev.hex().encode("ascii")
    else:
        size = 0
        prev_hex = ZERO_HASH.encode("ascii")
    wanted = sorted(set(roots_at))
    if size in wanted:
        state.roots[size] = state.frontier.root()
    frontier = state.frontier
    grow_from, grow_start = _frontier_start(plans, wanted) if trust_starts else (0, None)
    last_line = b""
    last_where: tuple[Segment, int] | None = None
    jobs = [(str(plan.segment.path), a, b) for plan in plans for a, b in plan.ranges]
    scans = ordered_map(scan_chunk, jobs, workers)
    try:
        for index, plan in enumerate(plans):
            segment = plan.segment
            if segment.first_seq != size:
                raise corrupt(
                    segment,
                    None,
                    f"segment should start at seq {size} ({segment_name(size)}); "
                    "records are missing",
                )
            if index == grow_from and grow_start is not None:
                frontier = state.frontier = _continued(segment, grow_start, size, prev_hex)
                if size in wanted:
                    state.roots[size] = frontier.root()
            number = 0  # lines of this segment taken so far
            for _ in plan.ranges:
                scan = next(scans)
                if scan.fault is not None and scan.fault[0] == 0:
                    raise corrupt(segment, number + 1, scan.fault[1])
                if _link(prev_hex) not in scan.first_line:
                    raise corrupt(segment, number + 1, _BROKEN_LINK)
                if scan.fault is not None:
                    raise corrupt(segment, number + scan.fault[0] + 1, scan.fault[1])
                hashes = scan.leaf_hashes
                if index >= grow_from:
                    leaves = [hashes[i : i + _HASH_SIZE] for i in range(0, len(hashes), _HASH_SIZE)]
                    _extend(frontier, leaves, wanted, state.roots)
                prev_hex = hashes[-_HASH_SIZE:].hex().encode("ascii")
                size += scan.lines
                number += scan.lines
                last_line = scan.last_line
                last_where = (segment, number)
            if plan.size != plan.clean_end:
                if index != len(plans) - 1:
                    raise corrupt(segment, number + 1, "segment ends in the middle of a line")
                state.torn = torn_tail(segment, plan.clean_end)
            state.last_segment = segment
            state.last_segment_bytes = plan.clean_end
    finally:
        scans.close()  # stop the workers early when the trail is corrupt
    state.size = size
    state.head = bytes.fromhex(prev_hex.decode("ascii"))
    if last_where is not None:
        state.last_record = _check_last(last_line, size - 1, last_where)
    return state


def _frontier_start(plans: list[SegmentPlan], wanted: list[int]) -> tuple[int, SegmentStart | None]:
    """From which segment the Merkle frontier must be grown, and that segment's start.

    A stored checkpoint signs the root at its tree size, so the frontier is grown only
    from the newest segment starting at or before the smallest size wanted: its
    ``.start`` holds the frontier there, and the checkpoint's root, computed from it and
    the leaves after it, vouches for it. The segments before are still read, hashed and
    their links checked, but not folded into the tree (a seventh to a fifth of a long
    trail's start-up). With no root wanted (no checkpoint to vouch) or no usable
    ``.start``, the frontier is grown from the oldest segment kept, as before.
    """
    if not wanted:
        return 0, None
    for index in range(len(plans) - 1, 0, -1):
        segment = plans[index].segment
        if segment.first_seq <= wanted[0]:
            try:
                return index, read_start(segment)
            except AuditCorrupt:
                continue  # read on from a segment further back
    return 0, None


def _continued(segment: Segment, start: SegmentStart, size: int, prev_hex: bytes) -> Frontier:
    """The frontier ``segment``'s ``.start`` holds, once it continues the records read."""
    if start.seq != size or start.prev.hex().encode("ascii") != prev_hex:
        name = start_path(segment.path).name
        raise corrupt(segment, None, f"{name} does not continue the segment before it")
    return Frontier.from_nodes(start.seq, start.frontier)


def _extend(
    frontier: Frontier, digests: list[bytes], wanted: list[int], roots: dict[int, bytes]
) -> None:
    """Add ``digests`` to ``frontier``, recording the root at each wanted tree size."""
    start = 0
    for target in wanted:
        cut = target - frontier.size
        if 0 < cut <= len(digests) - start:
            frontier.extend(digests[start : start + cut])
            start += cut
            roots[target] = frontier.root()
    frontier.extend(digests[start:])


def _check_last(line: bytes, seq: int, where: tuple[Segment, int]) -> dict[str, Any]:
    """Parse the record the writer continues from and check it in full.

    No later ``prev`` vouches for the last line, so it alone is checked for canonical
    form too: the writer must not chain (and sign) onto a line ``verify`` would reject.
    """
    segment, number = where
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise corrupt(segment, number, f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise corrupt(segment, number, "not a JSON object")
    if canonical_record(line) is None:
        raise corrupt(segment, number, "not canonical JSON: changed after it was written")
    if record.get("seq") != seq or isinstance(record.get("seq"), bool):
        raise corrupt(segment, number, f"expected seq {seq}")
    if record.get("type") not in RECORD_TYPES:
        raise corrupt(segment, number, f"unknown record type {record.get('type')!r}")
    ts = record.get("ts")
    if not isinstance(ts, str) or not TS_PATTERN.fullmatch(ts):
        raise corrupt(segment, number, "ts is not an RFC 3339 UTC time with microseconds")
    return record
