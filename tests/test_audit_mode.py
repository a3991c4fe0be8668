"""``mode: audit`` against the real daemon (CONTRACT section 1): every decision is
answered ``allowed: true`` and the real decision is answered and recorded beside it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.daemon import Daemon
from tests.test_rate_limits import check, wait_for

POLICY = """\
version: 1
mode: audit
defaultAction: deny
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow, rateLimit: {count: 1, per: 60s}}
  - {id: no-shell, action: process.exec, command: bash, decision: deny, risk: high, reason: "no shells"}
  - {id: deploys, action: k8s.request, verb: delete, resource: deployments, decision: require_approval, risk: high}
"""

CASES = [
    ({"action": "process.exec", "argv": ["bash", "-i"]}, "deny", "no-shell", "no shells"),
    (
        {"action": "file.read", "path": "/etc/shadow"},
        "deny",
        None,
        "no rule allows file.read of /etc/shadow",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/a/deployments/web"},
        },
        "require_approval",
        "deploys",
        "rule deploys requires approval for k8s.request of delete deployments.apps a/web",
    ),
    (
        {"action": "file.read", "path": "/app/data/x"},
        "allow",
        "read-data",
        "rule read-data allows file.read of /app/data/x",
    ),
]


@pytest.fixture
def gate(write_policy, daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory(write_policy(POLICY))


def decision_record(gate: Daemon, decision_id: str) -> dict[str, Any]:
    return next(
        r for r in gate.records() if r["type"] == "decision" and r["decisionId"] == decision_id
    )


def test_every_decision_is_allowed_and_the_real_one_recorded(gate: Daemon) -> None:
    for body, decision, rule, reason in CASES:
        answer = check(gate, body)
        assert (answer["allowed"], answer["mode"]) == (True, "audit"), body
        assert (answer["decision"], answer["rule"], answer["reason"]) == (decision, rule, reason)
        record = decision_record(gate, answer["decisionId"])
        assert (record["allowed"], record["decision"], record["mode"], record["rule"]) == (
            True, decision, "audit", rule,
        )  # fmt: skip


def test_audit_mode_asks_no_human(gate: Daemon) -> None:
    body, *_ = CASES[2]
    answer = check(gate, body)
    assert answer["decision"] == "require_approval" and answer["allowed"] is True
    assert "approval" not in answer
    assert not any(r["type"] == "approval" for r in gate.records())
    assert gate.get("/v1/approvals").json() == {"approvals": []}


def test_a_spent_rate_limit_is_recorded_but_not_enforced(gate: Daemon) -> None:
    read = {"action": "file.read", "path": "/app/data/x"}
    assert check(gate, read)["decision"] == "allow"
    spent = check(gate, read)
    assert (spent["allowed"], spent["decision"], spent["rule"]) == (True, "deny", "read-data")
    assert "rate limit 1/60s of rule read-data is spent" in spent["reason"]
    assert decision_record(gate, spent["decisionId"])["decision"] == "deny"


def test_bad_requests_are_still_refused(gate: Daemon) -> None:
    response = gate.check({"action": "file.read", "path": "relative"})
    assert response.status_code == 400 and response.json()["allowed"] is False


def test_status_and_policy_record_say_audit(gate: Daemon) -> None:
    assert gate.get("/v1/status").json()["mode"] == "audit"
    loaded = next(r for r in gate.records() if r["type"] == "policyLoaded")
    assert loaded["mode"] == "audit"
    assert any("mode: audit" in warning for warning in loaded["warnings"])


def test_switching_to_enforce_starts_denying(gate: Daemon) -> None:
    shell = {"action": "process.exec", "argv": ["bash", "-i"]}
    assert check(gate, shell)["allowed"] is True
    gate.policy.write_text(POLICY.replace("mode: audit", "mode: enforce"))
    wait_for(lambda: check(gate, shell)["mode"] == "enforce")
    answer = check(gate, shell)
    assert (answer["allowed"], answer["decision"]) == (False, "deny")
    body, *_ = CASES[2]
    held = check(gate, body)
    assert held["allowed"] is False and held["approval"]["status"] == "pending"


def test_a_command_line_over_the_budget_is_recorded_as_denied(write_policy, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(
        write_policy(
            "version: 1\nmode: audit\nrules:\n"
            "  - {id: fetches, action: process.exec, command: curl, decision: allow,"
            " rateLimit: {count: 2, per: 1h}}\n"
        )
    )
    three = check(gate, {"action": "process.exec", "commandLine": "curl a; curl b; curl c"})
    assert (three["allowed"], three["decision"], three["rule"]) == (True, "deny", "fetches")
    assert "3 commands or redirections the rule covers, 2 tokens are left" in three["reason"]
    record = decision_record(gate, three["decisionId"])
    assert (record["allowed"], record["decision"]) == (True, "deny")
    # What enforce mode would have refused spent nothing: both tokens are still there.
    two = check(gate, {"action": "process.exec", "commandLine": "curl a; curl b"})
    assert (two["allowed"], two["decision"]) == (True, "allow")
    assert check(gate, {"action": "process.exec", "argv": ["curl", "c"]})["decision"] == "deny"
