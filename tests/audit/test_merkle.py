"""RFC 6962 hashing and the incremental frontier, against published vectors.

The vectors are those of transparency-dev/merkle (rfc6962/rfc6962_test.go and
testonly/constants.go): leaf/node/empty hashes and the roots of the trees built from
its eight test leaf inputs.
"""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash, perfect_subtrees

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH from RFC 6962 section 2.1, written the way the RFC defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return node_hash(reference_root(leaves[:split]), reference_root(leaves[split:]))


def test_rfc6962_hasher_vectors() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert (
        leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert (
        leaf_hash(b"L123456").hex()
        == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert (
        node_hash(b"N123", b"N456").hex()
        == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_roots_of_the_published_test_tree_at_every_size() -> None:
    frontier = Frontier()
    assert frontier.root().hex() == ROOTS[0]
    for size, data in enumerate(LEAF_INPUTS, start=1):
        frontier.append(leaf_hash(data))
        assert frontier.size == size
        assert frontier.root().hex() == ROOTS[size], f"root of size {size}"


def test_frontier_holds_one_node_per_set_bit_of_the_size() -> None:
    frontier = Frontier()
    for size in range(1, 70):
        frontier.append(leaf_hash(size.to_bytes(2, "big")))
        assert len(frontier.nodes) == bin(size).count("1")


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_frontier_matches_the_rfc_definition(first: int, second: int) -> None:
    leaves = [leaf_hash(os.urandom(8)) for _ in range(first + second)]
    one_by_one = Frontier()
    for leaf in leaves:
        one_by_one.append(leaf)
    bulk = Frontier()
    bulk.extend(leaves[:first])
    bulk.extend(leaves[first:])
    assert one_by_one.root() == bulk.root() == reference_root(leaves)
    assert one_by_one.nodes == bulk.nodes


def test_perfect_subtrees_are_aligned_and_cover_the_range() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(100)]
    pieces = perfect_subtrees(leaves[37:], 37)
    position = 37
    for height, node in pieces:
        width = 1 << height
        assert position % width == 0
        assert node == reference_root(leaves[position : position + width])
        position += width
    assert position == 100


def test_copy_is_independent() -> None:
    frontier = Frontier()
    frontier.append(leaf_hash(b"a"))
    clone = frontier.copy()
    clone.append(leaf_hash(b"b"))
    assert frontier.size == 1 and clone.size == 2
    assert frontier.root() == leaf_hash(b"a")
