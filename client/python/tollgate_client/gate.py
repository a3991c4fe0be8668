"""``Gate``: ask Tollgate before acting (CONTRACT section 5, Python client).

``check`` never raises: an unreachable gate, a timeout, a non-200 answer, malformed
JSON or an ``allowed`` that is not literally ``true`` all come back as a deny whose
``reason`` says why. ``require`` raises ``Denied`` instead. The guarded helpers
``open``, ``run``, ``fetch`` and ``kube`` check first and act only when allowed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from tollgate_client.answers import (
    BAD_ANSWER,
    Approval,
    Decision,
    failed_closed,
    read_approval,
    read_decision,
    read_json_object,
)
from tollgate_client.commands import run_checked
from tollgate_client.errors import Denied
from tollgate_client.fetch import fetch_checked
from tollgate_client.files import open_checked
from tollgate_client.kube import kube_checked
from tollgate_client.timeouts import MAX_TIMEOUT as MAX_TIMEOUT  # still importable here
from tollgate_client.timeouts import valid_timeout
from tollgate_client.transport import Transport, TransportError
from tollgate_client.wire import check_body, encode

DEFAULT_URL = "http://127.0.0.1:9800"
CHECK_PATH = "/v1/check"
# The gate holds a long poll for at most 60 s (CONTRACT 2.4).
MAX_APPROVAL_WAIT = 60
# Pause between polls when the gate answered at once (a restart, or an older gate
# without long polling), so that waiting never spins.
POLL_PAUSE = 0.5
# How long past the wait's own timeout a poll may still be answered: each poll's request
# is bounded by what is left of the wait, plus this, not by the poll plus the Gate's
# timeout (which ran past the wait by up to that timeout).
POLL_GRACE = 0.5


class Gate:
    """A connection to one Tollgate sidecar. Thread-safe; reuses keep-alive connections.

    ``url`` defaults to ``$TOLLGATE_URL``, then ``http://127.0.0.1:9800``; it must name
    the gate's loopback address, ``127.0.0.1`` (also as ``localhost``, never looked up)
    or ``[::1]`` (``ValueError`` otherwise) unless ``allow_remote`` is true. ``timeout``
    (seconds) bounds each wait for the gate. With ``approval_timeout`` > 0, ``require``
    (and so every guarded helper) waits that long for a human to decide an action that
    needs approval, then re-sends the identical check with the approval id. A timeout
    that is not a finite number of seconds above 0 (``approval_timeout``: 0 or above), at
    most ``MAX_TIMEOUT``, raises ``ValueError``.
    """

    open = open_checked
    run = run_checked
    fetch = fetch_checked
    kube = kube_checked

    def __init__(
        self,
        url: str | None = None,
        timeout: float = 2.0,
        *,
        approval_timeout: float = 0.0,
        allow_remote: bool = False,
    ) -> None:
        self.url = (url or os.environ.get("TOLLGATE_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = valid_timeout("timeout", timeout)
        self.approval_timeout = valid_timeout(
            "approval_timeout", approval_timeout, zero_allowed=True
        )
        self._transport = Transport(self.url, allow_remote=allow_remote)

    def __repr__(self) -> str:
        return f"Gate({self.url!r}, timeout={self.timeout!r})"

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections (a later check opens a new one)."""
        self._transport.close()

    @property
    def connections_opened(self) -> int:
        """TCP connections opened so far; stays at 1 for sequential checks (keep-alive)."""
        return self._transport.connections_opened

    # -- checks -------------------------------------------------------------------------

    def check(self, action: str, **fields: Any) -> Decision:
        """Ask whether ``action`` may happen. One round trip; never raises.

        Fields are the request fields of CONTRACT 2.1, camelCase or snake_case
        (``real_path=`` is sent as ``realPath``); ``None`` values are left out.
        """
        try:
            body = encode(check_body(action, fields))
        except (TypeError, ValueError) as exc:
            return failed_closed(f"the check could not be encoded as JSON: {exc}", BAD_ANSWER)
        return self._send_check(body)

    def require(self, action: str, **fields: Any) -> Decision:
        """Like ``check`` but raises ``Denied`` unless the action is allowed."""
        decision = self.check(action, **fields)
        if (
            not decision.allowed
            and decision.decision == "require_approval"
            and decision.approval is not None
            and self.approval_timeout > 0
            and not fields.get("approval")
            and not fields.get("dry_run", fields.get("dryRun"))
        ):
            decision = self._after_approval(action, fields, decision)
        if not decision.allowed:
            raise Denied(decision)
        return decision

    def _send_check(self, body: bytes) -> Decision:
        try:
            status, answer = self._transport.request("POST", CHECK_PATH, body, self.timeout)
        except TransportError as exc:
            return failed_closed(exc.message, exc.kind)
        return read_decision(status, answer)

    def _after_approval(self, action: str, fields: Mapping[str, Any], first: Decision) -> Decision:
        assert first.approval is not None
        approval = self.wait_for_approval(first.approval.id, self.approval_timeout)
        if not approval.approved:
            return replace(
                first,
                reason=_unapproved_reason(first, approval, self.approval_timeout),
                approval=approval,
            )
        return self.check(action, **{**fields, "approval": approval.id})

    # -- approvals ----------------------------------------------------------------------

    def wait_for_approval(self, approval_id: str, timeout: float = 300.0) -> Approval:
        """Wait until the approval leaves ``pending`` or ``timeout`` seconds pass.

        Long-polls ``GET /v1/approvals/{id}?wait=N``. Returns the last state seen:
        ``pending`` if nobody decided in time, ``unknown`` (with a ``reason``) if the
        gate could not be asked or knows no such approval. Never raises for gate errors;
        a gate restart during the wait is ridden out until ``timeout``. A ``timeout``
        that is not a finite number >= 0 raises ``ValueError``.
        """
        timeout = valid_timeout("wait_for_approval timeout", timeout, zero_allowed=True)
        deadline = time.monotonic() + timeout
        last_known: Approval | None = None
        while True:
            wait = int(min(MAX_APPROVAL_WAIT, max(deadline - time.monotonic(), 0)))
            asked_at = time.monotonic()
            limit = min(wait + self.timeout, max(deadline - asked_at, 0) + POLL_GRACE)
            approval, final = self._poll_approval(approval_id, wait, limit)
            if final or approval.status not in ("pending", "unknown"):
                return approval
            if approval.status == "pending":
                last_known = approval
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return last_known or approval
            if time.monotonic() - asked_at < max(wait, POLL_PAUSE):
                # The gate answered without holding the poll (an error, a restart):
                # pause so that waiting never spins.
                time.sleep(min(POLL_PAUSE, remaining))

    def _poll_approval(self, approval_id: str, wait: int, limit: float) -> tuple[Approval, bool]:
        """One poll of ``wait`` s, answered within ``limit`` s: (approval, final).
        ``final`` says that asking again cannot help."""
        path = f"/v1/approvals/{quote(approval_id, safe='')}?wait={wait}"
        try:
            status, body = self._transport.request("GET", path, None, limit)
        except TransportError as exc:
            return Approval(approval_id, "unknown", reason=exc.message), False
        payload = read_json_object(body)
        if status == 404:
            reason = f"tollgate knows no approval {approval_id!r}"
            return Approval(approval_id, "unknown", reason=reason), True
        if status != 200:
            return Approval(
                approval_id, "unknown", reason=f"tollgate answered HTTP {status}"
            ), False
        approval = read_approval(payload)
        if approval is None or approval.id != approval_id:
            reason = "tollgate's answer is not this approval"
            return Approval(approval_id, "unknown", reason=reason), False
        return approval, False


def _unapproved_reason(first: Decision, approval: Approval, waited: float) -> str:
    if approval.status == "pending":
        outcome = f"was not decided within {waited:g} s"
    elif approval.status == "unknown":
        outcome = f"could not be followed: {approval.reason}"
    else:
        outcome = f"is {approval.status}"
        note = approval.raw.get("reason")
        if isinstance(note, str) and note:
            outcome += f" ({note})"
    return f"{first.reason}; approval {approval.id} {outcome}"


def wait_for_approval(
    approval_id: str, timeout: float = 300.0, *, url: str | None = None, allow_remote: bool = False
) -> Approval:
    """``Gate(url).wait_for_approval(approval_id, timeout)`` for a one-off wait."""
    with Gate(url, allow_remote=allow_remote) as gate:
        return gate.wait_for_approval(approval_id, timeout)
