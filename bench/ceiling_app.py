"""The ceiling for ``/check`` over HTTP: Starlette + uvicorn, parsing the JSON body only.

A bare endpoint, served as ``uvicorn.run`` serves an app by default: uvicorn picks its
event loop and HTTP parser from what is installed (``loop="auto"``, ``http="auto"``:
uvloop if installed, else asyncio; httptools if installed, else h11), with only the
access log turned off (a line written per request would measure logging). The gate's
environment installs httptools and no uvloop (pyproject.toml), so here that is asyncio
and httptools, the gate's own loop and parser; ``describe()`` says which. The ceiling's
requests go through uvicorn's ASGI cycle and Starlette, as the issue defines it; the
gate's usual ``/check`` skips both (sidecar/check_protocol.py), so the difference
between the two is what the gate does per request (validation, normalisation, the
decision, the audit record and its fsync) less what its protocol saves over uvicorn's
cycle (docs/performance-investigations.md, "What uvicorn's request cycle costs").

    python -m bench.ceiling_app --port N [--sync-dir DIR]

With ``--sync-dir`` each request's body is also appended to a file in DIR and made
durable with one ``fdatasync`` before the answer, on the event loop: the ceiling plus
the "one fsync" the concurrency-1 target allows for, measured on the gate's disk in
the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"allowed":true}'


async def check(request: Request) -> Response:
    json.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


def syncing_check(fd: int):  # type: ignore[no-untyped-def]
    """``check`` that first appends the body to ``fd`` and fdatasyncs it."""

    async def check_and_sync(request: Request) -> Response:
        body = await request.body()
        json.loads(body)
        os.write(fd, body + b"\n")
        os.fdatasync(fd)
        return Response(ANSWER, media_type="application/json")

    return check_and_sync


async def ready(_: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


def make_app(sync_fd: int | None = None) -> Starlette:
    endpoint = check if sync_fd is None else syncing_check(sync_fd)
    return Starlette(
        routes=[
            Route("/check", endpoint, methods=["POST"]),
            Route("/ready", ready, methods=["GET"]),
        ]
    )


app = make_app()


def describe() -> str:
    """The ceiling's server as uvicorn's defaults make it in this environment."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {uvicorn.__version__} with its defaults: {loop} event loop, {parser} parser"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sync-dir", help="append and fdatasync every body in this directory")
    args = parser.parse_args()
    served = app
    if args.sync_dir is not None:
        os.makedirs(args.sync_dir, exist_ok=True)
        path = os.path.join(args.sync_dir, "bodies.log")
        served = make_app(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    # Server.run, as uvicorn.run does: it sets up the event loop uvicorn's "auto" picks.
    config = uvicorn.Config(
        served, host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
