"""A restart after a run that ended without its final checkpoint says so in the trail.

The records such a run left after its last checkpoint were never signed; the restarted
gate chains onto them and its next checkpoint signs them as it found them. The
``startup`` record names them (``unsignedAtStart``) and ``audit verify`` warns, so an
auditor knows which records no signature vouches for as written. Real daemons, real
signatures, a real SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.audit.verify import verify_trail
from tests.daemon import Daemon

POLICY = "version: 1\ndefaultAction: deny\nrules: []\n"
DENIED = {"action": "file.read", "path": "/etc/hostname"}


@pytest.fixture
def key(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "keygen", "--out", str(keys)],
        check=True,
        capture_output=True,
    )
    return keys / "tollgate.key"


def _run(policy: Path, audit: Path, key: Path | None, checks: int, sig: int) -> None:
    signing = ["--signing-key", str(key)] if key else []
    daemon = Daemon(policy, audit, *signing).start()
    try:
        for _ in range(checks):
            assert daemon.check(DENIED).status_code == 200
    finally:
        daemon.stop(sig)


def _starts(audit: Path) -> list[dict]:
    reader = Daemon(Path("unused"), audit)
    return [r for r in reader.records() if r["type"] == "startup"]


def test_a_restart_after_a_kill_names_the_unsigned_records(tmp_path: Path, key: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    _run(policy, audit, key, checks=3, sig=signal.SIGKILL)
    _run(policy, audit, key, checks=1, sig=signal.SIGTERM)

    first, second = _starts(audit)
    assert "unsignedAtStart" not in first
    # startup, policyLoaded, three decisions: all after the (absent) first checkpoint.
    assert second["unsignedAtStart"] == {"from": 0, "to": 4}

    report = verify_trail(audit)
    assert report.intact, report.summary()
    assert any(
        f"started at seq {second['seq']}" in w and "seq 0 to 4" in w for w in report.warnings
    ), report.warnings


def test_a_first_signed_run_after_an_unsigned_one_names_the_missing_key(
    tmp_path: Path, key: Path
) -> None:
    # The README's order: the quick start runs without a key, "Operating it" adds one on
    # the same ./audit. The warning said "a crash, a kill or a full disk" only, none of
    # which had happened.
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    _run(policy, audit, None, checks=2, sig=signal.SIGTERM)
    _run(policy, audit, key, checks=1, sig=signal.SIGTERM)

    _, second = _starts(audit)
    # startup, policyLoaded, two decisions, shutdown: nothing signed them.
    assert second["unsignedAtStart"] == {"from": 0, "to": 4}
    report = verify_trail(audit)
    assert report.intact, report.summary()
    (warning,) = [w for w in report.warnings if "no checkpoint had signed" in w]
    assert "the run before had no --signing-key, or ended without its final checkpoint" in warning


def test_a_restart_after_a_clean_stop_says_nothing(tmp_path: Path, key: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "audit"
    _run(policy, audit, key, checks=2, sig=signal.SIGTERM)
    _run(policy, audit, key, checks=1, sig=signal.SIGTERM)

    assert all("unsignedAtStart" not in start for start in _starts(audit))
    report = verify_trail(audit)
    assert report.intact, report.summary()
    assert not any("no checkpoint had signed" in w for w in report.warnings), report.warnings
