"""Secrets in XML elements and in YAML: documents, and one line quoted as a shell word.

An element is read as an object key is: ``<password>`` and ``<ns:apiToken>`` hold a
secret, ``<maxTokens>`` does not, and the tag's kind is the one ``secret_key_kind``
gives the element's name. A YAML line quoted whole (``echo 'password: a<b c'``) or
standing as one argv item is a secret to its end, whatever it holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import Redactor, secret_key_kind
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import assert_redacted_in_linear_time, idempotent_when_joined_test
from tests.daemon import checked_through_a_gate

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")


def _redacted(text: str) -> str:
    body = {"context": {"config": text}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    return Redactor(KEY).redact(body)["context"]["config"]


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("<password>hunter22</password>", "hunter22", "password"),
        ("<cfg><apiToken>abc123def</apiToken></cfg>", "abc123def", "secret"),
        ('<ns:DB_Password enc="no">\n    hunter 22\n  </ns:DB_Password>', "hunter 22", "password"),
        ("<password><![CDATA[a<b>&c]]></password>", "a<b>&c", "password"),
        ("<x:client-secret>cs 1&amp;2</x:client-secret>", "cs 1&amp;2", "secret"),
        ("<api_key>k-1;2</api_key>", "k-1;2", "api-key"),
        ("<privateKey>MIIEv</privateKey>", "MIIEv", "private-key"),
        ("<Authorization>Basic dXNlcjpw</Authorization>", "Basic dXNlcjpw", "authorization"),
        ("<pwd>p'w\"d</pwd>", "p'w\"d", "password"),
        ("<secrets>s3cr3t-list</secrets>", "s3cr3t-list", "secret"),
        # A text cut short (a body kept to its first bytes) runs to its end.
        ("<server><password>cut-sh", "cut-sh", "password"),
    ],
)
def test_an_element_named_as_a_secret_key_is_redacted(text: str, secret: str, kind: str) -> None:
    out = _redacted(text)
    assert secret not in out
    assert Redactor(KEY).tag(kind, secret) in out
    assert Redactor(KEY).redact_text(out) == out  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "<maxTokens>100</maxTokens>",
        "<tokens>5</tokens>",
        "<username>bob</username>",
        "<password/>",
        "<password></password>",
        "<password>  </password>",
        "<passwordPolicy>strict</passwordPolicy>",
        # The element holds elements, read on their own: only <password>'s text goes.
        "<credentials>\n  <user>bob</user>\n</credentials>",
    ],
)
def test_elements_that_hold_no_secret_text_are_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


def test_nested_elements_redact_the_innermost_text_only() -> None:
    text = "<credentials><user>bob</user><password>pw-8844</password></credentials>"
    out = Redactor(KEY).redact_text(text)
    assert out == (
        "<credentials><user>bob</user><password>"
        + Redactor(KEY).tag("password", "pw-8844")
        + "</password></credentials>"
    )


_KEY_LIKE = st.sampled_from(
    [
        *("password", "Pass_Word", "db-passwd", "apiToken", "API_KEY", "clientSecret", "pwd"),
        *("sessionToken", "privateKey", "secretAccessKey", "credentials", "codeVerifier"),
        *("maxTokens", "tokens", "user", "bypass", "keyName", "passwordPolicy", "cookie"),
    ]
)
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="<"),
    min_size=1,
    max_size=12,
).filter(lambda text: text.strip() != "" and "[REDACTED:" not in text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", "ns:", "a.b-c:"]), _KEY_LIKE, _TEXT)
def test_an_element_is_read_as_its_name_would_be_as_a_json_key(
    prefix: str, name: str, value: str
) -> None:
    text = f"<{prefix}{name}>{value}</{prefix}{name}>"
    out = Redactor(KEY).redact({"v": text})["v"]
    kind = secret_key_kind(name)
    if kind is None:
        assert value in out
    else:
        assert out == f"<{prefix}{name}>{_tagged(value, kind)}</{prefix}{name}>"


def _tagged(value: str, kind: str) -> str:
    # The white space around the text is the element's layout, not the secret's.
    core = value.strip(" \t\r\n")
    start = value.index(core)
    return value[:start] + Redactor(KEY).tag(kind, core) + value[start + len(core) :]


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("echo 'password: QHOm<QSsw*QCm' >> app.yaml", "QHOm<QSsw*QCm", "password"),
        ('echo "db_password: a&b;c d" > x.yaml', "a&b;c d", "password"),
        ("printf '%s\\n' 'api_token : x>y' | tee t", "x>y", "secret"),
    ],
)
def test_a_quoted_yaml_line_is_a_secret_to_its_closing_quote(
    text: str, secret: str, kind: str
) -> None:
    # As text (a refused body, whose command line is never split into words) and as a
    # request's command line: the whole value gives one tag, and what follows is kept.
    redactor = Redactor(KEY)
    expected = text.replace(secret, redactor.tag(kind, secret))
    assert redactor.redact_text(text) == expected
    assert redactor.redact({"commandLine": text})["commandLine"] == expected


def test_a_yaml_line_as_one_argv_item_is_a_secret_to_its_end() -> None:
    out = Redactor(KEY).redact({"argv": ["echo", "password: a<b c;d", "url: https://x"]})
    assert out["argv"] == [
        "echo",
        "password: " + Redactor(KEY).tag("password", "a<b c;d"),
        "url: https://x",
    ]


YAML_DOCUMENT = """\
db:
  host: db.internal
  password: {pw}  # rotated monthly
  apiToken: {pw}2
  maxTokens: 5&6
  bypass: x&y
servers:
  - password: {pw}3
"""


def test_a_yaml_lines_value_runs_to_the_end_of_the_line() -> None:
    # A bare value stopped at '&' or '<' as in a query string; YAML reads a&b<c d as one
    # plain scalar (a context holding a config, a here-document writing one).
    redactor = Redactor(KEY)
    secret = "a&b<c;d e"
    out = redactor.redact({"context": {"config": YAML_DOCUMENT.format(pw=secret)}})
    text = out["context"]["config"]
    assert text == YAML_DOCUMENT.format(pw="{pw}").replace(
        "{pw}2", redactor.tag("secret", secret + "2")
    ).replace("{pw}3", redactor.tag("password", secret + "3")).replace(
        "{pw}", redactor.tag("password", secret)
    )
    assert redactor.redact(out) == out


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        # Quoted: the quoted-value patterns take what is inside the quotes.
        ("password: 'quoted&x'", "quoted&x"),
        ('password: "quoted&x"', "quoted&x"),
        # Not at the start of a line: a shell's '&' ends the value.
        ("echo password: a&b", "a"),
        # An anchor is not a plain scalar, and no pattern claims to read what follows.
        ("password: &anchor x", None),
    ],
)
def test_a_yaml_value_that_is_not_a_plain_scalar_is_left_to_the_other_patterns(
    line: str, secret: str | None
) -> None:
    redactor = Redactor(KEY)
    expected = line
    if secret is not None:
        head, colon, value = line.partition(": ")
        expected = head + colon + value.replace(secret, redactor.tag("password", secret), 1)
    assert redactor.redact_text(line) == expected


def test_yaml_lines_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        ["password: x\n", "  - " + "a" * 40 + "\n", "password:" + " " * 50 + "\n"]
    )


def test_xml_is_read_in_linear_time() -> None:
    # Many unclosed CDATA sections, or openers with no closing tag, must not make the
    # scan from each of them run to the end of the text.
    assert_redacted_in_linear_time(
        ["<password><![CDATA[", "<password>", "<password> \n ", "<![CDATA[<password>"]
    )


# The forms above, for the idempotence check below.
FORMS = [
    "<password>hunter22</password>",
    "<ns:apiToken a='1'>\n  tok en\n</ns:apiToken>",
    "<password><![CDATA[a<b]]></password>",
    YAML_DOCUMENT.format(pw="a&b<c d"),
    "echo 'password: a<b c' >> app.yaml",
    "- password: x&y  # c",
]


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(FORMS)


def test_no_secret_in_xml_or_a_yaml_line_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: data, action: file.read, path: {glob: "/app/data/**"}, decision: allow}
"""
    requests = [
        {
            "action": "file.read",
            "path": "/app/data/settings.xml",
            "context": {"written": "<server>\n  <password>Qx1&lt;2&amp;3 4</password>\n</server>"},
        },
        {
            "action": "file.read",
            "path": "/etc/denied.xml",
            "context": {"written": "<db><apiToken><![CDATA[Qy5>6&7]]></apiToken></db>"},
        },
        {
            "action": "process.exec",
            "commandLine": "echo 'password: Qz8<9*0 1' >> app.yaml",
            "cwd": "/app",
        },
        {"action": "process.exec", "argv": ["echo", "db_password: Qw2;3>4"], "cwd": "/app"},
    ]
    _, everything = checked_through_a_gate(tmp_path, policy, requests)
    for core in ("Qx1", "2&amp;3 4", "Qy5", "6&7", "Qz8", "9*0 1", "Qw2", "3>4"):
        assert core.encode() not in everything, core
    assert everything.count(b"[REDACTED:") >= len(requests)
