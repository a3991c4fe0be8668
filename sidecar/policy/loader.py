"""Load a policy file: bytes -> YAML -> schema -> compiled policy, all or nothing.

The policy hash is ``sha256:`` over the file's exact bytes, so a hash pinned with
``--require-policy-hash`` or signed with ``tollgate policy sign`` names exactly what
was loaded. Every error names the file, the rule and the key; a policy with any error
is never half-loaded.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from functools import cache
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor

from sidecar.errors import PolicyError
from sidecar.policy.compiler import CompiledPolicy, compile_policy, rule_label
from sidecar.policy.schema import MATCHABLE_FIELDS, PolicyDocument

MAX_POLICY_BYTES = 4 * 2**20
# Collections nested deeper are refused before the document is composed: libyaml's
# composer recurses in C without a limit, so a 100 KB file of "[[[[..." would crash the
# process (not merely raise). A policy is five or six levels deep.
MAX_YAML_DEPTH = 64
# The most YAML nodes (values, lists, mappings; an alias counts as the node it names) a
# policy may have. Parsing holds some 300 to 500 bytes a node until the policy compiles:
# a 2 MB file of 1,000,000 one-character list values took a gate reloading over the
# 10,000-rule benchmark policy (121,000 nodes) to 392 MiB, past the sidecar's 256Mi;
# at this limit it peaked at 199 MiB (docs/deploy.md, "Memory").
MAX_YAML_NODES = 200_000
# The most rules a gate is sized for: about 125 MiB resident at 10,000, 160 MiB while
# reloading one (the old policy serves until the new one is ready), which the sidecar's
# 256Mi memory limit holds (docs/deploy.md). A 4 MiB file can hold 40,000 short rules.
MAX_RULES = 10_000


_STR_TAG = "tag:yaml.org,2002:str"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _construct_mapping(loader: SafeConstructor, node: yaml.MappingNode) -> dict[Any, Any]:
    """SafeConstructor's mapping, refusing duplicate keys instead of keeping the last one.

    Merge keys (``<<``) are expanded first, so a key that a merge and the mapping (or
    two merges) both give is a duplicate too.
    """
    mapping: dict[Any, Any] = {}
    for key_node, value_node in _merged_pairs(node):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found unhashable key",
                key_node.start_mark,
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _merged_pairs(
    node: yaml.MappingNode, merging: tuple[yaml.Node, ...] = ()
) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's key/value pairs with each ``<<`` merge expanded, nothing dropped.

    Not PyYAML's ``flatten_mapping``: from 6.0.4 on it keeps only the first of the keys
    two merges share, which would hide exactly the duplicates this loader refuses. The
    node is left as it is. Alias bombs are refused before the document is composed
    (``check_yaml_shape``), so the expansion is bounded; a mapping that merges itself
    (``&a {<<: *a}``) is refused here.
    """
    if any(node is outer for outer in merging):
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping",
            None,
            "found a mapping that merges itself",
            node.start_mark,
        )
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    own: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"expected a mapping or a list of mappings to merge, found {source.id}",
                    source.start_mark,
                )
            merged.extend(_merged_pairs(source, (*merging, node)))
    return merged + own


_INT_TAG = "tag:yaml.org,2002:int"
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")


def _construct_decimal_int(loader: SafeConstructor, node: yaml.ScalarNode) -> int:
    """An integer written in decimal. YAML 1.1, which PyYAML reads, also takes ``0022``
    for octal 18, ``0x1bb`` for 443, ``1:20`` for 80 and ``8_080`` for 8080: a port
    list ``[0022, 2222]`` would deny port 18, not 22. Refused, with how to write it."""
    text = str(node.value)
    if not _DECIMAL.fullmatch(text):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"found the number {text!r}, which YAML reads other than as a decimal "
            "(a leading 0 is octal); write it in decimal without leading zeros",
            node.start_mark,
        )
    return int(text)


# A SafeLoader on either parser; typed as PyYAML's stubs name the classes load() takes.
LoaderClass = type[yaml.SafeLoader] | type[yaml.CSafeLoader]


def _strict_loader(base: LoaderClass) -> LoaderClass:
    """``base`` (a SafeLoader: no Python objects from tags) refusing duplicate keys."""

    class StrictLoader(base):  # type: ignore[valid-type,misc]
        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            # Most nodes of a policy are plain strings, whose value is the node's text:
            # the str constructor's result without the generic machinery around it.
            if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
                value: str = node.value
                # libyaml refuses a "\ud800" escape; the pure-Python parser makes it a
                # lone surrogate, which no UTF-8 answer or audit record could carry.
                if not value.isascii() and _LONE_SURROGATE.search(value):
                    raise yaml.constructor.ConstructorError(
                        None, None, "found a lone surrogate escape", node.start_mark
                    )
                return value
            return super().construct_object(node, deep)

    StrictLoader.__name__ = StrictLoader.__qualname__ = f"Strict{base.__name__}"
    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    StrictLoader.add_constructor(_INT_TAG, _construct_decimal_int)
    return StrictLoader


# The same strict loader on PyYAML's two parsers: libyaml's (C), when PyYAML was built
# with it, parses a 1,000-rule policy about ten times faster than the pure-Python one;
# both accept and refuse the same documents (tests/test_policy_loader.py runs both).
YAML_LOADERS: dict[str, LoaderClass] = {"python": _strict_loader(yaml.SafeLoader)}
if yaml.__with_libyaml__:
    YAML_LOADERS["libyaml"] = _strict_loader(yaml.CSafeLoader)
STRICT_YAML_LOADER = YAML_LOADERS.get("libyaml", YAML_LOADERS["python"])


class YAMLShapeError(yaml.YAMLError):
    """A document refused for its shape before it is composed."""


class YAMLTooLargeError(YAMLShapeError):
    """A document of more nodes than ``MAX_YAML_NODES``: valid YAML, refused for its size
    (its problem is not reported as invalid YAML). ``line`` is where it passes the limit."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def check_yaml_shape(text: str, loader: LoaderClass = STRICT_YAML_LOADER) -> None:
    """Refuse, from the parser's events alone, what composing could not survive.

    Nesting beyond ``MAX_YAML_DEPTH``; and a document of more than ``MAX_YAML_NODES``
    nodes, whose parse would outgrow the gate's memory, each alias (``*name``) counted
    as the whole node it names: a few hundred bytes of mappings merged into each other
    (``<<: [*a, *a]``) would otherwise expand to gigabytes. Anchors, aliases and merge
    keys used as people use them stay well below that. The parser (libyaml's or
    PyYAML's) keeps its own stack, so this scan is safe at any depth, and it stops at
    the first problem.
    """
    size = 0  # nodes so far, each alias counted as the node it names
    sizes: dict[str, int] = {}  # anchor -> size of the node it names
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, size before it)
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            open_nodes.append((event.anchor, size))
            size += 1
            if len(open_nodes) > MAX_YAML_DEPTH:
                line = _line(event)
                raise YAMLShapeError(f"line {line}: nests deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            anchor, before = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = size - before
        elif isinstance(event, yaml.ScalarEvent):
            size += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size += sizes.get(event.anchor or "", 1)  # an unknown one fails when composed
        if size > MAX_YAML_NODES:
            line = _line(event)
            raise YAMLTooLargeError(
                f"the file is too large: it has more than {MAX_YAML_NODES:,} YAML nodes, "
                "the limit (values, lists and mappings; an alias counts as the node it "
                f"names; line {line} passes it), more than a gate parses within its memory "
                'limit (docs/deploy.md, "Memory"); the 10,000-rule benchmark policy has '
                "121,000; match a long list of values with a glob or regex",
                line,
            )


def _line(event: yaml.Event) -> int:
    """The 1-based line an event starts on (0 if the parser gave no position)."""
    return event.start_mark.line + 1 if event.start_mark is not None else 0


# Characters after which a file's readers disagree on what it says: PyYAML reads YAML 1.1,
# where NEL, LS and PS end a line (and a comment), which YAML 1.2, editors and grep do
# not ("# note<NEL>path: /etc/motd" adds a condition an author sees as a comment); and
# bidirectional controls, which reorder what an editor shows ("Trojan Source").
_AMBIGUOUS_CHARACTER = re.compile("[\u0085\u2028\u2029\u202a-\u202e\u2066-\u2069]")


_BOM = "\ufeff"


# Unicode's Default_Ignorable_Code_Point characters, which a renderer shows as nothing
# when it cannot show them otherwise (DerivedCoreProperties.txt, unchanged from Unicode
# 14.0 to 16.0; Python's unicodedata lacks the property). Beyond category Cf they hold
# the combining grapheme joiner, variation selectors, Hangul fillers (U+3164 is the
# "invisible identifier" of source-code backdoors), Khmer inherent vowels and code
# points reserved as ignorable.
_DEFAULT_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)


@cache
def _invisible_character() -> re.Pattern[str]:
    """Characters shown as nothing: Unicode's format characters (category Cf:
    zero-width spaces and joiners, word joiners, the soft hyphen, a BOM past the start,
    tags ...) and its other default-ignorable ones (variation selectors, Hangul
    fillers ...). They make "/etc/sha<U+200B>dow" look like the path it never matches
    ("Trojan Source"'s invisible characters). Built from the running Python's Unicode
    data, once."""
    found = (chr(c) for c in range(0x80, sys.maxunicode + 1))
    members = "".join(re.escape(c) for c in found if unicodedata.category(c) == "Cf")
    return re.compile(f"[{members}{_DEFAULT_IGNORABLE}]")


def check_unambiguous(text: str) -> None:
    """Refuse a character that readers of the text would read otherwise."""
    found = _AMBIGUOUS_CHARACTER.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise YAMLShapeError(
            f"line {line}: U+{ord(found.group()):04X} is refused: a line break to YAML 1.1 "
            "only, or a bidirectional control, it makes the file say one thing to the "
            "gate and another to the people and tools that read it"
        )
    if text.isascii():
        return
    # A BOM may open the file (YAML allows one there); anywhere else it is invisible.
    found = _invisible_character().search(text, 1 if text.startswith(_BOM) else 0)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        code = ord(found.group())
        escape = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        advice = (
            "remove it from the comment (a comment has no escapes)"
            if _in_comment(text, found.start())
            else f'if it is meant, write it as an escape in a double-quoted string: "{escape}"'
        )
        raise YAMLShapeError(
            f"line {line}: U+{code:04X} is refused: an invisible character, it "
            "makes the file say one thing to the gate and another to the people and "
            f"tools that read it; {advice}"
        )


def _in_comment(text: str, position: int) -> bool:
    """Whether ``position`` is in a YAML comment: after a '#' on its line and in no
    token (a scalar's token spans its text, a '#' in a quoted or block one included).
    Only for an error's advice: a document the scanner fails on before ``position``
    is taken as not a comment."""
    if text.rfind("#", text.rfind("\n", 0, position) + 1, position) == -1:
        return False
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index > position:
                return True
            if token.end_mark.index > position:
                return False
    except yaml.YAMLError:
        return False
    return True


def load_yaml_strict(text: str, loader: LoaderClass = STRICT_YAML_LOADER) -> Any:
    """Safe YAML that refuses duplicate keys, deep nesting, alias bombs and characters
    read otherwise by other readers (also used for policy test files).

    Raises ``yaml.YAMLError``.
    """
    check_unambiguous(text)
    check_yaml_shape(text, loader)
    return yaml.load(text, Loader=loader)


def policy_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic error location as ``rules[3] (id 'x'): path.glob``."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        rule_id = None
        rules = raw.get("rules") if isinstance(raw, dict) else None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
            found = rules[index].get("id")
            rule_id = found if isinstance(found, str) else None
        keys = _keys(loc[2:])
        return rule_label(index, rule_id) + (": " + keys if keys else "")
    return _keys(loc) or "(top level)"


def _keys(loc: tuple[int | str, ...]) -> str:
    """``namespace.in[1]``; union members show up as type names in a location, and help
    nobody."""
    keys = [f"[{p}]" if isinstance(p, int) else str(p) for p in loc if not _is_union_tag(p)]
    return ".".join(keys).replace(".[", "[")


def _is_union_tag(part: int | str) -> bool:
    return isinstance(part, str) and (
        part in {"str", "int", "MatcherSpec"} or part.startswith(("list[", "function-"))
    )


def _schema_problems(error: ValidationError, raw: Any, text: str) -> list[str]:
    items = error.errors(include_url=False)
    # Where YAML 1.1 read a value written for a string as another type (`no` is false,
    # `~` null, `2024-01-01` a date), say so in one line, not in one per union member.
    misread = {
        _clean(item["loc"])
        for item in items
        if item["type"] == "string_type" and isinstance(item["input"], _YAML_ONLY_TYPES)
    }
    # Every location above a misread value (sets, not scans: a file may hold tens of
    # thousands of bad items, and a scan per item made reporting them take minutes).
    above_misread = {where[:cut] for where in misread for cut in range(len(where))}
    nodes = _compose(text) if misread or any(i["type"] == "invalid_key" for i in items) else None
    problems: dict[str, None] = {}  # ordered, each problem once
    for item in items:
        loc = _clean(item["loc"])
        if loc in above_misread:
            continue  # a union member that failed higher up: the misread value is the cause
        messages = [item["msg"]]
        if item["type"] == "extra_forbidden":
            messages = ["unknown key"]
        elif item["type"] == "invalid_key":
            loc = loc[:-1]
            messages = _misread_keys(nodes, loc) or messages
        elif loc in misread:
            if item["input"] is None and loc and isinstance(loc[-1], str):
                continue  # a key with no value: reported as such by _null_problems
            messages = [_misread_value(nodes, loc) or item["msg"]]
        for message in messages:
            problems[f"{_location(loc, raw)}: {message}"] = None
    return list(problems)


_YAML_ONLY_TYPES = (bool, type(None), date)  # datetime is a date
_YAML_TYPES = {
    "tag:yaml.org,2002:bool": "the boolean",
    "tag:yaml.org,2002:null": "null (no value)",
    "tag:yaml.org,2002:timestamp": "a date",
    _INT_TAG: "a number",
    "tag:yaml.org,2002:float": "a number",
}


def _clean(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if not _is_union_tag(p))


def _compose(text: str) -> yaml.Node | None:
    """The document's nodes, which hold each scalar as written (only on an error)."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=STRICT_YAML_LOADER)
    except yaml.YAMLError:
        return None
    return node


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pairs = _merged_pairs(node)
            node = next((v for k, v in pairs if k.tag == _STR_TAG and k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return None
    return node


def misread_scalar(node: yaml.Node | None, *, key: bool = False) -> str | None:
    """For a plain scalar YAML 1.1 alone reads as other than text, one line saying so:
    ``"no" is read as the boolean false; quote it``. A value ``true``, ``false``, a number
    or null, which JSON has too, is not named; a key is named as any of these."""
    if not isinstance(node, yaml.ScalarNode) or node.style or _read_as(node) is None:
        return None
    if key:
        return f'key "{node.value}" is read as {_read_as(node)}; quote it'
    if node.tag != "tag:yaml.org,2002:bool" or node.value.lower() in ("true", "false"):
        return None
    return f'"{node.value}" is read as {_read_as(node)}; quote it'


def compose_yaml(text: str) -> yaml.Node | None:
    """The document's nodes, or None if it is not YAML (for messages only)."""
    return _compose(text)


def mapping_pairs(node: yaml.Node | None) -> list[tuple[yaml.Node, yaml.Node]]:
    """A mapping node's key and value nodes, merges expanded, in the order loading gives
    the dict's items; [] for any other node."""
    return _merged_pairs(node) if isinstance(node, yaml.MappingNode) else []


def _read_as(node: yaml.ScalarNode) -> str | None:
    """What YAML read a plain scalar as, if not as text: 'the boolean false' ..."""
    kind = _YAML_TYPES.get(node.tag)
    if kind != "the boolean":
        return kind
    return f"the boolean {str(node.value.lower() in ('yes', 'true', 'on')).lower()}"


def _misread_value(nodes: yaml.Node | None, loc: tuple[int | str, ...]) -> str | None:
    node = _node_at(nodes, loc)
    if not isinstance(node, yaml.ScalarNode) or node.style or _read_as(node) is None:
        return None
    if node.tag == "tag:yaml.org,2002:null":
        if not node.value:
            return "an empty item is read as null (no value); give a value or remove it"
        return f'"{node.value}" is read as null (no value); give a value, or quote it if meant'
    return f'"{node.value}" is read as {_read_as(node)}; quote it'


def _misread_keys(nodes: yaml.Node | None, loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the mapping at ``loc`` that YAML read as other than text, as written
    (pydantic names ``on:`` as ``1``)."""
    mapping = _node_at(nodes, loc)
    if not isinstance(mapping, yaml.MappingNode):
        return []
    return [
        f'key "{k.value}" is read as {_read_as(k)}; quote it'
        for k, _ in _merged_pairs(mapping)
        if isinstance(k, yaml.ScalarNode) and not k.style and _read_as(k) is not None
    ]


def _null_problems(raw: dict[Any, Any]) -> list[str]:
    """Every key of the policy whose value is YAML null (``path:`` with nothing after it).

    The schema reads a null like a key left out, so ``path:`` with its value forgotten (or
    commented out) dropped the condition and a rule meant for one directory matched
    every path; ``group:`` meant for the core group matched every group. Nothing in a
    policy needs a null: a key is either given a value or left out.
    """
    problems: list[str] = []

    def walk(value: Any, where: tuple[int | str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = (*where, str(key))
                if item is None:
                    problems.append(
                        f"{_location(here, raw)}: no value (null); give one or leave the key out"
                    )
                else:
                    walk(item, here)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                walk(item, (*where, position))

    walk(raw, ())
    return problems


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector out of a load; collect what it made afterwards.

    A 1,000-rule load makes tens of thousands of container objects that reference
    counting frees (YAML nodes, the raw mapping, the validated models), but while they
    live they set off young collections and, in the daemon, a full one over the whole
    process (20-35 ms measured). The collector is process-wide: a load pauses it only if
    it was running, and the load that paused it turns it back on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        # The load's survivors are young: collect them here, in the loading thread,
        # rather than at the next allocation on the event loop.
        gc.collect(1)


def load_policy_bytes(data: bytes, source: str) -> CompiledPolicy:
    """Parse, validate and compile a policy. Raises ``PolicyError`` listing every problem."""
    with _collector_paused():
        return _load_policy_bytes(data, source)


def _load_policy_bytes(data: bytes, source: str) -> CompiledPolicy:
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(source, [f"file is larger than {MAX_POLICY_BYTES} bytes"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [f"not UTF-8: {exc}"]) from exc
    try:
        raw = load_yaml_strict(text)
    except YAMLTooLargeError as exc:
        raise PolicyError(source, [str(exc)]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"invalid YAML: {exc}".replace("\n", " ")]) from exc
    except ValueError as exc:  # e.g. an integer beyond CPython's digit limit
        raise PolicyError(source, [f"invalid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        if raw is None and _is_blank(text):
            # What a file being rewritten in place, or an empty ConfigMap key, looks like.
            raise PolicyError(
                source,
                ["the file is empty (or only comments); a policy is a mapping with version: 1"],
            )
        raise PolicyError(source, ["the document must be a mapping with version: 1"])
    rules = raw.get("rules")
    if isinstance(rules, list) and len(rules) > MAX_RULES:
        raise PolicyError(
            source,
            [f"rules: {len(rules):,} rules, more than the {MAX_RULES:,} a gate is sized for"],
        )
    nulls = _null_problems(raw)
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        # Pydantic reports each failing union member; keep the messages people can act on.
        raise PolicyError(source, nulls + _schema_problems(exc, raw, text)) from None
    compiled, problems = compile_policy(document, source=source, policy_hash=policy_hash(data))
    if compiled is None or nulls:
        raise PolicyError(source, nulls + problems)
    folded = _folded_matcher_warnings(text, raw)
    return replace(compiled, warnings=compiled.warnings + tuple(folded)) if folded else compiled


# A folded block scalar's header: '>', its indicators, then the end of the line.
_FOLDED_HEADER = re.compile(r"(?:^|[ \t:-])>[-+1-9]{0,2}[ \t]*(?:#.*)?$", re.MULTILINE)


def _folded_matcher_warnings(text: str, raw: Any) -> list[str]:
    """Matcher values written as a YAML folded block (``>``) over several lines.

    The block's line breaks are read as spaces, which no path or name holds where the
    line broke: a regex folded over two lines (``.*/(id_rsa|`` then ``authorized_keys)``)
    matched ``| authorized_keys``. The value cannot tell it (a space may be meant), the
    node's style can; only a file with such a header is composed again.
    """
    if not _FOLDED_HEADER.search(text):
        return []
    rules = _node_at(_compose(text), ("rules",))
    if not isinstance(rules, yaml.SequenceNode):
        return []
    lines = text.splitlines()
    warnings: list[str] = []
    for index, rule in enumerate(rules.value):
        if not isinstance(rule, yaml.MappingNode):
            continue
        for key, value in _merged_pairs(rule):
            if key.value not in MATCHABLE_FIELDS:
                continue
            for node in _scalar_nodes(value):
                start, end = node.start_mark.line, node.end_mark.line
                body = lines[start + 1 : end + (1 if node.end_mark.column else 0)]
                if node.style == ">" and sum(1 for line in body if line.strip()) > 1:
                    warnings.append(
                        f"{_location(('rules', index, key.value), raw)}: line {start + 1}: "
                        "written as a folded block (`>`), which reads each line break as "
                        "a space; a value is seldom meant so (a regex folded over two lines "
                        "matches a space where it broke): write it on one line, or as a "
                        "list for several values"
                    )
    return warnings


def _scalar_nodes(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalar_nodes(item)
    elif isinstance(node, yaml.MappingNode):
        for _, item in _merged_pairs(node):
            yield from _scalar_nodes(item)


def _is_blank(text: str) -> bool:
    """True for a YAML text of nothing but whitespace and comments."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def read_regular_file(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """Up to ``limit`` bytes of the regular file at ``path``, and its stat.

    Opened without blocking, and refused unless it is a regular file: a FIFO or a device
    put at the policy path would block the open or the read forever, and with it every
    reload after it. Raises ``OSError``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return handle.read(limit), info


def load_policy_file(path: str | os.PathLike[str]) -> CompiledPolicy:
    """Read and load the policy at ``path``. Raises ``PolicyError``."""
    source = os.fspath(path)
    try:
        data, _ = read_regular_file(source, MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [f"cannot read: {exc.strerror or exc}"]) from exc
    return load_policy_bytes(data, source)
