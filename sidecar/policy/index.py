"""Look up the rules that could match a subject, instead of testing every rule.

Within one action, each rule is filed under the ``Anchor`` of one of its tests (see
``sidecar.policy.matchers``): a literal that every value the test accepts equals,
starts with (paths, at a "/") or ends with (hosts, at a "."). A rule can only match a
subject with a value carrying one of its anchor keys, so looking up the subject's
values (and their "/" prefixes and "." suffixes) finds every rule that could match.
Rules with no anchor (``regex``, ``cidr``, ``not``, a glob starting with a wildcard, no
matcher at all) are candidates for every subject.

Candidates come back in file order, so the evaluator's precedence (the first matching
rule of the winning kind in file order) is exactly what it would be scanning all rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from sidecar.policy.matchers import Anchor
from sidecar.subject import FieldValues

if TYPE_CHECKING:
    from sidecar.policy.compiler import CompiledRule

_FILE_ORDER = attrgetter("index")


def _choose_anchor(
    rule: CompiledRule, shared: Counter[tuple[str, str, str]]
) -> tuple[str, Anchor] | None:
    """The anchor of ``rule`` whose busiest key is shared with the fewest other rules."""
    options = [(t.field, t.anchor) for t in rule.tests if t.anchor is not None]
    if len(options) < 2:  # most rules: nothing to choose between
        return options[0] if options else None

    def crowding(option: tuple[str, Anchor]) -> tuple[int, bool]:
        field, anchor = option
        busiest = max(shared[(anchor.kind, field, key)] for key in anchor.keys)
        return busiest, anchor.kind != "exact"

    return min(options, key=crowding)


@dataclass(frozen=True, slots=True)
class _FieldTable:
    """The rules filed under one field: by exact value, "/" prefix or "." suffix.

    The three kinds share one dict (a key a value could have in two ways only adds a
    candidate). Only the prefixes (suffixes) of a value with as many separators as
    some key are looked up, so a lookup costs the few depths the policy uses.
    """

    field: str
    by_key: dict[str, list[CompiledRule]]
    prefix_depths: tuple[int, ...]  # how many "/" the prefix keys hold, ascending
    suffix_depths: tuple[int, ...]  # how many "." the suffix keys hold, ascending


def _field_tables(filed: dict[str, list[tuple[Anchor, CompiledRule]]]) -> tuple[_FieldTable, ...]:
    tables = []
    for field, entries in filed.items():
        by_key: dict[str, list[CompiledRule]] = {}
        prefix_depths: set[int] = set()
        suffix_depths: set[int] = set()
        for anchor, rule in entries:
            for key in anchor.keys:
                by_key.setdefault(key, []).append(rule)
                if anchor.kind == "prefix":
                    prefix_depths.add(key.count("/"))
                elif anchor.kind == "suffix":
                    suffix_depths.add(key.count("."))
        tables.append(
            _FieldTable(field, by_key, tuple(sorted(prefix_depths)), tuple(sorted(suffix_depths)))
        )
    return tuple(tables)


class RuleIndex:
    """The rules of one action, filed by anchor; ``candidates`` keeps file order."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        shared: Counter[tuple[str, str, str]] = Counter(
            (test.anchor.kind, test.field, key)
            for rule in rules
            for test in rule.tests
            if test.anchor is not None
            for key in test.anchor.keys
        )
        filed: dict[str, list[tuple[Anchor, CompiledRule]]] = {}
        unanchored: list[CompiledRule] = []
        for rule in rules:
            chosen = _choose_anchor(rule, shared)
            if chosen is None:
                unanchored.append(rule)
            else:
                field, anchor = chosen
                filed.setdefault(field, []).append((anchor, rule))
        self.size = len(rules)
        self.unanchored = tuple(unanchored)
        self._tables = _field_tables(filed)

    def candidates(self, fields: Mapping[str, FieldValues]) -> Sequence[CompiledRule]:
        """Every rule that could match ``fields`` (a superset of those that do), in file order."""
        found: list[list[CompiledRule]] = []
        for table in self._tables:
            by_key = table.by_key
            for value in fields.get(table.field, ()):
                if hit := by_key.get(value):
                    found.append(hit)
                if table.prefix_depths:  # "/a/b/c" -> "/", "/a/", "/a/b/"
                    segments = value.split("/")
                    for depth in table.prefix_depths:
                        if depth >= len(segments):
                            break
                        if hit := by_key.get("/".join(segments[:depth]) + "/"):
                            found.append(hit)
                if table.suffix_depths:  # "a.b.com" -> ".com", ".b.com"
                    labels = value.split(".")
                    for depth in table.suffix_depths:
                        if depth >= len(labels):
                            break
                        if hit := by_key.get("." + ".".join(labels[-depth:])):
                            found.append(hit)
        if not found:
            return self.unanchored
        if len(found) == 1 and not self.unanchored:
            return found[0]
        # Merged into file order; several lookups can find the same rule (an ``in``
        # list and two host forms).
        every = {*self.unanchored, *(rule for rules in found for rule in rules)}
        return sorted(every, key=_FILE_ORDER)
