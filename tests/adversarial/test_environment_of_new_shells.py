"""What a new shell takes from the environment it is started with, found by the red-team
review of round 24 (commands). Each shows, with the real bash (and dash), that the
shell runs otherwise than the gate read it, then what the gate now decides.

* ``PWD``: bash and dash start with ``$PWD`` from their environment as their logical
  directory when it names the one they start in, symlinks included, and resolve ``cd
  ..`` against that text. ``PWD=<a link to the cwd> bash -c 'cd ../X && git status'``
  ran git in the link's sibling X, while the gate decided it in ``<cwd>/../X``: a rule
  pinned by ``cwd`` was walked around. ``PWD`` is now ``environment-override``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line
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
        "PWD=/workspace/p/link bash -c 'cd ../workspace && git status'",
        "env PWD=/workspace/p/link sh -c 'cd ../workspace && git status'",
        "export PWD=/workspace/p/link; bash -c 'cd ../workspace && git status'",
        "declare -x PWD=/workspace/p/link; bash -c 'cd ../workspace && git status'",
        "sudo PWD=/workspace/p/link bash -c 'cd ../workspace && git status'",
        "read PWD; bash -c 'cd ../workspace && git status'",
    ],
)
def test_a_pwd_given_to_a_new_shell_is_an_override(allow_list: CompiledPolicy, line: str) -> None:
    _overridden(allow_list, line)


def test_a_cd_in_the_workspace_still_meets_the_pinned_rule(allow_list: CompiledPolicy) -> None:
    assert check_line(allow_list, "cd /workspace && git status").decision == "allow"
