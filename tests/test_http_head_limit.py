"""The real daemon refuses a request head over 64 KiB (431, connection closed) and stays small."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.http_head import MAX_HEAD_BYTES
from tests.daemon import Daemon, answer_to_a_streaming_body

POLICY = """\
version: 1
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""

CHECK = b'{"action": "file.read", "path": "/app/data/x"}'


@pytest.fixture
def gate(write_policy: Callable[[str], Path], daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory(write_policy(POLICY))


def rss_kib(daemon: Daemon) -> int:
    assert daemon.process is not None
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


def send_head(daemon: Daemon, head_parts: list[bytes], total: int) -> bytes:
    """Send a request head of about ``total`` bytes in pieces; return what the server said."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sent = 0
        try:
            for part in head_parts:
                sock.sendall(part)
            while sent < total:
                piece = b"a" * 16_384
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection on us: what the test expects
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


@pytest.mark.parametrize(
    "start",
    [
        # many header fields, each complete
        [b"POST /check HTTP/1.1\r\nHost: localhost\r\nX-Pad-0: "],
        # one header value that never ends (httptools buffers it out of uvicorn's sight)
        [b"POST /check HTTP/1.1\r\nHost: localhost\r\nX-Pad: "],
        # a request target that never ends
        [b"POST /check?"],
    ],
    ids=["header-fields", "one-endless-value", "endless-target"],
)
def test_a_head_over_the_cap_gets_431_and_a_closed_connection(
    gate: Daemon, start: list[bytes]
) -> None:
    before = rss_kib(gate)
    if start[0].endswith(b"X-Pad-0: "):
        fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1, 20_000))
        answer = send_head(gate, [*start, b"a\r\n", fields], 0)
    else:
        answer = send_head(gate, start, 50 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer and b"\r\ndate: " in answer
    # 50 MiB were offered; the gate held at most the cap and one read of them.
    assert rss_kib(gate) - before < 8 * 1024
    # The gate goes on answering other clients.
    response = gate.check(CHECK)
    assert response.status_code == 200
    assert response.json()["allowed"] is True


def test_a_head_just_under_the_cap_is_served(gate: Daemon) -> None:
    response = gate.check(CHECK, headers={"X-Pad": "a" * (MAX_HEAD_BYTES - 2048)})
    assert response.status_code == 200
    assert response.json()["allowed"] is True


def _head_of(size: int, target: bytes = b"/health", method: bytes = b"GET") -> bytes:
    """A complete request head of exactly ``size`` bytes (one padding field)."""
    start = b"%s %s HTTP/1.1\r\nHost: localhost\r\nX-Pad: " % (method, target)
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def _send_whole(daemon: Daemon, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("over", [1, 4096, 100_000, 1_000_000])
def test_a_head_over_the_cap_written_in_one_piece_gets_431(gate: Daemon, over: int) -> None:
    # The cap was counted only while a request was incomplete after a read: a head that
    # arrived whole in one read (70 KB did, on the loopback) was served. A head far over
    # the cap is still being sent when the 431 is written: the gate reads the rest and
    # drops it, since closing with it unread would reset the connection under the client.
    assert _head_of(1000).endswith(b"a\r\n\r\n") and len(_head_of(1000)) == 1000
    answer = _send_whole(gate, _head_of(MAX_HEAD_BYTES + over))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer


def test_a_check_whose_head_is_over_the_cap_is_not_decided(gate: Daemon) -> None:
    before = len(gate.records())
    head = _head_of(MAX_HEAD_BYTES + 1, b"/check", b"POST")
    request = head[:-2] + b"Content-Length: %d\r\n\r\n%s" % (len(CHECK), CHECK)
    answer = _send_whole(gate, request)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"allowed"' not in answer
    assert len(gate.records()) == before  # never reached the gate: nothing decided


def test_a_head_of_exactly_the_cap_written_in_one_piece_is_served(gate: Daemon) -> None:
    answer = _send_whole(gate, _head_of(MAX_HEAD_BYTES))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_trailer_fields_over_the_cap_written_in_one_piece_get_431(gate: Daemon) -> None:
    before = len(gate.records())
    trailer = b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    request = (
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n" % (len(CHECK), CHECK)
        + trailer
        + b"\r\n"
    )
    answer = _send_whole(gate, request)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"allowed"' not in answer
    assert len(gate.records()) == before


def test_the_gate_does_not_start_without_httptools(tmp_path: Path) -> None:
    """uvicorn's fallback parser (h11) serves a head over any cap when it arrives in one
    piece, so a gate without httptools refuses to start, before it opens its trail."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    program = (
        "import sys; sys.modules['httptools'] = None\n"  # as if it were not installed
        "from sidecar.cli import main\n"
        f"sys.exit(main(['serve', '--policy', {str(policy)!r}, '--audit-dir', {str(audit)!r},"
        " '--port', '9899']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "tollgate: cannot start: httptools is not installed" in result.stderr
    assert not audit.exists()  # nothing was written


def test_after_a_431_the_rest_of_the_request_is_read_not_reset(gate: Daemon) -> None:
    """A client still sending its oversized head when the 431 comes must be able to
    finish and read the answer: the gate half-closes and drops what follows (a lingering
    close), rather than closing with input unread, which resets the connection."""
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(_head_of(MAX_HEAD_BYTES + 100)[:-4])  # over the cap, and not finished
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431 ")
        time.sleep(0.2)  # the gate has answered; a reset would have come by now
        for _ in range(4):
            sock.sendall(b"X-More: " + b"a" * 16_000 + b"\r\n")
            time.sleep(0.05)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):  # then the gate closes: end of input, no reset
            pass


def test_a_pipelined_check_is_answered_before_the_431_of_the_head_after_it(
    gate: Daemon,
) -> None:
    """Answers come in request order: a check sent ahead of an oversized head in the same
    write gets its own answer (the one its audit record holds), and only then the 431."""
    check = (
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(CHECK), CHECK)
    )
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        # No half-close after it: uvicorn takes the end of a client's input as a
        # disconnect, and drops the answer in flight.
        sock.sendall(check + _head_of(MAX_HEAD_BYTES + 100))
        answer = b""
        while not answer.endswith(b"exceed 64 KiB\n"):
            chunk = sock.recv(65536)
            assert chunk, answer[:300]
            answer += chunk
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"allowed":true' in rest.replace(b" ", b"")
    assert rest.count(b"HTTP/1.1 ") == 1 and b"HTTP/1.1 431 " in rest, rest[:300]


@pytest.mark.parametrize(
    ("target", "limit"), [(b"/check", 64 * 1024), (b"/v1/approvals/apr_x", 16 * 1024)]
)
def test_a_body_over_the_limit_gets_413_and_a_closed_connection(
    gate: Daemon, target: bytes, limit: int
) -> None:
    """The gate stops reading at the limit (docs/api.md): before, it answered 413 and
    went on reading, and dropping, the body's declared length (gigabytes, at full CPU).
    The client keeps sending; the gate closes after its answer."""
    head = b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 999999999999\r\n\r\n" % target
    answer = answer_to_a_streaming_body(gate.port, head + b"a" * (limit + 1))
    assert answer is not None, "the gate kept the connection open"
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer
