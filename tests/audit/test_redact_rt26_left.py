"""Credentials the rt26 reviews (r2-redact-idle finding 5, redact.md) left recorded in
clear: a proxy's password in a proxy variable without a scheme
(``HTTPS_PROXY=user:pw@proxy:3128``).
"""

from __future__ import annotations

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import assert_redacted_in_linear_time, assert_tagged_in_place

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


def test_the_new_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "HTTPS_PROXY=a:",
            "HTTPS_PROXY=a: ",
            "'http_proxy=a:b",
            "all_proxy=a:b@",
        ],
        tail=" all_proxy=u:p@h",
    )
