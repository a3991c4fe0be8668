"""The "≥ 10x faster than cedarpy" target compares like for like: both engines start
from the same normalised-field dict, and Cedar gets its cheapest documented call (the
context encoded once beforehand), not a JSON encoding per call that Tollgate is spared."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from bench.decision import SIZES, SizeResult, measure_size, section_of
from bench.results import Latency

cedarpy = pytest.importorskip("cedarpy")


def test_cedar_is_timed_without_encoding_its_context_on_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[Any] = []

    def counting_dumps(value: Any, **options: Any) -> str:
        encoded.append(value)
        return json.dumps(value, **options)

    # cedarpy's own json only: what its is_authorized does per call.
    monkeypatch.setattr(cedarpy, "json", SimpleNamespace(dumps=counting_dumps, loads=json.loads))
    result = measure_size(10, budget_s=0.01, with_cedar=True)  # answers checked equal first

    assert result.cedar is not None and result.cedar.samples > 0
    assert encoded == []
    assert result.from_dict.samples > 0


def _latency(median_us: float) -> Latency:
    return Latency(median_us, median_us * 2, 1_000)


def _targets(subject_us: float, from_dict_us: float, cedar_us: float) -> dict[str, Any]:
    results = {
        size: SizeResult(
            size,
            full=_latency(from_dict_us * 3),
            subject=_latency(subject_us),
            from_dict=_latency(from_dict_us),
            cedar=_latency(cedar_us),
        )
        for size in SIZES
    }
    section = section_of(results)
    return {"section": section, **{t.name: t for t in section.targets}}


def test_the_cedar_target_is_judged_on_tollgate_from_the_same_dict() -> None:
    # 30x on the decision alone, but 7.5x from the dict both engines start from.
    judged = _targets(subject_us=1.0, from_dict_us=4.0, cedar_us=30.0)
    cedar = judged[
        "decision faster than cedarpy at 50 rules (Tollgate from the same dict vs is_authorized)"
    ]
    assert (cedar.measured, cedar.holds) == ("7.50x", False)
    row = judged["section"].rows[SIZES.index(50)]
    header = judged["section"].header
    assert row[header.index("cedarpy ÷ evaluate_subject")] == "30x"
    assert row[header.index("cedarpy ÷ Tollgate from the same dict")] == "7.50x"
    assert row[header.index("Tollgate from the same dict")] == "4.0 / 8.0"

    holds = _targets(subject_us=1.0, from_dict_us=2.0, cedar_us=30.0)
    assert holds[
        "decision faster than cedarpy at 50 rules (Tollgate from the same dict vs is_authorized)"
    ].holds


def test_the_five_microsecond_target_stays_on_the_decision_alone() -> None:
    judged = _targets(subject_us=4.0, from_dict_us=6.0, cedar_us=100.0)
    median = judged["decision median at 50 rules (evaluate_subject)"]
    assert (median.measured, median.holds) == ("4.00 µs", True)
