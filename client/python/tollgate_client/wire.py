"""Request bodies for ``POST /v1/check`` (CONTRACT section 2.1).

Fields are camelCase on the wire. Python callers may write them snake_case
(``real_path``, ``command_line``, ``dry_run``); ``wire_name`` maps them. Names already
in camelCase pass unchanged, fields set to ``None`` are left out, path-like values
become strings and tuples become lists. Nothing else is checked here: the gate
validates strictly and answers 400 (a deny) for an unknown or misplaced field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any


def wire_name(name: str) -> str:
    """``real_path`` -> ``realPath``; ``realPath`` and ``path`` stay as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def plain_text(value: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """``value`` as an exact ``str``, bytes and paths decoded as ``os.fsdecode`` does.

    The guarded helpers read what they check twice, once for the gate and once for the
    action. A ``str`` subclass can answer the two readings differently (``__radd__``,
    ``__ne__``, ``upper``, ``encode`` ...: red-team review); the exact copy made here,
    once, up front, cannot. ``str.__str__`` copies the characters whatever the subclass
    overrides, ``__str__`` included."""
    return str.__str__(os.fsdecode(value))


def _wire_value(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, tuple):
        return [_wire_value(item) for item in value]
    if isinstance(value, list):
        return [_wire_value(item) for item in value]
    return value


def check_body(action: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of one check. Raises ``ValueError`` if a field is given twice."""
    body: dict[str, Any] = {"action": action}
    for name, value in fields.items():
        if value is None:
            continue
        key = wire_name(name)
        if key in body:
            raise ValueError(f"field {key!r} is given twice (as {name!r} and in another form)")
        body[key] = _wire_value(value)
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON. Raises ``ValueError``/``TypeError`` for values JSON cannot hold."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )
