"""Requests from web pages are refused: the gate answers programs in its pod, not browsers.

An agent that browses runs a browser in the pod, and a page it opens can send requests
to the gate's loopback port. Two kinds matter:

- A cross-site request (a form POST, ``fetch`` with ``mode: "no-cors"``): the page
  cannot read the answer, but it can send checks, spend rate limits, and redeem an
  approval before the agent does, if it knows the id. Browsers mark every such request
  with ``Origin`` (all but GET and HEAD carry it) and with ``Sec-Fetch-Site``.
- DNS rebinding: the page's own host name is made to resolve to 127.0.0.1, so its
  requests are same-origin and it reads the answers (pending approvals, their requests
  and context). The browser still sends the page's name in ``Host``.

So a request is refused (403, ``forbidden``) when it carries ``Origin``, or a
``Sec-Fetch-Site`` other than ``none`` (a user typing the URL), or a ``Host`` that is
neither ``localhost`` nor an IP address literal (a rebound name is a DNS name; the
kubelet's probes and every client of the gate name an address or ``localhost``). No
client of the gate sends ``Origin`` or ``Sec-Fetch-Site``. This is the check that
Jupyter and the Kubernetes dashboard's local proxy make for the same reason.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

FORBIDDEN_CODE = "forbidden"
# Header fields that only browsers send. The server's fast path for /check leaves any
# request carrying one to ``refusal`` (sidecar/check_protocol.py), so the two cannot
# disagree on which fields count.
BROWSER_FIELDS = frozenset({b"origin", b"sec-fetch-site"})

# Browsers send Sec-Fetch-Site: none for a request the user made (a typed URL, a
# bookmark); same-origin needs a page served by the gate, which serves none.
_HARMLESS_FETCH_SITES = frozenset({b"none", b"same-origin"})


def refusal(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request with these header fields (lower-case names, as uvicorn and ASGI
    give them) is refused as a web page's; None when it is served."""
    for name, value in headers:
        if name == b"host":
            if not loopback_host(value):
                shown = value[:64].decode("latin-1")
                return (
                    f"Host {shown!r} is neither localhost nor an IP address: a web page's "
                    "request (DNS rebinding) is refused; call the gate by its address"
                )
        elif name == b"origin":
            return "a request with an Origin header comes from a web page; it is refused"
        elif name == b"sec-fetch-site" and value.strip().lower() not in _HARMLESS_FETCH_SITES:
            return "a cross-site request from a web page (Sec-Fetch-Site) is refused"
    return None


@functools.lru_cache(maxsize=64)
def loopback_host(value: bytes) -> bool:
    """True for a Host field naming ``localhost`` or an IP address literal, with or
    without a port. (Cached: a gate sees the same one or two values all day.)"""
    host = value.strip().lower()
    if host.startswith(b"["):
        literal, bracket, rest = host[1:].partition(b"]")
        if not bracket or (rest and not _is_port(rest)):
            return False
        return _is_address(literal, version=6)
    name, colon, port = host.rpartition(b":") if b":" in host else (host, b"", b"")
    if colon and not port.isdigit():
        return False
    if name.endswith(b"."):
        name = name[:-1]
    return name == b"localhost" or _is_address(name, version=4)


def _is_port(text: bytes) -> bool:
    return text.startswith(b":") and text[1:].isdigit()


def _is_address(text: bytes, version: int) -> bool:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return address.version == version
