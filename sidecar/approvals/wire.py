"""The approval endpoints on the wire (CONTRACT section 2.4): models and OpenAPI paths.

``DecisionBody`` is what ``POST /v1/approvals/{id}`` is validated with, so the OpenAPI
description and the behaviour cannot drift apart. ``ApprovalView`` describes what
``GET /v1/approvals/{id}`` answers (``sidecar.approvals.model.Approval.view``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sidecar.approvals.model import STATUSES, Status

MAX_REASON_CHARS = 1024
MAX_WAIT_SECONDS = 60


class DecisionBody(BaseModel):
    """An approver's signed decision."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    decision: Literal["approve", "deny"]
    approver: StrictStr = Field(min_length=1, max_length=128)
    reason: StrictStr | None = Field(default=None, max_length=MAX_REASON_CHARS)
    signature: StrictStr = Field(
        max_length=128,
        description="base64 Ed25519 signature of the canonical JSON of "
        '{"approval", "approver", "decision", "requestHash"}',
    )


class ApprovalView(BaseModel):
    """One approval, as approvers and the waiting agent see it."""

    id: str = Field(description="apr_<ULID>")
    status: Status
    action: str
    request: dict[str, Any] = Field(
        description="The normalised request without `approval`, secrets redacted"
    )
    requestHash: str = Field(
        description='sha256:<hex> of the canonical JSON of {"action", "request"}, '
        "of the request as shown here (secrets redacted), so a client can recompute it"
    )
    rule: str | None
    risk: Literal["low", "medium", "high"] | None
    policyReason: str = Field(description="The reason the check was answered with")
    policy: str
    identity: str
    decisionId: str = Field(description="The check that asked for this approval")
    createdAt: str
    expiresAt: str
    approver: str | None
    decidedAt: str | None
    reason: str | None = Field(description="The approver's reason, or why it expired")
    redeemedBy: str | None = Field(description="decisionId of the check that redeemed it")


class ApprovalList(BaseModel):
    approvals: list[ApprovalView]


MODELS: list[type[BaseModel]] = [DecisionBody, ApprovalView, ApprovalList]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


_ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The approval id (apr_...)",
}


def openapi_paths() -> dict[str, Any]:
    """The approval endpoints, for ``sidecar.openapi.build_openapi(extra_paths=...)``."""
    # Imported when the document is first built: the answer models exist only for it,
    # and defining them is part of the gate's start otherwise.
    from sidecar.openapi import ErrorAnswer

    return {
        "/v1/approvals": {
            "get": {
                "operationId": "listApprovals",
                "summary": "Approvals the gate knows, oldest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": list(STATUSES)},
                    }
                ],
                "responses": {
                    "200": _json(ApprovalList, "The approvals"),
                    "400": _json(ErrorAnswer, "invalid_request: unknown status"),
                },
            }
        },
        "/v1/approvals/{id}": {
            "get": {
                "operationId": "getApproval",
                "summary": "One approval; with wait=N, long-poll up to N s (at most 60) "
                "for a change",
                "parameters": [
                    _ID_PARAMETER,
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": _json(
                        ApprovalView, "The approval (after a change, or when the wait ends)"
                    ),
                    "400": _json(ErrorAnswer, "invalid_request: bad wait"),
                    "404": _json(ErrorAnswer, "not_found: no such approval"),
                },
            },
            "post": {
                "operationId": "decideApproval",
                "summary": "An approver's signed decision",
                "parameters": [_ID_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(DecisionBody)}},
                },
                "responses": {
                    "200": _json(ApprovalView, "Recorded; the approval after the decision"),
                    "403": _json(
                        ErrorAnswer,
                        "forbidden: unsigned, malformed, wrongly signed or unknown "
                        "approver, or from a web page (recorded as forged)",
                    ),
                    "404": _json(ErrorAnswer, "not_found: no such approval (recorded as forged)"),
                    "409": _json(ErrorAnswer, "conflict: the approval is no longer pending"),
                    "413": _json(ErrorAnswer, "too_large"),
                    "503": _json(
                        ErrorAnswer,
                        "unavailable: no policy (for a signed decision), or the trail "
                        "cannot be written",
                    ),
                },
            },
        },
    }
