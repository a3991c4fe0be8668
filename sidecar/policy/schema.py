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
from pydantic_core import PydanticCustomError

Scalar = StrictStr | StrictInt
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# More digits than any bounded duration needs; checked before int() so that a number of
# thousands of digits is a plain validation error, not a conversion error or an overflow.
_DURATION_DIGITS = 15

# Every duration in a policy has an upper bound: unbounded, a huge one passed
# validation and then overflowed what it was added to (an approval's expiry past the
# year 9999 made every require_approval check fail with a 500, unrecorded).
#
# approvals.timeout: 7 days. An approval is the deadline for a human to decide and for
# the agent to use the answer; a week covers a weekend or an approver away for a few
# days, and anything older was asked in a situation that has moved on (a new approval
# is one check away). While an approval waits it also takes one of the 1000 live slots.
MAX_APPROVAL_TIMEOUT = "168h"
# rateLimit.per: 30 days. Buckets live in memory and a restart refills them, so a longer
# window promises a budget the gate cannot keep; a monthly budget is the longest sane.
MAX_RATE_LIMIT_WINDOW = "720h"
# rateLimit.count: tokens are floats; far below 2**53, where they stop counting by one
# (and far below the overflow of a count of hundreds of digits).
MAX_RATE_LIMIT_COUNT = 1_000_000_000


def _seconds(text: str) -> float:
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a positive duration like 60s, 5m or 1h")
    digits = found.group(1).lstrip("0") or "0"
    if len(digits) > _DURATION_DIGITS:
        raise ValueError(f"{text!r} is far longer than any duration allowed")
    number = int(digits)
    if number == 0:
        raise ValueError(f"{text!r} is not a positive duration like 60s, 5m or 1h")
    return number * _DURATION_UNITS[found.group(2)]


def parse_duration(text: str, *, at_most: str) -> float:
    """Seconds in a Kubernetes-style duration such as ``60s``, ``5m``, ``1h``, ``250ms``,
    which must not be longer than the duration ``at_most``. Raises ValueError."""
    seconds, longest = _seconds(text), _seconds(at_most)
    if seconds > longest:
        raise ValueError(
            f"{text!r} is longer than the longest allowed, {at_most} ({longest / 86400:g} days)"
        )
    return seconds


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
    count: Annotated[StrictInt, Field(gt=0, le=MAX_RATE_LIMIT_COUNT)]
    per: StrictStr

    @field_validator("per")
    @classmethod
    def _valid_duration(cls, value: str) -> str:
        parse_duration(value, at_most=MAX_RATE_LIMIT_WINDOW)
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
        parse_duration(value, at_most=MAX_APPROVAL_TIMEOUT)
        return value


class PolicyDocument(_Strict):
    version: Literal[1]
    defaultAction: Literal["deny", "allow"] = "deny"
    mode: Literal["enforce", "audit"] = "enforce"
    trustedPaths: list[StrictStr] | None = None
    rules: list[Rule] = []
    approvals: Approvals | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # Literal[1] compares by equality, so True and 1.0 would pass as 1 even strictly.
        if type(value) is not int:
            raise PydanticCustomError("literal_error", "Input should be 1 (an integer)")
        return value
