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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.policy.matchers import Anchor
from sidecar.subject import FieldValues

if TYPE_CHECKING:
    from sidecar.policy.compiler import CompiledRule

Table = dict[str, dict[str, list["CompiledRule"]]]  # field -> anchor key -> rules


def _choose_anchor(
    rule: CompiledRule, shared: Counter[tuple[str, str, str]]
) -> tuple[str, Anchor] | None:
    """The anchor of ``rule`` whose busiest key is shared with the fewest other rules."""
    options = [(t.field, t.anchor) for t in rule.tests if t.anchor is not None]

    def crowding(option: tuple[str, Anchor]) -> tuple[int, bool]:
        field, anchor = option
        busiest = max(shared[(anchor.kind, field, key)] for key in anchor.keys)
        return busiest, anchor.kind != "exact"

    return min(options, key=crowding, default=None)


@dataclass(frozen=True, slots=True)
class _AffixTable:
    """Rules by path prefix or host suffix, and how many separators those keys hold.

    Only the prefixes (suffixes) of a value with as many separators as some key are
    looked up, so a lookup costs the few depths the policy uses, not the value's length.
    """

    by_key: dict[str, list[CompiledRule]]
    depths: tuple[int, ...]

    @classmethod
    def of(cls, by_key: dict[str, list[CompiledRule]], sep: str) -> _AffixTable:
        return cls(by_key, tuple(sorted({key.count(sep) for key in by_key})))

    def prefix_hits(self, value: str) -> Iterator[list[CompiledRule]]:
        """Rules under ``/``, ``/a/``, ``/a/b/`` ... for ``/a/b/c``."""
        segments = value.split("/")
        for depth in self.depths:
            if depth < len(segments):
                hit = self.by_key.get("/".join(segments[:depth]) + "/")
                if hit is not None:
                    yield hit

    def suffix_hits(self, value: str) -> Iterator[list[CompiledRule]]:
        """Rules under ``.com``, ``.b.com`` ... for ``a.b.com``."""
        labels = value.split(".")
        for depth in self.depths:
            if depth < len(labels):
                hit = self.by_key.get("." + ".".join(labels[-depth:]))
                if hit is not None:
                    yield hit


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
        tables: dict[str, Table] = {"exact": {}, "prefix": {}, "suffix": {}}
        unanchored: list[CompiledRule] = []
        for rule in rules:
            chosen = _choose_anchor(rule, shared)
            if chosen is None:
                unanchored.append(rule)
                continue
            field, anchor = chosen
            by_key = tables[anchor.kind].setdefault(field, {})
            for key in anchor.keys:
                by_key.setdefault(key, []).append(rule)
        self.size = len(rules)
        self.unanchored = tuple(unanchored)
        self._exact = tuple(tables["exact"].items())
        self._prefix = tuple((f, _AffixTable.of(t, "/")) for f, t in tables["prefix"].items())
        self._suffix = tuple((f, _AffixTable.of(t, ".")) for f, t in tables["suffix"].items())

    def candidates(self, fields: Mapping[str, FieldValues]) -> Sequence[CompiledRule]:
        """Every rule that could match ``fields`` (a superset of those that do), in file order."""
        found: list[Sequence[CompiledRule]] = [self.unanchored] if self.unanchored else []
        for field, by_key in self._exact:
            for value in fields.get(field, ()):
                if (hit := by_key.get(value)) is not None:
                    found.append(hit)
        for field, table in self._prefix:
            for value in fields.get(field, ()):
                found.extend(table.prefix_hits(value))
        for field, table in self._suffix:
            for value in fields.get(field, ()):
                found.extend(table.suffix_hits(value))
        if len(found) == 1:
            return found[0]
        # Several lookups can find the same rule (an ``in`` list and two host forms).
        merged = {rule.index: rule for rules in found for rule in rules}
        return [merged[index] for index in sorted(merged)]
