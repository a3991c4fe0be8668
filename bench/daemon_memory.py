"""Memory of the daemon itself over many checks: ``tollgate serve`` under wrk.

``bench.memory`` counts the checks of ``Gate.check`` in one process; this counts what a
pod runs: the daemon answering ``/check`` over HTTP (uvicorn, the protocol, the policy
watcher, metrics) and its sync helper process, with the trail on disk. wrk drives it at
concurrency 16 with the request mix until the daemon's own ``tollgate_checks_total``
passes each mark; the RSS (``VmRSS``, current) of the daemon and of the helper, and the
helper's private memory (``Private_Clean`` + ``Private_Dirty`` of ``smaps_rollup``, or of
every mapping in ``smaps`` on a kernel without the rollup), are read from ``/proc`` as it
does, and the daemon's peak (``VmHWM``) at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.http_load import LUA_SCRIPT, Server, require_wrk, serve_argv, write_inputs

POLICY_RULES = 1_000
CONNECTIONS = 16
POLL_S = 0.1
PROC = Path("/proc")


@dataclass(frozen=True)
class DaemonMemory:
    marks: list[int]  # checks answered when each sample was taken (a mark or just past)
    daemon_mib: list[float]
    helper_mib: list[float]  # the sync helper's RSS (0 where it was not running)
    # The helper's pages that the daemon does not map too: what it adds to the container;
    # None where /proc did not tell, and ``private_unread`` says why.
    helper_private_mib: list[float] | None
    daemon_peak_mib: float
    seconds: float
    private_unread: str = ""


class PrivateUnread(RuntimeError):
    """Neither ``smaps_rollup`` nor ``smaps`` of a process could be read."""


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _private_fields_kib(path: Path) -> int:
    private = 0
    with open(path) as lines:
        for line in lines:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                private += int(line.split()[1])
    return private


def private_kib(pid: int, proc: Path = PROC) -> int:
    """The memory only ``pid`` maps (``Private_Clean`` + ``Private_Dirty``), in KiB: from
    ``smaps_rollup``, or summed over every mapping of ``smaps``, which has the same
    fields, on kernels without the rollup (before 4.14)."""
    rollup, smaps = proc / str(pid) / "smaps_rollup", proc / str(pid) / "smaps"
    try:
        return _private_fields_kib(rollup)
    except OSError as no_rollup:
        try:
            return _private_fields_kib(smaps)
        except OSError as no_smaps:
            raise PrivateUnread(
                f"neither {rollup} ({no_rollup.strerror}) nor {smaps} ({no_smaps.strerror}) "
                "could be read"
            ) from no_smaps


def _private_mib(pids: list[int]) -> float:
    return sum(private_kib(pid, PROC) for pid in pids) / 1024


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
        except OSError:
            pass  # the thread ended meanwhile
    return found


def _checks_answered(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("tollgate_checks_total")
    )


def measure(checks: int, every: int, audit_parent: str | None = None) -> DaemonMemory:
    """Drive a real daemon past ``checks`` checks, sampling every ``every``."""
    wrk = require_wrk()
    work = Path(tempfile.mkdtemp(prefix="tollgate-daemon-memory-", dir=audit_parent))
    try:
        policy, bodies = write_inputs(work, POLICY_RULES)
        gate = Server("gate", serve_argv(policy, work / "audit"), work / "gate.log")
        gate.start()
        assert gate.process is not None
        pid = gate.process.pid
        # Long enough for any machine this runs on; stopped once the last mark is past.
        load = subprocess.Popen(
            [
                wrk, "-t2", f"-c{CONNECTIONS}", "-d3600s", "--timeout", "5s",
                "-s", str(LUA_SCRIPT), gate.url + "/check", "--", str(bodies),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        marks: list[int] = []
        daemon: list[float] = []
        helper: list[float] = []
        helper_private: list[float] | None = []
        private_unread = ""
        started = time.perf_counter()
        try:
            mark = every
            while mark <= checks:
                answered = _checks_answered(gate.url)
                if answered >= mark:
                    marks.append(answered)
                    daemon.append(_status_kib(pid, "VmRSS") / 1024)
                    children = _children(pid)
                    helper.append(sum(_status_kib(c, "VmRSS") for c in children) / 1024)
                    if helper_private is not None:
                        try:
                            helper_private.append(_private_mib(children))
                        except PrivateUnread as exc:
                            # The RSS rows stand; this row is reported as not measured.
                            helper_private, private_unread = None, str(exc)
                    mark += every
                elif load.poll() is not None:
                    raise RuntimeError("wrk stopped before the last mark")
                time.sleep(POLL_S)
            seconds = time.perf_counter() - started
            peak = _status_kib(pid, "VmHWM") / 1024
        finally:
            load.terminate()
            load.wait()
            gate.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DaemonMemory(marks, daemon, helper, helper_private, peak, seconds, private_unread)
