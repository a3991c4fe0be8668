"""Where the active policy comes from: a file, optionally pinned and signed (CONTRACT 3).

``read_policy`` reads the file once and loads those exact bytes, so the hash that is
checked against ``--require-policy-hash``, the bytes whose ``.sig`` is verified with
``--policy-public-key`` and the policy that is compiled are the same bytes. A policy
failing either check is rejected exactly like an invalid one.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.errors import PolicyError
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import MAX_POLICY_BYTES, load_policy_bytes, policy_hash


@dataclass(frozen=True)
class PolicySource:
    path: str
    public_key: Ed25519PublicKey | None = None
    required_hash: str | None = None

    def read(self) -> CompiledPolicy:
        """Read, verify and compile the policy. Raises ``PolicyError``."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise PolicyError(self.path, [f"cannot read: {exc.strerror or exc}"]) from exc
        if self.required_hash is not None and policy_hash(data) != self.required_hash:
            raise PolicyError(
                self.path,
                [f"hash {policy_hash(data)} is not the required {self.required_hash}"],
            )
        if self.public_key is not None:
            verify_policy_signature(self.path, data, self.public_key)
        return load_policy_bytes(data, self.path)


def signature_path(policy_path: str) -> str:
    return policy_path + ".sig"


def verify_policy_signature(path: str, data: bytes, public_key: Ed25519PublicKey) -> None:
    """Check ``<path>.sig`` (base64 Ed25519 over the exact bytes). Raises ``PolicyError``."""
    sig_path = signature_path(path)
    try:
        with open(sig_path, "rb") as handle:
            encoded = handle.read(4096)
    except OSError as exc:
        raise PolicyError(
            path, [f"signature {sig_path} cannot be read: {exc.strerror or exc}"]
        ) from exc
    try:
        signature = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PolicyError(path, [f"signature {sig_path} is not base64"]) from exc
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise PolicyError(
            path, [f"signature {sig_path} does not verify with the policy public key"]
        ) from None
