"""RFC 6962 Merkle tree hashing, kept incrementally as a compact range.

Implements RFC 6962 section 2.1 (the hash of a leaf is SHA-256(0x00 || data), of an inner
node SHA-256(0x01 || left || right), the empty tree hashes to SHA-256("")) as used by C2SP
tlog-checkpoint. ``Frontier`` is the compact range [0, size): the roots of the perfect
subtrees that make up the tree, largest (leftmost) first. Appending a leaf costs O(1)
amortised hashes and the root costs O(log n), so a checkpoint never re-reads the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return sha256(_NODE_PREFIX + left + right).digest()


class Frontier:
    """The right frontier of an append-only RFC 6962 tree (a compact range from 0)."""

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @classmethod
    def from_nodes(cls, size: int, nodes: Sequence[bytes]) -> Frontier:
        """The frontier of a tree of ``size`` leaves, from its perfect-subtree roots."""
        if size < 0 or len(nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} has {bin(size).count('1')} nodes")
        frontier = cls()
        frontier._nodes = list(nodes)
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """Perfect-subtree roots, one per set bit of ``size``, largest first."""
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> None:
        """Add the hash of the next leaf."""
        nodes = self._nodes
        nodes.append(leaf)
        # Each trailing 1 bit of the old size is a complete subtree that the new leaf closes.
        carry = self._size
        while carry & 1:
            right = nodes.pop()
            nodes[-1] = sha256(_NODE_PREFIX + nodes[-1] + right).digest()
            carry >>= 1
        self._size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Add several leaf hashes in order (same result as ``append`` one by one)."""
        for height, node in perfect_subtrees(leaves, self._size):
            self.append_subtree(node, height)

    def append_subtree(self, node: bytes, height: int) -> None:
        """Add the root of a perfect subtree of 2**height leaves.

        The current size must be a multiple of 2**height, as it is for the pieces
        ``perfect_subtrees`` returns.
        """
        if self._size & ((1 << height) - 1):
            raise ValueError(f"size {self._size} is not aligned to a subtree of height {height}")
        nodes = self._nodes
        nodes.append(node)
        carry = self._size >> height
        while carry & 1:
            right = nodes.pop()
            nodes[-1] = sha256(_NODE_PREFIX + nodes[-1] + right).digest()
            carry >>= 1
        self._size += 1 << height

    def root(self) -> bytes:
        """The RFC 6962 Merkle tree hash of all leaves appended so far."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        digest = nodes[-1]
        for left in reversed(nodes[:-1]):
            digest = sha256(_NODE_PREFIX + left + digest).digest()
        return digest

    def copy(self) -> Frontier:
        """An independent copy (O(log n)), used to stage a batch before it is durable."""
        clone = Frontier()
        clone._nodes = list(self._nodes)
        clone._size = self._size
        return clone


def perfect_subtrees(leaves: Sequence[bytes], start: int) -> list[tuple[int, bytes]]:
    """Split leaves at tree positions start, start+1, ... into aligned perfect subtrees.

    Returns ``[(height, root), ...]`` left to right; appending them in order with
    ``Frontier.append_subtree`` to a frontier of size ``start`` equals appending the
    leaves one by one. Levels are reduced with list comprehensions, which is about twice
    as fast as per-leaf appends, and lets worker processes hash their share of a trail.
    """
    pieces: list[tuple[int, bytes]] = []
    count = len(leaves)
    done = 0
    position = start
    while done < count:
        height = (position & -position).bit_length() - 1 if position else 63
        while (1 << height) > count - done:
            height -= 1
        width = 1 << height
        level = list(leaves[done : done + width])
        while len(level) > 1:
            level = [
                sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
                for i in range(0, len(level), 2)
            ]
        pieces.append((height, level[0]))
        done += width
        position += width
    return pieces


def _subtree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH of ``leaves`` (at least one)."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 PROOF(old_size, leaves): the nodes that show a tree of
    ``len(leaves)`` leaves extends the tree of its first ``old_size`` ones.

    ``leaves`` are leaf hashes. Empty for old_size 0 or equal sizes, as the RFC says.
    """
    new_size = len(leaves)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size} is not within 0 .. {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    proof: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], complete), unrolled: the nodes are found right to left.
    m, lo, hi, complete = old_size, 0, new_size, True
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of 2 below hi - lo
        if m <= k:
            proof.append(_subtree_root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_subtree_root(leaves[lo:hi]))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: whether ``proof`` shows the tree of ``new_size`` leaves
    with root ``new_root`` extends the one of ``old_size`` leaves with ``old_root``."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    nodes = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of 2: the old root is the first node
        nodes.insert(0, old_root)
    if not nodes:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
