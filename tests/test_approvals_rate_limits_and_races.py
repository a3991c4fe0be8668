"""Approvals meeting rate limits and approvers (review of 2026-12-06, findings 3 and 4).

3. A check allowed because it used an approval never spent the rate limit of an allow
   rule that also matched it: tokens were taken only when the policy's verdict was
   already ``allow``, before the approval turned ``require_approval`` into ``allow``.
   docs/approvals.md, "Rate limits": an allowed check spends, of each rate-limited rule
   that matched it, one token per action it takes under that rule.
4. A check naming a pending approval while an approver's decision was being written was
   denied ("being used or decided by another request"); the docs say a check sent with
   the id before anyone decided is answered ``require_approval`` again, still pending.

Real daemons, sockets and signatures as in ``test_approvals.py``; the window in which a
decision is being written is opened in-process, against the real ``Gate``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from tests import test_approvals
from tests.daemon import Daemon, refusing_writes
from tests.test_approvals import Approver, ask, decide, events, in_process_gate, view, wait_for

people = test_approvals.people  # the fixture, under its name

SECRET = {"action": "file.write", "path": "/app/out/secret/key"}
POSTS = {"action": "process.exec", "commandLine": "curl -X POST a; curl -X POST b"}


def limited_policy(people: dict[str, Approver], writes: int = 2, fetches: int = 3) -> str:
    return f"""\
version: 1
rules:
  - {{id: write-out, action: file.write, path: {{glob: "/app/out/**"}}, decision: allow, rateLimit: {{count: {writes}, per: 1h}}}}
  - {{id: secret, action: file.write, path: {{glob: "/app/out/secret/**"}}, decision: require_approval}}
  - {{id: fetches, action: process.exec, command: curl, decision: allow, rateLimit: {{count: {fetches}, per: 1h}}}}
  - {{id: posts, action: process.exec, command: curl, args: {{prefix: [-X, POST]}}, decision: require_approval}}
approvals:
  approvers:
    - {{name: alice, publicKey: "{people["alice"].public_base64}"}}
"""


def start_limited(tmp_path: Path, daemon_factory, people, **limits: int) -> Daemon:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(limited_policy(people, **limits))
    return daemon_factory(policy)


def approved(gate: Daemon, body: dict[str, Any], people: dict[str, Approver]) -> str:
    opened = ask(gate, body)
    assert opened["decision"] == "require_approval", opened["reason"]
    approval_id: str = opened["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    return approval_id


def plain_write(gate: Daemon, i: int) -> dict[str, Any]:
    return ask(gate, {"action": "file.write", "path": f"/app/out/plain-{i}"})


def reload_policy(gate: Daemon, text: str) -> None:
    gate.policy.write_text(text)
    wanted = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    wait_for(lambda: gate.get("/v1/status").json()["policy"]["hash"] == wanted)


# -- 3. a check allowed by an approval spends the rate limits it matched ----------------


def test_a_check_allowed_by_an_approval_spends_a_token_of_the_allow_rule_it_matched(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    # The report's t9: write-out 2/1h also matches the approved writes. Three approvals
    # used and two plain writes made five writes within the hour.
    gate = start_limited(tmp_path, daemon_factory, people)
    other_write = {**SECRET, "path": "/app/out/secret/other"}
    approval_id, other = approved(gate, SECRET, people), approved(gate, other_write, people)
    used = ask(gate, {**SECRET, "approval": approval_id})
    assert (used["allowed"], used["decision"]) == (True, "allow"), used["reason"]
    answers = [plain_write(gate, i) for i in range(2)]
    assert [a["allowed"] for a in answers] == [True, False], [a["reason"] for a in answers]
    assert "rate limit 2/1h of rule write-out is spent" in answers[1]["reason"]
    # The budget spent, an approved write is denied for the rate limit, and its approval
    # is not used: it stays approved (the evaluator's deny comes before the approval).
    refused = ask(gate, {**other_write, "approval": other})
    assert (refused["allowed"], refused["decision"], refused["rule"]) == (
        False,
        "deny",
        "write-out",
    )
    assert view(gate, other)["status"] == "approved"
    assert events(gate, approval_id) == ["requested", "approved", "redeemed"]


def test_an_approval_too_few_tokens_cover_is_denied_and_not_used(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = start_limited(tmp_path, daemon_factory, people)
    approval_id = approved(gate, POSTS, people)
    # Two of fetches' three tokens spent: one left, the approved command line runs two.
    spend = ask(gate, {"action": "process.exec", "commandLine": "curl a; curl b"})
    assert spend["allowed"] is True
    with_id = {**POSTS, "approval": approval_id}
    preflight = ask(gate, {**with_id, "dryRun": True})
    assert (preflight["allowed"], preflight["decision"], preflight["rule"]) == (
        False,
        "deny",
        "fetches",
    )
    refused = ask(gate, with_id)
    assert (refused["allowed"], refused["decision"], refused["rule"]) == (False, "deny", "fetches")
    assert refused["reason"] == (
        "rate limit 3/1h of rule fetches is spent for process.exec: the check runs 2 "
        f"commands or redirections the rule covers, 1 token is left; approval {approval_id} "
        "is not used"
    )
    assert refused["approval"]["status"] == "approved"
    assert view(gate, approval_id)["status"] == "approved"
    record = next(r for r in gate.records() if r.get("decisionId") == refused["decisionId"])
    assert (record["decision"], record["allowed"], record["approval"]) == (
        "deny",
        False,
        approval_id,
    )
    # A raised limit (what was spent still counts: 4 - 2 = 2 left) lets it through.
    reload_policy(gate, limited_policy(people, fetches=4))
    used = ask(gate, with_id)
    assert (used["allowed"], used["decision"]) == (True, "allow"), used["reason"]
    assert events(gate, approval_id) == ["requested", "approved", "redeemed"]
    spent = ask(gate, {"action": "process.exec", "commandLine": "curl c"})
    assert (spent["allowed"], spent["rule"]) == (False, "fetches"), spent["reason"]


def test_a_check_using_an_approval_answered_503_gives_its_token_back(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = start_limited(tmp_path, daemon_factory, people)
    approval_id = approved(gate, SECRET, people)
    with_id = {**SECRET, "approval": approval_id}
    with refusing_writes(gate):
        failed = gate.check(with_id)
        assert failed.status_code == 503 and failed.json()["allowed"] is False
    assert view(gate, approval_id)["status"] == "approved"
    used = ask(gate, with_id)
    assert used["allowed"] is True, used["reason"]
    # Of 2 tokens: the 503 gave its token back, the used approval took one.
    answers = [plain_write(gate, i) for i in range(2)]
    assert [a["allowed"] for a in answers] == [True, False], [a["reason"] for a in answers]


def test_concurrent_redemptions_allow_one_and_spend_one_token(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    import httpx

    gate = start_limited(tmp_path, daemon_factory, people, writes=3)
    approval_id = approved(gate, SECRET, people)

    async def race() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(
            base_url=gate.url, limits=httpx.Limits(max_connections=50), timeout=30
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/check", json={**SECRET, "approval": approval_id})
                    for _ in range(50)
                )
            )
        return [r.json() for r in responses]

    answers = asyncio.run(race())
    assert sum(a["allowed"] for a in answers) == 1
    assert events(gate, approval_id).count("redeemed") == 1
    left = [plain_write(gate, i)["allowed"] for i in range(3)]
    assert left == [True, True, False], "one token of three spent, by the one allowed"


# -- 4. a check during an approver's decision is answered as pending --------------------


def rm_check(**extra: Any) -> bytes:
    return json.dumps({"action": "process.exec", "argv": ["rm", "/app/x"], **extra}).encode()


def signed_approval(alice: Approver, approval_id: str, request_hash: str) -> bytes:
    signature = alice.sign(approval_id, "approve", request_hash)
    return json.dumps({"decision": "approve", "approver": "alice", "signature": signature}).encode()


def test_a_check_while_the_decision_is_being_written_is_still_pending(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    gate = in_process_gate(tmp_path, people)

    async def scenario() -> tuple[bool, dict[str, Any], dict[str, Any]]:
        await gate.audit.start()
        await gate.load_policy()
        approval_id = (await gate.check(rm_check())).payload["approval"]["id"]
        approval = gate.approvals.get(approval_id)
        body = signed_approval(people["alice"], approval_id, approval.request_hash)
        deciding = asyncio.ensure_future(
            gate.approvals.decide(approval_id, body, gate.policy.active)
        )
        await asyncio.sleep(0)  # the decision has claimed the approval and is writing
        writing = approval.settling and approval.status == "pending"
        during = (await gate.check(rm_check(approval=approval_id))).payload
        await deciding
        after = (await gate.check(rm_check(approval=approval_id))).payload
        await gate.audit.close()
        return writing, during, after

    writing, during, after = asyncio.run(scenario())
    assert writing, "the check did not come while the decision was being written"
    assert (during["allowed"], during["decision"]) == (False, "require_approval"), during["reason"]
    # Pending when it was decided; the answer, made once its record was written (after
    # the decision's), shows the approval as it is by then.
    assert f"approval {during['approval']['id']} is pending" in during["reason"]
    assert (after["allowed"], after["decision"]) == (True, "allow"), after["reason"]


def test_checks_racing_the_decision_and_each_other_allow_exactly_one(
    tmp_path: Path, people
) -> None:  # type: ignore[no-untyped-def]
    # 50 checks with the id while the decision is written (answered as pending), and 50
    # at once after it: exactly one allow in all, and one redeemed record.
    gate = in_process_gate(tmp_path, people)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        await gate.audit.start()
        await gate.load_policy()
        approval_id = (await gate.check(rm_check())).payload["approval"]["id"]
        approval = gate.approvals.get(approval_id)
        body = signed_approval(people["alice"], approval_id, approval.request_hash)
        with_id = rm_check(approval=approval_id)
        deciding = asyncio.ensure_future(
            gate.approvals.decide(approval_id, body, gate.policy.active)
        )
        await asyncio.sleep(0)
        assert approval.settling
        during = await asyncio.gather(*(gate.check(with_id) for _ in range(50)))
        await deciding
        after = await asyncio.gather(*(gate.check(with_id) for _ in range(50)))
        await gate.audit.close()
        return [a.payload for a in during], [a.payload for a in after]

    during, after = asyncio.run(scenario())
    assert {a["decision"] for a in during} == {"require_approval"}
    assert all(" is pending" in a["reason"] for a in during)
    assert sum(a["allowed"] for a in after) == 1
    assert {a["decision"] for a in after if not a["allowed"]} == {"deny"}
    records = [
        json.loads(line)
        for segment in sorted((tmp_path / "audit" / "segments").glob("*.jsonl"))
        for line in segment.read_text().splitlines()
    ]
    redeemed = [r for r in records if r["type"] == "approval" and r["event"] == "redeemed"]
    assert len(redeemed) == 1
    allowed = [r for r in records if r["type"] == "decision" and r["allowed"]]
    assert len(allowed) == 1
