"""Notify a webhook of each new pending approval (policy ``approvals.notify.webhook``).

The JSON carries the approval, the request (secrets redacted), the risk, the expiry and
the ``tollgate approvals`` command lines that approve or deny it, plus a ``text`` field,
so a Slack incoming webhook can take the payload unchanged (it shows ``text``; ``<``,
``>`` and ``&`` are escaped as Slack requires, so an agent's request cannot inject a
mention or a link).

Delivery never delays /check: notices are queued and sent by a background task, each
attempt with a timeout for the whole attempt (a peer answering a byte at a time is hung
up on), retried with exponential backoff on a network error, a timeout,
HTTP 429 or 5xx. Redirects are not followed. A delivered notice is recorded (``approval``
record, event ``notified``); when every attempt fails that is recorded instead (event
``notifyFailed``) and the approval still waits, visible in
``GET /v1/approvals?status=pending``. A notice still queued when the gate stops has
neither record, so the next start sends it again (``redelivery``: at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import shlex
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar.approvals.model import Approval, format_us
from sidecar.canonical import canonical_bytes
from sidecar.visible import hidden_values, printable_json_text, visible

ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
ATTEMPT_TIMEOUT_SECONDS = 5.0
MAX_QUEUED = 1000
CONCURRENT_DELIVERIES = 4
_SUMMARY_CHARS = 1500
_CONTEXT_CHARS = 300

logger = logging.getLogger("tollgate.approvals")


@dataclass(frozen=True)
class Notice:
    approval_id: str
    url: str
    payload: dict[str, Any]


GiveUp = Callable[[Notice, int, str], Awaitable[None]]
Delivered = Callable[[Notice, int], Awaitable[None]]


def command_line(verb: str, approval_id: str, gate_url: str, approver: str | None) -> str:
    """The ``tollgate approvals`` line an approver runs (their key file is their own)."""
    return shlex.join(
        [
            "tollgate", "approvals", verb, approval_id,
            "--url", gate_url, "--key", "KEY_FILE", "--name", approver or "NAME",
        ]
    )  # fmt: skip


def _code_text(value: Any, limit: int) -> str:
    """``value`` as printable canonical JSON for a code block, cut at ``limit``.

    A backtick is written as its JSON escape (the same JSON), so the text cannot close
    the block around it."""
    text = printable_json_text(canonical_bytes(value).decode("utf-8")).replace("`", "\\u0060")
    if len(text) > limit:
        return f"{text[:limit]} ... ({len(text) - limit} more characters: the CLI shows all)"
    return text


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_payload(
    approval: Approval, gate_url: str, approvers: list[str], *, redelivery: bool = False
) -> dict[str, Any]:
    """The notice for ``approval``; ``redelivery`` marks one sent again after a restart
    (the receiver may have seen it already: delivery is at-least-once)."""
    only = approvers[0] if len(approvers) == 1 else None
    approve = command_line("approve", approval.id, gate_url, only)
    deny = command_line("deny", approval.id, gate_url, only)
    # Shown to a person in a chat client: nothing in it may reorder or hide text. The
    # action comes first and the agent's free-form context after it, each cut on its
    # own: a long context must not push the action out of the message (a padded one
    # did, leaving only a decoy request in view).
    request = {k: v for k, v in approval.request.items() if k != "context"}
    summary = _code_text(request, _SUMMARY_CHARS)
    context = approval.request.get("context")
    shown_context = ""
    if context is not None:
        shown = _code_text(context, _CONTEXT_CHARS)
        shown_context = f"Context from the agent (recorded, never matched): ```{shown}```\n"
    # Values redacted as secrets are values the agent chose and the approver cannot
    # see; one may be what the action acts on. Named here as the CLI names them, whose
    # approve refuses to sign them without --accept-redacted.
    hidden = hidden_values(approval.request)
    shown_hidden = ""
    if hidden:
        places = ", ".join(hidden[:8]) + (" ..." if len(hidden) > 8 else "")
        shown_hidden = (
            f"Hidden as secrets, chosen by the agent: {places}. Deny unless each is a "
            "credential you need not see (approve needs --accept-redacted).\n"
        )
    # The policy's reason quotes the request, which the agent wrote: in a code block, its
    # backticks escaped, so that its *bold*, links and fences are shown, not rendered
    # (a ``` in it opened the context's block; red-team review of 2026-12-07).
    reason = visible(approval.policy_reason).replace("`", "\\u0060")
    expires = format_us(approval.expires_us)
    rule = approval.rule or "defaultAction"
    text = (
        f"Tollgate: approval needed for {approval.action} by {approval.identity} "
        f"(risk: {approval.risk or 'not set'}, rule: {rule})\n"
        f"```{summary}```\n"
        f"{shown_hidden}"
        f"Reason: ```{reason}```\n"
        f"{shown_context}"
        f"Expires {expires}; until then it is denied. Approve with:\n`{approve}`\n"
        f"or deny with:\n`{deny}`"
    )
    return {
        "text": _slack_escape(text),
        "approval": approval.id,
        "status": approval.status,
        "action": approval.action,
        "request": approval.request,
        "hiddenValues": hidden,
        "requestHash": approval.request_hash,
        "risk": approval.risk,
        "rule": approval.rule,
        "reason": approval.policy_reason,
        "identity": approval.identity,
        "expiresAt": expires,
        "approveCommand": approve,
        "denyCommand": deny,
        "redelivery": redelivery,
    }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError, a permanent failure


Connections = list[http.client.HTTPConnection]


def _tracked(kind: type[http.client.HTTPConnection], opened: Connections) -> Any:
    """A connection class for ``do_open`` that notes each connection it makes in
    ``opened``, so that an attempt past its time can be hung up from outside."""

    def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = kind(host, **kwargs)
        opened.append(connection)
        return connection

    return connect


class _TrackedHTTP(urllib.request.HTTPHandler):
    def __init__(self, opened: Connections) -> None:
        super().__init__()
        self._opened = opened

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_tracked(http.client.HTTPConnection, self._opened), req)


class _TrackedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, opened: Connections) -> None:
        super().__init__()
        self._opened = opened

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _tracked(http.client.HTTPSConnection, self._opened),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


def _hang_up(opened: Connections) -> None:
    """Close the sockets of an attempt that ran out of time: the thread blocked on them
    returns at once (a socket timeout only bounds each read, not a slow trickle)."""
    for connection in list(opened):
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Retryable(Exception):
    pass


class _Refused(Exception):
    """The webhook answered with an error status that retrying cannot change."""


def _post(url: str, body: bytes, timeout: float, opened: Connections) -> None:
    """One attempt. Raises ``_Retryable``, ``_Refused`` or another exception (permanent)
    on failure.
    Connections it opens are noted in ``opened``."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tollgate-approvals"},
    )
    # Proxies from the environment are used as urllib always does; only the HTTP(S)
    # handlers are replaced, to see the connections.
    opener = urllib.request.build_opener(_NoRedirects, _TrackedHTTP(opened), _TrackedHTTPS(opened))
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code}") from None
        raise _Refused(f"HTTP {exc.code} (not retried)") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retryable(f"{type(exc).__name__}: {reason}") from None


def _url_parts_beyond_host(url: str) -> set[str]:
    """The parts of ``url`` other than its scheme and host, each as it is and as ``repr``
    shows it: the pieces an error's text may echo (``http.client`` quotes a port it cannot
    read, which for ``user:password@host`` is the password and host, and a path holding a
    control character)."""
    parts = urlsplit(url)
    userinfo, _, host_and_port = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    port = host_and_port.rpartition("]")[2].partition(":")[2]
    pieces = {userinfo, user, password, port, parts.path, parts.query, parts.fragment}
    pieces.update(parts.path.split("/"))
    pieces.update(parts.query.replace("=", "&").split("&"))
    # Shorter pieces would match ordinary words of any message; none is a secret.
    found = {piece for piece in pieces if len(piece) >= 3}
    return found | {repr(piece)[1:-1] for piece in found}


def _without_url(problem: str, url: str) -> str:
    """``problem`` for the log and the trail, unless it echoes any part of the webhook's
    URL beyond its scheme and host (its path, or a user name or password, holds the
    webhook's secret): then only the kind of error."""
    if any(piece in problem for piece in _url_parts_beyond_host(url)):
        kind = problem.partition(":")[0]
        return f"{kind}: (its text is withheld: it quotes part of the webhook's URL)"
    return problem


class WebhookNotifier:
    """A bounded queue of notices and the background task that delivers them."""

    def __init__(
        self,
        on_give_up: GiveUp,
        *,
        on_delivered: Delivered | None = None,
        attempts: int = ATTEMPTS,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        timeout: float = ATTEMPT_TIMEOUT_SECONDS,
    ) -> None:
        self._on_give_up = on_give_up
        self._on_delivered = on_delivered
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._timeout = timeout
        self._queue: asyncio.Queue[Notice] | None = None
        self._dropped: list[Notice] = []
        self._deliveries: set[asyncio.Task[None]] = set()

    def submit(self, notice: Notice) -> None:
        """Queue ``notice``; never blocks. Over ``MAX_QUEUED`` it is given up at once."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_QUEUED)
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self._dropped.append(notice)

    async def run(self) -> None:
        """The background duty: deliver queued notices, a few at a time."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_QUEUED)
        slots = asyncio.Semaphore(CONCURRENT_DELIVERIES)
        try:
            while True:
                while self._dropped:
                    notice = self._dropped.pop(0)
                    await self._on_give_up(notice, 0, "the notification queue is full")
                notice = await self._queue.get()
                await slots.acquire()
                task = asyncio.ensure_future(self._deliver(notice))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
                task.add_done_callback(lambda _: slots.release())
        finally:
            for task in list(self._deliveries):
                task.cancel()

    async def _deliver(self, notice: Notice) -> None:
        body = canonical_bytes(notice.payload)
        problem = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                await self._attempt(notice.url, body)
            except _Retryable as exc:
                problem = _without_url(str(exc), notice.url)
            except _Refused as exc:
                await self._on_give_up(notice, attempt, str(exc))
                return
            except Exception as exc:  # a permanent failure: retrying cannot help
                problem = _without_url(f"{type(exc).__name__}: {exc}", notice.url)
                await self._on_give_up(notice, attempt, problem)
                return
            else:
                await self._delivered(notice, attempt)
                return
            if attempt < self._attempts:
                await asyncio.sleep(self._first_backoff * 2 ** (attempt - 1))
        await self._on_give_up(notice, self._attempts, problem)

    async def _delivered(self, notice: Notice, attempts: int) -> None:
        """Tell ``on_delivered``; its failure is logged, never retried as a failed
        delivery (the notice arrived; at worst it is sent again after a restart)."""
        if self._on_delivered is None:
            return
        try:
            await self._on_delivered(notice, attempts)
        except Exception:
            logger.exception("recording the delivery of %s failed", notice.approval_id)

    async def _attempt(self, url: str, body: bytes) -> None:
        """One POST, given up (and its connection closed) after the attempt timeout as a
        whole: the socket timeout alone would let an answer trickling in a byte at a
        time hold a delivery slot for as long as it trickles."""
        opened: Connections = []
        posting = asyncio.ensure_future(asyncio.to_thread(_post, url, body, self._timeout, opened))
        try:
            await asyncio.wait_for(asyncio.shield(posting), self._timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            _hang_up(opened)
            # The thread returns once its socket is closed; its outcome no longer counts.
            posting.add_done_callback(lambda done: done.cancelled() or done.exception())
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _Retryable(f"no complete answer within {self._timeout:g} s") from None
