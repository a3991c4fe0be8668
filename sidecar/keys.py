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
    return key


def public_key_from_base64(text: str) -> Ed25519PublicKey | None:
    """Decode the base64 of a raw 32-byte key, or None when ``text`` is not one."""
    try:
        raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    if len(raw) != _RAW_KEY_SIZE:
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


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
