"""A ``PATCH`` or ``PUT`` of a named object may create it, so it is also decided as a
``create``. Found in the differential review of 2026-12-06 (kubectl 1.32 run against a
recording API server; every request it sent resolved as RequestInfo does).

* ``kubectl apply --server-side`` of an object that does not exist sends one ``PATCH``
  (``application/apply-patch+yaml``), and kube-apiserver creates the object from it,
  asking the authorizer for ``create`` as well. The gate decided it as a ``patch``
  only: an agent allowed to patch deployments created a 50-replica one past a deny of
  ``create``, and a namespace past a deny of creating namespaces. A ``PATCH`` or
  ``PUT`` of a named object is now also decided as a ``create`` by deny and
  require_approval rules.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes

POLICY = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: tend-deployments, action: k8s.request, verb: [get, list, patch, update],"
    b" resource: [deployments, deployments/scale], decision: allow}\n"
    b"  - {id: tend-namespaces, action: k8s.request, verb: [get, patch], resource: namespaces,"
    b" decision: allow}\n"
    b"  - {id: no-new-deployments, action: k8s.request, verb: create, resource: deployments,"
    b" decision: deny}\n"
    b"  - {id: new-namespaces, action: k8s.request, verb: create, resource: namespaces,"
    b" decision: require_approval}\n",
    "tend.yaml",
)
# What kubectl 1.32 sent for `kubectl apply --server-side -f miner.yaml` and for a
# namespace, query included.
APPLY_DEPLOYMENT = (
    "/apis/apps/v1/namespaces/shop/deployments/miner?fieldManager=kubectl&force=false"
)
APPLY_NAMESPACE = (
    "/api/v1/namespaces/payments?fieldManager=kubectl&fieldValidation=Ignore&force=false"
)


def _check(method: str, path: str) -> tuple[str, str | None, dict[str, str]]:
    verdict = evaluate_request(
        POLICY, {"action": "k8s.request", "k8s": {"method": method, "path": path}}
    )
    return verdict.decision, verdict.rule, verdict.request["k8s"]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_patch_or_put_that_may_create_is_held_by_a_deny_of_create(method: str) -> None:
    decision, rule, recorded = _check(method, APPLY_DEPLOYMENT)
    assert (decision, rule) == ("deny", "no-new-deployments")
    # The record keeps what was asked.
    assert recorded["verb"] == {"PATCH": "patch", "PUT": "update"}[method]


def test_an_apply_of_a_namespace_needs_the_approval_creating_one_needs() -> None:
    assert _check("PATCH", APPLY_NAMESPACE)[:2] == ("require_approval", "new-namespaces")


def test_the_attribute_form_is_decided_the_same_way() -> None:
    body = {
        "action": "k8s.request",
        "k8s": {"verb": "patch", "group": "apps", "version": "v1", "resource": "deployments",
                "namespace": "shop", "name": "miner"},
    }  # fmt: skip
    verdict = evaluate_request(POLICY, body)
    assert (verdict.decision, verdict.rule) == ("deny", "no-new-deployments")


def test_what_cannot_create_is_decided_as_before() -> None:
    # A subresource never creates its object, a create needs no name to be one already,
    # and an allow of patch needs no allow of create (only deny and approval rules see
    # the create a patch may be).
    assert _check("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web/scale")[:2] == (
        "allow",
        "tend-deployments",
    )
    only_patch = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: patch, action: k8s.request, verb: patch, resource: deployments,"
        b" decision: allow}\n",
        "patch.yaml",
    )
    body = {"action": "k8s.request", "k8s": {"method": "PATCH", "path": APPLY_DEPLOYMENT}}
    verdict = evaluate_request(only_patch, body)
    assert (verdict.decision, verdict.rule) == ("allow", "patch")
    assert _check("GET", "/apis/apps/v1/namespaces/shop/deployments/miner")[:2] == (
        "allow",
        "tend-deployments",
    )
