"""Redaction of a secret written as one shell word, whatever it holds, and wherever a
record quotes it again: the open findings of the redaction fuzz of 2026-12-06.

Each case was a partial leak in a real gate's trail: the first piece of the password
tagged, the rest in clear.
"""

from __future__ import annotations

import re
import time

import pytest

from sidecar.audit.redact import Redactor, assignment_kind
from sidecar.canonical import canonical_bytes
from sidecar.normalise.request import normalise_request
from sidecar.normalise.shell_context import LABEL_LENGTH, shorten
from sidecar.request import CheckRequest

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")


def tag_of(kind: str, secret: str) -> str:
    return Redactor(KEY).tag(kind, secret)


def redacted(body: dict) -> dict:
    # Only what passes the screen is redacted in the gate: check both.
    assert Redactor.may_hold_secret(canonical_bytes(body)), body
    return Redactor(KEY).redact(body)


# (command line, the whole secret, its kind): a ',', ']' or '}' inside a bare value.
INNER_CLOSERS = [
    ("mysql --password=pw1,pw2 db", "pw1,pw2", "password"),
    ("MYSQL_PWD=a1,b2c3 mysql db", "a1,b2c3", "password"),
    ("curl -d client_secret=a1,b2c3 https://x", "a1,b2c3", "secret"),
    ("export DB_PASSWORD=a1}b2c3", "a1}b2c3", "password"),
    ("PGPASSWORD=a1]b2c3 psql", "a1]b2c3", "password"),
    ("keytool -list -storepass a1}b2c3", "a1}b2c3", "password"),
    ("curl -H 'X-Api-Key: a1,b2c3' https://x", "a1,b2c3", "api-key"),
    ("app --api-key=a1,,b2c3", "a1,,b2c3", "secret"),
    # A shell word in pieces after an option naming a key: read whole, not as a header.
    ("app --api-key=$'a1b2'c3", "$'a1b2'c3", "secret"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), INNER_CLOSERS)
def test_a_value_holding_a_closing_character_is_tagged_whole(
    text: str, secret: str, kind: str
) -> None:
    out = redacted({"commandLine": text})["commandLine"]
    assert "b2c3" not in out, out
    assert tag_of(kind, secret) in out, out


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        # A run of them ending the value is the structure's, not the secret's.
        ("log {password=x1, user=y1}", "[REDACTED:password:{}], user=y1}}"),
        ("log [password=x1]", "[REDACTED:password:{}]]"),
        ("echo password=x1,", "[REDACTED:password:{}],"),
    ],
)
def test_closing_characters_that_end_a_value_are_kept(text: str, kept: str) -> None:
    out = redacted({"commandLine": text})["commandLine"]
    assert out.endswith(kept.format(tag_of("password", "x1")[-9:-1])), out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('mysql --password="a1\\"b2 c3" db', 'a1\\"b2 c3'),
        ('sshpass -p "a1\\"b2 c3" ssh host', 'a1\\"b2 c3'),
        ('{"password": "a1\\"b2 c3", "user": "u"}', 'a1\\"b2 c3'),
    ],
)
def test_an_escaped_quote_does_not_end_a_double_quoted_value(text: str, secret: str) -> None:
    out = redacted({"commandLine": text})["commandLine"]
    assert "b2" not in out and "c3" not in out, out
    assert tag_of("password", secret) in out, out


@pytest.mark.parametrize(
    ("item", "kind", "secret"),
    [
        ('PGPASSWORD=a1;b2"c3\\d4', "password", 'a1;b2"c3\\d4'),
        ("password=a1;b2c3", "password", "a1;b2c3"),
        ("SSHPASS=a1>b2c3", "password", "a1>b2c3"),
        ("client_secret=a1'b2c3", "secret", "a1'b2c3"),
        ("aws_secret_access_key=a1 b2c3", "secret", "a1 b2c3"),
    ],
)
def test_an_argv_item_assigning_a_secret_is_tagged_to_its_end(
    item: str, kind: str, secret: str
) -> None:
    out = redacted({"argv": ["env", item, "app"]})["argv"]
    name = item.partition("=")[0]
    assert out == ["env", f"{name}={tag_of(kind, secret)}", "app"]


@pytest.mark.parametrize(
    ("argv", "kept", "secret"),
    [
        (["psql", '--set=passwd=a1=b2"c3'], "--set=passwd=", 'a1=b2"c3'),
        (["docker", "run", "--env=DB_PASSWORD=a1;b2c3", "img"], "--env=DB_PASSWORD=", "a1;b2c3"),
        (["docker", "run", "-e", "DB_PASSWORD=a1;b2c3", "img"], "DB_PASSWORD=", "a1;b2c3"),
    ],
)
def test_an_option_whose_value_assigns_a_secret_is_tagged_to_its_end(
    argv: list[str], kept: str, secret: str
) -> None:
    out = redacted({"argv": argv})["argv"]
    assert kept + tag_of("password", secret) in out, out


def test_a_single_quoted_piece_then_an_escaped_quote_goes_on_in_one_word() -> None:
    # 'a'\''b' is how a shell script writes a'b inside single quotes.
    out = redacted({"commandLine": "MYSQL_PWD='a1'\\''b2.c3' mysql -u root"})["commandLine"]
    assert "b2" not in out and out.endswith(" mysql -u root"), out


@pytest.mark.parametrize(
    "item", ["bypass=1;2", "compass=north;x", "DB_PASSWORD_FILE=/run/db;x", "app=web;x"]
)
def test_an_argv_item_assigning_no_secret_is_kept(item: str) -> None:
    body = {"argv": ["env", item, "app"]}
    assert Redactor(KEY).redact(body) == body
    assert assignment_kind(item.partition("=")[0]) is None


@pytest.mark.parametrize(
    "command",
    [
        "aws configure set aws_secret_access_key Qs3cr3tValue",
        "aws configure set --profile dev aws_session_token Qs3cr3tValue",
        "aws --profile dev configure set profile.dev.aws_secret_access_key Qs3cr3tValue",
        "aws configure set --debug aws_secret_access_key 'Qs3cr3tValue'",
    ],
)
def test_aws_configure_set_of_a_secret_setting_is_tagged(command: str) -> None:
    out = redacted({"commandLine": command})["commandLine"]
    assert "Qs3cr3tValue" not in out and tag_of("secret", "Qs3cr3tValue") in out, out
    argv = [word.strip("'") for word in command.split()]
    out_argv = redacted({"argv": argv})["argv"]
    assert out_argv[-1] == tag_of("secret", "Qs3cr3tValue"), out_argv


def test_aws_configure_set_of_a_plain_setting_is_kept() -> None:
    body = {"commandLine": "aws configure set region us-east-1", "argv": ["aws", "configure",
            "set", "region", "us-east-1"]}  # fmt: skip
    assert Redactor(KEY).redact(body) == body


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"githubToken": "Qs3cr3tValue"}', "Qs3cr3tValue"),
        ("config:\n  apiToken: Qs3cr3tValue\n", "Qs3cr3tValue"),
        ("dbSecret=Qs3cr3tValue", "Qs3cr3tValue"),
        ('{\\"openaiApiKey\\": \\"Qs3cr3tValue\\"}', "Qs3cr3tValue"),
    ],
)
def test_camel_case_names_in_text_are_read(text: str, secret: str) -> None:
    out = redacted({"context": {"payload": text}})["context"]["payload"]
    assert secret not in out and TAG.search(out), out


@pytest.mark.parametrize("text", ["maxTokens=100", "isTokenValid=true", "compassValue=3"])
def test_camel_case_words_that_only_contain_a_name_are_kept(text: str) -> None:
    body = {"context": {"payload": text}}
    assert Redactor(KEY).redact(body) == body


JWT = (
    "eyJhbGciOiAiSFMyNTYiLCAia2lkIjogImFDWGEyT1NmbmJqaiJ9"
    ".eyJzdWIiOiAiNFV3c0JwQlRkb29IcXh5eiIsICJleHAiOiAxOTk5OTk5OTk5fQ"
    ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
)


def test_a_secret_cut_short_in_a_reason_is_tagged_as_the_whole() -> None:
    command = f"aws configure set aws_access_key_id {JWT}"
    label = shorten(command)
    assert label.endswith("…") and JWT[:40] in label  # the reason holds only its start
    body = {
        "request": {"commandLine": command},
        "reason": f"no rule matches process.exec of {label}; defaultAction is allow",
    }
    out = redacted(body)
    assert out["reason"] == (
        "no rule matches process.exec of aws configure set aws_access_key_id "
        f"{tag_of('jwt', JWT)}…; defaultAction is allow"
    )
    assert "eyJ" not in canonical_bytes(out).decode()


def test_a_secret_cut_at_a_labels_full_length_is_found() -> None:
    # A label is at most LABEL_LENGTH characters: a secret cut later is still found.
    secret = "Q" + "x" * 300
    command = "app --password " + secret
    body = {"request": {"argv": command.split()}, "reason": f"of {shorten(command)}"}
    assert len(shorten(command)) == LABEL_LENGTH
    out = redacted(body)
    assert "xxxx" not in out["reason"] and tag_of("password", secret) in out["reason"]


def test_a_reason_quoting_a_password_with_a_quote_gets_the_requests_tag() -> None:
    # The reason shell-quotes the argument: a'b is written 'a'"'"'b'.
    secret = "Qi2K]QFG'Qnnf30"
    body = {
        "request": {"argv": [f"PGPASSWORD={secret}", "psql"]},
        "reason": "no rule matches process.exec of 'PGPASSWORD=Qi2K]QFG'\"'\"'Qnnf30' psql",
    }
    out = redacted(body)
    tag = tag_of("password", secret)
    assert out["request"]["argv"][0] == f"PGPASSWORD={tag}"
    assert out["reason"] == f"no rule matches process.exec of 'PGPASSWORD={tag}' psql"


def test_a_secret_written_json_escaped_in_the_request_gets_its_tag() -> None:
    # JSON carried in a string writes a"b as a\"b; the list found the secret itself.
    secret = 'Qab"cd1234'
    body = {
        "request": {
            "argv": ["mysql", "--password", secret],
            "context": {"raw": '{"argv": ["mysql", "--password", "Qab\\"cd1234"]}'},
        }
    }
    out = redacted(body)
    assert "cd1234" not in canonical_bytes(out).decode()
    assert out["request"]["context"]["raw"].count(tag_of("password", secret)) == 1


def test_a_secret_that_only_a_reason_shows_is_replaced_in_the_request_too() -> None:
    body = {
        "request": {"context": {"note": "pw hunter2222 used"}},
        "reason": "denied: password=hunter2222",
    }
    out = redacted(body)
    tag = tag_of("password", "hunter2222")
    assert out["reason"] == f"denied: password={tag}"
    assert out["request"]["context"]["note"] == f"pw {tag} used"


def test_the_records_fields_keep_their_order_and_redaction_is_idempotent() -> None:
    body = {
        "type": "decision",
        "reason": "of mysql --password=pw1,pw2",
        "request": {"argv": ["mysql", "--password=pw1,pw2"]},
        "seq": 3,
    }
    once = redacted(body)
    assert list(once) == list(body)
    assert Redactor(KEY).redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "password=a" + ",a" * 30_000,  # a long run of inner ',' (each is the value's)
        "password=a" + ",,,,,, " * 9_000,  # runs that end the value, again and again
        "configure set" + " --a x" * 10_000,  # options and no secret setting after them
        "configure set " * 5_000,
        "X-Api-Key: a" + ",a" * 30_000,
        'password="' + '\\"' * 30_000,  # an escaped quote never closed
        "-p " + "a,a}" * 15_000,
    ],
    ids=["inner-commas", "trailing-runs", "options", "repeated", "header", "escapes", "mixed"],
)
def test_the_new_value_forms_are_redacted_in_linear_time(text: str) -> None:
    # The record is redacted on the event loop: 60 KB must not take quadratic time.
    # (The bound is generous; a quadratic form takes seconds here.)
    started = time.perf_counter()
    Redactor(KEY).redact({"request": {"commandLine": text}, "reason": text[:120] + "…"})
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.2f}s for {len(text)} characters"


def test_a_command_line_is_read_after_its_analysed_words() -> None:
    # The words show the secret unescaped; the line writes it escaped. Read first, the
    # line's pattern stopped at the backslash and kept the rest.
    secret = 'a1"b2&c3'
    body = {
        "request": {
            "action": "process.exec",
            "commandLine": 'sshpass -p a1\\"b2\\&c3 ssh host',
            "commands": [["sshpass", "-p", secret, "ssh", "host"]],
            "cwd": "/w",
        },
        "type": "decision",
    }
    out = redacted(body)
    tag = tag_of("password", secret)
    assert out["request"]["commandLine"] == f"sshpass -p {tag} ssh host"
    assert out["request"]["commands"] == [["sshpass", "-p", tag, "ssh", "host"]]
    assert list(out["request"]) == list(body["request"]) and list(out) == list(body)
    assert Redactor(KEY).redact(out) == out


def test_a_part_of_an_argv_secret_read_by_a_pattern_is_not_spread() -> None:
    # The patterns read the word --password=a\b"c only to its quote; the argv scan takes
    # it whole. The part, spread into the raw line first, split the secret there and
    # left its end in clear (the redaction corpus found it).
    line = "mysql -h db --password=$'Qa1b2c3\\\\Qd4e5f6\"Qg7h8i9' -e 'select 1'"
    record = normalise_request(
        CheckRequest.model_validate({"action": "process.exec", "commandLine": line})
    ).record
    out = redacted({"request": record, "reason": "x"})
    assert "Qg7h8i9" not in canonical_bytes(out).decode(), out
