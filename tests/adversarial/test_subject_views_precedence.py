"""Views of one subject, from the evaluator's differential review of 2026-12-06 (a
reference evaluator written from the contract alone, 200,000 random cases).

Some forms of a request are decided by deny and require_approval rules only: the path
as written, the URL path as sent, ``localhost`` as the loopback (a patch as the create
it may be was one too, until the review of 2026-12-07 made it a part of its own). They
are views of the request's first subject, and their rules now count as matches of that
subject, with one subject's precedence (a deny rule, then an approval
rule, then an allow rule or the defaultAction; the first rule of a kind in the file).
Before, each view was a separate subject combined strictest first, so the main form's
defaultAction deny hid an approval rule the view matched, and of two deny rules the
later one could be reported.
"""

from __future__ import annotations

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes

LOOPBACK_APPROVAL = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: loopback, action: network.request, host: {cidr: [127.0.0.0/8, '::1/128']},"
    b" decision: require_approval}\n",
    "loopback.yaml",
)


def test_localhost_needs_the_approval_the_loopback_needs() -> None:
    for url in ("http://localhost:8080/", "http://app.localhost/", "http://127.0.0.1/"):
        verdict = evaluate_request(LOOPBACK_APPROVAL, {"action": "network.request", "url": url})
        assert (verdict.decision, verdict.rule) == ("require_approval", "loopback"), url


def test_the_first_deny_rule_in_the_file_is_the_one_reported() -> None:
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules:\n"
        b"  - {id: loopback, action: network.request, host: {cidr: [127.0.0.0/8]},"
        b" decision: deny, risk: high}\n"
        b"  - {id: dev-names, action: network.request, host: {glob: '*.localhost'},"
        b" decision: deny, risk: low}\n",
        "two-denies.yaml",
    )
    body = {"action": "network.request", "url": "http://app.localhost/"}
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule, verdict.risk) == ("deny", "loopback", "high")


def test_a_views_approval_does_not_outrank_another_forms_default_deny() -> None:
    # realPath is a form of its own (CONTRACT 2.2: the stricter decision wins): a path
    # whose written view needs approval, with a realPath no rule allows, stays denied.
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: data, action: file.read, path: {glob: /app/**}, decision: allow}\n"
        b"  - {id: ssh, action: file.read, path: {glob: '**/.ssh/**'},"
        b" decision: require_approval}\n",
        "paths.yaml",
    )
    written = {"action": "file.read", "path": "/app/.ssh/../x"}
    assert evaluate_request(policy, written).decision == "require_approval"
    verdict = evaluate_request(policy, {**written, "realPath": "/srv/x"})
    assert (verdict.decision, verdict.rule) == ("deny", None)
