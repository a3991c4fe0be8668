"""A second verifier of the audit trail, written from docs/audit.md alone.

The real daemon writes a trail (rotating segments, restarted, secrets, Unicode, control
characters, invalid requests, approvals); everything below ``# --- the verifier`` then
checks the bytes with nothing but the standard library and ``cryptography``: canonical
JSON, the ``prev`` chain, RFC 6962 leaf and node hashes, the ``.start`` files, each
checkpoint record and ``DIR/checkpoint`` as a C2SP tlog-checkpoint in a signed note
(key ID, Ed25519), the checkpoints printed on stdout, and the three export formats.
Nothing from ``sidecar`` is imported: where this file and the gate disagree, either
the docs or the gate are wrong. Tampered copies must fail here and in
``tollgate audit verify`` alike.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)

from tests.daemon import Daemon

# --- the verifier (docs/audit.md; C2SP signed-note and tlog-checkpoint; RFC 6962) -----


class Bad(Exception):
    pass


TYPES = {"startup", "policyLoaded", "policyRejected", "decision", "invalidRequest",
         "approval", "checkpoint", "recovery", "shutdown"}  # fmt: skip
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
EMPTY_ROOT = hashlib.sha256(b"").digest()


def encode_string(text: str) -> str:
    out = []
    for char in text:
        if char in SHORT:
            out.append(SHORT[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return encode_string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (encode_string(k) + ":" + canonical(value[k]) for k in sorted(value))
        return "{" + ",".join(items) + "}"
    raise Bad(f"not an integer-only JSON value: {value!r}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise Bad("duplicate key")
    return dict(pairs)


def _no_float(text: str) -> Any:
    raise Bad(f"number {text} is not an integer")


def parse_canonical(line: bytes) -> Any:
    try:
        value = json.loads(
            line.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except ValueError as exc:
        raise Bad(f"not JSON: {exc}") from None
    if canonical(value).encode("utf-8") != line:
        raise Bad("not canonical")
    return value


def leaf_hash(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:split]), mth(leaves[split:]))


class Frontier:
    """Perfect-subtree roots, largest first, one per set bit of the size."""

    def __init__(self, size: int = 0, nodes: list[bytes] | None = None) -> None:
        if len(nodes or []) != bin(size).count("1"):
            raise Bad(f"a frontier of size {size} needs {bin(size).count('1')} nodes")
        self.size, self.nodes = size, list(nodes or [])

    def append(self, leaf: bytes) -> None:
        self.nodes.append(leaf)
        carry = self.size
        while carry & 1:
            right = self.nodes.pop()
            self.nodes[-1] = node_hash(self.nodes[-1], right)
            carry >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


def valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def open_checkpoint(note: bytes, keys: list[bytes]) -> tuple[str, int, bytes]:
    """A C2SP signed note holding a tlog-checkpoint, signed by one of ``keys``."""
    text = note.decode("utf-8")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise Bad("control character in note")
    cut = note.rfind(b"\n\n")
    if cut < 0 or not note.endswith(b"\n"):
        raise Bad("not a signed note")
    body, signatures = note[: cut + 1], note[cut + 2 : -1].decode().split("\n")
    lines = body.decode().split("\n")[:-1]
    if len(lines) != 3:  # the docs: origin, size, root, no extension lines
        raise Bad(f"checkpoint body has {len(lines)} lines")
    origin, size, root_b64 = lines
    root = base64.b64decode(root_b64, validate=True)
    if not valid_name(origin) or not re.fullmatch(r"0|[1-9][0-9]*", size) or len(root) != 32:
        raise Bad("malformed checkpoint body")
    verified = False
    for line in signatures:
        match = re.fullmatch(r"\u2014 (\S+) ([A-Za-z0-9+/=]+)", line)
        if match is None or not valid_name(match.group(1)):
            raise Bad(f"malformed signature line {line!r}")
        name, blob = match.group(1), base64.b64decode(match.group(2), validate=True)
        for key in keys:
            if len(blob) == 68 and blob[:4] == key_id(name, key):
                try:
                    Ed25519PublicKey.from_public_bytes(key).verify(blob[4:], body)
                except InvalidSignature:
                    raise Bad(f"signature by {name} does not verify") from None
                verified = verified or name == origin  # key name = origin (tlog-checkpoint)
    if not verified:
        raise Bad("no signature by a trusted key under the origin's name")
    return origin, int(size), root


def verify_trail(directory: Path, keys: list[bytes]) -> dict[str, Any]:
    """Everything docs/audit.md says is checkable from the directory and a key."""
    segments = sorted((directory / "segments").glob("*.jsonl"))
    first = int(segments[0].name[:20])
    frontier, prev, seq = Frontier(), "0" * 64, 0
    roots: dict[int, bytes] = {0: EMPTY_ROOT}
    if first:  # pruned: the oldest .start says where the trail takes over
        start = parse_canonical(segments[0].with_suffix(".start").read_bytes())
        frontier = Frontier(start["seq"], [bytes.fromhex(n) for n in start["frontier"]])
        prev, seq = start["prev"], start["seq"]
        roots = {seq: frontier.root()}
    lines: dict[int, bytes] = {}
    records: dict[int, dict[str, Any]] = {}
    checkpoints = 0
    for segment in segments:
        if not re.fullmatch(r"\d{20}\.jsonl", segment.name) or int(segment.name[:20]) != seq:
            raise Bad(f"{segment.name}: next seq is {seq}")
        start_file = segment.with_suffix(".start")
        if seq != first and start_file.exists():
            start = parse_canonical(start_file.read_bytes())
            if start != {"frontier": [n.hex() for n in frontier.nodes], "prev": prev, "seq": seq}:
                raise Bad(f"{start_file.name} does not match the records before it")
        data = segment.read_bytes()
        if not data.endswith(b"\n"):
            raise Bad(f"{segment.name}: torn last line")
        for number, line in enumerate(data.split(b"\n")[:-1], 1):
            where = f"{segment.name} line {number}"
            record = parse_canonical(line)
            if not isinstance(record, dict) or record.get("seq") != seq:
                raise Bad(f"{where}: expected seq {seq}")
            if record.get("prev") != prev:
                raise Bad(f"{where}: prev is not the hash of the record before it")
            if not TS.fullmatch(str(record.get("ts"))) or record.get("type") not in TYPES:
                raise Bad(f"{where}: bad ts or type")
            if record["type"] == "checkpoint":
                checkpoints += 1
                if record["treeSize"] != seq or record["reason"] not in (
                    "count", "interval", "rotation", "shutdown",
                ):  # fmt: skip
                    raise Bad(f"{where}: bad checkpoint record")
                if base64.b64decode(record["publicKey"]) not in keys:
                    raise Bad(f"{where}: signed by another key")
                note = open_checkpoint(record["note"].encode(), keys)
                expected = (record["origin"], seq, frontier.root())
                if note != expected or record["rootHash"] != base64.b64encode(note[2]).decode():
                    raise Bad(f"{where}: checkpoint root does not match the records before it")
            digest = leaf_hash(line)
            frontier.append(digest)
            roots[frontier.size] = frontier.root()
            prev, lines[seq], records[seq] = digest.hex(), line, record
            seq += 1
    if not first:
        assert mth([leaf_hash(lines[i]) for i in range(seq)]) == frontier.root()
    origin, size, root = open_checkpoint((directory / "checkpoint").read_bytes(), keys)
    if size > seq:
        raise Bad(f"truncated: checkpoint signs {size} records but the trail holds {seq}")
    if roots.get(size) != root:
        raise Bad(f"DIR/checkpoint root at {size} does not match the trail")
    return {"records": records, "lines": lines, "size": seq, "checkpoints": checkpoints,
            "signed": size, "origin": origin}  # fmt: skip


def check_jsonl(text: bytes, trail: dict[str, Any]) -> None:
    rows = [parse_canonical(line) for line in text.split(b"\n")[:-1]]
    assert [row["seq"] for row in rows] == sorted(trail["lines"])
    for row in rows:
        line = trail["lines"][row["seq"]]
        assert set(row) == {"leafHash", "record", "seq"}
        assert canonical(row["record"]).encode() == line
        assert row["leafHash"] == leaf_hash(line).hex()


CSV_COLUMNS = ["seq", "ts", "type", "leafHash", "prev", "decisionId", "action", "decision",
               "allowed", "dryRun", "rule", "reason", "risk", "mode", "policy", "identity",
               "request", "record"]  # fmt: skip
FORMULA = re.compile(r"\s*[=+\-@\t\r\n\uff1d\uff0b\uff0d\uff20]")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return canonical(value)
    return "'" + value if FORMULA.match(value) else value


def check_csv(text: bytes, trail: dict[str, Any]) -> None:
    assert text.endswith(b"\r\n")
    rows = list(csv.reader(io.StringIO(text.decode("utf-8"), newline="")))
    assert rows[0] == CSV_COLUMNS
    assert [int(row[0]) for row in rows[1:]] == sorted(trail["lines"])
    for row in rows[1:]:
        seq = int(row[0])
        line, record = trail["lines"][seq], trail["records"][seq]
        expected = [csv_cell(record.get(column)) for column in CSV_COLUMNS[:-1]]
        expected[3] = leaf_hash(line).hex()
        assert row == [*expected, line.decode()], seq


HTTP_ACTIVITY = {"GET": 2, "HEAD": 2, "OPTIONS": 2, "POST": 1, "PUT": 3, "PATCH": 3, "DELETE": 4}
K8S_ACTIVITY = {"get": 2, "list": 2, "watch": 2, "create": 1, "update": 3, "patch": 3,
                "delete": 4, "deletecollection": 4}  # fmt: skip
FILE_ACTIVITY = {"file.read": 2, "file.write": 3, "file.delete": 4}
APPROVAL_DISPOSITION = {"approved": 8, "redeemed": 1, "requested": 14, "forged": 25, "refused": 25}


def ocsf_expected(record: dict[str, Any]) -> tuple[int, int, int]:
    """(activity_id, action_id, disposition_id) per the table in docs/audit.md."""
    if record["type"] == "invalidRequest":
        return 99, 2, 25
    if record["type"] == "approval":
        event = record["event"]
        allowed = 1 if event in ("approved", "redeemed") else 2
        return 99, allowed, APPROVAL_DISPOSITION.get(event, 2)
    action, request = record["action"], record["request"]
    if action == "network.request":
        activity = HTTP_ACTIVITY.get(str(request.get("method") or "GET").upper(), 99)
    elif action == "k8s.request":
        activity = K8S_ACTIVITY.get(str(request["k8s"].get("verb", "")).lower(), 99)
    else:
        activity = FILE_ACTIVITY.get(action, 99)
    if record.get("dryRun") is True:  # a preflight: Allowed / No Action
        return activity, 1, 16
    if record["mode"] == "audit" and record["decision"] != "allow":
        return activity, 1, 15
    return activity, *{"allow": (1, 1), "deny": (2, 2), "require_approval": (2, 14)}[
        record["decision"]
    ]


def check_ocsf(text: bytes, trail: dict[str, Any]) -> None:
    agent_facing = [
        seq for seq, record in sorted(trail["records"].items())
        if record["type"] in ("decision", "invalidRequest", "approval")
    ]  # fmt: skip
    events = [json.loads(line) for line in text.split(b"\n")[:-1]]
    assert [event["metadata"]["sequence"] for event in events] == agent_facing
    for event in events:
        seq = event["metadata"]["sequence"]
        line, record = trail["lines"][seq], trail["records"][seq]
        assert (event["class_uid"], event["category_uid"]) == (6003, 6)
        assert event["metadata"]["version"] == "1.4.0"
        assert event["metadata"]["uid"] == leaf_hash(line).hex()
        assert event["raw_data"] == line.decode()
        activity, action, disposition = ocsf_expected(record)
        got = (event["activity_id"], event["action_id"], event["disposition_id"])
        assert got == (activity, action, disposition), (seq, record)
        assert event["type_uid"] == 600300 + activity
        if record["type"] == "decision":
            assert event["metadata"]["correlation_uid"] == record["decisionId"]
            assert event["api"]["request"]["uid"] == record["decisionId"]
            assert event["policy"]["uid"] == record["policy"]


# --- producing a trail with the real daemon -------------------------------------------

APPROVER = Ed25519PrivateKey.generate()
APPROVER_PUBLIC = base64.b64encode(
    APPROVER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()
POLICY = f"""\
version: 1
defaultAction: deny
rules:
  - {{id: read-app, action: file.read, path: {{glob: "/app/**"}}, decision: allow, risk: low}}
  - {{id: no-secret-files, action: "file.*", path: {{glob: "/etc/**"}}, decision: deny, risk: high}}
  - {{id: api, action: network.request, host: {{endsWith: ".example.com"}}, decision: allow}}
  - {{id: git, action: process.exec, command: git, decision: allow}}
  - {{id: k8s-read, action: k8s.request, verb: [get, list, watch], decision: allow}}
  - {{id: deploys, action: k8s.request, verb: [delete, patch], resource: deployments,
     decision: require_approval, risk: high, reason: "deployment changes need a human"}}
approvals:
  approvers:
    - {{name: alice, publicKey: "{APPROVER_PUBLIC}"}}
"""
CHECKS: list[Any] = [
    {"action": "file.read", "path": "/app/data/x.csv"},
    {"action": "file.read", "path": "/app/ünï/日本語/😀.txt",
     "context": {"t": "\u2028 \x07 \x1b \x7f \u0085 \"q\" \\ \t /", "\ue000": 1, "😀": 2,
                 "big": 123456789012345678901234567890, "neg": -7}},
    {"action": "file.read", "path": "/etc/shadow"},
    {"action": "file.write", "path": "/app/out/r.txt", "dryRun": True},
    {"action": "file.delete", "path": "/etc/passwd"},
    {"action": "process.exec", "argv": ["git", "status"]},
    {"action": "process.exec",
     "commandLine": "curl -H 'Authorization: Bearer abcdefghijklmnop12345' https://x.example.com"},
    {"action": "network.request", "url": "https://api.example.com/v1?token=sk-abcdefghijklmnopqrstuvwx",
     "method": "POST"},
    {"action": "network.request", "url": "https://user:hunter2@db.example.com/"},
    {"action": "network.request", "url": "https://api.example.com/x", "method": "PATCH"},
    {"action": "network.request", "host": "169.254.169.254", "method": "DELETE"},
    {"action": "k8s.request", "k8s": {"verb": "list", "group": "", "version": "v1", "resource": "pods"}},
    {"action": "k8s.request", "k8s": {"verb": "create", "group": "", "version": "v1", "resource": "pods"}},
    {"action": "k8s.request", "k8s": {"method": "DELETE", "path": "/apis/apps/v1/namespaces/a/deployments/web"}},
    {"action": "file.read", "path": "=HYPERLINK(\"http://evil\")",
     "context": {"password": "s3cr3t!", "note": " -1+1", "k": "\uff1dx"}},
    b"{not json",
    b'{"action":"file.read","path":"/a","x":1}',
    b'{"action":"bogus","p":"\xc3\xbc password=hunter2"}',
    b"\xff\xfe",
]  # fmt: skip


def tollgate(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args], capture_output=True, timeout=120
    )


def approve(daemon: Daemon, approval_id: str) -> None:
    """An approver's signature as docs/approvals.md and the contract describe it."""
    assert daemon.client is not None
    pending = daemon.client.get(f"/v1/approvals/{approval_id}").json()
    statement = {"approval": approval_id, "approver": "alice", "decision": "approve",
                 "requestHash": pending["requestHash"]}  # fmt: skip
    signature = APPROVER.sign(canonical(statement).encode())
    answer = daemon.client.post(
        f"/v1/approvals/{approval_id}",
        json={"decision": "approve", "approver": "alice", "reason": "-OPS-7",
              "signature": base64.b64encode(signature).decode()},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text


def run(daemon: Daemon, rounds: int) -> bytes:
    for round_ in range(rounds):
        for body in CHECKS:
            if isinstance(body, dict) and round_ % 2:
                body = {**body, "context": {**body.get("context", {}), "round": round_}}
            assert daemon.check(body).status_code in (200, 400)
    deploy = {"action": "k8s.request",
              "k8s": {"method": "PATCH", "path": "/apis/apps/v1/namespaces/a/deployments/api"}}  # fmt: skip
    approval = daemon.check(deploy).json()["approval"]["id"]
    approve(daemon, approval)
    assert daemon.check({**deploy, "approval": approval}).json()["allowed"] is True
    assert daemon.check({**deploy, "approval": approval}).json()["allowed"] is False
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    out, _ = daemon.process.communicate(timeout=30)
    daemon.stop()
    return out


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("independent")
    key = Ed25519PrivateKey.generate()
    key_file = base / "tollgate.key"
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    pub_file = base / "tollgate.pub"
    pub_file.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    audit = base / "audit"
    stdout = b""
    for _ in range(2):  # a restart in between
        daemon = Daemon(
            policy, audit, "--signing-key", str(key_file), "--segment-bytes", "6000",
            env={"TOLLGATE_IDENTITY": "apps/agent/pod+1 x"},
        ).start()  # fmt: skip
        stdout += run(daemon, 3)
    public = load_pem_public_key(pub_file.read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"audit": audit, "pub": pub_file, "key": raw, "stdout": stdout, "base": base}


# --- the tests ---------------------------------------------------------------------


def test_the_daemons_trail_verifies_as_documented(produced: dict[str, Any]) -> None:
    trail = verify_trail(produced["audit"], [produced["key"]])
    records = trail["records"].values()
    types = {record["type"] for record in records}
    assert types >= {"startup", "policyLoaded", "decision", "invalidRequest", "approval",
                     "checkpoint", "shutdown"}  # fmt: skip
    reasons = {r["reason"] for r in records if r["type"] == "checkpoint"}
    assert {"rotation", "shutdown"} <= reasons
    assert len(list((produced["audit"] / "segments").glob("*.start"))) >= 3
    # the default origin: tollgate/<identity>, spaces and '+' as '_'
    assert trail["origin"] == "tollgate/apps/agent/pod_1_x"
    assert trail["signed"] == trail["size"] - 1  # the shutdown checkpoint is the last record
    # no secret of CHECKS reached the disk
    everything = b"".join(p.read_bytes() for p in produced["audit"].rglob("*") if p.is_file())
    for secret in (
        b"abcdefghijklmnop12345",
        b"sk-abcdefghijklmnopqrstuvwx",
        b"hunter2",
        b"s3cr3t!",
    ):
        assert secret not in everything
    # the stdout copies are the checkpoint records, field for field
    logged = [json.loads(line) for line in produced["stdout"].splitlines()]
    logged = [entry for entry in logged if entry.get("msg") == "audit checkpoint"]
    by_size = {r["treeSize"]: r for r in records if r["type"] == "checkpoint"}
    assert sorted(entry["treeSize"] for entry in logged) == sorted(by_size)
    for entry in logged:
        assert set(entry) == {"level", "logger", "msg", "note", "origin", "rootHash", "seq",
                              "treeSize", "ts"}  # fmt: skip
        record = by_size[entry["treeSize"]]
        for field in ("note", "origin", "rootHash", "seq"):
            assert entry[field] == record[field]
    assert tollgate("audit", "verify", str(produced["audit"])).returncode == 0


def test_every_export_format_matches_the_trail(produced: dict[str, Any]) -> None:
    trail = verify_trail(produced["audit"], [produced["key"]])
    for name, check in (("jsonl", check_jsonl), ("csv", check_csv), ("ocsf", check_ocsf)):
        exported = tollgate("audit", "export", str(produced["audit"]), "--format", name)
        assert exported.returncode == 0, exported.stderr
        check(exported.stdout, trail)


def test_a_pruned_trail_verifies_from_its_start_file(
    produced: dict[str, Any], tmp_path: Path
) -> None:
    audit = tmp_path / "audit"
    shutil.copytree(produced["audit"], audit)
    segments = sorted((audit / "segments").glob("*.jsonl"))
    for segment in segments[:2]:
        segment.unlink()
        segment.with_suffix(".start").unlink(missing_ok=True)
    trail = verify_trail(audit, [produced["key"]])
    assert min(trail["records"]) == int(segments[2].name[:20]) > 0
    exported = tollgate("audit", "export", str(audit), "--format", "csv")
    check_csv(exported.stdout, trail)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _edit_byte(audit: Path) -> None:
    segment = sorted((audit / "segments").glob("*.jsonl"))[1]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))


def _delete_record(audit: Path) -> None:
    segment = sorted((audit / "segments").glob("*.jsonl"))[1]
    lines = _lines(segment)
    del lines[2]
    _write(segment, lines)


def _reorder(audit: Path) -> None:
    segment = sorted((audit / "segments").glob("*.jsonl"))[2]
    lines = _lines(segment)
    lines[1], lines[2] = lines[2], lines[1]
    _write(segment, lines)


def _truncate(audit: Path) -> None:
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    segment.unlink()
    segment.with_suffix(".start").unlink()


def _swap_signature(audit: Path) -> None:
    records = [json.loads(line) for line in _lines(sorted((audit / "segments").glob("*.jsonl"))[0])]
    other = next(r for r in records if r["type"] == "checkpoint")["note"]
    current = (audit / "checkpoint").read_text()
    (audit / "checkpoint").write_text(
        current.rsplit("\n\n", 1)[0] + "\n\n" + other.rsplit("\n\n", 1)[1]
    )


def _rewrite_segment(audit: Path) -> None:
    """A segment rewritten with a consistent chain, and every later prev re-linked."""
    prev, changed = "", False
    for segment in sorted((audit / "segments").glob("*.jsonl"))[1:]:
        out = []
        for line in _lines(segment):
            record = json.loads(line)
            if changed:
                record["prev"] = prev
            elif record["type"] == "decision":
                record["reason"], changed = "rewritten", True
            line = canonical(record).encode()
            prev = leaf_hash(line).hex()
            out.append(line)
        _write(segment, out)
    for start in (audit / "segments").glob("*.start"):
        start.unlink()  # no key needed for those


def _forge_start(audit: Path) -> None:
    start = sorted((audit / "segments").glob("*.start"))[-1]
    content = json.loads(start.read_bytes())
    content["frontier"][0] = "00" * 32
    start.write_bytes(canonical(content).encode())


def _non_canonical_last(audit: Path) -> None:
    segment = sorted((audit / "segments").glob("*.jsonl"))[-1]
    lines = _lines(segment)
    lines[-1] = lines[-1].replace(b'"type"', b'"\\u0074ype"')
    _write(segment, lines)


@pytest.mark.parametrize(
    "tamper",
    [_edit_byte, _delete_record, _reorder, _truncate, _swap_signature, _rewrite_segment,
     _forge_start, _non_canonical_last],
)  # fmt: skip
def test_tampering_fails_here_and_in_tollgate_verify(
    produced: dict[str, Any], tmp_path: Path, tamper: Any
) -> None:
    audit = tmp_path / "audit"
    shutil.copytree(produced["audit"], audit)
    tamper(audit)
    with pytest.raises(Bad):
        verify_trail(audit, [produced["key"]])
    verified = tollgate("audit", "verify", str(audit), "--public-key", str(produced["pub"]))
    assert verified.returncode == 1 and verified.stdout.startswith(b"tampered:"), verified.stdout
