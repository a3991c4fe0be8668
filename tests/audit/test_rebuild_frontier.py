"""The start-up rebuild grows the Merkle frontier only from the segment the stored
checkpoint falls in, taking the frontier there from that segment's ``.start``: the
checkpoint's root, computed from it and the leaves after it, vouches for it. Every
segment is still read, hashed and its links checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog, _read_checkpoint_file
from sidecar.audit.rebuild import rebuild
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision


def _signed_trail(open_log: Callable[..., AuditLog], directory: Path, records: int = 300) -> None:
    log = open_log(directory, segment_bytes=8192, checkpoint_every=50)
    for index in range(records):
        log.append_blocking("decision", decision(index))
    log.close_blocking()


def _starts(directory: Path) -> list[Path]:
    return sorted((directory / "segments").glob("*.start"))


def test_the_state_is_the_one_a_full_rebuild_finds(
    tmp_path: Path, open_log: Callable[..., AuditLog]
) -> None:
    directory = tmp_path / "audit"
    _signed_trail(open_log, directory)
    stored, _ = _read_checkpoint_file(directory)
    assert stored is not None and len(_starts(directory)) >= 4

    vouched = rebuild(directory, roots_at=[stored.size], workers=1)
    full = rebuild(directory, workers=1)  # no checkpoint to vouch: every leaf folded in

    assert (vouched.size, vouched.head) == (full.size, full.head)
    assert vouched.frontier.nodes == full.frontier.nodes
    assert vouched.roots[stored.size] == stored.root


def _rewrite_start(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    data = json.loads(path.read_bytes())
    change(data)
    path.write_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def _flip_a_frontier_node(data: dict[str, object]) -> None:
    nodes = data["frontier"]
    assert isinstance(nodes, list) and nodes
    nodes[0] = ("0" if nodes[0][0] != "0" else "1") + nodes[0][1:]


def _another_prev(data: dict[str, object]) -> None:
    data["prev"] = "ab" * 32


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        # The checkpoint does not vouch for the frontier: its root comes out different.
        (_flip_a_frontier_node, "root does not match"),
        # The .start does not continue the chain the segments before it end in.
        (_another_prev, "does not continue the segment before it"),
    ],
)
def test_a_newest_start_that_does_not_fit_refuses_to_start(
    tmp_path: Path,
    open_log: Callable[..., AuditLog],
    change: Callable[[dict[str, object]], None],
    refusal: str,
) -> None:
    directory = tmp_path / "audit"
    _signed_trail(open_log, directory)
    _rewrite_start(_starts(directory)[-1], change)

    with pytest.raises(AuditCorrupt, match=refusal):
        open_log(directory)


def test_without_the_newest_start_the_frontier_is_grown_from_further_back(
    tmp_path: Path, open_log: Callable[..., AuditLog]
) -> None:
    directory = tmp_path / "audit"
    _signed_trail(open_log, directory)
    full = rebuild(directory, workers=1)
    _starts(directory)[-1].unlink()

    log = open_log(directory)

    assert log.status()["seq"] >= full.size  # opened: its own records follow
    stored, _ = _read_checkpoint_file(directory)
    assert stored is not None
    assert rebuild(directory, roots_at=[stored.size], workers=1).roots[stored.size] == stored.root


def test_damage_in_an_older_segment_still_refuses_to_start(
    tmp_path: Path, open_log: Callable[..., AuditLog]
) -> None:
    directory = tmp_path / "audit"
    _signed_trail(open_log, directory)
    oldest = sorted((directory / "segments").glob("*.jsonl"))[0]
    data = bytearray(oldest.read_bytes())
    # One character of the first record's path: the second record's prev is then wrong.
    data[data.index(b'"path":"') + 9] ^= 1
    oldest.write_bytes(bytes(data))

    with pytest.raises(AuditCorrupt, match="prev is not the hash of the record before it"):
        open_log(directory)
