"""``bench.http_load`` reads the gate's own sync timings from its /metrics; a renamed or
missing metric must fail here, not leave the concurrency-1 analysis without its floor."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from bench.http_load import (
    Runs,
    Server,
    SyncWait,
    WrkResult,
    decision_records,
    judged_section,
    sync_totals,
)
from bench.results import Target
from sidecar.audit.verify import verify_trail
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


def _runs(rates: list[float], p50s: list[float], errors: int = 0) -> Runs:
    return Runs(
        tuple(
            WrkResult(
                requests=int(rate * 5), seconds=5.0, errors=errors, p50_us=p50, p99_us=p50 * 2
            )
            for rate, p50 in zip(rates, p50s, strict=True)
        )
    )


def _judged(
    gate16: Runs,
    gate1: Runs,
    *,
    others: dict[tuple[str, int], Runs] | None = None,
    gate_warmup_errors: int = 0,
    decisions: int = 10,
) -> dict[str, Target]:
    flat = _runs([10_000.0] * 3, [100.0] * 3)
    runs = {
        ("ceiling", 1): _runs([9_000.0, 9_000.0, 9_000.0], [100.0, 110.0, 100.0]),
        ("gate", 1): gate1,
        ("ceiling", 16): _runs([16_000.0, 20_000.0, 16_000.0], [900.0] * 3),
        ("gate", 16): gate16,
        ("ceiling", 64): flat,
        ("gate", 64): flat,
        **(others or {}),
    }
    section = judged_section(
        runs,
        150.0,
        SyncWait(100.0, 0.0165),
        True,
        decisions,
        10,
        5.0,
        3,
        trail_on="ext4 (/dev/vda)",
        gate_warmup_errors=gate_warmup_errors,
    )
    return {target.name.split(",")[0]: target for target in section.targets}


def test_each_round_is_judged_against_its_own_ceiling_and_the_median_decides() -> None:
    # Round 2's ceiling ran at a quiet moment (20,000/s): the gate's 9,000 that round is
    # 0.45 of it, but 0.5625 and 0.55 of the other rounds' ceilings. One round moves one
    # ratio, not the verdict.
    gate16 = _runs([9_000.0, 9_000.0, 8_800.0], [1_800.0] * 3)
    gate1 = _runs([2_500.0] * 3, [290.0, 400.0, 310.0])
    targets = _judged(gate16, gate1)
    throughput = targets["throughput at concurrency 16"]
    assert throughput.holds
    assert throughput.measured.startswith(
        "0.550 (9,000 vs 16,000 requests/s; rounds: 0.562, 0.450, 0.550)"
    )
    latency = targets["p50 at concurrency 1"]
    # 2.90x, 3.64x, 3.10x: the median round is over the limit.
    assert not latency.holds
    assert "rounds: 2.90, 3.64, 3.10" in latency.measured


def test_a_gate_below_the_share_in_most_rounds_misses_the_target() -> None:
    gate16 = _runs([7_900.0, 11_000.0, 7_800.0], [1_800.0] * 3)
    gate1 = _runs([2_500.0] * 3, [250.0, 260.0, 400.0])
    targets = _judged(gate16, gate1)
    throughput = targets["throughput at concurrency 16"]
    assert not throughput.holds  # 0.494, 0.550, 0.488
    assert throughput.measured.startswith("0.494 ")
    assert targets["p50 at concurrency 1"].holds  # 2.50, 2.36, 4.00


def _steady() -> tuple[Runs, Runs]:
    return _runs([9_000.0] * 3, [1_800.0] * 3), _runs([2_500.0] * 3, [250.0] * 3)


def test_errors_are_the_gates_own_its_warm_up_included() -> None:
    # The syncing ceiling is a baseline, not the gate: its errors are not the gate's.
    baseline_errors = {("ceiling-sync", 1): _runs([9_000.0] * 3, [150.0] * 3, errors=4)}
    clean = _judged(*_steady(), others=baseline_errors)
    assert clean["errors (non-2xx"].holds
    # A gate that fails its first requests, in the warm-up, misses the target.
    failing_first = _judged(*_steady(), others=baseline_errors, gate_warmup_errors=3)
    assert (failing_first["errors (non-2xx"].measured, failing_first["errors (non-2xx"].holds) == (
        "3",
        False,
    )
    # The gate with its trail on tmpfs is the gate too.
    on_tmpfs = _judged(*_steady(), others={("gate-tmpfs", 1): _runs([3_000.0] * 3, [200.0] * 3, 1)})
    assert on_tmpfs["errors (non-2xx"].measured == "3"


def test_the_trail_needs_a_decision_record_per_answered_check() -> None:
    trail = _judged(*_steady(), decisions=9)["audit trail after the run: intact"]
    assert not trail.holds
    assert trail.measured == "intact, 9 decision records for 10 checks"


def test_decision_records_count_the_checks_not_the_gates_other_records(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    gate = daemon_factory(policy)
    for _ in range(3):
        assert gate.check(READ).json()["allowed"] is True
    gate.stop()  # SIGTERM, as the benchmark stops it: the final records written
    # startup, policyLoaded, the final checkpoint ... are records too, of no check.
    assert verify_trail(gate.audit_dir).records > 3
    assert decision_records(gate.audit_dir) == 3
