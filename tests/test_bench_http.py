"""``bench.http_load`` reads the gate's own sync timings from its /metrics; a renamed or
missing metric must fail here, not leave the concurrency-1 analysis without its floor."""

from __future__ import annotations

from pathlib import Path

from bench.http_load import sync_totals
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
