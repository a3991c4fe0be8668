"""C2SP signed notes and checkpoints, against the Go sumdb/note example.

The key pair, text and signature are the ones published in the documentation of
golang.org/x/mod/sumdb/note ("PeterNeumann"); Ed25519 signatures are deterministic, so
our signer must reproduce the signature line byte for byte.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.note import NoteError, Signer, Verifier, parse_note, verify_note

GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNED = (
    GO_TEXT
    + "\n"
    + "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_example_signature_is_reproduced_byte_for_byte() -> None:
    name, signer = Signer.from_note_private_key(GO_SIGNER_KEY)
    assert name == "PeterNeumann"
    assert signer.key_id(name).hex() == "c74f20a3"
    assert signer.verifier_key(name) == GO_VERIFIER_KEY
    assert signer.sign(GO_TEXT, name) == GO_SIGNED


def test_go_example_note_verifies_with_the_published_verifier_key() -> None:
    verifier = Verifier.parse(GO_VERIFIER_KEY)
    assert verifier.key_id.hex() == "c74f20a3"
    note = parse_note(GO_SIGNED)
    assert note.text == GO_TEXT
    assert verify_note(note, [verifier]) == [verifier]


def test_a_changed_text_fails_verification() -> None:
    tampered = GO_SIGNED.replace("problem is", "problem was")
    with pytest.raises(NoteError, match="invalid"):
        verify_note(parse_note(tampered), [Verifier.parse(GO_VERIFIER_KEY)])


def test_signatures_from_unknown_keys_are_ignored_but_one_known_is_required() -> None:
    other = Signer(Ed25519PrivateKey.generate())
    double = GO_SIGNED + other.signature_line(GO_TEXT, "someone.example/else")
    note = parse_note(double)
    assert len(note.signatures) == 2
    assert verify_note(note, [Verifier.parse(GO_VERIFIER_KEY)])
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        verify_note(note, [Verifier("stranger.example", other.public_key)])


def test_same_name_other_key_is_not_the_known_key() -> None:
    impostor = Signer(Ed25519PrivateKey.generate())
    forged = GO_TEXT + "\n" + impostor.signature_line(GO_TEXT, "PeterNeumann")
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        verify_note(parse_note(forged), [Verifier.parse(GO_VERIFIER_KEY)])


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n\u2014 PeterNeumann AAAA\n",
        GO_TEXT + "\n" + "- PeterNeumann x08go/ZJkuBS9UG\n",  # hyphen, not em dash
        GO_TEXT + "\n" + "\u2014 PeterNeumann !!notbase64!!\n",
        GO_TEXT + "\n" + "\u2014 Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQ=\n",
        "text\x01with control\n\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQ=\n",
    ],
)
def test_malformed_notes_are_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        parse_note(bad)


@pytest.mark.parametrize(
    "mangled",
    [
        GO_VERIFIER_KEY[:-1],
        GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4"),
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_mangled_verifier_keys_are_rejected(mangled: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(mangled)


def test_checkpoint_text_matches_the_c2sp_example_layout() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_b64 == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert checkpoint.text() == text


@pytest.mark.parametrize(
    "text",
    [
        "origin\n012\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # leading zero
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # unpadded
        "origin\n12\n" + base64.b64encode(b"x" * 31).decode() + "\n",  # 31 bytes
        "origin\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
        "\n12\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_checkpoint_extension_lines_are_accepted() -> None:
    text = "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nextension\n"
    assert Checkpoint.parse(text).size == 1
