"""Passwords in the options of more programs: the short options some programs read a
password from (``ldapsearch -w``, ``sqlcmd -P``, ``mongodump -p``, ``zip -P``,
``ssh-keygen -N``), a ``passphrase`` named as such (``gpg --passphrase``), and a
secret-named setting given to ``config set`` (npm, yarn, pnpm, kubectl) as to aws's
``configure set``. The same letters stay readable for other programs (``mkdir -p``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    LINEAR_TIME_BOUND_S,
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        ("ldapsearch -x -D cn=admin -w pw1 -b dc=x", ["pw1"], "password"),
        (
            "ldappasswd -x -D cn=a -w bind1 -a old1 -s new1 uid=x",
            ["bind1", "old1", "new1"],
            "password",
        ),
        ("sqlcmd -S db -U sa -P 'p w1'", ["p w1"], "password"),
        ("bcp t out f -U sa -P pw1 -S db", ["pw1"], "password"),
        ("mongodump --uri mongodb://h -u root -p pw1", ["pw1"], "password"),
        ('/usr/bin/mongosh -u root -p "a&b" --quiet', ["a&b"], "password"),
        ("zip -r -P pw1 out.zip dir", ["pw1"], "password"),
        ("unzip -o -P pw1 in.zip", ["pw1"], "password"),
        # Glued on.
        ("sqlcmd -Ppw1 -S db", ["pw1"], "password"),
        ("ldapsearch -x -wpw1 -b dc=x", ["pw1"], "password"),
        ("ssh-keygen -N'p w1' -f key", ["p w1"], "password"),
        ("ssh-keygen -t ed25519 -N pw1 -f key", ["pw1"], "password"),
        ("ssh-keygen -p -P old1 -N new1 -f key", ["old1", "new1"], "password"),
        ("gpg --batch --passphrase pw1 -c file", ["pw1"], "password"),
        ("az login --service-principal -u app -p pw1 --tenant t", ["pw1"], "password"),
        ("mysqladmin -u root password pw1", ["pw1"], "password"),
        ("PASSPHRASE=pw1 duplicity /src file:///dst", ["pw1"], "password"),
        ("npm config set //registry.npmjs.org/:_authToken tok1", ["tok1"], "secret"),
        ("yarn config set npmAuthToken tok1", ["tok1"], "secret"),
        ("kubectl config set users.bob.token tok1", ["tok1"], "secret"),
    ],
)
def test_the_password_is_tagged(text: str, secrets: list[str], kind: str) -> None:
    assert_tagged_in_place(text, secrets, kind)


@pytest.mark.parametrize(
    "text",
    [
        "mkdir -p /tmp/x",
        "zip -r out.zip dir",
        "gunzip -P x a.gz",
        "ls -w 80",
        # A lone -p at the end prompts for the password.
        "mongosh --port 27017 -p",
        # ... and so does one followed by another option.
        "mongodump -u a -p --out /backup",
        # "mongo" is as often a container's, an image's or a host's name.
        "docker run -d --name mongo -p 27017:27017 mongo:7",
        "ssh mongo -p 2222",
        # Token counts.
        "npm config set max_tokens 100",
        # -p of another az command; mysqladmin's -p before a command prompts.
        "az vm open-port -n vm -g rg -p 22",
        "mysqladmin -u root -p status",
        "npm config set registry https://registry.npmjs.org/",
        "git config user.name bob",
    ],
)
def test_other_options_are_left_alone(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(
    ("argv", "index", "kind"),
    [
        (["ldapsearch", "-x", "-w", "pw1", "-b", "dc=x"], 3, "password"),
        (["/usr/bin/zip", "-P", "pw1", "out.zip", "f"], 2, "password"),
        (["ssh-keygen", "-N", "pw1", "-f", "k"], 2, "password"),
        (["mongodump", "-ppw1", "--out", "/b"], 1, "password"),
        (["gpg", "--passphrase", "pw1", "-c", "f"], 2, "password"),
        (["az", "login", "--service-principal", "-u", "app", "-p", "pw1"], 6, "password"),
        (["mysqladmin", "-u", "root", "password", "pw1"], 4, "password"),
        (["npm", "config", "set", "//registry.npmjs.org/:_authToken", "tok1"], 4, "secret"),
    ],
)
def test_an_argv_item_is_tagged(argv: list[str], index: int, kind: str) -> None:
    redactor = Redactor(KEY)
    out: dict[str, Any] = redactor.redact({"argv": argv})
    expected = list(argv)
    glued = argv[index].startswith("-")  # -ppw: the option is kept
    head, secret = (argv[index][:2], argv[index][2:]) if glued else ("", argv[index])
    expected[index] = head + redactor.tag(kind, secret)
    assert out["argv"] == expected


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        ["ldapsearch -w ", "ldapsearch ", "zip -P '", "-w x ", "config set a_token ", "config set "]
    )


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    ["ldapsearch -w 'a b'", "zip -P pw1 a.zip", "gpg --passphrase x", "npm config set x_token y"]
)


def test_no_such_password_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: ldap, action: process.exec, command: ldapsearch, cwd: /app, decision: allow}
"""
    requests = [
        {"action": "process.exec", "commandLine": "ldapsearch -x -w 'Qa1&Qb2'", "cwd": "/app"},
        {"action": "process.exec", "argv": ["zip", "-P", "Qc3;Qd4", "a.zip"], "cwd": "/app"},
        {"action": "process.exec", "commandLine": "npm config set x:_authToken Qe5", "cwd": "r"},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 400]
    for core in ("Qa1", "Qb2", "Qc3", "Qd4", "Qe5"):
        assert core.encode() not in everything, core


@pytest.mark.parametrize(
    "body",
    [
        {"request": {"argv": ["cmd", "--password pw123456"]}},
        {"context": {"note": "x", "cmd": "--token pw123456"}},
        {"context": {"cmd": "mysql --password pw123456"}},
    ],
)
def test_a_string_that_starts_with_an_option_word_is_redacted(body: dict[str, Any]) -> None:
    # The screen's match for an option word starts at the white space before it: here the
    # newline that joins the string to the one before, which it was credited to.
    out = Redactor(KEY).redact(body)
    assert "pw123456" not in str(out)
    assert "[REDACTED:" in str(out)


@pytest.mark.parametrize(
    "argv",
    [
        ["mongodump", "-u", "a", "-p", "--out", "/backup"],
        ["docker", "run", "--name", "mongo", "-p", "27017:27017", "mongo:7"],
    ],
)
def test_an_argv_option_that_prompts_or_means_something_else_is_kept(argv: list[str]) -> None:
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


@pytest.mark.parametrize(
    "value",
    [
        "config set " + "token" * 12_000 + '"',
        "config set '" + "token" * 12_000,
        ["npm", "config", "set", "token" * 12_000 + '"'],
    ],
)
def test_a_long_setting_name_is_read_in_linear_time(value: str | list[str]) -> None:
    started = time.perf_counter()
    Redactor(KEY).redact({"v": value})
    elapsed = time.perf_counter() - started
    assert elapsed < LINEAR_TIME_BOUND_S, f"{elapsed:.2f}s"  # quadratic took 2 - 5 s
