"""Line-level checks of ``tollgate audit verify``, one chunk of a segment at a time.

Each chunk (see ``chunks.py``) is checked on its own
(canonical JSON, envelope fields, ``seq`` and ``prev`` continuity inside the chunk) and
its leaf hashes returned, so chunks can be checked in parallel worker processes; the
caller links chunks together (first ``seq``/``prev`` of each) and builds the Merkle tree.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import msgspec

from sidecar.audit.chunks import read_lines
from sidecar.audit.merkle import perfect_subtrees
from sidecar.audit.records import RECORD_TYPES, TS_PATTERN
from sidecar.canonical import canonical_bytes


class _FloatSeen(Exception):
    """Canonical records carry integers only; a float sends the line to the exact check."""


def _reject_float(_: str) -> Any:
    raise _FloatSeen


# A record never holds a raw NUL byte (canonical JSON writes U+0000 escaped).
NUL_FAULT = "holds NUL bytes (disk blocks never written)"
# The records a run of the gate writes first: nothing else follows a clean end.
FIRST_RECORDS_OF_A_RUN = ("recovery", "startup")
# The record types ``check_chunk`` marks (``ChunkResult.marks``) for ``CleanEnds``;
# of the others only the first of each run is marked.
_MARKED = frozenset(("shutdown", "checkpoint", "approval", *FIRST_RECORDS_OF_A_RUN))
SHUTDOWN_CHECKPOINT = "checkpoint:shutdown"  # the mark of a checkpoint labelled shutdown


def a_record(record_type: Any) -> str:
    """'a decision record', 'an approval record'."""
    article = "an" if str(record_type)[:1].lower() in "aeiou" else "a"
    return f"{article} {record_type} record"


def after_shutdown(record_type: Any, shutdown_seq: int) -> str:
    """The fault of a record that is no run's first right after a clean end."""
    return (
        f"{a_record(record_type)} follows the shutdown checkpoint at seq {shutdown_seq}: a "
        "gate writes nothing after its shutdown checkpoint, and the next one starts with "
        "its recovery or startup record, so this record was added while no gate ran; "
        "nothing vouches for it, even where a later checkpoint signs it (a start that "
        "found it unsigned signed it as found)"
    )


def approvals_after_shutdown(first: int, last: int, shutdown_seq: int) -> str:
    """The warning of approval records between a clean end and the next run's start."""
    return (
        f"records seq {first} to {last} are approval records between the shutdown "
        f"checkpoint at seq {shutdown_seq} and the next run's startup or recovery record: "
        "a gate of a release before this check wrote approval records (an expiry, a "
        "refused decision, a webhook outcome) ahead of a startup record it held while "
        "the volume could not take it; otherwise they were added while no gate ran "
        "(compare them with the approvers' and the webhook's own logs; see "
        "docs/audit.md, startup)"
    )


class CleanEnds:
    """Follows a trail's marks (``ChunkResult.marks``, in seq order) for what comes
    after a clean end: a checkpoint record right after a ``shutdown`` record, or one
    labelled ``shutdown`` (a shutdown batch that rotates labels it ``rotation``).

    After it only a run's first record may come. Approval records there are a warning,
    not a fault: gates before this check wrote them ahead of a held startup record.
    A checkpoint after such approval records was signed by a gate, so it stays in the
    span. Anything else there is a fault (``feed`` returns it).
    """

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self._previous: str | None = None
        self._clean_end: int | None = None
        self._approvals: tuple[int, int] | None = None

    def feed(self, seq: int, mark: str) -> str | None:
        previous, self._previous = self._previous, mark
        if self._clean_end is not None:
            if mark == "approval":
                first = seq if self._approvals is None else self._approvals[0]
                self._approvals = (first, seq)
                return None
            if mark in FIRST_RECORDS_OF_A_RUN:
                self.finish()
                return None
            if self._approvals is None or mark not in ("checkpoint", SHUTDOWN_CHECKPOINT):
                return after_shutdown(mark.split(":")[0], self._clean_end)
            return None
        if mark == SHUTDOWN_CHECKPOINT or (mark == "checkpoint" and previous == "shutdown"):
            self._clean_end = seq
        return None

    def finish(self) -> None:
        """Close the span open after a clean end (the trail ended, or a run started)."""
        if self._clean_end is not None and self._approvals is not None:
            self.warnings.append(approvals_after_shutdown(*self._approvals, self._clean_end))
        self._clean_end, self._approvals = None, None


_decode = msgspec.json.Decoder(float_hook=_reject_float).decode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def canonical_record(line: bytes) -> dict[str, Any] | None:
    """The record if ``line`` is exactly its canonical JSON form, else None.

    Fast path: msgspec decodes (refusing floats) and re-encodes with sorted keys; its
    output equals ``canonical_bytes`` for float-free values (a property test checks
    this). Anything else takes the exact path through ``canonical_bytes`` itself.
    """
    try:
        record = _decode(line)
    except (msgspec.DecodeError, _FloatSeen, RecursionError):
        record = None
    if type(record) is dict and _encode_sorted(record) == line:
        return record
    try:
        record = json.loads(line)
        if isinstance(record, dict) and canonical_bytes(record) == line:
            return record
    except (ValueError, TypeError, RecursionError):
        pass
    return None


@dataclass
class ChunkResult:
    """What one chunk holds; ``fault`` describes line ``count`` (0-based) if set.

    ``pieces`` cover the chunk's leaves left to right, cut wherever the caller needs a
    root: before each checkpoint record and after each wanted tree size. Each piece is
    (leaf count, aligned perfect subtrees) ready for ``Frontier.append_subtree``.
    """

    count: int = 0
    first_seq: int | None = None
    first_prev: str | None = None
    last_hash: str = ""
    pieces: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)
    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)
    # startup records that name records found unsigned at that start, by line
    unsigned_starts: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (type, note) of the records at the wanted sizes, by line: the record at a
    # checkpoint's size must be the checkpoint record written with it
    at_sizes: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    # (line, type) of the records ``CleanEnds`` follows, and of the first record of
    # each run of other types (cheap: those runs are what a trail mostly holds)
    marks: list[tuple[int, str]] = field(default_factory=list)
    fault: str | None = None


def check_chunk(path: str, start: int, end: int, wanted: tuple[int, ...] = ()) -> ChunkResult:
    """Check the complete lines in ``path[start:end]``; stops at the first bad line.

    ``wanted`` lists tree sizes whose roots the caller needs (pieces are cut there).
    """
    lines = read_lines(path, start, end)
    result = ChunkResult()
    checkpoints = result.checkpoints
    record_types = RECORD_TYPES
    ts_match = TS_PATTERN.fullmatch
    decode, encode = _decode, _encode_sorted
    expected_seq = -1
    prev = ""
    marks = result.marks
    marked = _MARKED
    other_marked = False  # the record before is of a type not in ``marked``, and marked
    # Hashing every line up front (a comprehension) is cheaper than hashing in the loop;
    # lines after a fault are hashed for nothing, which only happens once.
    digests = [sha256(b"\x00" + line).digest() for line in lines]
    count = 0
    for line in lines:
        try:
            record = decode(line)
        except (msgspec.DecodeError, _FloatSeen, RecursionError):
            record = None
        if type(record) is not dict or encode(record) != line:
            record = canonical_record(line)
            if record is None:
                bad = NUL_FAULT if b"\0" in line else "not canonical JSON (or not a JSON object)"
                result.fault = bad
                break
        get = record.get
        seq = get("seq")
        if type(seq) is not int:
            result.fault = f"seq is {seq!r}, not an integer"
            break
        record_prev = get("prev")
        if count:
            if seq != expected_seq:
                result.fault = (
                    f"seq is {seq}, expected {expected_seq}: records are missing or reordered"
                )
                break
            if record_prev != prev:
                result.fault = "prev is not the hash of the record before it"
                break
        else:
            if type(record_prev) is not str:
                result.fault = "prev is missing"
                break
            result.first_seq, result.first_prev = seq, record_prev
        record_type = get("type")
        if record_type not in record_types:
            result.fault = f"unknown record type {record_type!r}"
            break
        ts = get("ts")
        if type(ts) is not str or ts_match(ts) is None:
            result.fault = "ts is not an RFC 3339 UTC time with microseconds"
            break
        if record_type in marked:
            other_marked = False
            if record_type == "checkpoint" and get("reason") == "shutdown":
                marks.append((count, SHUTDOWN_CHECKPOINT))
            else:
                marks.append((count, record_type))
        elif not other_marked:
            other_marked = True
            marks.append((count, record_type))
        if record_type == "checkpoint":
            checkpoints[count] = record
        elif record_type == "startup" and "unsignedAtStart" in record:
            result.unsigned_starts[count] = record
        prev = digests[count].hex()
        expected_seq = seq + 1
        count += 1
    del digests[count:]
    result.count = len(digests)
    result.last_hash = prev
    if digests:
        first = result.first_seq
        assert first is not None
        cuts = set(checkpoints)
        cuts.update(size - first for size in wanted if first < size < first + len(digests))
        bounds = [0, *sorted(cut for cut in cuts if cut > 0), len(digests)]
        for low, high in itertools.pairwise(bounds):
            subtrees = perfect_subtrees(digests[low:high], first + low)
            result.pieces.append((high - low, subtrees))
        for size in wanted:
            if first <= size < first + len(digests):
                # Checked above, so canonical; decoded again only for these few lines.
                found = canonical_record(lines[size - first]) or {}
                result.at_sizes[size - first] = (found.get("type"), found.get("note"))
    return result
