"""One approval and what binds it to a request (CONTRACT section 2.4).

An approval is created by a ``require_approval`` decision for the normalised request
minus its ``approval`` field (the *bound* request). ``context`` is included: the
approver saw it as the agent's justification, so redeeming under another one is not
"the identical check". Two values tie an approval to that request:

- ``requestHash``, published (API, webhook, trail) and signed by approvers: SHA-256
  over the canonical JSON of ``{"action", "request"}`` of the request *as shown*, with
  secrets redacted. Were it the hash of the raw request, a weak secret in it could be
  recovered by guessing and re-hashing, undoing the redaction shown beside it.
- ``binding``, what a re-sent check must match: the request hash itself when nothing
  was redacted, else ``hmac-sha256:`` and the HMAC, under the trail's redaction key, of
  the canonical raw ``{"action", "request"}``. So only the exact raw request redeems,
  never one that merely reads like the shown form (the redaction marker as text).

Times are integer microseconds since the epoch, so they round-trip exactly through the
RFC 3339 strings in the trail.

"Now" for approvals is the wall clock (an expiry must survive a restart), but one that
never runs slower than real time: a wall clock stepped back (NTP, a VM restored, an
operator's ``date -s``) would otherwise stretch every live approval's time by the size
of the step. ``ApprovalClock`` holds the wall time to at least the last reading plus the
monotonic time elapsed since, so a step back changes nothing and a step forward expires
approvals early (a deny, never an allow).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sidecar.audit.records import format_ts
from sidecar.audit.redact import Redactor
from sidecar.canonical import canonical_bytes

Status = Literal["pending", "approved", "denied", "expired", "redeemed"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "denied", "expired", "redeemed")
# Live approvals can still change by a human's decision or a redemption; the rest are final.
LIVE_STATUSES = frozenset({"pending", "approved"})
ID_PREFIX = "apr_"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ApprovalClock:
    """Wall-clock microseconds that never go back, nor advance slower than real time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall_us = time.time_ns() // 1000
        self._mono_ns = time.monotonic_ns()

    def now_us(self) -> int:
        with self._lock:
            wall = time.time_ns() // 1000
            mono = time.monotonic_ns()
            floor = self._wall_us + (mono - self._mono_ns) // 1000
            if wall >= floor:
                floor = wall  # the wall clock is sound (or stepped forward): follow it
            self._wall_us, self._mono_ns = floor, mono
            return floor

    def not_before(self, micros: int) -> None:
        """Never answer earlier than ``micros`` (a time the trail says has been reached)."""
        with self._lock:
            if micros > self._wall_us:
                self._wall_us, self._mono_ns = micros, time.monotonic_ns()


CLOCK = ApprovalClock()


def now_us() -> int:
    return CLOCK.now_us()


def format_us(micros: int) -> str:
    """RFC 3339 UTC with microseconds, the form of every timestamp in the trail."""
    return format_ts(micros * 1000)


def parse_us(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp. Raises ValueError."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return (moment - _EPOCH) // _MICROSECOND


def bound_request(request: dict[str, Any]) -> dict[str, Any]:
    """The part of a normalised request an approval is bound to: all but ``approval``."""
    return {key: value for key, value in request.items() if key != "approval"}


def request_hash(action: str, request: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical ``{"action", "request"}`` (``approval`` dropped).

    Given the request as shown (redacted), this is the published ``requestHash``."""
    body = canonical_bytes({"action": action, "request": bound_request(request)})
    return "sha256:" + hashlib.sha256(body).hexdigest()


KEYED_BINDING_PREFIX = "hmac-sha256:"


@dataclass(frozen=True)
class RequestBinding:
    """A request as approvers see it, the hash they sign, and what binds it."""

    shown: dict[str, Any]  # the bound request, secrets redacted
    request_hash: str  # sha256 of ``shown``: published and signed
    binding: str  # matched against a re-sent check; never published outside the trail


def bind_request(
    action: str,
    request: dict[str, Any],
    reason: str,
    redact: Callable[[dict[str, Any]], dict[str, Any]],
    keyed_digest: Callable[[bytes], str],
) -> RequestBinding:
    """The ``RequestBinding`` of a normalised request and the policy's ``reason`` for it,
    given the trail's ``redact`` and ``keyed_digest`` (HMAC-SHA256 under its redaction
    key)."""
    raw = bound_request(request)
    raw_body = canonical_bytes({"action": action, "request": raw})
    # Redacted as the trail redacts the approval's record, request and reason together:
    # a secret only the reason's text shows ("curl --oauth2-bearer TOKEN", quoted there
    # as one line) is replaced in the request too. Redacted alone, the request kept it,
    # in clear in the API and the webhook, while the trail hid it (red-team review of
    # 2026-12-07). The trail's fast path first (a few microseconds): no screen hit in
    # either, nothing to redact.
    together = {"request": raw, "policyReason": reason}
    screened = Redactor.may_hold_secret(canonical_bytes({"action": action, **together}))
    shown = redact(together)["request"] if screened else raw
    if shown is raw or shown == raw:
        # Nothing secret: the plain hash binds, and needs no key to survive a restart.
        published = "sha256:" + hashlib.sha256(raw_body).hexdigest()
        return RequestBinding(raw, published, published)
    published = request_hash(action, shown)
    return RequestBinding(shown, published, KEYED_BINDING_PREFIX + keyed_digest(raw_body))


def footprint(request: dict[str, Any], reason: str) -> int:
    """About the bytes an approval of ``request`` with ``reason`` holds in memory."""
    return len(canonical_bytes(request)) + len(reason.encode("utf-8", "surrogatepass"))


@dataclass
class Approval:
    """One approval's state. Mutated only by ``ApprovalBook`` on the event loop."""

    id: str
    request_hash: str  # published and signed: the hash of ``request`` as shown
    binding: str  # what a re-sent check must match (see the module docstring)
    action: str
    request: dict[str, Any]  # as shown to approvers: bound part only, secrets redacted
    rule: str | None
    risk: str | None
    policy_reason: str
    policy: str
    identity: str
    decision_id: str  # the check that asked for it
    created_us: int
    expires_us: int
    status: Status = "pending"
    approver: str | None = None
    # The approver's signature over the decision: checked again, against the policy
    # active then, when the approved check is re-sent (see ApprovalService.resolve).
    signature: str | None = None
    reason: str | None = None  # the approver's reason, or why it expired
    decided_us: int | None = None
    redeemed_by: str | None = None  # decisionId of the check that redeemed it
    finished_us: int | None = None
    # True while a transition is being written to the trail: no other may start.
    settling: bool = False
    # True for a keyed binding made under a redaction key this process does not have
    # (an earlier run without a signing key): no check can be matched against it.
    binding_key_lost: bool = False
    # True once the trail records the webhook's outcome for it (``notified`` or
    # ``notifyFailed``): a restart does not send its notice again.
    notice_recorded: bool = False
    # About the bytes it holds (its request and the policy's reason, which may quote
    # it), for the book's memory bounds.
    footprint: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.footprint = footprint(self.request, self.policy_reason)

    def due(self, now: int) -> bool:
        return self.status in LIVE_STATUSES and now >= self.expires_us

    def effective_status(self, now: int) -> Status:
        """The status a caller sees: a live approval past its expiry is expired even
        before the expiry has been recorded (the clock, not the timer, decides)."""
        return "expired" if self.due(now) else self.status

    def ref(self, now: int) -> dict[str, Any]:
        """The short form carried by a /check answer."""
        return {
            "id": self.id,
            "status": self.effective_status(now),
            "expiresAt": format_us(self.expires_us),
        }

    def view(self, now: int) -> dict[str, Any]:
        """The full form of ``GET /v1/approvals/{id}``."""
        status = self.effective_status(now)
        reason = self.reason
        if status == "expired" and reason is None:
            reason = f"not {'redeemed' if self.status == 'approved' else 'decided'} in time"
        return {
            "id": self.id,
            "status": status,
            "action": self.action,
            "request": self.request,
            "requestHash": self.request_hash,
            "rule": self.rule,
            "risk": self.risk,
            "policyReason": self.policy_reason,
            "policy": self.policy,
            "identity": self.identity,
            "decisionId": self.decision_id,
            "createdAt": format_us(self.created_us),
            "expiresAt": format_us(self.expires_us),
            "approver": self.approver,
            "decidedAt": format_us(self.decided_us) if self.decided_us is not None else None,
            "reason": reason,
            "redeemedBy": self.redeemed_by,
        }
