"""An upgrade is refused, not half-read: the gate takes none, a WebSocket's included.

Found in review (2026-12-06): with ``Connection: upgrade`` and ``Upgrade: h2c`` (or
anything), llhttp ends a request at its head. uvicorn then ran the check without its
body (a 400, recorded as an empty invalid request) and, when the body arrived in a
later packet, read it as a request of its own: decided, recorded and answered, so one
request got two answers. Now the request gets uvicorn's 400 and the connection closes,
after the answers owed to the requests before it, as bytes that are not HTTP do.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon import Daemon

POLICY = """\
version: 1
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow}
"""


@pytest.fixture
def gate(write_policy: Callable[[str], Path], daemon_factory) -> Daemon:  # type: ignore[no-untyped-def]
    return daemon_factory(write_policy(POLICY))


def _check(path: str, *fields: bytes) -> bytes:
    body = b'{"action":"file.read","path":"%s"}' % path.encode()
    head = b"POST /check HTTP/1.1\r\nHost: localhost\r\n" + b"".join(f + b"\r\n" for f in fields)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _exchange(gate: Daemon, *pieces: bytes) -> bytes:
    """Send ``pieces`` as separate packets; read until the gate closes."""
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.2)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


UPGRADE = (b"Connection: upgrade", b"Upgrade: h2c")


@pytest.mark.parametrize("split", [False, True], ids=["one-packet", "body-later"])
def test_an_unsupported_upgrade_is_refused_and_its_body_never_decided(
    gate: Daemon, split: bool
) -> None:
    before = len(gate.records())
    request = _check("/app/data/smuggled", *UPGRADE)
    head, _, body = request.partition(b"\r\n\r\n")
    pieces = (head + b"\r\n\r\n", body) if split else (request,)
    answer = _exchange(gate, *pieces)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # one request, one answer
    assert b"connection: close" in answer.lower()
    assert len(gate.records()) == before  # neither an empty body nor the body decided


def test_the_check_before_it_is_answered_first(gate: Daemon) -> None:
    answer = _exchange(gate, _check("/app/data/x") + _check("/app/data/y", *UPGRADE))
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"allowed":true' in rest and b"HTTP/1.1 400 " in rest
    decided = [r["request"]["path"] for r in gate.records() if r.get("type") == "decision"]
    assert decided[-1:] == ["/app/data/x"]


@pytest.mark.parametrize("fields", [(b"Upgrade: h2c",), (b"Connection: upgrade",)])
def test_an_upgrade_header_alone_is_an_ordinary_check(gate: Daemon, fields: tuple[bytes]) -> None:
    # Without both headers there is no upgrade, and llhttp reads the body as usual.
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(_check("/app/data/z", *fields))
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"allowed":true' in answer, answer[:300]


WEBSOCKET = (
    b"GET /health HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# Found in review (2026-12-07): with uvicorn's WebSocket support on, the upgrade took
# the connection at once, and its empty 403 was the only answer: the check before it,
# decided and recorded as allowed, was never answered.
def test_the_check_before_a_websocket_upgrade_is_answered_first(gate: Daemon) -> None:
    answer = _exchange(gate, _check("/app/data/x") + WEBSOCKET)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"allowed":true' in rest
    assert b"HTTP/1.1 400 " in rest  # then the upgrade's refusal, and the connection closes
    # Refused without a warning that any local client could repeat into the log, nor
    # advice to install a WebSocket library (second review).
    assert gate.process is not None
    gate.process.send_signal(signal.SIGTERM)
    _, err = gate.process.communicate(timeout=30)
    assert b"Unsupported upgrade" not in err and b"WebSocket" not in err, err.decode()
