"""``policy validate`` warns of a k8s.request ``path`` matcher that can match only the
paths of resource requests, which have no path (CONTRACT section 1: ``path`` is for
non-resource requests), so the rule never fires.

Found by the Kubernetes review of rt25 (F4): a deny of ``glob:
/api/v1/namespaces/kube-system/**`` or ``regex: .*/secrets(/.*)?`` validated cleanly
and let ``GET /api/v1/namespaces/kube-system/secrets/x`` through an allow of reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes, load_policy_file

NO_PATH = (
    "; a resource request has no path, only non-resource requests have one (/api, "
    "/apis/<group>/<version>, /version, /healthz ...), so the rule never matches it: "
    "match it by resource, namespace and name"
)


def _load(path: str, decision: str = "deny") -> CompiledPolicy:
    return load_policy_bytes(
        f"version: 1\nrules:\n  - {{id: r, action: k8s.request, decision: {decision}, "
        f"path: {path}}}\n  - {{id: reads, action: k8s.request, decision: allow, "
        "verb: [get, list]}\n".encode(),
        "k8s.yaml",
    )


def test_the_reviewed_deny_rules_are_warned_of_and_do_not_fire() -> None:
    policy = _load('{glob: "/api/v1/namespaces/kube-system/**"}')
    assert policy.warnings == (
        "rules[0] (id 'r'): path: matches only the paths of resource requests, such as "
        "/api/v1/namespaces/kube-system/x (list x in namespace kube-system)" + NO_PATH,
    )
    secret = {
        "action": "k8s.request",
        "k8s": {"method": "GET", "path": "/api/v1/namespaces/kube-system/secrets/x"},
    }
    assert evaluate_request(policy, secret).rule == "reads"  # what it warns of
    regex = _load('{regex: ".*/secrets(/.*)?"}')
    assert regex.warnings == (
        "rules[0] (id 'r'): path: matches only the paths of resource requests, such as "
        "/api/v1/secrets (list secrets)" + NO_PATH,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/kube-system/secrets",
        '{startsWith: "/api/v1/namespaces"}',
        "{endsWith: /secrets}",
        '{glob: "/apis/*/*/namespaces/**"}',
        '{glob: "**/secrets/**"}',
        '{regex: "/api/v1/namespaces/[^/]+/secrets/.*"}',
        '{regex: "/apis/[^/]+/[^/]+/.+"}',
        '{regex: ".*/kube-system/.*"}',
    ],
)
def test_paths_of_resource_requests_only_are_warned_of(path: str) -> None:
    for decision in ("deny", "require_approval", "allow"):
        found = [w for w in _load(path, decision).warnings if "resource request" in w]
        assert len(found) == 1
        assert found[0].startswith("rules[0] (id 'r'): path: matches only the paths of resource")


@pytest.mark.parametrize(
    "path",
    [
        # Non-resource paths kube-apiserver serves, or patterns matching one.
        "/version",
        "/api",
        '{glob: "/api/*"}',
        '{glob: "/apis/*/*"}',
        '{glob: "/logs/**"}',
        '{glob: "/openapi/**"}',
        '{regex: ".*"}',
        '{regex: "/healthz(/.*)?"}',
        '{regex: "/api(/v1)?|/apis(/[a-z0-9.-]+){0,2}|/version"}',
        '{not: {glob: "/api/v1/**"}}',
        # Matching no resource path: nothing this warning is about.
        '{glob: "/custom/**"}',
    ],
)
def test_paths_that_can_be_non_resource_are_not_warned_of(path: str) -> None:
    assert _load(path).warnings == ()


def test_a_resource_path_in_a_list_is_warned_of_alone() -> None:
    policy = _load("[/version, /apis/apps/v1/deployments]")
    assert policy.warnings == (
        "rules[0] (id 'r'): path: '/apis/apps/v1/deployments' is the path of a resource "
        "request (list deployments)" + NO_PATH,
    )


def test_a_wildcard_rule_whose_path_is_also_a_file_or_url_is_not_warned_of() -> None:
    # /api/v1/... is a URL path too (a network.request to an apiserver), so the rule
    # may fire for the other actions it takes in.
    policy = load_policy_bytes(
        b'version: 1\nrules:\n  - {action: "*", decision: deny,'
        b' path: {glob: "/api/v1/namespaces/kube-system/**"}}\n',
        "k8s.yaml",
    )
    assert policy.warnings == ()


def test_the_shipped_policies_are_not_warned_of() -> None:
    policies = Path(__file__).parent.parent / "policies"
    for path in sorted(policies.glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        warnings = load_policy_file(path).warnings
        assert not [w for w in warnings if "resource requests" in w or "takes in" in w], path


@pytest.mark.parametrize(
    ("path", "discovery", "example"),
    [
        # Found in review (rt25 r2-policy, 5): a sample ending in "//x" is a path the
        # gate refuses, and was taken for one kube-apiserver serves.
        (
            "{startsWith: /api/v1/namespaces/kube-system/}",
            None,
            "/api/v1/namespaces/kube-system/x (list x in namespace kube-system)",
        ),
        (
            "{startsWith: /apis/apps/v1/namespaces/}",
            None,
            "/apis/apps/v1/namespaces/x (get namespaces in namespace x named x)",
        ),
        ('{glob: "/api/v1/**"}', "/api/v1/", "/api/v1/x (list x)"),
        ("{startsWith: /api/v1/}", "/api/v1/", "/api/v1/x (list x)"),
        ('{glob: "/api/**"}', "/api/", "/api/x/x (list x)"),
        (
            "{startsWith: /apis/metrics.k8s.io/}",
            "/apis/metrics.k8s.io/",
            "/apis/metrics.k8s.io/x/x",
        ),
        ('{glob: "/apis/apps/v1/**"}', "/apis/apps/v1/", "/apis/apps/v1/x (list x)"),
    ],
)
def test_a_deny_reaching_only_discovery_among_served_paths_is_warned_of(
    path: str, discovery: str | None, example: str
) -> None:
    policy = _load(path)
    assert len(policy.warnings) == 1
    if discovery is None:
        assert policy.warnings[0].startswith(
            f"rules[0] (id 'r'): path: matches only the paths of resource requests, such as "
            f"{example}"
        )
    else:
        assert policy.warnings[0].startswith(
            "rules[0] (id 'r'): path: of the paths kube-apiserver serves outside its "
            f"resources, matches only discovery ones ({discovery}); otherwise it matches "
            f"the paths of resource requests, such as {example}"
        )
        assert policy.warnings[0].endswith(
            "so the rule holds for discovery requests only: match resources by resource, "
            "namespace and name"
        )
        # An allow of discovery alone is what kubectl needs: nothing to warn of.
        assert _load(path, "allow").warnings == ()
    # What it warns of: the rule does not deny the resource request.
    resource = example.split(" ")[0]
    request = {"action": "k8s.request", "k8s": {"method": "GET", "path": resource}}
    assert evaluate_request(policy, request).rule == "reads"
