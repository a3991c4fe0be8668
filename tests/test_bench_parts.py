"""``bench.parts`` takes away exactly the part each variant names and nothing else: the
variants still answer the whole request mix, and what reaches the trail (or the
metrics) shows which part was taken away. Otherwise the table would measure something
other than what it says."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench.parts import POLICY_RULES, VARIANTS, measure_variant
from bench.policies import policy_yaml, request_mix
from tests.audit.conftest import records

CHECKS = 64
# measure_variant runs the checks once to warm up, then in three rounds.
RUNS = 4


@pytest.fixture()
def bodies() -> list[bytes]:
    return [json.dumps(body).encode() for body in request_mix(POLICY_RULES)]


@pytest.mark.parametrize(
    ("variant", "writes_decisions"),
    [
        ("as served", True),
        ("without metrics", True),
        ("records encoded, no batch", False),
        ("+ one wait per record", False),
        ("no audit record", False),
    ],
)
def test_each_variant_answers_the_mix_and_writes_what_it_says(
    tmp_path: Path, bodies: list[bytes], variant: str, writes_decisions: bool
) -> None:
    (tmp_path / "policy.yaml").write_bytes(policy_yaml(POLICY_RULES))
    cpu, written = asyncio.run(measure_variant(tmp_path, VARIANTS[variant][0], CHECKS, bodies))
    assert cpu > 0
    kinds = [record["type"] for record in records(tmp_path / "audit")]
    assert len(kinds) == written
    assert kinds.count("decision") == (CHECKS * RUNS if writes_decisions else 0)
    # The policyLoaded record is written before any variant takes effect.
    assert kinds[0] == "policyLoaded"
