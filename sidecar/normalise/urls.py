"""Strict URL parsing for network.request (CONTRACT 2.2, "URLs/hosts").

``parse_url`` accepts what a careful HTTP client sends and refuses what HTTP clients,
proxies and servers disagree about, so that the host, port and path a rule sees are the
ones the request reaches. It follows the WHATWG URL standard wherever it is strict and
rejects (``RequestError``) where WHATWG is lenient:

* Schemes: ``http``, ``https``, ``ws``, ``wss`` and ``ftp`` (WHATWG's special schemes
  with a host), any case, followed by exactly ``//``. Others (``file:``, ``data:``,
  ``gopher:``, ``ssh:`` ...) are rejected: send ``host``, ``port`` and ``scheme``
  instead. ``http:example.com``, ``http:/x`` and scheme-relative ``//x`` are rejected.
* Anywhere: ASCII control characters, spaces and backslashes are rejected (WHATWG
  strips or rewrites them, which is exactly how ``http://a.com\\@b.com`` tricks work);
  so are lone surrogates. Other non-ASCII is fine: IDNA in the host, UTF-8
  percent-encoded in the path and query.
* Userinfo: the host is what follows the ``@``, never what precedes it
  (``http://allowed.com:80@127.0.0.1`` is host ``127.0.0.1``, port 80). More than one
  ``@`` in the authority, brackets or braces in userinfo, and percent-encoded
  ``/ ? # \\`` in userinfo, or Unicode that NFKC turns into ``/ ? # @ \\ [ ]``
  (fullwidth solidus), are rejected: parsers that split on the first ``@``, decode or
  normalise before splitting, or expand curl's URL globs (see Path) would see another
  host (curl reads ``http://u{:p@allowed/,}@evil/`` as ``http://u:p@allowed/@evil/``
  and ``http://u@evil/``). Userinfo is dropped from ``ParsedUrl.url`` so credentials
  are never recorded; ``had_userinfo`` says one was there.
* Host: canonicalised by ``canonical_host`` (so one trailing dot is dropped, which
  WHATWG keeps). Percent-encoded hosts are rejected, not decoded: clients disagree on
  decoding them. IPv6 zone ids are rejected.
* Port: ASCII digits, 1-65535 (leading zeros allowed, ``:0080`` is 80). An empty port
  (``http://a.com:/``) is rejected. Absent, it is the scheme's default.
* Fragment: dropped (never sent to the server). A second ``#`` is rejected: a fragment
  may not hold one (RFC 3986 3.5), and Python's ``urllib.request`` cuts at the last
  ``#``, sending what lies between the two as path (``/v1/x#/../admin#``).
* Path: percent-encoding normalised (RFC 3986 6.2.2): encoded unreserved characters
  (``%61`` ``%2e``) are decoded, other escapes get upper-case hex, non-ASCII, ``"``,
  ``<``, ``>`` and the backquote are encoded; a ``%`` not followed by two hex digits is
  rejected. A literal ``{ } [ ]`` is rejected (RFC 3986 allows none of them unencoded
  there): the curl command-line tool expands them as URL globs unless given
  ``-g``/``--globoff`` (``/a/{..}/b`` is ``/b`` to it, ``/v1/[1-9]`` nine paths), and
  clients send them differently (Node's fetch encodes braces but not brackets, requests
  both, urllib neither). Their escapes (``%7B`` ``%5B``) are kept: curl does not expand
  them. Empty segments (``//``) are kept. Rejected as ambiguous: a dot segment, ``.`` or
  ``..`` (``%2e`` included), which WHATWG parsers (browsers, Node's fetch) and curl
  resolve but Python's urllib sends as written and servers such as Flask and Starlette
  route as written (``/admin/../public/x`` reaches their ``/admin/`` handler), so no one
  reading of it is safe to decide; a segment holding a dot segment once ``%2F``/``%5C``
  are decoded (``..%2F``, ``x%5C..;``); double-encoded ``.``, ``/`` and ``\\``
  (``%252e``); and ``.``/``..`` followed by ``;`` or ``%3B`` (``..;/``, a dot segment to
  Tomcat and Spring). So the path has no dot segment, and decoding it (or dropping ``;``
  parameters) cannot make one. An empty path is ``/``. The query is kept (normalised the
  same way) in ``url`` but is not part of ``path``.
* Query and fragment: ``{ } [ ]`` are kept (JSON:API's ``filter[name]=x``, as Node's
  fetch sends it). curl expands globs there too, but only after the ``?`` or ``#``,
  which ends the path for curl as for the gate: every URL it makes has the scheme,
  host, port and path decided (``?{a,/../x}`` and ``?{x,#@evil/}`` included), and no
  rule matches the query. It may make several requests of one check, though
  (``?page=[1-100]``); docs/clients.md's shell recipe passes ``-g``.

``server_paths`` gives the other forms a server may route a parsed path as: percent-
decoded once (nginx and many frameworks decode ``%2F`` too before matching), and with
``;`` path parameters removed from every segment (Tomcat, Spring, Jetty). The request is
also decided on each of them, and the strictest decision wins (like ``realPath``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sidecar.errors import RequestError
from sidecar.normalise.hosts import canonical_host
from sidecar.normalise.paths import lexical_path

# Well-known default ports (IANA "service names and port numbers").
_DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "ftps": 990,
    "sftp": 22,
    "ssh": 22,
    "git": 9418,
    "smtp": 25,
    "smtps": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "ldap": 389,
    "ldaps": 636,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "redis": 6379,
    "mongodb": 27017,
    "amqp": 5672,
    "amqps": 5671,
    "mqtt": 1883,
    "mqtts": 8883,
}
URL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
_PORT = re.compile(r"[0-9]+")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# What WHATWG percent-encodes in a path / a special-scheme query, minus what cannot
# reach here (controls, space, the delimiters # and ?, and in a path the curl globs).
_PATH_ENCODE = frozenset('"<>`')
_QUERY_ENCODE = frozenset("\"<>'")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/|^]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/?|^`{}\[\]]*")
_USERINFO_TRICKS = re.compile(r"%(?:2[fF]|3[fF]|23|5[cC])")
# The curl command-line tool's URL globs ({a,b}, [1-3], [a-z]), which it expands before
# parsing unless given -g: in userinfo or a path they change the host or the path.
_CURL_GLOB = re.compile(r"[{}\[\]]")
_ENCODED_SEPARATOR = re.compile(r"%2F|%5C")
_DOT_PARAMETER = ("..;", ".;", "..%3B", ".%3B")
_DOUBLE_ENCODED = re.compile(r"%25(?:2[EeFf]|5[Cc])")
_DELIMITERS = frozenset("/?#@\\[]")
_ESCAPE_RUN = re.compile(r"(?:%[0-9A-F]{2})+")
_DECODED_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARAMETERS = re.compile(r";[^/]*")


def default_port(scheme: str) -> int | None:
    """The default port of ``scheme`` (any case), or None when there is no well-known one."""
    return _DEFAULT_PORTS.get(scheme.lower())


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A URL reduced to what rules match, plus its canonical, credential-free text."""

    scheme: str  # lower-case, one of URL_SCHEMES
    host: str  # canonical_host form (IPv6 without brackets)
    port: int  # explicit, else the scheme's default
    path: str  # normalised, never empty; no query
    url: str  # scheme://host[:port]path[?query]: no userinfo, no fragment, no default port
    had_userinfo: bool = False  # the URL carried a user[:password]@ (dropped from url)


def canonical_escape(escape: str) -> str:
    """A ``%XX`` escape as a request's path holds it: the character itself when it is a
    letter, a digit or one of ``-._~``, else the escape in upper-case hex."""
    decoded = chr(int(escape[1:], 16))
    return decoded if decoded in _UNRESERVED else escape.upper()


def _normalise_escapes(text: str, encode: frozenset[str], field: str) -> str:
    """Decode escaped unreserved characters, upper-case other escapes, encode the rest."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            digits = text[index + 1 : index + 3]
            if not _HEX2.fullmatch(digits):
                raise RequestError("has a '%' not followed by two hex digits", field)
            out.append(canonical_escape("%" + digits))
            index += 3
            continue
        if not char.isascii():
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8")))
        elif char in encode:
            out.append(f"%{ord(char):02X}")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _is_dot_part(part: str) -> bool:
    """``part`` is a dot segment to some server: ``.``, ``..``, or either before ``;``."""
    return part in (".", "..") or part.startswith(_DOT_PARAMETER)


def _check_segment(segment: str, field: str) -> None:
    """Reject a segment that some server would read as a dot segment."""
    if _DOUBLE_ENCODED.search(segment):
        raise RequestError(
            "has a double-encoded '.', '/' or '\\' (a traversal to servers that decode twice)",
            field,
        )
    if segment.startswith(_DOT_PARAMETER):
        raise RequestError(
            "has a '.' or '..' segment followed by ';' (a dot segment to some servers)", field
        )
    # Once %2F or %5C is decoded, each piece is a segment: "x%5C..;y" holds "..;y", a dot
    # segment to Tomcat and Spring, which the forms decided here would read as a name.
    if "%" in segment and any(map(_is_dot_part, _ENCODED_SEPARATOR.split(segment))):
        raise RequestError(
            "has an encoded '/' or '\\' next to a dot segment (path traversal in disguise)",
            field,
        )


def _refuse_curl_glob(text: str, where: str, field: str) -> None:
    """Refuse a literal ``{ } [ ]`` in the userinfo or path ``text`` (see the module)."""
    found = _CURL_GLOB.search(text)
    if found:
        char = found.group()
        raise RequestError(
            f"has a literal {char!r} in its {where}: the curl command-line tool expands "
            "'{a,b}' and '[1-3]' in a URL (globbing, unless given -g or --globoff) and "
            "would request URLs other than the one decided; percent-encode it "
            f"(%{ord(char):02X})",
            field,
        )


def _normalise_path(raw: str, field: str) -> str:
    """Normalised path: escapes normalised; a dot segment and curl's globs refused."""
    if not raw:
        return "/"
    _refuse_curl_glob(raw, "path", field)
    text = raw if _PLAIN_PATH.fullmatch(raw) else _normalise_escapes(raw, _PATH_ENCODE, field)
    segments = text.split("/")[1:]  # raw starts with "/": the first item is empty
    for segment in segments:
        if segment in (".", ".."):
            raise RequestError(
                "has a '.' or '..' segment (also spelt %2e): clients and servers disagree "
                "on resolving it (curl and browsers do; Python's urllib, Flask and "
                "Starlette do not); send the path resolved",
                field,
            )
        _check_segment(segment, field)
    return text


@dataclass(frozen=True, slots=True)
class ServerPaths:
    """Other forms a server may route a parsed URL path as; None where there is none."""

    decoded: str | None  # the path had an escape: decoded once, lexical form
    stripped: str | None  # it had a ";" (or "%3B"): parameters removed, decoded, lexical
    # The forms above, and the path itself, that end in "/", as a server merging "//"
    # reads them ("//admin/" and "/admin%2F" are "/admin/"): their lexical form drops
    # the "/", in which a deny of "/admin/**" or ``startsWith: /admin/`` would miss them.
    directories: tuple[str, ...] = ()


_AS_IS = ServerPaths(None, None)


def _decode_once(path: str) -> str:
    """``path`` with its escapes decoded once; bytes that are not UTF-8 stay escaped."""

    def decode(match: re.Match[str]) -> str:
        text = bytes.fromhex(match.group().replace("%", "")).decode("utf-8", "surrogateescape")
        return "".join(
            f"%{ord(char) - 0xDC00:02X}" if "\udc80" <= char <= "\udcff" else char for char in text
        )

    return _ESCAPE_RUN.sub(decode, path)


def _decode_checked(path: str, field: str) -> str:
    """``path`` decoded once, ``\\`` read as ``/``; refuses decoded control characters."""
    decoded = _decode_once(path)
    if _DECODED_CONTROL.search(decoded):
        raise RequestError(
            "has a percent-encoded control character (%00-%1F, %7F) in its path "
            "(ambiguous: servers that decode it differ on what follows)",
            field,
        )
    # A decoded backslash is a separator to Windows servers (and Tomcat with
    # ALLOW_BACKSLASH): read it as one, so "/admin%5Cx" is also "/admin/x".
    # No dot segment appears: parse_url refused "..%2F", "..%3B" and their kind.
    return decoded.replace("\\", "/")


def server_paths(path: str, field: str = "url") -> ServerPaths:
    """The forms a server may route ``path`` (a ``ParsedUrl.path``) as, besides itself.

    * ``decoded``: when the path has an escape, decoded once (``%2F`` included, as nginx
      does before matching locations), a decoded ``\\`` read as ``/``, dot segments
      resolved and ``//`` merged, trailing ``/`` dropped (``lexical_path``). Decoded
      once only: ``%2541`` is ``%41``; double-encoded ``.``, ``/`` and ``\\`` were
      already refused by ``parse_url``.
    * ``stripped``: when the path has a ``;`` (or ``%3B``), ``;...`` removed from every
      segment (Tomcat, Spring and Jetty route ``/admin;x/y`` as ``/admin/y``), then
      decoded once, then ``;...`` removed again (for servers that decode first), in
      lexical form.
    * ``directories``: each of ``path``, its decoded and its stripped spelling that ends
      in ``/``, with ``//`` merged and that ``/`` kept (``//admin/``, ``/admin%2F`` and
      ``/admin;x/`` give ``/admin/``), for the deny and require_approval rules; not the
      path itself when it is spelt so already.

    ``path`` has no dot segment, and ``parse_url`` refused what would make one once
    decoded. Raises ``RequestError`` where the forms are ambiguous: a
    decoded control character (``%00``, ``%0A`` ...), or an encoded ``/`` or ``\\``
    inside a ``;`` or ``%3B`` parameter (``/a;x%2Fb``, ``/a%3Bx%5Cb``: does the
    parameter end at the decoded ``/`` or ``\\``?).
    """
    if "%" not in path and ";" not in path:
        # Most paths: nothing to decode or strip, and no trailing "/" to keep.
        return _AS_IS if not path.endswith("/") else ServerPaths(None, None, _directories([path]))
    decoded = stripped = None
    spellings = [path]  # each form before ``lexical_path``, for ``directories``
    if "%" in path:
        spellings.append(_decode_checked(path, field))
        decoded = lexical_path(spellings[-1])
    if ";" in path or "%3B" in path:
        # A parameter may start with "%3B" too, for a server that decodes first: whether
        # "%3Bx%5C.." ends at the decoded "\\" depends on the server, as for ";x%5C..".
        parameters = _PARAMETERS.findall(path.replace("%3B", ";"))
        if any(_ENCODED_SEPARATOR.search(p) for p in parameters):
            raise RequestError(
                "has an encoded '/' or '\\' in a ';' parameter (servers disagree on where "
                "the parameter ends)",
                field,
            )
        text = _PARAMETERS.sub("", path)
        if "%" in text:
            text = _PARAMETERS.sub("", _decode_checked(text, field))
        spellings.append(text)
        stripped = lexical_path(text)
    return ServerPaths(decoded, stripped, _directories(spellings))


def _directories(spellings: list[str]) -> tuple[str, ...]:
    """The spellings ending in "/", in lexical form with their trailing "/" kept,
    except the path itself (``spellings[0]``) spelt so already: it is decided as sent."""
    found: list[str] = []
    for spelling in spellings:
        if not spelling.endswith("/"):
            continue
        directory = lexical_path(spelling)
        if directory != "/" and directory + "/" not in (spellings[0], *found):
            found.append(directory + "/")
    return tuple(found)


def _split_authority(authority: str, field: str) -> tuple[str, str | None, bool]:
    """Split ``[userinfo@]host[:port]`` into (host, port text or None, had userinfo)."""
    had_userinfo = "@" in authority
    if had_userinfo:
        if authority.count("@") > 1:
            raise RequestError("has more than one '@' before the host (ambiguous)", field)
        userinfo, _, authority = authority.partition("@")
        _refuse_curl_glob(userinfo, "userinfo", field)
        disguised = not userinfo.isascii() and _DELIMITERS.intersection(
            unicodedata.normalize("NFKC", userinfo)
        )
        if disguised or _USERINFO_TRICKS.search(userinfo):
            raise RequestError(
                "has an encoded '/', '?', '#' or '\\', or a look-alike of one of them "
                "or of '@', '[' or ']', in its userinfo (ambiguous)",
                field,
            )
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise RequestError("has an unclosed '[' in its host", field)
        host, rest = authority[: close + 1], authority[close + 1 :]
        if rest and not rest.startswith(":"):
            raise RequestError("has text after the ']' of its IPv6 host", field)
        return host, (rest[1:] if rest else None), had_userinfo
    host, colon, port = authority.partition(":")
    return host, (port if colon else None), had_userinfo


def _port(text: str | None, scheme: str, field: str) -> int:
    if text is None:
        return _DEFAULT_PORTS[scheme]  # every member of URL_SCHEMES has one
    if not _PORT.fullmatch(text):
        raise RequestError(
            "has a port that is not a number" if text else "has an empty port", field
        )
    digits = text.lstrip("0")
    if not digits or len(digits) > 5 or not 1 <= int(digits) <= 65535:
        raise RequestError("has a port outside 1-65535", field)
    return int(digits)


def parse_url(url: str, field: str = "url") -> ParsedUrl:
    """Parse ``url`` strictly (see the module docstring); raises only ``RequestError``."""
    if not isinstance(url, str):
        raise RequestError("must be a string", field)
    if not url:
        raise RequestError("must not be empty", field)
    bad = _FORBIDDEN.search(url)
    if bad:
        char = bad.group()
        what = {" ": "spaces", "\\": "backslashes"}.get(char, "control characters")
        raise RequestError(f"must not contain {what} (ambiguous URL)", field)
    if not url.isascii():
        try:
            url.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError("must not contain lone surrogates", field) from None
    match = _SCHEME.match(url)
    if not match:
        raise RequestError("must be an absolute URL starting with a scheme (https://...)", field)
    scheme = match.group(1).lower()
    if scheme not in URL_SCHEMES:
        raise RequestError(
            f"has unsupported scheme {scheme!r} (use http, https, ws, wss or ftp, "
            "or give host, port and scheme)",
            field,
        )
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise RequestError(f"must have '//' after '{scheme}:'", field)
    rest = rest[2:]
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if 0 <= found < end:
            end = found
    authority, tail = rest[:end], rest[end:]
    host_text, port_text, had_userinfo = _split_authority(authority, field)
    if not host_text:
        raise RequestError("has no host", field)
    host = canonical_host(host_text, field)
    port = _port(port_text, scheme, field)
    tail, _, fragment = tail.partition("#")
    if "#" in fragment:
        raise RequestError(
            "has more than one '#' (ambiguous URL: some clients send what lies between "
            "them as part of the path)",
            field,
        )
    raw_path, question, raw_query = tail.partition("?")
    path = _normalise_path(raw_path, field)
    query = ""
    if question:
        plain = _PLAIN_QUERY.fullmatch(raw_query)
        query = "?" + (raw_query if plain else _normalise_escapes(raw_query, _QUERY_ENCODE, field))
    url_host = f"[{host}]" if ":" in host else host
    url_port = "" if port == default_port(scheme) else f":{port}"
    return ParsedUrl(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        url=f"{scheme}://{url_host}{url_port}{path}{query}",
        had_userinfo=had_userinfo,
    )
