"""Rate-limit buckets across policy reloads (review of 2026-12-06, findings 1 and 2).

1. A limit lowered below what was spent, then restored, handed the spent budget back
   (the bucket clamped its tokens at none, and so forgot the rest of the spend) as soon
   as one check, even a dry run, looked at it under the lower limit.
2. A reloaded limit took effect only at the first check after the reload, and the time
   since the reload was refilled at the old rate.

docs/policy.md, "Rate limits": what was spent still counts when a limit changes, and
lowering it takes effect at once. The daemon tests reload a real gate (an atomic rename
and SIGHUP, as a ConfigMap update or an operator would); the others drive the limiter
with a clock of their own, as tests/test_rate_limits.py does.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.ratelimit import RateLimiter
from tests.daemon import Daemon

WRITES = """\
version: 1
rules:
  - {{id: write-out, action: file.write, path: {{glob: "/app/out/**"}}, decision: allow, rateLimit: {{count: {count}, per: {per}}}}}
"""


def writes(count: int, per: str = "1h") -> str:
    return WRITES.format(count=count, per=per)


def compiled(count: int, per: str = "1h") -> CompiledPolicy:
    return load_policy_bytes(writes(count, per).encode(), "policy.yaml")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: RateLimiter, policy: CompiledPolicy, times: int, *, dry: bool = False) -> int:
    """Send ``times`` writes through ``limiter`` as the gate does; how many were allowed
    (a dry run spends nothing)."""
    count = 0
    for i in range(times):
        verdict = evaluate_request(
            policy, {"action": "file.write", "path": f"/app/out/{i}"}, exhausted=limiter.exhausted
        )
        if verdict.allowed:
            count += 1
            if not dry:
                limiter.spend(policy, verdict)
    return count


# -- 1. what was spent is kept, however the limit moves --------------------------------


@pytest.mark.parametrize("looked_between", [True, False], ids=["a-check-between", "no-check"])
def test_lowering_a_limit_and_restoring_it_gives_nothing_back(looked_between: bool) -> None:
    clock = Clock()  # frozen: no refill while the test runs
    limiter = RateLimiter(clock=clock)
    generous, tight = compiled(100), compiled(10)
    limiter.retain(generous)
    assert allowed(limiter, generous, 120) == 100
    limiter.retain(tight)
    if looked_between:  # one dry run under the lower limit was enough to forget the spend
        assert allowed(limiter, tight, 1, dry=True) == 0
    limiter.retain(generous)
    assert allowed(limiter, generous, 120) == 0, "100 spent of 100/1h: none is left"


def test_a_limit_toggled_between_checks_never_makes_tokens() -> None:
    # The report's t4: toggling 20 and 21 while checks ran created a token per cycle.
    # With the clock still, however the limit moves, no more is allowed in total than
    # the highest limit in force.
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    low, high = compiled(20), compiled(21)
    total = 0
    for _ in range(30):
        for policy in (high, low):
            limiter.retain(policy)
            total += allowed(limiter, policy, 5)
    assert total == 21


def test_what_is_owed_refills_at_the_new_rate_and_shows_as_none_left() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    generous, tight = compiled(100), compiled(10)
    limiter.retain(generous)
    assert allowed(limiter, generous, 100) == 100
    limiter.retain(tight)  # 90 tokens owed under 10/1h
    (rule,) = tight.rules
    assert limiter.remaining(rule) == 0.0, "never fewer than none shown"
    # One token per 360 s: the debt is paid and the next token whole after 91 of them
    # (9 h 6 min, as docs/policy.md says).
    clock.now += 91 * 360 - 1
    assert allowed(limiter, tight, 1) == 0
    clock.now += 2
    assert allowed(limiter, tight, 2) == 1


def test_the_documented_example_still_holds() -> None:
    # docs/policy.md: 4 of 10 spent, the limit lowered to 5, one token is left; raised
    # to 20, sixteen are.
    limiter = RateLimiter(clock=Clock())
    ten = compiled(10)
    limiter.retain(ten)
    assert allowed(limiter, ten, 4) == 4
    limiter.retain(compiled(5))
    assert limiter.remaining(compiled(5).rules[0]) == 1.0
    limiter.retain(compiled(20))
    assert limiter.remaining(compiled(20).rules[0]) == 16.0


# -- 2. a reload applies at its moment -------------------------------------------------


@pytest.mark.parametrize("looked_between", [True, False], ids=["a-check-at-once", "no-check"])
def test_a_lower_limit_applies_from_the_reload_not_from_the_next_check(
    looked_between: bool,
) -> None:
    # The report's t12: 50/1s spent, reloaded to 5/1h, 1.5 s of quiet: the quiet was
    # refilled at 50/s and all 5 new tokens were allowed at once.
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    fast, slow = compiled(50, "1s"), compiled(5, "1h")
    limiter.retain(fast)
    assert allowed(limiter, fast, 60) == 50
    clock.now += 0.3  # 15 tokens back at 50/s: 35 still spent at the reload
    limiter.retain(slow)
    if looked_between:
        assert allowed(limiter, slow, 1, dry=True) == 0
    clock.now += 1.5
    assert allowed(limiter, slow, 10) == 0
    # 30 owed at 5/1h: the next token comes 31 * 720 s after the reload.
    clock.now += 31 * 720 - 1.5 - 1
    assert allowed(limiter, slow, 1) == 0
    clock.now += 2
    assert allowed(limiter, slow, 2) == 1


def test_a_raised_limit_refills_at_the_new_rate_from_the_reload() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    slow, fast = compiled(10, "1h"), compiled(10, "10s")
    limiter.retain(slow)
    assert allowed(limiter, slow, 10) == 10
    clock.now += 100  # under 1/360 s: 0.28 of a token back
    limiter.retain(fast)
    clock.now += 5  # 5 more at 1 per second
    assert allowed(limiter, fast, 10) == 5


def test_a_refund_under_a_rule_of_the_previous_policy_keeps_the_new_limit() -> None:
    # A check allowed under the old policy whose record then fails (503) gives its token
    # back after the reload: that must not put the old limit back on the bucket.
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    generous, tight = compiled(100), compiled(10)
    limiter.retain(generous)
    verdict = evaluate_request(
        generous, {"action": "file.write", "path": "/app/out/x"}, exhausted=limiter.exhausted
    )
    spent = [limiter.spend(generous, verdict) for _ in range(100)]
    limiter.retain(tight)
    limiter.refund(spent[0])  # a rule of the previous policy
    assert allowed(limiter, tight, 10) == 0, "99 spent still count under 10/1h"
    limiter.retain(generous)
    assert allowed(limiter, generous, 10) == 1


# -- against the real gate ---------------------------------------------------------------


def reload(gate: Daemon, text: str) -> None:
    """Replace the policy file atomically, send SIGHUP and wait until the gate runs it."""
    staged = gate.policy.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, gate.policy)
    assert gate.process is not None
    gate.process.send_signal(signal.SIGHUP)
    wanted = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    deadline = time.monotonic() + 10
    while gate.get("/v1/status").json()["policy"]["hash"] != wanted:
        assert time.monotonic() < deadline, "the reload was not picked up"
        time.sleep(0.02)


def write(gate: Daemon, i: int, **extra: Any) -> dict[str, Any]:
    response = gate.check({"action": "file.write", "path": f"/app/out/{i}", **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_gate_reloaded_lower_and_back_keeps_what_was_spent(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    # The report's t5, smaller: 10/1h spent, reloaded to 2/1h, one dry run, back to 10/1h.
    policy = tmp_path / "policy.yaml"
    policy.write_text(writes(10))
    gate = daemon_factory(policy)
    assert sum(write(gate, i)["allowed"] for i in range(12)) == 10
    reload(gate, writes(2))
    probe = write(gate, 100, dryRun=True)
    assert probe["allowed"] is False and "rate limit 2/1h" in probe["reason"]
    reload(gate, writes(10))
    answers = [write(gate, 200 + i) for i in range(10)]
    assert sum(a["allowed"] for a in answers) == 0, [a["reason"] for a in answers]
    assert all("rate limit 10/1h of rule write-out is spent" in a["reason"] for a in answers)


def test_a_gate_reloaded_to_a_slower_limit_refills_at_it_from_the_reload(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    # The report's t12, with room for a slow machine: 100/4s spent, reloaded to 5/1h
    # within 3.8 s (more than 4 tokens still spent), then 4.5 s of quiet, which at the
    # old rate would refill the whole bucket.
    policy = tmp_path / "policy.yaml"
    policy.write_text(writes(100, "4s"))
    gate = daemon_factory(policy)
    sent = 0
    while write(gate, sent)["allowed"]:  # until the bucket is empty
        sent += 1
        assert sent < 1000, "the bucket refills faster than checks are answered"
    spent_at = time.monotonic()
    reload(gate, writes(5, "1h"))
    reloaded_in = time.monotonic() - spent_at
    if reloaded_in > 3.8:
        pytest.skip(f"the reload took {reloaded_in:.1f} s: the bucket refilled before it")
    time.sleep(4.5)
    answers = [write(gate, 200 + i) for i in range(5)]
    assert sum(a["allowed"] for a in answers) == 0, [a["reason"] for a in answers]
