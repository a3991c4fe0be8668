"""A request head that RFC 9112 lets a server refuse is refused before its body is read,
so that no check is decided on a reading of its bytes that another reader would not
share (docs/api.md, "Errors"). Found by the red-team review of 2026-12-07: llhttp took
``Transfer-Encoding: gzip, chunked`` (dropping the coding it does not know and handing
over the coded bytes), ``HTTP/2.0`` and a request line without a version, and the gate
decided each body. Refused heads leave no audit record, as bytes that are not HTTP.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.daemon import Daemon, module_daemon

POLICY = """\
version: 1
rules:
  - {id: read, action: file.read, path: {glob: "/workspace/**"}, decision: allow}
"""
BODY = json.dumps({"action": "file.read", "path": "/workspace/x"}).encode()
LENGTH = b"Content-Length: %d\r\n" % len(BODY)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from module_daemon(tmp_path_factory, "strict-head", POLICY)


def exchange(gate: Daemon, data: bytes) -> bytes:
    """Everything the gate writes back before it closes the connection."""
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def decisions(gate: Daemon) -> int:
    trail = b"".join(p.read_bytes() for p in gate.audit_dir.rglob("*.jsonl"))
    return trail.count(b'"type":"decision"')


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /check HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n", 501),
        (b"POST /check HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: x, chunked\r\n", 501),
        (
            b"POST /check HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n",
            501,
        ),
        (b"POST /check HTTP/2.0\r\nHost: localhost\r\n" + LENGTH, 505),
        (b"POST /check\r\nHost: localhost\r\n" + LENGTH, 505),
        (b"POST /check HTTP/1.1\r\n" + LENGTH, 400),
        (b"POST http://elsewhere.example/check HTTP/1.1\r\nHost: 127.0.0.1\r\n" + LENGTH, 400),
        (b"POST /check HTTP/1.1\r\nHost: localhost\r\nExpect: something\r\n" + LENGTH, 417),
        (b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: gzip\r\n" + LENGTH, 415),
    ],
)
def test_a_head_no_strict_reader_shares_is_refused_undecided(
    gate: Daemon, head: bytes, status: int
) -> None:
    before = decisions(gate)
    chunked = b"chunked" in head
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY) if chunked else BODY
    answer = exchange(gate, head + b"\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer
    assert b"connection: close" in answer.lower()
    # RFC 9110 6.6.1: a 4xx carries Date, as uvicorn's own answers do (review, 2026-12-07).
    assert b"\r\ndate: " in answer.split(b"\r\n\r\n")[0].lower(), answer
    assert b'"allowed"' not in answer
    assert decisions(gate) == before


def test_the_usual_heads_are_still_decided(gate: Daemon) -> None:
    before = decisions(gate)
    for head in (
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + LENGTH,
        b"POST /check HTTP/1.0\r\n" + LENGTH,  # HTTP/1.0 needs no Host
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: identity\r\n"
        b"Connection: close\r\n" + LENGTH,
    ):
        answer = exchange(gate, head + b"\r\n" + BODY)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b'"allowed":true' in answer
    assert decisions(gate) == before + 3


def test_a_refusal_follows_the_answers_owed_before_it(gate: Daemon) -> None:
    usual = b"POST /check HTTP/1.1\r\nHost: localhost\r\n" + LENGTH + b"\r\n" + BODY
    refused = b"POST /check HTTP/2.0\r\nHost: localhost\r\n" + LENGTH + b"\r\n" + BODY
    answer = exchange(gate, usual + refused)
    first, _, rest = answer.partition(b"HTTP/1.1 505 ")
    assert first.startswith(b"HTTP/1.1 200 ") and b'"allowed":true' in first
    assert rest, answer
