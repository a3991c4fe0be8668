"""``Gate.fetch``: check ``network.request``, then send it with ``urllib``; every redirect
is checked too before it is followed, and followed as the Fetch standard says (a 307 or
308 repeats the method and body; a 303, or a 301/302 after a POST, becomes a GET).

Only ``http`` and ``https`` are fetched (urllib's ``file:``, ``ftp:`` and ``data:``
handlers are left out, so a URL cannot turn into an unchecked file read). The request
goes straight to the checked host: proxies from the environment (``HTTP_PROXY`` ...)
are ignored, as a proxy is a host the gate never saw. Nothing else may redirect it
either: a host with non-ASCII characters is refused (urllib would encode it with IDNA
2003, ``straße`` -> ``strasse``, another host than the UTS-46 A-label the gate checks),
and so is a ``Host`` header naming another host (or any header name that is not an HTTP
token, such as ``"Host "``, which http.client would send as a second ``Host``). Nor may a
header make the server run another method than the one checked (``X-HTTP-Method-Override``,
``X-HTTP-Method``, ``X-Method-Override``: refused whatever their value).
``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped when a redirect
changes the origin, as browsers do. Non-ASCII characters of the path and query are
percent-encoded before the check, so that the URL checked is the URL sent.
"""

from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPMessage, HTTPResponse
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from tollgate_client.errors import Denied
from tollgate_client.timeouts import valid_timeout
from tollgate_client.wire import plain_text

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

NETWORK_REQUEST = "network.request"
WEB_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# urllib stores header names capitalized ("Proxy-authorization").
CROSS_ORIGIN_DROPPED = ("Authorization", "Cookie", "Proxy-authorization")
# A header name is an RFC 9110 token. http.client sends "Host " or "Host\t" as given, so
# such a name would pass the Host check below and reach the server as a second Host.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


# Header fields that frame the message or manage the connection: the HTTP library sets
# them. From the caller, Content-Length: 0 (or Transfer-Encoding: chunked and a body
# starting "0\r\n\r\n") turns the body into a second request on the same connection,
# which the server serves and the gate never saw (review of 2026-12-07); Node's fetch
# refuses the same names.
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
     "trailer", "expect"}
)  # fmt: skip


# Header fields that ask a server to run another method than the request line's. Refused
# whatever their value, as in the JS client: the gate checks (and an approval binds) the
# method sent, a value equal to it changes nothing, and a redirect that turns the request
# into a GET would still carry the old method in it (rt26).
_METHOD_OVERRIDE_HEADERS = frozenset(
    {"x-http-method-override", "x-http-method", "x-method-override"}
)


def _method_override_problem(headers: Mapping[str, object]) -> str | None:
    """Why a server could run another method than the one checked, if it could."""
    found = [name for name in headers if name.lower() in _METHOD_OVERRIDE_HEADERS]
    if not found:
        return None
    return (
        f"does not take a {', '.join(found)} header: a server honouring it runs that method, "
        "not the one the gate checked; send the method itself"
    )


_BREAKS_A_FIELD = re.compile(r"[\r\n\0]")
_BREAKS_A_FIELD_BYTES = re.compile(rb"[\r\n\0]")


def _header_value_problem(value: object) -> str | None:
    """Why http.client would refuse to send ``value``, or send it as more than one field."""
    if isinstance(value, str):
        if _BREAKS_A_FIELD.search(value):
            return "holds a CR, LF or NUL character"
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return "has a character outside Latin-1 (http.client sends header values as Latin-1)"
    elif isinstance(value, (bytes, bytearray)):
        if _BREAKS_A_FIELD_BYTES.search(value):
            return "holds a CR, LF or NUL byte"
    elif not isinstance(value, int) or isinstance(value, bool):
        # http.client sends text, bytes and integers; anything else failed when sending.
        return f"is a {type(value).__name__}, not text, bytes or an integer"
    return None


def checked_headers(helper: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's header fields, read once (what is screened is what is sent).

    Raises ``ValueError`` for a name that is not an HTTP token, as Node does, for a
    field that frames the message or manages the connection (``Proxy-*`` too), and for a
    value with a CR, LF or NUL or (a str) a character outside Latin-1, which Node's
    ``Headers`` refuses too: http.client refused those (or sent a NUL) only after the
    gate had recorded an allow (rt25 r2-clients-ops, 4)."""
    taken: dict[str, str] = {}
    for name, value in dict(headers or {}).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(
                f"{helper}: header name {name!r} is not an HTTP token (no spaces, tabs or "
                "separators); a server could read it as another header than the one checked"
            )
        # An exact str: a subclass's lower() could pass the screen and its encode() send
        # another name (plain_text).
        name = plain_text(name)
        taken[name] = plain_text(value) if isinstance(value, str) else value
        problem = _header_value_problem(taken[name])
        if problem is not None:  # the value is not quoted: it may be a secret
            raise ValueError(f"{helper}: the value of header {name} {problem}")
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS or lowered.startswith("proxy-"):
            raise ValueError(
                f"{helper} does not take a {name} header: the HTTP library sets it, and from "
                "the caller it could frame a second request the gate never checked"
            )
    return taken


def _ascii_host_problem(request: urllib.request.Request) -> str | None:
    """Why urllib would connect to another host than the one checked, if it would."""
    if request.host.isascii():
        return None
    return (
        f"host {request.host!r} is not ASCII: pass its IDNA A-label (xn--...), which is "
        "what the gate checks; urllib would encode it differently (IDNA 2003)"
    )


# The authority of an http(s) URL and what follows it (path, query).
_AFTER_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)(.*)", re.DOTALL)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _ascii_target(url: str) -> str:
    """``url`` with each non-ASCII character of its path and query percent-encoded as
    UTF-8, as the gate reads it and Node's fetch sends it (``/é`` is ``/%C3%A9``).

    http.client refuses to send them as they are, and did so only after the gate had
    recorded an allow (rt25 clients review, 3); so they are encoded before the check,
    and the URL checked is the URL sent. A non-ASCII host is refused elsewhere.
    """
    parts = _AFTER_AUTHORITY.fullmatch(url)
    if parts is None or parts.group(2).isascii():
        return url
    authority, rest = parts.groups()
    try:
        return authority + _NON_ASCII.sub(lambda found: quote(found.group(), safe=""), rest)
    except UnicodeEncodeError:  # a lone surrogate, as os.fsdecode leaves one
        raise ValueError(f"Gate.fetch: {url!r} is not valid Unicode") from None


# The slashes and authority after an absolute URL's scheme, as written: up to the first
# '/', '?' or '#', running past a backslash.
_SLASHES_AND_AUTHORITY = re.compile(r"[/\\]*[^/?#]*")


def _authority_problem(url: str) -> str | None:
    """Why urllib could not send ``url`` to the host it names, if it could not; never
    quoting the URL, whose user name or password is a secret.

    A user name or password (``user:password@``) is left in the host urllib connects to
    (http.client then fails on the port, its error quoting the password) and there is no
    host at all in ``http:/host/...``: both failed only after the gate had recorded an
    allow (rt25 r2-clients-ops, 3). A backslash before the path is read by Node's parser
    as a '/' (``http://host\\evil/`` is the host ``host``) and by urllib as part of the
    host, which the gate refuses: the clients disagreed on the same URL (rt26)."""
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        return (
            "a URL with a user name or password (user:password@) is refused: urllib "
            "cannot send it; send credentials in an Authorization header"
        )
    # urlsplit drops tabs and newlines anywhere: so does this reading.
    after_scheme = re.sub(r"[\t\n\r]", "", url).partition(":")[2]
    before_path = _SLASHES_AND_AUTHORITY.match(after_scheme)
    if before_path is not None and "\\" in before_path.group():
        return (
            "a URL with a backslash before its path (http://host\\evil/, http:\\\\host/) "
            "is refused: parsers disagree on its host; write '/'"
        )
    if not netloc:
        return "the URL has no host (http://host/...)"
    return None


def _without_fragment(url: str) -> str:
    """``url`` up to its first ``#``, as the gate reads it (the fragment is never sent).

    urllib cuts the fragment at the last ``#``: ``/public/x#/../../secret#`` was checked
    as ``/public/x`` and sent as ``/public/x#/../../secret``, which a server keeping the
    ``#`` in the path resolves to ``/secret``.
    """
    return url.split("#", 1)[0]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None  # urllib fails on it anyway; None differs from any real port
    return scheme, parts.hostname or "", port or DEFAULT_PORTS.get(scheme)


# A redirect that turns the request into a GET without its body (the Fetch standard's
# rule, which Node's fetch and browsers follow); every other one repeats the request,
# method, body and headers, at the new URL (a 307 or 308 after a POST, a 301 after a
# PUT). urllib alone refused those with an HTTPError.
def _becomes_get(code: int, method: str) -> bool:
    return (code in (301, 302) and method == "POST") or (
        code == 303 and method not in ("GET", "HEAD")
    )


# The headers about a body (the Fetch standard's request-body-header names): not sent
# once the body is dropped.
_CONTENT_HEADERS = ("content-type", "content-length", "content-encoding", "content-language")


def _redirected(
    request: urllib.request.Request, code: int, url: str
) -> urllib.request.Request | None:
    """The request to send to ``url`` after a ``code`` redirect; None when its body
    cannot be sent again (not bytes: a file or an iterator was read once)."""
    method = request.get_method()
    url = url.replace(" ", "%20")  # as urllib does
    headers = dict(request.headers)
    if _becomes_get(code, method):
        headers = {k: v for k, v in headers.items() if k.lower() not in _CONTENT_HEADERS}
        method, data = "GET", None
    else:
        data = request.data
        # A tuple: isinstance(data, bytes | bytearray) needs Python 3.10, the client 3.9.
        if data is not None and not isinstance(data, (bytes, bytearray)):
            return None
    return urllib.request.Request(
        url,
        data=data,
        headers=headers,
        origin_req_host=request.origin_req_host,
        unverifiable=True,
        method=method,
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only if the gate allows a request to where it leads."""

    # urllib hands this handler a 308 from Python 3.11 on only; before, it raised
    # HTTPError for it: the same redirects are followed on every version.
    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302

    def __init__(self, gate: Gate, context: dict[str, Any] | None) -> None:
        self.gate = gate
        self.context = context

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme.lower() not in WEB_SCHEMES:
            fp.close()
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to a non-http(s) URL refused: {newurl}", headers, None
            )
        unsendable = _authority_problem(newurl)
        if unsendable is not None:
            fp.close()
            raise urllib.error.HTTPError(
                req.full_url, code, f"redirect refused: {unsendable}", headers, None
            )
        newurl = _without_fragment(newurl)
        follow = _redirected(req, code, newurl)
        if follow is None:
            fp.close()
            raise urllib.error.HTTPError(
                req.full_url, code, f"{msg}: its body cannot be sent again", headers, None
            )
        problem = _ascii_host_problem(follow)
        if problem is not None:
            fp.close()
            raise urllib.error.HTTPError(
                newurl, code, f"redirect refused: {problem}", headers, None
            )
        if _origin(follow.full_url) != _origin(req.full_url):
            # Credentials meant for one origin are not sent to another.
            for name in CROSS_ORIGIN_DROPPED:
                follow.remove_header(name)
        try:
            self.gate.require(
                NETWORK_REQUEST,
                url=follow.full_url,
                method=follow.get_method(),
                context=self.context,
            )
        except Denied:
            fp.close()
            raise
        return follow


def fetch_checked(
    gate: Gate,
    url: str,
    *,
    method: str | None = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    context: dict[str, Any] | None = None,
    approval: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HTTPResponse:
    """Check, then fetch ``url``; raises ``Denied`` if the gate does not allow it.

    Returns urllib's response (use it in a ``with`` block); HTTP errors raise
    ``urllib.error.HTTPError`` as with ``urllib.request.urlopen``. The request goes
    directly to the URL's host (no proxy). A non-ASCII host, a ``Host`` header for
    another host, a URL without a host, with a user name or password or with a backslash
    before its path (``_authority_problem``), a header name that is not an HTTP token, a
    header that frames the message or manages the connection (``checked_headers``) and one
    asking the server for another method (``X-HTTP-Method-Override`` ...) raise
    ``ValueError``, as
    does a ``timeout`` the Gate's own ``timeout`` could not be (``valid_timeout``).
    Non-ASCII characters in the path and query are checked and sent percent-encoded
    (``_ascii_target``).
    """
    timeout = valid_timeout("Gate.fetch timeout", timeout)
    url = plain_text(url)  # what is checked is what is sent (plain_text)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in WEB_SCHEMES:
        raise ValueError(f"Gate.fetch fetches http and https URLs only, not {scheme or url!r}")
    unsendable = _authority_problem(url)
    if unsendable is not None:
        raise ValueError(f"Gate.fetch: {unsendable}")
    headers = checked_headers("Gate.fetch", headers)
    overriding = _method_override_problem(headers)
    if overriding is not None:
        raise ValueError(f"Gate.fetch {overriding}")
    url = _without_fragment(url)
    if method is not None:
        method = plain_text(method).upper()  # as the gate decides and records it
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    if request.full_url != url:
        # urllib strips Unicode whitespace off the ends ("/admin\u00a0" is sent as
        # "/admin"), which the gate reads as part of the path: it would check another URL.
        raise ValueError(
            f"Gate.fetch: urllib would send {request.full_url!r}, not the URL given "
            f"({url!r}); the gate checks the URL given"
        )
    problem = _ascii_host_problem(request)
    if problem is not None:
        raise ValueError(f"Gate.fetch: {problem}")
    host_header = request.get_header("Host")
    if host_header is not None:
        # The server would serve the Host named, not the host checked.
        if host_header.strip().lower() != request.host.lower():
            raise ValueError(
                f"Gate.fetch: Host header {host_header!r} names another host than the URL "
                f"({request.host!r}); the gate checks the URL"
            )
        # urllib sets the same value itself, and would copy the caller's to a redirect.
        request.remove_header("Host")
    request.full_url = _ascii_target(url)
    gate.require(
        NETWORK_REQUEST,
        url=request.full_url,
        method=request.get_method(),
        context=context,
        approval=approval,
    )
    opener = urllib.request.OpenerDirector()
    for handler in (
        # {}: no proxies. ProxyHandler() would read HTTP(S)_PROXY and send the request to
        # a host the gate never checked.
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=ssl_context),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _CheckedRedirects(gate, context),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    response: HTTPResponse = opener.open(request, timeout=timeout)
    return response
