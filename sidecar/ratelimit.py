"""Token buckets for ``rateLimit`` on allow rules (CONTRACT section 1).

One bucket per rule: ``count`` tokens, refilled continuously at ``count / per``. An
allowed check spends, of every rate-limited allow rule that matched it, one token per
action it takes under the rule (``tokens_needed``): each simple command and redirection
of a command line is an action of its own, so batching ``curl a; curl b; ...`` into one
check is no way around a budget (nor ``echo a > f; echo b > f``: the file is one
subject, counted once per redirection that opens it); the forms of one action (a
path and its realPath, a URL path's forms) are one. When a bucket has less than one
token the rule counts as a matching deny (the evaluator sees it); when it has fewer
than the check needs, the check is denied all the same (``shortfall``,
``over_budget``).

A command that may run an unknown number of times for its one token (in a loop body or a
``while``/``until`` condition, a function, a trap or alias, run by ``xargs``, ``find
-exec``, ``watch``, ``systemd-run --on-calendar`` or ``-p Restart=always``, or zsh's
``repeat N``: ``Subject.repeated``, set by the command analysis) cannot be counted: a rate-limited
allow rule that matches it counts as a matching deny too, whatever its bucket holds,
with a reason saying why the command repeats. So ``for i in $(seq 1000); do curl x;
done`` is no way around a budget either; an allow rule without a limit still allows it.
The evaluator decides this (no state needed, so ``tollgate policy test`` agrees), and it
costs nothing when the policy has no rate limits.

``tollgate policy test`` and ``tollgate check --policy`` evaluate a request as a freshly
started gate does (``evaluate_with_fresh_limits``): against a limiter of its own, with
every bucket full, so a check needing more tokens than a limit holds is denied there too.

Buckets survive a policy reload for rules that keep their id, or, for a rule without an
id, its content: a default id (``rules[3]``) names a position, which adding or moving
another rule changes. So editing an unrelated rule does not hand an agent a fresh
budget, nor move one rule's spent budget onto another. A rule whose limit changes keeps
what it has spent: lowering a limit on an agent that is using it up takes effect at
once, instead of filling a new bucket.

What was spent is kept whole, even when a lower limit leaves less than none: the
bucket then owes tokens (``tokens`` below zero), refilled at the new rate, so lowering a
limit and restoring it hands nothing back (100 of 100/1h spent, lowered to 10/1h:
-90, back to 100/1h: 0, as if the limit had never moved). A reload applies at its
moment (``retain``): every kept bucket is refilled at the old rate up to then and at the
new one after, whether or not a check touched it in between. Only ``retain`` changes a
bucket's limit; a rule of an older policy (a refund after a reload) spends or gives
back a token of the bucket as it is now.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.engine import Verdict, evaluate_request
from sidecar.evaluator import matching_allow_rules
from sidecar.policy.compiler import CompiledPolicy, CompiledRule
from sidecar.subject import PROCESS_EXEC


@dataclass
class _Bucket:
    # Below zero when a reload lowered the limit under what was spent: tokens owed.
    tokens: float
    updated: float
    count: int  # the limit it is filled to and refilled at, until a reload changes it
    per_seconds: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            rate = self.count / self.per_seconds
            self.tokens = min(float(self.count), self.tokens + (now - self.updated) * rate)
            self.updated = now

    def change_limit(self, count: int, per_seconds: float) -> None:
        """Take a reloaded limit (refilled up to the reload first): what was spent of
        the old one stays spent, all of it, so the tokens may go below zero."""
        spent = self.count - self.tokens
        self.tokens = count - spent
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
        # At the limit the bucket holds: the one ``retain`` gave it at the last reload.
        bucket.refill(now)
        return bucket

    def exhausted(self, rule: CompiledRule) -> bool:
        return self._refilled(rule).tokens < 1.0

    def spend(self, policy: CompiledPolicy, verdict: Verdict) -> list[CompiledRule]:
        """Take what ``verdict`` needs (``tokens_needed``) whatever the buckets hold;
        returns the rules spent, once per token, for ``refund``."""
        needed = tokens_needed(policy, verdict)
        self.take(needed)
        return needed

    def shortfall(self, needed: list[CompiledRule]) -> tuple[CompiledRule, int, float] | None:
        """The first rule in the file whose bucket holds fewer tokens than ``needed``
        takes of it (CONTRACT section 1: the rule reported is the first of its kind in
        file order, not the one the request's first command needs): (rule, tokens
        needed, tokens left); None when every bucket holds enough."""
        counts: dict[int, tuple[CompiledRule, int]] = {}
        for rule in needed:
            counts[rule.index] = (rule, counts[rule.index][1] + 1 if rule.index in counts else 1)
        for _, (rule, count) in sorted(counts.items()):
            left = self._refilled(rule).tokens
            if left < count:
                return rule, count, max(0.0, left)  # tokens owed: none left
        return None

    def take(self, needed: list[CompiledRule]) -> None:
        """Spend one token per entry of ``needed`` (``tokens_needed``)."""
        for rule in needed:
            self._refilled(rule).tokens -= 1.0

    def refund(self, rules: list[CompiledRule]) -> None:
        """Give back what ``spend`` or ``take`` took, for a check that was not allowed
        after all (its record could not be written). Rules a reload dropped meanwhile
        are skipped."""
        for rule in rules:
            assert rule.rate_limit is not None
            if rule.rate_limit.owner in self._buckets:
                bucket = self._refilled(rule)
                bucket.tokens = min(float(bucket.count), bucket.tokens + 1.0)

    def retain(self, policy: CompiledPolicy) -> None:
        """What a reload does, at its moment: drop the buckets of rules the new policy
        no longer has, and give every kept bucket whose limit changed its new limit,
        refilled at the old rate up to now (the new rate applies from now on)."""
        limits = {
            r.rate_limit.owner: r.rate_limit for r in policy.rules if r.rate_limit is not None
        }
        now = self._clock()
        for owner, bucket in list(self._buckets.items()):
            limit = limits.get(owner)
            if limit is None:
                del self._buckets[owner]
            elif (bucket.count, bucket.per_seconds) != (limit.count, limit.per_seconds):
                bucket.refill(now)
                bucket.change_limit(limit.count, limit.per_seconds)

    def remaining(self, rule: CompiledRule) -> float:
        """Whole and partial tokens left (none while tokens are owed)."""
        return max(0.0, self._refilled(rule).tokens)


def tokens_needed(policy: CompiledPolicy, verdict: Verdict) -> list[CompiledRule]:
    """The tokens an allowed ``verdict`` spends: each rate-limited allow rule that
    matched, once per action it covers. Every subject of a ``process.exec`` check is an
    action (a simple command, a redirection, a construct), a file several redirections
    open as many actions as there are redirections (``Subject.count``); the subjects of any other
    check are forms of one action (a path and its realPath, a URL path and its decoded
    forms, an exec GET that is also a create), one token however many match."""
    each_subject = verdict.action == PROCESS_EXEC
    needed: list[CompiledRule] = []
    seen: set[int] = set()
    for decision in verdict.decisions:
        if each_subject and decision.subject.restrictions_only:
            continue  # another form of an action counted already (a target through a link)
        for rule in matching_allow_rules(policy, decision.subject):
            if each_subject:  # a file opened by two redirections: two actions
                needed.extend([rule] * decision.subject.count)
            elif rule.index not in seen:
                seen.add(rule.index)
                needed.append(rule)
    return needed


def over_budget(verdict: Verdict, rule: CompiledRule, needed: int, left: float) -> Verdict:
    """``verdict`` denied because ``rule``'s bucket holds fewer tokens than it needs
    (still ``allowed`` in audit mode, like every answer there)."""
    assert rule.rate_limit is not None
    whole = int(left)
    if verdict.action == PROCESS_EXEC:
        actions = "command or redirection" if needed == 1 else "commands or redirections"
        wanted = f"the check runs {needed} {actions} the rule covers"
    else:  # every form of one action spends one token (tokens_needed)
        wanted = "the check needs one token"
    reason = (
        f"rate limit {rule.rate_limit.text} of rule {rule.id} is spent for "
        f"{verdict.action}: {wanted}, {whole} {'token is' if whole == 1 else 'tokens are'} left"
    )
    return dataclasses.replace(
        verdict,
        decision="deny",
        allowed=verdict.mode == "audit",
        rule=rule.id,
        risk=rule.risk,
        reason=reason,
    )


def evaluate_with_fresh_limits(
    policy: CompiledPolicy,
    body: Mapping[str, Any],
    *,
    identity: str = "",
    explain: bool = False,
) -> Verdict:
    """What a freshly started gate answers for ``body``: ``evaluate_request`` and then the
    gate's accounting of an allowed check (``tokens_needed``, ``shortfall``,
    ``over_budget``), against a limiter of its own with every bucket full. For offline
    evaluation (``tollgate policy test``, ``tollgate check --policy``): ``curl a; curl b``
    under a limit of 1 is denied there as every fresh gate denies it. Nothing is kept, so
    each call is one request against fresh limits. Raises ``RequestError``.
    """
    limiter = RateLimiter()
    verdict = evaluate_request(
        policy, body, identity=identity, explain=explain, exhausted=limiter.exhausted
    )
    if verdict.decision != "allow" or not policy.has_rate_limits:
        return verdict
    short = limiter.shortfall(tokens_needed(policy, verdict))
    if short is None:
        return verdict
    denied = over_budget(verdict, *short)
    if verdict.trace:
        # The trace ends "=> allow by ..."; say why that allow did not stand.
        line = f"=> {denied.decision} by {denied.rule}: {denied.reason}"
        denied = dataclasses.replace(denied, trace=(*verdict.trace, line))
    return denied
