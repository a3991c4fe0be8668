"""In-process decision time against Cedar (cedarpy), for policies of growing size.

Four things are timed, call by call, over the same request mix (``bench.policies``):

- ``evaluate_request``: Tollgate from the request dict to a verdict: strict parse
  (pydantic), normalisation (paths, URL/host canonicalisation, argv checks, k8s
  attributes), evaluation of every subject and the reason text.
- ``evaluate_subject``: the decision alone, on an already normalised subject.
- Tollgate from the same dict: the dict of normalised fields that Cedar's request is
  built from (plain lists of strings, as decoded JSON holds them) turned into the
  engine's ``Subject`` and decided.
- ``cedarpy.is_authorized``: Cedar from that same dict to a decision: its request
  (principal, action, resource and a context of the *already normalised* fields: the
  port a number, an IP host Cedar's ``ip`` value) built and its context encoded to JSON
  inside the timed call, then decided, with the policy set and the (empty) entity set
  parsed once beforehand. Two calls are timed and the faster shown: the context encoded
  to a JSON string by the benchmark, or handed as a dict, which ``is_authorized``
  encodes itself. Either includes what any Cedar caller pays: parsing the request in
  Rust and decoding the answer.

Which comparison the ">= 10x" target means: both engines starting from the same
normalised-field dict, each paying, inside the timed call, for turning it into its own
request; that is the like-for-like comparison, and the target is judged on it.
``evaluate_subject`` against Cedar leaves out Tollgate's side of that (reported, not
judged), and ``evaluate_request`` (which also validates and normalises the raw request,
while Cedar is handed normalised values) is the stricter comparison, reported and not
judged. The 5 µs median and the growth bound are judged on ``evaluate_subject``, the
decision alone.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.policies import IDENTITY, cedar_request, policy_cedar, policy_yaml, request_mix
from bench.results import Latency, Section, Target, ratio, us
from sidecar.engine import evaluate_request
from sidecar.evaluator import SubjectDecision, evaluate_subject
from sidecar.normalise.request import normalise_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import parse_request
from sidecar.subject import Subject

SIZES = (10, 50, 100, 1_000, 10_000)
MEDIAN_TARGET_RULES = 50
MEDIAN_TARGET_US = 5.0
GROWTH_FROM, GROWTH_TO, GROWTH_LIMIT = 100, 10_000, 2.0
CEDAR_SPEEDUP = 10.0
# The two ways of handing Cedar its context, both encoded to JSON on every call.
CONTEXT_AS_STRING = "the context a JSON string"
CONTEXT_AS_DICT = "the context a dict"


@dataclass(frozen=True)
class SizeResult:
    rules: int
    full: Latency
    subject: Latency
    from_dict: Latency  # Tollgate from the normalised-field dict Cedar's request is built from
    cedar: Latency | None
    cedar_context: str = ""  # how the faster Cedar call was handed its context


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


# (action, normalised fields as plain lists): what both engines start from, like for like.
HandedFields = tuple[str, dict[str, list[str]]]


def decide_from_fields(
    policy: CompiledPolicy, action: str, fields: Mapping[str, Sequence[str]]
) -> SubjectDecision:
    """Tollgate from a dict of normalised fields: made the engine's subject, and decided."""
    return evaluate_subject(
        policy, Subject(action, {name: tuple(values) for name, values in fields.items()})
    )


def cedar_calls(
    size: int, handed: list[HandedFields], expected: list[bool]
) -> dict[str, list[Callable[[], object]]]:
    """Cedar from the same dict as Tollgate, a call per request, for each way of handing
    it the context: the request built and the context encoded inside the call."""
    import cedarpy

    policies = cedarpy.PolicySet.from_str(policy_cedar(size))
    entities = cedarpy.Entities.from_json_str("[]")

    def as_string(action: str, fields: Mapping[str, Sequence[str]]) -> cedarpy.AuthzResult:
        request = cedar_request(action, fields)
        request["context"] = json.dumps(request["context"])
        return cedarpy.is_authorized(request, policies, entities)

    def as_dict(action: str, fields: Mapping[str, Sequence[str]]) -> cedarpy.AuthzResult:
        return cedarpy.is_authorized(cedar_request(action, fields), policies, entities)

    calls: dict[str, list[Callable[[], object]]] = {}
    for name, decide in ((CONTEXT_AS_STRING, as_string), (CONTEXT_AS_DICT, as_dict)):
        for (action, fields), allowed in zip(handed, expected, strict=True):
            answer = decide(action, fields)
            cedar_allowed = answer.decision == cedarpy.Decision.Allow
            if cedar_allowed != allowed or answer.diagnostics.errors:
                raise AssertionError(
                    f"Cedar and Tollgate disagree on {action} {fields}: cedar "
                    f"{answer.decision} {answer.diagnostics.errors}, tollgate allowed={allowed}"
                )
        calls[name] = [functools.partial(decide, action, fields) for action, fields in handed]
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
    if len(subjects) != len(bodies):
        raise AssertionError("a body of the mix normalises to several subjects")
    handed = [
        (s.action, {name: list(values) for name, values in s.fields.items()}) for s in subjects
    ]
    for each, (action, fields) in zip(subjects, handed, strict=True):
        made, normalised = (
            decide_from_fields(policy, action, fields),
            evaluate_subject(policy, each),
        )
        if made[:3] != normalised[:3]:  # decision, rule, reason
            raise AssertionError(f"the subject made from {fields} is decided differently")
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
    from_dict = time_calls(
        [
            functools.partial(decide_from_fields, policy, action, fields)
            for action, fields in handed
        ],
        budget_s=budget_s,
        max_samples=100_000,
    )
    if not with_cedar:
        return SizeResult(size, full, subject, from_dict, None)
    timed = {
        context: time_calls(calls, budget_s=budget_s, max_samples=100_000)
        for context, calls in cedar_calls(
            size, handed, [v.decision == "allow" for v in verdicts]
        ).items()
    }
    context, cedar = min(timed.items(), key=lambda item: item[1].median_us)
    return SizeResult(size, full, subject, from_dict, cedar, context)


def run(*, budget_s: float = 2.0, with_cedar: bool = True) -> Section:
    results = {size: measure_size(size, budget_s=budget_s, with_cedar=with_cedar) for size in SIZES}
    return section_of(results)


def _cell(latency: Latency) -> str:
    return f"{us(latency.median_us)} / {us(latency.p99_us)}"


def _faster_calls(results: Mapping[int, SizeResult]) -> str:
    """Which of Cedar's two calls was the faster, and at which sizes."""
    sizes: dict[str, list[str]] = {}
    for size, result in results.items():
        if result.cedar is not None:
            sizes.setdefault(result.cedar_context, []).append(f"{size:,}")
    if not sizes:
        return "Cedar not run"
    return "; ".join(f"{context} at {', '.join(at)} rules" for context, at in sizes.items())


def section_of(results: Mapping[int, SizeResult]) -> Section:
    """The table, its targets and notes; the Cedar target is judged where Cedar ran."""
    section = Section(
        "In-process decision time (µs per call: median / p99; ratios of medians)",
        (
            "rules",
            "evaluate_request",
            "evaluate_subject",
            "Tollgate from the same dict",
            "cedarpy is_authorized",
            "cedarpy ÷ evaluate_request",
            "cedarpy ÷ evaluate_subject",
            "cedarpy ÷ Tollgate from the same dict",
        ),
    )
    for size, result in results.items():
        cedar = result.cedar
        section.rows.append(
            (
                f"{size:,}",
                _cell(result.full),
                _cell(result.subject),
                _cell(result.from_dict),
                _cell(cedar) if cedar else "not run",
                ratio(cedar.median_us / result.full.median_us) if cedar else "-",
                ratio(cedar.median_us / result.subject.median_us) if cedar else "-",
                ratio(cedar.median_us / result.from_dict.median_us) if cedar else "-",
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
    for size, result in results.items():
        if result.cedar is None:
            continue
        speedup = result.cedar.median_us / result.from_dict.median_us
        section.targets.append(
            Target(
                f"decision faster than cedarpy at {size:,} rules "
                "(Tollgate from the same dict vs is_authorized)",
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
        "decision on a pre-normalised subject; Tollgate from the same dict = the normalised "
        "fields, as a dict of plain lists, made the engine's subject and decided. cedarpy "
        "is_authorized = Cedar from that same dict: its request built inside the timed "
        "call (the normalised fields as its context, the port a number, an IP host Cedar's "
        "ip value), the context encoded to JSON and the request decided, with PolicySet "
        "and Entities parsed once beforehand. Two calls are timed and the faster is shown: "
        f"{CONTEXT_AS_STRING}, encoded by the benchmark, or {CONTEXT_AS_DICT}, which "
        f"cedarpy encodes itself. Faster here: {_faster_calls(results)}.",
        "Before timing, every request's allowed/denied answer is checked equal between "
        "Tollgate and Cedar, and the subject made from the dict is checked to be decided "
        "as the normalised one. Ratios are of medians. The ≥ 10x target is judged like for "
        "like, both engines from the same dict (cedarpy ÷ Tollgate from the same dict), "
        "each turning it into its own request inside the timed call: Tollgate makes its "
        "subject, Cedar builds and encodes its request, then parses it in Rust and decodes "
        "its answer. The "
        "5 µs median and the growth bound are judged on the decision alone "
        "(evaluate_subject), as the issue states them. cedarpy ÷ evaluate_subject leaves "
        "out Tollgate's side of the request, and cedarpy ÷ evaluate_request is the "
        "stricter comparison, Tollgate also validating and normalising the raw request: "
        "both reported, not judged.",
    ]
    return section
