"""Startup: torn last line recovery, and refusal to start on any other damage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision, records, segment_lines

OpenLog = Callable[..., AuditLog]


def _fill(open_log: OpenLog, count: int, **options: object) -> Path:
    log = open_log(**options)
    for i in range(count):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return sorted((log.directory / "segments").glob("*.jsonl"))[-1]


@pytest.mark.parametrize(
    "torn",
    [b'{"action":"file.read","allowed":tr', b"\x00" * 700, b"{", b'{"seq":99}'],
    ids=["half-record", "zero-filled", "one-byte", "no-newline"],
)
def test_torn_last_line_is_moved_aside_and_recorded(
    open_log: OpenLog, tmp_path: Path, torn: bytes
) -> None:
    segment = _fill(open_log, 5)
    good = segment.read_bytes()
    with open(segment, "ab") as handle:
        handle.write(torn)
    log = open_log()
    broken = segment.with_name(segment.name + ".broken")
    assert broken.read_bytes() == torn
    recovery = records(tmp_path / "audit")[-1]
    assert recovery["type"] == "recovery"
    assert recovery["droppedBytes"] == len(torn)
    assert recovery["segment"] == segment.name
    assert recovery["brokenFile"] == broken.name
    assert segment.read_bytes().startswith(good)
    assert log.append_blocking("decision", decision(9)).seq == recovery["seq"] + 1
    log.close_blocking()
    assert verify_trail(tmp_path / "audit").intact


def test_every_torn_fragment_is_kept(open_log: OpenLog, tmp_path: Path) -> None:
    segment = _fill(open_log, 2, signer=None)
    for fragment in (b'{"first', b'{"second'):
        with open(segment, "ab") as handle:
            handle.write(fragment)
        open_log(signer=None).close_blocking()
    broken = segment.with_name(segment.name + ".broken")
    assert broken.read_bytes() == b'{"first{"second'
    offsets = [r["brokenOffset"] for r in records(tmp_path / "audit") if r["type"] == "recovery"]
    assert offsets == [0, len(b'{"first')]


def _corrupt_and_expect(open_log: OpenLog, segment: Path, line: int, change: bytes) -> str:
    lines = segment.read_bytes().split(b"\n")
    lines[line - 1] = change
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditCorrupt) as caught:
        open_log()
    message = str(caught.value)
    assert f"segments/{segment.name}" in message
    return message


def test_a_changed_middle_record_refuses_to_start(open_log: OpenLog) -> None:
    segment = _fill(open_log, 6, signer=None)
    original = segment.read_bytes().split(b"\n")[2]
    changed = original.replace(b"/app/data/2.csv", b"/app/data/X.csv")
    message = _corrupt_and_expect(open_log, segment, 3, changed)
    assert "line 4" in message and "prev" in message  # the next line no longer links


def test_a_garbage_line_refuses_to_start(open_log: OpenLog) -> None:
    segment = _fill(open_log, 4, signer=None)
    assert "line 2" in _corrupt_and_expect(open_log, segment, 2, b"not json at all")


def test_a_removed_middle_line_refuses_to_start(open_log: OpenLog) -> None:
    segment = _fill(open_log, 5, signer=None)
    lines = segment.read_bytes().split(b"\n")
    del lines[1]
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditCorrupt, match="line 2"):
        open_log()


def test_a_damaged_last_complete_line_refuses_to_start(open_log: OpenLog) -> None:
    segment = _fill(open_log, 3, signer=None)
    lines = segment.read_bytes().split(b"\n")
    record = json.loads(lines[-2])
    record["seq"] = 7
    lines[-2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditCorrupt, match="expected seq 2"):
        open_log()


def test_a_last_line_out_of_canonical_form_refuses_to_start(open_log: OpenLog) -> None:
    # No later prev vouches for the last line: the writer must not sign onto an edit
    # that `tollgate audit verify` would call tampering.
    segment = _fill(open_log, 3, signer=None)
    lines = segment.read_bytes().split(b"\n")
    lines[-2] = lines[-2].replace(b",", b", ", 1)
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditCorrupt, match="line 3: not canonical JSON"):
        open_log()


def test_a_missing_segment_refuses_to_start(open_log: OpenLog, tmp_path: Path) -> None:
    _fill(open_log, 60, signer=None, segment_bytes=2048)
    segments = sorted((tmp_path / "audit" / "segments").glob("*.jsonl"))
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(AuditCorrupt, match=segments[2].name):
        open_log(signer=None)


def test_an_unterminated_line_in_an_older_segment_refuses_to_start(
    open_log: OpenLog, tmp_path: Path
) -> None:
    _fill(open_log, 60, signer=None, segment_bytes=2048)
    first = sorted((tmp_path / "audit" / "segments").glob("*.jsonl"))[0]
    first.write_bytes(first.read_bytes()[:-1])
    with pytest.raises(AuditCorrupt, match="middle of a line"):
        open_log(signer=None)


def test_records_removed_below_the_checkpoint_refuse_to_start(
    open_log: OpenLog, tmp_path: Path
) -> None:
    segment = _fill(open_log, 10)
    lines = segment.read_bytes().split(b"\n")
    segment.write_bytes(b"\n".join(lines[:-3]) + b"\n")  # drop the final checkpoint and more
    with pytest.raises(AuditCorrupt, match="records were removed"):
        open_log()


def test_a_rewritten_trail_does_not_match_its_checkpoint(open_log: OpenLog, tmp_path: Path) -> None:
    _fill(open_log, 4)
    directory = tmp_path / "audit"
    first_run = (directory / "checkpoint").read_bytes()
    for path in (directory / "segments").glob("*"):
        path.unlink()
    (directory / "checkpoint").unlink()
    _fill(open_log, 4)  # a different history of the same length
    (directory / "checkpoint").write_bytes(first_run)
    with pytest.raises(AuditCorrupt, match="rewritten"):
        open_log()


def test_an_empty_segment_left_by_a_crash_at_rotation_is_fine(
    open_log: OpenLog, tmp_path: Path
) -> None:
    _fill(open_log, 5, signer=None)
    size = len(segment_lines(tmp_path / "audit"))
    (tmp_path / "audit" / "segments" / f"{size:020d}.jsonl").write_bytes(b"")
    log = open_log(signer=None)
    assert log.append_blocking("decision", decision(5)).seq == size
    log.close_blocking()
    assert verify_trail(tmp_path / "audit").intact


def test_chunked_and_parallel_rebuilds_agree_and_locate_faults(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks force many chunk boundaries inside and across segments."""
    from sidecar.audit import chunks
    from sidecar.audit.merkle import Frontier, leaf_hash
    from sidecar.audit.rebuild import rebuild

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 3000)
    log = open_log(signer=None, segment_bytes=20_000)
    for i in range(200):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    directory = log.directory
    lines = segment_lines(directory)
    expected = Frontier()
    for line in lines:
        expected.append(leaf_hash(line))
    states = [rebuild(directory, roots_at=[57, 200], workers=w) for w in (1, 2)]
    for state in states:
        assert state.size == 200 and state.head == leaf_hash(lines[-1])
        assert state.frontier.root() == expected.root()
        assert state.roots[200] == expected.root() and 57 in state.roots
        assert state.last_record is not None and state.last_record["seq"] == 199
    assert states[0].roots == states[1].roots

    # Break a line at the start of a chunk (its link is checked across the boundary)
    # and, separately, one inside a chunk: both runs name the same segment and line.
    segment = sorted((directory / "segments").glob("*.jsonl"))[1]
    original = segment.read_bytes()
    ranges = chunks.plan_trail(directory)[1].ranges
    first_of_second_chunk = original[: ranges[1][0]].count(b"\n") + 1
    for line_number in (first_of_second_chunk, first_of_second_chunk + 1):
        seg_lines = original.split(b"\n")
        seg_lines[line_number - 2] = seg_lines[line_number - 2].replace(b"allow", b"deny!")
        segment.write_bytes(b"\n".join(seg_lines))
        messages = []
        for workers in (1, 2):
            with pytest.raises(AuditCorrupt) as caught:
                rebuild(directory, workers=workers)
            messages.append(str(caught.value))
        assert messages[0] == messages[1]
        assert segment.name in messages[0] and f"line {line_number}" in messages[0]
        assert "prev" in messages[0]
        segment.write_bytes(original)


@pytest.mark.parametrize(
    "failure",
    [OSError(11, "Resource temporarily unavailable"), "broken"],
    ids=["cannot-fork", "worker-killed"],
)
def test_a_rebuild_without_worker_processes_is_done_in_one(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch, failure: object
) -> None:
    """A pid limit or a killed worker must slow the start down, not stop the gate."""
    from concurrent.futures.process import BrokenProcessPool

    from sidecar.audit import chunks
    from sidecar.audit.rebuild import rebuild

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 3000)
    log = open_log(signer=None)
    for i in range(60):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    expected = rebuild(log.directory, workers=1)

    def no_pool(*args: object, **kwargs: object) -> object:
        raise failure if isinstance(failure, OSError) else BrokenProcessPool("worker died")

    monkeypatch.setattr(chunks, "ProcessPoolExecutor", no_pool)
    state = rebuild(log.directory, workers=2)
    assert state.size == expected.size == 60 and state.head == expected.head
    assert state.frontier.root() == expected.frontier.root()
    reopened = open_log()  # the daemon's own path, default workers
    assert reopened.append_blocking("decision", decision(60)).seq == 60
