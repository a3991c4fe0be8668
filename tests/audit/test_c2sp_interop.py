"""Checkpoints verify with the reference signed-note implementation (Go sumdb/note).

Builds ``notecheck/main.go`` against golang.org/x/mod/sumdb/note when a Go toolchain
and that package are installed (Debian: golang-go, golang-golang-x-mod-dev); skipped
otherwise. This is the "standard C2SP tooling" check of docs/audit.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import AuditLog
from sidecar.audit.note import Signer
from tests.audit.conftest import decision

GOPATH = os.environ.get("TOLLGATE_GOPATH", "/usr/share/gocode")
NOTE_PACKAGE = Path(GOPATH) / "src/golang.org/x/mod/sumdb/note"


@pytest.fixture(scope="module")
def notecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not NOTE_PACKAGE.is_dir():
        pytest.skip("needs go and golang.org/x/mod/sumdb/note in GOPATH")
    build = tmp_path_factory.mktemp("notecheck")
    shutil.copy(Path(__file__).with_name("notecheck") / "main.go", build / "main.go")
    env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="")
    subprocess.run(["go", "build", "-o", "notecheck", "."], cwd=build, env=env, check=True)
    return build / "notecheck"


def test_go_sumdb_note_verifies_our_checkpoint(
    notecheck: Path, open_log: Callable[..., AuditLog], signer: Signer, tmp_path: Path
) -> None:
    log = open_log()
    for i in range(7):
        log.append_blocking("decision", decision(i))
    log.close_blocking()
    vkey = tmp_path / "vkey"
    vkey.write_text(signer.verifier_key(log.origin) + "\n")
    checkpoint = log.directory / "checkpoint"
    ok = subprocess.run([notecheck, vkey, checkpoint], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.splitlines()[1:3] == [log.origin, "7"]

    forged = tmp_path / "forged"
    forged.write_text(checkpoint.read_text().replace("\n7\n", "\n8\n", 1))
    bad = subprocess.run([notecheck, vkey, forged], capture_output=True, text=True)
    assert bad.returncode == 1
