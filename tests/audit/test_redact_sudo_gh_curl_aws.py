"""More secrets found by the red-team review of 2026-12-07 in forms the table did not
cover: a password piped into ``sudo -S`` (``--stdin``), ``gh secret set NAME --body``,
curl's client certificate passphrase (``--cert FILE:PASSPHRASE``), and AWS Secrets
Manager's ``--secret-string``. The same words stay readable where they hold none
(``sudo -s``'s input is a shell's commands, ``gh issue create --body``, ``grep -E``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        ("echo pw1 | sudo -S apt-get install x", ["pw1"], "password"),
        ("printf '%s\\n' 'p w1' | sudo -u root -kS -p '' ls", ["p w1"], "password"),
        ("sudo --stdin id <<< pw1", ["pw1"], "password"),
        ("gh secret set TOKEN --body 'p w1' --repo o/r", ["p w1"], "secret"),
        ("gh secret set TOKEN -b pw1", ["pw1"], "secret"),
        ("gh secret set TOKEN --body=pw1", ["pw1"], "secret"),
        ("curl --cert client.pem:pw1 https://h", ["pw1"], "password"),
        ("curl -E 'c.pem:p w1' https://h", ["p w1"], "password"),
        ("curl --proxy-cert p.pem:pw1 -x https://p https://h", ["pw1"], "password"),
        (
            "aws secretsmanager put-secret-value --secret-id db --secret-string pw1",
            ["pw1"],
            "secret",
        ),
    ],
)
def test_the_secret_is_tagged(text: str, secrets: list[str], kind: str) -> None:
    assert_tagged_in_place(text, secrets, kind)


@pytest.mark.parametrize(
    "text",
    [
        "echo id | sudo -s",
        "echo id | sudo ls -S",
        "gh issue create --title t --body hello",
        "gh secret list",
        "gh secret set TOKEN < token.txt",
        "curl --cert client.pem https://h",
        "grep -E 'a:b' f",
        "aws secretsmanager get-secret-value --secret-id db",
    ],
)
def test_where_no_secret_stands_the_text_is_kept(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(
    ("argv", "index", "head"),
    [
        (["gh", "secret", "set", "T", "--body", "pw1"], 5, ""),
        (["gh", "secret", "set", "T", "-bpw1"], 4, "-b"),
        (["curl", "-E", "c.pem:pw1", "https://h"], 2, "c.pem:"),
        (["curl", "--cert=c.pem:pw1"], 1, "--cert=c.pem:"),
        (["aws", "secretsmanager", "create-secret", "--secret-string", "pw1"], 4, ""),
    ],
)
def test_an_argv_item_is_tagged(argv: list[str], index: int, head: str) -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"argv": argv})["argv"]
    kind = "password" if argv[0] == "curl" else "secret"
    assert out[index] == head + redactor.tag(kind, argv[index][len(head) :])
    assert [item for i, item in enumerate(out) if i != index] == [
        item for i, item in enumerate(argv) if i != index
    ]


@pytest.mark.parametrize(
    "argv",
    [["gh", "issue", "create", "-b", "text"], ["grep", "-E", "a:b", "f"], ["sudo", "-s"]],
)
def test_an_argv_without_a_secret_is_kept(argv: list[str]) -> None:
    body: dict[str, Any] = {"argv": argv}
    assert Redactor(KEY).redact(body) == body


def test_an_aws_secret_string_key_is_tagged() -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"context": {"SecretString": "pw1", "Name": "db"}})
    assert out == {"context": {"SecretString": redactor.tag("secret", "pw1"), "Name": "db"}}


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        ["sudo -u a ", "echo a | sudo -", "gh secret set ", "gh secret set -b", "curl -E a:"]
    )


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    ["echo pw1 | sudo -S x", "gh secret set T --body pw1", "curl --cert c:pw1"]
)


def test_no_such_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
"""
    requests = [
        {"action": "process.exec", "commandLine": "echo Qa1Qa1 | sudo -S id", "cwd": "/app"},
        {"action": "process.exec", "argv": ["gh", "secret", "set", "T", "-b", "Qb2Qb2"]},
        {"action": "process.exec", "commandLine": "curl -E c.pem:Qc3Qc3 https://h", "cwd": "/app"},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 200]
    for core in ("Qa1Qa1", "Qb2Qb2", "Qc3Qc3"):
        assert core.encode() not in everything, core
