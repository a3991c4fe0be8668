"""``policy validate`` warns of an allow rule whose wildcard action takes in
network.request with no host, or k8s.request with nothing naming a resource or path.

Found by the policy review of rt25 (finding 5): ``{action: "*", path: /app/**}``,
written for files, also allowed a POST to https://evil.example/app/x (a wildcard covers
every action with the rule's fields, and a URL has a path), and validate said nothing.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes


def _load(rule: str) -> CompiledPolicy:
    return load_policy_bytes(f"version: 1\nrules:\n  - {rule}\n".encode(), "reach.yaml")


def test_a_wildcard_allow_on_a_path_is_warned_of_for_the_hosts_it_allows() -> None:
    policy = _load('{id: app, action: "*", decision: allow, path: {glob: "/app/**"}}')
    assert policy.warnings == (
        "rules[0] (id 'app'): action: '*' takes in network.request with no host: the rule "
        "allows requests to any host whose URL path it matches; name the actions meant "
        "(action: file.*), or match a host",
    )
    # What it warns of.
    egress = {"action": "network.request", "url": "https://evil.example/app/x", "method": "POST"}
    assert (evaluate_request(policy, egress).decision, evaluate_request(policy, egress).rule) == (
        "allow",
        "app",
    )
    # The action it suggests allows the files and no host.
    suggested = _load('{action: "file.*", decision: allow, path: {glob: "/app/**"}}')
    assert not suggested.warnings
    assert evaluate_request(suggested, egress).decision == "deny"
    assert evaluate_request(suggested, {"action": "file.read", "path": "/app/x"}).decision == (
        "allow"
    )


def test_a_wildcard_allow_naming_only_an_agent_reaches_every_host_and_kubernetes() -> None:
    policy = _load('{id: bot, action: "*", decision: allow, agent: bot}')
    assert policy.warnings == (
        "rules[0] (id 'bot'): action: '*' takes in network.request with no host and "
        "k8s.request with no resource, verb or path: the rule allows requests to any host "
        "and every Kubernetes request; name the actions meant (action: [file.*, "
        "process.exec]), or match a host, or match a resource, verb or path",
    )


@pytest.mark.parametrize(
    ("rule", "warning"),
    [
        ('{action: "net*", decision: allow, path: {glob: "/v1/**"}}', "'net*' takes in"),
        ('{action: ["*"], decision: allow, method: GET}', "'*' takes in network.request"),
        ('{action: "k8s.*", decision: allow, agent: ci}', "'k8s.*' takes in k8s.request"),
        ('{action: [k8s.request, "*"], decision: allow, path: /x}', "network.request"),
        # Not warned of: a host or a Kubernetes field, an action named outright, a deny.
        ('{action: "*", decision: allow, path: /x, host: a.example}', None),
        ('{action: ["file.*", network.request], decision: allow, path: /x}', None),
        ('{action: "*", decision: allow, verb: get}', None),
        ('{action: "k8s.*", decision: allow, path: /version}', None),
        ('{action: "*", decision: deny, path: /x}', None),
        ('{action: "file.*", decision: allow, path: {glob: "/app/**"}}', None),
    ],
)
def test_which_wildcard_allows_are_warned_of(rule: str, warning: str | None) -> None:
    found = [w for w in _load(rule).warnings if "takes in" in w]
    if warning is None:
        assert found == []
    else:
        assert len(found) == 1 and warning in found[0]


def test_an_allow_of_network_requests_on_a_path_with_no_host_is_warned_of() -> None:
    # rt25 review: a wildcard action reaching network.request with no host was warned
    # of, the action named outright with the same path was not.
    policy = _load('{id: api, action: network.request, decision: allow, path: {glob: "/api/**"}}')
    assert policy.warnings == (
        "rules[0] (id 'api'): action: network.request with no host: the rule allows "
        "requests to any host whose URL path it matches; match a host",
    )
    # What it warns of.
    egress = {"action": "network.request", "url": "https://evil.example/api/x", "method": "POST"}
    assert evaluate_request(policy, egress).decision == "allow"


@pytest.mark.parametrize(
    ("rule", "warning"),
    [
        ("{action: network.request, decision: allow, method: GET}", "requests to any host;"),
        ("{action: [file.read, network.request], decision: allow, path: /x}", "URL path"),
        ("{action: [network.request, '*'], decision: allow, agent: bot}", "any host;"),
        # Not warned of: a host (a `not` one too), a deny, no conditions (warned of
        # already), a wildcard (its own warning).
        ("{action: network.request, decision: allow, path: /x, host: a.example}", None),
        ("{action: network.request, decision: allow, host: {not: evil.example}}", None),
        ("{action: network.request, decision: deny, path: /x}", None),
        ("{action: network.request, decision: allow}", None),
        ("{action: 'net*', decision: allow, path: /x}", None),
    ],
)
def test_which_allows_of_network_requests_are_warned_of_for_no_host(
    rule: str, warning: str | None
) -> None:
    found = [
        w for w in _load(rule).warnings if w.startswith("rules[0]: action: network.request with")
    ]
    if warning is None:
        assert found == []
    else:
        assert len(found) == 1 and warning in found[0]
