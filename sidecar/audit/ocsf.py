"""OCSF mapping for ``tollgate audit export --format ocsf`` (CONTRACT section 3).

Agent-facing records (``decision``, ``invalidRequest``, ``approval``) become OCSF 1.4.0
API Activity events (class 6003, category 6) with the Security Control profile:
``action_id``/``disposition_id`` say what the gate did (Allowed, Blocked, Delayed for a
pending approval, Detected for audit mode, Rejected for a malformed request), ``policy``
and ``firewall_rule`` name the policy hash and rule. ``metadata.sequence`` is the
record's seq, ``metadata.uid`` its leaf hash and ``raw_data`` the exact line, so every
event can be proven against a signed checkpoint. Other record types describe the gate
itself and are not exported as OCSF.

``to_ocsf`` builds an event as a dict (the readable definition); ``ocsf_json`` writes
the same bytes as encoding that dict, faster: records are decoded into ``OcsfRecord``
(only the fields the mapping reads), the part of an event that repeats from record
to record is encoded once and cached, and the rest is spliced in.
"""

from __future__ import annotations

import functools
import operator
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from sidecar import __version__
from sidecar.audit.records import ts_to_epoch_ms

OCSF_VERSION = "1.4.0"
_encode = msgspec.json.Encoder().encode

_API_ACTIVITY = 6003
_APPLICATION_CATEGORY = 6
_ACTIVITY_NAMES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 99: "Other", 0: "Unknown"}
_HTTP_ACTIVITY = {
    "GET": 2,
    "HEAD": 2,
    "OPTIONS": 2,
    "POST": 1,
    "PUT": 3,
    "PATCH": 3,
    "DELETE": 4,
}
_K8S_ACTIVITY = {
    "get": 2,
    "list": 2,
    "watch": 2,
    "create": 1,
    "update": 3,
    "patch": 3,
    "delete": 4,
    "deletecollection": 4,
}
_RISK_LEVEL = {"low": (1, "Low"), "medium": (2, "Medium"), "high": (3, "High")}
_SEVERITY = {None: (2, "Low"), "low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High")}
_OCSF_TYPES = frozenset({"decision", "invalidRequest", "approval"})
_FILE_ACTIONS = frozenset({"file.read", "file.write", "file.delete"})


class OcsfRequest(msgspec.Struct, rename="camel"):
    """The fields of a record's ``request`` that the mapping reads (any JSON value)."""

    action: Any = None
    path: Any = None
    argv: Any = None
    command_line: Any = None
    k8s: Any = None
    host: Any = None
    port: Any = None
    scheme: Any = None
    method: Any = None
    url: Any = None


_NO_REQUEST = OcsfRequest()


class OcsfRecord(msgspec.Struct, rename="camel"):
    """The fields of a record that the mapping reads; a ``request`` that is not an
    object counts as none (``decode_record`` takes care of it)."""

    seq: Any = None
    ts: Any = None
    prev: Any = None  # read by export, which checks the chain
    type: Any = None
    decision_id: Any = None
    action: Any = None
    request: OcsfRequest | None = None
    decision: Any = None
    event: Any = None
    allowed: Any = None
    risk: Any = None
    identity: Any = None
    policy: Any = None
    mode: Any = None
    rule: Any = None
    reason: Any = None
    dry_run: Any = None


class NotAnEvent(ValueError):
    """An agent-facing record that cannot become an event (e.g. its ts is malformed)."""


_decode_fields: Callable[[bytes], OcsfRecord] = msgspec.json.Decoder(OcsfRecord).decode


def decode_record(line: bytes) -> OcsfRecord:
    """The fields of ``line`` the mapping reads.

    Raises msgspec.DecodeError (or its subclass ValidationError) when the line is not a
    JSON object.
    """
    try:
        return _decode_fields(line)
    except msgspec.ValidationError as exc:
        record = msgspec.json.decode(line)  # a DecodeError here: not JSON at all
        if type(record) is not dict:
            raise exc from None
        # Only ``request`` is typed: whatever else it is, it is not a request object.
        record["request"] = None
        return msgspec.convert(record, OcsfRecord)


def record_fields(record: dict[str, Any]) -> OcsfRecord:
    """``decode_record`` for a record that is already a dict."""
    if not isinstance(record.get("request"), dict):
        record = {**record, "request": None}
    return msgspec.convert(record, OcsfRecord)


def _k8s(request: OcsfRequest) -> dict[str, Any]:
    k8s = request.k8s
    return k8s if isinstance(k8s, dict) else {}


def _activity_id(action: Any, request: OcsfRequest) -> int:
    if action == "file.read":
        return 2
    if action == "file.write":
        return 3
    if action == "file.delete":
        return 4
    if action == "network.request":
        return _HTTP_ACTIVITY.get(str(request.method or "GET").upper(), 99)
    if action == "k8s.request":
        return _K8S_ACTIVITY.get(str(_k8s(request).get("verb", "")).lower(), 99)
    if action == "process.exec":
        return 99
    return 0


# Approval records by their event; anything not listed (expired, denied ...) is Blocked.
_APPROVAL_DISPOSITIONS: dict[str, tuple[int, str, int, str]] = {
    "approved": (1, "Allowed", 8, "Approved"),
    "redeemed": (1, "Allowed", 1, "Allowed"),
    "requested": (2, "Denied", 14, "Delayed"),
    # Webhook deliveries: the approval is still waiting for a person.
    "notified": (2, "Denied", 14, "Delayed"),
    "notifyFailed": (2, "Denied", 14, "Delayed"),
    "forged": (2, "Denied", 25, "Rejected"),
    "refused": (2, "Denied", 25, "Rejected"),
}


def _disposition(
    record_type: str, outcome: Any, allowed: Any, dry_run: bool = False
) -> tuple[int, str, int, str]:
    """(action_id, action, disposition_id, disposition) of the Security Control profile.

    ``outcome`` is a decision's ``decision`` and an approval record's ``event``. A
    preflight (``dryRun``) was only asked about: nothing was allowed or stopped, which
    OCSF writes as Allowed / No Action ("no action would equate to 1 Allowed").
    """
    if dry_run and record_type == "decision":
        return 1, "Allowed", 16, "No Action"
    if record_type == "invalidRequest":
        return 2, "Denied", 25, "Rejected"
    if record_type == "approval":
        return _APPROVAL_DISPOSITIONS.get(str(outcome), (2, "Denied", 2, "Blocked"))
    if allowed is True:
        if outcome == "allow":
            return 1, "Allowed", 1, "Allowed"
        return 1, "Allowed", 15, "Detected"  # audit mode: would have been denied
    if outcome == "require_approval":
        return 2, "Denied", 14, "Delayed"
    return 2, "Denied", 2, "Blocked"


def _resources(action: Any, request: OcsfRequest) -> list[dict[str, Any]]:
    if type(action) is str and action in _FILE_ACTIONS and request.path:
        return [{"type": "file", "name": request.path}]
    if action == "process.exec":
        argv = request.argv
        name = argv[0] if isinstance(argv, list) and argv else request.command_line
        return [{"type": "process", "name": name}] if name else []
    if action == "k8s.request":
        k8s = _k8s(request)
        if k8s.get("resource"):
            resource = {"type": f"kubernetes:{k8s['resource']}", "name": k8s.get("name") or ""}
            if k8s.get("namespace"):
                resource["namespace"] = k8s["namespace"]
            return [resource]
        if k8s.get("path"):
            return [{"type": "kubernetes:nonResourceURL", "name": k8s["path"]}]
    return []


# typed: True, 1 and 1.0 are equal keys but not the same outcome (``allowed is True``).
@functools.lru_cache(maxsize=1024, typed=True)
def _classification(
    record_type: str, activity_id: int, outcome: Any, allowed: Any, risk: Any, dry_run: bool
) -> dict[str, Any]:
    """The event fields that depend only on what kind of outcome this was (cached)."""
    action_id, action_name, disposition_id, disposition = _disposition(
        record_type, outcome, allowed, dry_run
    )
    severity_id, severity = (
        (1, "Informational") if action_id == 1 else _SEVERITY.get(risk, (2, "Low"))
    )
    activity_name = _ACTIVITY_NAMES.get(activity_id, "Other")
    fields: dict[str, Any] = {
        "class_uid": _API_ACTIVITY,
        "class_name": "API Activity",
        "category_uid": _APPLICATION_CATEGORY,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": _API_ACTIVITY * 100 + activity_id,
        "type_name": f"API Activity: {activity_name}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1 if action_id == 1 else 2,
        "status": "Success" if action_id == 1 else "Failure",
        "action_id": action_id,
        "action": action_name,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "is_alert": action_id == 2 or disposition_id == 15,
    }
    if risk in _RISK_LEVEL:
        fields["risk_level_id"], fields["risk_level"] = _RISK_LEVEL[risk]
    if dry_run and record_type == "decision":
        # What the check would have been answered, kept where a SIEM does not count it.
        fields["unmapped"] = {"dryRun": True, "decision": outcome, "allowed": allowed}
    return fields


@functools.lru_cache(maxsize=256)
def _actor(identity: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"app_name": "tollgate", "user": {"name": identity, "uid": identity}},
        {"name": identity},
    )


_PRODUCT = {"name": "Tollgate", "vendor_name": "Tollgate", "version": __version__}
_PROFILES = ["security_control"]
_SERVICE = {"name": "tollgate"}
_LOG_NAME = "tollgate-audit"


def _static_fields(
    record_type: str,
    activity_id: int,
    outcome: Any,
    allowed: Any,
    risk: str | None,
    identity: str,
    policy: Any,
    mode: Any,
    rule: Any,
    reason: Any,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Event fields that repeat from record to record (who, what outcome, which rule)."""
    try:
        classification = _classification(record_type, activity_id, outcome, allowed, risk, dry_run)
    except TypeError:  # an unhashable decision or allowed value: not worth caching
        classification = _classification.__wrapped__(
            record_type, activity_id, outcome, allowed, risk, dry_run
        )
    fields = dict(classification)
    fields["actor"], fields["src_endpoint"] = _actor(identity)
    fields["message"] = reason or record_type
    if policy:
        fields["policy"] = {
            "uid": policy,
            "name": "tollgate policy",
            "is_applied": (mode or "enforce") == "enforce",
        }
    if rule:
        fields["firewall_rule"] = {"uid": rule, "name": rule, "desc": reason or ""}
    return fields


@functools.lru_cache(maxsize=4096, typed=True)
def _static_members(*key: Any) -> bytes:
    """``_static_fields`` as JSON object members (no braces), cached."""
    return _encode(_static_fields(*key))[1:-1]


def _target_fields(action: Any, request: OcsfRequest) -> dict[str, Any]:
    """What the agent acted on: resources, and for a network request host and URL."""
    fields: dict[str, Any] = {}
    resources = _resources(action, request)
    if resources:
        fields["resources"] = resources
    host = request.host
    if action == "network.request" and host:
        port = request.port
        fields["dst_endpoint"] = (
            {"hostname": host, "port": port} if isinstance(port, int) else {"hostname": host}
        )
        url: dict[str, Any] = {"hostname": host, "path": request.path or "/"}
        if request.scheme:
            url["scheme"] = request.scheme
        if isinstance(port, int):
            url["port"] = port
        full = request.url
        if type(full) is str and full:
            url["url_string"] = full
            query = _query(full)
            if query:
                url["query_string"] = query
        fields["http_request"] = {"http_method": str(request.method or "GET"), "url": url}
    return fields


def _query(url: str) -> str:
    """The query of ``url``, without its '?' (and without a fragment)."""
    return url.partition("#")[0].partition("?")[2]


@functools.lru_cache(maxsize=1024)
def _second_ms(prefix: str) -> int | None:
    """Epoch milliseconds of a ts's ``YYYY-MM-DDTHH:MM:SS``; None if it is not one."""
    try:
        return ts_to_epoch_ms(prefix + ".000000Z")
    except ValueError:
        return None


def _epoch_ms(ts: Any) -> int:
    """``ts_to_epoch_ms`` with the date and time of day parsed once per second."""
    # isascii() and isdecimal(): exactly TS_PATTERN's ASCII \d.
    if type(ts) is str and len(ts) == 27 and ts[19] == "." and ts[26] == "Z":
        second = _second_ms(ts[:19])
        fraction = ts[20:26]
        if second is not None and fraction.isascii() and fraction.isdecimal():
            return second + int(ts[20:23])
    raise NotAnEvent(f"ts is not a record timestamp: {ts!r}")


def _record_fields(
    time: Any, seq: Any, leaf_hash: str, ts: Any, operation: str, raw_data: str, decision_id: Any
) -> dict[str, Any]:
    """Event fields particular to this record: when, and which record."""
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "profiles": _PROFILES,
        "product": _PRODUCT,
        "log_name": _LOG_NAME,
        "uid": leaf_hash,
        "sequence": seq,
        "original_time": ts,
    }
    api: dict[str, Any] = {"operation": operation, "service": _SERVICE}
    fields: dict[str, Any] = {"time": time, "metadata": metadata, "api": api, "raw_data": raw_data}
    if decision_id:
        api["request"] = {"uid": decision_id}
        metadata["correlation_uid"] = decision_id
    return fields


def _parts(record: OcsfRecord) -> tuple[tuple[Any, ...], Any, OcsfRequest] | None:
    """(key of the repeating fields, action, request), or None when not agent activity."""
    record_type = record.type
    if type(record_type) is not str or record_type not in _OCSF_TYPES:
        return None
    request = record.request or _NO_REQUEST
    action = record.action or request.action
    activity_id = _activity_id(action, request) if record_type == "decision" else 99
    risk = record.risk
    key = (
        record_type,
        activity_id,
        # An approval record's outcome is its event (requested, approved, redeemed ...).
        record.event if record_type == "approval" else record.decision,
        record.allowed,
        risk if isinstance(risk, str) else None,
        str(record.identity or ""),
        record.policy,
        record.mode,
        record.rule,
        record.reason,
        record.dry_run is True,
    )
    return key, action, request


def to_ocsf(
    seq: int, leaf_hash: str, line: bytes, record: OcsfRecord | dict[str, Any]
) -> dict[str, Any] | None:
    """One OCSF API Activity event for an agent-facing record, None for the others.

    ``metadata.sequence`` is the record's seq, ``metadata.uid`` its leaf hash and
    ``raw_data`` the exact line, so the event can be proven against a checkpoint.
    Raises NotAnEvent for an agent-facing record without a valid ``ts``.
    """
    fields = record_fields(record) if isinstance(record, dict) else record
    parts = _parts(fields)
    if parts is None:
        return None
    key, action, request = parts
    ts = fields.ts
    return (
        _static_fields(*key)
        | _record_fields(
            _epoch_ms(ts),
            seq,
            leaf_hash,
            ts,
            str(action or fields.type),
            line.decode("utf-8"),
            fields.decision_id,
        )
        | _target_fields(action, request)
    )


# ----------------------------------------------------------------------------------
# The fast encoding. An event is the cached encoding of its repeating fields followed
# by the per-record fields and the target, each filled into a %-template. A template
# is the encoding of the same dict-building function called with a placeholder string
# for each value, the placeholders then replaced by %b or %d conversions: the
# structure of an event is written once, above.

_PLACEHOLDER = re.compile(rb'"\\u0000tollgate:(\w+)\\u0000"')


def _placeholder(name: str) -> str:
    return f"\x00tollgate:{name}\x00"  # encodes as "\u0000tollgate:<name>\u0000"


class _Template:
    """An encoded object's members with %-conversions where placeholders were."""

    __slots__ = ("_in_order", "text")

    def __init__(self, text: bytes, names: tuple[str, ...]) -> None:
        self.text = text
        getter = operator.itemgetter(*names)
        # itemgetter of one name returns the value itself, not a 1-tuple.
        self._in_order: Callable[[dict[str, Any]], Any] = (
            getter if len(names) > 1 else lambda values: (getter(values),)
        )

    @classmethod
    def of(
        cls,
        fields: dict[str, Any],
        conversions: dict[str, bytes],
        repeated: dict[str, int] | None = None,
    ) -> _Template | None:
        """The template of ``fields``, whose values hold ``_placeholder(name)`` once for
        each name in ``conversions`` (or as often as ``repeated`` says).

        None if other placeholders turn up: a record value can end in a placeholder's
        text, and such a record is encoded whole instead.
        """
        encoded = _encode(fields)[1:-1].replace(b"%", b"%%")
        names = tuple(name.decode() for name in _PLACEHOLDER.findall(encoded))
        if Counter(names) != Counter(dict.fromkeys(conversions, 1) | (repeated or {})):
            return None
        text = _PLACEHOLDER.sub(lambda match: conversions[match.group(1).decode()], encoded)
        return cls(text, names)

    def fill(self, values: dict[str, Any]) -> bytes:
        return self.text % self._in_order(values)


def _record_template(with_decision_id: bool) -> _Template:
    conversions = {
        "time": b"%d",
        "seq": b"%d",
        "leaf_hash": b"%b",
        "ts": b"%b",
        "operation": b"%b",
        "raw_data": b"%b",
    }
    repeated = {}
    if with_decision_id:
        conversions["decision_id"] = b"%b"
        repeated["decision_id"] = 2  # correlation_uid and api.request.uid
    values: dict[str, Any] = {name: _placeholder(name) for name in conversions}
    values.setdefault("decision_id", None)
    template = _Template.of(_record_fields(**values), conversions, repeated)
    if template is None:
        raise RuntimeError("the OCSF record template lost a placeholder")  # a bug here
    return template


_RECORD_TEMPLATES = (_record_template(False), _record_template(True))


@functools.lru_cache(maxsize=4096, typed=True)
def _path_target_template(
    action: str, host: Any, port: Any, scheme: Any, method: Any
) -> _Template | None:
    """The target members of a file or network request, the path left open."""
    request = OcsfRequest(
        path=_placeholder("path"), host=host, port=port, scheme=scheme, method=method
    )
    return _Template.of(_target_fields(action, request), {"path": b"%b"})


def _target_members(action: Any, request: OcsfRequest) -> bytes:
    """``_target_fields`` encoded as members with a leading comma (b"" when empty)."""
    path = request.path
    if (
        path
        and type(action) is str
        and (action in _FILE_ACTIONS or (action == "network.request" and not request.url))
    ):
        try:
            template = _path_target_template(
                action, request.host, request.port, request.scheme, request.method
            )
        except TypeError:  # an unhashable host, port ...: encode it whole
            template = None
        if template is not None:
            return b"," + template.fill({"path": _encode(path)})
    targets = _target_fields(action, request)
    return b"," + _encode(targets)[1:-1] if targets else b""


def ocsf_line(
    seq: int, leaf_hash: str, line: bytes, record: OcsfRecord | dict[str, Any]
) -> bytes | None:
    """``to_ocsf`` encoded as one line of JSON (with the newline): the same bytes as
    encoding the dict, built from the cached repeating fields and templates."""
    fields = record_fields(record) if isinstance(record, dict) else record
    parts = _parts(fields)
    if parts is None:
        return None
    key, action, request = parts
    try:
        static = _static_members(*key)
    except TypeError:  # a list or object where text belongs: nothing to cache
        static = _encode(_static_fields(*key))[1:-1]
    ts = fields.ts
    decision_id = fields.decision_id
    values = {
        "time": _epoch_ms(ts),
        "seq": seq,
        "leaf_hash": b'"%b"' % leaf_hash.encode("ascii"),
        "ts": _encode(ts),
        "operation": _encode(str(action or fields.type)),
        "raw_data": _encode(line.decode("utf-8")),
    }
    if decision_id:
        values["decision_id"] = _encode(decision_id)
    return b"".join(
        (
            b"{",
            static,
            b",",
            _RECORD_TEMPLATES[bool(decision_id)].fill(values),
            _target_members(action, request),
            b"}\n",
        )
    )


def ocsf_json(
    seq: int, leaf_hash: str, line: bytes, record: OcsfRecord | dict[str, Any]
) -> bytes | None:
    """``ocsf_line`` without the newline."""
    event = ocsf_line(seq, leaf_hash, line, record)
    return None if event is None else event[:-1]
