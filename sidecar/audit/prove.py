"""``tollgate audit prove``: RFC 6962 / RFC 9162 consistency proofs between checkpoints.

A witness (C2SP tlog-witness) cosigns a checkpoint only with a proof that it extends the
last one it cosigned for the same origin; an auditor holding an older checkpoint can
check a newer one the same way without the trail. The proof is computed from the leaf
hashes of the records on disk, after checking that they give the signed root.
"""

from __future__ import annotations

import base64
from pathlib import Path

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.chunks import plan_trail, read_lines
from sidecar.audit.merkle import Frontier, consistency_proof, leaf_hash
from sidecar.audit.note import NoteError, parse_note
from sidecar.audit.segments import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAX_BYTES,
    SEGMENTS_DIR,
    NotASmallFile,
    read_small_file,
)


class ProveError(Exception):
    """The proof cannot be made from this trail (exit 1 in the CLI)."""


def _leaf_hashes(directory: Path, count: int) -> list[bytes]:
    """Leaf hashes of records 0 .. count-1, read from the segments."""
    plans = plan_trail(directory)
    if plans and plans[0].segment.first_seq > 0:
        raise ProveError(
            f"records before seq {plans[0].segment.first_seq} were pruned: a proof needs "
            "every record from seq 0 (put the shipped segments back beside the others)"
        )
    leaves: list[bytes] = []
    for plan in plans:
        if plan.segment.first_seq != len(leaves):
            raise ProveError(
                f"{SEGMENTS_DIR}/{plan.segment.name} should start at seq {len(leaves)}: "
                "records are missing (run tollgate audit verify)"
            )
        for start, end in plan.ranges:
            if len(leaves) >= count:
                return leaves[:count]
            lines = read_lines(str(plan.segment.path), start, end)
            leaves.extend(leaf_hash(line) for line in lines)
    if len(leaves) >= count:
        return leaves[:count]
    raise ProveError(f"the checkpoint signs {count} records but the trail holds {len(leaves)}")


def witness_request(directory: str | Path, old_size: int, note: bytes | None = None) -> bytes:
    """The body of a C2SP tlog-witness ``add-checkpoint`` request: ``old <size>``, the
    consistency proof from ``old_size`` to the checkpoint's size (one base64 hash a
    line), an empty line, then the signed checkpoint (``DIR/checkpoint`` by default).

    Raises ValueError for an old size beyond the checkpoint's, ProveError when the
    trail does not hold the checkpoint's records or does not give its root.
    """
    path = Path(directory)
    if note is None:
        try:
            note = read_small_file(path / CHECKPOINT_FILE, CHECKPOINT_MAX_BYTES)
        except NotASmallFile as exc:
            raise ProveError(f"not a signed checkpoint: {exc}") from exc
        if note is None:
            raise ProveError(f"{path / CHECKPOINT_FILE} does not exist")
    note = note.rstrip(b"\n") + b"\n"  # a copy from a log line may lack or add one
    try:
        checkpoint = Checkpoint.parse(parse_note(note).text)
    except NoteError as exc:
        raise ProveError(f"not a signed checkpoint: {exc}") from exc
    if not 0 <= old_size <= checkpoint.size:
        raise ValueError(f"--old {old_size} is not within 0 .. {checkpoint.size} (the checkpoint)")
    leaves = _leaf_hashes(path, checkpoint.size)
    frontier = Frontier()
    frontier.extend(leaves)
    if frontier.root() != checkpoint.root:
        raise ProveError(
            f"the first {checkpoint.size} records do not give the checkpoint's root: "
            "the trail was changed (run tollgate audit verify)"
        )
    proof = consistency_proof(leaves, old_size)
    lines = [f"old {old_size}\n".encode("ascii")]
    lines.extend(base64.b64encode(node) + b"\n" for node in proof)
    return b"".join(lines) + b"\n" + note
