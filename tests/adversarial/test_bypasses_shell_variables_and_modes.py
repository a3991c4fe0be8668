"""Bypasses of the shipped policies through shell state the analysis did not see:
variables set without ``=`` or that make tools load code, keyword mode, a physical
``cd``, history expansion and the files ``history`` writes, interactive shells; and the
shells and credential stores the baseline denies. Found in the red-team review of
2026-12-05 (the normalisers and the example policies), each shown against the shipped
policy it got past.

* bash sets variables in ways that have no ``=`` in them: a named descriptor
  (``{PATH}<file`` makes PATH the descriptor's number, ``10``, a directory relative to
  the working directory), ``coproc NAME``, and keyword mode (``bash -k``, ``set -k``),
  where ``git status GIT_CONFIG_PARAMETERS=...`` puts the assignment in git's
  environment. The analysis saw only ``git status``, which coding-agent allows.
* An interactive shell (``bash -i``) runs ~/.bashrc first and, with ``+O
  interactive_comments``, reads ``#`` as a word: ``git status #; rm -rf /`` runs ``rm``.

The premise of each attack is checked against the real bash where one is installed, so
the tests show what the shell does, not only what the analysis says.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.shell_wrappers import POSIX_SHELLS
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from tests.adversarial.real_bash import BASH, needs_bash, run_bash

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _exec(policy: CompiledPolicy, **fields: Any) -> tuple[str, str]:
    verdict = evaluate_request(policy, {"action": "process.exec", "cwd": "/workspace", **fields})
    return verdict.decision, verdict.reason


def _plant_git(root: Path) -> None:
    """``root/<n>/git`` for the descriptor numbers bash hands out first (10 and up)."""
    for number in range(10, 30):
        fake = root / str(number) / "git"
        fake.parent.mkdir()
        fake.write_text("#!/bin/sh\necho PLANTED-GIT\n")
        fake.chmod(0o755)
    (root / "README.md").write_text("readme\n")


# -- variables set without "=" ------------------------------------------------------------

NAMED_DESCRIPTOR = "{ git status; } {PATH}<README.md; git status"


@needs_bash
def test_a_named_descriptor_really_sets_path(tmp_path: Path) -> None:
    _plant_git(tmp_path)
    assert "PLANTED-GIT" in run_bash(NAMED_DESCRIPTOR, tmp_path)


VARIABLES_SET_WITHOUT_EQUALS = [
    NAMED_DESCRIPTOR,
    "{ git status; } {PATH}</workspace/README.md; git status",
    "if git status; then git status; fi {PATH}<README.md",
    "while git status; do git status; done {PATH}<README.md",
    "{ git status; } {GIT_DIR}<README.md; git status",
    "{ git status; } {LD_PRELOAD}>/workspace/x",
    "git status {PATH}>/workspace/x; git status",
    "coproc PATH { git status; }; git status",
    "coproc IFS { git status; }",
]


@pytest.mark.parametrize("command_line", VARIABLES_SET_WITHOUT_EQUALS)
def test_a_risky_variable_set_without_equals_is_an_override(
    coding_agent: CompiledPolicy, command_line: str
) -> None:
    analysis = analyse_command(command_line=command_line, cwd="/workspace")
    assert "environment-override" in {c.name for c in analysis.constructs}
    decision, reason = _exec(coding_agent, commandLine=command_line)
    assert decision == "deny"
    assert "environment-override" in reason


@pytest.mark.parametrize(
    "command_line",
    ["true {PATH[0]}<README.md; git status", "{ git status; } {a[$(rm -rf /)]}>x"],
)
def test_a_descriptor_assigned_to_an_array_element_is_rejected(command_line: str) -> None:
    with pytest.raises(RequestError, match="array element"):
        analyse_command(command_line=command_line, cwd="/workspace")


def test_a_named_descriptor_with_a_harmless_name_stays_allowed(
    coding_agent: CompiledPolicy,
) -> None:
    decision, _reason = _exec(coding_agent, commandLine="{ git status; } {fd}<README.md")
    assert decision == "allow"


# -- compound array assignments ------------------------------------------------------------

INDEX_RUNS = "x='a[$(echo INDEX-RAN >&2)]'; arr=([x]=1)"


@needs_bash
def test_a_compound_array_index_really_runs_code(tmp_path: Path) -> None:
    assert BASH is not None
    done = subprocess.run(
        [BASH, "-c", INDEX_RUNS], capture_output=True, text=True, timeout=20, check=False
    )
    assert "INDEX-RAN" in done.stderr


@needs_bash
def test_bash_cmds_really_rebinds_a_command(tmp_path: Path) -> None:
    _plant_git(tmp_path)
    out = run_bash(f"BASH_CMDS=([git]={tmp_path}/10/git); git status", tmp_path)
    assert "PLANTED-GIT" in out


@pytest.mark.parametrize(
    ("command_line", "construct"),
    [
        ("x='a[$(rm -rf /)]'; arr=([x]=1); git status", "arithmetic"),
        ("arr+=([x]=1); git status", "arithmetic"),
        ("BASH_CMDS=([git]=/workspace/bin/git); git status", "environment-override"),
        ("BASH_ALIASES=([git]='rm -rf /'); git status", "environment-override"),
        # zsh ties path to PATH and exposes its hash table, aliases and functions.
        ("path=(/workspace/bin); git status", "environment-override"),
        ("commands=(git /workspace/bin/git); git status", "environment-override"),
        ("functions=(git 'rm -rf /'); git status", "environment-override"),
    ],
)
def test_compound_assignments_that_run_or_rebind_code_are_constructs(
    coding_agent: CompiledPolicy, command_line: str, construct: str
) -> None:
    analysis = analyse_command(command_line=command_line, cwd="/workspace")
    assert construct in {c.name for c in analysis.constructs}
    for line in (command_line, f"zsh -c {shlex.quote(command_line)}"):
        assert _exec(coding_agent, commandLine=line)[0] == "deny", line


def test_a_plain_array_assignment_is_not_a_construct(coding_agent: CompiledPolicy) -> None:
    analysis = analyse_command(command_line="files=(a b); git status", cwd="/workspace")
    assert analysis.constructs == ()


# -- variables that make common tools load code ---------------------------------------------

TOOL_START_UP = [
    "PYTHONUSERBASE",  # its site-packages' .pth files run code in every Python program
    "PYTHONPYCACHEPREFIX",  # bytecode is read from there too: a planted .pyc runs
    "JDK_JAVA_OPTIONS",  # the java launcher's options: -javaagent:/workspace/x.jar
    "JAVA_OPTS",
    "MAVEN_OPTS",
    "GRADLE_OPTS",
    "GRADLE_USER_HOME",  # init.d scripts run in every build
    "MAKEFILES",  # read by make before the Makefile
    "GOENV",  # go's env file sets GOFLAGS, GOTOOLCHAIN ...
    "RUSTC_WORKSPACE_WRAPPER",
    "KUBECONFIG",  # an exec credential plugin runs a command
    "AWS_CONFIG_FILE",  # credential_process runs a command
    "VIMINIT",
    "EXINIT",
    "LUA_INIT",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "GIT_ALLOW_PROTOCOL",  # ext:: remotes run commands
]


def test_a_python_user_base_really_runs_code(tmp_path: Path) -> None:
    # The interpreter a virtual environment was made from: a venv's own has no user site.
    python = getattr(sys, "_base_executable", sys.executable)
    env = {**os.environ, "PYTHONUSERBASE": str(tmp_path)}
    env.pop("PYTHONNOUSERSITE", None)
    site = subprocess.run(
        [python, "-c", "import site; print(site.getusersitepackages(), site.ENABLE_USER_SITE)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if site[1] != "True":
        pytest.skip(f"{python} has no user site")
    Path(site[0]).mkdir(parents=True)
    (Path(site[0]) / "planted.pth").write_text("import sys; sys.stderr.write('PTH-RAN')\n")
    done = subprocess.run([python, "-c", "pass"], env=env, capture_output=True, text=True)
    assert "PTH-RAN" in done.stderr


@pytest.mark.parametrize("variable", TOOL_START_UP)
def test_variables_that_make_tools_load_code_are_overrides(
    coding_agent: CompiledPolicy, variable: str
) -> None:
    for line in (f"{variable}=/workspace/x pytest", f"env {variable}=/workspace/x pytest"):
        analysis = analyse_command(command_line=line, cwd="/workspace")
        assert "environment-override" in {c.name for c in analysis.constructs}, line
        assert _exec(coding_agent, commandLine=line)[0] == "deny", line


# -- keyword mode: NAME=value anywhere is an environment assignment -----------------------

FSMONITOR = "git status GIT_CONFIG_PARAMETERS=\"'core.fsmonitor'='touch /tmp/pwned'\""


@needs_bash
def test_keyword_mode_really_moves_assignments_into_the_environment(tmp_path: Path) -> None:
    assert run_bash("printenv TG_PROBE TG_PROBE=set", tmp_path, "-k").strip() == "set"
    assert run_bash("set -o keyword; printenv TG_PROBE TG_PROBE=set", tmp_path).strip() == "set"


KEYWORD_ARGV = [
    ["bash", "-k", "-c", FSMONITOR],
    ["bash", "-kc", FSMONITOR],
    ["bash", "-ek", "-c", FSMONITOR],
    ["bash", "-o", "keyword", "-c", FSMONITOR],
    ["/bin/bash", "-o", "pipefail", "-ko", "keyword", "-c", FSMONITOR],
    ["ksh", "-k", "-c", FSMONITOR],
    ["bash", "--norc", "--rcfile", "x", "-k", "-c", FSMONITOR],
    ["bash", "-O", "extglob", "-k", "-c", FSMONITOR],
    ["env", "bash", "-k", "-c", FSMONITOR],
]


@pytest.mark.parametrize("argv", KEYWORD_ARGV, ids=lambda argv: " ".join(argv[:-1]))
def test_a_shell_in_keyword_mode_is_an_override(
    coding_agent: CompiledPolicy, argv: list[str]
) -> None:
    analysis = analyse_command(argv=argv, cwd="/workspace")
    assert "environment-override" in {c.name for c in analysis.constructs}
    assert _exec(coding_agent, argv=argv)[0] == "deny"


SET_POLICY = """
version: 1
rules:
  - action: process.exec
    command: [set, shopt, git]
    decision: allow
"""


@pytest.mark.parametrize(
    "command_line",
    [
        f"set -k; {FSMONITOR}",
        f"set -ek; {FSMONITOR}",
        f"set -o keyword; {FSMONITOR}",
        f"set -eo keyword; {FSMONITOR}",
        f"shopt -s -o keyword; {FSMONITOR}",
        f"shopt -os keyword; {FSMONITOR}",
        "bash -c 'set -k; git status GIT_DIR=/tmp/x'",
    ],
)
def test_turning_keyword_mode_on_is_an_override_even_where_set_is_allowed(
    command_line: str,
) -> None:
    policy = load_policy_bytes(SET_POLICY.encode(), "set.yaml")
    verdict = evaluate_request(policy, {"action": "process.exec", "commandLine": command_line})
    assert verdict.decision == "deny"
    assert "environment-override" in verdict.reason


@pytest.mark.parametrize(
    "command_line", ["set -e; git status", "set +k; git status", "set -o pipefail; git status"]
)
def test_other_shell_options_stay_allowed_where_set_is_allowed(command_line: str) -> None:
    policy = load_policy_bytes(SET_POLICY.encode(), "set.yaml")
    verdict = evaluate_request(policy, {"action": "process.exec", "commandLine": command_line})
    assert verdict.decision == "allow"


# -- physical cd: where "link/.." lands depends on the link -----------------------------

CD_POLICY = """
version: 1
rules:
  - action: process.exec
    command: [cd, set]
    decision: allow
  - action: process.exec
    command: git
    cwd: /workspace
    args: {prefix: [status]}
    decision: allow
"""


@needs_bash
def test_a_physical_cd_really_lands_beside_the_links_target(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "elsewhere" / "inner").mkdir(parents=True)
    (tmp_path / "workspace" / "link").symlink_to(tmp_path / "elsewhere" / "inner")
    workspace = tmp_path / "workspace"
    assert run_bash("cd link/.. && pwd -P", workspace).strip() == str(workspace)
    for line in ("cd -P link/.. && pwd", "set -P; cd link/.. && pwd", "cd -P link && cd .. && pwd"):
        assert run_bash(line, workspace).strip() == str(tmp_path / "elsewhere"), line


@pytest.mark.parametrize(
    "command_line",
    [
        "cd -P link/.. && git status",
        "cd -P /workspace/link/.. && git status",
        "cd -P link && cd .. && git status",
        "cd -LP link/.. && git status",
        "set -P; cd link/.. && git status",
        "set -eo physical; cd link/.. && git status",
    ],
)
def test_after_a_physical_cd_the_directory_is_unknown(command_line: str) -> None:
    policy = load_policy_bytes(CD_POLICY.encode(), "cd.yaml")
    body = {"action": "process.exec", "cwd": "/workspace", "commandLine": command_line}
    assert evaluate_request(policy, body).decision == "deny"


@pytest.mark.parametrize(
    "argv",
    [
        ["bash", "-P", "-c", "cd link/.. && git status"],
        ["bash", "-o", "physical", "-c", "git status"],
    ],
)
def test_a_shell_started_physical_has_an_unknown_directory(argv: list[str]) -> None:
    policy = load_policy_bytes(CD_POLICY.encode(), "cd.yaml")
    body = {"action": "process.exec", "cwd": "/workspace", "argv": argv}
    assert evaluate_request(policy, body).decision == "deny"


@pytest.mark.parametrize(
    ("command_line", "decision"),
    [
        ("set -e; git status", "allow"),
        ("cd /workspace && git status", "allow"),
        # bash reads ".." against $PWD, which is the physical path where a shell gets no
        # PWD naming its directory, and falls back to the physical form where the logical
        # one does not exist: a cd through ".." lands where the gate cannot know (second
        # review of 2026-12-07, R1), so a rule pinned to a cwd does not follow it.
        ("cd link/.. && git status", "deny"),
        ("cd -L link/.. && git status", "deny"),
        ("bash -c 'cd link/.. && git status'", "deny"),
    ],
)
def test_a_logical_cd_is_followed_unless_it_goes_through_dot_dot(
    command_line: str, decision: str
) -> None:
    policy = load_policy_bytes(CD_POLICY.encode(), "cd.yaml")
    body = {"action": "process.exec", "cwd": "/workspace", "commandLine": command_line}
    assert evaluate_request(policy, body).decision == decision


# -- history expansion: later lines re-read with text from the history -------------------

HISTORY_SCRIPT = "set -H -o history\necho one # ; echo HIDDEN-RAN\necho two !!:s/#//\n"


@needs_bash
def test_history_expansion_really_runs_a_commented_out_command(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text(HISTORY_SCRIPT)
    assert BASH is not None
    done = subprocess.run(
        [BASH, str(script)], capture_output=True, text=True, timeout=20, check=False
    )
    assert "HIDDEN-RAN" in done.stdout


@pytest.mark.parametrize(
    "command_line",
    [
        "set -H -o history\ngit status # ; rm -rf /tmp/x\ngit status !!:s/#//",
        "set -o history -o histexpand\ngit status # ; rm -rf /tmp/x\ngit status !!:s/#//",
        "set -eH; git status",
        "shopt -s -o histexpand; git status",
    ],
)
def test_turning_history_expansion_on_is_eval(command_line: str) -> None:
    policy = load_policy_bytes(SET_POLICY.encode(), "set.yaml")
    verdict = evaluate_request(policy, {"action": "process.exec", "commandLine": command_line})
    assert verdict.decision == "deny"
    assert "eval" in verdict.reason


def test_a_shell_started_with_history_expansion_is_eval(coding_agent: CompiledPolicy) -> None:
    argv = ["bash", "-H", "-o", "history", "-c", "git status"]
    analysis = analyse_command(argv=argv, cwd="/workspace")
    assert "eval" in {c.name for c in analysis.constructs}
    assert _exec(coding_agent, argv=argv)[0] == "deny"


# -- builtins that write files by name -------------------------------------------------------


@needs_bash
def test_history_really_writes_any_text_to_any_file(tmp_path: Path) -> None:
    target = tmp_path / "config"
    run_bash(f"history -s '[core]'; history -s 'fsmonitor = x'; history -w {target}", tmp_path)
    assert target.read_text() == "[core]\nfsmonitor = x\n"


HISTORY_ALLOWED = (
    (POLICIES / "coding-agent.yaml").read_text()
    + """
  - id: history
    action: process.exec
    command: history
    decision: allow
"""
)


@pytest.mark.parametrize(
    "command_line",
    [
        "history -s '[core]'; history -s 'fsmonitor = x'; history -w /workspace/.git/config",
        "history -s x; history -a .git/hooks/pre-commit",
        "history -aw -- .git/config",
    ],
)
def test_a_file_history_writes_is_a_file_write(command_line: str) -> None:
    policy = load_policy_bytes(HISTORY_ALLOWED.encode(), "history.yaml")
    body = {"action": "process.exec", "cwd": "/workspace", "commandLine": command_line}
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule) == ("deny", "no-git-hooks-or-config")


def test_history_without_a_file_writes_histfile_which_is_unknown() -> None:
    policy = load_policy_bytes(HISTORY_ALLOWED.encode(), "history.yaml")
    body = {"action": "process.exec", "cwd": "/workspace", "commandLine": "history -w"}
    assert "dynamic-redirect" in evaluate_request(policy, body).reason


def test_history_reading_a_file_is_a_file_read() -> None:
    analysis = analyse_command(command_line="history -r /etc/shadow; history", cwd="/workspace")
    assert analysis.reads == ("/etc/shadow",)


# -- interactive shells -------------------------------------------------------------------


@needs_bash
def test_an_interactive_shell_really_reads_hash_as_a_word(tmp_path: Path) -> None:
    out = run_bash("echo one #; echo HIDDEN-RAN", tmp_path, "-i", "+O", "interactive_comments")
    assert "HIDDEN-RAN" in out


INTERACTIVE_ARGV = [
    ["bash", "-i", "+O", "interactive_comments", "-c", "git status #; rm -rf /"],
    ["bash", "+O", "interactive_comments", "-ic", "git status #; rm -rf /"],
    ["bash", "-ic", "git status"],
    ["sh", "-i", "-c", "git status"],
]


@pytest.mark.parametrize("argv", INTERACTIVE_ARGV, ids=lambda argv: " ".join(argv[:-1]))
def test_an_interactive_shell_is_decided_as_itself(
    coding_agent: CompiledPolicy, argv: list[str]
) -> None:
    decision, reason = _exec(coding_agent, argv=argv)
    assert decision == "deny"
    assert argv[0] in reason


@pytest.mark.parametrize(
    "argv", [["bash", "-c", "git status"], ["bash", "-lc", "git status"], ["sh", "-ec", "git log"]]
)
def test_a_non_interactive_shell_script_is_still_unwrapped(
    coding_agent: CompiledPolicy, argv: list[str]
) -> None:
    assert _exec(coding_agent, argv=argv)[0] == "allow"


# -- baseline: its guard rails hold under a broad allow ------------------------------------

# baseline.yaml says its guard rails keep holding when broad allow rules are added later.
BROAD_ALLOWS = """
  - id: broad-files
    action: "file.*"
    path: {glob: "/**"}
    decision: allow
  - id: broad-exec
    action: process.exec
    decision: allow
"""


@pytest.fixture(scope="module")
def broad_baseline() -> CompiledPolicy:
    text = (POLICIES / "baseline.yaml").read_text() + BROAD_ALLOWS
    return load_policy_bytes(text.encode(), "baseline-broad.yaml")


@pytest.mark.parametrize("shell", sorted(POSIX_SHELLS))
def test_every_shell_the_analysis_knows_is_denied_by_the_baseline(
    broad_baseline: CompiledPolicy, shell: str
) -> None:
    """A bare shell reads its commands from standard input, out of the gate's sight."""
    for argv in ([shell], [f"/usr/bin/{shell}"], ["env", shell], [shell, "-i"]):
        verdict = evaluate_request(broad_baseline, {"action": "process.exec", "argv": argv})
        assert (verdict.decision, verdict.rule) == ("deny", "no-shells"), argv


def test_a_static_shell_script_is_unwrapped() -> None:
    analysis = analyse_command(argv=["bash-static", "-c", "rm -rf /tmp/x"])
    assert [command.argv for command in analysis.commands] == [("rm", "-rf", "/tmp/x")]


CREDENTIAL_STORES = [
    "/home/agent/.config/git/credentials",  # git's credential store, XDG location
    "/home/agent/.config/gh/hosts.yml",  # GitHub CLI token
    "/home/agent/.vault-token",
    "/home/agent/.cargo/credentials.toml",
    "/home/agent/.cargo/credentials",
    "/home/agent/.terraform.d/credentials.tfrc.json",
    "/etc/ssh/ssh_host_ed25519_key",
    "/dev/fd/3",  # /proc/self/fd/3 by another name
    "/dev/fd",
]


@pytest.mark.parametrize("path", CREDENTIAL_STORES)
@pytest.mark.parametrize("action", ["file.read", "file.write"])
def test_credential_stores_are_denied_by_the_baseline(
    broad_baseline: CompiledPolicy, action: str, path: str
) -> None:
    verdict = evaluate_request(broad_baseline, {"action": action, "path": path})
    assert (verdict.decision, verdict.rule) == ("deny", "no-credential-files")


@pytest.mark.parametrize(
    "path", ["/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/sshd_config", "/dev/null"]
)
def test_public_neighbours_of_credential_stores_stay_readable(
    broad_baseline: CompiledPolicy, path: str
) -> None:
    verdict = evaluate_request(broad_baseline, {"action": "file.read", "path": path})
    assert verdict.decision == "allow"
