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
from typing import Any, BinaryIO, NamedTuple

import msgspec

from sidecar.audit.chunks import default_workers, ordered_map, plan_trail, read_lines
from sidecar.audit.ocsf import ocsf_json
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


def _records(
    lines: list[bytes], decoder: msgspec.json.Decoder[Any], since: str | None, until: str | None
) -> Iterator[ExportedRecord]:
    """Decode ``lines``; raise _BadLine at the first one that is not an audit record."""
    decode = decoder.decode
    bounded = since is not None or until is not None
    for index, line in enumerate(lines):
        try:
            record = decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
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
        yield ExportedRecord(seq, sha256(b"\x00" + line).hexdigest(), line, record)


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
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
    plans = plan_trail(path)
    for index, plan in enumerate(plans):
        number = 0
        for start, end in plan.ranges:
            lines = read_lines(str(plan.segment.path), start, end)
            try:
                yield from _records(lines, decoder, since, until)
            except _BadLine as bad:
                raise corrupt(plan.segment, number + bad.index + 1, bad.message) from None
            number += len(lines)
        if plan.clean_end != plan.size and index != len(plans) - 1:
            raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")


def render_chunk(
    path: str, start: int, end: int, fmt: str, since: str | None, until: str | None
) -> tuple[bytes, int, int, str | None]:
    """Rows for the lines in ``path[start:end]``: (bytes, rows, lines read, error).

    On a line that is not a record it stops; ``error`` then describes line ``lines read``
    (0-based within the chunk). Runs in worker processes for long trails.
    """
    decoder, render = _RENDERERS[fmt]
    lines = read_lines(path, start, end)
    rows: list[bytes] = []
    try:
        for item in _records(lines, decoder, since, until):
            row = render(item)
            if row is not None:
                rows.append(row)
    except _BadLine as bad:
        return b"".join(rows), len(rows), bad.index, bad.message
    return b"".join(rows), len(rows), len(lines), None


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
    plans = plan_trail(path)
    jobs = [
        (str(plan.segment.path), start, end, fmt, since, until)
        for plan in plans
        for start, end in plan.ranges
    ]
    results = ordered_map(
        render_chunk, jobs, default_workers(plans) if workers is None else workers
    )
    if fmt == "csv":
        out.write(",".join(CSV_COLUMNS).encode("ascii") + b"\r\n")
    count = 0
    try:
        for index, plan in enumerate(plans):
            number = 0
            for _ in plan.ranges:
                data, rows, lines, error = next(results)
                out.write(data)
                count += rows
                if error is not None:
                    raise corrupt(plan.segment, number + lines + 1, error)
                number += lines
            if plan.clean_end != plan.size and index != len(plans) - 1:
                raise corrupt(plan.segment, number + 1, "segment ends in the middle of a line")
    finally:
        results.close()
    return count


def _jsonl_row(item: ExportedRecord) -> bytes:
    # Built by concatenation: the keys are in canonical order and the record is the
    # canonical line itself, so the row is canonical JSON without re-encoding.
    return b'{"leafHash":"%s","record":%s,"seq":%d}\n' % (
        item.leaf_hash.encode("ascii"),
        item.line,
        item.seq,
    )


def _ocsf_row(item: ExportedRecord) -> bytes | None:
    event = ocsf_json(item.seq, item.leaf_hash, item.line, item.record)
    return None if event is None else event + b"\n"


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
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    text = (
        _encode_sorted(value).decode("utf-8")
        if isinstance(value, dict | list)
        else csv_safe(str(value))
    )
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


# The columns from action to identity mostly repeat from row to row: their joined
# text is cached. typed=True keeps True and 1 apart.
@functools.lru_cache(maxsize=8192, typed=True)
def _repeating_fields(values: tuple[Any, ...]) -> str:
    return ",".join(csv_field(value) for value in values)


def _csv_row(item: ExportedRecord) -> bytes:
    record: _CsvFields = item.record
    repeating = (
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
        middle = _repeating_fields(repeating)
    except TypeError:  # an unhashable value (a list or object where text belongs)
        middle = ",".join(csv_field(value) for value in repeating)
    request = bytes(record.request)
    head = ",".join(
        (
            str(item.seq),
            csv_field(record.ts),
            csv_field(record.type),
            item.leaf_hash,
            csv_field(record.prev),
            csv_field(record.decision_id),
            middle,
        )
    )
    # request and record are canonical JSON from the line itself (an object starts
    # with '{', never a formula); null means the record has no request.
    request_field = b"" if request == b"null" else _quote(request)
    return head.encode("utf-8") + b"," + request_field + b"," + _quote(item.line) + b"\r\n"


def _quote(data: bytes) -> bytes:
    if data[:1] != b"{" and data[:1] != b"[":
        return csv_field(msgspec.json.decode(data)).encode("utf-8")
    return b'"' + data.replace(b'"', b'""') + b'"'


_RENDERERS: dict[
    str, tuple[msgspec.json.Decoder[Any], Callable[[ExportedRecord], bytes | None]]
] = {
    "jsonl": (msgspec.json.Decoder(_JsonlFields), _jsonl_row),
    "csv": (msgspec.json.Decoder(_CsvFields), _csv_row),
    "ocsf": (msgspec.json.Decoder(), _ocsf_row),
}
