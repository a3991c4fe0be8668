"""``tollgate audit export``: records as JSON Lines, CSV or OCSF (CONTRACT section 3).

Every row carries the record's ``seq`` and its leaf hash, so any exported row can be
proven against a signed checkpoint: the ``record`` (JSON Lines) / ``record`` column
(CSV) / ``raw_data`` (OCSF) is the exact line from the segment, whose
SHA-256(0x00 || line) is the leaf hash.

- ``jsonl``: ``{"leafHash": ..., "record": <the record>, "seq": ...}`` per line, itself
  canonical JSON, so ``record`` re-encodes to the exact bytes that were hashed.
- ``csv``: one row per record, main decision fields as columns plus the whole record;
  every text cell that a spreadsheet would run as a formula is neutralised.
- ``ocsf``: OCSF 1.4.0 API Activity (class 6003) events with the Security Control
  profile, one JSON object per line, for ``decision``, ``invalidRequest`` and
  ``approval`` records (other record types describe the gate itself, not agent activity).

Export does not prove anything by itself: run ``tollgate audit verify`` first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from sidecar import __version__
from sidecar.audit.records import ts_to_epoch_ms
from sidecar.audit.segments import SEGMENTS_DIR, corrupt, iter_line_blocks, list_segments

FORMATS = ("jsonl", "csv", "ocsf")
OCSF_VERSION = "1.4.0"

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

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True)
class ExportedRecord:
    seq: int
    leaf_hash: str
    line: bytes
    record: dict[str, Any]


def iter_records(
    directory: str | Path, since: str | None = None, until: str | None = None
) -> Iterator[ExportedRecord]:
    """Every record in seq order with ``since <= ts < until`` (``ts`` form bounds).

    A torn last line is skipped (it is not a record); a line that is not a JSON object
    raises AuditCorrupt naming its segment and line.
    """
    path = Path(directory)
    if not (path / SEGMENTS_DIR).is_dir():
        raise FileNotFoundError(f"{path} is not an audit directory (no {SEGMENTS_DIR}/)")
    for segment in list_segments(path):
        number = 0
        for lines in iter_line_blocks(segment.path):
            for line in lines:
                number += 1
                try:
                    record = _decode(line)
                except msgspec.DecodeError as exc:
                    raise corrupt(segment, number, f"not valid JSON ({exc})") from exc
                if type(record) is not dict or type(record.get("seq")) is not int:
                    raise corrupt(segment, number, "not an audit record")
                ts = record.get("ts")
                if since is not None and not (isinstance(ts, str) and ts >= since):
                    continue
                if until is not None and not (isinstance(ts, str) and ts < until):
                    continue
                leaf = sha256(b"\x00" + line).hexdigest()
                yield ExportedRecord(record["seq"], leaf, line, record)


def export(
    directory: str | Path,
    fmt: str,
    out: BinaryIO,
    since: str | None = None,
    until: str | None = None,
) -> int:
    """Write the records of ``directory`` to ``out`` in ``fmt``; return the row count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    records = iter_records(directory, since, until)
    if fmt == "jsonl":
        return _write_jsonl(records, out)
    if fmt == "csv":
        return _write_csv(records, out)
    return _write_ocsf(records, out)


def _write_batched(rows: Iterator[bytes], out: BinaryIO) -> int:
    count = 0
    batch: list[bytes] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 4096:
            out.write(b"".join(batch))
            count += len(batch)
            batch.clear()
    out.write(b"".join(batch))
    return count + len(batch)


def _write_jsonl(records: Iterator[ExportedRecord], out: BinaryIO) -> int:
    # Built by concatenation: the keys are already in canonical order and the record is
    # the canonical line itself, so this is canonical JSON without re-encoding.
    return _write_batched(
        (
            b'{"leafHash":"%s","record":%s,"seq":%d}\n'
            % (item.leaf_hash.encode(), item.line, item.seq)
            for item in records
        ),
        out,
    )


def csv_safe(value: Any) -> Any:
    """Neutralise text a spreadsheet would evaluate: prefix it with a single quote."""
    if (
        isinstance(value, str)
        and value
        and (value[0] in _FORMULA_START or value.lstrip()[:1] in _FORMULA_START)
    ):
        return "'" + value
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _encode(value).decode("utf-8")
    return csv_safe(value)


def _write_csv(records: Iterator[ExportedRecord], out: BinaryIO) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        count = 0
        for item in records:
            record = item.record
            writer.writerow(
                (
                    item.seq,
                    _csv_cell(record.get("ts")),
                    _csv_cell(record.get("type")),
                    item.leaf_hash,
                    _csv_cell(record.get("prev")),
                    _csv_cell(record.get("decisionId")),
                    _csv_cell(record.get("action")),
                    _csv_cell(record.get("decision")),
                    _csv_cell(record.get("allowed")),
                    _csv_cell(record.get("dryRun")),
                    _csv_cell(record.get("rule")),
                    _csv_cell(record.get("reason")),
                    _csv_cell(record.get("risk")),
                    _csv_cell(record.get("mode")),
                    _csv_cell(record.get("policy")),
                    _csv_cell(record.get("identity")),
                    _csv_cell(record.get("request")),
                    # The exact hashed line; it starts with '{', never a formula.
                    item.line.decode("utf-8"),
                )
            )
            count += 1
        text.flush()
    finally:
        text.detach()
    return count


# ---------------------------------------------------------------------- OCSF

_API_ACTIVITY = 6003
_APPLICATION_CATEGORY = 6
_ACTIVITY = {"create": 1, "read": 2, "update": 3, "delete": 4}
_ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other", 0: "Unknown"}
_HTTP_ACTIVITY = {
    "GET": 2,
    "HEAD": 2,
    "OPTIONS": 2,
    "POST": 1,
    "PUT": 3,
    "PATCH": 3,
    "DELETE": 4,
}
_K8S_ACTIVITY = {
    "get": 2,
    "list": 2,
    "watch": 2,
    "create": 1,
    "update": 3,
    "patch": 3,
    "delete": 4,
    "deletecollection": 4,
}
_RISK_LEVEL = {"low": (1, "Low"), "medium": (2, "Medium"), "high": (3, "High")}
_SEVERITY = {None: (2, "Low"), "low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High")}
_OCSF_TYPES = frozenset({"decision", "invalidRequest", "approval"})


def _activity_id(action: str | None, request: dict[str, Any]) -> int:
    if action == "file.read":
        return 2
    if action == "file.write":
        return 3
    if action == "file.delete":
        return 4
    if action == "network.request":
        return _HTTP_ACTIVITY.get(str(request.get("method") or "GET").upper(), 99)
    if action == "k8s.request":
        k8s = request.get("k8s") or {}
        return _K8S_ACTIVITY.get(str(k8s.get("verb", "")).lower(), 99)
    if action == "process.exec":
        return 99
    return 0


def _disposition(record: dict[str, Any]) -> tuple[int, str, int, str]:
    """(action_id, action, disposition_id, disposition) of the Security Control profile."""
    if record.get("type") == "invalidRequest":
        return 2, "Denied", 25, "Rejected"
    if record.get("type") == "approval":
        approved = record.get("decision") == "approve"
        return (1, "Allowed", 8, "Approved") if approved else (2, "Denied", 2, "Blocked")
    decision = record.get("decision")
    if record.get("allowed") is True:
        if decision == "allow":
            return 1, "Allowed", 1, "Allowed"
        return 1, "Allowed", 15, "Detected"  # audit mode: would have been denied
    if decision == "require_approval":
        return 2, "Denied", 14, "Delayed"
    return 2, "Denied", 2, "Blocked"


def _resources(action: str | None, request: dict[str, Any]) -> list[dict[str, Any]]:
    if action in {"file.read", "file.write", "file.delete"} and request.get("path"):
        return [{"type": "file", "name": request["path"]}]
    if action == "process.exec":
        argv = request.get("argv")
        name = argv[0] if isinstance(argv, list) and argv else request.get("commandLine")
        return [{"type": "process", "name": name}] if name else []
    if action == "k8s.request":
        k8s = request.get("k8s") or {}
        if k8s.get("resource"):
            resource = {"type": f"kubernetes:{k8s['resource']}", "name": k8s.get("name") or ""}
            if k8s.get("namespace"):
                resource["namespace"] = k8s["namespace"]
            return [resource]
        if k8s.get("path"):
            return [{"type": "kubernetes:nonResourceURL", "name": k8s["path"]}]
    return []


def to_ocsf(item: ExportedRecord) -> dict[str, Any] | None:
    """One OCSF API Activity event for an agent-facing record, None for the others."""
    record = item.record
    record_type = record.get("type")
    if record_type not in _OCSF_TYPES:
        return None
    request = record.get("request") if isinstance(record.get("request"), dict) else {}
    action = record.get("action") or request.get("action")
    activity_id = _activity_id(action, request) if record_type == "decision" else 99
    action_id, action_name, disposition_id, disposition = _disposition(record)
    identity = record.get("identity") or ""
    risk = record.get("risk")
    severity_id, severity = (
        (1, "Informational") if action_id == 1 else _SEVERITY.get(risk, (2, "Low"))
    )
    type_uid = _API_ACTIVITY * 100 + activity_id
    event: dict[str, Any] = {
        "class_uid": _API_ACTIVITY,
        "class_name": "API Activity",
        "category_uid": _APPLICATION_CATEGORY,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": _ACTIVITY_NAMES.get(activity_id, "Other"),
        "type_uid": type_uid,
        "type_name": f"API Activity: {_ACTIVITY_NAMES.get(activity_id, 'Other')}",
        "time": ts_to_epoch_ms(record["ts"]),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1 if action_id == 1 else 2,
        "status": "Success" if action_id == 1 else "Failure",
        "message": record.get("reason") or record_type,
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": ["security_control"],
            "product": {"name": "Tollgate", "vendor_name": "Tollgate", "version": __version__},
            "log_name": "tollgate-audit",
            "uid": item.leaf_hash,
            "sequence": item.seq,
            "original_time": record["ts"],
        },
        "actor": {"app_name": "tollgate", "user": {"name": identity, "uid": identity}},
        "src_endpoint": {"name": identity},
        "api": {
            "operation": str(action or record_type),
            "service": {"name": "tollgate"},
        },
        "action_id": action_id,
        "action": action_name,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "is_alert": action_id == 2 or disposition_id == 15,
        "raw_data": item.line.decode("utf-8"),
        "unmapped": {"tollgate": {"seq": item.seq, "leafHash": item.leaf_hash}},
    }
    if record.get("decisionId"):
        event["api"]["request"] = {"uid": record["decisionId"]}
        event["metadata"]["correlation_uid"] = record["decisionId"]
    if record.get("policy"):
        event["policy"] = {"uid": record["policy"], "name": "tollgate policy"}
        if record.get("mode"):
            event["policy"]["is_applied"] = record.get("mode") == "enforce"
    if record.get("rule"):
        event["firewall_rule"] = {"uid": record["rule"], "name": record["rule"]}
        if record.get("reason"):
            event["firewall_rule"]["desc"] = record["reason"]
    if risk in _RISK_LEVEL:
        event["risk_level_id"], event["risk_level"] = _RISK_LEVEL[risk]
    resources = _resources(action, request)
    if resources:
        event["resources"] = resources
    if action == "network.request" and request.get("host"):
        endpoint = {"hostname": request["host"]}
        if isinstance(request.get("port"), int):
            endpoint["port"] = request["port"]
        event["dst_endpoint"] = endpoint
        url = {"hostname": request["host"], "path": request.get("path") or "/"}
        if request.get("scheme"):
            url["scheme"] = request["scheme"]
        if isinstance(request.get("port"), int):
            url["port"] = request["port"]
        event["http_request"] = {"http_method": str(request.get("method") or "GET"), "url": url}
    return event


def _write_ocsf(records: Iterator[ExportedRecord], out: BinaryIO) -> int:
    def rows() -> Iterator[bytes]:
        for item in records:
            event = to_ocsf(item)
            if event is not None:
                yield _encode(event) + b"\n"

    return _write_batched(rows(), out)
