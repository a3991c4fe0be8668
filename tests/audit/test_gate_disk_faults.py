"""The real gate on a real full or read-only audit volume: 503 / deny, then back.

``python -m sidecar.cli serve`` writes its trail to a size-limited tmpfs (needs root
and mount; skipped otherwise). While the volume is full or read-only, every check is
answered 503 with ``allowed: false`` and ``/ready`` fails; once the volume takes
writes again the gate answers by itself, without a restart, and the trail verifies.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.audit.verify import verify_trail
from tests.audit.conftest import fill_volume
from tests.daemon import Daemon

Tmpfs = Callable[[str], Path]
POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""
ALLOWED = {"action": "file.read", "path": "/app/data/report.csv"}


@pytest.fixture
def gate_on_tmpfs(tmpfs: Tmpfs, tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    mount = tmpfs("1m")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "keygen", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    daemon = Daemon(policy, mount / "audit", "--signing-key", str(keys / "tollgate.key")).start()
    try:
        yield daemon, mount
    finally:
        daemon.stop()


def _remount(mount: Path, mode: str) -> None:
    result = subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot remount {mode}: {result.stderr.decode().strip()}")


# A record larger than a page needs fresh blocks (a small one may still fit in the
# last page of the segment, and then it is written and answered as usual).
BIG = {**ALLOWED, "context": {"note": "x" * 12000}}


def _assert_denied_while_unwritable(daemon: Daemon, reason: str) -> None:
    for _ in range(3):
        answer = daemon.check(BIG)
        assert answer.status_code == 503, answer.text
        assert answer.json()["allowed"] is False
        assert answer.json()["error"]["code"] == "unavailable"
    ready = daemon.get("/ready")
    assert ready.status_code == 503
    assert reason in ready.text


def _assert_recovers(daemon: Daemon) -> None:
    deadline = time.monotonic() + 10
    while True:
        answer = daemon.check(ALLOWED)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed"] is True
    assert daemon.get("/ready").status_code == 200


def test_a_full_volume_denies_every_check_then_recovers(gate_on_tmpfs: tuple[Daemon, Path]) -> None:
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    filler = fill_volume(mount)
    _assert_denied_while_unwritable(daemon, "No space left")
    filler.unlink()
    _assert_recovers(daemon)
    daemon.stop()
    report = verify_trail(mount / "audit")
    assert report.intact, report.summary()
    decisions = [r for r in daemon.records() if r["type"] == "decision"]
    assert [d["allowed"] for d in decisions] == [True, True]  # the 503s left no record
    assert not any("note" in d["request"].get("context", {}) for d in decisions)


def test_a_read_only_volume_denies_every_check_then_recovers(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    _remount(mount, "ro")
    try:
        _assert_denied_while_unwritable(daemon, "Read-only")
    finally:
        _remount(mount, "rw")
    _assert_recovers(daemon)
    daemon.stop()
    assert verify_trail(mount / "audit").intact


def test_a_volume_full_at_a_checkpoint_is_never_an_allow(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    # The interval checkpoint (10 s) replaces DIR/checkpoint through a temporary file;
    # with the volume full that fails, and the checks meanwhile must still be denied.
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    filler = fill_volume(mount)
    end = time.monotonic() + 11
    while time.monotonic() < end:
        answer = daemon.check(BIG)
        assert answer.status_code == 503 and answer.json()["allowed"] is False
        time.sleep(0.5)
    filler.unlink()
    _assert_recovers(daemon)
    daemon.stop()
    assert verify_trail(mount / "audit").intact


def _ready_reason(daemon: Daemon) -> tuple[int, str]:
    ready = daemon.get("/ready")
    return ready.status_code, ready.text


def test_an_idle_gate_reports_a_read_only_volume_before_any_check(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    # The kubelet's readiness probe is what an operator watches: it must not wait for an
    # agent's check to fail before it says the trail cannot be written.
    daemon, mount = gate_on_tmpfs
    assert _ready_reason(daemon)[0] == 200
    _remount(mount, "ro")
    try:
        status, text = _ready_reason(daemon)
        assert status == 503
        assert "the audit volume is mounted read-only" in text
    finally:
        _remount(mount, "rw")
    assert _ready_reason(daemon)[0] == 200
    assert daemon.check(ALLOWED).json()["allowed"] is True


def test_an_idle_gate_reports_a_full_volume_before_any_check(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    daemon, mount = gate_on_tmpfs
    filler = fill_volume(mount)
    status, text = _ready_reason(daemon)
    assert status == 503
    assert "the audit volume is full" in text
    assert daemon.get("/v1/status").json()["ready"] is False
    filler.unlink()
    assert _ready_reason(daemon)[0] == 200
    assert daemon.check(ALLOWED).json()["allowed"] is True


def _ready_within(daemon: Daemon, seconds: float) -> tuple[int, str]:
    deadline = time.monotonic() + seconds
    while True:
        status, text = _ready_reason(daemon)
        if status == 200 or time.monotonic() > deadline:
            return status, text
        time.sleep(0.2)


def test_an_idle_gate_is_ready_again_once_a_failed_volume_is_back(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    # rt24 ops review: after one check failed on a read-only (or full) volume, /ready
    # stayed 503 until the next check wrote, and an agent reached through its Service
    # sends none while its pod is out of the endpoints. No check is sent here.
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    _remount(mount, "ro")
    try:
        _assert_denied_while_unwritable(daemon, "Read-only")
    finally:
        _remount(mount, "rw")
    assert _ready_within(daemon, 5) == (200, '{"status":"ready"}')
    filler = fill_volume(mount)
    _assert_denied_while_unwritable(daemon, "No space left")
    time.sleep(1.5)  # tried again meanwhile: the volume's being full is still reported
    status, text = _ready_reason(daemon)
    assert status == 503 and "the audit volume is full" in text
    filler.unlink()
    assert _ready_within(daemon, 5) == (200, '{"status":"ready"}')
    assert daemon.check(ALLOWED).json()["allowed"] is True
    daemon.stop()
    assert verify_trail(mount / "audit").intact


def test_an_idle_gate_reports_a_volume_out_of_inodes_before_any_check(
    tmpfs: Tmpfs, tmp_path: Path
) -> None:
    # rt24 ops review: with every inode taken /ready said ready, and the check that
    # rotated the segment was the first to fail.
    mount = tmpfs("4m,nr_inodes=64")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = Daemon(policy, mount / "audit").start()
    try:
        assert _ready_reason(daemon)[0] == 200
        taken = []
        while True:
            path = mount / f"inode-{len(taken)}"
            try:
                path.touch()
            except OSError:
                break
            taken.append(path)
        status, text = _ready_reason(daemon)
        assert status == 503
        assert "the audit volume has no inodes left to rotate" in text
        for path in taken[:16]:
            path.unlink()
        assert _ready_reason(daemon)[0] == 200
        assert daemon.check(ALLOWED).json()["allowed"] is True
    finally:
        daemon.stop()


def test_bytes_appended_after_a_recovery_are_refused_not_cut(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    # rt24 third review: the idle retry left the writer taking whatever followed the
    # trail's end for leftovers of its own failed write, and the next record cut a line
    # appended outside Tollgate without a word.
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    _remount(mount, "ro")
    try:
        assert daemon.check(BIG).status_code == 503
    finally:
        _remount(mount, "rw")
    assert _ready_within(daemon, 5)[0] == 200  # the retry ran
    segment = sorted((mount / "audit" / "segments").glob("*.jsonl"))[-1]
    forged = b'{"forged":true}\n'
    with segment.open("ab") as handle:
        handle.write(forged)
    refused = daemon.check(ALLOWED)
    assert refused.status_code == 503 and refused.json()["allowed"] is False
    assert "changed outside Tollgate" in refused.json()["error"]["message"]
    assert segment.read_bytes().endswith(forged)


def test_status_says_unwritable_while_the_volume_is_full(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    # rt25 audit review, F3: on a full volume /v1/status said writable: true, lastError:
    # null, and the log "audit trail is writable again", while every check got 503.
    daemon, mount = gate_on_tmpfs
    assert daemon.check(ALLOWED).json()["allowed"] is True
    filler = fill_volume(mount)
    _assert_denied_while_unwritable(daemon, "No space left")
    time.sleep(1.5)  # the idle retry ran meanwhile
    status = daemon.get("/v1/status").json()
    assert status["ready"] is False
    assert status["audit"]["writable"] is False
    assert status["audit"]["lastError"].startswith("the audit volume is full")
    assert daemon.check(BIG).status_code == 503
    filler.unlink()
    assert _ready_within(daemon, 5) == (200, '{"status":"ready"}')
    status = daemon.get("/v1/status").json()
    assert (status["audit"]["writable"], status["audit"]["lastError"]) == (True, None)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    _, err = daemon.process.communicate(timeout=20)
    said = err.decode()
    # Once for the outage, once when it ended: not in turn while the volume was full.
    assert said.count("audit trail cannot be written, checks are denied") == 1, said
    assert said.count("audit trail is writable again") == 1, said


def test_status_says_unwritable_on_a_full_volume_before_any_write_fails(
    gate_on_tmpfs: tuple[Daemon, Path],
) -> None:
    daemon, mount = gate_on_tmpfs
    filler = fill_volume(mount)
    try:
        status = daemon.get("/v1/status").json()
        assert status["ready"] is False
        assert status["audit"]["writable"] is False
        assert status["audit"]["lastError"].startswith("the audit volume is full")
    finally:
        filler.unlink()
    assert daemon.get("/v1/status").json()["audit"]["writable"] is True
