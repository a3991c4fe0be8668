"""The per-check metrics kept as plain numbers (sidecar/metrics.py, LoopCounter and
LoopHistogram) expose exactly what prometheus-client's own Counter and Histogram expose
for the same observations: a scrape cannot tell them apart."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from sidecar.metrics import _LATENCY_BUCKETS, GateMetrics, LoopCounter, LoopHistogram

# Every bound exactly (a bucket holds what is <= its bound), both sides of each, beyond
# the last, zero, and a spread of ordinary latencies.
_rng = random.Random(7)
AMOUNTS = [
    *_LATENCY_BUCKETS,
    *(bound * 0.999 for bound in _LATENCY_BUCKETS),
    *(bound * 1.001 for bound in _LATENCY_BUCKETS),
    0.0,
    3.5,
    *(_rng.expovariate(2000) for _ in range(500)),
]
LABELS = [("file.read", "allow"), ("file.read", "deny"), ("invalid", "invalid")]


class _One(Collector):
    def __init__(self, metric: LoopCounter | LoopHistogram) -> None:
        self.metric = metric

    def collect(self):  # type: ignore[no-untyped-def]
        yield self.metric.family()


def test_a_loop_histogram_scrapes_as_the_library_histogram() -> None:
    library, loop = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h_seconds", "doc", buckets=_LATENCY_BUCKETS, registry=library)
    plain = LoopHistogram("h_seconds", "doc", _LATENCY_BUCKETS)
    loop.register(_One(plain))
    for amount in AMOUNTS:
        reference.observe(amount)
        plain.observe(amount)
    assert generate_latest(loop) == generate_latest(library)


def test_a_bucket_holds_what_is_at_or_under_its_bound() -> None:
    registry = CollectorRegistry()
    plain = LoopHistogram("h_seconds", "doc", (0.0001, 0.00025))
    registry.register(_One(plain))
    for amount in (0.0001, 0.00010001, 0.00025, 7.0):
        plain.observe(amount)
    text = generate_latest(registry).decode()
    assert 'h_seconds_bucket{le="0.0001"} 1.0' in text
    assert 'h_seconds_bucket{le="0.00025"} 3.0' in text
    assert 'h_seconds_bucket{le="+Inf"} 4.0' in text


def test_a_loop_counter_scrapes_as_the_library_counter() -> None:
    library, loop = CollectorRegistry(), CollectorRegistry()
    reference = Counter("c_total", "doc", ["action", "decision"], registry=library)
    plain = LoopCounter("c", "doc", ("action", "decision"))
    loop.register(_One(plain))
    for index in range(100):
        labels = LABELS[index * index % 3]
        reference.labels(*labels).inc()
        plain.inc(labels)
    assert generate_latest(loop) == generate_latest(library)


def test_the_gate_counts_each_check_once_by_action_and_decision() -> None:
    metrics = GateMetrics()
    for labels in [*LABELS, LABELS[0]]:
        metrics.count_check(*labels)
    metrics.check_seconds.observe(0.0003)
    text = metrics.render().decode()
    assert 'tollgate_checks_total{action="file.read",decision="allow"} 2.0' in text
    assert 'tollgate_checks_total{action="invalid",decision="invalid"} 1.0' in text
    assert "tollgate_check_duration_seconds_count 1.0" in text
    assert "tollgate_audit_write_duration_seconds_count 0.0" in text
