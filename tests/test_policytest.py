"""``tollgate policy test`` (sidecar/policytest.py; format in docs/policy-tests.md).

Real policy and test files in a temporary directory, run through ``run_policy_tests``
and through the CLI; the assertions are on what a user reads and on the exit code.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.policytest import run_policy_tests

POLICY = """
version: 1
rules:
  - id: read-data
    action: file.read
    path: {glob: "/data/**"}
    decision: allow
  - id: no-secrets
    action: file.read
    path: {glob: "/data/secrets/**"}
    decision: deny
  - action: file.write
    path: {glob: "/data/out/**"}
    decision: require_approval
  - id: team-a-only
    action: file.delete
    agent: "team-a/worker/agent"
    path: {glob: "/data/tmp/**"}
    decision: allow
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _run(*paths: Path | str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_policy_tests([str(p) for p in paths], out)
    return code, out.getvalue()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    _write(tmp_path, "policy.yaml", POLICY)
    return tmp_path


def test_all_cases_pass(policy_dir: Path) -> None:
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: reads data
            request: {action: file.read, path: /data/a.csv}
            expect: allow
            rule: read-data
          - name: secrets are denied by the guard rail
            request: {action: file.read, path: /data/secrets/key}
            expect: deny
            rule: no-secrets
          - name: writes need approval; rules without id are named by position
            request: {action: file.write, path: /data/out/x}
            expect: require_approval
            rule: rules[2]
          - name: nothing else
            request: {action: file.read, path: /etc/passwd}
            expect: deny
            rule: null
          - name: rule not checked when left out
            request: {action: file.read, path: /data/b.csv}
            expect: allow
        """,
    )
    code, output = _run(test_file)
    assert code == 0, output
    assert output.splitlines()[-1] == "policy test: 5 passed, 0 failed"
    assert "FAIL" not in output


def test_wrong_decision_fails_with_the_explain_trace(policy_dir: Path) -> None:
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: thinks secrets are readable
            request: {action: file.read, path: /data/secrets/key}
            expect: allow
          - name: reads data
            request: {action: file.read, path: /data/a.csv}
            expect: allow
        """,
    )
    code, output = _run(test_file)
    assert code == 1
    assert output.splitlines()[-1] == "policy test: 1 passed, 1 failed"
    assert f'FAIL {test_file}: cases[0] "thinks secrets are readable"' in output
    assert "expected: allow\n" in output
    assert "got:      deny by no-secrets" in output
    # The trace explains every rule considered, and the outcome.
    assert "read-data [allow]: match" in output
    assert "no-secrets [deny]: match" in output
    assert "=> deny by no-secrets" in output
    assert f"FAIL {test_file} (1/2 cases passed)" in output


def test_right_decision_by_the_wrong_rule_fails(policy_dir: Path) -> None:
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: denied, but only by default
            request: {action: file.read, path: /data/secrets/key}
            expect: deny
            rule: null
          - name: denied by a rule that did not decide
            request: {action: file.read, path: /etc/passwd}
            expect: deny
            rule: no-secrets
        """,
    )
    code, output = _run(test_file)
    assert code == 1
    assert "expected: deny by defaultAction" in output
    assert "got:      deny by no-secrets" in output
    assert "expected: deny by no-secrets" in output
    assert "got:      deny by defaultAction" in output
    assert output.splitlines()[-1] == "policy test: 0 passed, 2 failed"


def test_a_case_expecting_a_rule_the_policy_does_not_have_is_an_error(
    policy_dir: Path,
) -> None:
    """A typo in ``rule:`` (or a rule renamed since) could never pass; say so plainly."""
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: read by the read rule
            request: {action: file.read, path: /data/a}
            expect: allow
            rule: read-dat
          - name: default ids count
            request: {action: file.write, path: /data/out/x}
            expect: require_approval
            rule: rules[2]
        """,
    )
    code, output = _run(test_file)
    assert code == 2
    assert f"ERROR {test_file}: cases[0].rule: the policy has no rule with id 'read-dat'" in output
    assert "cases[1]" not in output
    assert output.splitlines()[-1] == "policy test: 0 passed, 0 failed"


def test_agent_identity_is_matched(policy_dir: Path) -> None:
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: team a may delete
            request: {action: file.delete, path: /data/tmp/x}
            agent: team-a/worker/agent
            expect: allow
            rule: team-a-only
          - name: anyone else may not
            request: {action: file.delete, path: /data/tmp/x}
            agent: team-b/worker/agent
            expect: deny
            rule: null
        """,
    )
    code, output = _run(test_file)
    assert code == 0, output


LOCAL_ONLY = """
version: 1
rules:
  - id: local-only
    action: file.read
    agent: local
    path: {glob: "/data/**"}
    decision: allow
"""

IDENTITY_VARIABLES = ("TOLLGATE_IDENTITY", "POD_NAMESPACE", "SERVICE_ACCOUNT", "POD_NAME")


def test_a_case_without_agent_is_evaluated_as_a_gate_without_identity_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # rt26 semantics 1: the default was "", an identity no gate has, so a rule on
    # `agent: local` was proved never to fire while a gate without pod variables matched it.
    _write(tmp_path, "policy.yaml", LOCAL_ONLY)
    test_file = _write(
        tmp_path,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: a gate configured with no identity is local
            request: {action: file.read, path: /data/a}
            expect: allow
            rule: local-only
        """,
    )
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    request = '{"action": "file.read", "path": "/data/a"}'
    assert main(["check", "--policy", str(tmp_path / "policy.yaml"), request]) == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "local-only"
    code, output = _run(test_file)
    assert code == 0, output
    assert f"ok   {test_file} (1/1 cases passed)" in output


def test_a_case_without_agent_does_not_read_the_identity_of_the_machine_running_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI runner with TOLLGATE_IDENTITY or pod variables set gets the same results.
    _write(tmp_path, "policy.yaml", LOCAL_ONLY)
    test_file = _write(
        tmp_path,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: the default identity
            request: {action: file.read, path: /data/a}
            expect: allow
            rule: local-only
          - name: an identity given
            request: {action: file.read, path: /data/a}
            agent: ci/runner/pod
            expect: deny
            rule: null
        """,
    )
    for environ in (
        {"TOLLGATE_IDENTITY": "ci/runner/pod"},
        {"POD_NAMESPACE": "ci", "SERVICE_ACCOUNT": "runner", "POD_NAME": "pod"},
    ):
        for name in IDENTITY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        code, output = _run(test_file)
        assert code == 0, (environ, output)
        assert f"ok   {test_file} (2/2 cases passed)" in output


def test_an_invalid_request_fails_its_case(policy_dir: Path) -> None:
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - name: no path
            request: {action: file.read}
            expect: deny
        """,
    )
    code, output = _run(test_file)
    assert code == 1
    assert "got:      the request is invalid: path:" in output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "policy: policy.yaml\ncases:\n  - name: x\n    request: {action: file.read, path: /a}\n"
            "    expects: deny\n",
            "cases[0].expects: unknown key",
        ),
        (
            "policy: policy.yaml\nowner: me\ncases:\n  - name: x\n"
            "    request: {action: file.read, path: /a}\n    expect: deny\n",
            "owner: unknown key",
        ),
        (
            "policy: policy.yaml\ncases:\n  - name: x\n    request: {action: file.read, path: /a}\n"
            "    expect: denied\n",
            "cases[0].expect: Input should be 'allow', 'deny' or 'require_approval'",
        ),
        (
            "policy: policy.yaml\ncases:\n  - name: x\n    name: y\n"
            "    request: {action: file.read, path: /a}\n    expect: deny\n",
            "duplicate key 'name'",
        ),
        ("policy: policy.yaml\ncases: []\n", "cases: List should have at least 1 item"),
        ("- just a list\n", "the document must be a mapping"),
        ("policy: [unclosed\n", "invalid YAML"),
    ],
)
def test_invalid_test_files_are_errors(policy_dir: Path, text: str, problem: str) -> None:
    test_file = policy_dir / "bad.test.yaml"
    test_file.write_text(text)
    code, output = _run(test_file)
    assert code == 2
    assert f"ERROR {test_file}: " in output
    assert problem in output


def test_a_policy_that_does_not_load_is_an_error_and_other_files_still_run(
    policy_dir: Path,
) -> None:
    _write(
        policy_dir,
        "broken/policy.yaml",
        "version: 1\nrules:\n  - {action: file.reed, decision: allow}\n",
    )
    _write(
        policy_dir,
        "broken/policy.test.yaml",
        """
        policy: policy.yaml
        cases:
          - {name: x, request: {action: file.read, path: /a}, expect: deny}
        """,
    )
    _write(
        policy_dir,
        "good/policy.test.yaml",
        """
        policy: ../policy.yaml
        cases:
          - {name: y, request: {action: file.read, path: /data/a}, expect: allow}
        """,
    )
    code, output = _run(policy_dir)
    assert code == 2
    assert "unknown action 'file.reed'" in output
    assert output.splitlines()[-1] == "policy test: 1 passed, 0 failed"


def test_a_missing_policy_file_is_an_error(tmp_path: Path) -> None:
    test_file = _write(
        tmp_path,
        "x.test.yaml",
        """
        policy: nowhere.yaml
        cases:
          - {name: x, request: {action: file.read, path: /a}, expect: deny}
        """,
    )
    code, output = _run(test_file)
    assert code == 2
    assert "nowhere.yaml" in output
    assert "cannot read" in output


def test_discovery_is_recursive_and_the_policy_is_relative_to_the_test_file(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = "cases:\n  - {name: x, request: {action: file.read, path: /data/a}, expect: allow}\n"
    _write(policy_dir, "a/one.test.yaml", "policy: ../policy.yaml\n" + case)
    _write(policy_dir, "a/b/two.test.yaml", "policy: ../../policy.yaml\n" + case)
    # Not test files: a policy, and a YAML file without the suffix.
    _write(policy_dir, "a/notes.yaml", "this: is not a test\n")
    monkeypatch.chdir(policy_dir / "a" / "b")
    code, output = _run(policy_dir / "a")
    assert code == 0, output
    assert output.splitlines()[-1] == "policy test: 2 passed, 0 failed"
    # A file named on the command line runs whatever it is called.
    named = _write(policy_dir, "c/checks.yaml", "policy: ../policy.yaml\n" + case)
    assert _run(named)[0] == 0


def test_a_test_file_spelt_yml_in_a_directory_is_an_error_not_skipped(policy_dir: Path) -> None:
    # Before, it was silently left out: 'policy test' passed without running its cases.
    case = "cases:\n  - {name: x, request: {action: file.read, path: /data/a}, expect: deny}\n"
    _write(
        policy_dir, "a/one.test.yaml", "policy: ../policy.yaml\n" + case.replace("deny", "allow")
    )
    _write(policy_dir, "a/two.test.yml", "policy: ../policy.yaml\n" + case)
    code, output = _run(policy_dir / "a")
    assert code == 2, output
    assert "two.test.yml: not run: test files end in .test.yaml" in output


@pytest.mark.parametrize("make", ["missing", "empty-dir", "nothing"])
def test_usage_errors(tmp_path: Path, make: str) -> None:
    if make == "missing":
        code, output = _run(tmp_path / "nope")
        assert "no such file or directory" in output
    elif make == "empty-dir":
        code, output = _run(tmp_path)
        assert "no *.test.yaml files" in output
    else:
        code, output = _run()
    assert code == 2


def test_audit_mode_tests_the_decision_not_allowed(tmp_path: Path) -> None:
    _write(tmp_path, "p.yaml", "version: 1\nmode: audit\nrules: []\n")
    test_file = _write(
        tmp_path,
        "p.test.yaml",
        """
        policy: p.yaml
        cases:
          - {name: x, request: {action: file.read, path: /a}, expect: deny, rule: null}
        """,
    )
    assert _run(test_file)[0] == 0


def test_cli_exit_codes(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passing = _write(
        policy_dir,
        "ok/p.test.yaml",
        """
        policy: ../policy.yaml
        cases:
          - {name: x, request: {action: file.read, path: /data/a}, expect: allow}
        """,
    )
    failing = _write(
        policy_dir,
        "bad/p.test.yaml",
        """
        policy: ../policy.yaml
        cases:
          - {name: x, request: {action: file.read, path: /data/a}, expect: deny}
        """,
    )
    assert main(["policy", "test", str(passing)]) == 0
    assert capsys.readouterr().out.endswith("policy test: 1 passed, 0 failed\n")
    assert main(["policy", "test", str(passing), str(failing)]) == 1
    assert capsys.readouterr().out.endswith("policy test: 1 passed, 1 failed\n")
    assert main(["policy", "test", str(policy_dir / "missing")]) == 2


# -- the sample run of docs/policy-tests.md ------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "policy-tests.md"
APPROVAL_RULE = """\
    args:
      prefix: [push]
    decision: require_approval
    risk: high
    reason: "pushing publishes the agent's work; a person reviews it first"
"""
# The mistake the page describes: `push` mistyped as `pull` in the approval rule, and a
# broad rule for any git in /workspace added below it.
MISTAKE = """\
    args:
      prefix: [pull]
    decision: require_approval
    risk: high
    reason: "pushing publishes the agent's work; a person reviews it first"
  - id: git-any
    action: process.exec
    command: git
    cwd: /workspace
    decision: allow
"""


def _documented_sample() -> tuple[str, str]:
    """The page's sample command line and the output it shows under it."""
    section = DOCS.read_text(encoding="utf-8").split("## Output and exit codes", 1)[1]
    command, output = re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)[:2]
    return command.strip(), output


def test_the_sample_run_of_the_docs_is_what_the_tool_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's output was 45 cases old when the test file had 52: any case added to
    coding-agent.test.yaml changes the counts, so the sample is run here as shown."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("coding-agent", "k8s-readonly"):
        for suffix in (".yaml", ".test.yaml"):
            source = REPO / "policies" / f"{name}{suffix}"
            (policies / source.name).write_text(source.read_text(encoding="utf-8"))
    policy = policies / "coding-agent.yaml"
    text = policy.read_text(encoding="utf-8")
    assert text.count(APPROVAL_RULE) == 1
    policy.write_text(text.replace(APPROVAL_RULE, MISTAKE))

    command, shown = _documented_sample()
    assert command.startswith("tollgate policy test ")
    monkeypatch.chdir(tmp_path)
    code, printed = _run(*command.split()[3:])
    assert code == 1

    # What is shown between the cuts (`...` lines) is printed as it stands, in order.
    lines = printed.splitlines()
    at = 0
    chunks = re.split(r"^ *\.\.\.\n", shown, flags=re.MULTILINE)
    for chunk in filter(None, chunks):
        wanted = chunk.splitlines()
        for start in range(at, len(lines) - len(wanted) + 1):
            if lines[start : start + len(wanted)] == wanted:
                at = start + len(wanted)
                break
        else:
            pytest.fail(f"not printed in this order:\n{chunk}\n--- printed ---\n{printed}")

    # The prose counts the same cases.
    failed = sum(line.startswith("FAIL policies/coding-agent.test.yaml: ") for line in lines)
    total = len(re.findall(r"^  - name:", (policies / "coding-agent.test.yaml").read_text(), re.M))
    prose = " ".join(DOCS.read_text(encoding="utf-8").split())
    assert f"That breaks {failed} of the {total} cases" in prose


@pytest.mark.parametrize("agent", ["", " ", " ci", "ci\n"])
def test_a_case_under_an_identity_no_gate_has_is_an_error(policy_dir: Path, agent: str) -> None:
    # A gate strips its identity and never has an empty one: such a case would prove a
    # decision no gate makes (rt26 semantics 1, given on purpose).
    test_file = _write(
        policy_dir,
        "policy.test.yaml",
        f"""
        policy: policy.yaml
        cases:
          - name: under an impossible identity
            request: {{action: file.read, path: /data/a}}
            agent: {json.dumps(agent)}
            expect: allow
        """,
    )
    code, output = _run(test_file)
    assert code == 2
    assert (
        f"ERROR {test_file}: cases[0].agent: {agent!r} is no gate's identity: a gate's is "
        "never empty and has no whitespace at either end; leave agent out for 'local'"
    ) in output
