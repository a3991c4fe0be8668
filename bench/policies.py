"""Synthetic policies of N rules, the same policy in Cedar, and the requests to time.

Each rule is written twice from one description, as a Tollgate rule and as a Cedar
policy, so the two engines decide the same question. The mix is what a real agent policy
holds: file globs (allow, and deny for secrets), commands with arguments, hosts (lists
and subdomain globs), Kubernetes verbs/resources/namespaces, a few require_approval
rules, and a fixed head of broad rules (a ``file.*`` deny on ``**/.ssh/**``, a private-range
``cidr`` deny, a denied-commands list) that every policy has whatever its size. Rules are
spread over the six actions, so indexing by action alone would still scan ~N/6 rules.

Cedar has no third outcome and no segment-aware glob, so: ``deny`` and
``require_approval`` become ``forbid`` (the second annotated), a glob becomes ``like``
with ``*`` for every wildcard (no cheaper than Tollgate's glob), and a field the request
lacks is guarded with ``has`` (a Tollgate rule on a missing field does not match).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

IDENTITY = "bench/agent"


@dataclass(frozen=True)
class RulePair:
    tollgate: dict[str, Any]
    cedar: str


def _cedar_string(value: str) -> str:
    return json.dumps(value)


def _cedar_like(glob: str) -> str:
    """A Tollgate glob as a Cedar ``like`` pattern (every wildcard becomes ``*``)."""
    pattern = glob.replace("**", "*").replace("?", "*")
    while "**" in pattern:
        pattern = pattern.replace("**", "*")
    return _cedar_string(pattern)


def _cedar_set(values: list[str]) -> str:
    return "[" + ", ".join(_cedar_string(v) for v in values) + "]"


def _cedar(effect: str, actions: list[str], conditions: list[str], rule: dict[str, Any]) -> str:
    annotations = f'@id("{rule["id"]}")\n'
    if rule["decision"] == "require_approval":
        annotations += '@tollgate("require_approval")\n'
    if len(actions) == 1:
        scope = f'action == Action::"{actions[0]}"'
    else:
        scope = "action in [" + ", ".join(f'Action::"{a}"' for a in actions) + "]"
    when = " && ".join(conditions) if conditions else "true"
    return f"{annotations}{effect}(principal, {scope}, resource) when {{ {when} }};"


def _pair(rule: dict[str, Any], actions: list[str], conditions: list[str]) -> RulePair:
    effect = "permit" if rule["decision"] == "allow" else "forbid"
    return RulePair(rule, _cedar(effect, actions, conditions, rule))


def _has(field: str) -> str:
    return f"context has {field}"


def head_rules() -> list[RulePair]:
    """The broad rules every policy starts with, whatever its size."""
    ssh = "**/.ssh/**"
    private = ["10.0.0.0/8", "169.254.0.0/16"]
    denied = ["rm", "dd", "mkfs", "shutdown"]
    return [
        _pair(
            {"id": "no-ssh-keys", "action": "file.*", "decision": "deny", "path": {"glob": ssh}},
            ["file.read", "file.write", "file.delete"],
            [_has("path"), f"context.path like {_cedar_like(ssh)}"],
        ),
        _pair(
            {
                "id": "no-private-ranges",
                "action": "network.request",
                "decision": "deny",
                "host": {"cidr": private},
            },
            ["network.request"],
            [
                _has("hostIp"),
                "(" + " || ".join(f'context.hostIp.isInRange(ip("{r}"))' for r in private) + ")",
            ],
        ),
        _pair(
            {
                "id": "no-destructive-commands",
                "action": "process.exec",
                "decision": "deny",
                "command": denied,
            },
            ["process.exec"],
            [_has("command"), f"{_cedar_set(denied)}.contains(context.command)"],
        ),
        _pair(
            {
                "id": "git-read-only",
                "action": "process.exec",
                "decision": "allow",
                "command": "git",
                "args": {"in": ["status", "diff", "log"]},
            },
            ["process.exec"],
            [
                _has("command"),
                'context.command == "git"',
                _has("args"),
                'context.args.containsAny(["status", "diff", "log"])',
            ],
        ),
        _pair(
            {
                "id": "secrets-need-approval",
                "action": "k8s.request",
                "decision": "require_approval",
                "resource": "secrets",
            },
            ["k8s.request"],
            [_has("resource"), 'context.resource == "secrets"'],
        ),
    ]


def generated_rule(i: int) -> RulePair:
    """Rule number ``i`` of the generated body; the kind cycles with ``i % 10``."""
    kind = i % 10
    rule_id = f"r{i}"
    if kind in (0, 1):
        glob = f"/srv/proj{i}/**"
        rule: dict[str, Any] = {
            "id": rule_id,
            "action": "file.read",
            "decision": "allow",
            "path": {"glob": glob},
        }
        return _pair(rule, ["file.read"], [_has("path"), f"context.path like {_cedar_like(glob)}"])
    if kind == 2:
        glob = f"/srv/proj{i}/out/*.json"
        rule = {
            "id": rule_id,
            "action": ["file.write", "file.delete"],
            "decision": "allow",
            "path": {"glob": glob},
        }
        return _pair(
            rule,
            ["file.write", "file.delete"],
            [_has("path"), f"context.path like {_cedar_like(glob)}"],
        )
    if kind == 3:
        glob = f"/srv/proj{i - 3}/secrets/**"
        rule = {"id": rule_id, "action": "file.*", "decision": "deny", "path": {"glob": glob}}
        return _pair(
            rule,
            ["file.read", "file.write", "file.delete"],
            [_has("path"), f"context.path like {_cedar_like(glob)}"],
        )
    if kind == 4:
        rule = {
            "id": rule_id,
            "action": "process.exec",
            "decision": "allow",
            "command": f"tool{i}",
            "args": "run",
        }
        return _pair(
            rule,
            ["process.exec"],
            [
                _has("command"),
                f'context.command == "tool{i}"',
                _has("args"),
                'context.args.contains("run")',
            ],
        )
    if kind == 5:
        names = [f"deploy{i}", f"release{i}"]
        rule = {
            "id": rule_id,
            "action": "process.exec",
            "decision": "require_approval",
            "command": names,
        }
        return _pair(
            rule,
            ["process.exec"],
            [_has("command"), f"{_cedar_set(names)}.contains(context.command)"],
        )
    if kind == 6:
        hosts = [f"api{i}.example.com", f"cdn{i}.example.com"]
        rule = {
            "id": rule_id,
            "action": "network.request",
            "decision": "allow",
            "host": hosts,
            "port": 443,
        }
        return _pair(
            rule,
            ["network.request"],
            [
                _has("host"),
                f"{_cedar_set(hosts)}.contains(context.host)",
                _has("port"),
                "context.port == 443",
            ],
        )
    if kind == 7:
        glob = f"*.svc{i}.cluster.local"
        rule = {
            "id": rule_id,
            "action": "network.request",
            "decision": "allow",
            "host": {"glob": glob},
        }
        return _pair(
            rule, ["network.request"], [_has("host"), f"context.host like {_cedar_like(glob)}"]
        )
    namespace = f"team-{i - (kind - 8)}"
    if kind == 8:
        verbs, resources = ["get", "list", "watch"], ["pods", "deployments"]
        rule = {
            "id": rule_id,
            "action": "k8s.request",
            "decision": "allow",
            "verb": verbs,
            "resource": resources,
            "namespace": namespace,
        }
        conditions = [
            _has("verb"),
            f"{_cedar_set(verbs)}.contains(context.verb)",
            _has("resource"),
            f"{_cedar_set(resources)}.contains(context.resource)",
            _has("namespace"),
            f'context.namespace == "{namespace}"',
        ]
        return _pair(rule, ["k8s.request"], conditions)
    rule = {
        "id": rule_id,
        "action": "k8s.request",
        "decision": "require_approval",
        "verb": "delete",
        "namespace": namespace,
    }
    return _pair(
        rule,
        ["k8s.request"],
        [
            _has("verb"),
            'context.verb == "delete"',
            _has("namespace"),
            f'context.namespace == "{namespace}"',
        ],
    )


def rule_pairs(size: int) -> list[RulePair]:
    head = head_rules()
    return (head + [generated_rule(i) for i in range(max(0, size - len(head)))])[:size]


def policy_yaml(size: int) -> bytes:
    rules = [pair.tollgate for pair in rule_pairs(size)]
    document = {"version": 1, "defaultAction": "deny", "rules": rules}
    return yaml.safe_dump(document, sort_keys=False).encode("utf-8")


def policy_cedar(size: int) -> str:
    return "\n\n".join(pair.cedar for pair in rule_pairs(size))


def _last_of_kind(kind: int, count: int, position: float) -> int:
    """The generated rule index of ``kind`` nearest ``position`` (0..1) of ``count`` rules."""
    candidates = [i for i in range(count) if i % 10 == kind]
    if not candidates:
        return kind
    return candidates[min(len(candidates) - 1, int(position * len(candidates)))]


def request_mix(size: int) -> list[dict[str, Any]]:
    """The /check bodies timed for a policy of ``size`` rules.

    Hits on rules near the start, middle and end of the file (for every kind of rule),
    hits on the head rules, and misses that no rule matches (answered by defaultAction,
    the case a linear scan pays most for).
    """
    count = max(0, size - len(head_rules()))
    requests: list[dict[str, Any]] = []
    for position in (0.0, 0.5, 1.0):
        at = {kind: _last_of_kind(kind, count, position) for kind in range(10)}
        k8s_namespace = f"team-{at[8]}"
        requests += [
            {"action": "file.read", "path": f"/srv/proj{at[0]}/src/main.py"},
            {"action": "file.write", "path": f"/srv/proj{at[2]}/out/result.json"},
            {"action": "file.read", "path": f"/srv/proj{at[3] - 3}/secrets/key.pem"},
            {"action": "process.exec", "argv": [f"tool{at[4]}", "run", "--fast"]},
            {"action": "process.exec", "argv": [f"deploy{at[5]}", "prod"]},
            {"action": "network.request", "url": f"https://api{at[6]}.example.com/v1/items"},
            {"action": "network.request", "url": f"https://web.svc{at[7]}.cluster.local/health"},
            {
                "action": "k8s.request",
                "k8s": {"verb": "list", "resource": "pods", "namespace": k8s_namespace},
            },
            {
                "action": "k8s.request",
                "k8s": {
                    "verb": "delete",
                    "group": "apps",
                    "version": "v1",
                    "resource": "deployments",
                    "namespace": f"team-{at[9] - 1}",
                    "name": "web",
                },
            },
        ]
    requests += [
        {"action": "file.read", "path": "/home/agent/.ssh/id_ed25519"},
        {"action": "process.exec", "argv": ["git", "status"], "cwd": "/srv/proj0"},
        {"action": "network.request", "url": "http://10.1.2.3/admin"},
        {"action": "k8s.request", "k8s": {"verb": "get", "resource": "secrets", "namespace": "x"}},
        {"action": "file.read", "path": "/home/agent/notes.txt"},
        {"action": "file.delete", "path": "/var/lib/data/db.sqlite"},
        {"action": "process.exec", "argv": ["make", "test"]},
        {"action": "network.request", "url": "https://unknown.example.org/"},
        {"action": "k8s.request", "k8s": {"verb": "get", "resource": "nodes"}},
    ]
    return requests


def cedar_request(action: str, fields: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The Cedar request for one normalised Tollgate subject's fields (built inside the
    timed call, as Tollgate makes its subject from the same fields inside its own)."""
    context: dict[str, Any] = {}
    for name, values in fields.items():
        if name == "agent":
            continue
        if name == "args":
            context["args"] = list(values)
        elif name == "port":
            context["port"] = int(values[0])
        else:
            context[name] = values[0]
    host = context.get("host")
    if host is not None:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            context["hostIp"] = {"__extn": {"fn": "ip", "arg": host}}
    return {
        "principal": f'Agent::"{IDENTITY}"',
        "action": f'Action::"{action}"',
        "resource": 'Request::"check"',
        "context": context,
    }
