"""The policy watcher keeps its event watch alive when the watched directory is replaced.

In process: a real ``Gate`` on a real audit trail, the real ``PolicyWatcher`` and real
inotify watches (watchfiles). The poll is slowed to 30 s where a test must show that a
change was seen by events, since the poll would find any change by itself in the end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import watchfiles
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.log import AuditLog
from sidecar.gate import Gate
from sidecar.policy.source import PolicySource
from sidecar.policy.watch import PolicyWatcher

ALLOW = b"version: 1\nrules:\n  - {action: file.read, path: {glob: '/app/**'}, decision: allow}\n"
DENY = b"version: 1\nrules:\n  - {action: file.read, path: {glob: '/app/**'}, decision: deny}\n"
SLOW_POLL = 30.0
EVENT_DEADLINE = 2.0  # far below the slow poll: a change seen by then came by events


def policy_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not so within {timeout} s"
        await asyncio.sleep(0.01)


class Watched:
    """A gate following ``policy`` with its watcher running as a task."""

    def __init__(self, tmp_path: Path, poll_interval: float) -> None:
        self.directory = tmp_path / "config"
        self.directory.mkdir()
        self.policy = self.directory / "policy.yaml"
        self.policy.write_bytes(ALLOW)
        audit = AuditLog.open(tmp_path / "audit", identity="test", sync_helper=False)
        self.gate = Gate(audit=audit, source=PolicySource(str(self.policy)), identity="test")
        self.watcher = PolicyWatcher(self.gate, poll_interval=poll_interval)

    def run(self, steps: Callable[[], Awaitable[None]]) -> None:
        """Load the policy, follow it while ``steps`` runs, then stop."""

        async def following() -> None:
            assert await self.watcher.load()
            task = asyncio.create_task(self.watcher.run())
            try:
                await steps()
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await self.gate.audit.close()

        asyncio.run(following())

    def active(self) -> str | None:
        active = self.gate.policy.active
        return active.hash if active else None

    async def wait_for(self, data: bytes, timeout: float) -> float:
        """Seconds until ``data`` is the active policy; fails after ``timeout``."""
        started = time.monotonic()
        while self.active() != policy_hash(data):
            assert time.monotonic() - started < timeout, f"not loaded within {timeout} s"
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def write(self, data: bytes) -> None:
        # Replaced by rename, as editors and kubelet replace files.
        staged = self.directory / ".policy.tmp"
        staged.write_bytes(data)
        os.rename(staged, self.policy)


class Arming:
    """The paths the watcher arms its event watches on, in order, and stand-ins for the
    next armings (each called with the real ``awatch`` and its arguments)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.stand_ins: list[Callable[..., AsyncIterator[Any]]] = []


@pytest.fixture
def arming(monkeypatch: pytest.MonkeyPatch) -> Iterator[Arming]:
    real = watchfiles.awatch
    record = Arming()

    def awatch(path: Any, **options: Any) -> AsyncIterator[Any]:
        record.paths.append(str(path))
        if record.stand_ins:
            return record.stand_ins.pop(0)(real, path, **options)
        return real(path, **options)

    monkeypatch.setattr(watchfiles, "awatch", awatch)
    yield record


def test_a_directory_missing_as_the_watch_is_armed_is_watched_again_at_once(
    tmp_path: Path, arming: Arming
) -> None:
    """The directory is away (moved aside and back: the same inode number) just as the
    watch is armed, the way a ConfigMap directory deleted and created again can be. The
    arming fails with FileNotFoundError; the watcher must look again at once, not wait
    30 s, since the poll sees the same directory identity and re-arms nothing."""
    watched = Watched(tmp_path, poll_interval=SLOW_POLL)
    aside = tmp_path / "config.aside"

    async def away_while_armed(real: Any, path: Any, **options: Any) -> AsyncIterator[Any]:
        os.rename(watched.directory, aside)
        try:
            async for changes in real(path, **options):
                yield changes
        finally:
            os.rename(aside, watched.directory)

    async def steps() -> None:
        await until(lambda: len(arming.paths) == 2)  # armed again after the failure
        await asyncio.sleep(0.1)  # let the new watch settle
        watched.write(DENY)
        assert await watched.wait_for(DENY, EVENT_DEADLINE) < 1.0

    arming.stand_ins.append(away_while_armed)
    watched.run(steps)


def test_a_change_the_poll_finds_first_arms_the_event_watch_again(
    tmp_path: Path, arming: Arming
) -> None:
    """An event watch that has gone dead (here: a real watch on another directory, as
    a watch on a replaced directory whose deletion event was lost would be) misses a
    change; the poll finds it, and must arm the event watch again, so that the next
    change is seen by events."""
    watched = Watched(tmp_path, poll_interval=0.3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def dead_watch(real: Any, path: Any, **options: Any) -> AsyncIterator[Any]:
        return real(elsewhere, **options)

    async def steps() -> None:
        await until(lambda: len(arming.paths) == 1)
        await asyncio.sleep(0.1)  # the dead watch armed, its first look taken
        watched.write(DENY)
        await watched.wait_for(DENY, timeout=5.0)  # by the poll: no event comes
        await until(lambda: len(arming.paths) == 2)
        assert arming.paths[1] == str(watched.directory)
        watched.watcher.poll_interval = SLOW_POLL  # from its next sleep on
        await asyncio.sleep(0.5)
        watched.write(ALLOW)
        assert await watched.wait_for(ALLOW, EVENT_DEADLINE) < 1.0

    arming.stand_ins.append(dead_watch)
    watched.run(steps)


def kubelet_volume(config: Path, versions: dict[str, dict[str, bytes]]) -> Callable[[str], None]:
    """Versions of a ConfigMap volume under ``config`` (version -> file name -> bytes),
    its files linked through ``..data``; returns the switch to a version, made as kubelet
    and the docs' versioned layout make it: a symlink renamed over ``..data``."""
    for version, files in versions.items():
        (config / version).mkdir(parents=True)
        for name, data in files.items():
            (config / version / name).write_bytes(data)

    def switch(version: str) -> None:
        staged = config / "..data_tmp"
        staged.symlink_to(version)
        os.rename(staged, config / "..data")

    switch(next(iter(versions)))
    for name in {name for files in versions.values() for name in files}:
        (config / name).symlink_to(f"..data/{name}")
    return switch


def switching_during_its_first_read(
    source: PolicySource, switch: Callable[[str], None], away: str, back: str
) -> tuple[PolicySource, list[bool]]:
    """``source``'s copy whose first read switches the volume to ``away`` as it begins
    and to ``back`` before it ends; the list holds True once that read has happened."""
    switched: list[bool] = []

    class SwitchingSource(PolicySource):
        def read_with_signature(self) -> Any:
            if switched:
                return super().read_with_signature()
            switched.append(True)
            switch(away)
            try:
                return super().read_with_signature()
            finally:
                switch(back)

    return SwitchingSource(source.path, public_key=source.public_key), switched


def assert_a_switch_during_a_load_ends_on_what_is_on_disk(
    tmp_path: Path,
    source: PolicySource,
    switch: Callable[[str], None],
    away: str,
    on_disk: str,
    loaded: bytes,
) -> None:
    """The gate loads ``source`` (the first version's policy, ``ALLOW``); the volume
    switches to ``on_disk``, and a refresh whose read meets ``away`` must still end on
    ``loaded``, with nothing left to read after it."""
    audit = AuditLog.open(tmp_path / "audit", identity="test", sync_helper=False)
    gate = Gate(audit=audit, source=source, identity="test")
    watcher = PolicyWatcher(gate, poll_interval=SLOW_POLL)

    async def steps() -> None:
        assert await watcher.load()
        assert gate.policy.active is not None and gate.policy.active.hash == policy_hash(ALLOW)
        switch(on_disk)
        gate.source, switched = switching_during_its_first_read(source, switch, away, on_disk)
        await watcher.refresh()
        assert switched
        assert gate.policy.active.hash == policy_hash(loaded)
        assert gate.policy.last_error is None
        assert not await watcher.refresh()  # nothing left to read
        await audit.close()

    asyncio.run(steps())


def test_a_file_switched_away_and_back_during_a_load_ends_on_what_is_on_disk(
    tmp_path: Path,
) -> None:
    # Found by the red-team review of 2026-12-07: the watcher kept the fingerprint taken
    # before the read as the one loaded. A version switched away during the read (the
    # permissive one read and kept active) and back after it (the strict one on disk, with
    # the fingerprint taken before) was never read again: every event and poll found the
    # fingerprint unchanged, and the permissive policy answered checks indefinitely.
    config = tmp_path / "config"
    switch = kubelet_volume(
        config, {"v_allow": {"policy.yaml": ALLOW}, "v_deny": {"policy.yaml": DENY}}
    )
    source = PolicySource(str(config / "policy.yaml"))
    assert_a_switch_during_a_load_ends_on_what_is_on_disk(
        tmp_path, source, switch, away="v_allow", on_disk="v_deny", loaded=DENY
    )


@pytest.mark.parametrize("away", ["v_new_bad_signature", "v_new_no_signature"])
def test_a_signature_switched_away_and_back_during_a_load_ends_on_what_is_on_disk(
    away: str, tmp_path: Path
) -> None:
    # Left open by the fix above: with --policy-public-key, the new policy's bytes read
    # with a bad .sig (switched away as the read began, back before it ended) were refused
    # and the old policy stayed active, while the fingerprint, taken before the read, named
    # the good .sig: the same policy bytes were never read again with it.
    key = Ed25519PrivateKey.generate()

    def signed(data: bytes, signature: bytes) -> dict[str, bytes]:
        return {"policy.yaml": data, "policy.yaml.sig": base64.b64encode(signature)}

    config = tmp_path / "config"
    switch = kubelet_volume(
        config,
        {
            "v_old": signed(ALLOW, key.sign(ALLOW)),
            "v_new": signed(DENY, key.sign(DENY)),
            "v_new_bad_signature": signed(DENY, key.sign(ALLOW)),
            "v_new_no_signature": {"policy.yaml": DENY},
        },
    )
    source = PolicySource(str(config / "policy.yaml"), public_key=key.public_key())
    assert_a_switch_during_a_load_ends_on_what_is_on_disk(
        tmp_path, source, switch, away=away, on_disk="v_new", loaded=DENY
    )
