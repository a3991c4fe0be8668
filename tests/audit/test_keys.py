"""``sidecar.keys``: generating and loading Ed25519 key files."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.keys import (
    KeyFileError,
    generate_keypair,
    load_private_key,
    load_public_key,
    public_key_base64,
)


def test_generate_writes_pkcs8_private_and_spki_public(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path / "keys", "gate")
    assert key_path == tmp_path / "keys" / "gate.key"
    assert pub_path == tmp_path / "keys" / "gate.pub"
    assert key_path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    private = load_private_key(key_path)
    public = load_public_key(pub_path)
    signature = private.sign(b"policy bytes")
    public.verify(signature, b"policy bytes")  # raises if the pair does not match


def test_generate_never_overwrites_a_key(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path)
    before = key_path.read_bytes()
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path)
    assert key_path.read_bytes() == before


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "."])
def test_generate_rejects_names_that_are_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyFileError):
        generate_keypair(tmp_path, name)


def test_public_key_loads_from_pem_text_raw_base64_and_files(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = public.public_bytes_raw()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_b64 = base64.b64encode(raw).decode()
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "k.b64").write_text(raw_b64 + "\n")
    for source in (pem, pem.decode(), raw_b64, str(tmp_path / "k.pem"), tmp_path / "k.b64"):
        assert load_public_key(source).public_bytes_raw() == raw
    assert public_key_base64(public) == raw_b64


@pytest.mark.parametrize(
    "source",
    [
        base64.b64encode(b"x" * 31).decode(),  # wrong length
        "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
        "/nonexistent/key.pub",
    ],
)
def test_bad_public_keys_raise(source: str) -> None:
    with pytest.raises(KeyFileError):
        load_public_key(source)


def test_private_key_must_be_ed25519_pkcs8(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "ec.key"
    path.write_bytes(other)
    with pytest.raises(KeyFileError, match="not an Ed25519"):
        load_private_key(path)
    path.write_text("garbage")
    with pytest.raises(KeyFileError):
        load_private_key(path)
