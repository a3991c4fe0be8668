"""A DIR/checkpoint that cannot be replaced (F1) and a sync helper that stops answering
(F2), as the sections below name them. Found in the failure-mode review of 2026-12-06.

Everything is real: the daemon (tests/daemon.py), its files, fsync, its sync helper
process and the signals sent to it. A checkpoint file that cannot be replaced is made
as the reviewer made it: a directory where ``replace_file`` puts its temporary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.log import SYNC_STALL_SECONDS, AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditUnavailable
from sidecar.keys import generate_keypair
from tests.audit.conftest import decision, records
from tests.daemon import Daemon

POLICY = """\
version: 1
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow}
"""
READ = {"action": "file.read", "path": "/app/data/x"}


def wait_for(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.fixture
def signed_gate(tmp_path: Path) -> Iterator[Daemon]:
    key, _public = generate_keypair(tmp_path / "keys")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = Daemon(policy, tmp_path / "audit", "--signing-key", str(key))
    try:
        yield daemon.start()
    finally:
        daemon.stop(signal.SIGKILL)


def helper_pid(daemon: Daemon) -> int:
    assert daemon.process is not None
    children = Path(f"/proc/{daemon.process.pid}/task/{daemon.process.pid}/children")
    pids = [int(pid) for pid in children.read_text().split()]
    assert len(pids) == 1, pids  # the sync helper, the gate's only child
    return pids[0]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        # Gone: before the open, or (ESRCH) between the open and the read, as a clean
        # CI run of 2026-12-06 caught when the gate reaped its stopped helper.
        return False
    return state != "Z"


class Load:
    """Clients sending checks in a loop (so batches go to the helper); each answer kept."""

    def __init__(self, url: str, clients: int = 8) -> None:
        self.url = url
        self.answers: list[tuple[float, int | str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self._stop.is_set():
                try:
                    status: int | str = client.post("/check", json=READ).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                    time.sleep(0.05)
                self.answers.append((time.monotonic(), status))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# ---------------------------------------------------------------------------- F1


def test_a_checkpoint_file_that_cannot_be_replaced_is_reported_until_it_is(
    signed_gate: Daemon,
) -> None:
    gate, audit = signed_gate, signed_gate.audit_dir
    (audit / ".checkpoint.tmp").mkdir()  # replace_file's temporary name, now a directory
    for _ in range(3):
        assert gate.check(READ).status_code == 200
    # The interval checkpoint (10 s) is written to the trail, not to DIR/checkpoint.
    wait_for(lambda: gate.get("/v1/status").json()["audit"]["checkpointFileError"], 15)
    # A record written after it does not clear the report (it used to, at once).
    assert gate.check(READ).status_code == 200
    shown = gate.get("/v1/status").json()["audit"]
    assert shown["writable"] is True
    assert "checkpoint cannot be replaced" in shown["checkpointFileError"]
    assert shown["lastError"] == shown["checkpointFileError"]
    # The trail is durable and signed: the gate stays ready (docs/audit.md).
    assert gate.get("/ready").status_code == 200
    text = gate.get("/metrics").text
    assert metric(text, "tollgate_audit_checkpoint_file_failures_total") >= 1
    assert metric(text, "tollgate_audit_checkpoint_file_stale") == 1
    assert not (audit / "checkpoint").exists()

    # Once the volume takes it again, the retry (every checkpoint interval) catches up,
    # on an idle gate too.
    (audit / ".checkpoint.tmp").rmdir()
    wait_for(lambda: gate.get("/v1/status").json()["audit"]["checkpointFileError"] is None, 15)
    shown = gate.get("/v1/status").json()["audit"]
    assert shown["lastError"] is None
    newest = [r for r in records(audit) if r["type"] == "checkpoint"][-1]
    assert (audit / "checkpoint").read_text() == newest["note"]
    assert metric(gate.get("/metrics").text, "tollgate_audit_checkpoint_file_stale") == 0
    gate.stop()


def test_the_checkpoint_file_failure_is_logged_with_its_error(tmp_path: Path) -> None:
    key, _public = generate_keypair(tmp_path / "keys")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    gate = Daemon(policy, audit, "--signing-key", str(key)).start()
    try:
        (audit / ".checkpoint.tmp").mkdir()
        assert gate.check(READ).status_code == 200
    finally:
        # The final checkpoint's replace fails too: said at exit.
        assert gate.process is not None and gate.process.stderr is not None
        gate.process.send_signal(signal.SIGTERM)
        _out, err = gate.process.communicate(timeout=20)
    said = err.decode()
    assert "checkpoint cannot be replaced, it is older than the trail: Is a directory" in said
    assert "at exit: the next start compares the trail with an older checkpoint" in said
    assert [r["type"] for r in records(audit)][-2:] == ["shutdown", "checkpoint"]


def test_a_later_record_does_not_clear_the_checkpoint_file_error(
    open_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = open_log(checkpoint_every=2, sync_helper=False)
    (tmp_path / "audit" / ".checkpoint.tmp").mkdir()
    log.append_blocking("decision", decision(0))
    log.append_blocking("decision", decision(1))  # the count checkpoint: file not replaced
    assert "Is a directory" in (log.checkpoint_file_error or "")
    log.append_blocking("decision", decision(3))  # a later batch, written fine
    status = log.status()
    assert status["writable"] is True
    assert status["lastError"] == status["checkpointFileError"] == log.checkpoint_file_error
    assert log.checkpoint_file_failures == 1
    (tmp_path / "audit" / ".checkpoint.tmp").rmdir()
    log.append_blocking("decision", decision(4))  # the next checkpoint replaces it
    assert log.status()["lastError"] is None and log.checkpoint_file_error is None
    log.close_blocking()
    assert verify_trail(tmp_path / "audit").intact


# ---------------------------------------------------------------------------- F2


def test_a_stopped_sync_helper_is_replaced_by_the_gates_own_sync(signed_gate: Daemon) -> None:
    gate = signed_gate
    helper = helper_pid(gate)
    with Load(gate.url) as load, stopped(helper):
        stopped_at = time.monotonic()  # with a batch in the helper's hands, or soon
        # Past the stall threshold the gate gives up on the helper and syncs itself
        # (it used to answer 503 until the helper was continued).
        wait_for(lambda: not running(helper), SYNC_STALL_SECONDS + 5)
        time.sleep(1.0)
        resumed = [t for t, s in load.answers if s == 200 and t > stopped_at + SYNC_STALL_SECONDS]
        assert resumed, "no check was answered after the helper was given up on"
        assert gate.get("/ready").status_code == 200
        shown = gate.get("/v1/status").json()["audit"]
        assert shown["writable"] is True and shown["lastError"] is None
    gate.stop()
    answered = sum(1 for _t, s in load.answers if s == 200)
    decisions = [r for r in records(gate.audit_dir) if r["type"] == "decision"]
    assert len(decisions) >= answered  # every 200 has its record (none answered unwritten)
    assert [r["type"] for r in records(gate.audit_dir)][-2:] == ["shutdown", "checkpoint"]
    assert verify_trail(gate.audit_dir).intact


def test_sigterm_with_a_stopped_sync_helper_ends_the_gate_with_a_shutdown_record(
    signed_gate: Daemon,
) -> None:
    gate = signed_gate
    assert gate.process is not None
    helper = helper_pid(gate)
    with Load(gate.url) as load:
        time.sleep(1.0)
        with stopped(helper):
            time.sleep(1.0)  # a batch is in the helper's hands now
            sent = time.monotonic()
            gate.process.send_signal(signal.SIGTERM)
            code = gate.process.wait(timeout=30)  # it used to wait for SIGCONT forever
            took = time.monotonic() - sent
    assert code in (0, -signal.SIGTERM)  # uvicorn ends by the signal it got
    assert took < 2 * SYNC_STALL_SECONDS + 5, took
    kinds = [r["type"] for r in records(gate.audit_dir)]
    assert kinds[-2:] == ["shutdown", "checkpoint"]
    answered = sum(1 for _t, s in load.answers if s == 200)
    assert kinds.count("decision") >= answered
    assert verify_trail(gate.audit_dir).intact


def test_close_gives_up_on_a_sync_that_never_ends_within_its_timeout(
    open_log: Callable[..., AuditLog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that never finishes a sync: the helper stopped, and the gate's own sync
    # (in its thread) held until the test lets it go. Only that sync is injected.
    from sidecar.audit import log as log_module

    release = threading.Event()
    real_fdatasync = log_module._fdatasync

    def stuck(fd: int) -> OSError | None:
        release.wait(30)
        return real_fdatasync(fd)

    log = open_log()

    async def run() -> tuple[float, list[BaseException | Any]]:
        await log.start()
        helper = log._syncer
        assert helper is not None and helper.pid is not None
        os.kill(helper.pid, signal.SIGSTOP)
        monkeypatch.setattr(log_module, "_fdatasync", stuck)
        batch = [asyncio.ensure_future(log.append("decision", decision(i))) for i in range(4)]
        await asyncio.sleep(0.2)
        assert log._in_flight is not None  # handed to the stopped helper
        started = time.monotonic()
        await log.close(timeout=SYNC_STALL_SECONDS + 1.5)
        took = time.monotonic() - started
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        assert not helper.alive and log._closed
        return took, outcomes

    try:
        took, outcomes = asyncio.run(run())
    finally:
        release.set()
    assert took < SYNC_STALL_SECONDS + 3
    assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
    assert "within" in str(outcomes[0])
    assert not [r for r in records(tmp_path / "audit") if r["type"] == "checkpoint"]


SIGNER = Signer(Ed25519PrivateKey.generate())


# Found in code review (2026-12-06): the sync taken over from a stopped helper could end
# while close() cancelled its tasks, after drain() had timed out; close then asserted a
# batch in flight that was gone and raised, without the final checkpoint or the lock's
# release. And the DIR/checkpoint retry ran its fsync on the loop with a batch in flight,
# where the disk may be the one stalling.
def test_close_survives_the_taken_over_sync_ending_while_its_tasks_are_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sidecar.audit.log as log_module

    monkeypatch.setattr(log_module, "SYNC_STALL_SECONDS", 0.3)
    monkeypatch.setattr(log_module, "_STALL_WATCH_SECONDS", 0.1)
    release = threading.Event()
    real_sync = log_module._fdatasync

    def held_in_the_takeover_thread(fd: int) -> BaseException | None:
        if threading.current_thread().name == "tollgate-audit-sync":
            release.wait()
        return real_sync(fd)

    monkeypatch.setattr(log_module, "_fdatasync", held_in_the_takeover_thread)

    async def scenario() -> list[BaseException | None]:
        log = AuditLog.open(tmp_path / "audit", identity="t", signer=SIGNER)
        await log.start()

        async def slow_to_cancel() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                release.set()  # the takeover's sync ends during the cancellation
                time.sleep(0.2)
                raise

        log._tasks.append(asyncio.get_running_loop().create_task(slow_to_cancel()))
        assert log._syncer is not None
        os.kill(log._syncer.pid, signal.SIGSTOP)
        appends = [asyncio.ensure_future(log.append("decision", decision(i))) for i in range(3)]
        await asyncio.sleep(0.05)
        await log.close(timeout=1.0)  # raised AssertionError
        return [a.exception() for a in appends]

    assert asyncio.run(scenario()) == [None, None, None]
    kept = records(tmp_path / "audit")
    assert [r["type"] for r in kept][-1] == "checkpoint"  # the final checkpoint was written
    reopened = AuditLog.open(tmp_path / "audit", identity="t", signer=SIGNER)  # lock released
    reopened.close_blocking()


def test_the_checkpoint_file_retry_waits_for_an_idle_trail(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        log = AuditLog.open(
            tmp_path / "audit", identity="t", signer=SIGNER, checkpoint_interval=0.05
        )
        await log.start()
        tries: list[bool] = []
        log._write_checkpoint_file = lambda: tries.append(log._in_flight is None)  # type: ignore[method-assign]
        log._checkpoint_file_note = "a note whose replace failed"
        assert log._syncer is not None
        with stopped(log._syncer.pid):
            # Checks that arrive together go to the helper, which is stopped: a batch
            # stays in flight (the disk, for all the gate can tell, is stalling).
            pending = [asyncio.ensure_future(log.append("decision", decision(i))) for i in range(3)]
            await asyncio.sleep(0.4)
            assert log._in_flight is not None
            while_busy = len(tries)
        await asyncio.gather(*pending)
        await asyncio.sleep(0.3)
        idle = len(tries) - while_busy
        log._checkpoint_file_note = None
        await log.close()
        return while_busy, idle

    while_busy, idle = asyncio.run(scenario())
    assert while_busy == 0 and idle >= 1
