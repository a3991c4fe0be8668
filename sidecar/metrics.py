"""Prometheus metrics (CONTRACT 2.3, ``GET /metrics``), one registry per gate.

Names follow Prometheus conventions: ``_total`` for counters, base units (seconds),
low-cardinality labels only (action, decision, result: never a path or a host). The
active policy is an info metric (``tollgate_policy_info{hash}``), read from the gate's
state at scrape time so it can never go stale. No ``_created`` series: the text format
does not need them and they double every counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

disable_created_metrics()

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class GateMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.checks = Counter(
            "tollgate_checks_total",
            "Checks answered, by action and decision (invalid requests have action 'invalid').",
            ["action", "decision"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "tollgate_check_duration_seconds",
            "Time to answer a check, from body received to answer, audit write included.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_write_seconds = Histogram(
            "tollgate_audit_write_duration_seconds",
            "Time for an audit record to become durable (write + fsync, group commit).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_sync_seconds = Histogram(
            "tollgate_audit_sync_duration_seconds",
            "Time a batch of audit records waited for its fdatasync (one per group commit).",
            buckets=(*_LATENCY_BUCKETS, 2.5, 5.0),
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "tollgate_audit_write_failures_total",
            "Audit records that could not be written (each answered 503/deny).",
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "tollgate_policy_reloads_total",
            "Policy loads by result (loaded, rejected).",
            ["result"],
            registry=self.registry,
        )
        self.policy_loaded = Gauge(
            "tollgate_policy_loaded",
            "1 while a valid policy is active, else 0.",
            registry=self.registry,
        )
        self.approvals_pending = Gauge(
            "tollgate_approvals_pending",
            "Approvals waiting for a human decision.",
            registry=self.registry,
        )
        for result in ("loaded", "rejected"):
            self.policy_reloads.labels(result)
        # labels() takes a lock and builds a key on every call; a check only needs the
        # child counter, looked up once per (action, decision).
        self._check_counters: dict[tuple[str, str], Counter] = {}

    def count_check(self, action: str, decision: str) -> None:
        counter = self._check_counters.get((action, decision))
        if counter is None:
            counter = self._check_counters[(action, decision)] = self.checks.labels(
                action, decision
            )
        counter.inc()

    def track_policy(
        self, active_hash: Callable[[], str | None], last_load_ok: Callable[[], bool]
    ) -> None:
        """Expose the active policy's hash and whether the last load succeeded."""
        self.registry.register(_PolicyCollector(active_hash, last_load_ok))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PolicyCollector(Collector):
    def __init__(
        self, active_hash: Callable[[], str | None], last_load_ok: Callable[[], bool]
    ) -> None:
        self._active_hash = active_hash
        self._last_load_ok = last_load_ok

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "tollgate_policy_info",
            "The active policy (always 1), labelled by its hash; absent while none is.",
            labels=["hash"],
        )
        active = self._active_hash()
        if active is not None:
            info.add_metric([active], 1)
        yield info
        yield GaugeMetricFamily(
            "tollgate_policy_last_reload_successful",
            "1 if the last policy load was accepted, 0 if it was rejected.",
            value=1 if self._last_load_ok() else 0,
        )
