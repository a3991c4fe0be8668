"""The request hash approvers see and sign never undoes redaction (CONTRACT 2.4, 4).

``requestHash`` is published (the approvals API, the webhook that goes to Slack, the
trail's ``requested``/``approved``/``denied`` records) next to the redacted request.
Were it the hash of the raw request, a weak secret in it (``--password=hunter2``)
could be recovered offline by guessing and re-hashing. So it covers the request *as
shown*; the gate binds the approval to the raw request with a keyed ``binding``
instead. Real daemons, sockets, trails and signatures, as in ``test_approvals.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.keys import generate_keypair
from tests import test_approvals
from tests.daemon import Daemon
from tests.test_approvals import (
    Approver,
    approval_events,
    ask,
    cli_decide,
    decide,
    lying_gate,
    policy_text,
    redeem,
    tollgate,
    view,
    wait_for,
)

# The fixtures of test_approvals.py, under the same names.
people = test_approvals.people
hook_factory = test_approvals.hook_factory

WEAK_SECRET = "hunter2"
RM_WITH_PASSWORD = {"action": "process.exec", "argv": ["rm", "-rf", "/app/y", "--password=hunter2"]}
PASSWORD_TAG = "[REDACTED:password:"
BEARER = "s3cr3t-t0ken"
# Shown as "Authorization: Bearer [REDACTED:...]", which a second redaction would
# change again ("Bearer" then reads as the token): the trail must redact it only once.
RM_WITH_HEADER = {
    "action": "process.exec",
    "argv": ["rm", "-rf", "/app/y", f"--header=Authorization: Bearer {BEARER}"],
}


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_of(action: str, request: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical({"action": action, "request": request})).hexdigest()


def tag_in(shown: dict[str, Any]) -> str:
    """The (one) redaction tag that stands for the secret in a shown request."""
    text = canonical(shown).decode()
    start = text.index("[REDACTED:")
    return text[start : text.index("]", start) + 1]


def unredacted(shown: dict[str, Any], secret: str = WEAK_SECRET) -> dict[str, Any]:
    """The raw normalised request: the shown one with its tag replaced by the secret."""
    return json.loads(canonical(shown).decode().replace(tag_in(shown), secret))


def make_starter(tmp_path: Path, daemon_factory, people, *, signing_key: bool):  # type: ignore[no-untyped-def]
    key_args: tuple[str, ...] = ()
    if signing_key:
        key_args = ("--signing-key", str(generate_keypair(tmp_path / "gate-keys")[0]))

    def start(webhook: str | None = None, audit_dir: Path | None = None) -> Daemon:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text(people, webhook=webhook))
        return daemon_factory(policy, *key_args, audit_dir=audit_dir)  # type: ignore[no-any-return]

    return start


def trail_bytes(gate: Daemon) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((gate.audit_dir / "segments").glob("*")))


# -- (a) what is published -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "secret"), [(RM_WITH_PASSWORD, WEAK_SECRET), (RM_WITH_HEADER, BEARER)]
)
def test_the_published_hash_covers_the_shown_request_never_the_raw_one(
    tmp_path: Path, daemon_factory, people, hook_factory, body: dict[str, Any], secret: str
) -> None:  # type: ignore[no-untyped-def]
    hook = hook_factory()
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=True)(webhook=hook.url)
    answer = ask(gate, body)
    approval_id = answer["approval"]["id"]
    shown = view(gate, approval_id)
    assert secret not in json.dumps(shown) and "[REDACTED:" in json.dumps(shown["request"])
    raw_hash = sha256_of("process.exec", unredacted(shown["request"], secret))
    shown_hash = sha256_of("process.exec", shown["request"])
    assert shown["requestHash"] == shown_hash != raw_hash

    wait_for(lambda: len(hook.received) == 1)
    notice = hook.received[0]
    assert notice["request"] == shown["request"] and notice["requestHash"] == shown_hash
    assert decide(gate, approval_id, people["alice"]).status_code == 200

    by_event = {r["event"]: r for r in approval_events(gate, approval_id)}
    requested, approved = by_event["requested"], by_event["approved"]
    # The trail shows the same redacted request the approvers saw, and its hash.
    assert requested["request"] == shown["request"]
    assert requested["requestHash"] == approved["requestHash"] == shown_hash
    # The binding to the raw request is keyed: nothing a reader can test guesses against.
    assert requested["binding"].startswith("hmac-sha256:")
    assert requested["binding"] not in (shown_hash, raw_hash)

    raw_hex = raw_hash.removeprefix("sha256:")
    listing = tollgate("approvals", "list", "--url", gate.url, "--status", "all")
    published = {
        "check answer": json.dumps(answer),
        "approval": json.dumps(view(gate, approval_id)),
        "list": gate.get("/v1/approvals").text,
        "webhook": json.dumps(notice),
        "trail": trail_bytes(gate).decode(),
        "cli": listing.stdout,
    }
    for where, text in published.items():
        assert raw_hex not in text, f"the raw request's hash is in the {where}"
        # The agent's own answer quotes its request (to the agent, who has the secret).
        assert where == "check answer" or secret not in text, f"the secret is in the {where}"


def test_a_request_without_secrets_keeps_its_hash_and_binds_by_it(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=False)()
    body = {"action": "process.exec", "argv": ["rm", "-rf", "/app/y"]}
    approval_id = ask(gate, body)["approval"]["id"]
    shown = view(gate, approval_id)
    (requested,) = approval_events(gate, approval_id)
    assert shown["requestHash"] == sha256_of("process.exec", shown["request"])
    assert requested["binding"] == requested["requestHash"] == shown["requestHash"]


# -- (b) redeeming ---------------------------------------------------------------------


def test_only_the_identical_raw_request_redeems_an_approval_of_a_secret(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=True)()
    approval_id = ask(gate, RM_WITH_PASSWORD)["approval"]["id"]
    shown = view(gate, approval_id)
    assert decide(gate, approval_id, people["alice"]).status_code == 200

    other_secret = {**RM_WITH_PASSWORD, "argv": ["rm", "-rf", "/app/y", "--password=hunter3"]}
    refused = redeem(gate, approval_id, other_secret)
    assert refused["allowed"] is False and "different request" in refused["reason"]
    # The request an approver was shown, sent literally (the redaction marker as text):
    # it hashes the same as the approved one but is not the request approved.
    literal = {**RM_WITH_PASSWORD, "argv": shown["request"]["argv"]}
    assert PASSWORD_TAG in literal["argv"][3]
    refused = redeem(gate, approval_id, literal)
    assert refused["allowed"] is False and "different request" in refused["reason"]
    opened = ask(gate, literal)["approval"]["id"]
    assert opened != approval_id, "the literal request is not given the approved approval"
    assert view(gate, opened)["requestHash"] == shown["requestHash"]
    assert view(gate, approval_id)["status"] == "approved", "refusals do not spend it"

    allowed = redeem(gate, approval_id, RM_WITH_PASSWORD)
    assert allowed["allowed"] is True and allowed["decision"] == "allow"
    again = redeem(gate, approval_id, RM_WITH_PASSWORD)
    assert again["allowed"] is False and "already used" in again["reason"]


def test_the_same_request_re_sent_gets_the_same_approval(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=False)()
    first = ask(gate, RM_WITH_PASSWORD)["approval"]["id"]
    assert ask(gate, RM_WITH_PASSWORD)["approval"]["id"] == first
    other = {**RM_WITH_PASSWORD, "argv": ["rm", "-rf", "/app/y", "--password=hunter3"]}
    assert ask(gate, other)["approval"]["id"] != first


# -- (c) restarts ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [RM_WITH_PASSWORD, RM_WITH_HEADER])
def test_with_a_signing_key_an_approval_of_a_secret_survives_a_restart(
    tmp_path: Path, daemon_factory, people, body: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    start = make_starter(tmp_path, daemon_factory, people, signing_key=True)
    gate = start()
    approved = ask(gate, body)["approval"]["id"]
    assert decide(gate, approved, people["alice"]).status_code == 200
    other = {**body, "argv": ["rm", "-rf", "/app/z", *body["argv"][3:]]}
    pending = ask(gate, other)["approval"]["id"]
    before = {a: view(gate, a) for a in (approved, pending)}
    audit_dir = gate.audit_dir
    gate.stop()

    gate = start(audit_dir=audit_dir)
    assert {a: view(gate, a) for a in (approved, pending)} == before
    # After the restart the request shown still matches the hash signed for it (its
    # secret hidden: the approver says so with --accept-redacted).
    done = cli_decide(gate.url, "approve", pending, people["bob"], "--yes", "--accept-redacted")
    assert done.returncode == 0, done.stderr
    assert ask(gate, other)["approval"]["id"] == pending, "found again, not asked twice"
    assert redeem(gate, approved, body)["allowed"] is True
    assert redeem(gate, pending, other)["allowed"] is True


def test_without_a_signing_key_an_approval_of_a_secret_is_denied_after_a_restart(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    start = make_starter(tmp_path, daemon_factory, people, signing_key=False)
    gate = start()
    with_secret = ask(gate, RM_WITH_PASSWORD)["approval"]["id"]
    plain_body = {"action": "process.exec", "argv": ["rm", "-rf", "/app/z"]}
    plain = ask(gate, plain_body)["approval"]["id"]
    for approval_id in (with_secret, plain):
        assert decide(gate, approval_id, people["alice"]).status_code == 200
    audit_dir = gate.audit_dir
    gate.stop()

    gate = start(audit_dir=audit_dir)
    refused = redeem(gate, with_secret, RM_WITH_PASSWORD)
    assert refused["allowed"] is False
    assert "restarted" in refused["reason"] and "signing key" in refused["reason"]
    assert view(gate, with_secret)["status"] == "approved", "not spent by the refusal"
    # A request without secrets is bound by its plain hash, which needs no key.
    assert redeem(gate, plain, plain_body)["allowed"] is True


# -- (d) the approvals command ---------------------------------------------------------


def test_cli_signs_a_redacted_request_after_checking_its_hash(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=False)()
    approval_id = ask(gate, RM_WITH_PASSWORD)["approval"]["id"]
    done = cli_decide(
        gate.url, "approve", approval_id, people["alice"], "--yes", "--accept-redacted"
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD_TAG in done.stdout and WEAK_SECRET not in done.stdout
    assert "value(s) of this request are hidden as secrets: argv[3]" in done.stdout
    assert redeem(gate, approval_id, RM_WITH_PASSWORD)["allowed"] is True


HIDDEN_TARGET = {"action": "process.exec", "argv": ["rm", "-rf", "--", "--token", "/home"]}


def test_cli_does_not_approve_what_the_approver_cannot_see_unless_told_to(
    tmp_path: Path, daemon_factory, people
) -> None:  # type: ignore[no-untyped-def]
    """The agent can place the operand that matters where a secret's value goes: rm -rf
    -- --token /home showed /home as [REDACTED:secret:...], and was signed (review of
    2026-12-07). The command now names what is hidden and signs an approval of it only
    with --accept-redacted; denying needs nothing."""
    gate = make_starter(tmp_path, daemon_factory, people, signing_key=False)()
    approval_id = ask(gate, HIDDEN_TARGET)["approval"]["id"]
    refused = cli_decide(gate.url, "approve", approval_id, people["alice"], "--yes")
    assert refused.returncode == 1
    assert "hidden as secrets: argv[4]" in refused.stdout
    assert "not signing" in refused.stderr and "--accept-redacted" in refused.stderr
    assert '"[REDACTED:secret:' in refused.stdout
    assert view(gate, approval_id)["status"] == "pending"
    assert redeem(gate, approval_id, HIDDEN_TARGET)["allowed"] is False
    denied = cli_decide(gate.url, "deny", approval_id, people["alice"], "--yes")
    assert denied.returncode == 0, denied.stderr
    assert view(gate, approval_id)["status"] == "denied"


def test_cli_refuses_a_redacted_request_that_does_not_match_the_hash(people) -> None:  # type: ignore[no-untyped-def]
    """--accept-redacted no longer lets anything at --url have a hash signed that the
    request shown does not produce."""
    fake_view = {
        "id": "apr_X", "status": "pending", "action": "process.exec",
        "request": {"argv": ["ls", "--password=[REDACTED:password:0123abcd]"]},
        "requestHash": "sha256:" + hashlib.sha256(b"rm -rf / --password=x").hexdigest(),
        "expiresAt": "2030-01-01T00:00:00.000000Z",
    }  # fmt: skip

    with lying_gate(fake_view) as (liar, posts):
        alice: Approver = people["alice"]
        plain = cli_decide(liar, "approve", "apr_X", alice, "--yes")
        accepting = cli_decide(liar, "approve", "apr_X", alice, "--yes", "--accept-redacted")
    for result in (plain, accepting):
        assert result.returncode == 2 and "does not match" in result.stderr, result.stderr
        assert "upgrade the gate" in result.stderr  # a gate that hashed the raw request
    assert posts == []


# -- records written by older versions -------------------------------------------------


def test_a_requested_record_without_binding_is_bound_by_its_request_hash() -> None:
    from sidecar.approvals.book import ApprovalBook

    book = ApprovalBook()
    request = {"argv": ["rm", "-rf", "/app/y"]}
    old = {
        "type": "approval", "event": "requested", "approval": "apr_1",
        "ts": "2030-01-01T00:00:00.000000Z", "action": "process.exec", "request": request,
        "requestHash": sha256_of("process.exec", request),
        "expiresAt": "2030-01-01T00:05:00.000000Z",
    }  # fmt: skip
    assert book.replay([old, {**old, "approval": "apr_2", "binding": 7}]) == 1
    approval = book.get("apr_1")
    assert approval is not None and approval.binding == old["requestHash"]
    assert book.get("apr_2") is None, "a malformed binding opens nothing"
