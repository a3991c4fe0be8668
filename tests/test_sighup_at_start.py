"""A SIGHUP while the gate is still starting does not end it.

SIGHUP asks a running gate to read its policy again (policy-reload.md). Before the
policy watcher takes the signal, Python's default action would end the process while
it opens its audit trail: no shutdown record, and every check refused until a restart.
The test sends the signal as soon as the real daemon holds its audit lock, the first
thing it does after its imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.daemon import free_port

POLICY = "version: 1\ndefaultAction: deny\nrules: []\n"


def _holds(pid: int, path: Path) -> bool:
    try:
        return any(
            os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd")
        )
    except OSError:  # a descriptor closed while it was read
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_sighup_while_starting_is_not_fatal(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
            "--audit-dir", str(audit), "--port", str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _holds(process.pid, audit.resolve() / "lock"):
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the gate never opened its trail"
            time.sleep(0.0005)
        os.kill(process.pid, signal.SIGHUP)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:
                assert process.poll() is None, "the SIGHUP ended the starting gate"
                assert time.monotonic() < deadline, "the gate never became ready"
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            answer = client.post("/check", json={"action": "file.read", "path": "/etc/hostname"})
            assert answer.status_code == 200 and answer.json()["allowed"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        assert process.stderr is not None
        process.stderr.close()
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    types = [json.loads(line)["type"] for line in segment.read_text().splitlines()]
    assert types[0] == "startup" and "shutdown" in types[-2:], types
