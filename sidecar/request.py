"""The /check request body (CONTRACT section 2.1), parsed strictly.

Unknown fields, wrong types, fields that do not belong to the action, duplicate JSON
keys, NaN, NUL bytes and lone surrogates are all ``RequestError`` (answered 400). The pydantic
models here are the single source of the request schema: the HTTP app validates with
them and /openapi.json is generated from them.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from sidecar.canonical import canonical_bytes
from sidecar.errors import RequestError
from sidecar.subject import FILE_ACTIONS, K8S_REQUEST, NETWORK_REQUEST, PROCESS_EXEC

MAX_BODY_BYTES = 64 * 1024
MAX_CONTEXT_BYTES = 16 * 1024
# Deeper context is refused (400, recorded): every later step that walks it (encoding,
# redaction) recurses, and must never fail after the request was accepted.
MAX_CONTEXT_DEPTH = 64

ActionName = Literal[
    "file.read", "file.write", "file.delete", "process.exec", "network.request", "k8s.request"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class K8sRequestBody(_Strict):
    """Either attributes (verb, resource ...) or the raw ``method`` + ``path``."""

    verb: StrictStr | None = None
    group: StrictStr | None = None
    version: StrictStr | None = None
    resource: StrictStr | None = None
    subresource: StrictStr | None = None
    namespace: StrictStr | None = None
    name: StrictStr | None = None
    method: StrictStr | None = None
    path: StrictStr | None = None


class CheckRequest(_Strict):
    """One action the agent is about to take."""

    action: ActionName
    path: StrictStr | None = None
    realPath: StrictStr | None = None
    cwd: StrictStr | None = None
    argv: Annotated[list[StrictStr], Field(min_length=1, max_length=4096)] | None = None
    commandLine: StrictStr | None = None
    url: StrictStr | None = None
    host: StrictStr | None = None
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    scheme: StrictStr | None = None
    method: StrictStr | None = None
    k8s: K8sRequestBody | None = None
    context: dict[str, Any] | None = None
    approval: StrictStr | None = None
    dryRun: StrictBool = False


COMMON_FIELDS = frozenset({"action", "context", "approval", "dryRun"})
ACTION_REQUEST_FIELDS: dict[str, frozenset[str]] = {
    **{a: frozenset({"path", "realPath", "cwd"}) for a in FILE_ACTIONS},
    PROCESS_EXEC: frozenset({"argv", "commandLine", "cwd"}),
    NETWORK_REQUEST: frozenset({"url", "host", "port", "scheme", "method"}),
    K8S_REQUEST: frozenset({"k8s"}),
}
_APPLICABLE_FIELDS = {action: f | COMMON_FIELDS for action, f in ACTION_REQUEST_FIELDS.items()}


def _reject_constant(name: str) -> None:
    raise RequestError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RequestError(f"duplicate key {key!r} in a JSON object")
            seen.add(key)
    return result


# One decoder for every body: ``json.loads`` with options builds a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)


def parse_json_body(body: bytes) -> Any:
    """Decode the body as strict JSON. Raises ``RequestError``."""
    try:
        text = body.decode("utf-8")
        if text.startswith("\ufeff"):
            raise RequestError("body is not valid JSON: it starts with a byte order mark")
        return _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise RequestError(f"body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RequestError("body nests too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond CPython's digit limit
        raise RequestError(f"body is not acceptable JSON: {exc}") from None


def _error_field(loc: tuple[int | str, ...]) -> str:
    parts = [
        str(p) for p in loc if not (isinstance(p, str) and p.startswith(("list[", "function-")))
    ]
    return ".".join(parts)


def _plain(value: Any, depth: int = 1) -> Any:
    """Context as canonical JSON can hold it: floats become strings, their shortest form
    that reads back as the same double (docs/api.md; digits past a double's precision,
    already gone when the body was parsed, are not kept)."""
    if isinstance(value, float):
        if not math.isfinite(value):  # 1e400 parses as inf: its digits are already gone
            raise RequestError("holds a number too large to record", "context")
        return repr(value)
    if isinstance(value, dict | list):
        if depth > MAX_CONTEXT_DEPTH:
            raise RequestError(f"nests deeper than {MAX_CONTEXT_DEPTH} levels", "context")
        if isinstance(value, dict):
            return {k: _plain(v, depth + 1) for k, v in value.items()}
        return [_plain(v, depth + 1) for v in value]
    return value


def _check_text(value: Any, where: str) -> None:
    """Refuse NUL bytes and strings that are not valid Unicode (lone surrogates).

    Both can only come from a ``\\u`` escape (the body is valid UTF-8 and JSON forbids a
    raw control character). A NUL is refused in every string, ``context`` and keys
    included: C code cuts a string at it, so what one reader records another would see
    shortened. A lone surrogate can only be in a non-ASCII string.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise RequestError("must not contain NUL bytes", where or None)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError("contains an invalid Unicode escape", where or None) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def parse_body(body: bytes) -> CheckRequest:
    """``parse_request(parse_json_body(body))``: a /check body as the gate parses it.

    The body is valid UTF-8 once decoded, so a lone surrogate or a NUL can only come from
    a ``\\u`` escape: without one in the body, no string needs the walk that looks for
    them.
    """
    return parse_request(parse_json_body(body), check_text=b"\\u" in body)


def parse_request(data: Any, *, check_text: bool = True) -> CheckRequest:
    """Validate a decoded body. Raises ``RequestError`` naming the offending field.

    ``check_text=False`` skips the search for NULs and lone surrogates, for a caller that knows
    none can be there (``parse_body``)."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    if check_text:
        try:
            _check_text(data, "")
        except RecursionError:
            raise RequestError("body nests too deeply") from None
    try:
        request = CheckRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _error_field(tuple(first["loc"]))
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise RequestError(message, field or None) from None
    stray = request.model_fields_set - _APPLICABLE_FIELDS[request.action]
    if stray:
        raise RequestError(f"does not apply to action {request.action}", min(stray))
    if request.context is not None:
        context = _plain(request.context)
        try:
            size = len(canonical_bytes(context))
        except (UnicodeEncodeError, ValueError, TypeError) as exc:
            raise RequestError(f"cannot be recorded: {exc}", "context") from None
        if size > MAX_CONTEXT_BYTES:
            raise RequestError(f"is larger than {MAX_CONTEXT_BYTES} bytes", "context")
        request = request.model_copy(update={"context": context})
    return request
