"""The baseline for start-up: a bare Starlette + uvicorn app, from spawn to ``GET /ready``.

It imports Starlette and uvicorn and nothing of the gate, and serves one route with the
settings that matter to a start: httptools, no access log, lifespan on. The
start-up section times it beside ``tollgate serve``, interleaved, so that the report
says how fast this machine starts any such server in the same minutes: the gate's
start-up target is absolute (1 s), and a shared VM's speed moves by a factor of two or
more from one hour to the next.

    python -m bench.bare_start --port N
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def ready(_: Request) -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = Starlette(routes=[Route("/ready", ready, methods=["GET"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        http="httptools",
    )


if __name__ == "__main__":
    main()
