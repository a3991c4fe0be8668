"""``call_within``: one deadline for a whole blocking call (the command-line tools)."""

from __future__ import annotations

import threading
import time

import pytest

from sidecar.deadline import DeadlineExceeded, call_within


def test_a_call_that_finishes_in_time_gives_its_result() -> None:
    assert call_within(5, lambda: 42) == 42
    assert call_within(5, lambda: None) is None


def test_a_call_that_raises_raises_in_the_caller() -> None:
    def broken() -> int:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError, match="refused"):
        call_within(5, broken)


def test_a_call_past_its_deadline_is_given_up_on_at_the_deadline() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"no answer within 0\.3 s"):
        call_within(0.3, lambda: release.wait(30))
    waited = time.monotonic() - started
    release.set()
    assert 0.3 <= waited < 5
