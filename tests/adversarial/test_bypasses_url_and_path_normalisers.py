"""Bypasses of the normalisers other than the shell's: URL paths (dot segments and ``;``
parameters behind encoded separators), a request's method and scheme, ``..`` in file
paths and in a ``cwd``, and names and addresses past the baseline's guard rails. Found
in the third pass of the red-team review of 2026-12-05.

* URL paths: a ``..;`` or ``.;`` piece after an encoded separator (``x%5C..;``,
  ``%2F..;``) passed the check for dot segments in disguise, which only knew ``.`` and
  ``..`` there. Tomcat and Spring read ``..;`` as ``..``; the forms decided here read
  ``%5C`` as ``/`` and popped a segment that a server keeping ``\\`` as a character, or
  not merging the ``//`` a decoded ``%2F`` leaves, does not pop:
  ``/admin;x/%5C..;/secret`` is ``/admin/\\../secret`` to such a server and ``/secret``
  in every form the gate decided, so a deny of ``/admin/**`` let it through.
* URL paths: a ``;`` parameter started by an encoded ``%3B`` with an encoded ``\\`` in
  it (``/%3Bx%5Cy/admin/secret``) was not refused like one started by ``;``. A server
  that decodes first and keeps ``\\`` as a character drops ``;x\\y`` whole and routes
  ``/admin/secret``; the gate read ``\\`` as ``/`` and decided ``/y/admin/secret``.
* network.request ``method`` and ``scheme`` were checked with ``re.match`` and a
  ``$``, which also matches before a trailing newline: ``"DELETE\\n"`` passed as a method
  no rule for ``DELETE`` matched (a deny-list of methods or of ``scheme: http`` let it
  through) and was recorded with its newline; and they were case-folded before the
  check, so ``"po\\u017ft"`` (long s) was recorded and decided as ``POST``.
* file paths: ``..`` is resolved lexically, but the kernel resolves it after following
  the link before it. ``/proc/self/cwd/../../etc/shadow`` (or ``../../etc/shadow`` in
  the cwd ``/proc/self/cwd``) is ``/etc/shadow`` to the kernel and ``/proc/etc/shadow``
  to the gate, which neither baseline's ``/proc/.../cwd`` nor its ``/etc/shadow`` deny
  matched: with a broad read allowed, as baseline's header says its guard rails
  survive, it was allowed when the client sent no ``realPath``. The path is now also
  decided as written, ``..`` kept, for deny and require_approval rules.
* process.exec ``cwd``: resolved lexically too, so ``git status`` with ``cwd:
  /workspace/s/..`` matched coding-agent's rules pinned to ``cwd: /workspace``; a tool
  that changes to that directory lands beside the target of ``s``, a symlink a fetched
  branch can check out, where a planted bare repository's config runs code on
  ``git status`` (what the pin is there to prevent). A ``cwd`` with ``..`` is now the
  ``dot-dot-path`` construct, as a program path with ``..`` already was.
* baseline: the EKS Pod Identity agent, which hands out a pod's AWS credentials, also
  listens on ``fd00:ec2::23``, a unique-local address no rule covered (its IPv4
  ``169.254.170.23`` is link-local and was denied).
* baseline: CoreDNS's ``pods insecure`` (the kubeadm and EKS default) answers
  ``a-b-c-d.<namespace>.pod.cluster.local`` with the address written in the name, so
  ``169-254-169-254.default.pod.cluster.local`` is the metadata service and
  ``10-96-0-1.default.pod.cluster.local`` the API server, past the rules that list
  their names.

The URL findings came from a differential search: paths built from tricky pieces, each
read the ways a server may (``;`` parameters dropped before or after decoding, ``\\`` a
separator or not); any read under ``/admin`` must be denied or refused. It is kept below
as a test, with a fixed seed.

Looked at and found holding (no change): k8s.request paths against kube-apiserver's
RequestInfo (subresources, ``/watch/`` and ``/proxy/`` prefixes, ``watch`` values,
deletecollection, namespaces as objects and as a resource, escapes, case, HEAD, other
methods refused; 120,000 generated method and path pairs agreed with RequestInfo's
logic run on Go's own request parsing) and attributes; IPv4 shorthands, IPv6 and mapped
forms, IDNA and fullwidth spellings, trailing dots, userinfo and ports in URLs (110,000
generated URLs agreed with WHATWG's host and port as Node's URL parses them, 60,000 with
its path);
file paths (lexical, with ``realPath`` for the symlinks a path does not spell out, as
documented).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.urls import parse_url
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_file
from tests.adversarial.conftest import load_policy_text
from tests.daemon import Daemon

POLICIES = Path(__file__).resolve().parents[2] / "policies"

DENY_LIST = """
version: 1
rules:
  - {id: admin, action: network.request, path: {glob: "/admin/**"}, decision: deny}
  - {id: rest, action: network.request, decision: allow}
"""


def _url_outcome(policy: CompiledPolicy, url: str) -> str:
    try:
        verdict = evaluate_request(policy, {"action": "network.request", "url": url})
    except RequestError as error:
        assert error.field == "url"
        return "invalid"
    return verdict.decision


# -- URL paths: dot segments after an encoded separator, %3B parameters --------------------


@pytest.mark.parametrize(
    "url",
    [
        # Tomcat's order (drop ";...", then decode): "/admin/\../secret" when "\" stays a
        # character; the gate's forms were "/admin;x/..;/secret" and "/secret".
        "http://a.com/admin;x/%5C..;/secret",
        # Decoded, the "//" before "..;" is kept by a server that does not merge slashes:
        # "/admin//../secret" is "/admin/secret" to it.
        "http://a.com/admin;x/%2F..;/secret",
        # A decoding server drops ";x\..;" whole: "/admin/secret".
        "http://a.com/admin%3Bx%5C..;/secret",
        "http://a.com/admin/x%5C.;/y",
        # Decoded first, the parameter ";x\y" ends at the next "/": "//admin/secret".
        "http://a.com/%3Bx%5Cy/admin/secret",
        "http://a.com/%3bx%5cy/admin/secret",
    ],
)
def test_ambiguous_dot_and_parameter_pieces_are_refused(url: str) -> None:
    deny_list = load_policy_text(DENY_LIST)
    assert _url_outcome(deny_list, url) == "invalid"


@pytest.mark.parametrize(
    ("url", "decision"),
    [
        # Unchanged: a ";" parameter without encoded separators, "%3B" alone, "..;" as a
        # name inside a segment, and an escape next to a plain name.
        ("http://a.com/admin%3Bx/y", "deny"),
        ("http://a.com/admin;x/y", "deny"),
        ("http://a.com/files/a%5Cb", "allow"),
        ("http://a.com/files/a%2F..b", "allow"),
        ("http://a.com/files/x..;y", "allow"),
        ("http://a.com/files/v1%3Bx/status", "allow"),
    ],
)
def test_ordinary_escapes_and_parameters_are_still_decided(url: str, decision: str) -> None:
    assert _url_outcome(load_policy_text(DENY_LIST), url) == decision


# -- baseline: names CoreDNS answers with the address written in them -----------------


@pytest.fixture(scope="module")
def baseline_with_broad_network() -> CompiledPolicy:
    """The shipped baseline after someone added a broad network allow, as its header
    says its guard rails must survive."""
    text = (POLICIES / "baseline.yaml").read_text(encoding="utf-8")
    text += "  - id: broad-network\n    action: network.request\n    decision: allow\n"
    return load_policy_text(text, "baseline-broad.yaml")


def _network(policy: CompiledPolicy, **fields: Any) -> tuple[str, str | None]:
    verdict = evaluate_request(policy, {"action": "network.request", **fields})
    return verdict.decision, verdict.rule


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "http://169-254-169-254.default.pod.cluster.local/latest/meta-data/"},
        {"url": "https://10-96-0-1.default.pod.cluster.local/api/v1/secrets"},
        {"url": "http://169-254-169-254.kube-system.pod.cluster.local./"},
        # Short forms the pod's DNS search list completes (ndots:5): "<ip>.<ns>.pod" is
        # tried as "<ip>.<ns>.pod.cluster.local".
        {"url": "http://169-254-169-254.default.pod/"},
        {"host": "fd00-ec2--254.default.pod.cluster.local", "scheme": "http"},
    ],
)
def test_baseline_denies_names_that_spell_an_address(
    baseline_with_broad_network: CompiledPolicy, fields: dict[str, Any]
) -> None:
    decision, rule = _network(baseline_with_broad_network, **fields)
    assert decision == "deny"
    assert rule == "no-pod-ip-names"


@pytest.mark.parametrize(
    "url",
    [
        "http://[fd00:ec2::23]/v1/credentials",
        "http://[fd00:ec2:0:0:0:0:0:23]/v1/credentials",
        "http://[FD00:EC2::23]:80/",
    ],
)
def test_baseline_denies_the_pod_identity_agent_over_ipv6(
    baseline_with_broad_network: CompiledPolicy, url: str
) -> None:
    assert _network(baseline_with_broad_network, url=url) == ("deny", "no-cloud-metadata")


def test_baseline_pod_names_rule_leaves_services_alone(
    baseline_with_broad_network: CompiledPolicy,
) -> None:
    assert _network(baseline_with_broad_network, url="http://web.shop.svc.cluster.local/") == (
        "allow",
        "broad-network",
    )


def test_shipped_baseline_has_the_pod_names_rule() -> None:
    baseline = load_policy_file(POLICIES / "baseline.yaml")
    verdict = evaluate_request(
        baseline,
        {"action": "network.request", "url": "http://169-254-169-254.default.pod.cluster.local/"},
    )
    assert (verdict.decision, verdict.rule) == ("deny", "no-pod-ip-names")


# -- network.request method and scheme: exactly what a client can send ---------------------

METHOD_DENY_LIST = """
version: 1
rules:
  - {id: no-delete, action: network.request, method: DELETE, decision: deny}
  - {id: no-plain-http, action: network.request, scheme: http, decision: deny}
  - {id: rest, action: network.request, decision: allow}
"""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "https://a.com/x", "method": "DELETE\n"}, "method"),
        ({"url": "https://a.com/x", "method": "DELETE\r\n"}, "method"),
        ({"url": "https://a.com/x", "method": "po\u017ft"}, "method"),  # upper(): POST
        ({"url": "https://a.com/x", "method": "\u0261et"}, "method"),
        ({"host": "a.com", "scheme": "http\n"}, "scheme"),
        ({"host": "a.com", "scheme": "\u212aafka"}, "scheme"),  # Kelvin sign: lower() is k
    ],
)
def test_method_and_scheme_with_a_newline_or_non_ascii_are_refused(
    fields: dict[str, Any], field: str
) -> None:
    policy = load_policy_text(METHOD_DENY_LIST)
    with pytest.raises(RequestError) as error:
        evaluate_request(policy, {"action": "network.request", **fields})
    assert error.value.field == field


@pytest.mark.parametrize(
    ("fields", "rule", "recorded"),
    [
        ({"url": "https://a.com/x", "method": "delete"}, "no-delete", {"method": "DELETE"}),
        ({"host": "a.com", "scheme": "HTTP"}, "no-plain-http", {"scheme": "http", "port": 80}),
    ],
)
def test_method_and_scheme_are_still_case_folded(
    fields: dict[str, Any], rule: str, recorded: dict[str, Any]
) -> None:
    verdict = evaluate_request(
        load_policy_text(METHOD_DENY_LIST), {"action": "network.request", **fields}
    )
    assert (verdict.decision, verdict.rule) == ("deny", rule)
    assert {key: verdict.request[key] for key in recorded} == recorded


# -- file paths: ".." after a magic link ----------------------------------------------------


@pytest.fixture(scope="module")
def baseline_with_broad_read() -> CompiledPolicy:
    """The shipped baseline after someone allowed reading everything "while debugging",
    the case its header says the guard rails hold in."""
    text = (POLICIES / "baseline.yaml").read_text(encoding="utf-8")
    text += (
        '  - id: broad-read\n    action: file.read\n    path: {glob: "/**"}\n    decision: allow\n'
    )
    return load_policy_text(text, "baseline-broad-read.yaml")


@pytest.mark.parametrize(
    "fields",
    [
        {"path": "/proc/self/cwd/../../etc/shadow"},
        {"path": "../../etc/shadow", "cwd": "/proc/self/cwd"},
        # The ".." may be in the cwd alone: the kernel resolves it there just the same.
        {"path": "shadow", "cwd": "/proc/self/cwd/../../etc"},
        {"path": "/tmp/x", "realPath": "shadow", "cwd": "/proc/self/cwd/../../etc"},
        # A ".." before the link is resolved by the kernel as lexically as here: the link
        # is named once the ".." before it are resolved, not with them kept.
        {"path": "/tmp/../proc/self/cwd/../../etc/shadow"},
        {"path": "/tmp/../../proc/self/cwd/../../etc/shadow"},
        {"path": "../proc/self/cwd/../../etc/shadow", "cwd": "/tmp"},
        {"path": "/app/x/../../proc/self/cwd/./../../etc/shadow"},
        {"path": "/proc/1/cwd/../../var/run/secrets/kubernetes.io/serviceaccount/token"},
        {"path": "/proc/self/root/../../etc/shadow"},
        {"path": "/proc/thread-self/cwd/./../../etc/gshadow"},
        # realPath is the client's resolved path: one with ".." is taken as written too.
        {"path": "/tmp/x", "realPath": "/proc/self/cwd/../../etc/shadow"},
    ],
)
def test_dot_dot_after_a_magic_link_is_decided_as_written(
    baseline_with_broad_read: CompiledPolicy, fields: dict[str, Any]
) -> None:
    verdict = evaluate_request(baseline_with_broad_read, {"action": "file.read", **fields})
    assert (verdict.decision, verdict.rule) == ("deny", "no-credential-files")
    # /proc/self/root is also a link the gate knows (to "/"): that form may decide first.
    assert " as written /proc/" in verdict.reason or "system's links /etc/" in verdict.reason
    # The record keeps the lexical form: sent again, it normalises to itself.
    assert ".." not in verdict.request["path"]


@pytest.mark.parametrize(
    ("fields", "decision", "rule"),
    [
        # The form as written only restricts: an allow rule never needs to match it.
        ({"path": "/app/x/../y"}, "allow", "read-app"),
        ({"path": "../y", "cwd": "/app/x"}, "allow", "read-app"),
        # ".." at the root removes nothing, for the kernel either.
        ({"path": "/../../etc/hostname"}, "allow", "broad-read"),
        ({"path": "/tmp/a..b"}, "allow", "broad-read"),
    ],
)
def test_dot_dot_elsewhere_is_decided_as_before(
    baseline_with_broad_read: CompiledPolicy,
    fields: dict[str, Any],
    decision: str,
    rule: str,
) -> None:
    verdict = evaluate_request(baseline_with_broad_read, {"action": "file.read", **fields})
    assert (verdict.decision, verdict.rule) == (decision, rule)


def test_a_path_with_too_many_dot_dots_after_names_is_refused(
    baseline_with_broad_read: CompiledPolicy,
) -> None:
    """Each ``..`` after a name is one more form to decide; no real path needs 33."""
    fine = {"action": "file.read", "path": "/tmp" + "/a/.." * 32 + "/x"}
    assert evaluate_request(baseline_with_broad_read, fine).decision == "allow"
    for field in ("path", "realPath"):
        body = {"action": "file.read", "path": "/tmp/x", field: "/tmp" + "/a/.." * 33 + "/x"}
        with pytest.raises(RequestError) as refused:
            evaluate_request(baseline_with_broad_read, body)
        assert str(refused.value) == (
            f"{field}: has more than 32 '..' segments after a name "
            "(each is decided as the kernel may read it)"
        )
    # ".." after ".." or at the root adds nothing to decide.
    deep = {"action": "file.read", "path": "/tmp/" + "a/" * 40 + "../" * 40 + "x"}
    assert evaluate_request(baseline_with_broad_read, deep).decision == "allow"


# -- process.exec cwd with ".." -----------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"argv": ["git", "status"], "cwd": "/workspace/s/.."},
        {"commandLine": "git status", "cwd": "/workspace/s/.."},
        {"argv": ["git", "status"], "cwd": "/workspace/a/b/../.."},
        {"argv": ["pytest"], "cwd": "/workspace/s/../tests"},
    ],
)
def test_a_cwd_with_dot_dot_is_a_construct(
    coding_agent: CompiledPolicy, fields: dict[str, Any]
) -> None:
    verdict = evaluate_request(coding_agent, {"action": "process.exec", **fields})
    assert verdict.decision == "deny"
    assert "dot-dot-path" in verdict.request["constructs"]
    assert fields["cwd"] in verdict.reason


@pytest.mark.parametrize(
    "cwd",
    ["/workspace", "/workspace/", "/workspace/.", "//workspace", "/workspace//./"],
)
def test_a_cwd_without_dot_dot_is_decided_as_before(coding_agent: CompiledPolicy, cwd: str) -> None:
    verdict = evaluate_request(
        coding_agent, {"action": "process.exec", "argv": ["git", "status"], "cwd": cwd}
    )
    assert (verdict.decision, verdict.rule) == ("allow", "git-status")
    assert "constructs" not in verdict.request


# -- URL paths: a differential check against simple models of servers -----------------------

_PIECES = (
    *("admin", "a", "/", "//", ".", "..", "..;", ".;", ".;x", "..;x", "%2e", "%2E%2e"),
    *("%2f", "%2F", "%5c", "%5C", "%5C..;", "%2F.;", ";", ";x", ";a=b", "%3b", "%3B"),
    *("%3B..", "..%3B", "%61dmin", "ad%6din", "%25", "%2541", "x", "admin;", "%20", "~"),
)


def _dot_resolved(segments: list[str]) -> list[str]:
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return out


def _routed(path: str, *, strip_first: bool, decode: bool, backslash_separates: bool) -> str:
    """A server's reading: ';...' dropped before or after decoding (or not dropped),
    '\\' a separator or a character, '//' merged, dot segments resolved."""
    if backslash_separates:
        path = path.replace("%5C", "/").replace("%5c", "/")
    if strip_first:
        path = "/".join(segment.split(";")[0] for segment in path.split("/"))
    if decode:
        path = unquote(path, errors="surrogateescape")
        if not strip_first:
            path = "/".join(segment.split(";")[0] for segment in path.split("/"))
    if backslash_separates:
        path = path.replace("\\", "/")
    routed = "/" + "/".join(_dot_resolved([s for s in path.split("/") if s]))
    return routed + "/" if path.endswith("/") and routed != "/" else routed


def test_no_server_reading_of_a_url_path_dodges_a_deny() -> None:
    """Paths made of the pieces that tricked the forms decided before: whenever one of
    the server readings above routes one under /admin, the gate denies or refuses it."""
    deny_list = load_policy_text(
        DENY_LIST + "  - {id: exact, action: network.request, path: /admin, decision: deny}\n"
    )
    chance = random.Random(20261205)
    readings = [
        {"strip_first": first, "decode": True, "backslash_separates": separates}
        for first in (True, False)
        for separates in (True, False)
    ]
    dodged: list[str] = []
    for _ in range(20000):
        path = "/" + "".join(chance.choice(_PIECES) for _ in range(chance.randint(1, 6)))
        try:
            parsed = parse_url("http://a.com" + path)
        except RequestError:
            continue  # refused: nothing reaches a server
        routes = {_routed(parsed.path, **reading) for reading in readings}
        if not any(r == "/admin" or r.startswith("/admin/") for r in routes):
            continue
        if _url_outcome(deny_list, "http://a.com" + path) == "allow":
            dodged.append(path)
    assert dodged == []


# -- a sample of each through a real gate ----------------------------------------------------


def test_a_sample_through_the_real_gate(tmp_path: Path) -> None:
    """The shipped baseline with a broad allow for reads and the network, and coding-agent,
    served by a real gate: the answers and the audit records."""
    text = (POLICIES / "baseline.yaml").read_text(encoding="utf-8")
    text += '  - {id: broad-read, action: file.read, path: {glob: "/**"}, decision: allow}\n'
    text += "  - {id: broad-network, action: network.request, decision: allow}\n"
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    daemon = Daemon(policy, tmp_path / "audit").start()
    try:
        shadow = daemon.check({"action": "file.read", "path": "/proc/self/cwd/../../etc/shadow"})
        pod_name = daemon.check(
            {"action": "network.request", "url": "http://169-254-169-254.default.pod/"}
        )
        newline = daemon.check(
            {"action": "network.request", "url": "https://a.com/", "method": "DELETE\n"}
        )
        encoded = daemon.check(
            {"action": "network.request", "url": "http://a.com/admin;x/%5C..;/secret"}
        )
    finally:
        daemon.stop()
    assert shadow.status_code == 200 and pod_name.status_code == 200
    assert shadow.json()["allowed"] is False and pod_name.json()["allowed"] is False
    assert "path as written /proc/self/cwd/../../etc/shadow" in shadow.json()["reason"]
    assert pod_name.json()["rule"] == "no-pod-ip-names"
    for refused, field in ((newline, "method"), (encoded, "url")):
        assert refused.status_code == 400
        assert refused.json()["allowed"] is False and field in refused.text
    decided = [r for r in daemon.records() if r.get("type") == "decision"]
    assert [(r["decision"], r["rule"]) for r in decided] == [
        ("deny", "no-credential-files"),
        ("deny", "no-pod-ip-names"),
    ]
    assert decided[0]["request"]["path"] == "/proc/etc/shadow"
