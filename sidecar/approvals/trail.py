"""Read the ``approval`` records back from the trail, to rebuild approvals at start.

Pending approvals survive a restart because the trail is their only store: this reads
``DIR/segments/*.jsonl`` (CONTRACT section 4) in seq order and yields the top-level
records of type ``approval``. Approval records are rare, so each line is screened for
the bytes ``"type":"approval"`` (canonical JSON has no whitespace) before it is parsed,
a block of the segment at a time (``iter_lines_holding``), so that a long trail of
other records is read at about the disk's speed;
the screen can only let through too much (the same bytes inside a nested object), and
the parsed record's own ``type`` decides. The trail's integrity is checked by
``AuditLog.open`` before this runs; a line that does not parse here is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sidecar.audit.segments import SEGMENTS_DIR, iter_lines_holding, list_segments

RECORD_TYPE = "approval"
_SCREEN = b'"type":"approval"'


def approval_records(directory: str | Path) -> Iterator[dict[str, Any]]:
    """Every ``approval`` record under the audit ``directory``, in trail order."""
    path = Path(directory)
    if not (path / SEGMENTS_DIR).is_dir():
        return
    for segment in list_segments(path):
        for line in iter_lines_holding(segment.path, _SCREEN):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("type") == RECORD_TYPE:
                yield record
