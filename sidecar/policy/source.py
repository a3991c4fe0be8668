"""Where the active policy comes from: a file, optionally pinned and signed (CONTRACT 3).

``read_policy`` reads the file once and loads those exact bytes, so the hash that is
checked against ``--require-policy-hash``, the bytes whose ``.sig`` is verified with
``--policy-public-key`` and the policy that is compiled are the same bytes. A policy
failing either check is rejected exactly like an invalid one.

In a ConfigMap volume the policy and its ``.sig`` are two keys that kubelet swaps
together (the ``..data`` symlink is renamed over); both are read through their resolved
paths, and the resolution is checked unchanged afterwards, so they come from one swap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.errors import PolicyError
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import (
    MAX_POLICY_BYTES,
    load_policy_bytes,
    policy_hash,
    read_regular_file,
)


@dataclass(frozen=True)
class PolicySource:
    path: str
    public_key: Ed25519PublicKey | None = None
    required_hash: str | None = None

    def read(self) -> CompiledPolicy:
        """Read, verify and compile the policy. Raises ``PolicyError``."""
        return self.read_with_signature()[0]

    def read_with_signature(self) -> tuple[CompiledPolicy, str | None]:
        """``read``, and the hex SHA-256 of the ``.sig`` read with the policy (None without
        a public key): a watcher compares both with what it fingerprinted before the read.

        Raises ``PolicyError``, carrying the same two digests.
        """
        data, signature = self._read_snapshot()
        digest = policy_hash(data)
        signature_sha256 = None if signature is None else hashlib.sha256(signature).hexdigest()
        try:
            if self.required_hash is not None and digest != self.required_hash:
                raise PolicyError(
                    self.path, [f"hash {digest} is not the required {self.required_hash}"]
                )
            if self.public_key is not None:
                # Set whenever a key is; an empty signature never verifies.
                verify_policy_signature(self.path, data, signature or b"", self.public_key)
            return load_policy_bytes(data, self.path), signature_sha256
        except PolicyError as exc:
            # Name the bytes refused, so that the trail says which version was turned away.
            exc.rejected_hash = digest
            exc.signature_sha256 = signature_sha256
            raise

    def _resolved(self) -> tuple[str, str]:
        return os.path.realpath(self.path), os.path.realpath(signature_path(self.path))

    def _read_snapshot(self) -> tuple[bytes, bytes | None]:
        """The policy bytes and (when a key is set) the ``.sig`` bytes, from one version."""
        for _ in range(_SNAPSHOT_ATTEMPTS):
            resolved = self._resolved()
            try:
                data = _read_bounded(resolved[0], MAX_POLICY_BYTES + 1)
            except OSError as exc:
                if self._resolved() != resolved:
                    continue  # swapped, and the old version removed, while reading: again
                raise PolicyError(self.path, [f"cannot read: {exc.strerror or exc}"]) from exc
            signature = None
            if self.public_key is not None:
                try:
                    signature = _read_bounded(resolved[1], _MAX_SIGNATURE_BYTES)
                except OSError as exc:
                    if self._resolved() != resolved:
                        continue
                    error = PolicyError(
                        self.path,
                        [
                            f"signature {signature_path(self.path)} cannot be read: "
                            f"{exc.strerror or exc}"
                        ],
                        rejected_hash=policy_hash(data),
                    )
                    error.signature_sha256 = ""  # as a fingerprint names an unreadable file
                    raise error from exc
            if self._resolved() == resolved:
                return data, signature
        raise PolicyError(self.path, ["the policy kept changing while it was being read"])


# A kubelet swap takes microseconds; a file replaced this many times during one read is
# being rewritten continuously, and the next event or poll reads it again.
_SNAPSHOT_ATTEMPTS = 5
_MAX_SIGNATURE_BYTES = 4096


def _read_bounded(path: str, limit: int) -> bytes:
    return read_regular_file(path, limit)[0]


def signature_path(policy_path: str) -> str:
    return policy_path + ".sig"


def verify_policy_signature(
    path: str, data: bytes, encoded: bytes, public_key: Ed25519PublicKey
) -> None:
    """Check ``encoded``, the content of ``<path>.sig`` (base64 Ed25519 over ``data``).

    Raises ``PolicyError``.
    """
    sig_path = signature_path(path)
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
