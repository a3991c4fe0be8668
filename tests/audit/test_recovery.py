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
        # A run starts with its startup record, as the gate's does (docs/audit.md).
        log.append_blocking(*(("startup", {}) if i == 0 else ("decision", decision(i))))
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


# ---------------------------------------------------------------------- power loss: holes
#
# After a power loss, ext4 or XFS can leave the newest segment longer than what reached
# the disk: the blocks of the last batch that were never written read as NUL bytes, and
# lines of the same batch in blocks that were written may follow them. No record of that
# batch was answered (its fdatasync never returned), so from the line holding the first
# NUL on, the segment is a torn tail (docs/audit.md, "Startup and crashes").


def _signed_then_unsynced(open_log: OpenLog, signed: int, unsynced: int) -> Path:
    """``signed`` records and the checkpoint of a clean close, then ``unsynced`` more
    records that no checkpoint covers (standing for a batch a power loss caught)."""
    _fill(open_log, signed)
    return _fill(open_log, unsynced, signer=None)


def _line_offsets(data: bytes) -> list[int]:
    """The offset at which each line of ``data`` starts."""
    offsets = [0]
    for line in data.split(b"\n")[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    return offsets


def _punch(data: bytes, start: int, end: int) -> bytes:
    """``data`` with ``data[start:end]`` read back as a hole: NUL bytes, same length."""
    return data[:start] + b"\0" * (end - start) + data[end:]


def _assert_recovered(
    open_log: OpenLog, tmp_path: Path, segment: Path, damaged: bytes, cut: int
) -> None:
    """The gate opens, moves ``damaged[cut:]`` aside, records it, and goes on from there."""
    directory = tmp_path / "audit"
    seq = int(segment.stem) + damaged[:cut].count(b"\n")  # the first record cut off
    log = open_log()
    broken = segment.with_name(segment.name + ".broken")
    assert broken.read_bytes() == damaged[cut:]
    assert segment.read_bytes().startswith(damaged[:cut])
    recovery = records(directory)[seq]
    assert recovery["type"] == "recovery" and recovery["seq"] == seq
    body = {k: v for k, v in recovery.items() if k not in ("seq", "ts", "type", "prev")}
    assert body == {  # the fields of a torn tail's recovery record, no others
        "segment": segment.name,
        "droppedBytes": len(damaged) - cut,
        "brokenFile": broken.name,
        "brokenOffset": 0,
    }
    assert log.append_blocking("decision", decision(99)).seq == recovery["seq"] + 1
    log.close_blocking()
    report = verify_trail(directory)
    assert report.intact, report.summary()


def test_a_hole_at_the_end_of_the_newest_segment_is_moved_aside(
    open_log: OpenLog, tmp_path: Path
) -> None:
    segment = _signed_then_unsynced(open_log, 3, 4)
    data = segment.read_bytes()
    last = _line_offsets(data)[-2]  # the last record's line
    damaged = _punch(data, last + 17, len(data))  # its end, newline included, never written
    segment.write_bytes(damaged)
    _assert_recovered(open_log, tmp_path, segment, damaged, last)


def test_a_hole_followed_by_lines_written_later_is_moved_aside(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """``rec\\nre\\0\\0…\\0c-tail\\n{rec}\\n``: the hole starts mid-line and the batch's
    later blocks, complete lines among them, did reach the disk."""
    segment = _signed_then_unsynced(open_log, 3, 4)
    data = segment.read_bytes()
    lines = _line_offsets(data)
    start = lines[-4]  # the second of the four unsynced records (seq 5)
    damaged = _punch(data, start + 30, lines[-3] + 30)  # into the third one
    segment.write_bytes(damaged)
    assert damaged.endswith(data[lines[-2] :])  # the last record is whole, after the hole

    report = verify_trail(tmp_path / "audit")
    assert not report.intact and report.fault is not None
    assert (report.fault.line, report.fault.seq) == (6, 5)
    assert "NUL bytes" in report.fault.message and "power loss" in report.fault.message
    assert f"{segment.name}.broken" in report.fault.message

    _assert_recovered(open_log, tmp_path, segment, damaged, start)
    # 0 to 4, the recovery record, decision 99, the checkpoint of the close
    assert [r["seq"] for r in records(tmp_path / "audit")] == list(range(8))


def test_verify_names_the_hole_before_the_gate_repairs_it(
    open_log: OpenLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.audit.test_commands import run

    segment = _signed_then_unsynced(open_log, 3, 4)
    data = segment.read_bytes()
    start = _line_offsets(data)[-3]
    segment.write_bytes(_punch(data, start + 5, start + 600))
    capsys.readouterr()  # the checkpoint lines the gate printed
    assert run("audit", "verify", str(tmp_path / "audit")) == 1
    out = capsys.readouterr().out
    assert out.startswith(
        f"tampered: segments/{segment.name} line 7 (seq 6): holds NUL bytes (disk blocks "
        "never written): a power loss can leave them at the end of the newest segment"
    )
    open_log().close_blocking()
    capsys.readouterr()
    assert run("audit", "verify", str(tmp_path / "audit")) == 0
    assert capsys.readouterr().out.startswith("intact: ")


def _segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "audit" / "segments").glob("*.jsonl"))


def _refused_untouched(open_log: OpenLog, tmp_path: Path, match: str) -> str:
    """Opening refuses with ``match`` and leaves every file as it was: no repair."""
    directory = tmp_path / "audit"
    before = {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    with pytest.raises(AuditCorrupt, match=match) as caught:
        open_log()
    after = {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    assert after == before
    return str(caught.value)


def test_a_hole_in_a_segment_before_the_newest_refuses_to_start(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """A segment is synced before the next is written: a power loss cannot leave a hole
    in it, even when the newest is empty (a crash right after rotation)."""
    _fill(open_log, 40, signer=None, segment_bytes=4096)
    segments = _segments(tmp_path)
    assert len(segments) >= 3
    segments[-1].write_bytes(b"")
    older = segments[-2]
    data = older.read_bytes()
    last = _line_offsets(data)[-2]
    older.write_bytes(_punch(data, last + 40, len(data) - 1))  # its newline was written
    line = data.count(b"\n")
    message = _refused_untouched(open_log, tmp_path, "before the newest")
    assert message.startswith(f"audit trail corrupt at segments/{older.name} line {line}: ")
    assert "NUL bytes" in message and "a power loss cannot leave them" in message

    report = verify_trail(tmp_path / "audit")
    assert report.fault is not None and report.fault.segment == f"segments/{older.name}"
    assert report.fault.line == line and "before the newest" in report.fault.message


def test_a_hole_in_a_line_that_passes_the_start_checks_is_found(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """NULs after a line's ``prev`` and before its closing brace, in an older segment:
    the line still starts with ``{``, ends with ``}`` and links; the NULs name it."""
    _fill(open_log, 40, signer=None, segment_bytes=4096)
    first = _segments(tmp_path)[0]
    data = first.read_bytes()
    start, end = _line_offsets(data)[2:4]
    first.write_bytes(_punch(data, end - 60, end - 10))
    assert b'"prev"' in data[start : end - 60] and data[end - 2 : end] == b"}\n"
    message = _refused_untouched(open_log, tmp_path, f"{first.name} line 3: holds NUL bytes")
    assert "before the newest" in message


def test_a_checkpoint_signing_records_in_the_hole_refuses_to_start(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """DIR/checkpoint is replaced only after the records it signs are synced: a hole
    among them is not a power loss, and nothing is repaired."""
    segment = _fill(open_log, 8)  # records 0-7, the checkpoint record 8 signing them
    data = segment.read_bytes()
    start = _line_offsets(data)[5]
    segment.write_bytes(_punch(data, start + 30, start + 200))
    message = _refused_untouched(open_log, tmp_path, "records were removed")
    assert (
        f"signs 8 records but the trail holds 5 before the torn end of segments/{segment.name}"
        in message
    )
    assert not segment.with_name(segment.name + ".broken").exists()


def test_a_hole_just_after_the_signed_records_is_repaired(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """The checkpoint record itself is not among the records DIR/checkpoint signs."""
    segment = _fill(open_log, 8)
    data = segment.read_bytes()
    start = _line_offsets(data)[8]  # the checkpoint record
    damaged = _punch(data, start + 10, len(data) - 1)
    segment.write_bytes(damaged)
    _assert_recovered(open_log, tmp_path, segment, damaged, start)


def test_one_nul_byte_before_a_valid_tail_moves_the_tail_aside_intact(
    open_log: OpenLog, tmp_path: Path
) -> None:
    """What someone who can write the volume gets from the repair: the records after the
    last signed checkpoint moved aside, which they could already cut off without a trace.
    Here the bytes are kept in .broken, exactly, and the recovery record says so."""
    segment = _signed_then_unsynced(open_log, 3, 30)
    data = segment.read_bytes()
    start = _line_offsets(data)[6]
    damaged = data[: start + 50] + b"\0" + data[start + 51 :]
    segment.write_bytes(damaged)
    _assert_recovered(open_log, tmp_path, segment, damaged, start)
    broken = segment.with_name(segment.name + ".broken").read_bytes()
    assert broken.split(b"\n")[1:] == data[start:].split(b"\n")[1:]  # 29 whole records


def test_chunked_and_parallel_rebuilds_find_the_same_hole(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks, so the newest segment is cut at its hole across chunk boundaries,
    and a NUL in an older segment is found by a worker process."""
    from sidecar.audit import chunks
    from sidecar.audit.rebuild import rebuild

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 3000)
    _fill(open_log, 120, signer=None, segment_bytes=20_000)
    directory = tmp_path / "audit"
    first, *_, newest = _segments(tmp_path)
    data = newest.read_bytes()
    start = _line_offsets(data)[30]
    newest.write_bytes(_punch(data, start + 9, start + 5000))
    states = [rebuild(directory, workers=workers) for workers in (1, 2)]
    for state in states:
        assert state.size == int(newest.stem) + 30
        assert state.torn is not None and state.torn.offset == start
        assert state.torn.data == newest.read_bytes()[start:]
    assert states[0].frontier.root() == states[1].frontier.root()

    older = first.read_bytes()
    line = _line_offsets(older)[40]
    first.write_bytes(_punch(older, line + 9, line + 20))
    for workers in (1, 2):
        with pytest.raises(AuditCorrupt, match=f"{first.name} line 41: holds NUL bytes"):
            rebuild(directory, workers=workers)
