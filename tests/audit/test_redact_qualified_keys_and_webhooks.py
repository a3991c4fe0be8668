"""Secrets found by the red-team review of 2026-12-07 in forms the redaction table did not
cover: keys that are secrets by what qualifies them (Azure's ``AccountKey``,
``ENCRYPTION_KEY``, ``X-Auth-Key:``), a bare ``auth`` (npm's ``_auth``, Docker's
``"auth"``, ``CONSUL_HTTP_AUTH``, ``?auth=``), curl's proxy credentials (``-U``,
``--proxy-user``) and webhook URLs that are their own credential (Slack, Discord,
Telegram). The same words stay readable where they hold none (``CACHE_KEY=``,
``authSource=``, ``gcloud auth login``).
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
SLACK = "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstuvwx"


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        ("az storage blob list --account-key k1 --account-name a", ["k1"], "secret"),
        (
            'export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;'
            'AccountName=a;AccountKey=k1;EndpointSuffix=core.windows.net"',
            ["k1"],
            "secret",
        ),
        ("ENCRYPTION_KEY=k1 JWT_SIGNING_KEY=k2 ./app", ["k1", "k2"], "secret"),
        ("export AZURE_STORAGE_KEY=k1", ["k1"], "secret"),
        ("curl -H 'Ocp-Apim-Subscription-Key: k1' https://h", ["k1"], "secret"),
        ('curl -H "X-Auth-Key: k1" -H "DD-APPLICATION-KEY: k2" https://h', ["k1", "k2"], "secret"),
        ("DD_APP_KEY=k1 MASTER_KEY=k2 ./x", ["k1", "k2"], "secret"),
        ("CONSUL_HTTP_AUTH=user:pw1 consul members", ["user:pw1"], "secret"),
        ("curl 'https://x.firebaseio.com/a.json?auth=t1&print=pretty'", ["t1"], "secret"),
        ('echo "_auth=dXNlcjpwdw==" >> .npmrc', ["dXNlcjpwdw=="], "secret"),
        ("curl -U bob:pw1 -x http://proxy:3128 https://h", ["pw1"], "password"),
        ("curl --proxy-user bob:pw1 https://h", ["pw1"], "password"),
        ("curl --proxy-user=bob:pw1 https://h", ["pw1"], "password"),
        (f"curl -X POST {SLACK} -d @msg.json", ["abcdefghijklmnopqrstuvwx"], "webhook-token"),
        (
            "curl https://discord.com/api/webhooks/123456789/abcdefghijklmnopqrstuvwxyzAB",
            ["abcdefghijklmnopqrstuvwxyzAB"],
            "webhook-token",
        ),
        (
            "curl https://api.telegram.org/bot123456:ABCdefGHIjklMNOpqrSTU/sendMessage",
            ["ABCdefGHIjklMNOpqrSTU"],
            "bot-token",
        ),
    ],
)
def test_the_secret_is_tagged(text: str, secrets: list[str], kind: str) -> None:
    assert_tagged_in_place(text, secrets, kind)


@pytest.mark.parametrize(
    "text",
    [
        "CACHE_KEY=abc PARTITION_KEY=id make",
        "ssh -i ~/.ssh/key host",
        "keyboard=us",
        "whatsappkey=x",
        'mongosh "mongodb://h/db?authSource=admin"',
        "oauth=x auth_type=basic",
        "author: Jane",
        "gcloud auth login",
        "psql -U postgres -h db",
        "curl https://hooks.slack.com/services/",
        "curl https://discord.com/api/webhooks/123",
    ],
)
def test_where_no_secret_stands_the_text_is_kept(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


def test_json_keys_so_named_are_tagged_and_others_kept() -> None:
    redactor = Redactor(KEY)
    body: dict[str, Any] = {
        "context": {
            "auths": {"registry.example": {"auth": "dXNlcjpwdw=="}},
            "AccountKey": "k1",
            "encryptionKey": "k2",
            "headers": {"X-Auth-Key": "k3"},
            "cacheKey": "c",
            "oauth": "o",
            "authType": "basic",
        }
    }
    context = redactor.redact(body)["context"]
    assert context["auths"]["registry.example"]["auth"] == redactor.tag("secret", "dXNlcjpwdw==")
    assert context["AccountKey"] == redactor.tag("secret", "k1")
    assert context["encryptionKey"] == redactor.tag("secret", "k2")
    assert context["headers"]["X-Auth-Key"] == redactor.tag("secret", "k3")
    assert (context["cacheKey"], context["oauth"], context["authType"]) == ("c", "o", "basic")


@pytest.mark.parametrize(
    ("argv", "index", "head", "kind"),
    [
        (["curl", "-U", "bob:pw1", "https://h"], 2, "bob:", "password"),
        (["curl", "--proxy-user", "bob:pw1", "https://h"], 2, "bob:", "password"),
        (["az", "storage", "--account-key", "k1"], 3, "", "secret"),
        (["env", "ENCRYPTION_KEY=k1", "./app"], 1, "ENCRYPTION_KEY=", "secret"),
        (["env", "CONSUL_HTTP_AUTH=u:pw1", "consul"], 1, "CONSUL_HTTP_AUTH=", "secret"),
    ],
)
def test_an_argv_item_is_tagged(argv: list[str], index: int, head: str, kind: str) -> None:
    redactor = Redactor(KEY)
    expected = list(argv)
    expected[index] = head + redactor.tag(kind, argv[index][len(head) :])
    assert redactor.redact({"argv": argv})["argv"] == expected


def test_sambas_user_after_minus_u_keeps_its_own_reading() -> None:
    # -U is curl's proxy user too; Samba's -U user%password holding a ':' is still read
    # as Samba's, its whole password tagged (not only the part after the ':').
    redactor = Redactor(KEY)
    argv = ["net", "rpc", "user", "info", "bob", "-U", "admin%pw1:pw2", "-S", "dc1"]
    assert redactor.redact({"argv": argv})["argv"][6] == "admin%" + redactor.tag(
        "password", "pw1:pw2"
    )


def test_a_webhook_requested_as_a_url_is_recorded_without_its_secret() -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"action": "network.request", "url": SLACK})
    assert out["url"] == SLACK.replace(
        "abcdefghijklmnopqrstuvwx", redactor.tag("webhook-token", "abcdefghijklmnopqrstuvwx")
    )


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "hooks.slack.com/services/a/",
            "discord.com/api/webhooks/1/",
            "api.telegram.org/bot1:",
            "AccountKey=",
            "x-auth-key: ",
            "auth=",
            "curl -U a:",
        ]
    )


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    [
        "AccountKey=k1;",
        "ENCRYPTION_KEY=k1",
        "X-Auth-Key: k1",
        "auth=t1",
        "curl -U u:pw1",
        SLACK,
        "https://api.telegram.org/bot1:ABCdefGHIjklMNOpqrSTU/x",
    ]
)


def test_no_such_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
  - {id: net, action: network.request, decision: allow}
"""
    requests = [
        {
            "action": "process.exec",
            "commandLine": "az storage blob upload --account-key Qa1Qa1 -f x",
            "cwd": "/app",
        },
        {"action": "process.exec", "argv": ["curl", "-U", "u:Qb2Qb2", "https://h"], "cwd": "/app"},
        {"action": "network.request", "url": SLACK.replace("abcdefghij", "Qc3Qc3Qc3Q")},
        {
            "action": "network.request",
            "url": "https://h.example/x",
            "context": {"auths": {"r": {"auth": "Qd4Qd4Qd4"}}, "X-Auth-Key": "Qe5Qe5"},
        },
        {"action": "process.exec", "commandLine": "ENCRYPTION_KEY=Qf6Qf6 ./app", "cwd": "rel"},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 200, 200, 400]
    for core in ("Qa1Qa1", "Qb2Qb2", "Qc3Qc3Qc3Q", "Qd4Qd4Qd4", "Qe5Qe5", "Qf6Qf6"):
        assert core.encode() not in everything, core
