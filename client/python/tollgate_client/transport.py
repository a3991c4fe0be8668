"""Keep-alive HTTP/1.1 to the gate, so that a check costs one round trip.

Idle connections are pooled (one per concurrent caller; thread-safe; dropped after a
fork). A connection the gate has closed while idle is noticed before it is used, and a
request that fails on a reused connection because the gate closed it at that moment,
before a byte of an answer came back, is sent once more on a fresh one. Once any byte
of an answer has arrived the gate has read the check (and spent a rate-limit token and
written an audit record for it), so a connection lost after that is a deny, never a
second send. The timeout is a deadline for
the whole exchange, every read of the answer included. An answer is used only whole:
one cut short, or one without a length (whose cut could not be seen), is a failure.
Every failure is raised as ``TransportError`` with a kind (``unreachable``, ``timeout``,
``bad_answer``) and a message fit for a deny reason. The gate is connected to at the one
address its URL names, never at a resolver's choice: ``localhost`` is ``127.0.0.1``.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import os
import re
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from tollgate_client.answers import BAD_ANSWER, TIMEOUT, UNREACHABLE

# A gate answer is a few hundred bytes; anything this large is not one.
MAX_ANSWER_BYTES = 1 << 20
USER_AGENT = "tollgate-client-python/0.1.0"
_CLOSED_BY_PEER = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# RFC 9112: Content-Length is 1*DIGIT; a chunk size is hex digits, then optional
# extensions, then CRLF. http.client reads both with int(), which also takes "+16",
# "1_6", " 0x10" and a bare LF; Node refuses them, and so does this client. An extension
# is ;name[=value], a token or a quoted string, without whitespace around its parts, as
# Node's parser reads it (this client took "74;a b" and "74 ;a=b", which Node refuses).
_DECIMAL = re.compile(r"[0-9]+")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:;%s(?:=(?:%s|%s))?)*\r\n" % (_TOKEN, _TOKEN, _QUOTED)
)
_MAX_LINE = 65536
# RFC 9112 sections 4 and 5: the status line and the field lines of a gate's answer, as
# Node's parser reads them. http.client reads both leniently: "HTTP/1.2", "+200" and
# "0200" as a 200, words split on any run of whitespace, bare LFs, folded lines and
# control characters in a field; any of these is a deny here, as in the JS client.
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?\r\n")
_FIELD_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n")
_MAX_HEAD_LINES = 100  # http.client's limit on header lines
# Node's default limit on a head (--max-http-header-size); here on all the heads of one
# answer together, interim 1xx ones included, which are kept until the answer's own.
_MAX_HEAD_BYTES = 16384


class TransportError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str, *, allow_remote: bool = False) -> Endpoint:
        """Raises ``ValueError`` unless ``url`` is ``http(s)://host[:port][/prefix]`` and,
        unless ``allow_remote``, its host names the gate's loopback address (see
        ``gate_address``)."""
        if any(c.isspace() or not c.isprintable() for c in url):
            # urlsplit drops tabs and newlines anywhere and spaces before the scheme: the
            # URL used would not be the one written (and the JS client refuses it).
            raise ValueError(f"tollgate URL must not hold spaces or control characters: {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"tollgate URL must be http(s)://host[:port], not {url!r}")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError(
                f"tollgate URL must not carry userinfo, a query or a fragment: {url!r}"
            )
        if not parts.path.isascii() or "\\" in parts.path:
            # http.client cannot write a non-ASCII path in a request line (every check
            # would raise, not deny); a backslash the JS client's URL parser reads as '/'.
            raise ValueError(
                f"tollgate URL path must be ASCII without spaces or backslashes: {url!r}"
            )
        if not allow_remote and gate_address(parts.hostname) is None:
            # The gate is a sidecar on the pod's loopback, listening on one address.
            # Anything elsewhere, named by whoever could set TOLLGATE_URL, could answer
            # every check with an allow; so could anything in the pod listening on another
            # loopback address (127.0.0.2, or [::1] while the gate holds 127.0.0.1).
            raise ValueError(
                f"tollgate URL must name the gate's loopback address (127.0.0.1, localhost "
                f"or [::1]), not {url!r}; pass allow_remote=True for a gate at any other "
                "address"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def gate_address(host: str) -> str | None:
    """The one address a gate URL's host names, or None if it names no gate address.

    ``localhost`` (any case, a trailing dot allowed) is ``127.0.0.1``, the gate's default
    ``--host`` and the only address it binds for ``localhost``: never looked up, since in
    a pod /etc/hosts lists ``::1 localhost`` first and anything in the pod may listen on
    ``[::1]`` at the gate's port. Besides, ``127.0.0.1`` and ``::1`` (a gate told
    ``--host ::1``). Other loopback addresses (``127.0.0.2``), ``::ffff:127.x``,
    ``0.0.0.0`` and ``::`` name none: the gate listens on one address, and any other
    port on the loopback can be taken by anyone in the pod."""
    if host.lower() in ("localhost", "localhost."):
        return _GATE_V4
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address in (ipaddress.IPv4Address(_GATE_V4), ipaddress.IPv6Address(_GATE_V6)):
        return str(address)
    return None


_GATE_V4 = "127.0.0.1"
_GATE_V6 = "::1"


def _is_timeout(exc: BaseException) -> bool:
    # On Python 3.9 socket.timeout is an OSError but not yet a TimeoutError.
    return isinstance(exc, (TimeoutError, socket.timeout))


def _closed_while_idle(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that is readable has been closed (or spoken to) by the peer."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


class Progress:
    """What one exchange has received so far (shared by its reader and the transport)."""

    def __init__(self) -> None:
        self.received = 0


class _AnswerStarted(Exception):
    """The connection was lost after part of an answer had come back."""


class _DeadlineReader(io.RawIOBase):
    """The socket's incoming bytes, each read given only the time left until ``deadline``.

    http.client reads the answer through a file over the socket, whose every read
    waits up to the socket's timeout afresh; a peer sending a byte now and then could
    stretch one check far past its timeout.

    ``socket_file`` is that file, kept open until this reader is closed: an open file
    over a socket keeps ``socket.close()`` from closing it. http.client relies on this
    when an answer ends with the connection (``Connection: close``): it closes the
    connection as soon as the head is read and leaves the socket to the response.
    Without it, reading the body would meet a closed socket.
    """

    def __init__(
        self,
        sock: socket.socket,
        deadline: float,
        socket_file: io.BufferedIOBase,
        progress: Progress,
    ) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._socket_file = socket_file
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._sock.settimeout(remaining(self._deadline))
        count = self._sock.recv_into(buffer)
        self._progress.received += count
        return count

    def close(self) -> None:
        if not self.closed:
            self._socket_file.close()  # the socket closes here if the connection did
        super().close()


class DeadlineResponse(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        *args: object,
        deadline: float,
        progress: Progress,
        **kwargs: object,
    ) -> None:
        super().__init__(sock, *args, **kwargs)  # type: ignore[arg-type]
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline, self.fp, progress))

    def _read_status(self) -> tuple[str, int, str]:
        # An interim answer (102 Processing, 103 Early Hints) precedes the answer, as Node
        # reads it too. http.client skips only 100 and would take any other 1xx for the
        # answer, leaving the real one on the connection to be read as the answer to the
        # next request sent on it. 101 is left to end the exchange (see _exchange).
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 < status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # type: ignore[arg-type]

    def _read_next_chunk_size(self) -> int:
        line = self.fp.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ValueError("the answer ended in a chunk size")  # read as IncompleteRead
        match = _CHUNK_SIZE_LINE.fullmatch(line)
        if match is None:
            self._close_conn()  # type: ignore[attr-defined]
            raise http.client.HTTPException(f"malformed chunk size line {line[:40]!r}")
        return int(match.group(1), 16)


class GateResponse(DeadlineResponse):
    """A gate's answer: ``DeadlineResponse`` whose head must follow RFC 9112 to the letter.

    The head (with any interim 1xx heads before it) is read and checked line by line
    first, then handed on to http.client's parser unchanged. The trailer of a chunked
    answer is checked the same way."""

    def begin(self) -> None:
        if self.headers is not None:  # type: ignore[has-type]
            return  # http.client calls begin() once more on a response it has begun
        head = _read_strict_head(self.fp)
        self.fp = io.BufferedReader(_Replayed(head, self.fp))
        super().begin()

    def _read_and_discard_trailer(self) -> None:
        # http.client takes any line as a trailer field and an answer that ends before
        # the trailer's blank line as whole; Node refuses a malformed field, a trailer
        # over its head limit and a Content-Length among the fields, and reads an early
        # end as a cut. So does this client (a deny, whichever way the two could differ).
        size = 0
        while True:
            line = self.fp.readline(_MAX_LINE + 1)
            size += len(line)
            if size > _MAX_HEAD_BYTES:
                problem = f"a trailer over {_MAX_HEAD_BYTES} bytes"
            elif not line.endswith(b"\n"):
                raise http.client.IncompleteRead(b"")  # the answer ended in its trailer
            elif line == b"\r\n":
                return
            elif _FIELD_LINE.fullmatch(line) is None:
                problem = f"a malformed trailer line {line[:80]!r}"
            elif line.split(b":", 1)[0].lower() == b"content-length":
                problem = "a Content-Length in its trailer"
            else:
                continue
            self._close_conn()  # type: ignore[attr-defined]
            raise http.client.HTTPException(problem)


def _read_strict_head(fp: io.BufferedReader) -> bytes:
    """The answer's head bytes, interim 1xx heads (100 Continue included) before it;
    raises ``HTTPException``."""
    lines: list[bytes] = []
    size = 0

    def next_line() -> bytes:
        nonlocal size
        line = fp.readline(_MAX_LINE + 1)
        size += len(line)
        if size > _MAX_HEAD_BYTES:
            raise http.client.HTTPException(f"the answer's head is over {_MAX_HEAD_BYTES} bytes")
        lines.append(line)
        return line

    while True:
        status_line = next_line()
        if not status_line and len(lines) == 1:
            # What http.client raises for the same close: a reused connection's request
            # is then sent again on a fresh one.
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        status = _STATUS_LINE.fullmatch(status_line)
        if status is None:
            raise http.client.BadStatusLine(repr(status_line[:80]))
        for _ in range(_MAX_HEAD_LINES + 1):
            line = next_line()
            if line == b"\r\n":
                break
            if _FIELD_LINE.fullmatch(line) is None:
                raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
        else:
            raise http.client.HTTPException(f"more than {_MAX_HEAD_LINES} header lines")
        # Every head up to the answer's own is checked: http.client skips a 100 Continue
        # itself (and _read_status the other 1xx), and would read what follows it as leniently
        # as ever.
        code = int(status.group(1))
        if not 100 <= code < 200 or code == 101:
            return b"".join(lines)
        if status_line.startswith(b"HTTP/1.0"):
            # HTTP/1.0 has no 1xx (RFC 9110 15.2): Node reads such a head as a whole
            # answer ending the connection, and refuses what follows it.
            raise http.client.HTTPException(f"an interim {code} answer in HTTP/1.0")


class _Replayed(io.RawIOBase):
    """``head`` again, then the rest of ``fp``: what http.client parses after the check."""

    def __init__(self, head: bytes, fp: io.BufferedReader) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._fp = fp

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return self._fp.readinto1(buffer)  # at most one read of the socket

    def close(self) -> None:
        if not self.closed:
            self._fp.close()
        super().close()


class Transport:
    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        allow_remote: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = Endpoint.parse(url, allow_remote=allow_remote)
        self._ssl_context = ssl_context
        # The one address connected to, never a resolver's answer: localhost is 127.0.0.1.
        # None only for a host allowed by allow_remote, connected to as http.client does.
        self._address = gate_address(self.endpoint.host)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._opened = 0

    @property
    def connections_opened(self) -> int:
        """How many TCP connections this transport has opened so far."""
        return self._opened

    def request(
        self, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        """Send one request; return (status, body). Raises ``TransportError``."""
        deadline = time.monotonic() + timeout
        connection, reused = self._take()
        try:
            try:
                answer = self._exchange(connection, method, path, body, deadline)
            except _CLOSED_BY_PEER:
                # Nothing of an answer came back (_exchange says so otherwise): on a
                # reused connection, the gate closed it as the request went out.
                if not reused:
                    raise
                connection.close()
                connection, reused = self._new_connection(), False
                answer = self._exchange(connection, method, path, body, deadline)
        except _AnswerStarted as exc:
            connection.close()
            raise TransportError(
                BAD_ANSWER, f"{self._cut_short()} ({exc.__cause__ or 'connection lost'})"
            ) from None
        except TransportError:
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self._explain(exc, timeout) from None
        self._give_back(connection)
        return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _explain(self, exc: BaseException, timeout: float) -> TransportError:
        if _is_timeout(exc):
            return TransportError(
                TIMEOUT, f"tollgate at {self.url} did not answer within {timeout:g} s"
            )
        if isinstance(exc, (http.client.HTTPException, ConnectionResetError)):
            # A reset is a connection closed without an answer, as a close is (the JS
            # client's words and kind for both), not a gate that cannot be reached.
            detail = str(exc) or type(exc).__name__
            return TransportError(
                BAD_ANSWER, f"tollgate at {self.url} sent no valid HTTP answer ({detail})"
            )
        if isinstance(exc, ConnectionRefusedError):
            return TransportError(
                UNREACHABLE, f"tollgate at {self.url} is unreachable (connection refused)"
            )
        return TransportError(UNREACHABLE, f"tollgate at {self.url} is unreachable ({exc})")

    def _new_connection(self) -> http.client.HTTPConnection:
        endpoint = self.endpoint
        with self._lock:
            self._opened += 1
        connection: http.client.HTTPConnection
        if endpoint.scheme == "https":
            connection = http.client.HTTPSConnection(
                endpoint.host,
                endpoint.port,
                context=self._ssl_context or ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(endpoint.host, endpoint.port)
        if self._address is not None:
            # http.client connects through this hook (not in typeshed, hence setattr); the
            # Host header and a TLS server name stay the URL's.
            setattr(connection, "_create_connection", self._connect_to_gate)  # noqa: B010
        return connection

    def _connect_to_gate(
        self,
        address: tuple[str, int],
        timeout: object = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """Connect to the gate's one address (``localhost`` is ``127.0.0.1``), with no
        name lookup: a resolver would put ``::1`` first in a pod (the kubelet's
        /etc/hosts), where anything may listen while the gate holds 127.0.0.1 only."""
        target = self._address
        assert target is not None
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if isinstance(timeout, (int, float)):  # not http.client's "default" sentinel
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect((target, address[1]))
        except BaseException:
            sock.close()
            raise
        return sock

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not share its parent's sockets.
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                connection = self._idle.pop()
                if not _closed_while_idle(connection):
                    return connection, True
                connection.close()
        return self._new_connection(), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:
            return
        with self._lock:
            if self._pid == os.getpid():
                self._idle.append(connection)
                return
        connection.close()

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        body: bytes | None,
        deadline: float,
    ) -> tuple[int, bytes]:
        sock: socket.socket | None = connection.sock
        if sock is None:
            connection.timeout = remaining(deadline)
            connection.connect()
            sock = connection.sock
            if self._address is not None:
                # A second look: the connection reached the gate's address and no other.
                peer = str(sock.getpeername()[0])
                if gate_address(peer) != self._address:
                    raise TransportError(
                        UNREACHABLE,
                        f"tollgate at {self.url} connected to {peer}, not {self._address}",
                    )
            # http.client sends the headers and the body in two writes: without this,
            # Nagle's algorithm could hold the body back until the headers are ACKed.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        sock.settimeout(remaining(deadline))
        progress = Progress()
        try:
            connection.request(method, self.endpoint.base_path + path, body=body, headers=headers)
            connection.response_class = functools.partial(  # type: ignore[assignment]
                GateResponse, deadline=deadline, progress=progress
            )
            response = connection.getresponse()
            if response.status == http.client.SWITCHING_PROTOCOLS:
                # No answer: what follows on this connection is another protocol, never to
                # be read as the answer to a later request (the check is a deny, as the
                # JS client's).
                connection.close()
                return response.status, b""
            try:
                return response.status, self._body(response)
            finally:
                if not response.isclosed():
                    # Not fully read: the connection is in an unknown state.
                    response.close()
                    connection.close()
        except _CLOSED_BY_PEER as exc:
            if progress.received:
                # The gate had the check: sending it again would decide (and record) it
                # twice.
                raise _AnswerStarted() from exc
            raise

    def _body(self, response: http.client.HTTPResponse) -> bytes:
        """The whole body, or ``TransportError``: an answer cut short is never read as
        the shorter answer it happens to be (``{"allowed":true}`` and a close, under a
        ``Content-Length: 200``, is not an allow)."""
        problem = _framing_problem(response.headers)
        if problem is not None:
            # Two lengths, or a length and chunks: the answer's end is ambiguous, and
            # whatever one reading of it says is not to be trusted.
            raise TransportError(
                BAD_ANSWER, f"tollgate at {self.url} sent an answer with {problem}"
            )
        coding = _content_coding(response.headers)
        if coding is not None:
            # Read as it is, a coded body is not the JSON it may look like (the gate sends
            # none, and refuses a request with one).
            raise TransportError(
                BAD_ANSWER,
                f"tollgate at {self.url} sent an answer with Content-Encoding {coding!r}",
            )
        if response.length is None and not response.chunked:
            # The body would run to the close, and a close in the middle of it would
            # look the same; the gate always says how long its answer is.
            raise TransportError(
                BAD_ANSWER,
                f"tollgate at {self.url} sent an answer without a length (no "
                "Content-Length), so a cut one could not be told from a whole one",
            )
        try:
            data = response.read(MAX_ANSWER_BYTES + 1)
        except http.client.IncompleteRead:  # a chunked body that stopped early
            raise TransportError(BAD_ANSWER, self._cut_short()) from None
        if len(data) > MAX_ANSWER_BYTES:
            raise TransportError(
                BAD_ANSWER, f"tollgate's answer is larger than {MAX_ANSWER_BYTES} bytes"
            )
        # read(n) returns what arrived before the close without complaint (Python 3.11);
        # what the gate announced and did not send is left in ``length``.
        if response.length:
            raise TransportError(BAD_ANSWER, self._cut_short())
        return data

    def _cut_short(self) -> str:
        # The JS client's words for the same failure.
        return f"tollgate at {self.url} cut its answer short"


def _content_coding(headers: http.client.HTTPMessage) -> str | None:
    """The answer's Content-Encoding if it names a coding other than ``identity``."""
    values = headers.get_all("Content-Encoding") or []
    codings = [c.strip(" \t").lower() for value in values for c in value.split(",")]
    if any(coding not in ("", "identity") for coding in codings):
        return ", ".join(values)
    return None


def _framing_problem(headers: http.client.HTTPMessage) -> str | None:
    """What makes the answer's length ambiguous, if anything (http.client would use the
    first Content-Length or Transfer-Encoding of several, and ignore a length sent with
    chunks)."""
    lengths = headers.get_all("Content-Length") or []
    if len(lengths) > 1:
        return "more than one Content-Length"
    codings = headers.get_all("Transfer-Encoding") or []
    if lengths and codings:
        return "both a Content-Length and a Transfer-Encoding"
    if len(codings) > 1:
        # http.client reads the first line only: "chunked" then "gzip" would be taken for
        # chunks alone, as Node (joining the lines) does not.
        return "more than one Transfer-Encoding"
    # Optional whitespace around a field value is spaces and tabs (RFC 9110 5.5); strip()
    # alone would also take U+00A0 and U+0085 off a length Node refuses. Node's parser
    # takes no tab after a length: nor does this client.
    length = lengths[0].lstrip(" \t").rstrip(" ") if lengths else None
    if length is not None and not _DECIMAL.fullmatch(length):
        return f"a Content-Length that is not a number ({length[:20]!r})"
    return None
