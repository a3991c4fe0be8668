"""Secrets the second review of the rt26 redaction (r2-redact-idle, findings 1, 2, 3, 5 and
6) found recorded in clear, or words it found hidden that hold none: a .netrc written
with printf's or echo -e's escapes, curl's cookie after a certificate passphrase or a
proxy password, curl's -b after a tab or a line continuation in a context string, and
prose that only looks like a .netrc entry.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import assert_redacted_in_linear_time, assert_tagged_in_place

KEY = b"k" * 32


def _recorded(body: dict[str, Any]) -> str:
    """The record's text as the gate writes it: screened, then redacted."""
    if not Redactor.may_hold_secret(canonical_bytes(body)):
        return canonical_bytes(body).decode()
    return canonical_bytes(Redactor(KEY).redact(body)).decode()


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        (r"printf 'machine h\nlogin bob\npassword N1pw\n' > ~/.netrc", ["N1pw"]),
        (r"echo -e 'machine h\nlogin bob\npassword N1echo' > ~/.netrc", ["N1echo"]),
        (r"printf 'machine h\tlogin bob\tpassword N1tab\r\n' >> ~/.netrc", ["N1tab"]),
        (
            r"printf 'machine h login bob password N1one\nmachine h2 login bob password N1two\n'"
            " > ~/.netrc",
            ["N1one", "N1two"],
        ),
        (r"printf 'x\nmachine\nh\nlogin u\npassword N1esc\n' > ~/.netrc", ["N1esc"]),
    ],
)
def test_a_netrc_written_with_printf_escapes_is_tagged(text: str, secrets: list[str]) -> None:
    assert_tagged_in_place(text, secrets, "password")


@pytest.mark.parametrize(
    "text",
    [
        "echo 'the machine learning password policy is strict'",
        "on this machine the password reset link expired",
        "the machine port password rule",
    ],
)
def test_prose_about_a_machine_and_a_password_is_kept(text: str) -> None:
    assert _recorded({"commandLine": text}) == canonical_bytes({"commandLine": text}).decode()


def test_a_netrc_entry_without_login_is_still_read_where_netrc_is_named() -> None:
    assert_tagged_in_place("echo 'machine h password N4pw' >> ~/.netrc", ["N4pw"], "password")


@pytest.mark.parametrize(
    ("text", "password", "cookie"),
    [
        ("curl -E cert.pem:C2pwA -b sid=C2ckA https://h", "C2pwA", "sid=C2ckA"),
        ("curl -x bob:C2pwB@proxy:3128 -b sid=C2ckB https://h", "C2pwB", "sid=C2ckB"),
        ("curl -b sid=C2ckC -E cert.pem:C2pwC https://h", "C2pwC", "sid=C2ckC"),
        ("curl --cert c.pem:C2pwD --cookie sid=C2ckD https://h", "C2pwD", "sid=C2ckD"),
    ],
)
def test_curls_cookie_and_password_are_both_tagged_in_any_order(
    text: str, password: str, cookie: str
) -> None:
    redactor = Redactor(KEY)
    for body in ({"commandLine": "bash run.sh", "context": {"script": text}}, {"v": text}):
        out = _recorded(body)
        assert password not in out and cookie not in out
        assert redactor.tag("password", password) in out
        assert redactor.tag("cookie", cookie) in out
        assert "https://h" in out
    assert redactor.redact_text(text).count("[REDACTED:") == 2


@pytest.mark.parametrize(
    "text",
    [
        "next: curl\t-b sid=C3ckA https://h",
        "curl -s \\\n-b sid=C3ckA https://h",
    ],
)
def test_curls_cookie_after_a_tab_or_a_newline_passes_the_screen(text: str) -> None:
    out = _recorded({"action": "process.exec", "commandLine": "ls", "context": {"plan": text}})
    assert "C3ckA" not in out
    assert "https://h" in out


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("echo S5cgA | cargo +stable login", "S5cgA"),
        ("echo S5cgB | cargo -q login", "S5cgB"),
        ("echo S5cgC | cargo --registry r login", "S5cgC"),
        ("printf S5gcD | gcloud secrets versions add db --data-file=/dev/stdin", "S5gcD"),
        ("echo -n S5gcE | gcloud secrets create db --data-file /dev/stdin", "S5gcE"),
    ],
)
def test_a_secret_piped_to_cargo_login_or_gcloud_from_dev_stdin_is_tagged(
    text: str, secret: str
) -> None:
    assert_tagged_in_place(text, [secret], "secret")


def test_cargo_and_gcloud_commands_reading_no_secret_are_kept() -> None:
    for text in [
        "echo done | cargo +stable build",
        "cat x | gcloud secrets versions add db --data-file=/tmp/x",
    ]:
        assert _recorded({"commandLine": text}) == canonical_bytes({"commandLine": text}).decode()


@pytest.mark.parametrize(
    "text", ["app --db-pw S5pwA --verbose", "app --ldap-bind-pw 'S5pwA' --verbose"]
)
def test_an_option_ending_in_pw_takes_the_next_word(text: str) -> None:
    assert_tagged_in_place(text, ["S5pwA"], "password")


def test_an_option_ending_in_pw_in_a_list_takes_the_next_item() -> None:
    out = Redactor(KEY).redact({"argv": ["app", "--db-pw", "S5pwB", "--verbose"]})
    assert out["argv"] == ["app", "--db-pw", Redactor(KEY).tag("password", "S5pwB"), "--verbose"]


@pytest.mark.parametrize("text", ["app --pw keep", "ls -pw keep", "app --pwd-file keep"])
def test_pw_alone_is_no_secret_option(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


@pytest.mark.parametrize(
    "cookie",
    [
        {"name": "sid", "value": "S5ckA", "url": "https://app.example.com"},
        {"Name": "sid", "Value": "S5ckA", "Path": "/", "Domain": "app", "HttpOnly": True},
        {"Name": "sid", "Value": "S5ckA", "Secure": True, "Raw": "", "MaxAge": 0},
    ],
)
def test_a_cookie_given_with_a_url_or_as_go_writes_it_is_tagged(cookie: dict[str, Any]) -> None:
    body = {"commandLine": "node set.js", "context": {"addCookies": [cookie], "c": cookie}}
    out = _recorded(body)
    assert "S5ckA" not in out
    assert Redactor(KEY).tag("cookie", "S5ckA") in out
    assert '"sid"' in out


def test_a_secret_named_as_go_writes_a_name_value_pair_is_tagged() -> None:
    out = _recorded({"context": {"env": [{"Name": "API_TOKEN", "Value": "S5goB"}]}})
    assert "S5goB" not in out and "API_TOKEN" in out


@pytest.mark.parametrize(
    "body",
    [
        {"links": [{"name": "docs", "url": "https://example.com"}]},
        {"v": [{"Name": "count", "Value": "3"}]},
    ],
)
def test_name_value_pairs_that_are_no_cookie_are_kept(body: dict[str, Any]) -> None:
    assert Redactor(KEY).redact(body) == body


def test_the_new_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            r"machine\n",
            r"machine h\nlogin u\n",
            r"machine h login u password p\n",
            r"\npassword machine\n",
            "curl -E c:p -b s=v ",
            "curl -x u:p@h ",
            "curl\t-b\t",
            r"\t-b\n",
            "-b " + "a" * 300,
            "echo x | cargo +a -q ",
            "echo x | cargo --registry r ",
            "--data-file=/dev/stdin ",
            "--a-b-c-pw ",
            "-a-",
        ]
    )
