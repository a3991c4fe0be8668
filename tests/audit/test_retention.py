"""Retention: closed segments can be shipped off and deleted; the trail goes on."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.export import export
from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import Frontier, leaf_hash
from sidecar.audit.note import Signer
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision, segment_lines

OpenLog = Callable[..., AuditLog]


def _rotated_trail(open_log: OpenLog, count: int = 80) -> Path:
    log = open_log(segment_bytes=4096, checkpoint_every=9)
    for i in range(count):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return log.directory


def _segments(directory: Path) -> list[Path]:
    return sorted((directory / "segments").glob("*.jsonl"))


def _prune(directory: Path, keep: int) -> int:
    """Delete all but the newest ``keep`` segments (and their .start files)."""
    doomed = _segments(directory)[:-keep]
    for path in doomed:
        path.unlink()
        path.with_suffix(".start").unlink(missing_ok=True)
    return int(_segments(directory)[0].stem)


def test_every_later_segment_has_a_start_file_matching_the_records_before_it(
    open_log: OpenLog,
) -> None:
    directory = _rotated_trail(open_log)
    lines = segment_lines(directory)
    segments = _segments(directory)
    assert not segments[0].with_suffix(".start").exists()
    for path in segments[1:]:
        start = json.loads(path.with_suffix(".start").read_bytes())
        first = int(path.stem)
        frontier = Frontier()
        for line in lines[:first]:
            frontier.append(leaf_hash(line))
        assert start == {
            "seq": first,
            "prev": leaf_hash(lines[first - 1]).hex(),
            "frontier": [node.hex() for node in frontier.nodes],
        }


def test_pruned_trail_keeps_running_and_verifying(
    open_log: OpenLog, signer: Signer, tmp_path: Path
) -> None:
    directory = _rotated_trail(open_log)
    first = _prune(directory, keep=2)
    assert first > 0
    log = open_log(segment_bytes=4096, checkpoint_every=9)
    assert log.status()["seq"] > first
    log.append_blocking("startup", {})  # a run's first record, as the gate's
    for i in range(30):
        log.append_blocking("decision", decision(100 + i))
    log.close_blocking()
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert report.intact, report.summary()
    assert report.first_seq == first and report.checkpoints > 0
    assert any("pruned" in warning for warning in report.warnings)
    rows = [json.loads(r) for r in _export(directory).splitlines()]
    assert rows[0]["seq"] == first


def _export(directory: Path) -> bytes:
    out = io.BytesIO()
    export(directory, "jsonl", out)
    return out.getvalue()


def test_a_forged_start_file_is_caught(open_log: OpenLog, signer: Signer) -> None:
    directory = _rotated_trail(open_log)
    segments = _segments(directory)
    start_file = segments[2].with_suffix(".start")
    start = json.loads(start_file.read_bytes())
    start["frontier"][0] = "00" * 32
    start_file.write_text(json.dumps(start))
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert not report.intact and "does not match the records before it" in report.summary()
    # Once the segments before it are gone, the signed roots after it expose it.
    _prune(directory, keep=len(segments) - 2)
    report = verify_trail(directory, public_keys=[signer.public_key])
    assert not report.intact and "root does not match" in report.summary()


def test_a_missing_start_file_is_warned_of_before_any_pruning(open_log: OpenLog) -> None:
    # Found by the red-team review of 2026-12-07: a later segment's .start removed passed
    # verify in silence, and showed only as a gate that would not start after a routine
    # prune (the test below).
    directory = _rotated_trail(open_log)
    assert not any("is missing" in warning for warning in verify_trail(directory).warnings)
    missing = _segments(directory)[2].with_suffix(".start")
    missing.unlink()
    report = verify_trail(directory)
    assert report.intact
    assert (
        f"{missing.name} is missing: the segments before it cannot be pruned "
        "(the gate would refuse to start on what is left)"
    ) in report.warnings


def test_pruning_without_the_start_file_refuses_to_start(open_log: OpenLog) -> None:
    directory = _rotated_trail(open_log)
    _prune(directory, keep=2)
    _segments(directory)[0].with_suffix(".start").unlink()
    with pytest.raises(AuditCorrupt, match=r"no \S+\.start"):
        open_log(segment_bytes=4096)
    assert not verify_trail(directory).intact
