"""A gate's answer read as strictly as the clients read it: RFC 9112's head grammar.

``tollgate check --url`` asks a gate through urllib, whose ``http.client`` reads a head
leniently: ``HTTP/1.2 200``, ``HTTP/1.1 +200`` and ``HTTP/1.1 0200`` as a 200, words
split on any run of whitespace, bare LFs, folded lines and control characters in a
field. Whatever answered at ``--url`` could pass such a head for an allow. The Python
and JS clients refuse each of these (docs/clients.md, "What a failure looks like"), and
so does this opener: the status line and every field line are checked before
``http.client`` parses the same bytes. No proxy from the environment is used, and no
redirect followed (a 3xx is an ``HTTPError``).

The Python client carries the same rules in its transport: it is a separate, stdlib-only
distribution that the gate does not depend on. tests/test_client_parity.py holds the
three readers to one table of answers.
"""

from __future__ import annotations

import http.client
import io
import re
import urllib.request
from typing import Any

# RFC 9112 sections 4 and 5: HTTP/1.0 or 1.1, one space, three digits, an optional
# reason of visible characters, spaces and tabs; a field name that is a token, a colon,
# a value without control characters; CRLF after each.
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?\r\n")
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n")
_DECIMAL = re.compile(r"[0-9]+")
_MAX_LINE = 65536
_MAX_FIELDS = 100  # http.client's own limit
_MAX_HEAD_BYTES = 16384  # Node's default


class StrictHeadResponse(http.client.HTTPResponse):
    """``HTTPResponse`` that raises ``HTTPException`` for a head breaking RFC 9112, or a
    length that could be read two ways."""

    def begin(self) -> None:
        if self.headers is not None:  # type: ignore[has-type]
            return  # begun already
        head = _strict_head(self.fp)
        self.fp = io.BufferedReader(_HeadThenRest(head, self.fp))
        super().begin()
        # http.client would use the first of two lengths, ignore one sent with chunks, and
        # read "+49" as 49: the clients refuse each. The gate frames every answer with one
        # Content-Length, and ``tollgate check`` takes no other (no length is refused later).
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get_all("Transfer-Encoding") or len(lengths) > 1:
            raise http.client.HTTPException("the answer is not framed by one Content-Length")
        if lengths and not _DECIMAL.fullmatch(lengths[0].strip(" \t")):
            raise http.client.HTTPException(f"Content-Length {lengths[0][:20]!r} is not a number")


def _strict_head(fp: io.BufferedReader) -> bytes:
    """The answer's head bytes, each line checked. ``tollgate check`` sends no ``Expect``
    and the gate sends no interim answer, so a 1xx head (which http.client would skip
    if a 100, and read what follows unchecked) is refused rather than read past."""
    status_line = fp.readline(_MAX_LINE + 1)
    if not status_line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    status = _STATUS_LINE.fullmatch(status_line)
    if status is None or status.group(1).startswith(b"1"):
        raise http.client.BadStatusLine(repr(status_line[:80]))
    head = [status_line]
    size = len(status_line)
    while (line := fp.readline(_MAX_LINE + 1)) != b"\r\n":
        size += len(line)
        if _FIELD_LINE.fullmatch(line) is None or size > _MAX_HEAD_BYTES or len(head) > _MAX_FIELDS:
            raise http.client.HTTPException(f"the answer's head breaks RFC 9112 at {line[:80]!r}")
        head.append(line)
    return b"".join(head) + line


class _HeadThenRest(io.RawIOBase):
    """The head read already, then whatever follows it on the connection."""

    def __init__(self, head: bytes, rest: io.BufferedReader) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return self._rest.readinto1(buffer)  # one read of the socket at most

    def close(self) -> None:
        if not self.closed:
            self._rest.close()
        super().close()


class _StrictHTTPConnection(http.client.HTTPConnection):
    response_class = StrictHeadResponse


class _StrictHTTPSConnection(http.client.HTTPSConnection):
    response_class = StrictHeadResponse


class _StrictHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_StrictHTTPConnection, req)


class _StrictHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        # As urllib's own handler opens it: with the handler's TLS context (none given
        # here, so the default one, which checks the certificate and the host name).
        return self.do_open(_StrictHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def gate_opener() -> urllib.request.OpenerDirector:
    """An opener that asks the gate directly, once, and reads its answer strictly."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler({}),  # HTTP_PROXY would let another host answer
        _StrictHTTPHandler(),
        _StrictHTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener
