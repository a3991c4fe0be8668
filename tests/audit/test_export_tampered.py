"""``tollgate audit export`` of a trail whose chain is broken stops and says where.

An export is what reaches a SIEM or an auditor's spreadsheet; a trail with a record
changed, removed or put out of order must not be exported as if it were whole. Export
checks what it can see line by line (each record's ``seq`` follows the one before and
its ``prev`` is that record's leaf hash) and exits 1 naming the segment and line, after
the rows before the break. The tests run the real CLI on real trails.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.export import export
from sidecar.audit.log import AuditLog
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision

OpenLog = Callable[..., AuditLog]
FORMATS = ("jsonl", "csv", "ocsf")


def _cli_export(directory: Path, fmt: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "export", str(directory), "--format", fmt],
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def trail(open_log: OpenLog, tmp_path: Path) -> Path:
    log = open_log(tmp_path / "trail", segment_bytes=4000, checkpoint_every=9)
    for i in range(40):
        log.append_blocking("decision", decision(i, decision="deny", allowed=False))
    log.close_blocking()
    return tmp_path / "trail"


def _segments(directory: Path) -> list[Path]:
    return sorted((directory / "segments").glob("*.jsonl"))


def _rewrite_line(segment: Path, index: int, change: Callable[[bytes], bytes | None]) -> None:
    lines = segment.read_bytes().split(b"\n")[:-1]
    new = change(lines[index])
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    segment.write_bytes(b"".join(line + b"\n" for line in lines))


def _flip_decision(line: bytes) -> bytes:
    # What someone hiding a denial would do: the record stays valid canonical JSON.
    record = json.loads(line)
    assert record["type"] == "decision"
    return line.replace(b'"allowed":false', b'"allowed":true').replace(
        b'"decision":"deny"', b'"decision":"allow"'
    )


def test_an_intact_trail_exports_in_every_format(trail: Path) -> None:
    for fmt in FORMATS:
        result = _cli_export(trail, fmt)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_changed_record_stops_the_export_at_the_next_line(trail: Path, fmt: str) -> None:
    segment = _segments(trail)[1]
    _rewrite_line(segment, 2, _flip_decision)
    result = _cli_export(trail, fmt)
    assert result.returncode == 1
    message = result.stderr.decode()
    assert f"segments/{segment.name} line 4" in message, message
    assert "prev is not the hash of the record before it" in message
    assert "tollgate audit verify" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_removed_record_stops_the_export(trail: Path, fmt: str) -> None:
    segment = _segments(trail)[1]
    _rewrite_line(segment, 2, lambda line: None)
    result = _cli_export(trail, fmt)
    assert result.returncode == 1
    message = result.stderr.decode()
    assert f"segments/{segment.name} line 3" in message, message
    assert "missing or reordered" in message


def test_a_removed_segment_stops_the_export(trail: Path) -> None:
    removed = _segments(trail)[1]
    removed.unlink()
    removed.with_suffix(".start").unlink()
    result = _cli_export(trail, "jsonl")
    assert result.returncode == 1
    message = result.stderr.decode()
    after = _segments(trail)[1]
    assert f"segments/{after.name}" in message and "records are missing" in message, message
    # The rows before the gap were written, and nothing after it.
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert [row["seq"] for row in rows] == list(range(len(rows)))
    assert rows[-1]["seq"] == int(removed.stem) - 1


def test_a_pruned_trail_exports_from_the_oldest_segment_left(trail: Path) -> None:
    for segment in _segments(trail)[:2]:
        segment.unlink()
        segment.with_suffix(".start").unlink(missing_ok=True)
    result = _cli_export(trail, "jsonl")
    assert result.returncode == 0, result.stderr


def test_breaks_between_chunks_are_found_by_parallel_workers_too(
    open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidecar.audit import export as export_module

    monkeypatch.setattr(export_module, "EXPORT_CHUNK_BYTES", 2500)
    log = open_log(tmp_path / "big", segment_bytes=16_000, checkpoint_every=17)
    for i in range(120):
        log.append_blocking("decision", decision(i, decision="deny", allowed=False))
    log.close_blocking()
    directory = tmp_path / "big"
    segment = _segments(directory)[1]
    lines = segment.read_bytes().split(b"\n")[:-1]
    # Remove every line that may start a chunk in turn; the break is found either way.
    for index in (4, 5, 6):
        kept = lines[:index] + lines[index + 1 :]
        segment.write_bytes(b"".join(line + b"\n" for line in kept))
        for workers in (1, 2):
            with pytest.raises(AuditCorrupt, match=f"{segment.name} line {index + 1}"):
                export(directory, "jsonl", io.BytesIO(), workers=workers)
