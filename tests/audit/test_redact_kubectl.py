"""Values given on kubectl's (and oc's) command line: the VALUE of
``kubectl create secret generic NAME --from-literal=KEY=VALUE``, of ``--env=NAME=VALUE``
(``kubectl run``, ``kubectl set env``, ``oc new-app``) and of the ``NAME=VALUE``
arguments of ``kubectl set env``, whatever KEY is called (review of 2026-12-06, F3:
``--from-literal=live=...`` was written in clear, only ``password=``-like keys were not).

Each form is redacted in a ``commandLine`` and in an ``argv`` list with ``KEY=`` kept,
the look-alikes (``--from-file=KEY=PATH``, ``kubectl get secret NAME``, a selector
``-l app=web``) are not, the screens let every form through, redacting twice changes
nothing, and a command line or a list naming kubectl thousands of times stays linear.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.audit.redact import _PATTERNS, _SCREEN_TEXT, Redactor
from sidecar.canonical import canonical_bytes
from tests.daemon import checked_through_a_gate

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")
LIVE = "Zq8vR2mK9xLp4Tw7"
PW = "hunter2XYZ"
PW2 = "Other9pw55"
HOOK = f"https://hooks.slack.com/services/T0AAAA/B0BBBB/{LIVE}"


def _tag(secret: str) -> str:
    return Redactor(KEY).tag("secret", secret)


# (command line, the secrets in it, text that must be kept)
FORMS: list[tuple[str, tuple[str, ...], str]] = [
    # The reviewer's reproduction (F3), as the gate wrote it in clear.
    (f"kubectl create secret generic stripe --from-literal=live={LIVE}", (LIVE,), "--from-literal=live=["),
    (f"kubectl create secret generic hooks --from-literal=url={HOOK}", (HOOK,), "--from-literal=url=["),
    (f"kubectl create secret generic app --from-literal=dsn={LIVE} -n shop", (LIVE,), "--from-literal=dsn=[REDACTED:secret:"),
    (f"kubectl create secret generic basic --from-literal=auth=admin:{LIVE}", (f"admin:{LIVE}",), "--from-literal=auth=["),
    (f"kubectl create secret generic enc --from-literal=key={LIVE}", (LIVE,), "--from-literal=key=["),
    (f"kubectl create secret generic enc --from-literal=ENCRYPTION_KEY={LIVE}", (LIVE,), "ENCRYPTION_KEY=["),
    (f"kubectl set env deploy/web STRIPE={PW}", (PW,), "kubectl set env deploy/web STRIPE=["),
    # Two words, several values, everything after the first '=', other options around.
    (f"kubectl create secret generic stripe --from-literal live={LIVE}", (LIVE,), "--from-literal live=["),
    (
        f"kubectl -n shop create secret generic s --from-literal=user={PW} --from-literal live={LIVE} --dry-run=client -o yaml",
        (PW, LIVE),
        "--dry-run=client -o yaml",
    ),
    (f"kubectl create secret generic s --from-literal=live=a=b{LIVE}", (f"a=b{LIVE}",), "--from-literal=live=["),
    (f"kubectl create secret generic s --from-literal=password={LIVE}", (LIVE,), "--from-literal=password=["),
    (f"kubectl create secret generic s --from-file=tls.key=/run/k.pem --from-literal=live={LIVE}", (LIVE,), "--from-file=tls.key=/run/k.pem"),
    # Quoted whole or in part.
    (f"kubectl create secret generic s --from-literal='live={LIVE} x'", (f"{LIVE} x",), "--from-literal='live=["),
    (f'kubectl create secret generic s --from-literal="live={LIVE} x"', (f"{LIVE} x",), '--from-literal="live=['),
    (f"kubectl create secret generic s --from-literal=live='{LIVE} x'", (f"{LIVE} x",), "--from-literal=live='["),
    (f"kubectl create secret generic s '--from-literal=live={LIVE} x'", (f"{LIVE} x",), "'--from-literal=live=["),
    (f"kubectl create secret generic s --from-literal live=\"{LIVE} x\" -n shop", (f"{LIVE} x",), "-n shop"),
    # OpenShift's oc, kustomize, a path, a line continuation, inside sh -c.
    (f"oc create secret generic stripe --from-literal=live={LIVE}", (LIVE,), "oc create secret generic stripe"),
    (f"kustomize edit add secret stripe --from-literal=live={LIVE}", (LIVE,), "--from-literal=live=["),
    (f"/usr/local/bin/kubectl create secret generic s \\\n  --from-literal=live={LIVE}", (LIVE,), "\\\n  --from-literal=live=["),
    (f"sh -c 'kubectl create secret generic s --from-literal=live={LIVE}'", (LIVE,), "sh -c 'kubectl"),
    # kubectl set env: every NAME=VALUE argument, and --env / -e.
    (f"kubectl set env deploy/web STRIPE={PW} OTHER={PW2} -c app", (PW, PW2), "-c app"),
    (f"oc set env dc/web STRIPE={PW}", (PW,), "oc set env dc/web STRIPE=["),
    (f"kubectl -n shop set env deploy/web --overwrite STRIPE={PW}", (PW,), "--overwrite STRIPE=["),
    (f"kubectl set env deploy/web --env=STRIPE={PW} -e OTHER={PW2}", (PW, PW2), "-e OTHER=["),
    (f"kubectl set env deploy/web 'GREETING={PW} x' STRIPE=\"{PW2}\"", (f"{PW} x", PW2), "'GREETING=["),
    (f"echo ok; kubectl set env deploy/web STRIPE={PW} && echo done", (PW,), "&& echo done"),
    (f"kubectl set env deploy/web DB_PASSWORD={PW}", (PW,), "DB_PASSWORD=["),
    # kubectl run --env, oc new-app -e.
    (f"kubectl run web --image=nginx --env=STRIPE={PW} --env OTHER={PW2} --port=80", (PW, PW2), "--port=80"),
    (f'kubectl run web --image=nginx --env="GREETING={PW} x" --restart=Never', (f"{PW} x",), "--restart=Never"),
    (f'kubectl run web --image=nginx "--env=GREETING={PW} x"', (f"{PW} x",), '"--env=GREETING=['),
    (f"oc new-app nginx -e STRIPE={PW} --name web", (PW,), "--name web"),
    # A value is a whole word: an unquoted ';' in it does not cut it (the rest is kept as
    # its own command), nor does an escaped one; JSON text holding the command.
    (f"kubectl set env deploy/web STRIPE={PW};x -c app", (f"{PW};x",), "-c app"),
    (f"kubectl set env deploy/web STRIPE={PW}\\;x OTHER={PW2}", (f"{PW}\\;x", PW2), "OTHER=["),
    (json.dumps({"commandLine": f"kubectl set env deploy/web STRIPE={PW} OTHER={PW2}"}), (PW, PW2), "OTHER=["),
    (json.dumps({"commandLine": f'kubectl run web --env="A={PW} x"'}), (f"{PW} x",), '--env=\\"A=['),
    # A config map's literal too: the option says nothing of what its value is.
    ("kubectl create configmap app --from-literal=LOG_LEVEL=debug1", ("debug1",), "--from-literal=LOG_LEVEL=["),
]  # fmt: skip

# Command lines with nothing to redact: paths, names, selectors, other subcommands.
NEAR_MISSES: list[str] = [
    "kubectl create secret generic tls --from-file=tls.key=/run/keys/k.pem",
    "kubectl create secret generic s --from-file=./k.pem --from-env-file=.env",
    "kubectl get secret stripe -o yaml",
    "kubectl get secrets -n shop",
    "kubectl describe secret stripe",
    "kubectl get pods -l app=web",
    "kubectl get pods --selector=app=web,tier=front",
    "kubectl label pod web app=web",
    "kubectl annotate pod web note=hello",
    "kubectl set image deploy/web app=nginx:1.25",
    "kubectl set env deploy/web --list",
    "kubectl set env deployments -l app=web --list",
    "kubectl set env deploy/web -o jsonpath={.spec} --list",
    "kubectl set env deploy/web STRIPE-",
    "kubectl set env deploy/web --from=secret/stripe --prefix=APP_",
    "kubectl run web --image=nginx --labels=app=web --env-file=.env",
    "kubectl exec -it web -- find / -exec ls {} ;",
    "kubectl exec web -- env",
    "echo set env A=b",
    "kubectl get cm; env A=b printenv",
]

# (argv, index of the item holding the secret, what that item keeps, the secret)
ARGV_FORMS: list[tuple[list[Any], int, str, str]] = [
    (["kubectl", "create", "secret", "generic", "stripe", f"--from-literal=live={LIVE}"], 5, "--from-literal=live=", LIVE),
    (["kubectl", "create", "secret", "generic", "s", "--from-literal", f"url={HOOK}"], 6, "url=", HOOK),
    (["kubectl", "create", "secret", "generic", "s", f"--from-literal=auth=admin:{LIVE}", "-n", "shop"], 5, "--from-literal=auth=", f"admin:{LIVE}"),
    (["oc", "create", "secret", "generic", "s", f"--from-literal=key={LIVE} x"], 5, "--from-literal=key=", f"{LIVE} x"),
    (["kubectl", "set", "env", "deploy/web", f"STRIPE={PW}"], 4, "STRIPE=", PW),
    (["/usr/bin/oc", "-n", "shop", "set", "env", "dc/web", "--overwrite", f"STRIPE={PW}"], 7, "STRIPE=", PW),
    (["kubectl", "set", "env", "deploy/web", "-e", f"STRIPE={PW}"], 5, "STRIPE=", PW),
    (["kubectl", "run", "web", "--image=nginx", f"--env=STRIPE={PW}"], 4, "--env=STRIPE=", PW),
    (["kubectl", "run", "web", "--env", f"GREETING={PW} x"], 4, "GREETING=", f"{PW} x"),
    (["sudo", "kubectl", "set", "env", "deploy/web", f"DB_PASSWORD={PW}"], 5, "DB_PASSWORD=", PW),
    # A key that is no plain name goes with the value (it might hold a secret itself).
    (["kubectl", "create", "secret", "generic", "s", f"--from-literal=$'k'={LIVE}"], 5, "--from-literal=", f"$'k'={LIVE}"),
    (["kubectl", "run", "web", "--env", f"https://u:{PW}@h={LIVE}"], 4, "", f"https://u:{PW}@h={LIVE}"),
]  # fmt: skip

ARGV_NEAR_MISSES: list[list[Any]] = [
    ["kubectl", "create", "secret", "generic", "tls", "--from-file=tls.key=/run/k.pem"],
    ["kubectl", "create", "secret", "generic", "tls", "--from-file", "tls.key=/run/k.pem"],
    ["kubectl", "get", "secret", "stripe", "-o", "yaml"],
    ["kubectl", "get", "pods", "-l", "app=web"],
    ["kubectl", "label", "pod", "web", "app=web"],
    ["kubectl", "set", "image", "deploy/web", "app=nginx:1.25"],
    ["kubectl", "set", "env", "deployments", "-l", "app=web", "--list"],
    ["kubectl", "set", "env", "deploy/web", "-o", "jsonpath={.spec}", "--list"],
    ["kubectl", "set", "env", "deploy/web", "STRIPE-"],
    ["env", "A=b", "kubectl", "get", "pods"],
    ["kubectl", "exec", "web", "--", "find", "/", "-exec", "ls", "{}", ";"],
]


def _redacted(text: str) -> str:
    body = {"request": {"commandLine": text}}
    # The record's screen must let it through to the precise patterns.
    assert Redactor.may_hold_secret(canonical_bytes(body)), text
    return str(Redactor(KEY).redact(body)["request"]["commandLine"])


@pytest.mark.parametrize(("text", "secrets", "kept"), FORMS)
def test_each_kubectl_form_is_redacted_and_the_rest_of_the_command_kept(
    text: str, secrets: tuple[str, ...], kept: str
) -> None:
    out = _redacted(text)
    for secret in secrets:
        assert secret not in out and _tag(secret) in out, out
    assert [kind for kind, _ in TAG.findall(out)] == ["secret"] * len(secrets), out
    assert kept in out, out
    assert Redactor(KEY).redact_text(text) == out


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_kubectl_near_misses_are_left_alone(text: str) -> None:
    assert Redactor(KEY).redact({"commandLine": text}) == {"commandLine": text}
    assert Redactor(KEY).redact_text(text) == text


@pytest.mark.parametrize(("argv", "index", "kept", "secret"), ARGV_FORMS)
def test_each_kubectl_form_in_an_argv_list(
    argv: list[Any], index: int, kept: str, secret: str
) -> None:
    body = {"request": {"argv": argv}}
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)["request"]["argv"]
    assert out[index] == kept + _tag(secret)
    assert [a for i, a in enumerate(out) if i != index] == [
        a for i, a in enumerate(argv) if i != index
    ]


@pytest.mark.parametrize("argv", ARGV_NEAR_MISSES)
def test_kubectl_argv_near_misses_are_left_alone(argv: list[Any]) -> None:
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


def test_several_values_in_one_argv_list() -> None:
    argv = [
        "kubectl", "create", "secret", "generic", "s",
        f"--from-literal=user={PW}", "--from-literal", f"live={LIVE}", f"--from-literal=x={PW2}",
    ]  # fmt: skip
    out = Redactor(KEY).redact({"argv": argv})["argv"]
    assert out[5:] == [f"--from-literal=user={_tag(PW)}", "--from-literal", f"live={_tag(LIVE)}",
                       f"--from-literal=x={_tag(PW2)}"]  # fmt: skip
    argv = ["kubectl", "set", "env", "deploy/web", f"A={PW}", "-c", "app", f"B={PW2}", "C-"]
    out = Redactor(KEY).redact({"argv": argv})["argv"]
    assert out == [*argv[:4], f"A={_tag(PW)}", "-c", "app", f"B={_tag(PW2)}", "C-"]


def test_an_argv_list_holding_other_values_than_strings() -> None:
    # A request is JSON: an argv list may hold numbers, objects and lists too.
    argv: list[Any] = ["kubectl", "set", "env", {"a": 1}, f"A={PW}", [1], None, 7, "-e"]
    out = Redactor(KEY).redact({"argv": argv})["argv"]
    assert out == [*argv[:4], f"A={_tag(PW)}", *argv[5:]]
    argv = ["kubectl", "run", "web", "--env", {"A": PW}, "--from-literal", [PW]]
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


def test_a_private_key_as_a_literal_is_tagged_whole() -> None:
    # Unquoted, its first word alone would hide the start of the block from the
    # private-key pattern, and its body would be written in clear.
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
    text = (
        f"kubectl create secret generic tls --from-literal=tls.key={key} --from-literal=live={LIVE}"
    )
    out = _redacted(text)
    assert "MIIEpAIBAAKCAQEA7" not in out and LIVE not in out, out
    assert out == (
        "kubectl create secret generic tls "
        f"--from-literal=tls.key={Redactor(KEY).tag('private-key', key)} --from-literal=live={_tag(LIVE)}"
    )
    argv = ["kubectl", "create", "secret", "generic", "tls", f"--from-literal=tls.key={key}"]
    assert Redactor(KEY).redact({"argv": argv})["argv"][5] == f"--from-literal=tls.key={_tag(key)}"


def test_a_decision_record_with_the_command_line_and_its_argv() -> None:
    # What the gate records for a dryRun check of the reviewer's commands: the request
    # as sent (commandLine and argv), the reason quoting it. Look-alikes stay readable.
    command = (
        f"kubectl create secret generic stripe --from-literal=live={LIVE} "
        f"--from-literal url={HOOK} --from-file=tls.key=/run/keys/k.pem -n shop "
        f"&& kubectl set env deploy/web STRIPE={PW} -c app && kubectl get secret stripe"
    )
    body: dict[str, Any] = {
        "decisionId": "01JEXAMPLE0000000000000000",
        "action": "process.exec",
        "request": {
            "action": "process.exec",
            "commandLine": command,
            "argv": [
                "kubectl", "create", "secret", "generic", "stripe",
                f"--from-literal=live={LIVE}", "--from-literal", f"url={HOOK}",
                "--from-file=tls.key=/run/keys/k.pem", "-n", "shop",
            ],
            "cwd": "/workspace",
            "env": {"KUBECONFIG": "/workspace/.kube/config"},
            "dryRun": True,
        },
        "decision": "deny",
        "allowed": False,
        "rule": None,
        "reason": f"no rule allows process.exec of {command!r}",
        "risk": "high",
        "mode": "enforce",
        "policy": "sha256:" + "ab" * 32,
        "identity": "agent",
        "dryRun": True,
    }  # fmt: skip
    assert Redactor.may_hold_secret(canonical_bytes(body))
    out = Redactor(KEY).redact(body)
    written = canonical_bytes(out).decode()
    for secret in (LIVE, HOOK, PW, "hooks.slack.com"):
        assert secret not in written, secret
    request = out["request"]
    assert request["commandLine"] == (
        f"kubectl create secret generic stripe --from-literal=live={_tag(LIVE)} "
        f"--from-literal url={_tag(HOOK)} --from-file=tls.key=/run/keys/k.pem -n shop "
        f"&& kubectl set env deploy/web STRIPE={_tag(PW)} -c app && kubectl get secret stripe"
    )
    assert request["argv"] == [
        "kubectl", "create", "secret", "generic", "stripe",
        f"--from-literal=live={_tag(LIVE)}", "--from-literal", f"url={_tag(HOOK)}",
        "--from-file=tls.key=/run/keys/k.pem", "-n", "shop",
    ]  # fmt: skip
    assert out["reason"] == f"no rule allows process.exec of {request['commandLine']!r}"
    # The gate's own fields and the harmless parts of the request are as they were.
    for field in ("decisionId", "action", "decision", "allowed", "rule", "risk", "policy"):
        assert out[field] == body[field]
    assert request["cwd"] == "/workspace" and request["env"] == body["request"]["env"]
    # Redacting the redacted record changes nothing.
    assert Redactor(KEY).redact(out) == out


POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""


def test_the_gate_writes_the_reviewers_commands_redacted_to_its_trail(tmp_path: Path) -> None:
    # The reproduction of F3 through a real gate: dryRun checks from /workspace, then
    # every byte under the audit directory.
    checks = [
        ("kubectl create secret generic stripe --from-literal=live=", f"{LIVE}1", ""),
        ("kubectl create secret generic hooks --from-literal=url=", f"{HOOK}2", ""),
        ("kubectl create secret generic app --from-literal=dsn=", f"{LIVE}3", " -n shop"),
        ("kubectl create secret generic basic --from-literal=auth=", f"admin:{LIVE}4", ""),
        ("kubectl create secret generic enc --from-literal=key=", f"{LIVE}5", ""),
        ("kubectl create secret generic enc --from-literal=ENCRYPTION_KEY=", f"{LIVE}6", ""),
        ("kubectl set env deploy/web STRIPE=", f"{PW}7", " -c app"),
        ("oc run web --image=nginx --env=STRIPE=", f"{PW}8", " --restart=Never"),
    ]
    argv = ["kubectl", "create", "secret", "generic", "stripe", f"--from-literal=live={LIVE}9"]
    requests: list[dict[str, Any]] = [
        {
            "action": "process.exec",
            "commandLine": f"{head}{secret}{tail}",
            "cwd": "/workspace",
            "dryRun": True,
        }
        for head, secret, tail in checks
    ]
    requests.append({"action": "process.exec", "argv": argv, "cwd": "/workspace", "dryRun": True})
    daemon, everything = checked_through_a_gate(tmp_path, POLICY, requests)
    for secret in (*(secret for _, secret, _ in checks), f"{LIVE}9"):
        assert secret.encode() not in everything, secret
    decisions = [r["request"] for r in daemon.records() if r["type"] == "decision"]
    written = [r["commandLine"] for r in decisions if "commandLine" in r]
    # The gate's redaction key is its own: the tags are not ours to recompute. The key
    # stays readable, and the rest of the command.
    assert [TAG.sub("TAG", line) for line in written] == [f"{h}TAG{t}" for h, _, t in checks]
    assert all(kind == "secret" for line in written for kind, _ in TAG.findall(line))
    argv_written = next(r["argv"] for r in decisions if "argv" in r)
    assert argv_written[:5] == argv[:5]
    assert argv_written[5].startswith("--from-literal=live=[REDACTED:secret:")


_filler = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_form_texts = [text for text, _, _ in FORMS]


@settings(max_examples=400, deadline=None)
@given(_filler, st.sampled_from(_form_texts + NEAR_MISSES), _filler)
def test_the_screens_never_miss_what_a_kubectl_pattern_would_redact(
    before: str, text: str, after: str
) -> None:
    value = before + text + after
    if any(secret.regex.search(value) for secret in _PATTERNS):
        assert Redactor.may_hold_secret(canonical_bytes({"v": value}))
        assert _SCREEN_TEXT.search(value) is not None
    if Redactor(KEY)._rewrite(value) != value:
        assert _SCREEN_TEXT.search(value) is not None
    for secret in _PATTERNS:
        if not secret.named_program and secret.regex.search(value):
            assert any(literal in value.lower() for literal in secret.literals), secret.kind


@pytest.mark.parametrize("text", _form_texts + NEAR_MISSES)
def test_redacting_a_kubectl_command_twice_changes_nothing(text: str) -> None:
    redactor = Redactor(KEY)
    once = redactor.redact_text(text)
    assert redactor.redact_text(once) == once
    body = redactor.redact({"commandLine": text, "argv": text.split()})
    assert redactor.redact(body) == body


@pytest.mark.parametrize("argv", [argv for argv, _, _, _ in ARGV_FORMS])
def test_redacting_a_kubectl_argv_twice_changes_nothing(argv: list[Any]) -> None:
    redactor = Redactor(KEY)
    once = redactor.redact({"argv": argv})
    assert once != {"argv": argv}
    assert redactor.redact(once) == once


@settings(max_examples=300, deadline=None)
@given(_filler, st.lists(st.sampled_from(_form_texts), min_size=1, max_size=3), _filler)
def test_kubectl_forms_joined_with_anything_redact_idempotently(
    before: str, texts: list[str], after: str
) -> None:
    redactor = Redactor(KEY)
    value = before + " ".join(texts) + after
    once = redactor.redact({"v": value, "argv": [before, *" ".join(texts).split(), after]})
    assert redactor.redact(once) == once
    assert redactor.redact_text(redactor.redact_text(value)) == redactor.redact_text(value)


# A program's name (or an option) repeated in one 40 KB command line: a pattern that
# scanned from every kubectl to the end of the command would be quadratic, and the
# trail's writer waits on it.
REPEATED = [
    "kubectl ",
    "oc ",
    "kubectl set ",
    "kubectl set env ",
    "kubectl set env x ",
    "oc -e ",
    "kubectl --env ",
    "kubectl -e -e ",
    "--from-literal ",
    "--from-literal=k ",
    "kubectl create secret generic s --from-literal ",
    "kubectl 'set env ",
    'kubectl "--env ',
]


@pytest.mark.parametrize("word", REPEATED)
def test_kubectl_repeated_is_redacted_in_linear_time(word: str) -> None:
    redactor = Redactor(KEY)
    command = word * (40_000 // len(word))
    started = time.perf_counter()
    text = redactor.redact_text(command + "x")  # no value after an option: none found
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.2f}s for {len(command)} characters"
    assert text == command + "x"


@pytest.mark.parametrize(
    ("head", "word"),
    [
        ("kubectl set env deploy/web ", "A=b "),
        ("kubectl run web ", "--env=A=b "),
        ("kubectl create secret generic s ", "--from-literal=a=b "),
        ("oc new-app x ", "-e A=b "),
        ("kubectl set env deploy/web ", "a" * 100 + " "),
    ],
)
def test_thousands_of_values_in_one_command_are_redacted_in_linear_time(
    head: str, word: str
) -> None:
    redactor = Redactor(KEY)
    command = head + word * (40_000 // len(word))
    started = time.perf_counter()
    text = redactor.redact_text(command)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f}s for {len(command)} characters"
    assert "=b " not in text


@pytest.mark.parametrize(
    "items",
    [
        ["kubectl"],
        ["kubectl", "-e"],
        ["kubectl", "set", "env"],
        ["oc", "--env"],
        ["--from-literal"],
        ["kubectl", "set", "env", "A=b"],
        ["kubectl", "--from-literal=a=b"],
    ],
    ids=" ".join,
)
def test_an_argv_naming_kubectl_thousands_of_times_is_redacted_in_linear_time(
    items: list[str],
) -> None:
    redactor = Redactor(KEY)
    argv = items * (8000 // len(items))
    started = time.perf_counter()
    redacted = redactor.redact({"argv": argv})["argv"]
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f}s for {len(argv)} items"
    assert len(redacted) == len(argv)
