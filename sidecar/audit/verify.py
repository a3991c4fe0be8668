"""``tollgate audit verify``: prove the trail intact (CONTRACT sections 3 and 4).

Checks, in one pass over every segment: each line is canonical JSON; ``seq`` runs
0, 1, 2 ... across segments; ``prev`` is the leaf hash of the record before; every
``checkpoint`` record's root equals the RFC 6962 root of the records before it and its
signed note verifies; ``DIR/checkpoint`` (and any checkpoint copies given) match the
trail at their size, which catches a trail cut short below its latest checkpoint.
The first fault stops the check and is reported with its segment, line and seq.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.audit.checkpoint import Checkpoint
from sidecar.audit.chunks import SegmentPlan, default_workers, ordered_map, plan_trail
from sidecar.audit.merkle import Frontier
from sidecar.audit.note import NoteError, SignedNote, Verifier, parse_note, verify_note
from sidecar.audit.rebuild import checkpoint_fields
from sidecar.audit.records import ZERO_HASH
from sidecar.audit.segments import (
    BROKEN_SUFFIX,
    CHECKPOINT_FILE,
    CHECKPOINT_MAX_BYTES,
    HOLE_BEFORE_NEWEST,
    SEGMENTS_DIR,
    NotASmallFile,
    Segment,
    SegmentStart,
    check_start_form,
    load_start,
    read_small_file,
    read_start,
    segment_name,
    start_path,
)
from sidecar.audit.verify_chunks import (
    NUL_FAULT,
    ChunkResult,
    CleanEnds,
    check_chunk,
)
from sidecar.errors import AuditCorrupt
from sidecar.keys import KeyFileError, public_key_from_base64


@dataclass(frozen=True)
class Fault:
    message: str
    segment: str | None = None
    line: int | None = None
    seq: int | None = None

    def where(self) -> str:
        parts = []
        if self.segment is not None:
            parts.append(self.segment)
        if self.line is not None:
            parts.append(f"line {self.line}")
        text = " ".join(parts)
        if self.seq is not None:
            text = f"{text} (seq {self.seq})" if text else f"seq {self.seq}"
        return text


@dataclass
class VerifyReport:
    records: int = 0  # records checked
    first_seq: int = 0  # above 0 when older segments were pruned
    checkpoints: int = 0
    last_signed_size: int = 0
    # Records after the last signed size, but for the checkpoint record that signs it:
    # nothing in the directory can show a change to them, or records cut after them.
    unsigned_records: int = 0
    origins: list[str] = field(default_factory=list)  # of the checkpoints, in order
    signatures: str = "none"  # "public-key", "embedded" (self-consistency only) or "none"
    fault: Fault | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.fault is None

    @property
    def tree_size(self) -> int:
        """Records in the Merkle tree, pruned ones included: the next seq."""
        return self.first_seq + self.records

    def summary(self) -> str:
        if self.fault is None:
            # Without any signed checkpoint a warning says so; "after it" would name none.
            unsigned = (
                f"; {self.unsigned_records} records after it are not signed yet"
                if self.unsigned_records and self.last_signed_size
                else ""
            )
            return (
                f"intact: {self.records} records, {self.checkpoints} checkpoints, "
                f"last signed size {self.last_signed_size}{unsigned}"
            )
        where = self.fault.where()
        return (
            f"tampered: {where}: {self.fault.message}"
            if where
            else f"tampered: {self.fault.message}"
        )

    def to_json(self) -> dict[str, Any]:
        fault = None
        if self.fault is not None:
            fault = {
                "message": self.fault.message,
                "segment": self.fault.segment,
                "line": self.fault.line,
                "seq": self.fault.seq,
            }
        return {
            "intact": self.intact,
            "records": self.records,
            "firstSeq": self.first_seq,
            "treeSize": self.tree_size,
            "checkpoints": self.checkpoints,
            "lastSignedSize": self.last_signed_size,
            "unsignedRecords": self.unsigned_records,
            "origins": self.origins,
            "signatures": self.signatures,
            "fault": fault,
            "warnings": self.warnings,
            "summary": self.summary(),
        }


class _Bad(Exception):
    """A fault in the current line; the scan adds where it is."""


class _Tampered(Exception):
    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.fault = fault


@dataclass(frozen=True)
class _ExternalCheckpoint:
    label: str
    note: SignedNote
    checkpoint: Checkpoint


def verify_trail(
    directory: str | Path,
    public_keys: Sequence[Ed25519PublicKey | Verifier] = (),
    checkpoint_notes: Sequence[tuple[str, bytes]] = (),
    workers: int | None = None,
) -> VerifyReport:
    """Verify the trail in ``directory``.

    ``public_keys``: trusted checkpoint keys, each a bare key (trusted for any origin)
    or a ``Verifier`` (C2SP verifier key: trusted only for checkpoints of its name);
    without them signatures are only checked against the keys recorded in the trail
    itself, which proves consistency, not origin.
    ``checkpoint_notes``: (label, signed note) copies kept elsewhere (e.g. the stdout
    log lines), each checked like ``DIR/checkpoint``.
    ``workers``: processes for the line checks (default: up to 4, one per CPU; large
    trails only).

    Raises FileNotFoundError when ``directory`` is not an audit trail.
    """
    path = Path(directory)
    report = VerifyReport()
    if not (path / SEGMENTS_DIR).is_dir():
        if (path / CHECKPOINT_FILE).is_file():
            # A checkpoint says records were written: their segments were removed.
            report.fault = Fault(
                f"{SEGMENTS_DIR}/ is missing but {CHECKPOINT_FILE} is there: the records "
                "it vouches for were removed"
            )
            return report
        raise FileNotFoundError(f"{path} is not an audit directory (no {SEGMENTS_DIR}/)")
    checker = _Checker(path, list(public_keys), report)
    try:
        externals = checker.load_external(checkpoint_notes)
        checker.scan({external.checkpoint.size for external in externals}, workers)
        for external in externals:
            checker.check_external(external)
        checker.check_start_forms()
    except _Tampered as exc:
        report.fault = exc.fault
        return report
    if public_keys and not checker.verified:
        # Whoever can write the volume can rewrite every record and drop the checkpoint
        # records and DIR/checkpoint: given a key to check, a trail it signed none of
        # proves nothing about who wrote it. An empty one neither: every start of the
        # gate records something, so a trail without records was wiped or never used.
        report.fault = Fault(
            f"nothing in the trail is signed by the given key: {report.records} records, "
            f"and neither a checkpoint record nor {CHECKPOINT_FILE} verifies with it "
            "(a trail rewritten without its checkpoints looks like this one)"
        )
        return report
    checker.conclude(stored_checkpoint_present=(path / CHECKPOINT_FILE).is_file())
    return report


class _Checker:
    def __init__(
        self,
        directory: Path,
        public_keys: list[Ed25519PublicKey | Verifier],
        report: VerifyReport,
    ):
        self.directory = directory
        self.public_keys = public_keys
        self.report = report
        self.roots: dict[int, bytes] = {}
        self.embedded_keys: dict[str, list[Ed25519PublicKey]] = {}
        self.last_checkpoint_record: int | None = None  # its seq
        # (type, note) of the records at the sizes of DIR/checkpoint and the copies given
        self.records_at: dict[int, tuple[Any, Any]] = {}
        self.replaced: set[int] = set()  # of those, the ones that are not that record
        self.start_forms: list[tuple[Segment, SegmentStart]] = []  # the .start files read
        self.stored_checkpoint_size: int | None = None  # of DIR/checkpoint
        self.verified = 0  # signed notes (records and copies) whose signature verified
        # (seq of a startup record, its unsignedAtStart): records a restart signed as found
        self.unsigned_starts: list[tuple[int, Any]] = []
        self.vouched_starts: set[int] = set()  # of those, the ones a given note signs
        report.signatures = "public-key" if public_keys else "none"

    def conclude(self, *, stored_checkpoint_present: bool) -> None:
        """What an intact trail still cannot prove, said as plainly as its faults."""
        report = self.report
        signed = report.last_signed_size
        # The checkpoint record at seq n carries the note that signs records 0 .. n-1.
        signing_record = 1 if self.last_checkpoint_record == signed else 0
        report.unsigned_records = max(0, report.tree_size - signed - signing_record)
        if report.unsigned_records and signed:
            first = report.tree_size - report.unsigned_records
            report.warnings.append(
                f"{report.unsigned_records} records (seq {first} to {report.tree_size - 1}) "
                "come after the last signed checkpoint: a change "
                "to them, or records removed after them, cannot be detected from this "
                "directory; check against a checkpoint kept outside it (--checkpoint)"
            )
        for seq, found in self.unsigned_starts:
            if seq in self.vouched_starts:
                continue
            span = (
                f"seq {found.get('from')} to {found.get('to')}"
                if isinstance(found, dict)
                else repr(found)
            )
            report.warnings.append(
                f"the gate that started at seq {seq} found records ({span}) that no "
                "checkpoint had signed (the run before had no --signing-key, or ended "
                "without its final checkpoint: a crash, a kill or a full disk; or the "
                "record at its checkpoint's size was not the checkpoint record written "
                "with it, but one put in its place); the "
                "checkpoints after it sign them as it found them, so a change made to them "
                "while no gate ran cannot be detected from this directory; compare with a "
                "checkpoint kept outside it"
            )
        if report.checkpoints and not stored_checkpoint_present:
            report.warnings.append(
                f"{CHECKPOINT_FILE} is missing although the trail holds {report.checkpoints} "
                "checkpoint records (the gate replaces it at each one): it was removed, or "
                "the trail was copied without it"
            )
        stored, newest = self.stored_checkpoint_size, self.last_checkpoint_record
        if stored is not None and newest is not None and stored < newest:
            # The gate replaces the file at every checkpoint record it writes: an older
            # note there is what a cut back to that checkpoint starts with.
            report.warnings.append(
                f"{CHECKPOINT_FILE} signs {stored} records, but the trail holds a newer "
                f"checkpoint record signing {newest}: the file was rolled back (the first "
                "step of cutting the trail back to it), or the gate could not replace it "
                "(its lastError then said so)"
            )
        keys = {
            (origin, key.public_bytes_raw()): Verifier(origin, key).key_id.hex()
            for origin, known in self.embedded_keys.items()
            for key in known
        }
        if not self.public_keys and len(keys) > 1:
            report.warnings.append(
                f"the checkpoints are signed by {len(keys)} different keys (key IDs "
                + ", ".join(sorted(set(keys.values())))
                + "): a key rotation, or someone else's key; pass the keys you trust with "
                "--public-key"
            )
        if len(report.origins) > 1:
            report.warnings.append(
                "the checkpoints carry more than one origin: " + ", ".join(report.origins)
            )

    # -------------------------------------------------------------- checkpoints

    def load_external(self, notes: Sequence[tuple[str, bytes]]) -> list[_ExternalCheckpoint]:
        sources = list(notes)
        stored = self.directory / CHECKPOINT_FILE
        try:
            data = read_small_file(stored, CHECKPOINT_MAX_BYTES)
        except NotASmallFile as exc:
            raise _Tampered(Fault(f"{CHECKPOINT_FILE} is not a signed checkpoint: {exc}")) from exc
        if data is not None:
            sources.insert(0, (f"{CHECKPOINT_FILE}", data))
        loaded = []
        for label, data in sources:
            try:
                note = parse_note(data)
                checkpoint = Checkpoint.parse(note.text)
            except NoteError as exc:
                raise _Tampered(Fault(f"{label} is not a signed checkpoint: {exc}")) from exc
            loaded.append(_ExternalCheckpoint(label, note, checkpoint))
        if data is not None:
            self.stored_checkpoint_size = loaded[0].checkpoint.size
        return loaded

    def _verifiers(self, origin: str, embedded: list[Ed25519PublicKey]) -> list[Verifier]:
        if not self.public_keys:
            return [Verifier(origin, key) for key in embedded]
        # A verifier key is bound to its name, as in every signed-note implementation:
        # it must not vouch for the checkpoints of another origin signed by the same key.
        return [
            key if isinstance(key, Verifier) else Verifier(origin, key)
            for key in self.public_keys
            if not isinstance(key, Verifier) or key.name == origin
        ]

    def _check_signature(
        self, note: SignedNote, origin: str, embedded: list[Ed25519PublicKey]
    ) -> str | None:
        verifiers = self._verifiers(origin, embedded)
        if not verifiers:
            if self.public_keys:
                return (
                    f"signed under origin {origin!r}, which no given key is for "
                    "(a verifier key names its origin)"
                )
            return "no key to check its signature with"
        try:
            verify_note(note, verifiers)
        except NoteError as exc:
            known = {(verifier.name, verifier.key_id) for verifier in verifiers}
            if not any((s.name, s.key_id) in known for s in note.signatures):
                # Not a bad signature: one by a key nobody vouched for. After a key
                # rotation that is the key left out; otherwise someone else's.
                signers = ", ".join(f"{s.name} {s.key_id.hex()}" for s in note.signatures)
                if self.public_keys:
                    return (
                        f"signed by key {signers}, which is not among the keys given "
                        "(pass every key that signed part of the trail with --public-key, "
                        "as after a key rotation)"
                    )
                return f"signed by key {signers}, not by the key recorded beside it"
            which = "the given public key" if self.public_keys else "the key recorded in the trail"
            return f"signature does not verify with {which} ({exc})"
        return None

    def check_external(self, external: _ExternalCheckpoint) -> None:
        checkpoint = external.checkpoint
        # The signature first, when there is a key to check it with: a note nobody given
        # signed is a forgery whatever it says, not a sign that the trail was cut short
        # (or changed) to its size. (With no key at all, the size and root say more.)
        embedded = self.embedded_keys.get(checkpoint.origin, [])
        problem = self._check_signature(external.note, checkpoint.origin, embedded)
        if problem is not None and checkpoint.origin.startswith("\ufeff"):
            # An editor's byte order mark, read as the origin's first character (the
            # format allows it): otherwise it would send the user looking for a key.
            problem += (
                "; the note begins with a byte order mark (U+FEFF), read as part of its "
                "origin: if an editor added it, save the file as UTF-8 without one"
            )
        if problem is not None and (self.public_keys or embedded):
            raise _Tampered(Fault(f"{external.label}: {problem}"))
        # Replicas may share a key (a bare key vouches for any origin): a note of another
        # log reads as this trail cut short or changed, so the fault says it may be one.
        # (Not a fault of its own: a trail cut back past a restart that changed the
        # origin no longer holds a checkpoint record of the note's origin either.)
        origins = self.report.origins
        foreign = ""
        if origins and checkpoint.origin not in origins:
            foreign = (
                f"; or it is a checkpoint of another log: its origin is {checkpoint.origin!r}, "
                "the trail's checkpoints are of " + ", ".join(repr(o) for o in origins)
            )
        tree_size = self.report.tree_size
        if checkpoint.size > tree_size:
            raise _Tampered(
                Fault(
                    f"truncated: {external.label} signs {checkpoint.size} records "
                    f"but the trail holds {tree_size}{foreign}"
                )
            )
        if checkpoint.size < self.report.first_seq:
            self.report.warnings.append(
                f"{external.label} covers only pruned records (size {checkpoint.size}); not checked"
            )
            return
        if self.roots.get(checkpoint.size) != checkpoint.root:
            raise _Tampered(
                Fault(
                    f"{external.label} root does not match the first {checkpoint.size} "
                    f"records{foreign}",
                    seq=checkpoint.size,
                )
            )
        if problem is not None:
            raise _Tampered(Fault(f"{external.label}: {problem}"))
        self.verified += 1
        self.report.last_signed_size = max(self.report.last_signed_size, checkpoint.size)
        self._check_written_with(external)

    def _check_written_with(self, external: _ExternalCheckpoint) -> None:
        """The record at a checkpoint's size n is the checkpoint record the gate wrote
        with it, in the same fsync, before the note left the trail (DIR/checkpoint,
        stdout). Nothing signs that record until the next checkpoint: anything else
        in its place was put there later, and no signature vouches for it, even where
        a later checkpoint signs it (a gate that started on it signed it as found)."""
        size = external.checkpoint.size
        if not self.report.first_seq <= size < self.report.tree_size:
            return  # pruned, or not written (the newest checkpoint record was removed)
        if size in self.replaced:
            return  # said once for the record, not once per copy of the note
        kind, note = self.records_at.get(size, (None, None))
        if kind == "checkpoint" and isinstance(note, str):
            try:
                if parse_note(note).text == external.note.text:
                    return
            except NoteError:
                pass  # the scan faults such a record before this
        if kind == "startup" and any(
            seq == size and isinstance(found, dict) and found.get("to") == size - 1
            for seq, found in self.unsigned_starts
        ):
            # The run before ended without its final checkpoint record and printed this
            # note at exit instead (docs/audit.md): no record carried it, and it signs,
            # from outside the volume, just what the next start found unsigned.
            self.vouched_starts.add(size)
            return
        what = (
            f"a {kind} record" if kind != "checkpoint" else "the checkpoint record of another note"
        )
        self.replaced.add(size)
        self.report.warnings.append(
            f"{external.label} signs {size} records, so the record at seq {size} should be "
            f"the checkpoint record written with it, but it is {what}: it was put in that "
            "record's place later, and no signature vouches for what it holds (a gate that "
            "started on it names it in unsignedAtStart)"
        )

    def _check_checkpoint_record(self, record: dict[str, Any], seq: int, root: bytes) -> None:
        try:
            note, checkpoint = checkpoint_fields(record, seq)
        except ValueError as exc:
            raise _Bad(str(exc)) from exc
        if checkpoint.root != root:
            raise _Bad(f"checkpoint root does not match the first {seq} records")
        embedded: list[Ed25519PublicKey] = []
        key_text = record.get("publicKey")
        if isinstance(key_text, str):
            try:
                key = public_key_from_base64(key_text)
            except KeyFileError as exc:
                # A key anyone can sign for proves nothing: a forged checkpoint's.
                raise _Bad(f"checkpoint record's key is unusable: {exc}") from None
            if key is not None:
                embedded.append(key)
                known = self.embedded_keys.setdefault(checkpoint.origin, [])
                if all(k.public_bytes_raw() != key.public_bytes_raw() for k in known):
                    known.append(key)
        problem = self._check_signature(note, checkpoint.origin, embedded)
        if problem is not None:
            raise _Bad(f"checkpoint {problem}")
        if not self.public_keys:
            self.report.signatures = "embedded"
        self.verified += 1
        self.report.checkpoints += 1
        self.report.last_signed_size = max(self.report.last_signed_size, seq)
        self.last_checkpoint_record = seq
        if checkpoint.origin not in self.report.origins:
            self.report.origins.append(checkpoint.origin)

    # -------------------------------------------------------------- records

    @staticmethod
    def _start_of(segment: Segment, *, required: bool = True) -> SegmentStart | None:
        try:
            return read_start(segment) if required else load_start(segment)
        except AuditCorrupt as exc:
            raise _Tampered(Fault(str(exc), segment=f"{SEGMENTS_DIR}/{segment.name}")) from None

    def check_start_forms(self) -> None:
        """A ``.start`` is written in one exact form, as records are (docs/audit.md).

        Checked once everything else passed: a ``.start`` whose values are wrong is
        reported as such (by the records before it, or the signed roots after it).
        """
        for segment, start in self.start_forms:
            try:
                check_start_form(segment, start)
            except AuditCorrupt as exc:
                where = f"{SEGMENTS_DIR}/{segment.name}"
                raise _Tampered(Fault(str(exc), segment=where)) from None

    def scan(self, wanted: set[int], workers: int | None) -> None:
        try:
            plans = plan_trail(self.directory)
        except AuditCorrupt as exc:  # a segment that is no regular file
            raise _Tampered(Fault(str(exc))) from None
        wanted_sizes = tuple(sorted(wanted))
        jobs = [
            (str(plan.segment.path), start, end, wanted_sizes)
            for plan in plans
            for start, end in plan.ranges
        ]
        results = ordered_map(
            check_chunk, jobs, default_workers(plans) if workers is None else workers
        )
        try:
            self._link(plans, results, wanted)
        finally:
            results.close()

    def _link(
        self, plans: list[SegmentPlan], results: Iterator[ChunkResult], wanted: set[int]
    ) -> None:
        """Join chunk results in order: continuity between chunks, tree, checkpoints,
        and what follows each clean end (``CleanEnds``)."""
        clean_ends = CleanEnds()
        try:
            self._link_chunks(plans, results, wanted, clean_ends)
        finally:
            clean_ends.finish()
            self.report.warnings.extend(clean_ends.warnings)

    def _link_chunks(
        self,
        plans: list[SegmentPlan],
        results: Iterator[ChunkResult],
        wanted: set[int],
        clean_ends: CleanEnds,
    ) -> None:
        report = self.report
        frontier = Frontier()
        seq = 0
        prev = ZERO_HASH
        if plans and plans[0].segment.first_seq > 0:
            start = self._start_of(plans[0].segment)
            assert start is not None
            self.start_forms.append((plans[0].segment, start))
            frontier = Frontier.from_nodes(start.seq, start.frontier)
            seq, prev = start.seq, start.prev.hex()
            report.first_seq = seq
            report.warnings.append(
                f"records before seq {seq} were pruned and are not checked; "
                f"{start_path(plans[0].segment.path).name} carries their hashes"
            )
        if seq in wanted:
            self.roots[seq] = frontier.root()
        for index, plan in enumerate(plans):
            segment, ranges, clean_end, size = plan.segment, plan.ranges, plan.clean_end, plan.size
            name = f"{SEGMENTS_DIR}/{segment.name}"
            continues = index > 0 and segment.first_seq == seq
            later = self._start_of(segment, required=False) if continues else None
            if continues and later is None:
                # Not needed while the segments before it are here; once they are
                # pruned, the gate and verify refuse a trail whose oldest segment has
                # none. Said now, while the records it would carry can still be read.
                report.warnings.append(
                    f"{start_path(segment.path).name} is missing: the segments before it "
                    "cannot be pruned (the gate would refuse to start on what is left)"
                )
            if later is not None:
                if (later.prev.hex(), later.frontier) != (prev, frontier.nodes):
                    message = (
                        f"{start_path(segment.path).name} does not match the records before it"
                    )
                    raise _Tampered(Fault(message, segment=name, seq=seq))
                self.start_forms.append((segment, later))
            if segment.first_seq != seq:
                message = (
                    f"segment should start at seq {seq} ({segment_name(seq)}): records are missing"
                )
                raise _Tampered(Fault(message, segment=name, seq=seq))
            line = 1
            for _ in ranges:
                result = next(results)

                def fault(
                    message: str, offset: int, name: str = name, line: int = line, seq: int = seq
                ) -> _Tampered:
                    where = Fault(message, segment=name, line=line + offset, seq=seq + offset)
                    return _Tampered(where)

                if result.count:
                    if result.first_seq != seq:
                        message = f"seq is {result.first_seq}, expected {seq}"
                        raise fault(f"{message}: records are missing or reordered", 0)
                    if result.first_prev != prev:
                        raise fault("prev is not the hash of the record before it", 0)
                # A record no run wrote after a clean end: the first fault unless one
                # before it in this chunk comes first (checked below, up to it).
                after_clean_end: tuple[int, str] | None = None
                for position, mark in result.marks:
                    problem = clean_ends.feed(seq + position, mark)
                    if problem is not None:
                        after_clean_end = (position, problem)
                        break
                position = 0
                for count, subtrees in result.pieces:
                    if after_clean_end is not None and position >= after_clean_end[0]:
                        break
                    record = result.checkpoints.get(position)
                    if record is not None:
                        try:
                            self._check_checkpoint_record(record, seq + position, frontier.root())
                        except _Bad as exc:
                            raise fault(str(exc), position) from None
                    for height, node in subtrees:
                        frontier.append_subtree(node, height)
                    position += count
                    if seq + position in wanted:
                        self.roots[seq + position] = frontier.root()
                if after_clean_end is not None:
                    raise fault(after_clean_end[1], after_clean_end[0])
                for position, record in result.unsigned_starts.items():
                    self.unsigned_starts.append((seq + position, record.get("unsignedAtStart")))
                for position, found in result.at_sizes.items():
                    self.records_at[seq + position] = found
                if result.count:
                    prev = result.last_hash
                if result.fault == NUL_FAULT:
                    raise fault(_hole(segment, newest=index == len(plans) - 1), result.count)
                if result.fault is not None:
                    raise fault(result.fault, result.count)
                seq += result.count
                line += result.count
            if clean_end != size:
                if index != len(plans) - 1:
                    raise _Tampered(
                        Fault(
                            "segment ends in the middle of a line", segment=name, line=line, seq=seq
                        )
                    )
                report.warnings.append(
                    f"{name}: torn last line ({size - clean_end} bytes without a newline); "
                    "Tollgate moves it aside at its next start"
                )
            report.records = seq - report.first_seq
        report.records = seq - report.first_seq


def _hole(segment: Segment, *, newest: bool) -> str:
    """What NUL bytes in a line of ``segment`` mean, for the operator who sees them."""
    if not newest:
        return HOLE_BEFORE_NEWEST
    return (
        f"{NUL_FAULT}: a power loss can leave them at the end of the newest segment, and "
        "then no check was answered on a record from this line on; the gate moves this "
        f"line and the rest of the segment to {segment.name}{BROKEN_SUFFIX} at its next "
        f"start (and refuses to start if {CHECKPOINT_FILE} signs any of those records)"
    )
