"""A request may have at most ``MAX_PARSED_COMMANDS`` simple commands read, by bash's and
dash's rules together (review of 2026-12-07, the HTTP surface).

A valid 64 KiB ``commandLine`` of ``a;a;a;...`` is 32,000 commands, each read twice: it
held the event loop, and every check and probe queued behind it, 4 - 6 s on the
review's VM (9 - 16 s under the pod's CPU limit). Such a line is now refused (400, a
deny) once the budget is spent, while scripts of thousands of commands are still read
and decided; the budget is per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.errors import RequestError
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.shell_parser import MAX_PARSED_COMMANDS
from tests.daemon import Daemon

POLICY = """\
version: 1
rules:
  - {action: process.exec, command: [a, echo], decision: allow}
"""


def commands(count: int, separator: str = ";") -> str:
    return separator.join(["a"] * count)


@pytest.mark.parametrize(
    "line",
    [
        commands(32_000),  # the review's line: 64 KiB
        commands(MAX_PARSED_COMMANDS // 2 + 1, "\n"),  # just over, read twice
        "sh -c '" + commands(6_000) + "'",  # a nested script counts too
        # bash's script is read by bash's rules, sh's by both: 4,000 + 2 x 4,000
        'a; bash -c "' + commands(4_000) + "\"; sh -c '" + commands(4_000) + "'",
    ],
    ids=["64KiB", "just-over", "nested", "several-nested"],
)
def test_a_line_of_too_many_commands_is_refused(line: str) -> None:
    with pytest.raises(RequestError, match=f"more than {MAX_PARSED_COMMANDS:,} commands"):
        analyse_command(command_line=line)


def test_a_script_of_thousands_of_commands_is_still_read() -> None:
    within = MAX_PARSED_COMMANDS // 2  # each read by bash's rules and by dash's
    analysis = analyse_command(command_line=commands(within, " && "))
    assert len(analysis.commands) == within
    # The budget is the request's: the next request starts with all of it.
    assert len(analyse_command(command_line=commands(within)).commands) == within
    analysis = analyse_command(argv=["sh", "-c", commands(within)])
    assert len(analysis.commands) == within


def test_the_gate_answers_the_64_kib_line_at_once_with_a_400(
    write_policy: Callable[[str], Path], daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    gate: Daemon = daemon_factory(write_policy(POLICY))
    body = json.dumps({"action": "process.exec", "commandLine": commands(32_000)})
    assert len(body) < 64 * 1024
    answer = gate.check(body, timeout=60)
    assert answer.status_code == 400
    assert answer.json()["allowed"] is False
    assert f"more than {MAX_PARSED_COMMANDS:,} commands" in answer.json()["error"]["message"]
    refused = [r for r in gate.records() if r["type"] == "invalidRequest"]
    assert len(refused) == 1 and refused[0]["truncated"] is True
    assert gate.get("/health").status_code == 200
