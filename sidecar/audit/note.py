"""C2SP signed notes with Ed25519 (https://c2sp.org/signed-note).

A signed note is a text ending in a newline, a blank line, then signature lines
``— <key name> base64(key ID || signature)``. The Ed25519 key ID is
SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]; the signature covers the
note text, final newline included. Verifier keys use the Go sumdb/note encoding
``<name>+<hex key ID>+base64(0x01 || public key)`` so standard tooling can read them.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sidecar.keys import weak_key_problem

ED25519_TYPE = 0x01
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_MAX_SIGNATURES = 64
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note, key or signature is malformed or does not verify."""


def check_key_name(name: str) -> None:
    """Key names are non-empty and contain neither Unicode spaces nor '+', nor a control
    character that note text may not hold (the name is the checkpoint's first line)."""
    if (
        not name
        or "+" in name
        or any(char.isspace() for char in name)
        or _FORBIDDEN_CONTROL.search(name)
    ):
        raise NoteError(
            f"invalid note key name {name!r}: must be non-empty, "
            "no spaces, no '+', no control characters"
        )


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte C2SP key ID of an Ed25519 key under ``name``."""
    raw = public_key.public_bytes_raw()
    return sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + raw).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc


class Signer:
    """An Ed25519 private key that signs notes; the key name is chosen per note.

    The audit log signs under its checkpoint origin (C2SP tlog-checkpoint says the log's
    key name SHOULD match the origin), so one key file serves any identity.
    """

    __slots__ = ("_private_key", "_public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()

    @classmethod
    def from_key_file(cls, path: str) -> Signer:
        """Load a PKCS8 PEM Ed25519 private key (as written by ``tollgate keygen``)."""
        from sidecar.keys import load_private_key

        return cls(load_private_key(path))

    @classmethod
    def from_note_private_key(cls, encoded: str) -> tuple[str, Signer]:
        """Parse a Go sumdb/note private key ``PRIVATE+KEY+<name>+<hex id>+<base64>``."""
        if not encoded.startswith(_PRIVATE_KEY_PREFIX):
            raise NoteError("note private key must start with PRIVATE+KEY+")
        parts = encoded[len(_PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("note private key must be PRIVATE+KEY+<name>+<id>+<key>")
        name, id_hex, key_b64 = parts
        check_key_name(name)
        key = _b64decode(key_b64, "note private key")
        if len(key) != 33 or key[0] != ED25519_TYPE:
            raise NoteError("note private key is not an Ed25519 key")
        signer = cls(Ed25519PrivateKey.from_private_bytes(key[1:]))
        if signer.key_id(name).hex() != id_hex:
            raise NoteError("note private key ID does not match the key")
        return name, signer

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private_key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    def key_id(self, name: str) -> bytes:
        return key_id(name, self._public_key)

    def verifier_key(self, name: str) -> str:
        """The public verifier key string ``<name>+<hex id>+<base64>`` for ``name``."""
        return Verifier(name, self._public_key).encoded()

    def signature_line(self, text: str, name: str) -> str:
        """One signature line (with its newline) over ``text`` under key name ``name``."""
        check_key_name(name)
        _check_text(text)
        signature = self._private_key.sign(text.encode("utf-8"))
        blob = base64.b64encode(self.key_id(name) + signature).decode("ascii")
        return f"{_SIGNATURE_PREFIX}{name} {blob}\n"

    def sign(self, text: str, name: str) -> str:
        """The complete signed note: text, blank line, signature line."""
        return text + "\n" + self.signature_line(text, name)


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key under a key name."""

    name: str
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @classmethod
    def parse(cls, encoded: str) -> Verifier:
        """Parse a verifier key ``<name>+<hex id>+base64(0x01 || public key)``."""
        parts = encoded.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must be <name>+<id>+<key>")
        name, id_hex, key_b64 = parts
        if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
            raise NoteError("verifier key ID must be 8 lower-case hex digits")
        key = _b64decode(key_b64, "verifier key")
        if len(key) != 33 or key[0] != ED25519_TYPE:
            raise NoteError("verifier key is not an Ed25519 key")
        problem = weak_key_problem(key[1:])
        if problem is not None:
            raise NoteError(f"verifier key is not a usable Ed25519 key: {problem}")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(key[1:]))
        if verifier.key_id.hex() != id_hex:
            raise NoteError("verifier key ID does not match the key")
        return verifier

    def encoded(self) -> str:
        """The verifier key string ``<name>+<hex id>+base64(0x01 || public key)``."""
        raw = bytes([ED25519_TYPE]) + self.public_key.public_bytes_raw()
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode('ascii')}"

    def verifies(self, text: str, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, text.encode("utf-8"))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _FORBIDDEN_CONTROL.search(text):
        raise NoteError("note text must not contain control characters other than newline")


def parse_note(note: str | bytes) -> SignedNote:
    """Split a signed note into its text and signature lines (nothing is verified)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    # Left by Windows tools; it would otherwise read as a missing blank line. (A byte
    # order mark is left alone: the signed-note format allows U+FEFF in a key name, as Go's
    # implementation does; verify names it when a checkpoint's origin starts with one.)
    if "\r\n" in note:
        raise NoteError("note has CRLF line endings: a signed note's lines end in LF alone")
    separator = note.rfind("\n\n")
    if separator < 0 or not note.endswith("\n"):
        raise NoteError("note has no blank line before its signatures")
    text = note[: separator + 1]
    _check_text(text)
    lines = note[separator + 2 : -1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, blob_b64 = line[len(_SIGNATURE_PREFIX) :].rpartition(" ")
        check_key_name(name)
        blob = _b64decode(blob_b64, "signature")
        if len(blob) < 5:
            raise NoteError("signature is too short")
        signatures.append(NoteSignature(name, blob[:4], blob[4:]))
    return SignedNote(text, tuple(signatures))


def verify_note(note: SignedNote, verifiers: list[Verifier]) -> list[Verifier]:
    """Return the verifiers whose signatures on ``note`` are valid.

    As the specification requires, signatures from unknown keys are ignored, a known key
    whose signature fails rejects the note, and a note without any verified signature
    from a known key is rejected.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verifies(note.text, signature.signature):
            raise NoteError(f"signature by {signature.name} ({signature.key_id.hex()}) is invalid")
        verified.append(verifier)
    if not verified:
        raise NoteError("note carries no signature from a trusted key")
    return verified
