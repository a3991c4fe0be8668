"""What someone who can write the audit volume may put there to stall or crash its
readers, instead of being reported: a FIFO, a link to ``/dev/zero`` or nowhere in the
place of ``DIR/checkpoint`` or a segment, a tree size of thousands of digits, a record
nested thousands deep. Found by a red-team review of 2026-12-06 (eighteenth session):
verify, export and prove hung on a FIFO, read ``/dev/zero`` until memory ran out, and
ended in tracebacks or a usage error (exit 2) where the trail is tampered (exit 1).

Each case runs the real CLI in a child process with a time limit, on a real signed
trail; the gate's own start is checked too, which must refuse such a trail, not hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from tests.audit.conftest import decision

OpenLog = Callable[..., AuditLog]
TIME_LIMIT_S = 30  # a hang fails the test instead of the run


@pytest.fixture
def trail(open_log: OpenLog, tmp_path: Path) -> Path:
    log = open_log(tmp_path / "trail", segment_bytes=4000, checkpoint_every=9)
    for i in range(30):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return tmp_path / "trail"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
        check=False,
    )


def _newest_segment(directory: Path) -> Path:
    return sorted((directory / "segments").glob("*.jsonl"))[-1]


def _next_segment_name(directory: Path) -> Path:
    lines = sum(len(p.read_bytes().splitlines()) for p in (directory / "segments").glob("*.jsonl"))
    return directory / "segments" / f"{lines:020d}.jsonl"


def _replace_checkpoint_with_fifo(directory: Path) -> None:
    (directory / "checkpoint").unlink()
    os.mkfifo(directory / "checkpoint")


def _replace_checkpoint_with_dev_zero(directory: Path) -> None:
    (directory / "checkpoint").unlink()
    (directory / "checkpoint").symlink_to("/dev/zero")


def _checkpoint_of_endless_size(directory: Path) -> None:
    path = directory / "checkpoint"
    text, _, signatures = path.read_text().partition("\n\n")
    origin, _size, root = text.split("\n")[:3]
    path.write_text(f"{origin}\n{'9' * 5000}\n{root}\n\n{signatures}")


def _fifo_segment(directory: Path) -> None:
    os.mkfifo(_next_segment_name(directory))


def _dangling_segment(directory: Path) -> None:
    _next_segment_name(directory).symlink_to(directory / "nowhere")


def _segment_linked_to_dev_zero(directory: Path) -> None:
    _next_segment_name(directory).symlink_to("/dev/zero")


def _deeply_nested_record(directory: Path) -> None:
    segment = _newest_segment(directory)
    last = segment.read_bytes().split(b"\n")[-2]
    previous = json.loads(last)
    prev = hashlib.sha256(b"\x00" + last).hexdigest()
    nested = b"[" * 5000 + b"]" * 5000
    line = b'{"prev":"%s","r":%s,"seq":%d,"ts":"2026-12-06T21:14:10.000000Z","type":"decision"}' % (
        prev.encode(),
        nested,
        previous["seq"] + 1,
    )
    with segment.open("ab") as handle:
        handle.write(line + b"\n")


HOSTILE = {
    "checkpoint-fifo": (_replace_checkpoint_with_fifo, "checkpoint is not a regular file"),
    "checkpoint-dev-zero": (_replace_checkpoint_with_dev_zero, "checkpoint is not a regular file"),
    "checkpoint-size-5000-digits": (_checkpoint_of_endless_size, "at most 20 digits"),
    "segment-fifo": (_fifo_segment, "is not a regular file"),
    "segment-dangling-link": (_dangling_segment, "is not a regular file"),
    "segment-link-to-dev-zero": (_segment_linked_to_dev_zero, "is not a regular file"),
    "record-nested-5000-deep": (_deeply_nested_record, "not canonical JSON"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_verify_reports_the_trail_tampered_without_hanging_or_crashing(
    trail: Path, case: str
) -> None:
    change, said = HOSTILE[case]
    change(trail)
    result = _cli("audit", "verify", str(trail))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("tampered:") and said in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "case",
    [
        "segment-fifo",
        "segment-dangling-link",
        "segment-link-to-dev-zero",
        "record-nested-5000-deep",
    ],
)
def test_export_stops_with_exit_1_without_hanging_or_crashing(trail: Path, case: str) -> None:
    change, _ = HOSTILE[case]
    change(trail)
    for fmt in ("jsonl", "csv", "ocsf"):
        result = _cli("audit", "export", str(trail), "--format", fmt)
        assert result.returncode == 1, (fmt, result.stderr)
        assert "Traceback" not in result.stderr and "tollgate: " in result.stderr


@pytest.mark.parametrize("case", ["checkpoint-fifo", "checkpoint-dev-zero", "segment-fifo"])
def test_prove_stops_with_exit_1_without_hanging(trail: Path, case: str) -> None:
    change, _ = HOSTILE[case]
    change(trail)
    result = _cli("audit", "prove", str(trail), "--old", "1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", ["checkpoint-fifo", "segment-fifo", "segment-dangling-link"])
def test_a_gate_refuses_to_start_on_such_a_trail(trail: Path, case: str) -> None:
    change, _ = HOSTILE[case]
    change(trail)
    # In a child process: a gate that hangs on the FIFO must fail the test, not stall it.
    opening = (
        "import sys\n"
        "from sidecar.audit.log import AuditLog\n"
        "from sidecar.errors import AuditCorrupt\n"
        "try:\n"
        "    AuditLog.open(sys.argv[1], identity='apps/agent-1', sync_helper=False)\n"
        "except AuditCorrupt as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", opening, str(trail)],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "not a regular file" in result.stdout
