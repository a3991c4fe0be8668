"""The pure evaluator: every matcher, precedence, reasons and explain traces.

Subjects are built by hand here, so these tests pin the evaluator alone; the engine
tests drive the same rules through real requests and normalisation.
"""

from __future__ import annotations

import itertools

import pytest

from sidecar.evaluator import evaluate_subject
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.subject import Subject


def policy(rules: str, extra: str = "") -> CompiledPolicy:
    return load_policy_bytes(f"version: 1\n{extra}rules:\n{rules}".encode(), "test.yaml")


def file_read(path: str, agent: str = "ns/sa/pod") -> Subject:
    return Subject("file.read", {"path": (path,), "agent": (agent,)})


def exec_(
    argv: tuple[str, ...], cwd: str | None = None, constructs: tuple[str, ...] = ()
) -> Subject:
    fields = {"command": argv[:1], "args": argv[1:], "agent": ("a",)}
    if cwd:
        fields["cwd"] = (cwd,)
    return Subject("process.exec", fields, constructs=constructs)


def k8s(verb: str, resource: str, namespace: str = "", name: str = "", group: str = "") -> Subject:
    return Subject(
        "k8s.request",
        {
            "verb": (verb,),
            "group": (group,),
            "version": ("v1",),
            "resource": (resource,),
            "namespace": (namespace,),
            "name": (name,),
            "agent": ("a",),
        },
    )


def decide(p: CompiledPolicy, s: Subject) -> tuple[str, str | None]:
    result = evaluate_subject(p, s)
    return result.decision, result.rule.id if result.rule else None


# -- matchers ---------------------------------------------------------------------------

MATCHER_CASES = [
    # (matcher on path, path, matches?)
    ("/etc/passwd", "/etc/passwd", True),
    ("/etc/passwd", "/etc/shadow", False),
    ('["/a", "/b"]', "/b", True),
    ('["/a", "/b"]', "/c", False),
    ("{equals: /a}", "/a", True),
    ("{in: [/a, /b]}", "/a", True),
    ("{glob: '/a/**'}", "/a/b/c", True),
    ("{startsWith: /tmp/}", "/tmp/x", True),
    ("{startsWith: /tmp/}", "/tmpx", False),
    ("{endsWith: .log}", "/var/x.log", True),
    ("{endsWith: .log}", "/var/x.log.gz", False),
    ("{regex: '/var/log/[a-z]+\\.log'}", "/var/log/app.log", True),
    ("{regex: '/var/log/[a-z]+\\.log'}", "/x/var/log/app.log", False),  # anchored, not search
    ("{regex: 'app'}", "/var/app/x", False),
    # "." matches a newline too (the s flag); "(?-s)" opts out
    ("{regex: '/home/.*/\\.ssh/.*'}", "/home/u\nv/.ssh/id_rsa", True),
    ("{regex: '(?-s)/home/.*/\\.ssh/.*'}", "/home/u\nv/.ssh/id_rsa", False),
    ("{regex: '/a/.'}", "/a/\n", True),
    ("{glob: '/home/**/.ssh/**'}", "/home/u\nv/.ssh/id_rsa", True),
    ("{not: {glob: '/secret/**'}}", "/public/x", True),
    ("{not: {glob: '/secret/**'}}", "/secret/x", False),
    ("{glob: '/a/**', not: {endsWith: .key}}", "/a/x.txt", True),
    ("{glob: '/a/**', not: {endsWith: .key}}", "/a/x.key", False),
    ("{startsWith: /a/, endsWith: .txt}", "/a/x.txt", True),
    ("{startsWith: /a/, endsWith: .txt}", "/b/x.txt", False),
    ("{not: {not: /a}}", "/a", True),
]


@pytest.mark.parametrize(("matcher", "path", "expected"), MATCHER_CASES)
def test_path_matchers(matcher: str, path: str, expected: bool) -> None:
    p = policy(f"  - {{id: r, action: file.read, decision: allow, path: {matcher}}}\n")
    assert decide(p, file_read(path)) == (("allow", "r") if expected else ("deny", None))


def test_paths_are_case_sensitive() -> None:
    p = policy(
        "  - {action: file.read, decision: deny, path: {glob: '/secret/**'}}\n",
        "defaultAction: allow\n",
    )
    assert decide(p, file_read("/Secret/x"))[0] == "allow"
    assert decide(p, file_read("/secret/x"))[0] == "deny"


def test_rule_path_literals_are_normalised() -> None:
    p = policy("  - {id: r, action: file.read, decision: allow, path: /app//data/./x/}\n")
    assert decide(p, file_read("/app/data/x")) == ("allow", "r")


def test_all_matchers_of_a_rule_must_hold() -> None:
    p = policy(
        "  - {id: r, action: file.read, decision: allow, path: /a, agent: {glob: 'prod/*/*'}}\n"
    )
    assert decide(p, file_read("/a", agent="prod/sa/pod")) == ("allow", "r")
    assert decide(p, file_read("/a", agent="dev/sa/pod"))[0] == "deny"


def test_rule_on_a_field_the_request_lacks_does_not_match() -> None:
    p = policy("  - {id: r, action: process.exec, decision: allow, command: ls, cwd: /work}\n")
    assert decide(p, exec_(("ls",))) == ("deny", None)
    assert decide(p, exec_(("ls",), cwd="/work")) == ("allow", "r")


# -- args ---------------------------------------------------------------------------------

ARGS_CASES = [
    ("{prefix: [status]}", ("git", "status", "-s"), True),
    ("{prefix: [status]}", ("git", "-C", "/x", "status"), False),
    ("{prefix: [push, origin]}", ("git", "push", "origin", "main"), True),
    ("{prefix: [push, origin]}", ("git", "push"), False),
    ("{equals: [status, -s]}", ("git", "status", "-s"), True),
    ("{equals: [status]}", ("git", "status", "-s"), False),
    ("--force", ("git", "push", "origin", "--force"), True),  # any argument equals
    ("[--force, -f]", ("git", "push", "-f", "origin"), True),
    ("{glob: '--force*'}", ("git", "push", "--force-with-lease"), True),
    ("{not: {in: [--force, -f]}}", ("git", "push", "--force"), False),
    ("{not: {in: [--force, -f]}}", ("git", "push"), True),
    ("{regex: '--data.*'}", ("git", "--data=a\nb"), True),
    ("{regex: '(?-s)--data.*'}", ("git", "--data=a\nb"), False),
    ("{glob: '--data=*'}", ("git", "--data=a\nb"), True),
]


@pytest.mark.parametrize(("matcher", "argv", "expected"), ARGS_CASES)
def test_args_matchers(matcher: str, argv: tuple[str, ...], expected: bool) -> None:
    p = policy(
        f"  - {{id: r, action: process.exec, decision: allow, command: git, args: {matcher}}}\n"
    )
    assert decide(p, exec_(argv)) == (("allow", "r") if expected else ("deny", None))


# -- command names ----------------------------------------------------------------------

COMMAND_CASES = [
    ("git", "git", True),
    ("git", "/usr/bin/git", True),
    ("git", "/usr/local/bin/git", True),
    ("git", "/bin/git", True),
    ("git", "/tmp/x/git", False),
    ("git", "/work/git", False),  # what a normalised ./git looks like
    ("git", "/usr/bin/gitx", False),
    ("/usr/bin/git", "/usr/bin/git", True),
    ("/usr/bin/git", "git", False),
    ("/opt/tools/run", "/opt/tools/run", True),
    ("/opt/tools/run", "run", False),
]


@pytest.mark.parametrize(("rule_command", "argv0", "expected"), COMMAND_CASES)
def test_command_names_only_match_trusted_locations(
    rule_command: str, argv0: str, expected: bool
) -> None:
    p = policy(f"  - {{id: r, action: process.exec, decision: allow, command: '{rule_command}'}}\n")
    assert decide(p, exec_((argv0, "status"))) == (("allow", "r") if expected else ("deny", None))


def test_trusted_paths_are_configurable() -> None:
    p = policy(
        "  - {id: r, action: process.exec, decision: allow, command: tool}\n",
        "trustedPaths: [/opt/bin]\n",
    )
    assert decide(p, exec_(("/opt/bin/tool",))) == ("allow", "r")
    assert decide(p, exec_(("/usr/bin/tool",))) == ("deny", None)


def test_unanalysable_constructs_need_a_rule_naming_them() -> None:
    wide = policy("  - {id: any, action: process.exec, decision: allow, command: {glob: '*'}}\n")
    named = policy("  - {id: ev, action: process.exec, decision: allow, command: [eval, ls]}\n")
    construct = exec_(("eval",), constructs=("eval",))
    assert decide(wide, construct) == ("deny", None)
    assert decide(named, construct) == ("allow", "ev")
    default_allow = policy("  []\n", "defaultAction: allow\n")
    assert decide(default_allow, construct)[0] == "deny"


# -- precedence -------------------------------------------------------------------------

RULES = {
    "allow": "  - {id: allow-it, action: file.read, decision: allow, path: {glob: '/a/**'}}\n",
    "approve": "  - {id: ask-it, action: file.read, decision: require_approval, path: /a/x}\n",
    "deny": "  - {id: deny-it, action: file.read, decision: deny, path: {endsWith: x}}\n",
}


@pytest.mark.parametrize("order", list(itertools.permutations(RULES)))
def test_precedence_does_not_depend_on_rule_order(order: tuple[str, ...]) -> None:
    p = policy("".join(RULES[k] for k in order))
    assert decide(p, file_read("/a/x")) == ("deny", "deny-it")
    assert decide(p, file_read("/a/y")) == ("allow", "allow-it")


@pytest.mark.parametrize("order", list(itertools.permutations(["allow", "approve"])))
def test_require_approval_beats_allow(order: tuple[str, ...]) -> None:
    p = policy("".join(RULES[k] for k in order))
    assert decide(p, file_read("/a/x")) == ("require_approval", "ask-it")


def test_first_matching_rule_of_the_winning_kind_is_reported() -> None:
    p = policy(
        "  - {id: first, action: file.read, decision: deny, path: {glob: '/a/**'}}\n"
        "  - {id: second, action: file.read, decision: deny, path: /a/x}\n"
    )
    assert decide(p, file_read("/a/x")) == ("deny", "first")


def test_default_action_allow_and_deny() -> None:
    assert decide(policy("  []\n"), file_read("/x")) == ("deny", None)
    assert decide(policy("  []\n", "defaultAction: allow\n"), file_read("/x")) == ("allow", None)


def test_action_lists_and_wildcards() -> None:
    p = policy(
        "  - {id: files, action: 'file.*', decision: allow, path: {glob: '/w/**'}}\n"
        "  - {id: everything, action: '*', decision: deny, agent: evil}\n"
        "  - {id: two, action: [file.read, process.exec], decision: allow, agent: reader}\n"
    )
    assert decide(p, Subject("file.delete", {"path": ("/w/x",), "agent": ("a",)})) == (
        "allow",
        "files",
    )
    assert decide(p, file_read("/w/x", agent="evil")) == ("deny", "everything")
    assert decide(p, exec_(("ls",)))[0] == "deny"
    assert decide(p, file_read("/elsewhere", agent="reader")) == ("allow", "two")


def test_a_wildcard_rule_only_covers_actions_with_its_fields() -> None:
    p = policy("  - {id: paths, action: '*', decision: allow, path: {glob: '/w/**'}}\n")
    assert decide(p, file_read("/w/x")) == ("allow", "paths")
    assert "process.exec" not in p.rules[0].actions


def test_rules_are_indexed_by_action() -> None:
    p = policy(
        "  - {id: r1, action: file.read, decision: allow, path: /a}\n"
        "  - {id: r2, action: process.exec, decision: deny, command: rm}\n"
    )
    assert [r.id for r in p.by_action["file.read"].allow] == ["r1"]
    assert p.by_action["file.read"].deny == ()
    assert [r.id for r in p.by_action["process.exec"].deny] == ["r2"]


# -- k8s fields -------------------------------------------------------------------------


def test_k8s_resource_is_rbac_style() -> None:
    p = policy(
        "  - {id: pods, action: k8s.request, decision: allow, verb: [get, list], resource: pods}\n"
    )
    assert decide(p, k8s("get", "pods", "default", "web")) == ("allow", "pods")
    assert decide(p, k8s("get", "pods/exec", "default", "web")) == ("deny", None)
    assert decide(p, k8s("delete", "pods", "default", "web")) == ("deny", None)


# -- reasons and explain ----------------------------------------------------------------


def test_reasons_a_person_understands() -> None:
    p = policy(
        "  - {id: no-secrets, action: file.read, decision: deny, path: {glob: '/secret/**'}}\n"
        "  - {id: custom, action: file.read, decision: deny, path: /x, reason: 'x is off limits'}\n"
    )
    assert (
        evaluate_subject(p, file_read("/etc/shadow")).reason
        == "no rule allows file.read of /etc/shadow"
    )
    assert (
        evaluate_subject(p, file_read("/secret/k")).reason
        == "rule no-secrets denies file.read of /secret/k"
    )
    assert evaluate_subject(p, file_read("/x")).reason == "x is off limits"


def test_explain_lists_every_rule_considered_and_why() -> None:
    p = policy(
        "  - {id: data, action: file.read, decision: allow, path: {glob: '/app/data/**'}}\n"
        "  - {id: exec, action: process.exec, decision: deny}\n"
        "  - {id: owner, action: file.read, decision: allow, path: /x, agent: alice}\n"
    )
    trace: list[str] = []
    evaluate_subject(p, file_read("/etc/shadow"), trace=trace)
    assert len(trace) == 2  # the process.exec rule is not considered for file.read
    assert (
        'data [allow]: no match: path "/etc/shadow" does not match glob "/app/data/**"' in trace[0]
    )
    assert "owner [allow]: no match: path" in trace[1]
    trace = []
    evaluate_subject(p, file_read("/app/data/x"), trace=trace)
    assert trace[0].endswith("data [allow]: match")


# -- rate limits ------------------------------------------------------------------------


def test_spent_rate_limit_counts_as_a_matching_deny() -> None:
    p = policy(
        "  - {id: limited, action: file.read, decision: allow, path: /a, rateLimit: {count: 1, per: 60s}}\n"
        "  - {id: ask, action: file.read, decision: require_approval, path: /a}\n"
    )
    spent = evaluate_subject(p, file_read("/a"), exhausted=lambda rule: True)
    assert (spent.decision, spent.rule.id if spent.rule else None) == ("deny", "limited")
    assert "rate limit 1/60s of rule limited is spent" in spent.reason
    fresh = evaluate_subject(p, file_read("/a"), exhausted=lambda rule: False)
    assert fresh.decision == "require_approval"


def test_host_affixes_keep_their_meaning() -> None:
    p = policy(
        "  - {id: ten, action: network.request, decision: deny, host: {startsWith: '10.0.'}}\n"
        "  - {id: books, action: network.request, decision: deny, host: {endsWith: '.Bücher.de'}}\n",
        "defaultAction: allow\n",
    )

    def host(name: str) -> Subject:
        return Subject("network.request", {"host": (name,), "agent": ("a",)})

    assert decide(p, host("10.0.3.4")) == ("deny", "ten")
    assert decide(p, host("shop.xn--bcher-kva.de")) == ("deny", "books")
    assert decide(p, host("10.1.0.1"))[0] == "allow"
