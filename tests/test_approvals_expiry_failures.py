"""Approval expiries the trail cannot take (failure-mode review 2026-12-06, F3).

A real daemon, a real trail made to refuse writes (``refusing_writes``): the failures
are counted in ``tollgate_audit_write_failures_total``, so the documented alert fires
on an idle gate too, and each retry stops at the first failure instead of writing every
due approval to a trail that is down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests import test_approvals
from tests.daemon import Daemon, refusing_writes
from tests.test_approvals import ask, events

# The fixtures of test_approvals.py, under the same names.
people = test_approvals.people
start = test_approvals.start

DUE = 6


def failures(gate: Daemon) -> float:
    found = re.search(
        r"^tollgate_audit_write_failures_total (\S+)$", gate.get("/metrics").text, re.MULTILINE
    )
    assert found
    return float(found.group(1))


def wait_for(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_expiries_that_cannot_be_written_are_counted_and_retried_one_failure_at_a_time(
    start,  # type: ignore[no-untyped-def]
) -> None:
    gate = start(timeout="2s")
    opened = []
    for index in range(DUE):
        body = {
            "action": "k8s.request",
            "k8s": {
                "method": "DELETE",
                "path": f"/apis/apps/v1/namespaces/apps/deployments/w{index}",
            },
        }
        opened.append(ask(gate, body)["approval"]["id"])
    assert failures(gate) == 0
    with refusing_writes(gate):
        # All six fall due together; the first expiry record fails and the pass stops.
        wait_for(lambda: failures(gate) >= 1, 10)
        first = failures(gate)
        assert first < DUE, first  # not one failed write per due approval
        time.sleep(2.3)  # two or three more passes, one failure each
        later = failures(gate)
        assert first < later <= first + 4, (first, later)
        assert gate.get("/ready").status_code == 503
    # Written once the trail takes them again, every one.
    wait_for(lambda: all("expired" in events(gate, a) for a in opened), 10)
    assert all(events(gate, a) == ["requested", "expired"] for a in opened)
