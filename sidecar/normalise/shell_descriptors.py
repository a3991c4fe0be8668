"""Here-documents on a command's descriptors, and the paths that name a descriptor.

Part of CONTRACT 2.2 "Commands" (the ``heredoc-to-shell`` construct, see ``commands``).
A here-document or here-string puts text on a descriptor: standard input, or the one
written before the operator (``3<<<text``). bash applies a command's redirections left
to right, so a duplication (``<&3``, ``0>&3``, ``4<&3-``) hands that text to another
descriptor, and a later redirection of the same descriptor replaces it
(``<<<text 0</dev/null``). A shell reads the text as its script when its standard input
holds it (``bash <<<text``, ``bash 3<<<text <&3``) or when its script operand names the
descriptor: ``/dev/stdin`` (``/dev/stdout``, ``/dev/stderr``), ``/dev/fd/N``,
``/proc/self/fd/N``, ``/proc/thread-self/fd/N``, in any spelling that normalises to one
of those (``/dev//stdin``, ``/dev/./fd/3``). Another path under ``/proc`` or
``/dev/fd`` (``/proc/1234/fd/0``, where 1234 may be the shell itself;
``/proc/self/root/dev/stdin``) may name one as well: the caller fails closed on it.

The same names read as a redirection's target reopen the descriptor: ``< /dev/stdin``,
``< /dev/fd/3``, ``0</proc/self/fd/3``, ``<> /dev/stdin`` are copies like ``<&3``, and
so are the output ones (``> /dev/fd/3``, ``>> /dev/stdin``, ``&> /dev/fd/3`` on 1 and
2): opened again through ``/proc``, the pipe or file holding a here-document is
readable from the new descriptor (``bash /dev/stdout 3<<<text >/dev/fd/3`` reads text).
A target that may name one otherwise (another path under ``/proc`` or ``/dev/fd``, a
relative path where the directory is not known, a value, a ``>&`` target bash expands
again) may hold any of the texts.

A command inherits the descriptors of the compound commands around it
(``{ bash; } <<<text``, ``while ...; done <<<text``) and of the shell that runs its
script (``bash -c bash <<<text``): ``descriptors`` applies its redirections on top of
those ``inherited``. A pipe replaces standard input after the first command of a
pipeline and standard output before the last (``without``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sidecar.normalise import shell_ast as sh
from sidecar.normalise.paths import normalise_path
from sidecar.normalise.shell_wrappers import Arg

Feeds = tuple[Arg, ...]

# The descriptor a redirection operator acts on when none is written before it.
_INPUT_OPERATORS = frozenset({"<", "<<", "<<-", "<<<", "<&", "<>"})
# Redirections that open their target as a file: a descriptor's name reopens it.
_OPENING_A_FILE = frozenset({"<", "<>", ">", ">>", ">|"})
# ``&>file``, ``&>>file`` and ``>&file`` (a file, not a number) redirect 1 and 2.
_BOTH_OUTPUTS = frozenset({"&>", "&>>"})
# No descriptor has more digits; bash refuses a larger one ("file descriptor out of
# range"), and int() refuses more than 4300 digits: one the gate cannot know, never 0-2.
_MAX_DESCRIPTOR_DIGITS = 10
OUT_OF_RANGE = 1 << 40


def descriptor(digits: str) -> int:
    """The descriptor a redirection's ASCII digits name (``2``, ``003``); any number too
    large for one is ``OUT_OF_RANGE``, which matches no descriptor held."""
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DESCRIPTOR_DIGITS:
        return OUT_OF_RANGE
    return int(significant or "0")


_DUPLICATION = re.compile(r"(?P<source>[0-9]+)(?P<move>-?)|-")
# The descriptor bash turns ``>&file`` into ``&>file`` for: 1, however written (``01``).
_STANDARD_OUTPUT = re.compile(r"0*1")
# A ``>&`` target bash expands a second time (``reexpanded``) names the file its text
# does only when it holds none but these characters, on which no expansion acts.
PLAIN_TARGET = re.compile(r"[A-Za-z0-9_./,:@%+=-]+")
_DESCRIPTOR_PATH = re.compile(r"/(?:dev/fd|proc/self/fd|proc/thread-self/fd)/(?P<fd>[0-9]+)")
_STANDARD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
# Paths that may name a descriptor in a way not read here.
_DESCRIPTOR_TREES = ("/proc/", "/dev/fd/")
# bash gives a named descriptor (``{v}<<<text``) a number from 10 up.
_FIRST_NAMED = 10


@dataclass(frozen=True)
class Descriptors:
    """The here-document texts each descriptor holds once a command's redirections are
    applied: by number, and those of named descriptors (``{v}<<<text``), whose number
    is not known here. ``write_only`` are the numbers of those that hold a text through
    a name opened for writing (``0>/dev/stdin``, ``>/dev/fd/3``): reading the
    descriptor itself fails, but opening its name again for reading reads the text."""

    held: Mapping[int, Feeds] = field(default_factory=dict)
    named: Feeds = ()
    write_only: frozenset[int] = frozenset()

    def on(self, fd: int) -> Feeds:
        """What descriptor ``fd`` holds (a named one may have any number from 10 up):
        what opening one of its names reads."""
        return self.held.get(fd, ()) + (self.named if fd >= _FIRST_NAMED else ())

    def readable(self, fd: int) -> Feeds:
        """What reading descriptor ``fd`` itself reads (a shell's standard input)."""
        return () if fd in self.write_only else self.on(fd)

    def every(self) -> Feeds:
        """Every text any descriptor holds, each once."""
        found = [feed for feeds in self.held.values() for feed in feeds] + list(self.named)
        return tuple(dict.fromkeys(found))

    def without(self, *fds: int) -> Descriptors:
        """These descriptors, but ``fds`` replaced by something else (a pipe)."""
        return Descriptors(
            {fd: f for fd, f in self.held.items() if fd not in fds},
            self.named,
            self.write_only - frozenset(fds),
        )

    def gained(self, before: Descriptors) -> Feeds:
        """The texts a descriptor holds here and did not hold in ``before``: what
        ``exec 3<<<text`` or ``exec 3<&0`` leaves open for the rest of the shell."""
        found = [
            feed
            for fd, feeds in self.held.items()
            for feed in feeds
            if feed not in before.held.get(fd, ())
        ]
        found += [feed for feed in self.named if feed not in before.named]
        return tuple(dict.fromkeys(found))

    def __hash__(self) -> int:  # a part of ``Context``, which keys analysed scripts
        return hash((tuple(sorted(self.held.items())), self.named, self.write_only))


NO_HERE_DOCUMENTS = Descriptors()


def _feed(redirect: sh.Redirect) -> Arg | None:
    """The text a here-document or here-string puts on its descriptor."""
    if redirect.heredoc is not None and redirect.heredoc.body is not None:
        return Arg(redirect.heredoc.body.text, redirect.heredoc.body.static)
    if redirect.op == "<<<" and redirect.target is not None:
        return Arg(redirect.target.text + "\n", redirect.target.static)
    return None


# The normalised absolute paths a redirection's static target may be (one for each
# working directory the command may run in), None when that is not known.
Where = Callable[[str], Sequence[str] | None]


def duplication(redirect: sh.Redirect) -> re.Match[str] | None:
    """What ``<&WORD`` / ``>&WORD`` copies, moves or closes, as bash reads a static
    WORD: a number (``2>&1``, ``>&"2"``), ``-`` (closed), or a number and a ``-`` that
    ends the word as written (``3>&4-``, ``>&"4"-``: moved). bash looks for that last
    ``-`` before quote removal, so ``>&"4-"`` and ``>&4'-'`` are the file ``4-``.
    None for every other WORD (a file, see ``reexpanded``; an error on another
    descriptor than 1) and for a WORD not known here."""
    target = redirect.target
    if redirect.op not in ("<&", ">&") or target is None or not target.static:
        return None
    found = _DUPLICATION.fullmatch(target.text)
    if found is not None and found.group("move") and not _moves(target):
        return None
    return found


def _moves(target: sh.Word) -> bool:
    """Whether ``target`` ends with ``-`` as written (line continuations removed)."""
    return target.raw.replace("\\\n", "").endswith("-")


def reexpanded(redirect: sh.Redirect) -> bool:
    """Whether bash may expand this redirection's target twice.

    For ``>&WORD`` on standard output (also ``1>&WORD``, ``01>&WORD``, ``exec >&WORD``)
    bash expands WORD once to see whether it is a number or ``-``; when it is neither,
    it builds the redirection ``&>TEXT`` from the expanded text (redir.c:
    ``make_bare_word``) and expands that again. Quotes therefore protect nothing:
    ``>&'$(cmd)'`` runs ``cmd``, ``>&'~/.bashr?'`` writes ``$HOME/.bashrc``. On another
    descriptor (``2>&WORD``, ``<&WORD``, ``{v}>&WORD``), or when WORD ends with ``-``
    as written (``>&WORD-``, a move), such a WORD is an "ambiguous redirect" instead."""
    target = redirect.target
    if redirect.op != ">&" or target is None or _moves(target):
        return False
    if redirect.fd is not None and not _STANDARD_OUTPUT.fullmatch(redirect.fd):
        return False
    return duplication(redirect) is None


def _opened_on(redirect: sh.Redirect) -> tuple[int, ...] | None:
    """The descriptors on which ``redirect`` opens its target as a file (none written
    for a named one, ``{v}>file``); None when it opens no file (a here-document, a
    duplication, an ambiguous ``2>&file``, a ``>&$n`` that may be either)."""
    op, fd = redirect.op, redirect.fd
    if op in _BOTH_OUTPUTS or (
        op == ">&"
        and redirect.target is not None
        and redirect.target.static
        and reexpanded(redirect)
    ):
        return (1, 2)
    if op not in _OPENING_A_FILE:
        return None
    if fd is not None:
        return () if fd.startswith("{") else (descriptor(fd),)
    return (0,) if op in _INPUT_OPERATORS else (1,)


def _absolute_only(text: str) -> Sequence[str] | None:
    return [normalise_path(text)] if text.startswith("/") else None


def reached(paths: Sequence[str] | None, held: Descriptors) -> Feeds:
    """The texts a file opened by one of ``paths`` may read: those of the descriptor a
    path names; every one when a path may name a descriptor in a way not followed here
    (``/proc/1234/fd/0``) or the paths are not known (None)."""
    if paths is None:
        return held.every()
    found: dict[Arg, None] = {}
    for path in paths:
        fd = descriptor_named(path)
        if fd is not None:
            found.update(dict.fromkeys(held.on(fd)))
        elif may_name_descriptor(path):
            return held.every()
    return tuple(found)


def descriptors(
    redirects: Sequence[sh.Redirect],
    inherited: Descriptors = NO_HERE_DOCUMENTS,
    where: Where = _absolute_only,
) -> Descriptors:
    """What each descriptor holds after ``redirects``, applied in order as bash does to
    the descriptors ``inherited`` from the enclosing commands. ``where`` says which
    paths a relative target is (a target naming a descriptor reopens it)."""
    held: dict[int, Feeds] = dict(inherited.held)
    named: list[Arg] = list(inherited.named)
    write_only: set[int] = set(inherited.write_only)

    def on(fd: int) -> Feeds:  # a named descriptor may have any number from 10 up
        return held.get(fd, ()) + (tuple(named) if fd >= _FIRST_NAMED else ())

    for redirect in redirects:
        feed = _feed(redirect)
        target = redirect.target
        opened_on = _opened_on(redirect)
        if feed is None and opened_on is not None and target is not None and (held or named):
            # < /dev/stdin, 3< /dev/fd/4, <> /proc/self/fd/0, > /dev/fd/3: a copy of the
            # descriptor named; a name not followed, or a value, may be any of them.
            now = Descriptors(dict(held), tuple(named))
            known = target.static and (
                redirect.op != ">&" or PLAIN_TARGET.fullmatch(target.text) is not None
            )
            reopened = reached(where(target.text) if known else None, now)
            if redirect.fd is not None and redirect.fd.startswith("{"):
                named.extend(reopened)
                continue
            held.update(dict.fromkeys(opened_on, reopened))
            if redirect.op in _INPUT_OPERATORS:
                write_only.difference_update(opened_on)
            else:
                write_only.update(opened_on)
            continue
        copied_from = duplication(redirect)
        if redirect.fd is not None and redirect.fd.startswith("{"):
            # {v}>file opens a new descriptor: no numbered one changes. {v}<<<text and
            # {v}<&0 (a copy) give it a text; {v}<&$n any text.
            if feed is not None:
                named.append(feed)
            elif redirect.op in ("<&", ">&") and target is not None and not target.static:
                named.extend(f for feeds in held.values() for f in feeds)
            elif copied_from is not None and copied_from.group("source") is not None:
                named.extend(on(descriptor(copied_from.group("source"))))
            continue
        if redirect.fd is None and redirect.op in _BOTH_OUTPUTS:
            held.pop(1, None)
            held.pop(2, None)
            write_only.difference_update((1, 2))
            continue
        if reexpanded(redirect) and target is not None:
            if target.static:  # >&file, 1>&"4-": the file on both 1 and 2
                held.pop(1, None)
                held.pop(2, None)
                write_only.discard(2)
            else:  # >&$n: a copy of any descriptor on 1, or a file on 1 and 2
                held[1] = tuple(dict.fromkeys(f for feeds in held.values() for f in feeds))
            write_only.discard(1)
            continue
        fd = descriptor(redirect.fd) if redirect.fd is not None else 0
        if redirect.fd is None and redirect.op not in _INPUT_OPERATORS:
            fd = 1
        copies_write_only = False
        if feed is not None:
            held[fd] = (feed,)
        elif redirect.op in ("<&", ">&") and target is not None and not target.static:
            # <&$n: any descriptor, a here-document's too (a dynamic-redirect besides).
            held[fd] = tuple(dict.fromkeys(f for feeds in held.values() for f in feeds))
        elif copied_from is not None and copied_from.group("source") is not None:
            source = descriptor(copied_from.group("source"))
            copied = on(source)
            copies_write_only = source in write_only
            if copied_from.group("move"):  # 4<&3-: 3 is closed after the copy
                held.pop(source, None)
                write_only.discard(source)
            held[fd] = copied
        else:
            held.pop(fd, None)  # a file, or closed (<&-)
        if copies_write_only:
            write_only.add(fd)
        else:
            write_only.discard(fd)
    found = {fd: feeds for fd, feeds in held.items() if feeds}
    return Descriptors(
        found, tuple(dict.fromkeys(named)), frozenset(fd for fd in write_only if fd in found)
    )


def descriptor_named(path: str) -> int | None:
    """The descriptor a normalised absolute ``path`` names, if it is one of the names
    for the running process's own descriptors."""
    if path in _STANDARD_PATHS:
        return _STANDARD_PATHS[path]
    found = _DESCRIPTOR_PATH.fullmatch(path)
    return descriptor(found.group("fd")) if found else None


def may_name_descriptor(path: str) -> bool:
    """Whether a normalised absolute ``path`` that is not ``descriptor_named`` may
    still lead to one of the process's descriptors (another pid, ``root``, ``task``)."""
    return path.startswith(_DESCRIPTOR_TREES)
