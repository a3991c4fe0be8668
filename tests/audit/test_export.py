"""``tollgate audit export``: JSON Lines, CSV and OCSF rows that can be proven."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.export import CSV_COLUMNS, csv_safe, export
from sidecar.audit.log import AuditLog
from sidecar.audit.records import parse_time_bound
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import decision, segment_lines

OpenLog = Callable[..., AuditLog]


def _export(directory: Path, fmt: str, **bounds: str | None) -> bytes:
    out = io.BytesIO()
    export(directory, fmt, out, **bounds)
    return out.getvalue()


@pytest.fixture
def trail(open_log: OpenLog) -> Path:
    log = open_log(checkpoint_every=4)
    log.append_blocking("startup", {"version": "0.1.0"})
    log.append_blocking("decision", decision(1))
    log.append_blocking(
        "decision",
        decision(
            2,
            action="network.request",
            request={
                "action": "network.request",
                "host": "evil.example",
                "port": 443,
                "scheme": "https",
                "method": "DELETE",
                "path": "/x",
            },
            decision="deny",
            allowed=False,
            rule=None,
            reason='=HYPERLINK("http://evil.example","click")',
            risk="high",
        ),
    )
    log.append_blocking(
        "decision",
        decision(
            3,
            action="k8s.request",
            request={
                "action": "k8s.request",
                "k8s": {
                    "verb": "delete",
                    "group": "apps",
                    "version": "v1",
                    "resource": "deployments",
                    "namespace": "prod",
                    "name": "web",
                },
            },
            decision="require_approval",
            allowed=False,
            reason="+cmd|' /C calc'!A0",
        ),
    )
    log.append_blocking(
        "decision", decision(4, decision="deny", allowed=True, mode="audit", reason="@SUM(1)")
    )
    log.append_blocking("invalidRequest", {"error": "-2+3", "body": "{"})
    log.close_blocking()
    return log.directory


def test_jsonl_rows_carry_seq_and_a_provable_leaf_hash(trail: Path) -> None:
    rows = [json.loads(line) for line in _export(trail, "jsonl").splitlines()]
    lines = segment_lines(trail)
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        assert set(row) == {"seq", "leafHash", "record"}
        assert canonical_bytes(row["record"]) == line
        assert row["leafHash"] == hashlib.sha256(b"\x00" + line).hexdigest()
        assert row["seq"] == row["record"]["seq"]
    assert _export(trail, "jsonl").splitlines()[0] == canonical_bytes(rows[0])


def test_csv_neutralises_formulas_and_keeps_the_exact_record(trail: Path) -> None:
    text = _export(trail, "csv").decode("utf-8")
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == CSV_COLUMNS
    rows = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in table[1:]]
    lines = segment_lines(trail)
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        assert row["record"].encode() == line
        assert row["leafHash"] == hashlib.sha256(b"\x00" + line).hexdigest()
        for column, cell in row.items():
            if column != "record":
                assert cell[:1] not in {"=", "+", "-", "@", "\t", "\r"}, (column, cell)
    reasons = [row["reason"] for row in rows]
    assert '\'=HYPERLINK("http://evil.example","click")' in reasons
    assert "'+cmd|' /C calc'!A0" in reasons
    assert "'@SUM(1)" in reasons


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("  =1+1", "'  =1+1"),
        ("\t=x", "'\t=x"),
        ("\uff1dcmd", "'\uff1dcmd"),
        ("safe text", "safe text"),
        ("a=b", "a=b"),
        (5, 5),
    ],
)
def test_csv_safe(value: object, expected: object) -> None:
    assert csv_safe(value) == expected


def _ocsf(trail: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _export(trail, "ocsf").splitlines()]


def test_ocsf_api_activity_with_security_control(trail: Path) -> None:
    events = _ocsf(trail)
    lines = segment_lines(trail)
    # startup and checkpoint records are not agent activity
    assert [e["metadata"]["sequence"] for e in events] == [1, 2, 3, 5, 6]
    for event in events:
        assert event["class_uid"] == 6003 and event["category_uid"] == 6
        assert event["type_uid"] == 600300 + event["activity_id"]
        assert "security_control" in event["metadata"]["profiles"]
        line = lines[event["metadata"]["sequence"]]
        assert event["raw_data"].encode() == line
        assert event["metadata"]["uid"] == hashlib.sha256(b"\x00" + line).hexdigest()
        assert isinstance(event["time"], int) and event["time"] > 1_600_000_000_000
        assert event["actor"] and event["api"]["operation"] and "src_endpoint" in event
    allow, deny, approval, audit_mode, invalid = events
    assert (allow["activity_id"], allow["action_id"], allow["disposition_id"]) == (2, 1, 1)
    assert allow["resources"] == [{"type": "file", "name": "/app/data/1.csv"}]
    assert (deny["activity_id"], deny["action_id"], deny["disposition"]) == (4, 2, "Blocked")
    assert deny["dst_endpoint"] == {"hostname": "evil.example", "port": 443}
    assert deny["http_request"]["http_method"] == "DELETE"
    assert deny["risk_level"] == "High" and deny["is_alert"] is True
    assert (approval["activity_id"], approval["disposition"]) == (4, "Delayed")
    assert approval["resources"][0]["type"] == "kubernetes:deployments"
    assert (audit_mode["action"], audit_mode["disposition"]) == ("Allowed", "Detected")
    assert audit_mode["policy"]["is_applied"] is False
    assert (invalid["action_id"], invalid["disposition"]) == (2, "Rejected")


def test_since_and_until_filter_on_ts(trail: Path) -> None:
    rows = [json.loads(line) for line in _export(trail, "jsonl").splitlines()]
    middle = rows[3]["record"]["ts"]
    after = [json.loads(x)["seq"] for x in _export(trail, "jsonl", since=middle).splitlines()]
    before = [json.loads(x)["seq"] for x in _export(trail, "jsonl", until=middle).splitlines()]
    assert after[0] == 3 and before[-1] == 2
    assert sorted(after + before) == [r["seq"] for r in rows]
    assert _export(trail, "jsonl", since=parse_time_bound("2999-01-01")) == b""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21", "2026-11-21T00:00:00.000000Z"),
        ("2026-11-21T22:10:00Z", "2026-11-21T22:10:00.000000Z"),
        ("2026-11-21T22:10:00.5Z", "2026-11-21T22:10:00.500000Z"),
        ("2026-11-22T00:10:00+02:00", "2026-11-21T22:10:00.000000Z"),
    ],
)
def test_time_bounds(text: str, expected: str) -> None:
    assert parse_time_bound(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-11-21 22:10", "1700000000"])
def test_bad_time_bounds(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_bound(text)


def test_parallel_chunked_export_equals_serial_and_locates_bad_lines(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidecar.audit import chunks
    from sidecar.errors import AuditCorrupt

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 2500)
    log = open_log(tmp_path / "big", segment_bytes=16_000, checkpoint_every=17)
    for i in range(120):
        log.append_blocking("decision", decision(i, reason="=1+1" if i % 7 == 0 else "ok"))
    log.close_blocking()
    directory = tmp_path / "big"
    for fmt in ("jsonl", "csv", "ocsf"):
        serial, parallel = io.BytesIO(), io.BytesIO()
        rows = export(directory, fmt, serial, workers=1)
        assert export(directory, fmt, parallel, workers=2) == rows
        assert serial.getvalue() == parallel.getvalue()
    segment = sorted((directory / "segments").glob("*.jsonl"))[1]
    lines = segment.read_bytes().split(b"\n")
    lines[9] = b"garbage"
    segment.write_bytes(b"\n".join(lines))
    for workers in (1, 2):
        with pytest.raises(AuditCorrupt, match=f"{segment.name} line 10"):
            export(directory, "csv", io.BytesIO(), workers=workers)


def test_the_fast_ocsf_encoding_is_the_event(trail: Path) -> None:
    from sidecar.audit.export import iter_records
    from sidecar.audit.ocsf import ocsf_json, to_ocsf

    checked = 0
    for item in iter_records(trail):
        event = to_ocsf(item.seq, item.leaf_hash, item.line, item.record)
        fast = ocsf_json(item.seq, item.leaf_hash, item.line, item.record)
        assert (event is None) == (fast is None)
        if fast is not None:
            assert json.loads(fast) == event
            checked += 1
    assert checked == 5


def test_ocsf_maps_approval_records_by_their_event(open_log: OpenLog) -> None:
    log = open_log()
    events = ["requested", "approved", "redeemed", "denied", "expired", "forged"]
    for event in events:
        log.append_blocking(
            "approval", {"event": event, "approval": "apr_1", "requestHash": "sha256:00"}
        )
    log.close_blocking()
    rows = [json.loads(line) for line in _export(log.directory, "ocsf").splitlines()]
    got = [row["disposition"] for row in rows]
    assert got == ["Delayed", "Approved", "Allowed", "Blocked", "Blocked", "Rejected"]
