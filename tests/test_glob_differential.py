"""The two forms of a compiled glob, the plain string tests ``compile_glob`` prefers
for common shapes (``/a/**``, ``**/x/**``, ``*.example.com``, ``/out/*.json``, a
literal) and the RE2 translation (``compile_glob_regex``), decide alike on every value,
not only on normalised ones: a URL path as sent (``/admin/``, ``//x``) and an argument
keep a trailing ``/``, ``//`` and dot segments.

They disagreed on a trailing separator: the string test of ``/a/**`` refused ``/a/``,
which the regex (and ``/a/*``) matched, so ``glob: "/admin/**"`` let
``http://a.com/admin/`` past a deny rule that ``glob: "/adm[i]n/**"`` held it to.
"""

from __future__ import annotations

import random

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.glob import (
    GlobError,
    _string_test,
    compile_glob,
    compile_glob_regex,
    literal_head,
)
from sidecar.policy.loader import load_policy_bytes

PATH_PATTERNS = [
    "/a/**",
    "/a/*",
    "/a/**/b",
    "/a/**/b/**",
    "**",
    "*",
    "**/*.json",
    "*.json",
    "/a/*.json",
    "/a/?",
    "/a/??",
    "/a/[bc]",
    "/a/[!b]",
    "/a/[é]*",
    "/a",
    "/a/b",
    "/",
    "//**",
    "/a/",
    "/a*",
    "/a/b*",
    "/a/*b",
    "/a*a",
    "**/a/**",
    "**/a",
    "/é/**",
    "/a/\\*",
    "/a/x**",
]
HOST_PATTERNS = [
    "*.example.com",
    "**.example.com",
    "api.*.com",
    "a.**",
    "a.*",
    "*",
    "**",
    "?.a",
    "[ab].example.com",
    "**.a.**",
    "example.com",
    "*a",
    "xn--*.com",
]
PATH_VALUES = [
    "",
    "/",
    "//",
    "///",
    "/a",
    "/a/",
    "/a//",
    "/a/b",
    "/a/b/",
    "/a//b",
    "/a/b//",
    "//a/b",
    "/a/./b",
    "/a/../b",
    "/a/.",
    "/a/..",
    "/a/b/..",
    "/.",
    "/..",
    "a",
    "a/",
    "/b",
    "/ab",
    "/a/x.json",
    "/a/.json",
    "/a/b/x.json",
    "x.json",
    ".json",
    "/a/a/",
    "/a/b/a/",
    "/a/x/b/",
    "/a/b/b",
    "/é",
    "/é/",
    "/é/x",
    "/a/é",
    "/a/e\u0301",  # a combining accent: two code points
    "/a/😀",
    "/a/😀/",
    "/a/x\ny",
    "/a/\u2028",
    "/a/*",
    "/a/xq",
]
HOST_VALUES = [
    "",
    ".",
    "..",
    "example.com",
    "example.com.",
    ".example.com",
    "api.example.com",
    "api..example.com",
    "a.b.example.com",
    "api.x.com",
    "api.x.com.",
    "api..com",
    "a",
    "a.",
    "a..",
    "a.b",
    "a.b.",
    ".a",
    "b.a",
    "ba",
    "xn--bcher-kva.com",
    "é.example.com",
    "😀.a",
]


def _disagreements(patterns: list[str], values: list[str], sep: str) -> list[tuple[str, str]]:
    found = []
    for pattern in patterns:
        fast, reference = compile_glob(pattern, sep), compile_glob_regex(pattern, sep)
        found += [(pattern, v) for v in values if fast(v) is not reference(v)]
    return found


@pytest.mark.parametrize(
    ("patterns", "values", "sep"),
    [(PATH_PATTERNS, PATH_VALUES, "/"), (HOST_PATTERNS, HOST_VALUES, ".")],
    ids=["paths", "hosts"],
)
def test_every_glob_agrees_with_its_regex_on_every_value(
    patterns: list[str], values: list[str], sep: str
) -> None:
    # Values of one field are seen with the other field's separator too: "a.b" is one
    # path segment, "/a/b" one host label.
    assert _disagreements(patterns, PATH_VALUES + HOST_VALUES, sep) == []
    fast = [p for p in patterns if _string_test(p, sep) is not None]
    assert len(fast) >= len(patterns) // 3  # the string tests were really compared


PIECES = ["a", "b", "ab", "é", "*", "**", "?", "[ab]", "[!a]", "x.y", ".", "/", "-", "\\*"]
VALUE_PIECES = ["a", "b", "ab", "x", "y", "é", "😀", "/", "//", ".", "..", "", "\n", " -"]


def _literal(rng: random.Random, sep: str) -> str:
    return sep.join(rng.choices(["a", "b", "ab", "x", "é"], k=rng.randint(1, 3)))


def _pattern(rng: random.Random, sep: str) -> str:
    root = sep if sep == "/" else ""
    literal = _literal(rng, sep)
    if rng.random() < 0.5:  # one of the shapes decided by string tests
        return rng.choice(
            [
                f"{root}{literal}",
                f"{root}{literal}{sep}**",
                f"**{sep}{literal}{sep}**",
                f"{root}{literal}*",
                f"*{sep}{literal}",
                f"{root}{literal}{sep}*{rng.choice(['', 'a', sep + 'b'])}",
                f"{root}{literal}*{literal}",
            ]
        )
    text = "".join(rng.choices(PIECES, k=rng.randint(1, 6)))
    return text if sep == "." else rng.choice(["", "/", "**/"]) + text


def _value(rng: random.Random, sep: str, pattern: str) -> str:
    text = "".join(rng.choices(VALUE_PIECES, k=rng.randint(0, 7)))
    if sep == "." and rng.random() < 0.7:
        text = text.replace("/", ".")
    if rng.random() < 0.5:  # near misses and hits: the pattern's literal start, then more
        text = literal_head(pattern)[: rng.randint(0, 20)] + text[: rng.randint(0, 3)]
    return text


@pytest.mark.parametrize("sep", ["/", "."])
def test_random_globs_agree_with_their_regex(sep: str) -> None:
    rng = random.Random(20261206)
    compared = fast = 0
    for _ in range(4000):
        pattern = _pattern(rng, sep)
        try:
            reference = compile_glob_regex(pattern, sep)
        except GlobError:
            continue
        test = compile_glob(pattern, sep)
        fast += _string_test(pattern, sep) is not None
        for value in (_value(rng, sep, pattern) for _ in range(20)):
            assert test(value) is reference(value), (pattern, value)
            compared += 1
    assert compared > 50_000 and fast > 1500  # the string tests were really exercised


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # A wildcard may match nothing: "**" as "*" does, a trailing "/" included.
        ("/a/**", "/a/", True),
        ("/a/*", "/a/", True),
        ("/a/**", "/a", False),
        ("/a/?", "/a/", False),
        ("/a/**/b", "/a//b", True),
        ("/a/**/b", "/a/b/", False),
        ("**/a/**", "/x/a/", True),
        ("/a/*.json", "/a/.json", True),
    ],
)
def test_trailing_separator_semantics(pattern: str, value: str, expected: bool) -> None:
    for compiled in (compile_glob(pattern, "/"), compile_glob_regex(pattern, "/")):
        assert compiled(value) is expected


@pytest.mark.parametrize("glob", ["/admin/**", "/adm[i]n/**", "/admin/*"])
def test_a_deny_glob_below_a_path_holds_for_the_path_as_sent(glob: str) -> None:
    # Whatever form the glob compiles to (a string test for the first, RE2 for the
    # second), "/admin/" as sent is denied, as startsWith "/admin/" denies it.
    policy = load_policy_bytes(
        b"version: 1\ndefaultAction: allow\nrules: [{id: admin, action: network.request,"
        b" decision: deny, path: {glob: '" + glob.encode() + b"'}}]\n",
        "glob.yaml",
    )
    verdict = evaluate_request(policy, {"action": "network.request", "url": "http://a.com/admin/"})
    assert (verdict.allowed, verdict.decision, verdict.rule, verdict.reason) == (
        False,
        "deny",
        "admin",
        "path as sent /admin/: rule admin denies network.request of a.com:80",
    )
