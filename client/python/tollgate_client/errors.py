"""The exception of a refused action (CONTRACT section 5: ``gate.require`` raises ``Denied``)."""

from __future__ import annotations

from typing import Any

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

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles self.args, the message, which __init__ cannot take: a Denied
        # raised in a worker process broke the pool (BrokenProcessPool) and copy.copy
        # failed (rt25 clients review, 6). Rebuilt from its decision, notes and all.
        return (type(self), (self.decision,), self.__dict__)

    @property
    def reason(self) -> str:
        return self.decision.reason

    @property
    def approval(self) -> Approval | None:
        return self.decision.approval
