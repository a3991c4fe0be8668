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
