"""The stage servers of ``bench.stages`` run the gate's real steps and answer every
request of the bench mix; a step that stopped working (an API change in sidecar/) must
fail here, not silently turn the stage breakdown into a measurement of nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bench.policies import request_mix
from bench.stage_app import POLICY_RULES, STAGES, make_app
from sidecar.errors import RequestError


async def _post(app: Any, body: bytes) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/check", "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_answers_the_whole_request_mix(stage: str) -> None:
    app = make_app(stage)
    for request in request_mix(POLICY_RULES):
        status, answer = asyncio.run(_post(app, json.dumps(request).encode()))
        assert (status, answer) == (200, {"allowed": True})


@pytest.mark.parametrize("stage", STAGES[1:])
def test_stages_from_parse_on_really_parse(stage: str) -> None:
    with pytest.raises(RequestError):
        asyncio.run(_post(make_app(stage), b'{"action": "file.read", "bogus": 1}'))


def test_the_stage_server_takes_part_in_the_lifespan_protocol() -> None:
    # uvicorn runs it with lifespan "on", as for the gate: startup and shutdown must be
    # acknowledged or the server never starts.
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(make_app("http")({"type": "lifespan"}, receive, send))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
