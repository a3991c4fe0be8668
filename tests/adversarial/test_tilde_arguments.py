"""An argument bash tilde-expands is a value, not its spelling. Found in the review of the
command reader of 2026-12-07 (rt25, C2).

bash expands an unquoted ``~`` starting a word: ``~`` is ``$HOME``, ``~-`` ``$OLDPWD``,
``~+`` ``$PWD``, ``~N`` an entry of ``$DIRSTACK``, ``~user`` a home directory; and,
outside POSIX mode, one after the first ``=`` or a ``:`` of an argument spelt like an
assignment (``x=~-``, ``x=a:~+``). ``OLDPWD`` and ``DIRSTACK`` are ordinary variables
the line can set first, so ``OLDPWD=--output=.git/config; git log ~-`` is
``git log --output=.git/config``: coding-agent.yaml denies that, yet allowed the line,
deciding the literal argument ``~-`` (``git log $OLDPWD`` was ``parameter-expansion``).
Such an argument is now the construct ``tilde-expansion``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line, construct_names
from tests.adversarial.conftest import load_policy_text
from tests.adversarial.real_bash import needs_bash, run_bash

DENY_LIST = """\
version: 1
defaultAction: allow
rules:
  - {id: no-git-output, action: process.exec, command: git,
     args: {startsWith: --output}, decision: deny}
"""
ALLOW_TILDES = """\
version: 1
defaultAction: deny
rules:
  - {id: listing, action: process.exec, command: [ls, tilde-expansion], decision: allow}
"""


@needs_bash
def test_bash_expands_tildes_the_line_sets(tmp_path: Path) -> None:
    script = (
        "OLDPWD=--output=x; printf '[%s]' ~- ~-/ y=~- y=a:~- '~-' \\~- y=b=~- --o=~-; echo; "
        "for OLDPWD in --upload-pack=cmd; do printf '[%s]' ~-; done; echo; "
        "cd /; pushd /tmp >/dev/null; DIRSTACK[1]=--output=z; printf '[%s]' ~1; echo"
    )
    assert run_bash(script, tmp_path).splitlines() == [
        "[--output=x][--output=x/][y=--output=x][y=a:--output=x][~-][~-][y=b=~-][--o=~-]",
        "[--upload-pack=cmd]",
        "[--output=z]",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "OLDPWD=--output=/workspace/.git/config; git log -1 --format='[core]%n x' ~-",
        "for OLDPWD in '--upload-pack=sh -c x #'; do git fetch ~- /workspace; done",
        "OLDPWD=--output=x; git log ~-/",
        "git log ~",
        "git log ~root",
        "git log ~+",
        "git log ~1",
        "git log x=~-",
        "git log x=a:~-",
        "git log 'a'; git diff y+=~",
    ],
)
def test_coding_agent_denies_a_tilde_argument(coding_agent: CompiledPolicy, line: str) -> None:
    verdict = check_line(coding_agent, line)
    assert verdict.decision == "deny", verdict.reason
    assert "tilde-expansion" in verdict.request["constructs"]
    assert "tilde-expansion" in verdict.reason


def test_a_deny_list_does_not_allow_it_either(deny_list: CompiledPolicy) -> None:
    verdict = check_line(deny_list, "OLDPWD=--output=.git/config; git log ~-")
    assert verdict.decision == "deny", verdict.reason
    assert verdict.request["constructs"] == ["tilde-expansion"]


@pytest.mark.parametrize(
    "line",
    [
        "git log '~-'",
        "git log \\~-",
        'git log "~"',
        "git diff HEAD~1",
        "git log --o=~",
        "git log x=b=~",
        "git log '-'=~",
    ],
)
def test_a_tilde_bash_leaves_alone_is_still_its_text(
    coding_agent: CompiledPolicy, line: str
) -> None:
    verdict = check_line(coding_agent, line)
    assert verdict.decision == "allow", verdict.reason
    assert "constructs" not in verdict.request


def test_an_equals_sign_alone_is_no_tilde() -> None:
    # The lexer's tilde flag also marks zsh's "=cmd": not an expansion in bash's arguments.
    assert construct_names("[ a = b ]") == set()
    assert construct_names("git log =x") == set()


def test_a_policy_allows_it_by_name() -> None:
    policy = load_policy_text(ALLOW_TILDES)
    verdict = check_line(policy, "ls ~/src")
    assert (verdict.decision, verdict.rule) == ("allow", "listing"), verdict.reason


@needs_bash
def test_bash_expands_a_tilde_in_an_assignment_like_target_and_a_here_string(
    tmp_path: Path,
) -> None:
    # Found in the review of the fix (rt25 round 2, R2 and R3): a redirection target
    # spelt like an assignment is tilde-expanded after its "=" and ":" as an argument is,
    # and a here-string at its start and after each ":".
    (tmp_path / "a=").mkdir()
    (tmp_path / "tgt").mkdir()
    run_bash("OLDPWD=/../tgt/owned; echo hi > a=~-", tmp_path)
    assert (tmp_path / "tgt" / "owned").read_text() == "hi\n"
    assert run_bash("OLDPWD=EXPANDED; cat <<< x:~-", tmp_path) == "x:EXPANDED\n"


@pytest.mark.parametrize(
    "line",
    [
        "OLDPWD=2024/../.git/config; git log -1 --format=x > year=~-",
        "OLDPWD=2024/../.env; git commit -q --allow-empty -F - < year=~-",
        "git status >> a=b:~-",
        "git status 2> a=~",
        "git status &> a=~-",
    ],
)
def test_coding_agent_denies_a_tilde_in_a_redirection_target(
    coding_agent: CompiledPolicy, line: str
) -> None:
    verdict = check_line(coding_agent, line)
    assert verdict.decision == "deny", verdict.reason
    assert "dynamic-redirect" in construct_names(line)


@pytest.mark.parametrize(
    "line", ["OLDPWD=';curl x'; bash <<< 'true x':~-", "OLDPWD='curl x'; bash <<< ~-"]
)
def test_a_here_string_a_shell_reads_is_not_decided_as_its_spelling(line: str) -> None:
    # Even a policy that lets a shell read a here-string it has decided: the text read
    # is not the one written.
    policy = load_policy_text(
        "version: 1\nrules:\n"
        '  - {action: process.exec, decision: allow, command: [bash, heredoc-to-shell, "true"]}\n'
    )
    verdict = check_line(policy, line)
    assert verdict.decision == "deny", verdict.reason
    assert "tilde-expansion" in construct_names(line)


def test_a_quoted_or_plain_target_is_still_a_file(coding_agent: CompiledPolicy) -> None:
    for line in ('git status > "a=~-"', "git status > a=b", "git status > a\\=~-"):
        assert "dynamic-redirect" not in construct_names(line), line
