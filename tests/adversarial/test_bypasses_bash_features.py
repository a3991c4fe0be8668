"""Bypasses of the shell analysis found by walking through the bash manual feature by
feature (quoting, expansions, redirections, builtins, shell variables and options,
invocation), with spot checks of zsh. Found in the fourth pass of the red-team review of
2026-12-05.

* ``$'...'``: the lexer decoded escapes while looking for the closing quote, but bash
  first finds the closing quote (a backslash escapes the one character after it) and
  only then decodes. ``\\c`` takes the next character, and in ``$'\\c\\\\'`` both
  backslashes (POSIX's control-backslash), so the lexer read the quote after them as
  escaped and the rest of the line as part of the word: ``git status $'\\c\\\\' ; rm -rf
  / # '`` was one ``git status`` to the gate, and ``bash -lc`` with it (a login shell,
  which coding-agent allows) ran ``rm``. ``$'a\\c'`` (``\\c`` before the quote) did the
  same. bash's ``\\x{HHH}`` was not decoded either: ``$'\\x{72}m' -rf /`` was a program
  named ``\\x{72}m``, not ``rm``, and ``> $'/etc/shadow\\x{'`` (``\\x{`` with no digit is a
  NUL, which ends the name) a write of ``/etc/shadow\\x{``: a deny-list let both through.
  A differential test against the real bash is kept below (ASCII results; bytes above
  0x7f are left, see the end).
* ``!(cmd)``: a negated subshell, but with extglob on (``bash -O extglob -lc``, which
  coding-agent allows as a login shell, or ``shopt -s extglob`` on an earlier line) bash
  reads ``!(git status)`` as a pattern in command position and runs the first file of
  the directory with the others as its arguments. It is now refused (400); ``! (cmd)``
  is the same subshell and still analysed.
* ``exec -a git-push git status``: git runs a ``git-NAME`` argv[0] as ``git NAME`` (and
  busybox the applet argv[0] names), so this pushes; coding-agent allowed it as ``git
  status``, since ``exec`` is stripped. An argv[0] naming another program (``exec -a``,
  runit's ``chpst -b``, ``bwrap --argv0``) is now ``dynamic-command``, and zsh's
  ``ARGV0=...``, which does the same for the next command, ``environment-override``.
* ``${NAME:=value}`` and ``${NAME=value}`` assign NAME when it is unset: ``: ${CDPATH:=
  /tmp/planted}; cd workspace && git status`` changes into ``/tmp/planted/workspace``.
  A policy that allows the ``parameter-expansion`` construct (values it cannot see)
  allowed this assignment of a risky variable with it; it is now ``environment-override``
  (any name for ``${!ref:=value}``).
* ``pushd -n DIR`` only adds DIR to the stack; the analysis moved the shell there, so
  ``pushd -n /workspace && git status`` from ``/workspace/sub`` matched a rule pinned to
  ``cwd: /workspace``.
* ``SSH_CLIENT=x bash -c '...'`` (or ``SSH2_CLIENT``): Debian's bash takes itself for a
  command run by sshd and first runs ~/.bashrc, a startup file the ``startup-files``
  construct exists to show; it was not reported. Both names are now
  ``environment-override``.
* ``> /dev/tcp/169.254.169.254/80``: bash connects to the host instead of opening a
  file, and the gate decided only the ``file.write`` of that name. baseline's guard rails
  against the metadata service and the API server are ``network.request`` rules, which
  its header says keep holding under broad allow rules: with ``file.*`` of ``/**``
  allowed, the redirection reached the metadata service. It is now also the construct
  ``network-redirect``.
* zsh scripts are read as bash, and zsh reads ``>!FILE`` (``>>!``, ``&>!``) as ``>|``,
  "write FILE even with noclobber", where bash writes a file named ``!FILE``:
  ``zsh -c 'git diff --name-only >!.git/config'`` (coding-agent allows zsh as a shell
  with startup files) was a write of ``/workspace/!.git/config``, past the rule that
  keeps the agent out of ``.git``, while zsh wrote ``.git/config`` with file names the
  agent chose. A write target starting with ``!`` is now ``dynamic-redirect``. zsh also
  takes its comment character from ``$histchars``: ``histchars`` is now an override.
  zsh's (and ksh's) ``r`` is ``fc -e -``, which runs the last history entry again
  (``print -s 'rm -rf /'; r``): now ``eval`` like ``fc``; zsh's ``integer`` and
  ``float`` (``typeset -i``/``-F``) evaluate every value as arithmetic, like ``declare
  -i``: now ``arithmetic``. (zsh is not installed where this was written: these are
  from the zsh manual, and their tests check the analysis only.)
* ``$"word"`` is translated when bash reads the line, through the catalogue
  ``$TEXTDOMAIN`` in ``$TEXTDOMAINDIR``, in any locale but C and POSIX (``C.UTF-8``, the
  usual default of images, included): ``TEXTDOMAINDIR=/workspace/loc TEXTDOMAIN=x`` on
  one line and ``git $"status"`` on the next runs whatever word the agent's catalogue
  gives. Both names are now ``environment-override``.
* ``HISTFILE=FILE``: with history on (``set -o history``), bash writes the lines it ran
  to $HISTFILE when it exits, a file write the gate never saw (``HISTFILE=/etc/x; set -o
  history`` then any command). ``HISTFILE`` is now an ``environment-override``.

Looked at and found holding (no change): the places bash reads a number without
arithmetic (``test``/``[ -eq``, ``shift``, ``return``, ``break``, ``exit``, ``ulimit``,
``printf %d``/``%*d``/``%(...)T``, ``read -t/-n/-u``, ``mapfile -n/-O``, ``kill -l/-s``,
``trap -p``, ``wait -n``, ``umask``, ``pushd +N``, ``history N``, ``jobs``: bash answers
"invalid number" and runs nothing) and the arithmetic ones, all reported (``[[ -eq ]]``,
``[[ -v ]]``, ``test -v``, ``printf -v``, ``read``, ``mapfile``, ``unset``, ``getopts``,
``wait -p``, ``declare``/``local``/``export``/``readonly`` with a subscript, ``declare
-i``, ``let``, ``(( ))``, ``for (( ))``, ``a[i]=``, ``${a[i]}``, ``${x:n}``, ``${!x}``);
namerefs, ``mapfile -C``, ``trap``, ``complete``/``compgen -C``, ``fc``, ``history``,
``bind -x``, ``enable -f``, ``hash -p``, ``alias``, each also quoted (``\\eval``,
``'eval'``) and behind ``builtin``/``command``/``exec``/``time``/``coproc``; risky
variables set by ``for``, ``select``, ``read``, ``getopts``, ``mapfile``, ``printf
-v``, ``wait -p``, ``unset``, ``export -n``, ``{NAME}>&-`` and ``coproc NAME``;
``>|``, ``&>``, ``&>>``, ``<>``, ``>&FILE``, ``{fd}>``, here-documents and here-strings
with expansions, process substitution, brace expansion in words and redirection
targets, globs in redirection targets; ``PS3`` (select does not expand it);
``shopt -u interactive_comments`` (a non-interactive bash takes comments regardless);
``POSIXLY_CORRECT``/``set -o posix`` (nothing the analysis relies on changes);
``shopt -s execfail`` (the commands after ``exec`` are reported anyway); extglob
patterns anywhere else (``@(...)`` and the rest do not parse here: 400); ``PWD=...``
(``cd`` keeps its own idea of the directory), ``OLDPWD``/``cd -``, ``DIRSTACK`` and
``~N`` (unknown directories); ``exec -a`` behind ``command``/``builtin``; a NUL from
``$'\\0'``/``$'\\x{}'`` ends only its own piece of the word (``$'a\\0b'c`` is ``ac``),
as here. A generated differential of command lines built from quoting, expansion,
redirection and keyword pieces (marker functions, an empty PATH) found no command bash
ran that the analysis neither reported nor covered with a construct.

Left as they are (in the report): bash 5.3's ``enable NAME`` loads a builtin from
``$BASH_LOADABLES_PATH`` (which ends in ``.``) when NAME is not one; bash 5.2 here does
not. ``$'...'`` escapes above 0x7f (``\\xe9``, ``\\u00e9`` in a C locale, ``\\c`` before a
non-ASCII character) decode to other text than bash's bytes. zsh scripts are still read
as bash: the zsh findings above are spot checks, not a model of zsh.
"""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.shell_parser import ShellSyntaxError, parse_script
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from tests.adversarial.command_lines import analyse, construct_names
from tests.adversarial.real_bash import BASH, needs_bash, run_bash

POLICIES = Path(__file__).resolve().parents[2] / "policies"

ALLOW_LIST = """
    version: 1
    defaultAction: deny
    rules:
      - id: git-status
        action: process.exec
        command: git
        cwd: /workspace
        args: {prefix: [status]}
        decision: allow
      - {id: builtins, action: process.exec, command: [":", cd, pushd], decision: allow}
      - {id: values, action: process.exec, command: parameter-expansion, decision: allow}
"""

DENY_LIST = """
    version: 1
    defaultAction: allow
    rules:
      - {id: no-rm, action: process.exec, command: rm, decision: deny}
      - {id: no-shadow, action: "file.*", path: /etc/shadow, decision: deny}
"""


# A rule that allows the scripts of shells the analysis reads as bash (zsh, ksh ...): a
# policy taking that reading still denies what the gate finds inside the script.
ALLOW_UNMODELLED_SHELLS = (
    "  - {id: other-shells, action: process.exec, command: unmodelled-shell, decision: allow}\n"
)


@pytest.fixture(scope="module")
def coding_agent_with_zsh() -> CompiledPolicy:
    text = (POLICIES / "coding-agent.yaml").read_text(encoding="utf-8") + ALLOW_UNMODELLED_SHELLS
    return load_policy_bytes(text.encode(), "coding-agent-with-zsh.yaml")


@pytest.fixture(scope="module")
def deny_list_with_zsh() -> CompiledPolicy:
    text = textwrap.dedent(DENY_LIST) + ALLOW_UNMODELLED_SHELLS
    return load_policy_bytes(text.encode(), "deny-list-with-zsh.yaml")


def _exec(policy: CompiledPolicy, line: str, cwd: str = "/workspace") -> tuple[str, str]:
    request: dict[str, Any] = {"action": "process.exec", "cwd": cwd, "commandLine": line}
    verdict = evaluate_request(policy, request)
    return verdict.decision, verdict.reason


# -- $'...': where the quote ends, then what it decodes to --------------------------------

DESYNC = "echo A $'\\c\\\\' ; echo DESYNC-RAN # '"
DESYNC_AT_THE_QUOTE = "echo A $'a\\c' ; echo DESYNC-RAN # '"


@needs_bash
@pytest.mark.parametrize("line", [DESYNC, DESYNC_AT_THE_QUOTE])
def test_bash_ends_the_quote_before_decoding_it(tmp_path: Path, line: str) -> None:
    assert "DESYNC-RAN" in run_bash(line, tmp_path)


@needs_bash
def test_bash_decodes_a_braced_hex_escape(tmp_path: Path) -> None:
    assert run_bash("$'\\x{65}cho' BRACE-HEX-RAN", tmp_path) == "BRACE-HEX-RAN\n"
    # \x{ without a digit is a NUL, which ends the file name: this writes "out".
    run_bash("echo x > $'out\\x{'", tmp_path)
    assert (tmp_path / "out").read_text() == "x\n"


@pytest.mark.parametrize(
    "line",
    [
        "git status $'\\c\\\\' ; rm -rf / # '",
        "git status $'a\\c' ; rm -rf / # '",
        "git status $'\\c\\'' ; rm -rf / # '",
    ],
)
def test_a_quote_after_a_control_escape_ends_the_word(line: str) -> None:
    # As bash reads it (dash, which has no $'...', found rm before too).
    as_bash = [c.argv for c in analyse(line).commands if "POSIX" not in c.label]
    assert ("rm", "-rf", "/") in as_bash


@pytest.mark.parametrize(
    "line",
    [
        "bash -lc \"git status \\$'\\\\c\\\\\\\\' ; rm -rf / # '\"",
        "bash -lc \"git status \\$'a\\\\c' ; rm -rf / # '\"",
    ],
)
def test_coding_agent_denies_a_login_shell_hiding_a_command_after_a_control_escape(
    coding_agent: CompiledPolicy, line: str
) -> None:
    decision, reason = _exec(coding_agent, line)
    assert decision == "deny"
    assert "rm -rf /" in reason


@pytest.mark.parametrize(
    ("line", "decoded"),
    [
        ("$'\\x{72}m' -rf /", "rm"),
        ("$'\\x{0072}m' -rf /", "rm"),
        ("$'\\x{172}m' -rf /", "rm"),  # the low byte
        ("$'\\x{72m' -rf /", "rm"),  # the closing brace is optional
        ("$'\\cA'", "\x01"),
        ("$'\\c?'", "\x7f"),
        ("$'\\c'", "\\c"),
    ],
)
def test_ansi_c_escapes_decode_as_bash_decodes_them(line: str, decoded: str) -> None:
    assert analyse(line).commands[0].argv[0] == decoded


def test_a_deny_list_sees_a_braced_hex_escape(deny_list: CompiledPolicy) -> None:
    assert _exec(deny_list, "$'\\x{72}m' -rf /")[0] == "deny"
    verdict = evaluate_request(
        deny_list,
        {"action": "process.exec", "cwd": "/workspace", "commandLine": "true > $'/etc/shadow\\x{'"},
    )
    assert (verdict.decision, verdict.rule) == ("deny", "no-shadow")


# A differential test: words of escapes and characters, decoded by the real bash (printf
# '%s\0' puts each argument out whole) and by the lexer. ASCII results must agree; bytes
# above 0x7f and \u in a C locale are left (see the module docstring).
PIECES = [
    *("\\x", "\\u", "\\U", "\\c", "\\0", "\\1", "\\7", "\\8", "\\e", "\\E", "\\?", '\\"'),
    *("\\\\", "\\z", "\\n", "\\\n", "\\a", "{", "}", "\\'"),
    *("6", "7", "A", "f", "G", "0", "1", "9", "@", "[", "?", "\\", "g", "i", "t", " ", "$"),
    *('"', "`", "~"),
]


def _random_words(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < count:
        body = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
        word = "$'" + body + "'"
        try:
            parse_script("printf %s " + word, max_depth=8)
        except ShellSyntaxError:  # an unbalanced quote: not a case
            continue
        words.append(word)
    return words


@needs_bash
def test_ansi_c_quoting_matches_the_real_bash() -> None:
    assert BASH is not None
    words = _random_words(seed=20261205, count=1500)
    for start in range(0, len(words), 250):
        batch = words[start : start + 250]
        line = "printf '%s\\0' " + " ".join(batch)
        done = subprocess.run(
            [BASH, "-c", line],
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            capture_output=True,
            timeout=20,
            check=True,
        )
        real = done.stdout.split(b"\0")[:-1]
        ours = [word.text for word in _printf_words(line)]
        assert len(ours) == len(real), "a word boundary differs"
        for word, mine, theirs in zip(batch, ours, real, strict=True):
            if any(byte > 0x7E for byte in theirs) or b"\\u" in theirs or not mine.isascii():
                continue
            assert mine.encode() == theirs, word


def _printf_words(line: str) -> list[Any]:
    script = parse_script(line, max_depth=8)
    command = script.items[0].and_or.first.commands[0]
    return list(command.words[2:])  # type: ignore[union-attr]


# -- !(cmd): a pattern with extglob on ---------------------------------------------------


@needs_bash
def test_with_extglob_a_negated_subshell_runs_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "echo").write_text("")
    (tmp_path / "zz-GLOB-RAN").write_text("")
    assert run_bash("!(echo SUBSHELL-RAN)", tmp_path) == "SUBSHELL-RAN\n"
    assert run_bash("!(echo SUBSHELL-RAN)", tmp_path, "-O", "extglob") == "zz-GLOB-RAN\n"
    assert run_bash("shopt -s extglob\n!(echo SUBSHELL-RAN)", tmp_path) == "zz-GLOB-RAN\n"


@pytest.mark.parametrize(
    "line",
    [
        "!(git status)",
        "bash -O extglob -lc '!(git status)'",
        "bash -lc 'shopt -s extglob\n!(git status)'",
        "git diff && !(git status)",
        "if !(git status); then git diff; fi",
        "! !(git status)",
        "!((1))",
    ],
)
def test_bang_right_before_a_parenthesis_is_refused(line: str) -> None:
    with pytest.raises(RequestError, match="extglob"):
        analyse(line)


def test_a_spaced_negated_subshell_is_still_analysed(coding_agent: CompiledPolicy) -> None:
    assert _exec(coding_agent, "! (git status)")[0] == "allow"
    assert _exec(coding_agent, "bash -lc '! (git status)'")[0] == "allow"


# -- argv[0] naming another program ------------------------------------------------------


@needs_bash
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_runs_the_subcommand_its_argv0_names(tmp_path: Path) -> None:
    assert run_bash("exec -a git-version git status", tmp_path).startswith("git version ")


@pytest.mark.parametrize(
    ("line", "construct"),
    [
        ("exec -a git-push git status", "dynamic-command"),
        ("exec -a /usr/libexec/git-core/git-push git status", "dynamic-command"),
        ("exec -ca git-push git status", "dynamic-command"),
        ("bash -lc 'exec -a git-push git status'", "dynamic-command"),
        ("zsh -f -c 'ARGV0=git-push git status'", "environment-override"),
        ("zsh -c 'ARGV0=git-push git status'", "environment-override"),
    ],
)
def test_coding_agent_denies_an_argv0_that_names_another_program(
    coding_agent: CompiledPolicy, coding_agent_with_zsh: CompiledPolicy, line: str, construct: str
) -> None:
    assert construct in construct_names(line)
    assert _exec(coding_agent, line)[0] == "deny"
    decision, reason = _exec(coding_agent_with_zsh, line)
    assert decision == "deny"
    assert construct in reason


@pytest.mark.parametrize(
    "line",
    [
        "chpst -b git-push git status",
        "bwrap --argv0 git-push git status",
        "exec -a sh busybox status",
    ],
)
def test_wrappers_that_set_argv0_report_a_rename(line: str) -> None:
    assert "dynamic-command" in construct_names(line)


@pytest.mark.parametrize(
    "line",
    [
        "exec -a git git status",
        "exec -a /usr/bin/git git status",
        "exec git status",
        "chpst -b git git status",
        "bwrap --argv0 git git status",
    ],
)
def test_an_argv0_naming_the_same_program_is_no_rename(line: str) -> None:
    assert "dynamic-command" not in construct_names(line)


def test_coding_agent_still_allows_exec_of_git_by_its_own_name(
    coding_agent: CompiledPolicy,
) -> None:
    assert _exec(coding_agent, "exec -a git git status")[0] == "allow"


# -- HISTFILE: written when a shell with history on exits --------------------------------


@needs_bash
def test_a_shell_with_history_on_writes_histfile_when_it_exits(tmp_path: Path) -> None:
    run_bash("HISTFILE=planted; set -o history\necho HIST-PAYLOAD", tmp_path)
    assert "echo HIST-PAYLOAD" in (tmp_path / "planted").read_text()


@pytest.mark.parametrize(
    "line",
    [
        "HISTFILE=/etc/shadow; set -o history\necho x",
        "export HISTFILE=/etc/shadow; set -o history\necho x",
        "read HISTFILE; set -o history\necho x",
    ],
)
def test_a_deny_list_does_not_let_histfile_be_set(deny_list: CompiledPolicy, line: str) -> None:
    decision, reason = _exec(deny_list, line)
    assert decision == "deny"
    assert "environment-override" in reason


def test_an_allow_list_still_allows_plain_commands(allow_list: CompiledPolicy) -> None:
    assert _exec(allow_list, "git status $'--short'")[0] == "allow"


# -- directories: pushd -n, and ${CDPATH:=...} -------------------------------------------


@needs_bash
def test_pushd_n_does_not_change_the_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert run_bash("pushd -n sub >/dev/null && pwd -P", tmp_path) == f"{tmp_path}\n"


def test_after_pushd_n_a_command_runs_where_it_did(allow_list: CompiledPolicy) -> None:
    # git status from /workspace/sub, where a planted bare repository's config runs code:
    # the rule pins /workspace, and pushd -n goes nowhere.
    decision, _reason = _exec(allow_list, "pushd -n /workspace && git status", "/workspace/sub")
    assert decision == "deny"
    git = next(c for c in analyse("pushd -n /tmp && git status").commands if c.argv[0] == "git")
    assert git.cwds == ("/workspace",)
    assert _exec(allow_list, "pushd /workspace && git status", "/workspace/sub")[0] == "allow"


@needs_bash
def test_a_default_value_expansion_assigns_the_variable(tmp_path: Path) -> None:
    (tmp_path / "planted" / "sub").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    line = f": ${{CDPATH:={tmp_path}/planted}}; cd sub >/dev/null; pwd -P"
    assert run_bash(line, tmp_path) == f"{tmp_path}/planted/sub\n"


@pytest.mark.parametrize(
    "line",
    [
        ": ${CDPATH:=/tmp/planted}; cd workspace && git status",
        ': "${CDPATH=/tmp/planted}"; cd workspace && git status',
    ],
)
def test_a_policy_allowing_expansions_does_not_allow_assigning_a_risky_one(
    allow_list: CompiledPolicy, line: str
) -> None:
    decision, reason = _exec(allow_list, line, "/")
    assert decision == "deny"
    assert "environment-override" in reason


def test_an_indirect_default_value_may_assign_any_variable() -> None:
    assert "environment-override" in construct_names(": ${!ref:=/tmp/planted}")


def test_a_default_value_for_another_variable_is_only_an_expansion(
    allow_list: CompiledPolicy,
) -> None:
    assert _exec(allow_list, ": ${x:=1}; cd workspace && git status", "/")[0] == "allow"


# -- SSH_CLIENT: bash -c runs ~/.bashrc ---------------------------------------------------


@needs_bash
def test_ssh_client_makes_bash_c_run_bashrc(tmp_path: Path) -> None:
    (tmp_path / ".bashrc").write_text("echo BASHRC-RAN\n")
    assert run_bash("bash -c 'echo INNER'", tmp_path) == "INNER\n"
    assert run_bash("SSH_CLIENT=1 bash -c 'echo INNER'", tmp_path) == "BASHRC-RAN\nINNER\n"


@pytest.mark.parametrize(
    "line",
    [
        "SSH_CLIENT=1 bash -c 'git status'",
        "export SSH2_CLIENT=1; bash -c 'git status'",
        "env SSH_CLIENT=1 bash -c 'git status'",
    ],
)
def test_a_deny_list_sees_bash_told_it_runs_under_sshd(
    deny_list: CompiledPolicy, line: str
) -> None:
    decision, reason = _exec(deny_list, line)
    assert decision == "deny"
    assert "environment-override" in reason


# -- /dev/tcp: a connection, not a file -----------------------------------------------------


@pytest.fixture(scope="module")
def baseline_with_broad_allows() -> CompiledPolicy:
    """baseline.yaml with the broad allow rules its header says its guard rails survive."""
    text = (POLICIES / "baseline.yaml").read_text() + (
        "  - {id: debug-files, action: 'file.*', path: {glob: '/**'}, decision: allow}\n"
        "  - {id: tools, action: process.exec, command: [cat, echo], decision: allow}\n"
    )
    return load_policy_bytes(text.encode(), "baseline-broad.yaml")


@needs_bash
def test_bash_connects_for_a_redirection_to_dev_tcp(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(20)
        port = server.getsockname()[1]
        received: list[bytes] = []

        def accept() -> None:
            connection, _address = server.accept()
            with connection:
                received.append(connection.recv(100))

        listener = threading.Thread(target=accept)
        listener.start()
        run_bash(f"echo SENT-OVER-TCP > /dev/tcp/127.0.0.1/{port}", tmp_path)
        listener.join(20)
    assert received == [b"SENT-OVER-TCP\n"]


@pytest.mark.parametrize(
    "line",
    [
        "cat /app/config > /dev/tcp/169.254.169.254/80",
        "echo x >/dev/udp/169.254.169.254/53",
        "cat < /dev/tcp/kubernetes.default.svc/443",
        "exec 3<>/dev/tcp/169.254.169.254/80",
    ],
)
def test_a_redirection_to_a_network_device_is_a_construct(
    baseline_with_broad_allows: CompiledPolicy, line: str
) -> None:
    assert "network-redirect" in construct_names(line)
    decision, reason = _exec(baseline_with_broad_allows, line)
    assert decision == "deny"
    assert "network-redirect" in reason


def test_the_broad_allows_still_allow_plain_files(
    baseline_with_broad_allows: CompiledPolicy,
) -> None:
    assert _exec(baseline_with_broad_allows, "cat /app/config > /tmp/out")[0] == "allow"


# -- zsh: >! and histchars -----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "zsh -c 'git diff --name-only >!.git/config'",
        "zsh -c 'git diff --name-only >! .git/config'",
        "zsh -c 'git diff --name-only >>!.git/config'",
        "zsh -c 'git diff --name-only &>!.git/config'",
    ],
)
def test_coding_agent_denies_zsh_clobbering_a_file_it_did_not_see(
    coding_agent: CompiledPolicy, coding_agent_with_zsh: CompiledPolicy, line: str
) -> None:
    assert "dynamic-redirect" in construct_names(line)
    assert _exec(coding_agent, line)[0] == "deny"
    decision, reason = _exec(coding_agent_with_zsh, line)
    assert decision == "deny"
    assert "dynamic-redirect" in reason


def test_a_file_named_bang_quoted_is_still_a_plain_write() -> None:
    assert analyse("git status > '!x'").writes == ("/workspace/!x",)


def test_zsh_comment_character_is_an_override(
    coding_agent: CompiledPolicy, coding_agent_with_zsh: CompiledPolicy
) -> None:
    line = "zsh -c 'histchars=\"!^%\"; git status'"
    assert _exec(coding_agent, line)[0] == "deny"
    decision, reason = _exec(coding_agent_with_zsh, line)
    assert decision == "deny"
    assert "environment-override" in reason


@pytest.mark.parametrize(
    ("line", "construct"),
    [
        ("zsh -f -c 'print -s \"rm -rf /\"; r'", "eval"),
        ("ksh -c 'r'", "eval"),
        ("zsh -f -c 'integer n; n=$1'", "arithmetic"),
        ("zsh -f -c 'float x=1'", "arithmetic"),
    ],
)
def test_a_deny_list_sees_zsh_builtins_that_run_code(
    deny_list: CompiledPolicy, deny_list_with_zsh: CompiledPolicy, line: str, construct: str
) -> None:
    assert _exec(deny_list, line)[0] == "deny"
    decision, reason = _exec(deny_list_with_zsh, line)
    assert decision == "deny"
    assert construct in reason


# -- $"...": translated through a catalogue the script may name -----------------------------


def _catalogue(translations: dict[str, str]) -> bytes:
    """A GNU .mo file (little-endian, no hash table) with these translations."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **translations}.items())
    originals = [key.encode() for key, _value in entries]
    targets = [value.encode() for _key, value in entries]
    count = len(entries)
    data = 28 + 16 * count
    table: list[bytes] = []
    blobs = b""
    for strings in (originals, targets):
        for text in strings:
            table.append(struct.pack("<2I", len(text), data + len(blobs)))
            blobs += text + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
    return header + b"".join(table) + blobs


@needs_bash
def test_bash_translates_a_locale_string_through_a_named_catalogue(tmp_path: Path) -> None:
    assert BASH is not None
    messages = tmp_path / "loc" / "C.UTF-8" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "planted.mo").write_bytes(_catalogue({"status": "TRANSLATED"}))
    line = f'TEXTDOMAINDIR={tmp_path}/loc TEXTDOMAIN=planted\necho $"status"'
    done = subprocess.run(
        [BASH, "-c", line],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.stdout == "TRANSLATED\n"


@pytest.mark.parametrize(
    "line",
    [
        # A script of bash -c is read as bash only (dash, which reads $"status" as
        # "$status", denied the command line itself).
        "bash -lc 'TEXTDOMAINDIR=/workspace/loc TEXTDOMAIN=planted\ngit $\"status\"'",
        "bash -lc 'TEXTDOMAIN=planted\ngit $\"status\"'",
    ],
)
def test_coding_agent_denies_naming_a_translation_catalogue(
    coding_agent: CompiledPolicy, line: str
) -> None:
    decision, reason = _exec(coding_agent, line)
    assert decision == "deny"
    assert "environment-override" in reason


def test_naming_a_catalogue_is_an_override_however_it_is_set() -> None:
    assert "environment-override" in construct_names('export TEXTDOMAINDIR=/x\ngit $"status"')
    assert "environment-override" in construct_names("read TEXTDOMAIN")


# -- a differential of command structure against the real bash ----------------------------

# Lines built from quoting, expansion, redirection and keyword pieces, around three marker
# functions. bash runs each with an empty PATH (nothing but the markers and builtins can
# run; no piece names a path outside the scratch directory); every marker it runs must be
# reported, or the analysis must say that what runs depends on a value (dynamic-command).
STRUCTURE_PIECES = [
    *("m1", "m2", "m3", " m1", " m2", " m3", " ", " ", " ", "a", "x", "'", '"', "$'", '$"'),
    *("\\", "\\\\", "${", "}", "$(", ")", "`", ";", " ; ", "&&", "||", "|", "#", "\n", "<<"),
    *("<<-", "EOF", "\nEOF\n", "{ ", " }", "(", "[[ ", " ]]", "=", "$((", "<(", "$[", "]"),
    *("\\\n", "$", "x=", "case ", " in ", "esac", "if ", " then ", " fi", "\t", "!", "&", ">"),
    *("<", "2>&1", "<<<", "{a,b}", "\\'", '\\"', "$'\\''", "'\\''", '"$("', "\\c", "\\x"),
    *("~", "*", "?", "["),
]
MARKERS = ("m1", "m2", "m3")


@needs_bash
def test_bash_runs_no_command_the_analysis_did_not_see(tmp_path: Path) -> None:
    assert BASH is not None
    rng = random.Random(20261205)
    prelude = "".join(f"{marker}() {{ echo '<{marker}>'; }}\n" for marker in MARKERS)
    compared = 0
    while compared < 300:
        pieces = rng.randint(2, 14)
        line = "".join(rng.choice(STRUCTURE_PIECES) for _ in range(pieces))
        try:
            analysis = analyse_command(command_line=line, cwd=str(tmp_path))
        except RequestError:
            continue
        scratch = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            done = subprocess.run(
                [BASH, "-c", prelude + line],
                cwd=scratch,
                env={"PATH": "/nonexistent", "HOME": str(scratch)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            continue
        compared += 1
        reported = {command.argv[0] for command in analysis.commands}
        ran = {marker for marker in MARKERS if f"<{marker}>" in done.stdout}
        constructs = {construct.name for construct in analysis.constructs}
        assert ran <= reported or "dynamic-command" in constructs, line
