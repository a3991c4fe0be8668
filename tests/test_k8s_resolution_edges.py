"""Edges of Kubernetes request resolution that mutation testing found unpinned.

A list or watch restricted by ``fieldSelector=metadata.name=X`` is named X only when
the apiserver certainly decodes its other list options; ``limit`` and ``timeoutSeconds``
decode as Go int64, so the name holds up to 2^63-1 and is dropped one past either end
(only a 20-digit value was pinned). Empty selector terms are skipped, as Go's parser
does. Only ``/api`` and ``/apis`` paths are resource requests, however long another path.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.k8s import from_attributes, resolve_request
from sidecar.policy.loader import load_policy_bytes

BASE = "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name=db&"


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("limit=9223372036854775807", "db"),
        ("limit=9223372036854775808", ""),
        ("limit=-9223372036854775808", "db"),
        ("limit=-9223372036854775809", ""),
        ("timeoutSeconds=+9223372036854775807", "db"),
        ("timeoutSeconds=9999999999999999999", ""),
        ("limit=0009223372036854775807", "db"),  # leading zeros are not significant
    ],
)
def test_int64_list_options_keep_the_name_only_in_range(option: str, name: str) -> None:
    attributes = resolve_request("GET", BASE + option.replace("+", "%2B"))
    assert (attributes.verb, attributes.resource, attributes.name) == ("list", "secrets", name)


@pytest.mark.parametrize(
    "selector", [",metadata.name=db", "metadata.name=db,", "a=b,,metadata.name=db"]
)
def test_empty_field_selector_terms_are_skipped(selector: str) -> None:
    attributes = resolve_request("GET", "/api/v1/namespaces/o/secrets?fieldSelector=" + selector)
    assert (attributes.verb, attributes.name) == ("list", "db")


@pytest.mark.parametrize(
    "path",
    ["/logs/kube-apiserver/a/b", "/metrics/a/b/c/d", "/openid/v1/jwks/x/y", "/apis", "/api/v1"],
)
def test_only_api_and_apis_prefixes_make_a_resource_request(path: str) -> None:
    # However many segments a non-resource path has, it is matched by its path; read as
    # a resource request, /metrics/a/b/c/d would be "get" of some group's resource.
    attributes = resolve_request("GET", path)
    assert not attributes.is_resource_request
    assert (attributes.verb, attributes.path, attributes.resource) == ("get", path, "")


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("", "db"),  # an empty labelSelector selects everything and decodes
        ("a" * 253 + "/k=v", "db"),  # a key prefix (DNS subdomain) of 253 characters
        ("a" * 254 + "/k=v", ""),  # one more does not decode: the name is dropped
    ],
)
def test_label_selector_bounds_decide_whether_the_name_holds(selector: str, name: str) -> None:
    attributes = resolve_request("GET", BASE + "labelSelector=" + selector)
    assert (attributes.verb, attributes.name) == ("list", name)


# Found in review (2026-12-06): the attribute form kept the namespace the client gave
# for a namespace object, "" for a cluster-scoped Namespace, so deleting kube-system
# described by attributes escaped a deny the path form hit.
PROTECT = (
    b"version: 1\ndefaultAction: allow\nrules:\n"
    b"  - {id: protect, action: k8s.request, namespace: kube-system,"
    b" verb: [delete, update, patch], decision: deny}\n"
)


@pytest.mark.parametrize(
    "k8s",
    [
        {"method": "DELETE", "path": "/api/v1/namespaces/kube-system"},
        {"verb": "delete", "version": "v1", "resource": "namespaces", "name": "kube-system"},
        {
            "verb": "delete",
            "version": "v1",
            "resource": "namespaces",
            "namespace": "kube-system",
            "name": "kube-system",
        },
        {"verb": "update", "resource": "namespaces/finalize", "name": "kube-system"},
        {"verb": "patch", "resource": "namespaces", "subresource": "status", "name": "kube-system"},
    ],
)
def test_a_namespace_object_is_in_its_own_namespace_however_described(
    k8s: dict[str, str],
) -> None:
    policy = load_policy_bytes(PROTECT, "ns.yaml")
    verdict = evaluate_request(policy, {"action": "k8s.request", "k8s": k8s})
    assert (verdict.decision, verdict.rule) == ("deny", "protect")
    assert verdict.request["k8s"]["namespace"] == "kube-system"


def test_another_namespace_given_is_kept_as_the_path_form_reads_it() -> None:
    # /api/v1/namespaces/default/namespaces/kube-system: resolved in namespace default.
    path_form = resolve_request("DELETE", "/api/v1/namespaces/default/namespaces/kube-system")
    described = from_attributes(
        "delete", version="v1", resource="namespaces", namespace="default", name="kube-system"
    )
    assert described == path_form and described.namespace == "default"


@pytest.mark.parametrize("verb", ["list", "watch"])
def test_listing_namespaces_stays_cluster_wide(verb: str) -> None:
    # A list or watch named by fieldSelector=metadata.name=web: RequestInfo gives it
    # name web and no namespace.
    path_form = resolve_request(
        "GET",
        f"/api/v1/namespaces?fieldSelector=metadata.name%3Dweb{'&watch=1' * (verb == 'watch')}",
    )
    described = from_attributes(verb, version="v1", resource="namespaces", name="web")
    assert described == path_form and described.namespace == ""


# Found in review (2026-12-07): Go's url.ParseQuery drops the whole of a query past
# 10,000 parameters (Go 1.24.12, 1.25.6), so the apiserver lists every Secret where the
# gate read a list named by its fieldSelector. Such a request is refused (a 400 at
# /check), not guessed at.
@pytest.mark.parametrize(
    "query",
    [
        "fieldSelector=metadata.name%3Dapp-config" + "&" * 10_000,
        "&" * 10_000 + "fieldSelector=metadata.name=app-config&watch=1",
        "&".join(["limit=1"] * 100) + "&fieldSelector=metadata.name=app-config",
    ],
    ids=["empty-after", "empty-before", "101-parameters"],
)
def test_a_query_with_more_parameters_than_an_apiserver_reads_is_refused(query: str) -> None:
    with pytest.raises(RequestError) as error:
        resolve_request("GET", f"/api/v1/namespaces/shop/secrets?{query}")
    assert str(error.value) == (
        "k8s.path: query has more than 100 parameters (an API server may ignore the "
        "whole of a query with many)"
    )


def test_a_query_of_100_parameters_empty_ones_counted_still_resolves() -> None:
    query = "&" * 98 + "fieldSelector=metadata.name=app-config"
    assert resolve_request("GET", f"/api/v1/namespaces/shop/secrets?{query}").name == "app-config"


PROXIES = b"""version: 1
rules:
  - {id: no-grafana, action: k8s.request, resource: services/proxy, name: grafana,
     decision: deny}
  - {id: ask-for-cp-1, action: k8s.request, verb: create, resource: nodes/proxy, name: cp-1,
     decision: require_approval}
  - {id: legacy-no-grafana, action: k8s.request, verb: proxy, resource: services,
     name: grafana, decision: deny}
  - {id: proxies, action: k8s.request, resource: [services/proxy, nodes/proxy], decision: allow}
  - {id: legacy, action: k8s.request, verb: proxy, decision: allow}
  - {id: only-web-proxy, action: k8s.request, resource: pods/proxy, name: web, decision: allow}
"""


# Found in review (2026-12-07): the apiserver proxies name, name:port and
# scheme:name:port to the same object (SplitSchemeNamePort), and a deny naming the
# object held only against the first.
@pytest.mark.parametrize(
    ("method", "path", "decision", "rule"),
    [
        ("GET", "/api/v1/namespaces/mon/services/grafana/proxy/api", "deny", "no-grafana"),
        ("GET", "/api/v1/namespaces/mon/services/grafana:3000/proxy/api", "deny", "no-grafana"),
        ("GET", "/api/v1/namespaces/mon/services/https:grafana:443/proxy/a", "deny", "no-grafana"),
        ("GET", "/api/v1/namespaces/mon/services/:grafana:443/proxy/a", "deny", "no-grafana"),
        (
            "GET",
            "/api/v1/proxy/namespaces/mon/services/http:grafana:80/a",
            "deny",
            "legacy-no-grafana",
        ),
        # A GET of nodes/proxy is also a create; both are decided under the node's name.
        ("GET", "/api/v1/nodes/cp-1:10250/proxy/configz", "require_approval", "ask-for-cp-1"),
        (
            "POST",
            "/api/v1/nodes/https:cp-1:10250/proxy/run/a/b/c",
            "require_approval",
            "ask-for-cp-1",
        ),
        # Other objects, and names the apiserver refuses to split, are as before.
        ("GET", "/api/v1/namespaces/mon/services/prometheus:9090/proxy/", "allow", "proxies"),
        ("GET", "/api/v1/namespaces/mon/services/ftp:grafana:443/proxy/", "allow", "proxies"),
        ("GET", "/api/v1/namespaces/mon/services/a:grafana:443:1/proxy/", "allow", "proxies"),
        # An allow naming the object does not allow its other spellings, as RBAC's
        # resourceNames would not.
        ("GET", "/api/v1/namespaces/mon/pods/web/proxy/", "allow", "only-web-proxy"),
        ("GET", "/api/v1/namespaces/mon/pods/web:8080/proxy/", "deny", None),
    ],
)
def test_a_proxied_object_is_decided_by_its_name_however_the_port_is_written(
    method: str, path: str, decision: str, rule: str | None
) -> None:
    policy = load_policy_bytes(PROXIES, "proxies.yaml")
    verdict = evaluate_request(
        policy, {"action": "k8s.request", "k8s": {"method": method, "path": path}}
    )
    assert (verdict.decision, verdict.rule) == (decision, rule)


# Second review of 2026-12-07: the object's name was decided as another view of the
# request's first part, where an approval rule outranks the default's deny, so a proxy
# request nothing allows became one to approve.
@pytest.mark.parametrize(
    "path", ["/api/v1/nodes/cp-1:10250/proxy/configz", "/api/v1/nodes/https:cp-1:10250/proxy/"]
)
def test_an_approval_for_the_proxied_object_does_not_lift_a_deny_of_the_request(
    path: str,
) -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n  - {id: ask, action: k8s.request, verb: create,"
        b" resource: nodes/proxy, name: cp-1, decision: require_approval}\n"
        b"  - {id: create, action: k8s.request, verb: create, resource: nodes/proxy,"
        b" decision: allow}\n",
        "ask.yaml",
    )
    verdict = evaluate_request(
        policy, {"action": "k8s.request", "k8s": {"method": "GET", "path": path}}
    )
    assert (verdict.decision, verdict.rule) == ("deny", None)


# Third review (2026-12-07): a patch's "may create it" form was a view of the patch, so
# an approval rule for creating namespaces turned a patch no rule allows into one to
# approve, and the approval then let a patch of the existing kube-system through.
@pytest.mark.parametrize(
    ("rules", "decision", "rule"),
    [
        ("", "deny", None),  # nothing allows the patch: the create's approval lifts nothing
        (
            "  - {id: patch, action: k8s.request, verb: patch, resource: namespaces,"
            " decision: allow}\n",
            "require_approval",
            "ask-create",
        ),
        (
            "  - {id: patch, action: k8s.request, verb: patch, resource: namespaces,"
            " decision: allow}\n  - {id: no-create, action: k8s.request, verb: create,"
            " resource: namespaces, decision: deny}\n",
            "deny",
            "no-create",
        ),
    ],
)
def test_an_approval_to_create_does_not_lift_a_deny_of_the_patch(
    rules: str, decision: str, rule: str | None
) -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n  - {id: ask-create, action: k8s.request, verb: create,"
        b" resource: namespaces, decision: require_approval}\n" + rules.encode(),
        "namespaces.yaml",
    )
    patch = {"method": "PATCH", "path": "/api/v1/namespaces/kube-system"}
    verdict = evaluate_request(policy, {"action": "k8s.request", "k8s": patch})
    assert (verdict.decision, verdict.rule) == (decision, rule)
