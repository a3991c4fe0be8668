"""``tollgate audit verify``: intact trails pass, every kind of tampering is found and located."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit import chunks
from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import leaf_hash
from sidecar.audit.note import Signer
from sidecar.audit.verify import verify_trail
from sidecar.audit.verify_chunks import canonical_record
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import decision

OpenLog = Callable[..., AuditLog]


def _trail(open_log: OpenLog, count: int = 30, **options: object) -> Path:
    options.setdefault("checkpoint_every", 8)
    log = open_log(**options)
    for i in range(count):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return log.directory


def _segment(directory: Path, index: int = 0) -> Path:
    return sorted((directory / "segments").glob("*.jsonl"))[index]


def _rewrite(path: Path, line: int, new: bytes | None) -> None:
    lines = path.read_bytes().split(b"\n")
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    path.write_bytes(b"\n".join(lines))


def test_intact_trail_summary(open_log: OpenLog, signer: Signer) -> None:
    directory = _trail(open_log, 30)
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert report.intact
    assert report.summary() == "intact: 34 records, 4 checkpoints, last signed size 33"
    assert report.signatures == "public-key"
    assert report.to_json()["intact"] is True


def test_a_changed_byte_is_found_where_it_is(open_log: OpenLog) -> None:
    directory = _trail(open_log, 10, signer=None)
    segment = _segment(directory)
    line = segment.read_bytes().split(b"\n")[4]
    _rewrite(segment, 5, line.replace(b'"allow"', b'"deny"'))
    report = verify_trail(directory)
    assert not report.intact
    assert report.fault is not None
    assert (report.fault.segment, report.fault.line, report.fault.seq) == (
        f"segments/{segment.name}",
        6,
        5,
    )
    assert report.summary().startswith(f"tampered: segments/{segment.name} line 6 (seq 5): prev")


def test_a_record_rehashed_to_hide_a_change_breaks_the_checkpoint(
    open_log: OpenLog, signer: Signer
) -> None:
    """Rewriting a record and every prev after it keeps the chain, but not the signed root."""
    directory = _trail(open_log, 12, checkpoint_every=100)
    segment = _segment(directory)
    lines = segment.read_bytes().split(b"\n")[:-1]
    forged = []
    prev = "0" * 64
    for index, line in enumerate(lines):
        record = json.loads(line)
        record["prev"] = prev
        if index == 3:
            record["decision"], record["allowed"] = "deny", False
        encoded = canonical_bytes(record)
        forged.append(encoded)
        prev = leaf_hash(encoded).hex()
    segment.write_bytes(b"\n".join(forged) + b"\n")
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert not report.intact
    assert "checkpoint root does not match" in report.fault.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda line: line.replace(b'"seq":', b'"seq": '), "not canonical"),
        (lambda line: line.replace(b'"action"', b'"zaction"'), "not canonical"),
        (lambda line: line[:-1] + b',"weight":1.5}', "not canonical"),
        (lambda line: b"[1,2,3]", "not canonical"),
    ],
    ids=["whitespace", "key-order", "float", "not-object"],
)
def test_non_canonical_lines_are_faults(
    open_log: OpenLog, mutation: Callable[[bytes], bytes], message: str
) -> None:
    directory = _trail(open_log, 5, signer=None)
    segment = _segment(directory)
    _rewrite(segment, 2, mutation(segment.read_bytes().split(b"\n")[1]))
    report = verify_trail(directory)
    assert report.fault is not None and message in report.fault.message
    assert report.fault.line == 2


def test_a_deleted_line_is_a_gap(open_log: OpenLog) -> None:
    directory = _trail(open_log, 6, signer=None)
    _rewrite(_segment(directory), 3, None)
    report = verify_trail(directory)
    assert report.fault is not None
    assert "expected 2" in report.fault.message and report.fault.line == 3


def test_truncation_below_the_checkpoint_is_detected(open_log: OpenLog, signer: Signer) -> None:
    directory = _trail(open_log, 20)
    segment = _segment(directory)
    lines = segment.read_bytes().split(b"\n")
    segment.write_bytes(b"\n".join(lines[:10]) + b"\n")
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert not report.intact
    assert report.fault is not None and report.fault.message.startswith("truncated:")


def test_truncation_with_the_checkpoint_file_rolled_back_is_caught_by_an_outside_copy(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _trail(open_log, 20)
    outside = tmp_path / "shipped-checkpoint"
    outside.write_bytes((directory / "checkpoint").read_bytes())
    # Cut the trail back to just after its first checkpoint and put that one in place.
    segment = _segment(directory)
    lines = segment.read_bytes().split(b"\n")[:-1]
    first = next(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    segment.write_bytes(b"\n".join(lines[: first + 1]) + b"\n")
    (directory / "checkpoint").write_text(json.loads(lines[first])["note"])
    assert verify_trail(directory, public_keys=[signer.public_key]).intact
    report = verify_trail(
        directory,
        public_keys=[signer.public_key],
        checkpoint_notes=[(str(outside), outside.read_bytes())],
    )
    assert not report.intact
    assert report.fault is not None and "truncated" in report.fault.message


def test_a_checkpoint_signed_by_another_key_is_rejected(open_log: OpenLog) -> None:
    directory = _trail(open_log, 10)
    stranger = Signer(Ed25519PrivateKey.generate())
    report = verify_trail(directory, public_keys=[stranger.public_key])
    assert not report.intact
    assert "which is not among the keys given" in report.fault.message  # type: ignore[union-attr]


def test_a_forged_signature_in_a_checkpoint_record_is_rejected(
    open_log: OpenLog, signer: Signer
) -> None:
    directory = _trail(open_log, 10)
    segment = _segment(directory)
    lines = segment.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    record = json.loads(lines[index])
    blob = record["note"].rsplit(" ", 1)[1]
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    record["note"] = record["note"].replace(blob, flipped)
    _rewrite(segment, index + 1, canonical_bytes(record))
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert not report.intact
    assert report.fault is not None and report.fault.line == index + 1


def test_without_a_public_key_signatures_are_checked_against_the_recorded_key(
    open_log: OpenLog,
) -> None:
    directory = _trail(open_log, 10)
    report = verify_trail(directory)
    assert report.intact and report.signatures == "embedded"


def test_a_torn_last_line_is_a_warning_not_tampering(open_log: OpenLog) -> None:
    directory = _trail(open_log, 5, signer=None)
    with open(_segment(directory, -1), "ab") as handle:
        handle.write(b'{"half')
    report = verify_trail(directory)
    assert report.intact
    assert any("torn last line (6 bytes" in warning for warning in report.warnings)


def test_an_empty_directory_is_an_intact_empty_trail(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    assert (
        verify_trail(tmp_path).summary() == "intact: 0 records, 0 checkpoints, last signed size 0"
    )


def test_not_an_audit_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_trail(tmp_path / "nope")


def test_chunked_and_parallel_checks_agree_and_locate_faults(
    open_log: OpenLog, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks force many chunk boundaries inside and across segments."""
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 3000)
    directory = _trail(open_log, 200, segment_bytes=20_000, checkpoint_every=13)
    serial = verify_trail(directory, public_keys=[signer.public_key], workers=1)
    parallel = verify_trail(directory, public_keys=[signer.public_key], workers=2)
    assert serial.intact and parallel.intact, (serial.summary(), parallel.summary())
    assert serial.summary() == parallel.summary()
    segment = _segment(directory, 1)
    lines = segment.read_bytes().split(b"\n")
    _rewrite(segment, 17, lines[16].replace(b"file.read", b"file.Read"))
    faults = [
        verify_trail(directory, public_keys=[signer.public_key], workers=w).fault for w in (1, 2)
    ]
    assert faults[0] == faults[1]
    assert faults[0] is not None
    assert (faults[0].segment, faults[0].line) == (f"segments/{segment.name}", 18)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_fast_canonical_check_agrees_with_canonical_bytes(value: dict[str, object]) -> None:
    line = canonical_bytes(value)
    assert canonical_record(line) == value
    spaced = line.replace(b":", b": ", 1)
    if spaced != line:
        assert canonical_record(spaced) is None or canonical_bytes(json.loads(spaced)) == spaced


@pytest.mark.parametrize("other_count", [30, 12], ids=["longer", "shorter"])
def test_a_checkpoint_of_another_log_is_named_as_such(
    open_log: OpenLog, signer: Signer, tmp_path: Path, other_count: int
) -> None:
    # Two replicas sharing one key, each with its own origin (docs/deploy.md): the other
    # replica's note must not pass for this trail, and the message must say why rather
    # than call a whole trail truncated or its records changed.
    directory = _trail(open_log, 20)
    other = _trail(open_log, other_count, directory=tmp_path / "other", identity="apps/agent-2")
    note = (other / "checkpoint").read_bytes()
    report = verify_trail(
        directory, public_keys=[signer.public_key], checkpoint_notes=[("other", note)]
    )
    assert not report.intact
    assert report.fault is not None
    assert "or it is a checkpoint of another log" in report.fault.message
    assert "apps/agent-2" in report.fault.message and "apps/agent-1" in report.fault.message
    expected = "truncated: " if other_count > 20 else "other root does not match"
    assert report.fault.message.startswith(expected), report.fault.message


def test_a_trail_cut_back_past_an_origin_change_is_still_called_truncated(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    # Second review: the default origin changes with the pod's name, so a trail holds
    # several; cut back to before the second, its note is of an origin the trail no
    # longer shows, and the fault must still say truncated first.
    directory = tmp_path / "audit"
    first = open_log(directory, checkpoint_every=8, identity="apps/pod-a")
    for i in range(10):
        first.append_blocking("decision", decision(i))
    first.close_blocking()
    second = open_log(directory, checkpoint_every=8, identity="apps/pod-b")
    for i in range(10):
        second.append_blocking("decision", decision(i))
    second.close_blocking()
    note = (directory / "checkpoint").read_bytes()
    assert b"apps/pod-b" in note
    segment = _segment(directory)
    lines = segment.read_bytes().split(b"\n")[:-1]
    segment.write_bytes(b"\n".join(lines[:12]) + b"\n")  # pod-a's checkpoints kept
    (directory / "checkpoint").unlink()  # else it is the first copy found cut short
    report = verify_trail(
        directory, public_keys=[signer.public_key], checkpoint_notes=[("kept", note)]
    )
    assert report.origins == ["tollgate/apps/pod-a"]
    assert report.fault is not None
    assert report.fault.message.startswith(
        "truncated: kept signs 23 records but the trail holds 12"
    )
