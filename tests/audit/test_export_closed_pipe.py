"""``tollgate audit export DIR | head``: the reader going away is not a broken trail.

Export's exit 1 says the chain is broken (a compliance script alerts on it); a closed
pipe ends with the CLI's error status, 2, quietly, as every other command does
(tests/test_cli_closed_pipe.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from tests.audit.conftest import decision
from tests.test_cli_closed_pipe import run_into_a_closed_pipe


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ocsf"])
def test_export_into_a_closed_pipe_is_not_reported_as_a_broken_trail(
    open_log: Callable[..., AuditLog], tmp_path: Path, fmt: str
) -> None:
    log = open_log(tmp_path / "trail")
    for i in range(2000):  # more than a pipe's buffer, so a write meets the closed pipe
        log.append_blocking("decision", decision(i))
    log.close_blocking()

    done = run_into_a_closed_pipe("audit", "export", str(tmp_path / "trail"), "--format", fmt)

    for complaint in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert complaint not in done.stderr
    assert done.returncode == 2
