"""The precise redaction patterns compile on first use, not at import (start-up time),
so a pattern that does not compile would show only when a record first needs it: every
one is compiled here."""

from __future__ import annotations

import subprocess
import sys

from sidecar.audit import redact


def test_every_precise_pattern_compiles() -> None:
    with_values = sum(secret.has_values for secret in redact._PATTERNS)
    assert redact.compile_all() == len(redact._PATTERNS) + with_values
    assert all(secret.regex.pattern for secret in redact._PATTERNS)


def test_starting_the_daemon_compiles_none_of_them() -> None:
    probe = (
        "import sidecar.server, sidecar.cli, sidecar.app\n"
        "from sidecar.audit import redact\n"
        "print(sum(secret._regex is not None for secret in redact._PATTERNS))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "0"


def test_a_pattern_compiled_on_first_use_redacts() -> None:
    redactor = redact.Redactor(b"k" * 32)
    text = "mysql -u root -pS3cretPw db"
    assert "S3cretPw" not in redactor.redact_text(text)
