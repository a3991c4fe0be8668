"""A URL path as sent (``/admin/``, ``//x``) next to the form rules take (``/admin``,
``/x``) is decided too, but only a deny or require_approval rule that matches it counts
(docs/policy.md, "URL and Kubernetes paths"); an allow rule, a spent rate limit on an
allow rule or the defaultAction applied to it never changes the answer.

The in-process suites never exercised this part of the engine: mutation testing could
make every as-sent decision count, or none, without a failure there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy, CompiledRule
from sidecar.policy.loader import load_policy_bytes


def _policy(default: str, rules: str) -> CompiledPolicy:
    text = f"version: 1\ndefaultAction: {default}\nrules: {rules}\n"
    return load_policy_bytes(text.encode(), "as-sent.yaml")


RESTRICTIVE = _policy(
    "allow",
    "[{id: admin, action: network.request, decision: deny, path: {startsWith: /admin/}},"
    " {id: private, action: network.request, decision: require_approval,"
    " path: {glob: '/private/*'}}]",
)
EXACT_ALLOW = _policy(
    "deny", "[{id: exact, action: network.request, decision: allow, path: /admin}]"
)
SLASH_X_ALLOW = _policy(
    "deny", "[{id: slash-x, action: network.request, decision: allow, path: {glob: '/*/x'}}]"
)
SLASH_X_LIMITED = _policy(
    "allow",
    "[{id: slash-x, action: network.request, decision: allow, path: {glob: '/*/x'},"
    " rateLimit: {count: 1, per: 60s}}]",
)


def _spent(rule: CompiledRule) -> bool:
    return True


CASES: list[
    tuple[CompiledPolicy, str, Callable[[CompiledRule], bool] | None, str, str | None, str]
] = [
    # A deny or require_approval rule written for the form as sent holds it back.
    (
        RESTRICTIVE,
        "http://a.com/admin/",
        None,
        "deny",
        "admin",
        "path as sent /admin/: rule admin denies network.request of a.com:80",
    ),
    (
        RESTRICTIVE,
        "http://a.com/private/",
        None,
        "require_approval",
        "private",
        "path as sent /private/: rule private requires approval for network.request of a.com:80",
    ),
    (
        RESTRICTIVE,
        "http://a.com/admin",
        None,
        "allow",
        None,
        "no rule matches network.request of a.com:80; defaultAction is allow",
    ),
    # "//admin/" is "/admin/" to a server merging slashes (and "/admin%2F" to one that
    # decodes): decided in that form too, with the same restrictions-only rule.
    (
        RESTRICTIVE,
        "http://a.com//admin/",
        None,
        "deny",
        "admin",
        "path read as /admin/: rule admin denies network.request of a.com:80",
    ),
    (
        RESTRICTIVE,
        "http://a.com/private%2F",
        None,
        "require_approval",
        "private",
        "path read as /private/: rule private requires approval for network.request of a.com:80",
    ),
    (
        EXACT_ALLOW,
        "http://a.com//admin/",
        None,
        "allow",
        "exact",
        "rule exact allows network.request of a.com:80",
    ),
    # The defaultAction (deny) applied to the form as sent does not count against it.
    (
        EXACT_ALLOW,
        "http://a.com/admin/",
        None,
        "allow",
        "exact",
        "rule exact allows network.request of a.com:80",
    ),
    (
        EXACT_ALLOW,
        "http://a.com//admin",
        None,
        "allow",
        "exact",
        "rule exact allows network.request of a.com:80",
    ),
    # An allow rule sees the form rules take alone: "//x" is "/x" to a merging server.
    (
        SLASH_X_ALLOW,
        "http://a.com//x",
        None,
        "deny",
        None,
        "no rule allows network.request of a.com:80",
    ),
    # A spent limit of an allow rule matched only by the form as sent does not count.
    (
        SLASH_X_LIMITED,
        "http://a.com//x",
        _spent,
        "allow",
        None,
        "no rule matches network.request of a.com:80; defaultAction is allow",
    ),
    (
        SLASH_X_LIMITED,
        "http://a.com/a/x",
        _spent,
        "deny",
        "slash-x",
        "rate limit 1/60s of rule slash-x is spent for network.request of a.com:80",
    ),
]


@pytest.mark.parametrize(("policy", "url", "exhausted", "decision", "rule", "reason"), CASES)
def test_only_restrictions_count_for_the_path_as_sent(
    policy: CompiledPolicy,
    url: str,
    exhausted: Callable[[CompiledRule], bool] | None,
    decision: str,
    rule: str | None,
    reason: str,
) -> None:
    verdict = evaluate_request(
        policy, {"action": "network.request", "url": url}, exhausted=exhausted
    )
    assert (verdict.decision, verdict.rule, verdict.reason) == (decision, rule, reason)
    assert verdict.allowed is (decision == "allow")
