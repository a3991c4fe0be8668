"""Fixtures for the audit trail tests: keys, opened logs, reading segments back."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.audit.redact import _PATTERNS, Redactor
from sidecar.canonical import canonical_bytes


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


@pytest.fixture
def open_log(tmp_path: Path, signer: Signer) -> Iterator[Callable[..., AuditLog]]:
    """Open logs (default: signed, in tmp_path/audit); any left open are closed after."""
    opened: list[AuditLog] = []

    def open_(directory: Path | None = None, **options: Any) -> AuditLog:
        options.setdefault("identity", "apps/agent-1")
        options.setdefault("signer", signer)
        log = AuditLog.open(directory or tmp_path / "audit", **options)
        opened.append(log)
        return log

    yield open_
    for log in opened:
        if not log._closed and log._loop is None:
            log.close_blocking()


def segment_lines(directory: Path) -> list[bytes]:
    """Every line of every segment, in order, without the newlines."""
    lines: list[bytes] = []
    for path in sorted((directory / "segments").glob("*.jsonl")):
        data = path.read_bytes()
        lines.extend(data.split(b"\n")[:-1])
    return lines


def records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in segment_lines(directory)]


def decision(index: int, **extra: Any) -> dict[str, Any]:
    """A decision body shaped like the ones the gate writes."""
    body: dict[str, Any] = {
        "decisionId": f"01JTEST{index:019d}",
        "action": "file.read",
        "request": {"action": "file.read", "path": f"/app/data/{index}.csv"},
        "decision": "allow",
        "allowed": True,
        "rule": "read-app-data",
        "reason": "allowed by rule read-app-data",
        "risk": None,
        "mode": "enforce",
        "policy": "sha256:" + "ab" * 32,
        "identity": "apps/agent-1",
    }
    body.update(extra)
    return body


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount size-limited tmpfs file systems (needs root); skip where mounting fails."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill_volume(mount: Path) -> Path:
    """Fill the file system at ``mount`` until it refuses a page; the filler file."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


# A record is redacted on the event loop: a pattern tried from every repetition of a
# unit, scanning to the end of the text each time, would take seconds on 60 KB.
LINEAR_TIME_CHARACTERS = 60_000
LINEAR_TIME_BOUND_S = 0.5
# Four times the text takes about four times as long when redaction is linear, sixteen
# times when it is quadratic. The slack absorbs the timer's noise on texts redacted in
# a few milliseconds, which no quadratic term that small could stall the loop with.
LINEAR_GROWTH_BOUND = 8.0
LINEAR_GROWTH_SLACK_S = 0.01


def seconds_to_redact(redactor: Redactor, value: object, runs: int = 2) -> float:
    """The best of ``runs`` timings of ``redactor.redact({"v": value})``."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        redactor.redact({"v": value})
        best = min(best, time.perf_counter() - started)
    return best


def assert_redacted_in_linear_time(units: Sequence[str], tail: str = "") -> None:
    """Each unit repeated to about 60 KB (then ``tail``) takes at most
    ``LINEAR_GROWTH_BOUND`` times as long to redact as the unit repeated to a quarter of
    that: a ratio of two timings taken in the same moment, which a slow or busy machine
    does not change (an absolute bound of 0.5 s failed one CI run at 0.51 s)."""
    redactor = Redactor(b"k" * 32)
    for unit in units:
        quarter = unit * (LINEAR_TIME_CHARACTERS // 4 // len(unit)) + tail
        whole = unit * (LINEAR_TIME_CHARACTERS // len(unit)) + tail
        small = seconds_to_redact(redactor, quarter)
        large = seconds_to_redact(redactor, whole)
        assert large <= LINEAR_GROWTH_BOUND * small + LINEAR_GROWTH_SLACK_S, (
            f"{large:.3f}s for {len(whole)} characters of {unit!r}, "
            f"{small:.3f}s for {len(quarter)}: grows {large / max(small, 1e-9):.1f}x for 4x"
        )


# About the most items a request's argv may hold (4096); a longer one is refused, and
# its record redacted all the same.
LINEAR_TIME_ITEMS = 4000


def assert_argv_redacted_in_linear_time(units: Sequence[Sequence[str]]) -> None:
    """Each list of items repeated to about ``LINEAR_TIME_ITEMS`` items takes at most
    ``LINEAR_GROWTH_BOUND`` times as long to redact as it repeated to a quarter of that
    (see ``assert_redacted_in_linear_time``)."""
    redactor = Redactor(b"k" * 32)
    for unit in units:
        quarter = list(unit) * (LINEAR_TIME_ITEMS // 4 // len(unit))
        whole = list(unit) * (LINEAR_TIME_ITEMS // len(unit))
        # Best of three: such a list redacts in milliseconds, near the timer's noise.
        small = seconds_to_redact(redactor, quarter, runs=3)
        large = seconds_to_redact(redactor, whole, runs=3)
        assert large <= LINEAR_GROWTH_BOUND * small + LINEAR_GROWTH_SLACK_S, (
            f"{large:.3f}s for {len(whole)} items of {unit!r}, "
            f"{small:.3f}s for {len(quarter)}: grows {large / max(small, 1e-9):.1f}x for 4x"
        )


def assert_tagged_in_place(text: str, secrets: Sequence[str], kind: str) -> None:
    """``text`` as a command line passes the screen and redacts to itself with each of
    ``secrets`` (first occurrence) replaced by its tag of ``kind``, and no more; the
    result redacts to itself again."""
    body = {"commandLine": text}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    redactor = Redactor(b"k" * 32)
    out = redactor.redact(body)["commandLine"]
    expected = text
    for secret in secrets:
        expected = expected.replace(secret, redactor.tag(kind, secret), 1)
    assert out == expected
    assert redactor.redact_text(out) == out


# What the property tests join the forms with, before and after.
ANY_SHORT_TEXT = st.text(max_size=20)


def idempotent_when_joined_test(
    forms: Sequence[str],
    filler: st.SearchStrategy[str] = ANY_SHORT_TEXT,
    examples: int = 300,
) -> Callable[..., None]:
    """A property test, bound to a ``test_*`` name by the module that uses it: one to three
    of ``forms`` joined between any ``filler`` redact idempotently
    (``assert_idempotent_when_joined``)."""

    @settings(max_examples=examples, deadline=None)
    @given(filler, st.lists(st.sampled_from(list(forms)), min_size=1, max_size=3), filler)
    def test(before: str, texts: list[str], after: str) -> None:
        assert_idempotent_when_joined(before, texts, after)

    return test


def assert_idempotent_when_joined(before: str, texts: Sequence[str], after: str) -> None:
    """``texts`` joined between ``before`` and ``after``, as a string and as a list,
    redact to a record that a second redaction leaves as it is."""
    redactor = Redactor(b"k" * 32)
    value = before + " ".join(texts) + after
    once = redactor.redact({"v": value, "argv": [before, *texts, after]})
    assert redactor.redact(once) == once
    assert redactor.redact_text(redactor.redact_text(value)) == redactor.redact_text(value)


def assert_screened_with_a_literal(value: str) -> None:
    """Wherever a precise pattern matches ``value``, the record passes the screen (a miss
    writes the secret in clear) and the text holds one of the pattern's literals
    (``_rewrite`` skips a pattern on a string without them)."""
    encoded = canonical_bytes({"v": value})
    for secret in _PATTERNS:
        if secret.regex.search(value):
            assert Redactor.may_hold_secret(encoded), secret.kind
            if not secret.named_program:
                assert any(literal in value.lower() for literal in secret.literals)
