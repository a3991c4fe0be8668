"""Offline evaluation (``tollgate policy test``, ``tollgate check --policy``) answers what
a freshly started gate answers about rate limits.

Found in the red-team review of 2026-12-07: a check running two ``curl`` commands under
``rateLimit: {count: 1}`` was denied by every fresh gate (two tokens needed, one held)
while ``policy test`` passed a case expecting ``allow`` and ``check --policy`` answered
allow: offline evaluation never counted the tokens a check needs.
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sidecar.cli import main
from sidecar.policytest import run_policy_tests
from tests.daemon import Daemon

POLICY = """\
version: 1
defaultAction: deny
rules:
  - id: fetches
    action: process.exec
    command: curl
    decision: allow
    risk: medium
    rateLimit: {count: 1, per: 1h}
  - id: pairs
    action: process.exec
    command: wget
    decision: allow
    rateLimit: {count: 2, per: 1h}
"""

TWO_CURLS = {
    "action": "process.exec",
    "commandLine": "curl https://a.example/; curl https://b.example/",
}
OVER_BUDGET = (
    "rate limit 1/1h of rule fetches is spent for process.exec: the check runs 2 commands "
    "or redirections the rule covers, 1 token is left"
)


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _run_tests(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_policy_tests([str(path)], out)
    return code, out.getvalue()


def _two_curls_case(tmp_path: Path, name: str, *expectation: str) -> Path:
    """A test file of policy.yaml with one case, TWO_CURLS, and ``expectation``'s lines."""
    lines = "".join(f"\n            {line}" for line in expectation)
    return _write(
        tmp_path,
        name,
        f"""
        policy: policy.yaml
        cases:
          - name: two curls in one line under a 1/1h limit
            request: {json.dumps(TWO_CURLS)}{lines}
        """,
    )


def test_policy_test_denies_a_check_needing_more_tokens_than_the_limit_holds(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "policy.yaml", POLICY)
    expecting_allow = _two_curls_case(tmp_path, "allow.test.yaml", "expect: allow")
    code, output = _run_tests(expecting_allow)
    assert code == 1, output
    assert f"  got:      deny by fetches: {OVER_BUDGET}\n" in output
    # The explain trace says why the allow did not stand.
    assert f"    => deny by fetches: {OVER_BUDGET}\n" in output

    expecting_deny = _two_curls_case(tmp_path, "deny.test.yaml", "expect: deny", "rule: fetches")
    code, output = _run_tests(expecting_deny)
    assert (code, output.splitlines()[-1]) == (0, "policy test: 1 passed, 0 failed"), output


def test_each_case_is_one_request_against_fresh_limits(tmp_path: Path) -> None:
    _write(tmp_path, "policy.yaml", POLICY)
    tests = _write(
        tmp_path,
        "fresh.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: one curl
            request: {action: process.exec, commandLine: "curl https://a.example/"}
            expect: allow
            rule: fetches
          - name: one curl again, a case of its own
            request: {action: process.exec, commandLine: "curl https://a.example/"}
            expect: allow
            rule: fetches
          - name: two wgets under a 2/1h limit
            request: {action: process.exec, commandLine: "wget a; wget b"}
            expect: allow
            rule: pairs
          - name: three wgets under a 2/1h limit
            request: {action: process.exec, commandLine: "wget a; wget b; wget c"}
            expect: deny
            rule: pairs
        """,
    )
    code, output = _run_tests(tests)
    assert (code, output.splitlines()[-1]) == (0, "policy test: 4 passed, 0 failed"), output


def test_check_policy_denies_what_a_fresh_gate_denies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _write(tmp_path, "policy.yaml", POLICY)
    assert main(["check", "--policy", str(policy), json.dumps(TWO_CURLS)]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert (answer["decision"], answer["allowed"], answer["rule"], answer["risk"]) == (
        "deny",
        False,
        "fetches",
        "medium",
    )
    assert answer["reason"] == OVER_BUDGET
    one = {"action": "process.exec", "commandLine": "curl https://a.example/"}
    assert main(["check", "--policy", str(policy), json.dumps(one)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "allow"


def test_audit_mode_check_policy_allows_but_says_deny(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _write(tmp_path, "policy.yaml", POLICY.replace("defaultAction: deny", "mode: audit"))
    assert main(["check", "--policy", str(policy), json.dumps(TWO_CURLS)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["decision"], answer["allowed"], answer["reason"]) == ("deny", True, OVER_BUDGET)


@pytest.mark.parametrize(
    "line",
    [
        "curl https://a.example/; curl https://b.example/",
        "curl https://a.example/",
        "wget a; wget b",
        "wget a; wget b; wget c",
        "curl a; wget b",
    ],
)
def test_offline_answers_agree_with_a_fresh_gate(
    line: str,
    tmp_path: Path,
    write_policy: Any,
    daemon_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_policy(POLICY)
    body = {"action": "process.exec", "commandLine": line}
    gate: Daemon = daemon_factory(path)
    fresh = gate.check(body).json()
    main(["check", "--policy", str(path), json.dumps(body)])
    offline = json.loads(capsys.readouterr().out)
    keys = ("decision", "allowed", "rule", "reason")
    assert {k: offline[k] for k in keys} == {k: fresh[k] for k in keys}


@pytest.mark.parametrize(
    "line", ["curl a; curl b; wget c; wget d; wget e", "wget c; wget d; wget e; curl a; curl b"]
)
def test_over_two_budgets_the_rule_first_in_the_file_is_reported(
    line: str,
    write_policy: Any,
    daemon_factory: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Both budgets are short (fetches 1/1h needs 2, pairs 2/1h needs 3): CONTRACT section
    # 1 reports the first rule in file order, fetches, whichever command comes first
    # (review rt26: the rule of the first command was reported).
    path = write_policy(POLICY)
    body = {"action": "process.exec", "commandLine": line}
    main(["check", "--policy", str(path), json.dumps(body)])
    offline = json.loads(capsys.readouterr().out)
    fresh = daemon_factory(path).check(body).json()
    for answer in (offline, fresh):
        assert (answer["decision"], answer["rule"], answer["reason"]) == (
            "deny",
            "fetches",
            OVER_BUDGET,
        )
