"""The exception of a refused action (CONTRACT section 5: ``gate.require`` raises ``Denied``)."""

from __future__ import annotations

from tollgate_client.answers import Approval, Decision


class Denied(Exception):
    """The gate did not allow the action (or could not be asked: the client fails closed).

    ``decision`` is the full answer; ``reason`` is what to show a person or hand back to
    the model; ``approval`` is set when the action waits for a human's approval.
    Deliberately not an ``OSError``: code that retries on I/O errors must not swallow it.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.reason or f"tollgate: {decision.decision}")

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def approval(self) -> Approval | None:
        return self.decision.approval
