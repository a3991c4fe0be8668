"""Text that bash and POSIX sh (dash) read differently, found by the red-team review of
2026-12-07: bash reads ``$'\\' ; PAYLOAD #'`` as one quoted word, dash as ``$``, the
quoted ``'\\'`` and then ``; PAYLOAD`` as commands. The gate reads every command line both
ways, and keeps of dash's reading the lines before dash's own syntax error. Each line
below hid its payload behind a construct this reader took for a syntax error where dash
has none, or took one a line too early, and was allowed as ``git status`` by
policies/coding-agent.yaml; run by dash, each runs its payload. Now each is denied for
the payload or refused.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.shell_lexer import ShellReaderLimit
from sidecar.normalise.shell_parser import parse_script
from sidecar.policy.loader import load_policy_bytes, load_policy_file

POLICY = Path(__file__).parents[2] / "policies" / "coding-agent.yaml"
DASH = shutil.which("dash")

HIDDEN = {
    # dash takes a simple command as a function's body; bash wants a compound one.
    "function-body": "git status $'\\' ; f() touch MARK ; f #'",
    # An error in the next line's first token dropped the line before, which dash runs.
    "next-line": "git status $'\\' ; touch MARK\n\" #'",
    # "${ cmd; }" is bash 5.3's and ksh's; to dash it is a bad substitution at run time.
    "dollar-brace-space": "git status $'\\' ; touch MARK ; ${ ( } #'",
    # Here-document delimiters this reader cannot read, which dash takes as written.
    "delimiter-backquote": "git status $'\\' ; touch MARK ; <<E` #'",
    "delimiter-dollar-brace": "git status $'\\' ; touch MARK ; <<E${ #'",
}
LINES = {**HIDDEN, **{f"{name} in sh -c": f"sh -c {shlex.quote(t)}" for name, t in HIDDEN.items()}}


@pytest.mark.parametrize("line", LINES.values(), ids=LINES.keys())
def test_a_payload_only_dash_runs_is_never_allowed(line: str) -> None:
    request = {"action": "process.exec", "commandLine": line, "cwd": "/workspace"}
    try:
        verdict = evaluate_request(load_policy_file(str(POLICY)), request)
    except RequestError:
        return  # refused: a deny
    assert verdict.decision == "deny"
    assert "touch MARK (in sh -c script, as POSIX sh reads it)" in verdict.reason or (
        "touch MARK (as POSIX sh reads it)" in verdict.reason
    )


@pytest.mark.skipif(DASH is None, reason="dash is not installed")
@pytest.mark.parametrize("line", HIDDEN.values(), ids=HIDDEN.keys())
def test_dash_does_run_each_payload(line: str, tmp_path: Path) -> None:
    # What makes the lines above worth refusing: dash runs the payload.
    subprocess.run([DASH, "-c", line], cwd=tmp_path, capture_output=True, timeout=10)
    assert (tmp_path / "MARK").exists()


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ('echo a\n"', 1),  # dash runs line 1, then fails on line 2
        ("echo a\necho b\n<(", 2),
        ("echo a; f() echo b", 2),
        ("echo a; ${ ( }", 2),
    ],
)
def test_dash_reading_keeps_what_dash_runs(text: str, items: int) -> None:
    assert len(parse_script(text, max_depth=20, posix=True).items) == items


@pytest.mark.parametrize("text", ["echo a; <<E`", "echo a; <<E${", "echo a; <<'E"])
def test_a_here_document_delimiter_this_reader_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(ShellReaderLimit, match="unsupported here-document delimiter"):
        parse_script(text, max_depth=20, posix=True)


@pytest.mark.parametrize(
    "line",
    [
        # $'...' without an escaped quote spans the same text in both shells: dash's
        # own syntax error still ends its reading, and bash's reading decides.
        "while IFS= read -r -d $'\\0' f; do echo $f; done < <(find . -print0)",
        "arr=($'a' b); echo ${arr[0]}",
        "cat <<< $'a\\nb'",
    ],
)
def test_bash_only_syntax_beside_a_plain_ansi_c_word_is_still_read(line: str) -> None:
    request = {"action": "process.exec", "commandLine": line, "cwd": "/workspace"}
    verdict = evaluate_request(load_policy_file(str(POLICY)), request)
    assert verdict.decision == "deny"  # by the policy, not refused as unreadable


# Found in the second red-team review of 2026-12-07: each hid `touch MARK` from a policy
# that allows one construct by name (coding-agent.yaml plus an allow of it).
ONE_CONSTRUCT = {
    # dash and bash --posix take ' as a plain character in "${x:-'}" (quotes only in a
    # pattern, "${x#'a}'}"), so the expansion ends at the first }.
    "single quote in a double-quoted default": (
        "parameter-expansion",
        'git status "${x:-\'}" ; touch MARK ; git status "\'}"',
    ),
    "the same in bash --posix": (
        "parameter-expansion",
        "bash --posix -c 'git status \"${x+'\"'\"'}\" ; touch MARK ; git status \"'\"'\"'}\"'",
    ),
    "the same in bash -o posix": (
        "parameter-expansion",
        "bash -o posix -c 'git status \"${x:='\"'\"'}\" ; touch MARK ; git status \"'\"'\"'}\"'",
    ),
    # dash reads a here-document's $(...) from the raw lines: a comment ends at the
    # newline a backslash would have removed.
    "comment continued in a here-document's substitution": (
        "command-substitution",
        "git status <<E\n$(git status #\\\ntouch MARK\n)\nE",
    ),
    # With extglob on, touc!() is a pattern naming /usr/bin/touch, not a function.
    "extglob pattern taken for a function": (
        "function-definition",
        "bash -O extglob -c '/usr/bin/touc!() case MARK in esac'",
    ),
}


@pytest.mark.parametrize(("construct", "line"), ONE_CONSTRUCT.values(), ids=ONE_CONSTRUCT.keys())
def test_a_payload_behind_an_allowed_construct_is_never_allowed(construct: str, line: str) -> None:
    text = POLICY.read_text() + (
        f"\n  - {{id: c, action: process.exec, command: {construct}, decision: allow}}\n"
    )
    policy = load_policy_bytes(text.encode(), "coding-agent-plus.yaml")
    request = {"action": "process.exec", "commandLine": line, "cwd": "/workspace"}
    try:
        verdict = evaluate_request(policy, request)
    except RequestError:
        return  # refused: a deny
    assert verdict.decision == "deny"
    assert "touch MARK" in verdict.reason


@pytest.mark.parametrize(("construct", "line"), ONE_CONSTRUCT.values(), ids=ONE_CONSTRUCT.keys())
def test_a_real_shell_runs_each_payload(construct: str, line: str, tmp_path: Path) -> None:
    shell = shutil.which("bash" if line.startswith("bash") else "dash")
    if shell is None:
        pytest.skip("the shell is not installed")
    subprocess.run([shell, "-c", line], cwd=tmp_path, capture_output=True, timeout=10)
    assert (tmp_path / "MARK").exists()


def test_a_double_quoted_pattern_still_quotes() -> None:
    # "${x#'a}'}" is one expansion in both shells: nothing after it is a command.
    policy = load_policy_file(str(POLICY))
    line = "git status \"${x#'a}'}\""
    request = {"action": "process.exec", "commandLine": line, "cwd": "/workspace"}
    commands = evaluate_request(policy, request).request["commands"]
    assert [command[:2] for command in commands] == [["git", "status"]]


def test_posixly_correct_is_an_environment_override() -> None:
    policy = load_policy_file(str(POLICY))
    request = {"action": "process.exec", "commandLine": "POSIXLY_CORRECT=1 bash -c 'git status'"}
    verdict = evaluate_request(policy, {**request, "cwd": "/workspace"})
    assert verdict.decision == "deny" and "environment-override" in verdict.reason
