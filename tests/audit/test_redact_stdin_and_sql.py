"""Secrets a program reads from its standard input, and SQL that sets a password.

``docker login --password-stdin <<< pw``, ``echo pw | gh auth login --with-token`` and
``echo 'root:pw' | chpasswd`` hand the secret over as input; ``psql -c "ALTER USER app
PASSWORD 'pw'"`` and ``mysql -e "CREATE USER x IDENTIFIED BY 'pw'"`` write it as an SQL
literal. None of these assigns it to a name, so the name patterns miss them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.audit.redact import Redactor
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import (
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32
PW = "hunter2&x;y"  # a password with characters that end a bare shell word


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        # A here-string in the same command, after the option or before it.
        ("docker login -u bot --password-stdin <<< 'PW'", "PW", "password"),
        ('podman login --password-stdin quay.io <<<"PW"', "PW", "password"),
        ("docker login <<< 'PW' -u bot --password-stdin", "PW", "password"),
        ("passwd --stdin app <<< 'PW'", "PW", "password"),
        ("chpasswd <<< 'root:PW'", "root:PW", "password"),
        ("gh auth login --with-token <<< tok_1234abcd", "tok_1234abcd", "secret"),
        # What echo or printf writes into the pipe to it.
        ("echo 'PW' | docker login -u bot --password-stdin", "PW", "password"),
        ("echo -n 'PW' | helm registry login r.io --password-stdin", "PW", "password"),
        ("printf '%s\\n' 'PW' | oras login r.io --password-stdin", "PW", "password"),
        ("printf %s tok_1234abcd | crane auth login r.io --token-stdin", "tok_1234abcd", "secret"),
        ("echo 'root:PW' | chpasswd", "root:PW", "password"),
        # After a quote or a backquote: a script given to a shell, a substitution.
        ("bash -c \"echo 'PW' | docker login --password-stdin\"", "PW", "password"),
        ("x=`echo 'PW' | gh auth login --with-token`", "PW", "secret"),
        # SQL.
        ("psql -c \"ALTER USER app WITH PASSWORD 'PW'\"", "PW", "password"),
        ("psql -c \"CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'it''s PW'\"", "it''s PW", "password"),
        ("mysql -e \"CREATE USER 'x'@'%' IDENTIFIED BY 'PW'\"", "PW", "password"),
        (
            "mysql -e \"ALTER USER x IDENTIFIED WITH mysql_native_password BY 'PW'\"",
            "PW",
            "password",
        ),
        ("mysql -e \"SET PASSWORD FOR 'bob'@'%' = 'PW'\"", "PW", "password"),
        ("SELECT PASSWORD('PW')", "PW", "password"),
        ("ALTER USER scott IDENTIFIED BY tiger_2024;", "tiger_2024", "password"),
    ],
)
def test_the_secret_is_tagged(text: str, secret: str, kind: str) -> None:
    text, secret = text.replace("PW", PW), secret.replace("PW", PW)
    body = {"commandLine": text}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    redactor = Redactor(KEY)
    out = redactor.redact(body)["commandLine"]
    assert out == text.replace(secret, redactor.tag(kind, secret), 1)
    assert redactor.redact_text(out) == out


@pytest.mark.parametrize(
    "text",
    [
        # stdin that is not a secret's.
        "git hash-object --stdin <<< data",
        "echo hi | grep x; docker login --password-stdin",
        "echo hi; docker login --password-stdin",
        "echo hi || docker login --password-stdin",
        # An expansion: the line does not show the value, and its first word is a command.
        "docker login --password-stdin <<< $(cat token)",
        "echo $GITHUB_TOKEN | gh auth login --with-token",
        "docker login --password-stdin <<< `cat token`",
        # SQL that names the column, or sets no literal.
        'psql -c "SELECT password FROM users"',
        # A quoted 'password' that is no SQL setting one: the next quote is no literal's.
        "grep -rn 'password' . | grep -v 'node_modules'",
        "jq -r '.password' creds.json | tr -d '\\n'",
        "psql -c \"SELECT 1 WHERE col = 'password' OR x = 'y'\"",
        # Oracle's unquoted form takes no backslash (JSON-escaped quotes around the word).
        'CREATE USER a IDENTIFIED BY \\"pw1\\"',
        'psql -c "ALTER USER app PASSWORD NULL"',
        "the user was identified by the badge reader",
    ],
)
def test_other_input_and_sql_are_left_alone(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


def test_only_the_word_fed_to_the_program_is_tagged() -> None:
    redactor = Redactor(KEY)
    text = "echo start; echo 'pw1' | docker login --password-stdin && echo done"
    assert redactor.redact_text(text) == (
        f"echo start; echo '{redactor.tag('password', 'pw1')}' | docker login "
        "--password-stdin && echo done"
    )


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        ("chpasswd <<EOF\nroot:PW\nbob:pw2\nEOF\nls", ["root:PW", "bob:pw2"], "password"),
        ("cat <<'EOF' | chpasswd\nroot:PW\nEOF", ["root:PW"], "password"),
        (
            "docker login -u bot --password-stdin r.io <<-EOF\n\tPW\n\tEOF\necho done",
            ["PW"],
            "password",
        ),
        ('gh auth login --with-token << "END"\ntok_1234abcd\nEND', ["tok_1234abcd"], "secret"),
        # A token on a line is tagged with its line, and the lines after it too.
        (
            "chpasswd <<EOF\nbob:ghp_abcdefghijklmnopqrstuvwxyz0123456789\ncarol:pw3\nEOF",
            ["bob:ghp_abcdefghijklmnopqrstuvwxyz0123456789", "carol:pw3"],
            "password",
        ),
        # A here-document cut short ends where the text does, as bash reads it.
        ("chpasswd <<\\EOF\nroot:PW", ["root:PW"], "password"),
    ],
)
def test_a_here_document_fed_to_the_program_is_tagged_line_by_line(
    text: str, secrets: list[str], kind: str
) -> None:
    assert_tagged_in_place(
        text.replace("PW", PW), [secret.replace("PW", PW) for secret in secrets], kind
    )


@pytest.mark.parametrize(
    "text",
    [
        # A here-document to another program, on a line that does not name one.
        "cat <<EOF > notes.txt\nroot:pw1\nEOF\nchpasswd < users.txt",
        "chpasswd < users.txt\ncat <<EOF > notes.txt\nroot:pw1\nEOF",
    ],
)
def test_a_here_document_to_another_program_is_left_alone(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "chpasswd <<EOF\n",
            "chpasswd ",
            "<<EOF chpasswd\n",
            "<<E ",
            "chpasswd <<EOF\nx\n",
            "--password-stdin ",
            "<<< x ",
            "<<< x --password-stdi ",
            "echo x | ",
            "echo x | y --password-std ",
            "password '",
            "password ''",
            "identified by ",
            "set password for x ",
        ]
    )


def test_sudo_options_are_read_in_linear_time() -> None:
    # Each sudo read its options to the end of the line looking for -S, and an option's
    # value could be the next sudo: 56 KB of "sudo -u " held a gate's loop for 15 s.
    assert_redacted_in_linear_time(["sudo -u ", "sudo -u x ", "sudo -g sudo -u ", "sudo\t-u "])


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    [
        "docker login --password-stdin <<< 'a&b'",
        "echo pw1 | chpasswd",
        "psql -c \"ALTER ROLE x PASSWORD 'a''b'\"",
        "IDENTIFIED BY x;",
        "chpasswd <<EOF\nroot:a b\nEOF\n",
        "cat <<'E' | chpasswd\nx\n",
    ]
)


def test_no_such_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: login, action: process.exec, command: docker, cwd: /app, decision: allow}
"""
    requests = [
        {
            "action": "process.exec",
            "commandLine": "docker login -u bot --password-stdin <<< 'Qa1&Qb2'",
            "cwd": "/app",
        },
        {"action": "process.exec", "argv": ["psql", "-c", "ALTER USER app PASSWORD 'Qc3 Qd4'"]},
        # Refused (a relative cwd): the body is kept as text.
        {
            "action": "process.exec",
            "commandLine": "echo 'Qe5;Qf6' | gh auth login --with-token",
            "cwd": "rel",
        },
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 400]
    assert everything.count(b'"type":"invalidRequest"') == 1
    for core in ("Qa1", "Qb2", "Qc3", "Qd4", "Qe5", "Qf6"):
        assert core.encode() not in everything, core
