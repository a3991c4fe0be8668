"""The plain string tests ``compile_glob`` uses for common glob shapes (``/a/**``,
``**/x/**``, ``*.example.com``, ``/out/*.json``): the values either side of their length
bounds. That they decide exactly as the RE2 translation of the same glob does, on every
value, is tests/test_glob_differential.py.

Only a handful of hand-picked cases pinned the fast paths before; an off-by-one in one
of them (``>=`` for ``>``) would have changed decisions without a test failing.
"""

from __future__ import annotations

import pytest

from sidecar.policy.glob import GlobError, compile_glob


@pytest.mark.parametrize(
    ("pattern", "sep", "value", "expected"),
    [
        # one character either side of each length bound of the fast paths
        ("/a/**", "/", "/a/b", True),
        ("/a/**", "/", "/a", False),
        ("/a/**", "/", "/a/", True),  # "**" may match nothing
        ("/a/**", "/", "/ab", False),
        ("**/s/**", "/", "/s/k", True),
        ("**/s/**", "/", "/xs/k", False),
        ("**/s/**", "/", "/s", False),
        ("/o/*.j", "/", "/o/.j", True),
        ("/o/*.j", "/", "/o.j", False),
        ("/o/*.j", "/", "/o/x/y.j", False),
        ("*.e.com", ".", "a.e.com", True),
        ("*.e.com", ".", "e.com", False),
        ("a*", ".", "a", True),
        ("*a", ".", "b.a", False),
    ],
)
def test_fast_path_bounds(pattern: str, sep: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, sep)(value) is expected


@pytest.mark.parametrize(
    ("pattern", "sep", "message"),
    [
        # A pattern ending right after "[", "[!" or an escape inside a class is unclosed,
        # not an IndexError that would fail the whole policy load with a traceback.
        ("/app/[", "/", "unclosed '[' class"),
        ("/app/[!", "/", "unclosed '[' class"),
        ("/app/[\\", "/", "unclosed '[' class"),
        ("/app/[/x]", "/", "class [/x] matches the separator '/'"),
        ("[.a].example.com", ".", "class [.a] matches the separator '.'"),
    ],
)
def test_bad_classes_are_glob_errors(pattern: str, sep: str, message: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern, sep)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/a/[\\]]", "/a/]", True),  # an escaped "]" inside a class
        ("/a/[\\]]", "/a/x", False),
        ("/a/[]x]", "/a/]", True),  # a "]" first in a class is a member
        ("/a/[]x]", "/a/x", True),
        ("/a/[!/]", "/a/x", True),
        ("/a/[!/]", "/a//", False),
    ],
)
def test_class_members_that_look_like_syntax(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, "/")(value) is expected
