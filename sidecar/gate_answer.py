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
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-9][0-9]{2}(?: [\t\x20-\x7e\x80-\xff]*)?\r\n")
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n")
_MAX_LINE = 65536
_MAX_FIELDS = 100  # http.client's own limit


class StrictHeadResponse(http.client.HTTPResponse):
    """``HTTPResponse`` that raises ``HTTPException`` for a head breaking RFC 9112."""

    def begin(self) -> None:
        if self.headers is not None:  # type: ignore[has-type]
            return  # begun already
        head = _strict_head(self.fp)
        self.fp = io.BufferedReader(_HeadThenRest(head, self.fp))
        super().begin()


def _strict_head(fp: io.BufferedReader) -> bytes:
    """The head's bytes (one head: ``tollgate check`` sends no ``Expect``)."""
    status_line = fp.readline(_MAX_LINE + 1)
    if not status_line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    if _STATUS_LINE.fullmatch(status_line) is None:
        raise http.client.BadStatusLine(repr(status_line[:80]))
    lines = [status_line]
    while len(lines) <= _MAX_FIELDS + 1:
        line = fp.readline(_MAX_LINE + 1)
        lines.append(line)
        if line == b"\r\n":
            return b"".join(lines)
        if _FIELD_LINE.fullmatch(line) is None:
            raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
    raise http.client.HTTPException(f"more than {_MAX_FIELDS} header lines")


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
        return self.do_open(_StrictHTTPSConnection, req)


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
