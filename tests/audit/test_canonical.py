"""canonical_bytes: the fast encoder gives the reference encoder's bytes and errors."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.canonical import canonical_bytes, reference_bytes

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.text(
    alphabet=st.characters(max_codepoint=0x9F), max_size=12
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | _text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_text, inner, max_size=4)
    ),
    max_leaves=16,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_fast_encoding_equals_the_reference_byte_for_byte(value: object) -> None:
    assert canonical_bytes(value) == reference_bytes(value)


def test_escapes_and_key_order_match_the_reference() -> None:
    every_ascii = "".join(chr(code) for code in range(0x80))
    value = {
        "b": every_ascii + "\u2028\u2029\x85\ue000\U0001f600 é",
        "a": [2**64, -(2**63) - 1, True, None, ("t",)],
        "\U0001f600": 1,
        "\uffff": 2,
        "Z": {"é": "", "e": 0},
    }
    assert canonical_bytes(value) == reference_bytes(value)
    assert canonical_bytes(value).startswith(b'{"Z":{"e":0,"\xc3\xa9":""},"a":[')


class _Level(enum.IntEnum):
    LOW = 1


class _Name(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"level": _Level.LOW},
        {"name": _Name("x")},
        {1: "int key", 10: "sorted as numbers", 9: "by the reference"},
        {True: "bool key"},
        {True: "mixed key types", None: "cannot be sorted"},
    ],
)
def test_unusual_values_take_the_reference_path(value: object) -> None:
    assert _outcome(canonical_bytes, value) == _outcome(reference_bytes, value)


def _outcome(encode: Callable[[object], bytes], value: object) -> object:
    try:
        return encode(value)
    except Exception as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("value", [1.5, {"a": [0.0]}, {"a": (float("nan"),)}])
def test_floats_are_refused(value: object) -> None:
    with pytest.raises(TypeError, match="integers only"):
        canonical_bytes(value)


@pytest.mark.parametrize("value", [{"a": b"bytes"}, {"a": {1, 2}}, {"a": object()}])
def test_values_json_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_bytes(value)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_bytes({"a": "\ud800"})


def test_nesting_too_deep_is_refused() -> None:
    value: list[object] = []
    for _ in range(sys.getrecursionlimit() + 10):
        value = [value]
    with pytest.raises(RecursionError):
        canonical_bytes(value)
