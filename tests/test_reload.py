"""Live policy reload against the real daemon (issue 4; docs/policy-reload.md).

The ConfigMap updates are kubelet's AtomicWriter, step for step: a new timestamped
directory holding every key, a ``..data_tmp`` symlink to it renamed over ``..data``,
user-visible symlinks ``<key> -> ..data/<key>``, then the old directory removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sidecar.policy.watch import fingerprint
from tests.daemon import Daemon, refusing_writes

T = TypeVar("T")

ALLOW_READS = b"""\
version: 1
defaultAction: deny
rules:
  - id: read-data
    action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""
DENY_READS = b"""\
version: 1
defaultAction: deny
rules:
  - id: no-reads
    action: file.read
    decision: deny
    reason: reads are closed
"""
READ = {"action": "file.read", "path": "/app/data/report.csv"}
# Reload deadlines are loose on purpose (the 1 s target is measured by benchmarks):
# events normally land in well under a second, the poll within 2 s.
EVENT_DEADLINE = 5.0
POLL_DEADLINE = 8.0


def policy_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ConfigMapVolume:
    """A directory kept exactly the way kubelet keeps a ConfigMap volume."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.update(files)

    def path(self, key: str = "policy.yaml") -> Path:
        return self.root / key

    def _current(self) -> tuple[str | None, set[str]]:
        try:
            old = os.readlink(self.root / "..data")
        except FileNotFoundError:
            return None, set()
        return old, set(os.listdir(self.root / old))

    def update(self, files: dict[str, bytes]) -> None:
        old_dir, old_keys = self._current()
        stamp = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        new_dir = tempfile.mkdtemp(prefix=stamp, dir=self.root)
        os.chmod(new_dir, 0o755)
        for key, data in files.items():
            (Path(new_dir) / key).write_bytes(data)
            os.chmod(Path(new_dir) / key, 0o644)
        os.symlink(os.path.basename(new_dir), self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
        for key in files:
            if not os.path.lexists(self.root / key):
                os.symlink(f"..data/{key}", self.root / key)
        for key in old_keys - set(files):
            os.remove(self.root / key)
        if old_dir is not None:
            shutil.rmtree(self.root / old_dir)


def wait_until(probe: Callable[[], T], timeout: float = EVENT_DEADLINE) -> T:
    """Call ``probe`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"not reached within {timeout} s; last value {value!r}"
            return value
        time.sleep(0.02)


def status(daemon: Daemon) -> dict[str, Any]:
    response = daemon.get("/v1/status")
    assert response.status_code == 200
    return response.json()


def wait_for_policy(daemon: Daemon, data: bytes, timeout: float = EVENT_DEADLINE) -> None:
    wait_until(lambda: status(daemon)["policy"]["hash"] == policy_hash(data), timeout)


def wait_for_rejections(daemon: Daemon, count: int, timeout: float = EVENT_DEADLINE) -> list[dict]:
    return wait_until(lambda: len(found := of_type(daemon, "policyRejected")) >= count and found)


def of_type(daemon: Daemon, kind: str) -> list[dict[str, Any]]:
    return [record for record in daemon.records() if record["type"] == kind]


def test_kubelet_swap_activates_the_new_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    before = gate.check(READ).json()
    assert before["allowed"] is True
    assert before["policy"] == policy_hash(ALLOW_READS)

    volume.update({"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS)
    after = gate.check(READ).json()
    assert after["allowed"] is False
    assert after["rule"] == "no-reads"
    assert after["policy"] == policy_hash(DENY_READS)

    loaded = of_type(gate, "policyLoaded")
    assert [record["policy"] for record in loaded] == [
        policy_hash(ALLOW_READS),
        policy_hash(DENY_READS),
    ]
    assert loaded[1]["previous"] == policy_hash(ALLOW_READS)
    decisions = {record["decisionId"]: record for record in of_type(gate, "decision")}
    assert decisions[before["decisionId"]]["policy"] == policy_hash(ALLOW_READS)
    assert decisions[after["decisionId"]]["policy"] == policy_hash(DENY_READS)
    assert of_type(gate, "policyRejected") == []


def test_rapid_successive_swaps_end_on_the_last_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    versions = [ALLOW_READS + f"# version {n}\n".encode() for n in range(12)]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": versions[0]})
    gate = daemon_factory(volume.path())
    for number, data in enumerate(versions[1:], start=1):
        volume.update({"policy.yaml": data})
        if number % 3 == 0:
            time.sleep(0.03)  # some land mid-debounce, some after it
    wait_for_policy(gate, versions[-1])
    # Nothing is rejected and nothing else is loaded later: the last swap stays active.
    time.sleep(0.5)
    assert status(gate)["policy"]["hash"] == policy_hash(versions[-1])
    loaded = [record["policy"] for record in of_type(gate, "policyLoaded")]
    assert loaded[-1] == policy_hash(versions[-1])
    assert set(loaded) <= {policy_hash(data) for data in versions}
    assert of_type(gate, "policyRejected") == []


def test_checks_racing_swaps_each_run_one_whole_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    answers: list[dict[str, Any]] = []
    done = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=gate.url, timeout=10.0) as client:
            while not done.is_set():
                answers.append(client.post("/check", json=READ).json())

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        for number in range(10):
            volume.update({"policy.yaml": DENY_READS if number % 2 == 0 else ALLOW_READS})
            time.sleep(0.08)
    finally:
        done.set()
        for worker in workers:
            worker.join()

    expected = {policy_hash(ALLOW_READS): True, policy_hash(DENY_READS): False}
    assert {answer["policy"] for answer in answers} == set(expected)  # both were served
    for answer in answers:
        assert answer["allowed"] is expected[answer["policy"]], answer
    for record in of_type(gate, "decision"):
        assert record["allowed"] is expected[record["policy"]], record


def test_invalid_updates_keep_the_last_good_policy(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())

    volume.update({"policy.yaml": b"version: 1\nrules: [\n"})
    first = wait_for_rejections(gate, 1)[0]
    assert first["kept"] == policy_hash(ALLOW_READS)
    shown = status(gate)["policy"]
    assert shown["hash"] == policy_hash(ALLOW_READS)
    assert shown["lastError"] and str(volume.path()) in shown["lastError"]
    assert gate.check(READ).json()["allowed"] is True
    assert gate.get("/ready").status_code == 200  # the last good policy still serves

    volume.update({"policy.yaml": ALLOW_READS.replace(b"decision: allow", b"decison: allow")})
    second = wait_for_rejections(gate, 2)[1]
    assert any("decison" in problem for problem in second["problems"])
    assert "decison" in status(gate)["policy"]["lastError"]
    assert gate.check(READ).json()["policy"] == policy_hash(ALLOW_READS)

    # A rejected file is rejected once, not again on every poll.
    time.sleep(2.5)
    assert len(of_type(gate, "policyRejected")) == 2

    volume.update({"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS)
    assert status(gate)["policy"]["lastError"] is None
    assert gate.check(READ).json()["allowed"] is False


def test_restoring_the_active_policy_clears_the_error(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The usual fix for a bad update is to revert it: the file then holds the active policy.
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    volume.update({"policy.yaml": b"version: 1\nrules: [\n"})
    wait_for_rejections(gate, 1)
    volume.update({"policy.yaml": ALLOW_READS})
    wait_until(lambda: status(gate)["policy"]["lastError"] is None, timeout=2.5)


def test_deleted_then_recreated_file(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = policy_in_a_plain_directory(tmp_path)
    gate = daemon_factory(policy)

    policy.unlink()
    rejected = wait_for_rejections(gate, 1)[0]
    assert any("cannot read" in problem for problem in rejected["problems"])
    assert gate.check(READ).json()["allowed"] is True  # the last good policy is kept

    policy.write_bytes(DENY_READS)
    wait_for_policy(gate, DENY_READS)
    assert gate.check(READ).json()["allowed"] is False


def test_a_fifo_at_the_policy_path_is_rejected_and_later_updates_still_load(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    # Opened with a plain open(), a FIFO blocked the reload thread for good: every
    # later update, a tightening one included, was silently ignored.
    policy = policy_in_a_plain_directory(tmp_path)
    gate = daemon_factory(policy)
    fifo = tmp_path / "policies" / "fifo"
    os.mkfifo(fifo)
    fifo.rename(policy)
    rejected = wait_for_rejections(gate, 1)[0]
    assert any("not a regular file" in problem for problem in rejected["problems"])
    assert gate.check(READ).json()["allowed"] is True  # the last good policy is kept

    staged = tmp_path / "policies" / "staged"
    staged.write_bytes(DENY_READS)
    staged.rename(policy)
    wait_for_policy(gate, DENY_READS)
    assert gate.check(READ).json()["allowed"] is False


def policy_in_a_plain_directory(tmp_path: Path) -> Path:
    policy = tmp_path / "policies" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_bytes(ALLOW_READS)
    return policy


def assert_went_from_allow_reads_to(daemon: Daemon, data: bytes) -> None:
    """Caught mid-save, an update is rejected (keeping the last good policy), never
    half-loaded: the only policies ever active are the first and the whole new one."""
    for record in of_type(daemon, "policyRejected"):
        assert record["kept"] == policy_hash(ALLOW_READS)
    loaded = [record["policy"] for record in of_type(daemon, "policyLoaded")]
    assert loaded == [policy_hash(ALLOW_READS), policy_hash(data)]


def test_an_editor_saving_through_a_backup_is_followed(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # vim's default save: the file is renamed to a backup, a new file is written in
    # several writes under the old name, then the backup is deleted.
    policy = policy_in_a_plain_directory(tmp_path)
    gate = daemon_factory(policy)
    backup = policy.with_name("policy.yaml~")
    os.rename(policy, backup)
    with open(policy, "wb") as out:
        for start in range(0, len(DENY_READS), 16):
            out.write(DENY_READS[start : start + 16])
            out.flush()
        os.fsync(out.fileno())
    backup.unlink()
    wait_for_policy(gate, DENY_READS)
    assert gate.check(READ).json()["allowed"] is False
    assert_went_from_allow_reads_to(gate, DENY_READS)


def test_a_slow_rewrite_in_place_ends_on_the_whole_file(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # Truncated and written in two parts, with a pause far longer than the watcher's
    # quiet period between them: the first part (not a policy) is read and rejected,
    # the whole file is loaded once the second part lands.
    whole = b"version: 1\nrules: [{id: no-reads, action: file.read, decision: deny}]\n"
    policy = policy_in_a_plain_directory(tmp_path)
    gate = daemon_factory(policy)
    with open(policy, "r+b") as out:
        out.truncate(0)
        out.write(whole[: len(whole) // 2])
        out.flush()
        wait_for_rejections(gate, 1)
        out.write(whole[len(whole) // 2 :])
        out.flush()
    wait_for_policy(gate, whole)
    assert gate.check(READ).json()["allowed"] is False
    assert_went_from_allow_reads_to(gate, whole)


def test_no_valid_policy_at_start_serves_503_until_one_appears(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": b"version: 2\n"})
    gate = daemon_factory(volume.path(), wait_ready=False)
    ready = gate.get("/ready")
    assert ready.status_code == 503
    assert any("version" in reason for reason in ready.json()["reasons"])
    answer = gate.check(READ)
    assert answer.status_code == 503
    assert answer.json()["allowed"] is False
    assert answer.json()["error"]["code"] == "unavailable"

    volume.update({"policy.yaml": ALLOW_READS})
    wait_for_policy(gate, ALLOW_READS)
    assert gate.get("/ready").status_code == 200
    assert gate.check(READ).json()["allowed"] is True
    # Rejected once at start: the watcher starting up did not record it again.
    assert len(of_type(gate, "policyRejected")) == 1


def test_missing_file_at_start_is_picked_up_when_created(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policies" / "policy.yaml"
    policy.parent.mkdir()
    gate = daemon_factory(policy, wait_ready=False)
    assert gate.check(READ).status_code == 503
    policy.write_bytes(ALLOW_READS)
    wait_for_policy(gate, ALLOW_READS)
    assert gate.check(READ).json()["allowed"] is True


def test_replaced_directory_is_followed(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "config"
    volume = ConfigMapVolume(directory, {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    shutil.rmtree(directory)  # e.g. the volume remounted: the old watch sees nothing more
    wait_for_rejections(gate, 1)
    volume = ConfigMapVolume(directory, {"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS, POLL_DEADLINE)
    volume.update({"policy.yaml": ALLOW_READS})  # and the re-armed watch sees this one
    wait_for_policy(gate, ALLOW_READS)


def test_change_without_events_is_found_by_the_poll(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The watched directory only holds a symlink to a file elsewhere: replacing that
    # file makes no event where the gate listens, as on a filesystem that drops events.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.yaml").write_bytes(ALLOW_READS)
    (tmp_path / "etc").mkdir()
    link = tmp_path / "etc" / "policy.yaml"
    link.symlink_to(elsewhere / "real.yaml")
    gate = daemon_factory(link)

    (elsewhere / "next.yaml").write_bytes(DENY_READS)
    os.replace(elsewhere / "next.yaml", elsewhere / "real.yaml")
    wait_for_policy(gate, DENY_READS, POLL_DEADLINE)


def test_unchanged_content_is_not_reloaded(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    volume.update({"policy.yaml": ALLOW_READS, "other-key": b"x"})
    volume.update({"policy.yaml": DENY_READS, "other-key": b"x"})
    wait_for_policy(gate, DENY_READS)
    # A new policy answers (and shows in /v1/status) just before its record is on disk.
    wait_until(lambda: len(of_type(gate, "policyLoaded")) >= 2)
    assert [record["policy"] for record in of_type(gate, "policyLoaded")] == [
        policy_hash(ALLOW_READS),
        policy_hash(DENY_READS),
    ]


# -- the fingerprint, on real directories ----------------------------------------------


def test_fingerprint_sees_a_kubelet_swap_even_with_equal_size_and_mtime(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path, {"policy.yaml": b"version: 1\n# aaaa\n"})
    before = fingerprint(str(volume.path()), with_signature=False)
    assert before == fingerprint(str(volume.path()), with_signature=False)
    volume.update({"policy.yaml": b"version: 1\n# bbbb\n"})
    os.utime(volume.path(), ns=(before.policy.mtime_ns, before.policy.mtime_ns))
    after = fingerprint(str(volume.path()), with_signature=False)
    assert after.policy.size == before.policy.size
    assert after.policy.mtime_ns == before.policy.mtime_ns
    assert after != before
    assert after.policy.realpath != before.policy.realpath


def test_fingerprint_of_an_in_place_rewrite_and_a_missing_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"version: 1\n# aaaa\n")
    before = fingerprint(str(policy), with_signature=True)
    assert before.signature is not None and before.signature.error
    stat = policy.stat()
    policy.write_bytes(b"version: 1\n# bbbb\n")
    os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same path, size, mtime
    assert fingerprint(str(policy), with_signature=True) != before  # the content hash differs
    policy.unlink()
    missing = fingerprint(str(policy), with_signature=True)
    assert missing.policy.error


def test_fingerprint_includes_the_signature(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    (tmp_path / "policy.yaml.sig").write_bytes(b"c2ln\n")
    before = fingerprint(str(policy), with_signature=True)
    (tmp_path / "policy.yaml.sig").write_bytes(b"b3RoZXI=\n")
    assert fingerprint(str(policy), with_signature=True) != before


def deny_reads_loaded_during_an_outage(
    tmp_path: Path,
    daemon_factory: Callable[[Path], Daemon],
) -> tuple[ConfigMapVolume, Daemon]:
    """A gate that went from ALLOW_READS to DENY_READS while its trail refused writes:
    the policy is active, its policyLoaded record held; the trail is writable again."""
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    with refusing_writes(gate):
        volume.update({"policy.yaml": DENY_READS})
        wait_for_policy(gate, DENY_READS)
        assert gate.check(READ).status_code == 503, "no decision before the held record"
    return volume, gate


def test_a_policy_loaded_while_the_trail_is_unwritable_is_recorded_before_its_decisions(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    _, gate = deny_reads_loaded_during_an_outage(tmp_path, daemon_factory)
    answer = gate.check(READ).json()
    assert answer["policy"] == policy_hash(DENY_READS) and answer["allowed"] is False
    loaded = [r for r in of_type(gate, "policyLoaded") if r["policy"] == policy_hash(DENY_READS)]
    assert len(loaded) == 1, "the trail names the policy its decisions cite"
    assert loaded[0]["previous"] == policy_hash(ALLOW_READS)
    assert loaded[0]["seq"] < answer["audit"]["seq"]


def test_a_rejection_after_an_outage_comes_after_the_held_policy_loaded_record(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    # The policyRejected record names the policy kept: the trail must show that policy
    # being loaded before it, even when its policyLoaded record was held by an outage.
    volume, gate = deny_reads_loaded_during_an_outage(tmp_path, daemon_factory)
    volume.update({"policy.yaml": b"version: 1\nrules: [\n"})
    rejected = wait_for_rejections(gate, 1)[0]
    assert rejected["kept"] == policy_hash(DENY_READS)
    assert gate.check(READ).json()["allowed"] is False
    loaded = [r for r in of_type(gate, "policyLoaded") if r["policy"] == policy_hash(DENY_READS)]
    assert len(loaded) == 1
    assert loaded[0]["seq"] < rejected["seq"], "the kept policy is recorded as loaded first"
