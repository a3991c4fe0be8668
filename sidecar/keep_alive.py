"""uvicorn's keep-alive timeout, kept with one timer per idle spell instead of per request.

uvicorn closes a connection that stays idle for ``timeout_keep_alive`` seconds (5 by
default) after its last response. It arms a new timer after every response and cancels
it when the next request's bytes arrive, so an agent that checks before every action
pays for a timer made, pushed on the loop's heap, cancelled and dropped on every check,
about 2 µs of the event loop's time (docs/performance.md, "How the hot path is built").

Here a connection notes when it went idle. Its timer is armed only when none is, and
when it fires it closes the connection if it has been idle for the whole timeout since,
or waits out the rest if a request came and went meanwhile; while a request is being
served, nothing is armed. A connection idle for the timeout is closed at the same moment
as with uvicorn's timer, and one that is busy is never closed by it. The check is in
uvicorn's own ``timeout_keep_alive_handler``, so that a timer uvicorn arms itself (a
response with a request waiting is left to uvicorn) goes through it too.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class KeepAliveHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a lazily re-armed keep-alive timer."""

    _idle_since: float | None = None  # loop time it went idle; None while busy

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()  # idle until its first bytes arrive

    def _unset_keepalive_if_required(self) -> None:
        # Called by uvicorn when bytes arrive: the connection is busy, its timer stays.
        self._idle_since = None

    def on_response_complete(self) -> None:
        if self.pipeline:
            # A request is waiting: uvicorn starts it, and arms no timer.
            super().on_response_complete()
            return
        # uvicorn's, but for the timer: arm it only if it is not armed already.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        """The timer fired: close if idle for the whole timeout, else wait out the rest."""
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None:
            return  # serving a request; its response arms the timer again
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(
                left, self.timeout_keep_alive_handler
            )
        else:
            super().timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
