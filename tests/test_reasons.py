"""The ``reason`` of an answer names the action and what it acts on, for every action
family, so a person reading a deny (or an audit record) knows what was refused.

Mutation testing found that no test pinned the target description of a network or
Kubernetes request, nor the reason of an unanalysable construct: any of them could
have said just "network.request" without a test noticing.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.evaluator import evaluate_subject
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.ratelimit import over_budget
from sidecar.subject import Subject


def _policy(default: str, rules: str = "[]") -> CompiledPolicy:
    text = f"version: 1\ndefaultAction: {default}\nrules: {rules}\n"
    return load_policy_bytes(text.encode(), f"reasons-{default}.yaml")


DENY_ALL = _policy("deny")
ALLOW_ALL = _policy("allow")

K8S_DELETE = {
    "verb": "delete",
    "group": "apps",
    "version": "v1",
    "resource": "deployments",
    "namespace": "prod",
    "name": "web",
}

TARGETS: list[tuple[dict[str, Any], str]] = [
    ({"action": "file.read", "path": "/etc/shadow"}, "file.read of /etc/shadow"),
    (
        {"action": "file.write", "path": "out.txt", "cwd": "/app"},
        "file.write of /app/out.txt",
    ),
    (
        {"action": "network.request", "url": "https://Evil.Example.com./x"},
        "network.request of evil.example.com:443",
    ),
    (
        {"action": "network.request", "url": "http://10.0.0.1:8080/"},
        "network.request of 10.0.0.1:8080",
    ),
    # A bare host has no port, and none is made up.
    (
        {"action": "network.request", "host": "evil.example.com"},
        "network.request of evil.example.com",
    ),
    (
        {"action": "k8s.request", "k8s": K8S_DELETE},
        "k8s.request of delete deployments.apps prod/web",
    ),
    # The core group has no suffix; a cluster-wide list has no namespace/name.
    (
        {"action": "k8s.request", "k8s": {"verb": "list", "version": "v1", "resource": "pods"}},
        "k8s.request of list pods",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {"verb": "get", "version": "v1", "resource": "nodes", "name": "n1"},
        },
        "k8s.request of get nodes n1",
    ),
    (
        {"action": "k8s.request", "k8s": {"method": "GET", "path": "/healthz"}},
        "k8s.request of get /healthz",
    ),
    (
        {"action": "process.exec", "argv": ["/tmp/x/git", "status"]},
        "process.exec of /tmp/x/git status",
    ),
]


@pytest.mark.parametrize(("body", "target"), TARGETS)
def test_default_deny_names_action_and_target(body: dict[str, Any], target: str) -> None:
    verdict = evaluate_request(DENY_ALL, body)
    assert (verdict.decision, verdict.rule) == ("deny", None)
    assert verdict.reason == f"no rule allows {target}"


@pytest.mark.parametrize(("body", "target"), TARGETS)
def test_default_allow_names_action_target_and_the_default(
    body: dict[str, Any], target: str
) -> None:
    verdict = evaluate_request(ALLOW_ALL, body)
    assert (verdict.decision, verdict.allowed) == ("allow", True)
    assert verdict.reason == f"no rule matches {target}; defaultAction is allow"


@pytest.mark.parametrize(
    ("command_line", "reason"),
    [
        ("eval ls", "no rule allows process.exec of eval in eval ls"),
        ("echo $(id)", "no rule allows process.exec of command-substitution in $(id)"),
    ],
)
def test_an_unanalysable_construct_is_named_even_under_default_allow(
    command_line: str, reason: str
) -> None:
    # defaultAction allow never allows what cannot be analysed; the reason says which
    # construct was refused, not merely which command line.
    verdict = evaluate_request(ALLOW_ALL, {"action": "process.exec", "commandLine": command_line})
    assert (verdict.decision, verdict.allowed, verdict.rule) == ("deny", False, None)
    assert verdict.reason == reason


def test_a_rule_without_its_own_reason_is_named_with_its_verb() -> None:
    policy = _policy(
        "deny",
        "[{id: no-net, action: network.request, decision: deny, host: evil.example.com},"
        " {id: ask, action: k8s.request, decision: require_approval, verb: delete},"
        " {id: ok, action: file.read, decision: allow, path: /etc/hosts}]",
    )
    net = evaluate_request(policy, {"action": "network.request", "url": "https://evil.example.com"})
    assert net.reason == "rule no-net denies network.request of evil.example.com:443"
    k8s = evaluate_request(policy, {"action": "k8s.request", "k8s": K8S_DELETE})
    assert k8s.decision == "require_approval"
    assert k8s.reason == (
        "rule ask requires approval for k8s.request of delete deployments.apps prod/web"
    )
    read = evaluate_request(policy, {"action": "file.read", "path": "/etc/hosts"})
    assert read.reason == "rule ok allows file.read of /etc/hosts"


def test_an_action_the_policy_does_not_know_is_denied_even_under_default_allow() -> None:
    # Normalisation only yields known actions; the evaluator still fails closed if a
    # caller (a new normaliser, a plugin) hands it another one.
    decided = evaluate_subject(ALLOW_ALL, Subject("file.chmod", {"path": ("/x",)}))
    assert (decided.decision, decided.rule) == ("deny", None)
    assert decided.reason == "unknown action file.chmod"


def test_a_spent_rate_limit_says_so_even_when_the_rule_has_its_own_reason() -> None:
    # The rule's reason explains why it allows; quoting it on the deny a spent limit
    # causes would tell the agent the opposite of what happened.
    policy = _policy(
        "deny",
        "[{id: reads, action: file.read, decision: allow, path: /a, reason: 'reads are fine',"
        " rateLimit: {count: 1, per: 60s}}]",
    )
    body = {"action": "file.read", "path": "/a"}
    fresh = evaluate_request(policy, body, exhausted=lambda rule: False)
    assert (fresh.decision, fresh.reason) == ("allow", "reads are fine")
    spent = evaluate_request(policy, body, exhausted=lambda rule: True)
    assert (spent.decision, spent.rule, spent.allowed) == ("deny", "reads", False)
    assert spent.reason == "rate limit 1/60s of rule reads is spent for file.read of /a"


def test_explain_says_when_a_rule_needs_a_field_the_request_lacks() -> None:
    policy = _policy(
        "deny",
        "[{id: health, action: k8s.request, decision: allow, path: /healthz},"
        " {id: pods, action: k8s.request, decision: allow, resource: pods}]",
    )
    verdict = evaluate_request(policy, {"action": "k8s.request", "k8s": K8S_DELETE}, explain=True)
    assert verdict.decision == "deny"
    assert verdict.trace[0] == "k8s.request (k8s.request):"  # an unlabelled subject
    assert "  health [allow]: no match: the request has no path" in verdict.trace
    assert (
        '  pods [allow]: no match: resource "deployments" does not match equals "pods"'
        in verdict.trace
    )
    assert verdict.trace[-1] == "=> deny by defaultAction"


def test_explain_heads_each_subject_and_ends_with_the_outcome() -> None:
    policy = _policy(
        "deny",
        "[{id: git, action: process.exec, command: git, decision: allow},"
        " {id: no-rm, action: process.exec, command: rm, decision: deny}]",
    )
    body = {"action": "process.exec", "commandLine": "git status && rm x"}
    verdict = evaluate_request(policy, body, explain=True)
    assert verdict.trace == (
        "command 1: git status (process.exec):",
        "  git [allow]: match",
        '  no-rm [deny]: no match: command "git" does not match equals "rm"',
        "command 2: rm x (process.exec):",
        '  git [allow]: no match: command "rm" does not match equals "git"',
        "  no-rm [deny]: match",
        "=> deny by no-rm",
    )
    assert verdict.reason == "rule no-rm denies process.exec of command 2: rm x"
    # Without explain, nothing is traced (the gate's hot path never builds one).
    assert evaluate_request(policy, body).trace == ()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # One subject: the rule's own reason, word for word.
        ({"action": "process.exec", "commandLine": "rm -rf /"}, "rm is never run"),
        ({"action": "process.exec", "argv": ["rm", "x"]}, "rm is never run"),
        # Several: the part that decided is named, once.
        (
            {"action": "process.exec", "commandLine": "ls; rm -rf /"},
            "command 2: rm -rf /: rm is never run",
        ),
        (
            {"action": "file.read", "path": "/a", "realPath": "/b"},
            "realPath: no rule allows file.read of /b",
        ),
        (
            {"action": "file.read", "path": "/b", "realPath": "/a"},
            "no rule allows file.read of /b",
        ),
    ],
)
def test_the_deciding_part_is_named_only_when_there_are_several(
    body: dict[str, Any], reason: str
) -> None:
    policy = _policy(
        "deny",
        "[{id: no-rm, action: process.exec, command: rm, decision: deny, reason: 'rm is never run'},"
        " {id: ls, action: process.exec, command: ls, decision: allow},"
        " {id: a, action: file.read, decision: allow, path: /a, reason: 'a is fine'}]",
    )
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.reason) == ("deny", reason)


@pytest.mark.parametrize(
    ("body", "needed", "wanted"),
    [
        (
            {"action": "process.exec", "commandLine": "curl a"},
            1,
            "the check runs 1 command or redirection the rule covers, 0 tokens are left",
        ),
        (
            {"action": "process.exec", "commandLine": "curl a; curl b"},
            2,
            "the check runs 2 commands or redirections the rule covers, 1 token is left",
        ),
        (
            {"action": "network.request", "url": "https://a.example/"},
            1,
            "the check needs one token, 0 tokens are left",
        ),
    ],
)
def test_a_budget_too_small_for_the_check_says_what_it_needed(
    body: dict[str, Any], needed: int, wanted: str
) -> None:
    # A Kubernetes or network request is one action, however many forms of it matched:
    # its refusal must not speak of commands it does not run.
    policy = _policy(
        "deny",
        "[{id: any, action: ['process.exec', 'network.request'], decision: allow,"
        " rateLimit: {count: 3, per: 1h}}]",
    )
    verdict = evaluate_request(policy, body)
    assert verdict.decision == "allow"
    rule = policy.rules[0]
    refused = over_budget(verdict, rule, needed, needed - 0.5)
    assert (refused.decision, refused.allowed, refused.rule) == ("deny", False, "any")
    assert refused.reason == (
        f"rate limit 3/1h of rule any is spent for {body['action']}: {wanted}"
    )
