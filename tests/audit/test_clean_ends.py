"""What follows a clean end of a run: a checkpoint record right after a ``shutdown``
record, whatever its label (rt25 r2-audit-api, A1 and A2).

A2: a shutdown batch that crosses ``--segment-bytes`` labels its checkpoint
``rotation``; a record forged after it was signed by the next start in silence.
A1: gates before this check wrote approval records ahead of a held startup record,
so such a trail holds approval records right after a clean end: verify called it
tampered for good (and checked nothing after), and the start said "a approval".
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import Frontier
from sidecar.audit.note import Signer
from sidecar.audit.segments import SegmentStart, segment_name, start_path
from sidecar.canonical import canonical_bytes
from sidecar.keys import generate_keypair, load_private_key
from tests.daemon import Daemon, free_port

POLICY = """\
version: 1
defaultAction: deny
rules:
  - id: read-data
    action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""
ORIGIN = "test/clean-ends"
EXPIRED = {"event": "expired", "approval": "apr_01", "previous": "pending", "identity": "t"}


def _leaf(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def _lines(audit: Path) -> list[bytes]:
    found: list[bytes] = []
    for segment in sorted((audit / "segments").glob("*.jsonl")):
        found += segment.read_bytes().split(b"\n")[:-1]
    return found


def _verify(audit: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "verify", str(audit),
         "--public-key", str(public)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _serve(audit: Path, policy: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """A start that is expected to refuse (it would serve until the timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
         "--audit-dir", str(audit), "--port", str(free_port()), "--signing-key", str(key),
         "--audit-origin", ORIGIN],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key, public = generate_keypair(tmp_path / "keys", "tollgate")
    return tmp_path / "audit", policy, key, public


def test_a_record_forged_after_a_shutdown_that_rotated_refuses_the_start(
    tmp_path: Path,
) -> None:
    audit, policy, key, public = _setup(tmp_path)
    gate = Daemon(
        policy, audit, "--signing-key", str(key), "--audit-origin", ORIGIN,
        "--segment-bytes", "3000",
    ).start()  # fmt: skip
    long_path = "/app/data/" + "a" * 828  # the shutdown record, not this one, crosses 3000
    assert gate.check({"action": "file.read", "path": long_path}).json()["allowed"] is True
    gate.stop()
    lines = _lines(audit)
    ending = [json.loads(line) for line in lines[-2:]]
    assert [(r["type"], r["reason"]) for r in ending] == [
        ("shutdown", "signal"),
        ("checkpoint", "rotation"),
    ]
    # Someone without the key: a new segment, its .start computed from the records,
    # holding the last decision turned into an allow of /etc/shadow.
    frontier = Frontier()
    for line in lines:
        frontier.append(_leaf(line))
    seq = len(lines)
    forged = [json.loads(line) for line in lines if b'"type":"decision"' in line][-1]
    forged.update(seq=seq, prev=_leaf(lines[-1]).hex(), context={"path": "/etc/shadow"})
    segment = audit / "segments" / segment_name(seq)
    start_path(segment).write_bytes(SegmentStart(seq, _leaf(lines[-1]), frontier.nodes).encode())
    segment.write_bytes(canonical_bytes(forged) + b"\n")

    started = _serve(audit, policy, key)
    assert started.returncode == 1, started.stderr
    assert (
        f"records seq {seq} to {seq} come after the shutdown checkpoint at seq {seq - 1}, "
        "the first a decision record"
    ) in started.stderr
    result = _verify(audit, public)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"(seq {seq}): a decision record follows the shutdown checkpoint" in result.stdout


def _old_release_trail(audit: Path, key: Path, after_clean_end: list[tuple[str, Any]]) -> None:
    """A trail as a gate before this check wrote it: a run's clean end (shutdown record
    and its checkpoint), then ``after_clean_end``, all signed with ``key``."""
    signer = Signer(load_private_key(key))
    log = AuditLog.open(audit, identity="t", signer=signer, origin=ORIGIN, sync_helper=False)
    log.append_blocking("startup", {"version": "0.1.0", "identity": "t"})
    log.append_blocking("shutdown", {"reason": "signal", "identity": "t"})
    for type_, body in after_clean_end:
        log.append_blocking(type_, body)
    log.close_blocking()


def test_approval_records_an_old_gate_wrote_after_a_clean_end_are_a_warning(
    tmp_path: Path,
) -> None:
    audit, _, key, public = _setup(tmp_path)
    decision = {"decision": "allow", "allowed": True, "identity": "t"}
    _old_release_trail(
        audit,
        key,
        [("approval", EXPIRED), ("approval", EXPIRED), ("startup", {"identity": "t"}),
         ("decision", decision), ("shutdown", {"reason": "signal", "identity": "t"})],
    )  # fmt: skip
    kinds = [json.loads(line)["type"] for line in _lines(audit)]
    assert kinds[2:5] == ["checkpoint", "approval", "approval"], kinds
    result = _verify(audit, public)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("intact:"), result.stdout
    assert (
        "warning: records seq 3 to 4 are approval records between the shutdown checkpoint "
        "at seq 2 and the next run's startup or recovery record: a gate of a release "
        "before this check wrote approval records"
    ) in result.stderr
    assert "otherwise they were added while no gate ran" in result.stderr

    # The warning does not stop the check: a change after it is still found.
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    segment.write_bytes(segment.read_bytes().replace(b'"allowed":true', b'"allowed":false'))
    result = _verify(audit, public)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "(seq 7): prev is not the hash of the record before it" in result.stdout


def test_other_records_after_approvals_after_a_clean_end_stay_a_fault(tmp_path: Path) -> None:
    audit, _, key, public = _setup(tmp_path)
    decision = {"decision": "allow", "allowed": True, "identity": "t"}
    _old_release_trail(audit, key, [("approval", EXPIRED), ("decision", decision)])
    result = _verify(audit, public)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "(seq 4): a decision record follows the shutdown checkpoint at seq 2" in result.stdout


def test_a_start_on_approval_records_after_a_clean_end_refuses_naming_the_upgrade(
    tmp_path: Path,
) -> None:
    # An old gate that started on a read-only volume, wrote an expiry ahead of its held
    # startup record, and was killed: the approval record is not signed. Approval
    # records are replayed at start, so the gate does not sign them as found.
    audit, policy, key, _ = _setup(tmp_path)
    _old_release_trail(audit, key, [])
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    lines = _lines(audit)
    record = {**EXPIRED, "seq": len(lines), "prev": _leaf(lines[-1]).hex(),
              "ts": "2026-01-01T00:00:00.000000Z", "type": "approval"}  # fmt: skip
    with segment.open("ab") as handle:
        handle.write(canonical_bytes(record) + b"\n")

    started = _serve(audit, policy, key)
    assert started.returncode == 1, started.stderr
    assert "refusing to start" in started.stderr
    assert (
        "records seq 3 to 3 come after the shutdown checkpoint at seq 2, the first an "
        "approval record: a gate of a release before this check wrote approval records "
        "ahead of a startup record it held"
    ) in started.stderr
    assert "take records seq 3 to 3 out of it (keep them: they are evidence)" in started.stderr
