"""The "≥ 10x faster than cedarpy" target compares like for like: both engines start
from the same normalised-field dict and each turns it into its own request inside the
timed call (Cedar's request building and context encoding were done beforehand, for
free, while Tollgate paid for making its subject); Cedar gets the faster of its two
calls, the context a JSON string or a dict."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import cedarpy  # a test dependency (pyproject.toml): no skip without it
import pytest

from bench import decision
from bench.decision import (
    CONTEXT_AS_DICT,
    CONTEXT_AS_STRING,
    SIZES,
    SizeResult,
    cedar_calls,
    measure_size,
    section_of,
)
from bench.policies import cedar_request
from bench.results import Latency, render


def test_each_cedar_call_builds_and_encodes_its_own_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    encoded: dict[str, int] = {"by the benchmark": 0, "by cedarpy": 0}

    def counting_request(action: str, fields: Any) -> dict[str, Any]:
        built.append(action)
        return cedar_request(action, fields)

    def counting_dumps(by: str) -> Any:
        def dumps(value: Any, **options: Any) -> str:
            encoded[by] += 1
            return json.dumps(value, **options)

        return SimpleNamespace(dumps=dumps, loads=json.loads)

    handed = [
        ("file.read", {"path": ["/work/src/main.py"]}),
        ("network.request", {"host": ["10.0.0.8"], "port": ["443"], "scheme": ["https"]}),
    ]
    calls = cedar_calls(10, handed, [False, False])  # Cedar denies both: it checks so
    monkeypatch.setattr(decision, "cedar_request", counting_request)
    monkeypatch.setattr(decision, "json", counting_dumps("by the benchmark"))
    monkeypatch.setattr(cedarpy, "json", counting_dumps("by cedarpy"))

    for call in calls[CONTEXT_AS_STRING]:
        call()
        call()
    assert (len(built), encoded) == (4, {"by the benchmark": 4, "by cedarpy": 0})
    for call in calls[CONTEXT_AS_DICT]:
        call()
    assert (len(built), encoded) == (6, {"by the benchmark": 4, "by cedarpy": 2})


@pytest.mark.parametrize("faster", [CONTEXT_AS_STRING, CONTEXT_AS_DICT])
def test_cedar_is_shown_with_the_faster_of_its_two_calls(
    faster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_calls(*_: Any) -> dict[str, list[Any]]:
        slow = [lambda: time.sleep(0.0005)]
        return {
            CONTEXT_AS_STRING: [lambda: None] if faster == CONTEXT_AS_STRING else slow,
            CONTEXT_AS_DICT: [lambda: None] if faster == CONTEXT_AS_DICT else slow,
        }

    monkeypatch.setattr(decision, "cedar_calls", fake_calls)
    result = measure_size(10, budget_s=0.01, with_cedar=True)

    assert result.cedar is not None and result.cedar.median_us < 100
    assert result.cedar_context == faster
    others = {
        size: SizeResult(size, result.full, result.subject, result.from_dict, None)
        for size in SIZES
    }
    text = render([section_of({**others, 10: result})])
    assert f"Faster here: {faster} at 10 rules." in text


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
            cedar_context=CONTEXT_AS_STRING,
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
