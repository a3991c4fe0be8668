"""Human approval of ``require_approval`` decisions (CONTRACT section 2.4).

The gate calls ``resolve`` between the pure evaluation and the record: it turns a
verdict into the step to take, without I/O --

- ``require_approval`` with no ``approval`` field: a new approval bound to the request
  (or the live one already bound to it, so one action never pages twice);
- the identical check re-sent with ``"approval": "<id>"`` while the current policy
  still says ``require_approval``: allowed once if a listed approver approved it and it
  has not expired; anything else is a deny that says why;

then ``settle`` writes the step's ``approval`` record (requested, redeemed) and the
check's decision record after it, in one batch: both durable, or neither. An
approver's ``decide`` is checked against the current policy's approvers; forged
attempts are answered 403 and recorded. Expiry is a background duty, but the clock
decides: a live approval past its expiry is treated as expired before its ``expired``
record is written. Nothing is kept outside the trail: ``rebuild``
replays its ``approval`` records at start, and ``renotify`` (once the first policy is
installed) sends the webhook notice again for every pending approval whose delivery the
trail does not record as ``notified`` or ``notifyFailed``: at-least-once, across restarts.

For ``dryRun`` checks no approval is created or spent. In ``mode: audit`` (where every
answer is ``allowed: true``) none is created either, but one the check names is used
as in enforce mode, so the trail records what enforce mode would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sidecar.approvals.book import ApprovalBook
from sidecar.approvals.model import (
    CLOCK,
    ID_PREFIX,
    KEYED_BINDING_PREFIX,
    LIVE_STATUSES,
    Approval,
    RequestBinding,
    Status,
    bind_request,
    bound_request,
    footprint,
    format_us,
    now_us,
)
from sidecar.approvals.signing import (
    ForgedDecision,
    parse_decision_body,
    signature_problem,
    verify_decision,
)
from sidecar.approvals.trail import RECORD_TYPE, approval_records
from sidecar.approvals.webhook import Notice, WebhookNotifier, build_payload
from sidecar.audit.log import Appended, AuditLog
from sidecar.engine import Verdict
from sidecar.errors import AuditUnavailable
from sidecar.ids import new_ulid
from sidecar.metrics import GateMetrics
from sidecar.policy.compiler import CompiledPolicy
from sidecar.visible import visible

logger = logging.getLogger("tollgate.approvals")

DEFAULT_GATE_URL = "http://127.0.0.1:9800"
# The expiry loop also wakes at least this often, so a wall-clock step cannot strand it.
_EXPIRY_POLL_SECONDS = 30.0
_RETRY_SECONDS = 1.0
_KEEP_BODY = 2048

StepKind = Literal["new", "reuse", "redeem", "preflight", "pending", "refuse"]


def approval_request(verdict: Verdict) -> dict[str, Any]:
    """The request an approval shows and binds: the normalised request without its
    ``approval``, and for a Kubernetes request sent as method and path, its query as
    sent (``k8sQuery``), and its path as sent and method (``k8sPath``, ``k8sMethod``)
    where the normalised record does not spell the path out whole.
    The normalised ``k8s`` record has no query (CONTRACT 2.2), yet the query carries an
    exec's command, a deletecollection's selectors and ``dryRun``: bound without it, an
    approval of ``pods/web/exec?command=date`` allowed any command (red-team review of
    2026-12-07)."""
    request = bound_request(verdict.request)
    k8s = verdict.parsed.k8s
    if k8s is not None and k8s.path is not None:
        path, _, query = k8s.path.partition("?")
        if query:
            request["k8sQuery"] = query
        # The k8s record leaves out whatever follows {name}/{subresource}: what a proxy
        # request does on its target (a kubelet's /run/... runs a command), and for an
        # aggregated API server whatever it routes on (KubeVirt's .../portforward/22/tcp).
        # An approval of grafana's /api/health was redeemed for its password reset (rt25
        # approvals review). So a path the record does not spell out whole is bound as
        # sent, with the method (the root /api/v1/proxy/... form is verb proxy for every
        # method); one it does is the record, and may be redeemed in attribute form.
        record = verdict.request.get("k8s") or {}
        if "resource" in record and path != _resource_path(record):
            request["k8sPath"] = path
            request["k8sMethod"] = (k8s.method or "").upper()
    return request


def _resource_path(record: dict[str, Any]) -> str:
    """The path kube-apiserver serves a resource request's record at, spelt plainly."""
    group, version = record.get("group", ""), record.get("version", "")
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if record.get("namespace"):
        path += f"/namespaces/{record['namespace']}"
    resource, _, subresource = str(record.get("resource", "")).partition("/")
    path += f"/{resource}"
    if record.get("name"):
        path += f"/{record['name']}"
    return path + (f"/{subresource}" if subresource else "")


class ApprovalNotFound(Exception):
    """No approval with this id (never existed, or finished and forgotten)."""


class NoApprovers(Exception):
    """No valid policy is loaded: a signed decision cannot be checked against anyone."""


class NotPending(Exception):
    """A validly signed decision for an approval that can no longer be decided."""

    def __init__(self, approval: Approval, message: str) -> None:
        super().__init__(message)
        self.approval = approval


@dataclass(frozen=True)
class ApprovalStep:
    """What a check does about approvals: the verdict to answer, the approval it names,
    and whether an ``approval`` record must be written first."""

    kind: StepKind
    verdict: Verdict
    approval: Approval | None = None
    policy: CompiledPolicy | None = None  # whose approvals settings apply (new approvals)


# A write stalled this long already answers 503 (see AuditLog's stall limit).
OPENING_FOR_AT_MOST_US = 30_000_000


class ApprovalService:
    def __init__(self, audit: AuditLog, *, identity: str, metrics: GateMetrics) -> None:
        self.audit = audit
        self.identity = identity
        self.metrics = metrics
        self.book = ApprovalBook()
        # Where approvers reach this gate, for the command line in notifications; set
        # from the listening socket by the HTTP app.
        self.gate_url: str | None = None
        # Where the gate was told to listen, for notices sent before any check arrived
        # (those sent again at start); set by ``tollgate serve``.
        self.configured_url: str | None = None
        # What approvers see (the API, the CLI, the webhook) is redacted here: the
        # request, the policy's reason (which may quote it) and approvers' reasons. With
        # the trail's key, so the request shown is the one the trail records, and its
        # hash (the one approvers sign) holds across a restart.
        self._changed: dict[str, asyncio.Event] = {}
        # Set when the server begins to shut down: every long-poll answers at once.
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self.notifier = WebhookNotifier(self._notify_failed, on_delivered=self._notified)
        # Writes the records the gate holds while the trail cannot take them (its
        # startup record first), set by the gate: an approval record (an expiry, a
        # notice) comes after them, so a run's first record is its startup record.
        self.records_before: Callable[[], Awaitable[None]] | None = None
        # Pending approvals whose notice this run must send again (``renotify``): found
        # by ``rebuild``, sent once the policy that says where to is installed.
        self._unnotified: list[str] = []
        # Approvals opened by a check whose records are not durable yet, by binding:
        # the book holds only durable ones, and a second identical check arriving
        # meanwhile must find this one (not ask again) and count it against the cap.
        self._opening: dict[str, Approval] = {}

    # -- start-up and background ------------------------------------------------------

    def rebuild(self) -> int:
        """Replay the trail's approval records (before anything else is written)."""
        applied = self.book.replay(approval_records(self.audit.directory))
        if not self.audit.redaction_key_survives_restart:
            # Keyed bindings were made with an earlier run's random key: unmatchable.
            for approval in self.book.listed(None, now_us()):
                if approval.binding.startswith(KEYED_BINDING_PREFIX):
                    approval.binding_key_lost = True
        # A wall clock set back while the gate was down must not revive what expired.
        CLOCK.not_before(self.book.latest_replayed_us)
        self.book.prune(now_us())
        self._refresh_gauge()
        self._unnotified = [
            a.id for a in self.book.listed("pending", now_us()) if not a.notice_recorded
        ]
        return applied

    def renotify(self, policy: CompiledPolicy) -> int:
        """Queue the notices a previous run did not get delivered (or recorded as given
        up), under ``policy``'s webhook, for approvals still pending now; once per run,
        so call it when the first policy is installed (after ``rebuild``). Returns how
        many were queued."""
        ids, self._unnotified = self._unnotified, []
        queued = 0
        now = now_us()
        for approval_id in ids:
            approval = self.book.get(approval_id)
            # Decided or expired since (the clock, not the expiry record, decides), or
            # unusable since a restart without its binding key: nobody is asked for it.
            if (
                approval is None
                or approval.effective_status(now) != "pending"
                or approval.binding_key_lost
            ):
                continue
            queued += self._notify(approval, policy, redelivery=True)
        return queued

    def duties(self) -> list[Callable[[], Awaitable[None]]]:
        return [self.expire_loop, self.notifier.run]

    async def expire_loop(self) -> None:
        """Record the expiry of every live approval when its time comes."""
        while True:
            now = now_us()
            failed = False
            for approval in self.book.due(now):
                try:
                    await self._transition(
                        approval,
                        {"event": "expired", "previous": approval.status},
                        functools.partial(self.book.expired, at=now),
                    )
                except AuditUnavailable:
                    # Still expired for every caller (the clock decides); recorded on a
                    # retry. Counted like every record the trail could not take (the
                    # audit log said why, once per outage). One failure is enough: the
                    # rest would fail the same way, a write and a sync each, so the pass
                    # stops here and the retry starts again from the first still due.
                    self.metrics.audit_failures.inc()
                    failed = True
                    break
                except Exception:  # a bug must not stop later expiries from being recorded
                    logger.exception("recording the expiry of %s failed", approval.id)
                    failed = True
            self.book.prune(now)
            self._refresh_gauge()
            next_expiry = self.book.next_expiry()
            timeout = _EXPIRY_POLL_SECONDS
            if next_expiry is not None:
                timeout = min(timeout, max(0.0, (next_expiry - now_us()) / 1e6))
            if failed:
                timeout = max(timeout, _RETRY_SECONDS)
            wake = self._wake_event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    # -- the check flow ---------------------------------------------------------------

    def resolve(
        self, verdict: Verdict, policy: CompiledPolicy, *, dry_run: bool, open_new: bool = True
    ) -> ApprovalStep:
        """Decide what ``verdict`` means for approvals (synchronous: no await may come
        between looking at an approval and claiming it). ``open_new`` false (audit
        mode): a request without an approval is answered as a dry run would be, and
        nobody is asked."""
        given = verdict.parsed.approval
        now = now_us()
        bound = bind_request(
            verdict.action,
            approval_request(verdict),
            verdict.reason,
            self.audit.redact,
            self.audit.keyed_digest,
        )
        if given is None:
            self._forget_stale_openings(now)
            live = self.book.live_for(bound.binding, now) or self._opening.get(bound.binding)
            if live is not None:
                return ApprovalStep("reuse", self._still_waiting(verdict, live, now), live)
            # Before the dry run's answer, so a preflight says what the check would get.
            full = self._full(now, footprint(bound.shown, verdict.reason))
            if full is not None:
                return ApprovalStep("refuse", _deny(verdict, f"{verdict.reason}; {full}"))
            if dry_run or not open_new:
                return ApprovalStep("preflight", verdict)
            opened = self._new_approval(verdict, policy, bound)
            self._opening[bound.binding] = opened  # settle() moves it to the book, or drops it
            return ApprovalStep("new", verdict, opened, policy)
        approval = self.book.get(given)
        problem = self._redeem_problem(approval, given, bound.binding, now)
        if problem is not None or approval is None:
            return ApprovalStep("refuse", _deny(verdict, problem or "no approval"), approval)
        if approval.status == "pending":
            return ApprovalStep("pending", self._still_waiting(verdict, approval, now), approval)
        unlisted = self._approver_problem(approval, policy)
        if unlisted is not None:
            return ApprovalStep("refuse", _deny(verdict, unlisted), approval)
        by = f"approved by {approval.approver}" + (
            f" ({approval.reason})" if approval.reason else ""
        )
        if dry_run:
            reason = f"{by}; approval {approval.id} would allow this once"
            return ApprovalStep("preflight", _allow(verdict, reason), approval)
        approval.settling = True  # claimed: a concurrent identical check now loses
        return ApprovalStep(
            "redeem", _allow(verdict, f"{by}; approval {approval.id} used"), approval
        )

    def _full(self, now: int, incoming: int) -> str | None:
        """Why no new approval (holding about ``incoming`` bytes) may be opened now: the
        live ones fill the book's cap on their number or their bytes. None if it may."""
        book = self.book
        if book.live_count(now) + len(self._opening) >= book.max_live:
            return f"{book.max_live} approvals are already waiting, so no new one is opened"
        held = book.live_bytes(now) + sum(a.footprint for a in self._opening.values())
        if held + incoming > book.max_live_bytes:
            return (
                f"the approvals already waiting hold {held // 1024} KiB of requests, and "
                f"this one would take them over {book.max_live_bytes // 1024} KiB, so no "
                "new one is opened"
            )
        return None

    @staticmethod
    def _approver_problem(approval: Approval, policy: CompiledPolicy) -> str | None:
        """Why an approved approval may not be used under ``policy``: its approver was
        taken out of the policy, or their key replaced (a key found leaked), since they
        signed. Checked on use, not only when the decision arrived; None when usable."""
        assert approval.approver is not None
        problem = signature_problem(
            approval.id,
            approval.approver,
            "approve",
            approval.request_hash,
            approval.signature,
            policy.approvals,
        )
        if problem is None:
            return None
        return (
            f"approval {approval.id} was approved by {approval.approver}, who is no longer "
            "an approver in the policy with the key that signed it"
        )

    def abandon(self, step: ApprovalStep) -> None:
        """Undo what ``resolve`` claimed for a check refused before ``settle`` could
        record it (a held record could not be written): a ``new`` approval is forgotten
        (its retry must open one), an approved one claimed by a ``redeem`` is released
        (it stays approved for the re-sent check, as after any failed write)."""
        approval = step.approval
        if approval is None:
            return
        if step.kind == "new":
            self._opening.pop(approval.binding, None)
        elif step.kind == "redeem":
            approval.settling = False

    def _forget_stale_openings(self, now: int) -> None:
        """Drop approvals a check has been opening for longer than any write takes: a
        check that never reached ``settle`` (a bug answered 500) must not leave its
        request waiting forever on an approval that will never exist, nor hold a place
        under the cap."""
        stale = [b for b, a in self._opening.items() if now - a.created_us > OPENING_FOR_AT_MOST_US]
        for binding in stale:
            del self._opening[binding]

    @staticmethod
    def _redeem_problem(
        approval: Approval | None, given: str, binding: str, now: int
    ) -> str | None:
        if approval is None:
            return f"approval {given!r} is unknown to this gate"
        if approval.binding != binding:
            if approval.binding_key_lost:
                return (
                    f"approval {approval.id} cannot be used: its request holds secrets, and "
                    "this gate restarted since without a signing key, so it cannot tell the "
                    "identical request; ask for a new approval (run the gate with "
                    "--signing-key to keep such approvals across restarts)"
                )
            return f"approval {approval.id} was given for a different request"
        status = approval.effective_status(now)
        if status == "denied":
            why = f": {approval.reason}" if approval.reason else ""
            return f"approval {approval.id} was denied by {approval.approver}{why}"
        if status == "expired":
            return f"approval {approval.id} expired at {format_us(approval.expires_us)}"
        if status == "redeemed":
            return f"approval {approval.id} was already used"
        # ``settling`` on a pending approval is an approver's decision being written:
        # until it is durable nobody has decided, so the check is answered as pending
        # (require_approval again). On an approved one it is a concurrent identical
        # check using it: the claim is what lets exactly one of them be allowed.
        if approval.settling and status == "approved":
            return f"approval {approval.id} is being used by another request"
        return None

    @staticmethod
    def _still_waiting(verdict: Verdict, approval: Approval, now: int) -> Verdict:
        status = approval.effective_status(now)
        hint = " (re-send this check with its id)" if status == "approved" else ""
        return dataclasses.replace(
            verdict, reason=f"{verdict.reason}; approval {approval.id} is {status}{hint}"
        )

    def _new_approval(
        self, verdict: Verdict, policy: CompiledPolicy, bound: RequestBinding
    ) -> Approval:
        now = now_us()
        return Approval(
            id=ID_PREFIX + new_ulid(),
            request_hash=bound.request_hash,
            binding=bound.binding,
            action=verdict.action,
            request=bound.shown,
            rule=verdict.rule,
            risk=verdict.risk,
            # The default reason quotes the request ("... of rm --token=ghp_..."), so
            # it is redacted with it, as the trail redacts the two in the approval's
            # record: a secret the request's analysis shows (a brace list's words) is
            # replaced in the reason too.
            policy_reason=self.audit.redact(
                {"request": approval_request(verdict), "policyReason": verdict.reason}
            )["policyReason"],
            policy=verdict.policy_hash,
            identity=self.identity,
            decision_id="",
            created_us=now,
            expires_us=now + round(policy.approval_timeout * 1_000_000),
        )

    async def settle(
        self, step: ApprovalStep, decision_id: str, decision: dict[str, Any]
    ) -> Appended:
        """Record the check's ``decision`` with the step's approval record just before it.

        Both go in one batch, durable together or not at all, and the step is applied
        only once they are: a failed write (AuditUnavailable, raised) neither opens the
        new approval nor uses up the approved one, which stays approved for a retry.
        Returns where the decision record landed.
        """
        approval = step.approval
        decision_record = ("decision", decision)
        if approval is None or step.kind not in ("new", "redeem"):
            return await self.audit.append(*decision_record)
        if step.kind == "redeem":
            return await self._transition(
                approval,
                {"event": "redeemed", "decisionId": decision_id, "approver": approval.approver},
                lambda a: self.book.redeemed(a, decision_id, now_us()),
                claimed=True,
                then=decision_record,
            )
        approval.decision_id = decision_id
        # The trail is given the raw request and reason (from the step's verdict, which
        # for a new approval is the policy's verdict unchanged) and redacts them itself:
        # with the key the approval's copies were redacted with, so the record holds
        # exactly the request shown, the one ``requestHash`` covers. Redacting the
        # shown copy again would not do: redaction is not idempotent ("Bearer [tag]"
        # reads as a token). ``binding`` lets a restart match the raw request again.
        requested = {
            "event": "requested",
            "approval": approval.id,
            "requestHash": approval.request_hash,
            "binding": approval.binding,
            "action": approval.action,
            "request": approval_request(step.verdict),
            "rule": approval.rule,
            "risk": approval.risk,
            "policyReason": step.verdict.reason,
            "policy": approval.policy,
            "decisionId": decision_id,
            "createdAt": format_us(approval.created_us),
            "expiresAt": format_us(approval.expires_us),
        }
        try:
            _, appended = await self._record(requested, then=decision_record)
        finally:
            self._opening.pop(approval.binding, None)
        self.book.add(approval)
        self._changed_now(approval)
        self._wake_event().set()
        if step.policy is not None:
            self._notify(approval, step.policy)
        return appended

    # -- approvers --------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval:
        approval = self.book.get(approval_id)
        if approval is None:
            raise ApprovalNotFound(approval_id)
        return approval

    def listed(self, status: Status | None) -> list[Approval]:
        return self.book.listed(status, now_us())

    async def wait_for_change(self, approval: Approval, seconds: float) -> None:
        """Return when ``approval`` changes (or expires), after ``seconds``, or once the
        server shuts down (``stop_waiting``)."""
        now = now_us()
        if self._stopping or seconds <= 0 or approval.effective_status(now) not in LIVE_STATUSES:
            return
        until_expiry = max(0.0, (approval.expires_us - now) / 1e6)
        event = self._changed.setdefault(approval.id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            # Expiry changes what callers see even before it is recorded.
            await asyncio.wait_for(event.wait(), min(seconds, until_expiry + 0.001))

    def stop_waiting(self) -> None:
        """End every long-poll now, and any that arrives later at once, each answered
        with the approval as it is (the client polls again, as after a watch a server
        ended): a gate shutting down would otherwise hold them for its whole
        graceful-shutdown time and then have them cancelled, unanswered."""
        self._stopping = True
        changed, self._changed = self._changed, {}
        for event in changed.values():
            event.set()

    async def decide(
        self, approval_id: str, body: bytes, policy: CompiledPolicy | None
    ) -> Approval:
        """Apply an approver's signed decision.

        Raises ApprovalNotFound or ForgedDecision (both recorded as ``forged``),
        NotPending (recorded as ``refused``), NoApprovers (without ``policy``, for a
        body that is a signed decision: it cannot be told forged) or AuditUnavailable.
        """
        approval = self.book.get(approval_id)
        if approval is None:
            await self.record_forged(approval_id, body, "no such approval")
            raise ApprovalNotFound(approval_id)
        try:
            decision = parse_decision_body(body)
            if policy is None:
                raise NoApprovers
            verify_decision(decision, approval.id, approval.request_hash, policy.approvals)
        except ForgedDecision as exc:
            await self.record_forged(approval_id, body, exc.problem, exc.claimed)
            raise
        now = now_us()
        status = approval.effective_status(now)
        problem = None
        if status != "pending":
            problem = f"approval {approval.id} is {status}, not pending"
        elif approval.settling:
            problem = f"approval {approval.id} is being decided by another request"
        elif approval.binding_key_lost and decision.decision == "approve":
            # Approved, it would still be refused to every check (_redeem_problem): the
            # approver is told now, not the agent later. A deny still closes it.
            problem = (
                f"approval {approval.id} cannot be used by any check: its request holds "
                "secrets, and this gate restarted since without a signing key, so it "
                "cannot tell the identical request; deny it, and let the agent ask again"
            )
        if problem is not None:
            await self._record_quietly(
                {
                    "event": "refused",
                    "approval": approval.id,
                    "approver": decision.approver,
                    "decision": decision.decision,
                    "problem": problem,
                }
            )
            raise NotPending(approval, problem)
        outcome: Status = "approved" if decision.decision == "approve" else "denied"
        # The approver's free text is shown to other approvers and quoted to the agent:
        # redacted like the rest (the trail gets it raw and redacts it itself).
        shown_reason = (
            self.audit.redact_text(decision.reason) if decision.reason is not None else None
        )
        await self._transition(
            approval,
            {
                "event": outcome,
                "decidedAt": format_us(now),
                # With requestHash and signature, the record can be verified on its own.
                "decision": decision.decision,
                "approver": decision.approver,
                "reason": decision.reason,
                "requestHash": approval.request_hash,
                "signature": decision.signature,
            },
            lambda a: self.book.decided(
                a, outcome, decision.approver, shown_reason, now, decision.signature
            ),
        )
        return approval

    async def record_forged(
        self,
        approval_id: str,
        body: bytes,
        problem: str,
        claimed: dict[str, Any] | None = None,
    ) -> None:
        """Record a refused approver attempt (failures to record are counted only: the
        attempt is refused either way)."""
        self.metrics.approval_decisions_refused.inc()
        await self._record_quietly(
            {
                "event": "forged",
                "approval": approval_id[:128],
                "problem": problem,
                **(claimed or {}),
                "bytes": len(body),
                "body": body[:_KEEP_BODY].decode("utf-8", "replace"),
            }
        )

    # -- recording and notifying ------------------------------------------------------

    async def _record(
        self, body: dict[str, Any], *, then: tuple[str, dict[str, Any]] | None = None
    ) -> list[Appended]:
        """Write an approval record, and ``then`` right after it in the same batch."""
        record = (RECORD_TYPE, {**body, "identity": self.identity})
        if self.records_before is not None:
            await self.records_before()
        if then is None:
            return [await self.audit.append(*record)]
        return await self.audit.append_all([record, then])

    async def _record_quietly(self, body: dict[str, Any]) -> bool:
        """Write an approval record; False (and counted) if the trail cannot take it."""
        try:
            await self._record(body)
        except AuditUnavailable:
            self.metrics.audit_failures.inc()
            return False
        return True

    async def _transition(
        self,
        approval: Approval,
        event: dict[str, Any],
        apply: Callable[[Approval], None],
        *,
        claimed: bool = False,
        then: tuple[str, dict[str, Any]] | None = None,
    ) -> Appended:
        """Record ``event`` for ``approval`` (with ``then`` after it), then ``apply`` it;
        nothing else may move the approval meanwhile. ``claimed``: the caller already
        set ``settling``. Returns where the last record landed."""
        if not claimed:
            approval.settling = True
        try:
            appended = await self._record({**event, "approval": approval.id}, then=then)
        finally:
            approval.settling = False
        apply(approval)
        self._changed_now(approval)
        return appended[-1]

    def _changed_now(self, approval: Approval) -> None:
        event = self._changed.pop(approval.id, None)
        if event is not None:
            event.set()
        self._refresh_gauge()

    def _refresh_gauge(self) -> None:
        self.metrics.approvals_pending.set(self.book.count("pending", now_us()))

    def _notify(
        self, approval: Approval, policy: CompiledPolicy, *, redelivery: bool = False
    ) -> bool:
        """Queue ``approval``'s notice if ``policy`` has a webhook; True if queued."""
        approvals = policy.approvals
        if approvals is None or approvals.notify is None:
            return False
        gate_url = self.gate_url or self.configured_url or DEFAULT_GATE_URL
        approvers = [a.name for a in approvals.approvers]
        payload = build_payload(approval, gate_url, approvers, redelivery=redelivery)
        self.notifier.submit(Notice(approval.id, approvals.notify.webhook, payload))
        return True

    async def _notified(self, notice: Notice, attempts: int) -> None:
        self.metrics.approval_notifications.labels("notified").inc()
        # Not written (the trail down, the gate stopping first): the next start sends
        # the notice again, which receivers are told to expect.
        await self._notice_outcome(
            {"event": "notified", "approval": notice.approval_id, "attempts": attempts}
        )

    async def _notify_failed(self, notice: Notice, attempts: int, problem: str) -> None:
        self.metrics.approval_notifications.labels("failed").inc()
        # Approvers were not told, so the approval will expire and the agent be denied:
        # say so where an operator looks. The URL's path holds the webhook's secret (a
        # Slack URL's does): only its scheme and host are named.
        where = urlsplit(notice.url)
        logger.warning(
            "approval %s: notifying the webhook at %s://%s gave up after %d attempt(s): %s; "
            "the approval waits unannounced (GET /v1/approvals?status=pending)",
            notice.approval_id,
            where.scheme,
            where.hostname,
            attempts,
            visible(problem[:1024]),
        )
        await self._notice_outcome(
            {
                "event": "notifyFailed",
                "approval": notice.approval_id,
                "attempts": attempts,
                "problem": problem[:1024],
            }
        )

    async def _notice_outcome(self, body: dict[str, Any]) -> None:
        if await self._record_quietly(body):
            approval = self.book.get(body["approval"])
            if approval is not None:
                approval.notice_recorded = True


def _deny(verdict: Verdict, reason: str) -> Verdict:
    return dataclasses.replace(verdict, decision="deny", allowed=False, reason=reason)


def _allow(verdict: Verdict, reason: str) -> Verdict:
    return dataclasses.replace(verdict, decision="allow", allowed=True, reason=reason)
