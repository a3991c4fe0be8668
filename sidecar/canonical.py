"""Canonical JSON, the one byte form Tollgate hashes and signs.

Sorted keys, no insignificant whitespace, UTF-8 without escaping non-ASCII, integers
only (a float is a programming error, not something to round). This is the subset of
RFC 8785 (JCS) that integer-only documents need, so JCS tooling reproduces the bytes,
with two exceptions docs/audit.md spells out: keys are sorted by code point (JCS: UTF-16
code unit; they differ only above U+FFFF) and integers beyond ±2^53 keep every digit
(JCS rounds them to a double).

Two encoders give the same bytes: msgspec (fast) for values made only of str-keyed
dicts, lists, tuples, str, int, bool and None, which is every audit record; the
standard library's JSON encoder (the reference) for anything else, so unusual values
(subclasses, non-str keys, floats) keep exactly the reference behaviour and errors.
``tests/audit/test_canonical.py`` compares the two on generated documents.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
_fast_encode = msgspec.json.Encoder(order="sorted").encode


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("canonical JSON carries integers only, got a float")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def _plain_items(items: Any) -> bool:
    """True when every value in ``items`` is plain (see ``_is_plain``)."""
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    return False
            if not _plain_items(item.values()):
                return False
        elif kind is list or kind is tuple:
            if not _plain_items(item):
                return False
        else:
            return False
    return True


def _is_plain(value: Any) -> bool:
    """Only str-keyed dicts, lists, tuples, str, int, bool and None (exact types)."""
    return _plain_items((value,))


def reference_bytes(value: Any) -> bytes:
    """Canonical bytes from the standard library encoder: the definition of the form."""
    _reject_floats(value)
    return _encoder.encode(value).encode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (no trailing newline)."""
    try:
        if _is_plain(value):
            return _fast_encode(value)
    except (RecursionError, ValueError, OverflowError):
        pass  # deep nesting, lone surrogates: the reference path raises its own error
    return reference_bytes(value)
