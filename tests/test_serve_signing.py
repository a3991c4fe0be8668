"""The daemon's signed checkpoints, as deployed: a key file, a stable origin, and a
verifier key made afterwards for standard signed-note tools (docs/audit.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.audit.note import NoteError, Verifier, parse_note, verify_note
from tests.daemon import Daemon

POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow}
"""


def tollgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_checkpoints_carry_the_configured_origin_and_verify_with_its_verifier_key(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    assert tollgate("keygen", "--out", str(keys)).returncode == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    # The pod name changes with every restart of a Deployment's pod; the origin must not.
    for pod in ("agent-7f9c-a", "agent-7f9c-b"):
        daemon = Daemon(
            policy, audit, "--signing-key", str(keys / "tollgate.key"),
            env={"TOLLGATE_IDENTITY": f"apps/agent/{pod}", "TOLLGATE_AUDIT_ORIGIN": "tollgate/apps/agent"},
        ).start()  # fmt: skip
        assert daemon.check({"action": "file.read", "path": "/app/data/x"}).status_code == 200
        daemon.stop()
    note = (audit / "checkpoint").read_text()
    assert note.startswith("tollgate/apps/agent\n")

    made = tollgate(
        "keygen", "--out", str(keys), "--public-key", str(keys / "tollgate.pub"),
        "--origin", "tollgate/apps/agent",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    verifier = Verifier.parse((keys / "tollgate.vkey").read_text().strip())
    assert verify_note(parse_note(note), [verifier]) == [verifier]
    stranger = Verifier("tollgate/apps/agent/agent-7f9c-b", verifier.public_key)
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        verify_note(parse_note(note), [stranger])  # the pod's own name is not the origin
    verified = tollgate("audit", "verify", str(audit), "--public-key", str(keys / "tollgate.vkey"))
    assert verified.returncode == 0 and verified.stdout.startswith("intact:"), verified.stdout


def test_an_origin_that_is_no_note_key_name_stops_the_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = tollgate(
        "serve", "--policy", str(policy), "--audit-dir", str(tmp_path / "audit"),
        "--audit-origin", "has space", "--port", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "invalid note key name" in result.stderr


@pytest.mark.parametrize("key", ["keys/missing.key", "."], ids=["missing", "a-directory"])
def test_an_unreadable_signing_key_is_named_by_its_setting(tmp_path: Path, key: str) -> None:
    # rt24 ops review: "[Errno 2] No such file or directory: 'keys/missing.key'" did not
    # say which setting named the file, in a crash-looping pod's one log line.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    result = tollgate(
        "serve", "--policy", str(policy), "--audit-dir", str(tmp_path / "audit"),
        "--signing-key", str(tmp_path / key), "--port", "1",
    )  # fmt: skip
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("tollgate: cannot start: --signing-key / TOLLGATE_SIGNING_KEY ")
    assert str(tmp_path / key) in line
