"""Builds of the gate side by side under load: ``python -m bench.compare TREE [TREE ...]``.

Each TREE is a checkout of this repository: a ``git worktree`` of another commit, or a
copy with one change. Its gate runs with TREE as the working directory, so ``python -m
sidecar.cli`` imports TREE's ``sidecar``: ``-m`` puts the working directory ahead of
PYTHONPATH and of the installed package. (A harness that sets PYTHONPATH but starts
every server from the repository root runs the repository's build for every tree, and
can only ever show noise.) Each gate's ``/v1/status`` version is reported, so a tree
that carries its own version shows it ran.

The ceiling (``bench.ceiling_app``, this checkout's) and the gates are driven by wrk at
one concurrency, interleaved round by round (ceiling, A, B, ceiling, A, B ...), with
the 1,000-rule policy and request mix of ``bench.http_load``, and the audit trails on a
disk (refused where ``python -m bench`` refuses them, and named in the report). For each
gate: its share of the same round's ceiling, its median p50 against the ceiling's, and
the CPU its process and its sync helper used per check (read from /proc), the figures
docs/performance.md compares builds by.

    python -m bench.compare [--concurrency 16] [--seconds 5] [--rounds 4] TREE [TREE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.filesystem import FileSystem, NotDurable, require_on_disk
from bench.http_load import (
    POLICY_RULES,
    Server,
    WrkMissing,
    require_wrk,
    run_wrk,
    write_inputs,
)

REPOSITORY = Path(__file__).resolve().parent.parent
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class NotATree(ValueError):
    """The directory holds no ``sidecar`` package to run."""


def checked_tree(path: str) -> Path:
    tree = Path(path).resolve()
    if not (tree / "sidecar" / "__init__.py").is_file():
        raise NotATree(f"{path}: no sidecar/__init__.py, not a checkout of Tollgate")
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the gate's sync helper)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def status_version(url: str) -> str:
    with urllib.request.urlopen(url + "/v1/status", timeout=5) as answer:
        return str(json.loads(answer.read())["version"])


@dataclass(frozen=True)
class Run:
    """One wrk run against one server."""

    rate: float
    errors: int
    p50_us: float
    process_us: float  # CPU per request, the server's own process
    helpers_us: float  # CPU per request, its child processes


def measure(wrk: str, server: Server, bodies: Path, concurrency: int, seconds: int) -> Run:
    assert server.process is not None
    pid = server.process.pid
    helpers = children(pid)
    before = cpu_seconds(pid), sum(cpu_seconds(h) for h in helpers)
    result = run_wrk(wrk, server.url, bodies, concurrency, seconds)
    after = cpu_seconds(pid), sum(cpu_seconds(h) for h in helpers)
    per_request = 1e6 / max(1, result.requests)
    return Run(
        result.rate,
        result.errors,
        result.p50_us,
        (after[0] - before[0]) * per_request,
        (after[1] - before[1]) * per_request,
    )


def compare(trees: list[Path], *, concurrency: int, seconds: int, rounds: int, work: Path) -> str:
    """Run the rounds and return the Markdown report."""
    wrk = require_wrk()
    trails_on = require_on_disk(work)
    policy, bodies = write_inputs(work, POLICY_RULES)
    ceiling = Server(
        "ceiling",
        [sys.executable, "-m", "bench.ceiling_app", "--port", "{port}"],
        work / "ceiling.log",
        cwd=REPOSITORY,
    )
    serve = [sys.executable, "-m", "sidecar.cli", "serve", "--policy", str(policy)]
    gates = [
        Server(
            f"gate {number}",
            [*serve, "--port", "{port}", "--audit-dir", str(work / f"audit-{number}")],
            work / f"gate-{number}.log",
            cwd=tree,
        )
        for number, tree in enumerate(trees, start=1)
    ]
    servers = [ceiling, *gates]
    runs: dict[str, list[Run]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            server.start()
            run_wrk(wrk, server.url, bodies, concurrency, min(2, seconds))  # warm-up
        versions = [status_version(gate.url) for gate in gates]
        for _ in range(rounds):
            for server in servers:
                runs[server.name].append(measure(wrk, server, bodies, concurrency, seconds))
    finally:
        for server in servers:
            server.stop()
    return report(trees, versions, runs, concurrency, seconds, rounds, trails_on)


def report(
    trees: list[Path],
    versions: list[str],
    runs: dict[str, list[Run]],
    concurrency: int,
    seconds: int,
    rounds: int,
    trails_on: FileSystem,
) -> str:
    ceiling = runs["ceiling"]
    lines = [
        f"wrk at concurrency {concurrency}, {seconds:g} s per run, {rounds} rounds interleaved, "
        f"audit trails on {trails_on}; "
        f"ceiling median {statistics.median(r.rate for r in ceiling):,.0f} requests/s, "
        f"p50 {statistics.median(r.p50_us for r in ceiling):.0f} µs, "
        f"its process {statistics.median(r.process_us for r in ceiling):.0f} µs CPU per request",
        "",
        "| gate | tree | version | share of the ceiling: median (each round) "
        "| p50 µs (times the ceiling's) | process CPU µs per check | helper CPU µs per check "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ceiling_p50 = statistics.median(r.p50_us for r in ceiling)
    for index, (tree, version) in enumerate(zip(trees, versions, strict=True)):
        mine = runs[f"gate {index + 1}"]
        shares = [r.rate / c.rate for r, c in zip(mine, ceiling, strict=True)]
        each = ", ".join(f"{share:.3f}" for share in shares)
        p50 = statistics.median(r.p50_us for r in mine)
        lines.append(
            f"| {index + 1} | {tree} | {version} | {statistics.median(shares):.3f} ({each}) "
            f"| {p50:.0f} ({p50 / ceiling_p50:.2f}x) "
            f"| {statistics.median(r.process_us for r in mine):.0f} "
            f"| {statistics.median(r.helpers_us for r in mine):.0f} "
            f"| {sum(r.errors for r in mine)} |"
        )
    return "\n".join(lines)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", metavar="TREE", help="a checkout of Tollgate")
    parser.add_argument("--concurrency", type=positive, default=16)
    parser.add_argument("--seconds", type=positive, default=5, help="per wrk run (whole seconds)")
    parser.add_argument("--rounds", type=positive, default=4)
    parser.add_argument("--dir", help="where the audit trails go (default: the temp dir)")
    args = parser.parse_args(argv)
    try:
        trees = [checked_tree(tree) for tree in args.trees]
        require_on_disk(args.dir or tempfile.gettempdir())
        require_wrk()
    except (NotATree, NotDurable, WrkMissing) as exc:
        print(f"bench.compare: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="tollgate-compare-", dir=args.dir))
    try:
        text = compare(
            trees, concurrency=args.concurrency, seconds=args.seconds, rounds=args.rounds, work=work
        )
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        # A server that would not start (its log is in the message) or a failed wrk run.
        legend = ", ".join(f"gate {n} = {tree}" for n, tree in enumerate(trees, start=1))
        print(f"bench.compare: {exc}\n({legend})", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
