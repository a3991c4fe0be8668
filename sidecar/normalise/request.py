"""Normalise a parsed /check request into subjects and the record to keep (CONTRACT 2.2).

Each action family has its own module (paths, hosts, commands, k8s); this one only
dispatches and assembles. What is recorded is the normalised request, never the raw
one, so the audit trail shows exactly what was decided on.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from sidecar.errors import RequestError
from sidecar.normalise.commands import UNKNOWN_CWD, Construct, analyse_command
from sidecar.normalise.hosts import canonical_host, default_port, host_forms, parse_url
from sidecar.normalise.k8s import (
    K8sAttributes,
    also_evaluated_as,
    from_attributes,
    may_create,
    proxied_object,
    resolve_request,
)
from sidecar.normalise.paths import (
    lexical_path,
    normalise_path,
    system_link_path,
    written_paths,
)
from sidecar.normalise.shell_context import shorten
from sidecar.normalise.urls import ServerPaths, server_paths
from sidecar.request import CheckRequest
from sidecar.subject import (
    FILE_ACTIONS,
    K8S_REQUEST,
    NETWORK_REQUEST,
    PROCESS_EXEC,
    FieldValues,
    Subject,
)

# Checked with fullmatch, before case is folded: "$" would let a trailing newline
# through ("DELETE\n" missed a deny of DELETE), and str.upper() turns some non-ASCII
# letters into ASCII ones ("po\u017ft" into "POST"), which is not what a client sends.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
_METHOD = re.compile(r"[A-Za-z]{1,32}")


class Normalised(NamedTuple):
    """The action, the normalised request as recorded, and the subjects to decide."""

    action: str
    record: dict[str, Any]
    subjects: tuple[Subject, ...]


def _with_agent(fields: dict[str, FieldValues], identity: str) -> dict[str, FieldValues]:
    fields["agent"] = (identity,)
    return fields


def _files(request: CheckRequest, identity: str) -> Normalised:
    if request.path is None:
        raise RequestError(f"is required for {request.action}", "path")
    # A cwd is validated even when unused: a bad one means a confused client.
    cwd = normalise_path(request.cwd, field="cwd") if request.cwd is not None else None
    path = normalise_path(request.path, cwd, field="path")
    record: dict[str, Any] = {"path": path}
    fields = _with_agent({"path": (path,)}, identity)
    subjects = [Subject(request.action, fields)]
    if request.realPath is not None:
        real = normalise_path(request.realPath, cwd, field="realPath")
        record["realPath"] = real
        if real != path:
            subjects.append(
                Subject(request.action, _with_agent({"path": (real,)}, identity), label="realPath")
            )
    # "/proc/self/cwd/../../etc/shadow" is /etc/shadow to the kernel, which follows the
    # link before "..": a deny of the link's tree must see it as written, not only as
    # "/proc/etc/shadow". The cwd is taken as given: it may be such a link itself.
    # Recorded as well (as decodedPath is for a URL): an approver shown only the lexical
    # form would approve "/app/config.yaml" for "/app/cache/../config.yaml", which is
    # elsewhere when /app/cache is a link, and one spelling would redeem the other.
    if ".." in request.path or (request.cwd is not None and ".." in request.cwd):
        written_path = _as_written(request.path, request.cwd)
        if ".." in written_path.split("/"):
            record["writtenPath"] = written_path
    if ".." in request.path or request.realPath is not None or request.cwd is not None:
        for name, given in (("path", request.path), ("realPath", request.realPath)):
            if given is None:
                continue
            for written in written_paths(given, request.cwd, field=name):
                label = f"{name} as written {written}"
                subjects.append(_as_sent(request.action, fields, written, identity, label))
    # "/var/run/../etc/shadow" is /etc/shadow to the kernel (/var/run is a link to /run
    # in every image), lexically /var/etc/shadow: decided as both, the stricter wins, as
    # for a realPath. Without "..", "/var/run/secrets/x" is "/run/secrets/x" by another
    # name: a deny of either must see it, an allow of one spelling is enough.
    linked = system_link_path(request.path, request.cwd)
    if linked is not None and linked.path != path:
        label = f"path through the system's links {linked.path}"
        if linked.elsewhere:
            # Another file: recorded as a realPath is, so an approver sees what opens.
            record["linkedPath"] = linked.path
            linked_fields = _with_agent({"path": (linked.path,)}, identity)
            subjects.append(Subject(request.action, linked_fields, label=label))
        else:
            subjects.append(_as_sent(request.action, fields, linked.path, identity, label))
    return Normalised(request.action, record, tuple(subjects))


def _redirection_through_links(
    action: str, operator: str, target: str, identity: str
) -> list[Subject]:
    """``> /var/run/secrets/x`` is ``/run/secrets/x`` by another name: for the deny and
    approval rules written for that one, a part of the request of its own (a target
    with ".." is the construct dot-dot-path already, so it names the same file)."""
    linked = system_link_path(target)
    if linked is None:
        return []
    return [
        Subject(
            action,
            _with_agent({"path": (linked.path,)}, identity),
            label=f"redirection {operator} {target} through the system's links {linked.path}",
            restrictions_only=True,
            apart=True,
        )
    ]


def _as_written(path: str, cwd: str | None) -> str:
    """``path`` joined to ``cwd`` as both were given, nothing resolved."""
    return path if path.startswith("/") or cwd is None else f"{cwd.rstrip('/')}/{path}"


def _process(request: CheckRequest, identity: str) -> Normalised:
    if (request.argv is None) == (request.commandLine is None):
        raise RequestError("process.exec takes exactly one of argv or commandLine", "argv")
    cwd = request.cwd
    if cwd is not None:
        cwd = normalise_path(cwd, field="cwd")
    analysis = analyse_command(argv=request.argv, command_line=request.commandLine, cwd=cwd)
    constructs = analysis.constructs
    if request.cwd is not None and ".." in request.cwd.split("/"):
        # The process is started in the directory the kernel finds, which resolves ".."
        # after following symlinks: "/workspace/link/.." may be anywhere, though its
        # lexical form is /workspace. As for a program path, it is a construct.
        constructs += (Construct("dot-dot-path", shorten(f"cwd {request.cwd}")),)
    cwd_field: dict[str, FieldValues] = {"cwd": (cwd,)} if cwd is not None else {}
    subjects: list[Subject] = []
    many = len(analysis.commands) + len(analysis.writes) + len(analysis.reads) + len(constructs) > 1
    for position, command in enumerate(analysis.commands, 1):
        label = f"command {position}: {command.label}" if many else command.label
        # A command after `cd`/`pushd`/`env -C` runs elsewhere: it is decided once for
        # every directory it may run in. An unknowable one leaves cwd out, so no rule
        # that needs a cwd can match it (what made it unknowable is itself a construct).
        places = dict.fromkeys(command.cwds or (cwd,))
        for place in places:
            fields = {"command": command.argv[:1], "args": command.argv[1:]}
            if place is not None and place != UNKNOWN_CWD:
                fields["cwd"] = (place,)
            where = f" (in {place})" if len(places) > 1 and place is not None else ""
            subjects.append(
                Subject(
                    PROCESS_EXEC,
                    _with_agent(fields, identity),
                    label=label + where,
                    repeated=command.repeated,
                )
            )
    for target in analysis.writes:
        subjects.append(
            Subject(
                "file.write",
                _with_agent({"path": (target,)}, identity),
                label=f"redirection > {target}",
                repeated=analysis.repeated_writes.get(target, ""),
                count=analysis.write_counts.get(target, 1),
            )
        )
        subjects.extend(_redirection_through_links("file.write", ">", target, identity))
    for target in analysis.reads:
        subjects.append(
            Subject(
                "file.read",
                _with_agent({"path": (target,)}, identity),
                label=f"redirection < {target}",
                repeated=analysis.repeated_reads.get(target, ""),
                count=analysis.read_counts.get(target, 1),
            )
        )
        subjects.extend(_redirection_through_links("file.read", "<", target, identity))
    for construct in constructs:
        fields = {"command": (construct.name,), "args": (), **cwd_field}
        subjects.append(
            Subject(
                PROCESS_EXEC,
                _with_agent(fields, identity),
                label=construct.label,
                constructs=(construct.name,),
            )
        )
    if not analysis.commands and not constructs and subjects:
        # "> /app/out" alone runs no program, yet it is a command line a shell runs: a
        # rule on process.exec as a whole ("process.exec: deny") must decide it too.
        # With no command, only rules without a command or args condition match it.
        fields = dict(cwd_field)
        subjects.append(
            Subject(
                PROCESS_EXEC,
                _with_agent(fields, identity),
                label="a command line of redirections alone",
            )
        )
    if not subjects:
        raise RequestError(
            "contains no command", "commandLine" if request.commandLine is not None else "argv"
        )
    record: dict[str, Any] = {}
    if request.argv is not None:
        record["argv"] = list(request.argv)
    else:
        record["commandLine"] = request.commandLine
    record["commands"] = [list(c.argv) for c in analysis.commands]
    if analysis.writes:
        record["writes"] = list(analysis.writes)
    if analysis.reads:
        record["reads"] = list(analysis.reads)
    if constructs:
        record["constructs"] = [c.name for c in constructs]
    if cwd is not None:
        record["cwd"] = cwd
    return Normalised(PROCESS_EXEC, record, tuple(subjects))


LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
# The kubelet writes every pod's /etc/hosts with "::1 localhost ip6-localhost
# ip6-loopback", so those names reach the loopback without DNS (Debian's does too).
KUBELET_LOOPBACK_NAMES = frozenset({"ip6-localhost", "ip6-loopback"})


def _network(request: CheckRequest, identity: str) -> Normalised:
    method = request.method
    if method is not None:
        if not _METHOD.fullmatch(method):
            raise RequestError("is not an HTTP method", "method")
        method = method.upper()
    record: dict[str, Any] = {}
    forms: ServerPaths | None = None  # how a server may read the URL path besides
    host: str | None
    port: int | None
    scheme: str | None
    if request.url is not None:
        if request.host is not None or request.port is not None or request.scheme is not None:
            raise RequestError("give url alone, or host with port and scheme, not both", "url")
        parsed = parse_url(request.url)
        host, port, scheme = parsed.host, parsed.port, parsed.scheme
        # The path is matched (and recorded) in the form rule paths take: servers such
        # as nginx merge "//", and "/admin/" is the resource a rule "/admin/" (read as
        # "/admin") names. ``url`` keeps the path as the agent sent it.
        path = lexical_path(parsed.path)
        forms = server_paths(parsed.path)
        record["url"] = parsed.url
    elif request.host is not None:
        host = canonical_host(request.host)
        scheme = request.scheme
        if scheme is not None:
            if not _SCHEME.fullmatch(scheme):
                raise RequestError("is not a URL scheme", "scheme")
            scheme = scheme.lower()
        port = (
            request.port if request.port is not None else (default_port(scheme) if scheme else None)
        )
        path = None
    else:
        raise RequestError("network.request needs url or host", "url")
    fields: dict[str, FieldValues] = {"host": host_forms(host)}
    record["host"] = host
    if port is not None:
        fields["port"] = (str(port),)
        record["port"] = port
    if scheme is not None:
        fields["scheme"] = (scheme,)
        record["scheme"] = scheme
    if method is not None:
        fields["method"] = (method,)
        record["method"] = method
    if path is not None:
        fields["path"] = (path,)
        record["path"] = path
    subjects = [Subject(NETWORK_REQUEST, _with_agent(fields, identity))]
    if host == "localhost" or host.endswith(".localhost") or host in KUBELET_LOOPBACK_NAMES:
        # RFC 6761 reserves these names for the loopback, and curl, browsers and
        # systemd-resolved connect them there without DNS, so a deny of 127.0.0.0/8
        # must see them; other resolvers may ask DNS (a cluster's search path too), so
        # an allow of 127.0.0.1 does not cover them: only deny and approval rules see
        # this form. The same for the names of ::1 in every pod's /etc/hosts.
        subjects.append(
            Subject(
                NETWORK_REQUEST,
                _with_agent({**fields, "host": LOOPBACK_ADDRESSES}, identity),
                label=f"{host} as the loopback",
                restrictions_only=True,
            )
        )
    if path is not None and forms is not None:
        if parsed.path != path:
            subjects.append(_as_sent(NETWORK_REQUEST, fields, parsed.path, identity))
        # A server may route the path decoded (nginx decodes %2F) or without ";"
        # parameters (Tomcat, Spring): each such form is decided too, the strictest
        # wins, and the forms that differ from ``path`` are recorded (as realPath is).
        seen = {path}
        for key, label, form in (
            ("decodedPath", "decoded path", forms.decoded),
            ("strippedPath", "path without ;parameters", forms.stripped),
        ):
            if form is None or form == path:
                continue
            record[key] = form
            if form not in seen:
                seen.add(form)
                subjects.append(
                    Subject(NETWORK_REQUEST, {**fields, "path": (form,)}, label=f"{label} {form}")
                )
        # "//admin/" is "/admin/" to a server merging slashes, "/admin%2F" to one that
        # decodes: a deny of "/admin/**" must see that form, which neither the path as
        # sent nor the form rules take ("/admin") is.
        for directory in forms.directories:
            label = f"path read as {directory}"
            subjects.append(_as_sent(NETWORK_REQUEST, fields, directory, identity, label))
    return Normalised(NETWORK_REQUEST, record, tuple(subjects))


def _as_sent(
    action: str, fields: dict[str, FieldValues], path: str, identity: str, label: str = ""
) -> Subject:
    """The path as sent ("/admin/"), or as a server reads it, for the deny and
    require_approval rules written for it: the main subject has the form rule paths
    take ("/admin"), in which a deny of ``startsWith: /admin/`` would not see it. Allow
    rules see the main form only, so a rule ``/*/x`` does not allow "//x" (which a
    server merging slashes reads "/x")."""
    return Subject(
        action,
        _with_agent({**fields, "path": (path,)}, identity),
        label=label or f"path as sent {path}",
        restrictions_only=True,
    )


def _k8s_fields(attributes: K8sAttributes) -> dict[str, FieldValues]:
    if not attributes.is_resource_request:
        # Matched without its trailing "/", like rule paths ("/logs/" is read "/logs");
        # the record keeps the path as sent. "//" and dot segments are already refused.
        return {"verb": (attributes.verb,), "path": (lexical_path(attributes.path),)}
    return {
        "verb": (attributes.verb,),
        "group": (attributes.group,),
        "version": (attributes.version,),
        "resource": (attributes.resource,),
        "namespace": (attributes.namespace,),
        "name": (attributes.name,),
    }


def _k8s(request: CheckRequest, identity: str) -> Normalised:
    body = request.k8s
    if body is None:
        raise RequestError("is required for k8s.request", "k8s")
    raw = body.method is not None or body.path is not None
    attribute_names = ("verb", "group", "version", "resource", "subresource", "namespace", "name")
    given = [n for n in attribute_names if getattr(body, n) is not None]
    if raw:
        if body.method is None or body.path is None or given:
            raise RequestError(
                "give either method and path, or attributes (verb, resource ...)", "k8s"
            )
        attributes = resolve_request(body.method, body.path)
    else:
        if body.verb is None:
            raise RequestError("is required", "k8s.verb")
        attributes = from_attributes(**{n: getattr(body, n) or "" for n in attribute_names})
    fields = _k8s_fields(attributes)
    subjects = [Subject(K8S_REQUEST, _with_agent(fields, identity))]
    if not attributes.is_resource_request and fields["path"] != (attributes.path,):
        subjects.append(_as_sent(K8S_REQUEST, fields, attributes.path, identity))
    for extra in also_evaluated_as(attributes):
        label = f"{attributes.verb} {attributes.resource} (evaluated as {extra.verb})"
        subjects.append(
            Subject(K8S_REQUEST, _with_agent(_k8s_fields(extra), identity), label=label)
        )
    for decided in (attributes, *also_evaluated_as(attributes)):
        proxied = proxied_object(decided)
        if proxied is not None:
            subjects.append(
                Subject(
                    K8S_REQUEST,
                    _with_agent(_k8s_fields(proxied), identity),
                    label=f"{decided.verb} {decided.resource} (proxied to {proxied.name})",
                    restrictions_only=True,
                    apart=True,
                )
            )
    creating = may_create(attributes)
    if creating is not None:
        subjects.append(
            Subject(
                K8S_REQUEST,
                _with_agent(_k8s_fields(creating), identity),
                label=f"{attributes.verb} {attributes.resource} (may create it: create)",
                restrictions_only=True,
                # What it may also do, not another spelling of it: a part of its own,
                # so an approval to create does not lift a deny of the patch.
                apart=True,
            )
        )
    return Normalised(K8S_REQUEST, {"k8s": attributes.record()}, tuple(subjects))


def normalise_request(request: CheckRequest, identity: str = "") -> Normalised:
    """Normalise ``request``. Raises ``RequestError`` for anything ambiguous or invalid."""
    if request.action in FILE_ACTIONS:
        result = _files(request, identity)
    elif request.action == PROCESS_EXEC:
        result = _process(request, identity)
    elif request.action == NETWORK_REQUEST:
        result = _network(request, identity)
    else:
        result = _k8s(request, identity)
    if request.context is not None:
        result.record["context"] = request.context
    if request.approval is not None:
        result.record["approval"] = request.approval
    return result
