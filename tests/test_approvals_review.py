"""Approvals under attack, beyond the basic flow of ``test_approvals.py``: an approval
whose approver a policy reload removed (or whose key it replaced), an approved check
refused because the trail could not take records held for it, a decision the trail
cannot record, audit mode meeting an approval, a webhook answering a byte at a time,
and ``tollgate approvals list`` with nothing to list. Real daemons, sockets and
signatures, as in ``test_approvals.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests import test_approvals
from tests.daemon import Daemon, refusing_writes
from tests.test_approvals import (
    DELETE_WEB,
    Approver,
    ask,
    decide,
    events,
    in_process_gate,
    redeem,
    view,
    wait_for,
)

# The fixtures of test_approvals.py, under the same names.
people = test_approvals.people
start = test_approvals.start
hook_factory = test_approvals.hook_factory


def reload_policy(gate: Daemon, policy: Path, text: str) -> None:
    """Write ``text`` as the policy and wait until the gate runs it."""
    policy.write_text(text)
    wanted = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    wait_for(lambda: gate.get("/v1/status").json()["policy"]["hash"] == wanted)


def test_an_approval_is_not_used_once_its_approver_is_no_longer_in_the_policy(
    tmp_path: Path, start, people
) -> None:  # type: ignore[no-untyped-def]
    # An approver's key found compromised is taken out of the policy: what was approved
    # with it, and not yet used, must not be used any more.
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    policy = tmp_path / "policy.yaml"
    original = policy.read_text()
    alice_line = next(line for line in original.splitlines() if "name: alice" in line)
    reload_policy(gate, policy, original.replace(alice_line + "\n", ""))

    refused = redeem(gate, approval_id)
    assert (refused["allowed"], refused["decision"]) == (False, "deny")
    assert "alice" in refused["reason"] and "no longer" in refused["reason"]
    assert view(gate, approval_id)["status"] == "approved", "a denied check spends nothing"

    # Same name, another key (alice's key replaced after a leak): still not usable.
    reload_policy(
        gate,
        policy,
        original.replace(people["alice"].public_base64, people["mallory"].public_base64),
    )
    refused = redeem(gate, approval_id)
    assert refused["allowed"] is False and "no longer" in refused["reason"]

    # With alice's own key back, the approval is usable again (it was never spent).
    reload_policy(gate, policy, original)
    assert redeem(gate, approval_id)["allowed"] is True
    assert events(gate, approval_id) == ["requested", "approved", "redeemed"]


def test_an_approved_check_refused_for_held_records_can_be_re_sent(tmp_path: Path, people) -> None:  # type: ignore[no-untyped-def]
    # A record held for the decisions (startup, policyLoaded) that the trail cannot take
    # refuses the check that would use an approval (503) before its records are written.
    # The approval must stay usable for the re-sent check, as for any failed write.
    gate = in_process_gate(tmp_path, people)
    rm = {"action": "process.exec", "argv": ["rm", "/app/x"]}
    alice: Approver = people["alice"]

    async def scenario() -> tuple[int, dict[str, Any], dict[str, Any]]:
        await gate.audit.start()
        await gate.load_policy()
        opened = (await gate.check(json.dumps(rm).encode())).payload
        approval_id = opened["approval"]["id"]
        request_hash = gate.approvals.get(approval_id).request_hash
        signed = {
            "decision": "approve",
            "approver": "alice",
            "signature": alice.sign(approval_id, "approve", request_hash),
        }
        await gate.approvals.decide(approval_id, json.dumps(signed).encode(), gate.policy.active)
        with_id = json.dumps({**rm, "approval": approval_id}).encode()
        with refusing_writes(tmp_path / "audit"):
            await gate.record_before_decisions("startup", {"identity": gate.identity})
            refused = await gate.check(with_id)
        retried = (await gate.check(with_id)).payload
        shown = gate.approvals.get(approval_id).view(0)
        await gate.audit.close()
        return refused.status, retried, shown

    refused, retried, shown = asyncio.run(scenario())
    assert refused == 503
    assert (retried["allowed"], retried["decision"]) == (True, "allow"), retried["reason"]
    assert shown["status"] == "redeemed"


def test_a_decision_the_trail_cannot_record_is_not_taken(start, people) -> None:  # type: ignore[no-untyped-def]
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    with refusing_writes(gate):
        failed = decide(gate, approval_id, people["alice"])
        assert failed.status_code == 503 and failed.json()["allowed"] is False
        assert view(gate, approval_id)["status"] == "pending"
    assert events(gate, approval_id) == ["requested"]
    assert redeem(gate, approval_id)["allowed"] is False
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    assert redeem(gate, approval_id)["allowed"] is True


def test_audit_mode_records_what_enforce_would_do_with_an_approval(
    tmp_path: Path, start, people
) -> None:  # type: ignore[no-untyped-def]
    # Approvals asked for in enforce mode, then the policy is switched to audit mode.
    gate = start()
    approved = ask(gate)["approval"]["id"]
    assert decide(gate, approved, people["alice"]).status_code == 200
    pending_body = {**DELETE_WEB, "context": {"n": 2}}
    pending = ask(gate, pending_body)["approval"]["id"]
    policy = tmp_path / "policy.yaml"
    reload_policy(
        gate, policy, policy.read_text().replace("version: 1\n", "version: 1\nmode: audit\n")
    )

    used = redeem(gate, approved)
    assert (used["allowed"], used["decision"], used["mode"]) == (True, "allow", "audit")
    assert "approved by alice" in used["reason"]
    # Used, as enforce mode would have used it: it is not good for another action.
    again = redeem(gate, approved)
    assert (again["allowed"], again["decision"]) == (True, "deny")
    assert "already used" in again["reason"]
    unknown = redeem(gate, "apr_" + "0" * 26)
    assert (unknown["allowed"], unknown["decision"]) == (True, "deny")
    waiting = redeem(gate, pending, pending_body)
    assert (waiting["allowed"], waiting["decision"]) == (True, "require_approval")
    assert f"approval {pending} is pending" in waiting["reason"]
    # Nobody is asked in audit mode: no approval is opened.
    before = len(gate.get("/v1/approvals?status=pending").json()["approvals"])
    fresh = ask(gate, {**DELETE_WEB, "context": {"n": 3}})
    assert (fresh["allowed"], fresh["decision"]) == (True, "require_approval")
    assert "approval" not in fresh
    assert len(gate.get("/v1/approvals?status=pending").json()["approvals"]) == before
    records = {r["decisionId"]: r for r in gate.records() if r["type"] == "decision"}
    assert records[used["decisionId"]]["decision"] == "allow"
    assert records[again["decisionId"]]["decision"] == "deny"
    assert events(gate, approved) == ["requested", "approved", "redeemed"]


def test_a_webhook_answering_a_byte_at_a_time_is_given_up_on_at_the_attempt_timeout() -> None:
    # A webhook (or a proxy in front of it) that answers slowly but never stalls long
    # enough for a socket timeout must not hold a delivery for as long as it trickles:
    # the attempt timeout bounds the whole attempt, and the connection is closed.
    from sidecar.approvals.webhook import Notice, WebhookNotifier

    listener = socket.create_server(("127.0.0.1", 0))
    closed: list[float] = []

    def trickle() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=slowly, args=(conn,), daemon=True).start()

    def slowly(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                conn.sendall(bytes([byte]))
                time.sleep(0.1)
        closed.append(time.monotonic())

    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    gave_up: list[tuple[int, str]] = []

    async def scenario() -> float:
        async def give_up(notice: Notice, attempts: int, problem: str) -> None:
            gave_up.append((attempts, problem))

        notifier = WebhookNotifier(give_up, attempts=2, first_backoff=0.1, timeout=0.5)
        runner = asyncio.ensure_future(notifier.run())
        started = time.monotonic()
        notifier.submit(Notice("apr_x", url, {"text": "hello"}))
        while not gave_up and time.monotonic() - started < 15:
            await asyncio.sleep(0.05)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        return time.monotonic() - started

    try:
        took = asyncio.run(scenario())
    finally:
        listener.close()
    assert gave_up and gave_up[0][0] == 2, gave_up
    assert "0.5 s" in gave_up[0][1]
    assert took < 3.0, f"two attempts of 0.5 s took {took:.1f} s"
    wait_for(lambda: len(closed) == 2, timeout=5)  # the gate hung up on both


def test_cli_list_with_nothing_to_show_says_so_once(start) -> None:  # type: ignore[no-untyped-def]
    from tests.test_approvals import tollgate

    gate = start()
    listed = tollgate("approvals", "list", "--url", gate.url)
    assert (listed.returncode, listed.stdout) == (0, "no pending approvals\n")
    everything = tollgate("approvals", "list", "--status", "all", "--url", gate.url)
    assert (everything.returncode, everything.stdout) == (0, "no approvals\n")
    bad = tollgate("approvals", "list", "--status", "later", "--url", gate.url)
    assert bad.returncode == 2 and "status must be one of" in bad.stderr
    # CONTRACT 3: "tollgate approvals list|approve|deny ... --url URL --key FILE --name
    # NAME": one command line for the three (list refused --key and --name).
    alike = tollgate("approvals", "list", "--url", gate.url, "--key", "a.key", "--name", "a")
    assert (alike.returncode, alike.stdout) == (0, "no pending approvals\n"), alike.stderr


def test_a_decision_body_with_a_key_twice_is_refused(start, people) -> None:  # type: ignore[no-untyped-def]
    # Found in review (2026-12-06): json.loads kept the last of two equal keys, so a body
    # saying "deny" and then "approve" (signed for approve) was applied as approved, and
    # its record could read as either. Parsed as strictly as a /check body now.
    gate = start()
    approval_id = ask(gate)["approval"]["id"]
    request_hash = view(gate, approval_id)["requestHash"]
    signature = people["alice"].sign(approval_id, "approve", request_hash)
    body = (
        '{"decision":"deny","approver":"mallory","decision":"approve","approver":"alice",'
        f'"signature":"{signature}"}}'
    ).encode()
    refused = test_approvals.post(gate, approval_id, body)
    assert refused.status_code == 403
    assert "duplicate key 'decision'" in refused.json()["error"]["message"]
    assert view(gate, approval_id)["status"] == "pending"
    assert decide(gate, approval_id, people["alice"]).status_code == 200
