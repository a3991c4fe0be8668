"""An allowed check spends a token of exactly the rate-limited allow rules that matched
it: never a rule of the same action that did not match, never twice for one check.

Mutation testing found ``matching_allow_rules`` (what the gate spends by) unpinned by
every in-process suite: it could have spent the budget of a rule the request did not
match, so reads of /app/x would use up the budget meant for /app/logs.
"""

from __future__ import annotations

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes
from sidecar.ratelimit import RateLimiter

POLICY = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: app, action: file.read, path: {glob: '/app/**'}, decision: allow,"
    b" rateLimit: {count: 5, per: 1h}}\n"
    b"  - {id: logs, action: file.read, path: {glob: '/app/logs/**'}, decision: allow,"
    b" rateLimit: {count: 2, per: 1h}}\n"
    b"  - {id: writes, action: file.write, path: {glob: '/app/**'}, decision: allow,"
    b" rateLimit: {count: 2, per: 1h}}\n"
    b"  - {id: plain, action: file.read, path: /etc/hosts, decision: allow}\n"
    b"  - {id: txt, action: file.read, path: {glob: '/app/logs/*.txt'}, decision: allow,"
    b" rateLimit: {count: 2, per: 1h}}\n",
    "limits.yaml",
)
RULES = {rule.id: rule for rule in POLICY.rules}


def _read(limiter: RateLimiter, path: str, real_path: str | None = None) -> list[str]:
    body = {"action": "file.read", "path": path}
    if real_path is not None:
        body["realPath"] = real_path
    verdict = evaluate_request(POLICY, body, exhausted=limiter.exhausted)
    assert verdict.allowed, verdict.reason
    return sorted(rule.id for rule in limiter.spend(POLICY, verdict))


def _left(limiter: RateLimiter) -> dict[str, float]:
    return {name: limiter.remaining(RULES[name]) for name in ("app", "logs", "writes", "txt")}


def test_a_check_spends_only_the_limited_rules_it_matched() -> None:
    limiter = RateLimiter(clock=lambda: 100.0)  # frozen: no refill
    assert _read(limiter, "/app/x") == ["app"]
    assert _left(limiter) == {"app": 4.0, "logs": 2.0, "writes": 2.0, "txt": 2.0}
    # "txt" is looked at for this path (same directory) but does not match it.
    assert _read(limiter, "/app/logs/a.log") == ["app", "logs"]
    assert _left(limiter) == {"app": 3.0, "logs": 1.0, "writes": 2.0, "txt": 2.0}
    assert _read(limiter, "/etc/hosts") == []  # a rule without a limit spends nothing
    assert _left(limiter) == {"app": 3.0, "logs": 1.0, "writes": 2.0, "txt": 2.0}


def test_a_path_and_its_real_path_spend_one_token_per_rule() -> None:
    limiter = RateLimiter(clock=lambda: 100.0)
    assert _read(limiter, "/app/logs/link", "/app/logs/real") == ["app", "logs"]
    assert _left(limiter) == {"app": 4.0, "logs": 1.0, "writes": 2.0, "txt": 2.0}


def test_the_spent_rule_then_denies_only_what_it_matches() -> None:
    limiter = RateLimiter(clock=lambda: 100.0)
    _read(limiter, "/app/logs/a")
    _read(limiter, "/app/logs/b")
    verdict = evaluate_request(
        POLICY, {"action": "file.read", "path": "/app/logs/c"}, exhausted=limiter.exhausted
    )
    assert (verdict.decision, verdict.rule) == ("deny", "logs")
    assert _read(limiter, "/app/x") == ["app"]  # the other budget still allows
