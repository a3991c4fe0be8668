"""The approval endpoints (CONTRACT section 2.4) as ``Answer``s for the HTTP app.

``GET /v1/approvals[?status=S]``, ``GET /v1/approvals/{id}[?wait=N]`` and
``POST /v1/approvals/{id}``. Status codes: 403 for anything not validly signed by a
listed approver (and 404 for an unknown id), both recorded as ``forged``; 409 for a
valid decision on an approval that is no longer pending (recorded as ``refused``); 503
when no policy is loaded (for a signed decision, which only a policy's keys can tell
forged) or the decision cannot be recorded. Every error body carries
``"allowed": false`` like the rest of the API.
"""

from __future__ import annotations

import math
from typing import cast

from sidecar.approvals.model import STATUSES, Status, now_us
from sidecar.approvals.service import ApprovalNotFound, NoApprovers, NotPending
from sidecar.approvals.signing import ForgedDecision
from sidecar.approvals.wire import MAX_WAIT_SECONDS
from sidecar.errors import AuditUnavailable
from sidecar.gate import Answer, Gate, error_payload

MAX_DECISION_BYTES = 16 * 1024


def _not_found(approval_id: str) -> Answer:
    return Answer(404, error_payload("not_found", f"no approval {approval_id!r}"))


def list_approvals(gate: Gate, status: str | None) -> Answer:
    if status is not None and status not in STATUSES:
        return Answer(
            400,
            error_payload(
                "invalid_request", f"status must be one of {', '.join(STATUSES)}", [
                    {"field": "status", "message": f"unknown status {status[:64]!r}"}
                ]
            ),
        )  # fmt: skip
    now = now_us()
    found = gate.approvals.listed(cast(Status | None, status))  # checked just above
    return Answer(200, {"approvals": [approval.view(now) for approval in found]})


def _wait_seconds(text: str | None) -> float | None:
    """``wait`` in seconds, capped at 60; None when it is not a number >= 0."""
    if text is None or text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, float(MAX_WAIT_SECONDS))


async def get_approval(gate: Gate, approval_id: str, wait: str | None) -> Answer:
    seconds = _wait_seconds(wait)
    if seconds is None:
        return Answer(
            400,
            error_payload(
                "invalid_request",
                f"wait must be a number of seconds >= 0 (at most {MAX_WAIT_SECONDS} are used)",
                [{"field": "wait", "message": "not a number >= 0"}],
            ),
        )
    try:
        approval = gate.approvals.get(approval_id)
    except ApprovalNotFound:
        return _not_found(approval_id)
    await gate.approvals.wait_for_change(approval, seconds)
    return Answer(200, approval.view(now_us()))


async def decision_too_large(gate: Gate, approval_id: str) -> Answer:
    """No approver's tool sends this much: recorded as forged, answered 413."""
    await gate.approvals.record_forged(
        approval_id, b"", f"body larger than {MAX_DECISION_BYTES} bytes"
    )
    return Answer(
        413, error_payload("too_large", f"body is larger than {MAX_DECISION_BYTES} bytes")
    )


async def decide_approval(gate: Gate, approval_id: str, body: bytes) -> Answer:
    if len(body) > MAX_DECISION_BYTES:
        return await decision_too_large(gate, approval_id)
    try:
        # Without a policy an unknown id, or a body that is no signed decision, is still
        # refused and recorded (CONTRACT 2.4); only a signed decision waits for one.
        approval = await gate.approvals.decide(approval_id, body, gate.policy.active)
    except ApprovalNotFound:
        return _not_found(approval_id)
    except ForgedDecision as exc:
        return Answer(403, error_payload("forbidden", exc.problem))
    except NoApprovers:
        return Answer(
            503, error_payload("unavailable", "no valid policy is loaded, so no approver is known")
        )
    except NotPending as exc:
        return Answer(409, error_payload("conflict", str(exc)))
    except AuditUnavailable as exc:
        gate.metrics.audit_failures.inc()
        return Answer(503, error_payload("unavailable", f"the decision was not recorded: {exc}"))
    return Answer(200, approval.view(now_us()))
