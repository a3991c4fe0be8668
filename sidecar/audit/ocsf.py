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

from sidecar import __version__
from sidecar.audit.records import ts_to_epoch_ms

OCSF_VERSION = "1.4.0"

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


def _disposition(record: dict[str, Any]) -> tuple[int, str, int, str]:
    """(action_id, action, disposition_id, disposition) of the Security Control profile."""
    if record.get("type") == "invalidRequest":
        return 2, "Denied", 25, "Rejected"
    if record.get("type") == "approval":
        approved = record.get("decision") == "approve"
        return (1, "Allowed", 8, "Approved") if approved else (2, "Denied", 2, "Blocked")
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
        {"type": record_type, "decision": decision, "allowed": allowed}
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


def to_ocsf(seq: int, leaf_hash: str, line: bytes, record: dict[str, Any]) -> dict[str, Any] | None:
    """One OCSF API Activity event for an agent-facing record, None for the others.

    ``metadata.sequence`` is the record's seq, ``metadata.uid`` its leaf hash and
    ``raw_data`` the exact line, so the event can be proven against a checkpoint.
    """
    record_type = record.get("type")
    if record_type not in _OCSF_TYPES:
        return None
    request = record.get("request")
    if not isinstance(request, dict):
        request = {}
    action = record.get("action") or request.get("action")
    activity_id = _activity_id(action, request) if record_type == "decision" else 99
    risk = record.get("risk")
    event = dict(
        _classification(
            record_type,
            action,
            activity_id,
            record.get("decision"),
            record.get("allowed"),
            risk if isinstance(risk, str) else None,
        )
    )
    ts = record["ts"]
    actor, source = _actor(str(record.get("identity") or ""))
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "profiles": _PROFILES,
        "product": _PRODUCT,
        "log_name": "tollgate-audit",
        "uid": leaf_hash,
        "sequence": seq,
        "original_time": ts,
    }
    api: dict[str, Any] = {"operation": str(action or record_type), "service": _SERVICE}
    event["time"] = ts_to_epoch_ms(ts)
    event["message"] = record.get("reason") or record_type
    event["metadata"] = metadata
    event["actor"] = actor
    event["src_endpoint"] = source
    event["api"] = api
    event["raw_data"] = line.decode("utf-8")
    decision_id = record.get("decisionId")
    if decision_id:
        api["request"] = {"uid": decision_id}
        metadata["correlation_uid"] = decision_id
    if record.get("policy"):
        event["policy"] = {
            "uid": record["policy"],
            "name": "tollgate policy",
            "is_applied": record.get("mode", "enforce") == "enforce",
        }
    rule = record.get("rule")
    if rule:
        event["firewall_rule"] = {"uid": rule, "name": rule, "desc": record.get("reason") or ""}
    resources = _resources(action, request)
    if resources:
        event["resources"] = resources
    if action == "network.request" and request.get("host"):
        host, port = request["host"], request.get("port")
        event["dst_endpoint"] = (
            {"hostname": host, "port": port} if isinstance(port, int) else {"hostname": host}
        )
        url: dict[str, Any] = {"hostname": host, "path": request.get("path") or "/"}
        if request.get("scheme"):
            url["scheme"] = request["scheme"]
        if isinstance(port, int):
            url["port"] = port
        event["http_request"] = {"http_method": str(request.get("method") or "GET"), "url": url}
    return event
