"""Shared fixtures: policy files written to tmp_path, and a real gate daemon on a free port."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    """Write a dedented policy YAML to a fresh file and return its path."""
    counter = iter(range(10_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"policy-{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def daemon_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start real daemons; every one started is stopped at the end of the test."""
    from tests.daemon import Daemon

    started: list[Daemon] = []

    def start(
        policy: Path,
        *extra: str,
        audit_dir: Path | None = None,
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> Daemon:
        daemon = Daemon(policy, audit_dir or tmp_path / f"audit-{len(started)}", *extra, env=env)
        started.append(daemon)
        return daemon.start(wait_ready=wait_ready)

    yield start
    for daemon in started:
        daemon.stop()
