"""Follow the policy file live (CONTRACT 3 ``serve --policy``; docs/policy-reload.md).

Two triggers feed one reload path:

- filesystem events (watchfiles) on the policy's *directory*. Kubelet updates a
  ConfigMap volume by writing a new timestamped directory, pointing a ``..data_tmp``
  symlink at it and renaming that over ``..data``; the file named by ``--policy`` is a
  symlink into ``..data`` that itself never changes, so watching the file would miss
  every update.
- a fingerprint poll every ``poll_interval`` seconds (realpath, mtime, size and content
  hash of the policy and of its ``.sig``), for filesystems that lose or never deliver
  events, and to re-arm the event watch when the directory itself was replaced.

Both compare the fingerprint of what is on disk with the one taken just before the last
load and call ``Gate.load_policy`` only when it differs: an unchanged file is not
reloaded and an invalid one is rejected once, not on every poll. Taking the fingerprint
*before* loading means a change racing the load is seen by the next trigger.

A third trigger, SIGHUP, reads the policy again whatever its fingerprint (the reload
signal of many daemons; its default action would end the process without a shutdown
record or a final checkpoint).

Nothing here decides what is valid, and no failure here stops the watch: a failed load
keeps the last good policy (or none, so every check is 503/deny), never "allow".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from dataclasses import dataclass

import watchfiles

from sidecar.errors import PolicyError
from sidecar.gate import Gate
from sidecar.policy.loader import MAX_POLICY_BYTES, read_regular_file
from sidecar.policy.source import signature_path

logger = logging.getLogger("tollgate.policy")

DEFAULT_POLL_INTERVAL = 2.0
# watchfiles checks for changes every STEP ms and yields a batch once a check finds
# nothing new, so STEP to 2 x STEP after the change (kubelet's whole swap takes well
# under STEP), and at the latest after DEBOUNCE ms of churn. Every check wakes the
# watch thread, also when nothing changes: at 20 ms the idle daemon uses ~0.7% of a
# core against ~0.45% at 50 ms, for a reload that lands ~45 ms sooner on average.
EVENT_STEP_MS = 20
EVENT_DEBOUNCE_MS = 300
EVENT_RETRY_SECONDS = 30.0
# A directory replaced (deleted and created again) may be missing for an instant when
# the watch is armed on it: look again this soon, then twice as late each time in a row.
REARM_PAUSE_SECONDS = 0.05
_SIGNATURE_READ_LIMIT = 4096


@dataclass(frozen=True)
class FileState:
    """What one file looks like on disk now; ``error`` is set when it cannot be read."""

    realpath: str
    mtime_ns: int = 0
    size: int = 0
    sha256: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Fingerprint:
    policy: FileState
    signature: FileState | None


def file_state(path: str, limit: int) -> FileState:
    realpath = os.path.realpath(path)
    try:
        data, stat = read_regular_file(realpath, limit)
    except OSError as exc:
        return FileState(realpath, error=exc.strerror or str(exc))
    return FileState(realpath, stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest())


def fingerprint(policy_path: str, *, with_signature: bool) -> Fingerprint:
    signature = (
        file_state(signature_path(policy_path), _SIGNATURE_READ_LIMIT) if with_signature else None
    )
    return Fingerprint(file_state(policy_path, MAX_POLICY_BYTES + 1), signature)


def _directory_identity(directory: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(directory)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _read_as_fingerprinted(gate: Gate, current: Fingerprint) -> bool:
    """Whether the gate's last read took the bytes ``current`` fingerprinted.

    True too when nothing was read (the policy could not be), as there is nothing to
    compare. A ``.sig`` that could not be read is "" on both sides.
    """
    read = gate.last_read_hash
    if read is None:
        return True
    if read != "sha256:" + current.policy.sha256:
        return False
    if current.signature is None:
        return True
    return gate.last_read_signature == current.signature.sha256


# Reads of a file that keeps changing under one load before the next event or poll.
_READ_ATTEMPTS = 3


class PolicyWatcher:
    """Reloads ``gate``'s policy whenever its file (or ``.sig``) changes on disk."""

    def __init__(self, gate: Gate, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.gate = gate
        self.path = gate.source.path
        self.directory = os.path.dirname(os.path.abspath(self.path))
        self.poll_interval = poll_interval
        self._with_signature = gate.source.public_key is not None
        self._lock = asyncio.Lock()
        self._loaded: Fingerprint | None = None
        self._watched: tuple[int, int] | None = None
        self._rearm = asyncio.Event()

    async def load(self) -> bool:
        """Load the policy now (at start-up), whatever the last fingerprint was."""
        async with self._lock:
            return await self._load(await self._fingerprint())

    async def refresh(self) -> bool:
        """Load the policy if the files changed since the last load; True if it loaded."""
        async with self._lock:
            current = await self._fingerprint()
            if current == self._loaded:
                return False
            return await self._load(current)

    async def run(self) -> None:
        """Follow the file until cancelled; a background duty of the gate."""
        requested = asyncio.Event()
        # Off the main thread (an embedded gate) there is no signal to follow. The handler
        # stays when the watch ends: until the process exits a SIGHUP is then ignored,
        # rather than ending it in the middle of its shutdown.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, requested.set)
        await asyncio.gather(self._follow_events(), self._poll(), self._on_sighup(requested))

    async def _on_sighup(self, requested: asyncio.Event) -> None:
        while True:
            await requested.wait()
            requested.clear()
            logger.warning("SIGHUP: reading the policy again")
            await self.load()

    async def _fingerprint(self) -> Fingerprint:
        return await asyncio.to_thread(fingerprint, self.path, with_signature=self._with_signature)

    async def _load(self, current: Fingerprint) -> bool:
        loaded = False
        for _ in range(_READ_ATTEMPTS):
            self._loaded = current
            loaded = await self._load_once()
            if _read_as_fingerprinted(self.gate, current):
                return loaded
            # A file changed between its fingerprint and the read: what was installed (or
            # refused) is not what was fingerprinted. Kept as the last load, that
            # fingerprint would hide a change back to it (switched away and back within a
            # load, the stricter policy or the bad signature on disk and the other one
            # active): again.
            current = await self._fingerprint()
        self._loaded = None  # still changing: the next event or poll reads it again
        return loaded

    async def _load_once(self) -> bool:
        try:
            return await self.gate.load_policy()
        except Exception as exc:
            # A loader bug must look like an invalid policy (kept last good, recorded),
            # not end the watch.
            logger.exception("loading the policy failed unexpectedly")
            await self.gate.reject_policy(
                PolicyError(self.path, [f"internal error while loading: {exc!r}"])
            )
            return False

    async def _follow_events(self) -> None:
        pause = REARM_PAUSE_SECONDS
        while True:
            self._rearm.clear()
            self._watched = _directory_identity(self.directory)
            if self._watched is None:
                # No directory (yet): the poll re-arms once it appears.
                await self._rearm.wait()
                continue
            try:
                # Whatever changed while no watch was armed (a change in the instant
                # before awatch arms its watch is left to the poll).
                await self.refresh()
                async for changes in watchfiles.awatch(
                    self.directory,
                    watch_filter=None,
                    recursive=False,
                    step=EVENT_STEP_MS,
                    debounce=EVENT_DEBOUNCE_MS,
                    stop_event=self._rearm,
                ):
                    pause = REARM_PAUSE_SECONDS
                    await self.refresh()
                    if any(os.path.normpath(path) == self.directory for _, path in changes):
                        # The directory itself was deleted or moved: its watch sees
                        # nothing more. Arm a new one, on the directory now at that path
                        # (one created again at once may get the old inode number back,
                        # which the poll could not tell from the old directory).
                        break
            except FileNotFoundError:
                # The directory went away between the look above and the arming of the
                # watch: replaced, most likely. Look again soon rather than in 30 s,
                # since one created again with the old inode number gives the poll no
                # reason to re-arm the watch.
                await asyncio.sleep(pause)
                pause = min(pause * 2, EVENT_RETRY_SECONDS)
            except Exception:
                # e.g. the inotify watch limit: the poll still follows the file meanwhile.
                logger.exception("policy file events failed; polling, retrying events later")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_RETRY_SECONDS):
                        await self._rearm.wait()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                if _directory_identity(self.directory) != self._watched:
                    self._rearm.set()  # the directory appeared, vanished or was replaced
                seen = self._loaded
                await self.refresh()
                if self._loaded is not seen:
                    # The poll found a change before the events did: the event watch
                    # may be dead (its directory replaced under it by one with the same
                    # inode number). Arm it again; at worst that costs one re-arm.
                    self._rearm.set()
            except Exception:
                logger.exception("policy poll failed; trying again")
