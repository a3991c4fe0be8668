"""The README's quick start, run as written on a fresh machine.

A newcomer clones the repository and pastes the first command block of "Quick start"
into a shell whose ``python3`` and ``pip`` are the distribution's (Debian and Ubuntu
mark that Python externally managed, PEP 668, so a bare ``pip install`` is refused).
This test does the same: a copy of the tracked files, the default PATH (no pyenv, no
virtualenv of the test run), the block run by ``sh``, with packages from the machine's
configured index. The block ends in ``tollgate serve``; the test waits for ``/ready``
and asks the README's first question, whose answer must be the one the README shows
(the same fields and values, ids and hashes aside). ``TOLLGATE_PORT`` moves the gate off 9800 without
touching the command line (the README gives no ``--port``, so the variable applies).

Skipped where the preconditions of a fresh machine are missing: no git checkout, no
``python3`` 3.11+ with ``venv`` on the default PATH, or no index reachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_SECONDS = 420.0

pytestmark = pytest.mark.slow


def _quick_start_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert blocks, "README's Quick start has no sh block"
    return str(blocks[0])


def _documented_answer() -> dict[str, Any]:
    """The answer README's "Asking the gate" shows for its first question."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Asking the gate", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    assert blocks, "README's Asking the gate has no json block"
    answer: dict[str, Any] = json.loads(blocks[0])
    return answer


def _fresh_python() -> str:
    python = shutil.which("python3", path=DEFAULT_PATH)
    if python is None:
        pytest.skip("no python3 on the default PATH")
    version = subprocess.run(
        [python, "-c", "import sys, venv, ensurepip; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if version.stdout.strip() != "True":
        pytest.skip(f"{python} is not Python 3.11+ with venv and ensurepip")
    return python


def _index_reachable() -> None:
    configured = subprocess.run(
        ["python3", "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": DEFAULT_PATH, "HOME": os.environ.get("HOME", "/root")},
    ).stdout.strip()
    url = os.environ.get("PIP_INDEX_URL") or configured or "https://pypi.org/simple/"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        return
    try:
        socket.create_connection(
            (parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)),
            timeout=5,
        ).close()
    except OSError as exc:
        pytest.skip(f"the package index {url} is not reachable: {exc}")


def _checkout_copy(target: Path) -> None:
    """The tracked files of this working tree, as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=REPO, capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.decode().split("\0"):
        source = REPO / name
        if not name or not source.is_file():
            continue  # deleted in the working tree
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_machine_env(port: int) -> dict[str, str]:
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": os.environ.get("HOME", "/root"),  # pip's cache and configuration
        "LANG": "C.UTF-8",
        "TOLLGATE_PORT": str(port),
    }
    # The machine's own pip settings (index, certificates), not the test run's venv.
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "tollgate"
    target.mkdir()
    _checkout_copy(target)
    yield target


def test_quick_start_runs_as_written_on_a_fresh_machine(checkout: Path, tmp_path: Path) -> None:
    _fresh_python()
    _index_reachable()
    port = _free_port()
    log = tmp_path / "quickstart.log"
    with log.open("wb") as sink:
        shell = subprocess.Popen(
            ["sh", "-c", _quick_start_block()],
            cwd=checkout,
            env=_fresh_machine_env(port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + INSTALL_SECONDS
        while True:
            if shell.poll() is not None:
                pytest.fail(
                    f"the quick start ended (exit {shell.returncode}) before the gate served:\n"
                    + log.read_text(errors="replace")[-4000:]
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as ok:
                    assert json.loads(ok.read()) == {"status": "ready"}
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("no ready gate in time:\n" + log.read_text(errors="replace")[-4000:])
            time.sleep(0.5)
        # The README's first question ("Asking the gate") gets the README's answer.
        question = {"action": "file.read", "path": "/app/data/report.csv"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/check", data=json.dumps(question).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            verdict = json.loads(answer.read())
        assert (verdict["allowed"], verdict["rule"]) == (True, "rules[0]")
        # ... and the answer the README shows: the same fields, and the same values but for
        # the ids and hashes it abbreviates.
        shown = _documented_answer()
        assert sorted(verdict) == sorted(shown)
        for key in ("allowed", "decision", "reason", "rule", "risk", "mode"):
            assert verdict[key] == shown[key], key
        assert verdict["audit"]["seq"] == shown["audit"]["seq"]
        assert (checkout / "audit" / "segments").is_dir()
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGTERM)
            try:
                shell.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)
                shell.wait()
