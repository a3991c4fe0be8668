"""Line breaks and blank ends where the policy gives a name or path outside a matcher
(rt25 r2-policy review, 7), and line breaks inside a matcher value (6).

A value written as a YAML block keeps line breaks: at its end (``|``) it made
``trustedPaths`` hold ``"/usr/bin\\n"``, so ``command: curl`` no longer matched
/usr/bin/curl while the file visibly listed /usr/bin.
"""

from __future__ import annotations

import pytest

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
            "trustedPaths[1]: '/usr/bin\\n' ends with a line break (as a YAML `|` or `>` "
            "block leaves one): remove it",
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
