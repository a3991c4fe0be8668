"""The real daemon over real HTTP: answers for all four families, errors, operations
endpoints, concurrency with an intact chain, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from pathlib import Path

import httpx
import pytest

from sidecar.canonical import canonical_bytes
from tests.daemon import Daemon

POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow, risk: low}
  - {id: no-exec, action: process.exec, decision: deny, reason: "no shell for this agent"}
  - {id: git-status, action: process.exec, command: git, args: {prefix: [status]}, decision: allow}
  - {id: llm-apis, action: network.request, host: [api.openai.com, api.anthropic.com], decision: allow}
  - {id: pods-read, action: k8s.request, verb: [get, list], resource: pods, namespace: apps, decision: allow}
  - {id: deploy-writes, action: k8s.request, verb: [delete, patch], resource: deployments, decision: require_approval, risk: high}
"""


@pytest.fixture
def gate(tmp_path: Path, daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return daemon_factory(policy)


def leaf_hash(line: bytes) -> str:
    return hashlib.sha256(b"\x00" + line).hexdigest()


def assert_chain_intact(audit_dir: Path) -> list[dict]:
    """Recompute seq and prev over every segment file, byte for byte."""
    records = []
    prev = "0" * 64
    for segment in sorted((audit_dir / "segments").glob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            assert canonical_bytes(record) == line, "record is not canonical JSON"
            assert record["seq"] == len(records)
            assert record["prev"] == prev
            prev = leaf_hash(line)
            records.append(record)
    return records


FAMILY_CASES = [
    ({"action": "file.read", "path": "/app/data/x.csv"}, True, "allow", "read-data"),
    ({"action": "file.read", "path": "/etc/shadow"}, False, "deny", None),
    ({"action": "process.exec", "argv": ["git", "status"]}, False, "deny", "no-exec"),
    (
        {
            "action": "network.request",
            "url": "https://api.openai.com/v1/chat/completions",
            "method": "POST",
        },
        True,
        "allow",
        "llm-apis",
    ),
    ({"action": "network.request", "url": "http://169.254.169.254/"}, False, "deny", None),
    (
        {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/namespaces/apps/pods"}},
        True,
        "allow",
        "pods-read",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/apps/deployments/web"},
        },
        False,
        "require_approval",
        "deploy-writes",
    ),
]


def test_answers_for_all_four_families(gate: Daemon) -> None:
    for body, allowed, decision, rule in FAMILY_CASES:
        response = gate.check(body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["allowed"], answer["decision"], answer["rule"]) == (
            allowed,
            decision,
            rule,
        ), body
        assert answer["mode"] == "enforce" and answer["policy"].startswith("sha256:")
        assert len(answer["decisionId"]) == 26 and isinstance(answer["audit"]["seq"], int)
    shadow = gate.check({"action": "file.read", "path": "/etc/shadow"}).json()
    assert shadow["reason"] == "no rule allows file.read of /etc/shadow"
    assert (
        gate.check({"action": "process.exec", "argv": ["ls"]}).json()["reason"]
        == "no shell for this agent"
    )


def test_every_answer_is_on_disk_with_its_leaf_hash(gate: Daemon) -> None:
    answers = [gate.check(body).json() for body, *_ in FAMILY_CASES]
    records = {r["seq"]: r for r in assert_chain_intact(gate.audit_dir)}
    lines = {}
    for segment in sorted((gate.audit_dir / "segments").glob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            lines[json.loads(line)["seq"]] = line
    for answer in answers:
        record = records[answer["audit"]["seq"]]
        assert record["type"] == "decision" and record["decisionId"] == answer["decisionId"]
        assert record["decision"] == answer["decision"] and record["policy"] == answer["policy"]
        assert record["identity"] == "test/agent/pod-1"
        assert leaf_hash(lines[answer["audit"]["seq"]]) == answer["audit"]["hash"]
    first = records[answers[0]["audit"]["seq"]]
    assert first["request"] == {"path": "/app/data/x.csv"} and first["risk"] == "low"
    assert records[0]["type"] == "startup"
    assert any(r["type"] == "policyLoaded" for r in records.values())


def test_any_content_type_is_accepted_when_the_body_is_json(gate: Daemon) -> None:
    body = json.dumps({"action": "file.read", "path": "/app/data/x"})
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ):
        response = gate.check(body, headers={"content-type": content_type})
        assert response.status_code == 200 and response.json()["allowed"] is True
    assert gate.client is not None
    assert gate.client.post("/v1/check", content=body).json()["allowed"] is True


BAD_BODIES = [
    (b"{not json", 400, "invalid_request"),
    (b"", 400, "invalid_request"),
    (b"[1, 2]", 400, "invalid_request"),
    (
        b'{"action": "file.read", "path": "/app/data/x", "path": "/etc/shadow"}',
        400,
        "invalid_request",
    ),
    (b'{"action": "file.read", "path": NaN}', 400, "invalid_request"),
    (b'{"action": "file.read", "path": "/app/data/\\ud800"}', 400, "invalid_request"),
    (b"\xff\xfe", 400, "invalid_request"),
    (json.dumps({"action": "file.read", "path": 3}).encode(), 400, "invalid_request"),
    (json.dumps({"action": "teleport", "path": "/x"}).encode(), 400, "invalid_request"),
    (
        json.dumps({"action": "file.read", "path": "/x", "colour": "red"}).encode(),
        400,
        "invalid_request",
    ),
    (json.dumps({"action": "file.read", "path": "data/x"}).encode(), 400, "invalid_request"),
    (
        json.dumps({"action": "file.read", "path": "/app/data/x\u0000/../../etc"}).encode(),
        400,
        "invalid_request",
    ),
    (
        json.dumps({"action": "file.read", "path": "/x", "context": {"t": "a\u0000"}}).encode(),
        400,
        "invalid_request",
    ),
    (
        json.dumps({"action": "network.request", "host": "a.com", "port": 99999}).encode(),
        400,
        "invalid_request",
    ),
    (
        json.dumps({"action": "network.request", "host": "a.com", "port": True}).encode(),
        400,
        "invalid_request",
    ),
    (json.dumps({"action": "file.read", "path": "/" + "a" * 70000}).encode(), 413, "too_large"),
    (b"[" * 100000, 413, "too_large"),
    (b"[" * 60000, 400, "invalid_request"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_input_gets_a_clear_error_and_the_daemon_stays_healthy(
    gate: Daemon, body: bytes, status: int, code: str
) -> None:
    response = gate.check(body)
    assert response.status_code == status
    error = response.json()
    assert (
        error["allowed"] is False and error["error"]["code"] == code and error["error"]["message"]
    )
    assert gate.get("/health").json() == {"status": "ok"}
    assert gate.check({"action": "file.read", "path": "/app/data/x"}).json()["allowed"] is True


def test_bad_requests_are_recorded_truncated(gate: Daemon) -> None:
    gate.check(json.dumps({"action": "file.read", "path": "/x", "junk": "y" * 10000}).encode())
    invalid = [r for r in assert_chain_intact(gate.audit_dir) if r["type"] == "invalidRequest"]
    assert len(invalid) == 1
    assert invalid[0]["code"] == "invalid_request" and "junk" in invalid[0]["message"]
    assert invalid[0]["truncated"] is True and len(invalid[0]["body"]) <= 2048


@pytest.mark.parametrize(
    "argv",
    [
        ["mysql", "--password", "QargvLeak0001"],
        ["sshpass", "-p", "QargvLeak0001", "ssh", "host"],
        ["curl", "-u", "bob:QargvLeak0001", "https://x"],
        # JSON text writes a '"' in the password as \": the secret the list showed, found
        # there only as it is written (fuzz of 2026-12-06, left open that day).
        ["mysql", "--password", 'QargvLeak0001"QargvLeak0001'],
    ],
    ids=["option", "sshpass", "curl", "quote"],
)
def test_a_refused_requests_argv_secrets_are_redacted_as_an_accepted_ones(
    gate: Daemon, argv: list[str]
) -> None:
    # Found by the redaction fuzz of 2026-12-06: a refused body is kept as text, which
    # only the text patterns read, and an argv list's '"--password","pw"' was kept in
    # clear (the same argv in a valid request is tagged).
    _assert_refused_and_kept_redacted(
        gate, {"action": "process.exec", "argv": argv, "cwd": "rel"}, b"QargvLeak0001"
    )


def _assert_refused_and_kept_redacted(
    gate: Daemon, request: dict[str, object], secret: bytes
) -> None:
    """``request`` is refused (400) and recorded as an invalidRequest whose kept body
    holds a password tag, and no byte of the audit directory holds ``secret``."""
    response = gate.check(request)
    assert response.status_code == 400
    everything = b"".join(f.read_bytes() for f in gate.audit_dir.rglob("*") if f.is_file())
    assert secret not in everything
    invalid = [r for r in assert_chain_intact(gate.audit_dir) if r["type"] == "invalidRequest"]
    assert "[REDACTED:password:" in invalid[-1]["body"]


def test_a_reason_quoting_a_secret_keeps_none_of_it(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The reason shell-quotes and cuts the command it quotes: a password holding a
    # quote, and a long token cut short, were left in part in the trail (fuzz of
    # 2026-12-06); the request's fields were tagged.
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaultAction: deny\nrules: []\n")
    gate = daemon_factory(policy)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJRbGVha1BheWxvYWQwMDAxMjM0NTY3ODkwIn0." + "Q" * 43
    for argv in (
        ["env", "PGPASSWORD=QreasonLeak01'QreasonLeak02", "psql"],
        ["aws", "configure", "set", "aws_session_token", "x" * 30 + token],
    ):
        answer = gate.check({"action": "process.exec", "argv": argv}).json()
        assert answer["allowed"] is False
    records = [r for r in assert_chain_intact(gate.audit_dir) if r["type"] == "decision"]
    assert "…" in records[-1]["reason"]  # the reason cut the token short
    everything = b"".join(f.read_bytes() for f in gate.audit_dir.rglob("*") if f.is_file())
    for piece in (b"QreasonLeak0", b"eyJ", b"RbGVha1BheWxvYWQ"):
        assert piece not in everything, piece


@pytest.mark.parametrize(
    "command",
    [
        'sshpass -p QlineLeak01\\"QlineLeak02 ssh host',
        "redis-cli -a QlineLeak01\\&QlineLeak02 ping",
        'app --db-password "QlineLeak01\\"QlineLeak02 \\$x"',
    ],
    ids=["escaped-quote", "escaped-ampersand", "double-quoted"],
)
def test_a_command_lines_escaped_password_keeps_none_of_it(gate: Daemon, command: str) -> None:
    # A backslash before a quote or '&' stopped the pattern reading the raw command line
    # there, and the rest stayed in clear; its analysed words were tagged whole (fuzz of
    # 2026-12-06). The line is now read after them, and their secrets found as written.
    answer = gate.check({"action": "process.exec", "commandLine": command}).json()
    assert answer["allowed"] is False
    everything = b"".join(f.read_bytes() for f in gate.audit_dir.rglob("*") if f.is_file())
    assert b"QlineLeak0" not in everything
    decision = [r for r in assert_chain_intact(gate.audit_dir) if r["type"] == "decision"][-1]
    tags = set(re.findall(r"\[REDACTED:password:[0-9a-f]{8}\]", json.dumps(decision["request"])))
    assert len(tags) == 1, decision["request"]  # the line and its words: one secret, one tag


@pytest.mark.parametrize(
    "command",
    [
        'sshpass -p QlineLeak01\\"QlineLeak02 ssh host',
        'redis-cli -a QlineLeak01\\"QlineLeak02\\&x ping',
        'app --db-password QlineLeak01\\\\QlineLeak02\\"QlineLeak03',
        'docker login -u bot -p QlineLeak01\\"\\;QlineLeak02 r.io',
    ],
    ids=["sshpass", "redis-cli", "option", "docker"],
)
def test_a_refused_command_lines_escaped_password_keeps_none_of_it(
    gate: Daemon, command: str
) -> None:
    # A refused body is kept as text and its command line is never analysed: the text
    # patterns stopped at the backslash, and the rest stayed in clear (fuzz of
    # 2026-12-06, a documented miss until the sixteenth session). The line is now split
    # into words as the shell would, for redaction only, and their secrets found in the
    # text as it writes them (JSON-escaped shell escapes).
    _assert_refused_and_kept_redacted(
        gate, {"action": "process.exec", "commandLine": command, "cwd": "rel"}, b"QlineLeak0"
    )


def test_error_details_name_the_field(gate: Daemon) -> None:
    error = gate.check({"action": "file.read", "path": "rel"}).json()["error"]
    assert error["details"] == [{"field": "path", "message": "is relative and no cwd was given"}]


def test_unknown_routes_and_methods_are_json_errors(gate: Daemon) -> None:
    missing = gate.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = gate.get("/check")
    assert wrong.status_code == 405 and wrong.json()["allowed"] is False
    assert wrong.headers["allow"] == "POST"
    # Every 405 names the methods the route takes (RFC 9110 15.5.6); only /check's did
    # (rt25 api review, 4).
    assert gate.client is not None
    for method, path, allowed in (
        ("POST", "/health", "GET, HEAD"),
        ("OPTIONS", "/v1/status", "GET, HEAD"),
        ("PUT", "/v1/approvals", "GET, HEAD"),
        ("DELETE", "/v1/approvals/apr_x", "GET, HEAD, POST"),
    ):
        answer = gate.client.request(method, path)
        assert answer.status_code == 405, (method, path)
        assert answer.json()["error"]["code"] == "method_not_allowed"
        allow = answer.headers.get("allow") or ""
        assert set(allow.split(", ")) == set(allowed.split(", ")), (method, path, allow)


def test_a_trailing_slash_is_a_404_not_a_redirect(gate: Daemon) -> None:
    # Found in the approvals review of 2026-12-06: Starlette answered a decision POSTed
    # to /v1/approvals/ID/ with a 307 whose Location it built from the Host header, and
    # the attempt went unrecorded.
    for method, path in (("POST", "/v1/approvals/apr_x/"), ("GET", "/health/")):
        assert gate.client is not None
        response = gate.client.request(method, path, json={"decision": "approve"})
        assert response.status_code == 404, (method, path)
        assert "location" not in response.headers
        assert response.json()["error"]["code"] == "not_found"


def test_operations_endpoints(gate: Daemon) -> None:
    assert gate.get("/health").json() == {"status": "ok"}
    assert gate.get("/ready").status_code == 200
    status = gate.get("/v1/status").json()
    policy_hash = "sha256:" + hashlib.sha256(POLICY.encode()).hexdigest()
    assert status["policy"]["hash"] == policy_hash and status["policy"]["rules"] == 6
    assert status["policy"]["lastError"] is None and status["policy"]["loadedAt"].endswith("Z")
    assert status["identity"] == "test/agent/pod-1" and status["mode"] == "enforce"
    assert status["audit"]["seq"] >= 2 and len(status["audit"]["head"]) == 64
    assert status["version"] and status["uptime"] >= 0


def test_no_valid_policy_means_503_everywhere(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "broken.yaml"
    policy.write_text("version: 1\nrules:\n  - {action: file.read, decision: allow, pth: /x}\n")
    gate = daemon_factory(policy, wait_ready=False)
    ready = gate.get("/ready")
    assert ready.status_code == 503 and "no valid policy" in ready.json()["reasons"][0]
    answer = gate.check({"action": "file.read", "path": "/x"})
    assert answer.status_code == 503 and answer.json()["allowed"] is False
    assert answer.json()["error"]["code"] == "unavailable"
    status = gate.get("/v1/status").json()
    assert "pth: unknown key" in status["policy"]["lastError"]
    assert any(r["type"] == "policyRejected" for r in gate.records())


def test_200_parallel_checks_all_answered_recorded_and_chained(gate: Daemon) -> None:
    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=gate.url, limits=limits, timeout=30) as client:
            bodies = [
                {"action": "file.read", "path": f"/app/data/{i}.csv"}
                if i % 2
                else {"action": "file.read", "path": f"/etc/{i}"}
                for i in range(200)
            ]
            return await asyncio.gather(*(client.post("/check", json=b) for b in bodies))

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    answers = [r.json() for r in responses]
    assert sum(a["allowed"] for a in answers) == 100
    seqs = [a["audit"]["seq"] for a in answers]
    assert len(set(seqs)) == 200
    records = {r["seq"]: r for r in assert_chain_intact(gate.audit_dir)}
    for answer in answers:
        assert records[answer["audit"]["seq"]]["decisionId"] == answer["decisionId"]


def test_sigterm_finishes_and_writes_a_shutdown_record(gate: Daemon) -> None:
    assert gate.check({"action": "file.read", "path": "/app/data/x"}).status_code == 200
    # uvicorn shuts down gracefully, then re-raises the signal, as a container expects.
    assert gate.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    records = assert_chain_intact(gate.audit_dir)
    types = [r["type"] for r in records]
    assert "shutdown" in types and types.index("shutdown") > max(
        i for i, t in enumerate(types) if t == "decision"
    )


def test_dry_run_is_recorded_as_such(gate: Daemon) -> None:
    answer = gate.check({"action": "file.read", "path": "/app/data/x", "dryRun": True}).json()
    assert answer["allowed"] is True and answer["dryRun"] is True
    record = next(r for r in gate.records() if r.get("decisionId") == answer["decisionId"])
    assert record["dryRun"] is True


def test_an_answer_to_a_command_with_redirections_carries_its_request(gate: Daemon) -> None:
    # The clients' run() checks where each redirection lands (a symlink on the way) from
    # the answer's normalised request (red-team review of 2026-12-07); an answer to a
    # command without redirections stays as the contract shows it.
    line = {
        "action": "process.exec",
        "commandLine": "git status > /tmp/out < /tmp/in",
        "cwd": "/app",
    }
    answer = gate.check(line).json()
    assert answer["request"]["writes"] == ["/tmp/out"]
    assert answer["request"]["reads"] == ["/tmp/in"]
    record = next(r for r in gate.records() if r.get("decisionId") == answer["decisionId"])
    assert answer["request"] == record["request"]
    for plain in (
        {"action": "process.exec", "commandLine": "git status", "cwd": "/app"},
        {"action": "file.read", "path": "/app/data/x"},
    ):
        assert "request" not in gate.check(plain).json()


def test_the_request_in_an_answer_leaves_out_the_callers_context(gate: Daemon) -> None:
    # The context is the caller's, of any shape: echoed, '{"allowed":true}' in it would
    # put those bytes into a deny answer, where a grep for them (rt24 clients review)
    # or a careless reader finds an allow. The record keeps it.
    body = {
        "action": "process.exec",
        "commandLine": "echo pwned > /etc/cron.d/x",
        "cwd": "/app",
        "context": {"allowed": True, "task": {"allowed": True}},
    }
    response = gate.check(body)
    answer = response.json()
    assert (answer["allowed"], answer["decision"]) == (False, "deny")
    assert answer["request"]["writes"] == ["/etc/cron.d/x"]
    assert "context" not in answer["request"]
    assert response.content.count(b'"allowed":true') == 0
    record = next(r for r in gate.records() if r.get("decisionId") == answer["decisionId"])
    assert record["request"]["context"] == body["context"]
    assert answer["request"] == {k: v for k, v in record["request"].items() if k != "context"}
