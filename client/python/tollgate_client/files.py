"""``Gate.open``: check ``file.read`` / ``file.write``, then open exactly what was checked.

The check carries the path as the caller wrote it, the working directory and the
symlink-resolved ``realPath`` (the gate evaluates both; the stricter decision wins,
CONTRACT 2.2). The file opened is the checked real path, and the open is verified: if a
symlink was swapped in between the check and the open, the descriptor names another
file, which is closed unused and reported as ``Denied``. A truncating mode (``w``)
truncates only after that verification, so a swapped link cannot make it truncate a
file nobody checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from tollgate_client.answers import CHANGED, failed_closed
from tollgate_client.errors import Denied

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

FILE_READ = "file.read"
FILE_WRITE = "file.write"


def actions_for_mode(mode: str) -> tuple[str, ...]:
    """The actions an ``open`` mode needs: ``r`` reads, ``w a x`` write, ``+`` both."""
    actions: list[str] = []
    if "r" in mode or "+" in mode:
        actions.append(FILE_READ)
    if any(letter in mode for letter in "wax+"):
        actions.append(FILE_WRITE)
    if not actions:
        raise ValueError(f"open mode {mode!r} neither reads nor writes")
    return tuple(actions)


def _opened_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _verify_opened(fd: int, real_path: str) -> None:
    """Raise ``Denied`` unless ``fd`` is the file the checked real path names."""
    opened = _opened_path(fd)
    if opened is not None:
        same = opened == real_path
    else:
        # No /proc (macOS, BSD): compare the open file with what the path names now.
        opened_stat, named_stat = os.fstat(fd), os.lstat(real_path)
        same = (opened_stat.st_dev, opened_stat.st_ino) == (named_stat.st_dev, named_stat.st_ino)
        opened = "another file"
    if not same:
        reason = f"{real_path} changed between the check and the open (opened {opened})"
        raise Denied(failed_closed(reason, CHANGED))


def _verified_opener(real_path: str) -> Callable[[str, int], int]:
    def opener(path: str, flags: int) -> int:
        truncate = bool(flags & os.O_TRUNC)
        fd = os.open(path, flags & ~os.O_TRUNC, 0o666)
        try:
            _verify_opened(fd, real_path)
            if truncate:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return opener


def open_checked(
    gate: Gate,
    path: str | os.PathLike[str],
    mode: str = "r",
    *,
    cwd: str | os.PathLike[str] | None = None,
    context: dict[str, Any] | None = None,
    approval: str | None = None,
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> IO[Any]:
    """Check, then ``open()`` the file; raises ``Denied`` if the gate does not allow it.

    ``path`` may be relative to ``cwd`` (default: the process's working directory).
    The other arguments are those of the built-in ``open``.
    """
    written = os.fspath(path)
    base = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
    real_path = os.path.realpath(os.path.join(base, written))
    for action in actions_for_mode(mode):
        gate.require(
            action, path=written, real_path=real_path, cwd=base, context=context, approval=approval
        )
    return open(
        real_path, mode, buffering, encoding, errors, newline, opener=_verified_opener(real_path)
    )
