"""Secrets in forms the first redaction patterns missed, checked end to end.

A real gate (``python -m sidecar.cli serve``) is sent checks that carry a secret as a
command-line option with its value in the next argument (``--password hunter2``, as
``docker login``, ``vault login`` and ``mysql`` take it), as a number under a
secret-named key of ``context``, and as a signature in a pre-signed URL; afterwards
no file under the audit directory may hold the secret in clear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from sidecar.canonical import canonical_bytes
from tests.daemon import checked_through_a_gate

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")

# (request fields, the secret in them)
LEAKS: list[tuple[dict[str, Any], str]] = [
    ({"action": "process.exec", "argv": ["mysql", "--password", "hunter2xyz", "db"]}, "hunter2xyz"),
    ({"action": "process.exec", "argv": ["vault", "login", "--token", "hvs.tok99887766"]}, "hvs.tok99887766"),
    ({"action": "process.exec", "argv": ["tool", "--client-secret", "cs-77665544"]}, "cs-77665544"),
    ({"action": "process.exec", "commandLine": "docker login -u bot --password pw-55443322 r.io"}, "pw-55443322"),
    ({"action": "process.exec", "commandLine": "deploy --api-key 'k ey 11223344' --now"}, "k ey 11223344"),
    ({"action": "file.read", "path": "/app/data/x", "context": {"password": 90817263}}, "90817263"),
    ({"action": "file.read", "path": "/app/data/x", "context": {"otpToken": 554433}}, "554433"),
    (
        {"action": "network.request", "url": "https://b.s3.amazonaws.com/k?X-Amz-Signature=5ec7e7a1b2c3d4"},
        "5ec7e7a1b2c3d4",
    ),
    (
        {"action": "network.request", "url": "https://a.blob.core.windows.net/c/b?sv=2024&sig=Az5ASig0011"},
        "Az5ASig0011",
    ),
    ({"action": "process.exec", "argv": ["curl", "-u", "admin:cu-33221100", "https://x"]}, "cu-33221100"),
    ({"action": "process.exec", "commandLine": "curl --user bot:cu-44332211 https://x"}, "cu-44332211"),
    ({"action": "process.exec", "argv": ["mysql", "-uroot", "-pmy-55664433", "db"]}, "my-55664433"),
    ({"action": "process.exec", "commandLine": "mysqldump -uroot -pmy-66775544 db"}, "my-66775544"),
]  # fmt: skip

POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""


def test_no_secret_of_these_forms_reaches_the_audit_directory(tmp_path: Path) -> None:
    _, everything = checked_through_a_gate(tmp_path, POLICY, [request for request, _ in LEAKS])
    leaked = [secret for _, secret in LEAKS if secret.encode() in everything]
    assert leaked == []
    assert everything.count(b"[REDACTED:") >= len(LEAKS)


@pytest.mark.parametrize(
    ("argv", "redacted_index", "kind"),
    [
        (["mysql", "--password", "hunter2xyz"], 2, "password"),
        (["tool", "-password", "hunter2xyz"], 2, "password"),
        (["vault", "login", "--TOKEN", "t0k"], 3, "secret"),
        (["x", "--db-password", "p", "--verbose"], 2, "password"),
        (["aws", "--secret-access-key", "wJalrXUtnFEMI"], 2, "secret"),
    ],
)
def test_the_argument_after_a_secret_option_is_redacted(
    argv: list[str], redacted_index: int, kind: str
) -> None:
    body = {"request": {"argv": argv}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["request"]["argv"]
    assert out[redacted_index] == Redactor(KEY).tag(kind, argv[redacted_index])
    # Everything else is kept as it was: an investigator still sees the command.
    assert [a for i, a in enumerate(out) if i != redacted_index] == [
        a for i, a in enumerate(argv) if i != redacted_index
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["docker", "login", "--password-stdin"],
        ["vault", "--password-file", "/run/secrets/pw"],
        ["kubectl", "get", "secrets", "-n", "apps"],
        ["git", "commit", "-m", "rotate the token"],
        ["ls", "--tokens", "x"],
    ],
)
def test_options_that_take_no_secret_leave_the_next_argument(argv: list[str]) -> None:
    assert Redactor(KEY).redact({"argv": argv})["argv"] == argv


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("docker login --password pw-55443322 r.io", "pw-55443322"),
        ("mysql -u root --password 'two words' db", "two words"),
        ('gh auth --token "ghtok-1122"', "ghtok-1122"),
        ("run --API_KEY\tabc123 next", "abc123"),
    ],
)
def test_a_secret_option_followed_by_white_space_in_a_command_line(text: str, secret: str) -> None:
    body = {"commandLine": text}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["commandLine"]
    assert secret not in out and TAG.search(out), out


def test_numbers_under_secret_named_keys_are_redacted_but_not_booleans_or_null() -> None:
    body = {"context": {"pin": 1, "password": 1234, "rememberPassword": True, "token": None}}
    out = Redactor(KEY).redact(body)["context"]
    assert out["password"] == Redactor(KEY).tag("password", "1234")
    assert out["rememberPassword"] is True and out["token"] is None and out["pin"] == 1


@pytest.mark.parametrize(
    ("body", "secret", "kept"),
    [
        ({"commandLine": "curl -u admin:hunter2xyz https://x"}, "hunter2xyz", "admin:"),
        ({"commandLine": "curl --user=admin:hunter2xyz https://x"}, "hunter2xyz", "admin:"),
        ({"commandLine": "curl -uadmin:hunter2xyz https://x"}, "hunter2xyz", "-uadmin:"),
        ({"argv": ["curl", "-u", "admin:hunter2xyz", "https://x"]}, "hunter2xyz", "admin:"),
        ({"argv": ["curl", "--user", "admin:hunter2xyz"]}, "hunter2xyz", "admin:"),
        ({"commandLine": "mysql -h db -uroot -phunter2xyz app"}, "hunter2xyz", "-p["),
        ({"argv": ["/usr/bin/mysql", "-uroot", "-phunter2xyz"]}, "hunter2xyz", "-p["),
        ({"argv": ["mariadb-dump", "-phunter2xyz", "app"]}, "hunter2xyz", "-p["),
    ],
)
def test_user_and_password_options_of_curl_and_mysql(
    body: dict[str, Any], secret: str, kept: str
) -> None:
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = str(Redactor(KEY).redact(body))
    assert secret not in out and kept in out and "[REDACTED:password:" in out, out


@pytest.mark.parametrize(
    "body",
    [
        {"argv": ["ssh", "-p", "2222", "host"]},
        {"argv": ["ssh", "-p2222", "host"]},
        {"commandLine": "ssh -p2222 host && docker run -p8080:80 app"},
        {"argv": ["git", "push", "-u", "origin", "main"]},
        {"argv": ["pip", "install", "--user", "requests"]},
        {"commandLine": "mysql -h db -P 3306 -u app --password-file /run/pw"},
    ],
)
def test_other_commands_options_are_left_alone(body: dict[str, Any]) -> None:
    assert Redactor(KEY).redact(body) == body
