"""Credentials the rt26 reviews (r2-redact-idle finding 5, redact.md) left recorded in
clear: a proxy's password in a proxy variable without a scheme
(``HTTPS_PROXY=user:pw@proxy:3128``), and Cloud Foundry's scripted login, ``cf auth USER
PASSWORD``, and a scheme-less proxy whose user holds an '@' (``curl -x
bob@corp:pw@proxy:3128``).
"""

from __future__ import annotations

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    assert_argv_redacted_in_linear_time,
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
)

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("HTTPS_PROXY=bob:L1pwA@proxy:3128 curl https://h", "L1pwA"),
        ("export https_proxy=bob:L1pwB@proxy.corp:3128 && pip install x", "L1pwB"),
        ("env ALL_PROXY='bob:L1 pwC@proxy:1080' npm ci", "L1 pwC"),
        ('Http_Proxy="bob:L1pwD@proxy" wget https://h', "L1pwD"),
    ],
)
def test_a_proxy_variables_password_without_a_scheme_is_tagged(text: str, secret: str) -> None:
    assert_tagged_in_place(text, [secret], "password")


def test_a_proxy_variables_password_in_a_list_is_tagged() -> None:
    out = Redactor(KEY).redact({"argv": ["env", "HTTPS_PROXY=bob:L1pwE@proxy:3128", "curl"]})
    tag = Redactor(KEY).tag("password", "L1pwE")
    assert out["argv"] == ["env", f"HTTPS_PROXY=bob:{tag}@proxy:3128", "curl"]


@pytest.mark.parametrize(
    "text",
    [
        "HTTPS_PROXY=proxy.corp:3128 curl https://h",
        "NO_PROXY=a:b@c curl https://h",
        "MY_HTTPS_PROXY=a:b@c curl https://h",
    ],
)
def test_other_proxy_settings_are_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("cf auth bob L2pwA && cf target -o org", "L2pwA"),
        ("cf auth bob 'L2 pwB'", "L2 pwB"),
        ("cf auth --origin uaa bob L2pwC", "L2pwC"),
        ("cf auth ci-client L2pwD --client-credentials", "L2pwD"),
    ],
)
def test_cf_auths_password_is_tagged(text: str, secret: str) -> None:
    assert_tagged_in_place(text, [secret], "password")


@pytest.mark.parametrize(
    "items",
    [
        ["cf", "auth", "bob", "L2pwE"],
        ["cf", "auth", "--origin", "uaa", "bob", "L2pwE"],
        ["/usr/local/bin/cf", "auth", "ci-client", "L2pwE", "--client-credentials"],
    ],
)
def test_cf_auths_password_in_a_list_is_tagged(items: list[str]) -> None:
    out = Redactor(KEY).redact({"argv": items})["argv"]
    assert out == [Redactor(KEY).tag("password", "L2pwE") if i == "L2pwE" else i for i in items]


@pytest.mark.parametrize(
    "body",
    [
        {"commandLine": "cf push auth --no-start"},
        {"commandLine": "cf auth bob"},
        {"argv": ["cf", "push", "auth", "web", "-f", "manifest.yml"]},
        {"argv": ["cf", "auth", "bob"]},
    ],
)
def test_cf_commands_carrying_no_password_are_kept(body: dict[str, object]) -> None:
    assert Redactor(KEY).redact(body) == body


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("curl -x bob@corp:L3pwA@proxy:3128 https://h", "L3pwA"),
        ("curl -xbob@corp:L3p@wB@proxy https://h", "L3p@wB"),
        ("curl --proxy bob@corp.com:L3pwC@proxy:3128 -s https://h", "L3pwC"),
        ("pip install --proxy=bob@corp:L3pwD@proxy:3128 x", "L3pwD"),
        ("HTTPS_PROXY=bob@corp:L3pwE@proxy:3128 curl https://h", "L3pwE"),
    ],
)
def test_a_proxy_user_holding_an_at_sign_keeps_the_password_hidden(text: str, secret: str) -> None:
    assert_tagged_in_place(text, [secret], "password")


@pytest.mark.parametrize(
    "text", ["curl -x bob@proxy:3128 https://h", "curl -x proxy:3128 https://bob@h"]
)
def test_a_proxy_without_a_password_is_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


def test_the_new_lists_are_read_in_linear_time() -> None:
    assert_argv_redacted_in_linear_time([["cf", "auth"], ["cf", "auth", "--origin"], ["cf"]])


def test_the_new_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "HTTPS_PROXY=a:",
            "HTTPS_PROXY=a: ",
            "'http_proxy=a:b",
            "all_proxy=a:b@",
            "cf auth ",
            "cf auth -a ",
            " -auth",
            "cf auth --origin ",
            "cf auth a ",
            "curl -x a@b:",
            "curl -x a@b:c ",
            " -x @:",
            "--proxy=a@",
        ],
        tail=" all_proxy=u:p@h",
    )
