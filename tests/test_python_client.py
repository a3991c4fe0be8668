"""The Python client ``tollgate_client`` (CONTRACT section 5) against the real daemon.

Decisions come from a real ``tollgate serve`` on a free loopback port. The fail-closed
paths use real loopback servers that misbehave on purpose: nobody listening, a server
that accepts and never answers, one that answers garbage, a 500, ``"allowed": "true"``.
The guarded helpers open real files, run real programs, fetch from a real HTTP server and
send Kubernetes requests to a real (loopback) API stand-in.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import copy
import glob
import http.server
import json
import os
import pickle
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.canonical import canonical_bytes
from tests.daemon import Daemon, answering_peer, free_port, module_daemon

CLIENT_DIR = Path(__file__).resolve().parents[1] / "client" / "python"
sys.path.insert(0, str(CLIENT_DIR))

from tollgate_client import (  # noqa: E402
    Approval,
    Decision,
    Denied,
    Gate,
    KubeCluster,
    wait_for_approval,
)

POLICY = """\
version: 1
defaultAction: deny
rules:
  - {{id: read-data, action: file.read, path: {{glob: "{files}/data/**"}}, decision: allow}}
  - {{id: write-out, action: file.write, path: {{glob: "{files}/out/**"}}, decision: allow}}
  - {{id: echo, action: process.exec, command: [echo, printf], decision: allow}}
  - {{id: cat, action: process.exec, command: cat, decision: allow}}
  - {{id: local-web, action: network.request, host: 127.0.0.1, decision: allow}}
  - {{id: pods-read, action: k8s.request, verb: [get, list], resource: pods, namespace: apps, decision: allow}}
  - {{id: deploy-delete, action: k8s.request, verb: delete, resource: deployments, decision: require_approval, reason: "deleting a deployment needs a human"}}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client-files")
    for name in ("data", "out", "secret"):
        (root / name).mkdir()
    (root / "data" / "report.csv").write_text("a,b\n1,2\n")
    (root / "secret" / "key").write_text("do not read")
    (root / "data" / "escape").symlink_to(root / "secret" / "key")
    return root


@pytest.fixture(scope="module")
def daemon(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    state = tmp_path_factory.mktemp("client-daemon")
    policy = state / "policy.yaml"
    policy.write_text(POLICY.format(files=files))
    running = Daemon(policy, state / "audit").start()
    yield running
    running.stop()


@pytest.fixture
def gate(daemon: Daemon) -> Iterator[Gate]:
    with Gate(daemon.url) as client:
        yield client


# -- misbehaving loopback servers ---------------------------------------------------------


def read_request(conn: socket.socket) -> bytes | None:
    """One HTTP/1.1 request (head and body) from a raw socket, or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def http_answer(status: int, body: bytes, reason: str = "X") -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class RawServer:
    """Accepts loopback connections and hands each to ``script(conn, index)`` in a thread."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            index, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._run, args=(conn, index), daemon=True).start()

    def _run(self, conn: socket.socket, index: int) -> None:
        with conn, contextlib.suppress(OSError):
            self.script(conn, index)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, int], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Callable[[socket.socket, int], None]) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answering(status: int, body: bytes) -> Callable[[socket.socket, int], None]:
    """A script that answers every request on the connection with the same bytes."""

    def script(conn: socket.socket, _: int) -> None:
        while read_request(conn) is not None:
            conn.sendall(http_answer(status, body))

    return script


def answering_then_closing(
    answer: bytes, pause: float = 0.0
) -> Callable[[socket.socket, int], None]:
    """A script that answers the first request with ``answer`` as given (head and body
    ``pause`` s apart), then closes the connection."""

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        head, _, body = answer.partition(b"\r\n\r\n")
        conn.sendall(head + b"\r\n\r\n")
        time.sleep(pause)
        conn.sendall(body)

    return script


ALLOW = b'{"allowed":true}'  # 16 bytes


# -- decisions from the real daemon ---------------------------------------------------------


def test_allow_and_deny_come_back_as_decisions(gate: Gate, files: Path) -> None:
    allowed = gate.check("file.read", path=f"{files}/data/report.csv")
    assert allowed.allowed is True and allowed.decision == "allow"
    assert allowed.rule == "read-data" and allowed.error is None and allowed.status == 200
    assert allowed.decision_id is not None and len(allowed.decision_id) == 26
    denied = gate.check("file.read", path="/etc/shadow")
    assert (denied.allowed, denied.decision, denied.rule) == (False, "deny", None)
    assert denied.reason == "no rule allows file.read of /etc/shadow"


def test_require_returns_the_allow_and_raises_denied_with_the_reason(
    gate: Gate, files: Path
) -> None:
    assert gate.require("file.read", path=f"{files}/data/report.csv").rule == "read-data"
    with pytest.raises(Denied) as raised:
        gate.require("process.exec", argv=["rm", "-rf", "/"])
    assert raised.value.decision.decision == "deny"
    assert "no rule allows process.exec" in raised.value.reason == str(raised.value)


def _require_in_a_worker(url: str, argv: list[str]) -> None:
    Gate(url).require("process.exec", argv=argv)


def test_denied_survives_pickling_copying_and_a_process_pool(gate: Gate, daemon: Daemon) -> None:
    """Exception pickles its args, the message, which Denied.__init__ cannot take: a
    refusal in a worker process broke the pool (BrokenProcessPool) and copy.copy raised
    AttributeError (rt25 clients review, 6)."""
    with pytest.raises(Denied) as raised:
        gate.require("process.exec", argv=["rm", "-rf", "/"])
    denied = raised.value
    denied.add_note("from the run_shell tool")
    for copied in (pickle.loads(pickle.dumps(denied)), copy.copy(denied), copy.deepcopy(denied)):
        assert type(copied) is Denied
        assert copied.decision == denied.decision and copied.reason == denied.reason
        assert str(copied) == str(denied) and copied.__notes__ == ["from the run_shell tool"]
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        future = pool.submit(_require_in_a_worker, daemon.url, ["rm", "-rf", "/nothing"])
        with pytest.raises(Denied) as raised:
            future.result(timeout=60)
        assert "no rule allows process.exec" in raised.value.reason
        assert pool.submit(str, 1).result(timeout=60) == "1"  # the pool still works


def test_require_approval_is_a_deny_that_names_the_rule(gate: Gate) -> None:
    path = "/apis/apps/v1/namespaces/apps/deployments/web"
    decision = gate.check("k8s.request", k8s={"method": "DELETE", "path": path})
    assert (decision.allowed, decision.decision, decision.rule) == (
        False,
        "require_approval",
        "deploy-delete",
    )
    # The gate may add that an identical request is already waiting for approval.
    assert decision.reason.startswith("deleting a deployment needs a human")
    with pytest.raises(Denied):
        gate.require("k8s.request", k8s={"method": "DELETE", "path": path})


def test_snake_case_fields_are_sent_camel_case(gate: Gate, daemon: Daemon, files: Path) -> None:
    # real_path -> realPath: the gate evaluates it and the stricter decision wins.
    escaped = gate.check("file.read", path=f"{files}/data/escape", real_path=f"{files}/secret/key")
    assert not escaped.allowed and escaped.reason.startswith("realPath: ")
    # command_line -> commandLine; the gate splits it like sh.
    assert gate.check("process.exec", command_line="echo a && printf b").allowed
    assert not gate.check("process.exec", command_line="echo a; rm -rf /").allowed
    # dry_run -> dryRun: recorded as a preflight.
    preflight = gate.check("file.read", path=f"{files}/data/report.csv", dry_run=True)
    assert preflight.allowed and preflight.raw.get("dryRun") is True
    record = next(r for r in daemon.records() if r.get("decisionId") == preflight.decision_id)
    assert record["dryRun"] is True


def test_camel_case_and_snake_case_of_one_field_together_are_refused(gate: Gate) -> None:
    decision = gate.check("file.read", path="/x", realPath="/x", real_path="/y")
    assert not decision.allowed and "given twice" in decision.reason


def test_a_field_the_gate_does_not_know_is_a_deny_with_the_gates_message(gate: Gate) -> None:
    decision = gate.check("file.read", path="/app/data/x", colour="blue")
    assert (decision.allowed, decision.error, decision.status) == (False, "invalid_request", 400)
    assert "colour" in decision.reason and "unknown field" in decision.reason


def test_values_json_cannot_hold_are_a_deny_not_an_exception(gate: Gate) -> None:
    decision = gate.check("file.read", path="/x", context={"n": float("nan")})
    assert not decision.allowed and decision.error == "bad_answer"
    assert "could not be encoded" in decision.reason


def test_sequential_checks_reuse_one_keep_alive_connection(gate: Gate, files: Path) -> None:
    for _ in range(20):
        assert gate.check("file.read", path=f"{files}/data/report.csv").allowed
    assert gate.connections_opened == 1


def test_checks_from_many_threads_are_all_answered(gate: Gate, files: Path) -> None:
    results: list[bool] = []

    def worker() -> None:
        for _ in range(10):
            results.append(gate.check("file.read", path=f"{files}/data/report.csv").allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 80
    assert gate.connections_opened <= 8


def test_url_comes_from_tollgate_url_then_the_default(
    monkeypatch: pytest.MonkeyPatch, daemon: Daemon
) -> None:
    monkeypatch.setenv("TOLLGATE_URL", daemon.url + "/")
    assert Gate().url == daemon.url
    assert Gate().check("file.read", path="/etc/shadow").decision == "deny"
    monkeypatch.delenv("TOLLGATE_URL")
    assert Gate().url == "http://127.0.0.1:9800"
    with pytest.raises(ValueError):
        Gate("ftp://127.0.0.1:21")


@pytest.mark.parametrize("path", ["/é", "/a b", "/a\x7fb"])
def test_a_url_path_that_cannot_be_sent_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Gate("http://127.0.0.1:9800/é") was made, and every check then raised
    UnicodeEncodeError instead of answering a deny (review of 2026-12-07)."""
    with pytest.raises(ValueError, match=r"path must be ASCII|spaces or control characters"):
        Gate("http://127.0.0.1:9800" + path)
    monkeypatch.setenv("TOLLGATE_URL", "http://127.0.0.1:9800" + path)
    with pytest.raises(ValueError, match=r"path must be ASCII|spaces or control characters"):
        Gate()


@pytest.mark.parametrize(
    "timeout", [None, 0, -1, float("nan"), float("inf"), -float("inf"), "2", True, 2_147_484]
)
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused_at_once(timeout: Any) -> None:
    """Gate(timeout=None) used to be made and then fail every check with a TypeError;
    NaN or a negative timeout timed every check out at once. The JS client has the same
    rule (in ms, RangeError)."""
    with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
        Gate("http://127.0.0.1:9800", timeout=timeout)


@pytest.mark.parametrize("approval_timeout", [None, -1, float("nan"), float("inf"), "10"])
def test_an_approval_timeout_that_is_not_a_finite_number_is_refused(approval_timeout: Any) -> None:
    with pytest.raises(ValueError, match="approval_timeout must be a finite number"):
        Gate("http://127.0.0.1:9800", approval_timeout=approval_timeout)


def test_finite_positive_timeouts_are_accepted() -> None:
    for timeout in (0.001, 1, 2.0, 2_147_483.647):
        assert Gate("http://127.0.0.1:9800", timeout=timeout, approval_timeout=0).timeout == timeout
    assert Gate("http://127.0.0.1:9800").timeout == 2.0


@pytest.mark.parametrize("timeout", [None, float("nan"), -1, float("inf")])
def test_wait_for_approval_refuses_a_timeout_that_is_not_a_finite_number(timeout: Any) -> None:
    """With NaN it used to poll forever (the deadline never passed)."""
    gate = Gate(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="wait_for_approval timeout"):
        gate.wait_for_approval("apr_1", timeout)


# -- fail closed ------------------------------------------------------------------------------


def test_nobody_listening_is_a_deny(files: Path) -> None:
    decision = Gate(f"http://127.0.0.1:{free_port()}").check(
        "file.read", path=f"{files}/data/report.csv"
    )
    assert (decision.allowed, decision.decision, decision.error) == (False, "deny", "unreachable")
    assert "unreachable" in decision.reason and "connection refused" in decision.reason


@pytest.mark.parametrize(
    "addresses", [["192.0.2.1"], ["::1", "127.0.0.1"], ["::ffff:127.0.0.1"], ["127.0.0.2"]]
)
def test_localhost_is_127_0_0_1_whatever_the_resolver_says(
    raw_server, monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:  # type: ignore[no-untyped-def]
    """localhost is the gate's address 127.0.0.1, never looked up (the JS client does
    the same): in a pod the kubelet's /etc/hosts lists ``::1 localhost`` first, and a
    process listening on [::1] at the gate's port took every check (review 2026-12-06)."""

    def answer(conn: socket.socket, _: int) -> None:
        while read_request(conn) is not None:
            conn.sendall(http_answer(200, b'{"allowed": true}'))

    server = raw_server(answer)  # listens on 127.0.0.1 only
    port = int(server.url.rsplit(":", 1)[1])
    asked: list[str] = []

    def resolve(host: str, port: int, *_: Any) -> list[Any]:
        asked.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with Gate(f"http://localhost:{port}") as gate:
        assert [gate.check("file.read", path="/x").allowed for _ in range(3)] == [True] * 3
    assert asked == []
    assert server.connections == 1


def test_a_gate_that_never_answers_is_a_deny_after_the_timeout(raw_server) -> None:  # type: ignore[no-untyped-def]
    silent = raw_server(lambda conn, _: time.sleep(5))
    started = time.monotonic()
    decision = Gate(silent.url, timeout=0.5).check("file.read", path="/app/data/x")
    assert time.monotonic() - started < 2.0
    assert (decision.allowed, decision.error) == (False, "timeout")
    assert "did not answer within 0.5 s" in decision.reason


def drip(answer: bytes, every: float) -> Callable[[socket.socket, int], None]:
    """A script that reads the request, then sends ``answer`` a byte at a time."""

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        for byte in answer:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return script


@pytest.mark.parametrize("part", ["head", "body"])
def test_an_answer_trickling_in_is_a_deny_at_the_timeout(raw_server, part: str) -> None:  # type: ignore[no-untyped-def]
    """The timeout bounds the whole check, not each read: a gate (or anything on its
    port) sending a byte now and then cannot hold the agent for longer."""
    answer = http_answer(200, b'{"allowed": true, "decision": "allow", "reason": "slow"}')
    head_size = answer.index(b"\r\n\r\n") + 4
    if part == "head":
        script = drip(answer, every=0.05)
    else:

        def script(conn: socket.socket, index: int) -> None:
            read_request(conn)
            conn.sendall(answer[:head_size])
            drip(answer[head_size:], every=0.05)(conn, index)

    server = raw_server(script)
    started = time.monotonic()
    decision = Gate(server.url, timeout=0.5).check("file.read", path="/app/data/x")
    elapsed = time.monotonic() - started
    assert (decision.allowed, decision.error) == (False, "timeout")
    assert elapsed < 1.5, f"a 0.5 s timeout took {elapsed:.1f} s"


@pytest.mark.parametrize(
    ("script", "error", "words"),
    [
        (lambda conn, _: (read_request(conn), conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")), "bad_answer", "no valid HTTP answer"),
        (lambda conn, _: read_request(conn), "bad_answer", "no valid HTTP answer"),
        (lambda conn, _: (read_request(conn), reset(conn)), "bad_answer", "no valid HTTP answer"),
        (answering(500, b'{"allowed": true}'), "bad_answer", "HTTP 500"),
        (answering(503, b'{"allowed": false, "error": {"code": "unavailable", "message": "audit trail cannot be written"}}'), "unavailable", "audit trail cannot be written"),
        (answering(200, b'{"allowed": "true", "decision": "allow"}'), "bad_answer", "allowed='true'"),
        (answering(200, b'{"allowed": 1}'), "bad_answer", "allowed=1"),
        (answering(200, b'{"decision": "allow"}'), "bad_answer", "allowed=None"),
        (answering(200, b"allowed: true"), "bad_answer", "not a JSON object"),
        (answering(200, b"[true]"), "bad_answer", "not a JSON object"),
        (answering(200, b"\xff\xfe{}"), "bad_answer", "not a JSON object"),
        (answering(200, b'{"allowed": true, "x": NaN}'), "bad_answer", "not a JSON object"),
        (answering(200, b'{"allowed": true, "x": -Infinity}'), "bad_answer", "not a JSON object"),
        (answering(200, b'\xef\xbb\xbf{"allowed": true}'), "bad_answer", "not a JSON object"),
        # json.loads alone keeps the last of two equal keys: this would be an allow.
        (answering(200, b'{"allowed": false, "allowed": true}'), "bad_answer", "has the key 'allowed' twice"),
        (answering(200, b'{"allowed": true, "approval": {"id": "a", "id": "b"}}'), "bad_answer", "has the key 'id' twice"),
        (answering(200, b" " * (1 << 20) + b'{"allowed": true}'), "bad_answer", "larger than"),
        # An allow cut short is not an allow, whatever the part that arrived says.
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + ALLOW), "bad_answer", "cut its answer short"),
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + ALLOW + b"\r\n"), "bad_answer", "cut its answer short"),
        # Framing read two ways is not read at all (http.client alone would take the
        # first length, ignore a length sent with chunks, and int() "+16" or "0x10").
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Length: 200\r\n\r\n" + ALLOW), "bad_answer", "more than one Content-Length"),
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + ALLOW + b"\r\n0\r\n\r\n"), "bad_answer", "both a Content-Length and a Transfer-Encoding"),
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nContent-Length: +16\r\n\r\n" + ALLOW), "bad_answer", "not a number ('+16')"),
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n" + ALLOW + b"\r\n0\r\n\r\n"), "bad_answer", "malformed chunk size line"),
        # Without a length, the end of the body is the close: a cut could not be seen.
        (answering_then_closing(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + ALLOW), "bad_answer", "without a length (no Content-Length)"),
    ],
    ids=["not-http", "closes-silently", "resets-silently", "500", "503", "allowed-string", "allowed-1", "allowed-missing", "not-json", "json-array", "not-utf8", "nan", "infinity", "bom", "duplicate-allowed", "duplicate-nested", "huge", "cut-short", "chunked-cut-short", "two-lengths", "length-and-chunked", "length-plus", "chunk-size-0x", "no-length"],
)  # fmt: skip
def test_anything_but_a_200_with_allowed_true_is_a_deny(
    raw_server, script, error: str, words: str
) -> None:  # type: ignore[no-untyped-def]
    server = raw_server(script)
    decision = Gate(server.url, timeout=2.0).check("file.read", path="/app/data/x")
    assert (decision.allowed, decision.decision, decision.error) == (False, "deny", error)
    assert words in decision.reason
    with pytest.raises(Denied):
        Gate(server.url).require("file.read", path="/app/data/x")


@pytest.mark.parametrize("pause", [0.0, 0.2])
def test_an_answer_that_ends_the_connection_is_read_whole(raw_server, pause: float) -> None:  # type: ignore[no-untyped-def]
    """``Connection: close`` with a length is a whole answer, also when its body comes
    after the head (it used to be read from a socket already closed: "unreachable")."""
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 16\r\n\r\n" + ALLOW
    server = raw_server(answering_then_closing(answer, pause))
    gate = Gate(server.url, timeout=2.0)
    for _ in range(2):  # the closed connection is not pooled: the second check opens another
        decision = gate.check("file.read", path="/app/data/x")
        assert (decision.allowed, decision.error) == (True, None), decision.reason
    assert gate.connections_opened == 2


def test_a_deny_never_reads_as_allow_even_if_the_decision_field_says_so(raw_server) -> None:  # type: ignore[no-untyped-def]
    server = raw_server(answering(200, b'{"allowed": false, "decision": "allow", "reason": "odd"}'))
    decision = Gate(server.url).check("file.read", path="/app/data/x")
    assert (decision.allowed, decision.decision, decision.reason) == (False, "deny", "odd")


def test_a_gate_without_a_valid_policy_is_a_deny(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "broken.yaml"
    policy.write_text("version: 1\nrules: [{action: file.read, decision: maybe}]\n")
    broken = daemon_factory(policy, wait_ready=False)
    decision = Gate(broken.url).check("file.read", path="/app/data/x")
    assert (decision.allowed, decision.error, decision.status) == (False, "unavailable", 503)
    assert "no valid policy" in decision.reason


def test_a_dropped_keep_alive_connection_is_replaced_not_denied(raw_server) -> None:  # type: ignore[no-untyped-def]
    allow = json.dumps({"allowed": True, "decision": "allow", "reason": "ok"}).encode()

    def script(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(http_answer(200, allow))
        if index == 0:
            read_request(conn)  # the second request arrives on the kept-alive connection ...
            return  # ... which is then closed without an answer
        while read_request(conn) is not None:
            conn.sendall(http_answer(200, allow))

    server = raw_server(script)
    gate = Gate(server.url)
    assert gate.check("file.read", path="/x").allowed
    assert gate.check("file.read", path="/x").allowed
    assert gate.connections_opened == 2


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset (RST), as a crashing peer would, not an orderly FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_a_check_the_gate_began_to_answer_is_never_sent_twice(raw_server) -> None:  # type: ignore[no-untyped-def]
    """A reused connection lost after part of the answer came back is a deny, not a retry:
    the gate had read the check, and a second send would be decided, rate-limited and
    audited twice (and could be allowed the second time)."""
    received: list[bytes] = []

    def script(conn: socket.socket, index: int) -> None:
        while (request := read_request(conn)) is not None:
            received.append(request)
            if index == 0 and len(received) == 2:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
                time.sleep(0.1)
                reset(conn)
                return
            conn.sendall(http_answer(200, ALLOW))

    server = raw_server(script)
    gate = Gate(server.url)
    assert gate.check("file.read", path="/x").allowed
    decision = gate.check("file.read", path="/x")
    assert (decision.allowed, decision.error) == (False, "bad_answer")
    assert "cut its answer short" in decision.reason
    assert len(received) == 2, "the check was sent again after the gate had answered part of it"


@pytest.mark.parametrize("interim", [b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"], ids=["103", "101"])  # fmt: skip
def test_an_answer_after_a_1xx_is_never_taken_for_the_next_checks(
    raw_server, interim: bytes
) -> None:  # type: ignore[no-untyped-def]
    """Each check gets its own answer. After a 103 (an interim answer) the answer that
    follows is this check's; after a 101 nothing on that connection is an answer. Neither
    may be read as the answer to the next check sent on a reused connection."""

    def answer_for(request: bytes) -> bytes:
        path = json.loads(request.partition(b"\r\n\r\n")[2])["path"]
        allowed = path == "/first"
        return http_answer(200, json.dumps({"allowed": allowed, "reason": path}).encode())

    def script(conn: socket.socket, index: int) -> None:
        if index == 0:
            first = read_request(conn)
            assert first is not None
            conn.sendall(interim)
            time.sleep(0.3)  # late: after the client has seen the 1xx and moved on
            conn.sendall(answer_for(first))
        while (request := read_request(conn)) is not None:
            conn.sendall(answer_for(request))

    server = raw_server(script)
    gate = Gate(server.url, timeout=2.0)
    first = gate.check("file.read", path="/first")
    if interim.startswith(b"HTTP/1.1 103"):
        assert (first.allowed, first.reason) == (True, "/first")  # as the JS client reads it
    else:
        assert (first.allowed, first.status, first.error) == (False, 101, "bad_answer")
        assert "HTTP 101" in first.reason
    second = gate.check("file.read", path="/second")
    assert second.reason == "/second" and second.allowed is False


def test_a_connection_the_gate_closed_while_idle_is_not_reused(
    gate: Gate, files: Path, raw_server
) -> None:  # type: ignore[no-untyped-def]
    allow = json.dumps({"allowed": True, "decision": "allow", "reason": "ok"}).encode()
    server = raw_server(lambda conn, _: (read_request(conn), conn.sendall(http_answer(200, allow))))
    client = Gate(server.url)
    assert client.check("file.read", path="/x").allowed
    time.sleep(0.1)  # the server has closed the connection by now
    assert client.check("file.read", path="/x").allowed
    assert client.connections_opened == 2 and server.connections == 2


@pytest.mark.parametrize("pause", [0.0, 0.1])
def test_bytes_after_a_whole_answer_are_never_the_next_check_s_answer(
    raw_server, pause: float
) -> None:  # type: ignore[no-untyped-def]
    """As docs/clients.md says: bytes that arrive with an answer are dropped with its read
    buffer and the connection is kept; bytes that arrive after it make the pooled
    connection closed before it is used again (red-team review of 2026-12-07, F7)."""
    allow = json.dumps({"allowed": True, "decision": "allow", "reason": "ok"}).encode()
    deny = json.dumps({"allowed": False, "decision": "deny", "reason": "no"}).encode()

    def script(conn: socket.socket, index: int) -> None:
        read_request(conn)
        extra = http_answer(200, allow)  # an answer to nothing yet asked
        if index > 0:
            conn.sendall(http_answer(200, deny))
        elif pause == 0:
            conn.sendall(http_answer(200, deny) + extra)  # in one write
        else:
            conn.sendall(http_answer(200, deny))
            time.sleep(pause)
            conn.sendall(extra)
        while read_request(conn) is not None:
            conn.sendall(http_answer(200, deny))

    with Gate(raw_server(script).url) as client:
        first = client.check("file.read", path="/x")
        time.sleep(0.3)
        second = client.check("file.read", path="/x")
        assert (first.reason, second.reason) == ("no", "no")
        assert client.connections_opened == (1 if pause == 0 else 2)


# -- approvals ----------------------------------------------------------------------------


class ScriptedGate:
    """A loopback stand-in for the gate's approval flow: every request is recorded."""

    def __init__(self, approval_states: list[str], hold: float = 0.2) -> None:
        self.states = approval_states
        self.hold = hold
        self.checks: list[dict[str, Any]] = []
        self.polls: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                check = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.checks.append(check)
                if check.get("approval") == "apr_1":
                    self.answer(
                        200,
                        {"allowed": True, "decision": "allow", "reason": "approved", "rule": "r"},
                    )
                    return
                approval = {"id": "apr_1", "status": "pending", "expiresAt": "2030-01-01T00:00:00Z"}
                self.answer(
                    200,
                    {
                        "allowed": False,
                        "decision": "require_approval",
                        "reason": "needs a human",
                        "rule": "r",
                        "decisionId": "01J",
                        "approval": approval,
                    },
                )

            def do_GET(self) -> None:
                outer.polls.append(self.path)
                if not self.path.startswith("/v1/approvals/apr_1?wait="):
                    self.answer(
                        404,
                        {
                            "allowed": False,
                            "error": {"code": "not_found", "message": "no such approval"},
                        },
                    )
                    return
                time.sleep(min(outer.hold, int(self.path.rsplit("=", 1)[1])))
                state = outer.states.pop(0) if len(outer.states) > 1 else outer.states[0]
                approval = {"id": "apr_1", "status": state, "expiresAt": "2030-01-01T00:00:00Z"}
                if state == "denied":
                    approval.update(approver="alice", reason="not today")
                self.answer(200, approval)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedGate]]:
    started: list[ScriptedGate] = []

    def start(states: list[str], hold: float = 0.2) -> ScriptedGate:
        started.append(ScriptedGate(states, hold))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_require_approval_answer_carries_the_approval(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(["pending"])
    decision = Gate(server.url).check("process.exec", argv=["make", "deploy"])
    assert decision.approval == Approval("apr_1", "pending", "2030-01-01T00:00:00Z")
    with pytest.raises(Denied) as raised:
        Gate(server.url).require("process.exec", argv=["make", "deploy"])
    assert raised.value.approval is not None and raised.value.approval.id == "apr_1"
    assert server.polls == []  # without approval_timeout, require does not wait


def test_wait_for_approval_long_polls_until_decided(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(["pending", "pending", "approved"])
    approval = Gate(server.url).wait_for_approval("apr_1", timeout=10)
    assert approval.approved and approval.status == "approved"
    assert len(server.polls) == 3
    # The gate is asked to hold each poll for as long as is left of the timeout.
    assert server.polls[0] in ("/v1/approvals/apr_1?wait=9", "/v1/approvals/apr_1?wait=10")


def test_wait_for_approval_gives_up_with_the_last_state_seen(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(["pending"], hold=0.3)
    started = time.monotonic()
    approval = wait_for_approval("apr_1", 1.5, url=server.url)
    assert approval.status == "pending" and not approval.approved
    assert 1.4 < time.monotonic() - started < 3.0


def test_wait_for_an_unknown_approval_stops_at_once(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(["pending"])
    approval = Gate(server.url).wait_for_approval("apr_nope", timeout=30)
    assert approval.status == "unknown" and "knows no approval" in approval.reason
    assert len(server.polls) == 1 and server.polls[0].startswith("/v1/approvals/apr_nope?wait=")


def test_wait_for_approval_on_an_unreachable_gate_is_unknown_not_approved() -> None:
    approval = Gate(f"http://127.0.0.1:{free_port()}").wait_for_approval("apr_1", timeout=1)
    assert approval.status == "unknown" and "unreachable" in approval.reason


def test_require_waits_for_approval_and_resends_the_identical_check(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(["pending", "approved"])
    gate = Gate(server.url, approval_timeout=10)
    decision = gate.require("process.exec", argv=["make", "deploy"], context={"task": "ship"})
    assert decision.allowed and decision.reason == "approved"
    first, second = server.checks
    assert second == {**first, "approval": "apr_1"}


@pytest.mark.parametrize(
    ("state", "words"), [("denied", "is denied (not today)"), ("expired", "is expired")]
)
def test_require_raises_when_the_human_says_no(scripted, state: str, words: str) -> None:  # type: ignore[no-untyped-def]
    server = scripted([state])
    with pytest.raises(Denied) as raised:
        Gate(server.url, approval_timeout=10).require("process.exec", argv=["make", "deploy"])
    assert raised.value.reason == f"needs a human; approval apr_1 {words}"
    assert len(server.checks) == 1  # nothing re-sent


# -- guarded helpers ------------------------------------------------------------------------


def test_open_reads_an_allowed_file(gate: Gate, files: Path) -> None:
    with gate.open(files / "data" / "report.csv") as handle:
        assert handle.read() == "a,b\n1,2\n"
    with gate.open("data/report.csv", "rb", cwd=files) as handle:
        assert handle.read() == b"a,b\n1,2\n"


def test_open_sends_real_path_and_cwd(gate: Gate, daemon: Daemon, files: Path) -> None:
    with pytest.raises(Denied) as raised:
        gate.open("data/escape", cwd=files)
    assert raised.value.reason == f"realPath: no rule allows file.read of {files}/secret/key"
    record = next(
        r for r in daemon.records() if r.get("decisionId") == raised.value.decision.decision_id
    )
    assert record["request"]["path"] == f"{files}/data/escape"
    assert record["request"]["realPath"] == f"{files}/secret/key"


def test_open_for_writing_needs_file_write(gate: Gate, files: Path) -> None:
    with gate.open(files / "out" / "result.txt", "w") as handle:
        handle.write("done")
    assert (files / "out" / "result.txt").read_text() == "done"
    with pytest.raises(Denied):
        gate.open(files / "data" / "report.csv", "w")  # readable, not writable
    with pytest.raises(Denied):
        gate.open(files / "out" / "result.txt", "r+")  # writable, not readable
    assert (files / "data" / "report.csv").read_text() == "a,b\n1,2\n"


def test_a_symlink_swapped_in_after_the_check_is_not_opened_or_truncated(
    daemon: Daemon, files: Path, tmp_path: Path
) -> None:
    victim = files / "secret" / "victim"
    victim.write_text("precious")
    target_dir = files / "out" / "swap"
    target_dir.mkdir()
    (target_dir / "log").write_text("old")

    class SwappingGate(Gate):
        """Swaps the checked directory for a symlink right after the gate allowed it."""

        def require(self, action: str, **fields: Any) -> Decision:
            decision = super().require(action, **fields)
            target_dir.rename(tmp_path / "moved")
            target_dir.symlink_to(files / "secret")
            (files / "secret" / "log").symlink_to(victim)
            return decision

    with pytest.raises(Denied) as raised:
        SwappingGate(daemon.url).open(target_dir / "log", "w")
    assert raised.value.decision.error == "changed"
    assert "changed between the check and the open" in raised.value.reason
    assert victim.read_text() == "precious"


class SwapAfterCheck(Gate):
    """Runs ``swap`` once, right after the gate allowed the first check."""

    swap: Callable[[], None] | None = None

    def require(self, action: str, **fields: Any) -> Decision:
        decision = super().require(action, **fields)
        swap, self.swap = self.swap, None
        if swap is not None:
            swap()
        return decision


@pytest.mark.parametrize("mode", ["w", "a"])  # "x" (O_EXCL) never follows a link
def test_a_symlink_swapped_in_as_the_file_is_not_followed_by_a_create(
    daemon: Daemon, files: Path, mode: str
) -> None:
    checked = files / "out" / f"new-{mode}"
    outside = files / "secret" / f"created-{mode}"
    gate = SwapAfterCheck(daemon.url)
    gate.swap = lambda: checked.symlink_to(outside)
    with pytest.raises(Denied) as raised:
        gate.open(checked, mode)
    assert raised.value.decision.error == "changed"
    assert "now a symlink" in raised.value.reason
    assert not outside.exists()


@pytest.mark.parametrize("swapped", ["parent", "grandparent"])
def test_a_directory_swapped_for_a_symlink_does_not_redirect_a_create(
    daemon: Daemon, files: Path, tmp_path: Path, swapped: str
) -> None:
    top = files / "out" / f"tree-{swapped}"
    (top / "sub").mkdir(parents=True)
    decoy = files / "secret" / f"decoy-{swapped}"
    (decoy / "sub").mkdir(parents=True)
    moved = top / "sub" if swapped == "parent" else top
    link_to = decoy / "sub" if swapped == "parent" else decoy

    def swap() -> None:
        moved.rename(tmp_path / "moved")
        moved.symlink_to(link_to)

    gate = SwapAfterCheck(daemon.url)
    gate.swap = swap
    with pytest.raises(Denied) as raised:
        gate.open(top / "sub" / "log.txt", "a")
    assert raised.value.decision.error == "changed"
    assert list((decoy / "sub").iterdir()) == []


def test_a_dangling_symlink_is_checked_where_a_create_would_land(gate: Gate, files: Path) -> None:
    (files / "out" / "dangling").symlink_to(files / "secret" / "through-link")
    with pytest.raises(Denied) as raised:
        gate.open(files / "out" / "dangling", "w")
    assert raised.value.reason == (
        f"realPath: no rule allows file.write of {files}/secret/through-link"
    )
    assert not (files / "secret" / "through-link").exists()


def test_run_runs_an_allowed_argv_and_refuses_a_denied_one(gate: Gate, tmp_path: Path) -> None:
    result = gate.run(["echo", "hello"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "hello\n")
    marker = tmp_path / "ran"
    with pytest.raises(Denied):
        gate.run(["touch", str(marker)])
    with pytest.raises(Denied):
        gate.run(f"echo hi; touch {marker}")
    assert not marker.exists()
    assert gate.run("echo one && printf two", capture_output=True, text=True).stdout == "one\ntwo"


def sent_request(daemon: Daemon, denied: Denied) -> dict[str, Any]:
    """The request the gate decided (its audit record) for the check ``denied`` came from."""
    decision_id = denied.decision.decision_id
    record = next(r for r in daemon.records() if r.get("decisionId") == decision_id)
    request: dict[str, Any] = record["request"]
    return request


def test_run_checks_the_program_path_resolves_to(
    gate: Gate, daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "fake-ran"
    fake_echo = fake_bin / "echo"
    fake_echo.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake_echo.chmod(0o755)
    path = f"{fake_bin}:{os.environ['PATH']}"
    # A PATH given in env is an environment-override itself; the program it resolves to
    # is what the check names all the same.
    with pytest.raises(Denied) as raised:
        gate.run(["echo", "hi"], env={**os.environ, "PATH": path})
    assert sent_request(daemon, raised.value)["commandLine"] == (
        f"PATH={shlex.quote(path)} {fake_echo} hi"
    )
    # The process's own PATH is the one the child inherits: plain argv, the resolved path.
    monkeypatch.setenv("PATH", path)
    with pytest.raises(Denied) as raised:
        gate.run(["echo", "hi"])
    assert sent_request(daemon, raised.value)["argv"] == [str(fake_echo), "hi"]
    assert raised.value.reason == f"no rule allows process.exec of {fake_echo} hi"
    assert not marker.exists()
    with pytest.raises(TypeError):
        gate.run(["echo", "hi"], shell=True)


@pytest.mark.parametrize("option", ["user", "group", "extra_groups"])
def test_run_refuses_to_run_as_someone_the_check_does_not_name(
    gate: Gate, daemon: Daemon, tmp_path: Path, option: str
) -> None:
    marker = tmp_path / "ran-as-other"
    before = len(daemon.records())
    value: object = [0] if option == "extra_groups" else 0
    with pytest.raises(TypeError, match=option):
        gate.run(["touch", str(marker)], **{option: value})
    assert not marker.exists()
    assert len(daemon.records()) == before  # refused before any check was sent


@pytest.mark.parametrize("path_entry", ["tools", "", "."])
def test_run_resolves_relative_path_entries_against_the_runs_cwd(
    gate: Gate, daemon: Daemon, tmp_path: Path, path_entry: str
) -> None:
    work = tmp_path / "work"
    (work / "tools").mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    planted = work / "tools" / "echo"
    planted.write_text(f"#!/bin/sh\ntouch {marker}\n")
    planted.chmod(0o755)
    run_in = work if path_entry == "tools" else work / "tools"
    with pytest.raises(Denied) as raised:  # the check names the planted file, not "echo"
        gate.run(["echo", "hi"], env={"PATH": path_entry}, cwd=run_in)
    assert sent_request(daemon, raised.value)["commandLine"] == (
        f"PATH={shlex.quote(path_entry)} {planted} hi"
    )
    assert not marker.exists()


def test_run_refuses_a_program_found_in_no_path_directory(gate: Gate, tmp_path: Path) -> None:
    with pytest.raises(Denied) as raised:
        gate.run(["echo", "hi"], env={"PATH": str(tmp_path / "nowhere")})
    assert raised.value.decision.error == "not_found"
    assert "'echo' is not an executable file in any PATH directory" in raised.value.reason


# -- run: where a redirection lands is checked, symlinks followed --------------------------
# Found in the red-team review (repro /tmp/rt6): the gate decides `> gl/config` by its
# lexical path, while the shell writes through `gl -> .git` into .git/config. The gate's
# answer to such a command carries its normalised request; the clients check the real
# path of each target it lists (writes, reads).


@pytest.fixture
def gate_with_request(daemon: Daemon) -> Iterator[Gate]:
    with Gate(daemon.url) as client:
        yield client


def records_of(daemon: Daemon, before: int, action: str) -> list[dict[str, Any]]:
    """The requests of ``action`` the gate decided since record ``before``."""
    return [r["request"] for r in daemon.records()[before:] if r.get("action") == action]


def test_run_refuses_a_redirection_writing_through_a_symlink_into_a_denied_place(
    gate_with_request: Gate, daemon: Daemon, files: Path
) -> None:
    out = files / "out"
    (out / "to-secret").symlink_to(files / "secret")
    for command in (
        "echo pwned > to-secret/planted",
        "echo pwned >> to-secret/key",
        "echo pwned >| to-secret/key",
        ["sh", "-c", "echo pwned > to-secret/planted"],  # an argv handing a shell a script
    ):
        with pytest.raises(Denied) as raised:
            gate_with_request.run(command, cwd=out)
        reason = raised.value.reason
        assert reason.startswith("realPath: no rule allows file."), reason
        assert f"{files}/secret/" in reason
    assert not (files / "secret" / "planted").exists()
    assert (files / "secret" / "key").read_text() == "do not read"
    # Checked as Gate.open checks a file: the lexical path and where it leads.
    request = sent_request(daemon, raised.value)
    assert (request["path"], request["realPath"]) == (
        f"{out}/to-secret/planted",
        f"{files}/secret/planted",
    )


def test_run_checks_and_runs_a_redirection_through_a_symlink_to_an_allowed_place(
    gate_with_request: Gate, daemon: Daemon, files: Path
) -> None:
    out = files / "out"
    (out / "real-dir").mkdir()
    (out / "alias").symlink_to(out / "real-dir")
    before = len(daemon.records())
    gate_with_request.run("echo one > plain.txt", cwd=out)  # no symlink: nothing more to check
    assert records_of(daemon, before, "file.write") == []
    gate_with_request.run("echo two >> alias/new.txt", cwd=out)
    assert (out / "plain.txt").read_text() == "one\n"
    assert (out / "real-dir" / "new.txt").read_text() == "two\n"
    [request] = records_of(daemon, before, "file.write")
    assert (request["path"], request["realPath"]) == (
        f"{out}/alias/new.txt",
        f"{out}/real-dir/new.txt",
    )


def test_run_refuses_a_redirection_reading_through_a_symlink_from_a_denied_place(
    gate_with_request: Gate, files: Path
) -> None:
    # data/escape -> secret/key (the fixture); the read is allowed by its lexical path.
    with pytest.raises(Denied) as raised:
        gate_with_request.run("cat < data/escape", cwd=files, capture_output=True)
    assert raised.value.reason == f"realPath: no rule allows file.read of {files}/secret/key"
    result = gate_with_request.run(
        "cat < data/report.csv", cwd=files, capture_output=True, text=True
    )
    assert result.stdout == "a,b\n1,2\n"


def test_run_refuses_a_redirection_target_swapped_after_its_check(
    daemon: Daemon, files: Path
) -> None:
    out = files / "out"
    (out / "hop-a").mkdir()
    (out / "hop").symlink_to(out / "hop-a")

    class SwapAfterFileCheck(Gate):
        """Points ``hop`` at the denied directory once its real path was allowed."""

        def require(self, action: str, **fields: Any) -> Decision:
            decision = super().require(action, **fields)
            if action == "file.write":
                (out / "hop").unlink()
                (out / "hop").symlink_to(files / "secret")
            return decision

    with pytest.raises(Denied) as raised, SwapAfterFileCheck(daemon.url) as swapping:
        swapping.run("echo pwned > hop/swapped", cwd=out)
    assert raised.value.decision.error == "changed"
    assert raised.value.reason == (
        f"{out}/hop/swapped changed between the check and the run"
        f" (now leads to {files}/secret/swapped)"
    )
    assert not (files / "secret" / "swapped").exists()
    assert not (out / "hop-a" / "swapped").exists()


@pytest.mark.parametrize(
    "request_json", ['"x"', '{"writes": "/tmp/x"}', '{"reads": [1]}', '{"writes": [null]}']
)
def test_run_refuses_an_allow_whose_redirection_targets_cannot_be_read(
    raw_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    request_json: str,
) -> None:
    body = '{"allowed": true, "decision": "allow", "reason": "stub", "request": %s}'
    server = raw_server(answering(200, (body % request_json).encode()))
    marker = tmp_path / "ran"
    with Gate(server.url) as stub, pytest.raises(Denied) as raised:
        stub.run(f"echo hi > {marker}")
    assert raised.value.decision.error == "bad_answer"
    assert not marker.exists()


# -- run with env: what the child's environment adds is checked too ----------------------

ENV_POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: [echo, printenv, touch, export], decision: allow}
"""
RISKY_VARIABLES = [
    ("LD_PRELOAD", "/tmp/x.so"),
    ("GIT_SSH_COMMAND", "/tmp/x-ssh -o 'a b'"),
    ("PATH", f"{os.environ['PATH']}:/tmp/tools"),
    # A gated child would ask whatever listens there, which may allow everything; the
    # clients screen the gate's host, not its port (rt25 clients review, 2).
    ("TOLLGATE_URL", "http://127.0.0.1:4444"),
    ("NODE_EXTRA_CA_CERTS", "/tmp/ca.pem"),
]


@pytest.fixture(scope="module")
def env_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from module_daemon(tmp_path_factory, "client-env-daemon", ENV_POLICY)


def last_request(daemon: Daemon) -> dict[str, Any]:
    request: dict[str, Any] = daemon.records()[-1]["request"]
    return request


@pytest.mark.parametrize(("name", "value"), RISKY_VARIABLES)
def test_run_denies_a_risky_variable_set_in_env_and_runs_nothing(
    env_daemon: Daemon, tmp_path: Path, name: str, value: str
) -> None:
    """``LD_PRELOAD=x touch ...`` is an environment-override; passing it as env= was
    checked as a plain ``touch`` and ran."""
    marker = tmp_path / "ran"
    gate = Gate(env_daemon.url)
    env = {**os.environ, name: value}
    with pytest.raises(Denied) as raised:
        gate.run(["touch", str(marker)], env=env)
    assert "environment-override" in raised.value.reason
    touch = shutil.which("touch")
    assert sent_request(env_daemon, raised.value)["commandLine"] == (
        f"{name}={shlex.quote(value)} {touch} {marker}"
    )
    with pytest.raises(Denied) as raised:
        gate.run(f"touch {marker}", env=env)  # the whole shell gets it
    assert "environment-override" in raised.value.reason
    assert sent_request(env_daemon, raised.value)["commandLine"] == (
        f"export {name}={shlex.quote(value)}; touch {marker}"
    )
    assert not marker.exists()
    gate.run(["touch", str(marker)])  # the same program without the variable may run
    assert marker.exists()


def test_run_allows_a_harmless_variable_and_the_child_sees_it(env_daemon: Daemon) -> None:
    gate = Gate(env_daemon.url)
    value = "it's $(not run) `x`"
    env = {**os.environ, "FOO": "1", "BAR": value}
    result = gate.run(["printenv", "BAR", "FOO"], env=env, capture_output=True, text=True)
    assert result.stdout == f"{value}\n1\n"
    printenv = shutil.which("printenv")
    # Sorted by name, each value quoted as a shell word.
    request = last_request(env_daemon)
    assert request["commandLine"] == f"BAR={shlex.quote(value)} FOO=1 {printenv} BAR FOO"
    assert "argv" not in request
    result = gate.run("printenv FOO", env=env, capture_output=True, text=True)
    assert result.stdout == "1\n"
    assert last_request(env_daemon)["commandLine"] == (
        f"export BAR={shlex.quote(value)} FOO=1; printenv FOO"
    )


def test_run_with_an_unchanged_environment_checks_plain_argv(env_daemon: Daemon) -> None:
    """A full copy of the environment, or one with variables removed, adds nothing."""
    gate = Gate(env_daemon.url)
    echo = shutil.which("echo")
    fewer = {name: value for name, value in os.environ.items() if name != "HOME"}
    for env in (dict(os.environ), os.environ, fewer):
        assert gate.run(["echo", "hi"], env=env, capture_output=True).stdout == b"hi\n"
        request = last_request(env_daemon)
        assert request["argv"] == [echo, "hi"]
        assert "commandLine" not in request
    gate.run("echo hi", env=dict(os.environ), capture_output=True)
    assert last_request(env_daemon)["commandLine"] == "echo hi"


@pytest.mark.parametrize("name", ["A-B", "1X", "", "A=B", "X Y"])
def test_run_refuses_an_env_name_no_assignment_can_set(
    env_daemon: Daemon, tmp_path: Path, name: str
) -> None:
    gate = Gate(env_daemon.url)
    before = len(env_daemon.records())
    marker = tmp_path / "ran"
    for command in (["touch", str(marker)], f"touch {marker}"):
        with pytest.raises(ValueError, match="not a shell variable name"):
            gate.run(command, env={**os.environ, name: "1"})
    assert len(env_daemon.records()) == before  # refused before any check
    assert not marker.exists()


class WebServer:
    """A loopback web server: /ok answers, /away redirects to ``redirect_to`` with
    status ``code``.

    ``hits`` are the request targets, ``methods``, ``headers`` and ``bodies`` the
    methods, headers and bodies of each request.
    """

    def __init__(self, redirect_to: str = "", code: int = 302) -> None:
        self.hits: list[str] = []
        self.methods: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits.append(self.path)
                outer.methods.append(self.command)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path == "/away":
                    self.send_response(code)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(
                    {"path": self.path, "auth": self.headers.get("Authorization")}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_DELETE = do_PATCH = do_POST = do_PUT = do_GET

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def web() -> Iterator[Callable[[str], WebServer]]:
    started: list[WebServer] = []

    def start(redirect_to: str = "", code: int = 302) -> WebServer:
        started.append(WebServer(redirect_to, code))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_fetch_fetches_an_allowed_url(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok") as response:
        assert response.status == 200 and json.load(response)["path"] == "/ok"


def test_fetch_checks_every_redirect_before_following_it(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    elsewhere = web()
    server = web(f"http://localhost:{elsewhere.port}/stolen")
    with pytest.raises(Denied) as raised:
        gate.fetch(f"http://127.0.0.1:{server.port}/away")
    assert "localhost" in raised.value.reason
    assert server.hits == ["/away"] and elsewhere.hits == []
    inside = web(f"http://127.0.0.1:{elsewhere.port}/fine")
    with gate.fetch(f"http://127.0.0.1:{inside.port}/away") as response:
        assert json.load(response)["path"] == "/fine"


# Found in review (2026-12-06): urllib cuts a fragment at the last "#", the gate at the
# first; "/ok#/../../secret#" was checked as /ok and sent as "/ok#/../../secret", which
# a server keeping "#" in the path resolves to /secret. And a method was sent as written
# while the gate decided it upper-cased.
def test_fetch_sends_the_path_it_checked_whatever_the_fragment(
    gate: Gate, web, daemon: Daemon
) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok#/../../secret#") as response:
        assert json.load(response)["path"] == "/ok"
    assert server.hits == ["/ok"]
    recorded = [r["request"] for r in daemon.records() if r.get("type") == "decision"][-1]
    assert recorded["path"] == "/ok"
    target = web()
    hop = web(f"http://127.0.0.1:{target.port}/ok#/../../secret#")
    with gate.fetch(f"http://127.0.0.1:{hop.port}/away") as response:
        assert json.load(response)["path"] == "/ok"
    assert target.hits == ["/ok"]


# Found in review (2026-12-06, eighteenth session): urllib sends "/admin/../ok" as
# written, and Flask and Starlette route it to their /admin/ handler, while the gate
# decided /ok. The gate refuses a URL path with a dot segment, so nothing is sent.
@pytest.mark.parametrize("path", ["/admin/../ok", "/admin/%2e%2e/ok", "/./ok"])
def test_fetch_sends_nothing_for_a_path_with_a_dot_segment(gate: Gate, web, path: str) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with pytest.raises(Denied) as raised:
        gate.fetch(f"http://127.0.0.1:{server.port}{path}")
    assert "'.' or '..' segment" in raised.value.reason
    assert server.hits == []


# Found in review (rt24 network F1): urllib strips Unicode whitespace off a URL's ends,
# the gate keeps it in the path: "/admin\u00a0" was checked as /admin%C2%A0, past a
# deny of /admin, and sent as /admin.
@pytest.mark.parametrize("suffix", ["\u00a0", "\u3000", "\u2028", "\x85", "\u2009\u00a0"])
def test_fetch_refuses_a_url_urllib_would_send_changed(gate: Gate, web, suffix: str) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with pytest.raises(ValueError, match="urllib would send"):
        gate.fetch(f"http://127.0.0.1:{server.port}/admin{suffix}")
    assert server.hits == []


# Found in review (rt25 clients, 3): http.client refuses a non-ASCII path or query at
# send time, after the gate had recorded an allow for the request; Node's fetch sends it
# percent-encoded. Now Python does too, and checks exactly that URL.
@pytest.mark.parametrize(
    ("target", "sent"),
    [
        ("/\u00e9", "/%C3%A9"),
        ("/x?q=\u00e9", "/x?q=%C3%A9"),
        ("/caf\u00e9/\u65e5\u672c?k=\u00fc#fr\u00e4g", "/caf%C3%A9/%E6%97%A5%E6%9C%AC?k=%C3%BC"),
    ],
)
def test_fetch_sends_a_non_ascii_path_percent_encoded_as_checked(
    gate: Gate, web, daemon: Daemon, target: str, sent: str
) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with gate.fetch(f"http://127.0.0.1:{server.port}{target}") as response:
        assert json.load(response)["path"] == sent
    assert server.hits == [sent]
    recorded = [r["request"] for r in daemon.records() if r.get("type") == "decision"][-1]
    assert recorded["url"] == f"http://127.0.0.1:{server.port}{sent}"


def test_fetch_refuses_a_url_that_is_not_valid_unicode(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with pytest.raises(ValueError, match="not valid Unicode"):
        gate.fetch(f"http://127.0.0.1:{server.port}/\udcff")
    assert server.hits == []


def decisions(daemon: Daemon) -> int:
    return sum(1 for r in daemon.records() if r.get("type") == "decision")


# Found in review (rt25 r2-clients-ops, 3): the gate allowed and recorded these, then
# urllib could not send them (InvalidURL quoting the password, a DNS lookup of
# "u@127.0.0.1", an AttributeError for "http:/host").
@pytest.mark.parametrize(
    ("authority", "problem"),
    [
        ("//u:s3cret@127.0.0.1:{port}", "user name or password"),
        ("//u@127.0.0.1:{port}", "user name or password"),
        ("//s3cret@127.0.0.1:{port}", "user name or password"),
        ("//\u00fc:s3cret@127.0.0.1:{port}", "user name or password"),
        # Node's parser reads these as http://127.0.0.1/ and http://127.0.0.1/@evil.test/;
        # the JS client refuses them as this one does (rt26).
        ("//@127.0.0.1:{port}", "user name or password"),
        ("//127.0.0.1:{port}\\@evil.test", "user name or password"),
        # Node's parser reads a backslash as a '/': the host 127.0.0.1 for all of these,
        # where urllib reads the host 127.0.0.1:{port}\evil.test or none; the JS client
        # refuses them as this one does (rt26).
        ("//127.0.0.1:{port}\\evil.test", "backslash before its path"),
        ("//127.0.0.1\\:{port}", "backslash before its path"),
        ("\\\\127.0.0.1:{port}", "backslash before its path"),
        ("/\t/127.0.0.1:{port}\\x", "backslash before its path"),
        ("/127.0.0.1:{port}", "has no host"),
    ],
)
def test_fetch_refuses_a_url_it_cannot_send_before_the_check(
    gate: Gate, web, daemon: Daemon, authority: str, problem: str
) -> None:  # type: ignore[no-untyped-def]
    server = web()
    asked = decisions(daemon)
    url = f"http:{authority.format(port=server.port)}/x"
    with pytest.raises(ValueError, match=problem) as raised:
        gate.fetch(url)
    assert "s3cret" not in str(raised.value)
    assert decisions(daemon) == asked and server.hits == []


def test_fetch_refuses_a_redirect_to_a_url_with_a_password_before_its_check(
    gate: Gate, web, daemon: Daemon
) -> None:  # type: ignore[no-untyped-def]
    target = web()
    hop = web(f"http://u:s3cret@127.0.0.1:{target.port}/ok")
    asked = decisions(daemon)
    with pytest.raises(urllib.error.HTTPError, match="user name or password") as raised:
        gate.fetch(f"http://127.0.0.1:{hop.port}/away")
    assert "s3cret" not in str(raised.value)
    assert decisions(daemon) == asked + 1, "only the first request was checked"
    assert hop.hits == ["/away"] and target.hits == []


def test_fetch_refuses_a_redirect_to_a_url_with_a_backslash_before_its_path(
    gate: Gate, web, daemon: Daemon
) -> None:  # type: ignore[no-untyped-def]
    target = web()
    hop = web(f"http://127.0.0.1:{target.port}\\evil.test/")
    asked = decisions(daemon)
    with pytest.raises(urllib.error.HTTPError, match="backslash before its path"):
        gate.fetch(f"http://127.0.0.1:{hop.port}/away")
    assert decisions(daemon) == asked + 1, "only the first request was checked"
    assert hop.hits == ["/away"] and target.hits == []


def test_fetch_sends_the_method_as_the_gate_decided_it(gate: Gate, web, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok", method="patch") as response:
        assert response.status == 200
    assert server.methods == ["PATCH"]
    recorded = [r["request"] for r in daemon.records() if r.get("type") == "decision"][-1]
    assert recorded["method"] == "PATCH"


def test_fetch_refuses_other_schemes_and_denied_hosts(gate: Gate, files: Path) -> None:
    with pytest.raises(ValueError):
        gate.fetch(f"file://{files}/secret/key")
    with pytest.raises(Denied):
        gate.fetch("http://169.254.169.254/latest/meta-data/")


def test_fetch_ignores_proxies_from_the_environment(
    gate: Gate, web, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    proxy, server = web(), web()
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok") as response:
        assert json.load(response)["path"] == "/ok"
    assert (server.hits, proxy.hits) == (["/ok"], [])


@pytest.mark.parametrize(
    ("code", "method", "sent"),
    [
        # The request is repeated, method, body and headers, at the new URL...
        (307, "POST", "POST"),
        (308, "PUT", "PUT"),
        (301, "PATCH", "PATCH"),
        (302, "DELETE", "DELETE"),
        # ...except where it becomes a GET without a body (the Fetch standard, as Node).
        (301, "POST", "GET"),
        (302, "POST", "GET"),
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
    ],
)
def test_fetch_follows_a_redirect_as_the_fetch_standard_does(
    gate: Gate, web, daemon: Daemon, code: int, method: str, sent: str
) -> None:  # type: ignore[no-untyped-def]
    # urllib alone refused a 307 or 308 after a POST, and a 301 after a PUT, with an
    # HTTPError, where the JS client (Node's fetch) followed them.
    target = web()
    hop = web(f"http://127.0.0.1:{target.port}/ok", code)
    body = b'{"n": 1}'
    headers = {"Content-Type": "application/json", "X-Trace": "t1"}
    with gate.fetch(
        f"http://127.0.0.1:{hop.port}/away", method=method, data=body, headers=headers
    ) as response:
        assert response.status == 200
    assert (hop.methods, hop.bodies) == ([method], [body])
    assert target.methods == [sent] and target.headers[0]["x-trace"] == "t1"
    if sent == method:
        assert target.bodies == [body]
        assert target.headers[0]["content-type"] == "application/json"
    else:
        assert target.bodies == [b""] and "content-type" not in target.headers[0]
    # The hop was checked with the method it was sent with.
    checked = [r["request"] for r in daemon.records() if r.get("type") == "decision"][-1]
    assert (checked["path"], checked["method"]) == ("/ok", sent)


def older_pythons() -> list[str]:
    """Interpreters of the client's oldest supported versions (3.9, 3.10) found here."""
    found = []
    for minor in ("3.9", "3.10"):
        candidates = [shutil.which(f"python{minor}")]
        candidates += sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python{minor}"))
        )
        for candidate in candidates:
            if (
                candidate
                and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0
            ):
                found.append(candidate)
                break
    return found


REDIRECTS_IN_A_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tollgate_client import Gate
gate, hops = Gate(sys.argv[2]), json.loads(sys.argv[3])
for url, method in hops:
    with gate.fetch(url, method=method, data=b"{}") as response:
        print(method, response.status)
"""


def test_fetch_follows_307_and_308_alike_on_every_supported_python(daemon: Daemon, web) -> None:  # type: ignore[no-untyped-def]
    """On Python 3.9 a 307 after a POST raised TypeError (an isinstance with ``X | Y``),
    and before 3.11 urllib raised HTTPError for every 308 (review of 2026-12-07)."""
    pythons = older_pythons()
    if not pythons:
        pytest.skip("no Python 3.9 or 3.10 here to run the client with")
    target = web()
    temporary = web(f"http://127.0.0.1:{target.port}/ok", 307)
    permanent = web(f"http://127.0.0.1:{target.port}/ok", 308)
    hops = [[f"http://127.0.0.1:{temporary.port}/away", "POST"],
            [f"http://127.0.0.1:{permanent.port}/away", "PUT"]]  # fmt: skip
    for python in pythons:
        done = subprocess.run(
            [python, "-c", REDIRECTS_IN_A_CHILD, str(CLIENT_DIR), daemon.url, json.dumps(hops)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{python}: {done.stderr}"
        assert done.stdout.split("\n")[:2] == ["POST 200", "PUT 200"], python
    assert target.methods == ["POST", "PUT"] * len(pythons)


def test_fetch_drops_credentials_on_a_redirect_to_another_origin(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    credentials = {"Authorization": "Bearer t0ken", "Cookie": "session=1"}
    elsewhere = web()
    server = web(f"http://127.0.0.1:{elsewhere.port}/fine")
    with gate.fetch(f"http://127.0.0.1:{server.port}/away", headers=credentials):
        pass
    assert server.headers[0]["authorization"] == "Bearer t0ken"
    assert "authorization" not in elsewhere.headers[0] and "cookie" not in elsewhere.headers[0]
    same = web("/fine")  # same origin: kept
    with gate.fetch(f"http://127.0.0.1:{same.port}/away", headers=credentials):
        pass
    assert same.hits == ["/away", "/fine"]
    assert same.headers[1]["authorization"] == "Bearer t0ken"
    assert same.headers[1]["cookie"] == "session=1"


def test_fetch_refuses_a_host_header_for_another_host(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with pytest.raises(ValueError, match="Host header"):
        gate.fetch(f"http://127.0.0.1:{server.port}/ok", headers={"Host": "evil.test"})
    assert server.hits == []
    own = f"127.0.0.1:{server.port}"
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok", headers={"host": own}):
        pass
    assert server.headers[0]["host"] == own


# Found in review (rt26 clients, 2): passed through, so a backend honouring one ran a
# DELETE where the gate checked (and an approval bound) a GET or a POST.
@pytest.mark.parametrize("name", ["X-HTTP-Method-Override", "x-http-method", "X-METHOD-OVERRIDE"])
@pytest.mark.parametrize(("method", "value"), [("GET", "DELETE"), ("POST", "post")])
def test_fetch_refuses_a_header_asking_for_another_method(
    gate: Gate, web, daemon: Daemon, name: str, method: str, value: str
) -> None:  # type: ignore[no-untyped-def]
    server = web()
    asked = decisions(daemon)
    with pytest.raises(ValueError, match=f"{name} header: .*runs that method"):
        gate.fetch(f"http://127.0.0.1:{server.port}/ok", method=method, headers={name: value})
    assert decisions(daemon) == asked and server.hits == []
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok", headers={"X-Method": value}):
        pass
    assert server.methods == ["GET"]


@pytest.mark.parametrize("name", ["Host ", "Host\t", "X Host", "Impersonate-User "])
def test_header_names_that_are_not_http_tokens_are_refused(gate: Gate, web, name: str) -> None:  # type: ignore[no-untyped-def]
    """http.client would send "Host : evil.test" beside the real Host (past the Host check),
    and a lenient server could take it for the host; Node's fetch refuses such names too."""
    server = web()
    with pytest.raises(ValueError, match="not an HTTP token"):
        gate.fetch(f"http://127.0.0.1:{server.port}/ok", headers={name: "evil.test"})
    with pytest.raises(ValueError, match="not an HTTP token"):
        gate.kube(
            "GET",
            "/api/v1/namespaces/apps/pods",
            headers={name: "evil.test"},
            cluster=KubeCluster(f"http://127.0.0.1:{server.port}", token="t0ken"),
        )
    assert server.hits == []


def test_fetch_refuses_a_non_ascii_host_it_would_encode_otherwise(gate: Gate) -> None:
    # urllib would connect to "strasse.test" (IDNA 2003); the gate checks xn--strae-oqa.test.
    with pytest.raises(ValueError, match="xn--"):
        gate.fetch("http://straße.test/x")


def test_kube_sends_an_allowed_request_and_holds_back_the_rest(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    answer = gate.kube("GET", "/api/v1/namespaces/apps/pods?limit=5", cluster=cluster)
    assert answer.status == 200
    assert answer.json() == {"path": "/api/v1/namespaces/apps/pods?limit=5", "auth": "Bearer t0ken"}
    with pytest.raises(Denied) as raised:
        gate.kube("DELETE", "/apis/apps/v1/namespaces/apps/deployments/web", cluster=cluster)
    assert raised.value.decision.decision == "require_approval"
    with pytest.raises(Denied):
        gate.kube("GET", "/api/v1/namespaces/kube-system/secrets", cluster=cluster)
    assert api.hits == ["/api/v1/namespaces/apps/pods?limit=5"]


def test_kube_refuses_impersonation_headers(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    for header in ("Impersonate-User", "impersonate-group", "Impersonate-Extra-Scopes"):
        with pytest.raises(ValueError, match=header):
            gate.kube("GET", "/api/v1/namespaces/apps/pods", headers={header: "x"}, cluster=cluster)
    assert api.hits == []


@pytest.mark.parametrize(
    "name",
    ["Authorization", "authorization", "AUTHORIZATION", "Cookie", "cookie", "Proxy-Authorization"],
)
def test_kube_refuses_credential_headers(gate: Gate, web, name: str) -> None:  # type: ignore[no-untyped-def]
    """A caller's Authorization replaced the cluster's token, so the request ran as
    whoever that credential named, and the gate never saw who (rt25 k8s review, F2). It is
    refused as Impersonate-* is; the error names the way to give a token. The JS client
    refuses the same names."""
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    with pytest.raises(ValueError, match=name) as raised:
        gate.kube(
            "GET", "/api/v1/namespaces/apps/pods", headers={name: "Bearer admin"}, cluster=cluster
        )
    if not name.lower().startswith("proxy-"):  # refused earlier, with the other Proxy-* fields
        assert "KubeCluster(token=" in str(raised.value)
    assert api.hits == []
    gate.kube("GET", "/api/v1/namespaces/apps/pods", cluster=cluster)
    assert api.headers[-1]["authorization"] == "Bearer t0ken"


def test_kube_refuses_a_host_header(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    """Host picks the virtual host (behind a shared front end, another cluster); http.client
    would send the caller's instead of the server's. The JS client refuses it too."""
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    for name in ("Host", "host"):
        with pytest.raises(ValueError, match="Host header"):
            gate.kube("GET", "/api/v1/namespaces/apps/pods", headers={name: "x"}, cluster=cluster)
    assert api.hits == []


FRAMING = [
    {"Content-Length": "0"},
    {"transfer-encoding": "chunked"},
    {"Connection": "keep-alive"},
    {"Keep-Alive": "timeout=5"},
    {"TE": "trailers"},
    {"Expect": "100-continue"},
    {"Proxy-Authorization": "Basic eA=="},
]


@pytest.mark.parametrize("headers", FRAMING, ids=[next(iter(h)) for h in FRAMING])
def test_kube_and_fetch_refuse_headers_that_frame_the_message(
    gate: Gate, web, headers: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    """With Content-Length: 0 (or Transfer-Encoding: chunked and a body starting with the
    last chunk), http.client sent the body as a second request on the same keep-alive
    connection, a DELETE the gate never saw, which a Go server (the API server's stack)
    served (review of 2026-12-07). The HTTP library sets these fields itself."""
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    second = b"DELETE /api/v1/namespaces/prod/secrets/db HTTP/1.1\r\nHost: x\r\n\r\n"
    with pytest.raises(ValueError, match="frame a second request"):
        gate.kube("GET", "/api/v1/namespaces/apps/configmaps", body=b"0\r\n\r\n" + second,
                  headers=headers, cluster=cluster)  # fmt: skip
    with pytest.raises(ValueError, match="frame a second request"):
        gate.fetch(f"http://127.0.0.1:{api.port}/x", data=second, headers=headers)
    assert api.hits == []


# Found in review (rt25 r2-clients-ops, 4): http.client refused these only when sending,
# after the gate had recorded an allow, and sent a NUL (Node's Headers refuses all three).
@pytest.mark.parametrize(
    "value",
    [
        *("1\r\nAuthorization: Bearer X", "1\n", "1\x00", "\u0100", b"1\r\nX-B: Bearer X"),
        # ... and a value of a type http.client cannot send (rt25 review of the last fixes).
        *(None, 1.5, ["a", "b"]),
    ],
    ids=["CRLF", "LF", "NUL", "not-latin-1", "bytes-CRLF", "None", "float", "list"],
)
def test_kube_and_fetch_refuse_a_header_value_before_the_check(
    gate: Gate, web, daemon: Daemon, value: str | bytes
) -> None:  # type: ignore[no-untyped-def]
    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    asked = decisions(daemon)
    with pytest.raises(ValueError, match="the value of header X-A") as kube_raised:
        gate.kube("GET", "/api/v1/namespaces/apps/pods", headers={"X-A": value}, cluster=cluster)
    with pytest.raises(ValueError, match="the value of header X-A") as fetch_raised:
        gate.fetch(f"http://127.0.0.1:{api.port}/x", headers={"X-A": value})
    assert "Bearer" not in str(kube_raised.value) + str(fetch_raised.value)
    assert decisions(daemon) == asked and api.hits == []


def test_kube_reads_the_callers_headers_once(gate: Gate, web) -> None:  # type: ignore[no-untyped-def]
    """A mapping that answers differently on a second read got Impersonate-User past
    the screen (review of 2026-12-07): the headers screened are the headers sent."""

    class Shifty(Mapping[str, str]):
        """Benign on the first read, impersonating on every later one."""

        def __init__(self) -> None:
            self.reads = 0

        def __getitem__(self, name: str) -> str:
            return "system:admin"

        def __len__(self) -> int:
            return 1

        def __iter__(self) -> Iterator[str]:
            self.reads += 1
            return iter(["X-Trace"] if self.reads == 1 else ["Impersonate-User"])

    api = web()
    cluster = KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")
    gate.kube("GET", "/api/v1/namespaces/apps/pods", headers=Shifty(), cluster=cluster)
    assert api.hits, "the request was sent"
    assert all("impersonate" not in str(hit).lower() for hit in api.headers)


def test_kube_outside_a_pod_needs_a_cluster(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValueError, match="not in a Kubernetes pod"):
        gate.kube("GET", "/api/v1/namespaces/apps/pods")


# -- approvals through the real daemon ------------------------------------------------------


APPROVAL_POLICY = """\
version: 1
defaultAction: deny
approvals:
  timeout: 60s
  approvers: [{{name: alice, publicKey: "{public_key}"}}]
rules:
  - {{id: deploys, action: process.exec, command: make, args: {{prefix: [deploy]}}, decision: require_approval}}
"""


def approve_when_pending(daemon: Daemon, key: Ed25519PrivateKey, decision: str) -> str:
    """Act as the approver: wait for the pending approval, sign the decision, send it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pending = daemon.get("/v1/approvals?status=pending").json()["approvals"]
        if pending:
            break
        time.sleep(0.05)
    (view,) = pending
    message = canonical_bytes(
        {
            "approval": view["id"],
            "approver": "alice",
            "decision": decision,
            "requestHash": view["requestHash"],
        }
    )
    body = {
        "decision": decision,
        "approver": "alice",
        "reason": "checked the diff",
        "signature": base64.b64encode(key.sign(message)).decode(),
    }
    assert daemon.client is not None
    answer = daemon.client.post(f"/v1/approvals/{view['id']}", json=body)
    assert answer.status_code == 200, answer.text
    return str(view["id"])


@pytest.fixture
def approval_daemon(tmp_path: Path, daemon_factory) -> tuple[Daemon, Ed25519PrivateKey]:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    policy = tmp_path / "approvals.yaml"
    policy.write_text(APPROVAL_POLICY.format(public_key=base64.b64encode(raw).decode()))
    return daemon_factory(policy), key


@pytest.mark.parametrize("verdict", ["approve", "deny"])
def test_require_waits_for_a_signed_human_decision(approval_daemon, verdict: str) -> None:  # type: ignore[no-untyped-def]
    daemon, key = approval_daemon
    outcome: dict[str, Any] = {}

    def agent() -> None:
        try:
            outcome["decision"] = Gate(daemon.url, approval_timeout=20).require(
                "process.exec", argv=["make", "deploy"]
            )
        except Denied as denied:
            outcome["denied"] = denied

    thread = threading.Thread(target=agent)
    thread.start()
    approval_id = approve_when_pending(daemon, key, verdict)
    thread.join(30)
    if verdict == "approve":
        assert outcome["decision"].allowed and "denied" not in outcome
        # An approval is redeemed once: the same id does not let the check through again.
        again = Gate(daemon.url).check(
            "process.exec", argv=["make", "deploy"], approval=approval_id
        )
        assert not again.allowed
    else:
        denied = outcome["denied"]
        assert denied.approval is not None and denied.approval.status == "denied"
        assert f"approval {approval_id} is denied (checked the diff)" in denied.reason


def test_wait_for_approval_follows_a_real_approval(approval_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon, key = approval_daemon
    gate = Gate(daemon.url)
    first = gate.check("process.exec", argv=["make", "deploy"])
    assert first.decision == "require_approval" and first.approval is not None
    assert first.approval.pending and first.approval.expires_at is not None
    threading.Timer(0.3, approve_when_pending, (daemon, key, "approve")).start()
    started = time.monotonic()
    approval = gate.wait_for_approval(first.approval.id, timeout=20)
    assert approval.approved and time.monotonic() - started < 10
    assert gate.check("process.exec", argv=["make", "deploy"], approval=approval.id).allowed


# -- the shell one-liners of docs/clients.md ------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "clients.md"
GIT_PUSH = '{"action":"process.exec","argv":["git","push"]}'


def documented_one_liner(marker: str) -> str:
    """The sh block of docs/clients.md that contains ``marker``, as a runnable script."""
    blocks = re.findall(r"```sh\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    (block,) = [b for b in blocks if marker in b and "git push" in b]
    assert f"'{GIT_PUSH}'" in block
    return block.replace(f"'{GIT_PUSH}'", '"$REQUEST"').replace("&& git push", "&& echo RAN")


def _tools_for(marker: str) -> list[str]:
    return {"jq -en": ["curl", "jq"], "grep -q": ["curl", "grep"]}.get(marker, ["tollgate"])


@pytest.mark.parametrize("marker", ["jq -en", "grep -q", "tollgate check --url"])
def test_documented_shell_one_liners_act_only_on_an_allow(daemon: Daemon, marker: str) -> None:
    needed = _tools_for(marker)
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    script = documented_one_liner(marker)
    allowed = json.dumps({"action": "process.exec", "argv": ["echo", "x"]})
    denied = json.dumps({"action": "process.exec", "argv": ["git", "push"]})
    unreachable = f"http://127.0.0.1:{free_port()}"
    for url, request, runs in (
        (daemon.url, allowed, True),
        (daemon.url, denied, False),
        (unreachable, allowed, False),
    ):
        env = {**os.environ, "TOLLGATE_URL": url, "REQUEST": request}
        result = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30
        )
        assert ("RAN" in result.stdout) is runs, (url, request, result.stdout, result.stderr)


@pytest.mark.parametrize("marker", ["jq -en", "grep -q", "tollgate check --url"])
@pytest.mark.parametrize("context", [{"allowed": True}, {"x": {"allowed": True}}])
def test_documented_shell_one_liners_deny_a_deny_that_holds_allowed_true(
    daemon: Daemon, marker: str, context: dict[str, Any]
) -> None:
    """Until the red-team review of 2026-12-07 the answer for a command line with a
    redirection echoed the request's context, so a deny could hold the bytes
    "allowed":true, which the documented unanchored grep read as an allow. The gate no
    longer echoes it; the recipes must still deny such an answer, served here as that
    gate sent it."""
    missing = [tool for tool in _tools_for(marker) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    request = json.dumps(
        {"action": "process.exec", "commandLine": "echo pwned > /etc/x", "context": context},
        separators=(",", ":"),
    )
    real = daemon.check(request.encode(), headers={"Content-Type": "application/json"})
    assert real.json()["allowed"] is False and '"allowed":true' not in real.text
    assert real.text.endswith("]}}")  # the request object last: its context goes there
    echoed = real.text[:-2] + ',"context":' + json.dumps(context, separators=(",", ":")) + "}}"
    assert json.loads(echoed)["request"]["context"] == context
    body = echoed.encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with answering_peer(head.encode() + body) as url:
        env = {**os.environ, "TOLLGATE_URL": url, "REQUEST": request}
        result = subprocess.run(
            ["bash", "-c", documented_one_liner(marker)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert "RAN" not in result.stdout, (echoed, result.stderr)
    if marker == "grep -q":  # the unanchored pattern of before would have run it
        assert b'"allowed":true' in body


# -- the guarded helpers' own timeouts ------------------------------------------------------

BAD_HELPER_TIMEOUTS = [float("nan"), -1, 0, float("inf"), "30", True, 2_147_484]


@pytest.mark.parametrize("timeout", BAD_HELPER_TIMEOUTS)
def test_the_helpers_refuse_a_timeout_the_gate_could_not_have(  # type: ignore[no-untyped-def]
    gate: Gate, daemon: Daemon, web, tmp_path: Path, timeout: Any
) -> None:
    """fetch and kube passed any timeout to the socket and run to subprocess: a NaN one
    failed only after the check was sent (and its audit record written), an infinite one
    waited forever. Each is now refused like Gate(timeout=...), before any check."""
    server = web()
    cluster = KubeCluster(f"http://127.0.0.1:{server.port}", token="t0ken")
    marker = tmp_path / "ran"
    before = len(daemon.records())
    with pytest.raises(ValueError, match=r"Gate\.fetch timeout must be a finite number"):
        gate.fetch(f"http://127.0.0.1:{server.port}/ok", timeout=timeout)
    with pytest.raises(ValueError, match=r"Gate\.kube timeout must be a finite number"):
        gate.kube("GET", "/api/v1/namespaces/apps/pods", cluster=cluster, timeout=timeout)
    with pytest.raises(ValueError, match=r"Gate\.run timeout must be a finite number"):
        gate.run(["touch", str(marker)], timeout=timeout)
    assert len(daemon.records()) == before  # refused before any check was sent
    assert server.hits == []
    assert not marker.exists()


@contextlib.contextmanager
def dripping_server(pause: float = 0.2) -> Iterator[int]:
    """A server that answers a 40-byte body one byte every ``pause`` seconds (8 s)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
            with contextlib.suppress(OSError):
                for _ in range(40):
                    if stop.wait(pause):
                        break
                    conn.sendall(b"x")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_kube_s_timeout_bounds_the_whole_call(gate: Gate) -> None:
    """The socket's timeout was per read: a server sending a byte every 0.4 s kept a
    call with a 1 s timeout going for 24.8 s (review of 2026-12-07)."""
    with dripping_server() as port:
        cluster = KubeCluster(f"http://127.0.0.1:{port}", token="t0ken")
        # The whole body arrives after 8 s, each byte within 0.2 s of the last: the
        # call used to succeed; a 1 s timeout now ends it.
        with pytest.raises(TimeoutError):
            gate.kube("GET", "/api/v1/namespaces/apps/pods", cluster=cluster, timeout=1)


def test_the_helpers_take_a_valid_timeout(gate: Gate, web, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = web()
    with gate.fetch(f"http://127.0.0.1:{server.port}/ok", timeout=5) as response:
        assert response.status == 200
    cluster = KubeCluster(f"http://127.0.0.1:{server.port}", token="t0ken")
    assert (
        gate.kube("GET", "/api/v1/namespaces/apps/pods", cluster=cluster, timeout=5).status == 200
    )
    # None is subprocess.run's own "no limit"; a number is seconds.
    assert gate.run(["echo", "hi"], timeout=None, capture_output=True).stdout == b"hi\n"
    assert gate.run(["echo", "hi"], timeout=5, capture_output=True).stdout == b"hi\n"


def test_run_with_env_checks_a_program_named_like_an_assignment_as_the_program(
    env_daemon: Daemon, tmp_path: Path
) -> None:
    """Found in the red-team review of 2026-12-07: with env changes, run() checks a command
    line, and shlex.quote left a program ``X=/y`` (a file y in a directory X=) bare: the
    gate read it as an assignment and decided ``echo`` (allowed), while ./X=/y ran."""
    (tmp_path / "X=").mkdir()
    program = tmp_path / "X=" / "y"
    marker = tmp_path / "ran"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(0o755)
    gate = Gate(env_daemon.url)
    with pytest.raises(Denied) as raised:
        gate.run(["X=/y", "echo", "hi"], cwd=str(tmp_path), env={**os.environ, "NO_COLOR": "1"})
    assert sent_request(env_daemon, raised.value)["commandLine"] == "NO_COLOR=1 'X=/y' echo hi"
    assert "X=/y" in raised.value.reason
    assert not marker.exists()
