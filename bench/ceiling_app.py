"""The ceiling for ``/check`` over HTTP: Starlette + uvicorn, parsing the JSON body only.

Served exactly like ``tollgate serve`` serves the gate (``uvicorn_config`` of
sidecar/server.py: the same uvicorn settings, no access log, no server header, and
``asyncio.run(server.serve())``, so the same event loop and HTTP parser), so the
difference between the two is what the gate does per request: validation,
normalisation, the decision, the audit record and its fsync.

    python -m bench.ceiling_app --port N
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sidecar.server import uvicorn_config

ANSWER = b'{"allowed":true}'


async def check(request: Request) -> Response:
    json.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


async def ready(_: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


app = Starlette(
    routes=[Route("/check", check, methods=["POST"]), Route("/ready", ready, methods=["GET"])]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.port)).serve())


if __name__ == "__main__":
    main()
