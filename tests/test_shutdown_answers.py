"""What a request still open at SIGTERM is answered, against the real daemon.

A waiting agent holds a long-poll (``GET /v1/approvals/{id}?wait=60``) while its pod is
rolled: it is answered at once with the approval as it is, as a server ends a watch,
and the gate exits without waiting out its graceful-shutdown time. A request that
time cuts short (a body that never ends) gets the gate's JSON 503, not uvicorn's
plain-text 500 with a traceback on stderr (rt25 api review, finding 1).
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sidecar.keys import generate_keypair
from tests.daemon import Daemon

DELETE_WEB = {
    "action": "k8s.request",
    "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/apps/deployments/web"},
}


@pytest.fixture
def gate(tmp_path: Path, daemon_factory: Callable[..., Daemon]) -> Daemon:
    approver = load_pem_private_key(
        generate_keypair(tmp_path / "keys", "alice")[0].read_bytes(), None
    )
    assert isinstance(approver, Ed25519PrivateKey)
    public = base64.b64encode(approver.public_key().public_bytes_raw()).decode()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"""\
version: 1
rules:
  - {{id: deploy-writes, action: k8s.request, verb: [delete], resource: deployments, decision: require_approval}}
approvals:
  approvers:
    - {{name: alice, publicKey: "{public}"}}
"""
    )
    signing_key = generate_keypair(tmp_path / "keys")[0]
    return daemon_factory(policy, "--signing-key", str(signing_key))


def stopped(gate: Daemon) -> tuple[float, str]:
    """SIGTERM the gate and wait for it: seconds it took to exit, and its stderr."""
    assert gate.process is not None and gate.process.stderr is not None
    sent = time.monotonic()
    gate.process.send_signal(signal.SIGTERM)
    gate.process.wait(30)
    return time.monotonic() - sent, gate.process.stderr.read().decode()


def test_a_long_poll_is_answered_at_once_with_the_approval_at_sigterm(gate: Daemon) -> None:
    approval_id = gate.check(DELETE_WEB).json()["approval"]["id"]
    answered: dict[str, Any] = {}

    def poll() -> None:
        response = httpx.get(f"{gate.url}/v1/approvals/{approval_id}?wait=60", timeout=30)
        answered.update(status=response.status_code, headers=response.headers, body=response.text)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)  # the poll is held by now
    took, stderr = stopped(gate)
    poller.join(30)

    assert answered["status"] == 200, answered
    assert answered["headers"]["content-type"] == "application/json"
    body = json.loads(answered["body"])
    assert body["id"] == approval_id and body["status"] == "pending"
    assert took < 5, f"the gate took {took:.1f} s to exit"
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    last = gate.records()[-2:]
    assert [r["type"] for r in last] == ["shutdown", "checkpoint"]
    assert last[-1]["reason"] == "shutdown"


def test_a_check_whose_body_never_ends_is_answered_503_json_at_sigterm(gate: Daemon) -> None:
    # "/check?" is served by the ASGI app, not the server's own fast path.
    with socket.create_connection(("127.0.0.1", gate.port), timeout=30) as client:
        client.sendall(
            b'POST /check? HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"action"'
        )
        time.sleep(0.5)
        took, stderr = stopped(gate)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer
    assert b"content-type: application/json" in head.lower()
    payload = json.loads(body)
    assert payload["allowed"] is False and payload["error"]["code"] == "unavailable"
    assert "Traceback" not in stderr and "Exception in ASGI application" not in stderr, stderr
    assert took < 20
    assert gate.records()[-1]["reason"] == "shutdown"
