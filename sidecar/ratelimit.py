"""Token buckets for ``rateLimit`` on allow rules (CONTRACT section 1).

One bucket per rule: ``count`` tokens, refilled continuously at ``count / per``. An
allowed check spends one token of every rate-limited allow rule that matched it (once,
even when the rule matched several of the check's subjects); when
a bucket has less than one token the rule counts as a matching deny. Buckets survive a
policy reload for rules that keep their id, or, for a rule without an id, its content:
a default id (``rules[3]``) names a position, which adding or moving another rule
changes. So editing an unrelated rule does not hand an agent a fresh budget, nor move
one rule's spent budget onto another. A rule whose limit changes keeps what it has
spent: lowering a limit on an agent that is using it up takes effect at once, instead
of filling a new bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar.evaluator import matching_allow_rules
from sidecar.policy.compiler import CompiledPolicy, CompiledRule

if TYPE_CHECKING:
    from sidecar.engine import Verdict


@dataclass
class _Bucket:
    tokens: float
    updated: float
    count: int  # the limit it is filled to and refilled at, until a reload changes it
    per_seconds: float

    def refill(self, now: float) -> None:
        rate = self.count / self.per_seconds
        self.tokens = min(float(self.count), self.tokens + (now - self.updated) * rate)
        self.updated = now

    def change_limit(self, count: int, per_seconds: float) -> None:
        """Take a reloaded limit: what was spent of the old one stays spent."""
        spent = self.count - self.tokens
        self.tokens = max(0.0, count - spent)
        self.count, self.per_seconds = count, per_seconds


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}  # by RateLimitSpec.owner

    def _refilled(self, rule: CompiledRule) -> _Bucket:
        limit = rule.rate_limit
        assert limit is not None
        now = self._clock()
        bucket = self._buckets.get(limit.owner)
        if bucket is None:
            bucket = _Bucket(float(limit.count), now, limit.count, limit.per_seconds)
            self._buckets[limit.owner] = bucket
            return bucket
        bucket.refill(now)  # at the limit it was spent under
        if (bucket.count, bucket.per_seconds) != (limit.count, limit.per_seconds):
            bucket.change_limit(limit.count, limit.per_seconds)
        return bucket

    def exhausted(self, rule: CompiledRule) -> bool:
        return self._refilled(rule).tokens < 1.0

    def spend(self, policy: CompiledPolicy, verdict: Verdict) -> list[CompiledRule]:
        """One token of each rate-limited rule that matched, however many of the
        request's subjects it matched (a path and its realPath are one read).
        Returns the rules spent, for ``refund``."""
        spent: dict[int, CompiledRule] = {}
        for decision in verdict.decisions:
            for rule in matching_allow_rules(policy, decision.subject):
                if rule.index not in spent:
                    spent[rule.index] = rule
                    self._refilled(rule).tokens -= 1.0
        return list(spent.values())

    def refund(self, rules: list[CompiledRule]) -> None:
        """Give back what ``spend`` took, for a check that was not allowed after all (its
        record could not be written). Rules a reload dropped meanwhile are skipped."""
        for rule in rules:
            assert rule.rate_limit is not None
            if rule.rate_limit.owner in self._buckets:
                bucket = self._refilled(rule)
                bucket.tokens = min(float(bucket.count), bucket.tokens + 1.0)

    def retain(self, policy: CompiledPolicy) -> None:
        """Drop the buckets of rules the new policy no longer has."""
        keep = {r.rate_limit.owner for r in policy.rules if r.rate_limit is not None}
        for owner in list(self._buckets):
            if owner not in keep:
                del self._buckets[owner]

    def remaining(self, rule: CompiledRule) -> float:
        return self._refilled(rule).tokens
