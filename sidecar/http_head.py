"""A cap on the size of an HTTP request's head (request line and header fields).

uvicorn bounds a request head only with its h11 parser (``h11_max_incomplete_event_size``);
with httptools, the parser it prefers, a client can send header bytes without end and the
server holds them all in memory. The gate's body is capped at 64 KiB (CONTRACT 2.1); this
caps the head at the same size, so a local client cannot grow the sidecar until the
kernel kills it. A head over the cap is answered with 431 (RFC 6585 section 5) and the
connection is closed; the application never sees the request, so, like any request
that is not valid HTTP, it leaves no audit record.

The count is of every byte of a request that is not its body, taken per chunk read from
the socket until the request is complete: the head, and after a chunked body its trailer
fields, which httptools hands uvicorn as more header fields to keep (and the chunks'
framing, a few bytes per chunk). A request that begins in a chunk after others that end
in it (a client that pipelines) is not charged for their heads, measured as they were
parsed; a read holds up to 256 KiB, hundreds of small checks. A pipelining client gets
its answers in order: a 431 (or uvicorn's 400 to bytes that are not HTTP) is written
after the responses to the requests before it, also when the refused request's head was
taken and only its trailer fields are over the cap (it leaves uvicorn's queue: it will
never get its body). A head whose end arrives in the chunk being read is parsed before
that count is taken, so it is measured again when it is complete, from the request line
and the header fields uvicorn keeps, before the request is dispatched (counted only per
chunk, a head over the cap written in one piece would be served).

A client that half-closes after its requests (its end of input, ``nc -N``) still gets
the answers to the requests it sent whole, in order, and then the connection closes
(``eof_received``); uvicorn alone would close at once and drop them.

The gate's protocol, sidecar/check_protocol.py, builds on this one: what is done with a
request the cap lets through is left to ``head_received``, ``body_received`` and
``message_received``, which here hand it to uvicorn's request cycle. The same protocol
bounds what a pipelining client has queued (``QueueBoundFlow``).

Importing this module needs httptools; ``sidecar.server.http_protocol`` imports it
(through sidecar/check_protocol.py), and says so when httptools is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from sidecar.keep_alive import KeepAliveHttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
_LINGER_SECONDS = 2.0  # how long a refused connection's input is read and dropped

_MESSAGE_431 = "request line and headers exceed 64 KiB"


def head_fault(
    version: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, str] | None:
    """Why a request's head is refused before anything reads its body, as (status,
    message), or None. What RFC 9112 lets a server refuse, and the gate does, so that
    no request is decided on a reading of its bytes that another one would not share:

    * a version other than HTTP/1.0 and HTTP/1.1 (505): llhttp takes ``HTTP/2.0`` and a
      request line without one;
    * a ``Transfer-Encoding`` other than one ``chunked`` (501): llhttp drops a coding
      it does not know (``gzip, chunked``) and hands over the coded bytes as the body;
    * a ``Content-Encoding`` other than ``identity`` (415): the body would be decided as
      plain JSON, which it is not;
    * an ``Expect`` other than ``100-continue`` (417);
    * HTTP/1.1 without ``Host`` (400, section 3.2), and a target that is not a path
      (400): ``POST http://elsewhere/check`` names another authority than ``Host``.
    """
    if version not in ("1.0", "1.1"):
        return 505, "only HTTP/1.0 and HTTP/1.1 are served"
    if not target.startswith(b"/") and target != b"*":
        return 400, "the request target must be a path (origin form)"
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if codings and (len(codings) > 1 or codings[0].strip().lower() != b"chunked"):
        return 501, "the only transfer coding served is chunked"
    for name, value in headers:
        if name == b"content-encoding" and value.strip().lower() != b"identity":
            return 415, "a content coding is not served: send the body as it is"
        if name == b"expect" and value.strip().lower() != b"100-continue":
            return 417, "the only expectation served is 100-continue"
    if version == "1.1" and not any(name == b"host" for name, _ in headers):
        return 400, "an HTTP/1.1 request must have a Host header field"
    return None


def refusal_bytes(status: int, message: str, fields: bytes = b"") -> bytes:
    """A plain-text refusal that closes the connection; ``fields``: the server's own
    header lines (``Date``, which RFC 9110 section 6.6.1 asks of a 4xx), CRLF-ended."""
    body = message.encode() + b"\n"
    return (
        STATUS_LINE[status]
        + fields
        + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)
        + b"connection: close\r\n\r\n"
        + body
    )


def server_fields(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's default header fields (``date``) as they go on the wire."""
    return b"".join(b"%s: %s\r\n" % field for field in default_headers)


def head_size(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A complete head as sent, less optional white space: ``METHOD URL HTTP/1.1``, each
    field (and trailer field) as ``name: value``, every line ending in CRLF, and the
    empty line."""
    fields = sum(len(name) + len(value) + 4 for name, value in headers)
    return len(method) + len(url) + len(" HTTP/1.1\r\n") + 1 + fields + 2


class QueueBoundFlow(FlowControl):
    """uvicorn's flow control, reading again only once no request waits in the queue.

    uvicorn stops reading when a pipelined request has to wait, but reads again after
    every answer, and whenever a request's application reads its body, with requests
    still queued. A client that writes checks without reading the answers then had up
    to 256 KiB more read and queued per answer: a gigabyte of queued requests in
    seconds. Held to an empty queue, what one connection queues is one read's worth."""

    def __init__(self, transport: asyncio.Transport, queue: Sized) -> None:
        super().__init__(transport)
        self._queue = queue

    def resume_reading(self) -> None:
        if not self._queue:
            super().resume_reading()


class HeadLimitedHttpToolsProtocol(KeepAliveHttpToolsProtocol):
    """uvicorn's httptools protocol (with sidecar/keep_alive.py's timer), closing a
    connection whose request's head (or its trailer fields) grows too large."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_message = False
        self._head_bytes = 0  # bytes of the request so far that are not its body
        self._body_bytes = 0  # body bytes in the chunk being parsed
        self._chunk_bytes = 0  # size of the chunk being parsed
        self._refused = False  # over the cap: nothing more on this connection is parsed
        self._answered = False  # the 431 is written
        self._head_done = False  # the request being parsed has its cycle
        self._before: Any = None  # the cycle of the request before the one being parsed
        self._owed: Any = None  # once refused: the last cycle to answer before the refusal
        self._refusal: Callable[[], None] = self._answer_431  # the 431, or uvicorn's 400
        # The requests completed in the chunk being parsed: method, target, header fields,
        # and what the chunks before were charged for them.
        self._completed: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], int]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = QueueBoundFlow(transport, self.pipeline)

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn's warns, and tells the operator to install a WebSocket library: any
        # local client could fill the log so. The gate serves no WebSocket by design,
        # and the 400 above already answered.
        self.logger.debug("upgrade request refused")

    def on_message_begin(self) -> None:
        self._in_message = True
        self._head_done = False
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        fault = head_fault(self.parser.get_http_version(), self.url, self.headers)
        if fault is not None:
            fields = server_fields(self.server_state.default_headers)
            self._refuse_with(refusal_bytes(*fault, fields))
            return
        if self.parser.should_upgrade() and not self._should_upgrade():
            # An upgrade (the gate takes none, a WebSocket's included: uvicorn runs with
            # ws="none"): llhttp ends the request at its head, so uvicorn would dispatch
            # it without its body and read that body, once it arrives, as a request of
            # its own: one request, two answers, the record naming an empty body.
            # Refused as not HTTP is.
            self.send_400_response("Unsupported upgrade request.")
            return
        if self._over_the_cap():
            self._refuse()
            return
        self._before = self.cycle
        self.head_received()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return  # no request cycle was made for it
        self._body_bytes += len(body)
        self.body_received(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._refused:
            return
        # Trailer fields that arrived whole with the end of a chunked body: the app has
        # the request, not its end, and sees the connection close instead.
        if self._over_the_cap():
            self._refuse()
            return
        self._head_done = False  # between requests until the next one begins
        self._completed.append((self.parser.get_method(), self.url, self.headers, self._head_bytes))
        self.message_received()

    # What is done with a request the cap let through: uvicorn's request cycle, unless
    # a subclass answers it itself (sidecar/check_protocol.py).

    def head_received(self) -> None:
        super().on_headers_complete()

    def body_received(self, body: bytes) -> None:
        super().on_body(body)

    def message_received(self) -> None:
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_bytes = 0
        self._chunk_bytes = len(data)
        self._completed.clear()
        super().data_received(data)
        if not self._in_message or self._refused:
            return
        # Trailer fields after a chunked body are kept like header fields: counted too.
        charged = len(data) - self._body_bytes
        if self._completed:
            # The request being read began in this chunk, after requests that ended in
            # it (a pipelining client): their heads are not its own (less what earlier
            # chunks were charged for the first, which may have begun in one).
            charged -= sum(
                max(head_size(method, url, headers) - before, 0)
                for method, url, headers, before in self._completed
            )
        self._head_bytes += max(charged, 0)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse()

    # asyncio's Protocol lets it return True (keep the transport open to write).
    def eof_received(self) -> bool | None:  # type: ignore[override]
        """The client's end of input: a half-close (``shutdown(SHUT_WR)``), as ``nc -N``
        and clients that read to end of file send after their request.

        uvicorn takes it for a disconnect and closes at once, dropping the answers to
        requests already read, whose checks the gate may have decided and recorded.
        Here every request read whole is still answered, in order; the last answer says
        ``connection: close`` and the connection closes after it. A request that the
        end of input cuts short can never complete and is not answered. Nothing owed (or
        a refused connection whose refusal is out, whose lingering close waits for
        this): closed at once.
        """
        if self._refused:
            # Bytes that were not HTTP, after checks still being answered (a pipelining
            # client that then half-closes): kept open for those answers, then the
            # refusal, which closes. Closing now dropped the answers to checks the gate
            # had decided and recorded (found by a red-team review of 2026-12-06).
            owed = self._owed
            return True if owed is not None and not owed.response_complete else None
        # A request whose body is being read when the input ends is running (uvicorn
        # stops reading while a request waits in its queue) or on the gate's own path
        # (taken only when nothing is owed): nothing before it is owed.
        if self._in_message and self._head_done:
            return None
        last = self.pipeline[0][0] if self.pipeline else self.cycle  # the newest, on the left
        if last is None or last.response_complete:
            return None
        last.keep_alive = False
        return True

    def _over_the_cap(self) -> bool:
        """Whether the complete head (or trailer block) parsed just now is over the cap;
        only one that may be is measured: one integer test per request."""
        return self._head_bytes + self._chunk_bytes > MAX_HEAD_BYTES and (
            self._complete_head_bytes() > MAX_HEAD_BYTES
        )

    def _complete_head_bytes(self) -> int:
        return head_size(self.parser.get_method(), self.url, self.headers)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refused and self._owed is not None and self._owed.response_complete:
            self._refusal()  # the last response before the refused request is out

    def send_400_response(self, msg: str) -> None:
        # Bytes that are not HTTP: uvicorn's 400 (which closes), after the answers owed.
        def answer_400() -> None:
            if not self.transport.is_closing():
                super(HeadLimitedHttpToolsProtocol, self).send_400_response(msg)

        self._refusal = answer_400
        self._refuse()

    def _refuse_with(self, response: bytes) -> None:
        """Refuse the request being parsed with ``response``, after the answers owed."""

        self._refusal = lambda: self._answer_and_linger(response)
        self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        self._in_message = False
        # A client that pipelines reads answers in order: the 431 (or 400) to a request
        # waits for the responses to the requests before it (on_response_complete), or
        # it would be read as the answer to a check the gate decided and recorded.
        owed = self.cycle
        if self._head_done:
            # Refused after its head (trailer fields over the cap, or a chunked body
            # that is not HTTP): the request has a cycle. Running, it is answered now,
            # its application seeing a disconnect; queued behind others, it never gets
            # its body, so it leaves the queue and the answer waits for the one before.
            owed = self._before
            if self.pipeline and self.pipeline[0][0] is self.cycle:
                self.pipeline.popleft()  # the newest is on the left
        if owed is None or owed.response_complete:
            self._refusal()
        else:
            self._owed = owed

    def _answer_431(self) -> None:
        fields = server_fields(self.server_state.default_headers)
        self._answer_and_linger(refusal_bytes(431, _MESSAGE_431, fields))

    def _answer_and_linger(self, response: bytes) -> None:
        if self._answered or self.transport.is_closing():
            return
        self._answered = True
        self.transport.write(response)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # A lingering close (RFC 9112 section 9.6): closed at once with the rest of
        # the head (or a body) unread, the kernel would answer it with a reset that can
        # discard the answer before the client reads it. So the gate stops writing, reads on
        # (discarding, see data_received) and closes at the client's end of input
        # (uvicorn's eof_received lets asyncio close the transport), or after a moment.
        self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)
