"""Globs that no string fast path handles (several wildcards, classes) go through the
RE2 translation; these pin what it does with ``*`` and a whole-segment ``**``.

The existing cases of such shapes passed even with ``*`` translated as ``**`` or with
``/a/**/b`` losing the "/" after ``**``: each wildcard case happened to be a fast path.
"""

from __future__ import annotations

import pytest

from sidecar.policy.glob import _string_test, compile_glob

CASES = [
    # "*" stays within one segment, also next to another wildcard
    ("/a/*/c/*.txt", "/a/x/c/y.txt", True),
    ("/a/*/c/*.txt", "/a/x/y/c/z.txt", False),
    ("/a/*/c/*.txt", "/a/x/c/d/z.txt", False),
    ("/a/?*/c", "/a/xy/c", True),
    ("/a/?*/c", "/a/x/y/c", False),
    ("/a/[xy]*/c", "/a/x/z/c", False),
    # a whole-segment "**" is zero or more whole segments, never part of a name
    ("/a/**/b/?", "/a/b/c", True),
    ("/a/**/b/?", "/a/x/y/b/c", True),
    ("/a/**/b/?", "/a/xb/c", False),
    ("/a/**/b/?", "/ab/c", False),
    ("/a/**/[b]", "/a/b", True),
    ("/a/**/[b]", "/a/xb", False),
    # "**" inside a segment crosses separators
    ("/a/x**/[y]", "/a/x/q/y", True),
    ("/a/x**/[y]", "/a/xq/y", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_wildcards_on_the_regex_path(pattern: str, value: str, expected: bool) -> None:
    assert _string_test(pattern, "/") is None  # really the regex translation
    assert compile_glob(pattern, "/")(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*.[ab].example.com", "x.a.example.com", True),
        ("*.[ab].example.com", "x.y.a.example.com", False),
        ("**.[ab].example.com", "x.y.a.example.com", True),
        ("**.[ab].example.com", "a.example.com", True),
    ],
)
def test_host_wildcards_on_the_regex_path(pattern: str, value: str, expected: bool) -> None:
    assert _string_test(pattern, ".") is None
    assert compile_glob(pattern, ".")(value) is expected
