"""The approvals the gate holds in memory are bounded whatever an agent asks.

Found by the red-team review of 2026-12-07: the cap counted only live approvals, and
finished ones (expired, denied, redeemed) were kept for an hour each with the agent's
whole request. An agent opening 1,000 approvals of large requests, letting them expire
and opening 1,000 more took the gate from 64 to over 400 MiB in three waves (its pod's
limit is 256 MiB), and a restart, replaying them from the trail, came straight back.
Now live approvals are bounded by their bytes as well as their number (a new one beyond
either is refused), and finished ones by number and bytes (the oldest forgotten first,
also while the trail is replayed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.approvals.book import ApprovalBook
from sidecar.approvals.model import Approval
from sidecar.approvals.trail import approval_records
from tests import test_approvals
from tests.daemon import Daemon
from tests.test_approvals import Approver, ask, events, in_process_gate, wait_for

people = test_approvals.people  # the fixtures, under their names
start = test_approvals.start

# About 20 KB of request each; a real agent's script can be 64 KiB.
LARGE = "x" * 20_000


def rm(path: str, **extra: Any) -> bytes:
    return json.dumps({"action": "process.exec", "argv": ["rm", path], **extra}).encode()


def test_live_approvals_are_bounded_by_the_bytes_they_hold(
    tmp_path: Path, people: dict[str, Approver]
) -> None:
    gate = in_process_gate(tmp_path, people)
    # About 40 KB each (the request, and the policy's reason quoting its command): two
    # fit, a third does not.
    gate.approvals.book.max_live_bytes = 100_000

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        await gate.audit.start()
        await gate.load_policy()
        answers = [(await gate.check(rm(f"/app/{i}/{LARGE}"))).payload for i in range(8)]
        preflight = (await gate.check(rm(f"/app/9/{LARGE}", dryRun=True))).payload
        small = (await gate.check(rm("/app/small"))).payload
        await gate.audit.close()
        return answers, preflight, small

    answers, preflight, small = asyncio.run(scenario())
    opened = [a for a in answers if a["decision"] == "require_approval"]
    refused = [a for a in answers if a["decision"] == "deny"]
    assert len(opened) == 2 and len(refused) == 6
    for answer in refused:
        assert "approval" not in answer and answer["allowed"] is False
        assert "this one would take them over 97 KiB, so no new one is opened" in answer["reason"]
    # A dry run says what the real check would get; a small request still fits.
    assert preflight["decision"] == "deny" and "would take them over" in preflight["reason"]
    assert small["decision"] == "require_approval"


def _approval(number: int, request: dict[str, Any]) -> Approval:
    return Approval(
        id=f"apr_{number:04d}",
        request_hash="sha256:" + "0" * 64,
        binding="sha256:" + f"{number:064d}",
        action="process.exec",
        request=request,
        rule="removals",
        risk="high",
        policy_reason="process.exec requires approval",
        policy="sha256:" + "1" * 64,
        identity="test",
        decision_id=f"d{number}",
        created_us=1_000_000 + number,
        expires_us=2_000_000 + number,
    )


def test_finished_approvals_beyond_the_bounds_are_forgotten_oldest_first() -> None:
    book = ApprovalBook(max_finished=5, max_finished_bytes=10**9)
    for number in range(200):
        approval = _approval(number, {"argv": ["rm", f"/app/{number}"]})
        book.add(approval)
        book.expired(approval, at=3_000_000 + number)
    book.prune(now=3_000_000)  # the expiry loop's pass: within the retention
    kept = book.listed(None, now=3_000_000)
    assert [a.id for a in kept] == [f"apr_{n:04d}" for n in range(195, 200)]
    assert book.get("apr_0000") is None  # a late poll for it is a 404, its use a deny

    by_bytes = ApprovalBook(max_finished=1000, max_finished_bytes=3 * 21_000)
    for number in range(10):
        approval = _approval(number, {"argv": ["rm", f"/app/{number}/{LARGE}"]})
        by_bytes.add(approval)
        by_bytes.expired(approval, at=3_000_000 + number)
    by_bytes.prune(now=3_000_000)
    assert [a.id for a in by_bytes.listed(None, now=3_000_000)] == [
        "apr_0007",
        "apr_0008",
        "apr_0009",
    ]


def test_a_pending_approval_is_never_forgotten_for_a_finished_ones_room() -> None:
    book = ApprovalBook(max_finished=2, max_finished_bytes=10**9)
    waiting = _approval(0, {"argv": ["rm", "/app/waiting"]})
    book.add(waiting)
    for number in range(1, 100):
        approval = _approval(number, {"argv": ["rm", f"/app/{number}"]})
        book.add(approval)
        book.expired(approval, at=3_000_000 + number)
    book.prune(now=1_500_000)
    assert book.get("apr_0000") is waiting and waiting.status == "pending"
    assert len(book.listed(None, now=1_500_000)) == 3


def test_a_restart_replays_a_long_trail_of_finished_approvals_within_the_bounds(
    start: Callable[..., Daemon],
) -> None:
    gate = start(timeout="1s")
    opened = [ask(gate, {"action": "process.exec", "argv": ["rm", f"/app/{i}"]}) for i in range(40)]
    assert all(answer["decision"] == "require_approval" for answer in opened)
    # Each expires after a second, recorded by the gate's expiry loop.
    wait_for(lambda: events(gate, opened[-1]["approval"]["id"]) == ["requested", "expired"])
    audit = gate.audit_dir
    gate.stop()
    book = ApprovalBook(max_finished=10)
    assert book.replay(approval_records(audit)) == 80
    kept = book.listed(None, now=0)
    assert [a.id for a in kept] == [answer["approval"]["id"] for answer in opened[-10:]]
    assert all(a.status == "expired" for a in kept)
