"""Shell lexer: words, operators, redirections and here-documents (CONTRACT 2.2, "Commands").

It follows bash's reading of a script (a superset of POSIX sh): backslash-newline is
removed everywhere except inside single quotes, comments and quoted here-documents;
words are quote-removed (``'...'``, ``"..."``, ``$'...'``, ``$"..."``, backslash) and
the expansions they hold are recorded (``$'...'`` is delimited first and then decoded,
as bash does: an escape never reaches past its closing quote); ``$(...)`` and
``<(...)`` are read by the parser itself, recursively, so the words and here-documents
inside them are read exactly as the shell would read them. Anything it is not sure
about raises ``ShellSyntaxError``: the caller turns that into a rejected request, never
a guess.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sidecar.normalise.shell_ast import Expansion, HereDoc, Redirect, Word

if TYPE_CHECKING:
    from sidecar.normalise.shell_parser import Parser

METACHARACTERS = frozenset(" \t\n;&|()<>")
BLANKS = frozenset(" \t")
SPECIAL_PARAMETERS = frozenset("@*#?$!-0123456789")
NAME_START = re.compile(r"[A-Za-z_]")
NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
# ${[#][!]name[subscript]rest}: what decides whether the expansion evaluates arithmetic.
BRACED_PARAMETER = re.compile(
    r"(?P<length>#)?(?P<indirect>!)?(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])"
    r"(?P<subscript>\[[^\]]*\])?(?P<rest>.*)",
    re.DOTALL,
)
FD_VARIABLE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# ``{array[subscript]}>file``: bash (5.x) assigns the descriptor to an array element,
# evaluating the subscript as arithmetic. Not modelled, so refused rather than read as a
# plain word (which would hide the assignment).
FD_ARRAY_ELEMENT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\[.*\]\}", re.DOTALL)
ANSI_C_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
QUOTED_MARK = "\x00"  # stands for a quoted character in a word's shape
EXPANSION_MARK = "\x01"  # stands for an expansion in a word's shape
# Delimiters whose quote removal is beyond doubt: a misread one could hide commands.
# A parameter's name and a pattern operator, at the start of "${...}" (${x#, ${10%%).
PATTERN_OPERATOR = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:##?|%%?)")
HEREDOC_DELIMITER = re.compile(
    r"(?:[A-Za-z0-9_.,:@%+=/!-]++|'[^']*'|\"[^\"\\$`]*\"|\\[A-Za-z0-9_.,:@%+=/!-])+"
)
PLAIN_RUN = re.compile(r"[^ \t\n;&|()<>\\'\"`$]+")  # word characters with no special meaning
OPERATORS = (";;&", ";;", ";&", ";", "&&", "&", "||", "|&", "|", "((", "(", ")")
POSIX_OPERATORS = (";;", ";", "&&", "&", "||", "|", "(", ")")
POSIX_REDIRECTIONS = ("<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">")
REDIRECTIONS = ("<<<", "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">", "&>>", "&>")


def has_glob(shape: str) -> bool:
    r"""Whether a word's shape has a glob character: ``*``, ``?``, or a ``[`` with a ``]``
    after it on the same line (``[*?]|\[.*\]``, which as a regex searched in time
    quadratic in the length of ``[[[...``)."""
    if "*" in shape or "?" in shape:
        return True
    if "[" not in shape:
        return False
    for line in shape.split("\n"):
        opening = line.find("[")
        if opening >= 0 and line.find("]", opening + 1) >= 0:
            return True
    return False


def has_brace_list(shape: str) -> bool:
    r"""Whether a word's shape has what bash may brace-expand: a ``{``, then a ``,`` or
    ``..`` with no ``}`` between them, then a ``}`` on the same line.

    One pass: the regex ``\{[^}]*(,|\.\.).*\}`` says the same, but backtracks in time
    cubic in the length of ``{a,{a,{a,...`` with no ``}`` (a minute for 12 KB)."""
    if "{" not in shape:
        return False
    opened = False  # a "{" with no "}" after it yet
    listed = False  # and a "," or ".." after that: a "}" on its line closes a list
    for index, char in enumerate(shape):
        if char == "}":
            if listed:
                return True
            opened = False
        elif char == "\n":
            listed = False
        elif char == "{":
            opened = True
        elif opened and (char == "," or (char == "." and shape[index + 1 : index + 2] == ".")):
            listed = True
    return False


class ShellSyntaxError(Exception):
    """Text that sh would refuse, or that this reader will not guess about."""


class ShellReaderLimit(ShellSyntaxError):
    """Text this reader will not guess about, where the shell may well run something (an
    unusual here-document delimiter, nesting past the limits): never taken for the
    shell's own syntax error, after which POSIX sh runs nothing more."""


@dataclass(frozen=True)
class Token:
    kind: Literal["word", "op", "redirect", "newline", "eof"]
    text: str
    start: int
    end: int
    word: Word | None = None
    redirect: Redirect | None = None


# What may precede the subscript of a name: ``a[``, ``${#a[``, ``${!a[`` (and ``[`` alone
# for an element ``[i]=v`` of an array assignment), and a parameter a substring's ``:``
# may follow (``${x:1}``, ``${@:2}``, ``${a[@]:1}``).
SUBSCRIPTED_WORD = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?")
SUBSCRIPTED_PARAMETER = re.compile(r"#?!?[A-Za-z_][A-Za-z0-9_]*")
SUBSTRING_PARAMETER = re.compile(r"#?!?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")


class _Region:
    """Where a reading is in a word or a ``${...}``: whether in text bash evaluates as
    arithmetic, an array subscript (``a[...]=v``, ``${a[...]}``) or a substring's offset
    and length (``${x:...}``). bash expands that text as it evaluates it, and quotes
    protect nothing there: it reads ``$'...'`` at parse time as a single-quoted string,
    whose ``$(...)`` then runs (``a['$(cmd)']=v``, ``${a[$'\\x24(cmd)']}``,
    ``${x:'$(cmd)'}``). Only characters read as themselves move it (``plain``); a quote
    or an expansion before the name is complete ends the search (``other``)."""

    def __init__(self, *, braced: bool) -> None:
        self.braced = braced
        self.mode = "head"  # head, subscript, after (the subscript), offset, other
        self.head: list[str] = []  # the name read so far
        self.depth = 0

    @property
    def arithmetic(self) -> bool:
        return self.mode in ("subscript", "offset")

    @property
    def done(self) -> bool:
        return self.mode in ("other", "offset")

    def plain(self, char: str, follow: str = "") -> None:
        """``char`` was read as itself; ``follow`` is the character after it."""
        if self.mode == "head":
            names = SUBSCRIPTED_PARAMETER if self.braced else SUBSCRIPTED_WORD
            if char == "[" and names.fullmatch("".join(self.head)):
                self.mode, self.depth = "subscript", 1
            elif char == ":" and self.braced and SUBSTRING_PARAMETER.fullmatch("".join(self.head)):
                self._colon(follow)
            elif NAME_CHAR.match(char) or (self.braced and char in "#!@*?$-"):
                self.head.append(char)
            else:
                self.mode = "other"
        elif self.mode == "subscript":
            if char == "[":
                self.depth += 1
            elif char == "]":
                self.depth -= 1
                if not self.depth:
                    self.mode = "after"
        elif self.mode == "after":
            if char == ":" and self.braced:
                self._colon(follow)
            else:
                self.mode = "other"

    def _colon(self, follow: str) -> None:
        # ${x:-w} ${x:=w} ${x:?w} ${x:+w} take a word; any other ${x:...} is a substring.
        self.mode = "other" if follow in ("-", "=", "?", "+") and follow else "offset"

    def other(self) -> None:
        """A quote or an expansion was read."""
        if self.mode in ("head", "after"):
            self.mode = "other"


class _WordBuilder:
    """Collects a word's text, its quoting and its expansions while it is read."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.shape: list[str] = []
        self.quoted = False
        self.expansions: list[Expansion] = []
        self.subscript: list[Expansion] = []  # see ``Word.subscript``

    def literal(self, text: str, *, quoted: bool) -> None:
        self.text.append(text)
        self.shape.append(QUOTED_MARK * len(text) if quoted else text)
        self.quoted = self.quoted or quoted

    def expansion(self, expansion: Expansion, nested: list[Expansion]) -> None:
        self.text.append(expansion.text)
        self.shape.append(EXPANSION_MARK)
        self.expansions.append(expansion)
        self.expansions.extend(nested)

    def build(self, raw: str) -> Word:
        shape = "".join(self.shape)
        return Word(
            raw=raw,
            text="".join(self.text),
            quoted=self.quoted,
            expansions=tuple(self.expansions),
            glob=has_glob(shape),
            brace=has_brace_list(shape),
            tilde=shape.startswith(("~", "=")),  # "=cmd" is zsh's path expansion
            subscript=tuple(self.subscript),
        )


class Lexer:
    """Reads tokens from one source text on behalf of ``parser``."""

    def __init__(self, source: str, parser: Parser) -> None:
        self.src = source
        self.pos = 0
        self.parser = parser
        self.level = 0  # $( ) nesting inside this text; here-documents must not cross it
        self.conditional = False  # inside [[ ]]: < > ( ) are operators, not redirections
        self.posix = parser.posix  # no bash-only operators, redirections or quoting
        self._pending: list[tuple[HereDoc, int]] = []
        # Where each backslash-newline this reading removed starts, in order: the text
        # the shell tokenises has none of them (``logical``).
        self._continuations: list[int] = []

    # -- characters ------------------------------------------------------------------

    def _skip_continuations(self) -> None:
        while self.src.startswith("\\\n", self.pos):
            self._continuations.append(self.pos)
            self.pos += 2

    def logical(self, start: int, end: int | None = None) -> str:
        """The source from ``start`` to ``end`` (the current position) as the shell reads
        it: less the line continuations this reading removed there. bash and dash remove a
        backslash-newline before they split words, so ``X\\<newline>=1`` is an
        assignment and ``co\\<newline>proc`` the keyword; one inside single quotes,
        ``$'...'``, a comment or a quoted here-document stays."""
        end = self.pos if end is None else end
        text = self.src[start:end]
        if "\\\n" not in text:
            return text
        parts: list[str] = []
        at = start
        index = bisect_left(self._continuations, start)
        while index < len(self._continuations) and self._continuations[index] + 2 <= end:
            removed = self._continuations[index]
            parts.append(self.src[at:removed])
            at = removed + 2
            index += 1
        parts.append(self.src[at:end])
        return "".join(parts)

    def _peek(self, ahead: int = 0) -> str:
        """The character ``ahead`` logical characters on, backslash-newlines removed."""
        if ahead == 0 and self.pos < len(self.src) and self.src[self.pos] != "\\":
            return self.src[self.pos]
        self._skip_continuations()
        index = self.pos
        for step in range(ahead + 1):
            while self.src.startswith("\\\n", index):
                index += 2
            if step < ahead:
                index += 1
        return self.src[index] if index < len(self.src) else ""

    def _take(self) -> str:
        char = self._peek()
        self.pos += 1
        return char

    def _error(self, message: str) -> ShellSyntaxError:
        return ShellSyntaxError(f"{message} (at offset {self.pos})")

    def _limit(self, message: str) -> ShellReaderLimit:
        return ShellReaderLimit(f"{message} (at offset {self.pos})")

    # -- tokens ----------------------------------------------------------------------

    def skip_blanks(self) -> None:
        while True:
            char = self._peek()
            if char in BLANKS and char:
                self.pos += 1
            elif char == "#":
                end = self.src.find("\n", self.pos)
                self.pos = len(self.src) if end < 0 else end
            else:
                return

    def next_token(self) -> Token:
        self.skip_blanks()
        start = self.pos
        char = self._peek()
        if char == "":
            self._finish_heredocs_at_end()
            return Token("eof", "", start, start)
        if char == "\n":
            self.pos += 1
            self._read_heredoc_bodies()
            return Token("newline", "\n", start, self.pos)
        if self.conditional:
            return self._conditional_token(start)
        if char in "<>" and self._peek(1) == "(" and not self.posix:
            return self._word_token(start)
        if char in "<>" or (char == "&" and self._peek(1) == ">" and not self.posix):
            return self._redirect(start, None)
        if char in ";&|()":
            return self._operator(start)
        return self._word_token(start)

    def _longest(self, candidates: tuple[str, ...]) -> str:
        """Take the longest of ``candidates`` (longest first) that the input starts with."""
        self._skip_continuations()
        window = self.src[self.pos : self.pos + 4]
        if "\\" not in window:  # no backslash-newline inside: compare the text directly
            for candidate in candidates:
                if window.startswith(candidate):
                    self.pos += len(candidate)
                    return candidate
            raise self._error("unexpected character")
        for candidate in candidates:
            if all(self._peek(i) == char for i, char in enumerate(candidate)):
                for _ in candidate:
                    self._take()
                return candidate
        raise self._error("unexpected character")

    def _operator(self, start: int) -> Token:
        operators = POSIX_OPERATORS if self.posix else OPERATORS
        return Token("op", self._longest(operators), start, self.pos)

    def _conditional_token(self, start: int) -> Token:
        char = self._peek()
        if char in "()<>" or (char in "&|;" and char):
            self._take()
            text = char
            if char in "&|" and self._peek() == char:
                text += self._take()
            return Token("op", text, start, self.pos)
        return self._word_token(start)

    def _word_token(self, start: int) -> Token:
        word = self.read_word()
        follow = self._peek()
        redirects = follow in ("<", ">") and self._peek(1) != "(" and not self.conditional
        if redirects and not word.quoted:
            # dash takes one digit only: "10>f" is the word 10 and ">f" there.
            if re.fullmatch(r"[0-9]" if self.posix else r"[0-9]+", word.raw):
                return self._redirect(start, word.text)
            if FD_VARIABLE.fullmatch(word.raw) and not self.posix:
                return self._redirect(start, word.text)
            if FD_ARRAY_ELEMENT.fullmatch(word.raw) and not self.posix:
                raise self._error(
                    f"unsupported redirection to an array element {word.raw!r} "
                    "(bash assigns the descriptor number to it)"
                )
        return Token("word", word.raw, start, self.pos, word=word)

    def _redirect(self, start: int, fd: str | None) -> Token:
        op = self._longest(POSIX_REDIRECTIONS if self.posix else REDIRECTIONS)
        self.skip_blanks_only()
        target_char = self._peek()
        starts_word = target_char not in METACHARACTERS or (
            target_char in "<>" and self._peek(1) == "("
        )
        if not target_char or not starts_word:
            raise self._error(f"redirection {op!r} has no target")
        if op in ("<&", ">&") and target_char == "-":
            # bash (parse.y, "Hack <&- (close stdin) case") makes a "-" right after <&
            # or >& a token of its own, in POSIX mode too: "<&-rm x" closes stdin and
            # runs rm. busybox ash (Alpine's sh) reads ">&-rm" as output to the file
            # "-rm" and runs x; dash refuses the line ("Bad fd number"). No one reading
            # decides what every shell runs, so a "-" with more of the word after it
            # is refused, not guessed.
            self._take()
            following = self._peek()
            if following and following not in METACHARACTERS and following not in BLANKS:
                raise self._limit(
                    f"{op}- followed by {following!r}: bash closes the descriptor and "
                    "starts a new word there, busybox ash redirects to a file named "
                    "with the rest, dash refuses the line; write a blank after the '-'"
                )
            redirect = Redirect(op=op, fd=fd, target=Word(raw="-", text="-"))
            return Token("redirect", self.src[start : self.pos], start, self.pos, redirect=redirect)
        try:
            target = self.read_word()
        except ShellReaderLimit:
            raise
        except ShellSyntaxError as error:
            if op in ("<<", "<<-"):
                # dash takes a delimiter that this reader cannot read (<<E`, <<E${) as
                # written, and runs the command: never taken for dash's own error.
                raise ShellReaderLimit(f"unsupported here-document delimiter: {error}") from None
            raise
        heredoc = None
        if op in ("<<", "<<-"):
            if not HEREDOC_DELIMITER.fullmatch(target.raw):
                raise self._limit(f"unsupported here-document delimiter {target.raw!r}")
            heredoc = HereDoc(delimiter=target.text, quoted=target.quoted, strip_tabs=op == "<<-")
            self._pending.append((heredoc, self.level))
        redirect = Redirect(op=op, fd=fd, target=target, heredoc=heredoc)
        return Token("redirect", self.src[start : self.pos], start, self.pos, redirect=redirect)

    def skip_blanks_only(self) -> None:
        while self._peek() in BLANKS and self._peek():
            self.pos += 1

    # -- here-documents ------------------------------------------------------------------

    def _read_heredoc_bodies(self) -> None:
        pending, self._pending = self._pending, []
        for heredoc, level in pending:
            if level != self.level:
                raise self._limit("a here-document may not span a multi-line substitution")
            lines: list[str] = []
            while True:
                if self.pos >= len(self.src):
                    if self.posix:
                        break  # dash ends it at the end of the text, and runs the command
                    raise self._error(f"here-document not ended by {heredoc.delimiter!r}")
                line = self._next_line()
                while not heredoc.quoted and _ends_with_continuation(line):
                    if self.pos >= len(self.src):
                        break
                    if self.posix and "#" in line:
                        # dash reads a $(...) in the text from the raw lines, where a
                        # comment ends at the newline its backslash would have removed.
                        raise self._limit("a here-document line with '#' continued by '\\'")
                    line = line[:-1] + self._next_line()
                if heredoc.strip_tabs:
                    line = line.lstrip("\t")
                if line == heredoc.delimiter:
                    break
                lines.append(line + "\n")
            heredoc.body = self._heredoc_word("".join(lines), quoted=heredoc.quoted)

    def _next_line(self) -> str:
        end = self.src.find("\n", self.pos)
        if end < 0:
            line, self.pos = self.src[self.pos :], len(self.src)
        else:
            line, self.pos = self.src[self.pos : end], end + 1
        return line

    def _finish_heredocs_at_end(self) -> None:
        # bash would end it at the end of the script, with a warning; refuse instead. dash
        # ends it there without one, and runs the command: its reading must see that.
        if self._pending and self.posix:
            self._read_heredoc_bodies()
        if self._pending:
            raise self._error(f"here-document not ended by {self._pending[0][0].delimiter!r}")

    def _heredoc_word(self, body: str, *, quoted: bool) -> Word:
        if quoted or not body:
            return Word(raw=body, text=body, quoted=True)
        return self.parser.child(body, scripts=0).lexer.read_heredoc_body()

    def read_heredoc_body(self) -> Word:
        """Read this whole text as an unquoted here-document body (expansions apply)."""
        builder = _WordBuilder()
        while self.pos < len(self.src):
            char = self._peek()
            if not char:
                break
            self._quoted_character(builder, char, escapable="$`\\", in_double_quotes=False)
        return builder.build(self.src)

    # -- words ---------------------------------------------------------------------------

    def read_expanded_word(self) -> Word:
        """Read this whole text as one word that bash expands without parsing it first:
        blanks and operators in it are literal characters, while quotes, ``$``,
        backquotes and a process substitution (``<(`` ``>(``) act as in any word. bash
        reads the target of ``>&WORD`` so a second time, once it has expanded it."""
        builder = _WordBuilder()
        while True:
            char = self._peek()
            if not char:
                break
            if char in "<>" and self._peek(1) == "(":
                self._process_substitution(builder)
            elif char in METACHARACTERS:
                self.pos += 1
                builder.literal(char, quoted=False)
            else:
                plain = PLAIN_RUN.match(self.src, self.pos)
                if plain:
                    builder.literal(plain.group(), quoted=False)
                    self.pos = plain.end()
                else:
                    self._word_character(builder, char)
        return builder.build(self.src)

    def read_word(self) -> Word:
        start = self.pos
        builder = _WordBuilder()
        # A word that starts with a subscript (a[...]=v, [i]=v in a=(...)): quotes in it
        # may hide what bash runs should the word be an assignment (``Word.subscript``).
        region = None if self.posix else _Region(braced=False)
        while True:
            char = self._peek()
            if not char:
                break
            if char in "<>" and self._peek(1) == "(" and not self.posix:
                self._process_substitution(builder)
                if region is not None:
                    region.other()
                continue
            if char in METACHARACTERS:
                break
            plain = PLAIN_RUN.match(self.src, self.pos)
            if plain:
                builder.literal(plain.group(), quoted=False)
                self.pos = plain.end()
                if region is not None and not region.done:
                    for letter in plain.group():
                        region.plain(letter)
                continue
            if region is not None and region.arithmetic:
                if self._arithmetic_quote(builder, builder.subscript, char):
                    continue
            elif region is not None:
                region.other()
            self._word_character(builder, char)
        if self.pos == start:
            raise self._error("expected a word")
        return builder.build(self.logical(start))

    def _arithmetic_quote(self, builder: _WordBuilder, found: list[Expansion], char: str) -> bool:
        """In text bash evaluates as arithmetic (``_Region``), read a ``'...'`` or
        ``$'...'`` at ``char`` into ``builder`` as usual, and add the expansions bash
        finds in its text to ``found``. False: ``char`` starts neither."""
        if char == "'":
            text = self._single_quoted()
        elif char == "$" and self._peek(1) == "'" and not self.posix:
            self._take()
            self._skip_continuations()
            text = self._ansi_c_quoted()
        else:
            return False
        builder.literal(text, quoted=True)
        if "$" in text or "`" in text:
            found.extend(self.parser.child(text, scripts=0).lexer.read_heredoc_body().expansions)
        return True

    def _word_character(self, builder: _WordBuilder, char: str) -> None:
        if char == "\\":
            self.pos += 1
            if self.pos < len(self.src):
                builder.literal(self.src[self.pos], quoted=True)
                self.pos += 1
            else:
                builder.literal("\\", quoted=True)
        elif char == "'":
            builder.literal(self._single_quoted(), quoted=True)
        elif char == '"':
            self._double_quoted(builder)
        elif char == "`":
            self._backticks(builder, in_double_quotes=False)
        elif char == "$":
            self._dollar(builder, in_double_quotes=False)
        else:
            self.pos += 1
            builder.literal(char, quoted=False)

    def read_regex_word(self) -> Word:
        """The right operand of ``=~`` in ``[[ ]]``: parentheses and ``|`` are literal."""
        self.skip_blanks_only()
        start = self.pos
        builder = _WordBuilder()
        depth = 0
        while True:
            char = self._peek()
            if not char or (depth == 0 and char in " \t\n;&)"):
                break
            if char in "()|<>":
                depth += {"(": 1, ")": -1}.get(char, 0)
                self.pos += 1
                builder.literal(char, quoted=True)
            else:
                self._word_character(builder, char)
        if self.pos == start:
            raise self._error("=~ has no operand")
        return builder.build(self.logical(start))

    def _single_quoted(self) -> str:
        self.pos += 1  # the opening quote; no continuation handling inside
        end = self.src.find("'", self.pos)
        if end < 0:
            raise self._error("unterminated single quote")
        text, self.pos = self.src[self.pos : end], end + 1
        return text

    def _double_quoted(self, builder: _WordBuilder) -> None:
        self._take()  # the opening quote
        builder.literal("", quoted=True)
        while True:
            char = self._peek()
            if not char:
                raise self._error("unterminated double quote")
            if char == '"':
                self.pos += 1
                return
            self._quoted_character(builder, char, escapable='$`"\\', in_double_quotes=True)

    def _quoted_character(
        self, builder: _WordBuilder, char: str, *, escapable: str, in_double_quotes: bool
    ) -> None:
        """One character inside double quotes or an unquoted here-document body."""
        if char == "\\":
            follow = self.src[self.pos + 1 : self.pos + 2]
            if follow and follow in escapable:
                self.pos += 2
                builder.literal(follow, quoted=True)
            else:
                self.pos += 1
                builder.literal("\\", quoted=True)
        elif char == "$":
            self._dollar(builder, in_double_quotes=True)
        elif char == "`":
            self._backticks(builder, in_double_quotes=in_double_quotes)
        else:
            self.pos += 1
            builder.literal(char, quoted=True)

    def _ansi_c_quoted(self) -> str:
        """``$'...'``. bash first finds where the quote ends (a backslash escapes the
        character after it) and only then decodes the text between: an escape that takes
        more than one character (``\\c\\\\``, ``\\c`` before the quote) never reaches
        past the closing quote, so decoding as it reads would end the word elsewhere."""
        self.pos += 1  # the opening quote of $'...'
        src = self.src
        end = self.pos
        while True:
            if end >= len(src):
                raise self._error("unterminated $'...' quote")
            if src[end] == "'":
                break
            end += 2 if src[end] == "\\" else 1
        text = _ansi_c_decode(src[self.pos : end])
        self.pos = end + 1
        # A NUL ends the argument, as it does when bash hands it to a program.
        return text.split("\x00", 1)[0]

    def _backticks(self, builder: _WordBuilder, *, in_double_quotes: bool) -> None:
        start = self.pos
        self._take()
        out: list[str] = []
        src = self.src
        while True:
            if self.pos >= len(src):
                raise self._error("unterminated backquote")
            char = src[self.pos]
            if char == "`":
                self.pos += 1
                break
            if char == "\\" and self.pos + 1 < len(src):
                follow = src[self.pos + 1]
                if follow in "$`\\" or (in_double_quotes and follow == '"'):
                    out.append(follow)
                    self.pos += 2
                    continue
            out.append(char)
            self.pos += 1
        script = self.parser.parse_text("".join(out))
        expansion = Expansion("backticks", self.logical(start), script=script)
        builder.expansion(expansion, [])

    def _process_substitution(self, builder: _WordBuilder) -> None:
        start = self.pos
        self._take()
        self._take()
        script = self.parser.parse_substitution()
        expansion = Expansion("process-substitution", self.logical(start), script=script)
        builder.expansion(expansion, [])

    def _dollar(self, builder: _WordBuilder, *, in_double_quotes: bool) -> None:
        start = self.pos
        follow = self._peek(1)
        if follow in ("'", '"', "[") and self.posix:
            self._take()  # POSIX sh: $'...', $"..." and $[...] begin with a plain "$"
            builder.literal("$", quoted=in_double_quotes)
        elif follow == "'" and not in_double_quotes:
            self._take()
            self._skip_continuations()
            builder.literal(self._ansi_c_quoted(), quoted=True)
        elif follow == '"' and not in_double_quotes:
            self._take()
            self._double_quoted(builder)
        elif follow == "(":
            if self._peek(2) == "(":
                self._arithmetic(builder, start, opening="$((")
            else:
                self._take()
                self._take()
                script = self.parser.parse_substitution()
                expansion = Expansion("command-substitution", self.logical(start), script)
                builder.expansion(expansion, [])
        elif follow == "[":
            self._arithmetic(builder, start, opening="$[")
        elif follow == "{":
            self._braced_parameter(builder, start, in_double_quotes=in_double_quotes)
        elif follow and (
            follow in SPECIAL_PARAMETERS or NAME_START.match(follow) or follow in "=~^+"
        ):
            # $=x $~x $^x $+x are zsh expansions; reading them as such is the strict side.
            self._take()
            if self._take() not in SPECIAL_PARAMETERS:
                while self._peek() and NAME_CHAR.match(self._peek()):
                    self._take()
            builder.expansion(Expansion("parameter", self.logical(start)), [])
        else:
            self._take()
            builder.literal("$", quoted=in_double_quotes)

    def _braced_parameter(
        self, builder: _WordBuilder, start: int, *, in_double_quotes: bool
    ) -> None:
        self._take()
        self._take()
        inner = _WordBuilder()
        region = _Region(braced=True)
        with self.parser.nested():
            while True:
                char = self._peek()
                if not char:
                    raise self._error("unterminated ${")
                if char == "}":
                    self.pos += 1
                    break
                # ${a['$(cmd)']}, ${x:'$(cmd)'}, "${a[$'\\x24(cmd)']}": quotes protect
                # nothing in a subscript or an offset (``_Region``).
                arithmetic = region.arithmetic and (char == "$" or not in_double_quotes)
                if arithmetic and self._arithmetic_quote(inner, inner.expansions, char):
                    continue
                if (
                    char == "'"
                    and in_double_quotes
                    and self.posix
                    and not PATTERN_OPERATOR.match(self.src, start + 2, self.pos)
                ):
                    # dash (and bash --posix): in "${x:-'}", a plain character; quotes
                    # only in a pattern ("${x#'a}'}"). "${x:-'}" ; rm x ; "'}" runs rm.
                    self.pos += 1
                    region.plain(char, self._peek())
                    continue
                before = self.pos
                self._scan_character(inner, char, in_double_quotes=in_double_quotes)
                if self.pos == before + 1 and char not in "\\'\"$`":
                    region.plain(char, self._peek())
                else:
                    region.other()
        raw = self.logical(start)
        content = raw[2:-1]
        if content[:1] in (" ", "\t", "\n", "|") and content and not self.posix:
            # ksh93/mksh/bash 5.3 "${ command; }": a command substitution in this shell.
            script = self.parser.parse_text(content.removeprefix("|"))
            builder.expansion(Expansion("command-substitution", raw, script), inner.expansions)
            return
        match = BRACED_PARAMETER.fullmatch(content)
        arithmetic = prompt = False
        assigns: str | None = None
        if match:
            rest = match["rest"]
            subscript = match["subscript"]
            arithmetic = bool(
                match["indirect"]
                or (subscript and subscript not in ("[@]", "[*]"))
                or (rest.startswith(":") and rest[1:2] not in ("-", "=", "?", "+"))
            )
            prompt = rest == "@P"
            if rest.startswith(("=", ":=")) and not match["length"]:
                assigns = "" if match["indirect"] else match["name"]
        prompt = prompt or content.startswith("(")  # zsh flags: (e) re-expands the value
        expansion = Expansion(
            "parameter", raw, arithmetic=arithmetic, prompt=prompt, assigns=assigns
        )
        builder.expansion(expansion, inner.expansions)

    def _arithmetic(self, builder: _WordBuilder, start: int, *, opening: str) -> None:
        for _ in opening:
            self._take()
        inner = _WordBuilder()
        closing = "]" if opening == "$[" else "))"
        self._scan_arithmetic(inner, closing)
        expansion = Expansion("arithmetic", self.logical(start))
        builder.expansion(expansion, inner.expansions)

    def read_arithmetic_command(self, start: int) -> Word:
        """The body of ``(( ... ))`` after its opening ``((``, up to the closing ``))``."""
        inner = _WordBuilder()
        self._scan_arithmetic(inner, "))")
        raw = self.logical(start)
        return Word(raw=raw, text=raw, expansions=(Expansion("arithmetic", raw), *inner.expansions))

    def _scan_arithmetic(self, inner: _WordBuilder, closing: str) -> None:
        depth = 0
        opener = "[" if closing == "]" else "("
        while True:
            char = self._peek()
            if not char:
                raise self._error("unterminated arithmetic expression")
            if char == opener:
                depth += 1
            elif char == closing[0] and depth == 0:
                if closing == "]":
                    self.pos += 1
                    return
                if self._peek(1) != ")":
                    raise self._limit(
                        "'$((' or '((' not closed by '))'; write '( (' for a subshell"
                    )
                self._take()
                self._take()
                return
            elif char == closing[0]:
                depth -= 1
            self._scan_character(inner, char, in_double_quotes=True, arithmetic=True)

    def _scan_character(
        self, inner: _WordBuilder, char: str, *, in_double_quotes: bool, arithmetic: bool = False
    ) -> None:
        """One character of ``${...}`` or arithmetic text: keep nested expansions.

        As in bash, single quotes inside arithmetic quote nothing, and inside a
        double-quoted ``${...}`` they only protect a ``}``: expansions in them still run.
        """
        if char == "\\":
            self.pos += 2
        elif char == "'" and arithmetic:
            self.pos += 1
        elif char == "'" and in_double_quotes:
            self._single_quoted_expanding(inner)
        elif char == "'":
            self._single_quoted()
        elif char == '"':
            self._double_quoted(inner)
        elif char == "$":
            self._dollar(inner, in_double_quotes=in_double_quotes)
        elif char == "`":
            self._backticks(inner, in_double_quotes=in_double_quotes)
        elif (
            char in "<>"
            and self._peek(1) == "("
            and not (in_double_quotes or arithmetic or self.posix)
        ):
            self._process_substitution(inner)
        else:
            self.pos += 1

    def _single_quoted_expanding(self, inner: _WordBuilder) -> None:
        self.pos += 1
        while True:
            char = self._peek()
            if not char:
                raise self._error("unterminated single quote")
            if char == "'":
                self.pos += 1
                return
            self._scan_character(inner, char, in_double_quotes=True, arithmetic=True)


def _ends_with_continuation(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


OCTAL_DIGITS = re.compile(r"[0-7]{0,2}")
HEX_DIGITS = {
    "x": re.compile(r"[0-9A-Fa-f]{1,2}"),
    "u": re.compile(r"[0-9A-Fa-f]{1,4}"),
    "U": re.compile(r"[0-9A-Fa-f]{1,8}"),
}
HEX_RUN = re.compile(r"[0-9A-Fa-f]*")


def _ansi_c_decode(body: str) -> str:
    """The text of ``$'body'`` as bash's ``ansicstr`` decodes it (bash 5.2)."""
    out: list[str] = []
    index, size = 0, len(body)
    while index < size:
        char = body[index]
        if char != "\\" or index + 1 >= size:
            out.append(char)
            index += 1
            continue
        char = body[index + 1]
        index += 2
        if char in ANSI_C_SIMPLE:
            out.append(ANSI_C_SIMPLE[char])
        elif char in "01234567":
            more = OCTAL_DIGITS.match(body, index)
            digits = more.group() if more else ""
            index += len(digits)
            out.append(chr(int(char + digits, 8) & 0xFF))
        elif char == "x" and body.startswith("{", index):
            # \x{HHH...}: any number of hex digits, then an optional "}"; the value's low
            # byte (\x{165} is "e"), and no digit at all is a NUL, which ends the word.
            run = HEX_RUN.match(body, index + 1)
            digits = run.group() if run else ""
            index += 1 + len(digits)
            if body.startswith("}", index):
                index += 1
            out.append(_code_point(int(digits[-2:] or "0", 16)))
        elif char in HEX_DIGITS:
            found = HEX_DIGITS[char].match(body, index)
            if not found:
                out.append("\\" + char)
                continue
            index = found.end()
            out.append(_code_point(int(found.group(), 16)))
        elif char == "c" and index < size:
            control = body[index]
            index += 1
            if control == "\\" and body.startswith("\\", index):
                index += 1  # POSIX: $'\c\\' is control-backslash, both backslashes taken
            if control == "?":
                out.append("\x7f")
            elif ord(control) < 0x80:
                out.append(chr(ord(control.upper()) & 0x1F))
            else:
                out.append("\\c" + control)
        else:
            out.append("\\" + char)  # also \c at the end: passed through
    return "".join(out)


def _code_point(value: int) -> str:
    if value == 0:
        return "\x00"
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return "\ufffd"
    return chr(value)
