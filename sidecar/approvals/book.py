"""The approvals the gate knows, in memory, and their transitions (CONTRACT section 2.4).

pending -> approved | denied | expired;  approved -> redeemed | expired.

The book holds no second truth: it is rebuilt from the trail's ``approval`` records at
start (``replay``), and while running every transition is applied only after its
record is durable. A transition in flight marks its approval ``settling``; any other
transition of that approval is refused meanwhile, which is what makes a redemption
happen exactly once even when identical checks race.

Finished approvals are kept for ``retention_us`` (so a late poll still learns the
outcome), then forgotten; the trail keeps them for ever. Memory is bounded whatever an
agent asks: live approvals by number and by the bytes their requests and reasons hold
(a new one beyond either is refused, ``ApprovalService.resolve``), finished ones by
number and bytes too (the oldest finished are forgotten first, also while replaying).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sidecar.approvals.model import LIVE_STATUSES, Approval, Status, parse_us

DEFAULT_RETENTION_US = 3600 * 1_000_000
# Live approvals are bounded: an agent looping over distinct risky requests must not
# grow the gate's memory (or an approver's queue) without end.
DEFAULT_MAX_LIVE = 1000
# A request is up to 64 KiB, and its reason may quote it: a thousand such approvals would
# hold over 100 MiB, near the pod's memory limit. So bytes are bounded as well as numbers
# (a review of 2026-12-07 took the gate past 400 MiB with waves of approvals left to
# expire, and the restart, replaying them, straight back).
DEFAULT_MAX_LIVE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_FINISHED = 1000
DEFAULT_MAX_FINISHED_BYTES = 16 * 1024 * 1024
# Approvals added between two looks for finished ones to forget.
_TRIM_SLACK = 32
# The webhook's outcome for an approval: after either, a restart does not notify again.
NOTICE_EVENTS = frozenset({"notified", "notifyFailed"})


class ApprovalBook:
    def __init__(
        self,
        *,
        retention_us: int = DEFAULT_RETENTION_US,
        max_live: int = DEFAULT_MAX_LIVE,
        max_live_bytes: int = DEFAULT_MAX_LIVE_BYTES,
        max_finished: int = DEFAULT_MAX_FINISHED,
        max_finished_bytes: int = DEFAULT_MAX_FINISHED_BYTES,
    ) -> None:
        self.retention_us = retention_us
        self.max_live = max_live
        self.max_live_bytes = max_live_bytes
        self.max_finished = max_finished
        self.max_finished_bytes = max_finished_bytes
        self._items: dict[str, Approval] = {}
        self._next_trim = _TRIM_SLACK
        # The latest time in the approval records replayed (their ``ts``, ``createdAt``,
        # ``decidedAt``): time the trail says has already passed, whatever the wall clock
        # says now (see ``ApprovalClock``).
        self.latest_replayed_us = 0

    # -- queries --------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval | None:
        return self._items.get(approval_id)

    def listed(self, status: Status | None, now: int) -> list[Approval]:
        """Approvals (of ``status`` as callers see it), oldest first."""
        found = [
            a for a in self._items.values() if status is None or a.effective_status(now) == status
        ]
        return sorted(found, key=lambda a: (a.created_us, a.id))

    def live_for(self, binding: str, now: int) -> Approval | None:
        """A live approval bound to the same request, to hand out again instead of
        asking a human twice for one action."""
        for approval in self._items.values():
            if approval.binding == binding and approval.effective_status(now) in LIVE_STATUSES:
                return approval
        return None

    def count(self, status: Status, now: int) -> int:
        return sum(1 for a in self._items.values() if a.effective_status(now) == status)

    def live_count(self, now: int) -> int:
        """Live approvals that hold a place under the cap. One whose binding key was lost
        in a restart can never be used (it still shows, and expires in time): counting
        it would let a keyless restart refuse new approvals for its whole lifetime."""
        return sum(
            1
            for a in self._items.values()
            if a.effective_status(now) in LIVE_STATUSES and not a.binding_key_lost
        )

    def live_bytes(self, now: int) -> int:
        """The ``footprint`` of the live approvals that ``live_count`` counts."""
        return sum(
            a.footprint
            for a in self._items.values()
            if a.effective_status(now) in LIVE_STATUSES and not a.binding_key_lost
        )

    def due(self, now: int) -> list[Approval]:
        """Live approvals past their expiry whose expiry is not yet recorded."""
        return [a for a in self._items.values() if a.due(now) and not a.settling]

    def next_expiry(self) -> int | None:
        live = [a.expires_us for a in self._items.values() if a.status in LIVE_STATUSES]
        return min(live, default=None)

    # -- transitions (applied once their record is durable) -------------------------------

    def add(self, approval: Approval) -> None:
        self._items[approval.id] = approval
        # Bounded within a few dozen approvals between the expiry loop's prunes, and
        # while replaying a trail of any length, at a cost shared by those additions.
        if len(self._items) >= self._next_trim:
            self._forget_oldest_finished()
            self._next_trim = len(self._items) + _TRIM_SLACK

    @staticmethod
    def decided(
        approval: Approval,
        status: Status,
        approver: str,
        reason: str | None,
        at: int,
        signature: str | None = None,
    ) -> None:
        approval.status = status
        approval.approver = approver
        approval.signature = signature
        approval.reason = reason
        approval.decided_us = at
        if status != "approved":
            approval.finished_us = at

    @staticmethod
    def expired(approval: Approval, at: int) -> None:
        approval.status = "expired"
        approval.finished_us = at

    @staticmethod
    def redeemed(approval: Approval, decision_id: str, at: int) -> None:
        approval.status = "redeemed"
        approval.redeemed_by = decision_id
        approval.finished_us = at

    def prune(self, now: int) -> int:
        """Forget approvals finished longer than the retention ago; return how many."""
        old = [
            a.id
            for a in self._items.values()
            if a.finished_us is not None and now - a.finished_us > self.retention_us
        ]
        for approval_id in old:
            del self._items[approval_id]
        return len(old) + self._forget_oldest_finished()

    def _forget_oldest_finished(self) -> int:
        """Forget the finished approvals, oldest first, beyond ``max_finished`` or
        ``max_finished_bytes``; return how many."""
        finished = [a for a in self._items.values() if a.finished_us is not None]
        held = sum(a.footprint for a in finished)
        if len(finished) <= self.max_finished and held <= self.max_finished_bytes:
            return 0
        finished.sort(key=lambda a: (a.finished_us or 0, a.id))
        count = len(finished)
        forgotten = 0
        for approval in finished:
            if count - forgotten <= self.max_finished and held <= self.max_finished_bytes:
                break
            del self._items[approval.id]
            held -= approval.footprint
            forgotten += 1
        return forgotten

    # -- rebuilding from the trail --------------------------------------------------------

    def replay(self, records: Iterable[dict[str, Any]]) -> int:
        """Apply ``approval`` records in trail order; return how many were applied.

        Records that do not fit (an event for an unknown approval, a malformed field)
        are skipped: they cannot create or widen an approval, only fail to narrow one,
        and a ``requested`` record is what every approval starts from.
        """
        applied = 0
        for record in records:
            try:
                if self._replay_one(record):
                    applied += 1
            except (KeyError, TypeError, ValueError):
                continue
        self._forget_oldest_finished()
        return applied

    def _replay_one(self, record: dict[str, Any]) -> bool:
        event, approval_id = record.get("event"), record.get("approval")
        if not isinstance(approval_id, str):
            return False
        at = parse_us(record["ts"])
        # ``ts`` is the wall clock's; createdAt and decidedAt are the approvals' clock's,
        # ahead of it after a step back, which a restart must not give back.
        read = [record[key] for key in ("createdAt", "decidedAt") if key in record]
        self.latest_replayed_us = max(self.latest_replayed_us, at, *map(parse_us, read))
        if event == "requested":
            # Records of versions before ``binding`` bound by the request hash.
            binding = record.get("binding", record["requestHash"])
            if not isinstance(record["request"], dict) or not isinstance(binding, str):
                return False
            self.add(
                Approval(
                    id=approval_id,
                    request_hash=record["requestHash"],
                    binding=binding,
                    action=record["action"],
                    request=record["request"],
                    rule=record.get("rule"),
                    risk=record.get("risk"),
                    policy_reason=record.get("policyReason", ""),
                    policy=record.get("policy", ""),
                    identity=record.get("identity", ""),
                    decision_id=record.get("decisionId", ""),
                    created_us=parse_us(record.get("createdAt", record["ts"])),
                    expires_us=parse_us(record["expiresAt"]),
                )
            )
            return True
        approval = self._items.get(approval_id)
        if approval is None:
            return False
        if event in ("approved", "denied") and approval.status == "pending":
            decided_at = parse_us(record.get("decidedAt", record["ts"]))
            self.decided(
                approval,
                event,
                record["approver"],
                record.get("reason"),
                decided_at,
                record.get("signature"),
            )
        elif event == "expired" and approval.status in LIVE_STATUSES:
            self.expired(approval, at)
        elif event == "redeemed" and approval.status == "approved":
            self.redeemed(approval, record.get("decisionId", ""), at)
        elif event in NOTICE_EVENTS:
            # Trails written before ``notified`` existed have only ``notifyFailed``: a
            # pending approval of theirs is notified again after a restart (at-least-once).
            approval.notice_recorded = True
        else:
            return False
        return True
