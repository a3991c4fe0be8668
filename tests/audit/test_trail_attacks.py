"""An attacker with write access to the audit volume, against verify and the gate's start.

Each test builds a real signed trail with ``AuditLog``, changes the files the way
someone holding the volume (not the signing key) could, and runs the real
``tollgate audit verify`` CLI or reopens the trail as the gate does at start.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.verify import verify_trail
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt, AuditUnavailable
from sidecar.keys import public_key_base64
from tests.audit.conftest import decision, fill_volume, records

OpenLog = Callable[..., AuditLog]


@pytest.fixture
def trail(open_log: OpenLog, tmp_path: Path) -> Path:
    log = open_log(tmp_path / "audit", segment_bytes=4000, checkpoint_every=9)
    for i in range(40):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return tmp_path / "audit"


def _verify_cli(
    directory: Path, signer: Signer, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    key = tmp_path / "trusted.pub"
    key.write_text(public_key_base64(signer.public_key) + "\n")
    return subprocess.run(
        [
            sys.executable,
            *("-m", "sidecar.cli", "audit", "verify"),
            str(directory),
            "--public-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_rolled_back_checkpoint_file_is_reported(
    trail: Path, signer: Signer, tmp_path: Path
) -> None:
    # The first step of cutting the trail back to an older checkpoint: copy an older
    # signed note, taken from the trail's own checkpoint records, over DIR/checkpoint.
    notes = [r["note"] for r in records(trail) if r["type"] == "checkpoint"]
    newest = notes[-1]
    assert (trail / "checkpoint").read_text() == newest
    (trail / "checkpoint").write_text(notes[-3])
    result = _verify_cli(trail, signer, tmp_path)
    assert result.returncode == 0  # every record is still there and signed
    older = int(notes[-3].split("\n")[1])
    latest = int(newest.split("\n")[1])
    assert (
        f"checkpoint signs {older} records, but the trail holds a newer checkpoint "
        f"record signing {latest}"
    ) in result.stderr, result.stderr


def test_an_up_to_date_checkpoint_file_gives_no_such_warning(
    trail: Path, signer: Signer, tmp_path: Path
) -> None:
    result = _verify_cli(trail, signer, tmp_path)
    assert result.returncode == 0
    assert "newer checkpoint" not in result.stderr


def test_a_file_named_with_other_digits_is_not_a_segment(trail: Path, open_log: OpenLog) -> None:
    # "\u0660" is ARABIC-INDIC DIGIT ZERO: a regex \d, and int() reads it as 0. Such a
    # file is not a segment Tollgate wrote, and it is ignored like any other stray file
    # rather than taken for a second segment 0 (which stopped the gate from starting).
    first = sorted((trail / "segments").glob("*.jsonl"))[0]
    shutil.copy(first, first.with_name("\u0660" * 20 + ".jsonl"))
    report = verify_trail(trail)
    assert report.intact, report.summary()
    open_log(trail).close_blocking()


def _append_forged_last_record(directory: Path, ts: str) -> None:
    """A well-chained, canonical last record with the given ``ts``."""
    segment = sorted((directory / "segments").glob("*.jsonl"))[-1]
    last = segment.read_bytes().split(b"\n")[-2]
    previous = json.loads(last)
    record = {
        **decision(99),
        "seq": previous["seq"] + 1,
        "ts": ts,
        "type": "decision",
        "prev": hashlib.sha256(b"\x00" + last).hexdigest(),
    }
    with segment.open("ab") as handle:
        handle.write(canonical_bytes(record) + b"\n")


def test_a_timestamp_with_non_ascii_digits_is_not_a_record_timestamp(
    trail: Path, open_log: OpenLog
) -> None:
    _append_forged_last_record(trail, "2026-11-21T22:10:00.12345\u0663Z")
    report = verify_trail(trail)
    assert not report.intact
    assert report.fault is not None and "ts is not an RFC 3339" in report.fault.message
    with pytest.raises(AuditCorrupt, match="ts is not an RFC 3339"):
        open_log(trail)


def test_a_torn_tail_that_does_not_fit_on_the_disk_is_kept_in_the_segment(
    open_log: OpenLog, tmpfs: Callable[[str], Path]
) -> None:
    # At start a torn last line is appended to <segment>.broken, then cut off the
    # segment. With only a little room left, the append to .broken writes part of it
    # (a short write, no error); the rest must not be cut away with nothing holding it.
    mount = tmpfs("1m")
    directory = mount / "audit"
    log = open_log(directory, signer=None)
    log.append_blocking("decision", decision(0))
    log.close_blocking()
    segment = sorted((directory / "segments").glob("*.jsonl"))[-1]
    torn = b'{"action":"file.read","reason":"' + b"t" * 200_000
    with segment.open("ab") as handle:
        handle.write(torn)
    filler = fill_volume(mount)
    with filler.open("r+b") as handle:  # about 16 KiB free: room for part of the tail
        handle.truncate(filler.stat().st_size - 16384)
    with pytest.raises(AuditUnavailable, match="torn end"):
        open_log(directory, signer=None)
    broken = segment.with_name(segment.name + ".broken")
    kept = broken.read_bytes() if broken.exists() else b""
    assert segment.read_bytes().endswith(torn)  # nothing was cut off
    filler.unlink()
    log = open_log(directory, signer=None)  # with room, the recovery completes
    log.close_blocking()
    assert broken.read_bytes() == kept + torn
    assert not segment.read_bytes().endswith(b"t")


@pytest.fixture
def rotated(open_log: OpenLog, tmp_path: Path) -> tuple[Path, Signer, Signer]:
    """A trail signed by one key, then (after a restart) by another."""
    old, new = (Signer(Ed25519PrivateKey.generate()) for _ in range(2))
    for signer in (old, new):
        log = open_log(tmp_path / "audit", signer=signer, checkpoint_every=3)
        log.append_blocking("startup", {})  # a run's first record, as the gate's
        for i in range(5):
            log.append_blocking("decision", decision(i))
        log.close_blocking()
    return tmp_path / "audit", old, new


def test_after_a_key_rotation_every_key_verifies_the_trail(
    rotated: tuple[Path, Signer, Signer],
) -> None:
    directory, old, new = rotated
    assert verify_trail(directory, [old.public_key, new.public_key]).intact


def test_a_checkpoint_by_a_key_not_given_names_that_key(
    rotated: tuple[Path, Signer, Signer],
) -> None:
    directory, old, new = rotated
    report = verify_trail(directory, [new.public_key])
    assert report.fault is not None
    key_id = old.key_id("tollgate/apps/agent-1").hex()
    assert (
        f"signed by key tollgate/apps/agent-1 {key_id}, which is not among the keys given"
        in report.fault.message
    ), report.fault.message
    assert "every key that signed part of the trail" in report.fault.message


def test_without_a_trusted_key_checkpoints_by_several_keys_are_a_warning(
    rotated: tuple[Path, Signer, Signer],
) -> None:
    # Someone who rewrote the end of the trail and signed it with a key of their own
    # also passes the self-consistency check: say that more than one key signed.
    directory, old, new = rotated
    report = verify_trail(directory)
    assert report.intact
    ids = [s.key_id("tollgate/apps/agent-1").hex() for s in (old, new)]
    assert any(
        "signed by 2 different keys" in warning and all(i in warning for i in ids)
        for warning in report.warnings
    ), report.warnings


def _rewrite_without_checkpoints(directory: Path, change: Callable[[dict], None]) -> None:
    """What someone without the key can do to the whole trail: change records, drop
    every checkpoint record, re-chain the rest, and remove DIR/checkpoint."""
    kept = [r for r in records(directory) if r["type"] != "checkpoint"]
    for path in (directory / "segments").iterdir():
        path.unlink()
    (directory / "checkpoint").unlink()
    prev = "0" * 64
    lines = []
    for seq, record in enumerate(kept):
        change(record)
        record.update(seq=seq, prev=prev)
        line = canonical_bytes(record)
        prev = hashlib.sha256(b"\x00" + line).hexdigest()
        lines.append(line + b"\n")
    (directory / "segments" / f"{0:020d}.jsonl").write_bytes(b"".join(lines))


def _deny_everything(record: dict) -> None:
    if record["type"] == "decision":
        record.update(decision="deny", allowed=False)


def test_a_trail_rewritten_without_its_checkpoints_fails_against_the_trusted_key(
    trail: Path, signer: Signer, tmp_path: Path
) -> None:
    _rewrite_without_checkpoints(trail, _deny_everything)
    result = _verify_cli(trail, signer, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing in the trail is signed by the given key" in result.stdout, result.stdout


def test_without_a_key_such_a_trail_is_only_a_warning(trail: Path) -> None:
    # Without a trusted key nothing proves who wrote a trail; that is said as before.
    _rewrite_without_checkpoints(trail, _deny_everything)
    report = verify_trail(trail)
    assert report.intact and report.last_signed_size == 0


def _wipe_segments(trail: Path) -> None:
    for segment in (trail / "segments").iterdir():
        segment.unlink()


def test_a_wiped_trail_fails_against_the_trusted_key(
    trail: Path, signer: Signer, tmp_path: Path
) -> None:
    # Every segment and DIR/checkpoint deleted: "intact: 0 records" passed before.
    _wipe_segments(trail)
    (trail / "checkpoint").unlink()
    result = _verify_cli(trail, signer, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing in the trail is signed by the given key: 0 records" in result.stdout


def test_a_wiped_trail_without_a_key_is_named_in_a_warning(trail: Path) -> None:
    _wipe_segments(trail)
    (trail / "checkpoint").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "verify", str(trail)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("intact: 0 records")
    assert "warning: the trail holds no records" in result.stderr


def test_segments_removed_under_a_checkpoint_are_tampering_not_a_usage_error(
    trail: Path, signer: Signer, tmp_path: Path
) -> None:
    # Exit 2 (usage) before: a script testing for exit 1 (tampered) missed the wipe.
    shutil.rmtree(trail / "segments")
    result = _verify_cli(trail, signer, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "segments/ is missing but checkpoint is there" in result.stdout
