"""``AuditLog``: record format, hash chain, group commit, checkpoints, rotation, restart."""

from __future__ import annotations

import asyncio
import base64
import errno
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.log import AuditLog, default_origin
from sidecar.audit.merkle import Frontier, leaf_hash
from sidecar.audit.note import Signer, Verifier, parse_note, verify_note
from sidecar.audit.verify import verify_trail
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditUnavailable
from tests.audit.conftest import decision, records, segment_lines

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
OpenLog = Callable[..., AuditLog]


def test_records_are_canonical_lines_with_envelope_and_chain(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None)
    first = log.append_blocking("startup", {"version": "0.1.0"})
    second = log.append_blocking("decision", decision(1))
    lines = segment_lines(tmp_path / "audit")
    assert len(lines) == 2
    for seq, line in enumerate(lines):
        record = json.loads(line)
        assert canonical_bytes(record) == line
        assert record["seq"] == seq
        assert TS.match(record["ts"])
    assert json.loads(lines[0])["prev"] == "0" * 64
    assert json.loads(lines[1])["prev"] == hashlib.sha256(b"\x00" + lines[0]).hexdigest()
    assert (first.seq, first.hash) == (0, hashlib.sha256(b"\x00" + lines[0]).hexdigest())
    assert (second.seq, second.hash) == (1, leaf_hash(lines[1]).hex())
    assert json.loads(lines[1])["type"] == "decision"
    assert json.loads(lines[1])["request"] == {"action": "file.read", "path": "/app/data/1.csv"}
    status = log.status()
    assert status["seq"] == 2 and status["head"] == second.hash
    assert status["writable"] is True and status["lastError"] is None
    assert status["dir"] == str(tmp_path / "audit")


def test_status_of_an_empty_trail(open_log: OpenLog) -> None:
    status = open_log().status()
    assert status["seq"] == 0
    assert status["head"] == "0" * 64
    assert status["lastCheckpoint"] is None


@pytest.mark.parametrize(
    ("record_type", "body", "error"),
    [
        ("decision", {"seq": 5}, ValueError),
        ("decision", {"prev": "x"}, ValueError),
        ("nonsense", {}, ValueError),
        ("decision", {"score": 0.5}, TypeError),
    ],
)
def test_bad_bodies_are_refused_and_leave_nothing_behind(
    open_log: OpenLog, tmp_path: Path, record_type: str, body: dict[str, Any], error: type
) -> None:
    log = open_log()
    log.append_blocking("startup", {})
    with pytest.raises(error):
        log.append_blocking(record_type, body)
    assert len(segment_lines(tmp_path / "audit")) == 1
    assert log.append_blocking("decision", decision(1)).seq == 1
    assert log.writable


@pytest.mark.parametrize("sync_helper", [True, False], ids=["helper", "on-loop"])
def test_concurrent_appends_share_fsyncs_and_keep_order(
    open_log: OpenLog, tmp_path: Path, sync_helper: bool
) -> None:
    log = open_log(signer=None, sync_helper=sync_helper)

    async def run() -> list[Any]:
        await log.start()
        results = await asyncio.gather(*(log.append("decision", decision(i)) for i in range(300)))
        await log.close()
        return results

    results = asyncio.run(run())
    assert sorted(r.seq for r in results) == list(range(300))
    # All 300 were made in the same loop iteration: one batch, one write, one fsync.
    assert log.syncs == 1, f"{log.syncs} syncs for 300 appends of one loop iteration"
    lines = segment_lines(tmp_path / "audit")
    assert [r.hash for r in sorted(results, key=lambda r: r.seq)] == [
        leaf_hash(line).hex() for line in lines
    ]
    assert verify_trail(tmp_path / "audit").intact


@pytest.mark.parametrize("sync_helper", [True, False], ids=["helper", "on-loop"])
def test_append_all_writes_its_records_consecutively_in_one_sync(
    open_log: OpenLog, tmp_path: Path, sync_helper: bool
) -> None:
    log = open_log(signer=None, sync_helper=sync_helper)
    log.append_blocking("startup", {})

    async def run() -> tuple[list[Any], list[Any]]:
        await log.start()
        # Interleaved with single appends of the same loop iteration, the group stays
        # in one piece, in the order given.
        others = [log.append("decision", decision(i)) for i in range(3)]
        group = log.append_all(
            [("approval", {"event": "redeemed", "approval": "apr_1"}), ("decision", decision(9))]
        )
        results = await asyncio.gather(others[0], group, *others[1:])
        before = log.syncs
        alone = await log.append_all([("decision", decision(10)), ("decision", decision(11))])
        assert log.syncs == before + 1, "a group on its own is one batch, one sync"
        await log.close()
        return results[1], alone

    grouped, alone = asyncio.run(run())
    lines = [json.loads(line) for line in segment_lines(tmp_path / "audit")]
    seqs = [appended.seq for appended in grouped]
    assert seqs[1] == seqs[0] + 1
    assert [lines[seq]["type"] for seq in seqs] == ["approval", "decision"]
    assert lines[seqs[1]]["decisionId"] == decision(9)["decisionId"]
    assert [a.seq for a in alone] == [len(lines) - 2, len(lines) - 1]
    assert [a.hash for a in alone] == [
        leaf_hash(line).hex() for line in segment_lines(tmp_path / "audit")[-2:]
    ]
    assert verify_trail(tmp_path / "audit").intact


def test_append_all_with_a_bad_body_stages_none_of_its_records(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(signer=None, sync_helper=False)

    async def run() -> Any:
        await log.start()
        neighbour = asyncio.ensure_future(log.append("decision", decision(1)))
        with pytest.raises(ValueError, match="must not set"):
            await log.append_all([("decision", decision(2)), ("decision", {"seq": 5})])
        appended = await neighbour
        await log.close()
        return appended

    appended = asyncio.run(run())
    lines = [json.loads(line) for line in segment_lines(tmp_path / "audit")]
    # Only the neighbour in the same batch was written; the group's good record was not.
    assert [line["decisionId"] for line in lines] == [decision(1)["decisionId"]]
    assert appended.seq == 0
    assert verify_trail(tmp_path / "audit").intact


@pytest.mark.parametrize("sync_helper", [True, False], ids=["helper", "on-loop"])
def test_append_all_fails_whole_when_its_write_is_refused(
    open_log: OpenLog, tmp_path: Path, sync_helper: bool
) -> None:
    log = open_log(signer=None, sync_helper=sync_helper)
    log.append_blocking("startup", {})
    segment = next((tmp_path / "audit" / "segments").glob("*.jsonl"))
    group = [("approval", {"event": "redeemed", "approval": "apr_1"}), ("decision", decision(1))]

    async def run() -> list[Any]:
        await log.start()
        # Bytes the gate did not write: its next batch is refused whole, as after a
        # failed write, and nothing of it stays on disk.
        with segment.open("ab") as tampered:
            tampered.write(b"x")
        with pytest.raises(AuditUnavailable, match="changed outside Tollgate"):
            await log.append_all(group)
        with segment.open("r+b") as tampered:
            tampered.truncate(segment.stat().st_size - 1)
        written = await log.append_all(group)
        await log.close()
        return written

    written = asyncio.run(run())
    lines = [json.loads(line) for line in segment_lines(tmp_path / "audit")]
    assert [line["type"] for line in lines] == ["startup", "approval", "decision"]
    assert [a.seq for a in written] == [1, 2]
    assert verify_trail(tmp_path / "audit").intact


def test_every_sync_reports_how_long_it_took(open_log: OpenLog) -> None:
    log = open_log(signer=None, sync_helper=False)
    waits: list[float] = []
    log.on_sync(waits.append)
    for i in range(3):
        log.append_blocking("decision", decision(i))

    async def run() -> None:
        await log.start()
        await asyncio.gather(*(log.append("decision", decision(3 + i)) for i in range(50)))
        await log.close()

    asyncio.run(run())
    # Three lone appends and one batch of fifty: four fdatasyncs, each reported once.
    assert len(waits) == log.syncs == 4
    assert all(0 < wait < 5 for wait in waits)


def _checkpoints(directory: Path) -> list[dict[str, Any]]:
    return [r for r in records(directory) if r["type"] == "checkpoint"]


def _check_signed(record: dict[str, Any], lines: list[bytes], signer: Signer) -> None:
    """The checkpoint's root is the RFC 6962 root of the lines before it, and it is signed."""
    size = record["treeSize"]
    assert record["seq"] == size
    frontier = Frontier()
    for line in lines[:size]:
        frontier.append(leaf_hash(line))
    note = parse_note(record["note"])
    checkpoint = Checkpoint.parse(note.text)
    assert checkpoint == Checkpoint(record["origin"], size, frontier.root())
    assert record["rootHash"] == base64.b64encode(frontier.root()).decode()
    verify_note(note, [Verifier(record["origin"], signer.public_key)])


def test_checkpoint_every_n_records(open_log: OpenLog, tmp_path: Path, signer: Signer) -> None:
    log = open_log(checkpoint_every=10)
    for i in range(25):
        log.append_blocking("decision", decision(i))
    directory = tmp_path / "audit"
    checkpoints = _checkpoints(directory)
    assert [c["treeSize"] for c in checkpoints] == [10, 21]
    lines = segment_lines(directory)
    for record in checkpoints:
        _check_signed(record, lines, signer)
    assert (directory / "checkpoint").read_text() == checkpoints[-1]["note"]
    assert log.status()["lastCheckpoint"] == {
        "origin": "tollgate/apps/agent-1",
        "treeSize": 21,
        "rootHash": checkpoints[-1]["rootHash"],
        "seq": 21,
    }


def test_checkpoint_is_printed_as_one_json_line_on_stdout(
    open_log: OpenLog, capsys: pytest.CaptureFixture[str], signer: Signer
) -> None:
    log = open_log(checkpoint_every=3)
    for i in range(3):
        log.append_blocking("decision", decision(i))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    assert line["msg"] == "audit checkpoint" and line["treeSize"] == 3
    note = parse_note(line["note"])
    verify_note(note, [Verifier(line["origin"], signer.public_key)])


def test_checkpoint_after_the_interval_when_idle(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(checkpoint_interval=0.2)

    async def run() -> None:
        await log.start()
        started = time.monotonic()
        await log.append("decision", decision(0))
        while not _checkpoints(tmp_path / "audit") and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        assert time.monotonic() - started >= 0.2  # not before the interval
        assert [c["treeSize"] for c in _checkpoints(tmp_path / "audit")] == [1]
        assert [c["reason"] for c in _checkpoints(tmp_path / "audit")] == ["interval"]
        await asyncio.sleep(0.5)  # no new records: no new checkpoint
        assert len(_checkpoints(tmp_path / "audit")) == 1
        await log.close()

    asyncio.run(run())


def test_close_writes_the_final_checkpoint_and_refuses_more(
    open_log: OpenLog, tmp_path: Path, signer: Signer
) -> None:
    log = open_log()

    async def run() -> None:
        await log.start()
        await log.append("decision", decision(0))
        await log.append("shutdown", {"reason": "test"})
        await log.close()
        with pytest.raises(AuditUnavailable):
            await log.append("decision", decision(1))

    asyncio.run(run())
    all_records = records(tmp_path / "audit")
    assert [r["type"] for r in all_records] == ["decision", "shutdown", "checkpoint"]
    _check_signed(all_records[-1], segment_lines(tmp_path / "audit"), signer)
    assert all_records[-1]["reason"] == "shutdown"


def test_the_final_checkpoint_is_labelled_shutdown_after_an_idle_interval(
    open_log: OpenLog, tmp_path: Path
) -> None:
    # A gate idle for the checkpoint interval before SIGTERM: its shutdown record's
    # checkpoint was labelled "interval", and none said "shutdown" (rt25 api review).
    log = open_log(checkpoint_interval=0.2)

    async def run() -> None:
        await log.start()
        await log.append("decision", decision(0))
        while not _checkpoints(tmp_path / "audit"):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)  # idle for longer than the interval
        await log.append("shutdown", {"reason": "test"})
        await log.close()

    asyncio.run(run())
    assert [c["reason"] for c in _checkpoints(tmp_path / "audit")] == ["interval", "shutdown"]
    assert [r["type"] for r in records(tmp_path / "audit")][-2:] == ["shutdown", "checkpoint"]


def test_unsigned_log_writes_no_checkpoints(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log(signer=None, checkpoint_every=2)
    for i in range(5):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    assert _checkpoints(tmp_path / "audit") == []
    assert not (tmp_path / "audit" / "checkpoint").exists()


def test_rotation_continues_seq_and_chain_across_segments(
    open_log: OpenLog, tmp_path: Path, signer: Signer
) -> None:
    log = open_log(segment_bytes=4096, checkpoint_every=10_000)
    for i in range(40):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    directory = tmp_path / "audit"
    segments = sorted((directory / "segments").glob("*.jsonl"))
    assert len(segments) >= 3
    expected_first = 0
    for path in segments:
        assert path.name == f"{expected_first:020d}.jsonl"
        lines = path.read_bytes().split(b"\n")[:-1]
        assert json.loads(lines[0])["seq"] == expected_first
        # Each closed segment ends with its rotation checkpoint.
        if path != segments[-1]:
            assert json.loads(lines[-1])["type"] == "checkpoint"
            assert json.loads(lines[-1])["reason"] == "rotation"
            assert path.stat().st_size >= 4096
        expected_first += len(lines)
    all_lines = segment_lines(directory)
    for record in _checkpoints(directory):
        _check_signed(record, all_lines, signer)
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert report.intact, report.summary()


def test_restart_rebuilds_seq_head_and_frontier(
    open_log: OpenLog, tmp_path: Path, signer: Signer
) -> None:
    log = open_log(segment_bytes=8192, checkpoint_every=7)
    for i in range(30):
        log.append_blocking("decision", decision(i))
    before = log.status()
    log.close_blocking()
    reopened = open_log(segment_bytes=8192, checkpoint_every=7)
    after = reopened.status()
    # close() signed everything: the last record is a checkpoint over all before it.
    assert after["seq"] in (before["seq"], before["seq"] + 1)
    assert records(tmp_path / "audit")[-1]["type"] == "checkpoint"
    assert after["lastCheckpoint"]["treeSize"] == after["seq"] - 1
    assert after["head"] == leaf_hash(segment_lines(tmp_path / "audit")[-1]).hex()
    appended = reopened.append_blocking("decision", decision(99))
    assert appended.seq == after["seq"]
    record = records(tmp_path / "audit")[appended.seq]
    assert record["seq"] == appended.seq and record["type"] == "decision"
    assert record["prev"] == after["head"]
    for _ in range(10):
        reopened.append_blocking("decision", decision(100))
    reopened.close_blocking()
    lines = segment_lines(tmp_path / "audit")
    for checkpoint in _checkpoints(tmp_path / "audit"):
        _check_signed(checkpoint, lines, signer)


def test_restart_without_new_records_signs_nothing_new(open_log: OpenLog, tmp_path: Path) -> None:
    log = open_log()
    log.append_blocking("decision", decision(0))
    log.close_blocking()
    count = len(segment_lines(tmp_path / "audit"))
    open_log().close_blocking()
    assert len(segment_lines(tmp_path / "audit")) == count


def test_a_second_writer_on_the_same_directory_is_refused(open_log: OpenLog) -> None:
    open_log()
    with pytest.raises(AuditUnavailable, match="in use"):
        open_log()


def _access_mode(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE


def test_the_directory_lock_is_held_on_a_read_only_descriptor(open_log: OpenLog) -> None:
    # One open for writing keeps the volume from being remounted read-only under the
    # gate (the read-only volume tests in test_faults.py remount it so).
    log = open_log()
    assert _access_mode(log._lock_fd) == os.O_RDONLY
    assert os.readlink(f"/proc/self/fd/{log._lock_fd}") == str(log.directory / "lock")


def _nfs_like_flock(monkeypatch: pytest.MonkeyPatch, error: int | None = None) -> None:
    """flock as Linux gives it over NFS: an exclusive lock on a descriptor not open for
    writing fails with EBADF (flock(2)); with ``error``, every lock fails so. Injected at
    the boundary: no NFS server runs here."""
    real = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if error is not None:
            raise OSError(error, os.strerror(error))
        if operation & fcntl.LOCK_EX and _access_mode(fd) == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)


def test_where_a_lock_needs_a_writable_descriptor_it_is_taken_on_one(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read-only, every start over NFS failed, reported as "in use by another process".
    _nfs_like_flock(monkeypatch)
    log = open_log()
    assert _access_mode(log._lock_fd) == os.O_RDWR
    with pytest.raises(AuditUnavailable, match="in use by another Tollgate process"):
        open_log()


def test_a_file_system_that_takes_no_locks_is_named_as_the_cause(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nfs_like_flock(monkeypatch, errno.ENOLCK)
    open_fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(AuditUnavailable, match="must support file locks") as raised:
        open_log()
    assert "No locks available" in str(raised.value) and "in use" not in str(raised.value)
    assert len(os.listdir("/proc/self/fd")) == open_fds  # the lock file is not left open


def test_default_origin_is_a_valid_key_name() -> None:
    assert default_origin("apps-prod/agent-7f9c") == "tollgate/apps-prod/agent-7f9c"
    assert default_origin("a b+c") == "tollgate/a_b_c"
    assert default_origin("") == "tollgate/unknown"


def test_secrets_never_reach_a_segment_file(open_log: OpenLog, tmp_path: Path) -> None:
    secrets = {
        "abc123def456ghi789jkl": "curl -H 'Authorization: Bearer abc123def456ghi789jkl' https://x",
        "sk-proj-ZyXwVu0123456789TsRqPo": "OPENAI_KEY=sk-proj-ZyXwVu0123456789TsRqPo python run.py",
        "ghp_" + "Q9w8E7r6T5" * 4: "git clone https://ghp_" + "Q9w8E7r6T5" * 4 + "@github.com/o/r",
        "AKIAJ7Q4EXAMPLEKEY12": "aws configure set aws_access_key_id AKIAJ7Q4EXAMPLEKEY12",
        "xoxp-1111-2222-abcdefghij": "slack token xoxp-1111-2222-abcdefghij",
        "hunter2-is-my-password": "mysql -u root --password=hunter2-is-my-password",
        "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2lnbmF0dXJl": "jwt=eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2lnbmF0dXJl",
        "ctx-secret-value-77": "",
    }
    log = open_log(segment_bytes=2048, checkpoint_every=5)

    def body(index: int, text: str) -> dict[str, Any]:
        return decision(
            index,
            request={
                "action": "process.exec",
                "commandLine": text,
                "argv": ["sh", "-c", text],
                "context": {"note": text, "apiToken": "ctx-secret-value-77"},
            },
            reason=f"denied: {text}",
        )

    async def run() -> None:
        await log.start()
        await asyncio.gather(
            *(log.append("decision", body(i, text)) for i, text in enumerate(secrets.values()))
        )
        await log.close()

    asyncio.run(run())
    reopened = open_log(segment_bytes=2048, checkpoint_every=5)
    for i, text in enumerate(secrets.values()):
        reopened.append_blocking("invalidRequest", {"body": text, "n": i})
    reopened.close_blocking()
    everything = b"".join(p.read_bytes() for p in (tmp_path / "audit").rglob("*") if p.is_file())
    for secret in secrets:
        assert secret.encode() not in everything, secret
    assert b"[REDACTED:" in everything
    assert verify_trail(tmp_path / "audit").intact


def test_redaction_tags_are_stable_across_restarts_with_the_same_key(
    open_log: OpenLog, tmp_path: Path
) -> None:
    text = "--password=correcthorse"
    log = open_log()
    log.append_blocking("decision", decision(0, reason=text))
    log.close_blocking()
    reopened = open_log()
    reopened.append_blocking("decision", decision(1, reason=text))
    reasons = [r["reason"] for r in records(tmp_path / "audit") if r["type"] == "decision"]
    assert reasons[0] == reasons[1] and "[REDACTED:password:" in reasons[0]


def test_an_append_one_loop_iteration_later_joins_the_batch(open_log: OpenLog) -> None:
    # A request whose bytes are read while the first one is being decided starts one
    # iteration later; group commit must not leave it for a second fsync.
    log = open_log(signer=None)
    log.append_blocking("startup", {})

    async def later() -> Any:
        await asyncio.sleep(0)  # one loop iteration after the first append
        return await log.append("decision", decision(1))

    async def run() -> list[Any]:
        await log.start()
        before = log.syncs
        results = await asyncio.gather(log.append("decision", decision(0)), later())
        assert log.syncs - before == 1
        await log.close()
        return results

    first, second = asyncio.run(run())
    assert (first.seq, second.seq) == (1, 2)


def test_a_writer_bug_fails_the_waiting_appends_instead_of_hanging_them(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(signer=None)

    def broken_seal(batch: object) -> None:
        raise KeyError("not the disk")

    async def run() -> tuple[list[Any], Any, dict[str, Any]]:
        await log.start()
        with monkeypatch.context() as patch:
            patch.setattr(log, "_seal", broken_seal)
            failed = await asyncio.wait_for(
                asyncio.gather(
                    *(log.append("decision", decision(i)) for i in range(3)),
                    return_exceptions=True,
                ),
                timeout=5,
            )
        status = log.status()
        recovered = await log.append("decision", decision(3))
        await log.close()
        return failed, recovered, status

    failed, recovered, status = asyncio.run(run())
    assert all(isinstance(f, AuditUnavailable) for f in failed), failed
    assert "audit writer failed" in str(failed[0]) and "not the disk" in str(failed[0])
    assert status["writable"] is False and "audit writer failed" in status["lastError"]
    assert recovered.seq == 0  # nothing of the failed batch was written
    assert log.writable
    assert [r["seq"] for r in records(tmp_path / "audit")] == [0]


def test_append_blocking_is_refused_once_the_loop_side_runs(open_log: OpenLog) -> None:
    log = open_log(signer=None)

    async def run() -> None:
        await log.start()
        with pytest.raises(RuntimeError, match="use await append"):
            log.append_blocking("decision", decision(0))
        await log.close()

    asyncio.run(run())
