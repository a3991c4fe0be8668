"""Prometheus metrics (CONTRACT 2.3, ``GET /metrics``), one registry per gate.

Names follow Prometheus conventions: ``_total`` for counters, base units (seconds),
low-cardinality labels only (action, decision, result: never a path or a host). The
active policy is an info metric (``tollgate_policy_info{hash}``), read from the gate's
state at scrape time so it can never go stale. No ``_created`` series: the text format
does not need them and they double every counter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
        # The three observed on every check: plain numbers (see LoopCounter).
        self.checks = LoopCounter(
            "tollgate_checks",
            "Checks answered, by action and decision (invalid requests have action 'invalid').",
            ("action", "decision"),
        )
        self.check_seconds = LoopHistogram(
            "tollgate_check_duration_seconds",
            "Time to answer a check, from body received to answer, audit write included.",
            _LATENCY_BUCKETS,
        )
        self.audit_write_seconds = LoopHistogram(
            "tollgate_audit_write_duration_seconds",
            "Time for an audit record to become durable (write + fsync, group commit).",
            _LATENCY_BUCKETS,
        )
        self.registry.register(
            _LoopMetrics(self.checks, self.check_seconds, self.audit_write_seconds)
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
        self.approval_notifications = Counter(
            "tollgate_approval_notifications_total",
            "Webhook notices of new approvals by result (notified: the webhook took it; "
            "failed: given up, the approval waits unannounced).",
            ["result"],
            registry=self.registry,
        )
        # No labels: the problem text and the approval id are the caller's, unbounded.
        self.approval_decisions_refused = Counter(
            "tollgate_approval_decisions_refused_total",
            "Approval decisions refused as unsigned, wrongly signed, for no such approval "
            "or from a web page: each is also a forged approval record in the trail.",
            registry=self.registry,
        )
        for result in ("loaded", "rejected"):
            self.policy_reloads.labels(result)
        # At 0 from the start, so that an alert on an increase fires at the first failure.
        for result in ("notified", "failed"):
            self.approval_notifications.labels(result)

    def count_check(self, action: str, decision: str) -> None:
        self.checks.inc((action, decision))

    def track_policy(
        self, active_hash: Callable[[], str | None], last_load_ok: Callable[[], bool]
    ) -> None:
        """Expose the active policy's hash and whether the last load succeeded."""
        self.registry.register(_PolicyCollector(active_hash, last_load_ok))

    def track_checkpoint_file(self, failures: Callable[[], int], stale: Callable[[], bool]) -> None:
        """Expose failed replaces of the audit trail's ``DIR/checkpoint`` (a counter)
        and whether the file is behind the newest checkpoint record now (a gauge)."""
        self.registry.register(_CheckpointFileCollector(failures, stale))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LoopCounter:
    """A labelled counter kept as plain integers by the event loop's thread.

    prometheus-client's Counter and Histogram take a lock for every update, and a
    histogram checks that it may be observed and updates its sum and its bucket each
    under a lock of its own: about 5 µs of the gate's CPU per check for its three
    per-check updates, a tenth of its own work per check (docs/performance.md). Only
    the event loop updates these, so no lock is needed. The gate's ``/metrics`` route
    scrapes on the loop too, between updates; a scrape from another thread still reads
    each dict or list whole (copying one is one step under the GIL), though a
    histogram's sum may then be one observation apart from its counts. The scrape hands
    them to the registry as metric families (``_LoopMetrics``), in the same exposition
    as the library's.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self._counts: dict[tuple[str, ...], int] = {}

    def inc(self, labels: tuple[str, ...]) -> None:
        self._counts[labels] = self._counts.get(labels, 0) + 1

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, count in dict(self._counts).items():
            family.add_metric(labels, count)
        return family


class LoopHistogram:
    """A histogram kept as plain numbers by the event loop's thread (see LoopCounter)."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last: +Inf
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        # The first bound at or above the amount: a bucket counts what is <= its bound.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def family(self) -> HistogramMetricFamily:
        counts, total = list(self._counts), self._sum
        cumulative = list(accumulate(counts))
        bounds = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        return HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total,
        )


class _LoopMetrics(Collector):
    def __init__(self, *metrics: LoopCounter | LoopHistogram) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.family()


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


class _CheckpointFileCollector(Collector):
    """Read from the audit log at scrape time: nothing is counted on the write path."""

    def __init__(self, failures: Callable[[], int], stale: Callable[[], bool]) -> None:
        self._failures = failures
        self._stale = stale

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "tollgate_audit_checkpoint_file_failures",
            "Failed replaces of the audit directory's checkpoint file (the checkpoint "
            "record in the trail was written; the file is stale until a replace succeeds).",
            value=self._failures(),
        )
        yield GaugeMetricFamily(
            "tollgate_audit_checkpoint_file_stale",
            "1 while the audit directory's checkpoint file is older than the newest "
            "checkpoint record, else 0.",
            value=1 if self._stale() else 0,
        )
