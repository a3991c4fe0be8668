"""``tollgate keygen`` and ``tollgate audit verify|export`` as a user runs them."""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.commands import register
from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from sidecar.keys import load_public_key
from tests.audit.conftest import decision

OpenLog = Callable[..., AuditLog]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tollgate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def signed_trail(tmp_path: Path) -> tuple[Path, Path]:
    """A trail signed with a key made by ``tollgate keygen``; returns (dir, public key)."""
    assert run("keygen", "--out", str(tmp_path / "keys"), "--name", "audit") == 0
    signer = Signer.from_key_file(str(tmp_path / "keys" / "audit.key"))
    log = AuditLog.open(tmp_path / "audit", identity="ns/pod", signer=signer, checkpoint_every=5)
    for i in range(12):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    return tmp_path / "audit", tmp_path / "keys" / "audit.pub"


def test_keygen_prints_paths_and_the_raw_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("keygen", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    raw = out.strip().splitlines()[-1].rsplit(" ", 1)[1]
    public = load_public_key(tmp_path / "tollgate.pub")
    assert base64.b64decode(raw) == public.public_bytes_raw()
    assert str(tmp_path / "tollgate.key") in out
    assert run("keygen", "--out", str(tmp_path)) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_verify_intact_exits_0(
    signed_trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public = signed_trail
    assert run("audit", "verify", str(directory), "--public-key", str(public)) == 0
    assert (
        capsys.readouterr().out.strip() == "intact: 15 records, 3 checkpoints, last signed size 14"
    )


def test_verify_accepts_raw_and_c2sp_verifier_keys(
    signed_trail: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, public = signed_trail
    key = load_public_key(public)
    raw = tmp_path / "raw.b64"
    raw.write_text(base64.b64encode(key.public_bytes_raw()).decode())
    vkey = tmp_path / "vkey"
    signer_name = "tollgate/ns/pod"
    blob = base64.b64encode(b"\x01" + key.public_bytes_raw()).decode()
    from sidecar.audit.note import key_id

    vkey.write_text(f"{signer_name}+{key_id(signer_name, key).hex()}+{blob}\n")
    assert run("audit", "verify", str(directory), "--public-key", str(raw)) == 0
    assert run("audit", "verify", str(directory), "--public-key", str(vkey)) == 0


def test_verify_tampered_exits_1_with_the_place(
    signed_trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public = signed_trail
    segment = next((directory / "segments").glob("*.jsonl"))
    data = segment.read_bytes()
    segment.write_bytes(data.replace(b"/app/data/3.csv", b"/app/data/4.csv", 1))
    assert run("audit", "verify", str(directory), "--public-key", str(public), "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["intact"] is False
    assert result["fault"]["segment"] == f"segments/{segment.name}"
    assert result["fault"]["line"] == 5 and result["fault"]["seq"] == 4
    assert result["summary"].startswith("tampered: ")


def test_verify_usage_errors_exit_2(signed_trail: tuple[Path, Path], tmp_path: Path) -> None:
    directory, _ = signed_trail
    assert run("audit", "verify", str(tmp_path / "missing")) == 2
    assert run("audit", "verify", str(directory), "--public-key", str(tmp_path / "nokey")) == 2
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert run("audit", "verify", str(directory), "--public-key", str(bad)) == 2
    with pytest.raises(SystemExit) as caught:
        run("audit", "verify")
    assert caught.value.code == 2


def test_verify_against_a_shipped_checkpoint(
    signed_trail: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, public = signed_trail
    shipped = tmp_path / "shipped"
    shipped.write_bytes((directory / "checkpoint").read_bytes() + b"\n")  # as jq -r writes it
    args = (
        "audit",
        "verify",
        str(directory),
        "--public-key",
        str(public),
        "--checkpoint",
        str(shipped),
    )
    assert run(*args) == 0
    segment = next((directory / "segments").glob("*.jsonl"))
    lines = segment.read_bytes().split(b"\n")
    segment.write_bytes(b"\n".join(lines[:6]) + b"\n")  # cut back to the first checkpoint
    (directory / "checkpoint").write_text(json.loads(lines[5])["note"])
    assert run(*args) == 1


@pytest.mark.parametrize(
    ("saved_as", "named"),
    [
        (lambda note: b"\xef\xbb\xbf" + note, "read as part of its origin"),
        (lambda note: note.replace(b"\n", b"\r\n"), "CRLF line endings"),
    ],
    ids=["bom", "crlf"],
)
def test_a_checkpoint_saved_by_a_windows_tool_is_refused_for_what_it_is(
    signed_trail: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    saved_as: Callable[[bytes], bytes],
    named: str,
) -> None:
    # Once read as a wrong signing key, which sent the user looking for another key.
    directory, public = signed_trail
    shipped = tmp_path / "shipped"
    shipped.write_bytes(saved_as((directory / "checkpoint").read_bytes()))
    verify = ("audit", "verify", str(directory), "--public-key", str(public))
    assert run(*verify, "--checkpoint", str(shipped)) == 1
    out = capsys.readouterr().out
    assert named in out, out


def test_export_to_file_and_stdout(
    signed_trail: tuple[Path, Path], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    directory, _ = signed_trail
    out = tmp_path / "export.csv"
    assert run("audit", "export", str(directory), "--format", "csv", "--out", str(out)) == 0
    assert out.read_text().splitlines()[0].startswith("seq,ts,type,leafHash")
    assert run("audit", "export", str(directory), "--format", "jsonl", "--since", "2000-01-01") == 0
    assert len(capsysbinary.readouterr().out.splitlines()) == 15


def test_export_usage_errors_exit_2(signed_trail: tuple[Path, Path], tmp_path: Path) -> None:
    directory, _ = signed_trail
    assert run("audit", "export", str(directory), "--format", "jsonl", "--since", "soon") == 2
    assert run("audit", "export", str(tmp_path / "missing"), "--format", "jsonl") == 2
    with pytest.raises(SystemExit) as caught:
        run("audit", "export", str(directory), "--format", "xml")
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("bound", "rows"), [("--since", 15), ("--until", 0)], ids=["since", "until"]
)
def test_export_bounds_before_the_year_1000_select_as_written(
    signed_trail: tuple[Path, Path],
    capsysbinary: pytest.CaptureFixture[bytes],
    bound: str,
    rows: int,
) -> None:
    # Found by the red-team review of 2026-12-07: the bound 0999-01-01 became
    # "999-01-01T...", which sorts after every record's "2026-...": --since selected
    # nothing and --until everything.
    directory, _ = signed_trail
    capsysbinary.readouterr()
    assert run("audit", "export", str(directory), "--format", "jsonl", bound, "0999-01-01") == 0
    assert len(capsysbinary.readouterr().out.splitlines()) == rows


@pytest.mark.parametrize("bound", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_export_bound_outside_the_years_of_records_is_a_usage_error(
    signed_trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str], bound: str
) -> None:
    # It ended in an OverflowError traceback (exit 1).
    directory, _ = signed_trail
    assert run("audit", "export", str(directory), "--format", "jsonl", "--since", bound) == 2
    assert "out of the range of years 1 to 9999 in UTC" in capsys.readouterr().err


def test_export_of_a_corrupt_trail_exits_1(signed_trail: tuple[Path, Path]) -> None:
    directory, _ = signed_trail
    segment = next((directory / "segments").glob("*.jsonl"))
    segment.write_bytes(segment.read_bytes().replace(b"{", b"<", 1))
    assert run("audit", "export", str(directory), "--format", "jsonl") == 1


@pytest.mark.skipif(shutil.which("tollgate") is None, reason="console script not installed")
def test_the_tollgate_console_script_routes_to_these_commands(
    signed_trail: tuple[Path, Path],
) -> None:
    directory, public = signed_trail
    ok = subprocess.run(
        ["tollgate", "audit", "verify", str(directory), "--public-key", str(public)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("intact: 15 records")
    usage = subprocess.run(["tollgate", "audit", "verify"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_keygen_with_an_origin_writes_the_c2sp_verifier_key(tmp_path: Path) -> None:
    from sidecar.audit.note import Verifier

    assert run("keygen", "--out", str(tmp_path), "--origin", "tollgate/ns/pod") == 0
    verifier = Verifier.parse((tmp_path / "tollgate.vkey").read_text())
    assert verifier.name == "tollgate/ns/pod"
    assert verifier.public_key.public_bytes_raw() == (
        load_public_key(tmp_path / "tollgate.pub").public_bytes_raw()
    )
    assert run("keygen", "--out", str(tmp_path / "b"), "--origin", "has space") == 2
    assert not (tmp_path / "b" / "tollgate.key").exists()


def test_keygen_writes_the_verifier_key_of_a_key_that_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sidecar.audit.note import Verifier

    assert run("keygen", "--out", str(tmp_path)) == 0
    key_before = (tmp_path / "tollgate.key").read_bytes()
    public = str(tmp_path / "tollgate.pub")
    made = run("keygen", "--out", str(tmp_path), "--public-key", public, "--origin", "tollgate/a")
    assert made == 0
    verifier = Verifier.parse((tmp_path / "tollgate.vkey").read_text())
    assert verifier.name == "tollgate/a"
    assert (
        verifier.public_key.public_bytes_raw() == load_public_key(Path(public)).public_bytes_raw()
    )
    assert (tmp_path / "tollgate.key").read_bytes() == key_before  # no new pair
    capsys.readouterr()
    assert run("keygen", "--out", str(tmp_path), "--public-key", public) == 2
    assert "--origin" in capsys.readouterr().err
    missing = str(tmp_path / "nope.pub")
    assert run("keygen", "--out", str(tmp_path), "--public-key", missing, "--origin", "o") == 2


def test_a_verifier_key_vouches_only_for_its_own_origin(
    signed_trail: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One key may sign for many pods; a pod's verifier key must not pass another's trail.
    directory, public = signed_trail
    other = tmp_path / "other.vkey"
    made = run("keygen", "--out", str(tmp_path), "--name", "other", "--public-key", str(public),
               "--origin", "tollgate/ns/another-pod")  # fmt: skip
    assert made == 0
    capsys.readouterr()
    assert run("audit", "verify", str(directory), "--public-key", str(other)) == 1
    assert (
        "signed under origin 'tollgate/ns/pod', which no given key is for"
        in capsys.readouterr().out
    )


def test_verify_says_which_records_no_signature_covers_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("keygen", "--out", str(tmp_path / "keys")) == 0
    signer = Signer.from_key_file(str(tmp_path / "keys" / "tollgate.key"))
    log = AuditLog.open(tmp_path / "audit", identity="ns/pod", signer=signer, checkpoint_every=5)
    for i in range(8):  # a checkpoint record at seq 5, then three records: a crash here
        log.append_blocking("decision", decision(i))
    public = str(tmp_path / "keys" / "tollgate.pub")
    capsys.readouterr()
    assert run("audit", "verify", str(tmp_path / "audit"), "--public-key", public) == 0
    out, err = capsys.readouterr()
    assert out.strip() == (
        "intact: 9 records, 1 checkpoints, last signed size 5; "
        "3 records after it are not signed yet"
    )
    assert "3 records (seq 6 to 8) come after the last signed checkpoint" in err
    log.close_blocking()  # the closing checkpoint signs them all
    (tmp_path / "audit" / "checkpoint").unlink()
    capsys.readouterr()
    assert run("audit", "verify", str(tmp_path / "audit"), "--public-key", public) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "intact: 10 records, 2 checkpoints, last signed size 9"
    assert "checkpoint is missing although the trail holds 2 checkpoint records" in err


def test_an_unsigned_trail_is_summed_up_without_a_signed_size_to_count_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog.open(tmp_path / "audit", identity="ns/pod")
    for i in range(3):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    assert run("audit", "verify", str(tmp_path / "audit")) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "intact: 3 records, 0 checkpoints, last signed size 0"
    assert "no signed checkpoint" in err


def test_a_forged_note_beyond_the_trail_is_reported_as_forged_not_as_a_cut(
    signed_trail: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by a red-team review of 2026-12-06 (eighteenth session): a note signed by
    # someone else's key, of a size beyond the trail, was reported as a truncation.
    directory, public = signed_trail
    stored = (directory / "checkpoint").read_text()
    origin, _size, root = stored.split("\n")[:3]
    intruder = Signer(Ed25519PrivateKey.generate())
    (directory / "checkpoint").write_text(intruder.sign(f"{origin}\n99\n{root}\n", origin))
    assert run("audit", "verify", str(directory), "--public-key", str(public)) == 1
    out = capsys.readouterr().out
    assert "not among the keys given" in out and "truncated" not in out


def test_verify_reports_an_unreadable_trail_as_not_intact(
    signed_trail: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public = signed_trail
    (directory / "checkpoint").unlink()
    (directory / "checkpoint").mkdir()
    assert run("audit", "verify", str(directory), "--public-key", str(public)) == 1
    out = capsys.readouterr().out
    assert out.startswith("tampered: checkpoint is not a signed checkpoint") and "regular" in out
