"""Public keys no one holds a private key for (approvals review of 2026-12-06).

A policy whose approver key was a placeholder (all zeros) or another point of small
order loaded; OpenSSL verifies signatures for such a key that anyone can compute, and
the agent approved its own request with one. Such keys are now refused wherever a
public key is loaded. The curve arithmetic below checks, independently of the gate's
table, that each refused y coordinate is one of a point of order dividing 8.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sidecar.approvals.signing import signature_problem
from sidecar.audit.note import NoteError, Verifier
from sidecar.keys import KeyFileError, load_public_key, public_key_base64, weak_key_problem
from sidecar.policy.loader import PolicyError, load_policy_bytes

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P


def _point(y: int) -> tuple[int, int]:
    """The point with this y and an even x (RFC 8032 5.1.3)."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert (v * x * x - u) % P == 0, "not on the curve"
    return (P - x if x & 1 else x), y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)  # fmt: skip


SMALL_ORDER = [
    bytes(32),  # y = 0: order 4, the placeholder "AAAA...A="
    b"\x01" + bytes(31),  # the identity
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
]
# The same points with the sign bit set, and y not reduced below p (p, p + 1).
OTHER_SPELLINGS = [raw[:31] + bytes([raw[31] | 0x80]) for raw in SMALL_ORDER] + [
    (P).to_bytes(32, "little"),
    (P + 1).to_bytes(32, "little"),
]


@pytest.mark.parametrize("raw", SMALL_ORDER, ids=lambda raw: raw.hex()[:8])
def test_each_refused_y_is_a_point_of_small_order(raw: bytes) -> None:
    point = _point(int.from_bytes(raw, "little"))
    multiple = point
    for _ in range(3):  # 8 * point
        multiple = _add(multiple, multiple)
    assert multiple == (0, 1)


def test_anyone_can_sign_for_such_a_key_which_is_why_it_is_refused() -> None:
    identity = Ed25519PublicKey.from_public_bytes(SMALL_ORDER[1])
    identity.verify(SMALL_ORDER[1] + bytes(32), b"any message at all")  # R = O, S = 0


@pytest.mark.parametrize("raw", SMALL_ORDER + OTHER_SPELLINGS, ids=lambda raw: raw.hex()[:8])
def test_a_key_no_one_holds_is_refused_wherever_keys_are_loaded(raw: bytes) -> None:
    text = base64.b64encode(raw).decode()
    assert weak_key_problem(raw) is not None
    with pytest.raises(KeyFileError, match="not a usable Ed25519 public key"):
        load_public_key(text)
    with pytest.raises(PolicyError, match=r"approvers\[0\]\.publicKey: .*not a usable"):
        load_policy_bytes(
            f"version: 1\napprovals:\n  approvers: [{{name: oncall, publicKey: '{text}'}}]\n"
            "rules: []\n".encode(),
            "placeholder.yaml",
        )
    encoded = base64.b64encode(b"\x01" + raw).decode()
    with pytest.raises(NoteError):
        Verifier.parse(f"tollgate/x+00000000+{encoded}")


def test_real_keys_still_load_and_verify() -> None:
    for _ in range(50):
        raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert weak_key_problem(raw) is None
        assert load_public_key(base64.b64encode(raw).decode()).public_bytes_raw() == raw


def test_one_key_under_two_approver_names_is_refused() -> None:
    key = public_key_base64(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(PolicyError, match=r"approvers\[1\]\.publicKey: the same key as 'alice'"):
        load_policy_bytes(
            f"version: 1\napprovals:\n  approvers:\n    - {{name: alice, publicKey: '{key}'}}\n"
            f"    - {{name: bob, publicKey: '{key}'}}\nrules: []\n".encode(),
            "shared.yaml",
        )


def test_a_signature_is_never_checked_against_a_weak_key_that_slipped_by() -> None:
    # signature_problem reads the key from the loaded policy's approvers; a model built
    # without the compiler (as a test can) must still not trust it.
    from sidecar.policy.schema import Approvals

    approvals = Approvals.model_validate(
        {"approvers": [{"name": "oncall", "publicKey": base64.b64encode(SMALL_ORDER[1]).decode()}]}
    )
    signature = base64.b64encode(SMALL_ORDER[1] + bytes(32)).decode()
    problem = signature_problem("apr_x", "oncall", "approve", "ab" * 32, signature, approvals)
    assert problem == "approver 'oncall' has no usable key"
