"""A command line of redirections alone is a process.exec of its own (CONTRACT 1-2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.policy.loader import load_policy_bytes, load_policy_file

POLICIES = Path(__file__).resolve().parents[1] / "policies"


@pytest.mark.parametrize(
    "line",
    [
        "> /app/output/x",
        "exec 3>/app/output/x",
        "(> /app/output/x)",
        "! > /app/output/x",
        "< /app/data/a > /app/output/b",
    ],
)
def test_a_command_line_of_redirections_alone_is_a_process_exec_too(line: str) -> None:
    # rt24 commands review, F7: design-notes.yaml denies process.exec as a whole, and
    # "> /app/output/x" was allowed by its file.write rule alone (CONTRACT 1: the
    # design-notes policy behaves as written).
    policy = load_policy_file(POLICIES / "design-notes.yaml")
    body = {"action": "process.exec", "commandLine": line, "cwd": "/app"}
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.allowed) == ("deny", False)
    assert "a command line of redirections alone" in verdict.reason
    # A rule with no command condition decides it; one naming a command does not.
    text = (
        "version: 1\nrules:\n"
        "  - {id: out, action: file.*, path: {glob: /app/**}, decision: allow}\n"
        "  - {id: shell, action: process.exec, cwd: /app, decision: allow}\n"
    )
    allowed = evaluate_request(load_policy_bytes(text.encode(), "p.yaml"), body)
    assert allowed.decision == "allow"
    named = text.replace("cwd: /app,", "command: echo, cwd: /app,")
    denied = evaluate_request(load_policy_bytes(named.encode(), "p.yaml"), body)
    assert (denied.decision, denied.rule) == ("deny", None)
