"""Shell parser: a script's text to a ``shell_ast.Script`` (CONTRACT 2.2, "Commands").

A recursive-descent reading of the POSIX sh grammar with the bash extensions agents
use: lists (``;`` ``&`` ``&&`` ``||`` newline), pipelines (``|`` ``|&`` ``!`` ``time``),
subshells, groups, if/while/until/for/select/case, functions, ``(( ))``, ``[[ ]]``,
``coproc`` and array assignments. What it does not recognise is a ``ShellSyntaxError``,
never a guess.

Two limits keep it bounded: ``max_depth`` for scripts inside scripts (substitutions,
and, from the analysis, ``sh -c`` strings and the like) and ``MAX_NESTING`` for all
nesting together, which keeps Python's recursion well inside its limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sidecar.normalise import shell_ast as sh
from sidecar.normalise.shell_lexer import Lexer, ShellReaderLimit, ShellSyntaxError, Token

MAX_NESTING = 48
# Simple commands parsed for one request, every reading (bash's and dash's) and every
# nested script together, within ``parse_budget``. Without a bound a 64 KiB line of
# `a;a;a;...` (32,000 commands, each read twice) held the event loop 4 - 6 s, and the
# probes behind it (review of 2026-12-07); a script of 5,000 commands is still read.
MAX_PARSED_COMMANDS = 10_000
_parsed_commands: ContextVar[list[int] | None] = ContextVar("parsed_commands", default=None)


@contextmanager
def parse_budget() -> Iterator[None]:
    """Count the simple commands parsed meanwhile (in this context) against
    ``MAX_PARSED_COMMANDS``; past it, parsing raises ``ShellReaderLimit``."""
    token = _parsed_commands.set([0])
    try:
        yield
    finally:
        _parsed_commands.reset(token)


RESERVED = frozenset(
    [
        "!",
        "{",
        "}",
        "if",
        "then",
        "elif",
        "else",
        "fi",
        "while",
        "until",
        "do",
        "done",
        "for",
        "select",
        "in",
        "case",
        "esac",
        "function",
        "coproc",
        "[[",
        "]]",
        "time",
    ]
)
# POSIX sh (dash) has only these; [[ ]], ((, function, select, coproc and time are words.
POSIX_RESERVED = frozenset(
    {"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in"}
    | {"then", "until", "while"}
)
CLOSING_WORDS = frozenset(["}", "then", "elif", "else", "fi", "do", "done", "esac"])
ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<subscript>\[[^\]]*\])?\+?=")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CASE_ENDS = frozenset({";;", ";&", ";;&"})
CONDITIONAL_OPERATORS = frozenset({"(", ")", "<", ">", "&&", "||"})

__all__ = [
    "MAX_NESTING",
    "MAX_PARSED_COMMANDS",
    "Parser",
    "ShellReaderLimit",
    "ShellSyntaxError",
    "parse_budget",
    "parse_expanded_word",
    "parse_expansions",
    "parse_script",
]

# The characters before "(" that make an extglob pattern: !(...) *(...) @(...) ?(...) +(...).
EXTGLOB_OPERATORS = frozenset("!*@?+")
# A $'...' word holding an escaped quote (\'), which dash ends there and bash does not.
ANSI_C_ESCAPED_QUOTE = re.compile(r"\$'(?:[^'\\]|\\[^'])*\\'")


def parse_script(
    text: str, *, max_depth: int, depth: int = 0, nesting: int = 0, posix: bool = False
) -> sh.Script:
    """Parse ``text`` as a whole script; ``depth``/``nesting`` say how deep it already is.

    With ``posix``, read it as POSIX sh does, and keep the complete commands before a
    syntax error: POSIX sh runs those before it stops (it reads one line at a time).
    """
    parser = Parser(text, depth=depth, max_depth=max_depth, nesting=nesting, posix=posix)
    return parser.parse_lines() if posix else parser.parse_program()


def parse_expansions(text: str, *, max_depth: int, depth: int = 0, nesting: int = 0) -> sh.Word:
    """Read ``text`` as an unquoted here-document body: a word with every ``$`` and
    backquote expansion in it (quotes in it hide nothing, a backslash escapes ``$``)."""
    parser = Parser(text, depth=depth, max_depth=max_depth, nesting=nesting)
    return parser.lexer.read_heredoc_body()


def parse_expanded_word(text: str, *, max_depth: int, depth: int = 0, nesting: int = 0) -> sh.Word:
    """Read ``text`` as one word bash expands without parsing it (blanks and operators
    are literal in it): how bash reads the target of ``>&WORD`` a second time."""
    parser = Parser(text, depth=depth, max_depth=max_depth, nesting=nesting)
    return parser.lexer.read_expanded_word()


class Parser:
    def __init__(
        self, text: str, *, depth: int, max_depth: int, nesting: int, posix: bool = False
    ) -> None:
        self.depth = depth
        self.max_depth = max_depth
        self.nesting = nesting
        self.posix = posix  # read as POSIX sh (dash) reads it, not as bash does
        self.reserved_words = POSIX_RESERVED if posix else RESERVED
        self.lexer = Lexer(text, self)
        self._lookahead: Token | None = None
        self._check_limits()

    # -- plumbing ------------------------------------------------------------------------

    def _reserved(self, token: Token, *words: str) -> bool:
        word = token.word
        if token.kind != "word" or word is None or word.quoted or word.expansions:
            return False
        return word.raw in self.reserved_words and (not words or word.raw in words)

    def _check_limits(self) -> None:
        if self.depth > self.max_depth:
            raise ShellReaderLimit(f"scripts are nested deeper than {self.max_depth}")
        if self.nesting > MAX_NESTING:
            raise ShellReaderLimit(f"commands are nested deeper than {MAX_NESTING}")

    @contextmanager
    def nested(self, scripts: int = 0) -> Iterator[None]:
        """Count one more level of nesting (and ``scripts`` more levels of script depth)."""
        self.nesting += 1
        self.depth += scripts
        try:
            self._check_limits()
            yield
        finally:
            self.nesting -= 1
            self.depth -= scripts

    def child(self, text: str, *, scripts: int = 1) -> Parser:
        """A parser for text found inside this one (backquotes, here-document bodies)."""
        return Parser(
            text,
            depth=self.depth + scripts,
            max_depth=self.max_depth,
            nesting=self.nesting + 1,
            posix=self.posix,
        )

    def parse_text(self, text: str) -> sh.Script:
        """A backquoted script. dash runs the commands before an unexpected token in it
        and ignores the rest (``echo `a (``` runs ``a``), so its reading does too."""
        child = self.child(text)
        return child._list() if self.posix else child.parse_program()

    def _peek(self) -> Token:
        if self._lookahead is None:
            self._lookahead = self.lexer.next_token()
        return self._lookahead

    def _take(self) -> Token:
        token = self._peek()
        self._lookahead = None
        return token

    def _refuse_extglob_negation(self, bang: Token) -> None:
        """``!(cmd)``, ``(`` right after ``!``: a negated subshell, but with extglob on
        (``bash -O extglob``, ``shopt -s extglob`` on an earlier line) bash reads ``!(...)``
        as a pattern in command position, whose first match in the directory is run. Which
        one bash reads is not known here: refused (``! (cmd)`` is the same subshell)."""
        following = self._peek()
        if self.posix or following.kind != "op" or following.text not in ("(", "(("):
            return
        if not self.lexer.src[bang.end : following.start].replace("\\\n", ""):
            raise ShellSyntaxError(
                f"'!(' is a pattern with extglob on; write '! (' (at offset {bang.start})"
            )

    def _unexpected(self, token: Token) -> ShellSyntaxError:
        shown = "end of input" if token.kind == "eof" else repr(token.text)
        return ShellSyntaxError(f"syntax error near {shown} (at offset {token.start})")

    def _expect_op(self, text: str) -> Token:
        token = self._take()
        if token.kind != "op" or token.text != text:
            raise self._unexpected(token)
        return token

    def _skip_newlines(self) -> None:
        while self._peek().kind == "newline":
            self._take()

    # -- entry points --------------------------------------------------------------------

    def parse_program(self) -> sh.Script:
        script = self._list()
        token = self._peek()
        if token.kind != "eof":
            raise self._unexpected(token)
        return script

    def parse_lines(self) -> sh.Script:
        """The complete commands (lines) that parse, up to the first syntax error."""
        items: list[sh.ListItem] = []
        try:
            while True:
                self._skip_newlines()
                if self._peek().kind == "eof":
                    break
                line = self._list(one_line=True)
                if self._peek().kind not in ("newline", "eof"):
                    raise self._unexpected(self._peek())
                if self._peek().kind == "newline":
                    # Its one newline, which reads the line's here-documents: dash has
                    # the line then, and runs it whatever the next line holds.
                    self._take()
                items.extend(line.items)
        except ShellReaderLimit:
            raise  # not dash's error: it may run what follows
        except ShellSyntaxError as error:
            if ANSI_C_ESCAPED_QUOTE.search(self.lexer.src):
                # bash reads $'a\'b' as one quoted word, dash ends the quote at \' and
                # reads what follows as commands: text hidden from bash's reading this
                # way is only what dash runs if this reader errs where dash does. It
                # may not (a construct it reads otherwise): refused rather than cut.
                raise ShellReaderLimit(
                    f"{error}, in text that bash and POSIX sh split differently ($'...')"
                ) from None
        return sh.Script(tuple(items))

    def parse_substitution(self) -> sh.Script:
        """Read ``$(...)`` or ``<(...)`` from after its ``(`` through its ``)``."""
        if self._lookahead is not None:
            raise ShellReaderLimit("substitution read out of order")
        saved_conditional = self.lexer.conditional
        self.lexer.conditional = False
        self.lexer.level += 1
        with self.nested(scripts=1):
            script = self._list(closing_ops=frozenset({")"}))
            self._expect_op(")")
        self.lexer.level -= 1
        self.lexer.conditional = saved_conditional
        return script

    # -- lists and pipelines -------------------------------------------------------------

    def _list(
        self,
        closing_words: frozenset[str] = frozenset(),
        closing_ops: frozenset[str] = frozenset(),
        *,
        one_line: bool = False,
    ) -> sh.Script:
        items: list[sh.ListItem] = []
        while True:
            if items and one_line and self._peek().kind in ("newline", "eof"):
                break
            self._skip_newlines()
            token = self._peek()
            if token.kind == "eof" or (token.kind == "op" and token.text in closing_ops):
                break
            if self._reserved(token) and token.word and token.word.raw in CLOSING_WORDS:
                if token.word.raw in closing_words:
                    break
                raise self._unexpected(token)
            if token.kind == "op" and token.text not in ("(", "(("):
                raise self._unexpected(token)
            and_or = self._and_or()
            separator = self._peek()
            if separator.kind == "op" and separator.text in (";", "&"):
                self._take()
                items.append(sh.ListItem(and_or, background=separator.text == "&"))
                continue
            items.append(sh.ListItem(and_or, background=False))
            if separator.kind != "newline":
                break
        return sh.Script(tuple(items))

    def _and_or(self) -> sh.AndOr:
        first = self._pipeline()
        rest: list[tuple[str, sh.Pipeline]] = []
        while self._peek().kind == "op" and self._peek().text in ("&&", "||"):
            operator = self._take().text
            self._skip_newlines()
            rest.append((operator, self._pipeline()))
        return sh.AndOr(first, tuple(rest))

    def _pipeline(self) -> sh.Pipeline:
        negated = False
        while True:
            token = self._peek()
            if self._reserved(token, "!"):
                self._take()
                negated = not negated
                self._refuse_extglob_negation(token)
            elif self._reserved(token, "time"):
                self._take()
                # bash's timespec: ``time [-p] [--]``, each written plainly (the raw
                # token: ``'--'`` or ``\--`` is a command); ``--`` is skipped, not run.
                for option in ("-p", "--"):
                    following = self._peek()
                    if following.kind == "word" and following.word and following.word.raw == option:
                        self._take()
            else:
                break
        commands = [self._command()]
        while self._peek().kind == "op" and self._peek().text in ("|", "|&"):
            self._take()
            self._skip_newlines()
            commands.append(self._command())
        return sh.Pipeline(tuple(commands), negated)

    # -- commands ------------------------------------------------------------------------

    def _command(self) -> sh.Command:
        with self.nested():
            token = self._peek()
            if token.kind == "op":
                if token.text == "(":
                    self._take()
                    body = self._list(closing_ops=frozenset({")"}))
                    self._expect_op(")")
                    return sh.Subshell(body, self._redirects())
                if token.text == "((":
                    self._take()
                    expression = self.lexer.read_arithmetic_command(token.start)
                    return sh.Arithmetic(expression, self._redirects())
                raise self._unexpected(token)
            if self._reserved(token) and token.word:
                compounds: dict[str, Callable[[], sh.Command]] = {
                    "{": self._group,
                    "if": self._if,
                    "while": self._loop,
                    "until": self._loop,
                    "for": self._for,
                    "select": self._for,
                    "case": self._case,
                    "[[": self._conditional,
                    "function": self._function_keyword,
                    "coproc": self._coproc,
                }
                compound = compounds.get(token.word.raw)
                if compound is None:
                    raise self._unexpected(token)
                return compound()
            return self._simple()

    def _redirects(self) -> tuple[sh.Redirect, ...]:
        redirects: list[sh.Redirect] = []
        while self._peek().kind == "redirect":
            redirect = self._take().redirect
            if redirect is not None:
                redirects.append(redirect)
        return tuple(redirects)

    def _simple(self, first: Token | None = None) -> sh.Command:
        parsed = _parsed_commands.get()
        if parsed is not None:
            parsed[0] += 1
            if parsed[0] > MAX_PARSED_COMMANDS:
                raise ShellReaderLimit(
                    f"more than {MAX_PARSED_COMMANDS:,} commands to read (by bash's and "
                    "dash's rules together): split the script, or run it from a file"
                )
        assignments: list[sh.Assignment] = []
        words: list[sh.Word] = []
        redirects: list[sh.Redirect] = []
        while True:
            token = first or self._peek()
            if token.kind == "redirect" and token.redirect:
                self._take()
                redirects.append(token.redirect)
                continue
            if token.kind != "word" or token.word is None:
                break
            if first is None:
                self._take()
            word, first = token.word, None
            assignment = self._assignment(token, word)
            if assignment is not None and not words:
                assignments.append(assignment)
            elif assignment is not None:
                words.extend(assignment.values)  # declare a=(1 2): words after the name
            elif not (words or assignments or redirects) and self._is_function_start(word):
                return self._function_body(word.raw, token.start)
            else:
                words.append(word)
        if not (assignments or words or redirects):
            raise self._unexpected(self._peek())
        return sh.SimpleCommand(tuple(assignments), tuple(words), tuple(redirects))

    def _assignment(self, token: Token, word: sh.Word) -> sh.Assignment | None:
        match = ASSIGNMENT.match(word.raw)
        if not match:
            return None
        values: tuple[sh.Word, ...] = (word,)
        following = self._peek()
        adjacent = following.kind == "op" and following.start == token.end
        if match.end() == len(word.raw) and adjacent and following.text == "(" and not self.posix:
            self._take()
            values = (word, *self._array_elements())
        subscript = match["subscript"]
        return sh.Assignment(match["name"], subscript[1:-1] if subscript else None, word, values)

    def _array_elements(self) -> tuple[sh.Word, ...]:
        elements: list[sh.Word] = []
        while True:
            self._skip_newlines()
            token = self._take()
            if token.kind == "op" and token.text == ")":
                return tuple(elements)
            if token.kind != "word" or token.word is None:
                raise self._unexpected(token)
            elements.append(token.word)

    def _is_function_start(self, word: sh.Word) -> bool:
        following = self._peek()
        if following.kind != "op" or following.text != "(":
            return False
        if word.quoted or word.expansions or word.raw in self.reserved_words or "=" in word.raw:
            raise self._unexpected(following)
        if word.raw[-1:] in EXTGLOB_OPERATORS:
            # With extglob on (bash -O extglob, shopt -s extglob), touc!() is a pattern
            # that may name /usr/bin/touch, not a function: which one is not known here.
            raise ShellReaderLimit(f"{word.raw}() is a function or, with extglob, a pattern")
        return True

    def _function_body(self, name: str, start: int) -> sh.FunctionDefinition:
        self._expect_op("(")
        self._expect_op(")")
        self._skip_newlines()
        body = self._command()
        # dash takes any command as the body ("f() touch x"); bash a compound one.
        compound = not isinstance(body, sh.SimpleCommand | sh.FunctionDefinition | sh.Coprocess)
        if not (compound or self.posix):
            raise ShellSyntaxError(f"function {name!r} needs a compound command as its body")
        return sh.FunctionDefinition(name, body, raw=self._text_since(start))

    def _text_since(self, start: int) -> str:
        return self.lexer.logical(start).rstrip(" \t\n;&|")

    def _function_keyword(self) -> sh.FunctionDefinition:
        start = self._take().start
        token = self._take()
        if token.kind != "word" or not token.word or token.word.quoted or token.word.expansions:
            raise self._unexpected(token)
        name = token.word.raw
        if self._peek().kind == "op" and self._peek().text == "(":
            return self._function_body(name, start)
        self._skip_newlines()
        body = self._command()
        if isinstance(body, sh.SimpleCommand | sh.FunctionDefinition | sh.Coprocess):
            raise ShellSyntaxError(f"function {name!r} needs a compound command as its body")
        return sh.FunctionDefinition(name, body, raw=self._text_since(start))

    def _coproc(self) -> sh.Coprocess:
        self._take()
        token = self._peek()
        named = token.kind == "word" and token.word and NAME.fullmatch(token.word.raw)
        if named and not self._reserved(token):
            self._take()
            following = self._peek()
            opens_compound = (following.kind == "op" and following.text in ("(", "((")) or (
                self._reserved(following) and following.word is not None
            )
            if opens_compound:  # coproc NAME compound-command
                return sh.Coprocess(self._command(), name=token.text)
            with self.nested():
                return sh.Coprocess(self._simple(first=token))
        return sh.Coprocess(self._command())

    # -- compound commands ---------------------------------------------------------------

    def _group(self) -> sh.Group:
        self._take()
        body = self._list(closing_words=frozenset({"}"}))
        self._expect_reserved("}")
        return sh.Group(body, self._redirects())

    def _expect_reserved(self, word: str) -> None:
        token = self._take()
        if not self._reserved(token, word):
            raise self._unexpected(token)

    def _if(self) -> sh.If:
        self._take()
        clauses: list[tuple[sh.Script, sh.Script]] = []
        otherwise: sh.Script | None = None
        while True:
            condition = self._list(closing_words=frozenset({"then"}))
            self._expect_reserved("then")
            body = self._list(closing_words=frozenset({"elif", "else", "fi"}))
            clauses.append((condition, body))
            token = self._take()
            if self._reserved(token, "elif"):
                continue
            if self._reserved(token, "else"):
                otherwise = self._list(closing_words=frozenset({"fi"}))
                self._expect_reserved("fi")
            elif not self._reserved(token, "fi"):
                raise self._unexpected(token)
            return sh.If(tuple(clauses), otherwise, self._redirects())

    def _loop(self) -> sh.Loop:
        until = self._take().text == "until"
        condition = self._list(closing_words=frozenset({"do"}))
        body = self._do_group()
        return sh.Loop(until, condition, body, self._redirects())

    def _do_group(self) -> sh.Script:
        self._skip_newlines()
        token = self._take()
        if self._reserved(token, "do"):
            body = self._list(closing_words=frozenset({"done"}))
            self._expect_reserved("done")
            return body
        if self._reserved(token, "{") and not self.posix:
            body = self._list(closing_words=frozenset({"}"}))
            self._expect_reserved("}")
            return body
        raise self._unexpected(token)

    def _for(self) -> sh.For | sh.ArithmeticFor:
        select = self._take().text == "select"
        token = self._peek()
        if token.kind == "op" and token.text == "((" and not select:
            self._take()
            header = self.lexer.read_arithmetic_command(token.start)
            if self._peek().kind == "op" and self._peek().text == ";":
                self._take()
            return sh.ArithmeticFor(header, self._do_group(), self._redirects())
        token = self._take()
        if token.kind != "word" or not token.word or not NAME.fullmatch(token.word.raw):
            raise self._unexpected(token)
        variable = token.word.raw
        self._skip_newlines()
        words: tuple[sh.Word, ...] | None = None
        following = self._peek()
        if following.kind == "word" and following.word and following.word.raw == "in":
            self._take()
            collected: list[sh.Word] = []
            while self._peek().kind == "word":
                word = self._take().word
                if word is not None:
                    collected.append(word)
            words = tuple(collected)
            separator = self._take()
            if separator.kind not in ("newline",) and not (
                separator.kind == "op" and separator.text == ";"
            ):
                raise self._unexpected(separator)
        elif following.kind == "op" and following.text == ";":
            self._take()
        body = self._do_group()
        return sh.For(variable, words, body, select, self._redirects())

    def _case(self) -> sh.Case:
        self._take()
        token = self._take()
        if token.kind != "word" or token.word is None:
            raise self._unexpected(token)
        subject = token.word
        self._skip_newlines()
        token = self._take()
        if not (token.kind == "word" and token.word and token.word.raw == "in"):
            raise self._unexpected(token)
        arms: list[tuple[tuple[sh.Word, ...], sh.Script]] = []
        while True:
            self._skip_newlines()
            token = self._peek()
            if self._reserved(token, "esac"):
                self._take()
                return sh.Case(subject, tuple(arms), self._redirects())
            if token.kind == "op" and token.text == "(":
                self._take()
            patterns = [self._pattern()]
            while self._peek().kind == "op" and self._peek().text == "|":
                self._take()
                patterns.append(self._pattern())
            self._expect_op(")")
            body = self._list(closing_words=frozenset({"esac"}), closing_ops=CASE_ENDS)
            arms.append((tuple(patterns), body))
            ending = self._peek()
            if ending.kind == "op" and ending.text in CASE_ENDS:
                self._take()
            elif not self._reserved(ending, "esac"):
                raise self._unexpected(ending)

    def _pattern(self) -> sh.Word:
        token = self._take()
        if token.kind != "word" or token.word is None:
            raise self._unexpected(token)
        return token.word

    def _conditional(self) -> sh.Conditional:
        self._take()
        if self._lookahead is not None:
            raise ShellReaderLimit("[[ read out of order")
        words: list[sh.Word] = []
        self.lexer.conditional = True
        try:
            while True:
                token = self._take()
                after_operator = bool(words) and words[-1].raw in ("&&", "||")
                if token.kind == "newline" and after_operator:
                    continue
                if self._reserved(token, "]]"):
                    break
                if token.kind == "op" and token.text in CONDITIONAL_OPERATORS:
                    words.append(sh.Word(raw=token.text, text=token.text))
                    continue
                if token.kind != "word" or token.word is None:
                    raise self._unexpected(token)
                words.append(token.word)
                if token.word.raw == "=~":
                    words.append(self.lexer.read_regex_word())
        finally:
            self.lexer.conditional = False
        if not words:
            raise ShellSyntaxError("empty [[ ]]")
        return sh.Conditional(tuple(words), self._redirects())
