"""A lone check's code, warm and cold: the pure pipeline timed right after a pause.

At concurrency 1 each check reaches the gate after its process has waited, in ``epoll``
for the request and, one check earlier, in an ``fdatasync``. What the process did while
it waited decides how fast the next check's code runs: a CPU given up may be halted or
lent to other work, and a sync runs the kernel's file system and block code on it. This
times parse + normalise + decide (the pure part of a check, no I/O, the request mix of
the other tables), one call at a time, each right after one of these pauses:

- ``none``: back to back, the warm figure;
- ``spinning``: the process keeps its CPU, reading the clock until the pause is over;
- ``asleep``: the process gives its CPU up for the pause (``time.sleep``), as between
  two requests;
- ``append + fdatasync``: one record-sized line appended to a file on the audit
  directory's file system and synced, as a lone check's batch is.

Wall time per call, median and p90, in rounds interleaving the pauses; the ratio is each
median to the warm one. The notes name the kernel's CPU idle driver and, where it is
``haltpoll``, how long an idle CPU polls before it halts. Reported, never judged, and
only with ``--only cold`` (docs/performance-investigations.md, "A lone check, step by step").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.policies import IDENTITY, policy_yaml, request_mix
from bench.results import Section
from sidecar.engine import decide
from sidecar.normalise.request import normalise_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.source import PolicySource
from sidecar.request import parse_body

POLICY_RULES = 1_000
PAUSE_US = 200
ROUNDS = 3
# A decision record of the request mix is 500 - 700 bytes of canonical JSON.
RECORD_LINE = b"x" * 600 + b"\n"
WARM = "none"
Pause = Callable[[], None]
CPUIDLE = Path("/sys/devices/system/cpu/cpuidle/current_driver")
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def spinning(pause_us: int) -> Pause:
    """Keep the CPU for ``pause_us``: read the clock until the time is up."""

    def pause() -> None:
        end = time.perf_counter_ns() + pause_us * 1000
        while time.perf_counter_ns() < end:
            pass

    return pause


def asleep(pause_us: int) -> Pause:
    """Give the CPU up for ``pause_us`` (at least; the kernel wakes the process late)."""
    seconds = pause_us / 1e6

    def pause() -> None:
        time.sleep(seconds)

    return pause


def synced_append(fd: int) -> Pause:
    """Append one record-sized line to ``fd`` and wait for ``fdatasync``."""

    def pause() -> None:
        os.write(fd, RECORD_LINE)
        os.fdatasync(fd)

    return pause


def time_after(
    pause: Pause | None, calls: int, bodies: list[bytes], policy: CompiledPolicy
) -> list[int]:
    """Nanoseconds of each of ``calls`` pipeline runs, each right after ``pause``."""
    durations: list[int] = []
    clock = time.perf_counter_ns
    for index in range(calls):
        if pause is not None:
            pause()
        started = clock()
        request = parse_body(bodies[index % len(bodies)])
        decide(policy, normalise_request(request, IDENTITY), request)
        durations.append(clock() - started)
    return durations


def idle_policy() -> str:
    """What the kernel does with an idle CPU here, as far as /sys tells."""
    try:
        driver = CPUIDLE.read_text().strip()
    except OSError:
        return "the CPU idle driver is not readable"
    text = f"CPU idle driver {driver}"
    with contextlib.suppress(OSError, ValueError):
        text += f", guest_halt_poll_ns {int(HALT_POLL.read_text()):,}"
    return text


def run(
    *, calls: int = 3_000, pause_us: int = PAUSE_US, audit_parent: str | None = None
) -> Section:
    work = Path(tempfile.mkdtemp(prefix="tollgate-cold-bench-", dir=audit_parent))
    try:
        (work / "policy.yaml").write_bytes(policy_yaml(POLICY_RULES))
        policy = PolicySource(str(work / "policy.yaml")).read()
        bodies = [json.dumps(body).encode() for body in request_mix(POLICY_RULES)]
        fd = os.open(work / "synced", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            pauses: dict[str, Pause | None] = {
                WARM: None,
                "spinning": spinning(pause_us),
                "asleep": asleep(pause_us),
                "append + fdatasync": synced_append(fd),
            }
            time_after(None, min(calls, 1_000), bodies, policy)  # warm-up
            samples: dict[str, list[int]] = {name: [] for name in pauses}
            for _round in range(ROUNDS):
                for name, pause in pauses.items():
                    samples[name] += time_after(pause, calls, bodies, policy)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = Section(
        "A lone check's pure pipeline after a pause (µs per call, wall time)",
        ("pause before each call", "median", "p90", "median vs none"),
    )
    warm = statistics.median(samples[WARM])
    for name, durations in samples.items():
        ordered = sorted(durations)
        median = statistics.median(ordered)
        p90 = ordered[int(len(ordered) * 0.9)]
        section.rows.append(
            (name, f"{median / 1000:.1f}", f"{p90 / 1000:.1f}", f"{median / warm:.2f}x")
        )
    on = "the temp directory" if audit_parent is None else audit_parent
    section.notes += [
        f"parse + normalise + decide on the request mix, 1,000-rule policy; {calls:,} calls "
        f"per pause in each of {ROUNDS} rounds, the pauses interleaved; spinning and asleep "
        f"last {pause_us} µs; the synced file is on {on}.",
        f"This machine: {idle_policy()}.",
    ]
    return section
