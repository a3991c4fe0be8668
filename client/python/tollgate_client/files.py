"""``Gate.open``: check ``file.read`` / ``file.write``, then open exactly what was checked.

The check carries the path as the caller wrote it, the working directory and the
symlink-resolved ``realPath`` (the gate evaluates both; the stricter decision wins,
CONTRACT 2.2). The file opened is the checked real path, never a link: the checked
parent directory is opened with ``O_NOFOLLOW`` and verified, and the file is opened
relative to that descriptor with ``O_NOFOLLOW``, so a symlink swapped in between the
check and the open (as the file or as its directory) cannot make a creating mode
create a file elsewhere. The open is verified as before: if the descriptor names
another file, it is closed unused and reported as ``Denied``. A truncating mode (``w``)
truncates only after that verification, so a swapped link cannot make it truncate a
file nobody checked.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from tollgate_client.answers import CHANGED, failed_closed
from tollgate_client.errors import Denied
from tollgate_client.wire import plain_text

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


def _changed(real_path: str, what: str) -> Denied:
    reason = f"{real_path} changed between the check and the open ({what})"
    return Denied(failed_closed(reason, CHANGED))


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
        raise _changed(real_path, f"opened {opened}")


# A directory descriptor only to open files relative to: O_PATH (Linux) needs no read
# permission on the directory, as a plain open by path does not.
_DIRECTORY_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY


def _open_nofollow(checked: str, name: str, flags: int, dir_fd: int | None = None) -> int:
    """``os.open`` that refuses a symlink as the last component, as ``Denied``.

    The checked real path has no symlink in it, so a link found there now was swapped
    in after the check; following it could create or open a file nobody checked.
    ``checked`` is the full path ``name`` stands for (for the reason).
    """
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP (EMLINK on FreeBSD) for a link, ENOTDIR where a directory was wanted.
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR) and os.path.islink(checked):
            raise _changed(checked, "it is now a symlink") from None
        raise


def _verified_opener(real_path: str) -> Callable[[str, int], int]:
    parent, name = os.path.split(real_path)

    def opener(_: str, flags: int) -> int:
        # Open the checked directory itself (not a link in its place) and make sure it
        # is the one checked, then create or open the file relative to it: a directory
        # swapped for a symlink after the check cannot redirect the open.
        dir_fd = _open_nofollow(parent, parent, _DIRECTORY_FLAGS)
        try:
            _verify_opened(dir_fd, parent)
            fd = _open_nofollow(real_path, name or ".", flags & ~os.O_TRUNC, dir_fd)
        finally:
            os.close(dir_fd)
        try:
            _verify_opened(fd, real_path)
            if flags & os.O_TRUNC:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return opener


def real_path_in(base: str, written: str) -> str:
    """Where ``written`` (relative to the absolute ``base``) leads, symlinks followed as
    far as the path exists, a dangling one to where it points (a create through it lands
    there), the rest appended: what a create or an open by that path reaches."""
    return os.path.realpath(os.path.join(base, written))


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
    # Exact strings, made once: what is checked is what is opened (plain_text). The mode
    # too: a subclass's `in` could hide a "w" from actions_for_mode.
    written, mode = plain_text(path), plain_text(mode)
    base = os.path.abspath(plain_text(cwd)) if cwd is not None else os.getcwd()
    real_path = real_path_in(base, written)
    for action in actions_for_mode(mode):
        gate.require(
            action, path=written, real_path=real_path, cwd=base, context=context, approval=approval
        )
    return open(
        real_path, mode, buffering, encoding, errors, newline, opener=_verified_opener(real_path)
    )
