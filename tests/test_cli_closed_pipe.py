"""``tollgate ... | head``: a command whose reader has gone ends quietly, as Unix tools do
(rt25 review, C3: ``tollgate check ... | head`` ended in a BrokenPipeError traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[1] / "policies"
REQUEST = json.dumps({"action": "process.exec", "cwd": "/workspace", "commandLine": "git status"})
COMMANDS = [
    ("check", "--policy", str(POLICIES / "coding-agent.yaml"), REQUEST),
    ("check", "--policy", str(POLICIES / "coding-agent.yaml"), REQUEST, "--explain"),
    ("policy", "test", str(POLICIES)),
    ("policy", "validate", str(POLICIES / "coding-agent.yaml")),  # exited 1, "invalid"
]


def run_into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run tollgate with its stdout on a pipe whose only reader, a real process, has
    exited without reading: every write there fails, as after ``| head -1``."""
    read_end, write_end = os.pipe()
    try:
        reader = subprocess.Popen(["head", "-c", "0"], stdin=read_end)
        os.close(read_end)
        read_end = -1
        assert reader.wait(timeout=20) == 0
        return subprocess.run(
            [sys.executable, "-m", "sidecar.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
        if read_end >= 0:
            os.close(read_end)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_closed_stdout_ends_quietly(args: tuple[str, ...]) -> None:
    done = run_into_a_closed_pipe(*args)
    # (policy validate warns on stderr of what the policy allows: that stays)
    for complaint in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert complaint not in done.stderr
    assert done.returncode == 2  # the contract's error: never 0 (allow), nor 1 (deny)


def test_an_open_stdout_still_gets_the_answer() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *COMMANDS[0]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["allowed"] is True
