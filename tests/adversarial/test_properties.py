"""Properties of normalisation and evaluation that every bypass family relies on.

Hypothesis generates the inputs; each property is one a bypass would have to break:

* normalisation is idempotent: what the gate records, sent again, normalises to itself
  (paths, URLs, hosts given as fields, Kubernetes requests, commands). Host text alone
  is covered by ``tests/test_hosts.py``;
* lexical path resolution agrees with POSIX ``normpath`` and, on a real tree without
  symlinks, with the kernel;
* a path that normalises outside a glob's root never matches that glob;
* adding allow rules never overrides a matching deny (nor a require_approval), adding
  deny rules never loosens anything, and rule order never changes a decision;
* ``context`` and ``dryRun`` never change a decision;
* a request with unknown extra fields, or fields of another action, is never allowed,
  even by a policy that allows everything.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sidecar.engine import Verdict, evaluate_request
from sidecar.errors import RequestError
from sidecar.evaluator import STRICTNESS
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.paths import normalise_path
from sidecar.normalise.shell_wrappers import BUILTIN_WRAPPERS
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import ACTION_REQUEST_FIELDS, COMMON_FIELDS, CheckRequest, K8sRequestBody

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

_SEGMENTS = ["", ".", "..", "...", "app", "data", "secrets", "etc", "x", ".x", "a b", "é", "~"]
_SEGMENT = st.sampled_from(_SEGMENTS) | st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
    max_size=6,
)
_RELATIVE = st.lists(_SEGMENT, max_size=10).map("/".join)
_ABSOLUTE = _RELATIVE.map(lambda p: "/" + p)
_PATHS = _ABSOLUTE | _RELATIVE | st.sampled_from(["/", "//", "///x", ".", "..", "./", "x/"])
_CWDS = st.none() | _ABSOLUTE


def _normalise_or_none(path: str, cwd: str | None = None) -> str | None:
    try:
        return normalise_path(path, cwd)
    except RequestError:
        return None


# ------------------------------------------------------------------ paths


@FAST
@given(_PATHS, _CWDS)
def test_path_normalisation_is_idempotent_and_canonical(path: str, cwd: str | None) -> None:
    once = _normalise_or_none(path, cwd)
    assume(once is not None)
    assert once is not None
    assert normalise_path(once) == once
    assert normalise_path(once, "/somewhere/else") == once  # absolute: cwd plays no part
    assert once.startswith("/")
    assert once == "/" or not once.endswith("/")
    segments = once.split("/")[1:]
    assert once == "/" or all(s not in ("", ".", "..") for s in segments)


@FAST
@given(_PATHS, _CWDS)
def test_path_normalisation_agrees_with_posix_normpath(path: str, cwd: str | None) -> None:
    once = _normalise_or_none(path, cwd)
    assume(once is not None)
    joined = path if path.startswith("/") or cwd is None else f"{cwd}/{path}"
    # POSIX leaves a leading "//" implementation-defined; Linux reads it as "/".
    assert once == posixpath.normpath(re.sub("^/+", "/", joined))


def test_lexical_resolution_matches_the_kernel_without_symlinks(tmp_path: Path) -> None:
    # On a real tree with no symlinks, every path through existing directories resolves
    # the same lexically and in the kernel: the gate's model is exact there.
    root = Path(os.path.realpath(tmp_path))
    names = ["a", "b", "c"]
    for first in names:
        for second in names:
            (root / first / second).mkdir(parents=True)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from([*names, ".", "..", ""]), max_size=12))
    def check(steps: list[str]) -> None:
        # Keep to existing directories: at most two levels below root, never above it.
        depth, kept = 0, []
        for step in steps:
            if step == ".." and depth == 0:
                continue
            if step in names and depth == 2:
                continue
            depth += 1 if step in names else -1 if step == ".." else 0
            kept.append(step)
        path = str(root) + "/" + "/".join(kept)
        assert normalise_path(path) == os.path.realpath(path)

    check()


# ------------------------------------------------------------------ globs contain their root

ROOTS = ["/app/data", "/app/data/secrets", "/etc", "/x"]


@pytest.fixture(scope="module")
def glob_policies() -> dict[str, CompiledPolicy]:
    policies = {}
    for root in ROOTS:
        text = {
            "version": 1,
            "rules": [
                {
                    "id": "root",
                    "action": "file.*",
                    "path": {"glob": f"{root}/**"},
                    "decision": "allow",
                },
                {
                    "id": "wild",
                    "action": "file.*",
                    "path": {"glob": "/app/*/public/**"},
                    "decision": "allow",
                },
            ],
        }
        policies[root] = load_policy_bytes(yaml.safe_dump(text).encode(), f"glob-{root}")
    return policies


@FAST
@given(st.sampled_from(ROOTS), _PATHS, _CWDS, st.booleans())
def test_a_path_outside_a_globs_root_never_matches_it(
    glob_policies: dict[str, CompiledPolicy], root: str, path: str, cwd: str | None, real: bool
) -> None:
    body: dict[str, Any] = {"action": "file.read", "path": path}
    if cwd is not None:
        body["cwd"] = cwd
    if real:
        body["realPath"] = "/app/data/x"
    try:
        verdict = evaluate_request(glob_policies[root], body)
    except RequestError:
        return

    def matches(path: str) -> bool:
        segments = path.split("/")
        inside_wild = len(segments) >= 5 and segments[1] == "app" and segments[3] == "public"
        return path.startswith(root + "/") or inside_wild

    expected = matches(verdict.request["path"]) and (not real or matches("/app/data/x"))
    assert verdict.decision == ("allow" if expected else "deny")


_LITERAL_SEGMENTS = st.sampled_from(["app", "data", "etc", "x", "", ".", ".."])
_WILD_SEGMENTS = st.sampled_from(["*", "**", "?", "x*", "*x", "[ad]*", "[!x]", "d?ta", "app"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_LITERAL_SEGMENTS, max_size=4),
    st.lists(_WILD_SEGMENTS, min_size=1, max_size=3),
    st.lists(_PATHS, min_size=1, max_size=8),
)
def test_no_glob_matches_outside_its_literal_root(
    literal: list[str], wild: list[str], paths: list[str]
) -> None:
    # Whatever the wildcards, a path glob only matches below the directory spelt out
    # before its first wildcard (once both are normalised).
    pattern = "/" + "/".join([*literal, *wild])
    root = normalise_path("/" + "/".join(literal))
    document = {
        "version": 1,
        "rules": [
            {"id": "g", "action": "file.read", "path": {"glob": pattern}, "decision": "allow"}
        ],
    }
    policy = load_policy_bytes(yaml.safe_dump(document).encode(), "glob.yaml")
    for path in paths:
        try:
            verdict = evaluate_request(policy, {"action": "file.read", "path": path, "cwd": "/app"})
        except RequestError:
            continue
        if verdict.decision == "allow":
            normalised = verdict.request["path"]
            assert normalised.startswith(root.rstrip("/") + "/"), (pattern, path)


# ------------------------------------------------------------------ policies: monotonicity

_FILE_PATHS = ["/app/data/x", "/app/data/secrets/k", "/etc/shadow", "/etc/x/../passwd", "/tmp/y"]
_COMMAND_LINES = [
    "git status",
    "git push --force",
    "rm -rf /",
    "ls && rm x",
    "/usr/bin/git status",
    "./git status",
    "echo x > /etc/passwd",
    "bash -c 'ls; git status'",
    "ls $(whoami)",
    "eval ls",
]
_URLS = [
    "https://api.openai.com/v1/x",
    "http://127.0.0.1/",
    "http://0x7f.1/",
    "http://[::ffff:169.254.169.254]/",
    "https://example.com/admin",
    "https://evil.example.com.attacker.net/",
]
_K8S = [
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods"},
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/exec?command=sh"},
    {"method": "DELETE", "path": "/apis/apps/v1/namespaces/prod/deployments/web"},
    {"method": "GET", "path": "/api/v1/namespaces/kube-system/secrets/db"},
    {"method": "GET", "path": "/healthz"},
]

_REQUESTS = st.one_of(
    st.builds(
        lambda a, p: {"action": a, "path": p},
        st.sampled_from(["file.read", "file.write", "file.delete"]),
        st.sampled_from(_FILE_PATHS),
    ),
    st.sampled_from(_COMMAND_LINES).map(
        lambda c: {"action": "process.exec", "commandLine": c, "cwd": "/workspace"}
    ),
    st.sampled_from(_URLS).map(lambda u: {"action": "network.request", "url": u}),
    st.sampled_from(_K8S).map(lambda k: {"action": "k8s.request", "k8s": k}),
)

_MATCHERS: dict[str, list[Any]] = {
    "file": [
        {"path": {"glob": "/app/**"}},
        {"path": {"glob": "/etc/**"}},
        {"path": "/etc/shadow"},
        {"path": {"startsWith": "/app/data/"}},
        {"path": {"regex": ".*secret.*"}},
        {"path": {"not": {"glob": "/app/**"}}},
        {"path": {"glob": "**"}},
        {},
    ],
    "process.exec": [
        {"command": "git"},
        {"command": ["rm", "ls"]},
        {"command": {"glob": "*"}},
        {"command": "git", "args": {"prefix": ["push"]}},
        {"args": "--force"},
        {"command": "eval"},
        {"command": "command-substitution"},
        {"command": "/workspace/git"},
        {},
    ],
    "network.request": [
        {"host": {"cidr": ["127.0.0.0/8", "169.254.0.0/16"]}},
        {"host": {"in": ["api.openai.com", "example.com"]}},
        {"host": {"endsWith": ".example.com"}},
        {"host": {"glob": "**"}},
        {"host": {"not": {"cidr": "127.0.0.0/8"}}},
        {"scheme": "https"},
        {"path": {"glob": "/admin/**"}},
        {},
    ],
    "k8s.request": [
        {"verb": ["get", "list", "watch"]},
        {"verb": "create", "resource": "pods/exec"},
        {"resource": "secrets"},
        {"namespace": "prod"},
        {"verb": "get", "path": "/healthz"},
        {},
    ],
}
_ACTIONS_OF = {
    "file": ["file.read", "file.write", "file.delete", "file.*"],
    "process.exec": ["process.exec"],
    "network.request": ["network.request"],
    "k8s.request": ["k8s.request"],
}


@st.composite
def _rule(draw: st.DrawFn, decision: str | None = None) -> dict[str, Any]:
    family = draw(st.sampled_from(sorted(_MATCHERS)))
    rule: dict[str, Any] = {
        "action": draw(st.sampled_from(_ACTIONS_OF[family])),
        "decision": decision or draw(st.sampled_from(["allow", "deny", "require_approval"])),
    }
    rule.update(draw(st.sampled_from(_MATCHERS[family])))
    return rule


def _policy(rules: list[dict[str, Any]], default: str) -> CompiledPolicy:
    document = {"version": 1, "defaultAction": default, "rules": rules}
    return load_policy_bytes(yaml.safe_dump(document).encode(), "generated.yaml")


def _named(rules: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", **rule} for i, rule in enumerate(rules)]


def _verdicts(policy: CompiledPolicy, requests: list[dict[str, Any]]) -> list[Verdict]:
    return [evaluate_request(policy, request) for request in requests]


def _insert(base: list[Any], extra: list[Any], positions: list[int]) -> list[Any]:
    merged = list(base)
    for rule, position in zip(extra, positions, strict=False):
        merged.insert(position % (len(merged) + 1), rule)
    return merged


_POLICY_CASE = st.tuples(
    st.lists(_rule(), max_size=8),
    st.lists(st.integers(0, 100), min_size=6, max_size=6),
    st.sampled_from(["deny", "allow"]),
    st.lists(_REQUESTS, min_size=1, max_size=6),
)


def _before_and_after(
    case: tuple[list[dict[str, Any]], list[int], str, list[dict[str, Any]]],
    extra: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], Any, Any]]:
    """Each request with its verdict under the base policy and with ``extra`` inserted."""
    base_rules, positions, default, requests = case
    base = _named(base_rules, "base")
    before = _verdicts(_policy(base, default), requests)
    after = _verdicts(_policy(_insert(base, _named(extra, "extra"), positions), default), requests)
    return list(zip(requests, before, after, strict=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_POLICY_CASE, st.lists(_rule("allow"), min_size=1, max_size=6))
def test_adding_allow_rules_never_overrides_a_deny(
    case: tuple[list[dict[str, Any]], list[int], str, list[dict[str, Any]]],
    extra: list[dict[str, Any]],
) -> None:
    for request, old, new in _before_and_after(case, extra):
        assert STRICTNESS[new.decision] <= STRICTNESS[old.decision], request
        if old.rule is not None and old.decision in ("deny", "require_approval"):
            assert (new.decision, new.rule) == (old.decision, old.rule), request
            assert new.allowed is False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_POLICY_CASE, st.lists(_rule("deny"), min_size=1, max_size=6))
def test_adding_deny_rules_never_loosens_a_decision(
    case: tuple[list[dict[str, Any]], list[int], str, list[dict[str, Any]]],
    extra: list[dict[str, Any]],
) -> None:
    for request, old, new in _before_and_after(case, extra):
        assert STRICTNESS[new.decision] >= STRICTNESS[old.decision], request


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_POLICY_CASE, st.randoms(use_true_random=False))
def test_rule_order_never_changes_a_decision(
    case: tuple[list[dict[str, Any]], list[int], str, list[dict[str, Any]]], rng: Any
) -> None:
    base_rules, _, default, requests = case
    rules = _named(base_rules, "r")
    shuffled = list(rules)
    rng.shuffle(shuffled)
    before = _verdicts(_policy(rules, default), requests)
    after = _verdicts(_policy(shuffled, default), requests)
    for request, old, new in zip(requests, before, after, strict=True):
        assert new.decision == old.decision, request


_CONTEXTS = st.dictionaries(
    st.sampled_from(["task", "path", "host", "command", "action", "allowed", "decision", "rule"]),
    st.sampled_from(["/app/data/x", "allow", True, "example.com", "git", "file.read", None]),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_POLICY_CASE, _CONTEXTS, st.booleans())
def test_context_and_dry_run_never_change_a_decision(
    case: tuple[list[dict[str, Any]], list[int], str, list[dict[str, Any]]],
    context: dict[str, Any],
    dry_run: bool,
) -> None:
    # context is recorded, never matched: "allowed": true in it is just text.
    base_rules, _, default, requests = case
    policy = _policy(_named(base_rules, "r"), default)
    for request in requests:
        plain = evaluate_request(policy, request)
        decorated = evaluate_request(policy, {**request, "context": context, "dryRun": dry_run})
        assert (decorated.decision, decorated.rule) == (plain.decision, plain.rule)
        assert decorated.request == {**plain.request, "context": context}


# ------------------------------------------------------------------ unknown fields

ALLOW_EVERYTHING = """
version: 1
defaultAction: allow
rules:
  - {action: "*", decision: allow}
  - {action: process.exec, command: [eval, command-substitution, parameter-expansion], decision: allow}
"""

KNOWN_FIELDS = frozenset(CheckRequest.model_fields)
K8S_FIELDS = frozenset(K8sRequestBody.model_fields)

VALID_BODIES = [
    {"action": "file.read", "path": "/app/data/x"},
    {"action": "file.write", "path": "x", "cwd": "/app", "realPath": "/app/x"},
    {"action": "file.delete", "path": "/tmp/x", "dryRun": True},
    {"action": "process.exec", "argv": ["git", "status"]},
    {"action": "process.exec", "commandLine": "ls && git status", "cwd": "/w"},
    {"action": "network.request", "url": "https://example.com/x", "method": "GET"},
    {"action": "network.request", "host": "example.com", "port": 443, "scheme": "https"},
    {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/namespaces/a/pods"}},
    {"action": "k8s.request", "k8s": {"verb": "get", "resource": "pods", "namespace": "a"}},
    {"action": "file.read", "path": "/x", "context": {"task": "t"}, "approval": "apr_1"},
]

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_UNKNOWN_KEY = st.one_of(
    st.text(max_size=12),
    st.sampled_from(sorted(KNOWN_FIELDS)).map(str.upper),
    st.sampled_from(sorted(KNOWN_FIELDS)).map(lambda k: k + " "),
    st.sampled_from(sorted(KNOWN_FIELDS)).map(lambda k: k[:1].upper() + k[1:]),
    st.sampled_from(["allowed", "decision", "rule", "override", "admin", "__proto__", "Action"]),
)


@pytest.fixture(scope="module")
def allow_everything() -> CompiledPolicy:
    return load_policy_bytes(ALLOW_EVERYTHING.encode(), "allow-everything.yaml")


def test_the_valid_bodies_are_allowed(allow_everything: CompiledPolicy) -> None:
    for body in VALID_BODIES:
        assert evaluate_request(allow_everything, body).allowed, body


@FAST
@given(st.sampled_from(VALID_BODIES), _UNKNOWN_KEY, _JSON, st.booleans())
def test_unknown_fields_are_never_allowed(
    allow_everything: CompiledPolicy, body: dict[str, Any], key: str, value: Any, nested: bool
) -> None:
    if nested and "k8s" in body:
        assume(key not in K8S_FIELDS)
        extended = {**body, "k8s": {**body["k8s"], key: value}}
    else:
        assume(key not in KNOWN_FIELDS)
        extended = {**body, key: value}
    with pytest.raises(RequestError):
        evaluate_request(allow_everything, extended)


def _example_value(field: str) -> Any:
    values = {"argv": ["ls"], "port": 80, "dryRun": True, "k8s": {"verb": "get"}, "context": {}}
    return values.get(field, "/x")


@pytest.mark.parametrize("body", VALID_BODIES)
def test_fields_of_another_action_are_never_allowed(
    allow_everything: CompiledPolicy, body: dict[str, Any]
) -> None:
    own = ACTION_REQUEST_FIELDS[body["action"]] | COMMON_FIELDS
    foreign = sorted(KNOWN_FIELDS - own)
    assert foreign
    for field in foreign:
        with pytest.raises(RequestError) as caught:
            evaluate_request(allow_everything, {**body, field: _example_value(field)})
        assert caught.value.field == field


# ------------------------------------------------------------------ records normalise to themselves

_URL_HOSTS = [
    "example.com",
    "EXAMPLE.com.",
    "b\u00fccher.de",
    "0x7f.1",
    "[::ffff:1.2.3.4]",
    "2130706433",
]
_URL_PATHS = [
    "",
    "/",
    "/a/../b",
    "/a/./b/",
    "/%7euser/x",
    "/a%2fb",
    "/x?q=1&r=%41",
    "/%E2%82%AC",
    "/a;v=1/b%20c/",
    "/a%3Bb",
]


@FAST
@given(
    st.sampled_from(["http", "https", "ws", "wss", "HTTP"]),
    st.sampled_from(["", "user@", "u:p@"]),
    st.sampled_from(_URL_HOSTS),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.sampled_from(_URL_PATHS),
    st.sampled_from([None, "get", "POST"]),
)
def test_a_recorded_network_request_normalises_to_itself(
    allow_everything: CompiledPolicy,
    scheme: str,
    userinfo: str,
    host: str,
    port: str,
    path: str,
    method: str | None,
) -> None:
    body: dict[str, Any] = {
        "action": "network.request",
        "url": f"{scheme}://{userinfo}{host}{port}{path}",
    }
    if method:
        body["method"] = method
    try:
        first = evaluate_request(allow_everything, body).request
    except RequestError:
        return
    again: dict[str, Any] = {"action": "network.request", "url": first["url"]}
    if "method" in first:
        again["method"] = first["method"]
    assert evaluate_request(allow_everything, again).request == first
    as_fields = {
        "action": "network.request",
        "host": first["host"],
        "port": first["port"],
        "scheme": first["scheme"],
    }
    second = evaluate_request(allow_everything, as_fields).request
    assert (second["host"], second["port"], second["scheme"]) == (
        first["host"],
        first["port"],
        first["scheme"],
    )


@FAST
@given(_PATHS, _CWDS, st.none() | _PATHS)
def test_a_recorded_file_request_normalises_to_itself(
    allow_everything: CompiledPolicy, path: str, cwd: str | None, real: str | None
) -> None:
    body: dict[str, Any] = {"action": "file.write", "path": path}
    if cwd is not None:
        body["cwd"] = cwd
    if real is not None:
        body["realPath"] = real
    try:
        first = evaluate_request(allow_everything, body).request
    except RequestError:
        return
    # writtenPath records how the path was written (with its ".."), beside the form
    # rules match; the request without it is the same request in that form.
    written = first.pop("writtenPath", None)
    joined = path if path.startswith("/") or cwd is None else f"{cwd}/{path}"
    assert (written is not None) == (".." in joined.split("/"))
    assert evaluate_request(allow_everything, {"action": "file.write", **first}).request == first


_K8S_SEGMENTS = [
    *("api", "apis", "v1", "apps", "namespaces", "ns", "pods", "web", "exec", "log", "status"),
    *("watch", "proxy", "secrets", "finalize", "deployments", "scale", "healthz", "x%2Dy"),
]
_K8S_PATHS = st.one_of(
    st.lists(st.sampled_from(_K8S_SEGMENTS), min_size=1, max_size=8).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(["/api/v1", "/apis/apps/v1", "/api/v1/watch", "/api/v1/proxy"]),
            st.sampled_from(["", "/namespaces/apps", "/namespaces/kube-system"]),
            st.sampled_from(["/pods", "/secrets", "/deployments", "/namespaces", "/nodes"]),
            st.sampled_from(["", "/web", "/x%2Dy"]),
            st.sampled_from(["", "/exec", "/log", "/status", "/scale", "/proxy", "/finalize"]),
        ),
    ),
)


@FAST
@given(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    _K8S_PATHS,
    st.sampled_from(["", "?watch=1", "?fieldSelector=metadata.name%3Dweb", "?command=sh"]),
)
def test_a_recorded_k8s_request_normalises_to_itself(
    allow_everything: CompiledPolicy, method: str, path: str, query: str
) -> None:
    body = {"action": "k8s.request", "k8s": {"method": method, "path": path + query}}
    try:
        first = evaluate_request(allow_everything, body)
    except RequestError:
        return
    recorded = first.request["k8s"]
    if "path" in recorded:
        again = {"method": recorded["verb"].upper(), "path": recorded["path"]}
    else:
        again = {key: value for key, value in recorded.items() if value}
    second = evaluate_request(allow_everything, {"action": "k8s.request", "k8s": again})
    assert second.request["k8s"] == recorded
    assert [d.subject.fields for d in second.decisions] == [
        d.subject.fields for d in first.decisions
    ]


_WORDS = st.sampled_from(
    [
        *("git", "status", "rm", "-rf", "/", "ls", "./x", "../bin/tool", "/bin/rm", "sudo"),
        *("env", "A=1", "PATH=/tmp", "bash", "-c", "'ls; rm x'", "timeout", "5", "nice"),
        *("xargs", '"a b"', "$x", "$(ls)", "*", "~", "{a,b}", "> /tmp/o", "< /etc/x", "2>&1"),
        *(">> o", ";", "&&", "||", "|", "&", "\n", "cd /etc", "cd ..", "(", ")", "{", "}"),
        *("if", "then", "fi", "eval", "find", "-exec", "{}", "\\;", "sh", "'rm -rf /'"),
        *("busybox", "command"),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, min_size=1, max_size=12).map(" ".join))
def test_every_reported_command_analyses_to_itself(command_line: str) -> None:
    try:
        analysis = analyse_command(command_line=command_line, cwd="/workspace")
    except RequestError:
        return
    unknown_cwd = any(c.name == "unknown-cwd" for c in analysis.constructs)
    for command in analysis.commands:
        program = command.argv[0]
        if "/" in program and not program.startswith("/"):
            # Only where the working directory is unknowable, and then never alone.
            assert unknown_cwd
            continue
        assert "/" not in program or normalise_path(program) == program
        if program in {*BUILTIN_WRAPPERS, "command", "time"}:
            # Under sudo, env ... "command git" runs the program "command"; as argv it is
            # read as the shell builtin again and stripped to "git" (or, alone, refused).
            continue
        try:
            again = analyse_command(argv=list(command.argv), cwd="/workspace")
        except RequestError:
            continue  # as argv, "$x" is literal text: `eval } $x` no longer parses (400)
        if command.argv in [c.argv for c in again.commands]:
            continue
        # A shell whose script is an expansion (`bash -exec $x`) is reported whole; as
        # argv that script is literal text which the shell expands itself, so it is
        # analysed as a command of its own. Both ways the expansion must be reported as
        # a dynamic command (denied unless a rule allows it by name).
        assert "dynamic-command" in {c.name for c in analysis.constructs}, command.argv
        assert "dynamic-command" in {c.name for c in again.constructs}, command.argv
    for target in (*analysis.writes, *analysis.reads):
        assert normalise_path(target) == target
