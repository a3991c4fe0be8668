"""The policy file's schema (CONTRACT section 1), as strict pydantic models.

This module says only what may be written: unknown keys, wrong types and unknown
values are errors. What a rule means (matchers on fields the action has, valid globs,
regexes and CIDRs) is checked by ``sidecar.policy.compiler``, which turns these models
into predicates.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

Scalar = StrictStr | StrictInt
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Kubernetes-style duration such as ``60s``, ``5m``, ``1h``, ``250ms``."""
    found = _DURATION.match(text)
    if not found or int(found.group(1)) == 0:
        raise ValueError(f"{text!r} is not a positive duration like 60s, 5m or 1h")
    return int(found.group(1)) * _DURATION_UNITS[found.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MatcherSpec(_Strict):
    """Operators on one field; every operator given must hold."""

    equals: Scalar | list[Scalar] | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    glob: StrictStr | None = None
    startsWith: StrictStr | None = None
    endsWith: StrictStr | None = None
    regex: StrictStr | None = None
    cidr: StrictStr | list[StrictStr] | None = None
    not_: Matcher | None = Field(default=None, alias="not")
    prefix: list[StrictStr] | None = None

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


# A bare string or number means equals, a list means in, an object lists operators.
Matcher = Scalar | list[Scalar] | MatcherSpec
MatcherSpec.model_rebuild()


class RateLimit(_Strict):
    count: Annotated[StrictInt, Field(gt=0)]
    per: StrictStr

    @field_validator("per")
    @classmethod
    def _valid_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class Rule(_Strict):
    id: StrictStr | None = None
    action: StrictStr | list[StrictStr]
    decision: Literal["allow", "deny", "require_approval"]
    reason: StrictStr | None = None
    risk: Literal["low", "medium", "high"] | None = None
    rateLimit: RateLimit | None = None
    # Field matchers (which ones an action may use is checked by the compiler).
    path: Matcher | None = None
    command: Matcher | None = None
    args: Matcher | None = None
    cwd: Matcher | None = None
    host: Matcher | None = None
    port: Matcher | None = None
    scheme: Matcher | None = None
    method: Matcher | None = None
    verb: Matcher | None = None
    group: Matcher | None = None
    version: Matcher | None = None
    resource: Matcher | None = None
    namespace: Matcher | None = None
    name: Matcher | None = None
    agent: Matcher | None = None


MATCHABLE_FIELDS: tuple[str, ...] = (
    "path", "command", "args", "cwd", "host", "port", "scheme", "method",
    "verb", "group", "version", "resource", "namespace", "name", "agent",
)  # fmt: skip


class Approver(_Strict):
    name: StrictStr
    publicKey: StrictStr


class Notify(_Strict):
    webhook: StrictStr


class Approvals(_Strict):
    timeout: StrictStr = "300s"
    approvers: list[Approver] = []
    notify: Notify | None = None

    @field_validator("timeout")
    @classmethod
    def _valid_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class PolicyDocument(_Strict):
    version: Literal[1]
    defaultAction: Literal["deny", "allow"] = "deny"
    mode: Literal["enforce", "audit"] = "enforce"
    trustedPaths: list[StrictStr] | None = None
    rules: list[Rule] = []
    approvals: Approvals | None = None
