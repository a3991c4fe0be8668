"""``Gate.fetch``: check ``network.request``, then send it with ``urllib``; every redirect
is checked too before it is followed.

Only ``http`` and ``https`` are fetched (urllib's ``file:``, ``ftp:`` and ``data:``
handlers are left out, so a URL cannot turn into an unchecked file read). Proxies from
the environment are honoured; the gate checks the URL the request is for.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPMessage, HTTPResponse
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tollgate_client.errors import Denied

if TYPE_CHECKING:
    from tollgate_client.gate import Gate

NETWORK_REQUEST = "network.request"
WEB_SCHEMES = ("http", "https")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only if the gate allows a request to where it leads."""

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
        follow = super().redirect_request(req, fp, code, msg, headers, newurl)
        if follow is not None:
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
    ``urllib.error.HTTPError`` as with ``urllib.request.urlopen``.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in WEB_SCHEMES:
        raise ValueError(f"Gate.fetch fetches http and https URLs only, not {scheme or url!r}")
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    gate.require(
        NETWORK_REQUEST, url=url, method=request.get_method(), context=context, approval=approval
    )
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
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
