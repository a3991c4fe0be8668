"""The gate service: one /check from bytes to a durable answer.

request bytes -> parse -> normalise -> evaluate (pure) -> record (durable) -> answer.
This module owns the state the pure engine must not: the active policy, rate-limit
buckets, approvals (``sidecar.approvals``, whose step sits between evaluating and
recording) and the audit log. The HTTP app and the benchmarks are thin shells over
``Gate.check``; nothing here knows about HTTP beyond the status code it suggests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sidecar import __version__
from sidecar.approvals.model import now_us
from sidecar.approvals.service import ApprovalService, ApprovalStep
from sidecar.audit.log import AuditLog
from sidecar.audit.redact import shell_assignments
from sidecar.browsers import FORBIDDEN_CODE
from sidecar.engine import Verdict, decide
from sidecar.errors import AuditUnavailable, PolicyError, RequestError
from sidecar.ids import new_ulid
from sidecar.keys import public_key_base64
from sidecar.metrics import GateMetrics
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.request import normalise_request
from sidecar.policy.compiler import CompiledPolicy, CompiledRule
from sidecar.policy.source import PolicySource
from sidecar.ratelimit import RateLimiter, over_budget, tokens_needed
from sidecar.request import MAX_BODY_BYTES, parse_body

_logger = logging.getLogger("tollgate.policy")

# How much of a bad request body is kept in its invalidRequest record.
INVALID_BODY_KEEP = 2048
# Read past the cut so that a secret straddling it is still recognised and redacted,
# before the cut, as a whole: cut first, its first part (ghp_ and 23 of 40 characters)
# was too short for any pattern and stayed in clear.
INVALID_BODY_READ = INVALID_BODY_KEEP + 8192
# /v1/status, /ready and every 503 answer quote the last policy error: all the problems
# of a 10,000-rule policy would make each of them megabytes. The first ones say what is
# wrong; the policyRejected record keeps 50, `tollgate policy validate` lists them all.
LAST_ERROR_PROBLEMS = 10
LAST_ERROR_CHARS = 2048
# Rejections held while the trail cannot be written (written before the next decision
# once it can); beyond this many, further ones are only counted as audit failures.
MAX_HELD_REJECTIONS = 100


@dataclass
class Answer:
    status: int
    payload: dict[str, Any]


def error_payload(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The JSON error shape of every non-200 answer; ``allowed`` is always false."""
    return {"allowed": False, "error": {"code": code, "message": message, "details": details or []}}


def brief_list(items: tuple[str, ...] | list[str]) -> list[str]:
    """The first ``LAST_ERROR_PROBLEMS`` items, and a last one saying how many more."""
    shown = list(items[:LAST_ERROR_PROBLEMS])
    if len(items) > len(shown):
        shown.append(f"... and {len(items) - len(shown)} more")
    return shown


def _commands_of(command_line: str) -> list[list[str]]:
    """The argv of each command ``command_line`` runs, as the gate's shell analysis
    splits it; none when it cannot be read. A redaction view for a refused body, whose
    command line is otherwise never analysed: a password holding an escaped quote
    (``sshpass -p a\\"b``) is one word to the shell and stops the text patterns."""
    try:
        analysis = analyse_command(command_line=command_line, cwd="/")
    except (RequestError, RecursionError):
        return []
    return [list(command.argv) for command in analysis.commands]


def brief_warnings(policy: CompiledPolicy) -> list[str]:
    """The policy's warnings for /v1/status and the log, those about the whole policy
    (``defaultAction: allow``, ``mode: audit``) first: they matter most."""
    return brief_list(sorted(policy.warnings, key=lambda warning: warning.startswith("rules[")))


def brief_policy_error(error: PolicyError) -> str:
    """The error as /v1/status and /ready show it: its first problems, and how many more."""
    shown = error.problems[:LAST_ERROR_PROBLEMS]
    text = f"{error.source}: " + "; ".join(shown)
    if len(text) > LAST_ERROR_CHARS:
        text = text[:LAST_ERROR_CHARS] + " ..."
    if len(error.problems) > len(shown):
        text += (
            f"; ... and {len(error.problems) - len(shown)} more "
            "(tollgate policy validate lists them all)"
        )
    return text


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class PolicyState:
    active: CompiledPolicy | None = None
    loaded_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    # The hash of the file the last error is about; None when it could not be read.
    last_error_hash: str | None = None

    def clear_error(self) -> None:
        self.last_error = self.last_error_at = self.last_error_hash = None


class Gate:
    def __init__(self, *, audit: AuditLog, source: PolicySource, identity: str) -> None:
        self.audit = audit
        self.source = source
        # The sha256: hash of the policy bytes last read (installed or refused) and the hex
        # SHA-256 of the .sig read with them (None without a public key), which the
        # watcher compares with the fingerprint it took before the read.
        self.last_read_hash: str | None = None
        self.last_read_signature: str | None = None
        self.identity = identity
        self.metrics = GateMetrics()
        audit.on_sync(self.metrics.audit_sync_seconds.observe)
        self.metrics.track_checkpoint_file(
            lambda: audit.checkpoint_file_failures,
            lambda: audit.checkpoint_file_error is not None,
        )
        self.limiter = RateLimiter()
        self.policy = PolicyState()
        self.started = time.monotonic()
        # Pending approvals live only in the trail: rebuilt from it before anything is added.
        self.approvals = ApprovalService(audit, identity=identity, metrics=self.metrics)
        self.approvals.rebuild()
        # Long-running duties (policy watching, approval expiry ...) started with the server.
        self.background: list[Callable[[], Awaitable[None]]] = list(self.approvals.duties())
        self._tasks: list[asyncio.Task[None]] = []
        # Records that say which gate and which policy made the decisions after them
        # (startup, policyLoaded), held while the trail could not take them: written,
        # in order, before the next decision, which is refused (503) until they are.
        self._unrecorded: list[tuple[str, dict[str, Any]]] = []
        self._catching_up = asyncio.Lock()
        self.approvals.records_before = self.catch_up

    def start_background(self) -> None:
        for duty in self.background:
            self._tasks.append(asyncio.ensure_future(duty()))

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- policy -------------------------------------------------------------------------

    async def load_policy(self) -> bool:
        """Read the policy source; install it, or keep the last good one and record why not."""
        self.last_read_hash = self.last_read_signature = None
        try:
            # Read and compile off the event loop: a large policy must not stall checks.
            policy, signature = await asyncio.to_thread(self.source.read_with_signature)
        except PolicyError as exc:
            self.last_read_hash = exc.rejected_hash
            self.last_read_signature = exc.signature_sha256
            await self.reject_policy(exc)
            return False
        self.last_read_hash = policy.hash
        self.last_read_signature = signature
        await self.install_policy(policy)
        return True

    async def install_policy(self, policy: CompiledPolicy) -> None:
        previous = self.policy.active
        unchanged = previous is not None and previous.hash == policy.hash
        if unchanged and self.policy.last_error is None:
            return  # the same bytes read again (a SIGHUP): nothing happened
        self.policy.clear_error()
        self.metrics.policy_reloads.labels("loaded").inc()
        if unchanged:
            # Reverting a rejected update to the active policy is a fix, not a no-op: it
            # is recorded, so the trail shows that the rejected state ended.
            _logger.info("policy %s from %s is the active one again", policy.hash, policy.source)
        else:
            # Swapping one reference is atomic for the event loop: a check that started on
            # the previous policy finishes on it, every later check sees the new one.
            self.policy.active = policy
            self.policy.loaded_at = _now_rfc3339()
            self.limiter.retain(policy)
            self.metrics.policy_loaded.set(1)
            # The notices a previous run left undelivered need this policy's webhook;
            # the approvals were rebuilt in __init__, before any policy (once per run).
            self.approvals.renotify(policy)
            _logger.info(
                "policy %s loaded from %s (%d rules)",
                policy.hash,
                policy.source,
                len(policy.rules),
            )
        if policy.warnings and not unchanged:
            # At the default log level (warning) this is the line `kubectl logs` shows.
            _logger.warning(
                "policy %s has %d warnings: %s",
                policy.hash,
                len(policy.warnings),
                "; ".join(brief_warnings(policy)),
            )
        await self.record_before_decisions(
            "policyLoaded",
            {
                "policy": policy.hash,
                "source": policy.source,
                "rules": len(policy.rules),
                "mode": policy.mode,
                "defaultAction": policy.default_action,
                "warnings": list(policy.warnings),
                "previous": previous.hash if previous else None,
                # True when the file holds the active policy again (a rejected update
                # reverted): nothing changed for the checks.
                "unchanged": unchanged,
                # How it was admitted: the trail, not a pod spec since changed, is the
                # evidence that every policy in force was signed (or the pinned one).
                "signatureKey": (
                    public_key_base64(self.source.public_key) if self.source.public_key else None
                ),
                "pinnedHash": self.source.required_hash,
            },
        )

    async def reject_policy(self, error: PolicyError) -> None:
        self.policy.last_error = brief_policy_error(error)
        self.policy.last_error_at = _now_rfc3339()
        self.policy.last_error_hash = error.rejected_hash
        self.metrics.policy_reloads.labels("rejected").inc()
        kept = self._policy_hash()
        _logger.error(
            "policy %s rejected, %s: %s",
            error.source,
            f"keeping {kept}" if kept else "no policy is loaded, every check is answered 503",
            "; ".join(error.problems[:10]) + (" ..." if len(error.problems) > 10 else ""),
        )
        body = {
            "source": error.source,
            "problems": error.problems[:50],
            "kept": kept,
            "rejected": error.rejected_hash,
        }
        held = sum(1 for kind, _ in self._unrecorded if kind == "policyRejected")
        if held >= MAX_HELD_REJECTIONS:
            self.metrics.audit_failures.inc()
            return
        # Held like policyLoaded while the trail is down: a refused policy (an unsigned
        # one pushed during an outage, say) must still reach the trail.
        await self.record_before_decisions("policyRejected", body)

    def _policy_hash(self) -> str | None:
        return self.policy.active.hash if self.policy.active else None

    async def _record_quietly(self, kind: str, body: dict[str, Any]) -> None:
        """Record an operational event; a failed write is counted and shows in /ready.

        After the records held for the decisions (``catch_up``): an ``invalidRequest``
        follows the ``startup`` and ``policyLoaded`` records before it.
        """
        try:
            await self.catch_up()
            await self.audit.append(kind, body)
        except AuditUnavailable:
            self.metrics.audit_failures.inc()

    async def record_before_decisions(self, kind: str, body: dict[str, Any]) -> None:
        """Record an event the decisions after it depend on (``startup``, ``policyLoaded``)
        or that must not be lost to an outage (``policyRejected``).

        If the trail cannot take it now, it is kept and written before the next decision,
        so the trail never shows a decision under a policy (or a process) it does not
        record. A failed write is counted and shows in /ready, as for any record.
        """
        self._unrecorded.append((kind, body))
        try:
            await self.catch_up()
        except AuditUnavailable:
            self.metrics.audit_failures.inc()

    async def catch_up(self) -> None:
        """Write the records ``record_before_decisions`` holds. Raises AuditUnavailable."""
        if not self._unrecorded:
            return
        async with self._catching_up:
            held = list(self._unrecorded)
            if held:
                await self.audit.append_all(held)
                del self._unrecorded[: len(held)]

    # -- checks -------------------------------------------------------------------------

    async def check(self, body: bytes) -> Answer:
        started = time.perf_counter()
        answer = await self._check(body)
        self.metrics.check_seconds.observe(time.perf_counter() - started)
        return answer

    async def wrong_method(self, method: str) -> Answer:
        """Answer (and record) /check asked with a method other than POST."""
        return await self._invalid(
            b"", "method_not_allowed", f"{method[:32]} /check: only POST is accepted", 405
        )

    async def from_a_web_page(self, reason: str) -> Answer:
        """Answer (and record) a /check refused as a web page's (``sidecar.browsers``)."""
        return await self._invalid(b"", FORBIDDEN_CODE, reason, 403)

    async def too_large(self, head: bytes = b"", size: int | None = None) -> Answer:
        """Answer (and record) a body over the limit: ``size`` bytes declared or read
        when reading stopped, of which ``head`` is the start (none when the declared
        length alone was over)."""
        return await self._invalid(
            head, "too_large", f"body is larger than {MAX_BODY_BYTES} bytes", 413, size=size
        )

    async def record_failure(self, body: bytes, exc: Exception) -> None:
        """Record a check that failed with an internal error (a bug, answered 500: a
        deny) as an ``invalidRequest`` of code ``internal``, so the trail still holds
        every request. Best effort: it never raises, whatever the failure was."""
        try:
            await self._invalid(
                body[:INVALID_BODY_READ],
                "internal",
                f"internal error: {type(exc).__name__}",
                500,
                size=len(body),
            )
        except Exception:  # the failure may be in recording itself: the log has it
            _logger.exception("the internal error of a check could not be recorded")

    async def _check(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY_BYTES:
            return await self.too_large(body[:INVALID_BODY_READ], len(body))
        try:
            parsed = parse_body(body)
            policy = self.policy.active
            if policy is None:
                return await self._unavailable_policy(parsed.action)
            normalised = normalise_request(parsed, self.identity)
        except RequestError as exc:
            details = [{"field": exc.field, "message": exc.message}] if exc.field else []
            return await self._invalid(body, "invalid_request", str(exc), 400, details)
        dry_run = parsed.dryRun
        # A dry run sees spent limits (an honest preflight) but spends nothing.
        verdict = decide(policy, normalised, parsed, exhausted=self.limiter.exhausted)
        spent: list[CompiledRule] = []
        if verdict.decision == "allow" and policy.has_rate_limits:
            verdict, spent = self._spend(policy, verdict, dry_run)
        step = None
        # Only a policy that still says require_approval lets an approval be opened or
        # used. In audit mode every answer is allowed anyway, so no human is asked (no
        # approval is opened); an approval the check names is used as enforce mode would
        # use it, so the record says what enforce would have done (allow once, then deny).
        if verdict.decision == "require_approval":
            audit = policy.mode == "audit"
            step = self.approvals.resolve(verdict, policy, dry_run=dry_run, open_new=not audit)
            verdict = step.verdict
            if verdict.decision == "allow" and policy.has_rate_limits:
                # The approval used (or in a dry run, the one that would be) makes this
                # an allowed check: it spends what any allowed check spends of the
                # rate-limited allow rules that matched it. Too few tokens left (the
                # evaluator already denied a bucket under one): denied, and the approval
                # is not used, it stays approved for when the budget allows.
                verdict, spent = self._spend(policy, verdict, dry_run)
                if verdict.decision != "allow":
                    self.approvals.abandon(step)
                    if step.approval is not None:
                        reason = f"{verdict.reason}; approval {step.approval.id} is not used"
                        verdict = dataclasses.replace(verdict, reason=reason)
                    step = dataclasses.replace(step, kind="refuse", verdict=verdict)
            if audit:
                verdict = dataclasses.replace(verdict, allowed=True)
        return await self._answer(verdict, dry_run, step, spent)

    def _spend(
        self, policy: CompiledPolicy, verdict: Verdict, dry_run: bool
    ) -> tuple[Verdict, list[CompiledRule]]:
        """Take the tokens the allowed ``verdict`` needs (``tokens_needed``; none for a
        dry run): the verdict, denied if a bucket holds fewer than it needs (the
        evaluator denies a bucket under one token; a command line running more of a
        rule's commands than its bucket holds is denied here), and what was taken."""
        needed = tokens_needed(policy, verdict)
        short = self.limiter.shortfall(needed)
        if short is not None:
            return over_budget(verdict, *short), []
        if dry_run:
            return verdict, []
        self.limiter.take(needed)
        return verdict, needed

    async def _answer(
        self,
        verdict: Verdict,
        dry_run: bool,
        step: ApprovalStep | None,
        spent: list[CompiledRule],
    ) -> Answer:
        decision_id = new_ulid()
        record: dict[str, Any] = {
            "decisionId": decision_id,
            "action": verdict.action,
            "request": verdict.request,
            "decision": verdict.decision,
            "allowed": verdict.allowed,
            "rule": verdict.rule,
            "reason": verdict.reason,
            "risk": verdict.risk,
            "mode": verdict.mode,
            "policy": verdict.policy_hash,
            "identity": self.identity,
        }
        if dry_run:
            record["dryRun"] = True
        approval = step.approval if step is not None else None
        if approval is not None:
            record["approval"] = approval.id
        write_started = time.perf_counter()
        try:
            if self._unrecorded:  # only after an outage: no coroutine on every check
                await self.catch_up()
            if step is None:
                appended = await self.audit.append("decision", record)
            else:
                appended = await self.approvals.settle(step, decision_id, record)
        except AuditUnavailable as exc:
            if step is not None:
                self.approvals.abandon(step)  # refused before settle() could drop it
            if spent:
                self.limiter.refund(spent)  # answered deny: the agent does not act
            self.metrics.audit_failures.inc()
            self.metrics.count_check(verdict.action, "unavailable")
            reason = str(exc)  # the log's own failures already say what cannot be done
            if not reason.startswith("audit trail cannot be written"):
                reason = f"audit trail cannot be written: {reason}"
            return Answer(503, error_payload("unavailable", reason))
        self.metrics.audit_write_seconds.observe(time.perf_counter() - write_started)
        self.metrics.count_check(verdict.action, verdict.decision)
        payload: dict[str, Any] = {
            "allowed": verdict.allowed,
            "decision": verdict.decision,
            "reason": verdict.reason,
            "rule": verdict.rule,
            "risk": verdict.risk,
            "mode": verdict.mode,
            "decisionId": decision_id,
            "policy": verdict.policy_hash,
            "audit": {"seq": appended.seq, "hash": appended.hash},
        }
        if approval is not None:
            payload["approval"] = approval.ref(now_us())
        if dry_run:
            payload["dryRun"] = True
        request = verdict.request
        if "writes" in request or "reads" in request:
            # A command line's redirections are decided by their paths as written; only
            # the client, on the agent's file system, can see that one leads through a
            # symbolic link elsewhere (docs/clients.md): it gets the files to resolve.
            payload["request"] = verdict.answered_request()
        return Answer(200, payload)

    async def _unavailable_policy(self, action: str) -> Answer:
        self.metrics.count_check(action, "unavailable")
        reason = "no valid policy is loaded"
        if self.policy.last_error:
            reason += f" (last error: {self.policy.last_error})"
        return Answer(503, error_payload("unavailable", reason))

    async def _invalid(
        self,
        body: bytes,
        code: str,
        message: str,
        status: int,
        details: list[Any] | None = None,
        *,
        size: int | None = None,
    ) -> Answer:
        self.metrics.count_check("invalid", "invalid")
        size = len(body) if size is None else size
        if size > INVALID_BODY_KEEP:
            # Redacted before the cut (the record is redacted again, to the same tags).
            window = body[:INVALID_BODY_READ].decode("utf-8", "replace")
            window = self._with_parsed_secrets(body, window)
            redacted = self.audit.redact_text(window).encode("utf-8")[:INVALID_BODY_KEEP]
            kept = redacted.decode("utf-8", "ignore")
        else:
            kept = body[:INVALID_BODY_KEEP].decode("utf-8", "replace")
            kept = self._with_parsed_secrets(body, kept)
        await self._record_quietly(
            "invalidRequest",
            {
                "code": code,
                "message": message[:1024],
                "bytes": size,
                "body": kept,
                "truncated": size > INVALID_BODY_KEEP,
                "identity": self.identity,
            },
        )
        return Answer(status, error_payload(code, message, details))

    def _with_parsed_secrets(self, body: bytes, text: str) -> str:
        """``text`` (the start of a refused ``body``) with the secrets that only the parsed
        body shows replaced: an ``argv`` list's ``"--password","pw"`` is read by the list
        checks, which the body kept as text never meets (a refused request's argv kept
        its passwords in clear). Bodies that are not JSON are left to the text patterns.
        """
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return text
        if not isinstance(parsed, dict | list):
            return text
        quoted: Any = parsed
        command_line = parsed.get("commandLine") if isinstance(parsed, dict) else None
        if isinstance(command_line, str):
            quoted = {
                "body": parsed,
                "commands": _commands_of(command_line),
                "assignments": shell_assignments(command_line),
            }
        try:
            return self.audit.redact_quoting(text, quoted)
        except (ValueError, RecursionError):  # a lone surrogate (\ud800): the text alone
            return text

    # -- operations ---------------------------------------------------------------------

    def unready_reasons(self) -> list[str]:
        reasons = []
        if self.policy.active is None:
            reasons.append(
                "no valid policy is loaded"
                + (f": {self.policy.last_error}" if self.policy.last_error else "")
            )
        if not self.audit.writable:
            reasons.append(f"audit trail is not writable: {self.audit.last_error}")
        elif (problem := self.audit.volume_problem()) is not None:
            reasons.append(f"audit trail is not writable: {problem}")
        return reasons

    def status(self) -> dict[str, Any]:
        active = self.policy.active
        return {
            "policy": {
                "hash": active.hash if active else None,
                "source": self.source.path,
                "loadedAt": self.policy.loaded_at,
                "rules": len(active.rules) if active else 0,
                "defaultAction": active.default_action if active else None,
                "warnings": brief_warnings(active) if active else [],
                "lastError": self.policy.last_error,
                "lastErrorAt": self.policy.last_error_at,
                "lastErrorHash": self.policy.last_error_hash,
                "pinnedHash": self.source.required_hash,
                "signatureRequired": self.source.public_key is not None,
            },
            "audit": self.audit.status(),
            "mode": active.mode if active else None,
            "identity": self.identity,
            "version": __version__,
            "uptime": round(time.monotonic() - self.started, 3),
            "ready": not self.unready_reasons(),
        }
