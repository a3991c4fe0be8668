"""Wrappers read as the programs themselves read their arguments, found by the red-team
review of 2026-12-07. Each request hid ``rm`` from a deny-list policy's ``no-rm``: the
gate saw another program than the one that ran.

- bash and dash skip a lone ``+`` (an empty option group): ``bash -c + 'rm x'`` runs the
  script, which the gate took for the operand ``+``;
- find's tests take an operand, whatever it holds: ``-name -exec`` is a pattern, and
  ``-name -fprint -exec rm ...`` runs rm, which the gate took for a file -fprint writes;
- chrt reads its priority with strtol: ``+0`` and `` 0`` are priorities;
- busybox (and toybox) run the applet named by the last component of the first
  argument's path: ``busybox /x/rm`` is rm.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes

DENY_LIST = """\
    version: 1
    defaultAction: allow
    rules:
      - {id: no-rm, action: process.exec, command: rm, decision: deny}
"""

HIDDEN: dict[str, dict[str, Any]] = {
    "bash -c +": {"commandLine": "bash -c + 'rm -f victim'"},
    "sh -c + (argv)": {"argv": ["sh", "-c", "+", "rm -f victim"]},
    "bash + -c": {"argv": ["bash", "+", "-c", "rm -f victim"]},
    "find -name -fprint": {
        "argv": ["find", ".", "!", "-name", "-fprint", "-exec", "rm", "-f", "victim", ";"]
    },
    "find -name -exec": {
        "argv": ["find", ".", "-name", "-exec", "-o", "-exec", "rm", "-f", "victim", ";"]
    },
    "find -newermt -exec": {"commandLine": "find . -newermt -exec -o -exec rm -f victim ';'"},
    "chrt +0": {"argv": ["chrt", "-o", "+0", "rm", "-f", "victim"]},
    "chrt blank": {"commandLine": "chrt -o ' 0' rm -f victim"},
    "busybox path": {"argv": ["busybox", "/x/rm", "-f", "victim"]},
    "toybox relative path": {"commandLine": "toybox ./rm -f victim"},
}


@pytest.mark.parametrize("spelling", HIDDEN.values(), ids=HIDDEN.keys())
def test_the_program_that_runs_is_the_one_decided(
    spelling: dict[str, Any], deny_list: CompiledPolicy
) -> None:
    request = {"action": "process.exec", "cwd": "/work", **spelling}
    verdict = evaluate_request(deny_list, request)
    assert (verdict.decision, verdict.rule) == ("deny", "no-rm")


def test_find_still_reads_its_real_actions(deny_list: CompiledPolicy) -> None:
    # An operand is skipped, not the action after it.
    request = {
        "action": "process.exec",
        "argv": ["find", ".", "-name", "*.o", "-exec", "rm", "{}", ";"],
    }
    assert evaluate_request(deny_list, request).rule == "no-rm"
    writes = {"action": "process.exec", "argv": ["find", ".", "-name", "x", "-fprint", "out"]}
    verdict = evaluate_request(deny_list, {**writes, "cwd": "/work"})
    assert verdict.decision == "allow"
    assert verdict.request["writes"] == ["/work/out"]


REAL = {
    "bash -c +": (["bash", "-c", "+", "rm -f victim"], "bash"),
    "sh -c +": (["dash", "-c", "+", "rm -f victim"], "dash"),
    "find -name -fprint": (
        ["find", "dir", "!", "-name", "-fprint", "-exec", "rm", "-f", "victim", ";"],
        "find",
    ),
    "find -name -exec": (
        ["find", "dir", "-name", "-exec", "-o", "-exec", "rm", "-f", "victim", ";"],
        "find",
    ),
    "chrt +0": (["chrt", "-o", "+0", "rm", "-f", "victim"], "chrt"),
}


@pytest.mark.parametrize(("argv", "program"), REAL.values(), ids=REAL.keys())
def test_the_real_program_runs_rm(argv: list[str], program: str, tmp_path: Path) -> None:
    # What makes the spellings above worth reading right: the program does run rm.
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")
    (tmp_path / "victim").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_text("x")
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=10)
    if program == "chrt" and result.returncode and b"not permitted" in result.stderr:
        pytest.skip("chrt may not set a scheduling policy here")
    assert not (tmp_path / "victim").exists(), result.stderr


@pytest.mark.parametrize(
    "assignment",
    [
        "COMPILER_PATH=/tmp/evil gcc -c hello.c",
        "GCC_EXEC_PREFIX=/tmp/evil/ gcc -c hello.c",
        "ZIPOPT='-T -TT /tmp/evil/t' zip out.zip hello.c",
        "UNZIP='-o' unzip a.zip",
        "R_PROFILE_USER=/tmp/evil.R Rscript s.R",
        "ERL_AFLAGS='-eval x' erl",
        "ANT_OPTS=-javaagent:/tmp/a.jar ant",
        "LUA_INIT=@/tmp/evil.lua lua s.lua",
        "GUILE_LOAD_PATH=/tmp/evil guile s.scm",
    ],
)
def test_a_variable_that_makes_a_program_run_other_code_is_an_override(assignment: str) -> None:
    # Found in the red-team review of 2026-12-07 (through the clients' run(env=...)): an
    # allowed gcc ran /tmp/evil/as from COMPILER_PATH, an allowed zip ran ZIPOPT's -TT.
    policy = load_policy_bytes(
        b"version: 1\nrules:\n  - {action: process.exec, command: {glob: '*'}, decision: allow}\n",
        "all-programs.yaml",
    )
    verdict = evaluate_request(policy, {"action": "process.exec", "commandLine": assignment})
    assert verdict.decision == "deny"
    assert "environment-override" in verdict.reason
