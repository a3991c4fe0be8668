"""The one-pass tests of a word's shape (``has_glob``, ``has_brace_list``) say exactly what
the regexes they replaced said (``[*?]|\\[.*\\]`` and ``\\{[^}]*(,|\\.\\.).*\\}``, searched),
which backtracked in time quadratic and cubic in a word's length."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.normalise.shell_lexer import has_brace_list, has_glob

GLOB = re.compile(r"[*?]|\[.*\]")
BRACE = re.compile(r"\{[^}]*(,|\.\.).*\}")
SHAPES = st.text(alphabet="{}[],.*?a\n\x00\x01", max_size=16)


@settings(max_examples=3000, deadline=None)
@given(SHAPES)
def test_has_glob_is_the_regex(shape: str) -> None:
    assert has_glob(shape) is bool(GLOB.search(shape))


@settings(max_examples=3000, deadline=None)
@given(SHAPES)
def test_has_brace_list_is_the_regex(shape: str) -> None:
    assert has_brace_list(shape) is bool(BRACE.search(shape))
