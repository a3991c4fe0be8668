"""Credentials an agent's everyday commands carry, found in clear in the trail by the
red-team review rt26 (R1, R2, R4): values written to secret stores (``aws ssm
put-parameter --value``, ``az keyvault secret set --value``, standard input fed to
``gcloud secrets ... --data-file=-``, ``docker secret create NAME -``, ``gh secret set``,
``vault login -``), curl's cookies and a proxy's password without a scheme, skopeo's and
buildah's ``--creds``, and ``-p`` after ``helm registry login``, ``oc login``, ``twine
upload`` and ``poetry publish``, ``poetry config pypi-token.NAME``, ``cargo login
TOKEN``. The same words stay readable where they carry none (``curl -b cookies.txt``,
``oc process -p``, ``cargo new login``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from tests.audit.conftest import (
    assert_argv_redacted_in_linear_time,
    assert_redacted_in_linear_time,
    assert_tagged_in_place,
    idempotent_when_joined_test,
)
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("text", "secrets", "kind"),
    [
        # R1: secret stores.
        (
            "aws ssm put-parameter --name /prod/db/password --type SecureString --value 'pw1 x'",
            ["pw1 x"],
            "secret",
        ),
        (
            "aws --region eu-west-1 ssm put-parameter --name p --value=pw1 --overwrite",
            ["pw1"],
            "secret",
        ),
        (
            "az keyvault secret set --vault-name kv --name db-password --value pw1",
            ["pw1"],
            "secret",
        ),
        (
            "echo -n 'pw1' | gcloud secrets versions add db-password --data-file=-",
            ["pw1"],
            "secret",
        ),
        (
            "echo pw1 | gcloud secrets create db --data-file - --replication-policy=automatic",
            ["pw1"],
            "secret",
        ),
        ("printf 'pw1' | docker secret create db_password -", ["pw1"], "secret"),
        ("echo pw1 | docker secret create --label a=b db -", ["pw1"], "secret"),
        ("docker secret create db - <<< pw1", ["pw1"], "secret"),
        ("echo 'pw1' | gh secret set DB_PASSWORD", ["pw1"], "secret"),
        ("gh secret set DB_PASSWORD <<< 'pw1'", ["pw1"], "secret"),
        ("echo 'pw1' | vault login -", ["pw1"], "secret"),
        ("echo pw1 | vault login -method token -", ["pw1"], "secret"),
        ('bash -c "echo pw1 | vault login -"', ["pw1"], "secret"),
        ("echo pw1 | cargo login", ["pw1"], "secret"),
        # R2: curl's cookies and proxy, skopeo's and buildah's --creds.
        ("curl -b 'session=pw1' https://app.example.com/api/me", ["session=pw1"], "cookie"),
        ("curl --cookie 'a=pw1; b=pw2' https://h", ["a=pw1; b=pw2"], "cookie"),
        ("curl --cookie=sid=pw1 https://h", ["sid=pw1"], "cookie"),
        ("curl -x alice:pw1@proxy.corp:3128 https://example.com", ["pw1"], "password"),
        ("curl --proxy alice:p@w1@proxy.corp:3128 https://example.com", ["p@w1"], "password"),
        ("pip install --proxy 'alice:p w1@proxy:3128' requests", ["p w1"], "password"),
        ("skopeo copy --dest-creds bob:pw1 docker://a docker://quay.io/b/c", ["pw1"], "password"),
        ("skopeo copy --src-creds=bob:pw1 docker://a docker://b", ["pw1"], "password"),
        ("buildah push --creds bob:pw1 img docker://quay.io/b/c", ["pw1"], "password"),
        # R4: -p after a login or an upload, positional tokens.
        ("helm registry login registry.example.com -u bob -p pw1", ["pw1"], "password"),
        ("oc login -u developer -p pw1 https://api.crc.testing:6443", ["pw1"], "password"),
        ("oc login https://api -u dev -p=pw1", ["pw1"], "password"),
        # Long options, tagged before rt26 too: the same commands' other spellings.
        ("oc login --token sha256~pw1", ["sha256~pw1"], "secret"),
        ("oc login --password pw1", ["pw1"], "password"),
        ("helm registry login r.io -u bob --password pw1", ["pw1"], "password"),
        ("twine upload -u __token__ -p pw1 dist/*", ["pw1"], "password"),
        ("twine upload --password pw1 dist/*", ["pw1"], "password"),
        ("poetry publish -u bob -p pw1", ["pw1"], "password"),
        ("poetry publish -u bob --password pw1", ["pw1"], "password"),
        ("cf login -a https://api -u me -p pw1", ["pw1"], "password"),
        ("poetry config pypi-token.pypi pw1", ["pw1"], "secret"),
        ("poetry config --local pypi-token.test pw1", ["pw1"], "secret"),
        ("poetry config http-basic.foo bob pw1", ["pw1"], "password"),
        ("cargo login pw1", ["pw1"], "secret"),
        ("cargo +nightly login --registry crates pw1", ["pw1"], "secret"),
    ],
)
def test_the_secret_is_tagged(text: str, secrets: list[str], kind: str) -> None:
    assert_tagged_in_place(text, secrets, kind)


@pytest.mark.parametrize(
    "text",
    [
        "aws ssm get-parameter --name p --with-decryption",
        "aws ssm put-parameter --name p --type String --cli-input-json file://p.json",
        "gcloud secrets versions add db --data-file=./pw.txt",
        "echo hi | gcloud secrets versions access latest",
        "docker secret create db ./pw.txt",
        "echo hi | docker secret ls",
        "gh secret set TOKEN < token.txt",
        "echo hi | gh issue create --body-file -",
        "curl -b cookies.txt -c jar.txt https://h",
        "curl --cookie jar.txt https://h",
        "curl -x proxy.corp:3128 https://example.com",
        "curl -x alice@proxy.corp:3128 https://example.com",
        "oc process -p PARAM=value",
        "helm install app ./chart",
        "poetry add -D pytest",
        "poetry config virtualenvs.in-project true",
        "poetry config --unset http-basic.foo",
        "cargo new login",
        "cargo run --bin login -- user",
        "cargo login",
        "twine check dist/*",
    ],
)
def test_where_no_secret_stands_the_text_is_kept(text: str) -> None:
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(
    ("argv", "index", "head", "tail", "kind"),
    [
        (["aws", "ssm", "put-parameter", "--name", "p", "--value", "pw1"], 6, "", "", "secret"),
        (["aws", "ssm", "put-parameter", "--value=pw1"], 3, "--value=", "", "secret"),
        (["az", "keyvault", "secret", "set", "--name", "n", "--value", "pw1"], 7, "", "", "secret"),
        (["curl", "--cookie", "sid=pw1", "https://h"], 2, "", "", "cookie"),
        (["curl", "-bsid=pw1", "https://h"], 1, "-b", "", "cookie"),
        (
            ["curl", "-x", "alice:pw1@proxy:3128", "https://h"],
            2,
            "alice:",
            "@proxy:3128",
            "password",
        ),
        (
            ["curl", "--proxy=alice:pw1@proxy", "https://h"],
            1,
            "--proxy=alice:",
            "@proxy",
            "password",
        ),
        (
            ["pip", "install", "--proxy", "alice:pw1@proxy:3128", "x"],
            3,
            "alice:",
            "@proxy:3128",
            "password",
        ),
        (["skopeo", "copy", "--dest-creds", "bob:pw1", "docker://a"], 3, "bob:", "", "password"),
        (["buildah", "push", "--creds=bob:pw1", "img"], 2, "--creds=bob:", "", "password"),
        (["helm", "registry", "login", "r.io", "-u", "bob", "-p", "pw1"], 7, "", "", "password"),
        (["oc", "login", "-u", "dev", "-p", "pw1", "https://api"], 5, "", "", "password"),
        (["oc", "login", "-ppw1"], 2, "-p", "", "password"),
        (["twine", "upload", "-u", "__token__", "-p", "pw1", "dist/x"], 5, "", "", "password"),
        (["poetry", "publish", "-u", "bob", "-p", "pw1"], 5, "", "", "password"),
        (["poetry", "config", "pypi-token.pypi", "pw1"], 3, "", "", "secret"),
        (["poetry", "config", "http-basic.foo", "bob", "pw1"], 4, "", "", "password"),
        (["cargo", "login", "pw1"], 2, "", "", "secret"),
        (["cargo", "+nightly", "login", "--registry", "crates", "pw1"], 5, "", "", "secret"),
    ],
)
def test_an_argv_item_is_tagged(
    argv: list[str], index: int, head: str, tail: str, kind: str
) -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"argv": argv})["argv"]
    secret = argv[index][len(head) : len(argv[index]) - len(tail)]
    assert "pw1" in secret
    assert out[index] == head + redactor.tag(kind, secret) + tail
    assert [item for i, item in enumerate(out) if i != index] == [
        item for i, item in enumerate(argv) if i != index
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["aws", "ssm", "get-parameter", "--name", "p"],
        ["az", "keyvault", "secret", "show", "--name", "n"],
        ["curl", "-b", "cookies.txt", "https://h"],
        ["curl", "-x", "proxy.corp:3128", "https://h"],
        ["oc", "process", "-p", "PARAM=value"],
        ["podman", "run", "-p", "8080:80", "img"],
        ["poetry", "config", "virtualenvs.in-project", "true"],
        ["cargo", "new", "login"],
        ["cargo", "run", "--bin", "login", "--", "user"],
    ],
)
def test_an_argv_without_a_secret_is_kept(argv: list[str]) -> None:
    body: dict[str, Any] = {"argv": argv}
    assert Redactor(KEY).redact(body) == body


def test_these_forms_are_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(
        [
            "echo a | secret create a ",
            "echo a | secrets create a ",
            "echo a | vault login -a ",
            "helm registry login ",
            "oc login oc ",
            "poetry config ",
            "cargo login -a ",
            # Each naming of cargo read its options to the end of the text: an option
            # value was allowed to be the next "cargo".
            "cargo --registry ",
            "cargo -Z ",
            "aws ssm put-parameter ",
            "curl -x a:b ",
            # A "-x" or "--proxy" before another trigger (hf_) in one long word, no ':' or
            # '@' after it: each match of the screen waited for the proxy trigger, open to
            # the end of the text.
            "-xhf_",
            "--proxyhf_",
            "-xa:hf_",
            "skopeo --creds ",
        ]
    )


def test_a_list_naming_these_programs_again_and_again_is_read_in_linear_time() -> None:
    # Each naming of the program used to rescan the rest of the list: 4,096 items of
    # cargo login took 5.4 s through the gate, the event loop blocked meanwhile.
    assert_argv_redacted_in_linear_time(
        [
            ["cargo", "login"],
            ["cargo", "+x"],
            ["cargo", "--registry", "r"],
            ["cargo", "login", "-Z", "cargo", "-Z"],
            ["poetry", "config"],
            ["poetry", "config", "http-basic.a"],
            ["az", "keyvault", "secret", "set"],
            ["gh", "secret", "set"],
            ["gh", "x"],
            ["vault", "login"],
            ["vault", "x"],
        ]
    )


test_these_forms_joined_with_anything_redact_idempotently = idempotent_when_joined_test(
    [
        "aws ssm put-parameter --value pw1",
        "echo pw1 | docker secret create n -",
        "echo pw1 | gh secret set T",
        "curl -b a=pw1 -x u:pw2@proxy h",
        "skopeo copy --creds u:pw1",
        "oc login -p pw1",
        "poetry config http-basic.x u pw1",
        "cargo login pw1",
    ]
)


def test_no_such_secret_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
"""
    lines = [
        "aws ssm put-parameter --name /p --type SecureString --value 'Qa1Qa1'",
        "echo -n 'Qb2Qb2' | gcloud secrets versions add db --data-file=-",
        "printf 'Qc3Qc3' | docker secret create db -",
        "echo 'Qd4Qd4' | gh secret set DB_PASSWORD",
        "echo 'Qe5Qe5' | vault login -",
        "curl -b 'session=Qf6Qf6' -x alice:Qg7Qg7@proxy.corp:3128 https://h",
        "skopeo copy --dest-creds bob:Qh8Qh8 docker://a docker://b",
        "helm registry login r.io -u bob -p Qi9Qi9",
        "poetry config pypi-token.pypi Qj0Qj0",
        "cargo login Qk1Qk1",
    ]
    requests: list[dict[str, Any]] = [
        {"action": "process.exec", "commandLine": line, "cwd": "/app"} for line in lines
    ]
    requests.append(
        {"action": "process.exec", "argv": ["az", "keyvault", "secret", "set", "--value", "Ql2Ql2"]}
    )
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200] * len(requests)
    for core in ("Qa1Qa1", "Qb2Qb2", "Qc3Qc3", "Qd4Qd4", "Qe5Qe5", "Qf6Qf6", "Qg7Qg7"):
        assert core.encode() not in everything, core
    for core in ("Qh8Qh8", "Qi9Qi9", "Qj0Qj0", "Qk1Qk1", "Ql2Ql2"):
        assert core.encode() not in everything, core
    # The words around them stay readable.
    for kept in (b"-x alice:[REDACTED:password:", b"]@proxy.corp:3128", b"--dest-creds bob:"):
        assert kept in everything, kept
    assert b"gh secret set DB_PASSWORD" in everything
