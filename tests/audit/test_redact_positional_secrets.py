"""Secrets that stand where a program expects them, with no option word naming them:
Samba's ``-U user%password`` and smbclient's service password, redis-cli's ``AUTH`` and
``CONFIG SET requirepass``, ``rabbitmqctl add_user USER PASSWORD``, MinIO's ``mc alias
set NAME URL ACCESS SECRET``, ``vault login TOKEN``, 7-Zip's and RAR's glued
``-pPASSWORD`` and the secret options of ``rclone config create NAME TYPE KEY VALUE``. The same words stay readable where they hold none (a prompt, a user
alone, ``rar -p-``, another program's ``-p``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    assert_argv_redacted_in_linear_time,
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        ("smbclient //fs/share -U admin%pw1 -c ls", ["pw1"], "password"),
        ("smbclient //fs/share -U 'DOM\\admin%p w1'", ["p w1"], "password"),
        ('smbclient //fs/share -U "admin%p;w1"', ["p;w1"], "password"),
        ("smbclient -Uadmin%pw1 //fs/share", ["pw1"], "password"),
        ("smbget --user=admin%pw1 smb://fs/share/f", ["pw1"], "password"),
        ("net rpc user info bob -U admin%pw1 -S dc1", ["pw1"], "password"),
        ("samba-tool user list -U admin%pw1%x", ["pw1%x"], "password"),
        # The service's password, as the word after the service.
        ("smbclient //fs/share pw1 -U admin", ["pw1"], "password"),
        ("redis-cli AUTH pw1", ["pw1"], "password"),
        ("redis-cli -h cache auth default pw1", ["pw1"], "password"),
        ("redis-cli HELLO 3 AUTH default pw1 SETNAME agent", ["pw1"], "password"),
        ("valkey-cli CONFIG SET requirepass 'p w1'", ["p w1"], "password"),
        ("redis-cli config set masterauth pw1", ["pw1"], "password"),
        ("redis-cli ACL SETUSER bob on '>pw1' '~*' '+@all'", ["pw1"], "password"),
        ('redis-cli ACL SETUSER bob on ">p w1" \\>pw2 resetkeys', ["p w1", "pw2"], "password"),
        ("rabbitmqctl add_user app pw1", ["pw1"], "password"),
        ('rabbitmqctl -n rabbit@h change_password app "p w1"', ["p w1"], "password"),
        ("rabbitmqctl authenticate_user app pw1 --silent", ["pw1"], "password"),
        ("mc alias set minio https://s3.example.com minioadmin sk1", ["sk1"], "secret"),
        ("mc alias set --api S3v4 minio https://h ak sk1", ["sk1"], "secret"),
        ("mcli config host add minio https://h ak sk1 --api s3v4", ["sk1"], "secret"),
        ("vault login tok1", ["tok1"], "secret"),
        ("vault login -no-print -address https://v:8200 tok1", ["tok1"], "secret"),
        ("bao login -method token tok1", ["tok1"], "secret"),
        ("7z a -ppw1 backup.7z /data", ["pw1"], "password"),
        ("7z x -p'p w1' backup.7z", ["p w1"], "password"),
        ("unrar x -ppw1 archive.rar", ["pw1"], "password"),
        # A redirection is no argument, and its '&' ends no command.
        ("vault login 2>&1 tok1", ["tok1"], "secret"),
        ("rabbitmqctl add_user app >/dev/null pw1", ["pw1"], "password"),
        ("redis-cli AUTH default pw1 2>&1 | grep OK", ["pw1"], "password"),
        ("sqlcmd -S db &> log -P pw1", ["pw1"], "password"),
        # rclone's backend options, in KEY VALUE pairs (or KEY=VALUE words) after the
        # remote's name (and type): the values of the keys that name a secret.
        (
            "rclone config create s3a s3 access_key_id AK1 secret_access_key sk1 region r1",
            ["sk1"],
            "secret",
        ),
        ("rclone config create dav webdav url https://h pass pw1 --obscure", ["pw1"], "secret"),
        ("rclone --config c.conf config update b2a key k1 account a1", ["k1"], "secret"),
        ("rclone config password crypt1 password pw1 password2 pw2", ["pw1", "pw2"], "secret"),
        (
            "rclone config create az azureblob sas_url=u1 key='k 1' account=a1",
            ["u1", "k 1"],
            "secret",
        ),
        (
            "rclone config create g drive client_secret cs1 token 'tok 1'",
            ["cs1", "tok 1"],
            "secret",
        ),
        # The pairs are counted: a secret's name as another key's value is a value.
        ("rclone config create r s3 region pass key k1", ["k1"], "secret"),
        ("rclone config create r s3 2>&1 key k1", ["k1"], "secret"),
    ],
)
def test_the_secret_is_tagged(text: str, secrets: list[str], kind: str) -> None:
    assert_tagged_in_place(text, secrets, kind)


@pytest.mark.parametrize(
    "text",
    [
        # No password given: the program asks for it.
        "smbclient //fs/share -U admin",
        "smbclient -L //fs -N",
        "smbclient //fs/share -U admin -c ls",
        "rabbitmqctl add_user app",
        "rabbitmqctl list_users",
        "mc alias set minio https://s3.example.com",
        "mc ls minio/bucket",
        "vault login",
        "vault login -",
        "vault login -method=oidc role=dev",
        "vault kv get secret/app",
        "7z a -p backup.7z /data",
        "unrar x -p- archive.rar",
        # A redirection where a secret could stand.
        "smbclient //fs/share < commands.txt",
        "smbclient //fs/share 2>/dev/null",
        "vault login > /dev/null",
        "redis-cli AUTH > out.txt",
        "rabbitmqctl add_user app >out",
        # The same words elsewhere.
        "redis-cli GET auth",
        "redis-cli SET k v",
        "redis-cli GET k > out.txt",
        "ssh -p 2222 host",
        "echo 100%done",
        "curl -U proxyuser https://h",
        # rclone: no secret key, a key with no value, not config create/update/password.
        "rclone config create r s3 access_key_id AK1 region r1 token_url https://t",
        "rclone config create pass s3 region key",
        "rclone config show pass",
        "rclone copy pass key",
        "rclone config update r key",
    ],
)
def test_where_no_secret_stands_the_text_is_kept(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(
    ("argv", "index", "head", "kind"),
    [
        (["smbclient", "//fs/share", "-U", "DOM\\admin%pw1"], 3, "DOM\\admin%", "password"),
        (["smbclient", "-Uadmin%pw1", "//fs/share"], 1, "-Uadmin%", "password"),
        (["smbget", "--user=admin%pw1", "smb://fs/f"], 1, "--user=admin%", "password"),
        (["smbclient", "//fs/share", "pw1", "-U", "admin"], 2, "", "password"),
        (["redis-cli", "AUTH", "pw1"], 2, "", "password"),
        (["redis-cli", "-h", "c", "AUTH", "default", "pw1"], 5, "", "password"),
        (["redis-cli", "CONFIG", "SET", "requirepass", "pw1"], 4, "", "password"),
        (["redis-cli", "ACL", "SETUSER", "bob", "on", ">pw1", "~*"], 5, ">", "password"),
        (["rabbitmqctl", "add_user", "app", "pw1"], 3, "", "password"),
        (["mc", "alias", "set", "--api", "S3v4", "m", "https://h", "ak", "sk1"], 8, "", "secret"),
        (["mc", "config", "host", "add", "m", "https://h", "ak", "sk1"], 7, "", "secret"),
        (["vault", "login", "-method", "token", "tok1"], 4, "", "secret"),
        (["/usr/bin/7z", "a", "-ppw1", "x.7z"], 2, "-p", "password"),
        (["rclone", "config", "create", "r", "s3", "secret_access_key", "sk1"], 6, "", "secret"),
        (["rclone", "config", "update", "r", "region", "pass", "key", "k1"], 7, "", "secret"),
        (["rclone", "config", "create", "r", "s3", "--all", "pass=pw1"], 6, "pass=", "secret"),
    ],
)
def test_an_argv_item_is_tagged(argv: list[str], index: int, head: str, kind: str) -> None:
    redactor = Redactor(KEY)
    out: dict[str, Any] = redactor.redact({"argv": argv})
    expected = list(argv)
    expected[index] = head + redactor.tag(kind, argv[index][len(head) :])
    assert out["argv"] == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["smbclient", "//fs/share", "-U", "admin", "-c", "ls"],
        ["redis-cli", "SET", "k", "v"],
        ["rclone", "config", "create", "r", "s3", "region", "r1", "token_url", "https://t"],
        ["rclone", "copy", "pass", "key"],
        ["rclone", "config", "create", "r", "s3", "2>&1", "key", "k1"],
        ["rabbitmqctl", "add_user", "app"],
        ["mc", "alias", "set", "minio", "https://h"],
        ["vault", "login", "-"],
        ["vault", "login", "-method=userpass", "username=bob"],
        ["7z", "a", "-p", "x.7z"],
        ["unrar", "x", "-p-", "a.rar"],
    ],
)
def test_an_argv_without_a_secret_is_kept(argv: list[str]) -> None:
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


def test_the_line_and_the_list_give_one_tag() -> None:
    # An investigator correlates the same password across both forms of a request.
    redactor = Redactor(KEY)
    line = redactor.redact_text("redis-cli AUTH default pw1")
    argv = redactor.redact({"argv": ["redis-cli", "AUTH", "default", "pw1"]})["argv"]
    assert line.split()[-1] == argv[-1] == redactor.tag("password", "pw1")


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "smbclient -U a",
            "smbclient -U a%",
            "net ",
            "redis-cli AUTH ",
            "redis-cli AUTH a ",
            "rabbitmqctl add_user ",
            "rabbitmqctl add_user -x ",
            "mc alias set a ",
            "mc alias set --api ",
            "vault login -method ",
            "vault login -a ",
            "7z -p",
            "smbclient //a ",
            "vault login 2>&1 ",
            "rabbitmqctl add_user >",
            "mc alias set > a ",
            "zip -P &>",
            "redis-cli ACL SETUSER b '>",
            "redis-cli \\>",
            "rclone config create a b ",
            "rclone config create a b key ",
            "rclone config update a -x ",
            "rclone config password a key=",
            "rclone config create a b --config ",
        ]
    )


def test_a_list_naming_these_programs_again_and_again_is_read_in_linear_time() -> None:
    # Each naming of the program used to read the rest of the list again.
    assert_argv_redacted_in_linear_time(
        [
            ["rabbitmqctl", "add_user"],
            ["rabbitmqctl", "x"],
            ["mc", "alias", "set"],
            ["mc", "x"],
            ["rclone", "config"],
            ["rclone", "x"],
        ]
    )


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    [
        "smbclient //h/s -U 'u%a b'",
        "net -U u%pw1",
        "redis-cli AUTH u pw1",
        "redis-cli ACL SETUSER b on '>p w' \\>x",
        "rabbitmqctl add_user u pw1",
        "mc alias set m u ak sk",
        "vault login tok1",
        "7z a -ppw1 x",
        "rclone config create r s3 key k1 pass=p1",
    ]
)


def test_no_such_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
"""
    requests = [
        {"action": "process.exec", "commandLine": "smbclient //h/s -U 'a%Qa1&Qb2'", "cwd": "/app"},
        {"action": "process.exec", "argv": ["redis-cli", "AUTH", "u", "Qc3;Qd4"], "cwd": "/app"},
        {"action": "process.exec", "commandLine": "vault login Qe5", "cwd": "rel"},
        {"action": "process.exec", "argv": ["mc", "alias", "set", "m", "u", "a", "Qf6"]},
        {
            "action": "process.exec",
            "commandLine": "rclone config create r s3 secret_access_key Qg7 && rclone ls r:",
            "cwd": "/app",
        },
        {"action": "process.exec", "argv": ["rclone", "config", "update", "r", "key", "Qh8"]},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 400, 200, 200, 200]
    for core in ("Qa1", "Qb2", "Qc3", "Qd4", "Qe5", "Qf6", "Qg7", "Qh8"):
        assert core.encode() not in everything, core


@pytest.mark.parametrize(
    ("body", "redacted"),
    [
        (
            {"commandLine": "vault write auth/approle/login role_id=r1 secret_id=s1"},
            {"commandLine": "vault write auth/approle/login role_id=r1 secret_id=S1"},
        ),
        (
            {"commandLine": "VAULT_SECRET_ID=s1 ./agent"},
            {"commandLine": "VAULT_SECRET_ID=S1 ./agent"},
        ),
        (
            {"context": {"role_id": "r1", "secret_id": "s1"}},
            {"context": {"role_id": "r1", "secret_id": "S1"}},
        ),
        (
            {"context": {"env": [{"name": "VAULT_SECRET_ID", "value": "s1"}]}},
            {"context": {"env": [{"name": "VAULT_SECRET_ID", "value": "S1"}]}},
        ),
        # AWS's secret id names the secret read: an investigator needs to see which.
        (
            {"argv": ["aws", "secretsmanager", "get-secret-value", "--secret-id", "prod/db"]},
            None,
        ),
        ({"context": {"SecretId": "prod/db"}}, None),
    ],
)
def test_vaults_secret_id_is_tagged_and_aws_secret_id_is_kept(
    body: dict[str, Any], redacted: dict[str, Any] | None
) -> None:
    redactor = Redactor(KEY)
    expected = body if redacted is None else _with_tag(redacted, redactor.tag("secret", "s1"))
    assert redactor.redact(body) == expected


def _with_tag(value: Any, tag: str) -> Any:
    """``value`` with every "S1" in its strings replaced by ``tag``."""
    if isinstance(value, str):
        return value.replace("S1", tag)
    if isinstance(value, dict):
        return {key: _with_tag(item, tag) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_tag(item, tag) for item in value]
    return value
