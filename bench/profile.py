"""Where the daemon's time goes under load: py-spy, sampling only the thread holding the GIL.

Starts ``tollgate serve`` (1,000-rule policy, audit trail on disk), drives it with wrk
at concurrency 16, samples it with ``py-spy record --gil`` and sorts the samples into
the parts of a check. Needs ``pip install py-spy`` (and ptrace rights: root or
``kernel.yama.ptrace_scope=0``) and wrk.

    python -m bench.profile [--seconds 10] [--raw FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.http_load import LUA_SCRIPT, POLICY_RULES, Server, require_wrk
from bench.policies import policy_yaml, request_mix


def _any(*needles: str) -> Callable[[list[str]], bool]:
    return lambda frames: any(n in frame for frame in frames for n in needles)


# First match wins, so the order goes from the most specific part to the least.
PARTS: list[tuple[str, Callable[[list[str]], bool]]] = [
    ("audit record: encode, redaction, leaf hash", _any("AuditLog._stage")),
    ("audit batch: write + fdatasync, settle the waiting checks", _any("AuditLog._flush")),
    ("request parse (JSON, pydantic)", _any("parse_body", "parse_request")),
    ("normalisation", _any("normalise_request")),
    ("decision (evaluate every subject)", _any("decide (sidecar/engine.py")),
    ("approvals", _any("ApprovalService")),
    ("gate: ids, record, metrics", _any("sidecar/gate.py")),
    (
        "/check answering: body, JSON answer (protocol or ASGI handler)",
        _any("sidecar/check_protocol.py", "sidecar/check_endpoint.py"),
    ),
    (
        "HTTP: uvicorn, Starlette, asyncio transports",
        _any("uvicorn", "starlette", "selector_events"),
    ),
    ("event loop and the rest", lambda frames: True),
]


def classify(raw: Path) -> list[tuple[str, float]]:
    """Share of GIL samples per part, from py-spy's raw (collapsed stack) output."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue  # not a sample line (py-spy notes, a frame torn by --nonblocking)
        frames = stack.split(";")
        total += int(number)
        counts[next(name for name, hit in PARTS if hit(frames))] += int(number)
    return [(name, counts[name] / max(1, total)) for name, _ in PARTS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--raw", default=None, help="keep py-spy's raw samples here")
    args = parser.parse_args()
    wrk = require_wrk()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("bench.profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="tollgate-profile-"))
    raw = Path(args.raw) if args.raw else work / "samples.txt"
    policy = work / "policy.yaml"
    policy.write_bytes(policy_yaml(POLICY_RULES))
    bodies = work / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(b) + "\n" for b in request_mix(POLICY_RULES)))
    serve = [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy)]
    gate = Server(
        "gate", [*serve, "--audit-dir", str(work / "audit"), "--port", "{port}"], work / "gate.log"
    )
    try:
        gate.start()
        assert gate.process is not None
        load = subprocess.Popen(
            [
                wrk,
                "-t2",
                "-c16",
                f"-d{args.seconds + 3:g}s",
                "-s",
                str(LUA_SCRIPT),
                gate.url + "/check",
                "--",
                str(bodies),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        subprocess.run(
            [
                py_spy,
                "record",
                "--gil",
                "--nonblocking",
                "--pid",
                str(gate.process.pid),
                "-r",
                "500",
                "-d",
                f"{args.seconds:g}",
                "-f",
                "raw",
                "-o",
                str(raw),
            ],
            check=True,
            capture_output=True,
        )
        output, _ = load.communicate()
    finally:
        gate.stop()
    result = json.loads(next(x for x in reversed(output.splitlines()) if x.startswith("{")))
    print(
        f"under wrk -c16: {result['requests'] / (result['duration_us'] / 1e6):,.0f} requests/s (while sampled)\n"
    )
    print("| part of a check | share of GIL-holding samples |\n|---|---|")
    for name, share in classify(raw):
        print(f"| {name} | {share * 100:.1f}% |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
