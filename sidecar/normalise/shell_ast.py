"""Syntax tree of a shell script, as read by ``shell_parser`` (CONTRACT 2.2, "Commands").

The tree keeps what the command analysis needs and nothing more: words with their
quote-removed text and the expansions they contain, redirections, and the compound
commands of POSIX sh and bash (subshells, groups, if/while/until/for/select/case,
functions, ``(( ))`` and ``[[ ]]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ExpansionKind = Literal[
    "parameter",
    "command-substitution",
    "backticks",
    "process-substitution",
    "arithmetic",
]


@dataclass(frozen=True)
class Expansion:
    """Something the shell computes while expanding a word.

    ``script`` is the parsed body of a command, backtick or process substitution.
    ``arithmetic`` marks a parameter expansion that evaluates arithmetic (an array
    subscript, a substring offset, an indirect ``${!name}`` reference); ``prompt`` marks
    ``${name@P}``, which expands command substitutions found in the variable's value.
    ``assigns`` names the variable ``${name=value}``/``${name:=value}`` sets when it is
    unset (or empty): ``""`` when the name is not known here (``${!ref:=value}``).
    """

    kind: ExpansionKind
    text: str
    script: Script | None = None
    arithmetic: bool = False
    prompt: bool = False
    assigns: str | None = None


@dataclass(frozen=True)
class Word:
    """One shell word.

    ``raw`` is the word as written, less the line continuations (backslash-newline)
    the shell removes before it splits words: what decides whether it is a reserved
    word, an assignment (``X\\<newline>=1`` is ``X=1``), a function name or a
    descriptor number. ``text`` is the word after quote removal, with expansions left as
    written (so a static word's ``text`` is exactly the argument the program receives).
    ``quoted`` says whether any quoting or escaping was used (a quoted word is never a
    reserved word). ``glob``, ``brace`` and ``tilde`` flag unquoted pathname, brace and
    tilde expansion. ``expansions`` lists every expansion in the word, nested ones
    included. ``subscript`` lists those bash also runs when the word is an assignment
    to an array element (``a['$(cmd)']=v``, ``[$'\\x24(cmd)']=v`` in ``a=(...)``): it
    expands the subscript as it evaluates it, and quotes protect nothing there.
    """

    raw: str
    text: str
    quoted: bool = False
    expansions: tuple[Expansion, ...] = ()
    glob: bool = False
    brace: bool = False
    tilde: bool = False
    subscript: tuple[Expansion, ...] = ()

    @property
    def static(self) -> bool:
        """True when the word's value is known without running anything."""
        return not (self.expansions or self.glob or self.brace or self.tilde)


@dataclass
class HereDoc:
    """A here-document; ``body`` is filled in when the lexer reaches its lines."""

    delimiter: str
    quoted: bool
    strip_tabs: bool
    body: Word | None = None


@dataclass(frozen=True)
class Redirect:
    """``[fd]op target``; ``heredoc`` is set for ``<<`` and ``<<-``."""

    op: str
    fd: str | None
    target: Word | None
    heredoc: HereDoc | None = None


@dataclass(frozen=True)
class SimpleCommand:
    """Assignments, words and redirections of one simple command."""

    assignments: tuple[Assignment, ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...]


@dataclass(frozen=True)
class Assignment:
    """``name=value`` or ``name[sub]+=(values)``: ``values`` has one word unless an array."""

    name: str
    subscript: str | None
    word: Word
    values: tuple[Word, ...]


@dataclass(frozen=True)
class Script:
    """A list of and-or lists, each possibly run in the background."""

    items: tuple[ListItem, ...]


@dataclass(frozen=True)
class ListItem:
    and_or: AndOr
    background: bool


@dataclass(frozen=True)
class AndOr:
    """``first (&& | ||) pipeline ...``; ``rest`` pairs each operator with its pipeline."""

    first: Pipeline
    rest: tuple[tuple[str, Pipeline], ...]


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Command, ...]
    negated: bool


@dataclass(frozen=True)
class Subshell:
    body: Script
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Group:
    body: Script
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class If:
    """``if c1; then b1; elif c2; then b2; else e; fi``."""

    clauses: tuple[tuple[Script, Script], ...]
    otherwise: Script | None
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Loop:
    """``while``/``until`` loops."""

    until: bool
    condition: Script
    body: Script
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class For:
    """``for``/``select`` over words (``words`` None means ``"$@"``)."""

    variable: str
    words: tuple[Word, ...] | None
    body: Script
    select: bool = False
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class ArithmeticFor:
    """``for ((init; test; step))``; ``header`` holds the expansions of the header."""

    header: Word
    body: Script
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Case:
    subject: Word
    arms: tuple[tuple[tuple[Word, ...], Script], ...]
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Arithmetic:
    """``(( expression ))``."""

    expression: Word
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Conditional:
    """``[[ ... ]]``: its words, operators included."""

    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class FunctionDefinition:
    name: str
    body: Command
    raw: str = field(default="")


@dataclass(frozen=True)
class Coprocess:
    command: Command
    name: str | None = None  # ``coproc NAME { ...; }``: bash sets the array NAME, NAME_PID


Command = (
    SimpleCommand
    | Subshell
    | Group
    | If
    | Loop
    | For
    | ArithmeticFor
    | Case
    | Arithmetic
    | Conditional
    | FunctionDefinition
    | Coprocess
)
