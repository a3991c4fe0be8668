"""A rate-limited allow rule cannot be bypassed by repetition inside one command line.

Each simple command of a ``commandLine`` spends a token, but a command in a loop, run by
``xargs``, ``find -exec`` or ``watch``, in a function or a trap runs an unknown number
of times for its one token. Such a command matching a rate-limited allow rule is denied,
like a spent limit (rule and risk of that rule), with its own reason; under an allow
rule without a limit it is allowed as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes
from tests.daemon import Daemon

POLICY = """\
version: 1
rules:
  - {id: fetches, action: process.exec, command: curl, decision: allow, risk: medium, rateLimit: {count: 3, per: 1h}}
  - {id: pings, action: process.exec, command: ping, decision: allow}
  - {id: out, action: file.write, path: /tmp/out, decision: allow, rateLimit: {count: 3, per: 1h}}
  - id: tools
    action: process.exec
    command: {in: [echo, seq, "true", "false", ":", sleep, xargs, find, watch, repeat, sh, systemd-run, f]}
    decision: allow
  - id: constructs
    action: process.exec
    command: {in: [command-substitution, function-definition, eval, trap, unknown-arguments, arithmetic]}
    decision: allow
"""

URL = "https://example.com/x"

# (command line, why it repeats) for commands that may run any number of times.
REPEATED = [
    (f"for i in $(seq 1000); do curl {URL}; done", "in a for loop"),
    (f"for i in 1 2; do echo hi; curl {URL}; done", "in a for loop"),
    (f"while true; do curl {URL}; done", "in a while loop"),
    (f"while curl {URL}; do sleep 1; done", "in a while loop"),  # the condition
    (f"until false; do curl {URL}; done", "in an until loop"),
    (f"until curl {URL}; do sleep 1; done", "in an until loop"),
    (f"for ((i = 0; i < 5; i++)); do curl {URL}; done", "in a for (( )) loop"),
    (f"select s in a b; do curl {URL}; done", "in a select loop"),
    (f"while true; do echo $(curl {URL}); done", "in a while loop"),
    (f"for i in 1; do for j in 1; do curl {URL}; done; done", "in a for loop"),
    (f"sh -c 'while :; do curl {URL}; done'", "in a while loop"),
    # The same script once outside and once inside a loop: both are analysed.
    (f"sh -c 'curl {URL}'; while :; do sh -c 'curl {URL}'; done", "in a while loop"),
    (f"eval 'curl {URL}'; while :; do eval 'curl {URL}'; done", "in a while loop"),
    (f"echo {URL} | xargs curl", "run repeatedly by xargs"),
    (f"echo {URL} | xargs -n 1 sh -c 'curl {URL}'", "run repeatedly by xargs"),
    ("find . -name '*.url' -exec curl {} \\;", "run repeatedly by find"),
    ("find . -execdir curl {} +", "run repeatedly by find"),
    ("find . -ok curl {} \\;", "run repeatedly by find"),
    (f"watch curl {URL}", "run repeatedly by watch"),
    (f"watch -x curl {URL}", "run repeatedly by watch"),
    (f"systemd-run --user --on-calendar='*:*:*' curl {URL}", "run repeatedly by systemd-run"),
    (f"systemd-run --on-unit-active=1s curl {URL}", "run repeatedly by systemd-run"),
    (f"repeat 5 curl {URL}", "run 5 times by repeat"),
    (f"f() {{ curl {URL}; }}; f; f", "in function f, called any number of times"),
    (f"f() {{ curl {URL}; f; }}; f", "in function f, called any number of times"),
    (f"trap 'curl {URL}' INT", "a trap, run on any number of signals"),
]


@pytest.fixture
def gate(write_policy, daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory(write_policy(POLICY))


def run(gate: Daemon, line: str, **extra: Any) -> dict[str, Any]:
    response = gate.check({"action": "process.exec", "commandLine": line, "cwd": "/tmp", **extra})
    assert response.status_code == 200, response.text
    return response.json()


def assert_repetition_denied(answer: dict[str, Any], line: str, why: str) -> None:
    assert (answer["allowed"], answer["decision"], answer["rule"], answer["risk"]) == (
        False,
        "deny",
        "fetches",
        "medium",
    ), (line, answer)
    reason = answer["reason"]
    assert reason.startswith("rate limit 3/1h of rule fetches cannot count process.exec of "), (
        line,
        reason,
    )
    assert reason.endswith(f": it may run an unknown number of times ({why})"), (line, reason)


def test_a_repeated_command_under_a_rate_limited_rule_is_denied(gate: Daemon) -> None:
    for line, why in REPEATED:
        assert_repetition_denied(run(gate, line), line, why)
        assert_repetition_denied(run(gate, line, dryRun=True), line, why)
    # The record says what the answer said.
    line, why = REPEATED[0]
    answer = run(gate, line)
    record = next(r for r in gate.records() if r.get("decisionId") == answer["decisionId"])
    assert (record["decision"], record["allowed"], record["rule"], record["risk"]) == (
        "deny",
        False,
        "fetches",
        "medium",
    )
    assert record["reason"] == answer["reason"]
    assert record["request"]["commandLine"] == line
    # None of those denials spent a token: all three are still there.
    assert run(gate, f"curl {URL}; curl {URL}; curl {URL}")["allowed"] is True
    spent = run(gate, f"curl {URL}")
    assert spent["allowed"] is False
    assert (
        spent["reason"]
        == f"rate limit 3/1h of rule fetches is spent for process.exec of curl {URL}"
    )


def test_a_redirection_in_a_loop_under_a_rate_limited_write_rule_is_denied(gate: Daemon) -> None:
    answer = run(gate, "for i in 1 2; do echo hi > /tmp/out; done")
    assert (answer["allowed"], answer["rule"]) == (False, "out")
    assert answer["reason"] == (
        "redirection > /tmp/out: rate limit 3/1h of rule out cannot count file.write of "
        "/tmp/out: it may run an unknown number of times (in a for loop)"
    )
    assert run(gate, "echo hi > /tmp/out")["allowed"] is True


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        ("echo a > /tmp/out", 1),  # read as bash and as POSIX sh: still one
        ("echo a > /tmp/out; echo b > /tmp/out", 2),
        ("echo a > /tmp/out 2>/tmp/out", 2),
        ("echo a >> /tmp/out && echo b >| /tmp/out; echo c &> /tmp/out", 3),
        ("sh -c 'echo a > /tmp/out'; sh -c 'echo a > /tmp/out'", 2),  # the text again
    ],
)
def test_each_redirection_to_a_file_spends_a_token(
    line: str, tokens: int, write_policy, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(write_policy(POLICY))
    answer = run(gate, line)
    assert (answer["allowed"], answer["decision"]) == (True, "allow"), answer
    # The record still lists the file once.
    record = next(r for r in gate.records() if r.get("decisionId") == answer["decisionId"])
    assert record["request"]["writes"] == ["/tmp/out"]
    left = 3 - tokens
    if left:
        assert run(gate, "; ".join(["echo x > /tmp/out"] * left))["allowed"] is True
    spent = run(gate, "echo x > /tmp/out")
    assert (spent["allowed"], spent["rule"]) == (False, "out"), spent


def test_redirections_beyond_the_budget_are_denied_in_one_check(gate: Daemon) -> None:
    line = "; ".join(f"echo {n} > /tmp/out" for n in range(4))
    answer = run(gate, line)
    assert (answer["allowed"], answer["rule"]) == (False, "out"), answer
    assert "the check runs 4 commands or redirections the rule covers" in answer["reason"]
    assert run(gate, "echo a > /tmp/out; echo b > /tmp/out; echo c > /tmp/out")["allowed"]


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        (f"curl {URL}", 1),
        (f"for i in 1 2 3; do echo hi; done; curl {URL}", 1),
        (f"while false; do echo hi; done && curl {URL}", 1),
        (f"repeat 1 curl {URL}; curl {URL}", 2),
        (f"find . -name x; curl {URL}", 1),
        (f"systemd-run --user curl {URL}", 1),
        (f"echo a | xargs echo; curl {URL}; curl {URL}", 2),
        (f"f() {{ echo hi; }}; f; f; curl {URL}", 1),
        (f"for i in $(curl {URL}); do echo hi; done", 1),  # a for's words expand once
        (f"curl {URL} | sh -c 'curl {URL}'", 2),
    ],
)
def test_the_same_commands_run_once_are_allowed_and_spend_their_tokens(
    line: str, tokens: int, write_policy, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(write_policy(POLICY))
    answer = run(gate, line)
    assert (answer["allowed"], answer["decision"]) == (True, "allow"), answer
    # What is left of the 3 tokens: exactly 3 - tokens more curls are allowed.
    left = 3 - tokens
    if left:
        assert run(gate, "; ".join([f"curl {URL}"] * left))["allowed"] is True
    assert run(gate, f"curl {URL}")["allowed"] is False


def test_a_repeated_command_under_a_rule_without_a_rate_limit_is_allowed(gate: Daemon) -> None:
    for line, _why in REPEATED:
        pinging = line.replace(f"curl {URL}", "ping example.com").replace("curl", "ping")
        answer = run(gate, pinging)
        assert (answer["allowed"], answer["decision"]) == (True, "allow"), (pinging, answer)


def test_policy_tests_agree_without_rate_limit_state(tmp_path: Path) -> None:
    """``tollgate policy test`` and ``tollgate check`` evaluate without buckets: the
    repetition deny needs none, so they answer what the gate answers."""
    policy = load_policy_bytes(POLICY.encode(), "policy.yaml")
    body = {"action": "process.exec", "commandLine": f"while true; do curl {URL}; done"}
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.allowed, verdict.rule) == ("deny", False, "fetches")
    assert "may run an unknown number of times (in a while loop)" in verdict.reason
    once = evaluate_request(policy, {"action": "process.exec", "commandLine": f"curl {URL}"})
    assert (once.decision, once.rule) == ("allow", "fetches")
