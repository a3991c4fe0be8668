"""Glob patterns for policy matchers (CONTRACT section 1, "glob").

``*`` matches within one segment, ``**`` across segments, ``?`` one character of a
segment, ``[...]`` a class (``[!...]`` or ``[^...]`` negates it). The separator is ``/``
for paths and ``.`` for hosts, so ``*.example.com`` does not match ``example.com`` nor
``a.b.example.com``. A ``**`` that is a whole segment (``/a/**/b``) matches zero or more
whole segments, as in gitignore; ``/app/data/**`` matches everything below
``/app/data`` but not ``/app/data`` itself. ``\\`` escapes the next character.

Patterns compile to RE2 (linear time), with fast paths for the common shapes: a
pattern without wildcards is an equality test, and ``<literal>/**`` is a prefix test.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2

GlobTest = Callable[[str], bool]

_SPECIAL = frozenset("*?[\\")


class GlobError(ValueError):
    """The pattern is not a valid glob."""


def _class_to_regex(pattern: str, start: int, sep: str) -> tuple[str, int]:
    """Translate the ``[...]`` class opening at ``start``; return (regex, index after ``]``)."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    chars: list[str] = []  # raw characters, with "-" between the ends of a range
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
            chars.append(re.escape(pattern[i]))
        elif pattern[i] == "-" and chars and i + 1 < len(pattern) and pattern[i + 1] != "]":
            chars.append("-")
        else:
            chars.append(re.escape(pattern[i]))
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
    not_sep = f"[^{esc_sep}]"
    out: list[str] = []
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


def compile_glob(pattern: str, sep: str = "/") -> GlobTest:
    """Compile ``pattern`` to a predicate on one string. Raises ``GlobError``."""
    if not pattern:
        raise GlobError("empty pattern")
    if not _SPECIAL.intersection(pattern):
        return pattern.__eq__
    tail = sep + "**"
    head = pattern[: -len(tail)]
    if pattern.endswith(tail) and head and not _SPECIAL.intersection(head):
        prefix = head + sep
        return lambda value: value.startswith(prefix) and len(value) > len(prefix)
    regex = glob_to_regex(pattern, sep)
    try:
        compiled = re2.compile(regex)
    except re2.error as exc:  # pragma: no cover - glob_to_regex emits valid RE2
        raise GlobError(str(exc)) from exc
    return lambda value: compiled.fullmatch(value) is not None
