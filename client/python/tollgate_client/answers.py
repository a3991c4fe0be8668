"""The gate's answers as Python values, read fail-closed (CONTRACT sections 2.1, 2.4, 5).

``read_decision`` turns whatever came back from ``POST /v1/check`` into a ``Decision``.
Only a 200 whose JSON object has ``"allowed": true`` (the JSON literal, not ``"true"``
or ``1``) is an allow; everything else is a deny whose ``reason`` says what went wrong
and whose ``error`` names the kind of failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Error kinds the client itself reports (the gate's own codes, e.g. "invalid_request"
# or "unavailable", are passed through as they are).
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
BAD_ANSWER = "bad_answer"
CHANGED = "changed"
NOT_FOUND = "not_found"

APPROVAL_STATES = frozenset({"pending", "approved", "denied", "expired", "redeemed"})

# The gate's answers nest two levels deep and hold no long numbers. Past these limits
# the two clients' parsers part ways (json recurses and stops near 1000 levels, and
# refuses an integer of more than 4300 digits, Python's int_max_str_digits default;
# JSON.parse takes both), so both clients refuse such an answer before parsing it. The
# JS client has the same limits.
MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 4300
# A string (whose brackets and digits are text), a quote that opens no whole string (the
# scan stops there: json.loads refuses it), a bracket, a run of digits. Anything else is
# for json.loads to judge.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[{]|[\]}]|[0-9]+', re.DOTALL)
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % (MAX_NUMBER_DIGITS + 1))


@dataclass(frozen=True)
class Approval:
    """A pending or settled approval (``GET /v1/approvals/{id}``).

    ``status`` is one of ``pending approved denied expired redeemed``, or ``unknown``
    when the client could not learn it (``reason`` then says why).
    """

    id: str
    status: str
    expires_at: str | None = None
    reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def pending(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True)
class Decision:
    """The gate's decision on one action. Act on ``allowed`` and nothing else.

    ``decision`` is ``allow``, ``deny`` or ``require_approval`` (in the policy's audit
    mode ``allowed`` can be true while ``decision`` says what enforce mode would do).
    ``error`` is ``None`` for a real decision, else why the client failed closed:
    ``unreachable``, ``timeout``, ``bad_answer``, ``changed``, ``not_found`` or the gate's
    error code. ``not_found`` with ``status`` 404 is the gate's (a URL with a path it
    does not serve); with ``status`` None, ``run``'s (no such program in ``PATH``).
    """

    allowed: bool
    decision: str
    reason: str
    rule: str | None = None
    decision_id: str | None = None
    approval: Approval | None = None
    risk: str | None = None
    mode: str | None = None
    error: str | None = None
    status: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def failed_closed(reason: str, error: str, status: int | None = None) -> Decision:
    """A deny made by the client because it could not get a trustworthy answer."""
    return Decision(allowed=False, decision="deny", reason=reason, error=error, status=status)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else."""
    return _json_object(body)[0]


def _shape_problem(body: bytes) -> str | None:
    """What puts ``body`` past ``MAX_JSON_DEPTH`` or ``MAX_NUMBER_DIGITS``, if anything
    (one pass, before any parser sees it)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH and not _LONG_DIGITS.search(body):
        return None  # the gate's own answers: nothing could be past a limit
    depth = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token == b'"':
            return None
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return f"nests deeper than {MAX_JSON_DEPTH} levels"
        elif token in (b"]", b"}"):
            depth -= 1
        elif token[:1].isdigit() and len(token) > MAX_NUMBER_DIGITS:
            return f"has a number of more than {MAX_NUMBER_DIGITS} digits"
    return None


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the body as a JSON object, "") or (None, what it is instead)."""
    problem = _shape_problem(body)
    if problem is not None:
        return None, problem
    try:
        value = json.loads(
            body.decode("utf-8"), parse_constant=_not_json, object_pairs_hook=_unique_keys
        )
    except _DuplicateKey as exc:
        return None, f"has the key {exc.key!r} twice in one object"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "is not a JSON object"
    return (value, "") if isinstance(value, dict) else (None, "is not a JSON object")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys, so {"allowed": false, "allowed": true}
    # would read as an allow; an answer that says two things is not trusted.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _not_json(constant: str) -> Any:
    # NaN and Infinity are Python's extensions, not JSON: no gate sends them, and the
    # JS client refuses them, so an answer holding one is not trusted either.
    raise ValueError(f"{constant} is not JSON")


def read_approval(value: Any) -> Approval | None:
    """An approval object, or None unless it has a string ``id`` and a known ``status``."""
    if not isinstance(value, dict):
        return None
    approval_id, status = value.get("id"), value.get("status")
    if not isinstance(approval_id, str) or status not in APPROVAL_STATES:
        return None
    return Approval(approval_id, status, _text(value.get("expiresAt")), raw=value)


def _error_reason(status: int, payload: dict[str, Any] | None) -> tuple[str, str]:
    error = payload.get("error") if payload else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = _text(error.get("message")) or "no message"
        return f"tollgate refused the check (HTTP {status} {error['code']}): {message}", error[
            "code"
        ]
    return f"tollgate answered HTTP {status}, not 200", BAD_ANSWER


def read_decision(status: int, body: bytes) -> Decision:
    """Read a /v1/check answer. Never raises; anything unexpected is a deny."""
    payload, problem = _json_object(body)
    if status != 200:
        reason, error = _error_reason(status, payload)
        return failed_closed(reason, error, status)
    if payload is None:
        return failed_closed(f"tollgate's answer {problem}", BAD_ANSWER, status)
    allowed = payload.get("allowed")
    if not isinstance(allowed, bool):
        return failed_closed(
            f"tollgate's answer has allowed={allowed!r}, not the JSON literal true or false",
            BAD_ANSWER,
            status,
        )
    decision = _text(payload.get("decision")) or ""
    # "decision" must never read as an allow when "allowed" says no.
    if not allowed and decision not in ("deny", "require_approval"):
        decision = "deny"
    return Decision(
        allowed=allowed,
        decision=decision,
        reason=_text(payload.get("reason")) or "",
        rule=_text(payload.get("rule")),
        decision_id=_text(payload.get("decisionId")),
        approval=read_approval(payload.get("approval")),
        risk=_text(payload.get("risk")),
        mode=_text(payload.get("mode")),
        status=status,
        raw=payload,
    )
