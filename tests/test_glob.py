"""Glob semantics of CONTRACT section 1: segments, ** across segments, classes."""

import pytest

from sidecar.policy.glob import GlobError, compile_glob

PATH_CASES = [
    ("/app/data/**", "/app/data/x.csv", True),
    ("/app/data/**", "/app/data/a/b/c", True),
    ("/app/data/**", "/app/data", False),
    ("/app/data/**", "/app/database/x", False),
    ("/app/*.csv", "/app/x.csv", True),
    ("/app/*.csv", "/app/sub/x.csv", False),
    ("/app/**/x.csv", "/app/x.csv", True),
    ("/app/**/x.csv", "/app/a/b/x.csv", True),
    ("/app/**/x.csv", "/appx.csv", False),
    ("/app/?.txt", "/app/a.txt", True),
    ("/app/?.txt", "/app/ab.txt", False),
    ("/app/?", "/app//", False),
    ("/app/[abc].txt", "/app/b.txt", True),
    ("/app/[abc].txt", "/app/d.txt", False),
    ("/app/[!abc].txt", "/app/d.txt", True),
    ("/app/[!abc].txt", "/app/a.txt", False),
    ("/app/[!a]x", "/app//x", False),
    ("/app/[a-c]x", "/app/bx", True),
    ("/app/\\*", "/app/*", True),
    ("/app/\\*", "/app/x", False),
    ("/etc/passwd", "/etc/passwd", True),
    ("/etc/passwd", "/etc/passwd2", False),
    ("/a/**", "/a/.hidden/x", True),
    # A newline is an ordinary character, for every shape of pattern (each of the
    # string tests and the regex).
    ("/home/**/.ssh/**", "/home/u\nv/.ssh/id_rsa", True),
    ("/home/**/.ssh/**", "/home/u/.ssh/a\nb", True),
    ("/a/**b", "/a/x\ny/b", True),
    ("/a/**/b", "/a/x\n/b", True),
    ("/a/**", "/a/x\ny", True),
    ("**/.ssh/**", "/u\nv/.ssh/k", True),
    ("/a/*.txt", "/a/x\ny.txt", True),
    ("/a/*/b/?", "/a/x\ny/b/\n", True),
    ("/a/[!x]/*", "/a/\n/y", True),
    ("/a/[\n]", "/a/\n", True),
    ("/a/x\ny", "/a/x\ny", True),
    ("/a/x\ny", "/a/xy", False),
    ("/a/*", "/a/x\n/y", False),  # still one segment
]


@pytest.mark.parametrize(("pattern", "value", "expected"), PATH_CASES)
def test_path_globs(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, "/")(value) is expected


HOST_CASES = [
    ("*.example.com", "api.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("**.example.com", "a.b.example.com", True),
    ("*.example.com", "api.example.com.evil.net", False),
    ("api.*.com", "api.x.com", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), HOST_CASES)
def test_host_globs_use_dot_segments(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, ".")(value) is expected


@pytest.mark.parametrize("pattern", ["", "/app/[abc", "/app/x\\", "/app/[z-a]", "/app/[a-/]"])
def test_invalid_globs_are_errors(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern, "/")


def test_pathological_glob_is_linear() -> None:
    # Python's backtracking re would take exponential time here; RE2 does not.
    test = compile_glob("/" + "**a" * 30 + "b", "/")
    assert test("/" + "a" * 5000) is False
