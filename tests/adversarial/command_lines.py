"""What the gate makes of one shell command line, for the red-team tests: its analysis,
the names of its constructs, the argv of each command in it, and the verdict of a
``process.exec`` check. The working directory is ``/workspace`` unless a test names one."""

from __future__ import annotations

from sidecar.engine import Verdict, evaluate_request
from sidecar.normalise.commands import CommandAnalysis, analyse_command
from sidecar.policy.compiler import CompiledPolicy

CWD = "/workspace"


def analyse(line: str, cwd: str = CWD) -> CommandAnalysis:
    """The analysis of ``line`` run in ``cwd``; raises ``RequestError`` where it refuses it."""
    return analyse_command(command_line=line, cwd=cwd)


def construct_names(line: str, cwd: str = CWD) -> set[str]:
    """The names of the constructs the analysis of ``line`` reports."""
    return {construct.name for construct in analyse(line, cwd).constructs}


def command_argvs(line: str, cwd: str = CWD) -> list[tuple[str, ...]]:
    """The argv of each command the analysis of ``line`` finds, in its order."""
    return [command.argv for command in analyse(line, cwd).commands]


def check_line(policy: CompiledPolicy, line: str, cwd: str = CWD) -> Verdict:
    """The verdict of ``policy`` on running ``line`` in ``cwd`` (a ``process.exec`` check)."""
    request = {"action": "process.exec", "commandLine": line, "cwd": cwd}
    return evaluate_request(policy, request)
