"""The bare ASGI /check handler, driven through the ASGI interface with a real gate
(real policy file, real audit trail): how the body arrives (in pieces, too large,
cut off), what is sent back, and what goes to the Starlette app behind it.

Over real HTTP the same paths are covered by tests/test_http.py and the HTTP fuzz
suite; here each ASGI message is chosen by the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.audit.verify import verify_trail
from sidecar.check_endpoint import CheckEndpoint
from sidecar.request import MAX_BODY_BYTES
from sidecar.server import ServeConfig, build_gate

POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: read-data, action: file.read, path: {glob: "/app/data/**"}, decision: allow}
"""
ALLOWED = json.dumps({"action": "file.read", "path": "/app/data/x"}).encode()

Run = Callable[..., Awaitable[tuple[int, dict[str, bytes], Any, int]]]


def _scope(method: str = "POST", path: str = "/check", headers: list[Any] | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 9800),
        "client": ("127.0.0.1", 50000),
        "headers": headers or [(b"content-type", b"application/json")],
    }


@pytest.fixture
def endpoint(tmp_path: Path) -> CheckEndpoint:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gate = build_gate(ServeConfig(policy=str(policy), audit_dir=str(tmp_path / "audit")))
    return create_app(gate)


async def _exchange(
    app: CheckEndpoint, scope: dict, messages: list[dict]
) -> tuple[int, dict[str, bytes], Any, int]:
    """Run one request; returns status, headers, decoded JSON body, messages received."""
    pending = list(messages)
    taken = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal taken
        taken += 1
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    headers = {name.decode(): value for name, value in start["headers"]}
    return start["status"], headers, json.loads(body["body"]), taken


def run(app: CheckEndpoint, scope: dict, messages: list[dict]) -> tuple:
    (result,) = run_all(app, [(scope, messages)])
    return result


def run_all(app: CheckEndpoint, exchanges: list[tuple[dict, list[dict]]]) -> list[tuple]:
    async def main() -> list[tuple]:
        await app.gate.audit.start()
        await app.gate.load_policy()
        try:
            return [await _exchange(app, scope, messages) for scope, messages in exchanges]
        finally:
            await app.gate.audit.close()

    return asyncio.run(main())


def record_types(app: CheckEndpoint) -> list[str]:
    segments = sorted((app.gate.audit.directory / "segments").glob("*.jsonl"))
    return [json.loads(line)["type"] for s in segments for line in s.read_bytes().splitlines()]


def test_a_body_in_pieces_is_joined_and_the_answer_has_its_length(endpoint: CheckEndpoint) -> None:
    pieces = [ALLOWED[:5], ALLOWED[5:20], ALLOWED[20:]]
    messages = [
        {"type": "http.request", "body": piece, "more_body": index < 2}
        for index, piece in enumerate(pieces)
    ]
    status, headers, answer, _ = run(endpoint, _scope(), messages)
    assert status == 200 and answer["allowed"] is True and answer["rule"] == "read-data"
    assert headers["content-type"] == b"application/json"
    assert int(headers["content-length"]) == len(json.dumps(answer, separators=(",", ":")))
    assert verify_trail(endpoint.gate.audit.directory).intact


def test_v1_check_is_the_same_endpoint(endpoint: CheckEndpoint) -> None:
    message = {"type": "http.request", "body": ALLOWED, "more_body": False}
    status, _, answer, _ = run(endpoint, _scope(path="/v1/check"), [message])
    assert status == 200 and answer["allowed"] is True


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    endpoint: CheckEndpoint,
) -> None:
    headers = [(b"content-length", str(MAX_BODY_BYTES + 1).encode())]
    status, _, answer, taken = run(endpoint, _scope(headers=headers), [])
    assert status == 413 and answer["allowed"] is False
    assert answer["error"]["code"] == "too_large"
    assert taken == 0  # not one byte of the body was read


def test_a_streamed_body_over_the_limit_stops_the_reading(endpoint: CheckEndpoint) -> None:
    piece = {"type": "http.request", "body": b"[" * 4096, "more_body": True}
    count = MAX_BODY_BYTES // 4096 + 5
    status, _, answer, taken = run(endpoint, _scope(headers=[]), [piece] * count)
    assert status == 413 and answer["error"]["code"] == "too_large"
    assert taken == MAX_BODY_BYTES // 4096 + 1  # stopped at the first piece past the limit


def test_a_client_that_leaves_mid_body_gets_400_and_nothing_is_decided(
    endpoint: CheckEndpoint,
) -> None:
    messages = [
        {"type": "http.request", "body": ALLOWED[:10], "more_body": True},
        {"type": "http.disconnect"},
    ]
    status, _, answer, _ = run(endpoint, _scope(), messages)
    assert status == 400 and answer["allowed"] is False
    assert answer["error"]["message"] == "client disconnected"
    assert "decision" not in record_types(endpoint)  # nothing was decided


def test_an_internal_error_is_a_500_that_denies(
    endpoint: CheckEndpoint, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(body: bytes) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(endpoint.gate, "check", broken)
    message = {"type": "http.request", "body": ALLOWED, "more_body": False}
    status, _, answer, _ = run(endpoint, _scope(), [message])
    assert status == 500 and answer["allowed"] is False
    assert answer["error"] == {
        "code": "internal",
        "message": "internal error: RuntimeError",
        "details": [],
    }
    # No record says why, so the log does, with the traceback.
    logged = [r for r in caplog.records if r.name == "tollgate.check"]
    assert logged and logged[0].exc_info is not None and "boom" in caplog.text


def test_context_nested_too_deep_is_a_recorded_400(endpoint: CheckEndpoint) -> None:
    # Deep enough to overflow the recursion of later steps, not the JSON decoder's limit.
    deep = "[" * 600 + "]" * 600
    body = b'{"action": "file.read", "path": "/app/data/x", "context": {"x": %s}}' % deep.encode()
    status, _, answer, _ = run(endpoint, _scope(), [{"type": "http.request", "body": body}])
    assert status == 400 and answer["allowed"] is False
    assert answer["error"]["details"] == [
        {"field": "context", "message": "nests deeper than 64 levels"}
    ]
    assert record_types(endpoint)[-1] == "invalidRequest"


def test_a_context_number_beyond_float_range_is_refused_not_recorded_as_inf(
    endpoint: CheckEndpoint,
) -> None:
    body = b'{"action": "file.read", "path": "/app/data/x", "context": {"n": 1e400}}'
    status, _, answer, _ = run(endpoint, _scope(), [{"type": "http.request", "body": body}])
    assert status == 400 and answer["error"]["details"] == [
        {"field": "context", "message": "holds a number too large to record"}
    ]


def test_other_methods_get_405_and_other_paths_go_to_the_starlette_app(
    endpoint: CheckEndpoint,
) -> None:
    request = {"type": "http.request", "body": b""}
    wrong_method, health = run_all(
        endpoint,
        [(_scope(method="GET"), [request]), (_scope(method="GET", path="/health"), [request])],
    )
    assert wrong_method[0] == 405 and wrong_method[2]["error"]["code"] == "method_not_allowed"
    assert wrong_method[2]["allowed"] is False and wrong_method[1]["allow"] == b"POST"
    assert health[0] == 200 and health[2] == {"status": "ok"}
    assert record_types(endpoint).count("invalidRequest") == 1  # a bad request is recorded
