"""A policy file's parse is bounded by the gate's memory (docs/deploy.md, "Memory").

Found in review (fix26): the node limit, 2,000,000, was meant for alias bombs only, and
parsing holds 300 to 500 bytes a node, so files of short list values parsed in full: a
2 MB file of 1,000,000 one-character values took a gate reloading over the 10,000-rule
benchmark policy to 392 MiB, past the sidecar's 256Mi, before anything refused it. The
limit is now 200,000 nodes, written out or through aliases (199 MiB at the limit).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.policies import policy_yaml
from sidecar.errors import PolicyError
from sidecar.policy.loader import load_policy_bytes, load_yaml_strict
from sidecar.policytest import PolicyTestFileError, load_test_file

LIMIT = 200_000
POLICIES = Path(__file__).resolve().parent.parent / "policies"
HEAD = "version: 1\nrules:\n  - id: r\n    action: file.read\n    decision: allow\n"
# The document's mapping, 'version', 1, 'rules', the rules' list, the rule's mapping, 6
# scalars for id, action and decision, 'path', its mapping and 'in': 15 nodes.
NODES_BESIDE_THE_LIST = 15


def _policy_of(nodes: int) -> str:
    """One rule whose ``path: {in: [...]}`` list makes the document ``nodes`` nodes."""
    values = nodes - NODES_BESIDE_THE_LIST - 1  # the list itself is a node too
    return HEAD + "    path: {in: [" + ", ".join(f"/a{i}" for i in range(values)) + "]}\n"


def test_a_policy_of_one_node_more_than_the_limit_is_refused_saying_why() -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(_policy_of(LIMIT + 1).encode(), "p.yaml")
    [problem] = raised.value.problems
    # Valid YAML, refused for its size: not reported as invalid YAML.
    assert problem.startswith("the file is too large: it has more than 200,000 YAML nodes")
    assert "line 6 passes it" in problem
    assert "an alias counts as the node it names" in problem
    assert 'within its memory limit (docs/deploy.md, "Memory")' in problem
    assert "once aliases are expanded" not in problem  # this file has none


def test_policy_validate_says_a_policy_over_the_limit_is_too_large(tmp_path: Path) -> None:
    policy = tmp_path / "large.yaml"
    policy.write_text(_policy_of(LIMIT + 1))
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "validate", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{policy}: the file is too large: it has more than 200,000 YAML nodes" in result.stderr
    assert "invalid YAML" not in result.stderr


def test_a_policy_test_file_over_the_limit_is_too_large_not_invalid_yaml(tmp_path: Path) -> None:
    values = ", ".join(f"/a{i}" for i in range(LIMIT))
    test_file = tmp_path / "large.test.yaml"
    test_file.write_text(f"policy: p.yaml\ncases: [{values}]\n")
    with pytest.raises(PolicyTestFileError) as raised:
        load_test_file(test_file)
    [problem] = raised.value.problems
    assert problem.startswith("the file is too large: it has more than 200,000 YAML nodes")
    # A test file is not parsed by a gate: its advice is to split it, not a policy's.
    assert problem.endswith("split its cases over several test files")
    assert "glob or regex" not in problem and "memory limit" not in problem


def test_a_policy_at_the_limit_is_parsed() -> None:
    raw = load_yaml_strict(_policy_of(LIMIT))
    assert len(raw["rules"][0]["path"]["in"]) == LIMIT - NODES_BESIDE_THE_LIST - 1


def test_the_largest_policies_a_gate_is_sized_for_load_within_the_limit() -> None:
    # The 10,000-rule benchmark policy (MAX_RULES) has 121,005 nodes; the shipped ones
    # a few hundred.
    assert len(load_policy_bytes(policy_yaml(10_000), "bench.yaml").rules) == 10_000
    for path in sorted(POLICIES.glob("*.yaml")):
        if not path.name.endswith(".test.yaml"):
            assert load_policy_bytes(path.read_bytes(), str(path)).rules
