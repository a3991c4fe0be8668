"""``tollgate ... | head``: a command whose reader has gone ends quietly, as Unix tools do
(rt25 review, C3: ``tollgate check ... | head`` ended in a BrokenPipeError traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
REQUEST = json.dumps({"action": "process.exec", "cwd": "/workspace", "commandLine": "git status"})
COMMANDS = [
    ("check", "--policy", str(POLICIES / "coding-agent.yaml"), REQUEST),
    ("check", "--policy", str(POLICIES / "coding-agent.yaml"), REQUEST, "--explain"),
    ("policy", "test", str(POLICIES)),
    ("policy", "validate", str(POLICIES / "coding-agent.yaml")),  # exited 1, "invalid"
]


def run_into_a_closed_pipe(
    *args: str,
    program: Sequence[str] = (sys.executable, "-m", "sidecar.cli"),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run tollgate with its stdout on a pipe whose only reader, a real process, has
    exited without reading: every write there fails, as after ``| head -1``."""
    read_end, write_end = os.pipe()
    try:
        reader = subprocess.Popen(["head", "-c", "0"], stdin=read_end)
        os.close(read_end)
        read_end = -1
        assert reader.wait(timeout=20) == 0
        return subprocess.run(
            [*program, *args],
            stdout=write_end,
            env=env,
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


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED=1", "buffered"])
@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("policy", "--help"), ("audit", "verify", "--help")],
    ids=" ".join,
)
def test_help_and_version_into_a_closed_stdout_exit_2_as_every_command_does(
    args: tuple[str, ...], unbuffered: str
) -> None:
    # The console script a user runs, on this checkout's code. With stdout unbuffered, as
    # the image sets it, argparse dropped the failed write and they exited 0, output lost.
    script = shutil.which("tollgate", path=os.path.dirname(sys.executable))
    script = script or shutil.which("tollgate")
    assert script is not None, "the tests need the package installed (pip install -e .)"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": unbuffered}
    done = run_into_a_closed_pipe(*args, program=[script], env=env)
    for complaint in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert complaint not in done.stderr
    assert done.returncode == 2


def _run_with_stdout(stdout: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tollgate with stdout on ``/dev/full`` (every write fails: no space) or closed."""

    def close_stdout() -> None:
        os.close(1)

    with open(os.devnull if stdout == "closed" else "/dev/full", "w") as target:
        return subprocess.run(
            [sys.executable, "-m", "sidecar.cli", *args],
            stdout=target,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            preexec_fn=close_stdout if stdout == "closed" else None,
        )


_ARGPARSE_OUTPUT = [("--help",), ("--version",), ("policy", "--help")]


# `check` exiting 1 on a full stdout (a traceback) read as deny; the contract's error is
# 2. (With stdout closed, Python's print writes nowhere and `check` still exits with its
# decision: only argparse's own output fails there.)
@pytest.mark.parametrize(
    ("stdout", "args"),
    [("full", args) for args in [*_ARGPARSE_OUTPUT, COMMANDS[0]]]
    + [("closed", args) for args in _ARGPARSE_OUTPUT],
    ids=lambda value: value if isinstance(value, str) else " ".join(value[:2]),
)
def test_a_full_or_closed_stdout_is_an_error_with_its_reason_not_a_traceback(
    stdout: str, args: tuple[str, ...]
) -> None:
    done = _run_with_stdout(stdout, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    reason = "No space left on device" if stdout == "full" else "standard output is closed"
    assert reason in done.stderr
