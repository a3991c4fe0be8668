"""``GET /metrics`` and ``GET /v1/status`` of the real daemon (CONTRACT 2.3).

Metrics are read with prometheus-client's own text parser, as a scraper would.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sidecar import __version__
from tests.daemon import Daemon
from tests.test_reload import (
    ALLOW_READS,
    DENY_READS,
    READ,
    ConfigMapVolume,
    policy_hash,
    status,
    wait_for_policy,
    wait_for_rejections,
)

# name -> (type, label names) of every series CONTRACT 2.3 asks for, and the policy ones.
EXPECTED_FAMILIES = {
    "tollgate_checks": ("counter", {"action", "decision"}),
    "tollgate_check_duration_seconds": ("histogram", {"le"}),
    "tollgate_audit_write_duration_seconds": ("histogram", {"le"}),
    "tollgate_audit_sync_duration_seconds": ("histogram", {"le"}),
    "tollgate_audit_write_failures": ("counter", set()),
    "tollgate_policy_reloads": ("counter", {"result"}),
    "tollgate_policy_loaded": ("gauge", set()),
    "tollgate_policy_info": ("gauge", {"hash"}),
    "tollgate_policy_last_reload_successful": ("gauge", set()),
    "tollgate_approvals_pending": ("gauge", set()),
}


def scrape(daemon: Daemon) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample, as {sample name: {sorted labels: value}}; checks the families too."""
    response = daemon.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert re.fullmatch(r"tollgate_[a-z][a-z_]*", family.name), family.name
        assert family.documentation, family.name
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_follow_prometheus_conventions(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    gate = daemon_factory(policy)
    assert gate.check(READ).json()["allowed"] is True
    assert gate.check({"action": "file.read", "path": "/etc/shadow"}).json()["allowed"] is False
    assert gate.check(b"{not json").status_code == 400

    text = gate.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) <= labels, sample
    for family in families.values():
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name
    assert "_created" not in text  # no per-series creation gauges

    samples = scrape(gate)
    checks = samples["tollgate_checks_total"]
    assert checks[(("action", "file.read"), ("decision", "allow"))] == 1
    assert checks[(("action", "file.read"), ("decision", "deny"))] == 1
    assert checks[(("action", "invalid"), ("decision", "invalid"))] == 1
    assert samples["tollgate_check_duration_seconds_count"][()] == 3
    assert samples["tollgate_audit_write_duration_seconds_count"][()] >= 2
    assert samples["tollgate_audit_write_failures_total"][()] == 0
    assert samples["tollgate_approvals_pending"][()] == 0
    assert samples["tollgate_policy_info"] == {(("hash", policy_hash(ALLOW_READS)),): 1}
    # A lone check on an idle gate is one batch: one fdatasync, observed once.
    syncs = samples["tollgate_audit_sync_duration_seconds_count"][()]
    assert syncs >= 3
    gate.check(READ)
    after = scrape(gate)
    assert after["tollgate_audit_sync_duration_seconds_count"][()] == syncs + 1
    assert (
        after["tollgate_audit_sync_duration_seconds_sum"][()]
        > samples["tollgate_audit_sync_duration_seconds_sum"][()]
    )


def test_metrics_follow_policy_reloads(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    volume.update({"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS)
    samples = scrape(gate)
    assert samples["tollgate_policy_reloads_total"] == {
        (("result", "loaded"),): 2,
        (("result", "rejected"),): 0,
    }
    assert samples["tollgate_policy_info"] == {(("hash", policy_hash(DENY_READS)),): 1}
    assert samples["tollgate_policy_last_reload_successful"][()] == 1

    volume.update({"policy.yaml": b"version: 1\nrules: {}\n"})
    wait_for_rejections(gate, 1)
    samples = scrape(gate)
    assert samples["tollgate_policy_reloads_total"][(("result", "rejected"),)] == 1
    assert samples["tollgate_policy_last_reload_successful"][()] == 0
    assert samples["tollgate_policy_loaded"][()] == 1  # the last good one still serves
    assert samples["tollgate_policy_info"] == {(("hash", policy_hash(DENY_READS)),): 1}


def test_metrics_and_status_without_a_valid_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"version: 1\ndefaultAction: maybe\n")
    gate = daemon_factory(policy, wait_ready=False)
    assert gate.check(READ).status_code == 503
    samples = scrape(gate)
    assert samples["tollgate_policy_loaded"][()] == 0
    assert "tollgate_policy_info" not in samples
    assert samples["tollgate_policy_last_reload_successful"][()] == 0
    assert samples["tollgate_policy_reloads_total"][(("result", "rejected"),)] == 1
    assert samples["tollgate_checks_total"][(("action", "file.read"), ("decision", "unavailable"))]

    shown = status(gate)
    assert shown["ready"] is False
    assert shown["policy"]["hash"] is None
    assert shown["policy"]["loadedAt"] is None
    assert "defaultAction" in shown["policy"]["lastError"]
    assert shown["mode"] is None


def test_status_is_complete(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    audit_dir = tmp_path / "audit"
    gate = daemon_factory(policy, audit_dir=audit_dir)
    answer = gate.check(READ).json()
    shown = status(gate)

    assert shown["policy"]["hash"] == policy_hash(ALLOW_READS)
    assert shown["policy"]["source"] == str(policy)
    assert shown["policy"]["rules"] == 1
    assert shown["policy"]["lastError"] is None
    loaded_at = datetime.fromisoformat(shown["policy"]["loadedAt"].replace("Z", "+00:00"))
    assert abs(time.time() - loaded_at.timestamp()) < 60

    assert shown["audit"]["dir"] == str(audit_dir)
    assert shown["audit"]["seq"] == answer["audit"]["seq"] + 1  # records written so far
    assert shown["audit"]["head"] == answer["audit"]["hash"]
    assert "lastCheckpoint" in shown["audit"]

    assert shown["mode"] == "enforce"
    assert shown["identity"] == "test/agent/pod-1"
    assert shown["version"] == __version__
    assert shown["ready"] is True
    assert shown["uptime"] >= 0
    time.sleep(0.05)
    assert status(gate)["uptime"] > shown["uptime"]
