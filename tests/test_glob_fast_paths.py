"""The plain string tests ``compile_glob`` uses for common glob shapes (``/a/**``,
``**/x/**``, ``*.example.com``, ``/out/*.json``) decide exactly as the RE2 translation
of the same glob does, on every normalised value (no empty segment, no trailing
separator: what paths and hosts are matched in).

Only a handful of hand-picked cases pinned the fast paths before; an off-by-one in one
of them (``>=`` for ``>``) would have changed decisions without a test failing.
"""

from __future__ import annotations

import random

import pytest
import re2

from sidecar.policy.glob import GlobError, _string_test, compile_glob, glob_to_regex

PIECES = ["a", "b", "ab", "*", "**", "?", "x.y", "[ab]", "[!a]", ".", "-"]
VALUE_PIECES = ["a", "b", "x", "y", "ab", ".", " -"]


def _literal(rng: random.Random, sep: str) -> str:
    return sep.join(rng.choices(["a", "b", "ab", "x"], k=rng.randint(1, 3)))


def _fast_shape(rng: random.Random, sep: str) -> str:
    """One of the shapes ``compile_glob`` decides with string tests."""
    root = sep if sep == "/" else ""
    literal = _literal(rng, sep)
    return rng.choice(
        [
            f"{root}{literal}{sep}**",
            f"**{sep}{literal}{sep}**",
            f"{root}{literal}*",
            f"*{sep}{literal}",
            f"{root}{literal}{sep}*{rng.choice(['', 'a', sep + 'b'])}",
            f"{root}{literal}*{literal}",
        ]
    )


def _pattern(rng: random.Random, sep: str) -> str:
    if rng.random() < 0.5:
        return _fast_shape(rng, sep)
    segments = ["".join(rng.choices(PIECES, k=rng.randint(1, 2))) for _ in range(rng.randint(1, 4))]
    if sep == "/":
        return "/" + "/".join(segments)
    return rng.choice(["", "*.", "**."]) + ".".join(segments)


def _value(rng: random.Random, sep: str) -> str | None:
    parts = [
        "".join(rng.choices(VALUE_PIECES, k=rng.randint(1, 2))) for _ in range(rng.randint(1, 5))
    ]
    value = (sep if sep == "/" else "") + sep.join(parts)
    normalised = sep * 2 not in value and not value.endswith(sep) and not value.startswith(".")
    return value if normalised else None


@pytest.mark.parametrize("sep", ["/", "."])
def test_string_fast_paths_agree_with_the_regex(sep: str) -> None:
    rng = random.Random(20261205)
    compared = fast = 0
    for _ in range(4000):
        pattern = _pattern(rng, sep)
        reference = re2.compile(glob_to_regex(pattern, sep))
        test = compile_glob(pattern, sep)
        fast += _string_test(pattern, sep) is not None
        for _ in range(20):
            value = _value(rng, sep)
            if value is None:
                continue
            expected = reference.fullmatch(value) is not None
            assert test(value) is expected, (pattern, value)
            compared += 1
    assert compared > 20_000 and fast > 1500  # the fast shapes were really exercised


@pytest.mark.parametrize(
    ("pattern", "sep", "value", "expected"),
    [
        # one character either side of each length bound of the fast paths
        ("/a/**", "/", "/a/b", True),
        ("/a/**", "/", "/a", False),
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
