"""Signed approver decisions (CONTRACT section 2.4).

The signature is Ed25519 over the canonical JSON of
``{"approval", "approver", "decision", "requestHash"}``: it names the approval, who
decides, what they decide and the request they were shown (the hash covers it with its
secrets redacted; the gate binds the approval to the exact raw request itself, see
``model``), so it cannot be replayed onto another approval, another request or the
other decision. The approver's ``reason`` is not
signed (the contract leaves it out); it is recorded as given.

The agent shares the gate's loopback interface, so a request to the approval endpoint
proves nothing by where it comes from: only a signature from a key in the current
policy's ``approvers`` does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from sidecar.approvals.wire import DecisionBody
from sidecar.canonical import canonical_bytes
from sidecar.errors import RequestError
from sidecar.keys import KeyFileError, public_key_from_base64
from sidecar.policy.schema import Approvals
from sidecar.request import parse_json_body

Decision = Literal["approve", "deny"]
SIGNATURE_BYTES = 64


class ForgedDecision(Exception):
    """A decision that is not validly signed by a listed approver; answered 403."""

    def __init__(self, problem: str, claimed: dict[str, Any] | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        # What the body claimed (approver, decision), for the record; never trusted.
        self.claimed = claimed or {}


def decision_message(approval_id: str, approver: str, decision: str, request_hash: str) -> bytes:
    """The exact bytes an approver signs."""
    return canonical_bytes(
        {
            "approval": approval_id,
            "approver": approver,
            "decision": decision,
            "requestHash": request_hash,
        }
    )


def sign_decision(
    key: Ed25519PrivateKey, approval_id: str, approver: str, decision: str, request_hash: str
) -> str:
    """The base64 signature to send as ``signature``."""
    message = decision_message(approval_id, approver, decision, request_hash)
    return base64.b64encode(key.sign(message)).decode("ascii")


def _claimed(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {}
    return {
        key: data[key][:128] for key in ("approver", "decision") if isinstance(data.get(key), str)
    }


def parse_decision_body(body: bytes) -> DecisionBody:
    """Parse a POST body; anything malformed is unsigned, hence forged."""
    try:
        # Strict as /check bodies are: with a key twice, json.loads keeps the last, and
        # the record of a refused body could read as another decision than it signs.
        data = parse_json_body(body)
    except RequestError as exc:
        raise ForgedDecision(f"the body is not a JSON object ({exc.message})") from None
    claimed = _claimed(data)
    if isinstance(data, dict) and "signature" not in data:
        raise ForgedDecision("unsigned: the body has no signature", claimed)
    try:
        return DecisionBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ForgedDecision(f"malformed decision: {where}: {first['msg']}", claimed) from None


def verify_decision(
    body: DecisionBody, approval_id: str, request_hash: str, approvals: Approvals | None
) -> None:
    """Raise ``ForgedDecision`` unless ``body`` is signed by the approver it names."""
    claimed = {"approver": body.approver[:128], "decision": body.decision}
    problem = signature_problem(
        approval_id, body.approver, body.decision, request_hash, body.signature, approvals
    )
    if problem is not None:
        raise ForgedDecision(problem, claimed)


def signature_problem(
    approval_id: str,
    approver: str,
    decision: str,
    request_hash: str,
    signature: str | None,
    approvals: Approvals | None,
) -> str | None:
    """Why ``signature`` is not ``approver``'s, by the key ``approvals`` lists for them,
    over this approval, decision and request; None when it is."""
    listed = {a.name: a.publicKey for a in approvals.approvers} if approvals else {}
    if approver not in listed:
        return f"{approver!r} is not an approver in the policy"
    try:
        key = public_key_from_base64(listed[approver])
    except KeyFileError:
        key = None
    if key is None:  # the compiler refuses such policies; never trust one that slipped by
        return f"approver {approver!r} has no usable key"
    if signature is None:
        return "there is no signature"
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return "the signature is not base64"
    if len(raw) != SIGNATURE_BYTES:
        return "the signature is not 64 bytes"
    try:
        key.verify(raw, decision_message(approval_id, approver, decision, request_hash))
    except InvalidSignature:
        return (
            f"the signature does not verify with {approver!r}'s key "
            "for this approval, decision and request"
        )
    return None
