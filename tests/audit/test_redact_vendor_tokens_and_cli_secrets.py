"""Secrets a review found recorded in clear, each after it passed a gate: vendors' token
formats standing alone (Sentry, Atlassian, Linear, Notion, Replicate, Groq, RubyGems, a
Google OAuth access token), and programs whose own options or positionals carry a
password or a token. Their look-alikes stay readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import Redactor
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import (
    assert_argv_redacted_in_linear_time,
    assert_redacted_in_linear_time,
    assert_screened_with_a_literal,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32
HEX16 = "0123456789abcdef"
ALNUM10 = "AbCdEf0123"

TOKENS = [
    (
        "sntrys_eyJpYXQiOjE3NTcwNzk1ODguNDY1OTk5LCJ1cmwiOiJodHRwczovL3NlbnRyeS5pbyIsIm9yZyI6"
        "Im1ldGEifQ==_dzsTS93bhBs1xGCZn31szgjhXa0utiGg6q4IOaJr29M",
        "api-key",
    ),
    ("sntryu_" + HEX16 * 4, "api-key"),
    (
        "ATATT3xFfGF0pogUFVOH0_AjBEA8LJcnOJx_Ki4yl_PYkv-LwEBQQp3r37KZYnKm8IGQ-KKXDxCl7qnz=1A2B3C4D",
        "api-key",
    ),
    ("lin_api_" + ALNUM10 * 4, "api-key"),
    ("ntn_12345678901" + ALNUM10 * 3 + "AbCdE", "api-key"),
    ("r8_" + ALNUM10 * 3 + "AbCdEfG", "api-key"),
    ("gsk_" + ALNUM10 * 5 + "Ab", "api-key"),
    ("rubygems_" + HEX16 * 3, "api-key"),
    ("ya29.a0AfH6SMBx3Lq9xYzAbCdEfGhIjKlMnOp-_q", "bearer-token"),
    ("ya29.c.b0Aaekm1KAbCdEfGhIjKlMnOp.qrs_tu", "bearer-token"),
]


@pytest.mark.parametrize(("token", "kind"), TOKENS)
@pytest.mark.parametrize(
    "carry",
    [
        "echo {} > ~/.token",
        "export SOME_SETTING={}",
        "cat <<EOF > .env\nX={}\nEOF",
        "curl -H 'X-Key: {}' https://h",
        "sentence ending in the token {}.",
    ],
)
def test_a_token_of_a_known_form_is_tagged_wherever_it_stands(
    token: str, kind: str, carry: str
) -> None:
    assert_tagged_in_place(carry.format(token), [token], kind)


@pytest.mark.parametrize(("token", "kind"), TOKENS)
def test_a_token_of_a_known_form_is_tagged_in_a_list_and_a_url(token: str, kind: str) -> None:
    redactor = Redactor(KEY)
    tag = redactor.tag(kind, token)
    out = redactor.redact(
        {"argv": ["tee", token], "url": f"https://h/x?k={token}", "context": {"v": [token]}}
    )
    assert out == {"argv": ["tee", tag], "url": f"https://h/x?k={tag}", "context": {"v": [tag]}}


def test_a_google_access_token_gets_one_tag_alone_and_after_bearer() -> None:
    token = "ya29.a0AfH6SMBx3Lq9xYzAbCdEfGhIjKlMnOp-_q"
    redactor = Redactor(KEY)
    out = redactor.redact({"a": token, "b": f"bearer {token}"})
    tag = redactor.tag("bearer-token", token)
    assert out == {"a": tag, "b": f"bearer {tag}"}


@pytest.mark.parametrize(
    "text",
    [
        "python -m sntrys_check; sntryu_ is a prefix",
        "ATATT3 is how an Atlassian token starts",
        "lin_api_v2 ntn_settings.json r8_model gsk_cfg",
        "gem push --key rubygems_api_key x.gem",
        "ya29.short and ya29. alone",
        "avar8_abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_look_alikes_of_the_new_token_forms_are_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


FORMS = [token for token, _ in TOKENS]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.sampled_from(FORMS), st.text(max_size=12))
def test_the_screens_and_literals_cover_the_new_forms(before: str, form: str, after: str) -> None:
    assert_screened_with_a_literal(before + form + after)


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(FORMS)


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            *("sntrys_", "sntryu_", "ATATT3", "lin_api_", "ntn_", "r8_", "gsk_", "rubygems_"),
            *("ya29.", "ya29.a", "ya29.a.", "ya29." + "a" * 19 + " "),
        ]
    )


# (command line, secret, kind): a program's own option or positional carrying a secret.
COMMANDS = [
    ("doctl auth init -t C1doctlA", "C1doctlA", "secret"),
    ("doctl -tC1doctlB compute droplet list", "C1doctlB", "secret"),
    ("doctl -t=C1doctlC apps list", "C1doctlC", "secret"),
    (
        "dotnet nuget push app.1.0.nupkg -k C1nugetA -s https://api.nuget.org/v3/index.json",
        "C1nugetA",
        "secret",
    ),
    ("dotnet nuget delete App 1.0 -k C1nugetB --non-interactive", "C1nugetB", "secret"),
    ("cqlsh -u cassandra -p C1cqlshA db.internal 9042", "C1cqlshA", "password"),
    ("lftp -u bob,C1lftpA ftp.example.com", "C1lftpA", "password"),
    ("lftp -c 'open -u bob,C1lftpB ftp.example.com; put f'", "C1lftpB", "password"),
    ("http -a bob:C1httpA https://api.example.com/me", "bob:C1httpA", "secret"),
    ("https -A bearer -a C1httpB api.example.com/me", "C1httpB", "secret"),
    ("http --verify=no -aC1httpC:x POST h", "C1httpC:x", "secret"),
    ("security add-generic-password -a bob -s svc -w C1keyA", "C1keyA", "password"),
    ("security add-internet-password -a bob -s h.example -wC1keyB -U", "C1keyB", "password"),
    ("curl -sb sid=C1ckA https://h", "sid=C1ckA", "cookie"),
    ("curl -sSb 'sid=C1ckB; lang=en' https://h", "sid=C1ckB; lang=en", "cookie"),
    ("curl -kLbsid=C1ckC https://h", "sid=C1ckC", "cookie"),
    ("cf -v auth bob C1cfA", "C1cfA", "password"),
    ("cf --help -v auth bob C1cfB --origin uaa", "C1cfB", "password"),
    ("FTP_PROXY=bob:C1ftpA@proxy:3128 lftp ftp.example.com", "C1ftpA", "password"),
    ("export ftp_proxy='bob:C1ftpB@proxy:3128'", "C1ftpB", "password"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), COMMANDS)
def test_a_programs_own_secret_is_tagged_on_a_command_line(
    text: str, secret: str, kind: str
) -> None:
    assert_tagged_in_place(text, [secret], kind)


@pytest.mark.parametrize(
    ("argv", "index", "kept", "secret", "kind"),
    [
        (["doctl", "auth", "init", "-t", "C2doctlA"], 4, "", "C2doctlA", "secret"),
        (["doctl", "-tC2doctlB", "account", "get"], 1, "-t", "C2doctlB", "secret"),
        (["doctl", "-t=C2doctlC", "account", "get"], 1, "-t=", "C2doctlC", "secret"),
        (
            ["dotnet", "nuget", "push", "a.nupkg", "-k", "C2nuget", "-s", "s"],
            5,
            "",
            "C2nuget",
            "secret",
        ),
        (["cqlsh", "-u", "u", "-p", "C2cqlsh", "h"], 4, "", "C2cqlsh", "password"),
        (["lftp", "-u", "bob,C2lftp", "h"], 2, "bob,", "C2lftp", "password"),
        (["http", "-a", "bob:C2http", "h"], 2, "", "bob:C2http", "secret"),
        (["/usr/bin/https", "-aC2httpB", "h"], 1, "-a", "C2httpB", "secret"),
        (
            ["security", "add-generic-password", "-a", "b", "-s", "s", "-w", "C2key"],
            7,
            "",
            "C2key",
            "password",
        ),
        (["curl", "-sb", "sid=C2ckA", "https://h"], 2, "", "sid=C2ckA", "cookie"),
        (["curl", "-sSbsid=C2ckB", "https://h"], 1, "-sSb", "sid=C2ckB", "cookie"),
        (["cf", "-v", "auth", "bob", "C2cf"], 4, "", "C2cf", "password"),
        (
            ["env", "FTP_PROXY=bob:C2ftp@proxy:3128", "lftp", "h"],
            1,
            "FTP_PROXY=bob:",
            "C2ftp",
            "password",
        ),
    ],
)
def test_a_programs_own_secret_is_tagged_in_a_list(
    argv: list[str], index: int, kept: str, secret: str, kind: str
) -> None:
    redactor = Redactor(KEY)
    expected = list(argv)
    expected[index] = kept + redactor.tag(kind, secret) + argv[index][len(kept) + len(secret) :]
    assert Redactor.may_hold_secret(canonical_bytes({"argv": argv}))
    assert redactor.redact({"argv": argv})["argv"] == expected


@pytest.mark.parametrize(
    "text",
    [
        "curl -k https://h",
        "curl -sk -o out https://h",
        "curl -ob x=y https://h",  # -o takes the rest of its cluster: a file named b
        "curl -sb cookies.txt https://h",
        "ls -a x:y; tar -tf a.tar; grep -k x",
        "http -v https://h; http --check-status -p b h",
        "security find-generic-password -a bob -s svc -w",
        "security add-generic-password -a bob -s svc -w",
        "cqlsh -p; cqlsh -u u -p --ssl",
        "lftp -u bob ftp.example.com",
        "dotnet test -k x; dotnet build -t:pack",
        "cf -v apps; cf auth",
        "FTP_PROXY=proxy:3128 lftp h",
    ],
)
def test_look_alikes_of_the_new_command_forms_are_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text
    for command in text.split("; "):
        argv = command.split()
        assert Redactor(KEY).redact({"argv": argv})["argv"] == argv


COMMAND_FORMS = [text for text, _, _ in COMMANDS]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.sampled_from(COMMAND_FORMS), st.text(max_size=12))
def test_the_screens_and_literals_cover_the_new_command_forms(
    before: str, form: str, after: str
) -> None:
    assert_screened_with_a_literal(before + form + after)


test_these_commands_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    COMMAND_FORMS
)


def test_these_commands_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            *("doctl -t ", "doctl ", "-t ", "-ta "),
            *("dotnet nuget push -k ", "dotnet ", "nuget push ", "-k "),
            *("cqlsh -p ", "lftp -u a,", "lftp -u ", "-u a,"),
            *("http -a ", "https ", "-a ", "http -A bearer -a "),
            *("security add-generic-password -w ", "add-generic-password -w ", "-w "),
            *("curl -sb a=", "-sSb ", "curl -sSSSSSSSSSSSSSSSSSSSSSSb ", " -sb"),
            *("cf -v ", "cf -v auth ", "cf -v -v -v -v -v -v -v -v -v -v ", "-v auth "),
            *("FTP_PROXY=a:", "ftp_proxy=a:b@", "FTP_PROXY=FTP_PROXY="),
        ]
    )


def test_these_commands_in_a_list_are_read_in_linear_time() -> None:
    assert_argv_redacted_in_linear_time(
        [
            ["doctl", "-t"],
            ["doctl"],
            ["dotnet", "nuget", "push", "-k"],
            ["dotnet", "nuget"],
            ["cqlsh", "-p"],
            ["lftp", "-u"],
            ["lftp", "-u", "a,b"],
            ["http", "-a"],
            ["https"],
            ["security", "add-generic-password", "-w"],
            ["security", "add-generic-password"],
            ["curl", "-sb"],
            ["curl", "-sSb", "a=b"],
            ["cf", "-v", "auth"],
            ["cf", "-v"],
            ["FTP_PROXY=a:b@h"],
        ]
    )


def test_the_reviews_cases_reach_no_file_of_the_audit_directory(tmp_path: Path) -> None:
    # The review's reproductions, through a real gate: accepted, and refused (kept as text).
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
"""

    def ex(line: str) -> dict[str, Any]:
        return {"action": "process.exec", "commandLine": line, "cwd": "/app"}

    lines = [
        *(f"echo {token} > ~/.token" for token, _ in TOKENS),
        *(text for text, _, _ in COMMANDS),
    ]
    requests = [ex(line) for line in lines] + [{**ex(COMMANDS[0][0]), "bogus": 1}]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200] * len(lines) + [400]
    for secret in [token for token, _ in TOKENS] + [secret for _, secret, _ in COMMANDS]:
        assert secret.encode() not in everything, secret
