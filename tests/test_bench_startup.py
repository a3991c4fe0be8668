"""``bench.startup``'s restart row times what it says: a real gate started on a trail that
already holds the records, which it reads, checks and continues, rather than an empty
directory or a trail it refused."""

from __future__ import annotations

from pathlib import Path

from bench.policies import policy_yaml
from bench.startup import build_kept_trail, time_startup
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
