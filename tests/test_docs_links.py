"""Relative links between the docs resolve: the file exists and the #anchor names a heading;
and every ``tollgate`` command the docs show names options that command has.

Covers README.md, docs/*.md and the clients' READMEs. External links (any URL with a
scheme) are not fetched. Anchors follow GitHub's rule: the heading's text without
markup, lower-cased, punctuation other than ``-`` and ``_`` dropped, spaces as ``-``,
and ``-1``, ``-2`` ... for repeated headings. Commands are read from code blocks and
code spans, up to the end of the command (a pipe, ``&&``, ``;``, a redirection or a
comment), and checked against the real argument parser.
"""

from __future__ import annotations

import argparse
import re
from functools import cache
from pathlib import Path

import pytest

from sidecar.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "client").glob("*/README.md")]
)

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?(?:[ \t]+.*)?$", re.M)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (their lines blanked, so line numbers hold)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline or reference link outside code."""
    text = _prose(path.read_text(encoding="utf-8"))
    # A code span is not a link; keep its length so that offsets still map to lines.
    text = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)
    out = []
    for pattern in (_INLINE_LINK, _REFERENCE):
        for match in pattern.finditer(text):
            out.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return out


def problems(path: Path, root: Path = REPO) -> list[str]:
    found = []
    for line, target in links(path):
        if _SCHEME.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{line}: {target}"
        if not dest.exists():
            found.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            found.append(f"{where}: no heading with the anchor #{fragment}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    assert problems(doc) == []


def test_the_checker_finds_the_links_it_must_check() -> None:
    # Guards the test itself: a regex that matched nothing would pass every doc.
    readme = {target for _, target in links(REPO / "README.md")}
    assert "docs/policy.md" in readme
    js = {target for _, target in links(REPO / "client/js/README.md")}
    assert "../../docs/clients.md#failing-closed" in js
    assert "failing-closed" in anchors(REPO / "docs/clients.md")
    assert "what-the-pod-must-do-besides" in anchors(REPO / "docs/security.md")
    audit = {target for _, target in links(REPO / "docs/audit.md")}
    assert {"https://c2sp.org/tlog-checkpoint", "https://c2sp.org/signed-note"} <= audit


def test_broken_links_and_anchors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Limits\n\n## Limits\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n"
        "[ok](other.md#limits) [ok](other.md#limits-1) [ok](#title) [web](https://x.test/#y)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) `[code](missing2.md)`\n"
        "```\n[fenced](missing3.md)\n```\n"
        "[ref]: other.md#also-nope\n"
        "[ref2]: other.md#nope-again\n",
        encoding="utf-8",
    )
    assert problems(doc, root=tmp_path) == [
        "doc.md:4: missing.md: no such file",
        "doc.md:4: other.md#nope: no heading with the anchor #nope",
        "doc.md:8: other.md#also-nope: no heading with the anchor #also-nope",
        "doc.md:9: other.md#nope-again: no heading with the anchor #nope-again",
    ]


# -- the tollgate commands the docs show -----------------------------------------------------

_FENCED = re.compile(r"^ {0,3}```[^\n]*\n(.*?)^ {0,3}```", re.S | re.M)
_COMMAND = re.compile(r"(?<![\w/.-])tollgate((?: [a-z]+)+)(.*)")
_END_OF_COMMAND = re.compile(r" \| | && |; | > | >> |#|\)")


def _code(text: str) -> list[str]:
    """The lines of fenced blocks (continuations joined) and the code spans of the prose."""
    found = []
    for block in _FENCED.findall(text):
        found += block.replace("\\\n", " ").splitlines()
    prose = _FENCED.sub("", text)
    found += [m.group(2).replace("\n", " ") for m in _CODE_SPAN.finditer(prose)]
    return found


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def unknown_options(path: Path, root: Path = REPO) -> list[str]:
    """``file: tollgate SUBCOMMAND --option`` for each option the subcommand lacks."""
    found = []
    for snippet in _code(path.read_text(encoding="utf-8")):
        for match in _COMMAND.finditer(snippet):
            parser, words, used = build_parser(), match.group(1).split(), []
            for word in words:
                if word not in _subcommands(parser):
                    break
                parser = _subcommands(parser)[word]
                used.append(word)
            if not used:
                continue  # "tollgate" as a word, not a command
            rest = _END_OF_COMMAND.split(" ".join(words[len(used) :]) + match.group(2))[0]
            known = {option for action in parser._actions for option in action.option_strings}
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                if option not in known:
                    found.append(f"{path.relative_to(root)}: tollgate {' '.join(used)} {option}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_tollgate_option_the_docs_show_exists(doc: Path) -> None:
    assert unknown_options(doc) == []


def test_the_option_checker_reads_commands_as_written(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `tollgate audit verify DIR --public-key K --checkpiont C` and\n"
        "`tollgate check --url URL '{}' --explain | jq --raw-output .x` (jq's own flag).\n"
        "```sh\n"
        "tollgate audit export DIR --format csv \\\n  --sice 2026-01-01 > out.csv\n"
        "tollgate keygen --out keys   # --not-an-option in a comment\n"
        "kubectl exec pod -- tollgate approvals list --stat all\n"
        "```\n"
        "The origin tollgate/apps/agent --x is not a command.\n",
        encoding="utf-8",
    )
    assert unknown_options(doc, root=tmp_path) == [
        "doc.md: tollgate audit export --sice",
        "doc.md: tollgate approvals list --stat",
        "doc.md: tollgate audit verify --checkpiont",
    ]
