"""``POST /check`` as a bare ASGI handler, in front of the Starlette app (CONTRACT section 2).

The agent calls /check before every action, so this one route skips Starlette's
request and response objects, routing and middleware: it reads the body straight from
the ASGI ``receive`` channel (with the body limit), hands it to ``Gate.check`` and sends
one JSON answer with its length. /check with another method is answered 405 here;
every other request goes to the Starlette app unchanged. The usual shape of a check
does not even reach ASGI: the server's protocol answers it (sidecar/check_protocol.py),
through ``check_body`` as this handler does.

The answers are the ones the Starlette route gave: the same JSON error shape with
``allowed: false``, 413 for a body over the limit, 400 for a client that left, and 500
for anything that goes wrong inside. A request of any route still unanswered when the
server's graceful-shutdown time runs out is answered 503 here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from sidecar.browsers import FORBIDDEN_CODE, refusal
from sidecar.gate import INVALID_BODY_READ, Answer, Gate, error_payload
from sidecar.request import MAX_BODY_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_logger = logging.getLogger("tollgate.check")

CHECK_PATHS = frozenset({"/check", "/v1/check"})
# JSON answers: compact, UTF-8 (not \u-escaped), as every answer of the gate is.
encode_json = msgspec.json.Encoder().encode
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
# After a body over the limit, the connection is closed with the answer (uvicorn closes
# on this field), as after a head over it: otherwise the server would go on reading, and
# dropping, whatever length the client declared (gigabytes, at full CPU).
CLOSE_AFTER = ((b"connection", b"close"),)


# A request still in flight when the gate's graceful-shutdown time ran out.
STOPPED_PAYLOAD = error_payload(
    "unavailable", "the gate shut down before answering this request; ask again"
)


class BodyTooLarge(Exception):
    """The body is larger than the limit (declared or as read).

    ``size`` is the length declared, or the bytes read when reading stopped; ``head``
    the first bytes read (none when the declared length alone was over), for the record.
    """

    def __init__(self, size: int, head: bytes = b"") -> None:
        super().__init__(size)
        self.size = size
        self.head = head


class ClientGone(Exception):
    """The client disconnected before the whole body arrived."""


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return content_length(value)
    return None


# Any length of more digits than this is over every limit (2**64 has 20).
_LENGTH_DIGITS = 20


def content_length(value: bytes) -> int | None:
    """A Content-Length header's value (RFC 9112 8.6: ASCII digits), None if it is not one.

    Leading zeros are valid and llhttp accepts any number of them, while ``int`` refuses
    a string of more than 4300 digits: "0" * 5000 + "43" is 43, and a longer number
    than 20 digits is a length over every limit, not an error.
    """
    if not value.isdigit():
        return None
    digits = value.lstrip(b"0")
    if len(digits) > _LENGTH_DIGITS:
        return 10**_LENGTH_DIGITS
    return int(digits or b"0")


async def read_body(scope: Scope, receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most ``limit`` bytes; stop early (without buffering more) beyond that."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size, b"".join([*chunks, chunk])[:INVALID_BODY_READ])
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def listen_url(server: tuple[str, int | None] | None) -> str | None:
    """The URL of the socket a request arrived on (ASGI's ``server``: not the Host
    header, which the client chooses), for the approve command line in notifications."""
    if not server or server[1] is None:
        return None
    host, port = server
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


# A wildcard address is no address to connect to; an agent in the pod shares the loopback.
_WILDCARD_TO_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def configured_url(host: str, port: int) -> str:
    """The URL of the address the gate was told to listen on, for approve command lines
    written before any check arrived (``listen_url`` is better once one has)."""
    host = _WILDCARD_TO_LOOPBACK.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


async def check_body(gate: Gate, body: bytes, server: tuple[str, int | None] | None) -> Answer:
    """``Gate.check`` of a body read whole, as both ways of serving /check run it (this
    ASGI handler and sidecar/check_protocol.py)."""
    if gate.approvals.gate_url is None:
        gate.approvals.gate_url = listen_url(server)
    try:
        return await gate.check(body)
    except Exception as exc:
        answer = internal_error(exc)
        await gate.record_failure(body, exc)
        return answer


def internal_error(exc: Exception) -> Answer:
    """The Starlette app's server_error answer, fail closed. A bug, not a decision: the
    log says why (with the traceback), and a check's record only that it failed."""
    _logger.error("check failed with an internal error (answered 500, deny)", exc_info=exc)
    return Answer(500, error_payload("internal", f"internal error: {type(exc).__name__}"))


def encode_answer(answer: Answer) -> tuple[int, bytes]:
    """The answer's status and JSON body. A payload that cannot be encoded (a bug) is
    answered as any internal error is: 500, deny, never a client left waiting."""
    try:
        return answer.status, encode_json(answer.payload)
    except Exception as exc:
        failed = internal_error(exc)
        return failed.status, encode_json(failed.payload)


async def send_json(
    send: Send, status: int, payload: Any, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send_body(send, status, encode_json(payload), extra_headers)


async def send_body(
    send: Send, status: int, body: bytes, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers = [JSON_CONTENT_TYPE, (b"content-length", b"%d" % len(body))]
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


APPROVAL_PREFIX = "/v1/approvals/"


def decided_approval(scope: Scope) -> str | None:
    """The approval id of a ``POST /v1/approvals/{id}`` (the app's route: one segment)."""
    path: str = scope["path"]
    if scope["method"] != "POST" or not path.startswith(APPROVAL_PREFIX):
        return None
    approval_id = path[len(APPROVAL_PREFIX) :]
    return approval_id if approval_id and "/" not in approval_id else None


class CheckEndpoint:
    """ASGI app: /check and /v1/check here, everything else to ``fallback``."""

    def __init__(self, gate: Gate, fallback: ASGIApp) -> None:
        self.gate = gate
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        started = False

        async def send_noted(message: Message) -> None:
            nonlocal started
            started = True  # the start comes first: from here the answer is under way
            await send(message)

        try:
            await self._serve(scope, receive, send_noted)
        except asyncio.CancelledError:
            # Only uvicorn cancels a request: its graceful-shutdown time ran out (a
            # body that never ended, a check waiting on a stalled disk). Answered as
            # the gate's other 503s, in place of uvicorn's plain-text 500 and its
            # traceback; the task then ends as answered. An answer already under way
            # cannot be replaced: uvicorn closes the connection.
            if started:
                raise
            _logger.warning(
                "answered %s %s 503: the gate shut down before it finished",
                scope["method"],
                scope["path"][:256],
            )
            await send_json(send, 503, STOPPED_PAYLOAD, CLOSE_AFTER)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (reason := refusal(scope["headers"])) is not None:
            await self._refuse(scope, reason, send)
            return
        if scope["path"] not in CHECK_PATHS:
            await self.fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            try:
                answer = await self.gate.wrong_method(scope["method"])
            except Exception:  # recording it is not worth a 500
                _logger.exception("recording a /check with a wrong method failed")
                answer = Answer(405, error_payload("method_not_allowed", "Method Not Allowed"))
            await send_json(send, answer.status, answer.payload, ((b"allow", b"POST"),))
            return
        try:
            answer = await self._check(scope, receive)
        except Exception as exc:
            answer = internal_error(exc)
        extra = CLOSE_AFTER if answer.status == 413 else ()
        await send_body(send, *encode_answer(answer), extra)

    async def _refuse(self, scope: Scope, reason: str, send: Send) -> None:
        """403 for a web page's request: recorded when it is a check or an approval
        decision, logged otherwise."""
        if scope["path"] in CHECK_PATHS:
            try:
                answer = await self.gate.from_a_web_page(reason)
            except Exception as exc:
                answer = internal_error(exc)
        else:
            answer = Answer(403, error_payload(FORBIDDEN_CODE, reason))
            if (approval_id := decided_approval(scope)) is not None:
                # CONTRACT 2.4: every decision not validly signed is recorded, so that
                # an agent adding an Origin to its attempt still leaves its trace.
                try:
                    await self.gate.approvals.record_forged(approval_id, b"", reason)
                except Exception:  # the refusal stands without its record
                    _logger.exception("recording a refused approval decision failed")
            else:
                _logger.warning("refused %s %s: %s", scope["method"], scope["path"][:256], reason)
        # Its body is never read: closing is what keeps the server from reading, and
        # dropping, whatever length the page declared (as after a 413).
        await send_body(send, *encode_answer(answer), CLOSE_AFTER)

    async def _check(self, scope: Scope, receive: Receive) -> Answer:
        try:
            body = await read_body(scope, receive)
        except BodyTooLarge as too_large:
            return await self.gate.too_large(too_large.head, too_large.size)
        except ClientGone:
            return Answer(400, error_payload("invalid_request", "client disconnected"))
        return await check_body(self.gate, body, scope.get("server"))
