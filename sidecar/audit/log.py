"""The audit trail writer: hash chain, group commit, checkpoints (CONTRACT section 4).

``AuditLog`` appends canonical JSON records to ``DIR/segments/<first seq>.jsonl``. Each
record gets ``seq``, ``ts``, ``type`` and ``prev`` (the leaf hash of the record before),
secrets in its body are redacted, and the call returns only once the record is written
and fsynced. Records are encoded and hashed as they arrive; the appends of every request
that arrived together (those of the next event-loop iteration included) are written
with one write and one fdatasync (group commit), on the loop thread, as Redis does with
``appendfsync always``: a writer thread costs more in wake-ups than the fsync it hides.

State (record count, head hash, Merkle frontier) only advances after a batch is
durable. A failed write or fsync is undone (the segment is truncated back), every record
of the batch fails with ``AuditUnavailable``, ``writable`` turns False, and the next
append simply tries again: service resumes by itself once the disk is writable.

Signed checkpoints (C2SP tlog-checkpoint, Ed25519 signed note) are written every
``checkpoint_every`` records, every ``checkpoint_interval`` seconds when there are new
records, at segment rotation and at ``close()``. Each is a ``checkpoint`` record in the
trail (in the same fsync as the records it covers), then atomically replaces
``DIR/checkpoint``, and is printed as one JSON line on stdout so a copy leaves the volume.

Which records the log writes itself: ``recovery`` (at open, after a torn tail or a
hole) and ``checkpoint``. The application writes ``startup``, ``policyLoaded``,
``decision``, ``shutdown`` and the rest through ``append``; ``close()`` only drains
pending appends, writes the final checkpoint and releases the files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.merkle import Frontier
from sidecar.audit.note import (
    NoteError,
    SignedNote,
    Signer,
    Verifier,
    check_key_name,
    parse_note,
    verify_note,
)
from sidecar.audit.rebuild import TrailState, rebuild, record_at
from sidecar.audit.records import ENVELOPE_KEYS, RECORD_TYPES, format_ts
from sidecar.audit.redact import Redactor
from sidecar.audit.segments import (
    BROKEN_SUFFIX,
    CHECKPOINT_FILE,
    CHECKPOINT_MAX_BYTES,
    LOCK_FILE,
    SEGMENTS_DIR,
    NotASmallFile,
    Segment,
    SegmentStart,
    TornTail,
    corrupt,
    fsync_directory,
    open_regular_for_writing,
    opened_regular_for_writing,
    read_small_file,
    replace_file,
    segment_name,
    start_path,
)
from sidecar.audit.syncer import HelperGone, SyncHelper
from sidecar.audit.verify_chunks import FIRST_RECORDS_OF_A_RUN, a_record
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt, AuditUnavailable

__all__ = ["Appended", "AuditLog", "Signer"]

DEFAULT_SEGMENT_BYTES = 64 * 2**20
# A sync in the helper taking longer than this is a stalled disk: the trail reports
# itself unwritable (so /ready fails) and new appends fail at once instead of piling up.
SYNC_STALL_SECONDS = 5.0
# How often an idle gate whose trail failed tries it again without a record, so that
# /ready follows the volume rather than waiting for the next check to write.
WRITABLE_RETRY_SECONDS = 1.0
# ``close()`` waits at most this long for the sync in flight (first the helper's, then,
# past the stall threshold, the gate's own): a disk that never finishes must not keep
# the gate from exiting. Two stall thresholds: the gate's own sync gets as long as the
# helper had.
CLOSE_TIMEOUT_SECONDS = 2 * SYNC_STALL_SECONDS
# How often the stall watch looks at the helper's sync in flight.
_STALL_WATCH_SECONDS = 1.0
# A lost sync helper (killed, stalled and given up on, or never started) is started
# again this long after the loss was seen, and after twice as long each time a new one
# is lost before it has synced a batch, up to the maximum: a helper that keeps dying
# costs a process start every few minutes, not a loop of them.
HELPER_RESTART_SECONDS = 5.0
HELPER_RESTART_MAX_SECONDS = 300.0
# Less free space than this on the audit volume and /ready reports it full: room for a
# few records and a checkpoint, so readiness fails before the next write would.
VOLUME_MIN_FREE_BYTES = 64 * 1024
# A rotation creates a segment and its .start, a checkpoint replace a temporary file.
VOLUME_MIN_FREE_INODES = 8
_REDACTION_INFO = b"tollgate audit redaction key v1"
# C0 controls and DEL: no identity holds one (it is written into records and the origin).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_logger = logging.getLogger("tollgate.audit")
_BatchItem = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str  # hex leaf hash of the record


@dataclass(eq=False)
class _Batch:
    """Records encoded on top of a known trail state, to be written with one fsync.

    ``results`` holds one entry per record asked for (a body that cannot be recorded
    has its error there); ``futures`` runs in step with it for appends from the loop.
    """

    base_size: int
    base_head: bytes
    frontier: Frontier  # after the staged records
    size: int
    head: bytes
    buffer: bytearray = field(default_factory=bytearray)
    results: list[Appended | BaseException] = field(default_factory=list)
    futures: list[asyncio.Future[Appended]] = field(default_factory=list)
    callers: int = 0  # appends waiting on it (one append_all counts once)
    added: int = 0  # records staged, the checkpoint record not counted
    reason: str | None = None  # a checkpoint reason forced by the caller
    final: bool = False  # holds the ``shutdown`` record: its checkpoint is the last one
    checkpoint: tuple[Checkpoint, str] | None = None
    rotate: bool = False
    names_found: bool = False  # holds a startup record naming the records found unsigned


def default_origin(identity: str) -> str:
    """``tollgate/<identity>`` with spaces and '+' (not allowed in note key names) as '_'."""
    cleaned = "".join("_" if char.isspace() or char == "+" else char for char in identity)
    return f"tollgate/{cleaned or 'unknown'}"


def redaction_key(signer: Signer | None) -> bytes:
    """The HMAC key for redaction tags.

    Derived with HKDF from the signing key, so it is stable across restarts (the same
    secret gets the same tag in every record) and as secret as the signing key: readers
    of the trail, who only hold the public key, cannot test guesses against a tag.
    Without a signing key a random per-process key is used, and tags correlate only
    within one run. It is never stored beside the trail, where it would be readable by
    everyone who can read the records.
    """
    if signer is None:
        return os.urandom(32)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_REDACTION_INFO)
    return hkdf.derive(signer.private_key.private_bytes_raw())


class AuditLog:
    """Append-only, hash-chained, checkpointed audit trail in one directory."""

    def __init__(
        self,
        directory: Path,
        state: TrailState,
        *,
        lock_fd: int,
        signer: Signer | None,
        origin: str,
        segment_bytes: int,
        checkpoint_every: int,
        checkpoint_interval: float,
        last_checkpoint: dict[str, Any] | None,
        sync_helper: bool = True,
        first_unsigned: int | None = None,
    ) -> None:
        self._directory = directory
        self._segments_dir = directory / SEGMENTS_DIR
        self._lock_fd = lock_fd
        self._signer = signer
        self._origin = origin
        self._segment_bytes = segment_bytes
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._redactor = Redactor(redaction_key(signer))
        self._public_key_b64 = (
            base64.b64encode(signer.public_key.public_bytes_raw()).decode("ascii")
            if signer is not None
            else None
        )
        # Durable state, changed only under _lock after a successful fsync.
        self._lock = threading.Lock()
        self._size = state.size
        self._head = state.head
        self._frontier = state.frontier
        self._segment = state.last_segment or Segment(0, self._segments_dir / segment_name(0))
        self._segment_size = state.last_segment_bytes
        self._segment_exists = state.last_segment is not None
        # The segment file's (device, inode): a file put in its place, even of the same
        # size, is another file, and refused like one whose size changed.
        self._segment_file = _file_identity(self._segment.path) if self._segment_exists else None
        self._dirty_tail = False
        self._last_checkpoint = last_checkpoint
        # Records not yet covered by a checkpoint; the checkpoint record that follows the
        # records it covers does not count, or every restart would sign again, but only
        # once it is seen to be that record (``open`` says from which seq on, see
        # ``_first_unsigned``): another record in its place is one no checkpoint signed.
        if first_unsigned is None:
            first_unsigned = 0 if last_checkpoint is None else last_checkpoint["treeSize"] + 1
        self._uncheckpointed = max(0, self._size - first_unsigned)
        # Records found at start that no checkpoint signed (the last run ended without
        # its final checkpoint): the next checkpoint signs them as found, so the startup
        # record names them for an auditor (docs/audit.md, "startup").
        self.unsigned_at_open: tuple[int, int] | None = (
            (self._size - self._uncheckpointed, self._size - 1)
            if signer is not None and self._uncheckpointed > 0
            else None
        )
        # Until a checkpoint signs them or a startup record of this run names them (its
        # unsignedAtStart, which verify warns of), those found records are no record of
        # this run's: an exit note must not sign them (``_close_now``).
        self._found_unnamed = self.unsigned_at_open is not None
        self._last_checkpoint_time = time.monotonic()
        self._writable = True
        self._last_error: str | None = None
        self._writable_tried = 0.0
        # Whether the last write got past opening and checking the segment (a later
        # failure is one the idle retry, which writes nothing, does not meet), and whether
        # the trail failed so, until a write succeeds: the retry is not run meanwhile.
        self._segment_opened = False
        self._retry_blind = False
        # DIR/checkpoint behind the newest checkpoint record: the note it should hold,
        # why the last replace failed, when, and how many replaces failed in this run.
        # Reported apart from the segment writer's error, which the next batch clears.
        self._checkpoint_file_note: str | None = None
        self._checkpoint_file_error: str | None = None
        self._checkpoint_file_tried = 0.0
        self._checkpoint_file_failures = 0
        self._closed = False
        # Event-loop side, set by start().
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: _Batch | None = None  # being gathered, not yet written
        # Written, being synced by the helper process; its records are not yet durable.
        self._in_flight: _Batch | None = None
        self._in_flight_fd = -1
        self._in_flight_done: asyncio.Future[None] | None = None
        self._in_flight_since = 0.0
        self._syncer: SyncHelper | None = None
        self._use_helper = sync_helper
        self._helper_lost_at: float | None = None  # when the watch saw no helper running
        self._helper_restarts = 0  # helpers started since one last synced a batch
        # Whether appends arrived while the last helper sync was in flight: the sign that
        # handing batches over pays (see _hand_over).
        self._overlapped = False
        self._syncs = 0
        self._sync_listener: Callable[[float], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        identity: str,
        signer: Signer | None = None,
        origin: str | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
        sync_helper: bool = True,
    ) -> AuditLog:
        """Open (creating if needed) the trail in ``directory`` and recover its state.

        ``sync_helper``: once started on an event loop, sync batches in a helper process
        while the loop goes on (``sidecar.audit.syncer``); False syncs on the loop.
        Raises AuditCorrupt when the trail is damaged anywhere but the end of the newest
        segment that a crash leaves (a torn last line, or from the line holding its first
        NUL byte on: blocks a power loss left unwritten), and AuditUnavailable when it
        cannot be created, locked or repaired.
        """
        if segment_bytes <= 0 or checkpoint_every <= 0:
            raise ValueError("segment_bytes and checkpoint_every must be positive")
        if _CONTROL.search(identity):
            raise ValueError(
                f"identity {identity!r} contains a control character; set a TOLLGATE_IDENTITY "
                "(or POD_NAMESPACE, SERVICE_ACCOUNT, POD_NAME) without one"
            )
        if origin is None:
            origin = default_origin(identity)
            try:
                check_key_name(origin)
            except NoteError as exc:
                raise NoteError(
                    f"the checkpoint origin made from the identity {identity!r} is not valid "
                    f"({exc}); set a valid TOLLGATE_IDENTITY or --audit-origin"
                ) from exc
        check_key_name(origin)
        path = Path(directory)
        try:
            (path / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(
                path / LOCK_FILE,
                os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                0o640,
            )
        except OSError as exc:
            raise AuditUnavailable(f"cannot open audit directory {path}: {exc}") from exc
        lock_fd = _lock_directory(path, lock_fd)
        try:
            stored, vouched, stored_note = _load_checkpoint_file(path, signer)
            sizes = [stored.size] if stored else []
            state = rebuild(
                path, roots_at=sizes, trust_starts=vouched, lines_at=_checkpoint_lines(stored)
            )
            if stored is None and state.size > state.base:
                stored, stored_note = _without_checkpoint_file(state, path, signer)
                if stored is not None:
                    state = rebuild(
                        path, roots_at=[stored.size], lines_at=_checkpoint_lines(stored)
                    )
            last_checkpoint = _check_stored_checkpoint(stored, state, path)
            first_unsigned = _first_unsigned(stored, stored_note, state, path)
            broken_offset = _move_torn_tail(state.torn) if state.torn is not None else 0
            log = cls(
                path,
                state,
                lock_fd=lock_fd,
                signer=signer,
                origin=origin,
                segment_bytes=segment_bytes,
                checkpoint_every=checkpoint_every,
                checkpoint_interval=checkpoint_interval,
                last_checkpoint=last_checkpoint,
                sync_helper=sync_helper,
                first_unsigned=first_unsigned,
            )
            if state.torn is not None:
                torn = state.torn
                log.append_blocking(
                    "recovery",
                    {
                        "segment": torn.segment.name,
                        "droppedBytes": len(torn.data),
                        "brokenFile": _broken_name(torn),
                        "brokenOffset": broken_offset,
                    },
                )
        except BaseException:
            os.close(lock_fd)
            raise
        return log

    # ------------------------------------------------------------------ public API

    @property
    def writable(self) -> bool:
        """False after a failed write until a write succeeds again, and while a sync stalls."""
        return self._writable and self._stalled_for() is None

    def volume_problem(self) -> str | None:
        """Why the next write would fail, seen without writing: the volume mounted
        read-only or (nearly) full, of bytes or of inodes, or the directory gone. None
        when none of these.

        For /ready, which would otherwise learn of a read-only or full volume only from
        the first check that fails on it; an idle gate would keep reporting ready.
        """
        try:
            volume = os.statvfs(self._directory)
        except OSError as exc:
            return f"the audit directory cannot be examined: {exc.strerror or exc}"
        if volume.f_flag & os.ST_RDONLY:
            return "the audit volume is mounted read-only"
        free = volume.f_bavail * volume.f_frsize
        if free < VOLUME_MIN_FREE_BYTES:
            return f"the audit volume is full ({free:,} bytes free)"
        # f_files is 0 where a file system has no fixed number of inodes.
        if volume.f_files and volume.f_favail < VOLUME_MIN_FREE_INODES:
            return f"the audit volume has no inodes left to rotate ({volume.f_favail} free)"
        return None

    @property
    def last_error(self) -> str | None:
        """Why the trail cannot be written; else why ``DIR/checkpoint`` is stale; else None."""
        stalled = self._stalled_for()
        if stalled is not None:
            return f"the audit disk has not finished a sync for {stalled:.1f} s"
        return self._last_error or self._checkpoint_file_error

    @property
    def checkpoint_file_error(self) -> str | None:
        """Why ``DIR/checkpoint`` is older than the newest checkpoint record, while it is.

        Set by a failed replace, cleared only by one that succeeds (the next checkpoint,
        or the retry every ``checkpoint_interval``). The trail itself is intact and its
        checkpoint records signed, so this does not make the trail unwritable.
        """
        return self._checkpoint_file_error

    @property
    def checkpoint_file_failures(self) -> int:
        """Replaces of ``DIR/checkpoint`` that failed in this process."""
        return self._checkpoint_file_failures

    def _stalled_for(self) -> float | None:
        if self._in_flight is None:
            return None
        waited = time.monotonic() - self._in_flight_since
        return waited if waited > SYNC_STALL_SECONDS else None

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def origin(self) -> str:
        return self._origin

    def redact_text(self, text: str) -> str:
        """``text`` with every secret the trail would redact replaced by the same tags.

        For what the gate writes elsewhere (its log on stderr), so that nothing leaves
        the gate in clear that its trail would have redacted.
        """
        return self._redactor.redact_text(text)

    def redact(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with every secret replaced by the tags the trail writes for it (the
        same object when there is none): what approvers are shown is what the trail
        records."""
        return self._redactor.redact(body)

    def redact_quoting(self, text: str, quoted: Any) -> str:
        """``text``, which writes ``quoted`` out (a refused body and its parse), with the
        secrets ``quoted`` shows and those in ``text`` replaced by the trail's tags."""
        return self._redactor.redact_quoting(text, quoted)

    def keyed_digest(self, data: bytes) -> str:
        """Hex HMAC-SHA256 of ``data`` under the redaction key (see ``redaction_key``)."""
        return self._redactor.keyed_digest(data)

    @property
    def redaction_key_survives_restart(self) -> bool:
        """Whether the redaction key is derived from the signing key (else it is random
        per process, and tags and keyed digests cannot be recomputed after a restart)."""
        return self._signer is not None

    @property
    def syncs(self) -> int:
        """Batches made durable so far (one fdatasync each), by this process."""
        return self._syncs

    def on_sync(self, listener: Callable[[float], None] | None) -> None:
        """Call ``listener(seconds)`` after every sync of a batch, failed ones included.

        ``seconds`` is how long the batch waited for its fdatasync: the call itself when
        the loop syncs; from hand-over until the loop reads the answer when the helper
        does (under load that includes the loop's delay in getting to it). For a disk-latency
        histogram (``tollgate_audit_sync_duration_seconds``), like etcd's WAL fsync one.
        A listener that raises is logged and ignored: it never holds up a batch.
        """
        self._sync_listener = listener

    def status(self) -> dict[str, Any]:
        """State for ``GET /v1/status``: ``writable`` and ``lastError`` as ``/ready``
        reads them, the volume's problem included (a full volume fails every write
        although nothing has failed yet on an idle gate)."""
        writable = self.writable
        problem = self.volume_problem() if writable else None
        return {
            "dir": str(self._directory),
            "seq": self._size,
            "head": self._head.hex(),
            "lastCheckpoint": dict(self._last_checkpoint) if self._last_checkpoint else None,
            "writable": writable and problem is None,
            "lastError": problem or self.last_error,
            "checkpointFileError": self._checkpoint_file_error,
        }

    async def start(self) -> None:
        """Bind the log to the running loop and start the idle timer."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        if self._use_helper:
            self._syncer = SyncHelper.start(self._loop)
            self._tasks.append(self._loop.create_task(self._helper_watch()))
        self._tasks.append(self._loop.create_task(self._idle_timer()))

    async def append(self, type: str, body: dict[str, Any]) -> Appended:
        """Append one record; returns once it is written and fsynced.

        The record is encoded at once, onto the batch being gathered; the batch is
        written with one write and one fsync two loop iterations after its first
        record, so the appends of all requests that arrived together share one fsync.
        ``body`` is encoded before the first suspension, so the caller may reuse it.
        Raises AuditUnavailable when the trail cannot be written (nothing of the record
        stays on disk), ValueError/TypeError for a body that cannot be recorded.
        """
        if self._loop is None:
            await self.start()
        batch = self._gathering()
        self._stage(batch, type, body)  # raises for a body that cannot be recorded
        batch.callers += 1
        future: asyncio.Future[Appended] = self._loop_future()
        batch.futures.append(future)
        return await future

    async def append_all(self, records: Sequence[tuple[str, dict[str, Any]]]) -> list[Appended]:
        """Append ``records`` as one unit: consecutive, in one batch, all durable or none.

        For records that are only true together, such as an approval being used and the
        decision that uses it: a failed write fails them all (nothing of them stays on
        disk), and a body that cannot be recorded stages none of them. Raises like
        ``append``.
        """
        if self._loop is None:
            await self.start()
        batch = self._gathering()
        self._stage_all(batch, records)
        batch.callers += 1
        futures = [self._loop_future() for _ in records]
        batch.futures.extend(futures)
        # gather retrieves every outcome (no "exception never retrieved" for the rest)
        # and, if this caller is cancelled, cancels them all; the records stay written.
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        appended: list[Appended] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            appended.append(outcome)
        return appended

    def _gathering(self) -> _Batch:
        """The batch new appends are staged onto, started (and its flush scheduled) if need be."""
        if self._closing or self._closed:
            raise AuditUnavailable("audit log is closed")
        stalled = self._stalled_for()
        if stalled is not None:
            raise AuditUnavailable(f"audit trail cannot be written: {self.last_error}")
        assert self._loop is not None
        batch = self._pending
        if batch is None:
            # On top of the batch being synced, if there is one: it is durable before
            # this one is written, or this one fails with it.
            base = self._in_flight
            if base is None:
                batch = self._new_batch(self._size, self._head, self._frontier)
            else:
                batch = self._new_batch(base.size, base.head, base.frontier)
            self._pending = batch
            # Written two loop iterations on: callbacks already due run first, and so do
            # the requests whose bytes were read meanwhile (their tasks start in the next
            # iteration). Under load that doubles the records per fsync; alone, a check
            # waits one more iteration, microseconds.
            self._loop.call_soon(self._loop.call_soon, self._flush)
        return batch

    def _loop_future(self) -> asyncio.Future[Appended]:
        assert self._loop is not None
        return self._loop.create_future()

    def append_blocking(self, type: str, body: dict[str, Any]) -> Appended:
        """``append`` for callers without an event loop (CLI, tests, startup).

        Not once the event-loop side has started: a record written around a batch that
        is being gathered would break the chain that batch was encoded on.
        """
        if self._loop is not None:
            raise RuntimeError("the log was started on an event loop; use await append()")
        if self._closed:
            raise AuditUnavailable("audit log is closed")
        (result,) = self._commit([(type, body)])
        if isinstance(result, BaseException):
            raise result
        return result

    async def drain(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> bool:
        """Wait until no sync is in flight, for at most ``timeout`` seconds; whether none is.

        A helper that has not answered for ``SYNC_STALL_SECONDS`` is given up on here as
        well as by the stall watch (``_take_over_stalled_sync``), so a stopped helper
        costs a shutdown that much, not forever. The records of the batch in flight are
        answered only once their sync succeeded, whoever ran it.
        """
        deadline = time.monotonic() + timeout
        while (done := self._in_flight_done) is not None:
            self._take_over_stalled_sync()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), min(remaining, _STALL_WATCH_SECONDS))
        return True

    async def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Write pending appends and the final checkpoint, release the files.

        Waits at most ``timeout`` seconds for the sync in flight (``drain``). If it has
        not ended by then, the disk is stuck: the appends waiting on it and those
        gathered after it fail (AuditUnavailable: never answered as written), no final
        checkpoint is written, and the files are released, as after a crash.
        """
        if self._closed:
            return
        self._closing = True
        if self._loop is not None:
            drained = await self.drain(timeout)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # The sync taken over from the helper may have ended while the tasks were
            # cancelled: only a sync still in flight is given up on.
            if not drained and self._in_flight is not None:
                self._give_up_in_flight(timeout)
                return
            if self._syncer is not None:
                self._syncer.stop()
                self._syncer = None
            self._flush()
        self._close_now()

    def _give_up_in_flight(self, timeout: float) -> None:
        """Close without the sync in flight: it did not end within ``timeout`` s."""
        batch = self._in_flight
        if batch is None:
            return
        failure = AuditUnavailable(
            f"audit trail cannot be written: the audit disk did not finish a sync within "
            f"{timeout:g} s of shutting down"
        )
        pending, self._pending = self._pending, None
        if pending is not None:
            self._settle(pending, [failure] * len(pending.futures))
        self._settle(batch, [failure] * len(batch.futures))
        syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.abandon()
        _logger.error(
            "audit sync still not finished after %g s, closing without it: records %d to %d "
            "may or may not be on disk and none of them was answered; no final checkpoint "
            "is written (the next start reports what it finds, as after a crash)",
            timeout,
            self._size,
            batch.size - 1,
        )
        with self._lock:
            self._closed = True
            os.close(self._lock_fd)
        # The descriptor stays open: a sync may still be running on it.

    def close_blocking(self) -> None:
        """``close`` for callers that never started the event-loop side."""
        if self._loop is not None:
            raise RuntimeError("the log was started on an event loop; use await close()")
        self._close_now()

    # ------------------------------------------------------------------ event-loop side

    def _flush(self) -> None:
        """Write the batch being gathered; sync it here or hand the sync to the helper.

        While a batch is being synced by the helper, the next one keeps gathering and is
        written two loop iterations after that sync ends (``_synced``), so under load one
        batch is nearly always in the disk's hands and the loop never waits for it. A
        batch written while nothing else is going on is synced right here: handing it
        over would only add two process wake-ups to its check's answer (``_hand_over``).
        """
        if self._in_flight is not None:
            return  # written as soon as the sync in flight ends
        batch, self._pending = self._pending, None
        if batch is None:
            return
        try:
            results = self._write_batch(batch)
        except Exception as exc:  # a bug, not the disk: fail the checks, never leave them waiting
            results = self._writer_failed(batch, exc)
        if results is not None:
            self._settle(batch, results)

    def _hand_over(self, batch: _Batch) -> bool:
        """Whether to sync ``batch`` in the helper rather than on the loop.

        Only when other work is likely to come while it syncs: the batch holds several
        appends, or appends arrived during the last handed-over sync. A lone check on an
        idle gate is answered sooner by a sync on the loop.
        """
        syncer = self._syncer
        if syncer is None or not syncer.alive or self._closing:
            return False
        return batch.callers > 1 or self._overlapped

    async def _helper_watch(self) -> None:
        while True:
            await asyncio.sleep(_STALL_WATCH_SECONDS)
            self._take_over_stalled_sync()
            self._restart_lost_helper()

    def _restart_lost_helper(self) -> None:
        """Start a new sync helper once the one before has been gone for
        ``HELPER_RESTART_SECONDS`` (doubled for each restart that did not last).

        Meanwhile every batch is synced on the loop: correct, but each sync blocks the
        loop, so a helper lost once (the OOM killer, a stray ``kill``, a stall) would
        otherwise slow every check for the rest of the pod's life. Not while a sync is
        in flight: one taken over from a stalled helper runs until the disk ends it.
        """
        syncer = self._syncer
        if (syncer is not None and syncer.alive) or self._closing or self._in_flight is not None:
            return
        now = time.monotonic()
        if self._helper_lost_at is None:
            self._helper_lost_at = now
            return
        without = now - self._helper_lost_at
        delay = HELPER_RESTART_SECONDS * 2 ** min(self._helper_restarts, 16)
        if without < min(delay, HELPER_RESTART_MAX_SECONDS):
            return
        if syncer is not None:
            syncer.stop()  # one that died while idle: close our end of its socket
        assert self._loop is not None
        self._syncer = SyncHelper.start(self._loop)
        self._helper_restarts += 1
        if self._syncer is None:
            self._helper_lost_at = now
            _logger.warning("the sync helper could not be started again; the gate syncs itself")
            return
        self._helper_lost_at = None
        _logger.warning(
            "the sync helper was started again (pid %s) after %.0f s without one",
            self._syncer.pid,
            without,
        )

    def _take_over_stalled_sync(self) -> None:
        """Give up on a helper that has not answered for ``SYNC_STALL_SECONDS``.

        A helper that is stopped (SIGSTOP) or stuck would otherwise hold the trail
        unwritable for as long as it stays so, although the gate holds the descriptor
        and can sync the batch itself, as when the helper dies. The helper is killed,
        the batch is synced in a thread (a disk that is really stuck then blocks that
        thread, not the loop: the trail keeps reporting the stall, and new appends keep
        failing at once, until the sync ends), and later batches are synced on the loop
        until a new helper starts. Its records are answered only after that sync, as
        always.
        """
        syncer = self._syncer
        if syncer is None or self._in_flight is None or self._stalled_for() is None:
            return
        self._syncer = None
        _logger.warning(
            "the sync helper (pid %s) has not answered for %.1f s: stopping it; the gate "
            "syncs the audit trail itself until a new helper starts",
            syncer.pid,
            time.monotonic() - self._in_flight_since,
        )
        syncer.abandon()
        loop, batch, fd = self._loop, self._in_flight, self._in_flight_fd
        assert loop is not None

        def sync_aside() -> None:
            error = _fdatasync(fd)
            with contextlib.suppress(RuntimeError):  # the loop closed: the gate gave up
                loop.call_soon_threadsafe(self._synced_aside, batch, error)

        threading.Thread(target=sync_aside, name="tollgate-audit-sync", daemon=True).start()

    def _synced_aside(self, batch: _Batch, error: BaseException | None) -> None:
        if self._in_flight is batch and not self._closed:  # not given up on at close
            self._synced(error)

    def _synced(self, error: BaseException | None) -> None:
        """The helper's answer for the batch in flight: settle it, write the next one."""
        batch, fd, done = self._in_flight, self._in_flight_fd, self._in_flight_done
        assert batch is not None and done is not None
        waited = time.monotonic() - self._in_flight_since
        self._overlapped = self._pending is not None
        try:
            if isinstance(error, HelperGone):
                # The helper died with the sync in flight: we still hold the descriptor,
                # so sync here; every batch is synced on the loop until a new helper
                # starts (_restart_lost_helper).
                self._syncer = None
                error = _fdatasync(fd)
                waited = time.monotonic() - self._in_flight_since
            elif error is None and self._syncer is not None:
                self._helper_restarts = 0  # the helper synced: a next loss waits the least
            with self._lock:
                results = self._finish_sealed(batch, fd, error)
        except Exception as exc:  # a bug, not the disk
            results = self._writer_failed(batch, exc)
        self._in_flight, self._in_flight_fd, self._in_flight_done = None, -1, None
        self._synced_after(waited)
        done.set_result(None)
        failed = any(isinstance(r, AuditUnavailable) for r in results)
        pending = self._pending
        if failed and pending is not None:
            # Encoded on top of the records that did not become durable: it cannot be
            # written either. Its appends fail now; the next ones start afresh.
            self._pending = None
            self._settle(pending, [_not_written(results)] * len(pending.futures))
        self._settle(batch, results)
        if self._pending is not None:
            # Written two loop iterations on, as a new batch is (``_gathering``): the
            # checks whose requests were read while this one was synced start meanwhile
            # and join it. At concurrency 16 that made batches larger and the loop's CPU
            # per check about 10 µs smaller (docs/performance.md, "How the hot path is
            # built").
            assert self._loop is not None
            self._loop.call_soon(self._loop.call_soon, self._flush)

    def _writer_failed(self, batch: _Batch, exc: Exception) -> list[Appended | BaseException]:
        self._unwritable(f"audit writer failed: {exc!r}")
        failure = AuditUnavailable(f"audit trail cannot be written: {self._last_error}")
        return [failure] * len(batch.futures)

    def _unwritable(self, error: str) -> None:
        # Logged once per outage: every check meanwhile is answered 503 and counted.
        if self._writable:
            _logger.error("audit trail cannot be written, checks are denied (503): %s", error)
        self._writable = False
        self._last_error = error

    @staticmethod
    def _settle(batch: _Batch, results: list[Appended | BaseException]) -> None:
        for future, result in zip(batch.futures, results, strict=True):
            if future.done():
                continue  # the caller was cancelled; the record is written all the same
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _idle_timer(self) -> None:
        """What is due while no batch comes: a checkpoint by time, a retry of
        ``DIR/checkpoint`` (both with a signing key only), and with or without one the
        retry of a failed trail, so ``/ready`` comes back without waiting for a check."""
        timed_checkpoints = self._signer is not None and self._checkpoint_interval > 0
        period = WRITABLE_RETRY_SECONDS
        if timed_checkpoints:
            period = max(0.01, min(period, self._checkpoint_interval / 4))
        while True:
            await asyncio.sleep(period)
            if self._pending is not None or self._in_flight is not None or self._closing:
                continue
            if timed_checkpoints and self._checkpoint_due_by_time():
                self._commit([], checkpoint_reason="interval")
            elif timed_checkpoints and self._checkpoint_file_retry_due():
                # Only when idle: the replace fsyncs on the loop, and with a batch in
                # flight the disk may be the one stalling, which must not freeze the loop.
                with self._lock:
                    if not self._closed:
                        self._write_checkpoint_file()
            elif self._writable_retry_due():
                self._try_writable()

    def _writable_retry_due(self) -> bool:
        return (
            not self._writable
            and not self._retry_blind
            and time.monotonic() - self._writable_tried >= WRITABLE_RETRY_SECONDS
        )

    def _try_writable(self) -> None:
        """Try a failed trail again without a record: the segment opened for appending
        and checked as a batch's write checks it (one changed outside Tollgate stays
        refused), our own failed write's leftovers truncated (synced by the next batch:
        a sync here would run on the loop, which a hung disk must not freeze); a segment
        not created yet, its directory. Nothing is added, so a full volume would pass:
        while ``volume_problem`` reports one, the trail stays unwritable, that problem
        its error (no "writable again" between two checks refused for it). Nor does it
        meet a fault past the opening (a write's EFBIG, a sync's EIO): after one, on a
        volume that looks writable, it is not run until a write succeeds
        (``_retry_blind``); checks still write, and the first that succeeds ends it."""
        with self._lock:
            if self._closed or self._writable:
                return
            self._writable_tried = time.monotonic()
            dirty = self._dirty_tail
            try:
                if self._segment_exists:
                    os.close(self._write_unsynced(bytearray()))
                    # Nothing was written: only a tail our own failed write left is ours
                    # to cut at the next write, not bytes appended since by someone else.
                    self._dirty_tail = dirty
                elif not os.access(self._segments_dir, os.W_OK | os.X_OK):
                    raise PermissionError(f"{self._segments_dir} is not writable")
            except (OSError, AuditUnavailable) as exc:
                self._unwritable(f"{self._segment.path}: {_describe(exc)}")
                return
            problem = self.volume_problem()
            if problem is not None:
                self._last_error = problem  # a write would fail again; a check still tries
                return
            _logger.warning("audit trail is writable again (was: %s)", self._last_error)
            self._writable = True
            self._last_error = None

    def _checkpoint_file_retry_due(self) -> bool:
        """A failed ``DIR/checkpoint`` replace is retried every ``checkpoint_interval``
        even when no checkpoint is due (an idle gate), so the file catches up, and the
        error clears, as soon as the volume takes it."""
        return (
            self._checkpoint_file_note is not None
            and time.monotonic() - self._checkpoint_file_tried >= self._checkpoint_interval
        )

    def _checkpoint_due_by_time(self) -> bool:
        return (
            self._uncheckpointed > 0
            and time.monotonic() - self._last_checkpoint_time >= self._checkpoint_interval
        )

    # ------------------------------------------------------------------ writer side

    def _close_now(self) -> None:
        with self._lock:
            if self._closed:
                return
        if self._signer is not None and self._uncheckpointed > 0:
            self._commit([], checkpoint_reason="shutdown")
            if self._uncheckpointed > 0:
                # Said at the end, not only when the outage began: the last records stay
                # unsigned, and an operator comparing checkpoints needs to know why.
                _logger.error(
                    "final checkpoint not written, records %d to %d are not signed: %s",
                    self._size - self._uncheckpointed,
                    self._size - 1,
                    self._last_error,
                )
                if self._found_unnamed:
                    assert self.unsigned_at_open is not None
                    _logger.error(
                        "no checkpoint is printed in its place: records %d to %d were "
                        "found unsigned at start, and no record of this run names them "
                        "(its startup record was not written), so a note would vouch for "
                        "them as they are now, whoever wrote them; the next start names "
                        "them in its unsignedAtStart (see docs/audit.md)",
                        *self.unsigned_at_open,
                    )
                else:
                    self._print_head_off_the_trail()
        with self._lock:
            if self._checkpoint_file_note is not None:
                self._write_checkpoint_file()  # a last try
                if self._checkpoint_file_error is not None:
                    _logger.error(
                        "%s at exit: the next start compares the trail with an older "
                        "checkpoint (docs/audit.md)",
                        self._checkpoint_file_error,
                    )
            self._closed = True
            os.close(self._lock_fd)

    def _encode(self, seq: int, type_: str, body: dict[str, Any], prev: bytes) -> bytes:
        if type_ not in RECORD_TYPES:
            raise ValueError(f"unknown audit record type {type_!r}")
        if not isinstance(body, dict):
            raise TypeError("an audit record body must be a dict")
        if "seq" in body or "ts" in body or "type" in body or "prev" in body:
            clash = sorted(ENVELOPE_KEYS.intersection(body))
            raise ValueError(f"record body must not set {clash}")
        record = {**body, "seq": seq, "ts": format_ts(), "type": type_, "prev": prev.hex()}
        line = canonical_bytes(record)
        if self._redactor.may_hold_secret(line):
            redacted = self._redactor.redact(body)
            if redacted is not body:
                redacted = dict(redacted)
                redacted.update(seq=seq, ts=record["ts"], type=type_, prev=record["prev"])
                line = canonical_bytes(redacted)
        return line

    def _new_batch(self, size: int, head: bytes, frontier: Frontier) -> _Batch:
        return _Batch(size, head, frontier.copy(), size, head)

    def _stage(self, batch: _Batch, type_: str, body: dict[str, Any]) -> None:
        """Encode one record onto ``batch``; raises for a body that cannot be recorded."""
        line = self._encode(batch.size, type_, body, batch.head)
        self._add(batch, line, sha256(b"\x00" + line).digest())
        if type_ == "shutdown":
            batch.final = True
        batch.names_found |= _names_found(type_, body)

    def _stage_all(self, batch: _Batch, items: Sequence[_BatchItem]) -> None:
        """Encode ``items`` onto ``batch`` in order, all or none (a bad body raises first)."""
        lines: list[tuple[bytes, bytes]] = []
        seq, head = batch.size, batch.head
        for type_, body in items:
            line = self._encode(seq, type_, body, head)
            head = sha256(b"\x00" + line).digest()
            lines.append((line, head))
            seq += 1
        for line, head in lines:
            self._add(batch, line, head)
        batch.names_found |= any(_names_found(type_, body) for type_, body in items)

    @staticmethod
    def _add(batch: _Batch, line: bytes, head: bytes) -> None:
        batch.frontier.append(head)
        batch.buffer += line
        batch.buffer += b"\n"
        batch.results.append(Appended(batch.size, head.hex()))
        batch.size += 1
        batch.head = head
        batch.added += 1

    def _staged(self, items: list[_BatchItem]) -> _Batch:
        """``items`` encoded on the durable state; bodies that cannot be recorded fail."""
        batch = self._new_batch(self._size, self._head, self._frontier)
        for type_, body in items:
            try:
                self._stage(batch, type_, body)
            except (TypeError, ValueError, RecursionError) as exc:
                batch.results.append(exc)
        return batch

    def _seal(self, batch: _Batch) -> None:
        """Decide rotation and add the checkpoint record when due (on the durable state)."""
        batch.rotate = self._segment_size + len(batch.buffer) >= self._segment_bytes
        if self._signer is None:
            return
        reason = batch.reason or self._checkpoint_reason(batch.added, batch.rotate, batch.final)
        if reason is not None and (self._uncheckpointed + batch.added > 0):
            batch.checkpoint, line = self._checkpoint_record(
                batch.size, batch.frontier, batch.head, reason
            )
            batch.head = sha256(b"\x00" + line).digest()
            batch.frontier.append(batch.head)
            batch.buffer += line
            batch.buffer += b"\n"
            batch.size += 1

    def _commit(
        self, items: list[_BatchItem], checkpoint_reason: str | None = None
    ) -> list[Appended | BaseException]:
        """Write ``items`` (and a checkpoint when due) with one write and one fsync."""
        with self._lock:
            if self._closed:
                return [AuditUnavailable("audit log is closed")] * len(items)
            batch = self._staged(items)
            batch.reason = checkpoint_reason
            self._seal(batch)
            return self._write_sealed(batch)

    def _write_batch(self, batch: _Batch) -> list[Appended | BaseException] | None:
        """Seal and write a batch staged by ``append``; None when its sync was handed over."""
        with self._lock:
            if self._closed:
                return [AuditUnavailable("audit log is closed")] * len(batch.results)
            # Only the loop writes once it has started, and a batch is written only after
            # the one before it is durable, so it is always encoded on the durable state.
            if (batch.base_size, batch.base_head) != (self._size, self._head):
                raise RuntimeError("a batch was encoded on a trail state that moved on")
            self._seal(batch)
            if not batch.buffer or not self._hand_over(batch):
                return self._write_sealed(batch)
            try:
                fd = self._write_unsynced(batch.buffer)
            except (OSError, AuditUnavailable) as exc:
                return self._failed(batch, exc)
        assert self._syncer is not None and self._loop is not None
        self._in_flight, self._in_flight_fd = batch, fd
        self._in_flight_done = self._loop.create_future()
        self._in_flight_since = time.monotonic()
        try:
            self._syncer.sync(fd, self._synced)
        except HelperGone as exc:
            self._synced(exc)
        return None

    def _write_sealed(self, batch: _Batch) -> list[Appended | BaseException]:
        """Write and fsync ``batch``, then advance the durable state (under _lock)."""
        if not batch.buffer:
            return batch.results
        try:
            fd = self._write_unsynced(batch.buffer)
        except (OSError, AuditUnavailable) as exc:
            return self._failed(batch, exc)
        started = time.monotonic()
        error = _fdatasync(fd)
        self._synced_after(time.monotonic() - started)
        return self._finish_sealed(batch, fd, error)

    def _synced_after(self, seconds: float) -> None:
        listener = self._sync_listener
        if listener is None:
            return
        try:
            listener(seconds)
        except Exception:  # an observer's bug must not leave a batch unsettled
            _logger.exception("audit sync listener failed")

    def _finish_sealed(
        self, batch: _Batch, fd: int, sync_error: BaseException | None
    ) -> list[Appended | BaseException]:
        """After the sync of a written batch: advance the durable state, or undo (under _lock)."""
        try:
            self._finish_write(fd, sync_error)
        except (OSError, AuditUnavailable) as exc:
            return self._failed(batch, exc)
        self._syncs += 1
        size = batch.size
        self._size, self._head, self._frontier = size, batch.head, batch.frontier
        self._segment_size += len(batch.buffer)
        if not self._writable:
            _logger.warning("audit trail is writable again (was: %s)", self._last_error)
        self._writable = True
        self._last_error = None
        self._retry_blind = False
        if batch.checkpoint is not None or batch.names_found:
            self._found_unnamed = False
        if batch.checkpoint is not None:
            self._uncheckpointed = 0
            self._published(batch.checkpoint, size - 1)
        else:
            self._uncheckpointed += batch.added
        if batch.rotate:
            self._rotate()
        return batch.results

    def _failed(
        self, batch: _Batch, exc: OSError | AuditUnavailable
    ) -> list[Appended | BaseException]:
        self._unwritable(f"{self._segment.path}: {_describe(exc)}")
        if self._segment_opened and not self._retry_blind and self.volume_problem() is None:
            # Met writing or syncing a segment that opened fine, on a volume that looks
            # writable (EFBIG, a sync's EIO, a quota statvfs does not show): the idle
            # retry would call it gone every second while every check still failed.
            self._retry_blind = True
            _logger.warning(
                "the audit trail's idle retry, which writes nothing, cannot see this "
                "fault: the trail stays unwritable (503) until a check's write succeeds"
            )
        failure = AuditUnavailable(f"audit trail cannot be written: {self._last_error}")
        return [failure if isinstance(r, Appended) else r for r in batch.results]

    def _checkpoint_reason(self, added: int, rotate: bool, final: bool = False) -> str | None:
        if rotate:
            return "rotation"
        if final:
            # The shutdown record's batch takes the final checkpoint: left to the
            # interval, a gate idle that long labelled it "interval" (red-team rt25).
            return "shutdown"
        if self._uncheckpointed + added >= self._checkpoint_every:
            return "count"
        if added and time.monotonic() - self._last_checkpoint_time >= self._checkpoint_interval:
            return "interval"
        return None

    def _checkpoint_record(
        self, size: int, frontier: Frontier, head: bytes, reason: str
    ) -> tuple[tuple[Checkpoint, str], bytes]:
        assert self._signer is not None
        checkpoint = Checkpoint(self._origin, size, frontier.root())
        note = self._signer.sign(checkpoint.text(), self._origin)
        body = {
            "origin": self._origin,
            "treeSize": size,
            "rootHash": checkpoint.root_b64,
            "note": note,
            "publicKey": self._public_key_b64,
            "reason": reason,
        }
        record = dict(body, seq=size, ts=format_ts(), type="checkpoint", prev=head.hex())
        return (checkpoint, note), canonical_bytes(record)

    def _write_unsynced(self, buffer: bytearray) -> int:
        """Append ``buffer`` to the current segment, not yet synced; returns the open file.

        A failed write is undone (the segment truncated back); a segment whose size is not
        what this process left is refused untouched. The caller syncs the file and hands
        it to ``_finish_write``.
        """
        path = self._segment.path
        expected = self._segment_size
        self._segment_opened = False
        flags = os.O_APPEND
        if not self._segment_exists:
            flags |= os.O_CREAT
        # Opened per batch, not kept open: a volume remounted read-only, or a segment
        # deleted or replaced behind our back, is noticed here instead of being written
        # into an orphaned inode.
        if not self._segment_exists and self._segment.first_seq > 0:
            # Written before the segment exists, so every later segment has one.
            start = SegmentStart(self._size, self._head, self._frontier.nodes)
            replace_file(start_path(path), start.encode())
        fd, stat = opened_regular_for_writing(path, flags)
        try:
            if self._segment_file is None:
                self._segment_file = (stat.st_dev, stat.st_ino)
            elif (stat.st_dev, stat.st_ino) != self._segment_file:
                raise AuditUnavailable(
                    f"segment {path.name} is not the file written so far: replaced outside Tollgate"
                )
            actual = stat.st_size
            if actual != expected:
                if actual > expected and (self._dirty_tail or not self._segment_exists):
                    os.ftruncate(fd, expected)  # leftovers of our own failed write
                else:
                    # Not ours to repair: the file is left exactly as found, for whoever
                    # investigates, and every write is refused until it is put right.
                    raise AuditUnavailable(
                        f"segment is {actual} bytes, expected {expected}: changed outside Tollgate"
                    )
        except BaseException:
            os.close(fd)
            raise
        self._segment_opened = True
        try:
            self._dirty_tail = True
            view = memoryview(buffer)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except BaseException:
            self._undo(fd)
            os.close(fd)
            raise
        return fd

    def _finish_write(self, fd: int, sync_error: BaseException | None) -> None:
        """Complete a ``_write_unsynced`` whose file was synced (or failed to); closes it.

        fdatasync is what the caller ran: the records and the file size, all that
        reading them back needs; only the modification time is left to the next flush.
        """
        try:
            if sync_error is not None:
                raise sync_error
            if not self._segment_exists:
                fsync_directory(self._segments_dir)
                self._segment_exists = True
            self._dirty_tail = False
        except BaseException:
            self._undo(fd)
            raise
        finally:
            os.close(fd)

    def _undo(self, fd: int) -> None:
        """Truncate the segment back to its durable size (best effort)."""
        try:
            os.ftruncate(fd, self._segment_size)
            os.fdatasync(fd)
            self._dirty_tail = False
        except OSError:
            pass  # still dirty: the next write truncates before appending

    def _rotate(self) -> None:
        self._segment = Segment(self._size, self._segments_dir / segment_name(self._size))
        self._segment_size = 0
        self._segment_exists = False
        self._segment_file = None
        self._dirty_tail = False

    def _print_head_off_the_trail(self) -> None:
        """Sign the head the answers were given from and print it on stdout only.

        Its checkpoint record could not be written, and the records after the last one
        that was may have gone with the failure (a segment deleted behind the gate's
        back). Outside the volume, the note still vouches for every record answered: a
        trail later found shorter, its seqs given to other records, fails
        ``audit verify --checkpoint`` with it (RFC 6962: a signed tree head is never
        taken back). Only printed over records this run wrote, or found unsigned and
        named in its startup record (``_found_unnamed``): a note vouches for what its
        signer wrote, and verify takes it as signing what the next start found.
        """
        assert self._signer is not None
        checkpoint = Checkpoint(self._origin, self._size, self._frontier.root())
        note = self._signer.sign(checkpoint.text(), self._origin)
        _print_checkpoint(checkpoint, note, None)

    def _published(self, signed: tuple[Checkpoint, str], record_seq: int) -> None:
        """After the checkpoint record is durable: stdout copy, then DIR/checkpoint."""
        checkpoint, note = signed
        self._last_checkpoint_time = time.monotonic()
        self._last_checkpoint = {
            "origin": checkpoint.origin,
            "treeSize": checkpoint.size,
            "rootHash": checkpoint.root_b64,
            "seq": record_seq,
        }
        _print_checkpoint(checkpoint, note, record_seq)
        self._checkpoint_file_note = note
        self._write_checkpoint_file()

    def _write_checkpoint_file(self) -> None:
        """Replace ``DIR/checkpoint`` with the newest checkpoint's note (under _lock).

        A failure leaves the trail durable and its checkpoint record signed (it is also
        on stdout), so the trail stays writable; but the file is what the next start
        compares the trail with, so the failure is logged, counted
        (``tollgate_audit_checkpoint_file_failures_total``) and kept in the status
        until a replace succeeds.
        """
        note = self._checkpoint_file_note
        if note is None:
            return
        path = self._directory / CHECKPOINT_FILE
        self._checkpoint_file_tried = time.monotonic()
        try:
            replace_file(path, note.encode("utf-8"))
        except OSError as exc:
            self._checkpoint_file_failures += 1
            error = f"{path} cannot be replaced, it is older than the trail: {_describe(exc)}"
            if error != self._checkpoint_file_error:
                _logger.warning(
                    "%s; the checkpoint records in the trail still sign it, retrying every "
                    "%g s (see docs/audit.md)",
                    error,
                    self._checkpoint_interval,
                )
            self._checkpoint_file_error = error
            return
        self._checkpoint_file_note = None
        if self._checkpoint_file_error is not None:
            _logger.warning("%s is up to date again (was: %s)", path, self._checkpoint_file_error)
            self._checkpoint_file_error = None


# ---------------------------------------------------------------------- helpers


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None  # gone already: the first write's open finds out
    return (stat.st_dev, stat.st_ino)


def _fdatasync(fd: int) -> OSError | None:
    try:
        os.fdatasync(fd)
    except OSError as exc:
        return exc
    return None


def _not_written(results: list[Appended | BaseException]) -> AuditUnavailable:
    """The failure of a batch gathered on top of one that failed: the same reason."""
    for result in results:
        if isinstance(result, AuditUnavailable):
            return result
    return AuditUnavailable("audit trail cannot be written")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _names_found(type_: str, body: dict[str, Any]) -> bool:
    """Whether a record names the records its start found unsigned (``unsignedAtStart``)."""
    return type_ == "startup" and "unsignedAtStart" in body


def _print_checkpoint(checkpoint: Checkpoint, note: str, record_seq: int | None) -> None:
    """The stdout copy of a checkpoint; ``record_seq`` None for one no record carries."""
    line = canonical_bytes(
        {
            "ts": format_ts(),
            "level": "info",
            "logger": "tollgate.audit",
            "msg": "audit checkpoint",
            "origin": checkpoint.origin,
            "treeSize": checkpoint.size,
            "rootHash": checkpoint.root_b64,
            "seq": record_seq,
            "note": note,
        }
    ).decode("utf-8")
    stream = sys.stdout
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not fail the audit write


def _lock_directory(directory: Path, lock_fd: int) -> int:
    """Take ``DIR/lock`` exclusively, without waiting; the descriptor that holds it.

    Held on a read-only descriptor where the file system allows it: a descriptor open
    for writing would keep the volume from being remounted read-only under the gate.
    Over NFS, Linux takes flock() as a POSIX lock on the whole file, and an exclusive
    one needs a descriptor open for writing (EBADF otherwise, flock(2)): the lock is
    then taken on one. Raises AuditUnavailable when another process holds it, or when
    the file system takes no locks.
    """
    path = directory / LOCK_FILE
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            os.close(lock_fd)
            lock_fd = -1
            lock_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        _close_quietly(lock_fd)
        raise AuditUnavailable(f"{directory} is in use by another Tollgate process") from exc
    except OSError as exc:
        _close_quietly(lock_fd)
        raise AuditUnavailable(
            f"cannot lock {path}: {exc.strerror or exc}; the audit volume must support file "
            "locks (on NFS, the server's lock service), which keep a second gate from "
            "writing the same trail"
        ) from exc
    return lock_fd


def _close_quietly(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_checkpoint_file(
    directory: Path, signer: Signer | None = None
) -> tuple[Checkpoint | None, bool]:
    """``DIR/checkpoint``, and whether it vouches for the trail (``_load_checkpoint_file``)."""
    checkpoint, vouched, _ = _load_checkpoint_file(directory, signer)
    return checkpoint, vouched


def _load_checkpoint_file(
    directory: Path, signer: Signer | None = None
) -> tuple[Checkpoint | None, bool, str | None]:
    """``DIR/checkpoint``, whether it vouches for the trail (signed by this gate's key),
    and the signed note it holds.

    A vouching checkpoint lets the start grow the Merkle tree from the ``.start``
    frontier of the segment its size falls in (its root, compared with the records,
    proves that frontier). One the gate cannot authenticate (no signing key, or another
    key: a rotation, or someone who can write the volume and forged both) vouches for
    nothing: the tree is grown from the oldest segment kept, and its root is still
    compared with the records. One this gate's key signed that does not verify was
    changed after signing, and refuses the start.
    """
    path = directory / CHECKPOINT_FILE
    try:
        data = read_small_file(path, CHECKPOINT_MAX_BYTES)
    except NotASmallFile as exc:
        raise AuditCorrupt(f"{path} is not a valid signed checkpoint: {exc}") from exc
    if data is None:
        return None, False, None
    try:
        note = parse_note(data)
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        raise AuditCorrupt(f"{path} is not a valid signed checkpoint: {exc}") from exc
    text = data.decode("utf-8")  # parse_note took it as UTF-8
    if signer is None:
        return checkpoint, False, text
    return checkpoint, _signed_by_this_gate(path, note, checkpoint, signer), text


def _signed_by_this_gate(
    path: Path, note: SignedNote, checkpoint: Checkpoint, signer: Signer
) -> bool:
    """Whether this gate's key signed ``DIR/checkpoint`` under its origin; refuse a
    signature by that key that does not verify."""
    try:
        ours = Verifier(checkpoint.origin, signer.public_key)
    except NoteError as exc:  # an origin no gate signs under
        raise AuditCorrupt(f"{path} is not a valid signed checkpoint: {exc}") from exc
    try:
        verify_note(note, [ours])
        return True
    except NoteError:
        pass
    our_id = ours.key_id.hex()
    if any((s.name, s.key_id) == (ours.name, ours.key_id) for s in note.signatures):
        raise AuditCorrupt(
            f"{path}: its signature by this gate's key ({ours.name} {our_id}) does not "
            "verify: the checkpoint was changed after it was signed, and cannot vouch for "
            "the trail; investigate with tollgate audit verify"
        )
    names = ", ".join(f"{s.name} {s.key_id.hex()}" for s in note.signatures)
    if any(s.key_id == signer.key_id(s.name) for s in note.signatures):
        raise AuditCorrupt(
            f"{path}: signed by this gate's key under the name {names}, not under its "
            f"origin {checkpoint.origin!r}, as the gate signs: it was not written by a gate; "
            "investigate with tollgate audit verify"
        )
    _logger.warning(
        "%s is signed by key %s, not by this gate's signing key (%s %s): after a key "
        "rotation this is expected. It vouches for nothing: the Merkle tree is rebuilt "
        "from the oldest segment kept (a slower start), and its root still has to match "
        "the records. The next checkpoint is signed with this gate's key; verify the trail "
        "with every key it was signed with (tollgate audit verify --public-key ...)",
        path,
        names,
        ours.name,
        our_id,
    )
    return False


def _check_stored_checkpoint(
    stored: Checkpoint | None, state: TrailState, directory: Path
) -> dict[str, Any] | None:
    """A trail shorter than its checkpoint, or with another root, was cut or rewritten."""
    if stored is None:
        return None
    where = directory / CHECKPOINT_FILE
    summary = {
        "origin": stored.origin,
        "treeSize": stored.size,
        "rootHash": stored.root_b64,
        "seq": stored.size,
    }
    if stored.size < state.base:
        return summary  # it covers only pruned records, which are gone: nothing to compare
    if stored.size > state.size:
        # Signed records are synced: a torn end or a hole among them is not a crash's.
        torn = state.torn
        before = (
            "" if torn is None else f" before the torn end of {SEGMENTS_DIR}/{torn.segment.name}"
        )
        raise AuditCorrupt(
            f"{where} signs {stored.size} records but the trail holds {state.size}{before}: "
            "records were removed"
        )
    if state.roots.get(stored.size) != stored.root:
        raise AuditCorrupt(
            f"{where} root does not match the first {stored.size} records: the trail was rewritten"
        )
    return summary


def _without_checkpoint_file(
    state: TrailState, directory: Path, signer: Signer | None
) -> tuple[Checkpoint | None, str | None]:
    """What stands for a missing ``DIR/checkpoint`` on a trail that holds records.

    The newest checkpoint record this gate's key signed: the file was written in the
    same fsync as such a record, after it, and said the same; the records after it are
    found unsigned, as they would be after the file. A checkpoint record whose signature
    by this gate's key does not verify refuses the start, as such a file does. Without
    any, nothing, and the next checkpoint signs every record kept as found
    (``unsignedAtStart``); either way the start says so, as a trail rewritten with its
    checkpoints dropped looks the same to it as one whose gate was killed before its
    first checkpoint (docs/audit.md, "Startup and crashes").
    """
    path = directory / CHECKPOINT_FILE
    if signer is None:
        return None, None  # nothing is signed in this run: nothing to sign as found
    # The newest record under each key name this gate's key signs as; the newest of those.
    ours = sorted(
        (found for (name, key), found in state.newest_signed.items() if key == signer.key_id(name)),
        reverse=True,
    )
    for seq, text in ours[:1]:
        note = parse_note(text.encode("utf-8"))  # checked by the rebuild
        checkpoint = Checkpoint.parse(note.text)
        try:
            verify_note(note, [Verifier(checkpoint.origin, signer.public_key)])
        except NoteError:
            raise AuditCorrupt(
                f"the checkpoint record at seq {seq}: its signature by this gate's key does "
                "not verify (or is not under its origin): it was changed after it was "
                "signed; investigate with tollgate audit verify"
            ) from None
        _logger.warning(
            "%s is missing, but the trail holds checkpoint records this gate's key "
            "signed, the newest at seq %d: the file was removed while no gate ran. The "
            "start goes on from that record, as from the file it stood beside",
            path,
            seq,
        )
        return checkpoint, text
    kept = f"seq {state.base} to {state.size - 1}"
    found = (
        "no checkpoint record"
        if not state.newest_signed
        else "no checkpoint record this gate's key signed"
    )
    _logger.warning(
        "the trail holds records (%s) but no %s and %s: the gate ended before its first "
        "checkpoint (a crash or kill within its first 10 s or 1000 records), or ran "
        "without --signing-key before, or its key changed, or the trail was rewritten "
        "with its checkpoints dropped. The next checkpoint signs these records as found "
        "(named in this start's unsignedAtStart): compare them with a checkpoint kept "
        "outside the volume (see docs/audit.md, startup)",
        kept,
        path,
        found,
    )
    return None, None


def _first_unsigned(
    stored: Checkpoint | None, note: str | None, state: TrailState, directory: Path
) -> int:
    """The first seq no checkpoint signed, as far as this start can tell.

    ``DIR/checkpoint`` of size n signs records 0 ... n-1; record n is the checkpoint
    record the gate wrote with it, in the same fsync, before the file was replaced, and
    nothing signs it until the next checkpoint. So record n is taken as covered only
    when it is a checkpoint record carrying exactly the note of ``DIR/checkpoint``; any
    other record there was put in its place while no gate ran, and counts among the
    records this start found unsigned (``unsignedAtStart``). A checkpoint record there
    whose fields disagree with its note or the records before it refuses the start.
    """
    if stored is None:
        return 0
    size = stored.size
    if size < state.base or size >= state.size:
        return size + 1  # pruned, or not written: nothing left to look at
    record = record_at(state, size, stored.root)
    if record is not None and record.get("type") == "checkpoint" and record.get("note") == note:
        before = record_at(state, size - 1, None)
        # A clean end is what the trail shows: the checkpoint right after a shutdown
        # record, whatever its label (a shutdown batch that rotates says "rotation").
        if record.get("reason") == "shutdown" or (before or {}).get("type") == "shutdown":
            _check_after_shutdown(state, size)
        return size + 1
    kind = record.get("type") if record is not None else None
    what = (
        "a checkpoint record carrying another note" if kind == "checkpoint" else f"a {kind} record"
    )
    _logger.warning(
        "%s signs %d records, so record %d should be the checkpoint record written with "
        "it, but it is %s: it was replaced while no gate ran. Nothing signed it; it is "
        "named in this start's unsignedAtStart, and the next checkpoint signs it as found "
        "(see docs/audit.md, startup)",
        directory / CHECKPOINT_FILE,
        size,
        size,
        what,
    )
    return size


def _checkpoint_lines(stored: Checkpoint | None) -> list[int]:
    """The seqs ``_first_unsigned`` reads: the record at the checkpoint's size and the
    ones either side of it."""
    return [] if stored is None else [stored.size - 1, stored.size, stored.size + 1]


def _check_after_shutdown(state: TrailState, at: int) -> None:
    """Refuse records after the shutdown checkpoint at seq ``at`` unless they start with a
    later run's first record.

    ``close()`` refuses every append before it writes that checkpoint, and writes
    nothing after it; the next run's first record is its ``recovery`` record (written
    while the trail is opened) or its ``startup`` record (every other record it holds
    while the trail cannot take that one waits for it: ``Gate.catch_up``). Anything else
    there was added while no gate ran: no crash leaves it, and signing it as found, as
    a crashed run's records are, would vouch for it.
    """
    following = record_at(state, at + 1, None)
    if following is None or following.get("type") in FIRST_RECORDS_OF_A_RUN:
        return
    segment, line, _ = state.lines[at + 1]
    span = f"records seq {at + 1} to {state.size - 1}"
    if following.get("type") == "approval":
        # Not started on even so: approval records are replayed at start, and a copy of
        # an approval's requested and approved records (its approver's signature and
        # all) would approve that action once more.
        why = (
            "a gate of a release before this check wrote approval records ahead of a "
            "startup record it held while the volume could not take it (a trail from "
            "before an upgrade); otherwise they were added while no gate ran. The gate "
            "replays approval records at start, and one no gate wrote could approve an "
            "action again, so nothing here signs them"
        )
    else:
        why = (
            "a gate writes nothing after its shutdown checkpoint, and the next one starts "
            "with its recovery or startup record, so they were added while no gate ran, "
            "and nothing signs them"
        )
    raise corrupt(
        segment,
        line,
        f"{span} come after the shutdown checkpoint at seq {at}, the first "
        f"{a_record(following.get('type'))}: {why}. Investigate with tollgate audit "
        f"verify; to start the gate on this trail, take {span} out of it (keep them: "
        "they are evidence), so that it ends with that checkpoint record (see "
        "docs/audit.md, startup)",
    )


def _broken_name(torn: TornTail) -> str:
    return torn.segment.name + BROKEN_SUFFIX


def _move_torn_tail(torn: TornTail) -> int:
    """Save the torn bytes beside the segment, cut them off it; return their offset there."""
    path = torn.segment.path
    broken = path.with_name(_broken_name(torn))
    try:
        # Appending keeps every fragment if several crashes tore the same segment.
        fd = open_regular_for_writing(broken, os.O_CREAT | os.O_APPEND)
        try:
            broken_offset = os.fstat(fd).st_size
            # Every byte, or an error: a short write (a nearly full disk) must not let
            # the rest be cut off the segment with nothing holding it.
            view = memoryview(torn.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(path.parent)
        fd = open_regular_for_writing(path, 0)
        try:
            os.ftruncate(fd, torn.offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AuditUnavailable(f"cannot repair the torn end of {path}: {exc}") from exc
    return broken_offset
