"""docs/policy.md, "Precedence": the example that keeps namespaces and pods from being
deleted holds against the other verbs that delete them (rt27 policies review, finding
1): a patch, which can set ownerReferences to a missing owner, and a pod's eviction,
even beside allow rules that let a newcomer label namespaces and write in a namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes

DOC = Path(__file__).resolve().parent.parent / "docs" / "policy.md"

# The allow rules of the review's reproduction, which the example's rules must outrank.
NEWCOMER_ALLOWS = [
    {
        "id": "label-namespaces",
        "action": "k8s.request",
        "resource": "namespaces",
        "verb": ["get", "list", "patch"],
        "decision": "allow",
    },
    {
        "id": "write-shop",
        "action": "k8s.request",
        "namespace": "shop",
        "verb": ["get", "list", "watch", "create", "patch"],
        "decision": "allow",
    },
]


def _example_rules() -> list[dict[str, object]]:
    text = DOC.read_text()
    block = re.search(r"evictions included\)\.\n\n```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None, "the example follows the paragraph on deletes by other verbs"
    rules: list[dict[str, object]] = yaml.safe_load(block.group(1))["rules"]
    return rules


@pytest.mark.parametrize(
    ("method", "path", "decision", "rule"),
    [
        ("DELETE", "/api/v1/namespaces/payments", "deny", "no-namespace-delete"),
        (
            "PATCH",
            "/api/v1/namespaces/payments",
            "require_approval",
            "namespace-changes-need-approval",
        ),
        (
            "PUT",
            "/api/v1/namespaces/payments/finalize",
            "require_approval",
            "namespace-changes-need-approval",
        ),
        ("DELETE", "/api/v1/namespaces/shop/pods/web", "deny", "no-pod-delete"),
        ("POST", "/api/v1/namespaces/shop/pods/web/eviction", "deny", "no-pod-eviction"),
        (
            "PATCH",
            "/api/v1/namespaces/shop/pods/web",
            "require_approval",
            "pod-changes-need-approval",
        ),
        # What the newcomer's rules were for still works.
        ("GET", "/api/v1/namespaces/payments", "allow", "label-namespaces"),
        ("POST", "/api/v1/namespaces/shop/configmaps", "allow", "write-shop"),
    ],
)
def test_the_never_delete_example_holds_against_other_verbs(
    method: str, path: str, decision: str, rule: str
) -> None:
    document = {"version": 1, "rules": _example_rules() + NEWCOMER_ALLOWS}
    policy = load_policy_bytes(yaml.safe_dump(document).encode(), "example")
    request = {"action": "k8s.request", "k8s": {"method": method, "path": path}}
    verdict = evaluate_request(policy, request)
    assert (verdict.decision, verdict.rule) == (decision, rule)
