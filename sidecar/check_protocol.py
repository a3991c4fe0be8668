"""``POST /check`` answered by the server's HTTP protocol, without an ASGI request cycle.

The agent calls /check before every action. uvicorn serves a request by building an
ASGI scope, a request-response cycle with its event and a task running the app, which
reads the body through ``receive`` and answers through two ``send`` messages that
uvicorn checks and writes one by one. Under load that cost the gate about 18 µs of CPU
per check, about what normalising the check costs in the same loaded server
(docs/performance-investigations.md, "What uvicorn's request cycle costs"). So for
the usual shape of a check this protocol does the work: it keeps the body as httptools
parses it, and once the request is complete runs ``Gate.check`` (through
``check_body``, as the ASGI handler does) and writes the answer in one piece.

The usual shape: ``POST /check`` or ``POST /v1/check`` as the request target, exactly;
HTTP/1.1; one ``Content-Length`` within the body limit; no ``Transfer-Encoding``, no
``Expect``, no upgrade; and no answer still owed on the connection (a pipelined request
waits in uvicorn's queue). Any other request, for /check or not, goes to uvicorn's cycle
and the ASGI app as before, and ``CheckEndpoint`` answers the other shapes of /check.
Both give the same answer: status line, header fields and JSON body
(tests/test_check_protocol.py compares them).

What uvicorn's cycle does around an answer is done here the same way: its default
header fields (``date``), ``connection: close`` and the close when the client asked
for it or the server is shutting down, waiting while the transport's buffer is full,
nothing written to a client that has left (its check is still decided and recorded),
the keep-alive timer and the pipelined queue (``on_response_complete``), and the task
in the server's set, so that a graceful shutdown waits for it.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from sidecar.browsers import BROWSER_FIELDS, loopback_host
from sidecar.check_endpoint import (
    CHECK_PATHS,
    JSON_CONTENT_TYPE,
    CheckEndpoint,
    check_body,
    content_length,
    encode_answer,
)
from sidecar.gate import Answer, Gate
from sidecar.http_head import HeadLimitedHttpToolsProtocol, server_fields
from sidecar.request import MAX_BODY_BYTES

CHECK_TARGETS = frozenset(path.encode("ascii") for path in CHECK_PATHS)


class _NobodyWaits:
    """uvicorn's ``connection_lost`` wakes a cycle's body reader through its
    ``message_event``; a check answered here starts with its whole body, so nothing waits."""

    def set(self) -> None:
        pass


class PendingCheck:
    """A check being read and answered here. It stands in ``protocol.cycle`` as uvicorn's
    request-response cycle would, for the protocol's code that reads and sets its
    ``keep_alive``, ``response_complete``, ``disconnected`` and ``message_event``."""

    __slots__ = ("body", "disconnected", "keep_alive", "response_complete")
    message_event = _NobodyWaits()

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive  # false when the client said close, or at shutdown
        self.response_complete = False
        self.disconnected = False
        self.body: bytes | bytearray = b""


def answer_bytes(answer: Answer, fields: bytes, keep_alive: bool) -> bytes:
    """The whole HTTP/1.1 response, as uvicorn writes ``CheckEndpoint``'s: status line,
    the server's default ``fields``, the JSON's type and length, close if not kept
    alive, the JSON."""
    status, body = encode_answer(answer)
    close = b"" if keep_alive else b"connection: close\r\n"
    return b"%s%s%s: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (
        STATUS_LINE[status],
        fields,
        *JSON_CONTENT_TYPE,
        len(body),
        close,
        body,
    )


class CheckAnsweringProtocol(HeadLimitedHttpToolsProtocol):
    """The gate's HTTP protocol: the head cap, and /check answered without ASGI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the gate's own app has a gate; any other app is served by uvicorn alone.
        app = self.app
        self._gate: Gate | None = app.gate if isinstance(app, CheckEndpoint) else None
        self._check: PendingCheck | None = None  # the check whose body is being read
        # uvicorn replaces its default headers once a second (the date): encoded once each.
        self._default_headers: list[tuple[bytes, bytes]] | None = None
        self._default_fields = b""

    def head_received(self) -> None:
        if self._gate is not None and self._is_usual_check():
            self._check = PendingCheck(keep_alive=self.parser.should_keep_alive())
            self.cycle = self._check  # type: ignore[assignment]  # see PendingCheck
        else:
            super().head_received()

    def body_received(self, body: bytes) -> None:
        check = self._check
        if check is None:
            super().body_received(body)
            return
        held = check.body
        if not held:
            check.body = body  # the usual body: one piece, kept as it is
            return
        # A body in pieces goes into one buffer, as in uvicorn's cycle: a list would
        # hold an object per piece, some 20 times the body for a client sending it
        # two bytes at a time.
        if isinstance(held, bytes):
            held = check.body = bytearray(held)
        held += body

    def message_received(self) -> None:
        check = self._check
        if check is None:
            super().message_received()
            return
        self._check = None
        task = self.loop.create_task(self._answer(check))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _is_usual_check(self) -> bool:
        if self.url not in CHECK_TARGETS or self.parser.get_method() != b"POST":
            return False
        if self.parser.get_http_version() != "1.1" or self.parser.should_upgrade():
            return False
        if self.expect_100_continue or not (self.cycle is None or self.cycle.response_complete):
            return False
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:  # llhttp refuses a second one before this
                    return False
                length = value
            elif name == b"transfer-encoding":
                return False
            elif name == b"host":
                if not loopback_host(value):
                    return False  # refused by CheckEndpoint (sidecar/browsers.py)
            elif name in BROWSER_FIELDS:
                # Left to CheckEndpoint, which refuses it (or serves a Sec-Fetch-Site of
                # "none"): never answered here.
                return False
        if length is None:
            return False
        declared = content_length(length)
        return declared is not None and declared <= MAX_BODY_BYTES

    async def _answer(self, check: PendingCheck) -> None:
        assert self._gate is not None  # a PendingCheck is only made for a gate
        answer = await check_body(self._gate, bytes(check.body), self.server)
        if self.flow.write_paused and not check.disconnected:
            await self.flow.drain()
        if check.disconnected or self.transport.is_closing():
            return  # decided and recorded; there is nobody to tell
        headers = self.server_state.default_headers
        if headers is not self._default_headers:
            self._default_headers, self._default_fields = headers, server_fields(headers)
        self.transport.write(answer_bytes(answer, self._default_fields, check.keep_alive))
        check.response_complete = True
        if not check.keep_alive:
            self.transport.close()
        self.on_response_complete()
