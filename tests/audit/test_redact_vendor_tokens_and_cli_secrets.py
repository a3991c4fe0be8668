"""Secrets a review found recorded in clear, each after it passed a gate: vendors' token
formats standing alone (Sentry, Atlassian, Linear, Notion, Replicate, Groq, RubyGems, a
Google OAuth access token), and programs whose own options or positionals carry a
password or a token. Their look-alikes stay readable.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import _PATTERNS, Redactor
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import (
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)

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


def _assert_screened_and_literal(value: str) -> None:
    # A pattern that matches passes the screen (a miss writes the secret in clear) and
    # holds one of its literals (_rewrite skips a pattern on a string without them).
    encoded = canonical_bytes({"v": value})
    for secret in _PATTERNS:
        if secret.regex.search(value):
            assert Redactor.may_hold_secret(encoded), secret.kind
            if not secret.named_program:
                assert any(literal in value.lower() for literal in secret.literals)


FORMS = [token for token, _ in TOKENS]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.sampled_from(FORMS), st.text(max_size=12))
def test_the_screens_and_literals_cover_the_new_forms(before: str, form: str, after: str) -> None:
    _assert_screened_and_literal(before + form + after)


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(FORMS)


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            *("sntrys_", "sntryu_", "ATATT3", "lin_api_", "ntn_", "r8_", "gsk_", "rubygems_"),
            *("ya29.", "ya29.a", "ya29.a.", "ya29." + "a" * 19 + " "),
        ]
    )
