"""``Gate.kube``: check ``k8s.request``, then send the request to the Kubernetes API.

The gate is asked with the exact method and path (query included) that are then sent,
so it resolves them the way kube-apiserver will (CONTRACT 2.2). Inside a pod the API
server, the service-account token (re-read on every call: projected tokens rotate) and
the cluster CA come from the standard in-cluster locations; ``KubeCluster`` points
elsewhere (``kubectl proxy``, a test server). ``Impersonate-*`` headers are refused:
they make the API server act as another user or group, which the gate never sees; so are
the caller's credentials (``Authorization``, ``Cookie``: the cluster's token is the one
sent) and a ``Host`` header (another virtual host). The path is sent as it is, byte for
byte.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tollgate_client.fetch import checked_headers
from tollgate_client.timeouts import valid_timeout
from tollgate_client.transport import DeadlineResponse, Progress, remaining
from tollgate_client.wire import plain_text

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

K8S_REQUEST = "k8s.request"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Impersonate-User, -Group, -Uid, -Extra-*: the request would act as someone else.
IMPERSONATION_PREFIX = "impersonate-"
# A caller's credential would replace the cluster's token: another identity, unseen too.
# Proxy-Authorization is refused with the other Proxy-* fields (checked_headers).
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class KubeCluster:
    """Where Kubernetes API requests go, and how they authenticate."""

    server: str
    token_file: str | None = None
    ca_file: str | None = None
    token: str | None = field(default=None, repr=False)

    @classmethod
    def in_cluster(cls) -> KubeCluster:
        """The API server of the pod this runs in. Raises ``ValueError`` outside a pod."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if not host:
            raise ValueError("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"
        return cls(
            f"https://{host}:{port}",
            token_file=os.path.join(SERVICE_ACCOUNT_DIR, "token"),
            ca_file=os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt"),
        )

    def bearer_token(self) -> str | None:
        if self.token is not None:
            return self.token
        if self.token_file is None:
            return None
        with open(self.token_file, encoding="utf-8") as handle:
            return handle.read().strip()

    def connection(self, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        """A connection to the server, and the path prefix the server URL carries."""
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Kubernetes server must be an http(s) URL, not {self.server!r}")
        prefix = parts.path.rstrip("/")
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), prefix
        context = ssl.create_default_context(cafile=self.ca_file)
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context
        )
        return connection, prefix


@dataclass(frozen=True)
class KubeResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _content_type(method: str) -> str:
    # A JSON body PATCHed as application/json is refused by the API server (415).
    return "application/merge-patch+json" if method == "PATCH" else "application/json"


def kube_checked(
    gate: Gate,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    cluster: KubeCluster | None = None,
    timeout: float = 30.0,
    context: dict[str, Any] | None = None,
    approval: str | None = None,
) -> KubeResponse:
    """Check, then send ``method path`` to the API server; raises ``Denied`` if not allowed.

    ``body`` is bytes, or any JSON value (encoded as JSON). The answer is returned
    whatever its status, as the API server's ``Status`` object says more than an
    exception would. ``Impersonate-*``, credential (``Authorization``, ``Cookie``: give a
    token as ``KubeCluster(token=...)``) and ``Host`` headers, header names that are not
    HTTP tokens and headers that frame the message or manage the connection
    (``Content-Length``, ``Transfer-Encoding``, ``Connection`` ...: ``checked_headers``)
    raise ``ValueError``, as does a ``timeout`` the Gate's own ``timeout`` could not be
    (``valid_timeout``).
    """
    timeout = valid_timeout("Gate.kube timeout", timeout)
    # Exact strings, made once: what is checked is what is sent (plain_text).
    method, path = plain_text(method).upper(), plain_text(path)
    if not path.startswith("/"):
        raise ValueError(f"Kubernetes API path must start with '/': {path!r}")
    headers = checked_headers("Gate.kube", headers)
    impersonating = [
        name for name in headers if name.strip().lower().startswith(IMPERSONATION_PREFIX)
    ]
    if impersonating:
        # The gate decides on the method and path, not on who the request acts as; an
        # impersonated identity could hold rights the agent's own account lacks.
        raise ValueError(
            f"Gate.kube does not send {', '.join(impersonating)}: the gate could not check it"
        )
    credentials = [name for name in headers if name.strip().lower() in CREDENTIAL_HEADERS]
    if credentials:
        # It would replace the cluster's token: the request would act as whoever it names,
        # and nothing the gate checks or records would show it.
        raise ValueError(
            f"Gate.kube does not send {', '.join(credentials)}: it would act as another "
            "identity than the cluster's, which the gate could not check; give a token as "
            "KubeCluster(token=...)"
        )
    if any(name.lower() == "host" for name in headers):
        # Host picks the virtual host: behind a shared front end, another cluster than the
        # one configured. It is always the server's own.
        raise ValueError("Gate.kube does not take a Host header: it is set from the cluster server")
    target = cluster or KubeCluster.in_cluster()
    gate.require(
        K8S_REQUEST, k8s={"method": method, "path": path}, context=context, approval=approval
    )
    payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    sent_headers = {"Accept": "application/json"}
    if payload is not None:
        sent_headers["Content-Type"] = _content_type(method)
    token = target.bearer_token()
    if token:
        sent_headers["Authorization"] = f"Bearer {token}"
    for name, value in headers.items():
        for default in [key for key in sent_headers if key.lower() == name.lower()]:
            del sent_headers[default]
        sent_headers[name] = value
    # A deadline for the whole call, not for each read: a server sending a byte now and
    # then kept a call with a 1 s timeout going for 25 s (review of 2026-12-07).
    deadline = time.monotonic() + timeout
    connection, prefix = target.connection(timeout)
    connection.response_class = functools.partial(  # type: ignore[assignment]
        DeadlineResponse, deadline=deadline, progress=Progress()
    )
    try:
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(remaining(deadline))
        connection.request(method, prefix + path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        return KubeResponse(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
