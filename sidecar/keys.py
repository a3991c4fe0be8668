"""Ed25519 key files: ``tollgate keygen`` (CONTRACT section 3) and loading keys.

Private keys are PKCS8 PEM (``N.key``, mode 0600), public keys SubjectPublicKeyInfo PEM
(``N.pub``). Policy approver keys are written inline as the base64 of the raw 32-byte
public key (CONTRACT section 1), which ``load_public_key`` also accepts.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_PEM_MARKER = b"-----BEGIN"
_RAW_KEY_SIZE = 32


class KeyFileError(ValueError):
    """A key file or key string is not a usable Ed25519 key."""


# Public keys no one holds a private key for. For a point of small order (the curve's
# 8-torsion) a signature that verifies can be computed without any private key: with the
# identity as key, R = identity and S = 0 verify for every message. OpenSSL accepts them,
# so they are refused here, as libsodium does: by their y coordinate (the sign bit
# cleared), and any y that is not reduced below p (a non-canonical encoding, RFC 8032
# 5.1.3). `tollgate keygen` never makes such a key; a placeholder ("AAAA...=") is one.
_FIELD_PRIME = 2**255 - 19
_SMALL_ORDER_Y = frozenset(
    int.from_bytes(bytes.fromhex(encoded), "little")
    for encoded in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    )
)


def weak_key_problem(raw: bytes) -> str | None:
    """Why the raw 32-byte Ed25519 public key ``raw`` must not be trusted, or None."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _FIELD_PRIME:
        return "a non-canonical encoding (its y coordinate is not below 2^255 - 19)"
    if y in _SMALL_ORDER_Y:
        return (
            "a point of small order: signatures for it can be made without a private key "
            "(a placeholder such as all zeros?)"
        )
    return None


def checked_public_key(key: Ed25519PublicKey, source: str = "public key") -> Ed25519PublicKey:
    """``key``, unless it is one no one holds a private key for (``weak_key_problem``)."""
    problem = weak_key_problem(key.public_bytes_raw())
    if problem is not None:
        raise KeyFileError(f"{source}: not a usable Ed25519 public key: {problem}")
    return key


def _check_name(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name:
        raise KeyFileError(f"invalid key name {name!r}: use a plain file name without '/'")


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(out_dir: str | os.PathLike[str], name: str = "tollgate") -> tuple[Path, Path]:
    """Write a new Ed25519 pair ``<out_dir>/<name>.key`` and ``<name>.pub``.

    Refuses (FileExistsError) to overwrite either file: replacing a signing key by
    accident would orphan every checkpoint signed with it.
    """
    _check_name(name)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / f"{name}.key"
    pub_path = directory / f"{name}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; not overwriting a key")
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new_file(key_path, private_pem, 0o600)
    _write_new_file(pub_path, public_pem, 0o644)
    return key_path, pub_path


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS8 PEM Ed25519 private key from ``path``."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PKCS8 PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def public_key_from_pem(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source}: not a SubjectPublicKeyInfo PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{source}: not an Ed25519 public key")
    return checked_public_key(key, source)


def public_key_from_base64(text: str) -> Ed25519PublicKey | None:
    """Decode the base64 of a raw 32-byte key, or None when ``text`` is not one.

    Raises ``KeyFileError`` for 32 bytes that are no usable key (``weak_key_problem``).
    """
    try:
        raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    if len(raw) != _RAW_KEY_SIZE:
        return None
    return checked_public_key(Ed25519PublicKey.from_public_bytes(raw))


def load_public_key(source: str | bytes | os.PathLike[str]) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM text, raw-key base64, or a file holding either.

    ``source`` is tried in that order: PEM (``-----BEGIN PUBLIC KEY-----``), then the
    base64 of the raw 32-byte key (as in a policy's ``approvers``), then a file path.
    """
    if isinstance(source, os.PathLike):
        return _load_public_key_file(Path(source))
    data = source.encode("utf-8") if isinstance(source, str) else source
    if data.lstrip().startswith(_PEM_MARKER):
        return public_key_from_pem(data)
    raw_key = public_key_from_base64(data.decode("ascii", errors="replace"))
    if raw_key is not None:
        return raw_key
    text = data.decode("utf-8", errors="strict") if isinstance(source, bytes) else source
    if os.path.isfile(text):
        return _load_public_key_file(Path(text))
    raise KeyFileError(
        "not an Ed25519 public key: expected PEM, the base64 of a raw 32-byte key, "
        f"or a file holding one (got {text[:40]!r})"
    )


def _load_public_key_file(path: Path) -> Ed25519PublicKey:
    data = path.read_bytes()
    if data.lstrip().startswith(_PEM_MARKER):
        return public_key_from_pem(data, str(path))
    raw_key = public_key_from_base64(data.decode("ascii", errors="replace"))
    if raw_key is None:
        raise KeyFileError(f"{path}: neither a PEM public key nor the base64 of a raw 32-byte key")
    return raw_key


def public_key_base64(key: Ed25519PublicKey) -> str:
    """The base64 of the raw 32-byte key, the form policy approvers use."""
    return base64.b64encode(key.public_bytes_raw()).decode("ascii")
