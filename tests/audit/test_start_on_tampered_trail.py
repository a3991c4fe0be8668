"""The start-up checks against a trail someone changed while no gate ran. Found in the
review of 2026-12-06 (findings 1 to 3, as the sections below name them).

1. ``DIR/checkpoint`` of size n signs records 0 ... n-1; record n is the checkpoint
   record written with it, which nothing signs yet. A start took it for that record
   without looking, so a record forged in its place was signed by the next checkpoint
   and verified intact, with no ``unsignedAtStart`` and no warning.
2. The gate started on trails ``verify`` calls tampered (a damaged ``.start`` of a
   segment other than the checkpoint's; a final checkpoint record damaged in place) and
   signed new checkpoints over the damage.
3. A ``.start`` not in its documented form (canonical JSON, no newline) passed.

Each test builds a real signed trail with ``AuditLog``, changes the files as someone
holding the volume (not the key) could, reopens it as the gate does at start and runs
the real ``tollgate audit verify`` CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit import chunks
from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.rebuild import rebuild
from sidecar.audit.segments import list_segments, start_path
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt
from sidecar.keys import public_key_base64
from tests.audit.conftest import decision, records
from tests.daemon import Daemon

OpenLog = Callable[..., AuditLog]


# ---------------------------------------------------------------------- helpers


def _signed_trail(open_log: OpenLog, directory: Path, count: int = 40, **options: Any) -> Path:
    log = open_log(directory, **options)
    for index in range(count):
        # A run starts with its startup record, as the gate's does (docs/audit.md).
        log.append_blocking(*(("startup", {}) if index == 0 else ("decision", decision(index))))
    log.close_blocking()
    return directory


def _verify(
    directory: Path, signer: Signer, tmp_path: Path, *notes: str
) -> subprocess.CompletedProcess[str]:
    """``tollgate audit verify DIR --public-key K [--checkpoint NOTE]...``."""
    key = tmp_path / "trusted.pub"
    key.write_text(public_key_base64(signer.public_key) + "\n")
    copies: list[str] = []
    for index, note in enumerate(notes):
        copy = tmp_path / f"logged-{index}.note"
        copy.write_text(note)
        copies += ["--checkpoint", str(copy)]
    return subprocess.run(
        [
            sys.executable,
            *("-m", "sidecar.cli", "audit", "verify", str(directory)),
            *("--public-key", str(key), *copies),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _segment_lines(segment: Path) -> list[bytes]:
    return segment.read_bytes().split(b"\n")[:-1]


def _write_lines(segment: Path, lines: list[bytes]) -> None:
    segment.write_bytes(b"".join(line + b"\n" for line in lines))


def _leaf(line: bytes) -> str:
    return hashlib.sha256(b"\x00" + line).hexdigest()


def _forge_record_at(directory: Path, seq: int) -> dict[str, Any]:
    """Put a decision (allow /etc/shadow) in place of record ``seq`` of the newest
    segment, with the chain after it recomputed: a forger who knows the format, not
    the key."""
    segment = list_segments(directory)[-1]
    lines = _segment_lines(segment.path)
    index = seq - segment.first_seq
    record = json.loads(lines[index])
    forged = {
        **decision(999, request={"action": "file.read", "path": "/etc/shadow"}),
        "decisionId": "01M95BTFORGEDFORGEDFORGED0",
        "seq": seq,
        "ts": record["ts"],
        "type": "decision",
        "prev": record["prev"],
    }
    lines[index] = canonical_bytes(forged)
    for later in range(index + 1, len(lines)):
        record = json.loads(lines[later])
        record["prev"] = _leaf(lines[later - 1])
        lines[later] = canonical_bytes(record)
    _write_lines(segment.path, lines)
    return forged


def _checkpoint_size(directory: Path) -> int:
    return int((directory / "checkpoint").read_text().split("\n")[1])


def _start_as_the_gate_does(log: AuditLog) -> None:
    """What ``tollgate serve`` writes first: a startup record naming unsignedAtStart."""
    found = log.unsigned_at_open
    extra = {} if found is None else {"unsignedAtStart": {"from": found[0], "to": found[1]}}
    log.append_blocking("startup", {"version": "test", "identity": "apps/agent-1", **extra})
    log.append_blocking("decision", decision(500))
    log.close_blocking()


# ------------------------------------------------ finding 1: the record at size n


def test_a_record_forged_in_place_of_the_final_checkpoint_record_is_unsigned_at_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    logged = (directory / "checkpoint").read_text()  # as kept off the pod (stdout)
    size = _checkpoint_size(directory)
    final = records(directory)[-1]
    assert (final["seq"], final["type"]) == (size, "checkpoint")
    _forge_record_at(directory, size)

    log = open_log(directory)
    assert log.unsigned_at_open == (size, size)
    _start_as_the_gate_does(log)

    startup = [r for r in records(directory) if r["type"] == "startup"][-1]
    assert startup["unsignedAtStart"] == {"from": size, "to": size}
    result = _verify(directory, signer, tmp_path, logged, (directory / "checkpoint").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    # Both say it: the start that found it, and the record at the logged note's size.
    assert f"found records (seq {size} to {size}) that no checkpoint had signed" in result.stderr
    assert (
        f"signs {size} records, so the record at seq {size} should be the checkpoint record "
        "written with it, but it is a decision record"
    ) in result.stderr, result.stderr


def test_verify_names_the_record_in_place_of_the_checkpoint_record_before_any_restart(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    size = _checkpoint_size(directory)
    _forge_record_at(directory, size)
    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the record at seq {size} should be the checkpoint record" in result.stderr


def test_an_intact_final_checkpoint_record_still_counts_as_covered(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    log = open_log(directory)
    assert log.unsigned_at_open is None
    _start_as_the_gate_does(log)
    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 0 and "should be the checkpoint record" not in result.stderr
    assert "no checkpoint had signed" not in result.stderr, result.stderr


@pytest.mark.parametrize("replace_it", [False, True], ids=["intact", "forged"])
def test_the_record_at_the_checkpoints_size_is_looked_up_mid_trail(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replace_it: bool
) -> None:
    # A signed run, then one without a key (the README's order the other way round):
    # record n, the signed run's final checkpoint record, is then in the middle of the
    # trail, inside a chunk, and unsigned records follow it.
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 2000)
    directory = _signed_trail(open_log, tmp_path / "audit", count=10, checkpoint_every=1000)
    size = _checkpoint_size(directory)
    _signed_trail(open_log, directory, count=20, signer=None)
    total = len(records(directory))
    assert records(directory)[size]["type"] == "checkpoint" and total > size + 10
    if replace_it:
        _forge_record_at(directory, size)

    log = open_log(directory)
    assert log.unsigned_at_open == (size if replace_it else size + 1, total - 1)
    log.close_blocking()


def test_the_rebuild_finds_a_line_inside_a_chunk_with_and_without_workers(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 2000)
    directory = _signed_trail(open_log, tmp_path / "audit", count=60, checkpoint_every=9)
    lines = _segment_lines(list_segments(directory)[0].path)
    wanted = [7, 9, 31, len(lines) - 1]  # decisions (read again) and checkpoint records
    for workers in (1, 2):
        found = rebuild(directory, workers=workers, lines_at=wanted)
        assert {seq: found.lines[seq][1:] for seq in wanted} == {
            seq: (seq + 1, lines[seq]) for seq in wanted
        }


def test_a_gate_restarted_on_a_forged_checkpoint_record_names_it_in_its_startup_record(
    tmp_path: Path,
) -> None:
    # The review's reproduction, end to end: real gates, a real SIGTERM in between.
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "keygen", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaultAction: deny\nrules: []\n")
    audit = tmp_path / "audit"
    for run in range(2):
        daemon = Daemon(policy, audit, "--signing-key", str(keys / "tollgate.key")).start()
        try:
            assert daemon.check({"action": "file.read", "path": "/etc/hostname"}).status_code == 200
        finally:
            daemon.stop(signal.SIGTERM)
        if run == 0:
            size = _checkpoint_size(audit)
            assert records(audit)[-1]["type"] == "checkpoint"
            _forge_record_at(audit, size)
    starts = [r for r in records(audit) if r["type"] == "startup"]
    assert starts[1]["unsignedAtStart"] == {"from": size, "to": size}


# -------------------------------------------------- finding 2: .start files at start


def _multi_segment_trail(open_log: OpenLog, directory: Path) -> Path:
    _signed_trail(open_log, directory, count=60, segment_bytes=2500, checkpoint_every=9)
    assert len(list_segments(directory)) >= 6
    return directory


def _zero_frontier(path: Path) -> None:
    data = json.loads(path.read_bytes())
    data["frontier"][0] = "00" * 32
    path.write_bytes(canonical_bytes(data))


def _zero_prev(path: Path) -> None:
    data = json.loads(path.read_bytes())
    data["prev"] = "00" * 32
    path.write_bytes(canonical_bytes(data))


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _spaces(path: Path) -> None:  # finding 3
    path.write_text(json.dumps(json.loads(path.read_bytes())))


def _newline(path: Path) -> None:  # finding 3
    path.write_bytes(path.read_bytes() + b"\n")


def _extra_key(path: Path) -> None:
    data = json.loads(path.read_bytes())
    data["note"] = "x"
    path.write_bytes(canonical_bytes(data))


DAMAGE = {
    "zeroed-frontier": (_zero_frontier, "does not match the records"),
    "zeroed-prev": (_zero_prev, "does not"),
    "garbage": (_garbage, "is malformed"),
    "a-directory": (_directory, "not a regular file"),
    "a-fifo": (_fifo, "not a regular file"),
    "spaces": (_spaces, "not in the form the gate writes"),
    "trailing-newline": (_newline, "not in the form the gate writes"),
    "extra-key": (_extra_key, "is malformed"),
}


def _older_start(directory: Path) -> Path:
    """The .start of a segment before the one DIR/checkpoint's size falls in."""
    size = _checkpoint_size(directory)
    segments = [s for s in list_segments(directory) if s.first_seq > 0]
    before = [s for s in segments if s.first_seq <= size][:-1]
    assert len(before) >= 2
    return start_path(before[len(before) // 2].path)


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_start_before_the_checkpoints_segment_refuses_to_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path, damage: str
) -> None:
    directory = _multi_segment_trail(open_log, tmp_path / "audit")
    change, refusal = DAMAGE[damage]
    path = _older_start(directory)
    change(path)

    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 1 and "tampered" in result.stdout, result.stdout + result.stderr
    with pytest.raises(AuditCorrupt, match=refusal) as refused:
        open_log(directory)
    assert path.name in str(refused.value)


@pytest.mark.parametrize("damage", ["zeroed-frontier", "spaces"])
def test_a_damaged_start_after_the_checkpoints_segment_refuses_to_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path, damage: str
) -> None:
    # DIR/checkpoint older than the trail: segments after its own are folded at start.
    directory = _multi_segment_trail(open_log, tmp_path / "audit")
    notes = [r["note"] for r in records(directory) if r["type"] == "checkpoint"]
    (directory / "checkpoint").write_text(notes[1])
    size = _checkpoint_size(directory)
    later = [s for s in list_segments(directory) if s.first_seq > size]
    path = start_path(later[1].path)
    change, refusal = DAMAGE[damage]
    change(path)

    assert _verify(directory, signer, tmp_path).returncode == 1
    with pytest.raises(AuditCorrupt, match=refusal) as refused:
        open_log(directory)
    assert path.name in str(refused.value)


def test_a_forged_frontier_in_the_oldest_start_left_after_a_prune_refuses_to_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _multi_segment_trail(open_log, tmp_path / "audit")
    segments = list_segments(directory)
    segments[0].path.unlink()  # a prune: the oldest segment shipped off and deleted
    oldest = start_path(segments[1].path)
    _zero_frontier(oldest)

    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 1 and "root does not match" in result.stdout, result.stdout
    with pytest.raises(AuditCorrupt, match="does not match the records after it") as refused:
        open_log(directory)
    assert oldest.name in str(refused.value)


def test_intact_start_files_and_a_prune_still_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _multi_segment_trail(open_log, tmp_path / "audit")
    open_log(directory).close_blocking()
    list_segments(directory)[0].path.unlink()
    start_path(list_segments(directory)[2].path).unlink()  # a middle one missing: fine
    log = open_log(directory)
    log.append_blocking("decision", decision(77))
    log.close_blocking()
    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------ finding 2: the final checkpoint record damaged


def _rename_note(line: bytes) -> bytes:
    assert b'{"note":' in line
    return line.replace(b'{"note":', b'{"nnte":', 1)  # still canonical: nnte < origin


def _flip_root_hash(line: bytes) -> bytes:
    record = json.loads(line)
    root = record["rootHash"]
    record["rootHash"] = ("B" if root[0] != "B" else "C") + root[1:]
    return canonical_bytes(record)


def _grow_the_note(line: bytes) -> bytes:
    record = json.loads(line)
    record["note"] = record["note"].replace("\n", "x\n", 1)  # one byte into its origin line
    return canonical_bytes(record)


@pytest.mark.parametrize(
    "change",
    [_rename_note, _flip_root_hash, _grow_the_note],
    ids=["no-note", "wrong-rootHash", "byte-inserted-in-note"],
)
def test_a_final_checkpoint_record_damaged_in_place_refuses_to_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path, change: Callable[[bytes], bytes]
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    segment = list_segments(directory)[-1]
    lines = _segment_lines(segment.path)
    assert json.loads(lines[-1])["type"] == "checkpoint"
    lines[-1] = change(lines[-1])
    _write_lines(segment.path, lines)

    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 1 and "checkpoint" in result.stdout, result.stdout
    with pytest.raises(AuditCorrupt, match=f"{segment.name} line {len(lines)}: checkpoint"):
        open_log(directory)


def test_a_damaged_checkpoint_record_after_the_stored_checkpoint_refuses_to_start(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    # Records after DIR/checkpoint's size are unsigned, so a forger may change one and
    # rechain the rest; the checkpoint record after it then carries a root that is not
    # the records', a fault for verify, and the gate must not sign over it.
    directory = _signed_trail(open_log, tmp_path / "audit", count=60, checkpoint_every=9)
    notes = [r["note"] for r in records(directory) if r["type"] == "checkpoint"]
    (directory / "checkpoint").write_text(notes[-3])
    size = _checkpoint_size(directory)
    target = [r["seq"] for r in records(directory) if r["type"] == "checkpoint"][-2]
    assert target - 1 > size
    (segment,) = list_segments(directory)
    lines = _segment_lines(segment.path)
    changed = json.loads(lines[target - 1])
    assert changed["type"] == "decision"
    changed["reason"] = "forged"
    lines[target - 1] = canonical_bytes(changed)
    for index in range(target, len(lines)):
        record = json.loads(lines[index])
        record["prev"] = _leaf(lines[index - 1])
        lines[index] = canonical_bytes(record)
    _write_lines(segment.path, lines)

    result = _verify(directory, signer, tmp_path)
    assert result.returncode == 1 and "checkpoint root does not match" in result.stdout
    with pytest.raises(AuditCorrupt, match=f"line {target + 1}: checkpoint root does not match"):
        open_log(directory)


# -------------------------- review of 2026-12-07: DIR/checkpoint removed, or every one


def test_a_removed_checkpoint_file_is_stood_for_by_the_newest_checkpoint_record(
    open_log: OpenLog, signer: Signer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A start took a trail without DIR/checkpoint for one never signed, and the next
    # checkpoint signed every record as found, in silence.
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    size = _checkpoint_size(directory)
    (directory / "checkpoint").unlink()

    log = open_log(directory)
    assert log.unsigned_at_open is None  # the checkpoint record at `size` signs 0 .. size-1
    assert (
        f"{directory / 'checkpoint'} is missing, but the trail holds checkpoint records this "
        f"gate's key signed, the newest at seq {size}"
    ) in caplog.text
    _start_as_the_gate_does(log)
    assert _verify(directory, signer, tmp_path).returncode == 0


def test_a_removed_checkpoint_file_does_not_hide_a_record_forged_after_the_last_signed(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    size = _checkpoint_size(directory)
    (directory / "checkpoint").unlink()
    _forge_record_at(directory, size)  # the final checkpoint record replaced too

    log = open_log(directory)
    # The newest checkpoint record left signs fewer records; the rest are found unsigned.
    assert log.unsigned_at_open is not None and log.unsigned_at_open[1] == size


def test_a_trail_without_any_checkpoint_is_signed_as_found_and_the_start_says_so(
    open_log: OpenLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a run without --signing-key leaves, what a signed run killed before its first
    # checkpoint leaves (the likeliest, named first: rt26 crash review, F3), and what a
    # trail rewritten with every checkpoint dropped looks like: the start cannot tell
    # them apart, so it says all of them.
    directory = _signed_trail(open_log, tmp_path / "audit", count=12, signer=None)
    log = open_log(directory)
    assert log.unsigned_at_open == (0, 11)
    assert (
        f"the trail holds records (seq 0 to 11) but no {directory / 'checkpoint'} and no "
        "checkpoint record: the gate ended before its first checkpoint (a crash or kill "
        "within its first 10 s or 1000 records), or ran without --signing-key before, or "
        "its key changed, or the trail was rewritten with its checkpoints dropped"
    ) in caplog.text


def test_checkpoint_records_of_another_key_do_not_stand_for_the_file(
    open_log: OpenLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", count=30, checkpoint_every=9)
    (directory / "checkpoint").unlink()
    log = open_log(directory, signer=Signer(Ed25519PrivateKey.generate()))  # a new key
    assert log.unsigned_at_open is not None and log.unsigned_at_open[0] == 0
    assert "no checkpoint record this gate's key signed" in caplog.text


def test_without_the_file_the_newest_record_the_gates_key_signed_stands_for_it(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    # Second review (2026-12-07): only the newest checkpoint record was looked at, so
    # records signed after a key rotation (or one forged there) had the start sign the
    # whole trail as found.
    directory = _signed_trail(open_log, tmp_path / "audit", count=30, checkpoint_every=9)
    ours = _checkpoint_size(directory)
    _signed_trail(
        open_log,
        directory,
        count=20,
        checkpoint_every=9,
        signer=Signer(Ed25519PrivateKey.generate()),
    )
    (directory / "checkpoint").unlink()

    log = open_log(directory)  # the first key again
    assert log.unsigned_at_open is not None
    assert log.unsigned_at_open[0] == ours + 1  # what came after its newest record


def test_a_checkpoint_record_whose_signature_by_the_gates_key_fails_refuses_the_start(
    open_log: OpenLog, tmp_path: Path
) -> None:
    directory = _signed_trail(open_log, tmp_path / "audit", checkpoint_every=9)
    (directory / "checkpoint").unlink()
    segment = list_segments(directory)[-1]
    lines = _segment_lines(segment.path)
    final = json.loads(lines[-1])
    assert final["type"] == "checkpoint"
    signature_line = final["note"].rstrip("\n").split("\n")[-1]
    encoded = signature_line.rsplit(" ", 1)[1]
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    final["note"] = final["note"].replace(encoded, base64.b64encode(bytes(raw)).decode())
    lines[-1] = canonical_bytes(final)  # the last record: no link after it to break
    _write_lines(segment.path, lines)

    with pytest.raises(AuditCorrupt, match=r"its signature by this gate.s key does not verify"):
        open_log(directory)
