"""Secrets carried by one program's own options, and other forms the patterns missed.

``sshpass -p``, ``redis-cli -a``, ``docker login -p``, ``htpasswd -b``, keytool's
``-storepass``, an OAuth ``code=`` ...: each form is redacted, its near-misses (the same
option for another program, ``ssh -p PORT``) are not, and redacting a redacted record
changes nothing, for these forms and every form the other redaction tests list.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import _PATTERNS, _SCREEN_TEXT, Redactor
from sidecar.canonical import canonical_bytes
from tests.audit.conftest import assert_redacted_in_linear_time, idempotent_when_joined_test
from tests.audit.test_redact import ESCAPED, PREFIXED, SECRETS
from tests.audit.test_redact_forms import LEAKS
from tests.daemon import checked_through_a_gate

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")
PW = "Hunter2pw77"
PW2 = "Other9pw55"

# (command line, the secrets in it, the kind of the first tag, text that must be kept)
FORMS: list[tuple[str, tuple[str, ...], str, str]] = [
    (f"sshpass -p {PW} ssh -p 2222 host", (PW,), "password", "ssh -p 2222 host"),
    (f"sshpass -p{PW} ssh host", (PW,), "password", "sshpass -p["),
    ("sshpass -v -p 'two words' ssh host", ("two words",), "password", "ssh host"),
    (f"/usr/bin/sshpass -P assphrase -p {PW} ssh h", (PW,), "password", "-P assphrase"),
    (f"ssh -p 22 a && sshpass -p {PW} scp f b:", (PW,), "password", "ssh -p 22 a"),
    (f"redis-cli -h r -p 6380 -a {PW} ping", (PW,), "password", "-p 6380 -a ["),
    (f"valkey-cli -a {PW} --no-auth-warning get k", (PW,), "password", "get k"),
    (f"redis-cli --pass {PW} ping", (PW,), "password", "ping"),
    (f"REDISCLI_AUTH={PW} redis-cli ping", (PW,), "password", "redis-cli ping"),
    (f"redis-cli -u redis://default:{PW}@r:6379 ping", (PW,), "url-credentials", "redis://default:["),
    (f"keytool -list -keystore ks.jks -storepass {PW}", (PW,), "password", "-keystore ks.jks"),
    (f"keytool -importkeystore -srcstorepass {PW} -deststorepass {PW2}", (PW, PW2), "password", "-importkeystore"),
    (f"keytool -genkey -keypass {PW} -destkeypass {PW2} -alias a", (PW, PW2), "password", "-alias a"),
    (f"keytool -srckeypass '{PW}' -list", (PW,), "password", "-list"),
    (f"jarsigner -storepass {PW} -keypass {PW2} app.jar me", (PW, PW2), "password", "app.jar me"),
    (f"keytool -storepasswd -new {PW} -storepass {PW2}", (PW, PW2), "password", "-storepasswd -new ["),
    (f"curl 'https://idp/cb?code={PW}&state=xyz'", (PW,), "secret", "&state=xyz"),
    (f"open https://app/cb#code={PW}", (PW,), "secret", "https://app/cb#code=["),
    (
        f"curl -d 'grant_type=authorization_code&code={PW}&redirect_uri=https://a/cb' https://idp",
        (PW,),
        "secret",
        "&redirect_uri=https://a/cb",
    ),
    (f"curl -d 'code={PW}&grant_type=authorization_code' https://idp", (PW,), "secret", "&grant_type="),
    (f"curl --data-urlencode code={PW} https://idp/token", (PW,), "secret", "https://idp/token"),
    (f"curl -d code_verifier={PW} https://idp/token", (PW,), "secret", "code_verifier=["),
    # The device flow (RFC 8628): the device code is polled for the tokens.
    (f"curl -d device_code={PW} https://idp/token", (PW,), "secret", "device_code=["),
    (f"curl 'https://idp/token?device_code={PW}&x=1'", (PW,), "secret", "&x=1"),
    (f"curl -d client_secret={PW} -d refresh_token={PW2} https://idp", (PW, PW2), "secret", "https://idp"),
    (f"curl -d id_token={PW} https://idp", (PW,), "secret", "https://idp"),
    (f"docker login -u bot -p {PW} registry.io", (PW,), "password", "registry.io"),
    (f"podman login -p{PW} registry.io", (PW,), "password", "registry.io"),
    (f"docker --config /d login -p={PW} r.io", (PW,), "password", "--config /d login -p="),
    (f"sudo nerdctl login r.io -u bot -p '{PW}'", (PW,), "password", "-u bot"),
    (f"htpasswd -b /etc/nginx/.htpasswd bob {PW}", (PW,), "password", "/etc/nginx/.htpasswd bob"),
    (f"htpasswd -bc -C 10 f bob {PW} && nginx -s reload", (PW,), "password", "nginx -s reload"),
    (f"htpasswd -nbB bob {PW} > out", (PW,), "password", "bob [REDACTED:password:"),
    (f"htpasswd -n -b bob '{PW} x'", (f"{PW} x",), "password", "-n -b bob"),
    (f"openssl enc -aes-256-cbc -k {PW} -in f -out g", (PW,), "password", "-in f -out g"),
    (f"openssl rsa -in k -passin pass:{PW} -passout pass:{PW2}", (PW, PW2), "password", "-in k"),
    # Close relatives that were already redacted, kept here so they stay so.
    (f"mysql -uroot -p{PW} db", (PW,), "password", "-uroot"),
    (f"mysql --password={PW} db", (PW,), "password", "db"),
    (f"psql postgresql://app:{PW}@db:5432/x", (PW,), "url-credentials", "@db:5432/x"),
    (f"curl -u user:{PW} https://x", (PW,), "password", "user:"),
    (f"gh auth --token {PW}", (PW,), "secret", "gh auth"),
    (f"deploy --api-key {PW} --now", (PW,), "secret", "--now"),
    (f"PGPASSWORD={PW} psql -h db", (PW,), "password", "psql -h db"),
    (f"git clone https://bot:{PW}@github.com/o/r", (PW,), "url-credentials", "@github.com/o/r"),
    (f"docker login --password {PW} r.io", (PW,), "password", "r.io"),
]  # fmt: skip

# Command lines with nothing to redact: the same options for other programs, options
# that name a variable or a file, and code= that is no OAuth code.
NEAR_MISSES: list[str] = [
    "ssh -p 2222 host",
    "sshpass -e ssh -p 2222 host",
    "sshpass -f /run/pw ssh -p 2222 host",
    "docker run -p 8080:80 app",
    "docker run -p 8080:80 app login",
    "docker login --password-stdin registry.io",
    "mkdir -p /srv/app && cd /srv/app",
    "ls -a /tmp",
    "redis-cli ping; ls -a /tmp",
    "redis-cli --askpass -h r ping",
    "redis-cli -u redis://r:6379 ping",
    "tar -a -cf x.tgz dir",
    "keytool -list -storepass:env STOREPW",
    "keytool -list -storepass:file /run/pw -keystore ks.jks",
    "git checkout -b new feature",
    "curl 'https://api/x?status_code=404&zipcode=12345'",
    "echo exit code=1",
    "python -c 'exit(code=1)'",
    "htpasswd -c /etc/nginx/.htpasswd bob",
    "htpasswd -v file bob",
    "openssl s_client -connect h:443",
    "openssl rsa -passin env:KEYPW -in k",
    "git push -u origin main",
    "curl -u admin https://x",
]

# (argv, index of the item holding the secret, what that item keeps, the secret)
ARGV_FORMS: list[tuple[list[Any], int, str, str]] = [
    (["sshpass", "-p", PW, "ssh", "-p", "2222", "h"], 2, "", PW),
    (["/usr/bin/sshpass", f"-p{PW}", "ssh", "h"], 1, "-p", PW),
    (["sshpass", "-f", "-", "-p", PW, "ssh", "h"], 4, "", PW),
    (["redis-cli", "-h", "r", "-a", PW, "ping"], 4, "", PW),
    (["keydb-cli", "-a", PW], 2, "", PW),
    (["keytool", "-list", "-storepass", PW], 3, "", PW),
    (["keytool", "-list", "-srckeypass", PW], 3, "", PW),
    (["jarsigner", "-keypass", PW, "app.jar"], 2, "", PW),
    (["keytool", "-keypasswd", "-new", PW], 3, "", PW),
    (["docker", "login", "-u", "bot", "-p", PW, "r.io"], 5, "", PW),
    (["docker", "--config", "/d", "login", f"-p{PW}"], 4, "-p", PW),
    (["podman", "login", f"-p={PW}", "r.io"], 2, "-p=", PW),
    (["htpasswd", "-b", "f", "bob", PW], 4, "", PW),
    (["htpasswd", "-nb", "bob", PW], 3, "", PW),
    (["htpasswd", "-B", "-C", "12", "-b", "f", "bob", PW], 7, "", PW),
    (["openssl", "enc", "-k", PW, "-in", "f"], 3, "", PW),
    (["sudo", "mysql", f"-p{PW}", "db"], 2, "-p", PW),
    (["sshpass", "-p", 4711, "ssh", "h"], 2, "", "4711"),
]

ARGV_NEAR_MISSES: list[list[Any]] = [
    ["ssh", "-p", "2222", "host"],
    ["sshpass", "-e", "ssh", "-p", "2222", "host"],
    ["sshpass", "-f", "/run/pw", "ssh", "-p", "2222", "host"],
    ["docker", "run", "-p", "8080:80", "app"],
    ["docker", "run", "app", "login", "-p", "80"],
    ["ls", "-a", "/tmp"],
    ["redis-cli", "-u", "redis://r:6379", "ping"],
    ["keytool", "-list", "-storepass:env", "STOREPW"],
    ["htpasswd", "-c", "f", "bob"],
    ["curl", "-u", "redis://r:6379"],
]


def _redacted(text: str) -> str:
    body = {"request": {"commandLine": text}}
    # The record's screen must let it through to the precise patterns.
    assert Redactor.may_hold_secret(canonical_bytes(body)), text
    return str(Redactor(KEY).redact(body)["request"]["commandLine"])


@pytest.mark.parametrize(("text", "secrets", "kind", "kept"), FORMS)
def test_each_form_is_redacted_and_the_rest_of_the_command_kept(
    text: str, secrets: tuple[str, ...], kind: str, kept: str
) -> None:
    out = _redacted(text)
    for secret in secrets:
        # Replaced by its own tag (every secret of a form is of the same kind).
        assert secret not in out and Redactor(KEY).tag(kind, secret) in out, out
    assert TAG.findall(out)[0][0] == kind, out
    assert kept in out, out
    assert Redactor(KEY).redact_text(text) == out


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_left_alone(text: str) -> None:
    assert Redactor(KEY).redact({"commandLine": text}) == {"commandLine": text}
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(("argv", "index", "kept", "secret"), ARGV_FORMS)
def test_each_form_in_an_argv_list(argv: list[Any], index: int, kept: str, secret: str) -> None:
    body = {"request": {"argv": argv}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["request"]["argv"]
    assert out[index] == kept + Redactor(KEY).tag("password", secret)
    assert [a for i, a in enumerate(out) if i != index] == [
        a for i, a in enumerate(argv) if i != index
    ]


@pytest.mark.parametrize("argv", ARGV_NEAR_MISSES)
def test_argv_near_misses_are_left_alone(argv: list[Any]) -> None:
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


def test_a_json_body_carrying_an_oauth_code_verifier() -> None:
    body = {"request": {"context": {"code_verifier": PW, "codeVerifier": PW2, "code": 200}}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["request"]["context"]
    assert out["code_verifier"] == Redactor(KEY).tag("secret", PW)
    assert out["codeVerifier"] == Redactor(KEY).tag("secret", PW2)
    assert out["code"] == 200  # a status code is no secret


def test_a_json_body_carrying_an_oauth_device_code() -> None:
    body = {"request": {"context": {"device_code": PW, "deviceCode": PW2, "user_code": "WDJB"}}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["request"]["context"]
    assert out["device_code"] == Redactor(KEY).tag("secret", PW)
    assert out["deviceCode"] == Redactor(KEY).tag("secret", PW2)
    assert out["user_code"] == "WDJB"  # shown to the person who approves: no secret


_filler = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_form_texts = [text for text, _, _, _ in FORMS]


@settings(max_examples=400, deadline=None)
@given(_filler, st.sampled_from(_form_texts), _filler)
def test_the_screens_never_miss_what_a_pattern_would_redact(
    before: str, text: str, after: str
) -> None:
    value = before + text + after
    if any(secret.regex.search(value) for secret in _PATTERNS):
        assert Redactor.may_hold_secret(canonical_bytes({"v": value}))
        assert _SCREEN_TEXT.search(value) is not None
    for secret in _PATTERNS:
        # mysql's -ppw is the one pattern whose literals are a condition, not a part of
        # every match ("-p2222" is not a password unless the string names mysql).
        if "mysql" not in secret.literals and secret.regex.search(value):
            assert any(literal in value.lower() for literal in secret.literals), secret.kind


# Every form the redaction tests list, as text and as request bodies.
_ALL_TEXTS = [
    *_form_texts,
    *NEAR_MISSES,
    *(text for text, _, _ in SECRETS),
    *(text for text, _, _ in PREFIXED),
    *(text for text, _, _ in ESCAPED),
]
_ALL_BODIES: list[dict[str, Any]] = [
    *({"request": request} for request, _ in LEAKS),
    *({"argv": argv} for argv, _, _, _ in ARGV_FORMS),
    *({"argv": argv} for argv in ARGV_NEAR_MISSES),
]


@pytest.mark.parametrize("text", _ALL_TEXTS)
def test_redacting_twice_changes_nothing(text: str) -> None:
    redactor = Redactor(KEY)
    once = redactor.redact_text(text)
    assert redactor.redact_text(once) == once
    body = redactor.redact({"commandLine": text})
    assert redactor.redact(body) == body


@pytest.mark.parametrize("body", _ALL_BODIES)
def test_redacting_a_redacted_body_changes_nothing(body: dict[str, Any]) -> None:
    redactor = Redactor(KEY)
    once = redactor.redact(body)
    assert redactor.redact(once) == once


test_redaction_is_idempotent_on_forms_joined_with_anything = idempotent_when_joined_test(
    _ALL_TEXTS, _filler, examples=500
)


# A line continuation (backslash, newline) between an option and its value, as a script
# wrapped for reading writes one: the shell removes it. Redacted again, the first
# pass's "\\<newline>" before the tag was taken for a value of its own, and curl's
# "-u \\<newline>user:pw" was not read at all.
CONTINUED = [
    ("sshpass -p \\\n{pw} ssh h", "password"),
    ("sshpass -p\\\n {pw} ssh h", "password"),
    ("sshpass -p\\\n{pw} ssh h", "password"),
    ("redis-cli -a \\\n{pw} ping", "password"),
    ("docker login -p \\\n{pw} r.io", "password"),
    ("keytool -new \\\n{pw} -keystore ks", "password"),
    ("openssl enc -k \\\n{pw} -in f", "password"),
    ("htpasswd -b f u \\\n{pw}", "password"),
    ("mysql --password \\\n{pw} db", "password"),
    ("app --api-key \\\n{pw}", "secret"),
    ("curl -u \\\nbob:{pw} https://x", "password"),
    ("curl -u\\\nbob:{pw} https://x", "password"),
    ("aws configure set aws_secret_access_key \\\n{pw}", "secret"),
]


@pytest.mark.parametrize(("form", "kind"), CONTINUED)
def test_a_value_after_a_line_continuation_is_redacted_once(form: str, kind: str) -> None:
    redactor = Redactor(KEY)
    text = form.format(pw=PW)
    for once in (redactor.redact({"commandLine": text})["commandLine"], redactor.redact_text(text)):
        assert once == text.replace(PW, redactor.tag(kind, PW))
        assert redactor.redact_text(once) == once
        assert redactor.redact({"commandLine": once})["commandLine"] == once


# git's http.extraheader, whatever the header is called: its value, the name kept when
# written as one ("X-Auth: "), the whole value otherwise.
EXTRA_HEADERS = [
    ('git -c http.extraheader="X-Auth: {pw}" clone https://h/r', "X-Auth: "),
    ("git -c 'http.https://h/.extraheader=X-Auth: {pw}' fetch", "X-Auth: "),
    ('git config --global http.extraheader "X-Auth: {pw}"', "X-Auth: "),
    ("git config --global http.https://h/.extraheader 'X-Auth: {pw}'", "X-Auth: "),
    ("git -c http.extraheader={pw} clone https://h/r", ""),
    ("git -c HTTP.ExtraHeader={pw} clone https://h/r", ""),
]


@pytest.mark.parametrize(("form", "kept"), EXTRA_HEADERS)
def test_a_git_extra_header_is_redacted_whatever_its_name(form: str, kept: str) -> None:
    redactor = Redactor(KEY)
    text = form.format(pw=PW)
    once = redactor.redact_text(text)
    assert once == text.replace(PW, redactor.tag("secret", PW))
    assert kept + "[REDACTED:" in once
    assert redactor.redact_text(once) == once


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("X-Auth: a b;c", "a b;c"),  # one list item is one word, to its end
        ("a1:b2", "a1:b2"),  # no white space after the colon: maybe the secret's own
        ("$'a b'", "$'a b'"),
    ],
)
def test_a_git_extra_header_in_a_list_is_redacted_to_its_end(value: str, secret: str) -> None:
    redactor = Redactor(KEY)
    head = value[: len(value) - len(secret)]
    joined = redactor.redact({"argv": ["git", "-c", f"http.extraheader={value}", "clone"]})
    assert joined["argv"][2] == f"http.extraheader={head}" + redactor.tag("secret", secret)
    apart = redactor.redact({"argv": ["git", "config", "http.https://h/.extraheader", value]})
    assert apart["argv"][3] == head + redactor.tag("secret", secret)
    assert redactor.redact(joined) == joined and redactor.redact(apart) == apart


def test_extra_headers_are_read_in_linear_time() -> None:
    # Every opening quote is scanned once: one never closed runs to the end of the text.
    assert_redacted_in_linear_time(
        ['"http.extraheader=x\\', "http.", "'http.extraheader=", "http.extraheader=X:"],
        tail="extraheader",
    )


test_continued_and_extra_header_forms_joined_with_anything_redact_idempotently = (
    idempotent_when_joined_test(
        [form.format(pw=PW) for form, _ in CONTINUED + EXTRA_HEADERS], _filler
    )
)


POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""


def test_the_gate_writes_these_forms_redacted_to_its_trail(tmp_path: Path) -> None:
    # Through the real gate: /check with each command line, then the trail on disk.
    checks = [
        (f"sshpass -p {PW}1 ssh -p 2222 deploy@host", f"{PW}1", "ssh -p 2222 deploy@host"),
        (f"redis-cli -h cache -a {PW}2 ping", f"{PW}2", "redis-cli -h cache -a [REDACTED:"),
        (f"keytool -list -keystore ks.jks -storepass {PW}3", f"{PW}3", "-keystore ks.jks"),
        (f"curl 'https://idp/cb?code={PW}4&state=s1'", f"{PW}4", "&state=s1"),
        (f"docker login -u bot -p {PW}5 registry.io", f"{PW}5", "-u bot -p [REDACTED:"),
        (f"htpasswd -b /etc/nginx/.htpasswd bob {PW}6", f"{PW}6", "/etc/nginx/.htpasswd bob"),
    ]
    argv = ["sshpass", "-p", f"{PW}7", "ssh", "-p", "2222", "host"]
    requests = [{"action": "process.exec", "commandLine": command} for command, _, _ in checks]
    daemon, everything = checked_through_a_gate(
        tmp_path, POLICY, [*requests, {"action": "process.exec", "argv": argv}]
    )
    for index in range(1, 8):
        assert f"{PW}{index}".encode() not in everything
    decisions = [r["request"] for r in daemon.records() if r["type"] == "decision"]
    # The policy allows none of them (each answer was a deny).
    assert all(r["type"] != "decision" or r["allowed"] is False for r in daemon.records())
    command_lines = [r["commandLine"] for r in decisions if "commandLine" in r]
    # The gate's redaction key is its own: the tags are not ours to recompute.
    for (_, secret, kept), written in zip(checks, command_lines, strict=True):
        assert secret not in written and kept in written and TAG.search(written), written
    argv_written = next(r["argv"] for r in decisions if "argv" in r)
    assert argv_written[:2] == ["sshpass", "-p"] and argv_written[3:] == argv[3:]
    assert argv_written[2].startswith("[REDACTED:password:")


# A program's name repeated in one command: each pattern reading a program's arguments
# scanned from every name to the end of the command, quadratic in its length (a 40 KB
# command line took seconds per pattern, and the trail's writer waits on it).
REPEATED_PROGRAMS = [
    "redis-cli ",
    "keytool ",
    "openssl ",
    "docker login ",
    "docker -a ",
    "docker -a /docker ",
]


@pytest.mark.parametrize("word", REPEATED_PROGRAMS)
def test_a_program_name_repeated_is_redacted_in_linear_time(word: str) -> None:
    redactor = Redactor(KEY)
    command = word * (40_000 // len(word))
    started = time.perf_counter()
    text = redactor.redact_text(command + "x")  # no option with a secret: none found
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.2f}s for {len(command)} characters"
    assert text == command + "x"


@pytest.mark.parametrize(
    "pair",
    [("mysql", "db"), ("mysql", "-ppw"), ("redis-cli", "-a"), ("docker", "--config"),
     ("docker", "login"), ("openssl", "-k")],
    ids=lambda pair: " ".join(pair),
)  # fmt: skip
def test_an_argv_naming_a_program_thousands_of_times_is_redacted_in_linear_time(
    pair: tuple[str, str],
) -> None:
    # Each item naming the program used to start a scan to the end of the list: 4,000
    # "mysql" items took about 5 s, "docker --config" pairs 2.4 s, on the record path.
    redactor = Redactor(KEY)
    items = list(pair) * 4000
    started = time.perf_counter()
    redacted = redactor.redact({"argv": items})["argv"]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.2f}s for {len(items)} items"
    assert len(redacted) == len(items)


def test_a_program_named_again_in_an_argv_still_ends_at_its_secret() -> None:
    redactor = Redactor(KEY)
    for argv in (
        ["mysql", "-h", "mysql", "-p" + PW],
        ["redis-cli", "-h", "redis-cli", "-a", PW],
        ["docker", "--config", "docker", "login", "-p", PW],
        ["docker", "login", "-u", "docker", "-p", PW],
        # More global options than docker has: the rest is read as login's options.
        ["docker", *["--tlsverify"] * 100, "-p", PW],
        # A list is read once, each run of a program resumed after the items the last one
        # read: a second command after the first's secret, or the program's name read
        # as that secret, starts its own.
        ["vault", "login", "t1", "&&", "vault", "login", PW],
        ["poetry", "config", "pypi-token.a", "t1", "poetry", "config", "pypi-token.b", PW],
        ["cargo", "login", "cargo", "login", PW],
    ):
        redacted = redactor.redact({"argv": argv})["argv"]
        assert PW not in str(redacted), argv
        assert len(redacted) == len(argv)


def test_a_name_repeated_later_in_the_command_still_ends_at_its_secret() -> None:
    redactor = Redactor(KEY)
    for line in (
        f"redis-cli -h redis-cli -a {PW}",
        f"docker login -u docker -p {PW} registry",
        f"keytool -alias keytool -new {PW}",
        f"openssl enc -in openssl -k {PW}",
        f"docker --config /docker login -p {PW}",
    ):
        assert PW not in redactor.redact_text(line), line
