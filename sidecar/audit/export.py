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
Export proves nothing by itself: run ``tollgate audit verify`` first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import msgspec

from sidecar.audit.chunks import (
    SharedSlots,
    default_workers,
    in_flight,
    ordered_map,
    plan_trail,
    read_lines,
)
from sidecar.audit.ocsf import NotAnEvent, decode_record, ocsf_line
from sidecar.audit.segments import SEGMENTS_DIR, corrupt

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


_Render = Callable[[int, str, bytes, Any], _Row | None]


def _rows(
    lines: list[bytes],
    decode: Callable[[bytes], Any],
    render: _Render[_Row],
    since: str | None,
    until: str | None,
) -> Iterator[_Row]:
    """``render(seq, leaf hash, line, record)`` for the records of ``lines`` with
    ``since <= ts < until``, None results left out; raise _BadLine at the first line
    that is not an audit record."""
    bounded = since is not None or until is not None
    for index, line in enumerate(lines):
        try:
            record = decode(line)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise _BadLine(index, f"not an audit record ({exc})") from exc
        if type(record) is dict:
            seq, ts = record.get("seq"), record.get("ts")
        else:
            seq, ts = record.seq, record.ts
        if type(seq) is not int:
            raise _BadLine(index, "not an audit record (no integer seq)")
        if bounded:
            if since is not None and not (isinstance(ts, str) and ts >= since):
                continue
            if until is not None and not (isinstance(ts, str) and ts < until):
                continue
        try:
            row = render(seq, sha256(b"\x00" + line).hexdigest(), line, record)
        except NotAnEvent as exc:
            raise _BadLine(index, f"not an audit record ({exc})") from exc
        if row is not None:
            yield row


def _check_directory(path: Path) -> None:
    if not (path / SEGMENTS_DIR).is_dir():
        raise FileNotFoundError(f"{path} is not an audit directory (no {SEGMENTS_DIR}/)")


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
    for index, plan in enumerate(plans):
        number = 0
        for start, end in plan.ranges:
            lines = read_lines(str(plan.segment.path), start, end)
            try:
                yield from _rows(lines, decode, ExportedRecord, since, until)
            except _BadLine as bad:
                raise corrupt(plan.segment, number + bad.index + 1, bad.message) from None
            number += len(lines)
        if plan.clean_end != plan.size and index != len(plans) - 1:
            raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")


def render_chunk(
    path: str, start: int, end: int, fmt: str, since: str | None, until: str | None
) -> tuple[bytearray, int, int, str | None]:
    """Rows for the lines in ``path[start:end]``: (bytes, rows, lines read, error).

    On a line that is not a record it stops; ``error`` then describes line ``lines read``
    (0-based within the chunk). Runs in worker processes for long trails.
    """
    decode, render = _RENDERERS[fmt]
    lines = read_lines(path, start, end)
    # One growing buffer rather than a list joined at the end: a chunk renders to
    # megabytes, and a second copy of it costs more than the appends.
    data = bytearray()
    count = 0
    try:
        for row in _rows(lines, decode, render, since, until):
            data += row
            count += 1
    except _BadLine as bad:
        return data, count, bad.index, bad.message
    return data, count, len(lines), None


# Export chunks are smaller than verify's: each worker's rows pass through a slot of
# shared memory, and a slot must hold a chunk's rows (a few times its lines' size).
EXPORT_CHUNK_BYTES = 2**20
_SLOT_BYTES = 8 * EXPORT_CHUNK_BYTES

_worker_slots: SharedSlots | None = None  # set in worker processes only


def _use_slots(slots: SharedSlots) -> None:
    global _worker_slots
    _worker_slots = slots


def _render_job(
    job: int, path: str, start: int, end: int, fmt: str, since: str | None, until: str | None
) -> tuple[bytes | bytearray | None, int, int, int, str | None]:
    """``render_chunk``, the rows left in the job's shared slot when they fit there:
    (rows' bytes or None if in the slot, their length, rows, lines read, error)."""
    data, rows, lines, error = render_chunk(path, start, end, fmt, since, until)
    if _worker_slots is not None and _worker_slots.put(job, data):
        return None, len(data), rows, lines, error
    return data, len(data), rows, lines, error


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
    plans = plan_trail(path, EXPORT_CHUNK_BYTES)
    jobs = [
        (str(plan.segment.path), start, end, fmt, since, until)
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
    try:
        for index, plan in enumerate(plans):
            number = 0
            for _ in plan.ranges:
                data, length, rows, lines, error = next(results)
                if data is None:
                    assert slots is not None
                    slots.write_to(out, job, length)
                else:
                    out.write(data)
                job += 1
                count += rows
                if error is not None:
                    raise corrupt(plan.segment, number + lines + 1, error)
                number += lines
            if plan.clean_end != plan.size and index != len(plans) - 1:
                raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")
    finally:
        results.close()
        if slots is not None:
            slots.close()
    return count


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
