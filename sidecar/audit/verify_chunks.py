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
# The records a run of the gate writes first: nothing else follows a shutdown checkpoint.
FIRST_RECORDS_OF_A_RUN = ("recovery", "startup")


def after_shutdown(record_type: Any, shutdown_seq: int) -> str:
    """The fault of a record that is no run's first right after a shutdown checkpoint."""
    return (
        f"a {record_type} record follows the shutdown checkpoint at seq {shutdown_seq}: a "
        "gate writes nothing after its shutdown checkpoint, and the next one starts with "
        "its recovery or startup record, so this record was added while no gate ran; "
        "nothing vouches for it, even where a later checkpoint signs it (a start that "
        "found it unsigned signed it as found)"
    )


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
    first_type: str | None = None
    # seq of the chunk's last record when it is a shutdown checkpoint: the chunk after
    # must start with a later run's first record (``after_shutdown``)
    ends_in_shutdown: int | None = None
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
    shutdown_seq: int | None = None  # of the record before, when a shutdown checkpoint
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
        if shutdown_seq is not None and record_type not in FIRST_RECORDS_OF_A_RUN:
            result.fault = after_shutdown(record_type, shutdown_seq)
            break
        shutdown_seq = None
        if record_type == "checkpoint":
            checkpoints[count] = record
            if get("reason") == "shutdown":
                shutdown_seq = seq
        elif record_type == "startup" and "unsignedAtStart" in record:
            result.unsigned_starts[count] = record
        if not count:
            result.first_type = record_type
        prev = digests[count].hex()
        expected_seq = seq + 1
        count += 1
    del digests[count:]
    result.count = len(digests)
    result.ends_in_shutdown = shutdown_seq
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
