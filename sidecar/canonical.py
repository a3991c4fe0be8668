"""Canonical JSON, the one byte form Tollgate hashes and signs.

Sorted keys, no insignificant whitespace, UTF-8 without escaping non-ASCII, integers
only (a float is a programming error, not something to round). This is the subset of
RFC 8785 (JCS) that integer-only documents need, so JCS tooling reproduces the bytes.
"""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("canonical JSON carries integers only, got a float")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (no trailing newline)."""
    _reject_floats(value)
    return _encoder.encode(value).encode("utf-8")
