"""``bench.http_load`` reads the gate's own sync timings from its /metrics; a renamed or
missing metric must fail here, not leave the concurrency-1 analysis without its floor."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from bench.http_load import Server, sync_totals
from tests.test_reload import ALLOW_READS, READ


def test_sync_totals_count_the_gates_own_fdatasyncs(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    gate = daemon_factory(policy)
    batches, seconds = sync_totals(gate.url)
    assert batches >= 2  # startup and policyLoaded records, each synced
    for _ in range(3):
        assert gate.check(READ).json()["allowed"] is True
    after_batches, after_seconds = sync_totals(gate.url)
    assert after_batches == batches + 3  # one lone check, one sync
    assert after_seconds > seconds


def test_the_syncing_ceiling_makes_each_body_durable_before_answering(tmp_path: Path) -> None:
    sync_dir = tmp_path / "ceiling-sync"
    argv = [sys.executable, "-m", "bench.ceiling_app", "--port", "{port}"]
    server = Server("ceiling-sync", [*argv, "--sync-dir", str(sync_dir)], tmp_path / "log")
    server.start()
    try:
        bodies = [json.dumps({"action": "file.read", "path": f"/x/{i}"}).encode() for i in range(3)]
        for body in bodies:
            request = urllib.request.Request(f"{server.url}/check", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert json.loads(answer.read()) == {"allowed": True}
            # Written before the answer, not after: the file holds it once answered.
            assert (sync_dir / "bodies.log").read_bytes().endswith(body + b"\n")
    finally:
        server.stop()
    assert (sync_dir / "bodies.log").read_bytes() == b"".join(b + b"\n" for b in bodies)
