"""Ways around the checks added on 2026-12-05: repeated runs under a rate limit, login
shells and their startup files, zsh's ways to make the working directory unknown,
secrets spelled in pieces past redaction, and trailer fields past the head cap. Found in
the second pass of the red-team review of 2026-12-05.

* Rate limits: ``systemd-run -p Restart=always`` (and a path or socket unit) starts its
  command again and again, like a timer; it was counted as one run.
* Startup files: a login shell is also started by ``exec -l``/``exec -a -NAME``, zsh's
  ``-`` modifier, ``sudo -i``, ``su -``/``-l``, ``runuser -l`` and ``login``; zsh's rcs
  option is decided by its last setting (``zsh -f +f``, ``-f -o rcs``) and ``-o login``
  makes a login shell too. coding-agent kept ~/.bash_logout and ~/.zlogout writable.
* unknown-cwd: zsh's own spellings (``setopt chase_links``, ``set -o chaselinks``,
  ``zsh -w``, ``setopt cdable_vars``, ``disable cd`` ...) were not seen.
* Redaction: a shell word made of several pieces (``$'pw'``, ``''pw``, ``"a"'pw'``)
  kept all but its first piece; a line continuation before the option; ``SSHPASS=``;
  docker's global options with values before ``login`` and htpasswd ``-bC 10`` in a list.
* The head cap: trailer fields after a chunked body were not counted.

The premise of each shell attack is checked against the real bash where one is
installed, so the tests show what the shell does, not only what the analysis says.
"""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.redact import Redactor
from sidecar.engine import evaluate_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from tests.adversarial.command_lines import analyse, construct_names
from tests.adversarial.real_bash import needs_bash, run_bash
from tests.daemon import Daemon, checked_through_a_gate

URL = "https://example.com/x"


# -- rate limits: systemd-run restarting its command ---------------------------------------

RATE_POLICY = """\
version: 1
rules:
  - {id: fetches, action: process.exec, command: curl, decision: allow, rateLimit: {count: 3, per: 1h}}
  - {id: tools, action: process.exec, command: systemd-run, decision: allow}
"""


@pytest.fixture(scope="module")
def rate_policy() -> CompiledPolicy:
    return load_policy_bytes(RATE_POLICY.encode(), "policy.yaml")


@pytest.mark.parametrize(
    "line",
    [
        f"systemd-run -p Restart=always curl {URL}",
        f"systemd-run -pRestart=on-success curl {URL}",
        f"systemd-run --property Restart=on-failure curl {URL}",
        f"systemd-run --property=Restart=always --user curl {URL}",
        f"systemd-run --path-property=PathChanged=/tmp curl {URL}",
        f"systemd-run --socket-property=ListenStream=8080 curl {URL}",
    ],
)
def test_systemd_run_restarting_its_command_is_repeated(
    line: str, rate_policy: CompiledPolicy
) -> None:
    verdict = evaluate_request(rate_policy, {"action": "process.exec", "commandLine": line})
    assert (verdict.decision, verdict.rule) == ("deny", "fetches"), verdict.reason
    assert "may run an unknown number of times (run repeatedly by systemd-run)" in verdict.reason


@pytest.mark.parametrize(
    "line",
    [
        f"systemd-run -p Restart=no curl {URL}",
        f"systemd-run -p RuntimeMaxSec=10 curl {URL}",
        f"systemd-run --user curl {URL}",
    ],
)
def test_systemd_run_without_a_restart_runs_once(line: str, rate_policy: CompiledPolicy) -> None:
    verdict = evaluate_request(rate_policy, {"action": "process.exec", "commandLine": line})
    assert verdict.decision == "allow", verdict.reason


# -- startup files: login shells started other ways ----------------------------------------


@needs_bash
def test_exec_l_really_starts_a_login_shell(tmp_path: Path) -> None:
    (tmp_path / ".bash_profile").write_text("echo PLANTED-PROFILE\n")
    assert "PLANTED-PROFILE" in run_bash("exec -l bash -c 'echo ran'", tmp_path)
    assert "PLANTED-PROFILE" in run_bash("exec -a -x bash -c 'echo ran'", tmp_path)
    assert "PLANTED-PROFILE" not in run_bash("exec bash -c 'echo ran'", tmp_path)


@needs_bash
def test_a_login_shell_runs_bash_logout_on_exit(tmp_path: Path) -> None:
    (tmp_path / ".bash_logout").write_text("echo PLANTED-LOGOUT\n")
    assert "PLANTED-LOGOUT" in run_bash("echo ran; exit", tmp_path, "--login", "--noprofile")


@needs_bash
@pytest.mark.parametrize("script", ["echo ran; exit", 'echo ran; ex""it', "echo ran; logout"])
def test_a_login_shell_without_profiles_that_may_exit_reports_startup_files(
    tmp_path: Path, script: str
) -> None:
    # Found in the wrappers fix of 2026-12-06: --noprofile keeps the profiles out, not
    # ~/.bash_logout, which bash runs when a login shell runs the exit builtin.
    (tmp_path / ".bash_logout").write_text("echo PLANTED-LOGOUT\n")
    assert "PLANTED-LOGOUT" in run_bash(script, tmp_path, "--login", "--noprofile")
    line = f"bash --login --noprofile -c {shlex.quote(script)}"
    assert "startup-files" in construct_names(line, cwd="/tmp")
    # A script file may exit too: the gate cannot see it.
    assert "startup-files" in construct_names("bash --login --noprofile script.sh", cwd="/tmp")


@pytest.mark.parametrize(
    "line",
    [
        "exec -l bash -c 'git status'",
        "exec -cl bash -c 'git status'",
        "exec -a -bash bash -c 'git status'",
        "exec -a-sh sh -c 'git status'",
        "- bash -c 'git status'",  # zsh: argv[0] "-bash"
        "sudo -i git status",
        "sudo -iu root git status",
        "sudo --login git status",
        "su - -c 'git status'",
        "su -l root -c 'git status'",
        "su --login -c 'git status'",
        "su -c 'git status' -",
        "runuser -l root -c 'git status'",
        "login -f root",
        "zsh -f +f -c 'git status'",
        "zsh -f -o rcs -c 'git status'",
        "zsh -o norcs -o rcs -c 'git status'",
        "zsh --no-rcs --rcs -c 'git status'",
        "zsh -f -o login -c 'git status'",
        "bash -c \"exec -l bash -c 'git status'\"",
    ],
)
def test_every_login_shell_reports_startup_files(line: str) -> None:
    assert "startup-files" in construct_names(line, cwd="/tmp")


@pytest.mark.parametrize(
    "line",
    [
        "exec bash -c 'git status'",
        "exec -a mybash bash -c 'git status'",
        "sudo git status",
        "sudo -s git status",
        "su -c 'git status'",
        "zsh -f -c 'git status'",
        "zsh +f -f -c 'git status'",
        "zsh -o rcs -f -c 'git status'",
        "zsh --rcs --no-rcs -c 'git status'",
        "zsh -o NO_RCS -c 'git status'",
        "bash --login --noprofile -c 'git status'",
    ],
)
def test_shells_that_read_no_startup_files_do_not_report_them(line: str) -> None:
    assert "startup-files" not in construct_names(line, cwd="/tmp")


@pytest.mark.parametrize("name", [".bash_logout", ".zlogout", "sub/.bash_logout"])
def test_coding_agent_denies_planting_a_logout_file(
    name: str, coding_agent: CompiledPolicy
) -> None:
    verdict = evaluate_request(coding_agent, {"action": "file.write", "path": f"/workspace/{name}"})
    assert (verdict.decision, verdict.rule) == ("deny", "no-shell-startup-files")


# -- unknown-cwd: zsh's spellings -----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "setopt chase_links; cd x/..; ls",
        "setopt CHASE_LINKS; cd x/..; ls",
        "setopt chasedots; cd x/..; ls",
        "setopt cdable_vars; cd x; ls",
        "setopt -w; cd x/..; ls",
        "setopt -o chase_links; cd x/..; ls",
        "unsetopt no_chase_links; cd x/..; ls",
        "set -o chaselinks; cd x/..; ls",
        "set -w; cd x/..; ls",
        "disable cd; cd /tmp/a; ls",
        "zsh -w -c 'cd x/..; ls'",
        "zsh -T -c 'cd x; ls'",
        "zsh -o chase_links -c 'cd x/..; ls'",
        "zsh --chase-links -c 'cd x/..; ls'",
        "zsh -c 'setopt chase_links; cd x/..; ls'",
    ],
)
def test_zsh_options_that_make_cd_unknowable_are_unknown_cwd(line: str) -> None:
    analysis = analyse(line, cwd="/tmp")
    assert "unknown-cwd" in {construct.name for construct in analysis.constructs}
    ls = next(command for command in analysis.commands if command.argv[0] == "ls")
    assert "?" in ls.cwds


@pytest.mark.parametrize(
    "line",
    [
        "setopt extended_glob; cd x; ls",
        "unsetopt chase_links; cd x; ls",
        "setopt no_chase_links; cd x; ls",
        "set -e; cd x; ls",
        "disable echo; cd x; ls",
    ],
)
def test_other_zsh_options_keep_the_directory_known(line: str) -> None:
    ls = next(command for command in analyse(line, cwd="/tmp").commands if command.argv[0] == "ls")
    assert "?" not in ls.cwds and "/tmp/x" in ls.cwds


# -- the head cap: trailer fields after a chunked body --------------------------------------

HEAD_POLICY = """\
version: 1
rules:
  - action: file.read
    path: {glob: "/app/data/**"}
    decision: allow
"""
CHECK = b'{"action": "file.read", "path": "/app/data/x"}'


def _rss_kib(daemon: Daemon) -> int:
    assert daemon.process is not None
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


def _send(daemon: Daemon, head: bytes, then: bytes, total: int) -> bytes:
    """Send ``head``, then ``then`` until about ``total`` bytes; what the server said."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sent = 0
        try:
            sock.sendall(head)
            while sent < total:
                sock.sendall(then)
                sent += len(then)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what the test expects
        chunks = []
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def test_endless_trailer_fields_get_431_and_a_closed_connection(
    write_policy, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(write_policy(HEAD_POLICY))
    before = _rss_kib(gate)
    head = (
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
    )
    trailers = (b"X-Trailer: " + b"a" * 1000 + b"\r\n") * 64
    answer = _send(gate, head, trailers, 50 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    # 50 MiB of trailer fields were offered (they grew the gate by 70 MiB before).
    assert _rss_kib(gate) - before < 8 * 1024
    assert gate.check(CHECK).json()["allowed"] is True


def test_a_chunked_body_with_a_trailer_is_served(write_policy, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(write_policy(HEAD_POLICY))
    body = CHECK + b" " * 40_000  # most of the 64 KiB a body may hold, in 1 KiB chunks
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 1024]), body[i : i + 1024])
        for i in range(0, len(body), 1024)
    )
    request = (
        b"POST /check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    answer = _send(gate, request, b"", 0)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b'"allowed":true' in answer.replace(b" ", b"")


# -- redaction: shell words in pieces, line continuations, other spellings -----------------

KEY = b"k" * 32
PW = "hunter2xyz"

# (command line, text that must stay): the secret is PW, in some shell spelling.
LEAKING_LINES = [
    (f"sshpass -p $'{PW}' ssh -p 2222 host", "ssh -p 2222 host"),
    (f"sshpass -p ''{PW} ssh host", "ssh host"),
    (f'sshpass -p""{PW} ssh host', "ssh host"),
    (f'sshpass -p h"{PW}" ssh host', "ssh host"),
    (f"sshpass -p \"a\"'{PW}' ssh host", "ssh host"),
    (f"sshpass \\\n -p {PW} ssh host", "ssh host"),
    (f"sshpass -vp {PW} ssh host", "ssh host"),
    (f"'sshpass' -p {PW} ssh host", "ssh host"),
    (f"SSHPASS={PW} sshpass -e ssh host", "sshpass -e ssh host"),
    (f"redis-cli -a $'{PW}' ping", "ping"),
    (f"redis-cli \\\n -a {PW} ping", "ping"),
    (f"docker login -p ''{PW} registry.io", "registry.io"),
    (f"docker login --password $'{PW}' registry.io", "registry.io"),
    (f"docker login --password=''{PW} registry.io", "registry.io"),
    (f"docker login -u bot --password \\\n{PW} registry.io", "registry.io"),
    (f"htpasswd -b f user ''{PW}", "htpasswd -b f user"),
    (f"htpasswd -bC 10 f user {PW}", "htpasswd -bC 10 f user"),
    (f"keytool -storepasswd -new $'{PW}'", "keytool -storepasswd -new"),
    (f"keytool -list -storepass ''{PW} -v", "-v"),
    (f"mysql --password ''{PW} db", "db"),
    (f"curl -dcode={PW} https://idp/token", "https://idp/token"),
]


@pytest.mark.parametrize(("line", "kept"), LEAKING_LINES)
def test_a_secret_spelled_in_pieces_is_redacted(line: str, kept: str) -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"request": {"commandLine": line}})["request"]["commandLine"]
    assert PW not in out and PW[2:] not in out, out
    assert kept in out and "[REDACTED:" in out, out
    assert redactor.redact_text(line) == out
    assert redactor.redact_text(out) == out  # idempotent


# (argv, index of the item holding PW, text kept before the tag)
LEAKING_ARGV = [
    (["sshpass", "-vp", PW, "ssh", "host"], 2, ""),
    (["sshpass", f"-vp{PW}", "ssh", "host"], 1, "-vp"),
    (["docker", "--config", "/x", "--debug", "login", "-p", PW], 6, ""),
    (["docker", "--log-level", "info", "--tls", "login", "-p", PW], 6, ""),
    (["htpasswd", "-bC", "10", "f", "user", PW], 5, ""),
    (["curl", "-d", f"code={PW}", "https://idp/token"], 2, "code="),
]


@pytest.mark.parametrize(("argv", "index", "kept"), LEAKING_ARGV)
def test_a_secret_in_an_argv_list_is_redacted(argv: list[str], index: int, kept: str) -> None:
    redactor = Redactor(KEY)
    out = redactor.redact({"request": {"argv": argv}})["request"]["argv"]
    assert out[index] == kept + redactor.tag("password" if kept != "code=" else "secret", PW)
    assert out[:index] + out[index + 1 :] == argv[:index] + argv[index + 1 :]
    assert redactor.redact({"request": {"argv": out}})["request"]["argv"] == out


@pytest.mark.parametrize(
    "body",
    [
        {"argv": ["--user", "sshpass -p pw1 ssh -p 2222 host"]},
        {"argv": ["-u", "x Bearer abcdefghijklmnop y"]},
    ],
)
def test_a_tag_placed_after_curls_user_option_is_not_redacted_again(body: dict[str, Any]) -> None:
    redactor = Redactor(KEY)
    once = redactor.redact(body)
    assert redactor.redact(once) == once


@pytest.mark.parametrize(
    "line",
    [
        "ssh -p 2222 host",
        "docker run -p 8080:80 image",
        "docker --log-level info run -p 8080:80 image",
        "ls -a dir",
        "echo \"a\"'b' $'c'",
        "curl -d name=value https://x",
        "date -d tomorrow",
    ],
)
def test_ordinary_command_lines_are_kept(line: str) -> None:
    assert Redactor(KEY).redact({"commandLine": line}) == {"commandLine": line}


@pytest.mark.parametrize(
    "argv",
    [
        ["docker", "--log-level", "info", "run", "-p", "8080:80", "image"],
        ["curl", "-d", "name=value", "https://x"],
        ["htpasswd", "-C", "10", "-B", "f", "user"],
    ],
)
def test_ordinary_argv_lists_are_kept(argv: list[str]) -> None:
    assert Redactor(KEY).redact({"argv": argv}) == {"argv": argv}


def test_the_gate_writes_secrets_in_pieces_redacted_to_its_trail(tmp_path: Path) -> None:
    requests = [{"action": "process.exec", "commandLine": line} for line, _ in LEAKING_LINES]
    requests += [{"action": "process.exec", "argv": argv} for argv, _, _ in LEAKING_ARGV]
    _, everything = checked_through_a_gate(tmp_path, HEAD_POLICY, requests)
    assert everything and PW[2:].encode() not in everything


# -- rate limits: the same script text run twice --------------------------------------------

SPEND_POLICY = """\
version: 1
rules:
  - {id: fetches, action: process.exec, command: curl, decision: allow, rateLimit: {count: 3, per: 1h}}
  - {id: tools, action: process.exec, command: [sh, bash], decision: allow}
"""


@pytest.mark.parametrize(
    "line",
    [
        f"sh -c 'curl {URL}'; sh -c 'curl {URL}'",
        f"bash -c 'curl {URL}' & bash -c 'curl {URL}'",
    ],
)
def test_the_same_script_run_twice_spends_two_tokens(
    line: str, write_policy, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(write_policy(SPEND_POLICY))

    def check(command_line: str) -> dict[str, Any]:
        body = {"action": "process.exec", "commandLine": command_line, "cwd": "/tmp"}
        response = gate.check(body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    first = check(line)
    assert first["allowed"] is True, first  # two of the three tokens
    third = check(f"curl {URL}")
    assert third["allowed"] is True, third  # the third
    spent = check(f"curl {URL}")
    assert (spent["allowed"], spent["rule"]) == (False, "fetches"), spent
    # Three runs of the same script need three tokens, more than are left in a new bucket.
    fresh = daemon_factory(write_policy(SPEND_POLICY))
    thrice = "; ".join([f"sh -c 'curl {URL}'"] * 4)
    answer = fresh.check({"action": "process.exec", "commandLine": thrice, "cwd": "/tmp"})
    assert answer.json()["allowed"] is False


# -- unknown-cwd: the option or builtin named by an expansion -------------------------------

CDABLE_BY_VARIABLE = "o=cdable_vars; shopt -s $o; elsewhere={target}; cd elsewhere && pwd"


@needs_bash
def test_cdable_vars_turned_on_through_a_variable_really_moves_cd(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    out = run_bash(CDABLE_BY_VARIABLE.format(target=target), tmp_path)
    # cd prints where it went, then pwd: not tmp_path/elsewhere, which does not exist.
    assert out.splitlines()[-1] == str(target)


@pytest.mark.parametrize(
    "line",
    [
        CDABLE_BY_VARIABLE.format(target="/etc"),
        "x=cd; enable -n $x; cd /tmp/a && ls",
        'enable -n "$x"; cd /tmp/a && ls',
        "enable -n c*; cd /tmp/a && ls",
        "enable -n {cd,x}; cd /tmp/a && ls",
        "shopt -s cdable_v*; cd x && ls",
        "set -$f; cd x/.. && ls",
        "set -o $n; cd x/.. && ls",
        "setopt $n; cd x/.. && ls",
        "disable $n; cd /tmp/a && ls",
    ],
)
def test_an_option_named_by_an_expansion_makes_cd_unknowable(line: str) -> None:
    # The construct is reported at once: a later absolute cd does not make it known.
    assert "unknown-cwd" in construct_names(line, cwd="/tmp")


@pytest.mark.parametrize(
    "line",
    [
        "set -- $x; cd /tmp/a && ls",
        'set -- "$@"; cd /tmp/a && ls',
        "shopt -s extglob; cd /tmp/a && ls",
    ],
)
def test_positional_parameters_and_other_options_keep_cd_known(line: str) -> None:
    assert analyse(line, cwd="/tmp").commands[-1].cwds == ("/tmp/a",)


# -- redaction: a password with a space, as the gate quotes it in a reason ------------------

SPACED = "hun ter2x"


@pytest.mark.parametrize(
    "text",
    [
        f"no rule allows process.exec of mysql '--password={SPACED}'",
        f'mysql "--password={SPACED}" db',
        f"env 'PGPASSWORD={SPACED}' psql",
        f"tool '--api-token={SPACED}'",
        f"curl -u 'bob:{SPACED}' https://x",
        f'curl -u bob:"{SPACED}" https://x',
        f"curl --user='bob:{SPACED}' https://x",
    ],
)
def test_a_quoted_password_with_a_space_is_redacted_whole(text: str) -> None:
    redactor = Redactor(KEY)
    out = redactor.redact_text(text)
    assert "ter2x" not in out and "[REDACTED:" in out, out
    assert redactor.redact_text(out) == out


def test_the_gates_reason_for_a_password_with_a_space_is_redacted(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(HEAD_POLICY)
    audit = tmp_path / "audit"
    daemon = Daemon(policy, audit).start()
    try:
        for body in (
            {"action": "process.exec", "commandLine": f'mysql --password="{SPACED}" db'},
            {"action": "process.exec", "argv": ["mysql", f"--password={SPACED}", "db"]},
            {"action": "process.exec", "commandLine": f"curl -u 'bob:{SPACED}' https://x"},
        ):
            answer = daemon.check(body)
            assert answer.status_code == 200, answer.text
    finally:
        daemon.stop()
    everything = b"".join(path.read_bytes() for path in audit.rglob("*") if path.is_file())
    assert everything and b"ter2x" not in everything
