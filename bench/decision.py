"""In-process decision time against Cedar (cedarpy), for policies of growing size.

Three things are timed, call by call, over the same request mix (``bench.policies``):

- ``evaluate_request``: Tollgate from the request dict to a verdict: strict parse
  (pydantic), normalisation (paths, URL/host canonicalisation, argv checks, k8s
  attributes), evaluation of every subject and the reason text.
- ``evaluate_subject``: the decision alone, on an already normalised subject.
- ``cedarpy.is_authorized``: Cedar from a request dict (principal, action, resource and a
  context of the *already normalised* fields) to a decision, with the policy set and the
  (empty) entity set parsed once beforehand. That is Cedar's cheapest use; its call still
  includes what any Cedar caller pays: encoding the context, parsing the request in Rust
  and decoding the answer.

Which comparison the ">= 10x" target means: the issue states it with the 5 µs median and
the growth bound, all three under "in-process decision time", so it is judged like them
on ``evaluate_subject``. The stricter comparison, ``evaluate_request`` (which also
validates and normalises the raw request, while Cedar is handed normalised values), is
reported beside it and not judged.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.policies import IDENTITY, cedar_request, policy_cedar, policy_yaml, request_mix
from bench.results import Latency, Section, Target, ratio, us
from sidecar.engine import evaluate_request
from sidecar.evaluator import evaluate_subject
from sidecar.normalise.request import normalise_request
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import parse_request

SIZES = (10, 50, 100, 1_000, 10_000)
MEDIAN_TARGET_RULES = 50
MEDIAN_TARGET_US = 5.0
GROWTH_FROM, GROWTH_TO, GROWTH_LIMIT = 100, 10_000, 2.0
CEDAR_SPEEDUP = 10.0


@dataclass(frozen=True)
class SizeResult:
    rules: int
    full: Latency
    subject: Latency
    cedar: Latency | None


def time_calls(
    calls: Sequence[Callable[[], object]], *, budget_s: float, max_samples: int, rounds: int = 5
) -> Latency:
    """Time each call separately, cycling through ``calls``, in ``rounds`` rounds.

    The machine is shared: other work only ever adds time, so the round with the lowest
    median (and its p99) is reported, as ``timeit`` reports the best of its repeats.
    """
    for call in calls:  # warm caches and lazy imports
        call()
    clock = time.perf_counter_ns
    results: list[Latency] = []
    for _ in range(rounds):
        durations: list[int] = []
        deadline = clock() + int(budget_s / rounds * 1e9)
        while len(durations) < max_samples // rounds and clock() < deadline:
            for call in calls:
                started = clock()
                call()
                durations.append(clock() - started)
        results.append(Latency.of_ns(durations))
    return min(results, key=lambda latency: latency.median_us)


def _cedar_calls(
    size: int, bodies: list[dict[str, Any]], expected: list[bool]
) -> list[Callable[[], object]]:
    import cedarpy

    policies = cedarpy.PolicySet.from_str(policy_cedar(size))
    entities = cedarpy.Entities.from_json_str("[]")
    calls: list[Callable[[], object]] = []
    for body, allowed in zip(bodies, expected, strict=True):
        subjects = normalise_request(parse_request(body), IDENTITY).subjects
        assert len(subjects) == 1, body
        request = cedar_request(subjects[0].action, dict(subjects[0].fields))
        answer = cedarpy.is_authorized(request, policies, entities)
        cedar_allowed = answer.decision == cedarpy.Decision.Allow
        if cedar_allowed != allowed or answer.diagnostics.errors:
            raise AssertionError(
                f"Cedar and Tollgate disagree on {body}: cedar {answer.decision} "
                f"{answer.diagnostics.errors}, tollgate allowed={allowed}"
            )
        calls.append(functools.partial(cedarpy.is_authorized, request, policies, entities))
    return calls


def measure_size(size: int, *, budget_s: float, with_cedar: bool) -> SizeResult:
    policy = load_policy_bytes(policy_yaml(size), f"synthetic-{size}.yaml")
    bodies = request_mix(size)
    verdicts = [evaluate_request(policy, body, identity=IDENTITY) for body in bodies]
    subjects = [
        subject
        for body in bodies
        for subject in normalise_request(parse_request(body), IDENTITY).subjects
    ]
    full = time_calls(
        [functools.partial(evaluate_request, policy, body, identity=IDENTITY) for body in bodies],
        budget_s=budget_s,
        max_samples=100_000,
    )
    subject = time_calls(
        [functools.partial(evaluate_subject, policy, s) for s in subjects],
        budget_s=budget_s,
        max_samples=100_000,
    )
    cedar = None
    if with_cedar:
        calls = _cedar_calls(size, bodies, [v.decision == "allow" for v in verdicts])
        cedar = time_calls(calls, budget_s=budget_s, max_samples=100_000)
    return SizeResult(size, full, subject, cedar)


def run(*, budget_s: float = 2.0, with_cedar: bool = True) -> Section:
    results = {size: measure_size(size, budget_s=budget_s, with_cedar=with_cedar) for size in SIZES}
    section = Section(
        "In-process decision time (µs per call: median / p99; ratios of medians)",
        (
            "rules",
            "evaluate_request",
            "evaluate_subject",
            "cedarpy is_authorized",
            "cedarpy ÷ evaluate_request",
            "cedarpy ÷ evaluate_subject",
        ),
    )
    for size, result in results.items():
        cedar = result.cedar
        section.rows.append(
            (
                f"{size:,}",
                f"{us(result.full.median_us)} / {us(result.full.p99_us)}",
                f"{us(result.subject.median_us)} / {us(result.subject.p99_us)}",
                f"{us(cedar.median_us)} / {us(cedar.p99_us)}" if cedar else "not run",
                ratio(cedar.median_us / result.full.median_us) if cedar else "-",
                ratio(cedar.median_us / result.subject.median_us) if cedar else "-",
            )
        )
    at_target = results[MEDIAN_TARGET_RULES]
    section.targets.append(
        Target(
            f"decision median at {MEDIAN_TARGET_RULES} rules (evaluate_subject)",
            f"{at_target.subject.median_us:.2f} µs",
            f"≤ {MEDIAN_TARGET_US:g} µs",
            at_target.subject.median_us <= MEDIAN_TARGET_US,
        )
    )
    growth = results[GROWTH_TO].subject.median_us / results[GROWTH_FROM].subject.median_us
    section.targets.append(
        Target(
            f"decision growth {GROWTH_FROM:,} → {GROWTH_TO:,} rules (evaluate_subject median)",
            ratio(growth),
            f"≤ {GROWTH_LIMIT:g}x",
            growth <= GROWTH_LIMIT,
        )
    )
    if with_cedar:
        for size, result in results.items():
            assert result.cedar is not None
            speedup = result.cedar.median_us / result.subject.median_us
            section.targets.append(
                Target(
                    f"decision faster than cedarpy at {size:,} rules "
                    "(evaluate_subject vs is_authorized)",
                    ratio(speedup),
                    f"≥ {CEDAR_SPEEDUP:g}x",
                    speedup >= CEDAR_SPEEDUP,
                )
            )
    section.notes += [
        f"Request mix: {len(request_mix(100))} /check bodies (hits near the start, middle and "
        "end of the file for every kind of rule, hits on the broad head rules, and misses "
        "answered by defaultAction), cycled; every call timed on its own, in 5 rounds; "
        "the round with the lowest median is shown (the machine is shared), for every "
        "column alike.",
        "evaluate_request = parse + normalise + decide from a dict; evaluate_subject = the "
        "decision on a pre-normalised subject; cedarpy is handed the normalised fields as "
        "its context, with its PolicySet and Entities parsed once.",
        "Before timing, every request's allowed/denied answer is checked equal between "
        "Tollgate and Cedar. Ratios are of medians. All three targets are judged on the "
        "decision time (evaluate_subject), as the issue states them; Cedar's call "
        "includes turning its request dict into a Cedar request, which cedarpy offers no "
        "way to do beforehand. The cedarpy ÷ evaluate_request column is the stricter "
        "comparison, Tollgate also validating and normalising the raw request: reported, "
        "not judged.",
    ]
    return section
