"""Webhook notices across a gate restart: at-least-once delivery.

A notice still queued or being retried when the gate stops is sent again by the next
start (marked ``redelivery``), for approvals still pending; one the trail records as
``notified`` is not. Real daemons, a real receiver, real signals, as in
``test_approvals.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import test_approvals
from tests.daemon import Daemon, free_port, refusing_writes
from tests.test_approvals import (
    DELETE_API,
    Approver,
    Hook,
    approval_events,
    ask,
    events,
    policy_text,
    view,
    wait_for,
)
from tests.test_approvals_review import reload_policy

# The fixtures of test_approvals.py, under the same names.
people = test_approvals.people
start = test_approvals.start
hook_factory = test_approvals.hook_factory


def received_for(hook: Hook, approval_id: str) -> list[dict[str, Any]]:
    return [notice for notice in hook.received if notice["approval"] == approval_id]


def notified(gate: Daemon, approval_id: str) -> bool:
    return "notified" in events(gate, approval_id)


def test_a_notice_undelivered_when_the_gate_stops_is_sent_after_the_restart(
    start: Callable[..., Daemon], hook_factory: Callable[..., Hook]
) -> None:
    port = free_port()  # the receiver is down: nothing listens here yet
    webhook = f"http://127.0.0.1:{port}/hook"
    gate = start(webhook=webhook)
    approval_id = ask(gate)["approval"]["id"]
    audit_dir = gate.audit_dir
    gate.stop()  # SIGTERM while the notice is being retried (5 attempts take ~7.5 s)
    assert events(gate, approval_id) == ["requested"], "neither delivered nor given up"

    hook = hook_factory(port=port)  # the receiver comes up
    gate = start(webhook=webhook, audit_dir=audit_dir)
    wait_for(lambda: notified(gate, approval_id), timeout=15)
    [notice] = received_for(hook, approval_id)
    assert notice["redelivery"] is True and notice["status"] == "pending"
    assert notice["expiresAt"] == view(gate, approval_id)["expiresAt"]
    # The command line names this run's address, although no check has arrived yet.
    assert notice["approveCommand"] == (
        f"tollgate approvals approve {approval_id} --url {gate.url} --key KEY_FILE --name NAME"
    )
    record = approval_events(gate, approval_id)[-1]
    assert record["event"] == "notified" and record["attempts"] == 1
    assert record["identity"] == "test/agent/pod-1"


def test_no_notice_is_sent_again_for_an_approval_the_restart_made_unusable(
    start: Callable[..., Daemon], hook_factory: Callable[..., Hook]
) -> None:
    # Without a signing key, a request holding a secret is bound with a key the next run
    # does not have: its approval can never be used, so no approver is asked for it.
    port = free_port()  # the receiver is down: nothing listens here yet
    webhook = f"http://127.0.0.1:{port}/hook"
    gate = start(webhook=webhook)
    with_secret = ask(
        gate, {"action": "process.exec", "argv": ["rm", "--password=hunter2", "/app/x"]}
    )["approval"]["id"]
    plain = ask(gate)["approval"]["id"]
    audit_dir = gate.audit_dir
    gate.stop()

    hook = hook_factory(port=port)
    gate = start(webhook=webhook, audit_dir=audit_dir)
    wait_for(lambda: notified(gate, plain), timeout=15)
    time.sleep(1.0)  # deliveries run side by side: time for a second one to a local hook
    assert received_for(hook, with_secret) == []
    assert events(gate, with_secret) == ["requested"]
    assert view(gate, with_secret)["status"] == "pending"  # listed still, until it expires


def test_a_notice_delivered_before_the_restart_is_not_sent_again(
    start: Callable[..., Daemon], hook_factory: Callable[..., Hook]
) -> None:
    hook = hook_factory()
    gate = start(webhook=hook.url)
    first = ask(gate)["approval"]["id"]
    wait_for(lambda: notified(gate, first))
    assert [n["redelivery"] for n in received_for(hook, first)] == [False]
    audit_dir = gate.audit_dir
    gate.stop()

    gate = start(webhook=hook.url, audit_dir=audit_dir)
    assert view(gate, first)["status"] == "pending"
    # A notice queued at start would be queued before this one: once this one is
    # delivered and recorded, a second notice of the first would have been sent too.
    second = ask(gate, DELETE_API)["approval"]["id"]
    wait_for(lambda: notified(gate, second))
    time.sleep(0.5)
    assert [n["approval"] for n in hook.received] == [first, second]
    assert events(gate, first) == ["requested", "notified"]


def test_an_approval_that_expired_while_the_gate_was_down_is_not_notified(
    tmp_path: Path,
    start: Callable[..., Daemon],
    hook_factory: Callable[..., Hook],
    people: dict[str, Approver],
) -> None:
    port = free_port()  # the receiver is down
    webhook = f"http://127.0.0.1:{port}/hook"
    gate = start(timeout="3s", webhook=webhook)
    short = ask(gate)["approval"]["id"]
    reload_policy(gate, tmp_path / "policy.yaml", policy_text(people, "300s", webhook))
    long = ask(gate, DELETE_API)["approval"]["id"]
    audit_dir = gate.audit_dir
    gate.stop()
    assert events(gate, short) == ["requested"], "stopped before it expired"
    expires = test_approvals.parse_time(approval_events(gate, short)[0]["expiresAt"])
    time.sleep(max(0.0, expires - time.time()) + 0.2)  # it expires while the gate is down

    hook = hook_factory(port=port)
    gate = start(webhook=webhook, audit_dir=audit_dir)
    wait_for(lambda: notified(gate, long), timeout=15)
    wait_for(lambda: "expired" in events(gate, short))
    time.sleep(0.5)
    assert [n["approval"] for n in hook.received] == [long], "only the pending one"
    assert events(gate, short) == ["requested", "expired"]


def test_a_notified_record_the_trail_refused_means_the_notice_is_sent_again(
    start: Callable[..., Daemon], hook_factory: Callable[..., Hook]
) -> None:
    # The first attempt is answered 500 after a second; the retry succeeds while the
    # trail refuses writes, so its ``notified`` record is lost. The notifier carries on,
    # and the next start sends the notice again: at-least-once.
    hook = hook_factory(failures=1, delay=1.0)
    gate = start(webhook=hook.url)
    first = ask(gate)["approval"]["id"]
    with refusing_writes(gate):
        wait_for(lambda: len(hook.received) == 2, timeout=10)
        wait_for(lambda: "tollgate_audit_write_failures_total 1.0" in gate.get("/metrics").text)
    assert events(gate, first) == ["requested"]
    second = ask(gate, DELETE_API)["approval"]["id"]
    wait_for(lambda: notified(gate, second))  # the notifier still delivers and records
    audit_dir = gate.audit_dir
    gate.stop()

    gate = start(webhook=hook.url, audit_dir=audit_dir)
    wait_for(lambda: notified(gate, first))
    assert [(n["approval"], n["redelivery"]) for n in hook.received] == [
        (first, False),
        (first, False),
        (second, False),
        (first, True),
    ]
    assert view(gate, first)["status"] == "pending"


def test_the_replay_takes_notified_and_notify_failed_and_trails_without_them() -> None:
    from sidecar.approvals.book import ApprovalBook

    def requested(approval_id: str) -> dict[str, Any]:
        return {
            "type": "approval", "event": "requested", "approval": approval_id,
            "ts": "2030-01-01T00:00:00.000000Z", "action": "file.read",
            "request": {"path": "/x"}, "requestHash": "sha256:" + "0" * 64,
            "expiresAt": "2030-01-01T00:05:00.000000Z",
        }  # fmt: skip

    def outcome(event: str, approval_id: str) -> dict[str, Any]:
        return {
            "type": "approval", "event": event, "approval": approval_id,
            "ts": "2030-01-01T00:00:01.000000Z", "attempts": 1,
        }  # fmt: skip

    book = ApprovalBook()
    records = [
        requested("apr_1"), outcome("notified", "apr_1"),
        requested("apr_2"), outcome("notifyFailed", "apr_2"),
        requested("apr_3"),  # an older trail, or a notice never delivered
        outcome("notified", "apr_unknown"),  # opens nothing
    ]  # fmt: skip
    assert book.replay(records) == 5
    notice_recorded = {a.id: a.notice_recorded for a in book.listed(None, 0)}
    assert notice_recorded == {"apr_1": True, "apr_2": True, "apr_3": False}
    assert all(a.status == "pending" for a in book.listed(None, 0))
