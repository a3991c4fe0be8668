"""The HTTP shell over ``Gate`` (CONTRACT section 2): routes, body limit, JSON errors.

Every answer is JSON. Anything that goes wrong inside is answered as an error with
``allowed: false``: a client that treats everything but a 200 with ``allowed: true``
as deny is therefore always right.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sidecar.approvals import endpoints as approvals
from sidecar.approvals.wire import MODELS as APPROVAL_MODELS
from sidecar.approvals.wire import openapi_paths as approval_paths
from sidecar.gate import Gate, error_payload
from sidecar.openapi import build_openapi
from sidecar.request import MAX_BODY_BYTES

JSON_TYPE = "application/json"


# Built once: ``json.dumps`` with options builds a new encoder for every answer.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_response(payload: Any, status: int = 200) -> Response:
    body = _ENCODER.encode(payload).encode("utf-8")
    return Response(body, status_code=status, media_type=JSON_TYPE)


class BodyTooLarge(Exception):
    pass


async def read_limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read at most ``limit`` bytes; stop early (without buffering more) beyond that."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _listen_url(request: Request) -> str | None:
    """The URL of the socket this request arrived on (not the Host header, which the
    client chooses), for the approve command line in notifications."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        return None
    host, port = server
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def create_app(
    gate: Gate,
    *,
    on_startup: Callable[[], Any] | None = None,
    on_shutdown: Callable[[], Any] | None = None,
) -> Starlette:
    async def check(request: Request) -> Response:
        try:
            body = await read_limited_body(request)
        except BodyTooLarge:
            answer = await gate.too_large()
            return json_response(answer.payload, answer.status)
        except ClientDisconnect:
            return json_response(error_payload("invalid_request", "client disconnected"), 400)
        if gate.approvals.gate_url is None:
            gate.approvals.gate_url = _listen_url(request)
        answer = await gate.check(body)
        return json_response(answer.payload, answer.status)

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
                return json_response(answer.payload, answer.status)
            except ClientDisconnect:
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

    openapi_document = json.dumps(build_openapi(approval_paths(), APPROVAL_MODELS)).encode("utf-8")

    async def openapi(_: Request) -> Response:
        return Response(openapi_document, media_type=JSON_TYPE)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(error_payload(code, str(exc.detail)), exc.status_code)

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
        Route("/check", check, methods=["POST"]),
        Route("/v1/check", check, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/approvals", list_approvals, methods=["GET"]),
        Route("/v1/approvals/{approval_id}", approval, methods=["GET", "POST"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
