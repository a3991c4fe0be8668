"""Rule values are brought to the canonical form requests are matched in (docs/policy.md,
"Canonical forms"), and a value of the wrong type is an error naming the rule and key.

Mutation testing found each of these unpinned: a rule ``method: post``, ``verb: DELETE``,
``scheme: HTTPS``, ``host: API.Example.COM.`` or ``host: '127.1'`` could have stopped
matching, or ``args: [-n, 1]`` loaded, without a test failing.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import PolicyError, load_policy_bytes


def _load(rule: str) -> CompiledPolicy:
    return load_policy_bytes(f"version: 1\nrules:\n  - {rule}\n".encode(), "values.yaml")


@pytest.mark.parametrize(
    ("rule", "body"),
    [
        (
            "{id: r, action: network.request, decision: allow, method: post, scheme: HTTPS,"
            " host: API.Example.COM., port: '0443'}",
            {"action": "network.request", "url": "https://api.example.com/x", "method": "POST"},
        ),
        (
            "{id: r, action: k8s.request, decision: allow, verb: DELETE, resource: pods}",
            {
                "action": "k8s.request",
                "k8s": {"verb": "delete", "version": "v1", "resource": "pods", "name": "p"},
            },
        ),
        (
            "{id: r, action: network.request, decision: allow, host: '127.1'}",
            {"action": "network.request", "host": "127.0.0.1"},
        ),
        (
            "{id: r, action: network.request, decision: allow, host: '[2001:DB8::1]'}",
            {"action": "network.request", "host": "2001:db8:0::1"},
        ),
        (
            "{id: r, action: network.request, decision: allow, host: {in: [Bücher.de]}}",
            {"action": "network.request", "host": "xn--bcher-kva.de"},
        ),
    ],
)
def test_rule_values_match_in_canonical_form(rule: str, body: dict[str, Any]) -> None:
    verdict = evaluate_request(_load(rule), body)
    assert (verdict.decision, verdict.rule) == ("allow", "r")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{action: file.read, decision: allow, path: 5}",
            "values.yaml: rules[0]: path: equals: 5 must be a string",
        ),
        (
            "{action: process.exec, decision: allow, command: git, args: [-n, 1]}",
            "values.yaml: rules[0]: args: in: 1 must be a string",
        ),
        (
            "{action: process.exec, decision: allow, command: {in: [git, 5]}}",
            "values.yaml: rules[0]: command: in: 5 must be a string",
        ),
        (
            "{action: network.request, decision: allow, port: 0}",
            "values.yaml: rules[0]: port: equals: '0' is not a port number 1-65535",
        ),
        (
            "{action: network.request, decision: allow, port: https}",
            "values.yaml: rules[0]: port: equals: 'https' is not a port number 1-65535",
        ),
        (
            "{action: network.request, decision: allow, host: 'a..com'}",
            "values.yaml: rules[0]: host: equals: 'a..com' is not a valid host: must not have "
            "an empty label ('..' or a leading '.')",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_an_error(rule: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(rule)
    assert str(caught.value) == message


def test_explain_quotes_list_operands_as_json() -> None:
    hosts = _load("{id: h, action: network.request, decision: allow, host: [a.com, b.com]}")
    verdict = evaluate_request(
        hosts, {"action": "network.request", "url": "https://c.com/"}, explain=True
    )
    assert (
        '  h [allow]: no match: host "c.com" does not match in ["a.com", "b.com"]' in verdict.trace
    )
    git = _load(
        "{id: g, action: process.exec, decision: allow, command: git, args: {prefix: [status, -s]}}"
    )
    verdict = evaluate_request(
        git, {"action": "process.exec", "argv": ["git", "push"]}, explain=True
    )
    assert (
        '  g [allow]: no match: args "push" does not match prefix ["status", "-s"]' in verdict.trace
    )


@pytest.mark.parametrize("port", [1, 65535])
def test_the_ends_of_the_port_range_load_and_match(port: int) -> None:
    policy = _load(f"{{id: r, action: network.request, decision: allow, port: {port}}}")
    verdict = evaluate_request(policy, {"action": "network.request", "host": "a.com", "port": port})
    assert (verdict.decision, verdict.rule) == ("allow", "r")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{action: network.request, decision: allow, port: 65536}",
            "values.yaml: rules[0]: port: equals: '65536' is not a port number 1-65535",
        ),
        (
            "{action: file.read, decision: allow, path: etc/passwd}",
            "values.yaml: rules[0]: path: equals: 'etc/passwd' must be an absolute path",
        ),
        (
            "{action: process.exec, decision: allow, command: bin/git}",
            "values.yaml: rules[0]: command: equals: 'bin/git' must be an absolute path",
        ),
        (
            "{action: network.request, decision: allow, host: {cidr: []}}",
            "values.yaml: rules[0]: host: cidr: the list is empty, so nothing could match",
        ),
    ],
)
def test_values_that_could_never_match_are_errors(rule: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(rule)
    assert str(caught.value) == message


def test_a_command_path_in_a_rule_is_normalised_like_argv0() -> None:
    policy = _load("{id: r, action: process.exec, decision: allow, command: /usr//bin/./git}")
    verdict = evaluate_request(policy, {"action": "process.exec", "argv": ["/usr/bin/git"]})
    assert (verdict.decision, verdict.rule) == ("allow", "r")


def test_path_segment_checks_apply_to_paths_only() -> None:
    # "a/" would be refused as the end of a path; as the end of an argument it is fine.
    policy = _load(
        "{id: r, action: process.exec, decision: allow, command: git, args: {endsWith: a/}}"
    )
    verdict = evaluate_request(policy, {"action": "process.exec", "argv": ["git", "add", "data/"]})
    assert (verdict.decision, verdict.rule) == ("allow", "r")


@pytest.mark.parametrize(
    ("command", "decision"),
    [
        ("[eval, ls]", "allow"),
        ("{in: [eval, ls]}", "allow"),
        # Only a matcher that is purely a set of names names a construct.
        ("{in: [eval, ls], regex: '.*'}", "deny"),
        ("{in: [eval, ls], not: {equals: x}}", "deny"),
    ],
)
def test_only_a_plain_set_of_names_can_allow_eval(command: str, decision: str) -> None:
    policy = _load(f"{{id: r, action: process.exec, decision: allow, command: {command}}}")
    verdict = evaluate_request(policy, {"action": "process.exec", "commandLine": "eval ls"})
    assert verdict.decision == decision


@pytest.mark.parametrize(
    ("argv0", "decision"),
    [
        ("git", "allow"),
        ("/git", "allow"),  # the root directory itself is trusted here
        ("/opt/tools/git", "allow"),  # written with a trailing '/', normalised
        ("/opt/tools/x/git", "deny"),  # a subdirectory is not trusted
        ("/usr/bin/git", "deny"),  # the defaults are replaced, not extended
    ],
)
def test_trusted_paths_decide_where_a_bare_command_name_may_run_from(
    argv0: str, decision: str
) -> None:
    policy = load_policy_bytes(
        b"version: 1\ntrustedPaths: ['/', /opt/tools/]\nrules:\n"
        b"  - {id: git, action: process.exec, decision: allow, command: git}\n",
        "trusted.yaml",
    )
    verdict = evaluate_request(policy, {"action": "process.exec", "argv": [argv0]})
    assert verdict.decision == decision


ANY_ARGUMENT = (
    "rules[0]: args: holds when any one argument matches, wherever it is (args [status] "
    "allows git push status); pin the argument list with {prefix: [...]} or {equals: [...]}"
)


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        ("[status]", True),
        ("status", True),
        ("{in: [status]}", True),
        ("{glob: 'st*'}", True),
        ("{prefix: [status]}", False),
        ("{equals: [status]}", False),
        ("{prefix: [status], regex: '.*'}", False),
        ("{not: {in: [push]}}", False),  # a negation only restricts: nothing to warn of
    ],
)
def test_an_allow_on_any_one_argument_is_warned_of(args: str, warned: bool) -> None:
    policy = _load(f"{{action: process.exec, decision: allow, command: git, args: {args}}}")
    assert (ANY_ARGUMENT in policy.warnings) is warned


def test_an_agent_named_like_a_construct_does_not_allow_it() -> None:
    # Only a command matcher names a construct; an agent (or args) value equal to
    # "eval" must not let `eval` through.
    policy = _load("{id: r, action: process.exec, decision: allow, agent: eval}")
    verdict = evaluate_request(
        policy, {"action": "process.exec", "commandLine": "eval ls"}, identity="eval"
    )
    assert verdict.decision == "deny"
    assert verdict.reason == "no rule allows process.exec of eval in eval ls"


def test_an_allow_on_a_host_prefix_is_warned_of_and_a_deny_is_not() -> None:
    allow = _load(
        "{id: api, action: network.request, decision: allow, host: {startsWith: api.example.com}}"
    )
    assert (
        "rules[0] (id 'api'): host: startsWith on a host also matches longer hosts "
        "(api.example.com.evil.net); prefer equals, in or a glob"
    ) in allow.warnings
    deny = _load("{action: network.request, decision: deny, host: {startsWith: '10.'}}")
    assert not any("startsWith" in warning for warning in deny.warnings)


# Found in review (2026-12-06): only bare, list, equals and in values were brought to
# the field's case, so these deny rules loaded as valid and denied nothing, and the
# allow rule's `not startsWith "del"` allowed DELETE.
@pytest.mark.parametrize(
    ("deny", "body"),
    [
        (
            "method: {regex: 'delete|put'}",
            {"action": "network.request", "url": "https://a.com/x", "method": "DELETE"},
        ),
        (
            "method: {glob: 'del*'}",
            {"action": "network.request", "url": "https://a.com/x", "method": "delete"},
        ),
        (
            "method: {startsWith: Del}",
            {"action": "network.request", "url": "https://a.com/x", "method": "DELETE"},
        ),
        (
            "method: {endsWith: te}",
            {"action": "network.request", "url": "https://a.com/", "method": "DELETE"},
        ),
        ("scheme: {regex: HTTP}", {"action": "network.request", "url": "http://a.com/"}),
        ("scheme: {glob: 'HTTP?'}", {"action": "network.request", "url": "https://a.com/"}),
        ("host: {regex: 'Evil\\.com'}", {"action": "network.request", "url": "https://EVIL.com/"}),
        (
            "verb: {glob: 'DELETE*'}",
            {
                "action": "k8s.request",
                "k8s": {"method": "DELETE", "path": "/api/v1/namespaces/d/pods/p"},
            },
        ),
        (
            "verb: {regex: 'Delete(collection)?'}",
            {
                "action": "k8s.request",
                "k8s": {"method": "DELETE", "path": "/api/v1/namespaces/d/pods"},
            },
        ),
    ],
)
def test_operator_values_on_one_case_fields_match_in_that_case(
    deny: str, body: dict[str, Any]
) -> None:
    action = body["action"]
    policy = load_policy_bytes(
        f"version: 1\nrules:\n"
        f"  - {{id: d, action: {action}, decision: deny, {deny}}}\n"
        f"  - {{id: a, action: {action}, decision: allow}}\n".encode(),
        "case.yaml",
    )
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule) == ("deny", "d")


def test_a_negated_method_prefix_does_not_allow_the_method_in_another_case() -> None:
    policy = _load(
        "{id: reads, action: network.request, decision: allow, host: api.example.com,"
        " method: {not: {startsWith: del}}}"
    )
    for method in ("DELETE", "delete", "Delete"):
        body = {"action": "network.request", "url": "https://api.example.com/u/1", "method": method}
        assert evaluate_request(policy, body).decision == "deny"
    get = {"action": "network.request", "url": "https://api.example.com/u/1", "method": "GET"}
    assert evaluate_request(policy, get).decision == "allow"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{action: k8s.request, decision: deny, verb: [delete], resource: '*'}",
            "values.yaml: rules[0]: resource: equals: '*' is compared as written and no "
            "resource contains '*', '?' or '['; for a pattern write {glob: '**'} (every "
            "resource and subresource, as RBAC's '*')",
        ),
        (
            "{action: k8s.request, decision: deny, resource: [pods, 'deploy*']}",
            "values.yaml: rules[0]: resource: in: 'deploy*' is compared as written and no "
            "resource contains '*', '?' or '['; for a pattern write {glob: 'deploy*'} ('*' "
            "does not cross the '/' of a subresource; '**' does)",
        ),
        (
            "{action: k8s.request, decision: deny, namespace: [kube-system, 'prod-*']}",
            "values.yaml: rules[0]: namespace: in: 'prod-*' is compared as written and no "
            "namespace contains '*', '?' or '['; for a pattern write {glob: 'prod-*'}",
        ),
        (
            "{action: k8s.request, decision: deny, verb: {not: {equals: 'get*'}}}",
            "values.yaml: rules[0]: verb: equals: 'get*' is compared as written and no "
            "verb contains '*', '?' or '['; for a pattern write {glob: 'get*'}",
        ),
        (
            "{action: network.request, decision: deny, method: 'P[OU]T'}",
            "values.yaml: rules[0]: method: equals: 'P[OU]T' is compared as written and no "
            "method contains '*', '?' or '['; for a pattern write {glob: 'P[OU]T'}",
        ),
        (
            "{action: process.exec, decision: deny, command: {startsWith: /opt/./bin/}}",
            "values.yaml: rules[0]: command: startsWith: '/opt/./bin/' is not a normalised "
            "path, so it never matches",
        ),
        (
            "{action: process.exec, decision: deny, command: {endsWith: /bin//rm}}",
            "values.yaml: rules[0]: command: endsWith: '/bin//rm' is not the end of a "
            "normalised path (no '//', '.' or '..' segment, no trailing '/'), so it never "
            "matches",
        ),
    ],
)
def test_a_pattern_written_as_a_literal_kubernetes_or_http_value_is_an_error(
    rule: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(rule)
    assert str(caught.value) == message


def test_the_glob_the_error_points_to_does_what_rbac_star_means() -> None:
    # RBAC's resources: ["*"] covers subresources too; the error points to "**", since a
    # glob's "*" stops at the "/" of pods/exec (a reviewer found kubectl logs, services
    # proxy and deployments/scale allowed in kube-system past a deny of {glob: "*"}).
    def deny_all_of(resource: str) -> CompiledPolicy:
        return load_policy_bytes(
            b"version: 1\nrules:\n"
            b"  - {id: no-kube-system, action: k8s.request, decision: deny,"
            b" namespace: kube-system, resource: {glob: '" + resource.encode() + b"'}}\n"
            b"  - {id: ops, action: k8s.request, decision: allow}\n",
            "rbac.yaml",
        )

    paths = [
        ("DELETE", "/apis/apps/v1/namespaces/kube-system/deployments/coredns"),
        ("GET", "/api/v1/namespaces/kube-system/pods/etcd-0/log"),
        ("POST", "/api/v1/namespaces/kube-system/pods/etcd-0/exec"),
        ("PUT", "/apis/apps/v1/namespaces/kube-system/deployments/coredns/scale"),
        ("GET", "/api/v1/namespaces/kube-system/services/dns:53/proxy/x"),
    ]
    star_star, star = deny_all_of("**"), deny_all_of("*")
    for method, path in paths:
        body = {"action": "k8s.request", "k8s": {"method": method, "path": path}}
        verdict = evaluate_request(star_star, body)
        assert (verdict.decision, verdict.rule) == ("deny", "no-kube-system"), path
        subresource = evaluate_request(star, body).request["k8s"]["resource"].count("/")
        assert (evaluate_request(star, body).decision == "deny") is (subresource == 0), path


def test_a_path_written_like_a_glob_loads_with_a_warning() -> None:
    # A file name can hold "*", so this is not an error; but it is almost surely a
    # glob written where a literal goes, and as written denies nothing below /etc.
    policy = _load("{id: etc, action: file.read, decision: deny, path: [/etc/**, /srv/a]}")
    assert policy.warnings == (
        "rules[0] (id 'etc'): path: '/etc/**' is compared as written, '*', '?' and '[' "
        "included; for a pattern write {glob: '/etc/**'}",
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/etc/**"})
    assert (verdict.decision, verdict.rule) == ("deny", "etc")
    assert not _load("{action: file.read, decision: deny, path: {glob: /etc/**}}").warnings


def test_a_command_glob_with_a_path_is_resolved_like_argv0() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: tmp, action: process.exec, decision: deny, command: {glob: '/tmp//**'}}\n"
        b"  - {id: any, action: process.exec, decision: allow}\n",
        "cmd.yaml",
    )
    verdict = evaluate_request(policy, {"action": "process.exec", "argv": ["/tmp/x/evil"]})
    assert (verdict.decision, verdict.rule) == ("deny", "tmp")


@pytest.mark.parametrize("version", ["true", "1.0", "'1'"])
def test_version_must_be_the_integer_one(version: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_bytes(f"version: {version}\nrules: []\n".encode(), "v.yaml")
    assert str(caught.value) == "v.yaml: version: Input should be 1 (an integer)"


def test_a_glob_with_a_brace_list_loads_with_a_warning() -> None:
    # Found in the path review of 2026-12-06: gitignore and minimatch expand braces, the
    # contract's glob does not, so this deny matched only a directory named
    # "{root,cwd}" and /proc/self/root/etc/x went through, without a word from validate.
    policy = _load(
        "{id: proc, action: file.read, decision: deny, path: {glob: '/proc/*/{root,cwd}/**'}}"
    )
    assert policy.warnings == (
        "rules[0] (id 'proc'): path: glob '/proc/*/{root,cwd}/**' holds a brace list, which "
        "a glob matches as written (no alternation); write a rule per alternative or a regex",
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/proc/self/root/etc/x"})
    assert verdict.decision == "deny" and verdict.rule is None  # no rule: denied by default
    assert not _load("{action: file.read, decision: deny, path: {glob: '/x/{a}/**'}}").warnings


def test_an_allow_rule_whose_command_operator_also_matches_any_directory_warns() -> None:
    # Found by the evaluator's differential review of 2026-12-06: a bare name never
    # matches /tmp/x/git, but endsWith and regex see an untrusted program's absolute
    # path too, so "-lint" allowed /tmp/x/evil-lint, with no word from validate.
    policy = _load("{id: lint, action: process.exec, decision: allow, command: {endsWith: -lint}}")
    assert policy.warnings == (
        "rules[0] (id 'lint'): command: endsWith '-lint' also matches '/tmp/x/evil-lint' (a "
        "program in any directory); write {glob: '*-lint'} for names in trusted directories",
    )
    evil = {"action": "process.exec", "argv": ["/tmp/x/evil-lint"]}
    assert evaluate_request(policy, evil).decision == "allow"
    suggested = _load("{action: process.exec, decision: allow, command: {glob: '*-lint'}}")
    assert not suggested.warnings
    assert evaluate_request(suggested, evil).decision == "deny"
    assert evaluate_request(suggested, {**evil, "argv": ["go-lint"]}).decision == "allow"
    regex = _load("{id: fmt, action: process.exec, decision: allow, command: {regex: '.*-fmt'}}")
    assert len(regex.warnings) == 1 and "regex '.*-fmt'" in regex.warnings[0]
    star_star = _load("{id: l, action: process.exec, decision: allow, command: {glob: '**-lint'}}")
    assert len(star_star.warnings) == 1 and "'**' crosses '/'" in star_star.warnings[0]
    assert evaluate_request(star_star, evil).decision == "allow"  # what it warns of
    denying = "{action: process.exec, decision: deny, command: {endsWith: rm}}"
    assert not _load(denying).warnings  # a deny that sees more paths is stricter


@pytest.mark.parametrize(
    ("matcher", "written", "canonical", "urls"),
    [
        (
            "{glob: '/api/v4/projects/group%2fsecret/**'}",
            "/api/v4/projects/group%2fsecret/**",
            "/api/v4/projects/group%2Fsecret/**",
            ["/api/v4/projects/group%2fsecret/f", "/api/v4/projects/group%2Fsecret/f"],
        ),
        ("{startsWith: '/%7Eroot/'}", "/%7Eroot/", "/~root/", ["/%7Eroot/x", "/~root/x"]),
        ("[/public, '/caf%c3%a9']", "/caf%c3%a9", "/caf%C3%A9", ["/caf%c3%a9", "/caf%C3%A9"]),
    ],
)
def test_a_url_path_value_with_an_escape_no_request_holds_is_refused(
    matcher: str, written: str, canonical: str, urls: list[str]
) -> None:
    # Found in the red-team review of 2026-12-07: requests' escapes are brought to
    # upper-case hex, and escaped letters, digits and "-._~" decoded, but a rule's were
    # not, so a deny of "group%2fsecret" let https://h/api/v4/projects/group%2fsecret/f
    # (and %2F) through, and validate said nothing.
    with pytest.raises(PolicyError) as caught:
        _load(f"{{id: p, action: network.request, decision: deny, path: {matcher}}}")
    assert str(caught.value) == (
        f"values.yaml: rules[0] (id 'p'): path: {written!r} never matches a URL's path, "
        "whose escapes are matched in upper-case hex and with letters, digits and '-._~' "
        f"unescaped; write {canonical!r}"
    )
    # Written as the message says, the deny holds for every spelling of the path.
    policy = _load(
        f"{{id: p, action: network.request, decision: deny, path: "
        f"{matcher.replace(written, canonical)}}}\n"
        "  - {id: all, action: network.request, decision: allow}"
    )
    for path in urls:
        body = {"action": "network.request", "url": "https://h.example" + path}
        assert evaluate_request(policy, body).rule == "p", path


def test_a_negated_url_path_value_is_checked_too() -> None:
    with pytest.raises(PolicyError, match="write '/Admin'"):
        _load("{id: p, action: network.request, decision: allow, path: {not: {equals: /%41dmin}}}")


def test_a_url_path_escape_no_request_holds_is_only_warned_of_for_file_names_too() -> None:
    # A file's name may hold "%2f" as such: the rule stays, and validate says why it
    # cannot match a URL's path.
    policy = _load("{id: p, action: [network.request, file.read], decision: deny, path: '/a%2f'}")
    assert policy.warnings == (
        "rules[0] (id 'p'): path: '/a%2f' never matches a URL's path, whose escapes are "
        "matched in upper-case hex and with letters, digits and '-._~' unescaped; write "
        "'/a%2F' (as the path of a network.request)",
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/a%2f"})
    assert (verdict.decision, verdict.rule) == ("deny", "p")
    assert not _load("{action: file.read, decision: deny, path: '/a%2f'}").warnings


def test_a_url_path_value_with_a_bare_percent_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        _load("{id: p, action: network.request, decision: deny, path: '/100%'}")
    assert str(caught.value) == (
        "values.yaml: rules[0] (id 'p'): path: '/100%' holds a '%' without two hex digits "
        "after it, which no URL path holds (such a request is refused); write '%25' for a '%'"
    )


@pytest.mark.parametrize("port", ["'\u00b2'", "'\u0664\u0664\u0663'", "'\uff18\uff10'"])
def test_a_port_of_digits_that_are_not_ascii_is_refused(port: str) -> None:
    # Found in the red-team review of 2026-12-07: "²" is a digit to str.isdigit, which
    # int() refuses (validate crashed with a traceback), and "٤٤٣" loaded as port 443.
    with pytest.raises(PolicyError, match="is not a port number 1-65535"):
        _load(f"{{id: p, action: network.request, decision: allow, port: {port}}}")


# -- found in the red-team review of 2026-12-07 ------------------------------------------


def test_trusted_paths_that_leave_out_default_directories_are_warned_of() -> None:
    # trustedPaths replaces the defaults: an author who added the image's own tools
    # directory turned off `command: bash` (a deny by name) for /usr/bin/bash, while a
    # glob rule on /usr/bin/* went on allowing it, without a word from validate.
    policy = load_policy_bytes(
        b"version: 1\ntrustedPaths: [/opt/tools/bin]\nrules:\n"
        b"  - {id: no-shells, action: process.exec, command: [sh, bash], decision: deny}\n"
        b"  - {id: tools, action: process.exec, command: {glob: '/usr/bin/*'}, decision: allow}\n",
        "trusted.yaml",
    )
    assert policy.warnings == (
        "trustedPaths: replaces the default trusted directories (it does not add to them) "
        "and leaves out /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin: "
        "a bare command name in a rule no longer matches a program there (command: bash "
        "does not match /usr/local/sbin/bash), in deny rules as in allow rules; list the "
        "directories to keep trusted",
    )
    # What it warns of: the deny by name misses the shell, the glob allows it.
    verdict = evaluate_request(policy, {"action": "process.exec", "argv": ["/usr/bin/bash"]})
    assert (verdict.decision, verdict.rule) == ("allow", "tools")


@pytest.mark.parametrize(
    ("trusted", "omitted"),
    [
        ("[/usr/bin, /bin]", "/usr/local/sbin, /usr/local/bin, /usr/sbin, /sbin"),
        ("[/usr/bin/, /bin, /usr/local/bin, /usr/local/sbin, /sbin]", "/usr/sbin"),
        ("[]", "/usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin"),
    ],
)
def test_the_warning_names_each_default_directory_left_out(trusted: str, omitted: str) -> None:
    policy = load_policy_bytes(
        f"version: 1\ntrustedPaths: {trusted}\nrules: []\n".encode(), "trusted.yaml"
    )
    assert len(policy.warnings) == 1
    assert f" and leaves out {omitted}: a bare command name" in policy.warnings[0]


def test_trusted_paths_keeping_every_default_directory_are_not_warned_of() -> None:
    every = "[/opt/tools/bin, /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin]"
    policy = load_policy_bytes(f"version: 1\ntrustedPaths: {every}\n".encode(), "t.yaml")
    assert policy.warnings == ()
    assert load_policy_bytes(b"version: 1\nrules: []\n", "t.yaml").warnings == ()


def test_policy_validate_prints_the_trusted_paths_warning(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from sidecar.cli import main

    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ntrustedPaths: [/usr/bin, /bin, /usr/sbin, /sbin, /opt/x]\n")
    assert main(["policy", "validate", str(path)]) == 0
    assert capsys.readouterr().err == (
        f"{path}: warning: trustedPaths: replaces the default trusted directories (it does "
        "not add to them) and leaves out /usr/local/sbin, /usr/local/bin: a bare command "
        "name in a rule no longer matches a program there (command: bash does not match "
        "/usr/local/sbin/bash), in deny rules as in allow rules; list the directories to "
        "keep trusted\n"
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # Requests hold an IPv4 address as a dotted quad of decimal octets; the check of
        # octets ran only when the last label was a number.
        (
            "{action: network.request, decision: deny, host: {glob: '0177.*.*.*'}}",
            "host: glob: '0177.*.*.*' is not a valid host: an IPv4 glob must use dotted-quad "
            "decimal octets, as request addresses are matched ('0177' is 127); write "
            "'127.*.*.*', or a cidr",
        ),
        (
            "{action: network.request, decision: deny, host: {glob: '010.*.*.*'}}",
            "host: glob: '010.*.*.*' is not a valid host: an IPv4 glob must use dotted-quad "
            "decimal octets, as request addresses are matched ('010' is 8); write "
            "'8.*.*.*', or a cidr",
        ),
        (
            "{action: network.request, decision: deny, host: {glob: '0X7F.*.*.*'}}",
            "host: glob: '0x7f.*.*.*' is not a valid host: an IPv4 glob must use dotted-quad "
            "decimal octets, as request addresses are matched ('0x7f' is 127); write "
            "'127.*.*.*', or a cidr",
        ),
        (
            "{action: network.request, decision: deny, host: {not: {glob: '10.300.*.*'}}}",
            "host: glob: '10.300.*.*' is not a valid host: an IPv4 glob must use dotted-quad "
            "decimal octets, as request addresses are matched ('300' is no octet); write a "
            "cidr",
        ),
        # A command is a bare name (no '/') or an absolute path.
        (
            "{action: process.exec, decision: deny, command: {glob: 'bin/*'}}",
            "command: glob: 'bin/*' holds a '/' but does not start with '/' or '**': a "
            "command is matched as a name (no '/') or as an absolute path, so it never "
            "matches; write '**/bin/*' for any directory, or an absolute path pattern",
        ),
        (
            "{action: process.exec, decision: deny, command: {glob: '*/curl'}}",
            "command: glob: '*/curl' holds a '/' but does not start with '/' or '**': a "
            "command is matched as a name (no '/') or as an absolute path, so it never "
            "matches; write '**/curl' for any directory, or an absolute path pattern",
        ),
        (
            "{action: process.exec, decision: deny, command: {startsWith: 'usr/bin/'}}",
            "command: startsWith: 'usr/bin/' holds a '/' but does not start with '/': a "
            "command is matched as a name (no '/') or as an absolute path, so it never "
            "matches",
        ),
        # startsWith and endsWith compare as written, as equals does.
        (
            "{action: k8s.request, decision: deny, namespace: {startsWith: 'kube-*'}}",
            "namespace: startsWith: 'kube-*' is compared as written and no namespace "
            "contains '*', '?' or '['; for a pattern write {glob: 'kube-*'}",
        ),
        (
            "{action: k8s.request, decision: deny, resource: {endsWith: '*/exec'}}",
            "resource: endsWith: '*/exec' is compared as written and no resource contains "
            "'*', '?' or '['; for a pattern write {glob: '*/exec'} ('*' does not cross the "
            "'/' of a subresource; '**' does)",
        ),
        (
            "{action: network.request, decision: deny, method: {startsWith: 'P?'}}",
            "method: startsWith: 'P?' is compared as written and no method contains '*', '?' "
            "or '['; for a pattern write {glob: 'P?*'}",
        ),
        # Hosts are matched as ASCII A-labels, without a trailing dot.
        (
            "{action: network.request, decision: deny, host: {regex: '(.*\\.)?bücher\\.de'}}",
            "host: regex: '(.*\\\\.)?bücher\\\\.de' holds non-ASCII text, which no host "
            "holds: hosts are matched as IDNA A-labels ('bücher' is 'xn--bcher-kva'); write "
            "the xn-- form",
        ),
        (
            "{action: network.request, decision: deny, host: {regex: 'x\\.bad\\.com\\.'}}",
            "host: regex: 'x\\\\.bad\\\\.com\\\\.' ends in '\\\\.', but hosts are matched "
            "without a trailing dot (one is dropped), so it never matches; write "
            "'x\\\\.bad\\\\.com'",
        ),
    ],
)
def test_values_that_can_never_match_are_refused_at_load(rule: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(rule)
    assert str(caught.value) == f"values.yaml: rules[0]: {message}"


@pytest.mark.parametrize(
    ("rule", "body"),
    [
        # The spellings the refusals point to load and match.
        (
            "{id: d, action: network.request, decision: deny, host: {glob: '127.*.*.*'}}",
            {"action": "network.request", "url": "http://0177.0.0.1/"},
        ),
        (
            "{id: d, action: network.request, decision: deny, host: {glob: '010.*.example'}}",
            {"action": "network.request", "url": "http://010.a.example/"},
        ),
        (
            "{id: d, action: process.exec, decision: deny, command: {glob: '**/bin/*'}}",
            {"action": "process.exec", "argv": ["/usr/bin/curl"]},
        ),
        (
            "{id: d, action: process.exec, decision: deny, command: {glob: '**/curl'}}",
            {"action": "process.exec", "argv": ["/opt/x/curl"]},
        ),
        (
            "{id: d, action: process.exec, decision: deny, command: {endsWith: 'bin/curl'}}",
            {"action": "process.exec", "argv": ["/usr/bin/curl"]},
        ),
        (
            "{id: d, action: k8s.request, decision: deny, namespace: {glob: 'kube-*'}}",
            {
                "action": "k8s.request",
                "k8s": {
                    "verb": "get",
                    "version": "v1",
                    "resource": "pods",
                    "namespace": "kube-system",
                },
            },
        ),
        (
            "{id: d, action: network.request, decision: deny, host: {regex: '(.*\\.)?xn--bcher-kva\\.de'}}",
            {"action": "network.request", "url": "https://www.bücher.de/"},
        ),
        (
            "{id: d, action: network.request, decision: deny, host: {regex: 'x\\.bad\\.com\\.?'}}",
            {"action": "network.request", "url": "https://x.bad.com./"},
        ),
    ],
)
def test_the_spellings_the_refusals_point_to_match(rule: str, body: dict[str, Any]) -> None:
    policy = load_policy_bytes(
        f"version: 1\ndefaultAction: allow\nrules:\n  - {rule}\n".encode(), "values.yaml"
    )
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule) == ("deny", "d")


@pytest.mark.parametrize(
    ("field", "action", "operator", "body"),
    [
        ("path", "file.read", "startsWith", {"action": "file.read", "path": "/etc/shadow"}),
        ("path", "file.read", "endsWith", {"action": "file.read", "path": "/etc/shadow"}),
        ("command", "process.exec", "startsWith", {"action": "process.exec", "argv": ["rm"]}),
        (
            "cwd",
            "process.exec",
            "startsWith",
            {"action": "process.exec", "argv": ["rm"], "cwd": "/"},
        ),
        (
            "name",
            "k8s.request",
            "endsWith",
            {
                "action": "k8s.request",
                "k8s": {"verb": "delete", "version": "v1", "resource": "pods", "name": "p"},
            },
        ),
    ],
)
def test_an_allow_with_an_empty_prefix_or_suffix_is_warned_of(
    field: str, action: str, operator: str, body: dict[str, Any]
) -> None:
    # '' is falsy: the warning of a path prefix not ending in '/' skipped it, and the
    # rule allowed every path without a word from validate.
    policy = _load(f"{{id: r, action: {action}, decision: allow, {field}: {{{operator}: ''}}}}")
    affix = "prefix" if operator == "startsWith" else "suffix"
    assert policy.warnings == (
        f"rules[0] (id 'r'): {field}: {operator} '' holds for every value, so it is no "
        f"condition; give the {affix} meant, or leave the operator out",
    )
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule) == ("allow", "r")  # what it warns of


def test_an_empty_prefix_in_a_deny_rule_is_not_warned_of() -> None:
    # A deny rule that matches more only denies more, as for the other broad-allow warnings.
    assert not _load("{action: file.read, decision: deny, path: {startsWith: ''}}").warnings
    assert not _load("{action: file.read, decision: allow, path: {not: {startsWith: ''}}}").warnings


# Noticed in review (2026-12-07): these host patterns loaded in silence, and as deny
# rules they deny no address at all.
@pytest.mark.parametrize(
    ("host", "warning"),
    [
        (
            "{glob: '127.*'}",
            "host: glob '127.*' matches names of 2 labels only ('*' stays within a label), "
            "never an IPv4 address, which a request holds as four decimal octets; for "
            "addresses write '127.*.*.*' or a cidr",
        ),
        ("{not: {glob: '10.*.*'}}", "for addresses write '10.*.*.*' or a cidr"),
        ("{glob: '1?.*'}", "for addresses write '1?.*.*.*' or a cidr"),
        (
            "{startsWith: '0177.'}",
            "host: startsWith '0177.' never matches an IPv4 address, which a request holds "
            "as four decimal octets without leading zeros (0177.0.0.1 is 127.0.0.1); write "
            "a cidr",
        ),
        ("{startsWith: '0x7f.'}", "host: startsWith '0x7f.' never matches an IPv4 address"),
        ("{startsWith: '10.300.'}", "host: startsWith '10.300.' never matches an IPv4 address"),
    ],
)
def test_a_host_pattern_meant_for_addresses_that_only_matches_names_is_warned_of(
    host: str, warning: str
) -> None:
    policy = _load(f"{{action: network.request, decision: deny, host: {host}}}")
    assert any(w.startswith("rules[0]: ") and warning in w for w in policy.warnings), (
        policy.warnings
    )
    if "not" not in host:  # what the warning says: the address is not denied
        body = {"action": "network.request", "url": "http://0177.0.0.1/"}
        assert evaluate_request(policy, body).rule is None


@pytest.mark.parametrize(
    "host",
    [
        "{glob: '127.*.*.*'}",
        "{glob: '127.**'}",
        "{glob: '*.*'}",
        "{glob: 'api.*'}",
        "{startsWith: '127.0.'}",
        "{startsWith: 'abc.'}",  # hex digits, but a name: no address is written so
        "{cidr: '127.0.0.0/8'}",
        # Without a wildcard a glob is read as an address, inet_aton's short forms too:
        # these match 127.0.0.1 and 10.0.0.1 (second review: they were warned of, with
        # advice that would have undone the deny).
        "{glob: '127.1'}",
        "{glob: '2130706433'}",
        "{glob: '10.1'}",
    ],
)
def test_host_patterns_that_can_match_addresses_or_are_names_are_not_warned_of(
    host: str,
) -> None:
    policy = _load(f"{{action: network.request, decision: deny, host: {host}}}")
    assert not any("IPv4" in w for w in policy.warnings), policy.warnings


# Found in review (2026-12-07): such a policy validated in silence.
def test_require_approval_without_approvers_is_warned_of() -> None:
    policy = _load("{id: ask, action: file.write, decision: require_approval}")
    assert (
        "1 require_approval rule(s) (ask) but no approvals.approvers: no one can approve, so "
        "every such request is denied when its approval expires"
    ) in policy.warnings
    with_approver = load_policy_bytes(
        b"version: 1\nrules:\n  - {id: ask, action: file.write, decision: require_approval}\n"
        b"approvals:\n  approvers: [{name: alice, publicKey: "
        b"'11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo='}]\n",
        "approvers.yaml",
    )
    assert not any("approvers" in warning for warning in with_approver.warnings)
