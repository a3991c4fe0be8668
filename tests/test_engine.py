"""Requests through the whole pure pipeline (parse -> normalise -> evaluate), for all
four action families, including the design-notes policy of CONTRACT section 1."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from tests.test_policy_loader import DESIGN_NOTES


@pytest.fixture(scope="module")
def design() -> CompiledPolicy:
    return load_policy_bytes(DESIGN_NOTES.encode(), "design-notes.yaml")


def outcome(policy: CompiledPolicy, body: dict[str, Any]) -> tuple[str, str | None]:
    verdict = evaluate_request(policy, body)
    return verdict.decision, verdict.rule


DESIGN_CASES = [
    ({"action": "file.read", "path": "/app/data/x.csv"}, "allow", "rules[0]"),
    ({"action": "file.read", "path": "data/x.csv", "cwd": "/app"}, "allow", "rules[0]"),
    ({"action": "file.read", "path": "/app/data/../../etc/shadow"}, "deny", None),
    ({"action": "file.read", "path": "/etc/shadow"}, "deny", None),
    ({"action": "file.read", "path": "/app/output/x"}, "deny", None),
    ({"action": "file.write", "path": "/app/output/report.txt"}, "allow", "rules[1]"),
    ({"action": "file.write", "path": "/app/data/x.csv"}, "deny", None),
    ({"action": "file.delete", "path": "/app/output/report.txt"}, "deny", None),
    ({"action": "process.exec", "argv": ["ls", "-la"]}, "deny", "rules[2]"),
    ({"action": "process.exec", "commandLine": "echo hi"}, "deny", "rules[2]"),
    (
        {
            "action": "network.request",
            "url": "https://api.openai.com/v1/chat/completions",
            "method": "POST",
        },
        "allow",
        "rules[3]",
    ),
    ({"action": "network.request", "url": "https://API.OpenAI.com./v1"}, "allow", "rules[3]"),
    ({"action": "network.request", "host": "api.anthropic.com", "port": 443}, "allow", "rules[3]"),
    ({"action": "network.request", "url": "https://api.openai.com.evil.net/"}, "deny", None),
    ({"action": "network.request", "url": "http://api.openai.com:80@127.0.0.1/"}, "deny", None),
    (
        {"action": "network.request", "url": "http://db.internal.svc.cluster.local:5432/"},
        "allow",
        "rules[4]",
    ),
    ({"action": "network.request", "url": "http://internal.svc.cluster.local/"}, "deny", None),
    ({"action": "network.request", "url": "http://169.254.169.254/latest/meta-data"}, "deny", None),
    (
        {
            "action": "k8s.request",
            "k8s": {"verb": "delete", "resource": "namespaces", "name": "payments"},
        },
        "deny",
        None,
    ),
]


@pytest.mark.parametrize(("body", "decision", "rule"), DESIGN_CASES)
def test_design_notes_policy_behaves_as_written(
    design: CompiledPolicy, body: dict[str, Any], decision: str, rule: str | None
) -> None:
    assert outcome(design, body) == (decision, rule)


def test_default_deny_reason_names_action_and_target(design: CompiledPolicy) -> None:
    verdict = evaluate_request(design, {"action": "file.read", "path": "/etc/shadow"})
    assert verdict.reason == "no rule allows file.read of /etc/shadow"
    assert verdict.allowed is False and verdict.request == {"path": "/etc/shadow"}


@pytest.fixture(scope="module")
def mixed() -> CompiledPolicy:
    return load_policy_bytes(
        b"""version: 1
rules:
  - {id: read-app, action: file.read, path: {glob: "/app/**"}, decision: allow}
  - {id: write-out, action: file.write, path: {glob: "/app/out/**"}, decision: allow}
  - {id: git, action: process.exec, command: git, args: {prefix: [status]}, decision: allow}
  - {id: ls, action: process.exec, command: [ls, echo, cat], decision: allow}
  - {id: no-rm, action: process.exec, command: rm, decision: deny}
  - {id: pods-read, action: k8s.request, verb: [get, list, watch], resource: pods, namespace: apps, decision: allow}
  - {id: pods-exec, action: k8s.request, verb: [get, create], resource: pods/exec, decision: require_approval}
  - {id: attach, action: k8s.request, verb: get, resource: pods/attach, decision: allow}
  - {id: healthz, action: k8s.request, verb: get, path: /healthz, decision: allow}
  - {id: metadata, action: network.request, host: {cidr: 169.254.0.0/16}, decision: deny}
  - {id: anything-else, action: network.request, host: {glob: "**"}, decision: allow}
""",
        "mixed.yaml",
    )


MIXED_CASES = [
    # realPath: both evaluated, stricter wins
    ({"action": "file.read", "path": "/app/link", "realPath": "/etc/shadow"}, "deny", None),
    ({"action": "file.read", "path": "/app/link", "realPath": "/app/real"}, "allow", "read-app"),
    # every simple command must be allowed
    ({"action": "process.exec", "commandLine": "git status && ls"}, "allow", "git"),
    ({"action": "process.exec", "commandLine": "git status && rm -rf /"}, "deny", "no-rm"),
    ({"action": "process.exec", "commandLine": "ls; curl http://x"}, "deny", None),
    # both parts allowed: write-out comes before ls in the file
    ({"action": "process.exec", "commandLine": "echo hi > /app/out/x"}, "allow", "write-out"),
    ({"action": "process.exec", "commandLine": "echo hi > /etc/passwd"}, "deny", None),
    ({"action": "process.exec", "commandLine": "env bash -c 'ls && rm -rf /'"}, "deny", "no-rm"),
    ({"action": "process.exec", "commandLine": "ls $(rm -rf /)"}, "deny", "no-rm"),
    ({"action": "process.exec", "commandLine": "eval ls"}, "deny", None),
    ({"action": "process.exec", "argv": ["/usr/bin/git", "status"]}, "allow", "git"),
    ({"action": "process.exec", "argv": ["./git", "status"], "cwd": "/tmp"}, "deny", None),
    ({"action": "process.exec", "argv": ["/tmp/x/git", "status"]}, "deny", None),
    ({"action": "process.exec", "argv": ["git", "push"]}, "deny", None),
    # kubernetes: attributes and raw method+path agree
    (
        {
            "action": "k8s.request",
            "k8s": {"verb": "list", "resource": "pods", "namespace": "apps", "version": "v1"},
        },
        "allow",
        "pods-read",
    ),
    (
        {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/namespaces/apps/pods"}},
        "allow",
        "pods-read",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web"},
        },
        "allow",
        "pods-read",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "DELETE", "path": "/api/v1/namespaces/apps/pods/web"},
        },
        "deny",
        None,
    ),
    (
        {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/namespaces/prod/pods"}},
        "deny",
        None,
    ),
    # a GET of pods/exec (websocket) is also evaluated as create
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/exec?command=sh"},
        },
        "require_approval",
        "pods-exec",
    ),
    (
        {
            "action": "k8s.request",
            "k8s": {
                "verb": "get",
                "resource": "pods",
                "subresource": "exec",
                "namespace": "apps",
                "name": "web",
            },
        },
        "require_approval",
        "pods-exec",
    ),
    ({"action": "k8s.request", "k8s": {"method": "GET", "path": "/healthz"}}, "allow", "healthz"),
    # allowing get on pods/attach does not allow the websocket: it is also a create
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/attach"},
        },
        "deny",
        None,
    ),
    # hosts: every spelling of the metadata address is the metadata address
    ({"action": "network.request", "url": "http://169.254.169.254./"}, "deny", "metadata"),
    ({"action": "network.request", "url": "http://2852039166/"}, "deny", "metadata"),
    ({"action": "network.request", "url": "http://0xa9.0xfe.0xa9.0xfe/"}, "deny", "metadata"),
    ({"action": "network.request", "url": "http://[::ffff:169.254.169.254]/"}, "deny", "metadata"),
    ({"action": "network.request", "host": "[64:ff9b::a9fe:a9fe]"}, "deny", "metadata"),
    ({"action": "network.request", "url": "https://example.com/"}, "allow", "anything-else"),
]


@pytest.mark.parametrize(("body", "decision", "rule"), MIXED_CASES)
def test_strictest_subject_wins(
    mixed: CompiledPolicy, body: dict[str, Any], decision: str, rule: str | None
) -> None:
    assert outcome(mixed, body) == (decision, rule)


def test_normalised_request_is_what_is_recorded(mixed: CompiledPolicy) -> None:
    verdict = evaluate_request(
        mixed,
        {
            "action": "file.read",
            "path": "x/../y//z/",
            "cwd": "/app",
            "context": {"task": "t", "score": 0.5},
        },
    )
    assert verdict.request == {
        "path": "/app/y/z",
        "writtenPath": "/app/x/../y//z/",
        "context": {"task": "t", "score": "0.5"},
    }
    verdict = evaluate_request(
        mixed,
        {
            "action": "k8s.request",
            "k8s": {"method": "GET", "path": "/apis/apps/v1/namespaces/apps/deployments/web"},
        },
    )
    assert verdict.request == {
        "k8s": {
            "verb": "get",
            "group": "apps",
            "version": "v1",
            "resource": "deployments",
            "namespace": "apps",
            "name": "web",
        }
    }
    verdict = evaluate_request(
        mixed,
        {
            "action": "network.request",
            "url": "HTTPS://User:pw@Example.COM./a/%62?q=1#frag",
            "method": "get",
        },
    )
    assert verdict.request["host"] == "example.com" and verdict.request["port"] == 443
    assert verdict.request["method"] == "GET" and "pw" not in str(verdict.request)


def test_explain_trace_covers_each_subject(mixed: CompiledPolicy) -> None:
    verdict = evaluate_request(
        mixed, {"action": "process.exec", "commandLine": "git status && rm x"}, explain=True
    )
    text = "\n".join(verdict.trace)
    assert "no-rm [deny]: match" in text and "git [allow]: match" in text
    assert text.splitlines()[-1] == "=> deny by no-rm"


def test_agent_identity_is_matchable() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n  - {id: mine, action: file.read, agent: {glob: 'team-a/*/*'}, decision: allow}\n",
        "p",
    )
    assert (
        evaluate_request(
            policy, {"action": "file.read", "path": "/x"}, identity="team-a/bot/pod"
        ).decision
        == "allow"
    )
    assert (
        evaluate_request(
            policy, {"action": "file.read", "path": "/x"}, identity="team-b/bot/pod"
        ).decision
        == "deny"
    )


def test_audit_mode_allows_but_reports_the_real_decision() -> None:
    policy = load_policy_bytes(b"version: 1\nmode: audit\nrules: []\n", "p")
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/etc/shadow"})
    assert verdict.allowed is True and verdict.decision == "deny" and verdict.mode == "audit"


BAD_REQUESTS = [
    ([], None),
    ({}, "action"),
    ({"action": "file.execute", "path": "/x"}, "action"),
    ({"action": "file.read"}, "path"),
    ({"action": "file.read", "path": "rel/x"}, "path"),
    ({"action": "file.read", "path": "x", "cwd": "rel"}, "cwd"),
    ({"action": "file.read", "path": "/a\x00b"}, "path"),
    ({"action": "file.read", "path": "/" + "a" * 5000}, "path"),
    ({"action": "file.read", "path": 7}, "path"),
    ({"action": "file.read", "path": "/x", "host": "a.com"}, "host"),
    ({"action": "file.read", "path": "/x", "extra": 1}, "extra"),
    ({"action": "file.read", "path": "/x", "dryRun": "yes"}, "dryRun"),
    ({"action": "process.exec"}, "argv"),
    ({"action": "process.exec", "argv": ["ls"], "commandLine": "ls"}, "argv"),
    ({"action": "process.exec", "argv": []}, "argv"),
    ({"action": "process.exec", "argv": ["ls", 3]}, "argv.1"),
    ({"action": "network.request", "host": "a.com", "port": 0}, "port"),
    ({"action": "network.request", "host": "a.com", "port": 65536}, "port"),
    ({"action": "network.request", "host": "a.com", "port": "443"}, "port"),
    ({"action": "network.request", "url": "https://a.com", "host": "b.com"}, "url"),
    ({"action": "network.request", "url": "http://a b.com/"}, "url"),
    ({"action": "network.request", "url": "http:\\\\a.com\\"}, "url"),
    ({"action": "network.request"}, "url"),
    ({"action": "network.request", "host": "a.com", "method": "GE T"}, "method"),
    ({"action": "k8s.request"}, "k8s"),
    ({"action": "k8s.request", "k8s": {"method": "GET"}}, "k8s"),
    (
        {"action": "k8s.request", "k8s": {"method": "GET", "path": "/api/v1/pods", "verb": "get"}},
        "k8s",
    ),
    ({"action": "k8s.request", "k8s": {"verb": "get", "kind": "Pod"}}, "k8s.kind"),
    ({"action": "file.read", "path": "/x", "context": "text"}, "context"),
    ({"action": "file.read", "path": "/x", "context": {"big": "x" * 17000}}, "context"),
]


@pytest.mark.parametrize(("body", "field"), BAD_REQUESTS)
def test_bad_requests_name_the_field(design: CompiledPolicy, body: Any, field: str | None) -> None:
    with pytest.raises(RequestError) as info:
        evaluate_request(design, body)
    if field is not None:
        assert info.value.field is not None and info.value.field.startswith(field), info.value


def test_a_reason_names_the_deciding_command_once() -> None:
    policy = load_policy_bytes(
        b"""version: 1
rules:
  - id: ls
    action: process.exec
    command: ls
    decision: allow
  - id: no-rm
    action: process.exec
    command: rm
    decision: deny
    reason: rm is never run
""",
        "p.yaml",
    )
    by_default = evaluate_request(policy, {"action": "process.exec", "commandLine": "ls; cp a b"})
    assert by_default.reason == "no rule allows process.exec of command 2: cp a b"
    by_rule = evaluate_request(policy, {"action": "process.exec", "commandLine": "ls; rm -rf /"})
    assert by_rule.reason == "command 2: rm -rf /: rm is never run"


FILE_ORDER = b"""version: 1
rules:
  - {id: no-rm, action: process.exec, command: rm, decision: deny}
  - {id: no-curl, action: process.exec, command: curl, decision: deny}
  - {id: no-etc, action: file.read, path: {glob: "/etc/**"}, decision: deny}
  - {id: no-app-secret, action: file.read, path: {glob: "/app/secret/**"}, decision: deny}
"""


@pytest.mark.parametrize(
    ("body", "rule", "reason"),
    [
        (
            {"action": "process.exec", "commandLine": "curl x; rm y"},
            "no-rm",
            "rule no-rm denies process.exec of command 2: rm y",
        ),
        (
            {"action": "process.exec", "commandLine": "rm y; curl x"},
            "no-rm",
            "rule no-rm denies process.exec of command 1: rm y",
        ),
        (
            {"action": "file.read", "path": "/app/secret/k", "realPath": "/etc/k"},
            "no-etc",
            "realPath: rule no-etc denies file.read of /etc/k",
        ),
        (
            {"action": "file.read", "path": "/etc/k", "realPath": "/app/secret/k"},
            "no-etc",
            "rule no-etc denies file.read of /etc/k",
        ),
    ],
)
def test_the_rule_reported_is_the_first_in_the_file_whichever_part_comes_first(
    body: dict[str, Any], rule: str, reason: str
) -> None:
    # CONTRACT section 1, "Precedence": the first matching rule of the winning kind in
    # file order, not the rule of the part the request names first (review rt26).
    verdict = evaluate_request(load_policy_bytes(FILE_ORDER, "p.yaml"), body)
    assert (verdict.decision, verdict.rule, verdict.reason) == ("deny", rule, reason)
