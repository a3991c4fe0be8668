"""The example policies in policies/ (issue 8, part 3) pass their own test files.

Every ``policies/*.test.yaml`` goes through ``tollgate policy test``'s runner, exactly as
a user would run it; each example is commented, loads, and has its rules exercised.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml

from sidecar.policy.loader import load_policy_file
from sidecar.policytest import load_test_file, run_policy_tests

# CONTRACT section 1's policy from the design notes, as the loader tests hold it.
from tests.test_policy_loader import DESIGN_NOTES

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLES = ["design-notes", "k8s-readonly", "coding-agent", "personal-assistant", "baseline"]


def _run(paths: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = run_policy_tests(paths, out)
    return code, out.getvalue()


def test_every_example_passes_its_tests() -> None:
    total = sum(len(load_test_file(p).cases) for p in POLICIES.glob("*.test.yaml"))
    code, output = _run([str(POLICIES)])
    assert code == 0, output
    assert output.splitlines()[-1] == f"policy test: {total} passed, 0 failed"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_commented_loads_and_has_a_test_file(name: str) -> None:
    policy_file = POLICIES / f"{name}.yaml"
    assert policy_file.read_text().startswith("#"), "each example starts with its story"
    policy = load_policy_file(policy_file)
    assert policy.default_action == "deny"
    test_file = load_test_file(POLICIES / f"{name}.test.yaml")
    assert (POLICIES / test_file.policy).resolve() == policy_file.resolve()


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_rule_decides_some_case(name: str) -> None:
    """A rule no case reaches is a rule nobody checked."""
    policy = load_policy_file(POLICIES / f"{name}.yaml")
    cases = load_test_file(POLICIES / f"{name}.test.yaml").cases
    deciding = {case.rule for case in cases if case.checks_rule}
    assert {rule.id for rule in policy.rules} <= deciding
    # And the default is shown too: something falls through to defaultAction.
    assert None in deciding


def test_design_notes_policy_is_the_contracts_unchanged() -> None:
    assert yaml.safe_load((POLICIES / "design-notes.yaml").read_text()) == yaml.safe_load(
        DESIGN_NOTES
    )


def test_a_broken_case_fails_with_its_explain_trace(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "coding-agent.yaml", tmp_path / "coding-agent.yaml")
    document = yaml.safe_load((POLICIES / "coding-agent.test.yaml").read_text())
    (push,) = [c for c in document["cases"] if c["name"] == "git push needs approval"]
    push["expect"] = "allow"
    del push["rule"]
    (tmp_path / "coding-agent.test.yaml").write_text(yaml.safe_dump(document))

    code, output = _run([str(tmp_path)])

    assert code == 1
    assert output.splitlines()[-1] == (
        f"policy test: {len(document['cases']) - 1} passed, 1 failed"
    )
    failure = output[output.index("FAIL") :]
    assert '"git push needs approval"' in failure
    assert "expected: allow" in failure
    assert "got:      require_approval by git-push-needs-approval" in failure
    assert "explain:" in failure
    assert "git-push-needs-approval [require_approval]: match" in failure
    assert "=> require_approval by git-push-needs-approval" in failure
