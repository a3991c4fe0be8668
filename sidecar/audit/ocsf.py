"""OCSF mapping for ``tollgate audit export --format ocsf`` (CONTRACT section 3).

Agent-facing records (``decision``, ``invalidRequest``, ``approval``) become OCSF 1.4.0
API Activity events (class 6003, category 6) with the Security Control profile:
``action_id``/``disposition_id`` say what the gate did (Allowed, Blocked, Delayed for a
pending approval, Detected for audit mode, Rejected for a malformed request), ``policy``
and ``firewall_rule`` name the policy hash and rule. ``metadata.sequence`` is the
record's seq, ``metadata.uid`` its leaf hash and ``raw_data`` the exact line, so every
event can be proven against a signed checkpoint. Other record types describe the gate
itself and are not exported as OCSF.
"""

from __future__ import annotations

import functools
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


def _activity_id(action: str | None, request: dict[str, Any]) -> int:
    if action == "file.read":
        return 2
    if action == "file.write":
        return 3
    if action == "file.delete":
        return 4
    if action == "network.request":
        return _HTTP_ACTIVITY.get(str(request.get("method") or "GET").upper(), 99)
    if action == "k8s.request":
        k8s = request.get("k8s") or {}
        return _K8S_ACTIVITY.get(str(k8s.get("verb", "")).lower(), 99)
    if action == "process.exec":
        return 99
    return 0


# Approval records by their event; anything not listed (expired, denied ...) is Blocked.
_APPROVAL_DISPOSITIONS: dict[str, tuple[int, str, int, str]] = {
    "approved": (1, "Allowed", 8, "Approved"),
    "redeemed": (1, "Allowed", 1, "Allowed"),
    "requested": (2, "Denied", 14, "Delayed"),
    "forged": (2, "Denied", 25, "Rejected"),
    "refused": (2, "Denied", 25, "Rejected"),
}


def _disposition(record: dict[str, Any]) -> tuple[int, str, int, str]:
    """(action_id, action, disposition_id, disposition) of the Security Control profile."""
    if record.get("type") == "invalidRequest":
        return 2, "Denied", 25, "Rejected"
    if record.get("type") == "approval":
        return _APPROVAL_DISPOSITIONS.get(str(record.get("event")), (2, "Denied", 2, "Blocked"))
    decision = record.get("decision")
    if record.get("allowed") is True:
        if decision == "allow":
            return 1, "Allowed", 1, "Allowed"
        return 1, "Allowed", 15, "Detected"  # audit mode: would have been denied
    if decision == "require_approval":
        return 2, "Denied", 14, "Delayed"
    return 2, "Denied", 2, "Blocked"


def _resources(action: str | None, request: dict[str, Any]) -> list[dict[str, Any]]:
    if action in {"file.read", "file.write", "file.delete"} and request.get("path"):
        return [{"type": "file", "name": request["path"]}]
    if action == "process.exec":
        argv = request.get("argv")
        name = argv[0] if isinstance(argv, list) and argv else request.get("commandLine")
        return [{"type": "process", "name": name}] if name else []
    if action == "k8s.request":
        k8s = request.get("k8s") or {}
        if k8s.get("resource"):
            resource = {"type": f"kubernetes:{k8s['resource']}", "name": k8s.get("name") or ""}
            if k8s.get("namespace"):
                resource["namespace"] = k8s["namespace"]
            return [resource]
        if k8s.get("path"):
            return [{"type": "kubernetes:nonResourceURL", "name": k8s["path"]}]
    return []


@functools.lru_cache(maxsize=1024)
def _classification(
    record_type: str, action: str | None, activity_id: int, decision: Any, allowed: Any, risk: Any
) -> dict[str, Any]:
    """The event fields that depend only on what kind of outcome this was (cached)."""
    action_id, action_name, disposition_id, disposition = _disposition(
        {"type": record_type, "decision": decision, "allowed": allowed, "event": decision}
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


def _static_fields(
    record_type: str,
    action: str | None,
    activity_id: int,
    decision: Any,
    allowed: Any,
    risk: str | None,
    identity: str,
    policy: Any,
    mode: Any,
    rule: Any,
    reason: Any,
) -> dict[str, Any]:
    """Event fields that repeat from record to record (who, what outcome, which rule)."""
    fields = dict(_classification(record_type, action, activity_id, decision, allowed, risk))
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


@functools.lru_cache(maxsize=4096)
def _static_members(*key: Any) -> bytes:
    """``_static_fields`` as JSON object members (no braces), cached."""
    return _encode(_static_fields(*key))[1:-1]


def _variable_fields(
    seq: int, leaf_hash: str, line: bytes, record: dict[str, Any], action: Any, request: Any
) -> dict[str, Any]:
    """Event fields particular to this record: when, which record, which target."""
    ts = record["ts"]
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "profiles": _PROFILES,
        "product": _PRODUCT,
        "log_name": "tollgate-audit",
        "uid": leaf_hash,
        "sequence": seq,
        "original_time": ts,
    }
    api: dict[str, Any] = {"operation": str(action or record.get("type")), "service": _SERVICE}
    fields: dict[str, Any] = {
        "time": ts_to_epoch_ms(ts),
        "metadata": metadata,
        "api": api,
        "raw_data": line.decode("utf-8"),
    }
    decision_id = record.get("decisionId")
    if decision_id:
        api["request"] = {"uid": decision_id}
        metadata["correlation_uid"] = decision_id
    resources = _resources(action, request)
    if resources:
        fields["resources"] = resources
    if action == "network.request" and request.get("host"):
        host, port = request["host"], request.get("port")
        fields["dst_endpoint"] = (
            {"hostname": host, "port": port} if isinstance(port, int) else {"hostname": host}
        )
        url: dict[str, Any] = {"hostname": host, "path": request.get("path") or "/"}
        if request.get("scheme"):
            url["scheme"] = request["scheme"]
        if isinstance(port, int):
            url["port"] = port
        fields["http_request"] = {"http_method": str(request.get("method") or "GET"), "url": url}
    return fields


def _parts(record: dict[str, Any]) -> tuple[tuple[Any, ...], Any, dict[str, Any]] | None:
    record_type = record.get("type")
    if record_type not in _OCSF_TYPES:
        return None
    request = record.get("request")
    if not isinstance(request, dict):
        request = {}
    action = record.get("action") or request.get("action")
    activity_id = _activity_id(action, request) if record_type == "decision" else 99
    risk = record.get("risk")
    key = (
        record_type,
        action,
        activity_id,
        # An approval record's outcome is its event (requested, approved, redeemed ...).
        record.get("event") if record_type == "approval" else record.get("decision"),
        record.get("allowed"),
        risk if isinstance(risk, str) else None,
        str(record.get("identity") or ""),
        record.get("policy"),
        record.get("mode"),
        record.get("rule"),
        record.get("reason"),
    )
    return key, action, request


def to_ocsf(seq: int, leaf_hash: str, line: bytes, record: dict[str, Any]) -> dict[str, Any] | None:
    """One OCSF API Activity event for an agent-facing record, None for the others.

    ``metadata.sequence`` is the record's seq, ``metadata.uid`` its leaf hash and
    ``raw_data`` the exact line, so the event can be proven against a checkpoint.
    """
    parts = _parts(record)
    if parts is None:
        return None
    key, action, request = parts
    return _static_fields(*key) | _variable_fields(seq, leaf_hash, line, record, action, request)


def ocsf_json(seq: int, leaf_hash: str, line: bytes, record: dict[str, Any]) -> bytes | None:
    """``to_ocsf`` encoded as one JSON object, without a newline (fast: the repeating
    part of the event is encoded once and reused)."""
    parts = _parts(record)
    if parts is None:
        return None
    key, action, request = parts
    variable = _encode(_variable_fields(seq, leaf_hash, line, record, action, request))
    try:
        static = _static_members(*key)
    except TypeError:  # a list or object where text belongs: nothing to cache
        return _encode(_static_fields(*key) | msgspec.json.decode(variable))
    return b"{" + static + b"," + variable[1:]
