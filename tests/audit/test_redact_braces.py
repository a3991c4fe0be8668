"""A secret hidden in a brace list of a command line is redacted like a plain one.

bash expands ``{sshpass,-p,pw}`` into the three words ``sshpass -p pw`` before it runs
anything, so an agent's command line can carry an option and its secret inside one word,
where the argv scans, which read word by word, do not see them. The redactor expands
brace lists (a view only, bounded) and replaces what it finds there everywhere in the
record's request and reason.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor, brace_words
from sidecar.canonical import canonical_bytes
from sidecar.keys import generate_keypair
from tests.audit.test_redact_spread import PW, decided_without_the_password, recorded_request
from tests.daemon import checked_through_a_gate
from tests.test_approvals import Approver

KEY = b"k" * 32
TAG = re.compile(r"\[REDACTED:([a-z-]+):([0-9a-f]{8})\]")

# Words without quotes, escapes or glob characters, handed to bash as they are: the words
# it prints and brace_words' must be the same.
BASH_WORDS = [
    "{sshpass,-p,pw}",
    "x{a,b}y",
    "{a,{b,c}}d",
    "{a,b}{c,d}",
    "{a}",
    "{}",
    "{a}{b,c}",
    "{a{b,c}",
    "a}{b,c}",
    "{a,b",
    "${x,y}",
    "pre{a,b{c,d}e,f}post",
    "{curl,-u,bob:pw}",
    "{mysql,--password=pw,db}",
    # A "}" closes a list only after a comma at its level; "{}" starting a word opens
    # nothing; words that expand to nothing are dropped.
    "{a}b,c}",
    "{a}b{c,d}e,f}",
    "{},a}",
    "x{},a}",
    "{a,}",
    "{,b,,c}",
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("word", BASH_WORDS)
def test_brace_words_are_the_words_bash_makes(word: str) -> None:
    script = f"set -f; x=unset; printf '%s\\n' {word}"
    bash = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    expected = bash.stdout.splitlines()
    if word == "${x,y}":
        # bash expands the parameter (lower-casing x's value); the point is that it is
        # not a brace list, which brace_words keeps as written.
        assert expected == ["unset"]
        expected = [word]
    assert brace_words(word) == expected


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_random_words_expand_as_bash_expands_them() -> None:
    """2,000 random words of braces, commas, quotes and letters, through one bash: the
    same words, once bash's quote removal is applied to ours."""
    rng = random.Random(20261206)
    words: list[str] = []
    while len(words) < 2000:
        word = "".join(rng.choice("ab,{}-'") for _ in range(rng.randint(1, 14)))
        if word.count("'") % 2 == 0 and ".." not in word:
            words.append(word)
    # A prefix keeps printf from reading a word as its format or an option.
    script = "set -f\n" + "".join(f"printf '[%s]\\n' x{w}; echo @@\n" for w in words)
    bash = subprocess.run(["bash"], input=script, capture_output=True, text=True, check=True)
    for word, printed in zip(words, bash.stdout.split("@@\n"), strict=False):
        expected = [line[2:-1] for line in printed.splitlines()]
        assert [w[1:].replace("'", "") for w in brace_words("x" + word)] == expected, word


def test_a_sequence_is_kept_as_written() -> None:
    """bash makes "1 2 3" of {1..3}: text that was not written cannot be a secret that
    was, so the redactor's view leaves sequences alone."""
    assert brace_words("{1..3}") == ["{1..3}"]
    assert brace_words("{a,{1..3}}") == ["a", "{1..3}"]


def test_quotes_and_escapes_hide_commas_and_braces_as_in_bash() -> None:
    assert brace_words("'{a,b}'") == ["'{a,b}'"]
    assert brace_words('"{a,b}"') == ['"{a,b}"']
    assert brace_words("a\\{b,c}") == ["a\\{b,c}"]
    assert brace_words("{a\\,b}") == ["{a\\,b}"]
    # A quoted comma or brace inside a list is part of its item (quotes kept as written).
    assert brace_words("{a,'b}c'}") == ["a", "'b}c'"]
    assert brace_words("{'a,b',c}") == ["'a,b'", "c"]


@pytest.mark.parametrize(
    "word",
    [
        "{a,b}" * 13_000,  # a whole body's worth of lists one after another: 2 ** 13,000
        "{" * 60_000,  # never closed: each "{" is searched from in turn
        "{a," * 10_000 + "}" * 10_000,  # nested 10,000 deep
        ("{" * 30 + "a,b" + "}" * 30) * 2_000,
    ],
    ids=["lists in a row", "never closed", "nested", "nested lists in a row"],
)
def test_the_expansion_is_bounded_in_words_and_work(word: str) -> None:
    """A record is redacted on the event loop: whatever the word, the view is made of at
    most 256 words within a fixed budget of characters read and made (a guard against
    a pathological agent, not a speed target: a few milliseconds here)."""
    started = time.perf_counter()
    words = brace_words(word)
    assert time.perf_counter() - started < 1.0
    assert 1 <= len(words) <= 256


def test_within_the_bounds_every_word_is_made() -> None:
    assert len(brace_words("{a,b}" * 8)) == 256
    assert brace_words("{a,b}" * 8)[-1] == "b" * 8
    assert len(brace_words("{a,b}" * 12)) == 256  # the first 256 of 4,096


HIDDEN = [
    pytest.param(f"{{sshpass,-p,{PW}}} ssh host", id="sshpass -p"),
    pytest.param(f"{{curl,-u,bob:{PW}}} https://example.com/", id="curl -u"),
    pytest.param(f"curl {{-u,bob:{PW}}} https://example.com/", id="curl option list"),
    pytest.param(f"{{mysql,--password,{PW}}} db", id="--password word"),
    pytest.param(f"{{mysql,-p{PW}}} db", id="mysql -ppw"),
    pytest.param(f"docker {{login,-u,bob,-p,{PW}}} registry", id="docker login -p"),
    pytest.param(f"sh -c '{{sshpass,-p,{PW}}} ssh host'", id="in sh -c"),
    pytest.param(f"{{sshpass,-p}} {PW} ssh host", id="option in the list"),
    pytest.param(f"mysql --pass{{word={PW},}} db", id="option name split by a list"),
    pytest.param(f"sshpass {{-p,}} {PW} ssh host", id="with an empty item, which bash drops"),
    pytest.param(f"{{sshpass,-p}} {{{PW[:4]},}}{PW[4:]} ssh host", id="secret made of pieces"),
]


# Secrets shorter than the spread's minimum (MIN_SPREAD_CHARACTERS): their text alone
# would take ordinary words with it, so the word holding the list is replaced, or the
# secret where it is a whole word of its own.
SHORT = "Q7z"
SHORT_HIDDEN = [
    pytest.param(f"{{sshpass,-p,{SHORT}}} ssh host", id="inside the list"),
    pytest.param(f"{{mysql,-p{SHORT}}} db", id="glued inside the list"),
    pytest.param(f"{{sshpass,-p}} {SHORT} ssh host", id="a word after the list"),
    pytest.param(f"sshpass {{-p,}} '{SHORT}' ssh host", id="a quoted word after the list"),
    pytest.param(f"sh -c '{{sshpass,-p,{SHORT}}} ssh host'", id="in sh -c"),
]


@pytest.mark.parametrize("line", HIDDEN + SHORT_HIDDEN)
def test_a_secret_hidden_in_a_brace_list_is_redacted_in_request_and_reason(line: str) -> None:
    request = recorded_request({"action": "process.exec", "commandLine": line})
    record = {"request": request, "reason": f"no rule allows process.exec of {line}"}
    # The trail's fast screen must let the record through to the patterns.
    assert Redactor.may_hold_secret(canonical_bytes(record))
    redacted = Redactor(KEY).redact(record)
    assert PW not in json.dumps(redacted)
    assert SHORT not in json.dumps(redacted)
    assert {kind for kind, _ in TAG.findall(json.dumps(redacted))} == {"password"}
    assert TAG.search(redacted["reason"])
    assert Redactor(KEY).redact(redacted) == redacted  # idempotent, as every form is


def test_a_short_secret_is_spread_only_where_it_is_a_whole_word() -> None:
    """Its text inside another word is that word's own: ``Q7zx`` and ``aQ7z`` are kept,
    while the secret standing alone, quoted or not, gets the tag the plain form gives."""
    line = f"{{sshpass,-p}} {SHORT} ssh {SHORT}x a{SHORT} '{SHORT}'"
    request = recorded_request({"action": "process.exec", "commandLine": line})
    redacted = Redactor(KEY).redact({"request": request})
    written = redacted["request"]["commandLine"]
    assert f" {SHORT}x a{SHORT} " in written
    assert written.count("[REDACTED:password:") == 2
    plain = recorded_request({"action": "process.exec", "commandLine": f"sshpass -p {SHORT}"})
    assert TAG.findall(json.dumps(Redactor(KEY).redact({"request": plain})))[0] in (
        TAG.findall(written)
    )


def test_the_gate_writes_no_short_password_hidden_in_a_brace_list(tmp_path: Path) -> None:
    policy = "version: 1\ndefaultAction: deny\nrules: []\n"
    requests = [{"action": "process.exec", "commandLine": line.values[0]} for line in SHORT_HIDDEN]
    daemon, everything = checked_through_a_gate(tmp_path, policy, requests)
    assert SHORT.encode() not in everything
    decisions = [r for r in daemon.records() if r["type"] == "decision"]
    assert len(decisions) == len(SHORT_HIDDEN)
    assert all(TAG.search(r["request"]["commandLine"]) for r in decisions)


@pytest.mark.parametrize(
    "value",
    [
        {"context": {}, "argv": ["ls", "-la"], "labels": [{}, {"a": 1}]},
        {"commandLine": "echo {} done, ok"},
    ],
)
def test_objects_and_empty_braces_do_not_pass_the_screen(value: object) -> None:
    """The screen's brace trigger stays off the records with no brace list, so they
    keep the fast path: "{" opening a JSON object, or a lone "{}" in a string."""
    assert not Redactor.may_hold_secret(canonical_bytes({"request": value}))


def test_a_brace_list_without_a_secret_leaves_the_record_itself() -> None:
    request = recorded_request({"action": "process.exec", "commandLine": "cp x{,.bak} {a,b}/"})
    record = {"request": request, "reason": "no rule allows it"}
    assert Redactor(KEY).redact(record) is record


def test_the_gate_writes_no_password_hidden_in_a_brace_list(tmp_path: Path) -> None:
    """Through a real gate: the check is denied (a command spelled by a brace list is a
    dynamic command), and no byte under the audit directory holds the password, while
    the record still shows where it was."""
    policy = "version: 1\ndefaultAction: deny\nrules: []\n"
    line = f"{{sshpass,-p,{PW}}} ssh host"
    decision = decided_without_the_password(tmp_path, policy, line)
    assert decision["allowed"] is False
    assert decision["request"]["commandLine"].startswith("{sshpass,-p,[REDACTED:password:")
    assert TAG.search(decision["reason"])


def test_approvers_and_the_trail_never_see_a_password_hidden_in_a_brace_list(
    tmp_path: Path,
    daemon_factory: Any,
) -> None:
    """A policy that asks a human about ``sshpass`` run with a brace list: the reason
    the approval shows (the API, the trail's ``requested`` record) quotes the command,
    and must carry the tag where the password was, the one the trail gives it."""
    key_file, _ = generate_keypair(tmp_path / "keys", "alice")
    alice = Approver("alice", key_file)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "rules:\n"
        "  - {id: ask, action: process.exec, command: [sshpass, brace-expansion],"
        " decision: require_approval}\n"
        "approvals:\n"
        f"  approvers:\n    - {{name: alice, publicKey: '{alice.public_base64}'}}\n"
    )
    gate = daemon_factory(policy)
    line = f"sshpass {{-p,}} {PW} ssh host"
    answer = gate.check({"action": "process.exec", "commandLine": line}).json()
    assert answer["decision"] == "require_approval"
    shown = gate.get(f"/v1/approvals/{answer['approval']['id']}").json()
    assert PW not in json.dumps(shown)
    (requested,) = [r for r in gate.records() if r.get("event") == "requested"]
    assert PW not in json.dumps(requested)
    (tag,) = set(TAG.findall(requested["request"]["commandLine"]))
    assert "[REDACTED:{}:{}]".format(*tag) in shown["policyReason"]
    assert "[REDACTED:{}:{}]".format(*tag) in requested["policyReason"]
    gate.stop()
    audit = b"".join(p.read_bytes() for p in gate.audit_dir.rglob("*") if p.is_file())
    assert PW.encode() not in audit
