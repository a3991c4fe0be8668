"""Agent-controlled text shown to a person who decides on it: every character a
terminal or a chat client could act on, made visible.

Nearly everything an approval shows comes from the agent (its request, the policy's
reason quoting it) or from whatever answers at the gate's URL. A terminal acts on
control characters: CR and ESC sequences can overwrite a line or hide the rest of it,
and bidi overrides reorder it, so an agent could show the approver a harmless request
while another one is signed. Every character that is not printable (``str.isprintable``:
C0, DEL, C1, format characters such as bidi overrides, isolates and zero-width ones,
line and paragraph separators, surrogates, unassigned code points, spaces other than
' ') is therefore shown as an escape, newlines inside a value included. So is every
character Python counts as printable that shows nothing (``_HIDDEN``): Unicode's
default-ignorable code points (the combining grapheme joiner, variation selectors,
Hangul fillers ...) and the blank braille pattern, which would let two different
requests print alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Printable to Python, invisible on screen: the Default_Ignorable_Code_Point ranges of
# Unicode's DerivedCoreProperties.txt that isprintable() lets through, and U+2800.
_HIDDEN = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f"
    "\uffa0\U000e0100-\U000e01ef]"
)


def _shown(char: str) -> bool:
    """Whether ``char`` is shown as itself: printable, and not invisible."""
    return char.isprintable() and _HIDDEN.match(char) is None


def _plain(text: str) -> bool:
    return text.isprintable() and _HIDDEN.search(text) is None


_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object) -> str:
    """``value`` as one line of plain text that a terminal shows as it is.

    A backslash is doubled, so that an escape shown can only come from a character that
    was escaped, not from a backslash the agent wrote.
    """
    text = str(value)
    if _plain(text) and "\\" not in text:
        return text
    return "".join(_escape(char) if char == "\\" or not _shown(char) else char for char in text)


def printable_text(text: str) -> str:
    """``text`` with its unprintable characters escaped, backslashes left as they are:
    for a person's own tools (``tollgate check --explain``), where policy text full of
    regex backslashes must stay readable and no approval hangs on the reading."""
    if _plain(text):
        return text
    return "".join(char if _shown(char) else _escape(char) for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP, JSON spells a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable_json_text(text: str) -> str:
    """JSON text with every character a terminal could act on as a ``\\uXXXX`` escape:
    the same JSON value. Newlines are kept: in JSON text they can only be whitespace
    between items (inside strings they are already escaped)."""
    if _plain(text):
        return text
    return "".join(char if _shown(char) or char == "\n" else _json_escape(char) for char in text)


def visible_json(value: object, *, sort_keys: bool = False) -> str:
    """``value`` as indented JSON a terminal shows as it is (``--json`` output stays
    exact: ``json.dumps`` escapes only C0 characters, the rest is escaped here)."""
    return printable_json_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys))


# How a redacted value begins (sidecar/audit/redact.py): ``[REDACTED:<kind>:<8 hex>]``.
REDACTION_MARK = "[REDACTED:"


def hidden_values(request: Any) -> list[str]:
    """Where the request (its ``context`` aside) holds a redaction tag: ``argv[4]``,
    ``path``, ``k8s.name``. The approver cannot see those values (review of 2026-12-07:
    an operand placed after ``--token`` is redacted as the token's value), and the
    agent chose them. Shown by ``tollgate approvals`` and in the webhook's notice."""
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            if REDACTION_MARK in value:
                found.append(where)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    if isinstance(request, dict):
        walk({key: item for key, item in request.items() if key != "context"}, "")
    return [visible(place) for place in found]
