"""Token buckets for ``rateLimit`` on allow rules (CONTRACT section 1).

One bucket per rule: ``count`` tokens, refilled continuously at ``count / per``. An
allowed check spends one token of every rate-limited allow rule that matched it (once,
even when the rule matched several of the check's subjects); when
a bucket has less than one token the rule counts as a matching deny. Buckets survive a
policy reload for rules whose limit (count and window, however the window is spelled)
is unchanged and that keep their id, or, for a rule without an id, its content: a
default id (``rules[3]``) names a position, which adding or moving another rule changes.
So editing an unrelated rule does not hand an agent a fresh budget, nor move one rule's
spent budget onto another.
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

BucketKey = tuple[str, int, float]  # owner (id or content), count, window in seconds


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[BucketKey, _Bucket] = {}

    @staticmethod
    def _key(rule: CompiledRule) -> BucketKey:
        assert rule.rate_limit is not None
        limit = rule.rate_limit
        return (limit.owner, limit.count, limit.per_seconds)

    def _refilled(self, rule: CompiledRule) -> _Bucket:
        limit = rule.rate_limit
        assert limit is not None
        now = self._clock()
        bucket = self._buckets.get(self._key(rule))
        if bucket is None:
            bucket = self._buckets[self._key(rule)] = _Bucket(float(limit.count), now)
        else:
            rate = limit.count / limit.per_seconds
            bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
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
            if self._key(rule) in self._buckets:
                bucket = self._refilled(rule)
                bucket.tokens = min(float(rule.rate_limit.count), bucket.tokens + 1.0)

    def retain(self, policy: CompiledPolicy) -> None:
        """Drop buckets of rules the new policy no longer has (same owner and limit)."""
        keep = {self._key(r) for r in policy.rules if r.rate_limit is not None}
        for key in list(self._buckets):
            if key not in keep:
                del self._buckets[key]

    def remaining(self, rule: CompiledRule) -> float:
        return self._refilled(rule).tokens
