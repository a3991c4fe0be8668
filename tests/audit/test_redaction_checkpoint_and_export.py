"""Redaction, the checkpoint at start, OCSF export and the origin's characters, each
reproduced as a user meets it. Found in the audit-trail review of 2026-12-06, whose
findings number the list below and the sections of the file.

1. Authorization header credentials of any scheme, quoted or not, are redacted.
2. A secret whose closing quote is missing (an invalidRequest body cut short or
   malformed) is redacted to the end of the kept text.
3. At start, DIR/checkpoint must be signed by the gate's own key under its origin
   before it vouches for a segment's .start frontier.
4. OCSF export: a preflight (dryRun) is Allowed / No Action, never an alert, and a
   network request's URL keeps its query.
5. An origin or identity holding a control character stops the gate at start.
6. PGP private key blocks, plural key names and name/value pairs are redacted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import Frontier, leaf_hash
from sidecar.audit.note import Signer, Verifier, parse_note, verify_note
from sidecar.audit.redact import Redactor
from sidecar.audit.segments import list_segments, start_path
from sidecar.audit.verify import verify_trail
from sidecar.canonical import canonical_bytes
from sidecar.errors import AuditCorrupt
from tests.audit.conftest import decision
from tests.daemon import Daemon, checked_through_a_gate

POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
  - action: network.request
    host: {equals: api.example.com}
    decision: allow
  - action: process.exec
    command: {in: [curl, wget, http]}
    decision: allow
"""

SECRET = "Zq9SECRETvalue77x"
KEY = b"k" * 32

# ---------------------------------------------------------------------------- 1 + 6

# Text holding SECRET in an Authorization header of a scheme the old pattern did not
# know, or with the credential quoted.
AUTHORIZATION_TEXTS = [
    f"curl -H 'Authorization: Bot {SECRET}' https://discord.com/api/v10/users/@me",
    f"curl -H 'Authorization: SSWS {SECRET}' https://acme.okta.com/api/v1/users",
    f'curl -H "Authorization: ApiKey {SECRET}" https://es:9200/',
    f"curl -H 'Proxy-Authorization: NTLM {SECRET}' https://x",
    f"curl -H 'Authorization: AWS AKIDEXAMPLE:{SECRET}' https://s3.amazonaws.com/b",
    f"curl -H 'Authorization: DPoP {SECRET}' https://x",
    f"curl -H 'Authorization: SCRAM-SHA-256 data={SECRET}' https://x",
    f"curl -H 'Authorization: Klaviyo-API-Key {SECRET}' https://x",
    f"curl -H 'Authorization: PVEAPIToken=root@pam!t={SECRET}' https://x",
    f'called with Authorization: Bearer "{SECRET}"',
    f"called with Authorization: Bearer '{SECRET}'",
    f'Authorization: Token token="{SECRET}"',
    f'Authorization: Digest username="bob", realm="r", nonce="n", uri="/", response="{SECRET}"',
    f"http https://h Authorization:'Bot {SECRET}'",
    json.dumps({"note": f"Authorization: JWT {SECRET}"}),
    json.dumps(json.dumps({"Authorization": f"Hawk id={SECRET}"})),
]

OTHER_FORMS: list[dict[str, Any]] = [
    {"key": f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF{SECRET}\n=ab12\n"
     "-----END PGP PRIVATE KEY BLOCK-----"},
    {"secrets": {"db": SECRET}},
    {"passwords": [SECRET]},
    {"apiKeys": [SECRET]},
    {"note": f"api_keys={SECRET}"},
    {"env": [{"name": "API_TOKEN", "value": SECRET}, {"name": "HOME", "value": "/root"}]},
    {"headers": [{"name": "Authorization", "value": f"Bot {SECRET}"}]},
    {"headers": [{"key": "X-Api-Key", "value": SECRET}]},
    {"har": json.dumps({"headers": [{"name": "DB_PASSWORD", "value": SECRET}]})},
]  # fmt: skip


def _redacted(body: dict[str, Any]) -> str:
    redactor = Redactor(KEY)
    assert Redactor.may_hold_secret(canonical_bytes(body)), "the screen lets it through"
    once = redactor.redact(body)
    assert redactor.redact(once) == once, "redacting again changes nothing"
    return canonical_bytes(once).decode()


@pytest.mark.parametrize("text", AUTHORIZATION_TEXTS)
def test_an_authorization_credential_of_any_scheme_is_redacted(text: str) -> None:
    out = _redacted({"context": {"note": text}})
    assert SECRET not in out, out
    assert "[REDACTED:authorization:" in out, out


@pytest.mark.parametrize(
    ("scheme", "header"),
    [("Bot", "Authorization: Bot " + SECRET), ("Bearer", 'Authorization: Bearer "' + SECRET + '"')],
)
def test_the_scheme_stays_readable_and_the_tag_is_the_credentials(scheme: str, header: str) -> None:
    out = _redacted({"note": header})
    # The same tag as the credential gets unquoted (quotes stay around it).
    assert f"Authorization: {scheme} " in out, out
    assert Redactor(KEY).tag("authorization", SECRET) in out, out


@pytest.mark.parametrize("body", OTHER_FORMS)
def test_pgp_keys_plural_names_and_name_value_pairs_are_redacted(body: dict[str, Any]) -> None:
    out = _redacted({"context": body})
    assert SECRET not in out, out


def test_token_counts_stay_readable() -> None:
    body = {"context": {"maxTokens": 100, "tokens": 5, "note": "max_tokens=100"}}
    assert Redactor(KEY).redact(body) == body


def test_no_authorization_credential_reaches_the_trail_of_a_real_gate(tmp_path: Path) -> None:
    requests = [
        {"action": "process.exec", "commandLine": AUTHORIZATION_TEXTS[0]},
        {
            "action": "process.exec",
            "argv": ["curl", "-H", f"Authorization: SSWS {SECRET}", "https://acme.okta.com/"],
        },
        *(
            {"action": "file.read", "path": "/app/data/x", "context": {"note": text}}
            for text in AUTHORIZATION_TEXTS
        ),
        *({"action": "file.read", "path": "/app/data/x", "context": b} for b in OTHER_FORMS),
    ]
    daemon, everything = checked_through_a_gate(tmp_path, POLICY, requests)
    assert SECRET.encode() not in everything
    records = [r for r in daemon.records() if r["type"] == "decision"]
    assert records[0]["request"]["commandLine"].startswith(
        "curl -H 'Authorization: Bot [REDACTED:authorization:"
    )
    assert records[1]["request"]["argv"][2].startswith("Authorization: SSWS [REDACTED:")


# ---------------------------------------------------------------------------- 2


def test_a_secret_with_no_closing_quote_in_an_invalid_request_is_redacted(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    pad = "a" * 1958
    bodies = [
        # Valid JSON, rejected (an unknown field), cut at 2048 bytes inside the password.
        '{"action":"file.read","path":"/app/data/x","context":{"pad":"' + pad + '"},'
        '"bogus":1,"password":"' + SECRET + '"}',
        # Malformed JSON: the string is never closed.
        '{"action":"file.read","path":"/app/data/x","context":{"password":"' + SECRET + "}}",
        '{"action":"file.read","path":"/app/data/x","context":{"token": "' + SECRET + "}}",
        '{"action":"file.read","path":"/app/data/x","context":{"h":"Authorization: Bot ' + SECRET,
    ]
    assert bodies[0].index(SECRET) < 2048 < bodies[0].index(SECRET) + len(SECRET)
    daemon = Daemon(policy, tmp_path / "audit").start()
    try:
        for body in bodies:
            answer = daemon.check(body.encode())
            assert answer.status_code == 400, answer.text
    finally:
        daemon.stop()
    kept = [r["body"] for r in daemon.records() if r["type"] == "invalidRequest"]
    assert len(kept) == len(bodies)
    everything = b"".join(p.read_bytes() for p in daemon.audit_dir.rglob("*") if p.is_file())
    # Not even the part of it before the cut.
    assert SECRET[:10].encode() not in everything, kept
    assert all("[REDACTED:" in body for body in kept), kept


# ---------------------------------------------------------------------------- 3


def _key_file(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _start_expecting_refusal(daemon: Daemon) -> None:
    """Start ``daemon``; one that starts after all is stopped (not left running)."""
    daemon.start()
    daemon.stop()


def _signed_trail(directory: Path, signer: Signer) -> None:
    log = AuditLog.open(
        directory, identity="apps/agent-1", signer=signer, segment_bytes=700, checkpoint_every=7
    )
    for i in range(40):
        log.append_blocking("decision", decision(i))
    log.close_blocking()


def _forge_start_and_checkpoint(directory: Path) -> None:
    """The review's attack: a new frontier in the .start of the segment DIR/checkpoint's
    size falls in, and the checkpoint's root line rewritten to match (its signature
    line left as it was)."""
    checkpoint = directory / "checkpoint"
    lines = checkpoint.read_text().split("\n")
    size = int(lines[1])
    segment = [s for s in list_segments(directory) if 0 < s.first_seq <= size][-1]
    start = json.loads(start_path(segment.path).read_bytes())
    start["frontier"][0] = hashlib.sha256(b"attacker history").hexdigest()
    start_path(segment.path).write_bytes(canonical_bytes(start))
    frontier = Frontier.from_nodes(start["seq"], [bytes.fromhex(h) for h in start["frontier"]])
    for line in segment.path.read_bytes().split(b"\n")[: size - start["seq"]]:
        frontier.append(leaf_hash(line))
    lines[2] = base64.b64encode(frontier.root()).decode()
    checkpoint.write_text("\n".join(lines))


def test_a_forged_checkpoint_cannot_vouch_for_a_forged_start(tmp_path: Path) -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    directory = tmp_path / "audit"
    _signed_trail(directory, signer)
    assert len(list_segments(directory)) > 3
    _forge_start_and_checkpoint(directory)
    with pytest.raises(AuditCorrupt, match=r"signature by this gate's key .* does not verify"):
        AuditLog.open(directory, identity="apps/agent-1", signer=signer)


def test_a_real_gate_refuses_to_start_on_a_forged_checkpoint(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    directory = tmp_path / "audit"
    _signed_trail(directory, Signer(key))
    _forge_start_and_checkpoint(directory)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key_file = _key_file(tmp_path / "tollgate.key", key)
    daemon = Daemon(
        policy, directory, "--signing-key", str(key_file), "--audit-origin", "tollgate/apps/agent-1"
    )
    with pytest.raises(RuntimeError, match=r"refusing to start: .*checkpoint: its signature"):
        _start_expecting_refusal(daemon)


def test_a_checkpoint_signed_by_another_key_cannot_vouch_for_a_forged_start(
    tmp_path: Path,
) -> None:
    # The same attack, the checkpoint re-signed with a key of the attacker's own: taken
    # for a rotation, it vouches for nothing, the tree is grown from the oldest segment,
    # and the forged root no longer matches the records.
    signer, attacker = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
    directory = tmp_path / "audit"
    _signed_trail(directory, signer)
    _forge_start_and_checkpoint(directory)
    checkpoint = directory / "checkpoint"
    text = checkpoint.read_text().split("\n\n")[0] + "\n"
    checkpoint.write_text(attacker.sign(text, text.split("\n")[0]))
    with pytest.raises(AuditCorrupt, match="root"):
        AuditLog.open(directory, identity="apps/agent-1", signer=signer)


def test_after_a_key_rotation_the_gate_starts_and_says_why_the_tree_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
    directory = tmp_path / "audit"
    _signed_trail(directory, old)
    origin = "tollgate/apps/agent-1"
    with caplog.at_level(logging.WARNING, logger="tollgate.audit"):
        log = AuditLog.open(directory, identity="apps/agent-1", signer=new)
    message = caplog.text
    assert f"signed by key {origin} {old.key_id(origin).hex()}" in message
    assert f"not by this gate's signing key ({origin} {new.key_id(origin).hex()})" in message
    assert "key rotation" in message and "rebuilt from the oldest segment" in message
    kept = tmp_path / "old-key-checkpoint"
    kept.write_bytes((directory / "checkpoint").read_bytes())
    log.append_blocking("decision", decision(99))
    log.close_blocking()
    # The chain runs across the rotation; each checkpoint verifies with its key.
    report = verify_trail(
        directory, [old.public_key, new.public_key], [(str(kept), kept.read_bytes())]
    )
    assert report.intact, report.summary()
    latest = parse_note((directory / "checkpoint").read_bytes())
    assert verify_note(latest, [Verifier(origin, new.public_key)])  # the new key signs now


def test_the_gates_own_checkpoint_still_vouches_at_start(tmp_path: Path) -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    directory = tmp_path / "audit"
    _signed_trail(directory, signer)
    log = AuditLog.open(directory, identity="apps/agent-1", signer=signer)
    log.close_blocking()
    # And with another origin than the one it was signed under (a pod name in the
    # default origin changes at every restart): the signature is checked under its own.
    log = AuditLog.open(directory, identity="apps/agent-2", signer=signer)
    log.close_blocking()


# ---------------------------------------------------------------------------- 4


def test_ocsf_marks_preflights_and_keeps_the_query(tmp_path: Path) -> None:
    requests = [
        {"action": "file.read", "path": "/etc/shadow", "dryRun": True},
        {"action": "file.read", "path": "/etc/shadow"},
        {
            "action": "network.request",
            "url": "https://api.example.com/v1/chat?stream=true&n=2",
            "method": "POST",
            "dryRun": True,
        },
    ]
    daemon, _ = checked_through_a_gate(tmp_path, POLICY, requests)
    exported = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "audit", "export", str(daemon.audit_dir),
         "--format", "ocsf"],
        capture_output=True, check=True,
    )  # fmt: skip
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    preflight_deny, real_deny, preflight_allow = events
    for event in (preflight_deny, preflight_allow):
        assert (event["action_id"], event["disposition_id"]) == (1, 16)
        assert event["disposition"] == "No Action"
        assert event["is_alert"] is False
        assert event["unmapped"]["dryRun"] is True
    assert preflight_deny["unmapped"]["decision"] == "deny"
    assert (real_deny["action_id"], real_deny["disposition_id"], real_deny["is_alert"]) == (
        2, 2, True,
    )  # fmt: skip
    assert "unmapped" not in real_deny
    url = preflight_allow["http_request"]["url"]
    assert url["query_string"] == "stream=true&n=2"
    assert url["url_string"] == "https://api.example.com/v1/chat?stream=true&n=2"


# ---------------------------------------------------------------------------- 5


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--audit-origin", "tollgate/a\x01b"), {}),
        ((), {"TOLLGATE_IDENTITY": "ns/sa/pod\x1b[31m"}),
        (("--audit-origin", "tollgate/stable"), {"TOLLGATE_IDENTITY": "ns/sa/\x07pod"}),
    ],
)
def test_a_control_character_in_the_origin_or_identity_stops_the_start(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key_file = _key_file(tmp_path / "tollgate.key", Ed25519PrivateKey.generate())
    daemon = Daemon(policy, tmp_path / "audit", "--signing-key", str(key_file), *args, env=env)
    with pytest.raises(RuntimeError, match=r"cannot start: .*control character"):
        _start_expecting_refusal(daemon)


# Found in the conformance review (2026-12-06): the body was cut at 2 KiB before it was
# redacted, so a token straddling the cut left its first part (ghp_ and 23 of 40
# characters, a JWT's header and payload) too short to be recognised, in clear; and a
# 413 record said the body was empty.
STRADDLING = [
    "ghp_" + "Zq8" * 12,
    "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCIsImlhdCI6MTcwMDAwMDAwMH0."
    "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1pcy1oZXJl",
]


def test_a_token_straddling_the_cut_of_an_invalid_body_is_redacted_whole(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    bodies, fragments = [], []
    for token in STRADDLING:
        head = '{"action":"file.read","path":"/app/data/x","bogus":"'
        pad = "x" * (2048 - len(head) - 12)  # the cut falls 11 characters into the token
        bodies.append(head + pad + " " + token + '"}')
        fragments.append(bodies[-1][bodies[-1].index(token) : 2048])
        assert 10 <= len(fragments[-1]) < len(token)
    daemon = Daemon(policy, tmp_path / "audit").start()
    try:
        for body in bodies:
            assert daemon.check(body.encode()).status_code == 400
    finally:
        daemon.stop()
    kept = [r for r in daemon.records() if r["type"] == "invalidRequest"]
    assert [r["truncated"] for r in kept] == [True] * len(bodies)
    everything = b"".join(p.read_bytes() for p in daemon.audit_dir.rglob("*") if p.is_file())
    for fragment in fragments:
        assert fragment.encode() not in everything, fragment


def test_a_413_record_says_how_much_was_sent_and_keeps_its_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    body = b'{"action":"file.read","path":"/app/data/x","context":{"pad":"' + b"p" * 70_000
    daemon = Daemon(policy, tmp_path / "audit").start()
    try:
        assert daemon.client is not None

        def chunks() -> Any:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        chunked = daemon.client.post("/check", content=chunks())  # no Content-Length
        declared = daemon.check(body)
    finally:
        daemon.stop()
    assert (chunked.status_code, declared.status_code) == (413, 413)
    streamed, whole = [r for r in daemon.records() if r["type"] == "invalidRequest"]
    assert streamed["code"] == "too_large" and streamed["bytes"] > 64 * 1024
    assert streamed["body"].startswith('{"action":"file.read"') and streamed["truncated"]
    # A declared length over the limit is refused before the body is read.
    assert (whole["bytes"], whole["body"]) == (len(body), "")


# Found in code review (2026-12-06): the quote closing a string that holds an empty
# header name was taken for the opening quote of its value, and everything after it in
# a recorded command line was tagged, hiding the commands that followed.
@pytest.mark.parametrize(
    "line",
    [
        'grep -n "Authorization: " -r . && rm -rf /srv',
        "echo 'Authorization: ' && rm -rf /srv",
        'printf "Proxy-Authorization:" ; rm -rf /srv',
    ],
)
def test_an_empty_header_in_a_quoted_string_hides_nothing_after_it(line: str) -> None:
    assert Redactor(b"k" * 32).redact_text(line) == line


def test_a_quoted_value_after_the_header_is_still_redacted() -> None:
    redactor = Redactor(b"k" * 32)
    for line in (
        "curl -H 'Authorization: \"Bearer tok123456\"' x",
        '{"Authorization": "Bot tok123456"}',
        "Authorization: 'SSWS tok123456'",
    ):
        assert "tok123456" not in redactor.redact_text(line), line
