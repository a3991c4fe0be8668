"""Rule values that could never match are refused at load time, with the file, the rule
and the key named: a deny rule that silently matches nothing is a hole in the policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import PolicyError, load_policy_bytes


def _load(rule: str) -> None:
    load_policy_bytes(f"version: 1\nrules:\n  - {rule}\n".encode(), "holes.yaml")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{id: ssh, action: file.read, decision: deny, path: {startsWith: '~/.ssh'}}",
            "holes.yaml: rules[0] (id 'ssh'): path: startsWith: '~/.ssh' does not start "
            "with '/' and every path is absolute, so it never matches",
        ),
        (
            "{action: file.write, decision: deny, path: {startsWith: etc/}}",
            "holes.yaml: rules[0]: path: startsWith: 'etc/' does not start with '/'",
        ),
        (
            "{action: process.exec, decision: deny, cwd: {startsWith: tmp/}}",
            "holes.yaml: rules[0]: cwd: startsWith: 'tmp/' does not start with '/'",
        ),
        (
            "{action: network.request, decision: deny, path: {startsWith: admin/}}",
            "holes.yaml: rules[0]: path: startsWith: 'admin/' does not start with '/'",
        ),
        (
            "{action: k8s.request, decision: deny, path: {not: {startsWith: logs}}}",
            "holes.yaml: rules[0]: path: startsWith: 'logs' does not start with '/'",
        ),
    ],
)
def test_a_relative_path_prefix_is_refused(rule: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(rule)
    assert str(caught.value).startswith(message)


def test_absolute_path_prefixes_still_load_and_deny() -> None:
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules:\n"
        b"  - {id: etc, action: file.write, decision: deny, path: {startsWith: /etc/}}\n"
        b"  - {id: any, action: file.read, decision: allow, path: {startsWith: ''}}\n",
        "ok.yaml",
    )
    verdict = evaluate_request(policy, {"action": "file.write", "path": "/etc/passwd"})
    assert (verdict.decision, verdict.rule) == ("deny", "etc")
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/etc/passwd"})
    assert (verdict.decision, verdict.rule) == ("allow", "any")


@pytest.mark.parametrize(
    ("regex", "problem"),
    [("(a", "missing ): (a"), ("a{1001}", "invalid repetition size: {1001}")],
)
def test_a_bad_regex_is_explained_in_plain_text(regex: str, problem: str) -> None:
    # RE2 reports bytes; the message used to read "... is not valid RE2: b'missing ): (a'".
    with pytest.raises(PolicyError) as caught:
        _load(f"{{action: file.read, decision: deny, path: {{regex: '{regex}'}}}}")
    assert str(caught.value) == (
        f"holes.yaml: rules[0]: path: regex: '{regex}' is not valid RE2: {problem}"
    )


def test_policy_validate_prints_only_the_policy_error_for_a_bad_regex(tmp_path: Path) -> None:
    # RE2 used to log its own "re2.cc:242] Error parsing ..." lines (and an absl
    # warning) to stderr around the one error a person needs to read.
    policy = tmp_path / "bad.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - {action: file.read, decision: deny, path: {regex: '(a'}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "validate", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    output = (result.stdout + result.stderr).strip().splitlines()
    assert output == [f"{policy}: rules[0]: path: regex: '(a' is not valid RE2: missing ): (a"]


@pytest.mark.parametrize(
    ("cidr", "denied", "allowed"),
    [
        ("::ffff:0:0/96", "::ffff:10.0.0.1", "10.0.0.1"),
        ("64:ff9b::/96", "64:ff9b::a00:1", "10.0.0.1"),
    ],
)
def test_the_whole_mapped_or_nat64_space_is_a_rule_about_the_spelling(
    cidr: str, denied: str, allowed: str
) -> None:
    # The /96 itself stands for every IPv4 address, so it is kept as written: a rule
    # against the IPv6 spelling, not turned into (or refused for) 0.0.0.0/0.
    policy = load_policy_bytes(
        f"version: 1\ndefaultAction: allow\nrules:\n"
        f"  - {{id: spelt, action: network.request, decision: deny, host: {{cidr: '{cidr}'}}}}\n".encode(),
        "spelt.yaml",
    )
    verdict = evaluate_request(policy, {"action": "network.request", "host": denied})
    assert (verdict.decision, verdict.rule) == ("deny", "spelt")
    verdict = evaluate_request(policy, {"action": "network.request", "host": allowed})
    assert (verdict.decision, verdict.rule) == ("allow", None)


def test_a_range_strictly_inside_the_mapped_space_is_refused_with_its_ipv4_form() -> None:
    with pytest.raises(PolicyError) as caught:
        _load("{action: network.request, decision: deny, host: {cidr: '::ffff:0:0/97'}}")
    assert str(caught.value) == (
        "holes.yaml: rules[0]: host: cidr: '::ffff:0:0/97' is an IPv4-mapped or NAT64 range "
        "and would not match 0.0.0.0 written as IPv4; write '0.0.0.0/1', which matches both "
        "spellings"
    )


@pytest.mark.parametrize(
    ("glob", "message"),
    [
        (
            "*.pem",
            "holes.yaml: rules[0] (id 'pem'): path: glob: '*.pem' must be an absolute path "
            "pattern (start with '/' or '**'); to match at any depth write '**/*.pem'",
        ),
        (
            "*",
            "holes.yaml: rules[0] (id 'pem'): path: glob: '*' must be an absolute path "
            "pattern (start with '/' or '**'); to match at any depth write '**/*'",
        ),
        (
            "*/x.pem",
            "holes.yaml: rules[0] (id 'pem'): path: glob: '*/x.pem' must be an absolute path "
            "pattern (start with '/' or '**'); to match at any depth write '**/*/x.pem'",
        ),
        (
            "?/x",
            "holes.yaml: rules[0] (id 'pem'): path: glob: '?/x' must be an absolute path "
            "pattern (start with '/' or '**')",
        ),
    ],
)
def test_a_path_glob_starting_with_one_star_is_refused(glob: str, message: str) -> None:
    # "*" stays within a segment and every path starts with "/": "*.pem" matched
    # nothing, so a deny of it let /etc/ssl/key.pem through.
    with pytest.raises(PolicyError) as caught:
        _load(f"{{id: pem, action: file.read, decision: deny, path: {{glob: '{glob}'}}}}")
    assert str(caught.value) == message


@pytest.mark.parametrize("glob", ["**/*.pem", "**.pem", "/**/*.pem"])
def test_the_any_depth_spellings_deny_keys_everywhere(glob: str) -> None:
    policy = load_policy_bytes(
        f"version: 1\ndefaultAction: allow\nrules:\n"
        f"  - {{id: pem, action: file.read, decision: deny, path: {{glob: '{glob}'}}}}\n".encode(),
        "pem.yaml",
    )
    for path in ("/x.pem", "/etc/ssl/key.pem", "/a/b/c/d.pem"):
        verdict = evaluate_request(policy, {"action": "file.read", "path": path})
        assert (verdict.decision, verdict.rule) == ("deny", "pem"), path
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/etc/ssl/key.pem.txt"})
    assert verdict.decision == "allow"


@pytest.mark.parametrize(
    ("host", "decision"),
    [
        ("10.1.2.3", "allow"),
        ("0xa000001", "allow"),  # 10.0.0.1 in another inet_aton spelling
        ("::ffff:10.0.0.1", "allow"),  # IPv4-mapped: matched as its IPv4 too
        ("fd00::1", "allow"),
        ("11.0.0.1", "deny"),
        ("fe80::1", "deny"),
        ("example.com", "deny"),  # a name is never inside a range (no DNS lookups)
    ],
)
def test_cidr_holds_for_ip_literals_inside_a_range_only(host: str, decision: str) -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n  - {id: ten, action: network.request, decision: allow,"
        b" host: {cidr: [10.0.0.0/8, 'fd00::/8']}}\n",
        "cidr.yaml",
    )
    verdict = evaluate_request(policy, {"action": "network.request", "host": host})
    assert verdict.decision == decision


def test_a_cidr_with_host_bits_set_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        _load("{action: network.request, decision: deny, host: {cidr: 10.0.0.1/8}}")
    assert str(caught.value) == (
        "holes.yaml: rules[0]: host: cidr: '10.0.0.1/8' is not a valid CIDR range: "
        "10.0.0.1/8 has host bits set"
    )


@pytest.mark.parametrize("glob", ["/tmp/../etc/**", "/a/b/../../etc/**", "/../etc/**", "/etc/./**"])
def test_dot_segments_in_a_path_glob_resolve_like_request_paths(glob: str) -> None:
    policy = load_policy_bytes(
        f"version: 1\ndefaultAction: allow\nrules:\n"
        f"  - {{id: etc, action: file.read, decision: deny, path: {{glob: '{glob}'}}}}\n".encode(),
        "dots.yaml",
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/etc/passwd"})
    assert (verdict.decision, verdict.rule) == ("deny", "etc")


@pytest.mark.parametrize("glob", ["/a/*/../b", "/a/[x]/../b", "/a/x?/../b", "/a/\\*/../b"])
def test_dot_dot_after_a_wildcard_segment_is_refused(glob: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(f"{{action: file.read, decision: deny, path: {{glob: '{glob}'}}}}")
    assert str(caught.value).endswith("'..' after a wildcard segment is ambiguous")


@pytest.mark.parametrize("glob", ["fe80::*", "fe80::?"])
def test_an_ipv6_glob_is_pointed_to_cidr(glob: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(f"{{action: network.request, decision: deny, host: {{glob: '{glob}'}}}}")
    assert str(caught.value) == (
        f"holes.yaml: rules[0]: host: glob: '{glob}' is not a valid host: IPv6 addresses "
        "cannot be globbed; write a cidr range"
    )


_BLOCK_END = (
    "ends with a line break: remove it (a YAML `|` or `>` block keeps one: write `|-` or `>-`)"
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            "action: file.read\n    path:\n      regex: |\n        .*/\\.env(\\..*)?\n",
            "path: regex: '.*/\\\\.env(\\\\..*)?\\n' " + _BLOCK_END,
        ),
        (
            "action: file.read\n    path:\n      glob: >\n        /app/**/.ssh/**\n",
            "path: glob: '/app/**/.ssh/**\\n' " + _BLOCK_END,
        ),
        ("action: file.read\n    path: |\n      /etc/shadow\n", "path: equals: '/etc/shadow\\n' "),
        ("action: process.exec\n    command: >\n      rm\n", "command: equals: 'rm\\n' "),
        (
            'action: k8s.request\n    resource: {in: [pods, "secrets\\n"]}\n',
            "resource: in: 'secrets\\n' ",
        ),
        (
            "action: network.request\n    path:\n      startsWith: |\n        /admin\n",
            "path: startsWith: '/admin\\n' ",
        ),
        ('action: file.read\n    path: {endsWith: ".pem\\n"}\n', "path: endsWith: '.pem\\n' "),
        (
            'action: file.read\n    path: {not: {equals: "/tmp\\n"}}\n',
            "path: equals: '/tmp\\n' ",
        ),
        (
            'action: process.exec\n    args: {prefix: ["push\\n"]}\n',
            "args: prefix: 'push\\n' ",
        ),
        ('action: process.exec\n    args: {regex: "--force\\r"}\n', "args: regex: '--force\\r' "),
        ('action: network.request\n    host: {cidr: "10.0.0.0/8\\n"}\n', "host: cidr: "),
    ],
)
def test_a_value_ending_in_a_yaml_blocks_line_break_is_refused(fields: str, message: str) -> None:
    # Found in review (rt25 policy, 1): a deny written with a YAML `|` or `>` block kept
    # the block's last line break, so it never matched and `validate` called it valid.
    text = f"version: 1\nrules:\n  - id: d\n    decision: deny\n    {fields}"
    with pytest.raises(PolicyError) as caught:
        load_policy_bytes(text.encode(), "p.yaml")
    assert str(caught.value).startswith(f"p.yaml: rules[0] (id 'd'): {message}")
    assert "line break" in str(caught.value)


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ("path: ' /etc/shadow'", "path: equals: ' /etc/shadow' starts with whitespace (' ')"),
        ("path: {glob: '/etc/** '}", "path: glob: '/etc/** ' ends with whitespace (' ')"),
        ('path: "\\n/etc/shadow"', "path: equals: '\\n/etc/shadow' starts with a line break"),
        ('command: "rm\\t"', "command: equals: 'rm\\t' ends with whitespace ('\\t')"),
        ("agent: {in: ['ci ']}", "agent: in: 'ci ' ends with whitespace"),
    ],
)
def test_a_value_with_whitespace_at_an_end_is_refused(matcher: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(f"{{action: '*', decision: deny, {matcher}}}")
    assert str(caught.value).startswith(f"holes.yaml: rules[0]: {message}")


EMPTY_AGENT = (
    "an empty agent matches no gate: a gate's identity is never empty (TOLLGATE_IDENTITY, "
    "else <namespace>/<serviceaccount>/<pod> from the pod's downward-API variables, "
    'else local; docs/policy.md, "Identity")'
)


@pytest.mark.parametrize(
    ("matcher", "operator"),
    [
        ('agent: ""', "equals"),
        ('agent: [""]', "in"),
        ('agent: [ci, ""]', "in"),
        ('agent: {equals: ""}', "equals"),
        ('agent: {in: [""]}', "in"),
        ('agent: {not: {equals: ""}}', "equals"),
    ],
)
def test_an_empty_agent_is_refused(matcher: str, operator: str) -> None:
    # rt26 semantics 1: `agent: ""` passed validation and matched only `policy test`'s
    # old default identity: a deny the tests proved that never fired on a gate.
    with pytest.raises(PolicyError) as caught:
        _load(f"{{id: d, action: file.read, decision: deny, {matcher}}}")
    assert str(caught.value) == f"holes.yaml: rules[0] (id 'd'): agent: {operator}: {EMPTY_AGENT}"


def test_policy_validate_says_why_an_empty_agent_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n"
        '  - {id: no-secrets, action: file.read, agent: "", path: /app/key, decision: deny}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "validate", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    output = (result.stdout + result.stderr).strip().splitlines()
    assert output == [f"{policy}: rules[0] (id 'no-secrets'): agent: equals: {EMPTY_AGENT}"]


def test_other_agent_matchers_on_an_empty_text_still_load() -> None:
    # Only an exact empty name is refused; a glob or regex is left as written.
    for matcher in ("{glob: '*'}", "{regex: ''}", "{startsWith: ''}", "[ci, local]"):
        _load(f"{{action: file.read, decision: deny, agent: {matcher}}}")


def test_a_strip_block_loads_and_an_argument_may_end_with_a_space() -> None:
    # `|-` and `>-` drop the line break; an argv element can end with a space.
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules:\n"
        b"  - id: no-env\n    action: file.read\n    decision: deny\n"
        b"    path:\n      regex: |-\n        .*/\\.env(\\..*)?\n"
        b"  - id: no-msg\n    action: process.exec\n    decision: deny\n"
        b"    command: git\n    args: {prefix: [commit, '-m ']}\n",
        "ok.yaml",
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/app/.env"})
    assert (verdict.decision, verdict.rule) == ("deny", "no-env")
    verdict = evaluate_request(
        policy, {"action": "process.exec", "argv": ["git", "commit", "-m ", "x"]}
    )
    assert (verdict.decision, verdict.rule) == ("deny", "no-msg")


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        (
            "resource: Secrets",
            "resource: equals: 'Secrets' holds upper-case letters, but Kubernetes resource "
            "names are lower case (the apiserver serves no other); write 'secrets'",
        ),
        ("namespace: [default, Kube-System]", "namespace: in: 'Kube-System' holds upper-case"),
        ("version: {equals: V1}", "version: equals: 'V1' holds upper-case"),
        ("group: {glob: 'RBAC.*'}", "group: glob: 'RBAC.*' holds upper-case"),
        ("namespace: {startsWith: Kube-}", "namespace: startsWith: 'Kube-' holds upper-case"),
        ("resource: {not: {endsWith: /Exec}}", "resource: endsWith: '/Exec' holds upper-case"),
        (
            "group: core",
            "group: equals: 'core' is no API group: the core group (pods, secrets, "
            'configmaps ...) has the empty name; write ""',
        ),
        ("group: {in: [apps, core]}", "group: in: 'core' is no API group"),
    ],
)
def test_a_kubernetes_name_no_request_can_carry_is_refused(matcher: str, message: str) -> None:
    # Found in review (rt25 policy, 2): each of these loaded and never matched, so a
    # carve-out deny under a broad allow was a hole.
    with pytest.raises(PolicyError) as caught:
        _load(f"{{action: k8s.request, decision: deny, {matcher}}}")
    assert str(caught.value).startswith(f"holes.yaml: rules[0]: {message}")


def test_lower_case_kubernetes_names_classes_and_object_names_still_load() -> None:
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules:\n"
        b"  - {id: core-secrets, action: k8s.request, decision: deny, group: '',"
        b" resource: {glob: '[Ss]ecrets'}, namespace: {startsWith: kube-}}\n"
        b"  - {id: role, action: k8s.request, decision: deny, name: System-Admin}\n"
        b"  - {id: dns, action: k8s.request, decision: deny, group: {startsWith: core}}\n",
        "ok.yaml",
    )
    path = "/api/v1/namespaces/kube-system/secrets/x"
    request = {"action": "k8s.request", "k8s": {"method": "DELETE", "path": path}}
    verdict = evaluate_request(policy, request)
    assert (verdict.decision, verdict.rule) == ("deny", "core-secrets")


@pytest.mark.parametrize(
    ("value", "message", "not_said"),
    [
        # Found in review (rt25 r2-policy, 8): written in double quotes, no block is to blame.
        ('"/etc/shadow\\r"', "'/etc/shadow\\r' ends with a line break: remove it", "block"),
        ('"/etc/shadow\\u00a0"', "ends with whitespace ('\\xa0')", "glob class"),
        ('"/etc/shadow "', "ends with whitespace (' ')", "block"),
    ],
)
def test_a_blank_end_is_explained_by_what_it_is(value: str, message: str, not_said: str) -> None:
    with pytest.raises(PolicyError) as raised:
        _load(f"{{action: file.read, decision: deny, path: {value}}}")
    [problem] = raised.value.problems
    assert message in problem
    assert not_said not in problem
