"""The redaction tests' linear-time check itself: it passes linear work and fails
quadratic work, whatever the machine's speed (tests/audit/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import assert_redacted_in_linear_time


def _scan_from_every_unit(self: Redactor, body: dict[str, Any]) -> dict[str, Any]:
    # The bug the check is for: a search from every repetition to the end of the text.
    # From every 8th character: with every 16th the quadratic growth (about 10x for 4x
    # the text, the constant work counted) cleared the check's 8x by a few milliseconds,
    # and a busy machine made this test fail.
    text = body["v"]
    for start in range(0, len(text), 8):
        text[start:].upper()
    return body


def _scan_once(self: Redactor, body: dict[str, Any]) -> dict[str, Any]:
    text = body["v"]
    for _ in range(1500):
        text.upper()
    return body


def test_quadratic_redaction_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Redactor, "redact", _scan_from_every_unit)
    with pytest.raises(AssertionError, match="grows"):
        assert_redacted_in_linear_time(["password x "])


def test_linear_redaction_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Redactor, "redact", _scan_once)
    assert_redacted_in_linear_time(["password x "])
