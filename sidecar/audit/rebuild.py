"""Rebuild the writer's state from the trail at startup (CONTRACT section 4).

Reads every segment once and recomputes the record count, the hash of the last record
and the Merkle frontier. It checks what a crash or a damaged disk could break -- every
line is a JSON object, carries the ``prev`` that is the hash of the line before, holds
no NUL byte, segments are named by the seq they continue from -- without parsing every
line. Only the last record is parsed in full, and the checkpoint records where the
frontier is grown (their fields must agree with their note, their root with the
records before them), found at C speed by how their lines end; every ``.start`` is
read and checked against the records (``_Probe``) and for its exact form. The newest
segment's end after its last newline, or from the line holding its first NUL byte (a
power loss), is a torn tail. Proving that nobody rewrote the trail on purpose is the
job of ``tollgate audit verify``, which parses and checks everything.

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

import base64
import json
from collections.abc import Collection
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.chunks import (
    SegmentPlan,
    default_workers,
    ordered_map,
    plan_segment,
    plan_trail,
    read_range,
)
from sidecar.audit.merkle import Frontier
from sidecar.audit.note import NoteError, SignedNote, parse_note
from sidecar.audit.records import RECORD_TYPES, TS_PATTERN, ZERO_HASH
from sidecar.audit.segments import (
    HOLE_BEFORE_NEWEST,
    Segment,
    SegmentStart,
    TornTail,
    check_start_form,
    corrupt,
    hole_start,
    load_start,
    read_start,
    segment_name,
    start_path,
    torn_tail,
)
from sidecar.audit.verify_chunks import canonical_record

_HASH_SIZE = 32
_NOT_AN_OBJECT = "not a JSON object"
_BROKEN_LINK = "prev is not the hash of the record before it"
# How a checkpoint record's line ends: "type" is its last key in canonical order.
_CHECKPOINT_TYPE = b'"type":"checkpoint"'
_CHECKPOINT_END = _CHECKPOINT_TYPE + b"}"


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
    # The lines at ``lines_at``: (segment, line number in it, the line).
    lines: dict[int, tuple[Segment, int, bytes]] = field(default_factory=dict)
    base: int = 0  # seq of the oldest record kept (older ones were pruned)
    # Of the checkpoint records checked against the records before them (those of the
    # segments the frontier was grown through), the newest signed under each (key name,
    # key id): (seq, note). One entry per key a trail was signed with, however long it
    # is; their roots are in ``roots``.
    newest_signed: dict[tuple[str, bytes], tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkScan:
    """What one chunk of a segment holds, as far as the rebuild needs to know."""

    leaf_hashes: bytes  # 32 bytes per line, in order (up to the fault, if any)
    lines: int
    first_line: bytes
    last_line: bytes
    fault: tuple[int, str] | None  # (index of the first bad line in the chunk, why)
    # The lines that end as a checkpoint record does (its last key is "type"), found at
    # C speed where the caller asked for them (None where not), parsed only by it.
    marked: tuple[bytes, ...] | None = None


def _link(prev_hash_hex: bytes) -> bytes:
    return b'"prev":"' + prev_hash_hex + b'"'


def scan_chunk(path: str, start: int, end: int, mark: bool = True) -> ChunkScan:
    """Hash every line of ``path[start:end]`` and check the links between them.

    The first line's link points into the chunk before, which the caller checks.
    ``mark``: also pick out the lines that look like checkpoint records.
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
    marked = _marked(lines) if mark else None
    return ChunkScan(b"".join(hashes), len(lines), lines[0], lines[-1], fault, marked)


def _marked(lines: list[bytes]) -> tuple[bytes, ...]:
    """The lines that end in ``"type":"checkpoint"}`` (a slice compared per line costs
    less than searching the bytes for it: about 0.3 ms per 4 MiB chunk)."""
    tail, size = _CHECKPOINT_END, -len(_CHECKPOINT_END)
    return tuple([line for line in lines if line[size:] == tail])


def rebuild(
    directory: Path,
    roots_at: Collection[int] = (),
    workers: int | None = None,
    *,
    trust_starts: bool = True,
    lines_at: Collection[int] = (),
) -> TrailState:
    """Scan the trail under ``directory``; raise AuditCorrupt naming segment and line.

    ``roots_at`` lists tree sizes whose Merkle roots the caller wants (to check a stored
    checkpoint); they are returned in ``TrailState.roots`` when the trail reaches them.
    ``lines_at`` lists seqs whose lines the caller wants (``TrailState.lines``).
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
            return _rebuild(plans, roots_at, count, trust_starts, lines_at)
        except (OSError, BrokenExecutor):
            pass  # a read error will come back below, in this process
    return _rebuild(plans, roots_at, 1, trust_starts, lines_at)


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


@dataclass
class _Probe:
    """A ``.start`` frontier not yet checked, grown over the leaves after it.

    Before the segment the stored checkpoint falls in the rebuild folds no leaves, so
    a ``.start`` there is checked by growing its frontier only as far as the first
    checkpoint record after it (usually within a thousand records): that record's root
    must come out. The record itself is held by the chain, every later ``prev``, up to
    the leaves the stored checkpoint's root covers. A ``.start`` met before that point
    must equal the frontier grown so far; so must the ``.start`` the folding starts from.
    """

    segment: Segment  # whose .start the frontier came from
    frontier: Frontier

    @property
    def name(self) -> str:
        return start_path(self.segment.path).name


def _rebuild(
    plans: list[SegmentPlan],
    roots_at: Collection[int],
    workers: int,
    trust_starts: bool,
    lines_at: Collection[int],
) -> TrailState:
    state = TrailState()
    probe: _Probe | None = None
    if plans and plans[0].segment.first_seq > 0:
        # Older segments were shipped off and deleted: resume where the oldest left starts.
        base = read_start(plans[0].segment)
        state.base = base.seq
        state.frontier = Frontier.from_nodes(base.seq, base.frontier)
        size = base.seq
        prev_hex = base.prev.hex().encode("ascii")
    else:
        size = 0
        prev_hex = ZERO_HASH.encode("ascii")
    wanted = sorted(set(roots_at))
    wanted_lines = sorted(set(lines_at))
    if size in wanted:
        state.roots[size] = state.frontier.root()
    frontier = state.frontier
    starts: dict[int, SegmentStart | None] = {}
    grow_from, grow_start = _frontier_start(plans, wanted, starts) if trust_starts else (0, None)
    if grow_from > 0 and state.base > 0:
        probe = _Probe(plans[0].segment, state.frontier.copy())
    last_line = b""
    last_where: tuple[Segment, int] | None = None
    # Checkpoint records are looked for where the frontier is grown, and at the start of
    # the segments before, where a .start is checked (the rest of those only if need be).
    jobs = [
        (str(plan.segment.path), a, b, index >= grow_from or number == 0)
        for index, plan in enumerate(plans)
        for number, (a, b) in enumerate(plan.ranges)
    ]
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
            start = _start(segment, starts) if index > 0 else None
            if start is not None:
                if start.prev.hex().encode("ascii") != prev_hex:
                    name = start_path(segment.path).name
                    raise corrupt(segment, None, f"{name} does not continue the segment before it")
                if index <= grow_from:  # not folded yet: a probe checks it
                    if probe is not None:
                        _probe_meets(probe, segment, start)
                    else:
                        probe = _Probe(segment, Frontier.from_nodes(start.seq, start.frontier))
                elif frontier.nodes != start.frontier:
                    name = start_path(segment.path).name
                    raise corrupt(
                        segment,
                        None,
                        f"{name} does not match the records before it: its frontier is not "
                        "theirs (it gives another Merkle root)",
                    )
            if index == grow_from and grow_start is not None:
                assert probe is not None
                frontier = state.frontier = probe.frontier  # the root at the checkpoint vouches
                probe = None
                if size in wanted:
                    state.roots[size] = frontier.root()
            number = 0  # lines of this segment taken so far
            for chunk_start, chunk_end in plan.ranges:
                scan = next(scans)
                if scan.fault is not None and scan.fault[0] == 0:
                    raise corrupt(segment, number + 1, scan.fault[1])
                if _link(prev_hex) not in scan.first_line:
                    raise corrupt(segment, number + 1, _BROKEN_LINK)
                if scan.fault is not None:
                    raise corrupt(segment, number + scan.fault[0] + 1, scan.fault[1])
                hashes = scan.leaf_hashes
                where = _Where(segment, number, size)
                chunk = (segment, chunk_start, chunk_end)
                if index >= grow_from:
                    marked = _candidates(scan, chunk)
                    _fold_checked(frontier, hashes, marked, wanted, state, where)
                elif probe is not None and _grow_probe(probe, hashes, scan, chunk, where):
                    probe = None
                for seq in wanted_lines:
                    if size <= seq < size + scan.lines:
                        line = _line(scan, seq - size, chunk)
                        state.lines[seq] = (segment, where.line(seq - size), line)
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
    # In the form the writer writes them: reported after what is wrong with their values.
    for segment, start in ((plan.segment, starts.get(plan.segment.first_seq)) for plan in plans):
        if start is not None:
            check_start_form(segment, start)
    if plans and plans[0].segment.first_seq > 0:
        check_start_form(plans[0].segment, base)
    state.size = size
    state.head = bytes.fromhex(prev_hex.decode("ascii"))
    if last_where is not None:
        state.last_record = _check_last(last_line, size - 1, last_where)
    return state


@dataclass(frozen=True)
class _Where:
    """A chunk's place: its segment, the lines of it before the chunk, its first seq."""

    segment: Segment
    lines_before: int
    seq: int

    def line(self, index: int) -> int:
        return self.lines_before + index + 1


def _start(segment: Segment, starts: dict[int, SegmentStart | None]) -> SegmentStart | None:
    """``segment``'s ``.start`` (None without one), read once; AuditCorrupt if malformed."""
    if segment.first_seq not in starts:
        starts[segment.first_seq] = load_start(segment)
    return starts[segment.first_seq]


def _frontier_start(
    plans: list[SegmentPlan], wanted: list[int], starts: dict[int, SegmentStart | None]
) -> tuple[int, SegmentStart | None]:
    """From which segment the Merkle frontier must be grown, and that segment's start.

    A stored checkpoint signs the root at its tree size, so the frontier is grown only
    from the newest segment starting at or before the smallest size wanted: its
    ``.start`` holds the frontier there, and the checkpoint's root, computed from it and
    the leaves after it, vouches for it. The segments before are still read, hashed and
    their links checked, but not folded into the tree (a seventh to a fifth of a long
    trail's start-up). With no root wanted (no checkpoint to vouch) or no ``.start``
    there, the frontier is grown from the oldest segment kept, as before. A ``.start``
    that is there but malformed refuses the start (AuditCorrupt).
    """
    if not wanted:
        return 0, None
    for index in range(len(plans) - 1, 0, -1):
        segment = plans[index].segment
        if segment.first_seq <= wanted[0]:
            start = _start(segment, starts)
            if start is not None:
                return index, start
    return 0, None


def _probe_meets(probe: _Probe, segment: Segment, start: SegmentStart) -> None:
    """A ``.start`` reached while ``probe`` still grows: the two must agree."""
    if probe.frontier.nodes != start.frontier:
        name = start_path(segment.path).name
        raise corrupt(
            segment,
            None,
            f"{name} does not match the records before it grown from the frontier in "
            f"{probe.name} (the two give other Merkle roots): one of them was changed after "
            "it was written",
        )


def _grow_probe(
    probe: _Probe, hashes: bytes, scan: ChunkScan, chunk: tuple[Segment, int, int], where: _Where
) -> bool:
    """Grow ``probe`` over a chunk up to its first checkpoint record, if it has one, and
    check that record's root; True once checked."""
    for index, line in _candidates(scan, chunk):
        record = _record(line, where.seq + index, where.segment, where.line(index))
        if record.get("type") != "checkpoint":
            continue
        probe.frontier.extend(_leaves(hashes, 0, index))
        seq = where.seq + index
        root = probe.frontier.root()
        _check_checkpoint(record, seq, None, where.segment, where.line(index))
        if _root_of(record) != root:
            raise corrupt(
                probe.segment,
                None,
                f"{probe.name} does not match the records after it: the root its frontier "
                f"gives at size {seq} is not the one the checkpoint record at seq {seq} "
                f"({where.segment.name} line {where.line(index)}) carries",
            )
        return True
    probe.frontier.extend(_leaves(hashes, 0, len(hashes) // _HASH_SIZE))
    return False


def _fold_checked(
    frontier: Frontier,
    hashes: bytes,
    marked: list[tuple[int, bytes]],
    wanted: list[int],
    state: TrailState,
    where: _Where,
) -> None:
    """Add a chunk's leaves to ``frontier``: record the roots at the sizes ``wanted``
    and check each checkpoint record's fields and root against the leaves before it
    (the newest one, and its root, kept in ``state``)."""
    count = len(hashes) // _HASH_SIZE
    records = {}
    for index, line in marked:
        record = _record(line, where.seq + index, where.segment, where.line(index))
        if record.get("type") == "checkpoint":
            records[index] = record
    cuts = {size - where.seq for size in wanted if where.seq < size <= where.seq + count}
    done = 0
    for cut in sorted(cuts | set(records)):
        frontier.extend(_leaves(hashes, done, cut))
        done = cut
        root = frontier.root()
        if where.seq + cut in wanted:
            state.roots[where.seq + cut] = root
        if cut in records:
            note = _check_checkpoint(
                records[cut], where.seq + cut, root, where.segment, where.line(cut)
            )
            state.roots[where.seq + cut] = root
            for signature in note.signatures:
                key = (signature.name, signature.key_id)
                state.newest_signed[key] = (where.seq + cut, records[cut]["note"])
    frontier.extend(_leaves(hashes, done, count))


def _candidates(scan: ChunkScan, chunk: tuple[Segment, int, int]) -> list[tuple[int, bytes]]:
    """(index, line) of the lines of a chunk that may be checkpoint records: those that
    end as one does, and its last line when it holds the type at all (keys after "type",
    which the gate never writes, would hide the last record of the trail, which no later
    link holds). Each line's index is where its leaf hash is: its place, whatever seq it
    claims."""
    segment, start, end = chunk
    marked = scan.marked
    if marked is None:  # not looked for by the worker: a probe reaching further
        marked = _marked(read_range(str(segment.path), start, end).split(b"\n")[:-1])
    if _CHECKPOINT_TYPE in scan.last_line and not (marked and marked[-1] == scan.last_line):
        marked = (*marked, scan.last_line)
    hashes = scan.leaf_hashes
    found: list[tuple[int, bytes]] = []
    offset = 0
    for line in marked:
        digest = sha256(b"\x00" + line).digest()
        at = hashes.find(digest, offset)
        while at >= 0 and at % _HASH_SIZE:
            at = hashes.find(digest, at + 1)
        if at >= 0:  # always: the line is in the chunk, and lines are in order
            found.append((at // _HASH_SIZE, line))
            offset = at + _HASH_SIZE
    return found


def _leaves(hashes: bytes, low: int, high: int) -> list[bytes]:
    return [
        hashes[i : i + _HASH_SIZE] for i in range(low * _HASH_SIZE, high * _HASH_SIZE, _HASH_SIZE)
    ]


def _line(scan: ChunkScan, index: int, chunk: tuple[Segment, int, int]) -> bytes:
    """Line ``index`` of a chunk: one of its marked lines, or read again (rare)."""
    digest = scan.leaf_hashes[index * _HASH_SIZE : (index + 1) * _HASH_SIZE]
    for line in scan.marked or ():
        if sha256(b"\x00" + line).digest() == digest:
            return line
    segment, start, end = chunk
    return read_range(str(segment.path), start, end).split(b"\n")[index]


def _record(line: bytes, seq: int, segment: Segment, number: int) -> dict[str, Any]:
    """A line parsed and checked as ``verify`` checks it: canonical JSON, envelope."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
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


def checkpoint_fields(record: dict[str, Any], seq: int) -> tuple[SignedNote, Checkpoint]:
    """The signed note of a ``checkpoint`` record at ``seq`` and the checkpoint in it,
    once its fields agree with it (``treeSize`` = ``seq`` = the note's size, its
    ``rootHash`` and ``origin`` the note's); the signature is not checked.

    Raises ValueError saying what is wrong, in the words ``tollgate audit verify`` uses.
    """
    note_text = record.get("note")
    size = record.get("treeSize")
    if size != seq or isinstance(size, bool) or not isinstance(note_text, str):
        raise ValueError("checkpoint record must carry treeSize equal to its seq and a note")
    try:
        note = parse_note(note_text)
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise ValueError(f"checkpoint note is malformed: {exc}") from exc
    if checkpoint.size != seq:
        raise ValueError(f"checkpoint root does not match the first {seq} records")
    if record.get("rootHash") != checkpoint.root_b64 or record.get("origin") != checkpoint.origin:
        raise ValueError("checkpoint record fields disagree with its signed note")
    return note, checkpoint


def _check_checkpoint(
    record: dict[str, Any], seq: int, root: bytes | None, segment: Segment, number: int
) -> SignedNote:
    """A checkpoint record's fields agree with its note, and its root is ``root``;
    return its note."""
    try:
        note, checkpoint = checkpoint_fields(record, seq)
    except ValueError as exc:
        raise corrupt(segment, number, str(exc)) from None
    if root is not None and checkpoint.root != root:
        raise corrupt(segment, number, f"checkpoint root does not match the first {seq} records")
    return note


def _root_of(record: dict[str, Any]) -> bytes:
    """The root of a checkpoint record whose fields ``checkpoint_fields`` accepted."""
    return base64.b64decode(record["rootHash"])


def record_at(state: TrailState, seq: int, root: bytes | None) -> dict[str, Any] | None:
    """The record at ``seq`` (asked for with ``lines_at``), checked as ``verify`` checks
    it, or None when the trail does not hold it. A checkpoint record's fields must
    agree with its note, and its root be ``root``, the root of the records before it
    (not compared when None).
    """
    found = state.lines.get(seq)
    if found is None:
        return None
    segment, number, line = found
    record = _record(line, seq, segment, number)
    if record.get("type") == "checkpoint":
        _check_checkpoint(record, seq, root, segment, number)
    return record


def _check_last(line: bytes, seq: int, where: tuple[Segment, int]) -> dict[str, Any]:
    """Parse the record the writer continues from and check it in full.

    No later ``prev`` vouches for the last line, so it alone is checked for canonical
    form too: the writer must not chain (and sign) onto a line ``verify`` would reject.
    (A checkpoint record's own fields are checked with the leaves before it.)
    """
    segment, number = where
    return _record(line, seq, segment, number)
