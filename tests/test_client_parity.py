"""The Python and JS clients give the same answer to the same gate answer (CONTRACT 5).

One table of canned gate answers, each served by a tiny real loopback HTTP server, is
run through both clients: the Python client in this process, the JS client in one real
Node process (tests/client_parity_driver.mjs). Both must reach the expected allow/deny
and name the same kind of failure (``error``), and so each other's. Anything but a 200
whose JSON has ``"allowed": true`` must be a deny.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.daemon import free_port
from tests.test_js_client import JS_DIR, node_binary

# Gate as that module imports it: it puts client/python on sys.path first.
from tests.test_python_client import (
    Gate,
    KubeCluster,
    RawServer,
    http_answer,
    read_request,
    reset,
)

DRIVER = Path(__file__).with_name("client_parity_driver.mjs")
TIMEOUT_S = 0.5
Script = Callable[[socket.socket, int], None]


def answer(raw: bytes) -> Script:
    """Every request on the connection gets ``raw`` (a whole HTTP answer) as it is."""

    def script(conn: socket.socket, _: int) -> None:
        while read_request(conn) is not None:
            conn.sendall(raw)

    return script


def json_answer(status: int, body: bytes) -> Script:
    return answer(http_answer(status, body))


def once(raw: bytes, then: Callable[[socket.socket], None] | None = None) -> Script:
    """The first request gets ``raw``; then ``then(conn)`` (default: an orderly close)."""

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(raw)
        if then is not None:
            then(conn)

    return script


def drip(raw: bytes, every: float) -> Script:
    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        for byte in raw:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return script


def in_pieces(raw: bytes, *cuts: int) -> Script:
    """``raw`` sent in pieces, cut at ``cuts``, with a short pause between them."""

    def script(conn: socket.socket, _: int) -> None:
        read_request(conn)
        for start, end in zip((0, *cuts), (*cuts, len(raw)), strict=True):
            conn.sendall(raw[start:end])
            time.sleep(0.02)

    return script


def sleep_after(seconds: float) -> Callable[[socket.socket], None]:
    return lambda _conn: time.sleep(seconds)


ALLOW = b'{"allowed":true,"decision":"allow","reason":"ok"}'
DENY = b'{"allowed":false,"decision":"deny","reason":"no"}'


def _allow_after(head: bytes, eol: bytes = b"\r\n") -> bytes:
    return head + b"%sContent-Length: %d%s%s%s" % (eol, len(ALLOW), eol, eol, ALLOW)


# Heads that break RFC 9112, each followed by an allow: Python's http.client reads every
# one as a 200 and Node's parser some of them. Every client must deny them.
BAD_HEADS = {
    **{
        f"status-line-{name}": _allow_after(head)
        for name, head in (
            ("plus-200", b"HTTP/1.1 +200 OK"),
            ("0200", b"HTTP/1.1 0200 OK"),
            ("http-1.2", b"HTTP/1.2 200 OK"),
            ("http-2", b"HTTP/2.0 200 OK"),
            ("lowercase", b"http/1.1 200 OK"),
            ("two-spaces", b"HTTP/1.1  200 OK"),
            ("tab", b"HTTP/1.1\t200 OK"),
            ("no-reason-space", b"HTTP/1.1 200OK"),
            ("control-in-reason", b"HTTP/1.1 200 O\x00K"),
            ("leading-space", b" HTTP/1.1 200 OK"),
            ("1000", b"HTTP/1.1 1000 OK"),
        )
    },
    "header-with-nul": _allow_after(b"HTTP/1.1 200 OK\r\nX-A: a\x00b"),
    "header-space-before-colon": _allow_after(b"HTTP/1.1 200 OK\r\nX-A : b"),
    "header-obs-fold": _allow_after(b"HTTP/1.1 200 OK\r\nX-A: b\r\n c"),
    "bare-lf": _allow_after(b"HTTP/1.1 200 OK", b"\n"),
}


@dataclass
class Case:
    name: str
    script: Script | None  # None: nobody listens
    allowed: bool
    error: str | None
    status: int | None = None


def cases(elsewhere: str) -> list[Case]:
    """``elsewhere`` is the URL of a server that allows anything it is asked."""
    redirect = "HTTP/1.1 {code} Moved\r\nLocation: {url}/v1/check\r\nContent-Length: 0\r\n\r\n"
    return [
        Case("allow", json_answer(200, ALLOW), True, None, 200),
        Case("deny", json_answer(200, DENY), False, None, 200),
        Case("allowed-string", json_answer(200, b'{"allowed":"true"}'), False, "bad_answer", 200),
        Case("allowed-1", json_answer(200, b'{"allowed":1}'), False, "bad_answer", 200),
        Case("allowed-null", json_answer(200, b'{"allowed":null}'), False, "bad_answer", 200),
        Case("allowed-missing", json_answer(200, b'{"decision":"allow"}'), False, "bad_answer", 200),
        Case("allowed-in-array", json_answer(200, b'{"allowed":[true]}'), False, "bad_answer", 200),
        Case("allowed-nested", json_answer(200, b'{"x":{"allowed":true}}'), False, "bad_answer", 200),
        # JSON.parse and json.loads both keep the last of two keys: either order is a deny.
        Case("duplicate-false-true", json_answer(200, b'{"allowed":false,"allowed":true}'), False, "bad_answer", 200),
        Case("duplicate-true-false", json_answer(200, b'{"allowed":true,"allowed":false}'), False, "bad_answer", 200),
        Case("duplicate-escaped", json_answer(200, b'{"allowed":false,"\\u0061llowed":true}'), False, "bad_answer", 200),
        Case("not-json", json_answer(200, b"allowed: true"), False, "bad_answer", 200),
        Case("empty-200", json_answer(200, b""), False, "bad_answer", 200),
        Case("json-true", json_answer(200, b"true"), False, "bad_answer", 200),
        Case("trailing-garbage", json_answer(200, ALLOW + b"x"), False, "bad_answer", 200),
        Case("two-objects", json_answer(200, ALLOW + ALLOW), False, "bad_answer", 200),
        Case("huge", json_answer(200, b" " * (1 << 20) + ALLOW), False, "bad_answer"),
        Case("500-with-allow", json_answer(500, ALLOW), False, "bad_answer", 500),
        Case("204", answer(b"HTTP/1.1 204 No Content\r\n\r\n"), False, "bad_answer", 204),
        Case("503-unavailable", json_answer(503, b'{"allowed":false,"error":{"code":"unavailable","message":"m"}}'), False, "unavailable", 503),
        Case("400-invalid", json_answer(400, b'{"allowed":false,"error":{"code":"invalid_request","message":"m"}}'), False, "invalid_request", 400),
        # A redirect is never followed: the server it names is never asked.
        *(
            Case(f"redirect-{code}", answer(redirect.format(code=code, url=elsewhere).encode()), False, "bad_answer", code)
            for code in (301, 302, 303, 307, 308)
        ),
        Case("103-then-allow", answer(b"HTTP/1.1 103 Early Hints\r\n\r\n" + http_answer(200, ALLOW)), True, None, 200),
        Case("101", once(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n" + ALLOW, sleep_after(1)), False, "bad_answer", 101),
        Case("http-1.0-allow", answer(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ALLOW), ALLOW)), True, None, 200),
        *(Case(name, answer(raw), False, "bad_answer") for name, raw in BAD_HEADS.items()),
        Case("status-line-no-reason", answer(b"HTTP/1.1 200\r\nContent-Length: %d\r\n\r\n%s" % (len(ALLOW), ALLOW)), True, None, 200),
        Case("status-line-empty-reason", answer(b"HTTP/1.1 200 \r\nContent-Length: %d\r\n\r\n%s" % (len(ALLOW), ALLOW)), True, None, 200),
        # The head checked before http.client parses it arrives in pieces like any other.
        Case("head-in-pieces", in_pieces(b"HTTP/1.1 103 Early Hints\r\n\r\n" + http_answer(200, ALLOW), 5, 30, 40, 60), True, None, 200),
        Case("no-length", once(b"HTTP/1.1 200 OK\r\n\r\n" + ALLOW), False, "bad_answer"),
        Case("cut-short", once(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + ALLOW), False, "bad_answer"),
        Case("reset-mid-answer", once(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n{", lambda conn: (time.sleep(0.1), reset(conn))), False, "bad_answer"),
        Case("reset-before-answer", lambda conn, _: (read_request(conn), reset(conn)), False, "bad_answer"),
        Case("closed-before-answer", lambda conn, _: read_request(conn), False, "bad_answer"),
        Case("not-http", once(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), False, "bad_answer"),
        Case("gzip-then-chunks", answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(ALLOW), ALLOW)), False, "bad_answer"),
        Case("chunks-allow", answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(ALLOW), ALLOW)), True, None, 200),
        # Every head of the answer is checked: a 100 Continue first changes nothing.
        *(Case(f"continue-then-{name}", answer(b"HTTP/1.1 100 Continue\r\n\r\n" + raw), False, "bad_answer") for name, raw in BAD_HEADS.items()),
        Case("continue-then-allow", answer(b"HTTP/1.1 100 Continue\r\n\r\n" + http_answer(200, ALLOW)), True, None, 200),
        Case("interim-heads-without-end", once(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 2000), False, "bad_answer"),
        Case("two-lengths", once(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nContent-Length: 51\r\n\r\n" + ALLOW), False, "bad_answer"),
        Case("silent", lambda conn, _: time.sleep(2), False, "timeout"),
        Case("trickle", drip(http_answer(200, ALLOW), 0.05), False, "timeout"),
        Case("refused", None, False, "unreachable"),
    ]  # fmt: skip


def run_js(
    cases: list[dict[str, Any]],
    env: dict[str, str] | None = None,
    runs: list[dict[str, Any]] | None = None,
    kubes: list[dict[str, Any]] | None = None,
    waits: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    request = {
        "client": str(JS_DIR / "src" / "index.js"),
        "cases": cases,
        "runs": runs or [],
        "kubes": kubes or [],
        "waits": waits or [],
    }
    result = subprocess.run(
        [node_binary(), str(DRIVER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results: list[dict[str, Any]] = json.loads(result.stdout)
    return results


@pytest.fixture
def servers() -> Iterator[Callable[[Script], RawServer]]:
    started: list[RawServer] = []

    def start(script: Script) -> RawServer:
        started.append(RawServer(script))
        return started[-1]

    yield start
    for server in started:
        server.close()


def disagreements(
    table: list[Case],
    start: Callable[[Script], RawServer],
    env: dict[str, str] | None = None,
) -> list[str]:
    """How the two clients' readings of ``table`` differ from what it expects (each case
    from a server of its own, the JS client in one Node process run with ``env``)."""
    urls = [
        start(case.script).url if case.script else f"http://127.0.0.1:{free_port()}"
        for case in table
    ]

    python = []
    for url in urls:
        with Gate(url, timeout=TIMEOUT_S) as gate:
            decision = gate.check("file.read", path="/app/data/x")
        python.append((decision.allowed, decision.error, decision.status, decision.reason))
    js = run_js([{"url": url, "timeout": TIMEOUT_S * 1000} for url in urls], env=env)

    problems = []
    for case, (allowed, error, status, reason), theirs in zip(table, python, js, strict=True):
        expected = (case.allowed, case.error)
        if (allowed, error) != expected:
            problems.append(
                f"{case.name}: Python gave {(allowed, error)} ({reason}), expected {expected}"
            )
        if (theirs["allowed"], theirs["error"]) != expected:
            problems.append(
                f"{case.name}: JS gave {(theirs['allowed'], theirs['error'])} ({theirs['reason']}), expected {expected}"
            )
        if case.status is not None and (status, theirs["status"]) != (case.status, case.status):
            problems.append(
                f"{case.name}: status Python {status}, JS {theirs['status']}, expected {case.status}"
            )
        if not allowed and theirs["decision"] != "deny" and case.error is not None:
            problems.append(f"{case.name}: JS decision {theirs['decision']!r} for a failure")
    return problems


def test_both_clients_read_every_answer_in_the_table_alike(servers) -> None:  # type: ignore[no-untyped-def]
    elsewhere = servers(json_answer(200, ALLOW))
    problems = disagreements(cases(elsewhere.url), servers)
    assert not problems, "\n".join(problems)
    assert elsewhere.connections == 0, "a redirect was followed"


def _chunked_allow(trailer: bytes = b"", te: bytes = b"Transfer-Encoding: chunked\r\n") -> bytes:
    """An allow in one chunk, under the Transfer-Encoding lines ``te``, with ``trailer``
    (field lines) after the last chunk."""
    return b"HTTP/1.1 200 OK\r\n%s\r\n%x\r\n%s\r\n0\r\n%s\r\n" % (te, len(ALLOW), ALLOW, trailer)


def _allow_with(field: bytes) -> bytes:
    """An allow whose JSON object also holds ``"x": <field>``."""
    return http_answer(200, ALLOW[:-1] + b',"x":' + field + b"}")


def test_both_clients_refuse_an_answer_with_more_than_one_transfer_encoding_line(servers) -> None:  # type: ignore[no-untyped-def]
    """http.client read only the first Transfer-Encoding line: chunked, then gzip (or
    chunked again, or nothing) was read as chunks and allowed; Node, joining the lines,
    reads no plain chunked and denies (red-team review, F2)."""
    table = [
        Case("te-chunked-then-gzip", answer(_chunked_allow(te=b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")), False, "bad_answer"),
        Case("te-chunked-twice", answer(_chunked_allow(te=b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")), False, "bad_answer"),
        Case("te-chunked-then-empty", answer(_chunked_allow(te=b"Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n")), False, "bad_answer"),
        Case("te-chunked-once", answer(_chunked_allow()), True, None, 200),
    ]  # fmt: skip
    problems = disagreements(table, servers)
    assert not problems, "\n".join(problems)


def test_both_clients_refuse_an_answer_nested_too_deep_or_with_too_long_a_number(servers) -> None:  # type: ignore[no-untyped-def]
    """Python's json stopped at 5000 levels (RecursionError) and at an integer of 5000
    digits (int_max_str_digits), JSON.parse took both: a deny in one client was an allow
    in the other (red-team review, F3). Both now refuse past 32 levels (the answer itself
    the first) and past 4300 digits in a row, before parsing, and take what is within."""
    table = [
        Case("nested-5000-deep", answer(_allow_with(b"[" * 5000 + b"]" * 5000)), False, "bad_answer", 200),
        Case("nested-33-deep", answer(_allow_with(b"{\"a\":" * 32 + b"1" + b"}" * 32)), False, "bad_answer", 200),
        Case("nested-32-deep", answer(_allow_with(b"[" * 31 + b"]" * 31)), True, None, 200),
        Case("brackets-in-a-string", answer(_allow_with(b'"' + b"[" * 100 + b'"')), True, None, 200),
        Case("integer-5000-digits", answer(_allow_with(b"1" * 5000)), False, "bad_answer", 200),
        Case("integer-4301-digits", answer(_allow_with(b"-" + b"9" * 4301)), False, "bad_answer", 200),
        Case("fraction-4301-digits", answer(_allow_with(b"0." + b"1" * 4301)), False, "bad_answer", 200),
        Case("integer-4300-digits", answer(_allow_with(b"9" * 4300)), True, None, 200),
        Case("digits-in-a-string", answer(_allow_with(b'"' + b"1" * 5000 + b'"')), True, None, 200),
        # The gate's error shape past a limit is no error shape: bad_answer, not its code.
        Case("error-nested-too-deep", json_answer(503, b'{"error":{"code":"unavailable","message":"m","x":' + b"[" * 40 + b"]" * 40 + b"}}"), False, "bad_answer", 503),
    ]  # fmt: skip
    problems = disagreements(table, servers)
    assert not problems, "\n".join(problems)
    # The shell client too: the 5000-deep answer ended in a RecursionError traceback.
    for case in table:
        assert case.script is not None
        result = cli_check(servers(case.script).url)
        assert result.returncode == (0 if case.allowed else 1), (case.name, result.stderr)
        if not case.allowed:
            assert "treating as deny" in result.stderr or case.status != 200, (case.name, result)
            assert "Traceback" not in result.stderr, (case.name, result.stderr)


def test_both_clients_refuse_an_interim_head_in_http_1_0_and_a_bad_trailer(servers) -> None:  # type: ignore[no-untyped-def]
    """Python allowed, Node denied: an HTTP/1.0 1xx head before the answer (HTTP/1.0 has
    no 1xx; Node reads the head as a whole answer ending the connection), and a chunked
    answer whose trailer holds a Content-Length, a malformed field line or more than 16 KiB,
    or that ends before the trailer's blank line (red-team review, F4)."""

    def then_close(raw: bytes) -> Script:
        return once(raw, sleep_after(0.1))

    unended = _chunked_allow()[: -len(b"\r\n")]  # the trailer's blank line never comes
    table = [
        Case("http-1.0-continue-then-allow", answer(b"HTTP/1.0 100 Continue\r\n\r\n" + http_answer(200, ALLOW)), False, "bad_answer"),
        Case("http-1.0-103-then-allow", answer(b"HTTP/1.0 103 Early Hints\r\n\r\n" + http_answer(200, ALLOW)), False, "bad_answer"),
        Case("trailer-content-length", answer(_chunked_allow(b"Content-Length: 5\r\n")), False, "bad_answer"),
        Case("trailer-content-length-lowercase", answer(_chunked_allow(b"content-length: 5\r\n")), False, "bad_answer"),
        Case("trailer-control-character", answer(_chunked_allow(b"X-A: a\x01b\r\n")), False, "bad_answer"),
        Case("trailer-space-before-colon", answer(_chunked_allow(b"X-A : b\r\n")), False, "bad_answer"),
        Case("trailer-obs-fold", answer(_chunked_allow(b"X-A: b\r\n c\r\n")), False, "bad_answer"),
        Case("trailer-bare-lf", answer(_chunked_allow(b"X-A: b\n")), False, "bad_answer"),
        Case("trailer-over-16-KiB", answer(_chunked_allow(b"X-A: " + b"a" * 20000 + b"\r\n")), False, "bad_answer"),
        Case("closed-before-the-trailer-ends", then_close(unended), False, "bad_answer"),
        Case("closed-in-a-trailer-field", then_close(unended + b"X-A: b\r\n"), False, "bad_answer"),
        # What both take: a 1xx in HTTP/1.1, and a trailer of well-formed fields.
        Case("http-1.1-continue-then-http-1.0-allow", answer(b"HTTP/1.1 100 Continue\r\n\r\n" + http_answer(200, ALLOW).replace(b"HTTP/1.1", b"HTTP/1.0")), True, None, 200),
        Case("trailer-fields", answer(_chunked_allow(b"X-A: b\r\nTransfer-Encoding: gzip\r\n")), True, None, 200),
    ]  # fmt: skip
    problems = disagreements(table, servers)
    assert not problems, "\n".join(problems)


def _heads_of(total: int) -> bytes:
    """A 100 Continue, then an allow: heads of exactly ``total`` bytes together."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Pad: \r\n\r\n" % len(ALLOW)
    pad = b"a" * (total - len(interim) - len(head))
    return interim + head.replace(b"X-Pad: ", b"X-Pad: " + pad) + ALLOW


def _chunk_extension(extension: bytes) -> bytes:
    """An allow in one chunk whose size line carries ``extension``."""
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x%s\r\n%s\r\n0\r\n\r\n" % (
        len(ALLOW),
        extension,
        ALLOW,
    )


def test_both_clients_read_protocol_names_head_sizes_extensions_and_lengths_alike(servers) -> None:  # type: ignore[no-untyped-def]
    """Splits found in the red-team review of 2026-12-07: Node reads ICE/1.0 and RTSP/1.0
    status lines as HTTP/1.0, limits each head on its own (a thousand 100 Continue heads
    passed), skips an empty line before the status line and takes any number of header
    lines, all of which the Python client refused; the Python client took malformed chunk
    extensions and a tab after a Content-Length, which Node refuses. Each is now one
    outcome, the stricter."""
    link_lines = b"Link: </aaaaaaaaaaaaaaaaaaaaaaaaaaaaa>\r\n" * 20
    fields = b"".join(b"X-%d: b\r\n" % n for n in range(98))  # and a Content-Length
    length = len(ALLOW)
    table = [
        Case("status-line-ice", answer(_allow_after(b"ICE/1.0 200 OK")), False, "bad_answer"),
        Case("status-line-rtsp", answer(_allow_after(b"RTSP/1.0 200 OK")), False, "bad_answer"),
        Case("continue-then-ice", answer(b"HTTP/1.1 100 Continue\r\n\r\n" + _allow_after(b"ICE/1.0 200 OK")), False, "bad_answer"),
        Case("rtsp-continue-then-allow", answer(b"RTSP/1.0 100 Continue\r\n\r\n" + http_answer(200, ALLOW)), False, "bad_answer"),
        Case("empty-line-before-status-line", answer(b"\r\n" + http_answer(200, ALLOW)), False, "bad_answer"),
        Case("1000-continues-then-allow", answer(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000 + http_answer(200, ALLOW)), False, "bad_answer"),
        Case("100-early-hints-of-20-links-then-allow", answer((b"HTTP/1.1 103 Early Hints\r\n" + link_lines + b"\r\n") * 100 + http_answer(200, ALLOW)), False, "bad_answer"),
        # Refused at the limit, not left to the timeout: the connection stays open.
        Case("interim-heads-held-open", once(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 2000, sleep_after(1)), False, "bad_answer"),
        Case("heads-of-16384-bytes", answer(_heads_of(16384)), True, None, 200),
        Case("heads-of-16385-bytes", answer(_heads_of(16385)), False, "bad_answer"),
        Case("99-header-lines", answer(_allow_after(b"HTTP/1.1 200 OK\r\n" + fields[:-2])), True, None, 200),
        Case("100-header-lines", answer(_allow_after(b"HTTP/1.1 200 OK\r\n" + fields + b"X-Last: b")), False, "bad_answer"),
        *(
            Case(f"chunk-extension-{extension!r}", answer(_chunk_extension(extension)), False, "bad_answer")
            for extension in (b";a b", b";", b" ;a=b", b"\t;a=b", b"; a=b", b";a=b ", b";a=\x01", b";a=b;", b';a="b', b';a="b"c')
        ),
        *(
            Case(f"chunk-extension-{extension!r}", answer(_chunk_extension(extension)), True, None, 200)
            for extension in (b";a", b";a=b;c=d", b';a="b c"', b';a="b\\"c"', b';a=""')
        ),
        Case("content-length-tab-after", answer(b"HTTP/1.1 200 OK\r\nContent-Length:\t%d\t\r\n\r\n%s" % (length, ALLOW)), False, "bad_answer"),
        Case("content-length-tab-before", answer(b"HTTP/1.1 200 OK\r\nContent-Length:\t%d\r\n\r\n%s" % (length, ALLOW)), True, None, 200),
        Case("content-length-spaces-around", answer(b"HTTP/1.1 200 OK\r\nContent-Length:  %d  \r\n\r\n%s" % (length, ALLOW)), True, None, 200),
    ]  # fmt: skip
    problems = disagreements(table, servers)
    assert not problems, "\n".join(problems)


def test_both_clients_refuse_an_answer_with_a_content_encoding(servers) -> None:  # type: ignore[no-untyped-def]
    """A 200 with Content-Encoding: gzip and a plain JSON body was read as that JSON, an
    allow, by both clients: a coded body is not the JSON it reads as, and the gate sends
    none (red-team review of 2026-12-07, F4)."""

    def coded(coding: bytes, status: int = 200, body: bytes = ALLOW) -> bytes:
        raw = http_answer(status, body)
        return raw.replace(b"\r\n\r\n", b"\r\nContent-Encoding: %s\r\n\r\n" % coding, 1)

    chunked_gzip = _chunked_allow(te=b"Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n")
    error = b'{"allowed":false,"error":{"code":"unavailable","message":"m"}}'
    table = [
        *(
            Case(f"content-encoding-{coding.decode()}", answer(coded(coding)), False, "bad_answer")
            for coding in (b"gzip", b"br", b"x-anything", b"identity, gzip", b"GZIP")
        ),
        Case("content-encoding-twice", answer(coded(b"identity").replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)), False, "bad_answer"),
        Case("content-encoding-with-chunks", answer(chunked_gzip), False, "bad_answer"),
        Case("content-encoding-on-an-error", answer(coded(b"gzip", 503, error)), False, "bad_answer"),
        Case("content-encoding-identity", answer(coded(b"identity")), True, None, 200),
        Case("content-encoding-Identity", answer(coded(b" Identity ")), True, None, 200),
    ]  # fmt: skip
    problems = disagreements(table, servers)
    assert not problems, "\n".join(problems)


# Process-wide Node settings that loosen its HTTP parser for every request that does not
# say otherwise (some deployments set them for a legacy upstream).
LENIENT_NODE_OPTIONS = "--insecure-http-parser --max-http-header-size=65536"


def test_the_js_client_reads_answers_as_strictly_whatever_node_options_says(servers) -> None:  # type: ignore[no-untyped-def]
    """With NODE_OPTIONS=--insecure-http-parser a length with chunks, a NUL in a field,
    a folded line and a bare LF were read as allows, and --max-http-header-size=65536
    let a 20 KB head through (red-team review, F1): the gate's answers are read by Node's
    strict parser with the documented 16 KiB head limit, whatever the process says."""
    lax_only = {
        "length-and-chunks": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(ALLOW), ALLOW),
        "head-over-16-KiB": _allow_after(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 20000),
        "continue-then-head-over-16-KiB": b"HTTP/1.1 100 Continue\r\n\r\n" + _allow_after(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 20000),
    }  # fmt: skip
    table = [
        *(Case(name, answer(raw), False, "bad_answer") for name, raw in {**BAD_HEADS, **lax_only}.items()),
        Case("allow", json_answer(200, ALLOW), True, None, 200),
        Case("head-of-15-KiB", answer(_allow_after(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 15000)), True, None, 200),
    ]  # fmt: skip
    problems = disagreements(
        table, servers, env={**os.environ, "NODE_OPTIONS": LENIENT_NODE_OPTIONS}
    )
    assert not problems, "\n".join(problems)


PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def test_neither_client_sends_checks_through_a_proxy_from_the_environment(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A proxy could answer in the gate's place: the gate is on loopback, asked directly."""
    proxy = servers(json_answer(200, ALLOW))  # would allow anything it is sent
    gate = servers(json_answer(200, DENY))
    env = {name: proxy.url for name in PROXY_VARIABLES}
    env |= {"NO_PROXY": "", "no_proxy": "", "NODE_USE_ENV_PROXY": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Gate(gate.url, timeout=TIMEOUT_S) as client:
        decision = client.check("file.read", path="/app/data/x")
    js = run_js([{"url": gate.url, "timeout": TIMEOUT_S * 1000}], env={**os.environ, **env})
    assert (decision.allowed, decision.error, decision.reason) == (False, None, "no")
    assert (js[0]["allowed"], js[0]["error"], js[0]["reason"]) == (False, None, "no")
    assert proxy.connections == 0 and gate.connections == 2


def test_both_clients_end_an_approval_wait_by_its_timeout(servers) -> None:  # type: ignore[no-untyped-def]
    """Each long poll was given its wait plus the Gate's timeout, so a gate holding the
    poll kept wait_for_approval(timeout=3.9) of a Gate with a 2 s timeout going for 5 s
    (red-team review of 2026-12-07, F6). A poll now ends with what is left of the wait,
    plus half a second at most."""
    held = servers(lambda conn, _: (read_request(conn), time.sleep(5)))
    started = time.monotonic()
    with Gate(held.url, timeout=2.0) as client:
        approval = client.wait_for_approval("apr_1", timeout=1.5)
    python_seconds = time.monotonic() - started
    [js] = run_js([], waits=[{"url": held.url, "timeout": 2000, "waitMs": 1500}])
    assert approval.status == "unknown" and "did not answer" in (approval.reason or "")
    assert js["status"] == "unknown" and "did not answer" in js["reason"], js
    # 1.5 s and the 0.5 s grace; before, 1 s held and the 2 s timeout: 3 s.
    assert 1.9 < python_seconds < 2.4, python_seconds
    assert 1.9 < js["seconds"] < 2.4, js


def test_both_clients_refuse_the_same_timeouts_when_made() -> None:
    """One rule in both (seconds in Python, ms in JS): a finite number above 0. Python
    used to take None and fail every check with a TypeError; JS took anything."""
    invalid: list[Any] = [0, -1, None, "2", True, 2**31]
    python = []
    for timeout in invalid:
        try:
            Gate("http://127.0.0.1:9800", timeout=timeout if timeout != 2**31 else 2**31 / 1000)
            python.append(None)
        except Exception as exc:  # the type is what is compared
            python.append(type(exc).__name__)
    assert python == ["ValueError"] * len(invalid)
    js = run_js([{"url": "http://127.0.0.1:9800", "timeout": timeout} for timeout in invalid])
    assert [result.get("construct") for result in js] == ["RangeError"] * len(invalid), js
    ok = run_js([{"url": "http://127.0.0.1:9800", "timeout": 1}])
    assert ok[0].get("construct") is None, ok


def ipv6_loopback_available() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_both_clients_ask_a_gate_on_the_ipv6_loopback() -> None:
    listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                json_answer(200, ALLOW)(conn, 0)

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://[::1]:{port}"
        with Gate(url, timeout=2.0) as client:
            decision = client.check("file.read", path="/app/data/x")
        js = run_js([{"url": url, "timeout": 2000}])
    finally:
        stop.set()
        listener.close()
    assert (decision.allowed, decision.error) == (True, None), decision.reason
    assert (js[0]["allowed"], js[0]["error"]) == (True, None), js[0]


LOOPBACK_URLS = [
    "http://127.0.0.1:9",
    "http://[::1]:9",
    "http://localhost:9",
    "https://LOCALHOST:9/prefix",
    "http://localhost.:9",
]
REMOTE_URLS = [
    "http://192.0.2.1:9800",
    "https://gate.example:9800",
    "http://0.0.0.0:9800",  # "this host" on Linux, but any interface: not the loopback
    "http://[::ffff:127.0.0.1]:9800",
    "http://[::]:9800",
    "http://localhost.gate.example:9800",
    "http://127.0.0.1.gate.example:9800",
    # Loopback, but not an address the gate listens on: anyone in the pod can bind it
    # (review 2026-12-06).
    "http://127.8.9.10:9",
    "http://127.0.0.2:9800",
    "http://127.0.1.1:9800",
    "http://app.localhost:9800",
    "http://localhost..:9800",
]


def python_refusal(url: str | None, **options: bool) -> str | None:
    """The exception's type name if ``Gate`` refuses to be made for ``url``, else None."""
    try:
        Gate(url, **options).close()
    except Exception as exc:  # the type is what is compared
        return type(exc).__name__
    return None


def test_neither_client_asks_a_gate_off_the_loopback_unless_told_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate is a sidecar on the pod's loopback, on one address. A URL elsewhere,
    whoever set it (say an agent that rewrote its own TOLLGATE_URL), would let another
    host answer the checks with allows, and another loopback address anything in the pod
    that listens there: both clients refuse to be made for it unless the code says so."""
    for url in LOOPBACK_URLS:
        assert python_refusal(url) is None, url
    for url in REMOTE_URLS:
        assert python_refusal(url) == "ValueError", url
        assert python_refusal(url, allow_remote=True) is None, url
    js = run_js([{"url": url, "timeout": 100} for url in LOOPBACK_URLS + REMOTE_URLS])
    made = [result.get("construct") for result in js]
    assert made == [None] * len(LOOPBACK_URLS) + ["TypeError"] * len(REMOTE_URLS), js
    assert all("allowRemote" in result["message"] for result in js[len(LOOPBACK_URLS) :])
    js_allowed = run_js([{"url": url, "timeout": 100, "allowRemote": True} for url in REMOTE_URLS])
    assert [result.get("construct") for result in js_allowed] == [None] * len(REMOTE_URLS)

    # The same from the environment: TOLLGATE_URL is not trusted more than an argument.
    monkeypatch.setenv("TOLLGATE_URL", "http://192.0.2.1:9800")
    assert python_refusal(None) == "ValueError"
    js_env = run_js([{"url": None, "timeout": 100}], env={**os.environ})
    assert js_env[0].get("construct") == "TypeError", js_env


# Spellings the WHATWG URL parser rewrites into a loopback URL the JS client then used,
# where the Python client reads the URL as written and refuses it (red-team review of
# 2026-12-07, F5); the backslash one is read as 127.0.0.1 by the one and 127.0.0.2 by a
# person. Each is refused by both, whether or not remote gates are allowed, unless noted.
REWRITTEN_URLS = [
    "http://127.1:9",
    "http://2130706433:9",
    "http://0x7f000001:9",
    "http://0177.0.0.1:9",
    "http://127.0.0.1.:9",
    "http://%6cocalhost:9",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:9",
    "http://127\u30020\u30020\u30021:9",
    "http://[::127.0.0.1]:9",
]
MALFORMED_URLS = [
    "http:127.0.0.1:9",
    "http:/127.0.0.1:9",
    "http:///127.0.0.1:9",
    "http://@127.0.0.1:9",
    "http://127.0.0.1:9\\@127.0.0.2:9",
    "http://127.0.0.1:9/a b",
    "http://127.0.0.1:9/\u00e9",
    "http://127.0.0.1:9/\r\nX: y",
    "http://127.0.0.1:9/a\\b",
    " http://127.0.0.1:9",
    "http://127.0.0.1:9\n",
    "http://127.0.0.1:9\t9",
]
WRITTEN_FINE_URLS = ["HTTP://127.0.0.1:9", "http://[0::1]:9", "http://127.0.0.1:09/v1/"]


def test_both_clients_read_a_gate_url_as_written() -> None:
    for url in REWRITTEN_URLS:
        assert python_refusal(url) == "ValueError", url
    for url in MALFORMED_URLS:
        assert python_refusal(url) == "ValueError", url
        assert python_refusal(url, allow_remote=True) == "ValueError", url
    for url in WRITTEN_FINE_URLS:
        assert python_refusal(url) is None, url
    js = run_js([{"url": url, "timeout": 100} for url in REWRITTEN_URLS + MALFORMED_URLS])
    assert [result.get("construct") for result in js] == ["TypeError"] * len(js), js
    js_remote = run_js(
        [{"url": url, "timeout": 100, "allowRemote": True} for url in MALFORMED_URLS]
    )
    assert [result.get("construct") for result in js_remote] == ["TypeError"] * len(js_remote)
    js_fine = run_js([{"url": url, "timeout": 100} for url in WRITTEN_FINE_URLS])
    assert [result.get("construct") for result in js_fine] == [None] * len(js_fine), js_fine


# -- gate.run with env: both clients show the gate the same assignments --------------------

RUN_ENV_POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: [printenv, touch, export], decision: allow}
"""


def test_both_clients_check_what_env_adds_to_a_run_alike(
    tmp_path: Path, daemon_factory: Callable[..., Any]
) -> None:
    """An env= that sets LD_PRELOAD, GIT_SSH_COMMAND or PATH is checked as the assignment
    it is (environment-override, denied, nothing runs); a harmless one is allowed and the
    child sees it; an unchanged environment is plain argv; a name no shell can assign is
    refused before any check. Both clients send the same request for each."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(RUN_ENV_POLICY)
    daemon = daemon_factory(policy)
    marker = tmp_path / "ran"
    value = "it's $(not run) `x`"
    runs: list[tuple[list[str] | str, dict[str, str]]] = [
        (["touch", str(marker)], {"LD_PRELOAD": "/tmp/x.so"}),
        (["touch", str(marker)], {"GIT_SSH_COMMAND": "/tmp/x-ssh"}),
        (["touch", str(marker)], {"PATH": f"{os.environ['PATH']}:/tmp/tools"}),
        (f"touch {marker}", {"LD_PRELOAD": "/tmp/x.so"}),
        (["printenv", "FOO", "BAR"], {"FOO": "1", "BAR": value}),
        ("printenv BAR", {"FOO": "1", "BAR": value}),
        (["printenv", "HOME"], {}),
        (["printenv", "HOME"], {"A-B": "1"}),
        ("printenv HOME", {"": "1"}),
    ]

    def python_run(command: list[str] | str, add: dict[str, str]) -> dict[str, Any]:
        with Gate(daemon.url) as gate:
            try:
                result = gate.run(
                    command, env={**os.environ, **add}, capture_output=True, text=True
                )
            except Exception as exc:  # the kind of refusal is what is compared
                return {"ran": False, "error": type(exc).__name__}
        return {"ran": True, "exitCode": result.returncode, "stdout": result.stdout}

    python, python_requests = [], []
    for command, add in runs:
        before = len(daemon.records())
        python.append(python_run(command, add))
        python_requests.append([r["request"] for r in daemon.records()[before:]])
    assert not marker.exists()
    before = len(daemon.records())
    js = run_js([], runs=[{"url": daemon.url, "command": c, "env": add} for c, add in runs])
    js_requests = [r["request"] for r in daemon.records()[before:]]
    assert not marker.exists()

    home = os.environ["HOME"]
    expected = [
        {"ran": False, "error": "Denied"},
        {"ran": False, "error": "Denied"},
        {"ran": False, "error": "Denied"},
        {"ran": False, "error": "Denied"},
        {"ran": True, "exitCode": 0, "stdout": f"1\n{value}\n"},
        {"ran": True, "exitCode": 0, "stdout": f"{value}\n"},
        {"ran": True, "exitCode": 0, "stdout": f"{home}\n"},
        {"ran": False, "error": "ValueError"},
        {"ran": False, "error": "ValueError"},
    ]
    assert python == expected
    js_names = {"Denied": "DeniedError", "ValueError": "TypeError"}
    js_expected = [
        {**row, "error": js_names[row["error"]]} if "error" in row else row for row in expected
    ]
    assert [{k: v for k, v in row.items() if k != "reason"} for row in js] == js_expected
    assert all("environment-override" in row["reason"] for row in js[:4])

    printenv, touch = shutil.which("printenv"), shutil.which("touch")
    assert [requests[0].get("commandLine") for requests in python_requests[:6]] == [
        f"LD_PRELOAD=/tmp/x.so {touch} {marker}",
        f"GIT_SSH_COMMAND=/tmp/x-ssh {touch} {marker}",
        f"PATH={os.environ['PATH']}:/tmp/tools {touch} {marker}",
        f"export LD_PRELOAD=/tmp/x.so; touch {marker}",
        f"BAR={shlex.quote(value)} FOO=1 {printenv} FOO BAR",
        f"export BAR={shlex.quote(value)} FOO=1; printenv BAR",
    ]
    [plain] = python_requests[6]
    assert (plain["argv"], "commandLine" in plain) == ([printenv, "HOME"], False)
    assert python_requests[7:] == [[], []]  # refused before any check
    # JS sent exactly the same requests, in the same order, and nothing for the refusals.
    assert js_requests == [request for requests in python_requests for request in requests]


# -- the shell client: tollgate check --url (CONTRACT 3, 5) ---------------------------------


def cli_check(url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "check", "--url", url, "--timeout", "2",
         '{"action": "file.read", "path": "/app/data/x"}'],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_tollgate_check_url_reads_answers_as_strictly_as_the_clients(servers) -> None:  # type: ignore[no-untyped-def]
    """urlopen alone follows a redirect (a POST to a 302 becomes a GET elsewhere), asks
    through HTTP_PROXY, and json.loads keeps the last of two "allowed" keys: each of these
    read as exit 0, an allow."""
    elsewhere = servers(json_answer(200, ALLOW))
    for code in (301, 302, 303, 307, 308):
        moved = f"HTTP/1.1 {code} Moved\r\nLocation: {elsewhere.url}/v1/check\r\nContent-Length: 0\r\n\r\n"
        result = cli_check(servers(answer(moved.encode())).url)
        assert result.returncode == 1, (code, result.stdout, result.stderr)
    assert elsewhere.connections == 0, "tollgate check followed a redirect"

    length = len(ALLOW)
    ambiguous = {
        "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
        % (length, length, ALLOW),
        "plus-length": b"HTTP/1.1 200 OK\r\nContent-Length: +%d\r\n\r\n%s" % (length, ALLOW),
        "length-and-chunks": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (length, length, ALLOW),
    }
    continued = {
        f"continue-then-{n}": b"HTTP/1.1 100 Continue\r\n\r\n" + r for n, r in BAD_HEADS.items()
    }
    for name, raw in {**BAD_HEADS, **continued, **ambiguous}.items():
        result = cli_check(servers(answer(raw)).url)
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "treating as deny" in result.stderr, (name, result.stderr)
    fine = cli_check(servers(answer(_allow_after(b"HTTP/1.1 200 OK"))).url)
    assert fine.returncode == 0, (fine.stdout, fine.stderr)

    for body in (b'{"allowed":false,"allowed":true}', b'{"allowed":true,"x":{"a":1,"a":2}}'):
        result = cli_check(servers(json_answer(200, body)).url)
        assert result.returncode == 1 and "twice" in result.stderr, (body, result.stderr)

    proxy = servers(json_answer(200, ALLOW))
    gate = servers(json_answer(200, DENY))
    env = {
        **os.environ,
        **{name: proxy.url for name in PROXY_VARIABLES},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    result = cli_check(gate.url, env)
    assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "no", result.stderr
    assert proxy.connections == 0, "tollgate check asked through a proxy"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollgate test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _tls_gate(
    cert: Path, key: Path, raw: bytes, received: list[bytes] | None = None
) -> tuple[str, socket.socket]:
    """An HTTPS server on 127.0.0.1 answering every connection's request with ``raw``;
    each request it reads is added to ``received``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by the test
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    request = read_request(tls)
                    if received is not None and request is not None:
                        received.append(request)
                    tls.sendall(raw)
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused the certificate

    threading.Thread(target=serve, daemon=True).start()
    return f"https://127.0.0.1:{listener.getsockname()[1]}", listener


def test_tollgate_check_url_reads_an_https_gate_as_strictly(tmp_path: Path) -> None:
    """The HTTPS handler of the strict opener verifies the certificate as urllib's does,
    and checks the head as over plain HTTP."""
    cert, key = _self_signed(tmp_path)
    trusting = {**os.environ, "SSL_CERT_FILE": str(cert)}
    url, listener = _tls_gate(cert, key, _allow_after(b"HTTP/1.1 200 OK"))
    bad_url, bad_listener = _tls_gate(cert, key, BAD_HEADS["status-line-http-1.2"])
    try:
        allowed = cli_check(url, trusting)
        assert allowed.returncode == 0, (allowed.stdout, allowed.stderr)
        untrusted = cli_check(url)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        lenient = cli_check(bad_url, trusting)
        assert lenient.returncode == 1 and "treating as deny" in lenient.stderr, lenient.stderr
    finally:
        listener.close()
        bad_listener.close()


def test_neither_client_lets_the_environment_turn_off_certificate_checks(
    tmp_path: Path, servers, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """With NODE_TLS_REJECT_UNAUTHORIZED=0 in its environment the JS client took an allow
    from an https gate with any certificate, and gate.kube sent the cluster token to any
    server; the Python client verified both (red-team review of 2026-12-07). Like a
    proxy, the environment cannot loosen how the gate and the API server are reached."""
    cert, key = _self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _ = _self_signed(tmp_path / "other")  # the CA the cluster is said to have
    lax = {"NODE_TLS_REJECT_UNAUTHORIZED": "0", "PYTHONHTTPSVERIFY": "0"}
    for name, value in lax.items():
        monkeypatch.setenv(name, value)
    url, listener = _tls_gate(cert, key, http_answer(200, ALLOW))
    received: list[bytes] = []
    api, api_listener = _tls_gate(cert, key, http_answer(200, b'{"kind":"PodList"}'), received)
    try:
        with Gate(url, timeout=2.0) as client:
            decision = client.check("file.read", path="/app/data/x")
        [js] = run_js([{"url": url, "timeout": 2000}], env={**os.environ})
        assert (decision.allowed, decision.error) == (False, "unreachable"), decision.reason
        assert (js["allowed"], js["error"]) == (False, "unreachable"), js
        assert "certificate" in js["reason"], js

        allowing = servers(json_answer(200, ALLOW)).url
        token = "SECRET-TOKEN"
        with Gate(allowing) as client, pytest.raises(ssl.SSLError):
            client.kube(
                "GET",
                "/api/v1/namespaces/apps/pods",
                cluster=KubeCluster(api, token=token, ca_file=str(other_ca)),
            )
        cluster = {"server": api, "token": token, "caFile": str(other_ca)}
        [js_kube] = run_js([], env={**os.environ}, kubes=[{"url": allowing, "cluster": cluster}])
        assert "certificate" in js_kube.get("error", ""), js_kube
        assert not any(token.encode() in request for request in received)
    finally:
        listener.close()
        api_listener.close()
