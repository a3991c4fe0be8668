"""The benchmark's requests, recorded by a real gate, pass the redaction screen: none of
them holds a secret, so none may take redaction's slow path. A screen trigger that
matched every network record's ``"scheme":"https"`` cost the gate a fifth of its
throughput before a benchmark run caught it (docs/performance-history.md, the
twenty-seventh session); this catches the next one before it lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.policies import IDENTITY, policy_yaml, request_mix
from sidecar.audit import redact
from tests.in_process import check_in_process


def screened_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str | bytes, bodies: list[dict]
) -> list[tuple[bytes, bool]]:
    """Every record a real gate writes for ``bodies`` under ``policy``, with whether the
    redaction screen flagged it."""
    seen: list[tuple[bytes, bool]] = []
    screen = redact.Redactor.may_hold_secret

    def watched(encoded: bytes) -> bool:
        held = screen(encoded)
        seen.append((encoded, held))
        return held

    monkeypatch.setattr(redact.Redactor, "may_hold_secret", staticmethod(watched))
    check_in_process(tmp_path, policy, bodies, IDENTITY)
    return seen


def decisions_of(seen: list[tuple[bytes, bool]]) -> list[bytes]:
    return [encoded for encoded, _ in seen if b'"type":"decision"' in encoded]


def test_no_record_of_the_benchmark_mix_is_flagged_by_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = request_mix(1_000)
    seen = screened_records(tmp_path, monkeypatch, policy_yaml(1_000), bodies)
    assert len(decisions_of(seen)) == len(bodies)  # the screen saw every decision's record
    assert [encoded for encoded, held in seen if held] == []


# Ordinary requests a review found sent down the slow path by the screen's triggers: the
# word http in prose or a path, a list item https not followed by HTTPie's -a, a
# single-dash option such as Go's -debug=true, a vendor's token prefix in a name.
ORDINARY = [
    ("file.read", {"path": "/work/src/main.py", "context": {"task": "fix the http client"}}),
    ("file.read", {"path": "/work/src/main.py", "context": {"task": "Investigate HTTP 500"}}),
    ("file.read", {"path": "/work/src/http"}),
    ("process.exec", {"commandLine": "git commit -m 'switch to https by default'"}),
    ("process.exec", {"commandLine": "go doc net/http Client"}),
    ("process.exec", {"argv": ["git", "commit", "-m", "fix http client"]}),
    ("process.exec", {"argv": ["grep", "-rn", "https", "src/"]}),
    ("process.exec", {"argv": ["python", "-c", "from http import HTTPStatus"]}),
    ("process.exec", {"argv": ["go", "test", "./pkg/http", "./pkg/api"]}),
    ("process.exec", {"argv": ["go", "test", "./pkg/http", "-run", "TestX"]}),
    ("process.exec", {"argv": ["git", "add", "src/http", "src/api"]}),
    ("process.exec", {"argv": ["ls", "-la", "lib/http", "lib/https"]}),
    ("process.exec", {"argv": ["echo", "https", "http"]}),
    # Single-dash options with a 'b' and a value: not curl's -sb cluster.
    ("process.exec", {"argv": ["go", "run", ".", "-debug=true"]}),
    ("process.exec", {"commandLine": "./server -verbose=true"}),
    ("process.exec", {"argv": ["java", "-Ddb.url=jdbc:h2:mem", "-jar", "app.jar"]}),
    ("process.exec", {"argv": ["npm", "run", "dev", "--", "-web.port=3000"]}),
    # Identifiers that start like a vendor's token but cannot be one.
    ("file.read", {"path": "/work/gem/lib/rubygems_plugin.rb"}),
    ("process.exec", {"argv": ["grep", "-n", "required_rubygems_version", "app.gemspec"]}),
    ("process.exec", {"commandLine": "grep -rn gsk_renderer_new gsk/"}),
    ("file.read", {"path": "/work/app/build/outputs/mapping/r8_mapping.txt"}),
    ("file.read", {"path": "/work/node_modules/ya29.js"}),
]
ORDINARY_POLICY = """\
version: 1
defaultAction: deny
rules:
  - {id: reads, action: file.read, decision: allow, reason: plain http is not allowed}
  - {id: runs, action: process.exec, decision: allow, reason: only https to approved hosts}
"""


@pytest.mark.parametrize(("action", "fields"), ORDINARY)
def test_an_ordinary_record_is_not_flagged_by_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str, fields: dict[str, object]
) -> None:
    body = {"action": action, "cwd": "/work", **fields}
    seen = screened_records(tmp_path, monkeypatch, ORDINARY_POLICY, [body])
    assert decisions_of(seen)  # the screen saw the decision's record, with the rule's reason
    assert [encoded for encoded, held in seen if held] == []
