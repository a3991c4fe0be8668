"""``tollgate audit export``: JSON Lines, CSV and OCSF rows that can be proven."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.export import CSV_COLUMNS, csv_safe, export
from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import Frontier
from sidecar.audit.note import Signer
from sidecar.audit.records import parse_time_bound
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision, segment_lines

OpenLog = Callable[..., AuditLog]
K8S = {
    "verb": "delete",
    "group": "apps",
    "version": "v1",
    "resource": "deployments",
    "namespace": "prod",
    "name": "web",
}


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
            request={"action": "k8s.request", "k8s": K8S},
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
        # Past the microsecond: a record at .065497 is before .065497123, not at or after.
        ("2026-11-21T22:10:07.065497123Z", "2026-11-21T22:10:07.065498Z"),
        ("2026-11-21T22:10:07.065497000Z", "2026-11-21T22:10:07.065497Z"),
        ("2026-11-21T22:10:07.999999999Z", "2026-11-21T22:10:08.000000Z"),
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
    from sidecar.audit import export as export_module

    monkeypatch.setattr(export_module, "EXPORT_CHUNK_BYTES", 2500)
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


def test_rows_too_big_for_a_shared_slot_still_arrive_in_order(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers hand rows over in shared memory; what does not fit goes the slow way."""
    from sidecar.audit import export as export_module

    monkeypatch.setattr(export_module, "EXPORT_CHUNK_BYTES", 3000)
    log = open_log(tmp_path / "big", segment_bytes=20_000)
    for i in range(90):
        log.append_blocking("decision", decision(i, reason="x" * (i * 37 % 500)))
    log.close_blocking()
    directory = tmp_path / "big"
    serial = io.BytesIO()
    export(directory, "ocsf", serial, workers=1)
    chunk_sizes = [len(chunk) for chunk in _rendered_chunks(directory, "ocsf")]
    # A slot size between the smallest and the largest chunk: both paths are taken.
    monkeypatch.setattr(export_module, "_SLOT_BYTES", sorted(chunk_sizes)[len(chunk_sizes) // 2])
    parallel = io.BytesIO()
    export(directory, "ocsf", parallel, workers=2)
    assert parallel.getvalue() == serial.getvalue()


def _rendered_chunks(directory: Path, fmt: str) -> list[bytes]:
    from sidecar.audit.chunks import plan_trail
    from sidecar.audit.export import EXPORT_CHUNK_BYTES, render_chunk

    return [
        bytes(render_chunk(str(plan.segment.path), start, end, fmt, None, None)[0])
        for plan in plan_trail(directory, EXPORT_CHUNK_BYTES)
        for start, end in plan.ranges
    ]


def test_ocsf_maps_approval_records_by_their_event(open_log: OpenLog) -> None:
    log = open_log()
    events = ["requested", "notified", "approved", "redeemed", "denied", "expired", "forged"]
    for event in events:
        log.append_blocking(
            "approval", {"event": event, "approval": "apr_1", "requestHash": "sha256:00"}
        )
    log.close_blocking()
    rows = [json.loads(line) for line in _export(log.directory, "ocsf").splitlines()]
    got = [row["disposition"] for row in rows]
    assert got == ["Delayed", "Delayed", "Approved", "Allowed", "Blocked", "Blocked", "Rejected"]


# ---------------------------------------------------------------------------------------
# Byte-for-byte stability. The export formats are read by other people's tools, so their
# bytes are pinned: the digests below are of the output of the implementation before the
# fast encoders (commit 163049b) on a fixed trail that exercises every mapping branch and
# the odd values a tampered or hand-edited trail can hold, with one deliberate change:
# csv and ocsf no longer mistake ``"allowed": 1`` for ``true`` from a cache (see
# test_cached_cells_keep_true_and_1_apart).

POLICY = "sha256:" + "cd" * 32


def _decision_body(action: str, request: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decisionId": f"01JVARIED{len(request):017d}",
        "action": action,
        "request": {"action": action, **request},
        "decision": "allow",
        "allowed": True,
        "rule": "r1",
        "reason": "allowed by rule r1",
        "risk": None,
        "mode": "enforce",
        "policy": POLICY,
        "identity": "apps/agent-1",
    }
    body.update(fields)
    return body


def _varied_bodies() -> list[tuple[str, dict[str, Any]]]:
    deny = {"decision": "deny", "allowed": False}
    return [
        ("startup", {"version": "0.1.0", "identity": "apps/agent-1", "pid": 7}),
        ("policyLoaded", {"policy": POLICY, "source": "/etc/tollgate/policy.yaml", "rules": 3}),
        ("decision", _decision_body("file.read", {"path": "/app/data/a.csv"}, risk="low")),
        (
            "decision",
            _decision_body(
                "file.write",
                {"path": "/app/out/ü 日本.txt"},
                risk="medium",
                rule=None,
                reason="no rule allows file.write of /app/out/ü 日本.txt",
                **deny,
            ),
        ),
        (
            "decision",
            _decision_body(
                "file.delete", {"path": "/app/x"}, risk="high", reason='=HYPERLINK("x","c")', **deny
            ),
        ),
        (
            "decision",
            _decision_body(
                "process.exec",
                {"argv": ["git", "status", "--short"], "cwd": "/app"},
                reason="+cmd|' /C calc'!A0",
            ),
        ),
        (
            "decision",
            _decision_body(
                "process.exec",
                {"commandLine": "curl -H 'Authorization: [REDACTED:bearer:0a1b2c3d]' x"},
                reason='-2+3, "quoted"\r\nnext',
                **deny,
            ),
        ),
        ("decision", _decision_body("process.exec", {"argv": []}, reason="@SUM(1)", dryRun=True)),
        (
            "decision",
            _decision_body(
                "network.request",
                {
                    "host": "api.openai.com",
                    "port": 443,
                    "scheme": "https",
                    "method": "POST",
                    "path": "/v1/chat",
                    "context": {"task": "t\u2028\u0001\\", "n": [1, {"b": None}]},
                },
            ),
        ),
        ("decision", _decision_body("network.request", {"host": "example.com"}, reason="\t=tab")),
        (
            "decision",
            _decision_body(
                "network.request",
                {"host": "example.com", "port": "80", "method": "patch"},
                reason="\uff1dfullwidth",
            ),
        ),
        (
            "decision",
            _decision_body(
                "k8s.request",
                {"k8s": K8S},
                decision="require_approval",
                allowed=False,
                approval="apr_01JX",
                reason="needs a human",
            ),
        ),
        (
            "decision",
            _decision_body("k8s.request", {"k8s": {**K8S, "namespace": "", "verb": "list"}}),
        ),
        ("decision", _decision_body("k8s.request", {"k8s": {"verb": "get", "path": "/healthz"}})),
        (
            "decision",
            _decision_body(
                "k8s.request",
                {"k8s": {"verb": "watch", "resource": "pods/exec", "namespace": "a", "name": ""}},
                mode="audit",
                decision="deny",
            ),
        ),
        ("decision", _decision_body("custom.thing", {}, risk="extreme", rule="r,2")),
        (
            "decision",
            _decision_body(
                "network.request",
                {"host": 'h"\x00tollgate:path\x00', "path": "/p"},
                reason="100% %s %(x)b %%",
            ),
        ),
        (
            "decision",
            _decision_body(
                "file.read", {"path": "/%d/%b/%%/\x00tollgate:path\x00"}, rule="%(time)d"
            ),
        ),
        (
            "decision",
            _decision_body(
                "network.request",
                {
                    "host": "a%b.example",
                    "port": 8443,
                    "scheme": "http",
                    "method": "GET",
                    "path": "/%s",
                },
            ),
        ),
        (
            "decision",
            _decision_body(
                "file.read",
                {"path": "/a"},
                reason=["not", "text"],
                identity=None,
                policy=None,
                mode=None,
                rule={"x": 1},
            ),
        ),
        (
            "decision",
            {
                key: value
                for key, value in _decision_body("file.read", {"path": "/b"}).items()
                if key not in {"action", "identity", "policy"}
            },
        ),
        ("decision", _decision_body("file.read", {"path": "/c"}, allowed=1, decision="allow")),
        ("decision", {**_decision_body("file.read", {}), "request": "not an object"}),
        (
            "invalidRequest",
            {
                "code": "invalid_request",
                "message": '=1+1 bad "json"',
                "bytes": 5,
                "body": '{"a"',
                "truncated": False,
                "identity": "apps/agent-1",
            },
        ),
        (
            "invalidRequest",
            {
                "code": "too_large",
                "message": "body over 64 KiB",
                "bytes": 70000,
                "body": "x" * 40,
                "truncated": True,
                "identity": "apps/agent-1",
            },
        ),
        (
            "approval",
            {
                "event": "requested",
                "approval": "apr_01JX",
                "requestHash": "sha256:00",
                "decisionId": "01JVARIEDAPPROVAL000000001",
                "identity": "apps/agent-1",
            },
        ),
        (
            "approval",
            {
                "event": "approved",
                "approval": "apr_01JX",
                "approver": "alice",
                "reason": "ok, ship it",
                "requestHash": "sha256:00",
            },
        ),
        ("approval", {"event": "redeemed", "approval": "apr_01JX", "requestHash": "sha256:00"}),
        ("approval", {"event": "forged", "approval": "apr_01JX", "approver": "mallory"}),
        ("approval", {"event": "expired", "approval": "apr_01JY"}),
        ("approval", {"event": "refused", "approval": "apr_01JZ", "reason": "-no"}),
        (
            "checkpoint",
            {
                "note": "tollgate/apps/agent-1\n28\nAAAA\n\n\u2014 k abc=\n",
                "origin": "tollgate/apps/agent-1",
                "publicKey": "AAAA",
                "rootHash": "AAAA",
                "treeSize": 28,
            },
        ),
        ("recovery", {"droppedBytes": 17, "segment": "00000000000000000000.jsonl"}),
        ("policyRejected", {"error": "rules[0]: unknown key 'x'", "source": "/p.yaml"}),
        ("shutdown", {"reason": "signal", "identity": "apps/agent-1"}),
    ]


# Lines no verified trail holds (export does not insist on canonical form): whitespace,
# escapes, a float, duplicate keys, unsorted keys, a missing ts, a huge integer.
_RAW_LINES = [
    b'{"seq": 35, "ts": "2026-11-21T22:11:00.000000Z", "type": "decision", "action": '
    b'"file.read", "request": {"path": "/d", "port": 1.5}, "allowed": true, "decision": '
    b'"allow", "reason": "caf\\u00e9 \\/ \\"q\\"", "policy": "p", "identity": "i"}',
    b'{"seq":36,"ts":"2026-11-21T22:11:01.000000Z","type":"decision","reason":"first",'
    b'"reason":"second","action":"network.request","request":{"host":"a.b","host":"c.d",'
    b'"port":8080,"method":"GET"},"allowed":1.0,"decision":"allow","risk":"high"}',
    b'{"type":"approval","seq":37,"ts":"2026-11-21T22:11:02.000000Z","event":"approved",'
    b'"extra":[1,2,3]}',
    b'{"seq":38,"type":"startup"}',
    b'{"seq":39,\t"ts":"2026-11-21T22:11:04.000000Z","type":"invalidRequest","n":'
    b"123456789012345678901234567890}",
    b'{"seq":40,"ts":"2026-11-21T22:11:05.000000Z","type":"decision","decisionId":"=x",'
    b'"action":"k8s.request","request":{"k8s":{"verb":"GET","resource":"pods","name":null}},'
    b'"allowed":false,"decision":"deny","rule":"-r","mode":"enforce","policy":"@p",'
    b'"identity":"+i","dryRun":false}',
]


@pytest.fixture
def varied_trail(tmp_path: Path) -> Path:
    return write_varied_trail(tmp_path / "varied")


def chain_raw_lines(lines: list[bytes], prev: str = "0" * 64) -> list[bytes]:
    """``lines`` (JSON objects) each given the ``prev`` of the line before, as their
    first key: export checks the chain, whatever else a line holds."""
    chained = []
    for line in lines:
        linked = b'{"prev":"%b",%b' % (prev.encode("ascii"), line[1:])
        chained.append(linked)
        prev = hashlib.sha256(b"\x00" + linked).hexdigest()
    return chained


# A fixed key, so that the varied trail's bytes (and the digests pinned below) stay put:
# Ed25519 signatures are deterministic.
_FIXED_SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def write_varied_trail(directory: Path, raw_lines: list[bytes] = _RAW_LINES) -> Path:
    """Three segments: canonical records with fixed times chained by prev, then raw lines
    (chained by prev too)."""
    segments = directory / "segments"
    segments.mkdir(parents=True)
    prev = "0" * 64
    files: dict[int, list[bytes]] = {0: [], 20: [], 35: []}
    tree = Frontier()
    for seq, (record_type, body) in enumerate(_varied_bodies()):
        second, micros = divmod(seq * 1_234_567, 1_000_000)
        ts = f"2026-11-21T22:{10 + second // 60:02d}:{second % 60:02d}.{micros:06d}Z"
        if record_type == "checkpoint":  # export compares its signed root with the records'
            checkpoint = Checkpoint("tollgate/apps/agent-1", seq, tree.root())
            body = {
                **body,
                "note": _FIXED_SIGNER.sign(checkpoint.text(), checkpoint.origin),
                "rootHash": checkpoint.root_b64,
                "treeSize": seq,
            }
        record = {**body, "seq": seq, "ts": ts, "type": record_type, "prev": prev}
        line = canonical_bytes(record)
        tree.append(hashlib.sha256(b"\x00" + line).digest())
        files[0 if seq < 20 else 20].append(line)
        prev = hashlib.sha256(b"\x00" + line).hexdigest()
    files[35] = chain_raw_lines(raw_lines, prev)
    for first, lines in files.items():
        (segments / f"{first:020d}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return directory


_BOUNDS = {"since": "2026-11-21T22:10:05.000000Z", "until": "2026-11-21T22:11:03.000000Z"}


@pytest.mark.parametrize(
    ("fmt", "bounded", "rows", "digest"),
    [
        ("jsonl", False, 41, "dc4f269d61bc158c9d147d8ba2909fc81bdce3e814509cba02c5e6041ae7ae3e"),
        ("jsonl", True, 33, "b7d204bca404d882e889341dcb0b3e9ae2764a887ed40f78f53c1670ff4718af"),
        ("csv", False, 41, "4abb46d4f7d6c011eb6248c62838adb526ac068c0354b28071248854d7b5f621"),
        ("csv", True, 33, "da352caa662bb81af347407e19a649f4002b5f8ee21e10fe8c2be50fad4789a2"),
        # ocsf: a preflight is Allowed / No Action with unmapped.dryRun (2026-12-06 review)
        ("ocsf", False, 34, "622ba047562ca7e5b73da637f5172f0c00e1b1efa397eddc0af267630eef5ada"),
        ("ocsf", True, 29, "bd6bd5c3c87d655d45f94a76fb95010fc70974dafb81b858bd9810aa64e78612"),
    ],
)
def test_export_bytes_are_unchanged(
    varied_trail: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    bounded: bool,
    rows: int,
    digest: str,
) -> None:
    from sidecar.audit import export as export_module

    bounds = _BOUNDS if bounded else {}
    serial = io.BytesIO()
    assert export(varied_trail, fmt, serial, workers=1, **bounds) == rows
    assert hashlib.sha256(serial.getvalue()).hexdigest() == digest
    # Several chunks per segment in two worker processes: the same bytes.
    monkeypatch.setattr(export_module, "EXPORT_CHUNK_BYTES", 1500)
    parallel = io.BytesIO()
    assert export(varied_trail, fmt, parallel, workers=2, **bounds) == rows
    assert parallel.getvalue() == serial.getvalue()


def test_fast_ocsf_bytes_are_the_encoded_event(trail: Path, varied_trail: Path) -> None:
    """The templated encoder writes exactly what encoding ``to_ocsf``'s dict writes."""
    from sidecar.audit.export import iter_records
    from sidecar.audit.ocsf import decode_record, ocsf_json, ocsf_line, to_ocsf

    encode = msgspec.json.Encoder().encode
    checked = 0
    for directory in (trail, varied_trail):
        for item in iter_records(directory):
            event = to_ocsf(item.seq, item.leaf_hash, item.line, item.record)
            for record in (item.record, decode_record(item.line)):
                line = ocsf_line(item.seq, item.leaf_hash, item.line, record)
                if event is None:
                    assert line is None
                    continue
                assert line == encode(event) + b"\n"
                assert ocsf_json(item.seq, item.leaf_hash, item.line, record) == line[:-1]
                checked += 1
    assert checked == 2 * (5 + 34)


def test_ocsf_event_without_a_valid_ts_is_located(tmp_path: Path) -> None:

    raw_lines = list(_RAW_LINES)
    raw_lines[1] = raw_lines[1].replace(b"2026-11-21T22:11:01.000000Z", b"2026-11-21 22:11:01")
    varied_trail = write_varied_trail(tmp_path / "varied", raw_lines)
    raw = varied_trail / "segments" / f"{35:020d}.jsonl"
    assert export(varied_trail, "jsonl", io.BytesIO()) == 41  # jsonl does not read ts
    with pytest.raises(AuditCorrupt, match=rf"{raw.name} line 2: not an audit record \(ts"):
        export(varied_trail, "ocsf", io.BytesIO())


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-21T22:10:00.123456Z",
        "1970-01-01T00:00:00.999999Z",
        "2026-11-21T22:10:00.12345\u0663Z",  # an Arabic-Indic digit is no record digit
        "2026-11-21T22:10:00.12345\u00b2Z",  # a superscript two is not
        "2026-11-21T22:10:00.12345Z",
        "2026-11-21T22:10:00.1234567Z",
        "2026-02-30T22:10:00.123456Z",
        "2026-11-21 22:10:00.123456Z",
        "2026-11-21T22:10:00.123456z",
    ],
)
def test_ocsf_time_is_the_record_ts_in_epoch_milliseconds(ts: str) -> None:
    from sidecar.audit.ocsf import NotAnEvent, _epoch_ms
    from sidecar.audit.records import ts_to_epoch_ms

    try:
        expected: int | None = ts_to_epoch_ms(ts)
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(NotAnEvent):
            _epoch_ms(ts)
    else:
        assert _epoch_ms(ts) == expected


def test_cached_cells_keep_true_and_1_apart(tmp_path: Path) -> None:
    """Rows are built from cached parts keyed by field values; True == 1 in Python, but
    a record saying 1 must not be exported as true (or the other way round)."""
    body = b'"action":"file.read","decision":"allow","identity":"i","policy":"p","ts":'
    values = [b"true", b"1", b"1.0", b"true", b"false", b"0"]
    lines = chain_raw_lines(
        [
            b'{"allowed":%b,%b"2026-11-21T22:10:0%d.000000Z","type":"decision","seq":%d}'
            % (value, body, seq, seq)
            for seq, value in enumerate(values)
        ]
    )
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / f"{0:020d}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    table = list(csv.reader(io.StringIO(_export(tmp_path, "csv").decode())))
    assert [row[CSV_COLUMNS.index("allowed")] for row in table[1:]] == [
        "true",
        "1",
        "1.0",
        "true",
        "false",
        "0",
    ]
    events = [json.loads(line) for line in _export(tmp_path, "ocsf").splitlines()]
    assert [event["disposition"] for event in events] == [
        "Allowed",
        "Blocked",
        "Blocked",
        "Allowed",
        "Blocked",
        "Blocked",
    ]


# Review of 2026-12-07: export checked the chain only, so a record changed with the
# chain after it recomputed, or records cut from the signed end, were exported as whole
# with exit 0. It now also compares the records' Merkle roots with the checkpoints.
def _signed_trail_in_one_segment(open_log: OpenLog, count: int = 40) -> Path:
    log = open_log(checkpoint_every=9)
    for index in range(count):
        log.append_blocking("decision", decision(index))
    log.close_blocking()
    return log.directory


def _rewrite(directory: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    """Change the lines of the (only) segment and chain the rest again, as someone
    who knows the format but not the key would."""
    (segment,) = sorted((directory / "segments").glob("*.jsonl"))
    lines = change(segment.read_bytes().split(b"\n")[:-1])
    prev = "0" * 64
    chained = []
    for seq, line in enumerate(lines):
        record = json.loads(line)
        record["seq"], record["prev"] = seq, prev
        chained.append(canonical_bytes(record))
        prev = hashlib.sha256(b"\x00" + chained[-1]).hexdigest()
    segment.write_bytes(b"".join(line + b"\n" for line in chained))


def _forge_first_decision(lines: list[bytes]) -> list[bytes]:
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record.get("type") == "decision":
            record["decision"], record["reason"] = "deny", "forged after the fact"
            lines[index] = canonical_bytes(record)
            return lines
    raise AssertionError("no decision")


def test_a_record_changed_with_the_chain_recomputed_is_not_exported(
    open_log: OpenLog,
) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    _rewrite(directory, _forge_first_decision)
    with pytest.raises(AuditCorrupt, match="signed root is not that of the records before it"):
        export(directory, "jsonl", io.BytesIO(), workers=1)


def test_records_cut_from_the_signed_end_are_not_exported_as_whole(open_log: OpenLog) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    size = int((directory / "checkpoint").read_text().split("\n")[1])
    _rewrite(directory, lambda lines: lines[: size - 2])
    with pytest.raises(AuditCorrupt, match=f"signs {size} records but the trail holds {size - 2}"):
        export(directory, "csv", io.BytesIO(), workers=1)


def test_an_intact_signed_trail_still_exports_in_every_format(open_log: OpenLog) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    for fmt in ("jsonl", "csv", "ocsf"):
        assert export(directory, fmt, io.BytesIO(), workers=1) > 0


def test_a_trail_whose_oldest_segments_were_shipped_off_exports_from_the_start_file(
    open_log: OpenLog,
) -> None:
    log = open_log(checkpoint_every=7, segment_bytes=4_000)
    for index in range(60):
        log.append_blocking("decision", decision(index))
    log.close_blocking()
    segments = sorted((log.directory / "segments").glob("*.jsonl"))
    assert len(segments) >= 4
    for shipped in segments[:2]:
        shipped.unlink()
    rows = export(log.directory, "jsonl", io.BytesIO(), workers=1)
    kept = sum(len(path.read_bytes().split(b"\n")) - 1 for path in segments[2:])
    assert rows == kept


def test_a_trail_emptied_under_its_checkpoint_is_not_exported_as_empty(
    open_log: OpenLog,
) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    for segment in (directory / "segments").glob("*.jsonl"):
        segment.unlink()
    with pytest.raises(AuditCorrupt, match="records were removed"):
        export(directory, "ocsf", io.BytesIO(), workers=1)


def test_tampering_is_found_by_parallel_workers_too(open_log: OpenLog) -> None:
    log = open_log(checkpoint_every=50, segment_bytes=200_000)
    for index in range(3_000):
        log.append_blocking("decision", decision(index))
    log.close_blocking()
    assert export(log.directory, "jsonl", io.BytesIO(), workers=2) > 3_000
    segments = sorted((log.directory / "segments").glob("*.jsonl"))
    lines = segments[-1].read_bytes().split(b"\n")[:-1]
    record = json.loads(lines[5])
    record["reason"] = "forged"
    lines[5] = canonical_bytes(record)
    for index in range(6, len(lines)):  # the chain after it, recomputed
        later = json.loads(lines[index])
        later["prev"] = hashlib.sha256(b"\x00" + lines[index - 1]).hexdigest()
        lines[index] = canonical_bytes(later)
    segments[-1].write_bytes(b"".join(line + b"\n" for line in lines))
    with pytest.raises(AuditCorrupt, match="is not that of the"):
        export(log.directory, "jsonl", io.BytesIO(), workers=2)


# Third review (2026-12-07): export compared the records with the checkpoint records'
# rootHash field, which nothing signs, and knew them by how their line ends; a forger
# recomputing that field (or adding a space) and removing DIR/checkpoint passed.
def _with_root_fields_recomputed(lines: list[bytes]) -> list[bytes]:
    tree = Frontier()
    out = []
    for line in _forge_first_decision(lines):
        record = json.loads(line)
        if record.get("type") == "checkpoint":
            record["rootHash"] = base64.b64encode(tree.root()).decode()
        out.append(canonical_bytes(record))
        tree.append(hashlib.sha256(b"\x00" + out[-1]).digest())
    return out


def test_a_forger_recomputing_the_unsigned_root_field_is_still_caught(
    open_log: OpenLog,
) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    (directory / "checkpoint").unlink()
    _rewrite(directory, _with_root_fields_recomputed)
    with pytest.raises(AuditCorrupt, match="fields disagree with its signed note"):
        export(directory, "jsonl", io.BytesIO(), workers=1)


def test_a_checkpoint_record_out_of_canonical_form_is_still_compared(
    open_log: OpenLog,
) -> None:
    directory = _signed_trail_in_one_segment(open_log)
    (directory / "checkpoint").unlink()
    (segment,) = sorted((directory / "segments").glob("*.jsonl"))
    lines = _forge_first_decision(segment.read_bytes().split(b"\n")[:-1])
    prev = "0" * 64
    for seq, line in enumerate(lines):
        record = json.loads(line)
        record["prev"] = prev
        # json.dumps' spaces: the line no longer ends as a canonical checkpoint record.
        spaced = record.get("type") == "checkpoint"
        lines[seq] = (
            json.dumps(record, sort_keys=True).encode() if spaced else canonical_bytes(record)
        )
        prev = hashlib.sha256(b"\x00" + lines[seq]).hexdigest()
    segment.write_bytes(b"".join(line + b"\n" for line in lines))
    with pytest.raises(AuditCorrupt, match="signed root is not that of the records before it"):
        export(directory, "csv", io.BytesIO(), workers=1)
