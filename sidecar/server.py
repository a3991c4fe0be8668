"""``tollgate serve``: wire the audit log, the policy source and the gate, run uvicorn.

Lifecycle: the audit trail is opened (and recovered) before the port is bound, so a
corrupt trail stops the start. On start a ``startup`` record is written and the
policy loaded (a bad policy leaves the gate up but answering 503 until a valid one
appears). On SIGTERM uvicorn stops accepting, long-polls are answered at once
(``GateServer``), in-flight checks finish and are recorded, then a ``shutdown`` record
and the final checkpoint are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import start_http_server
from uvicorn.config import LOG_LEVELS

from sidecar import __version__, keys
from sidecar.app import create_app
from sidecar.audit.log import CLOSE_TIMEOUT_SECONDS, AuditLog
from sidecar.audit.note import Signer
from sidecar.check_endpoint import configured_url
from sidecar.errors import AuditCorrupt, AuditUnavailable, TollgateError
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource
from sidecar.policy.watch import PolicyWatcher


@dataclass(frozen=True)
class ServeConfig:
    policy: str
    audit_dir: str
    host: str = "127.0.0.1"
    port: int = 9800
    signing_key: str | None = None
    policy_public_key: str | None = None
    require_policy_hash: str | None = None
    segment_bytes: int = 64 * 2**20
    audit_origin: str | None = None  # None: tollgate/<identity>
    identity: str = "local"
    log_level: str = "warning"
    # A second listener serving GET /metrics alone (the gate's own port stays loopback).
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"


def build_gate(config: ServeConfig) -> Gate:
    """Open the audit trail and prepare the gate (synchronous; raises ``TollgateError``)."""
    signer = None
    if config.signing_key:
        try:
            signer = Signer.from_key_file(config.signing_key)
        except OSError as exc:
            # Name the setting: in a crash-looping pod the log line alone must say which
            # mount or variable to look at.
            raise keys.KeyFileError(
                f"--signing-key / TOLLGATE_SIGNING_KEY {config.signing_key}: {exc.strerror or exc}"
            ) from exc
    public_key = (
        keys.load_public_key(config.policy_public_key) if config.policy_public_key else None
    )
    audit = AuditLog.open(
        config.audit_dir,
        identity=config.identity,
        signer=signer,
        origin=config.audit_origin,
        segment_bytes=config.segment_bytes,
    )
    source = PolicySource(
        os.path.abspath(config.policy),
        public_key=public_key,
        required_hash=config.require_policy_hash,
    )
    return Gate(audit=audit, source=source, identity=config.identity)


def make_app(  # type: ignore[no-untyped-def]
    gate: Gate, config: ServeConfig, started: Callable[[], bool] = lambda: True
):
    """The app with its lifespan; ``started`` says whether the server got to serve
    (uvicorn runs the shutdown handler also when it cannot bind its port)."""

    async def startup() -> None:
        await gate.audit.start()
        # For the notices sent again at start (with the first policy), before any check.
        gate.approvals.configured_url = configured_url(config.host, config.port)
        # Kept and written before the first decision if the trail cannot take it now.
        await gate.record_before_decisions(
            "startup",
            {
                "version": __version__,
                "identity": gate.identity,
                "pid": os.getpid(),
                "listen": f"{config.host}:{config.port}",
                "policySource": gate.source.path,
                **_unsigned_at_start(gate),
            },
        )
        # The watcher takes its fingerprint just before this first load, so a change
        # racing the start-up is picked up, and a bad policy is rejected only once.
        watcher = PolicyWatcher(gate)
        gate.metrics.track_policy(
            lambda: gate.policy.active.hash if gate.policy.active else None,
            lambda: gate.policy.last_error is None,
        )
        await watcher.load()
        gate.background.append(watcher.run)
        gate.start_background()

    async def shutdown() -> None:
        await gate.stop_background()
        # Bounded as a whole (docs/api.md, "Shutdown"): a sync in flight is waited for
        # first (a stalled helper's is taken over), so a disk that recovers in time
        # still gets the shutdown record; one that does not cannot keep the gate up.
        audit = gate.audit
        deadline = time.monotonic() + CLOSE_TIMEOUT_SECONDS
        await audit.drain(CLOSE_TIMEOUT_SECONDS)
        try:
            reason = "signal" if started() else "startFailed"

            async def last_records() -> None:
                await gate.catch_up()
                await audit.append("shutdown", {"reason": reason, "identity": gate.identity})

            await asyncio.wait_for(last_records(), max(0.0, deadline - time.monotonic()))
        except (AuditUnavailable, TimeoutError) as exc:
            gate.metrics.audit_failures.inc()
            problem = exc if isinstance(exc, AuditUnavailable) else "the audit disk did not answer"
            logging.getLogger("tollgate.audit").error("shutdown record not written: %s", problem)
        await audit.close(max(0.0, deadline - time.monotonic()))

    return create_app(gate, on_startup=startup, on_shutdown=shutdown)


def _unsigned_at_start(gate: Gate) -> dict[str, Any]:
    """``unsignedAtStart``: the records this start found that no checkpoint signed."""
    found = gate.audit.unsigned_at_open
    return {} if found is None else {"unsignedAtStart": {"from": found[0], "to": found[1]}}


def serve(config: ServeConfig) -> int:
    # SIGHUP means "read the policy again" once the watcher runs (it installs its own
    # handler); until then Python's default action would end the gate while it opens
    # its trail, with no shutdown record.
    with contextlib.suppress(ValueError):  # not on the main thread: no signals to set
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        http_protocol()  # before the trail is opened: a gate that cannot serve writes nothing
        with _stopped_by_signals():
            gate = build_gate(config)
    except StartStopped as exc:
        # Nothing was served and no record of this run written: the trail is as a crash
        # at this point would leave it, which the next start reads back.
        print(f"tollgate: stopped by {exc} while opening the audit trail", file=sys.stderr)
        return 0
    except AuditCorrupt as exc:
        print(f"tollgate: audit trail is corrupt, refusing to start: {exc}", file=sys.stderr)
        return 1
    except (TollgateError, OSError, ValueError, HttpParserMissing) as exc:
        print(f"tollgate: cannot start: {exc}", file=sys.stderr)
        return 1
    log_to_stderr(config.log_level, gate.audit.redact_text)
    if config.metrics_port is not None:
        try:
            serve_metrics(gate, config.metrics_host, config.metrics_port)
        except OSError as exc:
            # Nothing of this run is recorded yet: closed as a start that never was.
            gate.audit.close_blocking()
            where = f"{config.metrics_host}:{config.metrics_port}"
            print(f"tollgate: cannot start: metrics port {where}: {exc}", file=sys.stderr)
            return 1
    server: uvicorn.Server | None = None
    app = make_app(gate, config, started=lambda: server is not None and server.started)
    server = GateServer(
        uvicorn_config(app, config.host, config.port, config.log_level),
        on_stopping=gate.approvals.stop_waiting,
    )
    # uvicorn set up its loggers just now (uvicorn.Config): the traceback it logs for a
    # route that failed ("Exception in ASGI application") is the gate's stderr too.
    redact_uvicorn_logs(gate.audit.redact_text)
    try:
        asyncio.run(server.serve())
    except KeyboardInterrupt:
        # Ctrl-C: uvicorn shut down gracefully (shutdown record, final checkpoint), then
        # raised SIGINT again, which asyncio.run turns into KeyboardInterrupt. A shell's
        # status for it, not a traceback that reads like a crash. Ended by SIGINT
        # itself, as Python ends on an uncaught KeyboardInterrupt, so that a shell
        # running the gate in a script or loop stops too (it ignores a child's exit 130).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130  # PID 1 in a container: SIG_DFL SIGINT is not delivered
    return 0 if server.started else 1


class GateServer(uvicorn.Server):
    """uvicorn's server, calling ``on_stopping`` as soon as its shutdown begins.

    The app's own shutdown (the lifespan) runs only once the requests in flight have
    ended, or were cancelled after ``timeout_graceful_shutdown``: too late for a
    long-poll, which would hold the exit 10 s and then be cancelled unanswered.
    """

    def __init__(self, config: uvicorn.Config, on_stopping: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stopping = on_stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Called before uvicorn's first await: what it wakes answers after uvicorn told
        # every connection to close, so that answer is its connection's last.
        self._on_stopping()
        await super().shutdown(sockets)


def serve_metrics(gate: Gate, host: str, port: int) -> None:
    """Serve the gate's metrics registry on ``host:port`` from a thread of its own.

    The gate's port listens on the pod's loopback, which a scraper outside the pod
    cannot reach; this port answers every GET with the metrics and offers nothing else
    (no check, no approval). prometheus-client's own server: a daemon thread, so it ends
    with the process. The per-check metrics are read from that thread as they are
    meant to be (``LoopCounter``). Raises ``OSError`` when the port cannot be bound.
    """
    start_http_server(port, addr=host, registry=gate.metrics.registry)


class StartStopped(BaseException):
    """SIGTERM or SIGINT arrived while the gate was opening its trail.

    A ``BaseException``, as ``KeyboardInterrupt`` is: raised wherever the start happens
    to be, it must not be taken by an ``except Exception`` there for a failure of its own.
    """


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGINT end the start while inside (uvicorn handles them once it runs).

    As a container's PID 1 the gate gets no default action for SIGTERM: the kernel drops
    it, and a pod deleted while a large trail was being read (up to a minute) waited out
    its grace period and was killed, with no chance to stop cleanly (red-team review of
    2026-12-07). Opening the trail is safe to abandon anywhere, as a crash is.
    """

    def stop(signum: int, _frame: object) -> None:
        raise StartStopped(signal.Signals(signum).name)

    try:
        previous = {name: signal.signal(name, stop) for name in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not on the main thread: no signals to set
        yield
        return
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def log_to_stderr(level: str, redact: Callable[[str], str] | None = None) -> None:
    """Send the gate's own events to stderr, where ``kubectl logs`` shows them.

    A policy loaded or rejected (with its problems), the trail becoming unwritable and
    writable again: uvicorn configures only its own loggers, so without this an
    operator would find a rejected ConfigMap only in /ready, the trail or the metrics.
    Every line goes through ``redact`` (the trail's redaction): an internal error's
    traceback quotes its exception's message, which may hold the request's text.
    """
    logger = logging.getLogger("tollgate")
    for handler in [h for h in logger.handlers if isinstance(h.formatter, RedactingFormatter)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, redact))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(LOG_LEVELS.get(level.lower(), logging.WARNING))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# Characters that end or rewrite a line in a terminal or a log pipeline: C0 controls but
# the tab, DEL, C1 controls, and Unicode's line and paragraph separators.
_LINE_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(text: str) -> str:
    return _LINE_BREAKING.sub(
        lambda found: (
            f"\\x{ord(found.group()):02x}"
            if ord(found.group()) < 0x100
            else f"\\u{ord(found.group()):04x}"
        ),
        text,
    )


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output, traceback included, has its secrets redacted.

    It formats with ``fmt``, or, given ``inner``, with that formatter (uvicorn's own).
    A log line is the gate's own: what a request put in its message (a path with an
    encoded newline, say) is escaped, and every line of a record after its first (a
    traceback's) is indented, so that no text from a request starts a line of its own
    (a red-team review of 2026-12-07 wrote a whole forged "audit checkpoint" line into
    the log with ``GET /a%0A...``).
    """

    def __init__(
        self,
        fmt: str | None,
        redact: Callable[[str], str] | None,
        inner: logging.Formatter | None = None,
    ) -> None:
        super().__init__(fmt)
        self._redact = redact
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if _LINE_BREAKING.search(message):
            # A copy: other handlers of the record see it as it was made.
            record = logging.makeLogRecord({**record.__dict__, "msg": _escaped(message)})
            record.args = None
        text = self._inner.format(record) if self._inner is not None else super().format(record)
        if self._redact is not None:
            text = self._redact(text)
        return text.replace("\r", "\\r").replace("\n", "\n  ")


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact_uvicorn_logs(redact: Callable[[str], str]) -> None:
    """Pass what uvicorn's loggers write through ``redact`` too, keeping their format.

    The Starlette app answers a failed route 500 and re-raises, so that uvicorn logs the
    traceback, whose exception message may quote the request; call once uvicorn has
    configured its logging (``uvicorn.Config`` does).
    """
    for name in UVICORN_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            inner = handler.formatter
            if isinstance(inner, RedactingFormatter):
                continue
            handler.setFormatter(RedactingFormatter(None, redact, inner or logging.Formatter()))


class HttpParserMissing(RuntimeError):
    """httptools is not installed, and without it no cap holds a request's head."""


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol the gate is served with (sidecar/check_protocol.py, on top of the
    head cap of sidecar/http_head.py); raises ``HttpParserMissing`` without httptools.

    uvicorn would fall back to its h11 parser, whose size limit holds only a head that
    arrives in pieces: a 70 KB head written at once was read whole and served. So the
    gate does not start without httptools (a dependency of the package).
    """
    try:
        from sidecar.check_protocol import CheckAnsweringProtocol
    except ImportError as exc:
        if exc.name != "httptools":
            raise
        raise HttpParserMissing(
            "httptools is not installed (pip install httptools, a dependency of "
            "tollgate): without it no limit holds a request's head"
        ) from None
    return CheckAnsweringProtocol


def uvicorn_config(app: Any, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """How ``tollgate serve`` runs uvicorn; the benchmarks' baselines are served with it too."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        http=http_protocol(),
        # The gate listens on loopback for its own pod: there is no proxy to trust.
        proxy_headers=False,
        # It serves no WebSocket: with uvicorn's, an upgrade pipelined after a check took
        # the connection before the check's answer was written (the 403 read in its place).
        ws="none",
    )
