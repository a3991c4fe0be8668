"""Run the real gate daemon (``python -m sidecar.cli serve``) on a free loopback port.

Tests talk to it over real HTTP, read its real audit files and stop it with real
signals; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on while inside."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def serve_until_exit(
    policy: Path, audit_dir: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``tollgate serve`` run to its end (a start that is expected to fail)."""
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
         "--audit-dir", str(audit_dir), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def module_daemon(factory: pytest.TempPathFactory, name: str, policy_text: str) -> Iterator[Daemon]:
    """A daemon on ``policy_text`` in a directory of its own, for a module-scoped
    fixture to yield from; stopped after."""
    root = factory.mktemp(name)
    (root / "policy.yaml").write_text(policy_text)
    daemon = Daemon(root / "policy.yaml", root / "audit").start()
    yield daemon
    daemon.stop()


class Daemon:
    def __init__(
        self,
        policy: Path,
        audit_dir: Path,
        *extra_args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self.audit_dir = audit_dir
        self.extra_args = extra_args
        self.env = {**os.environ, "TOLLGATE_IDENTITY": "test/agent/pod-1", **(env or {})}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 20.0) -> Daemon:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "sidecar.cli", "serve",
                "--policy", str(self.policy), "--audit-dir", str(self.audit_dir),
                "--port", str(self.port), *self.extra_args,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=10.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited early: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                response = self.client.get("/ready" if wait_ready else "/health")
                if response.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("daemon did not become ready")

    def check(self, body: dict[str, Any] | str | bytes, **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        if isinstance(body, dict):
            return self.client.post("/check", json=body, **kwargs)
        return self.client.post("/check", content=body, **kwargs)

    def get(self, path: str) -> httpx.Response:
        assert self.client is not None
        return self.client.get(path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def records(self) -> list[dict[str, Any]]:
        """Every audit record on disk, in order, across segments."""
        found: list[dict[str, Any]] = []
        for segment in sorted((self.audit_dir / "segments").glob("*.jsonl")):
            with segment.open("rb") as handle:
                found.extend(json.loads(line) for line in handle if line.strip())
        return found


def checked_through_a_gate(
    tmp_path: Path, policy_text: str, requests: list[dict[str, Any]]
) -> tuple[Daemon, bytes]:
    """Start a real gate on ``policy_text``, send each request to /check (each must be
    answered 200), stop the gate; the stopped daemon and every byte under its audit
    directory (segments, checkpoints, anything a secret could leak into)."""
    daemon, statuses, everything = answered_through_a_gate(tmp_path, policy_text, requests)
    assert statuses == [200] * len(requests), statuses
    return daemon, everything


def answered_through_a_gate(
    tmp_path: Path, policy_text: str, requests: list[dict[str, Any]]
) -> tuple[Daemon, list[int], bytes]:
    """As ``checked_through_a_gate``, for requests a gate may also refuse: the stopped
    daemon, the status of each answer, and every byte under its audit directory."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    daemon = Daemon(policy, tmp_path / "audit").start()
    try:
        statuses = [daemon.check(request).status_code for request in requests]
    finally:
        daemon.stop()
    audit = daemon.audit_dir
    everything = b"".join(path.read_bytes() for path in audit.rglob("*") if path.is_file())
    return daemon, statuses, everything


@contextlib.contextmanager
def refusing_writes(daemon: Daemon | Path) -> Iterator[None]:
    """A byte added to the daemon's current segment behind its back: the gate refuses
    every write there (its batches fail, as on a broken disk) until the byte is taken
    away on leaving, after which it writes again without a restart. ``daemon`` may also
    be the audit directory of a gate run in the test's own process."""
    audit_dir = daemon if isinstance(daemon, Path) else daemon.audit_dir
    segment = sorted((audit_dir / "segments").glob("*.jsonl"))[-1]
    with segment.open("ab") as handle:
        handle.write(b"x")
    try:
        yield
    finally:
        with segment.open("r+b") as handle:
            handle.truncate(segment.stat().st_size - 1)


@contextlib.contextmanager
def answering_peer(answer: bytes, byte_every: float | None = None) -> Iterator[str]:
    """Something at a loopback URL (yielded) that reads one request and sends ``answer``:
    at once, or a byte every ``byte_every`` seconds. For a client facing a gate that is
    slow, or a port that is not a gate at all."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                if byte_every is None:
                    conn.sendall(answer)
                    return
                for byte in answer:
                    conn.sendall(bytes([byte]))
                    time.sleep(byte_every)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def answer_to_a_streaming_body(port: int, head: bytes, seconds: float = 10.0) -> bytes | None:
    """Send ``head`` and then keep sending body bytes, as a client streaming a large body
    does, reading what the server answers meanwhile. The answer once the server closed
    the connection; None when it was still open after ``seconds``."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        deadline = time.monotonic() + seconds
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while time.monotonic() < deadline:
                sock.sendall(b"a" * 65536)
                sock.settimeout(0.05)
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return answer
                    answer += chunk
            return None
    return answer  # reset by the server: closed
