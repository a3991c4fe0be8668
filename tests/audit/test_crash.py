"""SIGKILL a writer under load: every acknowledged record survives, the trail recovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sidecar.audit.log import AuditLog
from sidecar.audit.merkle import leaf_hash
from sidecar.audit.verify import verify_trail
from tests.audit.conftest import segment_lines
from tests.daemon import Daemon

WRITER = textwrap.dedent(
    """
    import asyncio, contextlib, io, json, sys
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sidecar.audit.log import AuditLog
    from sidecar.audit.note import Signer

    acks = sys.stdout
    log = AuditLog.open(sys.argv[1], identity="crash", signer=Signer(Ed25519PrivateKey.generate()),
                        segment_bytes=64 * 1024, checkpoint_every=50)

    async def producer(worker):
        for i in range(10**9):
            body = {"worker": worker, "i": i, "request": {"path": "/app/" + "x" * (i % 300)}}
            appended = await log.append("decision", body)
            acks.write(json.dumps([appended.seq, appended.hash]) + "\\n")
            acks.flush()

    async def main():
        await log.start()
        await asyncio.gather(*(producer(w) for w in range(32)))

    with contextlib.redirect_stdout(io.StringIO()):  # checkpoint lines are not acks
        asyncio.run(main())
    """
)


def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    acked: list[tuple[int, str]] = []
    for _round in range(2):  # crash twice: recovery must also survive a second crash
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert writer.stdout is not None
        deadline = time.monotonic() + 30
        round_acks = 0
        while round_acks < 400 and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            seq, digest = json.loads(line)
            acked.append((seq, digest))
            round_acks += 1
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        for line in writer.stdout:  # acks already in the pipe were acknowledged too
            acked.append(tuple(json.loads(line)))  # type: ignore[arg-type]
        assert round_acks >= 400, "the writer did not get going"

        log = AuditLog.open(directory, identity="crash")  # recovers a torn tail, if any
        log.close_blocking()
        lines = segment_lines(directory)
        for seq, digest in acked:
            assert leaf_hash(lines[seq]).hex() == digest, f"acknowledged record {seq} lost"
        report = verify_trail(directory)
        assert report.intact, report.summary()


POLICY = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""


def test_the_gate_starts_again_after_a_power_loss_left_a_hole(tmp_path: Path) -> None:
    """A power loss during the last batch: its end reads as NUL bytes with a later line
    of it after them. The real gate starts, answers, and its trail verifies; before
    that, ``audit verify`` says what the NULs are."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    keys = tmp_path / "keys"
    cli = [sys.executable, "-m", "sidecar.cli"]
    subprocess.run([*cli, "keygen", "--out", str(keys)], check=True, capture_output=True)
    directory = tmp_path / "audit"
    args = ("--signing-key", str(keys / "tollgate.key"))
    public = str(keys / "tollgate.pub")
    check = {"action": "file.read", "path": "/app/data/report.csv"}

    for stop in (signal.SIGTERM, signal.SIGKILL):  # a clean run, then the power loss
        daemon = Daemon(policy, directory, *args).start()
        for _ in range(3):
            assert daemon.check(check).json()["allowed"] is True
        daemon.stop(stop)
    lines = segment_lines(directory)
    signed = int((directory / "checkpoint").read_text().splitlines()[1])
    assert signed < len(lines) - 2  # the records the hole takes were never signed
    segment = sorted((directory / "segments").glob("*.jsonl"))[-1]
    data = segment.read_bytes()
    cut = len(b"\n".join(lines[:-2])) + 1  # the second-last record's line
    hole = (cut + 20, len(data) - len(lines[-1]) - 1 + 10)  # into the last one
    damaged = data[: hole[0]] + b"\0" * (hole[1] - hole[0]) + data[hole[1] :]
    segment.write_bytes(damaged)

    verify = subprocess.run(
        [*cli, "audit", "verify", str(directory)], capture_output=True, text=True
    )
    assert verify.returncode == 1
    assert f"line {len(lines) - 1} (seq {len(lines) - 2}): holds NUL bytes" in verify.stdout

    daemon = Daemon(policy, directory, *args).start()
    try:
        assert daemon.check(check).json()["allowed"] is True
        assert daemon.get("/ready").status_code == 200
    finally:
        daemon.stop()
    broken = segment.with_name(segment.name + ".broken")
    assert broken.read_bytes() == damaged[cut:]
    found = daemon.records()
    recovery = found[len(lines) - 2]
    assert recovery["type"] == "recovery" and recovery["droppedBytes"] == len(damaged) - cut
    assert found[len(lines) - 1]["type"] == "startup"  # the new run goes on after it
    verify = subprocess.run(
        [*cli, "audit", "verify", str(directory), "--public-key", public],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and verify.stdout.startswith("intact: "), verify.stdout
