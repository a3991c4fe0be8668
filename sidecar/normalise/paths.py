"""Lexical path normalisation (CONTRACT 2.2, "Paths").

A path is made absolute (joined to an absolute ``cwd`` when relative), then ``.``,
``..`` and repeated ``/`` are resolved lexically, and a trailing ``/`` is dropped. It is
never truncated and never touches the filesystem: symlinks are the client's to resolve
and send as ``realPath``. ``..`` at the root stays at the root, as the kernel does.

``written_paths`` keeps the ``..`` segments the kernel resolves only after following
symlinks (``/proc/self/cwd/../../etc/shadow`` is ``/etc/shadow`` to the kernel and
``/proc/etc/shadow`` lexically), so that deny rules naming the link still see it.
``system_link_path`` reads a path with ``..`` through the links every Linux image has
(``/var/run/../etc/shadow`` is ``/etc/shadow``, not ``/var/etc/shadow``), so that deny
rules naming the file see it when the path names no link they were written for.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.errors import RequestError

MAX_PATH_BYTES = 4096


def check_path_text(text: str, field: str) -> None:
    """Reject what no real path contains: NUL bytes, emptiness, more than 4096 bytes."""
    if not text:
        raise RequestError("must not be empty", field)
    if "\x00" in text:
        raise RequestError("must not contain NUL bytes", field)
    # A character is at most 4 bytes: only a long text needs encoding to be measured.
    if (
        len(text) * 4 > MAX_PATH_BYTES
        and len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES
    ):
        raise RequestError(f"is longer than {MAX_PATH_BYTES} bytes", field)


def normalise_path(path: str, cwd: str | None = None, *, field: str = "path") -> str:
    """Return the absolute, lexically resolved form of ``path``.

    Raises ``RequestError`` for a relative path without an absolute ``cwd``, NUL bytes
    or a path longer than 4096 bytes (before or after joining).
    """
    check_path_text(path, field)
    if not path.startswith("/"):
        if cwd is None:
            # A relative cwd has nothing to be joined to: say so, not "no cwd was given".
            if field == "cwd":
                raise RequestError("must be absolute", field)
            raise RequestError("is relative and no cwd was given", field)
        check_path_text(cwd, "cwd")
        if not cwd.startswith("/"):
            raise RequestError("must be absolute", "cwd")
        path = cwd + "/" + path
        check_path_text(path, field)
    return lexical_path(path)


def lexical_path(path: str) -> str:
    """Resolve ``.``, ``..`` and ``//`` in the absolute ``path`` and drop a trailing ``/``.

    The one canonical form paths are matched in: file paths, rule values for every
    ``path`` and ``cwd`` field, and the paths of URLs and Kubernetes non-resource
    requests (which arrive with their dot segments already resolved, but may keep
    ``//`` and a trailing ``/``). Rule and request then compare like with like.
    """
    if "//" not in path and "/." not in path and not path.endswith("/"):
        return path  # already normal: no empty, "." or ".." segment, no trailing "/"
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


MAX_WRITTEN_FORMS = 32


def written_paths(path: str, cwd: str | None = None, *, field: str = "path") -> tuple[str, ...]:
    """The forms of ``path`` (joined to ``cwd`` as given when relative) in which the
    kernel may still name a symlink that a ``..`` goes back through: one per ``..``
    that follows a name, with every segment before that ``..`` resolved lexically and
    the rest kept as written (``.`` and ``//`` dropped); empty without such a ``..``.

    The kernel resolves ``..`` after following the symlink before it, so
    ``/proc/self/cwd/../../etc/shadow`` is the file ``/etc/shadow`` however the lexical
    form reads it; these forms are decided besides, for deny and require_approval rules
    written for the link (``/proc/*/cwd/**``). Up to the first ``..`` that follows a
    link the kernel reads the path lexically too, so ``/tmp/../proc/self/cwd/../..``
    names the link in its second form, not in the first. A ``..`` after a ``..``
    starts from a real directory and adds no form; a ``..`` at the root neither.

    Raises ``RequestError`` for more than ``MAX_WRITTEN_FORMS`` forms: each is decided,
    and no real path needs that many. Call it on a path ``normalise_path`` accepted.
    """
    if not path.startswith("/") and cwd is not None:
        path = cwd + "/" + path  # before the test: "shadow" in "/proc/self/cwd/../../etc"
    if ".." not in path:
        return ()
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    forms: list[str] = []
    resolved: list[str] = []  # segments[:index], resolved lexically
    for index, segment in enumerate(segments):
        if segment != "..":
            resolved.append(segment)
            continue
        if resolved and segments[index - 1] != "..":
            form = "/" + "/".join(resolved + segments[index:])
            if form not in forms:
                if len(forms) == MAX_WRITTEN_FORMS:
                    raise RequestError(
                        f"has more than {MAX_WRITTEN_FORMS} '..' segments after a name "
                        "(each is decided as the kernel may read it)",
                        field,
                    )
                forms.append(form)
        if resolved:
            resolved.pop()
    return tuple(forms)


# Links to directories that Linux images have in common, none of them the agent's to
# change: FHS 3.0's /var/run and /var/lock (Debian, Ubuntu, Fedora, Alpine), merged
# /usr's /bin, /sbin and /lib* (Debian 12, Ubuntu 20.04, RHEL 7 on), Debian's
# /var/spool/mail (base-files), /run/shm and openssl's /usr/lib/ssl directories, and
# procfs's. A ``..`` after one goes back from its target: "/var/run/.." is "/", not
# "/var". An image without one of them only gets an extra form to decide. An image's
# own links are not known: only ``realPath`` covers every link.
SYSTEM_DIRECTORY_LINKS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("var", "run"): ("run",),
    ("var", "lock"): ("run", "lock"),
    ("var", "spool", "mail"): ("var", "mail"),
    ("run", "shm"): ("dev", "shm"),
    ("bin",): ("usr", "bin"),
    ("sbin",): ("usr", "sbin"),
    ("lib",): ("usr", "lib"),
    ("lib32",): ("usr", "lib32"),
    ("lib64",): ("usr", "lib64"),
    ("libx32",): ("usr", "libx32"),
    ("usr", "lib", "ssl", "private"): ("etc", "ssl", "private"),
    ("usr", "lib", "ssl", "certs"): ("etc", "ssl", "certs"),
    ("dev", "fd"): ("proc", "self", "fd"),
    ("proc", "net"): ("proc", "self", "net"),
    # The calling thread's directory, /proc/<pid>/task/<tid>: ".." twice is /proc/self.
    ("proc", "thread-self"): ("proc", "self", "task", "thread-self"),
}
# What a path through one of them starts with (a cheap test before the walk); every
# /proc path, for the magic links to a process's root (``_process_root``).
_LINKED_STARTS = ("/proc/", *("/" + "/".join(link) for link in SYSTEM_DIRECTORY_LINKS))


def _process_root(resolved: list[str]) -> bool:
    """``/proc/<pid>/root`` or ``/proc/<pid>/task/<tid>/root`` (``self`` and
    ``thread-self`` too): a magic link to the process's root directory, "/" in its
    container."""
    if len(resolved) not in (3, 5) or resolved[0] != "proc" or resolved[-1] != "root":
        return False
    process = resolved[1].isdigit() or resolved[1] == "self"
    if len(resolved) == 3:
        return process
    thread = resolved[3].isdigit() or resolved[3] == "thread-self"
    return process and resolved[2] == "task" and thread


@dataclass(frozen=True, slots=True)
class LinkedPath:
    """A path as the kernel reads it through ``SYSTEM_DIRECTORY_LINKS``."""

    path: str
    # A ".." went back through a link: another file than the lexical form names, not
    # the same file by another name.
    elsewhere: bool


def system_link_path(path: str, cwd: str | None = None) -> LinkedPath | None:
    """``path`` (joined to ``cwd`` as given when relative) as the kernel reads it when
    the only symlinks are ``SYSTEM_DIRECTORY_LINKS``, if that differs from its lexical
    form; else None. Call it on a path ``normalise_path`` accepted.

    Deny rules are written for the file (``/etc/shadow``, ``/run/secrets/**``), not for
    every link on the way to it (``/var/run/../etc/shadow``, ``/var/run/secrets/...``);
    ``written_paths`` serves the rules that name a link.
    """
    if not path.startswith("/") and cwd is not None:
        path = cwd + "/" + path
    if ".." not in path and not lexical_path(path).startswith(_LINKED_STARTS):
        return None  # ("/var/./run" and "/var//run" are /var/run too)
    resolved: list[str] = []
    linked = 0  # resolved[:linked] is a link's target
    crossed = elsewhere = False
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            # Back through a link (to above its target): elsewhere than lexically.
            elsewhere = elsewhere or (crossed and len(resolved) <= linked)
            if resolved:
                resolved.pop()
                linked = min(linked, len(resolved))
            continue
        resolved.append(segment)
        target = SYSTEM_DIRECTORY_LINKS.get(tuple(resolved))
        if target is None and _process_root(resolved):
            target = ()
        if target is not None:
            resolved = list(target)
            linked = len(resolved)
            crossed = True
    if not crossed:
        return None
    form = "/" + "/".join(resolved)
    return None if form == lexical_path(path) else LinkedPath(form, elsewhere)
