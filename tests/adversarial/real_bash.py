"""The real bash, for red-team tests that show an attack works before the gate stops it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def run_bash(script: str, home: Path, *flags: str) -> str:
    """Run ``script`` with the real bash, HOME and cwd ``home`` (a clean one); its stdout."""
    assert BASH is not None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return run_program([BASH, *flags, "-c", script], home, env)


def run_program(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``argv`` in ``cwd`` with exactly ``env``, no input, 20 s at most; its stdout."""
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return done.stdout
