"""A secret assigned before a command with a backslash escape in its value
(``PGPASSWORD=a\\"b psql``, ``REDISCLI_AUTH=a\\(b\\"c redis-cli``). The text patterns also
read JSON text, where ``\\"`` ends a value, so they stop there; the shell does not, and the
analysed commands do not show an assignment. ``shell_assignments`` reads such words as the
shell does, for accepted and refused requests alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.audit.redact import Redactor, shell_assignments
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('PGPASSWORD=a\\"b psql', ['PGPASSWORD=a"b']),
        ('REDISCLI_AUTH=a\\(b\\"c redis-cli ping', ['REDISCLI_AUTH=a(b"c']),
        ('A="x\\"y" B=c\\ d cmd', ['A=x"y', "B=c d"]),
        ("export TOKEN=a\\;b; ls", ["TOKEN=a;b"]),
        # No escape: the patterns read it. An expansion: the line does not show the value.
        ("PGPASSWORD=ab psql", []),
        ("X=$(a\\b) cmd", []),
        ("X=a\\`b`c cmd", []),
        # Not a NAME= at the start of a word.
        ('echo x-PGPASSWORD=a\\"b', []),
    ],
)
def test_the_assignments_are_read_as_the_shell_reads_them(line: str, words: list[str]) -> None:
    assert shell_assignments(line) == words


def test_a_record_keeps_no_part_of_the_value() -> None:
    redactor = Redactor(KEY)
    line = 'PGPASSWORD=pw1\\"pw2 psql -h db'
    body = {"request": {"commandLine": line, "commands": [["psql", "-h", "db"]]}}
    out = redactor.redact(body)
    assert out["request"]["commandLine"] == (
        f"PGPASSWORD={redactor.tag('password', 'pw1' + chr(34) + 'pw2')} psql -h db"
    )
    assert redactor.redact(out) == out


def test_no_part_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: redis, action: process.exec, command: redis-cli, cwd: /app, decision: allow}
"""
    line = 'REDISCLI_AUTH=Qa1\\(Qb2\\"Qc3 redis-cli ping'
    requests = [
        {"action": "process.exec", "commandLine": line, "cwd": "/app"},
        {"action": "process.exec", "commandLine": 'PGPASSWORD=Qd4\\"Qe5 psql', "cwd": "/"},
        {"action": "process.exec", "commandLine": line, "cwd": "rel"},
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 400]
    for core in ("Qa1", "Qb2", "Qc3", "Qd4", "Qe5"):
        assert core.encode() not in everything, core
