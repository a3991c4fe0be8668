"""Records no run of the gate wrote, as a real gate and ``audit verify`` see them.

rt25 audit review: an exit note signed records a crashed run left and that were forged
afterwards, and silenced verify's warning about them (F1); a record appended after a
clean shutdown's checkpoint was signed by the next start without a word (F2).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.canonical import canonical_bytes
from sidecar.keys import generate_keypair
from tests.daemon import Daemon, refusing_writes

POLICY = """\
version: 1
defaultAction: deny
rules:
  - id: read-data
    action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""
ALLOWED = {"action": "file.read", "path": "/app/data/x"}
DENIED = {"action": "file.read", "path": "/etc/shadow"}


def _leaf(line: bytes) -> str:
    return hashlib.sha256(b"\x00" + line).hexdigest()


def _forge_last_deny(audit: Path) -> int:
    """Turn the last denied decision into an allow and chain the records after it
    again, as someone without the key who can write the volume can; its seq."""
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    lines = segment.read_bytes().split(b"\n")[:-1]
    records = [json.loads(line) for line in lines]
    at = max(i for i, r in enumerate(records) if r["type"] == "decision" and not r["allowed"])
    assert all(r["type"] != "checkpoint" for r in records[at:]), "must be unsigned"
    records[at].update(allowed=True, decision="allow", rule="read-data")
    out, prev = lines[:at], _leaf(lines[at - 1])
    for record in records[at:]:
        record["prev"] = prev
        line = canonical_bytes(record)
        out.append(line)
        prev = _leaf(line)
    segment.write_bytes(b"\n".join(out) + b"\n")
    return int(records[at]["seq"])


def _exit_notes(out: bytes) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == "audit checkpoint"]


def _stopped(daemon: Daemon) -> tuple[bytes, str]:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    out, err = daemon.process.communicate(timeout=30)
    return out, err.decode()


def _remount(mount: Path, mode: str) -> None:
    result = subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot remount {mode}: {result.stderr.decode().strip()}")


def _verify(audit: Path, public: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "verify", str(audit),
         "--public-key", str(public), *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_gate_that_wrote_nothing_prints_no_note_over_a_crashed_runs_records(
    tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    # F1: run 2 started on a read-only volume, wrote nothing, and signed at exit the
    # records run 1 (killed) left, one of them forged meanwhile; given that note,
    # verify said intact with no warning.
    mount = tmpfs("4m")
    audit = mount / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    signed = ("--signing-key", str(key))
    first = Daemon(policy, audit, *signed).start()
    assert first.check(ALLOWED).json()["allowed"] is True
    for _ in range(3):
        assert first.check(DENIED).json()["allowed"] is False
    first.stop(signal.SIGKILL)
    forged = _forge_last_deny(audit)

    _remount(mount, "ro")
    try:
        second = Daemon(policy, audit, *signed).start(wait_ready=False)
        assert second.check(ALLOWED).status_code == 503
        out, err = _stopped(second)
    finally:
        _remount(mount, "rw")
    assert _exit_notes(out) == [], out
    assert f"final checkpoint not written, records 0 to {forged} are not signed" in err
    assert (
        f"no checkpoint is printed in its place: records 0 to {forged} were found unsigned "
        "at start, and no record of this run names them"
    ) in err

    third = Daemon(policy, audit, *signed).start()
    assert third.check(ALLOWED).json()["allowed"] is True
    third.stop()
    result = _verify(audit, public)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"found records (seq 0 to {forged}) that no checkpoint had signed" in result.stderr


def test_an_exit_note_over_found_records_its_startup_names_keeps_their_warning(
    tmp_path: Path,
) -> None:
    # The case the exit note is for still works where the run found records unsigned:
    # it wrote its startup record (naming them) and a decision, then could not write
    # its final checkpoint. Its note verifies and catches nothing wrong, and verify
    # with it still warns of the records the killed run before it left.
    audit = tmp_path / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    signed = ("--signing-key", str(key))
    first = Daemon(policy, audit, *signed).start()
    assert first.check(ALLOWED).json()["allowed"] is True  # seq 2
    first.stop(signal.SIGKILL)

    second = Daemon(policy, audit, *signed).start()
    assert second.check(ALLOWED).json()["audit"]["seq"] == 5  # startup 3, policyLoaded 4
    with refusing_writes(second):
        assert second.check(ALLOWED).status_code == 503
        out, err = _stopped(second)
    [note_line] = _exit_notes(out)
    assert (note_line["treeSize"], note_line["seq"]) == (6, None)
    assert "no checkpoint is printed in its place" not in err
    note = tmp_path / "exit-checkpoint"
    note.write_text(str(note_line["note"]))

    third = Daemon(policy, audit, *signed).start()
    third.stop()
    result = _verify(audit, public, "--checkpoint", str(note))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "found records (seq 0 to 2) that no checkpoint had signed" in result.stderr
    assert "found records (seq 0 to 5)" not in result.stderr  # what the note vouches for
