"""Reading the lines of a segment that hold some bytes (``iter_lines_holding``).

The approvals replay screens every segment for its records this way at start; it must
find exactly the lines that a line-by-line filter finds, wherever the read blocks cut.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.approvals.trail import approval_records
from sidecar.audit.segments import iter_line_blocks, iter_lines_holding

NEEDLE = b'"type":"approval"'
# Pieces that make lines holding the needle, near misses, and lines split anywhere.
_PIECES = st.sampled_from(
    [NEEDLE, b'"type":"approva', b'l"', b'"type"', b"x", b"{}", b"\n", b"\n\n", b"approval"]
)


def _filtered(path: Path, needle: bytes) -> list[bytes]:
    return [line for lines in iter_line_blocks(path) for line in lines if needle in line]


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40), block_size=st.integers(1, 160))
def test_the_same_lines_as_a_line_by_line_filter(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[bytes], block_size: int
) -> None:
    path = tmp_path_factory.mktemp("segment") / "00000000000000000000.jsonl"
    path.write_bytes(b"".join(pieces))

    found = list(iter_lines_holding(path, NEEDLE, block_size=block_size))

    assert found == _filtered(path, NEEDLE)


def test_a_line_across_blocks_and_an_unfinished_last_line(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    lines = [b'{"a":1}', b'{"seq":1,' + NEEDLE + b',"z":2}', b"{}", NEEDLE + b"," + NEEDLE]
    data = b"\n".join(lines) + b"\n" + NEEDLE  # the last line is torn
    path.write_bytes(data)

    # Every cut: a hit at the start, in the middle or at the end of a block, or across.
    for block_size in range(1, len(data) + 2):
        found = list(iter_lines_holding(path, NEEDLE, block_size=block_size))
        assert found == [lines[1], lines[3]], block_size


@pytest.mark.parametrize("needle", [b"", b"a\nb"])
def test_a_needle_that_cannot_screen_lines_is_refused(tmp_path: Path, needle: bytes) -> None:
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b"{}\n")
    with pytest.raises(ValueError):
        list(iter_lines_holding(path, needle))


def test_approval_records_are_found_among_many_others(tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    segments.mkdir()
    other = b'{"seq":0,"type":"decision","request":{"note":"type approval"}}\n'
    approval = b'{"approvalId":"a1","seq":1,"type":"approval"}\n'
    nested = b'{"request":{"type":"approval"},"seq":2,"type":"decision"}\n'
    (segments / "00000000000000000000.jsonl").write_bytes(
        other * 200_000 + approval + nested + other * 3 + approval.replace(b"a1", b"a2")
    )

    records = list(approval_records(tmp_path))

    # The nested bytes pass the screen; the record's own type turns them away.
    assert [record["approvalId"] for record in records] == ["a1", "a2"]
