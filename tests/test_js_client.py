"""The JS client's own tests (client/js/test, Node's built-in runner) against the real daemon.

The daemon runs on client/js/test/policy.yaml with ``__FILES__`` and the approver's
public key filled in; Node gets ``TOLLGATE_URL``, ``TOLLGATE_TEST_FILES`` and the
approver's private key in ``TOLLGATE_TEST_APPROVER_KEY``. So ``python -m pytest``
covers the JS client too. Node 18 or newer is required, as for the project's tests in general.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

JS_DIR = Path(__file__).resolve().parents[1] / "client" / "js"


def node_binary() -> str:
    node = shutil.which("node")
    assert node is not None, "the JS client's tests need Node >= 18 on PATH"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 18, f"the JS client needs Node >= 18, found {version.stdout.strip()}"
    return node


def tap_count(output: str, name: str) -> int:
    found = re.search(rf"^# {name} (\d+)$", output, re.MULTILINE)
    assert found is not None, f"no '# {name}' line in the TAP output:\n{output[-4000:]}"
    return int(found.group(1))


def test_js_client_suite_passes_against_the_real_daemon(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    node = node_binary()
    files = tmp_path / "files"
    files.mkdir()
    approver = Ed25519PrivateKey.generate()
    public_key = approver.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    private_pem = approver.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    template = (JS_DIR / "test" / "policy.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        template.replace("__FILES__", str(files)).replace(
            "__APPROVER_KEY__", base64.b64encode(public_key).decode()
        ),
        encoding="utf-8",
    )
    daemon = daemon_factory(policy)
    test_files = sorted(str(path) for path in (JS_DIR / "test").glob("*.test.js"))
    assert len(test_files) >= 3
    env = {
        **os.environ,
        "TOLLGATE_URL": daemon.url,
        "TOLLGATE_TEST_FILES": str(files),
        "TOLLGATE_TEST_APPROVER_KEY": private_pem.decode(),
    }
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", *test_files],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = result.stdout[-8000:] + result.stderr[-4000:]
    assert result.returncode == 0, report
    assert tap_count(result.stdout, "fail") == 0, report
    assert tap_count(result.stdout, "cancelled") == 0, report
    assert tap_count(result.stdout, "skipped") == 0, report
    assert tap_count(result.stdout, "pass") >= 40, report
