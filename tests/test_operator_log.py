"""What the gate tells an operator on stderr, where ``kubectl logs`` shows it.

A rejected policy and an unwritable trail turn every check into a deny; the operator
must be able to see why without curling /ready from inside the pod.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.keys import generate_keypair
from sidecar.server import log_to_stderr
from tests.daemon import Daemon, free_port, refusing_writes, serve_until_exit, taken_port
from tests.test_reload import ALLOW_READS

GOOD = ALLOW_READS.decode()
BAD = """\
version: 1
rules:
  - id: broken
    action: file.read
    bogus: 1
    decision: allow
"""
READ = {"action": "file.read", "path": "/app/data/report.csv"}


def stderr_after_stop(daemon: Daemon) -> str:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    _, err = daemon.process.communicate(timeout=20)
    return err.decode()


def wait_for(predicate, timeout: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_policy_rejected_at_start_is_logged_with_its_problems(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BAD)
    daemon = Daemon(policy, tmp_path / "audit").start(wait_ready=False)
    assert daemon.get("/ready").status_code == 503
    err = stderr_after_stop(daemon)
    assert "ERROR tollgate.policy: policy" in err
    assert "rejected, no policy is loaded, every check is answered 503" in err
    assert "rules[0] (id 'broken'): bogus: unknown key" in err


def test_reloads_are_logged_and_a_rejected_one_names_the_policy_kept(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    daemon = Daemon(policy, tmp_path / "audit", "--log-level", "info").start()
    first_hash = daemon.get("/v1/status").json()["policy"]["hash"]
    staged = tmp_path / "staged.yaml"
    staged.write_text(BAD)
    staged.rename(policy)
    wait_for(lambda: daemon.get("/v1/status").json()["policy"]["lastError"] is not None)
    err = stderr_after_stop(daemon)
    assert f"INFO tollgate.policy: policy {first_hash} loaded from" in err
    assert f"rejected, keeping {first_hash}: rules[0] (id 'broken'): bogus" in err


def test_an_unwritable_trail_is_logged_once_and_its_recovery_too(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    daemon = Daemon(policy, tmp_path / "audit").start()
    assert daemon.check(READ).json()["allowed"] is True
    with refusing_writes(daemon):
        for _ in range(3):
            refused = daemon.check(READ)
            assert refused.status_code == 503
            message = refused.json()["error"]["message"]
            assert message.startswith("audit trail cannot be written: ")
            assert message.count("cannot be written") == 1, message
    assert daemon.check(READ).json()["allowed"] is True
    err = stderr_after_stop(daemon)
    assert err.count("ERROR tollgate.audit: audit trail cannot be written") == 1, err
    assert "checks are denied (503)" in err
    assert "WARNING tollgate.audit: audit trail is writable again" in err


def test_stopping_while_the_trail_is_unwritable_says_what_was_not_written(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    key, _ = generate_keypair(tmp_path / "keys", "tollgate")
    daemon = Daemon(policy, tmp_path / "audit", "--signing-key", str(key)).start()
    assert daemon.check(READ).json()["allowed"] is True  # seq 2, not signed yet
    with refusing_writes(daemon):
        assert daemon.check(READ).status_code == 503
        err = stderr_after_stop(daemon)
    assert "ERROR tollgate.audit: shutdown record not written: audit trail cannot be" in err
    assert (
        "ERROR tollgate.audit: final checkpoint not written, records 0 to 2 are not signed" in err
    )


def _exit_notes(out: bytes) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == "audit checkpoint"]


def test_a_gate_that_cannot_write_its_final_checkpoint_prints_it_signed(
    tmp_path: Path,
) -> None:
    # rt24 ops review: with the segment being written deleted behind the gate's back, the
    # records it had answered for vanished without a trace a verifier could use, and a
    # restart gave their seqs to other records. The head they were answered from is
    # signed on stdout at exit, off the volume, as a checkpoint of the log.
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    audit = tmp_path / "audit"
    daemon = Daemon(policy, audit, "--signing-key", str(key)).start()
    answered = daemon.check(READ).json()
    assert answered["allowed"] is True and answered["audit"]["seq"] == 2
    for segment in (audit / "segments").glob("*.jsonl"):
        segment.unlink()
    assert daemon.check(READ).status_code == 503
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    out, _ = daemon.process.communicate(timeout=20)
    [note_line] = _exit_notes(out)
    assert (note_line["treeSize"], note_line["seq"]) == (3, None)
    note = tmp_path / "exit-checkpoint"
    note.write_text(str(note_line["note"]))

    restarted = Daemon(policy, audit, "--signing-key", str(key)).start()
    restarted.check(READ)
    restarted.stop()

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sidecar.cli", "audit", "verify", str(audit),
             "--public-key", str(public), *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert verify().returncode == 0  # the volume alone cannot tell
    caught = verify("--checkpoint", str(note))
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert caught.stdout.startswith("tampered: "), caught.stdout


def test_an_exit_note_of_a_trail_left_whole_verifies(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    daemon = Daemon(policy, tmp_path / "audit", "--signing-key", str(key)).start()
    assert daemon.check(READ).json()["allowed"] is True
    with refusing_writes(daemon):
        assert daemon.check(READ).status_code == 503
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        out, _ = daemon.process.communicate(timeout=20)
    [note_line] = _exit_notes(out)
    note = tmp_path / "exit-checkpoint"
    note.write_text(str(note_line["note"]))
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "verify", str(tmp_path / "audit"),
         "--public-key", str(public), "--checkpoint", str(note)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("intact: 3 records"), result.stdout
    # The next start finds those records unsigned and says so; given the exit note, which
    # signs exactly them, verify has nothing left to warn of.
    restarted = Daemon(policy, tmp_path / "audit", "--signing-key", str(key)).start()
    assert restarted.check(READ).json()["allowed"] is True
    restarted.stop()
    startup = next(r for r in restarted.records() if r["type"] == "startup" and r["seq"] == 3)
    assert startup["unsignedAtStart"] == {"from": 0, "to": 2}
    command = [
        sys.executable, "-m", "sidecar.cli", "audit", "verify", str(tmp_path / "audit"),
        "--public-key", str(public),
    ]  # fmt: skip
    alone = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert alone.returncode == 0 and "found records (seq 0 to 2)" in alone.stderr
    with_note = subprocess.run(
        [*command, "--checkpoint", str(note)], capture_output=True, text=True, timeout=60
    )
    assert with_note.returncode == 0, with_note.stdout + with_note.stderr
    assert "warning" not in with_note.stderr, with_note.stderr


def test_a_gate_that_cannot_listen_records_why_it_stopped(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    audit = tmp_path / "audit"
    with taken_port() as port:
        result = serve_until_exit(policy, audit, "--port", str(port))
    assert result.returncode != 0 and "address already in use" in result.stderr
    records = [
        json.loads(line)
        for segment in sorted((audit / "segments").glob("*.jsonl"))
        for line in segment.read_text().splitlines()
    ]
    shutdowns = [r for r in records if r["type"] == "shutdown"]
    assert shutdowns and shutdowns[-1]["reason"] == "startFailed"


@pytest.fixture
def tollgate_logger() -> Iterator[logging.Logger]:
    """The "tollgate" logger, as it was before the test configured it."""
    logger = logging.getLogger("tollgate")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield logger
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


def test_an_internal_errors_traceback_on_stderr_is_redacted_as_the_trail_would_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tollgate_logger: logging.Logger
) -> None:
    # A bug's exception message may quote the request; the log must not carry in clear
    # a secret that the trail redacts.
    log = AuditLog.open(tmp_path / "audit", identity="ns/pod")
    log_to_stderr("warning", log.redact_text)
    logger = logging.getLogger("tollgate.check")
    token = "ghp_" + "a1B2" * 9
    try:
        raise ValueError(f"cannot read header Authorization: Bearer {token} (password=hunter2)")
    except ValueError:
        logger.exception("check failed with an internal error (answered 500, deny)")
    err = capsys.readouterr().err
    assert "check failed with an internal error" in err
    assert "Traceback" in err and "ValueError: cannot read header" in err
    assert token not in err and "hunter2" not in err
    assert err.count("[REDACTED:") >= 2
    # The same secret gets the trail's tag (its HMAC), so log and trail can be matched.
    assert log.redact_text(token).split(":")[-1] in err
    log.close_blocking()


# Makes the daemon's GET /v1/status fail with an exception that quotes a secret, as a
# bug quoting a request or a header could: the Starlette app answers 500 and re-raises,
# and uvicorn logs the traceback on its own logger.
FAILING_STATUS = """\
import sidecar.gate

def _failing_status(self):
    raise ValueError("cannot render status for Authorization: Bearer %s (password=hunter2)")

sidecar.gate.Gate.status = _failing_status
"""


def test_a_traceback_uvicorn_logs_for_a_failed_route_is_redacted(tmp_path: Path) -> None:
    token = "ghp_" + "a1B2" * 9
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(FAILING_STATUS % token)
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    env = {"PYTHONPATH": f"{shim}:{Path.cwd()}"}
    daemon = Daemon(policy, tmp_path / "audit", env=env).start()
    assert daemon.get("/v1/status").status_code == 500
    err = stderr_after_stop(daemon)
    assert "Traceback" in err and "ValueError: cannot render status" in err
    assert token not in err and "hunter2" not in err
    assert err.count("[REDACTED:") >= 2


def test_a_request_cannot_write_a_line_of_its_own_into_the_log(tmp_path: Path) -> None:
    # Found by the red-team review of 2026-12-07: a web page's refused request was logged
    # with its decoded path, so "GET /a%0A<line>%0A" wrote whole lines of its sender's
    # choosing, a forged "audit checkpoint" line among them, which the deploy guide's
    # recipe then took for the newest checkpoint.
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    daemon = Daemon(policy, tmp_path / "audit").start()
    forged = '{"level":"info","logger":"tollgate.audit","msg":"audit checkpoint","note":"x"}'
    encoded = urllib.parse.quote(forged, safe="")
    target = f"/a%0A{encoded}%0D%0AFORGED%E2%80%A8ERROR"
    try:
        with socket.create_connection(("127.0.0.1", daemon.port)) as connection:
            connection.sendall(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Origin: https://evil.example\r\nConnection: close\r\n\r\n".encode()
            )
            status_line = connection.recv(65536).split(b"\r\n", 1)[0]
    finally:
        err = stderr_after_stop(daemon)
    assert b" 403 " in status_line
    refused = [line for line in err.splitlines() if "refused GET /a" in line]
    assert len(refused) == 1, err
    assert "\\x0a" in refused[0] and "\\x0d" in refused[0] and "\\u2028" in refused[0]
    assert not any(line.startswith(("{", "FORGED")) for line in err.splitlines()), err


# The trail's opening held up, as a large trail's reading is (up to a minute in a pod).
SLOW_OPEN = """\
import pathlib
import time

import sidecar.server

_build_gate = sidecar.server.build_gate


def _slow_build_gate(config):
    pathlib.Path(%r).write_text("opening")
    time.sleep(60)
    return _build_gate(config)


sidecar.server.build_gate = _slow_build_gate
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_trail_is_opened_stops_the_start(
    tmp_path: Path, signal_number: signal.Signals
) -> None:
    # Found by the red-team review of 2026-12-07: until uvicorn ran, no handler was
    # installed, and a container's PID 1 gets no default action for SIGTERM: a pod
    # deleted during a long start waited out its grace period and was killed.
    marker = tmp_path / "opening"
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SLOW_OPEN % str(marker))
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
         "--audit-dir", str(tmp_path / "audit"), "--port", str(free_port())],
        env={**os.environ, "PYTHONPATH": f"{shim}:{Path.cwd()}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for(marker.exists, timeout=30)
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"tollgate: stopped by {signal_number.name} while opening the audit trail" in (
        err.decode()
    )


def test_ctrl_c_stops_a_serving_gate_quietly_with_its_shutdown_record(tmp_path: Path) -> None:
    # Found in review (2026-12-07): the README's way to stop the gate printed a
    # 23-line KeyboardInterrupt traceback, which reads like a crash.
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    # A gate started with SIGINT ignored (a non-interactive shell's background job, as a
    # test run started with `&` is) inherits that, and uvicorn then stops it gracefully
    # with status 0: start this one as a terminal's foreground command would be.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        gate = Daemon(policy, tmp_path / "audit").start()
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert gate.check({"action": "file.read", "path": "/app/data/x"}).status_code == 200
    assert gate.process is not None
    gate.process.send_signal(signal.SIGINT)
    _, err = gate.process.communicate(timeout=30)
    # Ended by SIGINT itself, as a shell expects of Ctrl-C: a script or loop running the
    # gate stops too, which it would not for an exit status of 130 (second review).
    assert gate.process.returncode == -signal.SIGINT, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()
    gate.stop()
    assert gate.records()[-1]["type"] == "shutdown"
