"""``bench.startup``'s restart row times what it says: a real gate started on a trail that
already holds the records, which it reads, checks and continues, rather than an empty
directory or a trail it refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import startup
from bench.policies import policy_yaml
from bench.startup import build_kept_trail, time_bare_start, time_startup, time_yaml_parse
from sidecar.audit.rebuild import rebuild
from sidecar.keys import generate_keypair
from tests.audit.conftest import records


def test_the_gate_starts_on_the_kept_trail_and_continues_it(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(policy_yaml(100))
    kept = tmp_path / "audit"
    key, _ = generate_keypair(tmp_path / "keys")

    build_kept_trail(kept, 3_000, key, concurrency=16)
    assert rebuild(kept).size > 3_000  # its decisions and the signed checkpoints
    assert (kept / "checkpoint").is_file()

    seconds = time_startup(policy, kept, tmp_path / "start.log", signing_key=key)

    assert 0 < seconds < 120
    written = records(kept)
    types = [record["type"] for record in written]
    assert types.count("decision") == 3_000
    # The gate continued the same chain: its own records follow, and the trail still
    # checks out from its first record.
    last_decision = len(types) - 1 - types[::-1].index("decision")
    assert {"startup", "policyLoaded", "shutdown"} <= set(types[last_decision:])
    assert rebuild(kept).size == len(written)


def test_the_start_up_baseline_is_a_bare_app_that_imports_nothing_of_the_gate(
    tmp_path: Path,
) -> None:
    """The baseline row says how fast this machine starts a Starlette + uvicorn server at
    all: it must serve /ready, and carry none of the gate's imports."""
    seconds = time_bare_start(tmp_path / "bare.log")
    assert 0 < seconds < 60
    probe = "import sys, bench.bare_start; print(sorted(m for m in sys.modules if m.startswith('sidecar')))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
    assert time_yaml_parse(b"version: 1\nrules: []\n", count=2)[0] > 0


def test_the_notes_name_rows_that_are_in_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notes said "second row" for the bytecode start, which was the third row (the
    bare app's start comes second). They name each row by its label now."""
    seconds = {"time_startup": 0.5, "time_bare_start": 0.3}
    for name, value in seconds.items():
        monkeypatch.setattr(startup, name, lambda *args, value=value, **kwargs: value)
    monkeypatch.setattr(startup, "compiled_copy", lambda directory: directory)
    monkeypatch.setattr(startup, "generate_keypair", lambda d: (d / "key", d / "key.pub"))
    monkeypatch.setattr(startup, "build_kept_trail", lambda *args, **kwargs: None)
    monkeypatch.setattr(startup, "_trail_size", lambda directory: (3, 187 * 2**20))
    monkeypatch.setattr(startup.CpuLimit, "create", lambda millicores: "no cgroup here")
    for name in ("time_compile", "time_yaml_parse", "time_reloads"):
        monkeypatch.setattr(startup, name, lambda *args: [0.1] * 5)

    section = startup.run(audit_parent=str(tmp_path), kept_records=1_000)

    labels = {row[0] for row in section.rows}
    notes = " ".join(section.notes)
    named = re.findall(r'the row "([^"]+)"', notes)
    assert len(named) == 3
    assert set(named) <= labels
    assert not re.search(r"\b(first|second|third|fourth) row\b", notes)
