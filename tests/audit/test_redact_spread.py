"""A secret found in one place of a record is replaced wherever else its text occurs.

The raw text of a command line can hide a password from the patterns (escaped quotes in
an ``sh -c`` script, a backslash inside a program's name) that the gate's analysis of
the same line shows plainly in ``commands``; the raw text must not keep it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from sidecar.approvals.model import bind_request, request_hash
from sidecar.audit.redact import MIN_SPREAD_CHARACTERS, Redactor
from sidecar.normalise.request import normalise_request
from sidecar.request import parse_body
from tests.daemon import checked_through_a_gate

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")
PW = "Hunter2pw77"
POLICY = """\
version: 1
defaultAction: deny
rules:
  - id: curl
    action: process.exec
    command: {equals: curl}
    decision: allow
"""


def recorded_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request part of a decision record, as the gate builds it from ``body``."""
    return normalise_request(parse_body(json.dumps(body).encode()), "agent").record


def decided_without_the_password(tmp_path: Path, policy: str, line: str) -> dict[str, Any]:
    """The decision record a real gate running ``policy`` writes for a command line,
    after checking that no byte under its audit directory holds ``PW``."""
    daemon, everything = checked_through_a_gate(
        tmp_path, policy, [{"action": "process.exec", "commandLine": line}]
    )
    assert PW.encode() not in everything
    (decision,) = [r for r in daemon.records() if r["type"] == "decision"]
    return decision


def test_a_password_in_an_escaped_quote_of_an_sh_script_is_replaced_in_the_raw_line() -> None:
    line = f'sh -c "curl -u \\"bob:{PW}\\" https://example.com/"'
    request = recorded_request({"action": "process.exec", "commandLine": line})
    assert request["commands"] == [["curl", "-u", f"bob:{PW}", "https://example.com/"]]
    redacted = Redactor(KEY).redact({"request": request})
    written = json.dumps(redacted)
    assert PW not in written
    # The same tag in both places: one secret, one keyed digest.
    assert len(set(TAG.findall(written))) == 1
    assert redacted["request"]["commandLine"].startswith('sh -c "curl -u \\"bob:[REDACTED:')


def test_a_password_after_a_program_name_holding_a_backslash_is_replaced_in_the_raw_line() -> None:
    line = f"s\\shpass -p {PW} ssh host"
    request = recorded_request({"action": "process.exec", "commandLine": line})
    assert request["commands"][0][:3] == ["sshpass", "-p", PW]
    redacted = Redactor(KEY).redact({"request": request})
    assert PW not in json.dumps(redacted)
    assert redacted["request"]["commandLine"].startswith("s\\shpass -p [REDACTED:password:")
    assert redacted["request"]["commandLine"].endswith(" ssh host")


def test_a_value_under_a_secret_named_key_is_replaced_in_free_text_too() -> None:
    context = {"dbPassword": PW, "note": f"connect with {PW} then query"}
    redacted = Redactor(KEY).redact({"request": {"context": context}})["request"]
    tag = redacted["context"]["dbPassword"]
    assert TAG.fullmatch(tag)
    assert redacted["context"]["note"] == f"connect with {tag} then query"


def test_a_secret_holding_another_is_replaced_whole() -> None:
    context = {"password": "abcd", "token": "abcdefgh", "note": "x abcdefgh y abcd z"}
    redacted = Redactor(KEY).redact({"request": {"context": context}})["request"]
    long_tag, short_tag = redacted["context"]["token"], redacted["context"]["password"]
    assert redacted["context"]["note"] == f"x {long_tag} y {short_tag} z"


def test_a_secret_shorter_than_the_minimum_is_replaced_only_where_it_was_found() -> None:
    short = "a" * (MIN_SPREAD_CHARACTERS - 1)
    request = {"context": {"password": short}, "path": f"/srv/{short}/x"}
    redacted = Redactor(KEY).redact({"request": request})["request"]
    assert TAG.fullmatch(redacted["context"]["password"])
    assert redacted["path"] == f"/srv/{short}/x"


def test_the_gates_own_fields_are_never_rewritten() -> None:
    """Ids, hashes, rule names and the mode are the gate's, not the agent's: a secret
    whose text they happen to hold leaves them as they are (a decisionId or a policy
    hash rewritten would no longer match the answer or the policy)."""
    secret = "ABCD1234"
    record = {
        "decisionId": f"01JDEF{secret}XYZ0123456789",
        "policy": f"sha256:00{secret.lower()}ff",
        "rule": f"allow-{secret}",
        "mode": "enforce",
        "request": {"context": {"password": secret}, "path": f"/srv/{secret}/x"},
    }
    redacted = Redactor(KEY).redact(record)
    assert {key: redacted[key] for key in ("decisionId", "policy", "rule", "mode")} == {
        key: record[key] for key in ("decisionId", "policy", "rule", "mode")
    }
    assert secret not in json.dumps(redacted["request"])


def test_keys_keep_their_names_and_a_record_redacted_twice_reads_the_same() -> None:
    request = {
        "context": {"password": PW, "note": f"pw {PW}", f"{PW}Count": 1},
        "argv": ["curl", "-u", f"bob:{PW}"],
    }
    redactor = Redactor(KEY)
    once = redactor.redact({"request": request})
    assert list(once["request"]["context"]) == ["password", "note", f"{PW}Count"]
    assert PW not in json.dumps([once["request"]["context"]["note"], once["request"]["argv"]])
    assert redactor.redact(once) == once


def test_nothing_found_leaves_the_body_itself() -> None:
    body = {"request": {"commandLine": "ls -la /srv/app", "commands": [["ls", "-la", "/srv/app"]]}}
    assert Redactor(KEY).redact(body) is body


def test_the_gate_writes_no_password_that_its_analysis_found(tmp_path: Path) -> None:
    """Through a real gate: the raw command line, the analysed command and the reason
    of the decision record all carry the tag, and no byte under the audit directory
    holds the password."""
    line = f'sh -c "curl -u \\"bob:{PW}\\" https://example.com/"'
    decision = decided_without_the_password(tmp_path, POLICY, line)
    assert decision["allowed"] is True
    tags = {
        *TAG.findall(decision["request"]["commandLine"]),
        *TAG.findall(decision["request"]["commands"][0][2]),
        *TAG.findall(decision["reason"]),
    }
    assert len(tags) == 1


def test_thousands_of_secrets_sharing_a_prefix_are_spread_in_bounded_time() -> None:
    """A body near the size limit naming 1,500 passwords that share a 24-character
    prefix, over a reason of 30,000 characters of that prefix: the spread looks for
    each secret at every position, and must not turn that into a product of the two
    sizes on the trail's record path (a guard against a pathological case, not a speed
    target: about 0.08 s here)."""
    line = "tool " + " ".join(f"--password {'a' * 24}{i:05d}" for i in range(1500))
    request = recorded_request({"action": "process.exec", "commandLine": line})
    record = {"request": request, "reason": "x " + "a" * 30_000}
    started = time.perf_counter()
    redacted = Redactor(KEY).redact(record)
    assert time.perf_counter() - started < 2.0
    assert f"{'a' * 24}00042" not in json.dumps(redacted)


def test_approvers_are_shown_the_request_as_the_trail_records_it() -> None:
    """An approval's view of the request (``bind_request``) is redacted as a record's
    request is: the raw command line does not show approvers the password either."""
    line = f'sh -c "curl -u \\"bob:{PW}\\" https://example.com/"'
    request = recorded_request({"action": "process.exec", "commandLine": line})
    redactor = Redactor(KEY)
    bound = bind_request("process.exec", request, "r", redactor.redact, redactor.keyed_digest)
    assert PW not in json.dumps(bound.shown)
    assert bound.shown == redactor.redact({"request": request, "reason": "r"})["request"]


def test_a_secret_only_the_reason_shows_is_hidden_from_approvers_too() -> None:
    """Found in the red-team review of 2026-12-07: the argv items of ``curl --oauth2-bearer
    TOKEN`` showed no secret alone, the policy's reason (the command quoted as one line)
    did, and the trail's record spread it into the request while the approval, redacted
    alone, showed approvers and the webhook the token in clear (and published a hash of
    the raw request). The approval's request is now the trail's, in either case."""
    request = recorded_request({"action": "process.exec", "argv": ["tool", "--bearer-x", PW]})
    reason = f"rule ask requires approval of tool --bearer-x {PW}; bearer {PW}"
    redactor = Redactor(KEY)
    bound = bind_request("process.exec", request, reason, redactor.redact, redactor.keyed_digest)
    assert PW not in json.dumps(bound.shown)
    record = redactor.redact({"request": request, "policyReason": reason})
    assert bound.shown == record["request"]
    assert bound.request_hash == request_hash("process.exec", record["request"])
