"""Live reload as an operator and an attacker see it: what /v1/status, /ready, a 503
answer and the audit trail say about rejected policies, and what a signature does not
protect against (rollback). Real daemon, real files, real signatures; nothing mocked.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from sidecar.keys import load_public_key, public_key_base64
from tests.daemon import refusing_writes
from tests.test_metrics_status import scrape
from tests.test_policy_signing import keys, signature  # noqa: F401  (fixture)
from tests.test_reload import (
    ALLOW_READS,
    DENY_READS,
    POLL_DEADLINE,
    READ,
    ConfigMapVolume,
    of_type,
    policy_hash,
    status,
    wait_for_policy,
    wait_for_rejections,
    wait_until,
)

# 400 rules, each with one unknown key: 400 problems, each naming its rule.
MANY_PROBLEMS = b"version: 1\nrules:\n" + b"".join(
    b"  - {id: r%d, action: file.read, decision: allow, colour%d: blue}\n" % (n, n)
    for n in range(400)
)
# What an operator reads in /v1/status, /ready and every 503 answer stays this small.
BRIEF_ERROR_LIMIT = 4096


def test_a_policy_with_many_problems_is_reported_briefly(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(MANY_PROBLEMS)
    gate = daemon_factory(policy, wait_ready=False)

    last_error = status(gate)["policy"]["lastError"]
    assert "colour0: unknown key" in last_error  # the first problems, named
    assert "390 more" in last_error  # and how many were left out
    assert len(last_error) < BRIEF_ERROR_LIMIT
    ready = gate.get("/ready")
    assert ready.status_code == 503 and len(ready.content) < BRIEF_ERROR_LIMIT
    answer = gate.check(READ)
    assert answer.status_code == 503 and answer.json()["allowed"] is False
    assert len(answer.content) < BRIEF_ERROR_LIMIT
    # The trail keeps the first 50 problems, as before.
    (rejected,) = of_type(gate, "policyRejected")
    assert len(rejected["problems"]) == 50


def test_reverting_a_rejected_update_is_recorded_and_ends_the_error(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    # The usual fix for a bad update is to put the active policy back. The trail must
    # show that the rejected state ended (it showed nothing: a trail reader saw the gate
    # refusing updates for ever), and /v1/status and the metrics stop reporting it.
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    active = policy_hash(ALLOW_READS)
    loaded_at = status(gate)["policy"]["loadedAt"]
    broken = b"version: 1\nrules: [\n"
    volume.update({"policy.yaml": broken})
    wait_for_rejections(gate, 1)
    assert status(gate)["policy"]["lastErrorHash"] == policy_hash(broken)
    assert scrape(gate)["tollgate_policy_last_reload_successful"][()] == 0

    volume.update({"policy.yaml": ALLOW_READS})
    wait_until(lambda: len(of_type(gate, "policyLoaded")) >= 2)
    trail = [
        (r["type"], r.get("policy"), r.get("previous"), r.get("unchanged"), r.get("rejected"))
        for r in gate.records()
        if r["type"] in ("policyLoaded", "policyRejected")
    ]
    assert trail == [
        ("policyLoaded", active, None, False, None),
        ("policyRejected", None, None, None, policy_hash(broken)),
        ("policyLoaded", active, active, True, None),
    ]
    shown = status(gate)["policy"]
    assert shown["hash"] == active and shown["loadedAt"] == loaded_at
    assert (shown["lastError"], shown["lastErrorAt"], shown["lastErrorHash"]) == (None, None, None)
    samples = scrape(gate)
    assert samples["tollgate_policy_last_reload_successful"][()] == 1
    assert samples["tollgate_policy_reloads_total"][(("result", "loaded"),)] == 2
    assert gate.check(READ).json()["policy"] == active

    # Once the error is over, reading the same bytes again is no event (as ever).
    assert gate.process is not None
    gate.process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gate.check(READ).json()["allowed"] is True
    assert len(of_type(gate, "policyLoaded")) == 2


def test_last_error_at_is_cleared_when_a_new_policy_loads(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    volume.update({"policy.yaml": b"version: 1\nrules: [\n"})
    wait_for_rejections(gate, 1)
    assert status(gate)["policy"]["lastErrorAt"] is not None

    volume.update({"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS)
    shown = status(gate)["policy"]
    assert shown["lastError"] is None
    assert shown["lastErrorAt"] is None  # docs/policy-reload.md: null once a new policy loads


def test_a_rejection_names_the_hash_of_the_rejected_file(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    daemon_factory,
) -> None:
    # Someone without the signing key pushes their own policy: the trail must say which
    # bytes were refused, so they can be found (ConfigMap history, git) and examined.
    volume = ConfigMapVolume(
        tmp_path / "config",
        {
            "policy.yaml": ALLOW_READS,
            "policy.yaml.sig": signature(ALLOW_READS, keys["policy.key"], tmp_path),
        },
    )
    gate = daemon_factory(volume.path(), "--policy-public-key", str(keys["policy.pub"]))
    forged = ALLOW_READS.replace(b"/app/data/**", b"/**")
    volume.update(
        {
            "policy.yaml": forged,
            "policy.yaml.sig": signature(forged, keys["stranger.key"], tmp_path),
        }
    )
    rejected = wait_for_rejections(gate, 1)[0]
    assert rejected["rejected"] == policy_hash(forged)
    assert rejected["kept"] == policy_hash(ALLOW_READS)
    shown = status(gate)["policy"]
    assert shown["lastErrorHash"] == policy_hash(forged)
    assert shown["hash"] == policy_hash(ALLOW_READS)

    # A file that cannot be read has no hash to name.
    volume.update({"other.yaml": b"x"})  # policy.yaml (and its .sig) gone
    rejected = wait_for_rejections(gate, 2)[1]
    assert rejected["rejected"] is None
    assert status(gate)["policy"]["lastErrorHash"] is None

    # A new policy clears it with the error.
    volume.update(
        {
            "policy.yaml": DENY_READS,
            "policy.yaml.sig": signature(DENY_READS, keys["policy.key"], tmp_path),
        }
    )
    wait_for_policy(gate, DENY_READS)
    assert status(gate)["policy"]["lastErrorHash"] is None


def test_a_rejection_during_an_audit_outage_reaches_the_trail_once_it_is_back(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    bad = b"version: 1\nrules: [\n"
    with refusing_writes(gate):
        volume.update({"policy.yaml": bad})
        wait_until(lambda: status(gate)["policy"]["lastError"])
        assert gate.check(READ).status_code == 503  # the trail is down: nothing is decided
    answer = gate.check(READ).json()
    assert answer["allowed"] is True and answer["policy"] == policy_hash(ALLOW_READS)
    (rejected,) = of_type(gate, "policyRejected")
    assert rejected["kept"] == policy_hash(ALLOW_READS)
    assert rejected["rejected"] == policy_hash(bad)
    assert rejected["seq"] < answer["audit"]["seq"], "written before the next decision"


def test_an_empty_policy_file_is_rejected_as_empty(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # What an editor's truncate-then-write, or a ConfigMap key left empty, shows for a moment.
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    for number, empty in enumerate([b"", b"\n  \n", b"# nothing yet\n"], start=1):
        volume.update({"policy.yaml": empty})
        rejected = wait_for_rejections(gate, number)[-1]
        assert any("empty" in problem for problem in rejected["problems"]), rejected
        assert "empty" in status(gate)["policy"]["lastError"]
        assert gate.check(READ).json()["policy"] == policy_hash(ALLOW_READS)


def test_a_signed_policy_can_be_rolled_back_to_an_older_signed_version(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    daemon_factory,
) -> None:
    # docs/policy-reload.md, "Rollback": a signature says who wrote a policy, not that it
    # is the newest. Whoever can write the ConfigMap can bring back any version ever
    # signed with the key (its .sig still verifies); the trail shows it happening.
    old_sig = signature(ALLOW_READS, keys["policy.key"], tmp_path)
    volume = ConfigMapVolume(
        tmp_path / "config", {"policy.yaml": ALLOW_READS, "policy.yaml.sig": old_sig}
    )
    gate = daemon_factory(volume.path(), "--policy-public-key", str(keys["policy.pub"]))
    volume.update(
        {
            "policy.yaml": DENY_READS,
            "policy.yaml.sig": signature(DENY_READS, keys["policy.key"], tmp_path),
        }
    )
    wait_for_policy(gate, DENY_READS)
    volume.update({"policy.yaml": ALLOW_READS, "policy.yaml.sig": old_sig})
    wait_for_policy(gate, ALLOW_READS)
    assert gate.check(READ).json()["allowed"] is True
    loaded = of_type(gate, "policyLoaded")
    assert [(r["policy"], r["previous"]) for r in loaded[-2:]] == [
        (policy_hash(DENY_READS), policy_hash(ALLOW_READS)),
        (policy_hash(ALLOW_READS), policy_hash(DENY_READS)),
    ]
    assert of_type(gate, "policyRejected") == []


def test_a_pinned_hash_refuses_a_rollback(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The documented defence against rollback: pin the hash.
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": DENY_READS})
    gate = daemon_factory(volume.path(), "--require-policy-hash", policy_hash(DENY_READS))
    volume.update({"policy.yaml": ALLOW_READS})
    rejected = wait_for_rejections(gate, 1)[0]
    assert rejected["rejected"] == policy_hash(ALLOW_READS)
    time.sleep(0.1)
    assert gate.check(READ).json()["allowed"] is False


def test_sighup_reads_the_policy_again_and_does_not_stop_the_gate(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    # `kill -HUP` is how many daemons are told to reload; it must not kill this one
    # (which lost its shutdown record and final checkpoint, and failed every check
    # until the container restarted).
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"version: 1\nrules: [\n")
    gate = daemon_factory(policy, wait_ready=False)
    wait_for_rejections(gate, 1)
    assert gate.process is not None
    gate.process.send_signal(signal.SIGHUP)
    wait_for_rejections(gate, 2)  # read again on demand, though the file did not change
    assert gate.process.poll() is None
    assert gate.get("/health").status_code == 200

    policy.write_bytes(ALLOW_READS)
    wait_for_policy(gate, ALLOW_READS)
    gate.process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gate.process.poll() is None
    assert gate.check(READ).json()["allowed"] is True
    assert len(of_type(gate, "policyLoaded")) == 1  # the same bytes: nothing to reload
    assert gate.stop() in (0, -signal.SIGTERM)  # ended by SIGTERM, as ever
    assert of_type(gate, "shutdown")[-1]["reason"] == "signal"


def test_a_directory_deleted_and_created_again_is_watched_again(  # type: ignore[no-untyped-def]
    tmp_path: Path, daemon_factory
) -> None:
    # Created again at once, the directory usually gets its old inode number back (ext4),
    # so it looks unchanged to the poll; its events must still be followed, or every
    # later update waits for the 2 s poll.
    directory = tmp_path / "config"
    volume = ConfigMapVolume(directory, {"policy.yaml": ALLOW_READS})
    gate = daemon_factory(volume.path())
    shutil.rmtree(directory)
    directory.mkdir()
    volume = ConfigMapVolume(directory, {"policy.yaml": DENY_READS})
    wait_for_policy(gate, DENY_READS, POLL_DEADLINE)
    took = []
    for data in (ALLOW_READS, DENY_READS, ALLOW_READS):
        time.sleep(0.3)
        started = time.monotonic()
        volume.update({"policy.yaml": data})
        wait_for_policy(gate, data)
        took.append(time.monotonic() - started)
    assert max(took) < 1.0, f"reloads took {took} s: found by the poll, not by events"


def test_rejections_held_through_an_outage_are_bounded(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # A file rewritten again and again while the trail is down must not grow the gate's
    # memory without end: the first 100 rejections are held, later ones only counted.
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(ALLOW_READS)
    gate = daemon_factory(policy)
    with refusing_writes(gate):
        for number in range(105):
            bad = b"version: 1\nrules: [\n# %d\n" % number
            scratch = tmp_path / "next.yaml"
            scratch.write_bytes(bad)
            scratch.replace(policy)
            wait_until(lambda bad=bad: status(gate)["policy"]["lastErrorHash"] == policy_hash(bad))
    assert gate.check(READ).json()["allowed"] is True
    rejected = of_type(gate, "policyRejected")
    assert len(rejected) == 100
    assert rejected[0]["rejected"] == policy_hash(b"version: 1\nrules: [\n# 0\n")
    samples = scrape(gate)
    assert samples["tollgate_audit_write_failures_total"][()] >= 5
    assert samples["tollgate_policy_reloads_total"][(("result", "rejected"),)] == 105


def test_a_loaded_policy_s_warnings_are_in_status_and_the_log(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    # `policy validate` warns about a policy that allows more than it seems to; once it
    # is live, /v1/status and `kubectl logs` say so too, not only the trail.
    volume = ConfigMapVolume(tmp_path / "config", {"policy.yaml": DENY_READS})
    gate = daemon_factory(volume.path())
    assert status(gate)["policy"]["warnings"] == []
    broad = b"version: 1\ndefaultAction: allow\nrules:\n" + b"".join(
        b"  - {id: r%d, action: file.read, decision: allow}\n" % n for n in range(30)
    )
    volume.update({"policy.yaml": broad})
    wait_for_policy(gate, broad)
    warnings = status(gate)["policy"]["warnings"]
    assert warnings[0] == "defaultAction: allow lets through everything no rule denies"
    assert len(warnings) == 11 and warnings[-1] == "... and 21 more"  # 31 in all
    assert len(of_type(gate, "policyLoaded")[-1]["warnings"]) == 31
    assert gate.process is not None and gate.process.stderr is not None
    gate.process.send_signal(signal.SIGTERM)
    gate.process.wait(15)
    log = gate.process.stderr.read().decode()
    assert f"policy {policy_hash(broad)} has 31 warnings" in log
    assert "defaultAction: allow" in log


def test_policy_loaded_records_say_how_the_policy_was_checked(  # type: ignore[no-untyped-def]
    keys: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    daemon_factory,
) -> None:
    # The trail is the evidence: "every policy in force was signed with key K" (or was
    # the pinned one) must be provable from it, not from a pod spec long since changed.
    public_key = public_key_base64(load_public_key(keys["policy.pub"]))
    signed = ConfigMapVolume(
        tmp_path / "signed",
        {
            "policy.yaml": ALLOW_READS,
            "policy.yaml.sig": signature(ALLOW_READS, keys["policy.key"], tmp_path),
        },
    )
    gate = daemon_factory(signed.path(), "--policy-public-key", str(keys["policy.pub"]))
    (loaded,) = of_type(gate, "policyLoaded")
    assert loaded["signatureKey"] == public_key
    assert loaded["pinnedHash"] is None

    plain = tmp_path / "plain.yaml"
    plain.write_bytes(DENY_READS)
    gate = daemon_factory(plain, "--require-policy-hash", policy_hash(DENY_READS))
    (loaded,) = of_type(gate, "policyLoaded")
    assert loaded["signatureKey"] is None
    assert loaded["pinnedHash"] == policy_hash(DENY_READS)

    gate = daemon_factory(plain)
    (loaded,) = of_type(gate, "policyLoaded")
    assert loaded["signatureKey"] is None and loaded["pinnedHash"] is None
