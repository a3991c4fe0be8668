"""``Gate.run``: check ``process.exec``, then run exactly the program that was checked.

An argument list is checked as ``argv``. A bare program name is first resolved from
``PATH`` (the one in ``env`` when given) exactly as the child would look it up, relative
and empty entries against the run's ``cwd``, and both checked and run by that absolute
path, so a look-alike ``git`` earlier in ``PATH`` is seen by the gate as the path it
is (a rule for ``git`` covers only the trusted directories, CONTRACT section 1). A name
found nowhere is refused: run as given, the child would search ``PATH`` again itself,
unchecked. A string is checked as ``commandLine`` and run with ``/bin/sh -c``; the gate splits and
unwraps it like a shell would.

An ``env`` that adds or changes variables (``LD_PRELOAD``, ``GIT_SSH_COMMAND``, ``PATH``
...) is shown to the gate as the shell assignments it amounts to, so the gate decides
them as it decides ``LD_PRELOAD=x git status`` (``environment-override`` for a risky
name): an argument list is then checked as the ``commandLine``
``K='v' /usr/bin/git status``, a string as ``export K='v'; <the string>``.

The gate decides the files a command's redirections write and read (``> f``, ``< f``,
also inside ``sh -c``) by their lexical paths, which it lists in its normalised request
(``request.writes``, ``request.reads``) when its answer carries that. The shell opens
them through any symlink on the way (``gl -> .git`` makes ``> gl/config`` write
``.git/config``), so each one whose symlink-resolved path differs is then checked as
``file.write`` / ``file.read`` with ``path`` and ``realPath``, as ``Gate.open`` checks a
file, and resolved once more just before the run: a target that leads elsewhere by
then is ``Denied`` (``changed``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tollgate_client.answers import BAD_ANSWER, CHANGED, NOT_FOUND, Decision, failed_closed
from tollgate_client.errors import Denied
from tollgate_client.files import FILE_READ, FILE_WRITE, real_path_in
from tollgate_client.timeouts import valid_timeout
from tollgate_client.wire import plain_text

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

PROCESS_EXEC = "process.exec"
# subprocess arguments that would run something other than what was checked, or run
# it as someone the check does not name.
_UNCHECKABLE = ("shell", "executable", "preexec_fn", "user", "group", "extra_groups")
# What a shell can assign; any other name could not be shown to the gate as `NAME=value`.
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def environment_changes(env: Mapping[str, str]) -> dict[str, str]:
    """The variables ``env`` adds to or changes in this process's environment, by name.

    Removed variables are not reported: the gate has no way to express an unset. Raises
    ``ValueError`` for a changed name that is not a shell identifier, which no
    assignment the gate could check can set.
    """
    changed = {name: value for name, value in env.items() if os.environ.get(name) != value}
    invalid = sorted(name for name in changed if not _SHELL_NAME.match(name))
    if invalid:
        names = ", ".join(repr(name) for name in invalid)
        raise ValueError(f"Gate.run cannot set {names} in env: not a shell variable name")
    return dict(sorted(changed.items()))


def command_words(argv: Sequence[str]) -> str:
    """``argv`` as one shell command's words: the program quoted whenever it holds a
    ``=`` (``shlex.quote`` leaves ``X=/y`` bare, which a shell, and the gate, read as an
    assignment and not as the program ``./X=/y`` that runs)."""
    program, *arguments = argv
    word = shlex.quote(program)
    if "=" in program and word == program:
        word = f"'{program}'"  # shlex.quote left it bare: nothing in it needs escaping
    return " ".join([word, *map(shlex.quote, arguments)])


def assignments(changes: Mapping[str, str]) -> str:
    """``K1=v1 K2='v 2'``: the changes as shell assignments, each value quoted."""
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in changes.items())


def resolve_program(
    name: str, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> str | None:
    """``git`` -> ``/usr/bin/git`` from the PATH the child will use; a path stays itself.

    The child searches ``PATH`` after changing to ``cwd`` (default: the working
    directory), so relative and empty entries are taken relative to it here too.
    ``None`` if no entry holds an executable file of that name.
    """
    if "/" in name:
        return name
    base = cwd if cwd is not None else os.getcwd()
    # The list subprocess searches: env's PATH (os.environ's without env), else os.defpath.
    for directory in os.get_exec_path(env):
        candidate = os.path.join(base, directory, name)  # an absolute entry replaces base
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return None


# The answer's lists of redirection targets, and the file action each one is.
_REDIRECTION_LISTS = (("writes", FILE_WRITE), ("reads", FILE_READ))


def redirection_targets(decision: Decision) -> list[tuple[str, str]]:
    """``(action, path)`` for each file the allowed command's redirections open, as the
    gate's answer lists them (``request.writes``, ``request.reads``); none from an
    answer without ``request`` (a gate that does not send it: docs/clients.md, Limits).
    Raises ``Denied`` for lists it cannot read."""
    request = decision.raw.get("request")
    if request is None:
        return []
    if not isinstance(request, dict):
        reason = f"tollgate's answer has request={request!r}, not an object"
        raise Denied(failed_closed(reason, BAD_ANSWER, decision.status))
    targets: list[tuple[str, str]] = []
    for field, action in _REDIRECTION_LISTS:
        paths = request.get(field)
        if paths is None:  # left out (or null, as the JS client reads it): no targets
            paths = []
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            reason = f"tollgate's answer has request.{field}={paths!r}, not a list of paths"
            raise Denied(failed_closed(reason, BAD_ANSWER, decision.status))
        targets.extend((action, path) for path in paths if (action, path) not in targets)
    return targets


def check_redirections(
    gate: Gate, decision: Decision, base: str, context: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """Check each redirection target's real path where it differs from the lexical one
    the gate decided; ``Denied`` if any is refused. Returns ``(path, real path)`` pairs
    for ``verify_redirections``.

    The run's ``approval`` is not sent: it is bound to the command's request, not these.
    """
    resolved: list[tuple[str, str]] = []
    for action, path in redirection_targets(decision):
        real_path = real_path_in(base, path)
        if real_path != path:
            gate.require(action, path=path, real_path=real_path, cwd=base, context=context)
        resolved.append((path, real_path))
    return resolved


def verify_redirections(resolved: Sequence[tuple[str, str]], base: str) -> None:
    """Raise ``Denied`` if a target leads elsewhere than when it was checked (a symlink
    made or moved meanwhile). Done last before the run, to keep that window short."""
    for path, real_path in resolved:
        now = real_path_in(base, path)
        if now != real_path:
            reason = f"{path} changed between the check and the run (now leads to {now})"
            raise Denied(failed_closed(reason, CHANGED))


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
    because the gate could not see what they would run, and ``user``, ``group`` and
    ``extra_groups`` because it could not see who would run it. A ``timeout`` other than
    ``None`` (no limit, as for ``subprocess.run``) follows the Gate's rule
    (``valid_timeout``): a NaN, negative or infinite one is a ``ValueError`` before
    anything is checked or run.
    """
    refused = [name for name in _UNCHECKABLE if name in subprocess_args]
    if refused:
        raise TypeError(f"Gate.run does not take {', '.join(refused)}: the gate could not check it")
    if subprocess_args.get("timeout") is not None:
        subprocess_args["timeout"] = valid_timeout("Gate.run timeout", subprocess_args["timeout"])
    changes: dict[str, str] = {}
    if env is not None:
        # Read once, as the text subprocess would send (str, bytes or paths), into exact
        # strings: what is checked is then what runs, even for a mapping that answers
        # differently twice or a str subclass whose != hides a change (plain_text).
        env = {plain_text(name): plain_text(value) for name, value in env.items()}
        changes = environment_changes(env)
    base = os.path.abspath(plain_text(cwd)) if cwd is not None else os.getcwd()
    if isinstance(command, str):
        command = plain_text(command)
        # `export` gives the variables to the whole shell, as env does.
        command_line = f"export {assignments(changes)}; {command}" if changes else command
        decision = gate.require(
            PROCESS_EXEC, command_line=command_line, cwd=base, context=context, approval=approval
        )
        resolved = check_redirections(gate, decision, base, context)
        verify_redirections(resolved, base)
        return subprocess.run(command, shell=True, cwd=base, env=env, **subprocess_args)
    argv = [plain_text(arg) for arg in command]
    if not argv:
        raise ValueError("Gate.run needs a program to run")
    program = resolve_program(argv[0], env, base)
    if program is None:
        # Refused rather than run as the bare name: the child would search PATH again on
        # its own, and whatever it found there (planted since, or missed here) would run
        # unchecked.
        reason = f"{argv[0]!r} is not an executable file in any PATH directory (from {base})"
        raise Denied(failed_closed(reason, NOT_FOUND))
    argv[0] = program
    if changes:
        command_line = f"{assignments(changes)} {command_words(argv)}"
        decision = gate.require(
            PROCESS_EXEC, command_line=command_line, cwd=base, context=context, approval=approval
        )
    else:
        decision = gate.require(
            PROCESS_EXEC, argv=argv, cwd=base, context=context, approval=approval
        )
    # An argument list has redirections only in a script it hands a shell (sh -c '...').
    resolved = check_redirections(gate, decision, base, context)
    verify_redirections(resolved, base)
    return subprocess.run(argv, cwd=base, env=env, **subprocess_args)
