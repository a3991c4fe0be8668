"""``tollgate policy sign``, and ``serve``'s signing and pinning settings, as operators
use them: the real CLI in a subprocess, real files, real keys (CONTRACT 3;
docs/policy-reload.md)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.keys import load_private_key
from tests.daemon import free_port
from tests.test_policy_signing import keys  # noqa: F401  (fixture)
from tests.test_reload import ALLOW_READS, policy_hash


def sign(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "sign", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sign_shows_the_warnings_and_the_hash_it_signs(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    # The signature is the reviewer's approval: what `policy validate` warns about must
    # be in front of them when they sign, and the hash a gate will report.
    policy = tmp_path / "policy.yaml"
    data = b"version: 1\ndefaultAction: allow\nrules: []\n"
    policy.write_bytes(data)
    done = sign(str(policy), "--key", str(keys["policy.key"]))
    assert done.returncode == 0, done.stderr
    assert "warning: defaultAction: allow" in done.stderr
    assert policy_hash(data) in done.stdout
    written = (tmp_path / "policy.yaml.sig").read_bytes()
    public_key = load_private_key(keys["policy.key"]).public_key()
    public_key.verify(base64.b64decode(written.strip(), validate=True), data)


def test_sign_refuses_what_is_not_a_regular_file(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    # `policy validate` refuses a FIFO at once; `sign` used to wait on it forever.
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    done = sign(str(fifo), "--key", str(keys["policy.key"]), timeout=10.0)
    assert done.returncode == 2
    assert "not a regular file" in done.stderr
    assert not (tmp_path / "policy.yaml.sig").exists()


def test_sign_replaces_the_signature_file_instead_of_writing_through_it(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    # The .sig is written beside the policy and renamed into place: a reader (a gate
    # following the directory) never sees it empty or half-written, and a .sig that is
    # a link to another file (another policy's signature) leaves that file as it was.
    other = tmp_path / "other.yaml.sig"
    other.write_bytes(b"other signature\n")
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    (tmp_path / "policy.yaml.sig").symlink_to(other)
    done = sign(str(policy), "--key", str(keys["policy.key"]))
    assert done.returncode == 0, done.stderr
    assert other.read_bytes() == b"other signature\n"
    assert not (tmp_path / "policy.yaml.sig").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("policy")) == [
        "policy.yaml",
        "policy.yaml.sig",
    ]


def serve_exit(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int | None, str]:
    """Start ``tollgate serve`` on ``args``; its exit code and stderr, or None if it ran."""
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy),
            "--audit-dir", str(tmp_path / "audit"), "--port", str(free_port()), *args,
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _, err = process.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None, ""
    return process.returncode, err


def test_an_empty_signing_or_pinning_setting_is_refused(tmp_path: Path) -> None:
    # A pod spec's `--require-policy-hash $(EXPECTED_HASH)` with the variable unset, or
    # `TOLLGATE_POLICY_PUBLIC_KEY: ""` from a template, meant "check this"; starting
    # without the check would accept any policy at all.
    cases = [
        (["--require-policy-hash", ""], {}, "--require-policy-hash"),
        (["--policy-public-key", ""], {}, "--policy-public-key"),
        ([], {"TOLLGATE_REQUIRE_POLICY_HASH": ""}, "TOLLGATE_REQUIRE_POLICY_HASH"),
        ([], {"TOLLGATE_POLICY_PUBLIC_KEY": " "}, "TOLLGATE_POLICY_PUBLIC_KEY"),
        # Found in the conformance review (2026-12-06): an empty signing key ran the gate
        # without checkpoints, silently: an unsigned trail by accident.
        (["--signing-key", ""], {}, "--signing-key"),
        ([], {"TOLLGATE_SIGNING_KEY": ""}, "TOLLGATE_SIGNING_KEY"),
        # Found in a newcomer's walkthrough (2026-12-06): an empty origin fell back to
        # tollgate/<identity>, whose pod name no verifier key bound to the origin matches.
        (["--audit-origin", ""], {}, "--audit-origin"),
        ([], {"TOLLGATE_AUDIT_ORIGIN": ""}, "TOLLGATE_AUDIT_ORIGIN"),
    ]
    for number, (args, env, named) in enumerate(cases):
        case_dir = tmp_path / str(number)
        case_dir.mkdir()
        code, err = serve_exit(args, env, case_dir)
        assert code == 2, (args, env, "the gate started")
        assert named in err and "empty" in err, err
        assert not (case_dir / "audit").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    ("args", "env"), [(["--log-level", "loud"], {}), ([], {"TOLLGATE_LOG_LEVEL": "verbose"})]
)
def test_an_unknown_log_level_is_a_usage_error_before_the_trail_is_opened(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    # It was a KeyError traceback from uvicorn, exit 1, with the audit directory made.
    code, err = serve_exit(args, env, tmp_path)
    assert code == 2 and "is not one of critical, error, warning, info, debug, trace" in err
    assert "Traceback" not in err
    assert not (tmp_path / "audit").exists()


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "validate", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_validate_checks_the_signature_and_the_pin_as_the_gate_would(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    # CI can tell before a rollout whether gates started with these settings accept the
    # policy; without them `validate` checks the policy alone, as before.
    good = tmp_path / "good.yaml"
    good.write_bytes(ALLOW_READS)
    assert sign(str(good), "--key", str(keys["policy.key"])).returncode == 0
    forged = tmp_path / "forged.yaml"
    forged.write_bytes(ALLOW_READS)
    assert sign(str(forged), "--key", str(keys["stranger.key"])).returncode == 0
    unsigned = tmp_path / "unsigned.yaml"
    unsigned.write_bytes(ALLOW_READS)
    public = str(keys["policy.pub"])

    done = validate(str(good), "--policy-public-key", public)
    assert done.returncode == 0, done.stderr
    assert f"valid, 1 rules, {policy_hash(ALLOW_READS)} (signature verified)" in done.stdout

    done = validate(str(good), str(forged), str(unsigned), "--policy-public-key", public)
    assert done.returncode == 1
    assert "forged.yaml.sig does not verify" in done.stderr
    assert "unsigned.yaml.sig cannot be read" in done.stderr

    pinned = policy_hash(ALLOW_READS).upper().replace("SHA256", "sha256")
    done = validate(str(unsigned), "--require-policy-hash", pinned)
    assert done.returncode == 0 and "(the required hash)" in done.stdout, done.stderr
    other = tmp_path / "other.yaml"
    other.write_bytes(ALLOW_READS + b"# changed\n")
    done = validate(str(other), "--require-policy-hash", pinned)
    assert done.returncode == 1 and "is not the required" in done.stderr

    assert validate(str(unsigned)).returncode == 0  # the policy alone
    assert validate(str(good), "--require-policy-hash", "sha256:nope").returncode == 2
    assert validate(str(good), "--policy-public-key", str(tmp_path / "none")).returncode == 2
