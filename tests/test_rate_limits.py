"""``rateLimit`` on allow rules against the real daemon (CONTRACT section 1): a token
bucket per rule; a spent bucket is a deny that names the rule and says so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes
from sidecar.ratelimit import RateLimiter
from tests.daemon import Daemon, refusing_writes

POLICY = """\
version: 1
rules:
  - {id: reads, action: file.read, path: {glob: "/app/data/**"}, decision: allow, risk: medium, rateLimit: {count: 3, per: 60s}}
  - {id: writes, action: file.write, path: {glob: "/app/out/**"}, decision: allow, rateLimit: {count: 2, per: 1s}}
  - {id: status, action: process.exec, command: git, args: {prefix: [status]}, decision: allow, rateLimit: {count: 2, per: 60s}}
  - {id: logs, action: file.read, path: {glob: "/var/log/**"}, decision: allow}
"""


@pytest.fixture
def gate(write_policy, daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory(write_policy(POLICY))


def check(gate: Daemon, body: dict[str, Any]) -> dict[str, Any]:
    response = gate.check(body)
    assert response.status_code == 200, response.text
    return response.json()


def read(gate: Daemon, path: str = "/app/data/x", **extra: Any) -> dict[str, Any]:
    return check(gate, {"action": "file.read", "path": path, **extra})


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_spent_bucket_denies_naming_the_rule(gate: Daemon) -> None:
    answers = [read(gate, f"/app/data/{i}") for i in range(4)]
    assert [a["allowed"] for a in answers] == [True, True, True, False]
    spent = answers[3]
    assert (spent["decision"], spent["rule"], spent["risk"]) == ("deny", "reads", "medium")
    assert spent["reason"] == "rate limit 3/60s of rule reads is spent for file.read of /app/data/3"
    record = next(r for r in gate.records() if r.get("decisionId") == spent["decisionId"])
    assert (record["decision"], record["allowed"], record["rule"]) == ("deny", False, "reads")
    assert "rate limit" in record["reason"]
    # Other rules have their own buckets.
    assert read(gate, "/var/log/syslog")["allowed"] is True
    assert check(gate, {"action": "process.exec", "argv": ["git", "status"]})["allowed"] is True
    assert check(gate, {"action": "file.write", "path": "/app/out/r"})["allowed"] is True


def test_a_check_the_trail_could_not_record_spends_nothing(gate: Daemon) -> None:
    """Answered 503 (deny), the agent did not act: its token is given back."""
    assert read(gate)["allowed"] is True
    with refusing_writes(gate):
        failed = gate.check({"action": "file.read", "path": "/app/data/y"})
        assert failed.status_code == 503 and failed.json()["allowed"] is False
    answers = [read(gate, f"/app/data/{i}") for i in range(3)]
    assert [a["allowed"] for a in answers] == [True, True, False]


def test_a_refund_gives_back_one_token_and_never_more_than_the_bucket_holds() -> None:
    policy = load_policy_bytes(POLICY.encode(), "policy.yaml")
    clock = [100.0]  # frozen: no refill while the test runs
    limiter = RateLimiter(clock=lambda: clock[0])
    verdict = evaluate_request(
        policy, {"action": "file.read", "path": "/app/data/x"}, exhausted=limiter.exhausted
    )
    (reads,) = [rule for rule in policy.rules if rule.id == "reads"]
    spent = [limiter.spend(policy, verdict) for _ in range(3)]
    assert [[rule.id for rule in rules] for rules in spent] == [["reads"]] * 3
    assert limiter.exhausted(reads)
    limiter.refund(spent[0])
    assert limiter.remaining(reads) == 1.0
    for rules in spent:
        limiter.refund(rules)
    assert limiter.remaining(reads) == 3.0, "capped at the bucket's count"


def test_the_bucket_refills_over_time(gate: Daemon) -> None:
    write = {"action": "file.write", "path": "/app/out/report.csv"}
    assert [check(gate, write)["allowed"] for _ in range(3)] == [True, True, False]
    # 2 per second: one token is back after half a second.
    time.sleep(0.6)
    assert check(gate, write)["allowed"] is True
    assert check(gate, write)["allowed"] is False


def test_dry_runs_see_a_spent_bucket_but_spend_nothing(gate: Daemon) -> None:
    for _ in range(5):
        assert read(gate, dryRun=True)["allowed"] is True
    assert [read(gate)["allowed"] for _ in range(4)] == [True, True, True, False]
    preflight = read(gate, dryRun=True)
    assert preflight["allowed"] is False and "rate limit" in preflight["reason"]


def test_forms_of_one_action_spend_one_token(gate: Daemon) -> None:
    # A path and its different realPath both match the rule: still one read.
    for i in range(3):
        assert read(gate, "/app/data/link", realPath=f"/app/data/target-{i}")["allowed"] is True
    assert read(gate, "/app/data/link", realPath="/app/data/t")["allowed"] is False


def test_every_command_of_a_command_line_spends_a_token(gate: Daemon) -> None:
    # Batching is no way around a budget: `git status && git status` runs git twice.
    twice = {"action": "process.exec", "commandLine": "git status && git status"}
    assert check(gate, twice)["allowed"] is True  # both tokens of 2
    assert check(gate, {"action": "process.exec", "argv": ["git", "status"]})["allowed"] is False


def test_a_command_line_needing_more_tokens_than_are_left_is_denied(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nrules:\n"
        "  - {id: fetches, action: process.exec, command: curl, decision: allow, risk: medium,"
        " rateLimit: {count: 3, per: 1h}}\n"
        "  - {id: echo, action: process.exec, command: echo, decision: allow}\n"
    )
    gate = daemon_factory(policy)

    def run(line: str) -> dict[str, Any]:
        return check(gate, {"action": "process.exec", "commandLine": line})

    many = run("; ".join(f"curl https://example.com/{i}" for i in range(50)))
    assert (many["allowed"], many["decision"], many["rule"]) == (False, "deny", "fetches")
    assert many["risk"] == "medium"
    assert many["reason"] == (
        "rate limit 3/1h of rule fetches is spent for process.exec: the check runs 50 "
        "commands or redirections the rule covers, 3 tokens are left"
    )
    assert run("curl a; echo hi; curl b")["allowed"] is True  # two of three spent
    refused = run("curl c | curl d")
    assert refused["allowed"] is False and "2 commands or redirections" in refused["reason"]
    assert "1 token is left" in refused["reason"]
    assert run("curl e")["allowed"] is True
    assert run("curl f")["allowed"] is False
    record = next(r for r in gate.records() if r.get("decisionId") == many["decisionId"])
    assert (record["decision"], record["allowed"], record["rule"]) == ("deny", False, "fetches")


def test_concurrent_checks_never_overspend(gate: Daemon) -> None:
    async def burst() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=gate.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/check", json={"action": "file.read", "path": f"/app/data/{i}"})
                    for i in range(30)
                )
            )
        return [r.json() for r in responses]

    answers = asyncio.run(burst())
    assert sum(a["allowed"] for a in answers) == 3
    assert all(a["rule"] == "reads" for a in answers)


def test_a_spent_limit_counts_as_a_deny_and_beats_an_approval_rule(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nrules:\n"
        "  - {id: limited, action: file.read, path: {glob: '/a/**'}, decision: allow, rateLimit: {count: 1, per: 60s}}\n"
        "  - {id: ask, action: file.read, path: /a/secret, decision: require_approval}\n"
    )
    gate = daemon_factory(policy)
    assert read(gate, "/a/secret")["decision"] == "require_approval"
    assert read(gate, "/a/x")["allowed"] is True
    spent = read(gate, "/a/secret")
    assert (spent["decision"], spent["rule"]) == ("deny", "limited")
    assert "rate limit 1/60s of rule limited is spent" in spent["reason"]
    assert "approval" not in spent


def test_buckets_survive_a_reload_and_a_new_limit_keeps_what_was_spent(gate: Daemon) -> None:
    assert [read(gate)["allowed"] for _ in range(4)] == [True, True, True, False]
    # An unrelated edit keeps the spent bucket: no fresh budget from touching the file.
    gate.policy.write_text(POLICY.replace("id: logs", "id: system-logs"))
    wait_for(lambda: read(gate, "/var/log/x")["rule"] == "system-logs")
    assert read(gate)["allowed"] is False
    # A higher limit adds only the difference: the 3 reads spent still count.
    gate.policy.write_text(POLICY.replace("count: 3, per: 60s", "count: 5, per: 60s"))
    wait_for(lambda: read(gate, "/var/log/x")["rule"] == "logs")
    assert [read(gate)["allowed"] for _ in range(3)] == [True, True, False]


def test_lowering_a_limit_takes_effect_at_once() -> None:
    # An operator lowers the limit of an agent that is using it up: before, a changed
    # limit was a new, full bucket, which handed the agent a fresh budget.
    limiter = RateLimiter(clock=lambda: 100.0)  # frozen: no refill
    generous = HEAD + READS.replace("count: 2, per: 1h", "count: 10, per: 1h")
    assert _spend_reads(limiter, generous, 4) == [True] * 4
    assert _spend_reads(limiter, HEAD + READS.replace("count: 2", "count: 5"), 2) == [True, False]
    assert _spend_reads(limiter, HEAD + READS, 1) == [False]  # 5 spent, 2 allowed


def test_rules_alike_but_for_their_limits_keep_separate_budgets() -> None:
    limiter = RateLimiter(clock=lambda: 100.0)
    twice = HEAD + READS + READS.replace("count: 2", "count: 3")
    assert _spend_reads(limiter, twice, 1) == [True]  # one token of each
    policy = load_policy_bytes(twice.encode(), "policy.yaml")
    assert [limiter.remaining(rule) for rule in policy.rules] == [1.0, 2.0]


READS = '  - {action: file.read, path: {glob: "/app/**"}, decision: allow, rateLimit: {count: 2, per: 1h}}\n'
WRITES = '  - {action: file.write, path: {glob: "/app/**"}, decision: allow, rateLimit: {count: 2, per: 1h}}\n'
OTHER = "  - {action: network.request, host: example.com, decision: allow}\n"
HEAD = "version: 1\nrules:\n"
ID_LESS = HEAD + READS + WRITES


def _spend_reads(limiter: RateLimiter, text: str, times: int) -> list[bool]:
    policy = load_policy_bytes(text.encode(), "policy.yaml")
    limiter.retain(policy)  # what a reload does
    allowed = []
    for _ in range(times):
        verdict = evaluate_request(
            policy, {"action": "file.read", "path": "/app/x"}, exhausted=limiter.exhausted
        )
        if verdict.allowed:
            limiter.spend(policy, verdict)
        allowed.append(verdict.allowed)
    return allowed


def _writes_left(limiter: RateLimiter, text: str) -> float:
    policy = load_policy_bytes(text.encode(), "policy.yaml")
    (writes,) = [rule for rule in policy.rules if "file.write" in rule.actions]
    return limiter.remaining(writes)


@pytest.mark.parametrize(
    "reloaded",
    [
        pytest.param(HEAD + OTHER + READS + WRITES, id="a-rule-added-above"),
        pytest.param(HEAD + WRITES + READS, id="rules-swapped"),
        pytest.param(ID_LESS.replace("per: 1h", "per: 60m"), id="the-window-respelled"),
    ],
)
def test_a_rule_without_an_id_keeps_its_own_spent_budget_across_a_reload(reloaded: str) -> None:
    # Default ids (rules[0]) name positions: keyed by them, an edit elsewhere handed a
    # spent rule a fresh budget and moved its empty bucket onto another rule.
    limiter = RateLimiter(clock=lambda: 100.0)  # frozen: no refill
    assert _spend_reads(limiter, ID_LESS, 3) == [True, True, False]
    assert _spend_reads(limiter, reloaded, 1) == [False]
    assert _writes_left(limiter, reloaded) == 2.0
