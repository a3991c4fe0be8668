"""The HTTP shell over ``Gate`` (CONTRACT section 2): routes, body limit, JSON errors.

Every answer is JSON. Anything that goes wrong inside is answered as an error with
``allowed: false``: a client that treats everything but a 200 with ``allowed: true``
as deny is therefore always right.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sidecar.approvals import endpoints as approvals
from sidecar.approvals.wire import MODELS as APPROVAL_MODELS
from sidecar.approvals.wire import openapi_paths as approval_paths
from sidecar.check_endpoint import (
    CLOSE_AFTER,
    BodyTooLarge,
    CheckEndpoint,
    ClientGone,
    encode_json,
    read_body,
)
from sidecar.gate import Gate, error_payload

JSON_TYPE = "application/json"


def json_response(
    payload: Any, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> Response:
    response = Response(encode_json(payload), status_code=status, media_type=JSON_TYPE)
    response.raw_headers.extend(headers)
    return response


async def read_limited_body(request: Request, limit: int) -> bytes:
    return await read_body(request.scope, request.receive, limit)


def create_app(
    gate: Gate,
    *,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> CheckEndpoint:
    async def list_approvals(request: Request) -> Response:
        answer = approvals.list_approvals(gate, request.query_params.get("status"))
        return json_response(answer.payload, answer.status)

    async def approval(request: Request) -> Response:
        approval_id = request.path_params["approval_id"]
        if request.method == "GET":
            answer = await approvals.get_approval(
                gate, approval_id, request.query_params.get("wait")
            )
        else:
            try:
                body = await read_limited_body(request, approvals.MAX_DECISION_BYTES)
            except BodyTooLarge:
                answer = await approvals.decision_too_large(gate, approval_id)
                return json_response(answer.payload, answer.status, CLOSE_AFTER)
            except ClientGone:
                return json_response(error_payload("invalid_request", "client disconnected"), 400)
            answer = await approvals.decide_approval(gate, approval_id, body)
        return json_response(answer.payload, answer.status)

    async def health(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(_: Request) -> Response:
        reasons = gate.unready_reasons()
        if reasons:
            return json_response({"status": "unavailable", "reasons": reasons}, 503)
        return json_response({"status": "ready"})

    async def status(_: Request) -> Response:
        return json_response(gate.status())

    async def metrics(_: Request) -> Response:
        return Response(gate.metrics.render(), media_type=gate.metrics.content_type)

    @cache
    def openapi_document() -> bytes:
        # Built when first asked for, not at start: generating the schemas takes about
        # 12 ms, which a pod's CPU limit doubles before the gate is ready; defining the
        # answer models (sidecar.openapi) is left to then too.
        from sidecar.openapi import build_openapi

        return json.dumps(build_openapi(approval_paths(), APPROVAL_MODELS)).encode("utf-8")

    async def openapi(_: Request) -> Response:
        return Response(openapi_document(), media_type=JSON_TYPE)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # Starlette's fields kept: a 405's Allow is required (RFC 9110 15.5.6).
        fields = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (exc.headers or {}).items()
        )
        return json_response(error_payload(code, str(exc.detail)), exc.status_code, fields)

    async def server_error(_: Request, exc: Exception) -> Response:
        return json_response(
            error_payload("internal", f"internal error: {type(exc).__name__}"), 500
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        yield
        if on_shutdown is not None:
            await on_shutdown()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/approvals", list_approvals, methods=["GET"]),
        Route("/v1/approvals/{approval_id}", approval, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    # A path with a trailing "/" is not one of ours: a 404, never a 307 to a Location
    # built from the client's Host header (a decision POSTed to /v1/approvals/ID/ went
    # unrecorded that way).
    app.router.redirect_slashes = False
    return CheckEndpoint(gate, app)
