"""Secrets on a dotenv line: ``NAME=value`` alone on its line, as a here-document writes
``.env``. The file's reader takes the value to the end of the line, so a ``<``, ``&``,
``;`` or quote inside it is part of the secret, not a shell's redirection or separator.
A value broken by white space, a backslash or a command substitution is left to the
other patterns, so that a shell line keeps readable what it runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import assert_redacted_in_linear_time, idempotent_when_joined_test
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32
ENV_FILE = "cat > .env <<'EOF'\nDB_HOST=db.internal\n{line}\nLOG_LEVEL=info\nEOF"


@pytest.mark.parametrize(
    ("line", "secret", "kind"),
    [
        ("DB_PASSWORD=a<b", "a<b", "password"),
        ("API_TOKEN=x&y;z", "x&y;z", "secret"),
        ("export SECRET_KEY=p>q'r", "p>q'r", "secret"),
        ("  PGPASSWORD=m<n  ", "m<n", "password"),
        ("REDIS_PASSWORD=a<b # rotated monthly", "a<b", "password"),
        ("client_secret=c#d<e", "c#d<e", "secret"),
    ],
)
def test_a_dotenv_lines_value_runs_to_the_end_of_the_line(
    line: str, secret: str, kind: str
) -> None:
    redactor = Redactor(KEY)
    text = ENV_FILE.format(line=line)
    expected = ENV_FILE.format(line=line.replace(secret, redactor.tag(kind, secret), 1))
    assert redactor.redact_text(text) == expected
    assert redactor.redact_text(expected) == expected


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        # A shell line: what follows the value is a command the audit must show.
        ("PASSWORD=x; reboot", "; reboot"),
        ("PASSWORD=x;$(reboot)", ";$(reboot)"),
        ("DB_PASSWORD=a<b mysql", "<b mysql"),
        # Not at the start of its line.
        ("echo PASSWORD=a<b", "<b"),
    ],
)
def test_a_value_broken_by_the_shell_keeps_what_follows(line: str, kept: str) -> None:
    out = Redactor(KEY).redact_text(line)
    assert "[REDACTED:password:" in out
    assert out.endswith(kept)


@pytest.mark.parametrize("line", ["API_TOKEN_FILE=a<b", "bypass=a<b", "maxTokens=5&6"])
def test_a_name_that_holds_no_secret_is_left_alone(line: str) -> None:
    assert Redactor(KEY).redact_text(line) == line


def test_a_quoted_value_is_read_by_the_quoted_patterns() -> None:
    redactor = Redactor(KEY)
    assert redactor.redact_text('DB_PASSWORD="a<b"') == (
        f'DB_PASSWORD="{redactor.tag("password", "a<b")}"'
    )


def test_dotenv_lines_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        ["TOKEN=a<\n", "TOKEN=" + "a<" * 40 + " x\n", "x_" * 20 + "TOKEN=", "\nPASSWORD=<"],
        tail="TOKEN=" + "a;" * 20_000,
    )


FORMS = [ENV_FILE.format(line="DB_PASSWORD=a<b&c"), "API_TOKEN=x;y # c", "PASSWORD=x; reboot"]


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(FORMS)


def test_no_dotenv_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: env, action: process.exec, command: cat, cwd: /app, decision: allow}
"""
    lines = ["DB_PASSWORD=Qa1<Qb2&Qc3", "export API_TOKEN=Qd4;Qe5'Qf6"]
    requests = [
        # Allowed, denied, and refused (a relative cwd): each is recorded.
        {"action": "process.exec", "commandLine": ENV_FILE.format(line=lines[0]), "cwd": "/app"},
        {"action": "process.exec", "commandLine": ENV_FILE.format(line=lines[1]), "cwd": "/"},
        {"action": "process.exec", "commandLine": ENV_FILE.format(line=lines[0]), "cwd": "rel"},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 400]
    assert everything.count(b'"type":"decision"') == 2
    assert everything.count(b'"type":"invalidRequest"') == 1
    for core in ("Qa1", "Qb2", "Qc3", "Qd4", "Qe5", "Qf6"):
        assert core.encode() not in everything, core
    assert len(re.findall(rb"\[REDACTED:(?:password|secret):", everything)) >= len(requests)


@pytest.mark.parametrize(
    "text", ['API_TOKEN=<tok>&PASSWORD="a b"', "x\nPASSWORD=<p>&TOKEN='c d'\ny"]
)
def test_a_line_cut_by_a_tag_is_not_read_to_the_tag(text: str) -> None:
    # The pattern runs on the text up to each tag placed before; there the tag's start
    # looked like the end of the line, and a second redaction tagged what the first kept.
    redactor = Redactor(KEY)
    once = redactor.redact_text(text)
    assert redactor.redact_text(once) == once
