"""``Gate.run``: check ``process.exec``, then run exactly the program that was checked.

An argument list is checked as ``argv``. A bare program name is first resolved from
``PATH`` (the one in ``env`` when given) and both checked and run by that absolute
path, so a look-alike ``git`` earlier in ``PATH`` is seen by the gate as the path it
is (a rule for ``git`` covers only the trusted directories, CONTRACT section 1). A
string is checked as ``commandLine`` and run with ``/bin/sh -c``; the gate splits and
unwraps it like a shell would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

PROCESS_EXEC = "process.exec"
# subprocess arguments that would run something other than what was checked.
_UNCHECKABLE = ("shell", "executable", "preexec_fn")


def resolve_program(name: str, env: Mapping[str, str] | None = None) -> str:
    """``git`` -> ``/usr/bin/git`` (from the PATH the child will use); a path stays itself."""
    if "/" in name:
        return name
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(name, path=search)
    # Not found: run it as given; the child fails to start exactly as it would unchecked.
    return os.path.abspath(found) if found else name


def run_checked(
    gate: Gate,
    command: str | Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    context: dict[str, Any] | None = None,
    approval: str | None = None,
    **subprocess_args: Any,
) -> subprocess.CompletedProcess[Any]:
    """Check, then ``subprocess.run`` the command; raises ``Denied`` if not allowed.

    Other keyword arguments (``capture_output``, ``text``, ``timeout``, ``check`` ...)
    go to ``subprocess.run``; ``shell``, ``executable`` and ``preexec_fn`` are refused
    because the gate could not see what they would run.
    """
    refused = [name for name in _UNCHECKABLE if name in subprocess_args]
    if refused:
        raise TypeError(f"Gate.run does not take {', '.join(refused)}: the gate could not check it")
    base = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
    if isinstance(command, str):
        gate.require(
            PROCESS_EXEC, command_line=command, cwd=base, context=context, approval=approval
        )
        return subprocess.run(command, shell=True, cwd=base, env=env, **subprocess_args)
    argv = [os.fspath(arg) for arg in command]
    if not argv:
        raise ValueError("Gate.run needs a program to run")
    argv[0] = resolve_program(argv[0], env)
    gate.require(PROCESS_EXEC, argv=argv, cwd=base, context=context, approval=approval)
    return subprocess.run(argv, cwd=base, env=env, **subprocess_args)
