"""Bypass attempts on k8s.request resolution (CONTRACT 2.2 "k8s").

An agent that may not read Secrets in kube-system, or exec into pods, tries other
spellings of the same request. Each spelling must either resolve to exactly the
attributes the apiserver would authorize (so the same rule catches it) or be rejected;
never to something that looks like a different, harmless request.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.k8s import (
    K8sAttributes,
    also_evaluated_as,
    from_attributes,
    resolve_request,
)
from tests.adversarial.conftest import load_policy_text

SECRET_DB = K8sAttributes(True, "get", "", "v1", "secrets", "kube-system", "db")
SAME = "same"
REJECT = "reject"


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ("/api/v1/namespaces/kube-system/secrets/db", SAME),
        # percent-encoded ordinary characters are what the apiserver decodes them to
        ("/api/v1/namespaces/kube-system/%73ecrets/db", SAME),
        ("/api/v1/namespaces/kube%2Dsystem/secrets/%64%62", SAME),
        ("/%61pi/v1/namespaces/kube-system/secrets/db", SAME),
        # a trailing slash or an empty query change nothing, for the apiserver either
        ("/api/v1/namespaces/kube-system/secrets/db/", SAME),
        ("/api/v1/namespaces/kube-system/secrets/db?", SAME),
        ("/api/v1/namespaces/kube-system/secrets/db?watch=true", SAME),
        # traversal and segment tricks are refused, not resolved
        ("/api/v1/namespaces/apps-prod/../kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/apps-prod/%2E%2E/kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/apps-prod/%2e%2e/kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/apps-prod/%252E%252E/kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/kube-system/./secrets/db", REJECT),
        ("/api/v1/namespaces/kube-system//secrets/db", REJECT),
        ("//api/v1/namespaces/kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/kube-system/secrets%2Fdb", REJECT),
        ("/api/v1/namespaces/kube-system%2Fsecrets/db", REJECT),
        ("/api/v1/namespaces/kube-system/secrets%5Cdb", REJECT),
        ("\\api\\v1\\namespaces\\kube-system\\secrets\\db", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db#/api/v1/pods", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%23x", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%3F", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%00", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db\x00", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%0A", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db\u0085", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%C2%85", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%20", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db%C0%AF", REJECT),
        ("api/v1/namespaces/kube-system/secrets/db", REJECT),
        ("https://10.0.0.1/api/v1/namespaces/kube-system/secrets/db", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db?x=1#", REJECT),
        ("/api/v1/namespaces/kube-system/secrets/db?a=1;watch=1", REJECT),
    ],
)
def test_other_spellings_of_a_secret_read(path: str, outcome: str) -> None:
    if outcome == REJECT:
        with pytest.raises(RequestError) as error:
            resolve_request("GET", path)
        assert error.value.field == "k8s.path"
    else:
        assert resolve_request("GET", path) == SECRET_DB


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/kube-system/secrets?fieldSelector=metadata.name%3Ddb",
        "/api/v1/namespaces/kube-system/secrets?fieldSelector=type%3DOpaque,metadata.name%3Ddb",
        "/api/v1/namespaces/kube-system/secrets?fieldSelector=metadata.name==db&limit=1",
    ],
)
def test_a_named_list_is_still_a_request_for_that_secret(path: str) -> None:
    attributes = resolve_request("GET", path)
    assert (attributes.verb, attributes.resource, attributes.namespace, attributes.name) == (
        "list",
        "secrets",
        "kube-system",
        "db",
    )


@pytest.mark.parametrize(
    ("query", "verb"),
    [
        # the apiserver reads only the first watch value: hiding a second one changes nothing
        ("watch=false&watch=true", "list"),
        ("watch=true&watch=false", "watch"),
        ("%77atch=1", "watch"),
        ("watch=%74rue", "watch"),
        ("watch=+", "watch"),
        ("watch=0", "list"),
        ("watch=False", "list"),
    ],
)
def test_watch_cannot_hide_behind_query_tricks(query: str, verb: str) -> None:
    assert resolve_request("GET", f"/api/v1/namespaces/kube-system/secrets?{query}").verb == verb


@pytest.mark.parametrize(
    "query",
    [
        "watch=false;watch=true",  # ';' splits pairs for some servers, not for Go
        "watch=fal%C5%BFe",  # long s: case-folds to "false" on one apiserver path, not another
        "watch=%FF",
        "watch=%G0",
        "watch=%0Afalse",
    ],
)
def test_ambiguous_watch_queries_are_rejected(query: str) -> None:
    with pytest.raises(RequestError):
        resolve_request("GET", f"/api/v1/namespaces/kube-system/secrets?{query}")


def test_legacy_watch_prefix_is_a_watch_of_the_same_resource() -> None:
    attributes = resolve_request("GET", "/api/v1/watch/namespaces/kube-system/secrets/db")
    assert attributes == K8sAttributes(True, "watch", "", "v1", "secrets", "kube-system", "db")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/namespaces/apps-prod/pods/web/exec?command=sh&stdin=true&tty=true"),
        ("get", "/api/v1/namespaces/apps-prod/pods/web/exec?command=sh"),
        ("HEAD", "/api/v1/namespaces/apps-prod/pods/web/exec"),
        ("GET", "/api/v1/namespaces/apps-prod/pods/web/exec/"),
        ("GET", "/api/v1/namespaces/apps-prod/pods/web/%65xec"),
    ],
)
def test_websocket_exec_is_also_a_create(method: str, path: str) -> None:
    attributes = resolve_request(method, path)
    assert (attributes.verb, attributes.resource, attributes.name) == ("get", "pods/exec", "web")
    assert [extra.record() for extra in also_evaluated_as(attributes)] == [
        {
            "verb": "create",
            "group": "",
            "version": "v1",
            "resource": "pods/exec",
            "namespace": "apps-prod",
            "name": "web",
        }
    ]


def test_exec_declared_as_attributes_is_also_a_create() -> None:
    for attributes in (
        from_attributes("GET", resource="pods", subresource="exec", namespace="p", name="w"),
        from_attributes("get", resource="pods/attach", namespace="p", name="w"),
        from_attributes("get", resource="pods/portforward", namespace="p", name="w"),
    ):
        assert [extra.verb for extra in also_evaluated_as(attributes)] == ["create"]


def test_exec_cannot_pass_as_the_pod_itself() -> None:
    # A subresource is never folded into its parent: a rule for pods does not see pods/exec.
    assert resolve_request("POST", "/api/v1/namespaces/p/pods/w/exec").resource == "pods/exec"
    assert from_attributes("create", resource="pods", subresource="exec").resource == "pods/exec"
    with pytest.raises(RequestError):
        from_attributes("create", resource="pods/exec", subresource="exec")
    with pytest.raises(RequestError):
        from_attributes("create", resource="pods", subresource="exec/../status")


def test_proxy_prefix_takes_no_subresource() -> None:
    # /proxy/ sends the rest of the path to the pod's own server; it is a proxy verb on
    # pods, which no get/create rule on pods/exec (or pods) allows by accident.
    attributes = resolve_request("GET", "/api/v1/proxy/namespaces/p/pods/w/exec")
    assert attributes == K8sAttributes(True, "proxy", "", "v1", "pods", "p", "w")
    assert also_evaluated_as(attributes) == ()


def test_creating_a_namespace_by_server_side_apply_names_it() -> None:
    # A rule limited to namespace apps-prod must not cover creating kube-system2 by PATCH.
    attributes = resolve_request("PATCH", "/api/v1/namespaces/kube-system2?fieldManager=x")
    assert attributes.record() == {
        "verb": "patch",
        "group": "",
        "version": "v1",
        "resource": "namespaces",
        "namespace": "kube-system2",
        "name": "kube-system2",
    }


def test_namespace_finalize_is_not_a_namespaced_resource() -> None:
    attributes = resolve_request("PUT", "/api/v1/namespaces/kube-system/finalize")
    assert (attributes.resource, attributes.namespace, attributes.name) == (
        "namespaces/finalize",
        "kube-system",
        "kube-system",
    )


def test_delete_without_a_name_is_deletecollection_even_with_a_name_selector() -> None:
    attributes = resolve_request(
        "DELETE", "/api/v1/namespaces/kube-system/secrets?fieldSelector=metadata.name%3Ddb"
    )
    assert (attributes.verb, attributes.name) == ("deletecollection", "")


@pytest.mark.parametrize(
    "method", ["OPTIONS", "CONNECT", "TRACE", "PROPFIND", "GET\r\n", " GET", "D\u0415LETE", ""]
)
def test_methods_the_gate_cannot_map_are_rejected(method: str) -> None:
    with pytest.raises(RequestError) as error:
        resolve_request(method, "/api/v1/namespaces/kube-system/secrets/db")
    assert error.value.field == "k8s.method"


def test_a_query_cannot_be_given_twice() -> None:
    with pytest.raises(RequestError):
        resolve_request("GET", "/api/v1/namespaces/kube-system/secrets?watch=0", "watch=1")


def test_huge_inputs_are_rejected_quickly() -> None:
    with pytest.raises(RequestError):
        resolve_request("GET", "/api/v1/namespaces/" + "a" * 10_000)
    with pytest.raises(RequestError):
        resolve_request("GET", "/api/v1/secrets?" + "watch=1&" * 5_000)
    # Long but legal list options must not make the resolver slow or crash.
    label_selector = "a" * 4000 + "-"
    digits = "9" * 5000
    attributes = resolve_request(
        "GET",
        f"/api/v1/secrets?fieldSelector=metadata.name%3Ddb&labelSelector={label_selector}"
        f"&limit={digits}",
    )
    assert (attributes.verb, attributes.name) == ("list", "")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "../kube-system"},
        {"namespace": "kube-system/secrets"},
        {"namespace": "kube-system%2F"},
        {"name": "db\x00"},
        {"name": "db\u2028"},
        {"resource": "secrets\t"},
        {"verb": "get,list"},
        {"verb": "GET\u0130"},
    ],
)
def test_attribute_smuggling_is_rejected(kwargs: dict[str, str]) -> None:
    arguments = {"verb": "get", "resource": "secrets", **kwargs}
    with pytest.raises(RequestError):
        from_attributes(**arguments)


# A non-resource path is matched like rule paths are written: without a trailing "/"
# ("/logs/" in a rule reads "/logs"), so neither side's slash decides.
NON_RESOURCE_POLICIES = {
    "deny-rules": """
        version: 1
        rules:
          - {id: everything, action: k8s.request, path: {glob: "/**"}, decision: allow}
          - {id: logs, action: k8s.request, path: "/logs/", decision: deny}
          - {id: debug, action: k8s.request, path: {glob: "/debug/*/"}, decision: deny}
        """,
    "allow-rules": """
        version: 1
        rules:
          - {id: healthz, action: k8s.request, path: "/healthz/", decision: allow}
          - {id: metrics, action: k8s.request, path: {glob: "/metrics/*"}, decision: allow}
        """,
}


@pytest.mark.parametrize(
    ("policy", "path", "decision", "rule"),
    [
        ("deny-rules", "/logs/", "deny", "logs"),
        ("deny-rules", "/logs", "deny", "logs"),
        ("deny-rules", "/debug/pprof/", "deny", "debug"),
        ("deny-rules", "/debug/pprof", "deny", "debug"),
        ("deny-rules", "/logs/x/", "allow", "everything"),
        ("deny-rules", "/version/", "allow", "everything"),
        ("allow-rules", "/healthz", "allow", "healthz"),
        ("allow-rules", "/healthz/", "allow", "healthz"),
        ("allow-rules", "/metrics/x/", "allow", "metrics"),
        ("allow-rules", "/metrics/", "deny", None),
        ("allow-rules", "/healthz/x", "deny", None),
    ],
)
def test_non_resource_paths_and_rule_paths_are_compared_in_one_form(
    policy: str, path: str, decision: str, rule: str | None
) -> None:
    compiled = load_policy_text(NON_RESOURCE_POLICIES[policy])
    body = {"action": "k8s.request", "k8s": {"method": "GET", "path": path}}
    verdict = evaluate_request(compiled, body)
    assert (verdict.decision, verdict.rule) == (decision, rule)
    assert verdict.request["k8s"] == {"verb": "get", "path": path}  # recorded as sent


def test_deny_rules_also_see_a_non_resource_path_as_sent() -> None:
    # "/logs/" is matched as "/logs"; a deny written for the path as sent still holds.
    compiled = load_policy_text(
        "version: 1\nrules:\n"
        '  - {id: logs, action: k8s.request, path: {startsWith: "/logs/"}, decision: deny}\n'
        "  - {id: everything, action: k8s.request, decision: allow}\n"
    )
    for path, decision in (("/logs/", "deny"), ("/logs/kube.log", "deny"), ("/logs", "allow")):
        body = {"action": "k8s.request", "k8s": {"method": "GET", "path": path}}
        assert evaluate_request(compiled, body).decision == decision, path
