"""Measurements, targets and the printed tables of one benchmark run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """Order statistics of a sample of durations, in microseconds."""

    median_us: float
    p99_us: float
    samples: int

    @classmethod
    def of_ns(cls, durations_ns: Sequence[int]) -> Latency:
        ordered = sorted(durations_ns)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(statistics.median(ordered) / 1000, p99 / 1000, len(ordered))


@dataclass(frozen=True)
class Target:
    """One target of the issue: what was measured against what limit, and whether it holds."""

    name: str
    measured: str
    limit: str
    holds: bool


@dataclass
class Section:
    """A titled table plus the targets it judges and notes on how it was measured."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(sections: Sequence[Section]) -> str:
    """All sections as Markdown, then every target with its verdict."""
    parts: list[str] = []
    for section in sections:
        if section.header:
            parts.append(f"### {section.title}\n")
            parts.append(markdown_table(section.header, section.rows) + "\n")
        parts.extend(f"- {note}" for note in section.notes)
        if section.notes:
            parts.append("")
    targets = [t for s in sections for t in s.targets]
    if targets:
        parts.append("### Targets\n")
        rows = [(t.name, t.measured, t.limit, "yes" if t.holds else "**NO**") for t in targets]
        parts.append(markdown_table(("target", "measured", "limit", "holds"), rows))
    return "\n".join(parts) + "\n"


def us(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:,.0f}x"
