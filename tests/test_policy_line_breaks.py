"""Line breaks and blank ends where the policy gives a name or path outside a matcher
(rt25 r2-policy review, 7), and line breaks inside a matcher value (6).

A value written as a YAML block keeps line breaks: at its end (``|``) it made
``trustedPaths`` hold ``"/usr/bin\\n"``, so ``command: curl`` no longer matched
/usr/bin/curl while the file visibly listed /usr/bin.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import PolicyError, load_policy_bytes

KEY = "RjjpdC8J+AOq7kUEJXgk7jcDanlpcs7kSSE5IOB8Xdg="


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_bytes(text.encode(), "p.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("trusted", "problem"),
    [
        (
            '["/usr/local/bin", "/usr/bin\\n", /bin]',
            "trustedPaths[1]: '/usr/bin\\n' ends with a line break: remove it (a YAML `|` "
            "or `>` block keeps one: write `|-` or `>-`)",
        ),
        (
            "\n  - |\n    /opt/tools/bin\n",
            "trustedPaths[0]: '/opt/tools/bin\\n' ends with a line break",
        ),
        (
            '[" /opt/tools/bin"]',
            "trustedPaths[0]: ' /opt/tools/bin' starts with whitespace (' '), almost "
            "surely by mistake; remove it",
        ),
    ],
)
def test_a_trusted_path_with_a_blank_end_is_refused(trusted: str, problem: str) -> None:
    problems = _problems(f"version: 1\ntrustedPaths: {trusted}\nrules: []\n")
    assert [p for p in problems if p.startswith("trustedPaths")] == [
        next(p for p in problems if p.startswith(problem))
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ('" alice\\n"', "' alice\\n' starts with whitespace (' ')"),
        ('"alice\\n"', "'alice\\n' ends with a line break"),
        ("|\n        alice", "'alice\\n' ends with a line break"),
    ],
)
def test_an_approver_name_with_a_blank_end_is_refused(name: str, problem: str) -> None:
    text = (
        "version: 1\nrules: []\napprovals:\n  approvers:\n"
        f"    - name: {name}\n      publicKey: {KEY}\n"
    )
    (found,) = _problems(text)
    assert found.startswith(f"approvals.approvers[0].name: {problem}")


def test_names_and_paths_with_inner_spaces_still_load() -> None:
    policy = load_policy_bytes(
        (
            "version: 1\ntrustedPaths: [/opt/my tools/bin, /usr/bin]\nrules: []\n"
            f"approvals:\n  approvers:\n    - name: Alice Smith\n      publicKey: |\n        {KEY}\n"
        ).encode(),
        "p.yaml",
    )
    assert policy.trusted_paths == ("/opt/my tools/bin", "/usr/bin")
    assert policy.approvals is not None
    assert policy.approvals.approvers[0].name == "Alice Smith"


INNER = (
    "holds a line break: a YAML `|` or `>` block is one value, not one per line; for "
    "several values write a list (`in: [a, b]` or one item a line after `-`), and a regex "
    "that must match a line break writes `\\n`"
)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        # Found in review (rt25 r2-policy, 6): a list written as a `|-` block loaded as
        # one value and denied neither path.
        (
            "action: file.read\n    path: |-\n      /etc/shadow\n      /etc/gshadow\n",
            "path: equals: '/etc/shadow\\n/etc/gshadow' " + INNER,
        ),
        (
            "action: file.read\n    path:\n      regex: |-\n        .*/id_rsa\n        .*/id_ed25519\n",
            "path: regex: '.*/id_rsa\\n.*/id_ed25519' " + INNER,
        ),
        (
            'action: process.exec\n    command: {not: {in: [git, "curl\\nwget"]}}\n',
            "command: in: 'curl\\nwget' " + INNER,
        ),
        (
            'action: network.request\n    host: {glob: "*.a.com\\r\\n*.b.com"}\n',
            "host: glob: '*.a.com\\r\\n*.b.com' " + INNER,
        ),
        (
            'action: k8s.request\n    namespace: {startsWith: "kube-\\nsystem"}\n',
            "namespace: startsWith: 'kube-\\nsystem' " + INNER,
        ),
    ],
)
def test_a_line_break_inside_a_matcher_value_is_refused(fields: str, problem: str) -> None:
    text = f"version: 1\nrules:\n  - id: d\n    decision: deny\n    {fields}"
    assert f"rules[0] (id 'd'): {problem}" in _problems(text)


def test_a_regex_matches_a_line_break_by_its_escape_and_an_argument_may_hold_one() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: nl, action: file.read, decision: deny, path: {regex: '/a\\nb'}}\n"
        b"  - {id: msg, action: process.exec, decision: deny, command: git,\n"
        b'     args: {prefix: [commit, -m, "two\\nlines"]}}\n',
        "p.yaml",
    )
    assert evaluate_request(policy, {"action": "file.read", "path": "/a\nb"}).rule == "nl"
    request = {"action": "process.exec", "argv": ["git", "commit", "-m", "two\nlines"]}
    assert evaluate_request(policy, request).rule == "msg"


FOLDED = """\
version: 1
rules:
  - id: no-keys
    action: file.read
    decision: deny
    reason: >
      a reason folded
      over two lines
    path:
      regex: >-  # one regex
        .*/\\.ssh/(id_rsa|id_ed25519|
        authorized_keys)
  - id: one-line
    action: file.read
    decision: deny
    path: >-
      /etc/shadow
"""


def test_a_matcher_value_folded_over_lines_is_warned_of() -> None:
    # The fold made the regex '...|id_ed25519| authorized_keys)': it loaded and never
    # matched /root/.ssh/authorized_keys. A space may be meant, so it is a warning.
    policy = load_policy_bytes(FOLDED.encode(), "p.yaml")
    assert policy.warnings == (
        "rules[0] (id 'no-keys'): path: line 10: written as a folded block (`>`), which "
        "reads each line break as a space; a value is seldom meant so (a regex folded "
        "over two lines matches a space where it broke): write it on one line, or as a "
        "list for several values",
    )
    request = {"action": "file.read", "path": "/root/.ssh/authorized_keys"}
    assert evaluate_request(policy, request).rule is None
