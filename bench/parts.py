"""Where the gate's own CPU goes: ``Gate.check`` in process, with parts taken away.

The stage table (``bench.stages``) adds the pipeline's steps one by one in front of
uvicorn; it cannot split what follows the decision, which is all inside
``Gate.check``. This runs ``Gate.check`` in this process, without HTTP, 16 checks in
flight on one event loop, the trail on tmpfs and synced on the loop (a sync there
costs nothing, and a helper process would add its wake-ups to every batch), and
measures the process CPU time per check of variants that each take parts away. Read
top to bottom, each row adds one part to the row above:

- ``parse + normalise + decide``: the pure pipeline alone, no ``Gate``;
- ``no audit record``: ``Gate.check`` with an ``append`` that answers at once (decision
  id, rate limits, approvals, metrics, the answer);
- ``records encoded, no batch``: each record is encoded exactly as the trail encodes it
  (envelope, canonical JSON, redaction screen, leaf hash, Merkle frontier), then
  dropped: no batch, no write, no wait;
- ``+ one wait per record``: as above, and the check then waits one loop iteration for
  its result, as it waits for its batch (the cost of suspending and waking it);
- ``as served``: the real ``Gate.check`` (batches written and synced);

and, compared with ``as served``, ``without metrics``: the per-check histogram
observations and counter are no-ops.

CPU time is of the whole process per check, best of three rounds. Reported, never
judged, and only with ``--only parts``. The differences are what a part costs with 16
checks interleaved; a loaded server pays more (see the stage table).

    python -m bench --only parts
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bench.policies import IDENTITY, policy_yaml, request_mix
from bench.results import Section
from sidecar.audit.log import Appended, AuditLog
from sidecar.engine import decide
from sidecar.gate import Gate
from sidecar.normalise.request import normalise_request
from sidecar.policy.source import PolicySource
from sidecar.request import parse_body

POLICY_RULES = 1_000
IN_FLIGHT = 16
ROUNDS = 3
Variant = Callable[[Gate], None]


class _Nothing:
    """Stands in for a histogram or counter child: takes the call, does nothing."""

    def observe(self, _amount: float) -> None:
        pass


def _without_metrics(gate: Gate) -> None:
    gate.metrics.check_seconds = _Nothing()  # type: ignore[assignment]
    gate.metrics.audit_write_seconds = _Nothing()  # type: ignore[assignment]
    gate.metrics.count_check = lambda action, decision: None  # type: ignore[method-assign]


def _encoder(gate: Gate) -> Callable[[str, dict[str, Any]], Appended]:
    """Encode a record exactly as the trail does, onto a batch that is never written."""
    log = gate.audit
    batch = log._new_batch(log._size, log._head, log._frontier)

    def encode(type_: str, body: dict[str, Any]) -> Appended:
        log._stage(batch, type_, body)
        batch.buffer.clear()
        result = batch.results.pop()
        assert isinstance(result, Appended)
        return result

    return encode


Append = Callable[[str, dict[str, Any]], Coroutine[Any, Any, Appended]]


def _replace_appends(gate: Gate, append: Append) -> None:
    """Route every record of ``gate`` through ``append``, grouped ones one by one."""

    async def append_all(records: Sequence[tuple[str, dict[str, Any]]]) -> list[Appended]:
        return [await append(type_, body) for type_, body in records]

    gate.audit.append = append  # type: ignore[method-assign,assignment]
    gate.audit.append_all = append_all  # type: ignore[method-assign]


def _encoded_only(gate: Gate) -> None:
    encode = _encoder(gate)

    async def append(type_: str, body: dict[str, Any]) -> Appended:
        return encode(type_, body)

    _replace_appends(gate, append)


def _encoded_and_waited(gate: Gate) -> None:
    encode = _encoder(gate)
    loop = asyncio.get_running_loop()

    async def append(type_: str, body: dict[str, Any]) -> Appended:
        result: asyncio.Future[Appended] = loop.create_future()
        loop.call_soon(result.set_result, encode(type_, body))
        return await result

    _replace_appends(gate, append)


def _no_record(gate: Gate) -> None:
    async def append(_type: str, _body: dict[str, Any]) -> Appended:
        return Appended(0, "0" * 64)

    _replace_appends(gate, append)


PURE_PIPELINE = "parse + normalise + decide"
AS_SERVED = "as served"
# Each variant and the row it is compared with.
VARIANTS: dict[str, tuple[Variant | None, str]] = {
    "no audit record": (_no_record, PURE_PIPELINE),
    "records encoded, no batch": (_encoded_only, "no audit record"),
    "+ one wait per record": (_encoded_and_waited, "records encoded, no batch"),
    AS_SERVED: (None, "+ one wait per record"),
    "without metrics": (_without_metrics, AS_SERVED),
}


async def _cpu_per_check(
    run_once: Callable[[], Awaitable[None]], checks: int, rounds: int = ROUNDS
) -> float:
    await run_once()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        await run_once()
        best = min(best, (time.process_time() - started) / checks)
    return best * 1e6


async def measure_variant(
    directory: Path, variant: Variant | None, checks: int, bodies: list[bytes]
) -> tuple[float, int]:
    """(µs of CPU per check, records the trail holds afterwards) for one variant."""
    audit = AuditLog.open(directory / "audit", identity=IDENTITY, sync_helper=False)
    await audit.start()
    gate = Gate(audit=audit, source=PolicySource(str(directory / "policy.yaml")), identity=IDENTITY)
    try:
        if not await gate.load_policy():
            raise RuntimeError(f"policy rejected: {gate.policy.last_error}")
        if variant is not None:
            variant(gate)

        async def worker(offset: int) -> None:
            for index in range(offset, checks, IN_FLIGHT):
                answer = await gate.check(bodies[index % len(bodies)])
                if answer.status != 200:
                    raise RuntimeError(f"check answered {answer.status}: {answer.payload}")

        async def run_once() -> None:
            await asyncio.gather(*(worker(offset) for offset in range(IN_FLIGHT)))

        cpu = await _cpu_per_check(run_once, checks)
    finally:
        await audit.close()
    return cpu, audit.status()["seq"]


async def _pure_pipeline(directory: Path, checks: int, bodies: list[bytes]) -> float:
    policy = PolicySource(str(directory / "policy.yaml")).read()

    async def run_once() -> None:
        for index in range(checks):
            request = parse_body(bodies[index % len(bodies)])
            decide(policy, normalise_request(request, IDENTITY), request)

    return await _cpu_per_check(run_once, checks)


def run(*, checks: int = 40_000) -> Section:
    parent = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="tollgate-parts-bench-", dir=parent))
    bodies = [json.dumps(body).encode() for body in request_mix(POLICY_RULES)]
    cpu: dict[str, float] = {}
    try:
        (work / "policy.yaml").write_bytes(policy_yaml(POLICY_RULES))
        cpu[PURE_PIPELINE] = asyncio.run(_pure_pipeline(work, checks, bodies))
        for index, (name, (variant, _base)) in enumerate(VARIANTS.items()):
            directory = work / f"variant-{index}"
            directory.mkdir()
            shutil.copy(work / "policy.yaml", directory / "policy.yaml")
            cpu[name], _records = asyncio.run(measure_variant(directory, variant, checks, bodies))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = Section(
        "Gate.check in process, part by part (µs of CPU per check)",
        ("variant", "CPU µs per check", "compared with", "difference"),
    )
    section.rows.append((PURE_PIPELINE, f"{cpu[PURE_PIPELINE]:.1f}", "-", "-"))
    for name, (_variant, base) in VARIANTS.items():
        section.rows.append((name, f"{cpu[name]:.1f}", base, f"{cpu[name] - cpu[base]:+.1f}"))
    section.notes += [
        f"{checks:,} checks per round, {IN_FLIGHT} in flight on one event loop, best of "
        f"{ROUNDS} rounds; 1,000-rule policy, the request mix of the other tables; the trail "
        f"on {'tmpfs' if parent else 'the temp directory'}, synced on the loop.",
        "Process CPU time, not wall time: what each variant costs the one core a gate uses.",
    ]
    return section
