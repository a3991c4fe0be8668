"""k8s.request resolution (CONTRACT 2.2 "k8s"): method + path -> RBAC attributes.

The first tables restate, as data, every case of kube-apiserver's requestinfo_test.go
(TestGetAPIRequestInfo, TestGetNonAPIRequestInfo, TestSelectorParsing). Upstream's
apiPrefix column is implied by the group ("" for /api) and its Parts column only matters
for the proxy prefix, where the proxied sub-path must not become a subresource; both are
covered through the RBAC resource below.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.errors import RequestError
from sidecar.normalise.k8s import (
    K8sAttributes,
    also_evaluated_as,
    from_attributes,
    resolve_request,
)

# method, url, verb, group, version, namespace, resource (RBAC form), name
UPSTREAM_RESOURCE_CASES = [
    # resource paths
    ("GET", "/api/v1/namespaces", "list", "", "v1", "", "namespaces", ""),
    ("GET", "/api/v1/namespaces/other", "get", "", "v1", "other", "namespaces", "other"),
    ("GET", "/api/v1/namespaces/other/pods", "list", "", "v1", "other", "pods", ""),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "foo"),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "foo"),
    ("GET", "/api/v1/pods", "list", "", "v1", "", "pods", ""),
    ("HEAD", "/api/v1/pods", "list", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "foo"),
    ("GET", "/api/v1/namespaces/other/pods", "list", "", "v1", "other", "pods", ""),
    # special verbs
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "", "v1", "other", "pods", "foo"),
    (
        "GET",
        "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
        "proxy",
        "",
        "v1",
        "other",
        "pods",
        "foo",
    ),
    ("GET", "/api/v1/watch/pods", "watch", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch=true", "watch", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch=false", "list", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "", "v1", "other", "pods", ""),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "", "v1", "other", "pods", ""),
    ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "", "v1", "other", "pods", ""),
    # subresource identification
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/status",
        "get",
        "",
        "v1",
        "other",
        "pods/status",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods/foo/proxy/subpath",
        "get",
        "",
        "v1",
        "other",
        "pods/proxy",
        "foo",
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/finalize",
        "update",
        "",
        "v1",
        "other",
        "namespaces/finalize",
        "other",
    ),
    (
        "PUT",
        "/api/v1/namespaces/other/status",
        "update",
        "",
        "v1",
        "other",
        "namespaces/status",
        "other",
    ),
    # verb identification
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "", "v1", "other", "pods", "foo"),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "", "v1", "other", "pods", "foo"),
    ("POST", "/api/v1/namespaces/other/pods", "create", "", "v1", "other", "pods", ""),
    # deletecollection verb identification
    ("DELETE", "/api/v1/nodes", "deletecollection", "", "v1", "", "nodes", ""),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "", "v1", "", "namespaces", ""),
    (
        "DELETE",
        "/api/v1/namespaces/other/pods",
        "deletecollection",
        "",
        "v1",
        "other",
        "pods",
        "",
    ),
    (
        "DELETE",
        "/apis/extensions/v1/namespaces/other/pods",
        "deletecollection",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
    ),
    # api group identification
    (
        "POST",
        "/apis/extensions/v1/namespaces/other/pods",
        "create",
        "extensions",
        "v1",
        "other",
        "pods",
        "",
    ),
    # api version identification
    (
        "POST",
        "/apis/extensions/v1beta3/namespaces/other/pods",
        "create",
        "extensions",
        "v1beta3",
        "other",
        "pods",
        "",
    ),
]

# url, is_resource_request (TestGetAPIRequestInfo error cases + TestGetNonAPIRequestInfo)
UPSTREAM_KIND_CASES = [
    ("/", False),  # no resource path
    ("/api/version/", False),  # just apiversion
    ("/apis/group/version/", False),  # just prefix, group, version
    ("/badprefix/version/resource", False),  # bad prefix
    ("/apis/version/resource", False),  # missing api group
    ("/api/version/resource", True),  # simple groupless
    ("/apis/group/version/resource/name/subresource", True),  # simple group
    ("/api/version/resource/name/subresource", True),  # more steps
    ("/apis/batch/v1/job", True),  # group list
    ("/apis/batch/v1/job/foo", True),  # group get
    ("/apis/batch/v1/job/foo/scale", True),  # group subresource
    ("/not-api/version/resource", False),  # bad root
    ("/apis/extensions/v1beta1", False),  # group without enough steps
    ("/apis/extensions/v1beta1/", False),  # group without enough steps 2
    ("/api/version", False),  # not enough steps
    ("/api", False),  # one step
]

# method, url, verb, name (TestSelectorParsing; selectors themselves are not reported)
UPSTREAM_SELECTOR_CASES = [
    ("GET", "/apis/group/version/resource", "list", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "list", "name1"),
    (
        "GET",
        "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1",
        "watch",
        "name1",
    ),
    ("GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "list", ""),
    ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "list", ""),
    (
        "GET",
        "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true",
        "watch",
        "",
    ),
    (
        "GET",
        "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false",
        "list",
        "",
    ),
    (
        "DELETE",
        "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux",
        "deletecollection",
        "",
    ),
    (
        "GET",
        "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar"
        "&labelSelector=foo=bar&labelSelector=foo=baz",
        "list",
        "foo",
    ),
    (
        "GET",
        "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar",
        "get",
        "name",
    ),
    (
        "GET",
        "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar",
        "watch",
        "",
    ),
    (
        "GET",
        "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo"
        "&labelSelector=foo=bar",
        "watch",
        "name",
    ),
]

# Further cases the contract names, same columns as UPSTREAM_RESOURCE_CASES.
EXTRA_RESOURCE_CASES = [
    # server-side apply creates a namespace with PATCH on its own path: namespace = name
    ("PATCH", "/api/v1/namespaces/new-ns", "patch", "", "v1", "new-ns", "namespaces", "new-ns"),
    (
        "PATCH",
        "/api/v1/namespaces/new-ns?fieldManager=kubectl&force=true",
        "patch",
        "",
        "v1",
        "new-ns",
        "namespaces",
        "new-ns",
    ),
    ("POST", "/api/v1/namespaces", "create", "", "v1", "", "namespaces", ""),
    ("DELETE", "/api/v1/namespaces/old", "delete", "", "v1", "old", "namespaces", "old"),
    (
        "GET",
        "/api/v1/namespaces/other/status",
        "get",
        "",
        "v1",
        "other",
        "namespaces/status",
        "other",
    ),
    # a namespace may be called like a namespace subresource
    ("GET", "/api/v1/namespaces/status", "get", "", "v1", "status", "namespaces", "status"),
    ("GET", "/api/v1/namespaces/status/pods", "list", "", "v1", "status", "pods", ""),
    # named groups, legacy prefixes on groups, named watch
    (
        "DELETE",
        "/apis/apps/v1/namespaces/apps-prod/deployments/web",
        "delete",
        "apps",
        "v1",
        "apps-prod",
        "deployments",
        "web",
    ),
    (
        "PUT",
        "/apis/apps/v1/namespaces/apps-prod/deployments/web/scale",
        "update",
        "apps",
        "v1",
        "apps-prod",
        "deployments/scale",
        "web",
    ),
    (
        "GET",
        "/apis/apps/v1/watch/namespaces/p/deployments/web",
        "watch",
        "apps",
        "v1",
        "p",
        "deployments",
        "web",
    ),
    (
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "list",
        "rbac.authorization.k8s.io",
        "v1",
        "",
        "clusterrolebindings",
        "",
    ),
    ("GET", "/api/v1/watch/namespaces/other/pods/foo", "watch", "", "v1", "other", "pods", "foo"),
    ("GET", "/api/v1/proxy/nodes/n1/metrics", "proxy", "", "v1", "", "nodes", "n1"),
    ("GET", "/api/v1/nodes/n1/proxy/metrics", "get", "", "v1", "", "nodes/proxy", "n1"),
    # watch on a named GET is a get, as upstream; trailing slash is trimmed as upstream
    ("GET", "/api/v1/namespaces/o/pods/foo?watch=true", "get", "", "v1", "o", "pods", "foo"),
    ("GET", "/api/v1/namespaces/o/pods/", "list", "", "v1", "o", "pods", ""),
    # watch values: first one counts, anything but 0/false (any case) is true
    ("GET", "/api/v1/pods?watch=", "watch", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch", "watch", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch=FALSE", "list", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch=yes", "watch", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?watch=false&watch=true", "list", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?Watch=true", "list", "", "v1", "", "pods", ""),
    ("GET", "/api/v1/pods?wat%63h=tru%65", "watch", "", "v1", "", "pods", ""),
    # exec/attach/portforward: a websocket GET is reported as get on the subresource
    ("GET", "/api/v1/namespaces/o/pods/p/exec?command=ls", "get", "", "v1", "o", "pods/exec", "p"),
    (
        "POST",
        "/api/v1/namespaces/o/pods/p/exec?command=ls",
        "create",
        "",
        "v1",
        "o",
        "pods/exec",
        "p",
    ),
    ("GET", "/api/v1/namespaces/o/pods/p/attach", "get", "", "v1", "o", "pods/attach", "p"),
    (
        "GET",
        "/api/v1/namespaces/o/pods/p/portforward?ports=80",
        "get",
        "",
        "v1",
        "o",
        "pods/portforward",
        "p",
    ),
    # names and resources are kept as written
    ("GET", "/api/v1/namespaces/Other/Pods/Foo", "get", "", "v1", "Other", "Pods", "Foo"),
    # percent-encoded ordinary characters decode like the apiserver decodes them
    ("GET", "/api/v1/namespaces/default/%73ecrets", "list", "", "v1", "default", "secrets", ""),
    ("GET", "/api/v1/namespaces/d/pods/caf%C3%A9", "get", "", "v1", "d", "pods", "café"),
]

# method, url, name: when a metadata.name field selector names a list/watch
FIELD_SELECTOR_CASES = [
    ("GET", "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name%3Ddb", "db"),
    ("GET", "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name%3D%3Ddb", "db"),
    ("GET", "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name!=db", ""),
    ("GET", "/api/v1/namespaces/o/secrets?fieldSelector=type=Opaque,metadata.name=db", "db"),
    # the apiserver sorts the terms: the first exact match after sorting wins
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=foo,metadata.name=bar", "bar"),
    # escaped characters in the value; invalid escapes leave the request unnamed
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=a%5C%2Cb", "a,b"),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=a%5Cxb", ""),
    # names that are not a valid path segment do not name the request
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=..", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=a/b", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=a%2525b", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=", ""),
    # only list/watch are named this way
    ("DELETE", "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name=db", ""),
    ("GET", "/api/v1/namespaces/o/secrets/x?fieldSelector=metadata.name=db", "x"),
    # other list options that fail to decode drop the name, as in the apiserver
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&limit=abc", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&limit=500", "db"),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&timeoutSeconds=1e3", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&timeoutSeconds=%2B30", "db"),
    # 1.36's alpha shardSelector may fail to decode: not modelled, so the name goes.
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&shardSelector=x", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&limit=99999999999999999999", ""),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&labelSelector=app%3Dweb,!old", "db"),
    (
        "GET",
        "/api/v1/secrets?fieldSelector=metadata.name=db&labelSelector=example.com/tier!=db",
        "db",
    ),
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&labelSelector=a=b=c", ""),
    # set-based label selectors are not analysed: the request stays unnamed (stricter)
    ("GET", "/api/v1/secrets?fieldSelector=metadata.name=db&labelSelector=app+in+(a,b)", ""),
]


def _resource(method: str, url: str) -> K8sAttributes:
    attributes = resolve_request(method, url)
    assert attributes.is_resource_request, url
    return attributes


@pytest.mark.parametrize(
    ("method", "url", "verb", "group", "version", "namespace", "resource", "name"),
    UPSTREAM_RESOURCE_CASES + EXTRA_RESOURCE_CASES,
)
def test_resource_request_attributes(
    method: str,
    url: str,
    verb: str,
    group: str,
    version: str,
    namespace: str,
    resource: str,
    name: str,
) -> None:
    attributes = _resource(method, url)
    assert attributes.record() == {
        "verb": verb,
        "group": group,
        "version": version,
        "resource": resource,
        "namespace": namespace,
        "name": name,
    }
    assert attributes.path == ""


@pytest.mark.parametrize(("url", "is_resource"), UPSTREAM_KIND_CASES)
def test_resource_or_non_resource(url: str, is_resource: bool) -> None:
    assert resolve_request("GET", url).is_resource_request is is_resource


@pytest.mark.parametrize(("method", "url", "verb", "name"), UPSTREAM_SELECTOR_CASES)
def test_upstream_selector_cases(method: str, url: str, verb: str, name: str) -> None:
    attributes = _resource(method, url)
    assert (attributes.verb, attributes.name) == (verb, name)


@pytest.mark.parametrize(("method", "url", "name"), FIELD_SELECTOR_CASES)
def test_field_selector_metadata_name(method: str, url: str, name: str) -> None:
    assert _resource(method, url).name == name


@pytest.mark.parametrize(
    ("method", "url", "verb"),
    [
        ("GET", "/healthz", "get"),
        ("HEAD", "/livez", "head"),
        ("POST", "/api", "post"),
        ("PUT", "/apis/apps", "put"),
        ("PATCH", "/version", "patch"),
        ("DELETE", "/", "delete"),
        ("get", "/metrics", "get"),
    ],
)
def test_non_resource_verb_is_lower_case_method(method: str, url: str, verb: str) -> None:
    attributes = resolve_request(method, url)
    assert attributes.record() == {"verb": verb, "path": url}


def test_non_resource_path_is_recorded_decoded_and_untrimmed() -> None:
    assert resolve_request("GET", "/logs/kube%2Dapiserver.log").path == "/logs/kube-apiserver.log"
    assert resolve_request("GET", "/healthz/").path == "/healthz/"
    assert resolve_request("GET", "/healthz?verbose=1").record() == {
        "verb": "get",
        "path": "/healthz",
    }


def test_query_may_be_given_separately() -> None:
    assert resolve_request("GET", "/api/v1/pods", "watch=1").verb == "watch"
    assert resolve_request("GET", "/api/v1/pods", "").verb == "list"
    with pytest.raises(RequestError) as error:
        resolve_request("GET", "/api/v1/pods?watch=1", "watch=0")
    assert error.value.field == "k8s.path"
    with pytest.raises(RequestError):
        resolve_request("GET", "/api/v1/pods", "?watch=1")


@pytest.mark.parametrize(
    "method", ["OPTIONS", "CONNECT", "TRACE", "", "GET ", "G\u0415T", "po\u017ft"]
)
def test_unknown_methods_are_rejected(method: str) -> None:
    with pytest.raises(RequestError) as error:
        resolve_request(method, "/api/v1/pods")
    assert error.value.field == "k8s.method"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/namespaces/o/../kube-system/secrets",
        "/api/v1/namespaces/o/./pods",
        "/api/v1/pods/..",
        "/api/v1//pods",
        "//api/v1/pods",
        "/api/v1/namespaces/o/pods%2Ffoo",
        "/api/v1/namespaces/o/pods%2ffoo",
        "/api/v1/namespaces/o/%2E%2E/secrets",
        "/api/v1/namespaces/o/pods/%2e",
        "/api/v1/namespaces/o/pods/a%25b",
        "/api/v1/namespaces/o/pods/a%5Cb",
        "/api/v1/namespaces/o/pods/a%3Fb",
        "/api/v1/namespaces/o/pods/a%00b",
        "/api/v1/namespaces/o/pods/a%zzb",
        "/api/v1/namespaces/o/pods/a%",
        "/api/v1/namespaces/o/pods/a%FFb",
        "/api/v1/namespaces/o/pods/a b",
        "/api/v1/namespaces/o/pods/a\\b",
        "/api/v1/namespaces/o/pods/a\x00b",
        "/api/v1/namespaces/o/pods/a\nb",
        "/api/v1/namespaces/o/pods/a#b",
        "api/v1/pods",
        "https://kubernetes.default.svc/api/v1/pods",
        "",
        "/api/v1/watch",
        "/apis/apps/v1/proxy",
        "/api/v1/pods?watch=false;watch=true",
        "/api/v1/pods?watch=%zz",
        "/api/v1/pods?watch=fal%C5%BFe",
        "/api/v1/" + "a" * 5000,
    ],
)
def test_ambiguous_paths_are_rejected(url: str) -> None:
    with pytest.raises(RequestError) as error:
        resolve_request("GET", url)
    assert error.value.field == "k8s.path"


@pytest.mark.parametrize(
    ("method", "url", "extra_verbs"),
    [
        ("GET", "/api/v1/namespaces/o/pods/p/exec?command=sh", ["create"]),
        ("HEAD", "/api/v1/namespaces/o/pods/p/attach", ["create"]),
        ("GET", "/api/v1/namespaces/o/pods/p/portforward", ["create"]),
        ("POST", "/api/v1/namespaces/o/pods/p/exec?command=sh", []),
        ("GET", "/api/v1/namespaces/o/pods/p/log", []),
        ("GET", "/api/v1/namespaces/o/pods/p", []),
        ("GET", "/pods/exec", []),
        ("GET", "/api/v1/nodes/n1/proxy/exec/ns/pod/c", ["create"]),
        ("GET", "/api/v1/nodes/n1", []),
    ],
)
def test_streaming_get_is_also_evaluated_as_create(
    method: str, url: str, extra_verbs: list[str]
) -> None:
    attributes = resolve_request(method, url)
    extra = also_evaluated_as(attributes)
    assert [a.verb for a in extra] == extra_verbs
    for other in extra:
        assert other.record() == {**attributes.record(), "verb": "create"}


def test_from_attributes_canonicalises_and_validates() -> None:
    exec_attributes = from_attributes(
        "GET", resource="pods", subresource="exec", namespace="o", name="p"
    )
    assert exec_attributes == from_attributes("get", "", "", "pods/exec", "", "o", "p")
    assert exec_attributes.record() == {
        "verb": "get",
        "group": "",
        "version": "",
        "resource": "pods/exec",
        "namespace": "o",
        "name": "p",
    }
    assert [a.verb for a in also_evaluated_as(exec_attributes)] == ["create"]
    deployment = from_attributes("delete", "apps", "v1", "deployments", "", "apps-prod", "web")
    assert deployment.record()["group"] == "apps"
    for verb in ("impersonate", "bind", "escalate", "use", "approve", "sign", "deletecollection"):
        assert from_attributes(verb, resource="x").verb == verb


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"verb": ""}, "k8s.verb"),
        ({"verb": "exec"}, "k8s.verb"),
        ({"verb": "*"}, "k8s.verb"),
        ({"verb": "gEt\u0131"}, "k8s.verb"),
        ({"resource": ""}, "k8s.resource"),
        ({"resource": "pods/exec", "subresource": "exec"}, "k8s.subresource"),
        ({"resource": "pods/exec/x"}, "k8s.resource"),
        ({"resource": "/exec"}, "k8s.resource"),
        ({"resource": "pods/"}, "k8s.resource"),
        ({"subresource": "a/b"}, "k8s.subresource"),
        ({"name": "a/b"}, "k8s.name"),
        ({"name": ".."}, "k8s.name"),
        ({"name": "a\x00b"}, "k8s.name"),
        ({"name": "a%2Fb"}, "k8s.name"),
        ({"namespace": "a b"}, "k8s.namespace"),
        ({"namespace": "."}, "k8s.namespace"),
        ({"group": "apps/v1"}, "k8s.group"),
        ({"version": "v1\n"}, "k8s.version"),
        ({"name": "x" * 5000}, "k8s.name"),
        ({"name": 7}, "k8s.name"),
    ],
)
def test_from_attributes_rejects(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"verb": "get", "resource": "pods", **kwargs}
    with pytest.raises(RequestError) as error:
        from_attributes(**arguments)  # type: ignore[arg-type]
    assert error.value.field == field


def test_names_are_kept_case_sensitive() -> None:
    attributes = from_attributes("list", resource="Secrets", namespace="Prod")
    assert (attributes.resource, attributes.namespace) == ("Secrets", "Prod")


_METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "get", "OPTIONS"])
_SEGMENTS = st.sampled_from(
    [
        *("api", "apis", "v1", "apps", "namespaces", "ns", "pods", "exec", "status", "finalize"),
        *("watch", "proxy", "foo", ".", "..", "", "%2F", "%2e", "%41", "%", "a%20b", "é", "\x00"),
    ]
)
_PATHS = st.one_of(
    st.lists(_SEGMENTS, max_size=9).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=60),
    st.text(alphabet="/%2eEfF.a?=&;#\\ ", max_size=40),
)
_QUERIES = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.lists(
        st.sampled_from(
            [
                *("watch=1", "watch=false", "watch", "fieldSelector=metadata.name=x", "limit=a"),
                *("labelSelector=a=b", "fieldSelector=metadata.name=a,b", "%zz", "=", "&"),
            ]
        ),
        max_size=4,
    ).map("&".join),
)


@settings(max_examples=2000, deadline=None)
@given(_METHODS | st.text(max_size=8), _PATHS, _QUERIES)
def test_resolution_only_raises_request_error_and_is_deterministic(
    method: str, path: str, query: str | None
) -> None:
    try:
        first = resolve_request(method, path, query)
    except RequestError:
        with pytest.raises(RequestError):
            resolve_request(method, path, query)
        return
    assert resolve_request(method, path, query) == first
    if first.is_resource_request:
        for value in (first.namespace, first.name, *first.resource.split("/")):
            assert "/" not in value and value not in (".", "..")
        assert first.resource.count("/") <= 1
        assert first.verb in {
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
            "proxy",
        }
    else:
        assert first.path.startswith("/")
