"""``tollgate audit export``: records as JSON Lines, CSV or OCSF (CONTRACT section 3).

Every row carries the record's ``seq`` and its leaf hash, so any exported row can be
proven against a signed checkpoint: ``record`` (JSON Lines), the ``record`` column (CSV)
and ``raw_data`` (OCSF) hold the exact line from the segment, whose SHA-256(0x00 ||
line) is the leaf hash.

- ``jsonl``: ``{"leafHash": ..., "record": <the record>, "seq": ...}`` per line, itself
  canonical JSON, so ``record`` re-encodes to the exact bytes that were hashed.
- ``csv``: RFC 4180, one row per record, the main decision fields as columns plus the
  whole record; every cell a spreadsheet would run as a formula is neutralised.
- ``ocsf``: see ``ocsf.py``.

Long trails are rendered chunk by chunk in worker processes and written in order.
Export checks the chain as it reads (``seq`` follows, ``prev`` is the leaf hash of the
line before) and stops at a break, so a trail with records removed or changed is not
exported as if whole. It also grows the RFC 6962 Merkle tree of the records it reads
(from the oldest kept segment's ``.start``) and compares its root with the one each
``checkpoint`` record's signed note gives (the record's fields must agree with the
note) and with ``DIR/checkpoint``'s, so that records changed with the chain
recomputed, or cut from the signed end, stop it too (before the rows of the chunk
holding such a checkpoint are written). It checks no signature and no canonical form:
that is ``tollgate audit verify``, which says what no export can (who signed).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import msgspec

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.chunks import (
    SegmentPlan,
    SharedSlots,
    default_workers,
    in_flight,
    ordered_map,
    plan_trail,
    read_lines,
)
from sidecar.audit.merkle import Frontier, perfect_subtrees
from sidecar.audit.note import NoteError, parse_note
from sidecar.audit.ocsf import NotAnEvent, decode_record, ocsf_line
from sidecar.audit.rebuild import checkpoint_fields
from sidecar.audit.records import ZERO_HASH
from sidecar.audit.segments import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAX_BYTES,
    SEGMENTS_DIR,
    NotASmallFile,
    Segment,
    corrupt,
    read_small_file,
    read_start,
    segment_name,
)
from sidecar.errors import AuditCorrupt

FORMATS = ("jsonl", "csv", "ocsf")

CSV_COLUMNS = (
    "seq",
    "ts",
    "type",
    "leafHash",
    "prev",
    "decisionId",
    "action",
    "decision",
    "allowed",
    "dryRun",
    "rule",
    "reason",
    "risk",
    "mode",
    "policy",
    "identity",
    "request",
    "record",
)
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets
# (OWASP "CSV injection"); full-width forms are folded to them by some locales.
_FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_Row = TypeVar("_Row")


class ExportedRecord(NamedTuple):
    seq: int
    leaf_hash: str
    line: bytes
    record: Any  # a dict, or the fields a writer asked its decoder for


class _JsonlFields(msgspec.Struct):
    seq: Any = None
    ts: Any = None
    prev: Any = None
    type: Any = None  # a checkpoint record's root is compared with the records'


class _CsvFields(msgspec.Struct, rename="camel"):
    seq: Any = None
    ts: Any = None
    type: Any = None
    prev: Any = None
    decision_id: Any = None
    action: Any = None
    decision: Any = None
    allowed: Any = None
    dry_run: Any = None
    rule: Any = None
    reason: Any = None
    risk: Any = None
    mode: Any = None
    policy: Any = None
    identity: Any = None
    request: msgspec.Raw = msgspec.Raw(b"null")  # kept as the exact JSON bytes


class _BadLine(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


class _Leaves:
    """The leaf hashes of the lines read, and (seq, the root its signed note gives) of
    the checkpoint records among them, for the tree the parent grows."""

    __slots__ = ("checkpoints", "hashes")

    def __init__(self) -> None:
        self.hashes = bytearray()
        self.checkpoints: list[tuple[int, bytes]] = []


_Render = Callable[[int, str, bytes, Any], _Row | None]
_VERIFY_HINT = "the trail was changed; check it with tollgate audit verify"


class _Chain:
    """The link between records: the seq and ``prev`` the next line must carry.

    ``seq`` None: not known yet (the start of a chunk a worker renders; the parent
    links chunks with ``first``). ``prev`` None: any (the oldest segment left after
    pruning, whose ``.start`` export does not read).
    """

    __slots__ = ("first", "prev", "seq")

    def __init__(self, seq: int | None = None, prev: str | None = None) -> None:
        self.seq = seq
        self.prev = prev
        self.first: tuple[int, Any] | None = None  # (seq, prev) of the first line read

    def problem(self, seq: int, prev: Any) -> str | None:
        """Why a record with ``seq`` and ``prev`` cannot come next, or None."""
        if seq != self.seq:
            return f"seq is {seq}, expected {self.seq}: records are missing or reordered; " + (
                _VERIFY_HINT
            )
        if self.prev is not None and prev != self.prev:
            return f"prev is not the hash of the record before it; {_VERIFY_HINT}"
        return None


def _rows(
    lines: list[bytes],
    decode: Callable[[bytes], Any],
    render: _Render[_Row],
    since: str | None,
    until: str | None,
    chain: _Chain,
    leaves: _Leaves | None = None,
) -> Iterator[_Row]:
    """``render(seq, leaf hash, line, record)`` for the records of ``lines`` with
    ``since <= ts < until``, None results left out; raise _BadLine at the first line
    that is not an audit record or does not follow the one before (``chain``, which
    is left at the last line read)."""
    bounded = since is not None or until is not None
    for index, line in enumerate(lines):
        try:
            record = decode(line)
        except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError included
            raise _BadLine(index, f"not an audit record ({exc})") from exc
        if type(record) is dict:
            seq, ts, prev = record.get("seq"), record.get("ts"), record.get("prev")
            kind = record.get("type")
        else:
            seq, ts, prev, kind = record.seq, record.ts, record.prev, record.type
        if type(seq) is not int:
            raise _BadLine(index, "not an audit record (no integer seq)")
        # Every line is hashed and linked, rows left out by the time bounds too: an
        # export is not a copy of a trail whose records were changed or removed.
        digest = sha256(b"\x00" + line).digest()
        leaf_hash = digest.hex()
        if leaves is not None:
            leaves.hashes += digest
            if kind == "checkpoint":
                leaves.checkpoints.append((seq, _signed_root(index, line, seq)))
        if chain.seq is None:
            chain.first = (seq, prev)
        else:
            problem = chain.problem(seq, prev)
            if problem is not None:
                raise _BadLine(index, problem)
        chain.seq, chain.prev = seq + 1, leaf_hash
        if bounded:
            if since is not None and not (isinstance(ts, str) and ts >= since):
                continue
            if until is not None and not (isinstance(ts, str) and ts < until):
                continue
        try:
            row = render(seq, leaf_hash, line, record)
        except (NotAnEvent, RecursionError) as exc:
            raise _BadLine(index, f"not an audit record ({exc})") from exc
        if row is not None:
            yield row


def _check_directory(path: Path) -> None:
    if not (path / SEGMENTS_DIR).is_dir():
        raise FileNotFoundError(f"{path} is not an audit directory (no {SEGMENTS_DIR}/)")


def _segment_start(plan: SegmentPlan, chain: _Chain) -> _Chain:
    """``chain`` ready for the first line of ``plan``'s segment; AuditCorrupt if the
    segment does not continue the one before (a segment was removed or renamed)."""
    first_seq = plan.segment.first_seq
    if chain.seq is None:  # the oldest segment: record 0, or the first one kept
        return _Chain(first_seq, ZERO_HASH if first_seq == 0 else None)
    if first_seq != chain.seq:
        raise corrupt(
            plan.segment,
            None,
            f"segment should start at seq {chain.seq} ({segment_name(chain.seq)}): "
            f"records are missing; {_VERIFY_HINT}",
        )
    return chain


def iter_records(
    directory: str | Path, since: str | None = None, until: str | None = None
) -> Iterator[ExportedRecord]:
    """Every record (as a dict) in seq order with ``since <= ts < until``.

    Bounds are in record ``ts`` form (see ``records.parse_time_bound``). A torn last line
    is skipped (it is not a record); a line that is not an audit record raises
    AuditCorrupt naming its segment and line.
    """
    path = Path(directory)
    _check_directory(path)
    decode = msgspec.json.Decoder().decode
    plans = plan_trail(path)
    chain = _Chain()
    for index, plan in enumerate(plans):
        number = 0
        chain = _segment_start(plan, chain)
        for start, end in plan.ranges:
            lines = read_lines(str(plan.segment.path), start, end)
            try:
                yield from _rows(lines, decode, ExportedRecord, since, until, chain)
            except _BadLine as bad:
                raise corrupt(plan.segment, number + bad.index + 1, bad.message) from None
            number += len(lines)
        if plan.clean_end != plan.size and index != len(plans) - 1:
            raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")


class RenderedChunk(NamedTuple):
    """What ``render_chunk`` made of a chunk, and how it links to its neighbours."""

    data: bytearray
    rows: int
    lines: int  # lines read; with ``error``, the 0-based index of the bad one
    error: str | None
    first: tuple[int, Any] | None  # (seq, prev) of its first line
    next_seq: int | None  # the seq and prev the next chunk's first line must carry
    next_prev: str | None
    # Its leaves as aligned perfect subtrees (merkle.perfect_subtrees), hashed in the
    # worker, cut where a root is compared: (tree size after the span, its subtrees).
    spans: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]
    checkpoints: tuple[tuple[int, bytes], ...]  # (seq, signed root) of its checkpoint records


def render_chunk(
    path: str,
    start: int,
    end: int,
    fmt: str,
    since: str | None,
    until: str | None,
    cut_at: int | None = None,
) -> RenderedChunk:
    """Rows for the lines in ``path[start:end]``; stops at a line that is not a record
    or does not follow the one before it. Runs in worker processes for long trails;
    the caller checks that the chunk's first line follows the chunk before. ``cut_at``:
    a tree size whose root the caller compares (``DIR/checkpoint``'s)."""
    decode, render = _RENDERERS[fmt]
    lines = read_lines(path, start, end)
    # One growing buffer rather than a list joined at the end: a chunk renders to
    # megabytes, and a second copy of it costs more than the appends.
    data = bytearray()
    count = 0
    chain = _Chain()
    leaves = _Leaves()
    try:
        for row in _rows(lines, decode, render, since, until, chain, leaves):
            data += row
            count += 1
    except _BadLine as bad:
        return RenderedChunk(data, count, bad.index, bad.message, chain.first, None, None, (), ())
    cuts = [seq for seq, _ in leaves.checkpoints]
    if cut_at is not None:
        cuts.append(cut_at)
    first = chain.first[0] if chain.first is not None else None
    return RenderedChunk(
        data,
        count,
        len(lines),
        None,
        chain.first,
        chain.seq,
        chain.prev,
        () if first is None else _spans(bytes(leaves.hashes), first, cuts),
        tuple(leaves.checkpoints),
    )


def _spans(
    hashes: bytes, first: int, cuts: list[int]
) -> tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]:
    """The leaves ``hashes`` (of records ``first`` on) as aligned perfect subtrees, in
    spans ending at each of ``cuts`` that falls among them, then at their end."""
    leaves = [hashes[at : at + 32] for at in range(0, len(hashes), 32)]
    end = first + len(leaves)
    spans = []
    done = first
    for cut in sorted({cut for cut in cuts if first <= cut <= end}):
        spans.append((cut, tuple(perfect_subtrees(leaves[done - first : cut - first], done))))
        done = cut
    if done < end:
        spans.append((end, tuple(perfect_subtrees(leaves[done - first :], done))))
    return tuple(spans)


# Export chunks are smaller than verify's: each worker's rows pass through a slot of
# shared memory, and a slot must hold a chunk's rows (a few times its lines' size).
EXPORT_CHUNK_BYTES = 2**20
_SLOT_BYTES = 8 * EXPORT_CHUNK_BYTES

_worker_slots: SharedSlots | None = None  # set in worker processes only


def _use_slots(slots: SharedSlots) -> None:
    global _worker_slots
    _worker_slots = slots


def _render_job(
    job: int,
    path: str,
    start: int,
    end: int,
    fmt: str,
    since: str | None,
    until: str | None,
    cut_at: int | None,
) -> tuple[RenderedChunk, int]:
    """``render_chunk`` and the length of its rows, which are left in the job's shared
    slot when they fit there (``data`` is then empty)."""
    chunk = render_chunk(path, start, end, fmt, since, until, cut_at)
    length = len(chunk.data)
    if _worker_slots is not None and _worker_slots.put(job, chunk.data):
        return chunk._replace(data=bytearray()), length
    return chunk, length


def export(
    directory: str | Path,
    fmt: str,
    out: BinaryIO,
    since: str | None = None,
    until: str | None = None,
    workers: int | None = None,
) -> int:
    """Write the records of ``directory`` to ``out`` in ``fmt``; return the row count.

    ``workers``: processes rendering chunks (default: up to 4, one per CPU, for long
    trails only). Raises AuditCorrupt at the first line that is not a record.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = Path(directory)
    _check_directory(path)
    # DIR/checkpoint before the segments: a gate writing meanwhile signs only records
    # that the plan then holds (read the other way round, a checkpoint written between
    # the two would sign records past the plan's end: "records were removed").
    tree = _TreeCheck(path)
    plans = plan_trail(path, EXPORT_CHUNK_BYTES)
    tree.start_from(plans[0].segment if plans else None)
    # Before the workers start: the stored checkpoint's size is where they cut a span.
    cut_at = tree.stored.size if tree.stored is not None else None
    jobs = [
        (str(plan.segment.path), start, end, fmt, since, until, cut_at)
        for plan in plans
        for start, end in plan.ranges
    ]
    processes = default_workers(plans) if workers is None else workers
    slots = None
    if processes > 1 and len(jobs) > 1:
        slots = SharedSlots(in_flight(processes) + 1, _SLOT_BYTES)
    results = ordered_map(
        _render_job,
        [(job, *arguments) for job, arguments in enumerate(jobs)],
        processes,
        initializer=_use_slots,
        initargs=(slots,),
    )
    if fmt == "csv":
        out.write(",".join(CSV_COLUMNS).encode("ascii") + b"\r\n")
    count = 0
    job = 0
    chain = _Chain()
    try:
        for index, plan in enumerate(plans):
            number = 0
            chain = _segment_start(plan, chain)
            for _ in plan.ranges:
                chunk, length = next(results)
                # The chunk's first line must follow the last line before it, and its
                # checkpoint records' roots must be the records'; its rows are written
                # only then.
                problem = None if chunk.first is None else chain.problem(*chunk.first)
                if problem is not None:
                    raise corrupt(plan.segment, number + 1, problem)
                if chunk.error is None:
                    problem = tree.fold(chunk.spans, chunk.checkpoints)
                    if problem is not None:
                        raise corrupt(plan.segment, None, problem)
                if length and not chunk.data:
                    assert slots is not None
                    slots.write_to(out, job, length)
                else:
                    out.write(chunk.data)
                job += 1
                count += chunk.rows
                if chunk.error is not None:
                    raise corrupt(plan.segment, number + chunk.lines + 1, chunk.error)
                number += chunk.lines
                if chunk.next_seq is not None:
                    chain = _Chain(chunk.next_seq, chunk.next_prev)
            if plan.clean_end != plan.size and index != len(plans) - 1:
                raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")
        problem = tree.finish()
        if problem is not None:
            if not plans:
                raise AuditCorrupt(f"audit trail corrupt: {problem}")
            raise corrupt(plans[-1].segment, None, problem)
    finally:
        results.close()
        if slots is not None:
            slots.close()
    return count


def _signed_root(index: int, line: bytes, seq: int) -> bytes:
    """The root a checkpoint record's signed note gives, once the record's fields agree
    with the note (``rebuild.checkpoint_fields``, as the gate and verify check them);
    raise _BadLine otherwise. Its signature is verify's to check."""
    try:
        record = json.loads(line)
        _, checkpoint = checkpoint_fields(record, seq)
    except (ValueError, RecursionError, AttributeError) as exc:
        raise _BadLine(index, f"checkpoint record: {exc}; {_VERIFY_HINT}") from None
    return checkpoint.root


class _TreeCheck:
    """The RFC 6962 tree of the records read, checked against the checkpoints.

    Grown from the oldest kept segment's ``.start`` (its frontier), or from nothing. A
    checkpoint record at seq n carries the root of records 0 .. n-1; ``DIR/checkpoint``
    signs its size's. No signature is checked: a root that is not the records' is a
    trail changed after it was written, which no export should pass on as whole.
    """

    def __init__(self, directory: Path) -> None:
        self.frontier = Frontier()
        self.stored: Checkpoint | None = None
        path = directory / CHECKPOINT_FILE
        try:
            data = read_small_file(path, CHECKPOINT_MAX_BYTES)
            if data is not None:
                self.stored = Checkpoint.parse(parse_note(data).text)
        except (NotASmallFile, NoteError) as exc:
            raise AuditCorrupt(f"{path} is not a valid signed checkpoint: {exc}") from exc
        self.problem: str | None = None

    def start_from(self, oldest: Segment | None) -> None:
        """Grow from the oldest kept segment's ``.start`` when older ones were shipped off."""
        if oldest is not None and oldest.first_seq > 0:
            start = read_start(oldest)
            self.frontier = Frontier.from_nodes(start.seq, start.frontier)
        if self.stored is not None and self.stored.size < self.frontier.size:
            self.stored = None  # it signs only pruned records: nothing left to compare
        self._check_stored()  # one that signs exactly the pruned records

    def fold(
        self,
        spans: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...],
        checkpoints: tuple[tuple[int, bytes], ...],
    ) -> str | None:
        """Add a chunk's spans of subtrees; why a root is not the records', or None."""
        roots = dict(checkpoints)
        for size, pieces in spans:
            for height, node in pieces:
                self.frontier.append_subtree(node, height)
            if self.problem is None and size in roots and not self._root_is(roots[size]):
                self.problem = (
                    f"the checkpoint record at seq {size}: its signed root is not that of "
                    f"the records before it; {_VERIFY_HINT}"
                )
            self._check_stored()
        return self.problem

    def finish(self) -> str | None:
        """After the last chunk: the records ``DIR/checkpoint`` signs are all there."""
        stored = self.stored
        if self.problem is None and stored is not None and stored.size > self.frontier.size:
            self.problem = (
                f"{CHECKPOINT_FILE} signs {stored.size} records but the trail holds "
                f"{self.frontier.size}: records were removed; {_VERIFY_HINT}"
            )
        return self.problem

    def _check_stored(self) -> None:
        stored = self.stored
        if stored is None or self.frontier.size != stored.size:
            return
        self.stored = None  # compared once
        if self.problem is None and self.frontier.root() != stored.root:
            self.problem = (
                f"{CHECKPOINT_FILE}: its root is not that of the first {stored.size} "
                f"records; {_VERIFY_HINT}"
            )

    def _root_is(self, root: bytes) -> bool:
        return root == self.frontier.root()


def _jsonl_row(seq: int, leaf_hash: str, line: bytes, record: Any) -> bytes:
    # Built by concatenation: the keys are in canonical order and the record is the
    # canonical line itself, so the row is canonical JSON without re-encoding.
    return b'{"leafHash":"%b","record":%b,"seq":%d}\n' % (leaf_hash.encode("ascii"), line, seq)


def csv_safe(value: Any) -> Any:
    """Neutralise text a spreadsheet would evaluate: prefix it with a single quote."""
    if (
        isinstance(value, str)
        and value
        and (value[0] in _FORMULA_START or value.lstrip()[:1] in _FORMULA_START)
    ):
        return "'" + value
    return value


def csv_field(value: Any) -> str:
    """One RFC 4180 field: formula-safe, quoted when it holds a quote, comma or newline.

    Written by hand because the csv module's per-character quoting costs more than
    everything else in an export of JSON-heavy rows; tests read the output back with
    the csv module.
    """
    if type(value) is str:  # the common case first: csv_safe inlined
        text = value
        if text and (text[0] in _FORMULA_START or text.lstrip()[:1] in _FORMULA_START):
            text = "'" + text
    elif value is None:
        return ""
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, dict | list):
        text = _encode_sorted(value).decode("utf-8")
    else:
        text = csv_safe(str(value))
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _repeating_fields(*values: Any) -> tuple[str, str]:
    """The ``type`` cell, and the cells from ``action`` to ``identity`` joined."""
    return csv_field(values[0]), ",".join([csv_field(value) for value in values[1:]])


# These columns mostly repeat from row to row, so their text is cached. typed=True
# keeps True, 1 and 1.0 apart (equal keys otherwise); it only looks at the types of
# the arguments themselves, hence one argument per value.
_cached_repeating_fields = functools.lru_cache(maxsize=8192, typed=True)(_repeating_fields)


def _csv_row(seq: int, leaf_hash: str, line: bytes, record: _CsvFields) -> bytes:
    repeating = (
        record.type,
        record.action,
        record.decision,
        record.allowed,
        record.dry_run,
        record.rule,
        record.reason,
        record.risk,
        record.mode,
        record.policy,
        record.identity,
    )
    try:
        type_cell, middle = _cached_repeating_fields(*repeating)
    except TypeError:  # an unhashable value (a list or object where text belongs)
        type_cell, middle = _repeating_fields(*repeating)
    head = ",".join(
        (
            str(seq),
            csv_field(record.ts),
            type_cell,
            leaf_hash,
            csv_field(record.prev),
            csv_field(record.decision_id),
            middle,
        )
    )
    # request and record are canonical JSON from the line itself (an object starts
    # with '{', never a formula); null means the record has no request.
    request = bytes(record.request)
    request_field = b"" if request == b"null" else _quote(request)
    return b"%b,%b,%b\r\n" % (head.encode("utf-8"), request_field, _quote(line))


def _quote(data: bytes) -> bytes:
    if data[:1] != b"{" and data[:1] != b"[":
        return csv_field(msgspec.json.decode(data)).encode("utf-8")
    return b'"' + data.replace(b'"', b'""') + b'"'


_RENDERERS: dict[str, tuple[Callable[[bytes], Any], _Render[bytes]]] = {
    "jsonl": (msgspec.json.Decoder(_JsonlFields).decode, _jsonl_row),
    "csv": (msgspec.json.Decoder(_CsvFields).decode, _csv_row),
    "ocsf": (decode_record, ocsf_line),
}
