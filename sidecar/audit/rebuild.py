"""Rebuild the writer's state from the trail at startup (CONTRACT section 4).

Reads every segment once, in large blocks, and recomputes the record count, the hash of
the last record and the Merkle frontier. It checks what a crash or a damaged disk could
break -- every line is a JSON object, carries the ``prev`` that is the hash of the line
before, segments are named by the seq they continue from -- without parsing every
line, so it runs at several hundred thousand records a second. Only the last record is
parsed in full. Proving that nobody rewrote the trail on purpose is the job of
``tollgate audit verify``, which parses and checks everything.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from sidecar.audit.merkle import Frontier
from sidecar.audit.records import RECORD_TYPES, TS_PATTERN, ZERO_HASH
from sidecar.audit.segments import (
    Segment,
    TornTail,
    corrupt,
    iter_line_blocks,
    list_segments,
    read_start,
    segment_name,
    torn_tail,
)


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


def rebuild(directory: Path, roots_at: Collection[int] = ()) -> TrailState:
    """Scan the trail under ``directory``; raise AuditCorrupt naming segment and line.

    ``roots_at`` lists tree sizes whose Merkle roots the caller wants (to check a stored
    checkpoint); they are returned in ``TrailState.roots`` when the trail reaches them.
    """
    state = TrailState()
    segments = list_segments(directory)
    if segments and segments[0].first_seq > 0:
        # Older segments were shipped off and deleted: resume where the oldest left starts.
        start = read_start(segments[0])
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
    last_line = b""
    last_where: tuple[Segment, int] | None = None
    for index, segment in enumerate(segments):
        if segment.first_seq != size:
            raise corrupt(
                segment,
                None,
                f"segment should start at seq {size} ({segment_name(size)}); records are missing",
            )
        consumed = 0
        number = 0
        for lines in iter_line_blocks(segment.path):
            digests = [sha256(b"\x00" + line).digest() for line in lines]
            for line, digest in zip(lines, digests, strict=True):
                number += 1
                if not (line.startswith(b"{") and line.endswith(b"}")):
                    raise corrupt(segment, number, "not a JSON object")
                # The chain link proves the line before is intact and nothing is missing
                # or reordered; the seq values themselves are checked on the last record.
                if b'"prev":"' + prev_hex + b'"' not in line:
                    raise corrupt(segment, number, "prev is not the hash of the record before it")
                prev_hex = digest.hex().encode("ascii")
                consumed += len(line) + 1
            _extend(frontier, digests, wanted, state.roots)
            size += len(lines)
            last_line = lines[-1]
            last_where = (segment, number)
        file_size = segment.path.stat().st_size
        if consumed != file_size:
            if index != len(segments) - 1:
                raise corrupt(segment, number + 1, "segment ends in the middle of a line")
            state.torn = torn_tail(segment)
        state.last_segment = segment
        state.last_segment_bytes = consumed
    state.size = size
    state.head = bytes.fromhex(prev_hex.decode("ascii"))
    if last_where is not None:
        state.last_record = _check_last(last_line, size - 1, last_where)
    return state


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
    """Parse the record the writer continues from and check its envelope in full."""
    segment, number = where
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise corrupt(segment, number, f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise corrupt(segment, number, "not a JSON object")
    if record.get("seq") != seq or isinstance(record.get("seq"), bool):
        raise corrupt(segment, number, f"expected seq {seq}")
    if record.get("type") not in RECORD_TYPES:
        raise corrupt(segment, number, f"unknown record type {record.get('type')!r}")
    ts = record.get("ts")
    if not isinstance(ts, str) or not TS_PATTERN.fullmatch(ts):
        raise corrupt(segment, number, "ts is not an RFC 3339 UTC time with microseconds")
    return record
