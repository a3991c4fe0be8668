"""Records no run of the gate wrote, as a real gate and ``audit verify`` see them.

rt25 audit review: an exit note signed records a crashed run left and that were forged
afterwards, and silenced verify's warning about them (F1); a record appended after a
clean shutdown's checkpoint was signed by the next start without a word (F2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.canonical import canonical_bytes
from sidecar.keys import generate_keypair, load_public_key
from tests.daemon import Daemon, free_port, refusing_writes

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


def _append_after_shutdown(audit: Path, *, new_segment: bool = False) -> int:
    """After a clean shutdown, add a copy of the last deny turned into an allow, chained
    to the shutdown checkpoint (in a segment of its own if ``new_segment``); its seq."""
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    lines = segment.read_bytes().split(b"\n")[:-1]
    last = json.loads(lines[-1])
    assert (last["type"], last["reason"]) == ("checkpoint", "shutdown")
    denied = [r for r in map(json.loads, lines) if r["type"] == "decision"][-1]
    denied.update(seq=last["seq"] + 1, prev=_leaf(lines[-1]), allowed=True, decision="allow")
    line = canonical_bytes(denied) + b"\n"
    if new_segment:
        (audit / "segments" / f"{last['seq'] + 1:020d}.jsonl").write_bytes(line)
    else:
        with segment.open("ab") as handle:
            handle.write(line)
    return int(denied["seq"])


@pytest.mark.parametrize("new_segment", [False, True])
def test_a_record_after_a_shutdown_checkpoint_refuses_the_start_and_fails_verify(
    tmp_path: Path, new_segment: bool
) -> None:
    # F2: it was signed by the next start without a word, and verify gave only the
    # generic warning about records found unsigned (a crash, a kill, a full disk).
    audit = tmp_path / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    signed = ("--signing-key", str(key))
    first = Daemon(policy, audit, *signed).start()
    assert first.check(DENIED).json()["audit"]["seq"] == 2
    first.stop()  # seq 3 shutdown, seq 4 checkpoint (reason shutdown)
    forged = _append_after_shutdown(audit, new_segment=new_segment)
    assert forged == 5
    before = sorted((p.name, p.read_bytes()) for p in audit.rglob("*") if p.is_file())

    result = _verify(audit, public)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("tampered: segments/"), result.stdout
    assert "(seq 5): a decision record follows the shutdown checkpoint at seq 4" in result.stdout

    started = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
         "--audit-dir", str(audit), "--port", str(free_port()), *signed],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert started.returncode == 1, started.stderr
    assert "audit trail is corrupt, refusing to start" in started.stderr
    assert (
        "records seq 5 to 5 come after the shutdown checkpoint at seq 4, the first a "
        "decision record"
    ) in started.stderr
    # Left as found, for whoever investigates.
    assert sorted((p.name, p.read_bytes()) for p in audit.rglob("*") if p.is_file()) == before


def test_restarts_after_clean_shutdowns_verify_without_a_fault(tmp_path: Path) -> None:
    # The records that do follow a shutdown checkpoint: the next run's startup record,
    # and its recovery record where it found a torn last line.
    audit = tmp_path / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    signed = ("--signing-key", str(key))
    for torn in (False, True):
        gate = Daemon(policy, audit, *signed).start()
        assert gate.check(ALLOWED).json()["allowed"] is True
        gate.stop()
        if torn:
            segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
            with segment.open("ab") as handle:
                handle.write(b'{"torn')
    gate = Daemon(policy, audit, *signed).start()
    gate.stop()
    kinds = [r["type"] for r in gate.records()]
    assert "recovery" in kinds
    result = _verify(audit, public)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr


def test_an_approval_record_waits_for_the_startup_record_held_at_start(
    tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    # A run whose startup record the trail could not take wrote an approval's expiry
    # before it once the volume was back, right after the run before's shutdown
    # checkpoint, where only a run's first record may be.
    people = {name: generate_keypair(tmp_path / "people", name)[1] for name in ("alice",)}
    alice = base64.b64encode(load_public_key(people["alice"]).public_bytes_raw()).decode()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY
        + "  - {id: deploys, action: k8s.request, verb: delete, resource: deployments, "
        + "decision: require_approval}\n"
        + f"approvals:\n  timeout: 6s\n  approvers:\n    - {{name: alice, publicKey: '{alice}'}}\n"
    )
    mount = tmpfs("4m")
    audit = mount / "audit"
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    signed = ("--signing-key", str(key))
    first = Daemon(policy, audit, *signed).start()
    delete = {
        "action": "k8s.request",
        "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/apps/deployments/web"},
    }
    assert first.check(delete).json()["decision"] == "require_approval"
    first.stop()
    shutdown_at = len(first.records()) - 1

    _remount(mount, "ro")
    try:
        second = Daemon(policy, audit, *signed).start(wait_ready=False)
    finally:
        _remount(mount, "rw")
    try:
        deadline = time.monotonic() + 20
        while not any(r.get("event") == "expired" for r in second.records()):
            assert time.monotonic() < deadline, "the approval's expiry was not recorded"
            time.sleep(0.2)
    finally:
        second.stop()
    after = [r["type"] for r in second.records()[shutdown_at + 1 :]]
    assert after[:3] == ["startup", "policyLoaded", "approval"], after
    result = _verify(audit, public)
    assert result.returncode == 0, result.stdout + result.stderr
