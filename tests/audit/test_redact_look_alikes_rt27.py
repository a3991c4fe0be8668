"""Ordinary commands and records a review found over-redacted or sent down redaction's
slow path by the forms added for programs' own secrets and vendors' tokens: a directory
named ``http`` made the next ``-a…`` option "HTTPie's auth" (``find /srv/http -atime
-1`` recorded ``-a[REDACTED…]``). What a user ran stays readable; the secrets the forms
were added for are still tagged.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    assert_argv_redacted_in_linear_time,
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
)
from tests.in_process import check_in_process, trail_records

KEY = b"k" * 32
IDENTITY = "agent-1"
ALLOW_ALL = """\
version: 1
defaultAction: deny
rules:
  - {id: any-exec, action: process.exec, decision: allow}
  - {id: any-read, action: file.read, decision: allow}
"""


def recorded_requests(tmp_path: Path, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request of each decision record a real gate writes for ``bodies``, read back
    from its trail."""
    records = trail_records(check_in_process(tmp_path, ALLOW_ALL, bodies, IDENTITY))
    return [record["request"] for record in records if record.get("type") == "decision"]


# A directory named http (Arch's web root, Go packages), "http" in a message or a grep
# pattern: none runs HTTPie, and find's -atime, -amin, -and or ls -alh is no password.
HTTP_LOOK_ALIKES = [
    "find /srv/http -type f -atime -1",
    "ls /srv/http -alh",
    'find ./internal/http -name "*.go" -and -newer go.mod',
    "find /srv/http -amin -5",
    "git commit -m 'docs: explain http -a usage'",
    "grep -rn 'http -a' docs/",
    "go test ./pkg/http -a -v",
]


@pytest.mark.parametrize("line", HTTP_LOOK_ALIKES)
def test_a_path_or_word_named_http_is_not_httpie(line: str) -> None:
    redactor = Redactor(KEY)
    assert redactor.redact({"commandLine": line})["commandLine"] == line
    argv = shlex.split(line)
    assert redactor.redact({"argv": argv})["argv"] == argv


def test_a_path_named_http_is_recorded_as_run_by_a_real_gate(tmp_path: Path) -> None:
    bodies: list[dict[str, Any]] = []
    for line in HTTP_LOOK_ALIKES:
        bodies.append({"action": "process.exec", "commandLine": line, "cwd": "/app"})
        bodies.append({"action": "process.exec", "argv": shlex.split(line), "cwd": "/app"})
    requests = recorded_requests(tmp_path, bodies)
    assert len(requests) == len(bodies)
    for body, request in zip(bodies, requests, strict=True):
        for field in ("commandLine", "argv"):
            if field in body:
                assert request[field] == body[field]


# HTTPie run where a command runs a program: the start of a command, after wrappers and
# their options, as a script's first word, or by a path in a bin directory.
HTTPIE_RUN = [
    ("sudo -u bob http -a bob:R1a h", "bob:R1a"),
    ("sudo -E http -a R1b h", "R1b"),
    ("env X=1 /usr/local/bin/https -abob:R1c h", "bob:R1c"),
    ("make; http -a bob:R1d h", "bob:R1d"),
    ("ls && http -A bearer -a R1e h", "R1e"),
    ("sh -c 'http -a bob:R1f h'", "bob:R1f"),
    ("python3 -m httpie -a bob:R1g h", "bob:R1g"),
    ("timeout 10 http -a=R1h h", "R1h"),
    ("xargs -I {} http -a bob:R1i {}", "bob:R1i"),
    ("X_TRACE=1 ./venv/bin/http POST h -a bob:R1j", "bob:R1j"),
]


@pytest.mark.parametrize(("line", "secret"), HTTPIE_RUN)
def test_httpies_auth_is_tagged_where_a_command_runs_it(line: str, secret: str) -> None:
    assert_tagged_in_place(line, [secret], "secret")


@pytest.mark.parametrize(
    ("argv", "index", "kept", "secret"),
    [
        (["sudo", "-u", "bob", "http", "-a", "bob:R2a", "h"], 5, "", "bob:R2a"),
        (["env", "X=1", "/usr/bin/http", "-aR2b", "h"], 3, "-a", "R2b"),
        (["python3", "-m", "httpie", "-a=R2c", "h"], 3, "-a=", "R2c"),
        (["timeout", "10s", "https", "h", "-a", "R2d"], 5, "", "R2d"),
    ],
)
def test_httpies_auth_is_tagged_in_a_list_that_runs_it(
    argv: list[str], index: int, kept: str, secret: str
) -> None:
    redactor = Redactor(KEY)
    expected = list(argv)
    expected[index] = kept + redactor.tag("secret", secret)
    assert redactor.redact({"argv": argv})["argv"] == expected


def test_httpies_start_is_read_in_linear_time() -> None:
    # A secret of HTTPie's at the end, so that the screen lets the pattern run.
    assert_redacted_in_linear_time(
        [
            *("doas -u bob ", "env X=1 ", "-u http ", "-E ", "timeout 10 ", "env a/b/c/ "),
            *(";http -a ", "'http -a", "/srv/http -a ", "bin/http -ab:", "env -u '"),
            # Quotes start a command: a prefix read across them would be read again.
            *("-x' ", "X='", "X='a'", "X=\"'(", "-u (", 'X="(env '),
        ],
        tail="\nhttp -a x:y",
    )
    assert_argv_redacted_in_linear_time(
        [["doas", "-u", "bob"], ["env", "X=1"], ["/srv/http", "-atime"], ["env", "http"]]
    )


def test_httpies_screen_is_linear() -> None:
    # Each repeated once HTTPie's word opened the trigger's reading of its string or list.
    assert_redacted_in_linear_time(["http -v ", "http ", " -a", '-a"', "http '"], tail=" -a x")
    assert_argv_redacted_in_linear_time([["http", "-v"], ["http"], ["x", "-a"], ["https", "-a"]])


@pytest.mark.parametrize(
    ("line", "cookie"),
    [
        ("curl -sb sid=R3a h", "sid=R3a"),
        ("curl -sSb sid=R3b h", "sid=R3b"),
        ("curl -kLbsid=R3c h", "sid=R3c"),
        ("curl -#b sid=R3d h", "sid=R3d"),
    ],
)
def test_curls_cookie_after_its_flags_is_still_tagged(line: str, cookie: str) -> None:
    assert_tagged_in_place(line, [cookie], "cookie")


def test_curls_cookie_cluster_screen_is_linear() -> None:
    assert_redacted_in_linear_time(["-sSkLb ", "-debug ", "-Ddb ", "-sb x"], tail="=1")


def test_vendor_prefixes_screen_is_linear() -> None:
    units = ["ntn_", "a/ntn_", "ya29." + "a" * 19 + " ", "sntrys_+/=", "\nrubygems_" + "0" * 19]
    assert_redacted_in_linear_time(units, tail=" password=x")
