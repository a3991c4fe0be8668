"""An approval asked for by a view still spends the subject's rate-limited allow rule,
and inputs that were slow or a 500: many variable names (analysed in quadratic time) and
numbers ``int()`` refuses. Found in the code review of the changes of 2026-12-06."""

from __future__ import annotations

import contextlib
import time

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.policy.loader import load_policy_bytes
from sidecar.ratelimit import tokens_needed


def test_an_approval_asked_for_by_a_view_still_spends_the_subjects_allow_rule() -> None:
    # A view (localhost as the loopback) that matched an approval rule replaced the
    # request's own decision, so the rate-limited allow rule it matched spent no token
    # once the approval allowed the request.
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: local-api, action: network.request, host: localhost,"
        b" rateLimit: {count: 2, per: 1h}, decision: allow}\n"
        b"  - {id: loopback, action: network.request, host: {cidr: [127.0.0.0/8]},"
        b" decision: require_approval}\n",
        "views.yaml",
    )
    verdict = evaluate_request(
        policy, {"action": "network.request", "url": "http://localhost:8080/x"}
    )
    assert (verdict.decision, verdict.rule) == ("require_approval", "loopback")
    assert [rule.id for rule in tokens_needed(policy, verdict)] == ["local-api"]


READ_ALLOWED = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {action: process.exec, command: [read, unset, printf, wait, cat, repeat],"
    b" decision: allow}\n",
    "builtins.yaml",
)


@pytest.mark.parametrize("builtin", ["read", "unset", "printf -v", "wait -p"])
def test_many_variable_names_are_analysed_in_linear_time(builtin: str) -> None:
    # Each name was looked for among all the arguments, twice: 64 KiB of "read a a a"
    # took 141 s on the event loop every check waits for (0.6 s before).
    command = (builtin + " " + "a " * 32_000)[:60_000]
    started = time.perf_counter()
    verdict = evaluate_request(READ_ALLOWED, {"action": "process.exec", "commandLine": command})
    elapsed = time.perf_counter() - started
    assert verdict.decision == "allow"
    assert elapsed < 10, f"{elapsed:.1f}s"  # quadratic took minutes; linear under 1 s here


@pytest.mark.parametrize("length", [28, 60_000])
def test_a_here_document_delimiter_is_read_in_linear_time(length: int) -> None:
    # A delimiter that is not one of the forms read for sure (a quote after a run of
    # word characters) made the delimiter's regex backtrack exponentially: 28 characters
    # took 6 s on the event loop every check waits for, 30 about 25 s.
    command = "cat <<" + "a" * length + '\\"b'
    started = time.perf_counter()
    with pytest.raises(RequestError, match="unsupported here-document delimiter"):
        evaluate_request(READ_ALLOWED, {"action": "process.exec", "commandLine": command})
    elapsed = time.perf_counter() - started
    assert elapsed < 1, f"{elapsed:.1f}s"


@pytest.mark.parametrize(
    "command",
    [
        "cat " + "1" * 5000 + ">&3",  # int() refuses more than 4300 digits
        "cat 2>&" + "1" * 5000,
        "repeat " + "1" * 5000 + " cat",
        "repeat \u00b2 cat",  # a digit to str.isdigit, no number to int()
    ],
    ids=["fd", "source", "repeat", "superscript"],
)
def test_numbers_int_refuses_are_decided_not_a_500(command: str) -> None:
    verdict = evaluate_request(READ_ALLOWED, {"action": "process.exec", "commandLine": command})
    assert verdict.decision in ("allow", "deny")
    if "\u00b2" in command:
        assert verdict.decision == "deny"  # zsh math: the construct arithmetic


def _seconds_to_decide(command: str) -> float:
    started = time.perf_counter()
    with contextlib.suppress(RequestError):
        evaluate_request(READ_ALLOWED, {"action": "process.exec", "commandLine": command})
    return time.perf_counter() - started


@pytest.mark.parametrize("unit", ["{a,", "[", "{a..", "{,["])
def test_words_that_almost_brace_or_glob_are_read_in_linear_time(unit: str) -> None:
    # Found in the red-team review of 2026-12-07: the regexes telling whether a word may
    # brace-expand or glob backtracked in time cubic (and quadratic) in its length: 12 KB
    # of "git status {a,{a,..." held the event loop, and /health with it, for 59 s.
    # Four times the text must take at most 8 times as long (best of two).
    def best(command: str) -> float:
        return min(_seconds_to_decide(command) for _ in range(2))

    quarter = best("cat " + unit * (15_000 // len(unit)))
    whole = best("cat " + unit * (60_000 // len(unit)))
    assert whole <= 8 * quarter + 0.05, f"{whole:.3f}s against {quarter:.3f}s"
