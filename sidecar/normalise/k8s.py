"""Kubernetes request attributes for ``k8s.request`` (CONTRACT 2.2 "k8s", section 1 table).

A request is given either as attributes (``from_attributes``) or as the HTTP method and
path the agent is about to send (``resolve_request``). The path is resolved the way
kube-apiserver's RequestInfo resolver does (``k8s.io/apiserver/pkg/endpoints/request``):

* ``/api/{version}/...`` is the core group, ``/apis/{group}/{version}/...`` a named
  group; anything shorter or under another prefix is a non-resource request whose verb
  is the lower-case method and which is matched by ``path``;
* GET/HEAD without a name is ``list``, or ``watch`` when the first ``watch`` query value
  is anything but ``0``/``false`` (case-insensitive, empty counts as true);
  DELETE without a name is ``deletecollection``;
* the legacy ``/watch/`` and ``/proxy/`` prefixes set the verb; ``proxy`` takes no
  subresource (the rest of the path is the proxied path);
* ``/namespaces/{ns}/status`` and ``/namespaces/{ns}/finalize`` are subresources of the
  namespace; any other step after a namespace is a namespaced resource. A namespace
  object's own requests (including the server-side-apply PATCH that creates one) have
  ``namespace`` equal to ``name``, as in Kubernetes;
* a list/watch whose ``fieldSelector`` requires ``metadata.name=X`` is a request for the
  object named ``X``.

Resources are in RBAC form (``pods/exec``). Names are kept exactly as written
(case-sensitive). Where Tollgate and the apiserver could read a path differently, the
path is rejected with ``RequestError(..., "k8s.path")`` instead of guessed at: ``.`` and
``..`` segments, ``//``, percent-encoded ``/ \\ . % ? #``, invalid escapes, invalid
UTF-8, whitespace, backslashes, ``#``, control, zero-width and bidi characters, relative
paths and full URLs, ``;`` in the query, a query given both in the path and separately,
a ``watch`` value that is not ASCII, a path over 4096 or a query over 16384 bytes or
of more than 100 parameters (Go's ``url.ParseQuery``, since Go 1.24.12 and 1.25.6,
drops a whole query past its ``urlmaxqueryparams`` limit, 10,000 by default, so the
apiserver would read none of it: not the ``fieldSelector`` that names a list, nor
``dryRun``, nor an exec's ``command``).
Percent-encoded ordinary characters are decoded first (``%73ecrets`` is ``secrets``),
as the apiserver does.

Documented divergences, all towards the stricter reading for allow rules:

* only GET, HEAD, POST, PUT, PATCH and DELETE are accepted (case-insensitively);
  the apiserver gives other methods an empty verb on resource paths;
* everything listed above as rejected, which the apiserver would accept or route
  differently;
* a ``metadata.name`` field selector names the request only when the other list
  options certainly decode: ``limit``/``timeoutSeconds`` are checked exactly, but a
  ``labelSelector`` is only recognised in its equality/existence forms
  (``app=web,tier!=db,!legacy``); with a set-based or otherwise unusual label selector
  the request stays an unnamed list/watch, which no name-restricted allow rule
  allows. A deny or approval rule by name does not see it either, just as it does not
  see the plain unnamed list that returns the same object (docs/policy.md: deny such
  verbs on the resource).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import unquote_to_bytes

from sidecar.errors import RequestError
from sidecar.normalise.paths import MAX_PATH_BYTES, check_path_text

PATH_FIELD = "k8s.path"
METHOD_FIELD = "k8s.method"
MAX_QUERY_BYTES = 16384
# Parameters counted as Go counts them ("&" + 1, empty ones too); kubectl sends a few.
MAX_QUERY_PARAMETERS = 100

# Kubernetes verbs an attribute request may name: the REST verbs RequestInfo produces,
# plus the authorization-only verbs built-in authorizers check: impersonate
# (users/groups/serviceaccounts/uids/userextras), bind and escalate (roles), use
# (podsecuritypolicies), approve and sign (certificate signers), attest (ClusterTrustBundles).
REST_VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"}
)
KNOWN_VERBS = REST_VERBS | frozenset(
    {"impersonate", "bind", "escalate", "use", "approve", "sign", "attest"}
)

# Subresources whose GET opens a stream (websocket) doing what a create would; the
# contract evaluates such a GET also as ``create`` (RBAC needs only ``get`` for them).
# GET on these opens an interactive stream; nodes/proxy reaches the kubelet's own
# exec and attach endpoints, a known way around RBAC that only needs get.
STREAMING_SUBRESOURCES = frozenset({"pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"})

_METHOD_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_API_PREFIXES = frozenset({"api", "apis"})
_GROUPLESS_PREFIX = "api"
_PATH_PREFIX_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})

# Characters no Kubernetes name contains and that only serve to deceive a reader:
# controls, (Unicode) whitespace, zero-width and bidirectional formatting characters.
_INVISIBLE = r"\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff"
# Literal characters no client puts in a request path: the above, backslash, '#'.
_UNSAFE_PATH_CHAR = re.compile(rf"[{_INVISIBLE}\\#]")
# In a query: controls, space, '#', and ';' (a separator to some servers, not to Go).
_UNSAFE_QUERY_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f#;]")
_DECODED_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Bytes that must not arrive percent-encoded in a path: they would change routing.
_FORBIDDEN_ENCODED = frozenset(b"/\\.%?#") | frozenset(range(0x21)) | {0x7F}
# Attribute values: one path segment, printable, no escapes.
_UNSAFE_SEGMENT_CHAR = re.compile(rf"[{_INVISIBLE}/\\%#?]")

# Go's strconv.ParseInt(s, 10, 64) syntax (range checked separately).
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The equality/existence subset of the label-selector grammar, with the apiserver's key
# (qualified name) and value syntax.
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = rf"(?:(?P<prefix>{_DNS_SUBDOMAIN})/)?(?P<key>{_LABEL_NAME})"
_LABEL_TERM = re.compile(rf"{_LABEL_KEY}(?:(?:=|==|!=)(?P<value>{_LABEL_NAME}))?")
_LABEL_NOT_EXISTS = re.compile(rf"!{_LABEL_KEY}")
_LABEL_KEYWORDS = frozenset({"in", "notin"})


@dataclass(frozen=True, slots=True)
class K8sAttributes:
    """What a Kubernetes API request does, in the terms RBAC and policy rules use."""

    is_resource_request: bool
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""  # RBAC form: "pods", or "pods/exec" for a subresource
    namespace: str = ""
    name: str = ""
    path: str = ""  # the request path of a non-resource request, "" otherwise

    def record(self) -> dict[str, str]:
        """The normalised form written to the audit trail (CONTRACT 2.2)."""
        if not self.is_resource_request:
            return {"verb": self.verb, "path": self.path}
        return {
            "verb": self.verb,
            "group": self.group,
            "version": self.version,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
        }


def also_evaluated_as(attributes: K8sAttributes) -> tuple[K8sAttributes, ...]:
    """The extra subjects a request is also evaluated as (the strictest decision wins).

    A GET on pods/exec, pods/attach or pods/portforward (a websocket stream), or on
    nodes/proxy (the kubelet's exec), is also a ``create``: RBAC lets ``get`` open
    these streams, which is the bypass this closes.
    The group is not checked, so a same-named resource of another group is treated the
    same way (stricter, never looser).
    """
    if (
        attributes.is_resource_request
        and attributes.verb == "get"
        and attributes.resource in STREAMING_SUBRESOURCES
    ):
        return (replace(attributes, verb="create"),)
    return ()


# The schemes kube-apiserver accepts before a proxied object's name (SplitSchemeNamePort).
_PROXY_SCHEMES = frozenset({"", "http", "https"})


def proxied_object(attributes: K8sAttributes) -> K8sAttributes | None:
    """The request with the name of the object it proxies to, when the name says more.

    kube-apiserver proxies ``pods/proxy``, ``services/proxy`` and ``nodes/proxy`` (and
    the legacy ``/proxy/`` prefix) to the object named by the segment ``name``,
    ``name:port`` or ``scheme:name:port`` (``utilnet.SplitSchemeNamePort``; scheme
    ``http`` or ``https``), while RequestInfo, and so RBAC and the request's ``name``,
    keeps the whole segment. A deny of proxying to ``grafana`` must hold against
    ``https:grafana:443``, so the request is also decided under the object's name by
    deny and require_approval rules (``Subject.restrictions_only``); an allow naming
    ``grafana`` still does not allow ``https:grafana:443``, as RBAC's resourceNames
    would not. A name the apiserver would refuse to split adds nothing.
    """
    if not attributes.is_resource_request or not (
        attributes.verb == "proxy" or attributes.resource.endswith("/proxy")
    ):
        return None
    parts = attributes.name.split(":")
    if len(parts) == 2:
        name = parts[0]
    elif len(parts) == 3 and parts[0] in _PROXY_SCHEMES:
        name = parts[1]
    else:
        return None
    return replace(attributes, name=name) if name else None


def may_create(attributes: K8sAttributes) -> K8sAttributes | None:
    """The ``create`` a ``patch`` or ``update`` of a named object may be, else None.

    A server-side apply (``PATCH`` with ``application/apply-patch+yaml``, what ``kubectl
    apply --server-side`` sends) creates the object when it does not exist, and so does
    a ``PUT`` of a resource that allows create on update; kube-apiserver then also asks
    the authorizer for ``create``. The gate sees neither the content type nor whether
    the object exists, so the request is also decided as a ``create`` by deny and
    require_approval rules (``Subject.restrictions_only``): a deny of creating
    namespaces holds against an apply, while an allow of ``patch`` still needs no allow
    of ``create``. A subresource (``deployments/scale``) never creates its object.
    """
    if (
        attributes.is_resource_request
        and attributes.verb in ("patch", "update")
        and attributes.name
        and "/" not in attributes.resource
    ):
        return replace(attributes, verb="create")
    return None


def resolve_request(method: str, path: str, query: str | None = None) -> K8sAttributes:
    """Resolve an HTTP request to its Kubernetes attributes, like RequestInfo does.

    ``path`` may carry the query after ``?``; otherwise it can be given as ``query``
    (without the ``?``), never both. Raises ``RequestError`` for an unsupported method
    (field ``k8s.method``) or an ambiguous path or query (field ``k8s.path``).
    """
    http_method = _canonical_method(method)
    if not isinstance(path, str):
        raise RequestError("must be a string", PATH_FIELD)
    raw_path, has_query, path_query = path.partition("?")
    if query is None:
        query = path_query
    elif has_query:
        raise RequestError("has a query both in the path and given separately", PATH_FIELD)
    elif not isinstance(query, str) or query.startswith("?"):
        raise RequestError("query must be a string without the leading '?'", PATH_FIELD)
    decoded_path = _decode_path(raw_path)
    params = _parse_query(query)

    trimmed = decoded_path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    if "." in parts or ".." in parts:
        raise RequestError("must not contain '.' or '..' segments", PATH_FIELD)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return K8sAttributes(False, http_method.lower(), path=decoded_path)
    group = ""
    rest = parts[1:]
    if parts[0] != _GROUPLESS_PREFIX:
        if len(rest) < 3:
            return K8sAttributes(False, http_method.lower(), path=decoded_path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    if rest[0] in _PATH_PREFIX_VERBS:
        if len(rest) < 2:
            raise RequestError(f"/{rest[0]} must be followed by a resource", PATH_FIELD)
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS[http_method]

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]

    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    if len(rest) >= 3 and verb != "proxy":
        resource = f"{resource}/{rest[2]}"

    if not name and verb == "get":
        verb = "watch" if _watch_requested(params) else "list"
        name = _name_from_field_selector(params)
    if not name and verb == "delete":
        verb = "deletecollection"
    return K8sAttributes(True, verb, group, version, resource, namespace, name)


_LISTING = frozenset({"list", "watch"})


def from_attributes(
    verb: str,
    group: str = "",
    version: str = "",
    resource: str = "",
    subresource: str = "",
    namespace: str = "",
    name: str = "",
) -> K8sAttributes:
    """Validate an attribute request and return it in canonical form.

    The verb is lower-cased and must be in ``KNOWN_VERBS``. The resource is given as
    ``pods/exec`` or as ``resource="pods", subresource="exec"`` (not both). Every other
    value is kept as written but must be a single path segment: no ``/``, ``%``, ``\\``,
    ``#``, ``?``, whitespace or control characters, not ``.`` or ``..``. A request on a
    namespace object (``namespaces`` with a name, its subresources too; not a list or
    watch) given without a namespace is in its own, as the path form resolves it.
    Raises ``RequestError`` naming ``k8s.<field>``.
    """
    values = {
        "verb": verb,
        "group": group,
        "version": version,
        "resource": resource,
        "subresource": subresource,
        "namespace": namespace,
        "name": name,
    }
    for field, value in values.items():
        if not isinstance(value, str):
            raise RequestError("must be a string", f"k8s.{field}")
    if not verb:
        raise RequestError("is required", "k8s.verb")
    canonical_verb = verb.lower() if verb.isascii() else verb
    if canonical_verb not in KNOWN_VERBS:
        raise RequestError(
            f"is not a Kubernetes verb (one of {', '.join(sorted(KNOWN_VERBS))})", "k8s.verb"
        )
    if not resource:
        raise RequestError("is required", "k8s.resource")
    base, has_sub, sub = resource.partition("/")
    if has_sub:
        if subresource:
            raise RequestError(
                "give the subresource either in resource or in subresource, not both",
                "k8s.subresource",
            )
        _check_segment(base, "k8s.resource")
        _check_segment(sub, "k8s.resource")
    else:
        sub = subresource
        _check_segment(base, "k8s.resource")
        if sub:
            _check_segment(sub, "k8s.subresource")
    for field in ("group", "version", "namespace", "name"):
        if values[field]:
            _check_segment(values[field], f"k8s.{field}")
    if base == "namespaces" and name and not namespace and canonical_verb not in _LISTING:
        # As resolve_request (and RequestInfo) read /api/v1/namespaces/{name}: a
        # namespace object's requests are in that namespace. Described without one (a
        # Namespace is cluster-scoped), "delete namespace kube-system" escaped a deny
        # rule scoped to namespace kube-system. Another namespace given describes
        # /api/v1/namespaces/{namespace}/namespaces/{name}, which the path form reads so;
        # a list or watch named by a field selector has none, as RequestInfo gives it.
        namespace = name
    return K8sAttributes(
        True,
        canonical_verb,
        group,
        version,
        f"{base}/{sub}" if sub else base,
        namespace,
        name,
    )


def _canonical_method(method: str) -> str:
    if isinstance(method, str) and method.isascii():
        upper = method.upper()
        if upper in _METHOD_VERBS:
            return upper
    raise RequestError(
        f"must be one of {', '.join(_METHOD_VERBS)}, got {method!r:.40}", METHOD_FIELD
    )


def _check_segment(value: str, field: str) -> None:
    if not value:
        raise RequestError("must not be empty", field)
    if value in (".", ".."):
        raise RequestError(f"must not be {value!r}", field)
    if _UNSAFE_SEGMENT_CHAR.search(value):
        raise RequestError(
            "must be one path segment without '/', '%', '\\', '#', '?', whitespace or "
            "control characters",
            field,
        )
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise RequestError(f"is longer than {MAX_PATH_BYTES} bytes", field)


def _decode_path(raw: str) -> str:
    """Percent-decode ``raw`` as Go's URL parser does, rejecting what would be ambiguous."""
    check_path_text(raw, PATH_FIELD)
    if not raw.startswith("/"):
        raise RequestError("must be an absolute path starting with '/'", PATH_FIELD)
    if "//" in raw:
        raise RequestError("must not contain '//'", PATH_FIELD)
    if _UNSAFE_PATH_CHAR.search(raw):
        raise RequestError(
            "must not contain whitespace, backslashes, '#' or control characters", PATH_FIELD
        )
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw):
        raise RequestError("has an invalid percent-escape", PATH_FIELD)
    for escape in _ESCAPE.finditer(raw):
        if int(escape.group(1), 16) in _FORBIDDEN_ENCODED:
            raise RequestError(
                f"must not percent-encode {escape.group(0)!r}: it would change routing",
                PATH_FIELD,
            )
    decoded = _utf8(unquote_to_bytes(raw))
    if _UNSAFE_PATH_CHAR.search(decoded):
        raise RequestError("decodes to whitespace or control characters", PATH_FIELD)
    return decoded


def _parse_query(query: str) -> dict[str, list[str]]:
    """Parse a query string as Go's ``url.ParseQuery`` does, rejecting ambiguity."""
    if not query:
        return {}
    if len(query.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
        raise RequestError(f"query is longer than {MAX_QUERY_BYTES} bytes", PATH_FIELD)
    if query.count("&") + 1 > MAX_QUERY_PARAMETERS:
        raise RequestError(
            f"query has more than {MAX_QUERY_PARAMETERS} parameters (an API server may "
            "ignore the whole of a query with many)",
            PATH_FIELD,
        )
    if _UNSAFE_QUERY_CHAR.search(query):
        raise RequestError(
            "query must not contain ';', '#', spaces or control characters", PATH_FIELD
        )
    if _BAD_ESCAPE.search(query):
        raise RequestError("query has an invalid percent-escape", PATH_FIELD)
    params: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        params.setdefault(_query_unescape(key), []).append(_query_unescape(value))
    return params


def _query_unescape(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text
    decoded = _utf8(unquote_to_bytes(text.replace("+", " ")))
    if _DECODED_CONTROL.search(decoded):
        raise RequestError("query decodes to control characters", PATH_FIELD)
    return decoded


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("decodes to invalid UTF-8", PATH_FIELD) from None


def _watch_requested(params: dict[str, list[str]]) -> bool:
    values = params.get("watch")
    if not values:
        return False
    # The apiserver compares with Unicode case folding on one code path and lower-casing
    # on another; they only disagree on non-ASCII input, which is refused.
    if not values[0].isascii():
        raise RequestError("watch must be ASCII", PATH_FIELD)
    return values[0] != "0" and values[0].lower() != "false"


def _name_from_field_selector(params: dict[str, list[str]]) -> str:
    """The name a list/watch is restricted to by ``fieldSelector=metadata.name=X``, or ""."""
    selectors = params.get("fieldSelector")
    if not selectors or not _other_list_options_decode(params):
        return ""
    name = _exact_metadata_name(selectors[0])
    if name is None or name in (".", "..") or "/" in name or "%" in name:
        return ""
    return name


def _exact_metadata_name(selector: str) -> str | None:
    """Go ``fields.ParseSelector(s).RequiresExactMatch("metadata.name")``; None if none."""
    terms: list[str] = []
    start, escaped = 0, False
    for index, char in enumerate(selector):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(selector[start:index])
            start = index + 1
    terms.append(selector[start:])
    terms.sort()  # the apiserver sorts terms before use; the first exact match wins
    found: str | None = None
    for term in terms:
        if not term:
            continue
        operator = re.search(r"!=|==|=", term)
        if operator is None:
            return None
        value = _unescape_selector_value(term[operator.end() :])
        if value is None:
            return None
        field = term[: operator.start()]
        if found is None and field == "metadata.name" and operator.group() != "!=":
            found = value
    return found


def _unescape_selector_value(value: str) -> str | None:
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)


def _other_list_options_decode(params: dict[str, list[str]]) -> bool:
    """True when the apiserver certainly decodes the list options other than fieldSelector.

    When decoding fails it drops the name; so does Tollgate whenever unsure.
    """
    # Kubernetes 1.36 (alpha, ShardedListAndWatch) decodes a shardSelector, which may
    # fail: not modelled, so unsure.
    if params.get("shardSelector"):
        return False
    for key in ("limit", "timeoutSeconds"):
        values = params.get(key)
        if values and not _is_go_int64(values[0]):
            return False
    labels = params.get("labelSelector")
    return not labels or _is_simple_label_selector(labels[0])


def _is_go_int64(text: str) -> bool:
    if _GO_INT.fullmatch(text) is None:
        return False
    # Leading zeros are allowed; more than 19 significant digits never fit (and would
    # trip Python's int-from-str digit limit on long input).
    if len(text.lstrip("+-").lstrip("0")) > 19:
        return False
    return _INT64_MIN <= int(text) <= _INT64_MAX


def _is_simple_label_selector(selector: str) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        pattern = _LABEL_NOT_EXISTS if term.startswith("!") else _LABEL_TERM
        match = pattern.fullmatch(term)
        if match is None:
            return False
        prefix = match.group("prefix")
        if prefix is not None and len(prefix) > 253:
            return False
        if _LABEL_KEYWORDS.intersection(match.groupdict().values()):
            return False
    return True
