"""The rule index never changes a decision: a few hundred random policies through
``bench.index_differential`` (indexed evaluation against a scan of every rule in file
order). The full run, ``python -m bench.index_differential``, checks thousands."""

from __future__ import annotations

import pytest

from bench.index_differential import run


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indexed_decisions_equal_a_scan_of_every_rule(seed: int) -> None:
    policies, checks = run(seed, 100)
    assert policies > 50 and checks == policies * 30
