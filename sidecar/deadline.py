"""One deadline for a whole blocking exchange, for the command-line tools.

urllib's ``timeout`` bounds each socket operation, not the exchange: a peer that sends a
byte now and then keeps a call going for as long as it likes. ``call_within`` runs the
call on a daemon thread and stops waiting at the deadline; the thread is abandoned (a
command exits soon after, which ends it). The agent-facing clients bound their reads
themselves (docs/clients.md); this is for ``tollgate check --url`` and ``tollgate
approvals``, one call per run.
"""

from __future__ import annotations

import argparse
import math
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DeadlineExceeded", "call_within", "timeout_seconds"]

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not finish within its deadline (it may still be running)."""


def timeout_seconds(text: str) -> float:
    """A ``--timeout``: a finite number of seconds above 0, else a usage error (exit 2).

    NaN or infinity reached ``Thread.join`` after the request had been sent, and crashed
    with a traceback; 0 or a negative number sent it and gave up at once.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0")
    if value > threading.TIMEOUT_MAX:  # Thread.join's limit (about 292 years)
        raise argparse.ArgumentTypeError(
            f"{text} is more seconds than a wait can take (at most {threading.TIMEOUT_MAX:.0f})"
        )
    return value


def call_within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``'s result or exception, or DeadlineExceeded after ``seconds``."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread, raised there
            failure.append(exc)

    worker = threading.Thread(target=run, name="tollgate-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if failure:
        raise failure[0]
    if not outcome:
        raise DeadlineExceeded(f"no answer within {seconds:g} s")
    return outcome[0]
