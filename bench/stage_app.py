"""A /check server that stops after one stage of the gate's pipeline, for ``bench.stages``.

Each stage adds one step of ``Gate.check`` to the one before, and answers a fixed JSON
body once its steps are done:

- ``http``: read the body (``sidecar.check_endpoint.read_body``) and answer;
- ``parse``: + strict JSON and schema (``parse_body``, as the gate parses a body);
- ``normalise``: + ``normalise_request``;
- ``decide``: + ``decide`` on the 1,000-rule bench policy.

It is served exactly like ``tollgate serve`` serves the gate (``uvicorn_config`` of
sidecar/server.py), so the difference between two stages under the same load is what
that step costs in a loaded server, caches shared with uvicorn and asyncio, which is
more than the same step timed alone in a loop. Every stage answers through uvicorn's
ASGI cycle, where the gate's usual ``/check`` does not (sidecar/check_protocol.py): the
gap between the last stage and ``tollgate serve`` is the rest of ``Gate.check`` less
what that saves.

    python -m bench.stage_app --stage parse --port N
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn

from bench.policies import IDENTITY, policy_yaml
from sidecar.check_endpoint import Receive, Scope, Send, read_body, send_json
from sidecar.engine import decide
from sidecar.normalise.request import normalise_request
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import parse_body
from sidecar.server import uvicorn_config

STAGES = ("http", "parse", "normalise", "decide")
POLICY_RULES = 1_000
ANSWER = {"allowed": True}


def make_app(stage: str) -> Any:
    depth = STAGES.index(stage)
    policy = load_policy_bytes(policy_yaml(POLICY_RULES), "bench-policy.yaml")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["path"] == "/ready":
            await send_json(send, 200, {"status": "ready"})
            return
        body = await read_body(scope, receive)
        if depth >= 1:
            parsed = parse_body(body)
            if depth >= 2:
                normalised = normalise_request(parsed, IDENTITY)
                if depth >= 3:
                    decide(policy, normalised, parsed)
        await send_json(send, 200, ANSWER)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop; uvicorn runs the lifespan protocol as it does for the gate."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn_config(make_app(args.stage), "127.0.0.1", args.port)
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
