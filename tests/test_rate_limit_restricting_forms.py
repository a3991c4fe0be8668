"""A spent rate limit never loosens what the restricting forms of a request decide.

A file path as written (``..`` kept) and a URL path as sent count only when a deny or
require_approval rule decides them (``Subject.restrictions_only``). Found in review
(2026-12-06): the evaluator stopped at a spent rate-limited allow rule matching such a
form, which hid a deny later in the file and dropped a matched approval; the engine
then discarded the form as not restricting, and another rule allowed the lexical path.
The same request was denied with budget left and allowed once it was spent, and rule
order changed the answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes

HOME_LIMITED = (
    "  - {id: home-limited, action: file.read, path: {glob: /home/**}, decision: allow,"
    " rateLimit: {count: 1, per: 1h}}\n"
)
TMP = "  - {id: tmp, action: file.read, path: {glob: /tmp/**}, decision: allow}\n"
SSH = "  - {{id: ssh, action: file.read, path: {{glob: '**/.ssh/**'}}, decision: {decision}}}\n"
ESCAPE = {"action": "file.read", "path": "/home/u/.ssh/../../../tmp/x"}


@pytest.mark.parametrize("decision", ["deny", "require_approval"])
@pytest.mark.parametrize("ssh_first", [False, True])
@pytest.mark.parametrize("spent", [False, True])
def test_a_path_as_written_is_held_back_whatever_the_budget_and_the_order(
    decision: str, ssh_first: bool, spent: bool
) -> None:
    ssh = SSH.format(decision=decision)
    rules = ssh + TMP + HOME_LIMITED if ssh_first else TMP + HOME_LIMITED + ssh
    policy = load_policy_bytes(f"version: 1\nrules:\n{rules}".encode(), "p.yaml")
    verdict = evaluate_request(policy, ESCAPE, exhausted=lambda rule: spent)
    assert (verdict.decision, verdict.rule) == (decision, "ssh")


def _url_policy() -> Any:
    return load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: approve-admin, action: network.request, path: {startsWith: /admin/},"
        b" decision: require_approval}\n"
        b"  - {id: site, action: network.request, host: a.com, decision: allow}\n"
        b"  - {id: admin-quota, action: network.request, host: a.com,"
        b" path: {glob: /admin/**}, decision: allow, rateLimit: {count: 5, per: 1h}}\n",
        "url.yaml",
    )


@pytest.mark.parametrize("url", ["http://a.com/admin/", "http://a.com//admin/"])
@pytest.mark.parametrize("spent", [False, True])
def test_a_url_path_as_sent_keeps_its_approval_when_a_budget_is_spent(
    url: str, spent: bool
) -> None:
    verdict = evaluate_request(
        _url_policy(), {"action": "network.request", "url": url}, exhausted=lambda rule: spent
    )
    assert (verdict.decision, verdict.rule) == ("require_approval", "approve-admin")


def test_the_lexical_path_still_spends_and_is_denied_when_spent() -> None:
    policy = load_policy_bytes(f"version: 1\nrules:\n{HOME_LIMITED}".encode(), "p.yaml")
    notes = {"action": "file.read", "path": "/home/u/notes"}
    assert evaluate_request(policy, notes, exhausted=lambda rule: False).decision == "allow"
    spent = evaluate_request(policy, notes, exhausted=lambda rule: True)
    assert (spent.decision, spent.rule) == ("deny", "home-limited")
    assert "rate limit 1/1h of rule home-limited is spent" in spent.reason
