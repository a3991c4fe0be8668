"""``GET /openapi.json``: OpenAPI 3.1, generated from the pydantic models the gate uses.

The request schema is ``sidecar.request.CheckRequest`` itself, the model every /check
body is validated with, so the description cannot drift from the behaviour. The
answer models below describe what ``sidecar.gate`` and ``sidecar.app`` send; the
schemathesis run in the tests checks live answers against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from sidecar import __version__
from sidecar.request import MAX_BODY_BYTES, CheckRequest


class AuditRef(BaseModel):
    seq: int = Field(description="Sequence number of the decision's audit record")
    hash: str = Field(description="Hex RFC 6962 leaf hash of that record")


class ApprovalRef(BaseModel):
    id: str
    status: Literal["pending", "approved", "denied", "expired", "redeemed"]
    expiresAt: str


class CheckAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")
    allowed: bool = Field(description="The bit a client acts on")
    decision: Literal["allow", "deny", "require_approval"]
    reason: str
    rule: str | None
    risk: Literal["low", "medium", "high"] | None
    mode: Literal["enforce", "audit"]
    decisionId: str
    policy: str = Field(description="sha256:<hex> of the policy file that decided")
    audit: AuditRef
    approval: ApprovalRef | None = None
    dryRun: bool | None = None
    request: dict[str, Any] | None = Field(
        default=None,
        description="The normalised request as recorded, on a process.exec answer whose "
        "command redirects to or from files (its writes and reads): for the client to "
        "check where each one leads on its file system before running it",
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    details: list[Any]


class ErrorAnswer(BaseModel):
    allowed: Literal[False]
    error: ErrorDetail


class HealthAnswer(BaseModel):
    status: Literal["ok"]


class ReadyAnswer(BaseModel):
    status: Literal["ready", "unavailable"]
    reasons: list[str] | None = None


class PolicyStatus(BaseModel):
    hash: str | None = Field(description="sha256:<hex> of the active policy; null before one loads")
    source: str = Field(description="The policy file the gate follows")
    loadedAt: str | None = Field(description="RFC 3339 UTC time the active policy was loaded")
    rules: int
    defaultAction: Literal["allow", "deny"] | None
    warnings: list[str] = Field(description="What `tollgate policy validate` warns of")
    lastError: str | None = Field(
        description="Why the last load failed (the active policy, if any, stays); null "
        "once a load succeeds"
    )
    lastErrorAt: str | None
    lastErrorHash: str | None = Field(description="sha256:<hex> of the file that failed")
    pinnedHash: str | None = Field(description="--require-policy-hash, when given")
    signatureRequired: bool = Field(description="Whether --policy-public-key is set")


class CheckpointRef(BaseModel):
    origin: str
    treeSize: int
    rootHash: str = Field(description="Base64 RFC 6962 root of the first treeSize records")
    seq: int = Field(description="Sequence number of the checkpoint record")


class AuditStatus(BaseModel):
    dir: str
    seq: int = Field(description="Records written: the next record's sequence number")
    head: str = Field(description="Hex RFC 6962 leaf hash of the last record (seq - 1)")
    lastCheckpoint: CheckpointRef | None
    writable: bool = Field(
        description="False after a write or sync failed, until one succeeds (checks answer "
        "503), and while the audit volume is read-only or full (as /ready reads it)"
    )
    lastError: str | None = Field(
        description="Why the trail cannot be written, else why checkpointFileError is set"
    )
    checkpointFileError: str | None = Field(
        description="Set while DIR/checkpoint cannot be replaced and is older than the "
        "trail's newest checkpoint record"
    )


class StatusAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")
    policy: PolicyStatus
    audit: AuditStatus
    mode: Literal["enforce", "audit"] | None
    identity: str
    version: str
    uptime: float = Field(description="Seconds since the gate started")
    ready: bool = Field(description="What GET /ready answers")


MODELS: list[type[BaseModel]] = [
    CheckRequest, CheckAnswer, ErrorAnswer, HealthAnswer, ReadyAnswer, StatusAnswer,
]  # fmt: skip


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "invalid_request: malformed JSON, unknown or missing fields, bad values",
        403: "forbidden: a request from a web page (recorded as an invalidRequest)",
        413: f"too_large: body over {MAX_BODY_BYTES} bytes",
        500: "internal: a bug; still a deny (recorded as an invalidRequest)",
        503: "unavailable: no valid policy, the audit trail cannot be written, or the gate "
        "shut down before the request ended",
        404: "not_found",
    }
    return {str(code): _json(ErrorAnswer, text[code]) for code in codes}


# Every route refuses a web page's request before it is routed (sidecar/browsers.py).
FROM_A_WEB_PAGE = {"$ref": "#/components/responses/FromAWebPage"}


def _responses() -> dict[str, Any]:
    """Answers no single operation owns: a web page's 403 (every route), and the 405 to a
    method a path does not take, which names the ones it does in ``Allow``."""
    return {
        "FromAWebPage": _json(
            ErrorAnswer,
            "forbidden: a request from a web page (an Origin header, a cross-site "
            "Sec-Fetch-Site, a Host neither localhost nor an IP address)",
        ),
        "MethodNotAllowed": {
            **_json(ErrorAnswer, "method_not_allowed: a method the path does not take"),
            "headers": {
                "Allow": {"description": "The methods it takes", "schema": {"type": "string"}}
            },
        },
    }


def _refusing_web_pages(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the web page's 403 on every operation that has none of its own."""
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("403", FROM_A_WEB_PAGE)
    return paths


def build_openapi(
    extra_paths: dict[str, Any] | None = None, extra_models: list[type[BaseModel]] | None = None
) -> dict[str, Any]:
    models = MODELS + (extra_models or [])
    _, schemas = models_json_schema(
        [(m, "validation" if m is CheckRequest else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    check = {
        "summary": "Decide one action before the agent takes it",
        "description": "Answers 200 for every decision; act only on allowed: true.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(CheckRequest)}},
        },
        "responses": {
            "200": _json(CheckAnswer, "The decision, after its audit record is durable"),
            **_errors(400, 403, 413, 500, 503),
        },
    }
    other_methods = (
        "Any other method is answered 405 with Allow: POST "
        "(#/components/responses/MethodNotAllowed); recorded as an invalidRequest."
    )
    paths: dict[str, Any] = {
        "/check": {"description": other_methods, "post": {**check, "operationId": "check"}},
        "/v1/check": {"description": other_methods, "post": {**check, "operationId": "checkV1"}},
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "responses": {"200": _json(HealthAnswer, "The process serves")},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: a valid policy is active and the audit trail is writable",
                "responses": {
                    "200": _json(ReadyAnswer, "Ready"),
                    "503": _json(ReadyAnswer, "Not ready, with reasons"),
                },
            }
        },
        "/v1/status": {
            "get": {
                "operationId": "status",
                "summary": "Policy, audit trail and identity",
                "responses": {"200": _json(StatusAnswer, "Status")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    paths.update(extra_paths or {})
    _refusing_web_pages(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate",
            "version": __version__,
            "description": "Deny-by-default gate for AI agents.",
        },
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {}), "responses": _responses()},
    }
