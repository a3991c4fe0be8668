"""``serve --metrics-port``: the metrics, and nothing else, on a port a scraper outside
the pod can reach (the gate's own port listens on the pod's loopback only).

Found by the deployment review of 2026-12-07: the alerts docs/security.md and
docs/audit.md recommend (metrics gone missing, sync time, a rejected policy) need
``/metrics`` scraped, and with the gate on 127.0.0.1 and no ingress nothing outside the
pod could scrape it.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.daemon import Daemon, free_port, serve_until_exit, taken_port
from tests.test_reload import ALLOW_READS

READ = {"action": "file.read", "path": "/app/data/report.csv"}


def test_the_metrics_port_serves_the_gates_metrics_and_nothing_else(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    port = free_port()
    gate = Daemon(policy, tmp_path / "audit", "--metrics-port", str(port)).start()
    try:
        assert gate.check(READ).json()["allowed"] is True
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert 'tollgate_checks_total{action="file.read",decision="allow"} 1.0' in scraped.text
        # No check is answered there: a POST is never decided (newer prometheus-client
        # releases refuse it, older ones answered it with the metrics).
        posted = httpx.post(f"http://127.0.0.1:{port}/check", json=READ, timeout=10)
        assert '"allowed"' not in posted.text
        assert "json" not in posted.headers.get("content-type", "")
        assert gate.check(READ).json()["allowed"] is True
        assert 'decision="allow"} 2.0' in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    finally:
        gate.stop()


def test_a_metrics_port_that_cannot_be_bound_stops_the_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    with taken_port() as port:
        done = serve_until_exit(
            policy, tmp_path / "audit", "--port", str(free_port()),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        )  # fmt: skip
    assert done.returncode == 1
    assert f"tollgate: cannot start: metrics port 127.0.0.1:{port}:" in done.stderr
    # Nothing was served: the trail holds no record of a start.
    segments = list((tmp_path / "audit" / "segments").glob("*.jsonl"))
    assert all(b'"type":"startup"' not in s.read_bytes() for s in segments)
