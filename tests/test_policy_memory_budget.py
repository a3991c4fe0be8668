"""A policy's compiled size is bounded as it compiles (docs/deploy.md, "Memory").

Found in the second review of 2026-12-07 (rt25, r2-policy findings 1-3): the budget
counted regexes only, and only once a whole rule had compiled. 3,900 globs of 1,000 '?'
were valid and took a reloading gate to 1.6 GB; one rule with `not` nested 55 deep on
two fields took validate to 540 MB before it was refused; 10,000 rules of seven one-word
regexes were valid and took a gate to 340 MB loaded, 520 MB reloading, past the
manifest's 256Mi. Every RE2 program (regex or glob) and every matcher operator is now
charged as it compiles.
"""

from __future__ import annotations

import pytest
import re2

from bench.policies import policy_yaml
from sidecar.engine import evaluate_request
from sidecar.errors import PolicyError
from sidecar.policy import matchers
from sidecar.policy.loader import load_policy_bytes


def _policy(rules: list[str]) -> bytes:
    return ("version: 1\nrules:\n" + "".join(f"  - {rule}\n" for rule in rules)).encode()


def _refusal(data: bytes) -> str:
    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(data, "p.yaml")
    [problem] = raised.value.problems
    return problem


def test_globs_that_compile_to_long_programs_are_charged_and_refused_early() -> None:
    # The reviewer's glob bomb: each glob is '[^/]' a thousand times over in RE2.
    data = _policy(
        [
            f"{{id: g{i}, action: file.read, decision: deny, path: {{glob: '/a{i}/{'?' * 1000}'}}}}"
            for i in range(3_900)
        ]
    )
    problem = _refusal(data)
    # Compiling stopped at the glob that crossed the budget, 125 rules in.
    assert problem.startswith(
        "rules[124] (id 'g124'): path: glob: the policy's compiled matchers up to here take "
        "about 48.2 MiB, more than the 48 MiB a gate is sized for"
    )
    assert "this glob alone compiles to 8,010 RE2 instructions (0.4 MiB)" in problem
    assert "each ? or [...] of a glob adds to one; use *, + or ** where you can" in problem


def test_not_nested_past_eight_levels_is_refused_before_anything_compiles() -> None:
    # The reviewer's nested-not bomb: each level holds a regex near RE2's own size cap.
    huge = "/a/" + ".{1000}" * 60

    def nested(levels: int) -> str:
        matcher = f"{{regex: '{huge}'}}"
        for _ in range(levels - 1):
            matcher = f"{{regex: '{huge}', not: {matcher}}}"
        return matcher

    bomb = nested(55)
    data = _policy(
        [f"{{id: bomb, action: file.read, decision: deny, path: {bomb}, agent: {bomb}}}"]
    )
    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(data, "p.yaml")
    assert raised.value.problems == [
        f"rules[0] (id 'bomb'): {field}: not: nested 54 levels deep, more than the 8 a "
        "matcher may nest; not of not is the matcher itself, and the operators of one "
        "level must all hold, so write them side by side"
        for field in ("path", "agent")
    ]
    # Within the depth, the budget stops the first rule at the regex that crosses it:
    # the third of path's levels, before agent (or the second rule) compiles anything.
    within = nested(8)
    data = _policy(
        [
            f"{{id: deep, action: file.read, decision: deny, path: {within}, agent: {within}}}",
            f"{{id: later, action: file.read, decision: deny, path: {within}}}",
        ]
    )
    problem = _refusal(data)
    assert problem.startswith(
        "rules[0] (id 'deep'): path: regex: the policy's compiled matchers up to here take "
        "about 60.1 MiB, more than the 48 MiB a gate is sized for"
    )
    assert "this regex alone compiles to 420,007 RE2 instructions (20.0 MiB)" in problem
    assert "a bounded repetition (.{1000}, [a-z]{1,63}) multiplies a regex's program" in problem


def test_many_small_regexes_are_charged_for_their_programs_not_only_their_instructions() -> None:
    # 10,000 rules of seven one-word regexes (2 MB of YAML): 70,000 programs of about 10
    # instructions each, 4 to 6 KiB apiece once compiled, far inside the old instruction
    # budget.
    fields = ("path: {regex: /a%d}", "name: {regex: n%d}", "namespace: {regex: s%d}")
    data = _policy(
        [
            "{action: k8s.request, decision: deny, " + ", ".join(f % i for f in fields) + "}"
            for i in range(10_000)
        ]
    )
    problem = _refusal(data)
    assert problem.startswith("rules[4155]: namespace: regex: ")
    assert "regexes and globs compiled to RE2, 2 to 4 KiB each however short" in problem


def test_a_realistic_policy_of_the_most_rules_stays_valid() -> None:
    # The benchmark's 10,000-rule policy (globs, command lists, hosts, Kubernetes rules),
    # the largest a gate is sized for, and every shipped policy are far inside the budget.
    budgets: list[matchers.CompileBudget] = []
    start = matchers.CompileBudget.__init__

    def recording(budget: matchers.CompileBudget, limit: int) -> None:
        start(budget, limit)
        budgets.append(budget)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matchers.CompileBudget, "__init__", recording)
        loaded = load_policy_bytes(policy_yaml(10_000), "bench.yaml")
    assert len(loaded.rules) == 10_000
    assert budgets[0].spent < budgets[0].limit / 2
    verdict = evaluate_request(loaded, {"action": "file.read", "path": "/home/u/.ssh/id_rsa"})
    assert (verdict.decision, verdict.rule) == ("deny", "no-ssh-keys")


@pytest.mark.parametrize("count", [20, 3_000])  # a policy within the budget, one past it
def test_compiling_a_policy_leaves_nothing_in_re2s_own_cache(count: int) -> None:
    # Found in the review of the budget (rt25): the re2 module keeps the last 128 regexes
    # compiled, up to 8 MiB each, in a cache of its own; a reload or a refused policy
    # left them held, memory no budget counted. The policy keeps its own references.
    rules = [
        f"{{id: r{i}, action: file.read, decision: deny, path: {{regex: '/d{i}/.{{100}}'}}}}"
        for i in range(count)
    ]
    try:
        policy = load_policy_bytes(_policy(rules), "p.yaml")
    except PolicyError:
        policy = None
    assert re2._Regexp._make.cache_info().currsize == 0
    if policy is not None:
        verdict = evaluate_request(policy, {"action": "file.read", "path": "/d3/" + "x" * 100})
        assert (verdict.decision, verdict.rule) == ("deny", "r3")
