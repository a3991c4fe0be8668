"""A request given as ``host`` + ``scheme`` gets the scheme's well-known port, so a
``port`` rule holds without the agent spelling the port out.

Mutation testing found only the URL schemes' ports pinned: any other entry of the
table (smtp 25, git 9418 ...) could change and a ``port: 25`` deny would silently stop
matching mail. The numbers are written out here, not read from the table.
"""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes

IANA_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "ftps": 990,
    "sftp": 22,
    "ssh": 22,
    "git": 9418,
    "smtp": 25,
    "smtps": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "ldap": 389,
    "ldaps": 636,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "redis": 6379,
    "mongodb": 27017,
    "amqp": 5672,
    "amqps": 5671,
    "mqtt": 1883,
    "mqtts": 8883,
}


@pytest.mark.parametrize(("scheme", "port"), sorted(IANA_PORTS.items()))
def test_a_port_rule_holds_for_the_schemes_default_port(scheme: str, port: int) -> None:
    policy = load_policy_bytes(
        f"version: 1\ndefaultAction: allow\nrules:\n"
        f"  - {{id: no-port, action: network.request, decision: deny, port: {port}}}\n".encode(),
        "ports.yaml",
    )
    body = {"action": "network.request", "host": "svc.example.com", "scheme": scheme.upper()}
    verdict = evaluate_request(policy, body)
    assert verdict.request == {"host": "svc.example.com", "port": port, "scheme": scheme}
    assert (verdict.decision, verdict.rule) == ("deny", "no-port")
    assert verdict.reason == f"rule no-port denies network.request of svc.example.com:{port}"


def test_an_unknown_scheme_gets_no_port_and_a_port_rule_does_not_hold() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: any-443, action: network.request, decision: allow, port: 443}\n",
        "ports.yaml",
    )
    body = {"action": "network.request", "host": "svc.example.com", "scheme": "gopher"}
    verdict = evaluate_request(policy, body)
    assert verdict.request == {"host": "svc.example.com", "scheme": "gopher"}
    assert (verdict.decision, verdict.rule) == ("deny", None)
