"""POSIX classes in a glob's class (``[[:digit:]]``) mean what they mean to bash and
gitignore, never match the separator, and an unknown name is an error.

Found by the policy review of rt25 (finding 3): ``[[:digit:]]`` was read as the class
``[\\[:digit:]`` and a literal ``]``, so the deny ``/app/backup-[[:digit:]]*.sql``
denied nothing and validated cleanly.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.glob import GlobError, compile_glob
from sidecar.policy.loader import PolicyError, load_policy_bytes


def test_a_deny_with_a_posix_class_denies_what_it_names() -> None:
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules:\n"
        b"  - {id: backups, action: file.read, decision: deny,"
        b" path: {glob: '/app/backup-[[:digit:]]*.sql'}}\n",
        "posix.yaml",
    )
    read = {"action": "file.read", "path": "/app/backup-1.sql"}
    assert (evaluate_request(policy, read).decision, evaluate_request(policy, read).rule) == (
        "deny",
        "backups",
    )
    other = evaluate_request(policy, {**read, "path": "/app/backup-x.sql"})
    assert (other.decision, other.rule) == ("allow", None)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/a/[[:alpha:]]x", "/a/bx", True),
        ("/a/[[:alpha:]]x", "/a/:x", False),
        ("/a/[[:alpha:]]x", "/a/[x", False),
        ("/a/[[:alpha:]]x", "/a/1x", False),
        ("/a/[![:space:]]", "/a/x", True),
        ("/a/[![:space:]]", "/a/ ", False),
        ("/a/[![:space:]]", "/a/\n", False),
        ("/a/[[:digit:][:upper:]_]", "/a/_", True),
        ("/a/[[:digit:][:upper:]_]", "/a/Q", True),
        ("/a/[[:digit:][:upper:]_]", "/a/q", False),
        ("/a/[[:xdigit:]-]", "/a/-", True),  # a '-' after a class is a character
        ("/a/[[:xdigit:]-]", "/a/F", True),
        ("/a/[[:xdigit:]-]", "/a/g", False),
        ("/a/[[:lower:]]", "/a/é", False),  # ASCII only, as in gitignore and RE2
        # The separator is no member of a class, a named one included.
        ("/a/[[:punct:]]", "/a/.", True),
        ("/a/x[[:punct:]]y", "/a/x/y", False),
        ("/a/x[[:graph:]]y", "/a/x/y", False),
        ("/a/x[![:alnum:]]y", "/a/x/y", False),
        # '[:' with no ':]' after it is an ordinary '[', as in bash.
        ("/a/[[:]x", "/a/:x", True),
        ("/a/[[:]x", "/a/[x", True),
    ],
)
def test_posix_classes_in_path_globs(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, "/")(value) is expected


def test_a_named_class_in_a_host_glob_leaves_out_the_dot() -> None:
    test = compile_glob("a[[:punct:]]b.example.com", ".")
    assert test("a-b.example.com") is True
    assert test("a.b.example.com") is False


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/a/[[:digits:]]", "unknown class [:digits:]: the POSIX classes are alnum, alpha"),
        ("/a/[[:DIGIT:]]", "unknown class [:DIGIT:]"),
        ("/a/[[=e=]]", "[=e=] in a class is not supported; list the characters"),
        ("/a/[[.a.]]", "[.a.] in a class is not supported"),
        ("/a/[a-[:digit:]]", "a range cannot end in a class: [a-[:digit:]"),
        ("/a/[[:digit:]", "unclosed '[' class"),
    ],
)
def test_a_class_name_the_glob_does_not_know_is_an_error(pattern: str, message: str) -> None:
    with pytest.raises(GlobError, match="^" + message.replace("[", r"\[")):
        compile_glob(pattern, "/")


def test_policy_validate_names_an_unknown_class() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_bytes(
            b"version: 1\nrules:\n"
            b"  - {id: b, action: file.read, decision: deny, path: {glob: '/b/[[:num:]]'}}\n",
            "posix.yaml",
        )
    assert "rules[0] (id 'b'): path: glob: '/b/[[:num:]]': unknown class [:num:]" in str(
        caught.value
    )


def test_a_deny_of_a_program_with_a_posix_class_in_a_trusted_path_is_warned_of() -> None:
    # validate's sample names read [[:digit:]] as a digit: /usr/bin/python3 is matched,
    # python3 run by name is not.
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: py, action: process.exec, decision: deny,"
        b" command: {glob: '/usr/bin/python[[:digit:]]'}}\n",
        "posix.yaml",
    )
    [warning] = policy.warnings
    assert "glob '/usr/bin/python[[:digit:]]' matches programs by their path" in warning


def _refusal(rule: str) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy_bytes(f"version: 1\nrules:\n  - {rule}\n".encode(), "posix.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        # Refused for its ':' as "outside an IPv6 address (a port belongs in the port
        # field)", "IPv6 addresses cannot be globbed" or "is not a valid IPv6 address".
        (
            "api[[:digit:]].example.com",
            "[:digit:] are not supported in host globs; write the characters out: "
            "'api[0-9].example.com'",
        ),
        (
            "[[:alpha:]]*.example.com",
            "[:alpha:] are not supported in host globs; write the characters out: "
            "'[a-z]*.example.com'",
        ),
        (
            "[[:alnum:]]",
            "[:alnum:] are not supported in host globs; write the characters out: '[a-z0-9]'",
        ),
        (
            "a[[:punct:]]b.example.com",
            "[:punct:] are not supported in host globs; write the characters meant out (a "
            "host label holds a-z, 0-9, '-' and '_')",
        ),
        ("x[[=a=]]y.example.com", "[=a=] are not supported in host globs"),
    ],
)
def test_a_posix_class_in_a_host_glob_is_refused_as_such(glob: str, problem: str) -> None:
    message = _refusal(
        f"{{id: h, action: network.request, decision: deny, host: {{glob: '{glob}'}}}}"
    )
    assert (
        f"rules[0] (id 'h'): host: glob: {glob!r} is not a valid host: POSIX classes such as "
        f"{problem}"
    ) in message
    assert "IPv6" not in message and "port field" not in message


def test_the_host_glob_a_posix_class_refusal_suggests_loads_and_matches() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: h, action: network.request, decision: allow, host: {glob: 'api[0-9].example.com'}}\n",
        "posix.yaml",
    )
    request = {"action": "network.request", "url": "https://api7.example.com/"}
    assert evaluate_request(policy, request).decision == "allow"


def _decision(rule: str, request: dict[str, object]) -> str:
    policy = load_policy_bytes(f"version: 1\nrules:\n  - {rule}\n".encode(), "posix.yaml")
    return evaluate_request(policy, request).decision


GET = {"action": "network.request", "url": "https://a.example/", "method": "GET"}
LIST_PODS = {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/namespaces/a/pods"}}


@pytest.mark.parametrize(
    ("field", "glob", "asked"),
    [
        # Upper-cased, [[:alpha:]] became the unknown [[:ALPHA:]].
        ("method", "[[:alpha:]]*", GET),
        ("method", "[a-z]*", GET),
        ("verb", "[[:alpha:]]*", LIST_PODS),
    ],
)
def test_a_posix_class_in_a_method_or_verb_glob_means_what_was_written(
    field: str, glob: str, asked: dict[str, object]
) -> None:
    action = asked["action"]
    host = ", host: a.example" if action == "network.request" else ""
    rule = f"{{action: {action}, decision: allow{host}, {field}: {{glob: '{glob}'}}}}"
    assert _decision(rule, asked) == "allow"


@pytest.mark.parametrize(
    ("field", "glob"),
    [
        ("method", "[[:upper:]]*"),  # was upper-cased to the unknown [[:UPPER:]]
        ("method", "[![:lower:]]*"),
        ("verb", "[[:upper:]]*"),  # matched no verb: a deny rule that never denied
        # Negated, a case class taking the field's case flipped a deny of every verb
        # into one of none (rt26 r2-fixes, F1).
        ("verb", "[![:upper:]]*"),
        ("verb", "[^[:upper:]]*"),
        ("scheme", "[![:upper:]]*"),
        ("verb", "[[:digit:][:lower:]]*"),
    ],
)
def test_a_case_class_in_a_glob_of_a_field_matched_in_one_case_is_refused(
    field: str, glob: str
) -> None:
    action = "network.request, host: a.example" if field in ("method", "scheme") else "k8s.request"
    message = _refusal(f"{{id: c, action: {action}, decision: deny, {field}: {{glob: '{glob}'}}}}")
    case = "lower" if field in ("verb", "scheme") else "upper"
    named = "[:lower:]" if "[:lower:]" in glob else "[:upper:]"
    assert (
        f"rules[0] (id 'c'): {field}: glob: {glob!r}: {named} names a letter case, but every "
        f"{field} is matched in {case} case, so it holds for every letter or for none; write "
        "[:alpha:] for any letter"
    ) in message


def test_a_case_class_under_not_is_refused_too() -> None:
    message = _refusal(
        "{id: c, action: k8s.request, decision: deny, verb: {not: {glob: '[[:upper:]]*'}}}"
    )
    assert "[:upper:] names a letter case, but every verb is matched in lower case" in message


@pytest.mark.parametrize(("field", "name"), [("method", "[:UPPER:]"), ("verb", "[:ALPHA:]")])
def test_a_class_name_in_a_method_or_verb_glob_is_judged_as_written(field: str, name: str) -> None:
    # The verb's [[:ALPHA:]] was lower-cased to [[:alpha:]] and accepted; bash, git and a
    # path glob refuse it.
    action = "network.request, host: a.example" if field == "method" else "k8s.request"
    message = _refusal(
        f"{{id: c, action: {action}, decision: allow, {field}: {{glob: '[{name}]*'}}}}"
    )
    assert f"rules[0] (id 'c'): {field}: glob: '[{name}]*': unknown class {name}" in message
