"""Glob patterns for policy matchers (CONTRACT section 1, "glob").

``*`` matches within one segment, ``**`` across segments, ``?`` one character of a
segment, ``[...]`` a class (``[!...]`` or ``[^...]`` negates it), which may hold the POSIX
classes bash and gitignore read (``[[:digit:]]``, ``[![:space:]]``). The separator is ``/``
for paths and ``.`` for hosts, so ``*.example.com`` does not match ``example.com`` nor
``a.b.example.com``. A ``**`` that is a whole segment (``/a/**/b``) matches zero or more
whole segments, as in gitignore; ``/app/data/**`` matches everything below
``/app/data`` but not ``/app/data`` itself. ``\\`` escapes the next character.

A wildcard may match nothing, ``**`` as ``*`` does: ``/app/data/**`` and
``/app/data/*`` both match ``/app/data/``. Normalised paths never end in ``/``, but a
URL path as sent (decided for deny and require_approval rules) and an argument can,
and such a deny rule must hold for them as it holds for ``startsWith: /app/data/``.

Patterns compile to RE2 (linear time), with plain string tests for the shapes most
rules use: a pattern without wildcards is an equality test, ``<literal>/**`` a prefix
test, ``**/<literal>/**`` a substring test and ``<head>*<tail>`` (one wildcard within a
segment, like ``*.example.com`` or ``/out/*.json``) a prefix-and-suffix test.

A newline is an ordinary character: request values may contain one (a file name can),
and ``/home/**/.ssh/**`` must match ``/home/u\nv/.ssh/id_rsa``. The regexes are compiled
with the ``s`` flag (RE2's ``.`` otherwise stops at a newline); classes and the string
tests never treated it specially.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2

GlobTest = Callable[[str], bool]

_SPECIAL = frozenset("*?[\\")


class GlobError(ValueError):
    """The pattern is not a valid glob."""


def _ascii(test: Callable[[str], bool]) -> str:
    return "".join(c for c in map(chr, range(128)) if test(c))


# The POSIX classes of bash and gitignore (git's wildmatch), ASCII only as in RE2 and
# wildmatch; spelt out so that the separator can be left out of them (below).
POSIX_CLASSES: dict[str, str] = {
    "alnum": _ascii(lambda c: c.isalnum()),
    "alpha": _ascii(str.isalpha),
    "blank": " \t",
    "cntrl": _ascii(lambda c: ord(c) < 32 or ord(c) == 127),
    "digit": _ascii(str.isdigit),
    "graph": _ascii(lambda c: 32 < ord(c) < 127),
    "lower": _ascii(str.islower),
    "print": _ascii(lambda c: 32 <= ord(c) < 127),
    "punct": _ascii(lambda c: 32 < ord(c) < 127 and not c.isalnum()),
    "space": " \t\n\r\v\f",
    "upper": _ascii(str.isupper),
    "xdigit": _ascii(lambda c: c in "0123456789abcdefABCDEF"),
}


def _posix_class(pattern: str, start: int, sep: str) -> tuple[str, int] | None:
    """The ``[:name:]`` at ``start`` inside a class as regex class items, and the index
    after it; None if no ``[:``, ``[=`` or ``[.`` item starts there.

    As in bash and gitignore, a named class never matches the separator (``[[:punct:]]``
    leaves out the ``/`` of a path, the ``.`` of a host): a class stays in its segment.
    """
    kind = pattern[start + 1 : start + 2]
    if pattern[start] != "[" or kind not in (":", "=", "."):
        return None
    end = pattern.find(kind + "]", start + 2)
    if end < 0:
        return None  # no closing ':]': the '[' is an ordinary character, as in bash
    item = pattern[start : end + 2]
    if kind != ":":
        # Equivalence classes and collating symbols; RE2 reads them as their characters.
        raise GlobError(f"{item} in a class is not supported; list the characters")
    members = POSIX_CLASSES.get(pattern[start + 2 : end])
    if members is None:
        raise GlobError(f"unknown class {item}: the POSIX classes are {', '.join(POSIX_CLASSES)}")
    return _ranges(members.replace(sep, "")), end + 2


def _ranges(members: str) -> str:
    """Class items for the ASCII characters ``members``: runs as ranges."""
    items: list[str] = []
    codes = sorted(map(ord, members))
    start = 0
    for end in range(len(codes)):
        if end + 1 == len(codes) or codes[end + 1] != codes[end] + 1:
            first, last = codes[start], codes[end]
            items.append(f"\\x{first:02x}" + (f"-\\x{last:02x}" if last > first else ""))
            start = end + 1
    return "".join(items)


def _class_to_regex(pattern: str, start: int, sep: str) -> tuple[str, int]:
    """Translate the ``[...]`` class opening at ``start``; return (regex, index after ``]``)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    chars: list[str] = []  # raw characters, with "-" between the ends of a range
    first = True
    after_named = False  # a "-" just after [:name:] is a character, not a range
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        named = _posix_class(pattern, i, sep)
        if named is not None:
            if chars and chars[-1] == "-":
                raise GlobError(f"a range cannot end in a class: {pattern[start : named[1]]}")
            chars.append(named[0])
            i = named[1]
            after_named = True
            continue
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
            chars.append(re.escape(pattern[i]))
        elif (
            pattern[i] == "-"
            and chars
            and not after_named
            and i + 1 < len(pattern)
            and pattern[i + 1] != "]"
        ):
            chars.append("-")
        else:
            chars.append(re.escape(pattern[i]))
        after_named = False
        i += 1
    if i >= len(pattern):
        raise GlobError("unclosed '[' class")
    body = "".join(chars)
    try:
        matches_sep = re.fullmatch(f"[{body}]", sep) is not None
    except re.error as exc:
        raise GlobError(f"bad class [{pattern[start + 1 : i]}]: {exc}") from exc
    if negate:
        # A negated class never matches the separator: a wildcard stays in its segment.
        return f"[^{body}{re.escape(sep)}]", i + 1
    if matches_sep:
        raise GlobError(f"class [{pattern[start + 1 : i]}] matches the separator {sep!r}")
    return f"[{body}]", i + 1


def glob_to_regex(pattern: str, sep: str = "/") -> str:
    """Return an RE2 regex (anchored by fullmatch) equivalent to ``pattern``."""
    if not pattern:
        raise GlobError("empty pattern")
    esc_sep = re.escape(sep)
    not_sep = f"[^{esc_sep}]"  # RE2's negated classes match a newline, as they should
    # "(?s)": the ".*" that ``**`` becomes must cross a newline too, or a newline in a
    # request value would slip past a deny glob.
    out: list[str] = ["(?s)"]
    i = 0
    n = len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                segment_start = i == 0 or pattern[i - 1] == sep
                after = i + 2
                if segment_start and after < n and pattern[after] == sep:
                    out.append(f"(?:.*{esc_sep})?")  # zero or more whole segments
                    i = after + 1
                    continue
                out.append(".*")
                i = after
                continue
            out.append(f"{not_sep}*")
            i += 1
        elif char == "?":
            out.append(not_sep)
            i += 1
        elif char == "[":
            regex, i = _class_to_regex(pattern, i, sep)
            out.append(regex)
        elif char == "\\":
            if i + 1 >= n:
                raise GlobError("pattern ends with an escape '\\'")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def literal_head(pattern: str) -> str:
    """The text every match of ``pattern`` starts with: all before the first wildcard."""
    cut = min((i for i in map(pattern.find, _SPECIAL) if i >= 0), default=len(pattern))
    return pattern[:cut]


def literal_tail(pattern: str, sep: str = "/") -> str:
    """The text every match of ``pattern`` ends with: all after the last wildcard or class.

    ``**<sep>`` may match nothing at all, separator included, so the tail of
    ``**.example.com`` is ``example.com``.
    """
    tail = pattern[max(map(pattern.rfind, _SPECIAL | {"]"})) + 1 :]
    if pattern[: len(pattern) - len(tail)].endswith("**") and tail.startswith(sep):
        return tail[len(sep) :]
    return tail


def _is_literal(text: str) -> bool:
    return bool(text) and not _SPECIAL.intersection(text)


def _string_test(pattern: str, sep: str) -> GlobTest | None:
    """A plain string test equivalent to ``pattern``, for the common shapes; else None."""
    below = sep + "**"
    if pattern.endswith(below) and _is_literal(pattern[: -len(below)]):
        prefix = pattern[: -len(below)] + sep
        # "**" may match nothing: "/a/**" holds for "/a/", as its regex does.
        return lambda value: value.startswith(prefix)
    if pattern.startswith("**" + sep) and pattern.endswith(below):
        middle = pattern[3:-3]
        if _is_literal(middle):
            needle = sep + middle + sep
            return lambda value: needle in sep + value
    head, star, tail = pattern.partition("*")
    if star and not _SPECIAL.intersection(head + tail):
        start, size = len(head), len(head) + len(tail)
        return lambda value: (
            len(value) >= size
            and value.startswith(head)
            and value.endswith(tail)
            and sep not in value[start : len(value) - len(tail)]
        )
    return None


def compile_glob(pattern: str, sep: str = "/") -> GlobTest:
    """Compile ``pattern`` to a predicate on one string. Raises ``GlobError``."""
    return compile_glob_sized(pattern, sep)[0]


def compile_glob_sized(pattern: str, sep: str = "/") -> tuple[GlobTest, int | None]:
    """``compile_glob``, and the size in instructions of the RE2 program behind the
    test (None for a string test): what a policy's memory budget charges."""
    if not pattern:
        raise GlobError("empty pattern")
    if not _SPECIAL.intersection(pattern):
        return pattern.__eq__, None
    string_test = _string_test(pattern, sep)
    if string_test is not None:
        return string_test, None
    return _compile_program(pattern, sep)


def compile_glob_regex(pattern: str, sep: str = "/") -> GlobTest:
    """The RE2 form of ``pattern`` alone, without the string tests ``compile_glob``
    prefers: the reference every string test must agree with on every value."""
    return _compile_program(pattern, sep)[0]


def _compile_program(pattern: str, sep: str) -> tuple[GlobTest, int]:
    regex = glob_to_regex(pattern, sep)
    try:
        compiled = re2.compile(regex)
    except re2.error as exc:  # pragma: no cover - glob_to_regex emits valid RE2
        raise GlobError(str(exc)) from exc
    return (lambda value: compiled.fullmatch(value) is not None), compiled.programsize
