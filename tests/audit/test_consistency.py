"""Consistency proofs between checkpoints (RFC 6962 2.1.2 / RFC 9162 2.1.4) and
``tollgate audit prove``, which writes them as C2SP tlog-witness requests.

The Merkle functions are checked against the reference vectors of
transparency-dev/merkle (``testdata/consistency/*/happy-path.json``, over the RFC 6962
test leaves) and exhaustively on small trees; the CLI runs on real signed trails.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import Frontier, consistency_proof, leaf_hash, verify_consistency
from sidecar.audit.note import Signer, Verifier, parse_note, verify_note
from tests.audit.conftest import decision, records

OpenLog = Callable[..., AuditLog]

# The RFC 6962 test leaves used by transparency-dev/merkle and Certificate Transparency.
LEAVES = [
    bytes.fromhex(text)
    for text in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# (old size, new size, proof) from transparency-dev/merkle testdata/consistency.
VECTORS = [
    (
        1,
        8,
        [
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        6,
        8,
        [
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (
        2,
        5,
        [
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
    (
        6,
        7,
        [
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
]


def _root(leaves: list[bytes]) -> bytes:
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


@pytest.mark.parametrize(("old", "new", "expected"), VECTORS)
def test_proofs_equal_the_reference_vectors(old: int, new: int, expected: list[str]) -> None:
    hashes = [leaf_hash(leaf) for leaf in LEAVES]
    assert (
        base64.b64encode(_root(hashes)).decode() == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    )
    proof = consistency_proof(hashes[:new], old)
    assert [base64.b64encode(node).decode() for node in proof] == expected
    assert verify_consistency(old, new, _root(hashes[:old]), _root(hashes[:new]), proof)


def test_every_proof_up_to_40_leaves_verifies_and_no_changed_one_does() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(40)]
    for new in range(41):
        for old in range(new + 1):
            proof = consistency_proof(hashes[:new], old)
            old_root, new_root = _root(hashes[:old]), _root(hashes[:new])
            assert verify_consistency(old, new, old_root, new_root, proof), (old, new)
            for index in range(len(proof)):
                changed = list(proof)
                changed[index] = hashlib.sha256(changed[index]).digest()
                assert not verify_consistency(old, new, old_root, new_root, changed)
            if 0 < old < new:
                assert not verify_consistency(old, new, new_root, old_root, proof)
                assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
                assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])


def _prove(directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "prove", str(directory), *args],
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def trail(open_log: OpenLog, tmp_path: Path) -> Path:
    log = open_log(tmp_path / "audit", segment_bytes=5000, checkpoint_every=7)
    for i in range(50):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return tmp_path / "audit"


def _parse_witness_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    head, _, note = body.partition(b"\n\n")
    lines = head.split(b"\n")
    assert lines[0].startswith(b"old ")
    return int(lines[0][4:]), [base64.b64decode(line, validate=True) for line in lines[1:]], note


def test_prove_writes_a_witness_request_a_witness_would_accept(trail: Path, signer: Signer) -> None:
    notes = [r["note"] for r in records(trail) if r["type"] == "checkpoint"]
    older = Checkpoint.parse(parse_note(notes[2]).text)
    result = _prove(trail, "--old", str(older.size))
    assert result.returncode == 0, result.stderr
    old, proof, note = _parse_witness_request(result.stdout)
    assert old == older.size
    assert note == (trail / "checkpoint").read_bytes()
    # What the witness does: check the log's signature, then the proof from the size it
    # cosigned last (whose root it kept) to the new checkpoint.
    newer = parse_note(note)
    verify_note(newer, [Verifier(older.origin, signer.public_key)])
    checkpoint = Checkpoint.parse(newer.text)
    assert verify_consistency(older.size, checkpoint.size, older.root, checkpoint.root, proof)


def test_prove_from_zero_and_to_the_same_size(trail: Path) -> None:
    size = Checkpoint.parse(parse_note((trail / "checkpoint").read_bytes()).text).size
    for old in (0, size):
        result = _prove(trail, "--old", str(old))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"old {old}\n\n".encode())


def test_prove_refuses_a_trail_that_does_not_give_the_signed_root(trail: Path) -> None:
    segment = sorted((trail / "segments").glob("*.jsonl"))[0]
    segment.write_bytes(segment.read_bytes().replace(b"/app/data/3.csv", b"/app/data/X.csv"))
    result = _prove(trail, "--old", "7")
    assert result.returncode == 1
    assert b"do not give the checkpoint's root" in result.stderr
    assert result.stdout == b""


def test_prove_needs_the_records_from_seq_0(trail: Path) -> None:
    first = sorted((trail / "segments").glob("*.jsonl"))[0]
    first.unlink()
    result = _prove(trail, "--old", "7")
    assert result.returncode == 1
    assert b"were pruned" in result.stderr


def test_an_old_size_beyond_the_checkpoint_is_a_usage_error(trail: Path) -> None:
    result = _prove(trail, "--old", "100000")
    assert result.returncode == 2
    assert b"is not within 0 .." in result.stderr
