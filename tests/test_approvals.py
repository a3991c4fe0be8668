"""Human approvals against the real daemon (CONTRACT 2.4): signed decisions, forged,
replayed, expired and mismatched approvals, concurrent redemption, long-polling,
surviving a restart, the webhook and the ``tollgate approvals`` command.

Signatures here are built from the contract's words (canonical JSON of four keys,
Ed25519 via ``cryptography``), not with the gate's own signing module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.approvals.service import NotPending
from sidecar.errors import PolicyError
from sidecar.keys import generate_keypair
from sidecar.policy.loader import load_policy_file
from tests.daemon import Daemon, answering_peer, free_port, refusing_writes

if TYPE_CHECKING:
    from sidecar.gate import Gate

DELETE_WEB = {
    "action": "k8s.request",
    "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/apps/deployments/web"},
}
DELETE_API = {
    "action": "k8s.request",
    "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/apps/deployments/api"},
}
APPROVAL_ID = re.compile(r"apr_[0-9A-HJKMNP-TV-Z]{26}")
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"  # 36 characters after ghp_
# The removals rule has no reason: the default one quotes the command line.
RM_WITH_TOKEN = {
    "action": "process.exec",
    "argv": ["rm", "-rf", "/app/y", f"--token={GITHUB_TOKEN}"],
}


# -- keys, policy, signing ----------------------------------------------------------------


@dataclass
class Approver:
    name: str
    key_file: Path

    @property
    def private_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    @property
    def public_base64(self) -> str:
        return base64.b64encode(self.private_key.public_key().public_bytes_raw()).decode()

    def sign(
        self, approval: str, decision: str, request_hash: str, as_name: str | None = None
    ) -> str:
        message = json.dumps(
            {
                "approval": approval,
                "approver": as_name or self.name,
                "decision": decision,
                "requestHash": request_hash,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        return base64.b64encode(self.private_key.sign(message)).decode()


@pytest.fixture
def people(tmp_path: Path) -> dict[str, Approver]:
    keys = tmp_path / "keys"
    return {
        name: Approver(name, generate_keypair(keys, name)[0])
        for name in ("alice", "bob", "mallory")
    }


def policy_text(
    people: dict[str, Approver], timeout: str = "300s", webhook: str | None = None
) -> str:
    notify = f"\n  notify: {{webhook: '{webhook}'}}" if webhook else ""
    return f"""\
version: 1
rules:
  - {{id: read-data, action: file.read, path: {{glob: "/app/data/**"}}, decision: allow, risk: low}}
  - {{id: deploy-writes, action: k8s.request, verb: [delete, patch], resource: deployments, decision: require_approval, risk: high, reason: "deployment changes need a human"}}
  - {{id: removals, action: process.exec, command: rm, decision: require_approval, risk: high}}
  - {{id: file-removals, action: file.delete, path: {{glob: "/app/**"}}, decision: require_approval}}
approvals:
  timeout: {timeout}
  approvers:
    - {{name: alice, publicKey: "{people["alice"].public_base64}"}}
    - {{name: bob, publicKey: "{people["bob"].public_base64}"}}{notify}
"""


@pytest.fixture
def start(tmp_path: Path, daemon_factory, people) -> Callable[..., Daemon]:  # type: ignore[no-untyped-def]
    def start(
        timeout: str = "300s", webhook: str | None = None, audit_dir: Path | None = None
    ) -> Daemon:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text(people, timeout, webhook))
        return daemon_factory(policy, audit_dir=audit_dir)

    return start


def ask(gate: Daemon, body: dict[str, Any] = DELETE_WEB) -> dict[str, Any]:
    response = gate.check(body)
    assert response.status_code == 200, response.text
    return response.json()


def redeem(gate: Daemon, approval_id: str, body: dict[str, Any] = DELETE_WEB) -> dict[str, Any]:
    return ask(gate, {**body, "approval": approval_id})


def view(gate: Daemon, approval_id: str, wait: float | None = None) -> dict[str, Any]:
    suffix = f"?wait={wait}" if wait is not None else ""
    response = gate.get(f"/v1/approvals/{approval_id}{suffix}")
    assert response.status_code == 200, response.text
    return response.json()


def post(gate: Daemon, approval_id: str, body: Any) -> httpx.Response:
    assert gate.client is not None
    if isinstance(body, bytes):
        return gate.client.post(f"/v1/approvals/{approval_id}", content=body)
    return gate.client.post(f"/v1/approvals/{approval_id}", json=body)


def decision_body(
    signature: str, approver: str = "alice", decision: str = "approve", **extra: Any
) -> dict[str, Any]:
    return {"decision": decision, "approver": approver, "signature": signature, **extra}


def decide(
    gate: Daemon, approval_id: str, who: Approver, decision: str = "approve", **extra: Any
) -> httpx.Response:
    """Sign and post ``decision`` for the request hash the gate shows."""
    request_hash = view(gate, approval_id)["requestHash"]
    signature = who.sign(approval_id, decision, request_hash)
    return post(gate, approval_id, decision_body(signature, who.name, decision, **extra))


def approval_events(gate: Daemon, approval_id: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in gate.records()
        if r["type"] == "approval" and (approval_id is None or r["approval"] == approval_id)
    ]


def events(gate: Daemon, approval_id: str | None = None) -> list[str]:
    return [r["event"] for r in approval_events(gate, approval_id)]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- the basic flow ---------------------------------------------------------------------------


def test_require_approval_opens_a_pending_approval_bound_to_the_request(start) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    before = time.time()
    answer = ask(gate)
    assert (answer["allowed"], answer["decision"], answer["rule"], answer["risk"]) == (
        False, "require_approval", "deploy-writes", "high",
    )  # fmt: skip
    approval = answer["approval"]
    assert APPROVAL_ID.fullmatch(approval["id"]) and approval["status"] == "pending"
    assert 299 <= parse_time(approval["expiresAt"]) - before <= 302

    (requested,) = approval_events(gate)
    decision = next(
        r
        for r in gate.records()
        if r["type"] == "decision" and r["decisionId"] == answer["decisionId"]
    )
    assert requested["event"] == "requested" and requested["approval"] == approval["id"]
    assert (
        requested["decisionId"] == answer["decisionId"] and decision["approval"] == approval["id"]
    )
    assert requested["seq"] < decision["seq"], "the approval is recorded before the answer"
    # The hash is SHA-256 of the canonical {"action", "request"} of the normalised request
    # as shown (redacted; this one holds no secret, so as sent and bound by that hash).
    canonical = json.dumps(
        {"action": "k8s.request", "request": decision["request"]},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert requested["requestHash"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert requested["binding"] == requested["requestHash"]
    assert requested["request"] == decision["request"]

    shown = view(gate, approval["id"])
    assert shown["status"] == "pending" and shown["requestHash"] == requested["requestHash"]
    assert (
        shown["request"]["k8s"]["name"] == "web"
        and shown["policyReason"] == "deployment changes need a human"
    )
    listed = gate.get("/v1/approvals?status=pending").json()["approvals"]
    assert [a["id"] for a in listed] == [approval["id"]]
    assert gate.get("/v1/approvals?status=approved").json() == {"approvals": []}
    assert gate.get("/v1/approvals?status=maybe").status_code == 400
    assert "tollgate_approvals_pending 1.0" in gate.get("/metrics").text
    # The same check again gets the same approval: one action, one human question.
    assert ask(gate)["approval"]["id"] == approval["id"]
    assert ask(gate, DELETE_API)["approval"]["id"] != approval["id"]
    assert [r["event"] for r in approval_events(gate)] == ["requested", "requested"]


def test_an_approved_request_is_allowed_exactly_once(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    # Before a decision, re-sending with the id is still waiting, not allowed.
    waiting = redeem(gate, approval_id)
    assert (waiting["allowed"], waiting["decision"]) == (False, "require_approval")
    assert waiting["approval"]["status"] == "pending"

    response = decide(gate, approval_id, people["alice"], reason="planned rollout")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["approver"]) == ("approved", "alice")
    used = redeem(gate, approval_id)
    assert (used["allowed"], used["decision"], used["rule"]) == (True, "allow", "deploy-writes")
    assert "alice" in used["reason"] and used["approval"]["status"] == "redeemed"

    replay = redeem(gate, approval_id)
    assert (replay["allowed"], replay["decision"]) == (False, "deny")
    assert "already used" in replay["reason"]
    assert events(gate, approval_id) == ["requested", "approved", "redeemed"]
    approved = approval_events(gate, approval_id)[1]
    assert approved["approver"] == "alice" and approved["reason"] == "planned rollout"
    # The record alone proves who approved what: its signature verifies with alice's key.
    signed = {k: approved[k] for k in ("approver", "decision", "requestHash")}
    message = json.dumps({**signed, "approval": approval_id}, sort_keys=True, separators=(",", ":"))
    alice_key = people["alice"].private_key.public_key()
    alice_key.verify(base64.b64decode(approved["signature"]), message.encode())
    redeemed = approval_events(gate, approval_id)[2]
    assert redeemed["decisionId"] == used["decisionId"]
    assert view(gate, approval_id)["redeemedBy"] == used["decisionId"]
    # A decided approval cannot be decided again, even with a valid signature.
    again = decide(gate, approval_id, people["bob"], "deny")
    assert again.status_code == 409 and again.json()["allowed"] is False
    assert events(gate, approval_id)[-1] == "refused"


def syncs(gate: Daemon) -> float:
    text = gate.get("/metrics").text
    (line,) = [
        row
        for row in text.splitlines()
        if row.startswith("tollgate_audit_sync_duration_seconds_count")
    ]
    return float(line.split()[-1])


def test_an_approval_and_its_decision_are_written_together_or_not_at_all(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    with refusing_writes(gate):
        refused = gate.check(DELETE_WEB)
        assert refused.status_code == 503 and refused.json()["allowed"] is False
        assert gate.get("/v1/approvals").json() == {"approvals": []}, "no approval was opened"
    assert not any(r["type"] == "approval" for r in gate.records())

    before = syncs(gate)
    answer = ask(gate)
    assert syncs(gate) == before + 1, "the approval and the decision share one sync"
    approval_id = answer["approval"]["id"]
    requested, decision = gate.records()[-2:]
    assert (requested["type"], requested["event"], decision["type"]) == (
        "approval",
        "requested",
        "decision",
    )
    assert decision["seq"] == requested["seq"] + 1 and decision["approval"] == approval_id
    assert decide(gate, approval_id, people["alice"]).status_code == 200

    # The check that would use the approval cannot be recorded: it is denied, and the
    # approval is not used up by a check nobody was allowed to act on.
    with refusing_writes(gate):
        failed = gate.check({**DELETE_WEB, "approval": approval_id})
        assert failed.status_code == 503 and failed.json()["allowed"] is False
        assert view(gate, approval_id)["status"] == "approved"
    assert events(gate, approval_id) == ["requested", "approved"]

    before = syncs(gate)
    used = redeem(gate, approval_id)
    assert syncs(gate) == before + 1
    assert (used["allowed"], used["approval"]["status"]) == (True, "redeemed")
    redeemed, decision = gate.records()[-2:]
    assert (redeemed["event"], redeemed["decisionId"]) == ("redeemed", used["decisionId"])
    assert decision["seq"] == redeemed["seq"] + 1 and decision["decisionId"] == used["decisionId"]


def test_a_denied_approval_denies_and_says_who(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    assert (
        decide(gate, approval_id, people["bob"], "deny", reason="not during the freeze").status_code
        == 200
    )
    answer = redeem(gate, approval_id)
    assert answer["allowed"] is False and answer["decision"] == "deny"
    assert "denied by bob: not during the freeze" in answer["reason"]
    # Asking again opens a new approval rather than reviving the denied one.
    assert ask(gate)["approval"]["id"] != approval_id


# -- forged, replayed, mismatched ---------------------------------------------------------


def test_forged_decisions_are_refused_with_403_and_recorded(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    other_id = ask(gate, DELETE_API)["approval"]["id"]
    request_hash = view(gate, approval_id)["requestHash"]
    alice, mallory = people["alice"], people["mallory"]
    # fmt: off
    forged: list[tuple[str, Any]] = [
        ("unsigned", {"decision": "approve", "approver": "alice"}),
        ("not json", b"approve please"),
        ("not an object", [1, 2]),
        ("bad base64", decision_body("%%%")),
        ("short signature", decision_body(base64.b64encode(b"x" * 10).decode())),
        ("unknown decision", decision_body(alice.sign(approval_id, "maybe", request_hash), decision="maybe")),
        ("extra field", decision_body(alice.sign(approval_id, "approve", request_hash), force=True)),
        ("wrong key for alice", decision_body(mallory.sign(approval_id, "approve", request_hash, as_name="alice"))),
        ("approver not listed", decision_body(mallory.sign(approval_id, "approve", request_hash), approver="mallory")),
        ("signed for another approval", decision_body(alice.sign(other_id, "approve", request_hash))),
        ("signed for the other decision", decision_body(alice.sign(approval_id, "deny", request_hash))),
        ("signed for another request", decision_body(alice.sign(approval_id, "approve", "sha256:" + "0" * 64))),
        ("signed as bob", decision_body(alice.sign(approval_id, "approve", request_hash, as_name="bob"))),
    ]
    # fmt: on
    for label, body in forged:
        response = post(gate, approval_id, body)
        assert response.status_code == 403, label
        assert (
            response.json()["allowed"] is False and response.json()["error"]["code"] == "forbidden"
        ), label
    assert post(gate, "apr_nope", {"decision": "approve"}).status_code == 404
    assert gate.get("/v1/approvals/apr_nope").status_code == 404
    unknown = redeem(gate, "apr_01JXXXXXXXXXXXXXXXXXXXXXXX")
    assert unknown["allowed"] is False and "unknown" in unknown["reason"]
    assert view(gate, approval_id)["status"] == "pending"
    assert redeem(gate, approval_id)["allowed"] is False
    recorded = [r for r in approval_events(gate) if r["event"] == "forged"]
    assert len(recorded) == len(forged) + 1
    assert {r["approval"] for r in recorded} == {approval_id, "apr_nope"}
    assert all(r["problem"] for r in recorded)
    assert any("mallory" in r["problem"] for r in recorded)
    # The genuine decision still works afterwards.
    assert decide(gate, approval_id, alice).status_code == 200


def test_a_valid_signature_cannot_be_replayed_onto_another_approval(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    first = ask(gate)["approval"]["id"]
    request_hash = view(gate, first)["requestHash"]
    body = decision_body(people["alice"].sign(first, "approve", request_hash))
    assert post(gate, first, body).status_code == 200
    assert redeem(gate, first)["allowed"] is True
    # The same request asked again gets a new approval; the old signature is worthless.
    second = ask(gate)["approval"]["id"]
    assert second != first
    assert post(gate, second, body).status_code == 403
    assert redeem(gate, second)["allowed"] is False


def test_an_approval_only_covers_the_identical_request(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    body = {**DELETE_WEB, "context": {"task": "roll back release 41"}}
    approval_id = ask(gate, body)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    for label, other in [
        ("another deployment", {**DELETE_API, "context": body["context"]}),
        ("another justification", {**DELETE_WEB, "context": {"task": "cleanup"}}),
        ("no justification", DELETE_WEB),
        ("another verb", {**body, "k8s": {**DELETE_WEB["k8s"], "method": "PATCH"}}),
    ]:
        answer = redeem(gate, approval_id, other)
        assert answer["allowed"] is False and answer["decision"] == "deny", label
        assert "different request" in answer["reason"], label
    # The same request in another spelling normalises to the same thing and is covered.
    same = {
        **body,
        "k8s": {
            "verb": "delete",
            "group": "apps",
            "version": "v1",
            "resource": "deployments",
            "namespace": "apps",
            "name": "web",
        },
    }
    assert redeem(gate, approval_id, same)["allowed"] is True


# Found by a red-team review of 2026-12-06 (eighteenth session): the approver was shown
# "/app/config.yaml" for "/app/cache/../config.yaml" (elsewhere when /app/cache is a
# link), and another spelling of the same lexical path redeemed the approval.
def test_an_approval_shows_and_binds_a_file_path_as_written(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    body = {"action": "file.delete", "path": "/app/cache/../config.yaml"}
    approval_id = ask(gate, body)["approval"]["id"]
    shown = view(gate, approval_id)["request"]
    assert shown == {"path": "/app/config.yaml", "writtenPath": "/app/cache/../config.yaml"}
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    for other in ("/app/tmp/x/../../config.yaml", "/app/config.yaml"):
        answer = redeem(gate, approval_id, {"action": "file.delete", "path": other})
        assert answer["allowed"] is False and "different request" in answer["reason"], other
    assert redeem(gate, approval_id, body)["allowed"] is True


def test_an_approval_is_not_used_when_the_policy_no_longer_requires_one(
    tmp_path: Path, start, people
) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    policy = tmp_path / "policy.yaml"
    original = policy.read_text()
    policy.write_text(original.replace("decision: require_approval", "decision: deny"))
    wait_for(lambda: ask(gate)["decision"] == "deny")
    answer = redeem(gate, approval_id)
    assert (answer["allowed"], answer["decision"], answer["rule"]) == (
        False,
        "deny",
        "deploy-writes",
    )
    assert view(gate, approval_id)["status"] == "approved", "a denied check spends nothing"
    policy.write_text(original)
    wait_for(lambda: ask(gate, DELETE_API)["decision"] == "require_approval")
    assert redeem(gate, approval_id)["allowed"] is True


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_without_a_policy_an_unsigned_decision_is_still_refused_and_recorded(  # type: ignore[no-untyped-def]
    tmp_path: Path, start, daemon_factory, people
) -> None:
    """CONTRACT 2.4: an unsigned decision is 403 and recorded even while no valid policy
    is loaded; only a signed one, which no key can check then, waits for a policy (503).
    It was answered 503 unrecorded (rt25 api review, 2)."""
    first = start()
    approval_id = ask(first)["approval"]["id"]
    request_hash = view(first, approval_id)["requestHash"]
    first.stop()
    first.policy.write_text("version: 1\nrules: [\n")
    gate = daemon_factory(first.policy, audit_dir=first.audit_dir, wait_ready=False)
    unsigned = post(gate, approval_id, {"decision": "approve", "approver": "alice"})
    assert unsigned.status_code == 403
    assert unsigned.json()["error"]["message"] == "unsigned: the body has no signature"
    unknown = post(gate, "apr_nope", {"decision": "approve", "approver": "alice"})
    assert unknown.status_code == 404
    signed = post(
        gate,
        approval_id,
        decision_body(people["alice"].sign(approval_id, "approve", request_hash)),
    )
    assert signed.status_code == 503
    assert signed.json()["error"]["code"] == "unavailable"
    forged = [r for r in approval_events(gate) if r["event"] == "forged"]
    assert [(r["approval"], r["problem"]) for r in forged] == [
        (approval_id, "unsigned: the body has no signature"),
        ("apr_nope", "no such approval"),
    ]
    assert view(gate, approval_id)["status"] == "pending"


# -- concurrency, expiry, long-poll -------------------------------------------------------


def test_concurrent_redemptions_exactly_one_wins(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200

    async def race() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(
            base_url=gate.url, limits=httpx.Limits(max_connections=40), timeout=30
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/check", json={**DELETE_WEB, "approval": approval_id})
                    for _ in range(40)
                )
            )
        return [r.json() for r in responses]

    answers = asyncio.run(race())
    assert sum(a["allowed"] for a in answers) == 1
    assert all(a["decision"] == "deny" for a in answers if not a["allowed"])
    assert events(gate, approval_id).count("redeemed") == 1
    allowed = [r for r in gate.records() if r["type"] == "decision" and r["allowed"]]
    assert len(allowed) == 1


def test_an_approval_nobody_decides_expires_and_denies(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start(timeout="1s")
    approval_id = ask(gate)["approval"]["id"]
    started = time.monotonic()
    polled = view(gate, approval_id, wait=10)
    assert polled["status"] == "expired" and time.monotonic() - started < 5
    answer = redeem(gate, approval_id)
    assert answer["allowed"] is False and "expired" in answer["reason"]
    late = decide(gate, approval_id, people["alice"])
    assert late.status_code == 409
    wait_for(lambda: "expired" in events(gate, approval_id))
    assert events(gate, approval_id) == ["requested", "expired", "refused"]
    assert "tollgate_approvals_pending 0.0" in gate.get("/metrics").text


def test_an_approved_approval_not_used_in_time_expires(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start(timeout="1s")
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    assert view(gate, approval_id, wait=10)["status"] == "expired"
    assert redeem(gate, approval_id)["allowed"] is False
    wait_for(lambda: events(gate, approval_id)[-1] == "expired")
    assert approval_events(gate, approval_id)[-1]["previous"] == "approved"


def test_long_poll_returns_as_soon_as_an_approver_decides(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    polled: dict[str, Any] = {}

    def poll() -> None:
        with httpx.Client(base_url=gate.url, timeout=70) as client:
            started = time.monotonic()
            polled["answer"] = client.get(f"/v1/approvals/{approval_id}?wait=30").json()
            polled["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    assert "answer" not in polled, "the poll waits while nothing changes"
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    thread.join(10)
    assert polled["answer"]["status"] == "approved" and polled["seconds"] < 5
    # Without wait (or wait=0) the answer is immediate; a bad wait is a 400.
    assert view(gate, approval_id, wait=0)["status"] == "approved"
    for bad in ("-1", "soon", "nan"):
        response = gate.get(f"/v1/approvals/{approval_id}?wait={bad}")
        assert response.status_code == 400 and response.json()["allowed"] is False


def test_dry_runs_neither_open_nor_spend_approvals(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    preflight = ask(gate, {**DELETE_WEB, "dryRun": True})
    assert preflight["decision"] == "require_approval" and "approval" not in preflight
    assert events(gate) == []
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    dry = ask(gate, {**DELETE_WEB, "approval": approval_id, "dryRun": True})
    assert dry["allowed"] is True and dry["dryRun"] is True
    assert view(gate, approval_id)["status"] == "approved"
    assert redeem(gate, approval_id)["allowed"] is True


def test_without_approvers_nobody_can_approve(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nrules:\n  - {action: k8s.request, decision: require_approval}\n")
    gate = daemon_factory(policy)
    approval_id = ask(gate)["approval"]["id"]
    forged = post(gate, approval_id, decision_body(base64.b64encode(bytes(64)).decode(), "root"))
    assert forged.status_code == 403
    assert events(gate) == ["requested", "forged"]


# -- restart ------------------------------------------------------------------------------


def test_approvals_survive_a_restart_and_stay_single_use(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    pending = ask(gate)["approval"]["id"]
    approved = ask(gate, DELETE_API)["approval"]["id"]
    assert decide(gate, approved, people["alice"]).status_code == 200
    used_body = {**DELETE_WEB, "context": {"n": 1}}
    used = ask(gate, used_body)["approval"]["id"]
    assert decide(gate, used, people["bob"]).status_code == 200
    assert redeem(gate, used, used_body)["allowed"] is True
    # An agent that plants what looks like an approval record in its context does not
    # approve anything: the rebuild reads only the trail's own top-level records.
    planted = {"type": "approval", "event": "approved", "approval": pending, "approver": "alice"}
    ask(gate, {"action": "file.read", "path": "/app/data/x", "context": planted})
    before = {a["id"]: a for a in gate.get("/v1/approvals").json()["approvals"]}
    audit_dir = gate.audit_dir
    gate.stop()

    gate = start(audit_dir=audit_dir)
    after = {a["id"]: a for a in gate.get("/v1/approvals").json()["approvals"]}
    assert after == before
    assert [a["id"] for a in gate.get("/v1/approvals?status=pending").json()["approvals"]] == [
        pending
    ]
    assert "tollgate_approvals_pending 1.0" in gate.get("/metrics").text
    assert redeem(gate, used, used_body)["allowed"] is False, "a used approval stays used"
    assert redeem(gate, approved, DELETE_API)["allowed"] is True
    assert decide(gate, pending, people["alice"]).status_code == 200
    assert redeem(gate, pending)["allowed"] is True


def test_an_approval_that_expired_while_the_gate_was_down_is_expired(start) -> None:  # type: ignore[no-untyped-def]
    gate = start(timeout="1s")
    approval_id = ask(gate)["approval"]["id"]
    audit_dir = gate.audit_dir
    gate.stop(signal.SIGKILL)  # no shutdown record, as after a crash
    time.sleep(1.1)
    gate = start(timeout="1s", audit_dir=audit_dir)
    assert view(gate, approval_id)["status"] == "expired"
    assert redeem(gate, approval_id)["allowed"] is False
    wait_for(lambda: events(gate, approval_id) == ["requested", "expired"])


# The daemon's wall clock, shifted by the number of seconds in a file the test writes
# (time.time and time.time_ns, which the gate reads; the monotonic clock is untouched,
# as when NTP or an operator steps the system clock).
WALL_CLOCK_SHIFT = """\
import os, time
_real_ns = time.time_ns
_shift_file = os.environ["TOLLGATE_TEST_CLOCK_SHIFT"]
def _shifted_ns():
    try:
        with open(_shift_file) as f:
            return _real_ns() + int(float(f.read() or 0) * 1e9)
    except OSError:
        return _real_ns()
time.time_ns = _shifted_ns
time.time = lambda: _shifted_ns() / 1e9
"""


def shifted_wall_clock(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A file whose number of seconds shifts the daemon's wall clock, and its env."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(WALL_CLOCK_SHIFT)
    shift = tmp_path / "clock-shift"
    shift.write_text("0")
    env = {
        "PYTHONPATH": os.pathsep.join([str(shim), os.getcwd()]),
        "TOLLGATE_TEST_CLOCK_SHIFT": str(shift),
    }
    return shift, env


def test_a_wall_clock_stepped_back_does_not_stretch_an_approval(  # type: ignore[no-untyped-def]
    tmp_path, daemon_factory, people
) -> None:
    shift, env = shifted_wall_clock(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(people, "2s"))
    gate = daemon_factory(policy, env=env)
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    shift.write_text("-3600")  # the system clock is set back an hour
    time.sleep(2.5)  # the approval's two seconds are over
    assert view(gate, approval_id)["status"] == "expired"
    answer = redeem(gate, approval_id)
    assert answer["allowed"] is False and "expired" in answer["reason"]
    wait_for(lambda: events(gate, approval_id) == ["requested", "approved", "expired"])
    # A restart on the stepped-back clock: the trail says that time has passed.
    audit_dir = gate.audit_dir
    gate.stop()
    gate = daemon_factory(policy, audit_dir=audit_dir, env=env)
    assert view(gate, approval_id)["status"] == "expired"


def test_an_approval_opened_after_a_step_back_is_not_stretched_by_a_restart(  # type: ignore[no-untyped-def]
    tmp_path, daemon_factory, people
) -> None:
    # Opened while the approvals' clock runs an hour ahead of a wall clock set back, its
    # createdAt and expiresAt are on that clock; the records' ts on the wall clock. A
    # restart must not fall back to the wall clock and give the approval that hour.
    shift, env = shifted_wall_clock(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(people, "3s"))
    gate = daemon_factory(policy, env=env)
    shift.write_text("-3600")  # the system clock is set back an hour
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    audit_dir = gate.audit_dir
    gate.stop()
    gate = daemon_factory(policy, audit_dir=audit_dir, env=env)
    time.sleep(3.5)  # the approval's three seconds are over
    assert view(gate, approval_id)["status"] == "expired"
    answer = redeem(gate, approval_id)
    assert answer["allowed"] is False and "expired" in answer["reason"]


# -- webhook ------------------------------------------------------------------------------


class Hook:
    """A real HTTP endpoint on 127.0.0.1 that fails its first ``failures`` deliveries;
    on ``port`` (one a policy named while nothing listened there), or any free one."""

    def __init__(
        self, failures: int = 0, status: int = 500, delay: float = 0.0, port: int = 0
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                hook.headers.append(dict(self.headers))
                failing = len(hook.received) <= failures
                if failing and delay:
                    time.sleep(delay)
                self.send_response(status if failing else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory() -> Iterator[Callable[..., Hook]]:
    hooks: list[Hook] = []

    def make(**kwargs: Any) -> Hook:
        hooks.append(Hook(**kwargs))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


def test_webhook_is_retried_and_never_delays_the_check(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory(failures=1, delay=1.5)
    gate = start(webhook=hook.url)
    started = time.monotonic()
    answer = ask(gate)
    assert time.monotonic() - started < 1.0, "the check does not wait for the webhook"
    wait_for(lambda: len(hook.received) == 2, timeout=15)
    assert hook.received[0] == hook.received[1], "the retry sends the same notice"
    notice = hook.received[1]
    approval_id = answer["approval"]["id"]
    assert notice["approval"] == approval_id and notice["risk"] == "high"
    assert notice["expiresAt"] == answer["approval"]["expiresAt"]
    assert notice["request"]["k8s"]["name"] == "web" and notice["action"] == "k8s.request"
    assert notice["approveCommand"] == (
        f"tollgate approvals approve {approval_id} --url {gate.url} --key KEY_FILE --name NAME"
    )
    assert approval_id in notice["text"] and notice["approveCommand"] in notice["text"]
    assert notice["hiddenValues"] == [] and "Hidden as secrets" not in notice["text"]
    assert hook.headers[0]["Content-Type"] == "application/json"
    assert "notifyFailed" not in events(gate)


def test_webhook_names_the_values_hidden_as_secrets_as_the_cli_does(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    # The approver in the channel cannot see a redacted value, which the agent chose: in
    # `rm -rf -- --token /home` the operand after --token is redacted as its value.
    hook = hook_factory()
    gate = start(webhook=hook.url)
    hiding = {"action": "process.exec", "argv": ["rm", "-rf", "--", "--token", "/home"]}
    ask(gate, {**hiding, "context": {"note": f"token {GITHUB_TOKEN}"}})
    wait_for(lambda: len(hook.received) == 1)
    notice = hook.received[0]
    assert "/home" not in json.dumps(notice["request"])
    # The context's secret is redacted too, but the context is the agent's words, not
    # the action: it is not named. The same operand in the parsed commands is.
    assert notice["hiddenValues"] == ["argv[4]", "commands[0][4]"]
    assert "Hidden as secrets, chosen by the agent: argv[4], commands[0][4]." in notice["text"]
    assert "--accept-redacted" in notice["text"]
    assert notice["approveCommand"] in notice["text"]
    assert "--accept-redacted" not in notice["approveCommand"], "the approver chooses it"


def test_webhook_text_cannot_ping_a_channel_or_leak_a_secret(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory()
    gate = start(webhook=hook.url)
    secret = "ghp_" + "A1b2C3d4" * 5
    note = f"<!channel> & <https://evil.example|click> token {secret}"
    ask(gate, {**DELETE_WEB, "context": {"note": note}})
    wait_for(lambda: len(hook.received) == 1)
    text = hook.received[0]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;https://evil.example" in text
    assert hook.received[0]["request"]["context"]["note"].startswith("<!channel>")
    assert secret not in json.dumps(hook.received[0])
    assert "[REDACTED:github-token:" in hook.received[0]["request"]["context"]["note"]


def test_webhook_text_shows_control_and_bidi_characters_escaped(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    # Read by a person in a chat client: nothing the agent sends may reorder or hide text.
    hook = hook_factory()
    gate = start(webhook=hook.url)
    trick = "\r\x1b[2Kcache.txt \u202etxt.exe\u202c"
    request = {**RM_WITH_TOKEN, "argv": ["rm", "-rf", "/app/y", trick]}
    ask(gate, request)
    wait_for(lambda: len(hook.received) == 1)
    text = hook.received[0]["text"]
    assert not any(char in text for char in "\r\x1b\u202e\u202c")
    summary, reason = text.split("\n")[1], text.split("\n")[2]
    assert "\\u001b[2Kcache.txt \\u202etxt.exe\\u202c" in summary  # JSON escapes
    assert reason.startswith("Reason: ") and "\\x1b[2Kcache.txt \\u202etxt.exe" in reason
    assert hook.received[0]["request"]["argv"][3] == trick  # the data itself is exact


def test_no_secret_reaches_approvers_in_the_policy_reason_or_an_approvers_reason(
    start, hook_factory, people
) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory()
    gate = start(webhook=hook.url)
    answer = ask(gate, RM_WITH_TOKEN)
    assert GITHUB_TOKEN in answer["reason"], "the agent's own answer quotes its request"
    approval_id = answer["approval"]["id"]
    shown = view(gate, approval_id)
    assert shown["policyReason"].startswith("rule removals requires approval for process.exec")
    assert "--token=[REDACTED:github-token:" in shown["policyReason"]
    wait_for(lambda: len(hook.received) == 1)
    notice = hook.received[0]
    assert "--token=[REDACTED:github-token:" in notice["reason"]
    assert "Reason: ```rule removals requires approval" in notice["text"]
    # An approver's reason is shown to the other approvers and quoted to the agent.
    note = f"rotated, was password={GITHUB_TOKEN}"
    assert decide(gate, approval_id, people["bob"], "deny", reason=note).status_code == 200
    denied = redeem(gate, approval_id, RM_WITH_TOKEN)
    assert "denied by bob: rotated, was password=[REDACTED:" in denied["reason"]
    listed = gate.get("/v1/approvals?status=denied").text
    for seen in (json.dumps(shown), json.dumps(notice), listed, denied["reason"]):
        assert GITHUB_TOKEN not in seen
    # The trail redacts with its own key, so its tags match across its records.
    by_event = {r["event"]: r for r in approval_events(gate, approval_id)}
    requested, decided = by_event["requested"], by_event["denied"]
    assert GITHUB_TOKEN not in json.dumps(gate.records())
    decision = next(
        r
        for r in gate.records()
        if r["type"] == "decision" and r["decisionId"] == answer["decisionId"]
    )
    trail_tag = re.search(r"\[REDACTED:github-token:[0-9a-f]{8}\]", decision["reason"])
    assert trail_tag is not None and trail_tag.group(0) in requested["policyReason"]
    assert "[REDACTED:" in decided["reason"]


def test_a_webhook_that_refuses_is_recorded(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory(failures=5, status=404)
    gate = start(webhook=hook.url)
    approval_id = ask(gate)["approval"]["id"]
    wait_for(lambda: "notifyFailed" in events(gate, approval_id))
    failed = approval_events(gate, approval_id)[-1]
    assert failed["attempts"] == 1 and "404" in failed["problem"]
    assert len(hook.received) == 1, "a 4xx is not retried"
    assert view(gate, approval_id)["status"] == "pending", "the approval still waits"


def notifications_counted(gate: Daemon) -> dict[str, float]:
    found = re.findall(
        r'^tollgate_approval_notifications_total\{result="(\w+)"\} (\S+)$',
        gate.get("/metrics").text,
        re.MULTILINE,
    )
    return {result: float(value) for result, value in found}


def test_a_webhook_that_cannot_be_reached_is_logged_and_counted(start) -> None:  # type: ignore[no-untyped-def]
    # A Slack URL the NetworkPolicy blocks: nothing listens; its path is the secret.
    webhook = f"http://127.0.0.1:{free_port()}/services/T0001/B0001/SECRETxyz"
    gate = start(webhook=webhook)
    assert notifications_counted(gate) == {"notified": 0.0, "failed": 0.0}
    approval_id = ask(gate)["approval"]["id"]
    wait_for(lambda: "notifyFailed" in events(gate, approval_id), timeout=30)
    assert notifications_counted(gate) == {"notified": 0.0, "failed": 1.0}
    assert gate.process is not None
    gate.process.send_signal(signal.SIGTERM)
    _, stderr = gate.process.communicate(timeout=15)
    (warning,) = [line for line in stderr.decode().splitlines() if approval_id in line]
    assert " WARNING tollgate.approvals: " in warning, warning
    assert "http://127.0.0.1 gave up after 5 attempt(s)" in warning, warning
    assert "Connection refused" in warning, warning
    assert "SECRETxyz" not in stderr.decode() and "/services/" not in stderr.decode()


@pytest.mark.parametrize(
    "webhook",
    [
        # Refused at validation; the notifier must not leak them either (defence in depth).
        "https://hookuser:S3CRET-TOKEN@hooks.example.com/services/T0/B0/PATHSECRET",
        "http://127.0.0.1:S3CRET-PORT/services/T0/B0/PATHSECRET",
        # http.client quotes a path with a control character in its error.
        "http://127.0.0.1:9/services/T0/B0/PATH SECRET",
    ],
)
def test_a_failed_notice_never_records_the_webhooks_url_beyond_its_host(webhook: str) -> None:
    from sidecar.approvals.webhook import Notice, WebhookNotifier

    given_up: list[str] = []

    async def give_up(notice: Notice, attempts: int, problem: str) -> None:
        given_up.append(problem)

    async def deliver() -> None:
        notifier = WebhookNotifier(give_up, attempts=1, timeout=2)
        notifier.submit(Notice("apr_1", webhook, {"text": "x"}))
        running = asyncio.ensure_future(notifier.run())
        while not given_up:
            await asyncio.sleep(0.01)
        running.cancel()

    asyncio.run(asyncio.wait_for(deliver(), 10))
    (problem,) = given_up
    for secret in ("S3CRET", "hookuser", "PATH", "services"):
        assert secret not in problem, problem
    assert problem.startswith("InvalidURL: "), "the kind of error is still named"


def test_a_delivered_notice_is_counted(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory()
    gate = start(webhook=hook.url)
    approval_id = ask(gate)["approval"]["id"]
    wait_for(lambda: "notified" in events(gate, approval_id))
    assert notifications_counted(gate) == {"notified": 1.0, "failed": 0.0}


# -- the command line ---------------------------------------------------------------------


def tollgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def cli_decide(
    url: str, verb: str, approval_id: str, who: Approver, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``tollgate approvals approve|deny`` with ``who``'s key (``--name`` may be in extra)."""
    name = () if "--name" in extra else ("--name", who.name)
    return tollgate(
        "approvals", verb, approval_id, "--url", url, "--key", str(who.key_file), *name, *extra
    )


def test_cli_lists_shows_the_request_signs_and_approves(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    listing = tollgate("approvals", "list", "--url", gate.url)
    assert listing.returncode == 0 and approval_id in listing.stdout
    assert '"name": "web"' in listing.stdout and "deploy-writes" in listing.stdout
    as_json = json.loads(tollgate("approvals", "list", "--url", gate.url, "--json").stdout)
    assert as_json["approvals"][0]["id"] == approval_id

    alice = people["alice"]
    done = cli_decide(gate.url, "approve", approval_id, alice, "--reason", "ticket OPS-7")
    assert done.returncode == 0, done.stderr
    assert '"name": "web"' in done.stdout and view(gate, approval_id)["requestHash"] in done.stdout
    assert f"{approval_id}: approved by alice" in done.stdout
    assert view(gate, approval_id)["reason"] == "ticket OPS-7"
    assert redeem(gate, approval_id)["allowed"] is True
    again = cli_decide(gate.url, "deny", approval_id, alice)
    assert again.returncode == 1 and "not pending" in again.stderr


def shows_nothing_a_terminal_acts_on(output: str) -> bool:
    """Every character is printable, apart from the newlines between lines."""
    return all(char.isprintable() for char in output.replace("\n", ""))


def test_cli_shows_control_and_bidi_characters_escaped(start, people) -> None:  # type: ignore[no-untyped-def]
    """An agent cannot make the approver read another request than the one signed:
    CR and ESC would overwrite the line with a harmless one and hide the rest, a bidi
    override would reorder it."""
    gate = start()
    fake = "\r\x1b[2Kreason     rm /app/tmp/cache.txt (cleanup)\x1b[8m"
    evil = {
        "action": "process.exec",
        "argv": ["rm", "-rf", "/app/y", fake, "/app/\u202etxt.exe", "\x9b2K\x7f\u2066x\u2069"],
        "context": {"note": "first line\nsecond \\x1b line"},
    }
    approval_id = ask(gate, evil)["approval"]["id"]
    listing = tollgate("approvals", "list", "--url", gate.url)
    note = "ok\x1b[8m hidden"
    done = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes", "--reason", note)
    assert listing.returncode == 0 and done.returncode == 0, done.stderr
    for output in (listing.stdout, done.stdout):
        assert shows_nothing_a_terminal_acts_on(output), repr(output)
        (reason,) = [line for line in output.splitlines() if line.startswith("reason ")]
        assert "/app/y '\\r\\x1b[2Kreason     rm /app/tmp/cache.txt (cleanup)\\x1b[8m'" in reason
        assert "'/app/\\u202etxt.exe' '\\x9b2K\\x7f\\u2066x\\u2069'" in reason
        # In the request, the same characters are JSON escapes.
        assert '"\\r\\u001b[2Kreason' in output and '"/app/\\u202etxt.exe"' in output
        assert '"\\u009b2K\\u007f\\u2066x\\u2069"' in output
        assert '"first line\\nsecond \\\\x1b line"' in output
    decided = tollgate("approvals", "list", "--url", gate.url, "--status", "approved")
    assert shows_nothing_a_terminal_acts_on(decided.stdout)
    assert "note       ok\\x1b[8m hidden" in decided.stdout
    as_json = tollgate("approvals", "list", "--url", gate.url, "--status", "all", "--json")
    assert shows_nothing_a_terminal_acts_on(as_json.stdout)
    shown = json.loads(as_json.stdout)["approvals"][0]
    assert shown["request"]["argv"][3:] == evil["argv"][3:], "escaped, not changed"


def test_cli_deny_and_a_key_not_in_the_policy(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    mallory = cli_decide(gate.url, "approve", approval_id, people["mallory"], "--name", "alice")
    assert mallory.returncode == 1 and "403" in mallory.stderr
    assert events(gate, approval_id) == ["requested", "forged"]
    bob = cli_decide(gate.url, "deny", approval_id, people["bob"])
    assert bob.returncode == 0, bob.stderr
    assert view(gate, approval_id)["status"] == "denied"
    unreachable = tollgate("approvals", "list", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
    # Something at the address that does not speak HTTP: the same clear error.
    with answering_peer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as url:
        babbling = tollgate("approvals", "list", "--url", url)
    assert babbling.returncode == 2 and "cannot reach" in babbling.stderr
    assert "Traceback" not in babbling.stderr


def test_cli_timeout_bounds_the_whole_call_to_a_gate_answering_a_byte_at_a_time() -> None:
    body = b'{"approvals": []}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    started = time.monotonic()
    with answering_peer(answer, byte_every=0.1) as url:
        result = tollgate("approvals", "list", "--url", url, "--timeout", "1")
    # Each byte comes well within urllib's per-read timeout; the whole answer takes 6 s.
    assert result.returncode == 2 and result.stdout == ""
    assert f"{url}/v1/approvals?status=pending did not answer within 1 s" in result.stderr
    assert time.monotonic() - started < 5, "the timeout bounds the whole call"


def test_cli_refuses_to_sign_when_the_request_shown_is_not_the_one_hashed(people) -> None:
    """A gate (or anything at --url) that shows a harmless request while asking for a
    signature over another request's hash gets no signature."""
    fake_view = {
        "id": "apr_X", "status": "pending", "action": "file.read", "request": {"path": "/app/data/x"},
        "requestHash": "sha256:" + hashlib.sha256(b"delete everything").hexdigest(),
        "expiresAt": "2030-01-01T00:00:00.000000Z",
    }  # fmt: skip
    with lying_gate(fake_view) as (liar, posts):
        result = cli_decide(liar, "approve", "apr_X", people["alice"])
    assert result.returncode == 2 and "does not match" in result.stderr
    assert posts == []


@contextlib.contextmanager
def lying_gate(view: dict[str, Any]) -> Iterator[tuple[str, list[bytes]]]:
    """A server at a URL that answers every GET with ``view`` (an approval as a gate
    would show it) and keeps what is POSTed to it: (its URL, the bodies posted)."""
    posts: list[bytes] = []

    class Liar(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(view).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            posts.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", posts
    finally:
        server.shutdown()
        server.server_close()


# -- policy loading and the API description -----------------------------------------------


@pytest.mark.parametrize(
    ("approvals", "problem"),
    [
        ("approvers: [{name: alice, publicKey: 'not-a-key'}]", "approvals.approvers[0].publicKey"),
        ("approvers: [{name: alice, publicKey: 'AAAA'}]", "raw 32-byte Ed25519"),
        (
            "approvers: [{name: a, publicKey: '{key}'}, {name: a, publicKey: '{key}'}]",
            "approvals.approvers[1].name: duplicate",
        ),
        (
            "approvers: [{name: ' ', publicKey: '{key}'}]",
            "approvals.approvers[0].name: must not be empty",
        ),
        ("notify: {webhook: 'ftp://hooks.example/x'}", "approvals.notify.webhook"),
        ("notify: {webhook: 'not a url'}", "approvals.notify.webhook"),
        (
            "notify: {webhook: 'https://hookuser:S3CRET@hooks.example.com/x'}",
            "approvals.notify.webhook: must not hold a user name or password",
        ),
        (
            "notify: {webhook: 'https://hookuser@hooks.example.com/x'}",
            "approvals.notify.webhook: must not hold a user name or password",
        ),
        (
            "notify: {webhook: 'https://hooks.example.com:S3CRET/x'}",
            "approvals.notify.webhook: its port must be a number",
        ),
        # urlsplit's own error quotes the netloc (review of the fix): a ']' typo, and a
        # fullwidth at sign in a password, which crashed validate or leaked the password.
        ("notify: {webhook: 'https://S3CRET@hooks.slack.com]/x'}", "is not a valid URL"),
        (
            "notify: {webhook: 'https://hookuser:S3CRET\uff20x@hooks.example.com/x'}",
            "approvals.notify.webhook",
        ),
        ("timeout: soon", "approvals.timeout"),
        ("timeout: 99999999h", "approvals.timeout: Value error, '99999999h' is longer than"),
    ],
)
def test_policy_approver_keys_and_webhook_are_checked_at_load(
    tmp_path: Path, people, approvals: str, problem: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.yaml"
    text = approvals.replace("{key}", people["alice"].public_base64)
    path.write_text(f"version: 1\napprovals:\n  {text}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(str(path))
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert str(path) in str(caught.value)
    assert "S3CRET" not in str(caught.value), "the webhook's secret is never quoted"


def test_a_policy_with_valid_approvers_loads(tmp_path: Path, people) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(people, "90s", "https://hooks.slack.com/services/T/B/X"))
    policy = load_policy_file(str(path))
    assert policy.approval_timeout == 90
    assert policy.approvals is not None and [a.name for a in policy.approvals.approvers] == [
        "alice",
        "bob",
    ]


def test_openapi_describes_the_approval_endpoints(start) -> None:  # type: ignore[no-untyped-def]
    document = start().get("/openapi.json").json()
    assert set(document["paths"]["/v1/approvals/{id}"]) == {"get", "post"}
    assert "get" in document["paths"]["/v1/approvals"]
    schemas = document["components"]["schemas"]
    assert set(schemas["DecisionBody"]["required"]) == {"decision", "approver", "signature"}
    assert {"id", "status", "requestHash", "expiresAt"} <= set(
        schemas["ApprovalView"]["properties"]
    )
    post_op = document["paths"]["/v1/approvals/{id}"]["post"]
    assert {"200", "403", "404", "409"} <= set(post_op["responses"])


def in_process_gate(tmp_path: Path, people: dict[str, Approver]) -> Gate:
    """A gate without a server over ``policy_text(people)``, in ``tmp_path``; the
    caller starts its trail (``gate.audit.start()``) and loads the policy."""
    from sidecar.server import ServeConfig, build_gate

    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(people))
    return build_gate(ServeConfig(policy=str(policy), audit_dir=str(tmp_path / "audit")))


def test_concurrent_checks_open_one_approval_per_request_and_respect_the_cap(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    # Checks arriving while an approval's records are being written must find it (and
    # count it against the cap): the book holds only approvals already durable.
    gate = in_process_gate(tmp_path, people)
    gate.approvals.book.max_live = 3

    def rm(path: str, **extra: Any) -> bytes:
        return json.dumps({"action": "process.exec", "argv": ["rm", path], **extra}).encode()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        await gate.audit.start()
        await gate.load_policy()
        same = await asyncio.gather(*(gate.check(rm("/app/same")) for _ in range(20)))
        distinct = await asyncio.gather(*(gate.check(rm(f"/app/{i}")) for i in range(10)))
        preflight = await gate.check(rm("/app/new", dryRun=True))
        await gate.audit.close()
        return [a.payload for a in same], [a.payload for a in distinct], preflight.payload

    same, distinct, preflight = asyncio.run(scenario())
    assert {answer["approval"]["id"] for answer in same} == {same[0]["approval"]["id"]}
    opened = [answer for answer in distinct if "approval" in answer]
    assert len(opened) == 2, "the cap of 3 holds, the first request's approval included"
    refused = [answer for answer in distinct if "approval" not in answer]
    assert all("3 approvals are already waiting" in a["reason"] for a in refused)
    # A dry run says what the real check would get: no approval is opened for it.
    assert preflight["decision"] == "deny" and "already waiting" in preflight["reason"]


def test_approvals_a_keyless_restart_made_unusable_hold_no_place_under_the_cap(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    # A request with a secret is bound with the trail's redaction key; without a signing
    # key that key is new after a restart, so such an approval can never be used again.
    def rm(*args: str) -> bytes:
        return json.dumps({"action": "process.exec", "argv": ["rm", *args]}).encode()

    async def first_run() -> dict[str, Any]:
        gate = in_process_gate(tmp_path, people)
        await gate.audit.start()
        await gate.load_policy()
        answer = await gate.check(rm("--password=hunter2", "/app/x"))
        await gate.audit.close()
        return answer.payload

    opened = asyncio.run(first_run())
    assert opened["decision"] == "require_approval"

    async def second_run() -> tuple[dict[str, Any], dict[str, Any]]:
        gate = in_process_gate(tmp_path, people)
        gate.approvals.book.max_live = 1
        await gate.audit.start()
        await gate.load_policy()
        unusable = await gate.check(
            json.dumps(
                {
                    "action": "process.exec",
                    "argv": ["rm", "--password=hunter2", "/app/x"],
                    "approval": opened["approval"]["id"],
                }
            ).encode()
        )
        fresh = await gate.check(rm("/app/y"))
        await gate.audit.close()
        return unusable.payload, fresh.payload

    unusable, fresh = asyncio.run(second_run())
    assert "restarted since without a signing key" in unusable["reason"]
    # Still listed as pending, but not one of the 1 approvals the cap allows.
    assert fresh["decision"] == "require_approval"
    assert fresh["approval"]["status"] == "pending", fresh["reason"]


def test_an_approval_a_keyless_restart_made_unusable_cannot_be_approved_only_denied(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    async def first_run() -> dict[str, Any]:
        gate = in_process_gate(tmp_path, people)
        await gate.audit.start()
        await gate.load_policy()
        check = {"action": "process.exec", "argv": ["rm", "--password=hunter2", "/app/x"]}
        answer = await gate.check(json.dumps(check).encode())
        await gate.audit.close()
        return answer.payload["approval"]

    opened = asyncio.run(first_run())

    async def second_run() -> tuple[str, str, str]:
        gate = in_process_gate(tmp_path, people)
        await gate.audit.start()
        await gate.load_policy()
        policy = gate.policy.active
        shown_hash = gate.approvals.get(opened["id"]).request_hash

        def body(decision: str) -> bytes:
            signature = people["alice"].sign(opened["id"], decision, shown_hash)
            return json.dumps(decision_body(signature, "alice", decision)).encode()

        with pytest.raises(NotPending) as refused:
            await gate.approvals.decide(opened["id"], body("approve"), policy)
        still = gate.approvals.get(opened["id"]).status
        denied = await gate.approvals.decide(opened["id"], body("deny"), policy)
        await gate.audit.close()
        return str(refused.value), still, denied.status

    refused, still, denied = asyncio.run(second_run())
    assert "cannot be used by any check" in refused and "signing key" in refused
    assert (still, denied) == ("pending", "denied")
    segments = sorted((tmp_path / "audit" / "segments").glob("*.jsonl"))
    trail = [json.loads(line) for path in segments for line in path.read_text().splitlines()]
    refusals = [r for r in trail if r["type"] == "approval" and r["event"] == "refused"]
    assert [r["decision"] for r in refusals] == ["approve"], refusals


def test_a_check_refused_for_held_records_opens_no_approval_its_retry_cannot_find(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    # A record held for the decisions (startup, policyLoaded) that the trail still cannot
    # take refuses the check (503) before its approval is written: its retry, once the
    # trail is back, must open an approval approvers can find, not cite the lost one.
    gate = in_process_gate(tmp_path, people)
    rm = json.dumps({"action": "process.exec", "argv": ["rm", "/app/x"]}).encode()

    async def scenario() -> tuple[int, dict[str, Any]]:
        await gate.audit.start()
        await gate.load_policy()
        with refusing_writes(tmp_path / "audit"):
            await gate.record_before_decisions("startup", {"identity": gate.identity})
            refused = await gate.check(rm)
        retried = await gate.check(rm)
        await gate.audit.close()
        return refused.status, retried.payload

    refused, retried = asyncio.run(scenario())
    assert refused == 503
    assert retried["decision"] == "require_approval"
    found = gate.approvals.get(retried["approval"]["id"])  # ApprovalNotFound if lost
    assert found.status == "pending"


def test_an_approval_whose_check_never_settled_does_not_block_its_request(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    from sidecar.approvals.service import OPENING_FOR_AT_MOST_US
    from sidecar.engine import evaluate_request

    gate = in_process_gate(tmp_path, people)
    policy = load_policy_file(tmp_path / "policy.yaml")
    gate.approvals.book.max_live = 1
    rm = {"action": "process.exec", "argv": ["rm", "/app/x"]}
    # A check opened an approval and then failed before its records were written.
    lost = gate.approvals.resolve(evaluate_request(policy, rm), policy, dry_run=False)
    assert lost.kind == "new"
    again = gate.approvals.resolve(evaluate_request(policy, rm), policy, dry_run=False)
    assert (again.kind, again.approval) == ("reuse", lost.approval)  # still being written
    assert lost.approval is not None
    lost.approval.created_us -= OPENING_FOR_AT_MOST_US + 1
    fresh = gate.approvals.resolve(evaluate_request(policy, rm), policy, dry_run=False)
    assert fresh.kind == "new" and fresh.approval is not lost.approval  # and under the cap
    gate.audit.close_blocking()


def test_webhook_text_shows_the_action_before_a_long_context(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    # Found in the approvals review of 2026-12-06: the request was shown as key-sorted
    # JSON cut at 1,500 characters, "context" first, so a padded context with a decoy
    # request in it pushed the real action out of the message.
    hook = hook_factory()
    gate = start(webhook=hook.url)
    decoy = '{"k8s": {"verb": "patch", "namespace": "staging", "name": "canary"}} ```'
    ask(gate, {**DELETE_WEB, "context": {"a": "x" * 3000, "b": decoy}})
    wait_for(lambda: len(hook.received) == 1)
    lines = hook.received[0]["text"].split("\n")
    assert '"k8s":{' in lines[1] and '"verb":"delete"' in lines[1] and '"name":"web"' in lines[1]
    assert "context" not in lines[1] and "canary" not in lines[1]
    context = next(line for line in lines if line.startswith("Context from the agent"))
    assert context.endswith("more characters: the CLI shows all)```")
    assert context.count("```") == 2  # the agent's backticks cannot close the block


def test_cli_shows_the_action_last_above_the_prompt_and_invisible_characters_escaped(
    start, people
) -> None:  # type: ignore[no-untyped-def]
    # Found in the approvals review of 2026-12-06: the request was printed key-sorted,
    # context first, so hundreds of context lines ending in a decoy left only the decoy
    # on screen at the prompt; and characters Python counts as printable but that show
    # nothing (U+034F, variation selectors, Hangul fillers, U+2800) printed as they are.
    gate = start()
    decoy = '{"commandLine": "ls /app/reports"}'
    evil = {
        "action": "process.exec",
        "argv": ["rm", "-rf", "/app/prod-data", "/app/reports\u034f\ufe0f\u3164\u2800"],
        "context": {"note": "\n" * 300 + decoy},
    }
    approval_id = ask(gate, evil)["approval"]["id"]
    done = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"{approval_id}: approved by alice"
    summary = lines[-2]
    assert summary.startswith("approve process.exec ") and "/app/prod-data" in summary
    request_at = next(i for i, line in enumerate(lines) if line.startswith("request "))
    context_at = next(i for i, line in enumerate(lines) if line.startswith("context "))
    assert request_at < context_at
    assert "/app/reports\\u034f\\ufe0f\\u3164\\u2800" in summary
    assert "\u034f" not in done.stdout and "\u2800" not in done.stdout


def test_cli_last_line_names_where_a_command_runs_and_where_a_file_action_lands(
    start, people
) -> None:  # type: ignore[no-untyped-def]
    # Found in the red-team review of 2026-12-07: a context saying "rm -rf . inside
    # /tmp/build" pushed the request, and its cwd, out of a terminal's view, and the
    # last line read only `approve process.exec ["rm", "-rf", "."]`; a delete of
    # /app/cache/../config.yaml ended in "/app/config.yaml", without the path written.
    gate = start()
    note = {"note": "\n" * 300 + "rm -rf . inside /tmp/build"}
    rm = {"action": "process.exec", "argv": ["rm", "-rf", "."], "cwd": "/home/alice"}
    approval_id = ask(gate, {**rm, "context": note})["approval"]["id"]
    done = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2] == (
        'approve process.exec ["rm", "-rf", "."] cwd "/home/alice"'
    )
    delete = {"action": "file.delete", "path": "/app/cache/../config.yaml"}
    approval_id = ask(gate, {**delete, "context": note})["approval"]["id"]
    done = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()[-2]
    assert summary.startswith('approve file.delete "/app/config.yaml"')
    assert 'writtenPath "/app/cache/../config.yaml"' in summary


def test_webhook_reason_is_shown_as_code_with_its_backticks_escaped(start, hook_factory) -> None:  # type: ignore[no-untyped-def]
    # Found in the red-team review of 2026-12-07: the default reason quotes the request
    # outside any code block, so the agent's *bold* and bare links rendered, and one ```
    # in it paired with the context's fence, rendering the agent's context as text.
    hook = hook_factory()
    gate = start(webhook=hook.url)
    claim = "*Checked by Tollgate: read-only, safe to approve* ``` https://approvals.example.net/ok"
    ask(gate, {**RM_WITH_TOKEN, "argv": ["rm", "-rf", "/app/y", claim], "context": {"a": "b"}})
    wait_for(lambda: len(hook.received) == 1)
    lines = hook.received[0]["text"].split("\n")
    reason = next(line for line in lines if line.startswith("Reason: "))
    assert reason.startswith("Reason: ```") and reason.endswith("```")
    assert reason.count("```") == 2 and "\\u0060\\u0060\\u0060" in reason
    context = next(line for line in lines if line.startswith("Context from the agent"))
    assert context.count("```") == 2


def test_a_kubernetes_approval_binds_the_query_it_was_asked_with(start, people) -> None:  # type: ignore[no-untyped-def]
    # Found in the red-team review of 2026-12-07: the normalised k8s record has no query,
    # so an approval of pods/web/exec?command=date allowed any command, and one of a
    # dry-run delete was redeemed by the real one. The query is now shown and bound.
    gate = start()
    dry_run = {
        "action": "k8s.request",
        "k8s": {**DELETE_WEB["k8s"], "path": DELETE_WEB["k8s"]["path"] + "?dryRun=All"},
    }
    answer = ask(gate, dry_run)
    approval_id = answer["approval"]["id"]
    shown = view(gate, approval_id)
    assert shown["request"]["k8sQuery"] == "dryRun=All"
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    for other in (
        DELETE_WEB,
        {**dry_run, "k8s": {**dry_run["k8s"], "path": dry_run["k8s"]["path"] + "&x=1"}},
    ):
        refused = redeem(gate, approval_id, other)
        assert (refused["allowed"], refused["decision"]) == (False, "deny"), refused
    # A request without a query is bound and shown as before: no k8sQuery.
    plain = ask(gate, DELETE_API)["approval"]["id"]
    assert "k8sQuery" not in view(gate, plain)["request"]
    # Rebuilt from the trail after a restart, the approval binds the same query.
    audit_dir = gate.audit_dir
    gate.stop()
    gate = start(audit_dir=audit_dir)
    assert view(gate, approval_id)["request"]["k8sQuery"] == "dryRun=All"
    assert redeem(gate, approval_id, DELETE_WEB)["allowed"] is False
    allowed = redeem(gate, approval_id, dry_run)
    assert (allowed["allowed"], allowed["decision"]) == (True, "allow"), allowed


def test_a_kubernetes_proxy_approval_binds_the_proxied_path_and_method(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory, people
) -> None:
    # Found in the review of 2026-12-07 (rt25 approvals): what a proxy request does is the
    # path after /proxy/, which the k8s record leaves out; an approval of grafana's
    # /api/health was redeemed for /api/admin/users/1/password-reset-token, and one of a
    # kubelet's /healthz for /run/kube-system/etcd-cp-1/etcd, which runs a command.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_text(people).replace(
            "rules:\n",
            "rules:\n  - {id: proxies, action: k8s.request, resource: [services/proxy, "
            "nodes/proxy, virtualmachineinstances/portforward], decision: require_approval}\n"
            "  - {id: old-proxy, action: k8s.request, verb: proxy, decision: require_approval}\n",
        )
    )
    gate = daemon_factory(policy)
    base = "/api/v1/namespaces/monitoring/services/grafana:3000/proxy"
    vmi = "/apis/subresources.kubevirt.io/v1/namespaces/db/virtualmachineinstances/db-1"

    def k8s(method: str, path: str) -> dict[str, Any]:
        return {"action": "k8s.request", "k8s": {"method": method, "path": path}}

    cases = [
        (k8s("GET", base + "/api/health"), k8s("GET", base + "/api/admin/users/1/reset")),
        (
            k8s("POST", "/api/v1/nodes/cp-1/proxy/healthz"),
            k8s("POST", "/api/v1/nodes/cp-1/proxy/run/kube-system/etcd-cp-1/etcd"),
        ),
        (
            k8s("GET", "/api/v1/proxy/namespaces/monitoring/services/grafana/api/health"),
            k8s("DELETE", "/api/v1/proxy/namespaces/monitoring/services/grafana/api/health"),
        ),
        # An aggregated API server routes on what follows the subresource (found in the
        # review of the fix, which bound proxies only): port 8080 approved, 22 (ssh) asked.
        (k8s("GET", vmi + "/portforward/8080/tcp"), k8s("GET", vmi + "/portforward/22/tcp")),
    ]
    for asked, other in cases:
        approval_id = ask(gate, asked)["approval"]["id"]
        shown = view(gate, approval_id)["request"]
        assert shown["k8sPath"] == asked["k8s"]["path"]
        assert shown["k8sMethod"] == asked["k8s"]["method"]
        assert decide(gate, approval_id, people["alice"]).status_code == 200
        refused = redeem(gate, approval_id, other)
        assert (refused["allowed"], refused["decision"]) == (False, "deny"), refused
        allowed = redeem(gate, approval_id, asked)
        assert (allowed["allowed"], allowed["decision"]) == (True, "allow"), allowed


def test_the_approve_line_shows_a_proxied_path_before_the_record(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory, people
) -> None:
    # Found in the review of the binding (rt25): the line printed just before the prompt
    # put the k8s record first, and with a long node name the kubelet command after it
    # was cut off at 300 characters.
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_text(people).replace(
            "rules:\n",
            "rules:\n  - {id: proxies, action: k8s.request, resource: nodes/proxy, "
            "decision: require_approval}\n",
        )
    )
    gate = daemon_factory(policy)
    node = "ip-10-0-12-34.eu-west-1.compute.internal-" + "x" * 120
    path = f"/api/v1/nodes/{node}/proxy/run/kube-system/etcd-0/etcd?cmd=etcdctl+del+--prefix+/"
    approval_id = ask(gate, {"action": "k8s.request", "k8s": {"method": "POST", "path": path}})[
        "approval"
    ]["id"]
    done = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()[-2]
    assert summary.startswith('approve k8s.request "POST" "/api/v1/nodes/'), summary
    assert '/proxy/run/kube-system/etcd-0/etcd" "cmd=etcdctl+del+--prefix+/"' in summary
