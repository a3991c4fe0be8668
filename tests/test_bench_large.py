"""``bench.large`` sends what its rows name: bodies near the limits, each one answered (a
refused body would time the refusal, not the check), and leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

from bench import large
from sidecar.normalise.request import normalise_request
from sidecar.request import MAX_BODY_BYTES, parse_body


def test_each_large_body_is_a_valid_request_near_its_limit() -> None:
    for name, body in large.shapes().items():
        encoded = json.dumps(body).encode()
        assert len(encoded) <= MAX_BODY_BYTES, name
        parsed = parse_body(encoded)  # raises for a body the gate would refuse
        if "context" in body:
            assert len(json.dumps(body["context"])) > 15_000, name
        else:
            assert len(encoded) > 60_000, name
        if name.startswith("a script of 2,500"):
            normalised = normalise_request(parsed, "bench/agent")
            assert len(normalised.record["commands"]) == 2_500


def test_the_section_has_a_row_per_shape_and_leaves_nothing_behind(tmp_path: Path) -> None:
    section = large.run(rounds=1, audit_parent=str(tmp_path))
    assert [row[0] for row in section.rows[1:]] == list(large.shapes())
    assert section.rows[0][3] == "1x"
    for _name, size, median_ms, _ratio in section.rows[1:]:
        assert int(size.replace(",", "")) > 15_000 and float(median_ms.replace(",", "")) > 0
    assert list(tmp_path.iterdir()) == []
