"""Secret redaction: every kind the contract lists, keyed tags, and the fast screen."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import _PATTERNS, _SCREEN_TEXT, Redactor, secret_key_kind
from sidecar.canonical import canonical_bytes

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")

# (text holding a secret, the secret, the kind expected in the tag)
SECRETS = [
    ("Authorization: Bearer abc123def456ghi789", "abc123def456ghi789", "authorization"),
    ("curl -H 'authorization: Basic dXNlcjpwYXNz' https://x", "dXNlcjpwYXNz", "authorization"),
    ("key sk-proj-AbCdEf0123456789GhIjKlMn", "sk-proj-AbCdEf0123456789GhIjKlMn", "api-key"),
    (
        "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "api-key",
    ),
    ("token ghp_" + "a1B2c3D4e5" * 4, "ghp_" + "a1B2c3D4e5" * 4, "github-token"),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "github-token",
    ),
    ("aws AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
    ("slack xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF", "slack-token"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "jwt",
    ),
    ("mysql --password=hunter2xyz db", "hunter2xyz", "password"),
    ("https://api.example/?user=a&passwd=s3cr3tvalue", "s3cr3tvalue", "password"),
    ('{"password": "correct horse"}', "correct horse", "password"),
    ("psql postgres://admin:pa55w0rdXYZ@db:5432/x", "pa55w0rdXYZ", "url-credentials"),
    # A '/' in the password: an invalid URL (answered 400), still recorded.
    ("http://alice:Sup3rSecret/x@api.example.com/v1/x", "Sup3rSecret/x", "url-credentials"),
    ("client_secret=abcdef0123456789", "abcdef0123456789", "secret"),
    ("x-api-key: 0123456789abcdefXYZ", "0123456789abcdefXYZ", "api-key"),
    ("Cookie: session=abcdef123456", "session=abcdef123456", "cookie"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA7",
        "private-key",
    ),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api-key"),
    ("use bearer ya29.a0AfH6SMBx3Lq9 now", "ya29.a0AfH6SMBx3Lq9", "bearer-token"),
    ("docker login --password pw-55443322 r.io", "pw-55443322", "password"),
    ("vault login -token\thvs.CAESI99", "hvs.CAESI99", "secret"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Signature=5ec7e7a1b2", "5ec7e7a1b2", "secret"),
    ("curl -u admin:cu-33221100 https://x", "cu-33221100", "password"),
    ("mysql -uroot -pmy-55664433 app", "my-55664433", "password"),
    (
        "git clone https://a1B2c3D4e5f6G7h8i9J0k1@github.com/o/r",
        "a1B2c3D4e5f6G7h8i9J0k1",
        "url-credentials",
    ),
    ("GITLAB glpat-AbCdEfGhIj0123456789", "glpat-AbCdEfGhIj0123456789", "gitlab-token"),
    ("npm npm_" + "a1B2c3D4e5f6" * 3, "npm_" + "a1B2c3D4e5f6" * 3, "npm-token"),
    (
        "hub hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        "huggingface-token",
    ),
    ("twine pypi-AgE" + "Ab1_-" * 11, "pypi-AgE" + "Ab1_-" * 11, "pypi-token"),
    ("login dckr_pat_AbCdEfGhIj0123456789xy", "dckr_pat_AbCdEfGhIj0123456789xy", "docker-token"),
    ("VAULT hvs.CAESIAbCdEfGhIj0123456789xy", "hvs.CAESIAbCdEfGhIj0123456789xy", "vault-token"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), SECRETS)
def test_each_kind_is_replaced_by_a_keyed_tag(text: str, secret: str, kind: str) -> None:
    redactor = Redactor(KEY)
    body = {"request": {"commandLine": text}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = redactor.redact(body)["request"]["commandLine"]
    assert secret not in out
    tags = TAG.findall(out)
    assert tags, out
    assert tags[0][0] == kind
    assert body["request"]["commandLine"] == text  # the caller's body is not mutated


def test_tag_is_the_first_8_hex_of_hmac_sha256_and_stable() -> None:
    redactor = Redactor(KEY)
    secret = "AKIAIOSFODNN7EXAMPLE"
    expected = hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()[:8]
    first = redactor.redact_text(f"a {secret}")
    second = redactor.redact_text(f"b {secret} c")
    assert f"[REDACTED:aws-access-key:{expected}]" in first
    assert f"[REDACTED:aws-access-key:{expected}]" in second
    other_key = Redactor(b"z" * 32).redact_text(f"a {secret}")
    assert expected not in other_key


def test_values_under_secret_keys_are_redacted_whatever_they_look_like() -> None:
    redactor = Redactor(KEY)
    body = {
        "context": {
            "Password": "x",
            "api_key": "short",
            "X-Auth-Token": "t",
            "nested": {"clientSecret": "cs", "list": [{"token": "tok"}]},
            "maxTokens": 100,
            "tokens": "not a secret key name",
        }
    }
    out = redactor.redact(body)["context"]
    assert out["Password"].startswith("[REDACTED:password:")
    assert out["api_key"].startswith("[REDACTED:api-key:")
    assert out["X-Auth-Token"].startswith("[REDACTED:secret:")
    assert out["nested"]["clientSecret"].startswith("[REDACTED:secret:")
    assert out["nested"]["list"][0]["token"].startswith("[REDACTED:secret:")
    assert out["maxTokens"] == 100
    assert out["tokens"] == "not a secret key name"


def test_secrets_in_argv_lists_and_object_keys_are_redacted() -> None:
    redactor = Redactor(KEY)
    body = {"argv": ["curl", "-H", "Authorization: Bearer abcdefghijklmnop"], "ghp_" + "x1" * 18: 1}
    out = redactor.redact(body)
    assert "abcdefghijklmnop" not in str(out)
    assert "ghp_" not in "".join(out)


def test_clean_bodies_are_returned_unchanged_and_pass_the_screen() -> None:
    redactor = Redactor(KEY)
    body = {
        "action": "network.request",
        "request": {"host": "api.openai.com", "path": "/v1/chat/completions", "port": 443},
        "reason": "allowed by rule rules[3]",
        "policy": "sha256:" + "ab" * 32,
    }
    assert not Redactor.may_hold_secret(canonical_bytes(body))
    assert redactor.redact(body) is body


def test_a_hash_holding_acca_does_not_send_its_record_the_slow_way() -> None:
    # Every record carries hex hashes (prev, policy); an AWS key's prefix ACCA, read in
    # any case, matched about one record in five hundred, and a test of ordinary records
    # failed in CI on a random hash.
    body = {"prev": "6bb3f3a0a22af619c46741b05a81dcd9811de81acca449a7187a02288735ccdb"}
    assert not Redactor.may_hold_secret(canonical_bytes(body))
    key = {"v": "ACCA" + "X" * 16}
    assert Redactor.may_hold_secret(canonical_bytes(key))
    assert Redactor(KEY).redact(key)["v"].startswith("[REDACTED:aws-access-key:")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_network_requests_scheme_does_not_send_its_record_the_slow_way(scheme: str) -> None:
    # Every network.request record carries "scheme"; HTTPie's program names (http,
    # https) trigger the screen as a command or a list's item, never as a value.
    body = {
        "action": "network.request",
        "request": {
            "host": "api.example.com",
            "method": "GET",
            "path": "/v1",
            "port": 443,
            "scheme": scheme,
            "url": f"{scheme}://api.example.com/v1",
        },
        "reason": f"rule r6 allows network.request of api.example.com:443 over {scheme}",
    }
    assert not Redactor.may_hold_secret(canonical_bytes(body))
    assert Redactor(KEY).redact(body) is body


@pytest.mark.parametrize(
    "text",
    [
        "git clone ssh://git@github.com/o/r",  # a user name, not a token
        "https://first.last@example.com/x",  # a '.' in it: a person's name
        "https://deploy-bot-2026@example.com/x",  # under 20 characters
        "npm_config_registry=https://registry.npmjs.org",  # npm's own settings
        "hf_hub_download(repo_id)",  # too short for a Hugging Face token
        "https://example.com:443/users/@me",  # a port, then a path holding '@'
        "https://registry.npmjs.org/@scope/pkg",
    ],
)
def test_look_alikes_of_the_token_forms_are_kept(text: str) -> None:
    assert Redactor(KEY).redact({"v": text})["v"] == text


def test_urls_holding_a_password_with_a_slash_are_redacted_in_linear_time() -> None:
    # Tried from every "://": unbounded, a long line of them without an '@' would be
    # quadratic.
    redactor = Redactor(KEY)
    for text in ("x://u:p/" * 8000, "x://u:p/" * 8000 + "@", "a://b:c" + "/d" * 30_000 + "@"):
        started = time.perf_counter()
        redactor.redact({"v": text})
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, f"{elapsed:.2f}s for {len(text)} characters"


def test_a_url_token_redacted_once_is_left_alone() -> None:
    redactor = Redactor(KEY)
    once = redactor.redact_text("https://a1B2c3D4e5f6G7h8i9J0k1@github.com/o/r")
    assert "[REDACTED:url-credentials:" in once
    assert redactor.redact_text(once) == once


@pytest.mark.parametrize(
    ("tail", "redacted"),
    [
        ("://x@", False),
        ("://x:pw-9911@", True),
        ("://" + "T" * 24 + "@", True),
        ("://x:p/w@", True),
    ],
    ids=["user", "password", "token", "password-with-slash"],
)
def test_a_url_after_a_long_dotted_run_is_redacted_in_linear_time(
    tail: str, redacted: bool
) -> None:
    # The URL patterns tried the scheme from every word boundary of "a.a.a...": 60 KB
    # of it took 1.7 s per pattern, on the record path.
    text = "a." * 30_000 + tail
    started = time.perf_counter()
    out = Redactor(KEY).redact({"v": text})["v"]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.2f}s for {len(text)} characters"
    assert ("[REDACTED:url-credentials:" in out) is redacted
    assert out.startswith("a." * 30_000)


def test_already_redacted_text_is_left_alone() -> None:
    redactor = Redactor(KEY)
    once = redactor.redact_text("password=hunter2xyz")
    assert redactor.redact_text(once) == once


def test_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        Redactor(b"short")


_secretish = st.sampled_from([s for _, s, _ in SECRETS])
_filler = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(_filler, st.sampled_from([t for t, _, _ in SECRETS]), _filler)
def test_the_screen_and_the_literals_never_miss_what_a_pattern_would_redact(
    before: str, text: str, after: str
) -> None:
    value = before + text + after
    encoded = canonical_bytes({"v": value})
    hit = any(secret.regex.search(value) for secret in _PATTERNS)
    if hit:
        assert Redactor.may_hold_secret(encoded)
    _assert_matches_hold_a_literal(value)


def _assert_matches_hold_a_literal(value: str) -> None:
    # _rewrite skips a pattern on a string without its literals: that must never skip
    # a secret. (A pattern for one program's option, mysql's glued -p, matches anywhere
    # and applies only where the program is named: "-pAuthorization: …" is no password.)
    for secret in _PATTERNS:
        if secret.regex.search(value) and not secret.named_program:
            assert any(literal in value.lower() for literal in secret.literals), secret.kind


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_the_screen_is_a_superset_on_arbitrary_text(value: str) -> None:
    encoded = canonical_bytes({"v": value})
    if any(secret.regex.search(value) for secret in _PATTERNS):
        assert Redactor.may_hold_secret(encoded)
    _assert_matches_hold_a_literal(value)
    redacted = Redactor(KEY).redact({"v": value})["v"]
    if not Redactor.may_hold_secret(encoded):
        assert redacted == value


def test_words_that_only_name_a_secret_pass_the_screen_unless_something_is_assigned() -> None:
    redactor = Redactor(KEY)
    harmless = {
        "request": {"path": "/srv/app/secrets/key.pem", "k8s": {"resource": "secrets"}},
        "reason": "rule no-secrets denies file.read of /srv/app/secrets/key.pem",
    }
    assert not Redactor.may_hold_secret(canonical_bytes(harmless))
    assert redactor.redact(harmless) is harmless
    # A hit with nothing to redact (an empty quoted value) leaves the body as it is.
    empty = {"reason": 'the token="" form'}
    assert Redactor.may_hold_secret(canonical_bytes(empty))
    assert redactor.redact(empty) is empty
    # The same words with a value, in a string and as a key, are secrets.
    leaked = {"request": {"path": "/srv/app/x?token=abcdef0123456789"}, "apiToken": "hunter2"}
    assert Redactor.may_hold_secret(canonical_bytes(leaked))
    out = redactor.redact(leaked)
    assert "abcdef0123456789" not in str(out) and "hunter2" not in str(out)
    assert out["request"]["path"].startswith("/srv/app/x?token=[REDACTED:secret:")


# Pieces that make secret-looking keys and values: names with separators and case
# changes, assignments with every kind of whitespace and quote, and real secrets.
_piece = st.sampled_from(
    [
        *("secrets", "secret", "token", "password", "pass", "pwd", "Pass_Word", "API-KEY"),
        *("api_key", "apiKey", "credentials", "passphrase", "SecretAccessKey", "private-key"),
        *("t_o-ken", "Pass-Phrase_", "sEcReT", "\u212aey"),
        *("=", ":", " ", "\t", "\n", "\x0b", "\f", '"', "'", "x", "/srv/a", "-", "_", "@"),
        *("Bearer abcdefgh123", "://u:p@h", "abc123def456"),
        *("<", ">", "</", "<password>", "<ns:Api_Token a='1'>", "<![CDATA[", "]]>", "/>"),
        *(text for text, _, _ in SECRETS),
    ]
)
_mixed = st.lists(st.one_of(_piece, st.text(max_size=6)), max_size=6).map("".join)
_bodies = st.dictionaries(
    _mixed,
    st.recursive(
        st.one_of(_mixed, st.integers(), st.booleans(), st.none()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_mixed, inner, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=5,
)


@settings(max_examples=500, deadline=None)
@given(_bodies)
def test_nothing_redaction_would_change_passes_the_screen(body: dict) -> None:
    # The screen decides whether a record is redacted at all: a miss writes a secret in
    # clear.
    if Redactor(KEY).redact(body) != body:
        assert Redactor.may_hold_secret(canonical_bytes(body))


@settings(max_examples=500, deadline=None)
@given(_mixed)
def test_the_string_screen_flags_every_string_a_pattern_rewrites(text: str) -> None:
    # redact() only rewrites the strings this screen flags.
    if Redactor(KEY)._rewrite(text) != text:
        assert _SCREEN_TEXT.search(text) is not None


@pytest.mark.parametrize("name", ["password", "token", "client_secret", "apiKey", "credentials"])
@pytest.mark.parametrize(
    "gap",
    ["", " ", "\t", "\n", "\x0b", "\f", "\r", '"', "'", '" \t', "'\x0b\n", '\\"', "\\' "],
)
@pytest.mark.parametrize("sign", ["=", ":"])
def test_an_assignment_passes_both_screens_whatever_stands_between(
    name: str, gap: str, sign: str
) -> None:
    # Every gap the precise patterns allow (a quote, then any ASCII whitespace, which in
    # canonical JSON is partly escaped) must pass the screen of the record and the
    # screen of its strings.
    text = f"{name}{gap}{sign}s3cr3tvalue99"
    assert Redactor.may_hold_secret(canonical_bytes({"v": text}))
    assert "s3cr3tvalue99" not in Redactor(KEY).redact({"v": text})["v"]


@st.composite
def _spread_key(draw: st.DrawFn) -> str:
    """A key naming a secret, in any case, with '-' and '_' anywhere in its name."""
    name = draw(st.sampled_from(["token", "password", "apikey", "secretaccesskey", "pwd"]))
    # "pwd" (like "setcookie") names a secret only as the whole key; the others as its end.
    head = draw(st.text(max_size=4)) if name != "pwd" else ""
    letters = [
        (letter.upper() if draw(st.booleans()) else letter) + draw(st.sampled_from(GAPS))
        for letter in name
    ]
    return head + "".join(letters) + draw(st.sampled_from(GAPS))


GAPS = ["", "", "-", "_", "-_"]


@settings(max_examples=500, deadline=None)
@given(_spread_key(), st.text(max_size=10))
def test_every_secret_named_key_passes_the_screen(key: str, value: str) -> None:
    # However its name is spelled (case, '-' and '_' anywhere), a key whose values are
    # redacted whole must make the record take the slow path, whatever else it holds.
    assert secret_key_kind(key) is not None
    body = {"context": {key: value}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    if value and not value.startswith("[REDACTED:"):
        assert Redactor(KEY).redact(body)["context"][key].startswith("[REDACTED:")


def test_key_names_are_lowered_as_ascii_only() -> None:
    # A Kelvin sign lowers to "k" in Python but not in the RE2 screen: it names nothing.
    assert secret_key_kind("api\u212aey") is None
    assert secret_key_kind("API-KEY") == "api-key"


# (JSON text as a request body is kept in an invalidRequest record, the secret, kind)
ESCAPED = [
    ('{"commandLine": "mysql --password=\\"hunter22\\" -e x", "bogus": 1}', "hunter22", "password"),
    ('{"context": {"x": "{\\"password\\": \\"hunter22\\"}"}}', "hunter22", "password"),
    ('{"context": {"x": "{\\"api_token\\":\\"tok-99887766\\"}"}}', "tok-99887766", "secret"),
    ('{"h": "Authorization: Bearer abcdefghijkl123456\\""}', "abcdefghijkl123456", "authorization"),
    (
        '{"h": "{\\"Authorization\\": \\"Bearer abcdefghijkl123456\\"}"}',
        "abcdefghijkl123456",
        "authorization",
    ),
    ('{"h": "{\\"Cookie\\": \\"sid=s3ss10n\\"}"}', "sid=s3ss10n", "cookie"),
    ('{"commandLine": "login --password=\\"cut sh', "cut sh", "password"),  # body cut short
]

# Names ending in a secret word after "_" or "-", as environment variables are written.
PREFIXED = [
    ("env DB_PASSWORD=hunter22 ./migrate", "hunter22", "password"),
    ("MYSQL_PWD=hunter22 mysql -u app", "hunter22", "password"),
    ("GITHUB_TOKEN=tok99887766 make release", "tok99887766", "secret"),
    ("curl -d api_token=tok99887766 https://x", "tok99887766", "secret"),
    ("db-password: hunter22", "hunter22", "password"),
    ("PGPASSWORD=hunter22 psql -h db", "hunter22", "password"),
    ("export DBPASSWD='hunter 22'", "hunter 22", "password"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), PREFIXED)
def test_names_that_end_in_a_secret_word_are_redacted(text: str, secret: str, kind: str) -> None:
    out = Redactor(KEY).redact({"commandLine": text})["commandLine"]
    assert secret not in out and TAG.findall(out)[0][0] == kind, out


@pytest.mark.parametrize(
    "text", ["bypass=1", "compass=north", "DB_PASSWORD_FILE=/run/db", "PGPASSWORDFILE=/run/pw"]
)
def test_a_secret_word_inside_another_word_is_not_a_secret_name(text: str) -> None:
    assert Redactor(KEY).redact({"commandLine": text})["commandLine"] == text


@pytest.mark.parametrize(("text", "secret", "kind"), ESCAPED)
def test_secrets_behind_json_escaped_quotes_are_redacted_with_their_own_tag(
    text: str, secret: str, kind: str
) -> None:
    redactor = Redactor(KEY)
    body = {"body": text}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = redactor.redact(body)["body"]
    assert secret not in out, out
    # The tag is the secret's, not the secret's plus a stray backslash: an investigator
    # finds the same tag in the decision record and in the invalidRequest body.
    assert (kind, redactor.tag(kind, secret)[-9:-1]) in TAG.findall(out), out


# Found by a red-team review of 2026-12-06 (eighteenth session): "rm -rf
# /tmp/pwd=1/../../etc" was shown to an approver as "rm -rf /tmp/pwd=[REDACTED:...]", a
# delete in /tmp, where the command deletes /etc (the agent can make /tmp/pwd=1 first).
@pytest.mark.parametrize(
    ("text", "secret", "rest"),
    [
        ("rm -rf /tmp/pwd=1/../../etc", "1", "/../../etc"),
        ("rm -rf /tmp/password=abc123/../../etc/x", "abc123", "/../../etc/x"),
        ("cp f /srv/token=t0k/..", "t0k", "/.."),
        ("curl -u u:p/../x https://h", "p", "/../x https://h"),
    ],
)
def test_a_parent_directory_segment_is_never_hidden_in_a_tag(
    text: str, secret: str, rest: str
) -> None:
    redactor = Redactor(b"k" * 32)
    body = {"commandLine": text, "reason": f"rule r requires approval for {text}"}
    out = redactor.redact(body)
    tag = re.escape(redactor.tag(_kind_of(out), secret))
    for value in out.values():
        assert re.search(tag + re.escape(rest) + "$", value), value
    assert redactor.redact(out) == out


def _kind_of(out: dict[str, str]) -> str:
    found = re.search(r"\[REDACTED:([a-z-]+):", out["commandLine"])
    assert found is not None
    return found.group(1)


def test_a_secret_holding_dots_that_are_no_segment_is_tagged_whole() -> None:
    redactor = Redactor(b"k" * 32)
    assert redactor.redact_text("export DB_PASSWORD=a/..b") == (
        f"export DB_PASSWORD={redactor.tag('password', 'a/..b')}"
    )
