"""The image's install, without a Docker engine (issue 8, part 1).

The Dockerfile builds a wheel from the files it COPYs, installs it into a fresh venv
and runs ``tollgate serve`` as uid 65532 on a read-only root file system, writing only
to the audit volume and a /tmp emptyDir. This test does the same on this machine:

* builds the wheel from a copy of exactly the build stage's COPY sources;
* installs it into a fresh ``--without-pip`` venv with ``pip --python``, as the image
  does (``--no-deps --no-index``: no network here, so the dependencies come from this
  interpreter's site-packages through a path entry, not from PyPI);
* in a private mount namespace, remounts / read-only, mounts a fresh tmpfs on /tmp and
  keeps only the audit directory writable, then drops to uid/gid 65532 with setpriv;
* checks /health and /ready, the k8s probe commands, one decision, the process's uid,
  a clean shutdown, and that the audit trail was written by uid 65532.

It needs root (for the mount namespace and setpriv) and util-linux; without them it is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import site
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parent.parent
IMAGE_UID = 65532
STARTUP_SECONDS = 30.0

# Runs as root inside the new mount namespace, then becomes the daemon.
_NAMESPACE_HELPER = r"""
import json, os, subprocess, sys, tempfile

config = json.loads(sys.argv[1])


def mount(*args):
    subprocess.run(["mount", *args], check=True)


# Volumes become mounts of their own, so remounting the root read-only spares them.
for directory in config["writable"]:
    mount("--bind", directory, directory)
# A 0700 home directory (the interpreter may live in one) is replaced by a tmpfs that
# holds only the needed subtrees, as an image holds only what it was given.
for parent, children in config["expose"].items():
    staged = []
    for child in children:
        staging = tempfile.mkdtemp(dir=config["staging"])
        mount("--bind", child, staging)
        staged.append((staging, child))
    mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "tollgate-test", parent)
    for staging, child in staged:
        os.mkdir(child)
        mount("--move", staging, child)
        mount("-o", "remount,bind,ro", child)
    mount("-o", "remount,bind,ro", parent)
# The emptyDir on /tmp, then readOnlyRootFilesystem. Directories the daemon needs that
# live under /tmp (a virtual environment made there) are kept, read-only.
kept = []
for directory in config["keep_in_tmp"]:
    staging = tempfile.mkdtemp(dir=config["staging"])
    mount("--bind", directory, staging)
    kept.append((staging, directory))
mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "tollgate-tmp", "/tmp")
for staging, directory in kept:
    os.makedirs(directory)
    mount("--move", staging, directory)
    mount("-o", "remount,bind,ro", directory)
mount("-o", "remount,bind,ro", "/")
uid = str(config["uid"])
os.execvpe(
    "setpriv",
    ["setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--inh-caps=-all",
     "--bounding-set=-all", "--no-new-privs", *config["argv"]],
    config["env"],
)
"""


@dataclass(frozen=True)
class Installed:
    base: Path  # world-readable scratch directory, root-owned
    venv: Path
    wheel: Path


def _require_tools() -> None:
    if sys.platform != "linux":
        pytest.skip("needs Linux mount namespaces")
    if os.geteuid() != 0:
        pytest.skip("needs root to create a mount namespace and drop to uid 65532")
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is not installed")
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"building the wheel offline needs setuptools and wheel: {exc}")


def _build_stage_copies() -> list[tuple[str, str]]:
    """(source, destination) of each COPY in the Dockerfile's build stage, dest relative."""
    copies: list[tuple[str, str]] = []
    stage = None
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0].upper() == "FROM":
            stage = words[-1] if "AS" in (w.upper() for w in words) else None
        elif words[0].upper() == "COPY" and stage == "build":
            assert not any(w.startswith("--") for w in words[1:]), line
            *sources, destination = words[1:]
            copies.extend((source, destination) for source in sources)
    return copies


def _build_wheel(out: Path) -> Path:
    context = out / "context"
    context.mkdir()
    for source, destination in _build_stage_copies():
        origin = REPO / source
        target = context / destination
        if origin.is_dir():
            shutil.copytree(
                origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]")
            )
        else:
            target = target / origin.name if destination.endswith("/") else target
            shutil.copy2(origin, target)
    wheels = out / "wheels"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(wheels), str(context)),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (built,) = wheels.glob("tollgate-*.whl")
    return built


def _install(wheel_file: Path, venv: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"),
            *("-q", "--no-deps", "--no-index", str(wheel_file)),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    # The dependencies: this interpreter's site-packages as a plain path entry. A path
    # entry does not run that directory's .pth files, so the editable install of the
    # source tree is not picked up; `sidecar` can only come from the wheel.
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "tollgate_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    _require_tools()
    # Not under /tmp (the daemon gets a fresh tmpfs there) and readable by uid 65532.
    base = Path(tempfile.mkdtemp(prefix="tollgate-image-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        wheel_file = _build_wheel(base)
        venv = base / "venv"
        _install(wheel_file, venv)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(base)], check=True)
        yield Installed(base, venv, wheel_file)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _private_ancestors(paths: list[str]) -> dict[str, list[str]]:
    """{dir: [children on the way]} for each ancestor that uid 65532 could not traverse."""
    found: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(path).resolve().parts
        for depth in range(1, len(parts) - 1):
            ancestor = Path(*parts[: depth + 1])
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                child = str(Path(*parts[: depth + 2]))
                children = found.setdefault(str(ancestor), [])
                if child not in children:
                    children.append(child)
                break
    return found


def _in_image(
    installed: Installed, argv: list[str], env: dict[str, str], writable: list[Path]
) -> list[str]:
    """A command line that runs ``argv`` as uid 65532 on a read-only root."""
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=installed.base))
    # The dependencies come from this interpreter's site-packages (see _install); when
    # the tests run in a virtual environment under /tmp, the daemon's fresh /tmp would
    # hide them.
    keep_in_tmp = [
        str(Path(path).resolve())
        for path in site.getsitepackages()
        if Path(path).resolve().is_relative_to("/tmp")
    ]
    config = {
        "uid": IMAGE_UID,
        "writable": [str(path) for path in writable],
        "keep_in_tmp": keep_in_tmp,
        "expose": _private_ancestors([sys.base_prefix, *site.getsitepackages()]),
        "staging": str(staging),
        "env": env,
        "argv": argv,
    }
    unshare = ("unshare", "--mount", "--propagation", "private")
    return [*unshare, sys.executable, "-c", _NAMESPACE_HELPER, json.dumps(config)]


def _image_env(installed: Installed, port: int) -> dict[str, str]:
    """The image's environment (Dockerfile ENV) and the port the manifest sets."""
    bin_dir = installed.venv / "bin"
    return {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": "/tmp",
        "TOLLGATE_HOST": "127.0.0.1",
        "TOLLGATE_PORT": str(port),
    }


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    audit: Path
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _wait_ready(daemon: Daemon) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(f"the daemon exited with {daemon.process.returncode}:\n{daemon.output()}")
        try:
            if _get(daemon.url("/ready"))[0] == 200:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail(f"/ready did not answer 200 within {STARTUP_SECONDS}s:\n{daemon.output()}")


@pytest.fixture
def daemon(installed: Installed) -> Iterator[Daemon]:
    run = Path(tempfile.mkdtemp(prefix="run-", dir=installed.base))
    run.chmod(0o755)
    audit = run / "audit"
    audit.mkdir()
    os.chown(audit, IMAGE_UID, IMAGE_UID)
    policy_dir = run / "policy"
    policy_dir.mkdir()
    shutil.copy(REPO / "policies" / "baseline.yaml", policy_dir / "policy.yaml")
    policy_dir.chmod(0o755)
    (policy_dir / "policy.yaml").chmod(0o444)
    # The signing key as the Secret volume presents it: root-owned, 0440, fsGroup 65532.
    key_dir = run / "signing"
    key_dir.mkdir(mode=0o755)
    key_file = key_dir / "tollgate.key"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chown(key_file, 0, IMAGE_UID)
    key_file.chmod(0o440)
    port = _free_port()
    env = _image_env(installed, port) | {
        "TOLLGATE_POLICY": str(policy_dir / "policy.yaml"),
        "TOLLGATE_AUDIT_DIR": str(audit),
        "TOLLGATE_SIGNING_KEY": str(key_file),
        "POD_NAMESPACE": "agents",
        "POD_NAME": "agent-0",
        "SERVICE_ACCOUNT": "agent",
    }
    # The image's ENTRYPOINT.
    command = _in_image(installed, ["tollgate", "serve"], env, writable=[audit])
    log = run / "daemon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd="/",
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Daemon(process, port, audit, log)
    try:
        _wait_ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_venv_runs_the_wheel_not_the_source_tree(installed: Installed) -> None:
    found = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import sidecar.cli; print(sidecar.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd="/",  # the image has no WORKDIR; the source tree is not on the path
    ).stdout.strip()
    assert Path(found).is_relative_to(installed.venv), found


def test_daemon_from_the_wheel_serves_as_non_root_on_a_read_only_root(
    installed: Installed, daemon: Daemon
) -> None:
    assert _get(daemon.url("/health")) == (200, {"status": "ok"})
    assert _get(daemon.url("/ready"))[0] == 200
    status = (Path("/proc") / str(daemon.process.pid) / "status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert uids == [str(IMAGE_UID)] * 4
    assert gids == [str(IMAGE_UID)] * 4
    cmdline = (Path("/proc") / str(daemon.process.pid) / "cmdline").read_bytes().split(b"\0")
    assert str(installed.venv / "bin").encode() in b" ".join(cmdline)

    request = json.dumps({"action": "file.read", "path": "/app/config/settings.toml"}).encode()
    with urllib.request.urlopen(
        urllib.request.Request(daemon.url("/check"), data=request, method="POST"), timeout=5
    ) as answer:
        verdict = json.loads(answer.read())
    assert verdict["allowed"] is True
    assert verdict["rule"] == "read-app"

    # Pod termination: SIGTERM, then a clean shutdown. (uvicorn re-raises the signal it
    # handled once shutdown is complete, so the status may be -SIGTERM.)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=20) in (0, -signal.SIGTERM), daemon.output()
    assert "Read-only file system" not in daemon.output()
    written = [p for p in daemon.audit.rglob("*") if p.is_file()]
    assert all(p.stat().st_uid == IMAGE_UID for p in written)
    records = [
        json.loads(line)
        for segment in sorted((daemon.audit / "segments").glob("*.jsonl"))
        for line in segment.read_text().splitlines()
    ]
    types = [record["type"] for record in records]
    assert types[0] == "startup"
    (decision,) = [record for record in records if record["type"] == "decision"]
    # The downward-API variables of the manifest make the identity.
    assert decision["identity"] == "agents/agent/agent-0"
    assert types[-1] == "shutdown" or types[-2:] == ["shutdown", "checkpoint"], types
    # The signed checkpoint is replaced atomically inside the audit volume.
    assert (daemon.audit / "checkpoint").is_file()


def test_k8s_probe_commands_pass_against_the_installed_daemon(
    installed: Installed, daemon: Daemon
) -> None:
    deployment = yaml.safe_load((REPO / "k8s" / "deployment.yaml").read_text())
    (gate,) = deployment["spec"]["template"]["spec"]["initContainers"]
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = gate[name]["exec"]["command"]
        result = subprocess.run(
            _in_image(installed, command, _image_env(installed, daemon.port), writable=[]),
            capture_output=True,
            cwd="/",
            timeout=gate[name]["timeoutSeconds"] + 10,
            check=False,
        )
        assert result.returncode == 0, (name, result.stderr.decode())
