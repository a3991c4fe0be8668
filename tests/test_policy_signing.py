"""Signed and hash-pinned policies (CONTRACT 3: ``policy sign``, ``--policy-public-key``,
``--require-policy-hash``), at start and on live reload, against the real daemon.

In a ConfigMap the signature is one more key, ``policy.yaml.sig``, swapped by kubelet
together with the policy.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sidecar.cli import main as tollgate
from sidecar.errors import PolicyError
from sidecar.keys import load_private_key
from sidecar.policy.source import PolicySource
from tests.test_reload import (
    ALLOW_READS,
    DENY_READS,
    READ,
    ConfigMapVolume,
    of_type,
    policy_hash,
    status,
    wait_for_policy,
    wait_for_rejections,
)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two Ed25519 pairs made by ``tollgate keygen``: the trusted one and a stranger's."""
    out = tmp_path / "keys"
    assert tollgate(["keygen", "--out", str(out), "--name", "policy"]) == 0
    assert tollgate(["keygen", "--out", str(out), "--name", "stranger"]) == 0
    return {name: out / name for name in ("policy.key", "policy.pub", "stranger.key")}


def signature(data: bytes, key: Path, tmp_path: Path) -> bytes:
    """What ``tollgate policy sign`` writes for ``data``."""
    scratch = tmp_path / "to-sign.yaml"
    scratch.write_bytes(data)
    assert tollgate(["policy", "sign", str(scratch), "--key", str(key)]) == 0
    return (tmp_path / "to-sign.yaml.sig").read_bytes()


def test_policy_sign_writes_the_base64_signature_of_the_exact_bytes(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    encoded = signature(ALLOW_READS, keys["policy.key"], tmp_path)
    public_key = load_private_key(keys["policy.key"]).public_key()
    public_key.verify(base64.b64decode(encoded.strip(), validate=True), ALLOW_READS)


def test_policy_sign_refuses_a_policy_the_gate_would_reject(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_bytes(ALLOW_READS.replace(b"decision: allow", b"decision: alow"))
    assert tollgate(["policy", "sign", str(broken), "--key", str(keys["policy.key"])]) == 2
    err = capsys.readouterr().err
    assert "decision" in err and "is not a valid policy, not signed" in err
    assert not (tmp_path / "policy.yaml.sig").exists()


def test_signed_updates_load_and_others_are_rejected(
    keys: dict[str, Path], tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(
        tmp_path / "config",
        {
            "policy.yaml": ALLOW_READS,
            "policy.yaml.sig": signature(ALLOW_READS, keys["policy.key"], tmp_path),
        },
    )
    gate = daemon_factory(volume.path(), "--policy-public-key", str(keys["policy.pub"]))
    assert status(gate)["policy"]["signatureRequired"] is True
    assert gate.check(READ).json()["allowed"] is True

    denied = DENY_READS
    bad_updates = [
        ({"policy.yaml": denied}, "cannot be read"),  # unsigned: no .sig key
        (
            {
                "policy.yaml": denied,
                "policy.yaml.sig": signature(denied, keys["stranger.key"], tmp_path),
            },
            "does not verify",
        ),
        (
            {
                "policy.yaml": denied,  # the previous policy's signature, reused
                "policy.yaml.sig": signature(ALLOW_READS, keys["policy.key"], tmp_path),
            },
            "does not verify",
        ),
        ({"policy.yaml": denied, "policy.yaml.sig": b"not base64 at all!\n"}, "not base64"),
    ]
    for number, (files, problem) in enumerate(bad_updates, start=1):
        volume.update(files)
        rejected = wait_for_rejections(gate, number)[-1]
        assert any(problem in text for text in rejected["problems"]), rejected
        assert rejected["kept"] == policy_hash(ALLOW_READS)
        assert problem in status(gate)["policy"]["lastError"]
        answer = gate.check(READ).json()
        assert answer["allowed"] is True
        assert answer["policy"] == policy_hash(ALLOW_READS)

    volume.update(
        {"policy.yaml": denied, "policy.yaml.sig": signature(denied, keys["policy.key"], tmp_path)}
    )
    wait_for_policy(gate, denied)
    assert gate.check(READ).json()["allowed"] is False
    assert status(gate)["policy"]["lastError"] is None


def test_unsigned_policy_at_start_is_never_served(
    keys: dict[str, Path], tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    # The key from the environment, as in a pod spec.
    gate = daemon_factory(
        volume.path(), wait_ready=False, env={"TOLLGATE_POLICY_PUBLIC_KEY": str(keys["policy.pub"])}
    )
    assert gate.get("/ready").status_code == 503
    answer = gate.check(READ)
    assert answer.status_code == 503
    assert answer.json()["allowed"] is False
    assert status(gate)["policy"]["hash"] is None

    volume.update(
        {
            "policy.yaml": ALLOW_READS,
            "policy.yaml.sig": signature(ALLOW_READS, keys["policy.key"], tmp_path),
        }
    )
    wait_for_policy(gate, ALLOW_READS)
    assert gate.get("/ready").status_code == 200
    assert gate.check(READ).json()["allowed"] is True


def test_pinned_hash_rejects_every_other_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    pinned = policy_hash(ALLOW_READS)
    gate = daemon_factory(volume.path(), "--require-policy-hash", pinned)
    assert status(gate)["policy"]["pinnedHash"] == pinned

    volume.update({"policy.yaml": DENY_READS})  # valid, but not the pinned one
    rejected = wait_for_rejections(gate, 1)[0]
    assert any(f"is not the required {pinned}" in text for text in rejected["problems"])
    assert gate.check(READ).json()["policy"] == pinned
    assert of_type(gate, "policyLoaded")[-1]["policy"] == pinned


def test_a_pinned_hash_in_upper_case_names_the_same_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    pinned = policy_hash(ALLOW_READS)
    gate = daemon_factory(volume.path(), "--require-policy-hash", "sha256:" + pinned[7:].upper())
    assert status(gate)["policy"]["pinnedHash"] == pinned
    assert gate.check(READ).json()["allowed"] is True


def test_a_malformed_pinned_hash_is_a_usage_error(tmp_path: Path) -> None:
    for bad in ("sha256:abc", "md5:" + "0" * 64, "0" * 64):
        result = subprocess.run(
            [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(tmp_path / "p"),
             "--audit-dir", str(tmp_path / "a"), "--require-policy-hash", bad],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2 and "sha256:<64 hex>" in result.stderr
        assert not (tmp_path / "a").exists()


def test_pinned_hash_waits_for_the_pinned_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(
        volume.path(), "--require-policy-hash", policy_hash(DENY_READS), wait_ready=False
    )
    assert gate.get("/ready").status_code == 503
    assert gate.check(READ).status_code == 503
    volume.update({"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS)
    assert gate.get("/ready").status_code == 200
    assert gate.check(READ).json()["decision"] == "deny"


def test_source_reads_policy_and_signature_from_one_swap(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    # Two signed versions swapped back and forth by kubelet's writer while the source
    # reads: every read must see a matching pair (a torn pair would fail to verify).
    versions = [
        {
            "policy.yaml": data,
            "policy.yaml.sig": signature(data, keys["policy.key"], tmp_path),
        }
        for data in (ALLOW_READS, DENY_READS)
    ]
    volume = ConfigMapVolume(tmp_path / "config", versions[0])
    public_key = load_private_key(keys["policy.key"]).public_key()
    source = PolicySource(str(volume.path()), public_key=public_key)
    stop = threading.Event()
    swaps = 0

    def swap_forever() -> None:
        nonlocal swaps
        while not stop.is_set():
            swaps += 1
            volume.update(versions[swaps % 2])
            stop.wait(0.001)

    swapper = threading.Thread(target=swap_forever)
    swapper.start()
    seen: set[str] = set()
    reads = 0
    deadline = time.monotonic() + 60
    try:
        # At least 400 reads across at least 50 swaps: on a busy machine the swapper
        # may be slow to get going, so the reads go on until both have happened.
        while (reads < 400 or swaps <= 50) and time.monotonic() < deadline:
            reads += 1
            try:
                seen.add(source.read().hash)
            except PolicyError as exc:  # only "kept changing" is acceptable, never a bad pair
                assert exc.problems == ["the policy kept changing while it was being read"]
    finally:
        stop.set()
        swapper.join()
    assert swaps > 50
    assert seen == {policy_hash(ALLOW_READS), policy_hash(DENY_READS)}
