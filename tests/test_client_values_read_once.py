"""The Python client's guarded helpers act on exactly what they checked, whatever ``str``
subclass the caller's values are (red-team review: F5, F6).

A helper reads each value twice, once for the check and once for the action. A ``str``
subclass can answer the two readings differently (``__radd__``, ``__ne__``,
``__format__``, ``__contains__``, ``__str__``, ``encode`` ...). Each test passes such a
value to a real helper, asks a real loopback stand-in gate that allows everything and
keeps what it was asked, and compares that with what the action then did (a real
loopback web server, a real program, a real file).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Gate as that module imports it: it puts client/python on sys.path first.
from tests.test_python_client import (
    Gate,
    KubeCluster,
    RawServer,
    WebServer,
    http_answer,
    read_request,
)

ALLOW = b'{"allowed":true,"decision":"allow","reason":"stand-in"}'


class RecordingGate:
    """A loopback stand-in for the gate: allows every check and keeps its request."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []
        self.server = RawServer(self._script)
        self.url = self.server.url

    def _script(self, conn: socket.socket, _: int) -> None:
        while (request := read_request(conn)) is not None:
            self.asked.append(json.loads(request.partition(b"\r\n\r\n")[2]))
            conn.sendall(http_answer(200, ALLOW))


@pytest.fixture
def recording() -> Iterator[RecordingGate]:
    gate = RecordingGate()
    yield gate
    gate.server.close()


@pytest.fixture
def web() -> Iterator[Callable[[], WebServer]]:
    started: list[WebServer] = []

    def start() -> WebServer:
        started.append(WebServer())
        return started[-1]

    yield start
    for server in started:
        server.close()


SECRETS = "/api/v1/namespaces/kube-system/secrets"


class TwoFacedPath(str):
    """Reads as a pods path; added to the server's prefix, and printed, a secrets one."""

    def __radd__(self, other: str) -> str:
        return other + SECRETS

    def __str__(self) -> str:
        return SECRETS


class TwoFacedMethod(str):
    """Reads as GET (upper() keeps it so); printed into the request line, DELETE."""

    def upper(self) -> TwoFacedMethod:  # type: ignore[override]
        return self

    def __str__(self) -> str:
        return "DELETE"


def api_server(web: Callable[[], WebServer]) -> tuple[WebServer, KubeCluster]:
    """A web server standing for the API server, and the cluster that names it."""
    api = web()
    return api, KubeCluster(f"http://127.0.0.1:{api.port}", token="t0ken")


def test_kube_sends_the_method_and_path_it_checked_whatever_str_subclass_they_are(
    recording: RecordingGate, web: Callable[[], WebServer]
) -> None:
    api, cluster = api_server(web)
    with Gate(recording.url) as gate:
        answer = gate.kube(
            TwoFacedMethod("GET"), TwoFacedPath("/api/v1/namespaces/apps/pods"), cluster=cluster
        )
    assert answer.status == 200
    assert recording.asked[-1]["k8s"] == {"method": "GET", "path": "/api/v1/namespaces/apps/pods"}
    assert (api.methods, api.hits) == (["GET"], ["/api/v1/namespaces/apps/pods"])


class TwoFacedHeader(str):
    """Screened as X-Trace; written onto the wire (http.client encodes it) as
    Impersonate-User."""

    def encode(self, *_: Any, **__: Any) -> bytes:  # type: ignore[override]
        return b"Impersonate-User"


def test_kube_sends_the_header_names_it_screened(
    recording: RecordingGate, web: Callable[[], WebServer]
) -> None:
    api, cluster = api_server(web)
    with Gate(recording.url) as gate:
        gate.kube(
            "GET",
            "/api/v1/namespaces/apps/pods",
            headers={TwoFacedHeader("X-Trace"): "system:admin"},
            cluster=cluster,
        )
    assert api.headers[-1].get("x-trace") == "system:admin"
    assert "impersonate-user" not in api.headers[-1]


def test_fetch_sends_the_method_it_checked_whatever_str_subclass_it_is(
    recording: RecordingGate, web: Callable[[], WebServer]
) -> None:
    site = web()
    with (
        Gate(recording.url) as gate,
        gate.fetch(f"http://127.0.0.1:{site.port}/ok", method=TwoFacedMethod("GET")) as response,
    ):
        assert response.status == 200
    assert recording.asked[-1]["method"] == "GET"
    assert site.methods == ["GET"]


class Unequal(str):
    """Equal to anything: ``os.environ.get(name) != value`` is always false."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def test_run_shows_the_gate_an_env_change_whatever_str_subclass_hides_it(
    recording: RecordingGate,
) -> None:
    printenv = shutil.which("printenv")
    env = {**os.environ, "LD_PRELOAD_X": Unequal("/tmp/evil.so")}
    with Gate(recording.url) as gate:
        result = gate.run(["printenv", "LD_PRELOAD_X"], env=env, capture_output=True, text=True)
    assert result.stdout == "/tmp/evil.so\n"
    asked = recording.asked[-1]
    assert asked["commandLine"] == f"LD_PRELOAD_X=/tmp/evil.so {printenv} LD_PRELOAD_X"
    assert "argv" not in asked


class Disguised(str):
    """Formatted into the check's command line as ``true``; run as itself."""

    def __format__(self, spec: str) -> str:
        return "true"


def test_run_checks_the_command_line_it_runs_whatever_str_subclass_it_is(
    recording: RecordingGate, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    env = {**os.environ, "FOO": "1"}  # a change: the check is "export FOO=1; <command>"
    with Gate(recording.url) as gate:
        gate.run(Disguised(f"touch {marker}"), env=env)
    assert marker.exists()
    assert recording.asked[-1]["commandLine"] == f"export FOO=1; touch {marker}"


class LooksLikeAPath(str):
    """Says it holds a "/": taken as a path, it would be run as a bare name and looked up
    by the child, unchecked."""

    def __contains__(self, item: object) -> bool:
        return True


def test_run_checks_the_program_a_bare_name_resolves_to_whatever_str_subclass_it_is(
    recording: RecordingGate,
) -> None:
    with Gate(recording.url) as gate:
        gate.run([LooksLikeAPath("printenv"), "HOME"], capture_output=True)
    assert recording.asked[-1]["argv"] == [shutil.which("printenv"), "HOME"]


class ReadOnlyLooking(str):
    """An open mode that hides every letter but "r" from ``in``."""

    def __contains__(self, item: object) -> bool:
        return item == "r"


def test_open_checks_the_mode_it_opens_with_whatever_str_subclass_it_is(
    recording: RecordingGate, tmp_path: Path
) -> None:
    target = tmp_path / "kept"
    target.write_text("precious")
    with Gate(recording.url) as gate, gate.open(target, ReadOnlyLooking("r+")) as handle:
        handle.write("x")
    assert [asked["action"] for asked in recording.asked] == ["file.read", "file.write"]
