"""The ``tollgate`` command line, run as a real subprocess: exit codes are the API."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.daemon import answering_peer, free_port
from tests.test_policy_loader import DESIGN_NOTES


def tollgate(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def design(tmp_path: Path) -> Path:
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN_NOTES)
    return path


def test_check_offline_exit_codes(design: Path) -> None:
    allow = tollgate(
        "check", "--policy", str(design), '{"action": "file.read", "path": "/app/data/x"}'
    )
    assert allow.returncode == 0 and json.loads(allow.stdout)["decision"] == "allow"
    deny = tollgate(
        "check", "--policy", str(design), '{"action": "file.read", "path": "/etc/shadow"}'
    )
    assert (
        deny.returncode == 1
        and json.loads(deny.stdout)["reason"] == "no rule allows file.read of /etc/shadow"
    )
    bad = tollgate("check", "--policy", str(design), '{"action": "file.read"}')
    assert bad.returncode == 2 and "invalid request" in bad.stderr
    notjson = tollgate("check", "--policy", str(design), "{")
    assert notjson.returncode == 2


def test_check_reads_stdin(design: Path) -> None:
    result = tollgate(
        "check",
        "--policy",
        str(design),
        "-",
        stdin='{"action": "file.write", "path": "/app/output/a"}',
    )
    assert result.returncode == 0


def test_check_with_a_policy_leaves_the_callers_context_out_as_the_daemon_does(
    design: Path,
) -> None:
    # rt24 second review: the daemon's answer no longer echoes context; check --policy did.
    result = tollgate(
        "check", "--policy", str(design),
        '{"action": "file.read", "path": "/etc/passwd", "context": {"allowed": true}}',
    )  # fmt: skip
    assert result.returncode == 1
    assert '"allowed": true' not in result.stdout and '"allowed":true' not in result.stdout
    assert json.loads(result.stdout)["request"] == {"path": "/etc/passwd"}


def test_check_explain_lists_every_rule_considered(design: Path) -> None:
    result = tollgate(
        "check",
        "--policy",
        str(design),
        "--explain",
        '{"action": "network.request", "url": "https://evil.example/"}',
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["decision"] == "deny"  # the trace is on stderr
    assert 'rules[3] [allow]: no match: host "evil.example" does not match in' in result.stderr
    assert (
        'rules[4] [allow]: no match: host "evil.example" does not match endsWith ".internal.svc.cluster.local"'
        in result.stderr
    )
    assert "rules[0]" not in result.stderr  # file rules are not considered for network requests
    assert "=> deny by defaultAction" in result.stderr


def test_check_explain_shows_each_form_of_a_url_path(tmp_path: Path) -> None:
    policy = tmp_path / "admin.yaml"
    policy.write_text(
        "version: 1\ndefaultAction: allow\nrules:\n"
        '  - {id: admin, action: network.request, path: {glob: "/admin/**"}, decision: deny}\n'
    )
    result = tollgate(
        "check",
        "--policy",
        str(policy),
        "--explain",
        '{"action": "network.request", "url": "http://a.com/admin%2Fx;v=1"}',
    )
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    trace = result.stderr.strip()
    assert answer["request"] == {
        "url": "http://a.com/admin%2Fx;v=1",
        "host": "a.com",
        "port": 80,
        "scheme": "http",
        "path": "/admin%2Fx;v=1",
        "decodedPath": "/admin/x;v=1",
        "strippedPath": "/admin/x",
    }
    assert trace.splitlines() == [
        "network.request (network.request):",
        '  admin [deny]: no match: path "/admin%2Fx;v=1" does not match glob "/admin/**"',
        "decoded path /admin/x;v=1 (network.request):",
        "  admin [deny]: match",
        "path without ;parameters /admin/x (network.request):",
        "  admin [deny]: match",
        "=> deny by admin",
    ]


def test_check_with_an_invalid_policy_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - {action: file.read, decision: allow, host: x}\n")
    result = tollgate("check", "--policy", str(bad), '{"action": "file.read", "path": "/x"}')
    assert (
        result.returncode == 2
        and f"{bad}: rules[0]: host: action file.read has no field 'host'" in result.stderr
    )


def test_check_url_against_an_unreachable_gate_is_a_deny() -> None:
    result = tollgate(
        "check",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        '{"action": "file.read", "path": "/x"}',
        "--timeout",
        "2",
    )
    assert result.returncode == 1 and "treating as deny" in result.stderr


def test_check_url_against_a_gate_answering_a_byte_at_a_time_is_a_deny_at_the_timeout() -> None:
    body = b'{"allowed": true, "decision": "allow"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    started = time.monotonic()
    with answering_peer(answer, byte_every=0.1) as url:
        result = tollgate(
            "check", "--url", url, '{"action": "file.read", "path": "/x"}', "--timeout", "1"
        )
    assert result.returncode == 1 and result.stdout == ""
    assert "did not answer within 1 s; treating as deny" in result.stderr
    assert time.monotonic() - started < 5, "the timeout bounds the whole check"


def test_check_url_against_something_that_is_not_http_is_a_deny() -> None:
    with answering_peer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as url:
        result = tollgate("check", "--url", url, '{"action": "file.read", "path": "/x"}')
    assert result.returncode == 1 and result.stdout == ""
    assert "answer unreadable" in result.stderr and "treating as deny" in result.stderr
    assert "Traceback" not in result.stderr


ALLOWED = b'{"allowed": true, "decision": "allow"}'


# Found in review (2026-12-06): any 2xx with "allowed": true, and an answer delimited
# only by the connection's end, exited 0 (allow). CONTRACT 2.1: anything but a 200 with
# allowed: true is a deny, and a cut answer cannot be told from a whole one without a length.
@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s", "answered HTTP 202, not 200"),
        (b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s", "answered HTTP 201, not 200"),
        (b"HTTP/1.1 299 Whatever\r\nContent-Length: %d\r\n\r\n%s", "answered HTTP 299, not 200"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-Length: %d\r\n\r\n%s", "no Content-Length"),
        # rt24 clients review: a coded body is not the JSON it may read as.
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s",
            "the answer is gzip-encoded",
        ),
    ],
)
def test_check_url_denies_an_allow_that_is_not_a_200_with_a_length(
    answer: bytes, problem: str
) -> None:
    with answering_peer(answer % (len(ALLOWED), ALLOWED)) as url:
        result = tollgate("check", "--url", url, '{"action": "file.read", "path": "/x"}')
    assert result.returncode == 1 and result.stdout == ""
    assert problem in result.stderr and "treating as deny" in result.stderr


def test_check_url_against_a_running_gate(design: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    gate = daemon_factory(design)
    allow = tollgate("check", "--url", gate.url, '{"action": "file.read", "path": "/app/data/x"}')
    assert allow.returncode == 0 and json.loads(allow.stdout)["allowed"] is True
    deny = tollgate("check", "--url", gate.url, '{"action": "file.read", "path": "/etc/passwd"}')
    assert deny.returncode == 1
    bad = tollgate("check", "--url", gate.url, '{"action": "file.read"}')
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "invalid_request"


def test_check_of_a_request_that_is_not_utf8_is_an_invalid_request(  # type: ignore[no-untyped-def]
    design: Path, daemon_factory
) -> None:
    # Bytes that are not UTF-8, in the argument or on stdin, crashed encoding the text
    # back (UnicodeEncodeError, a traceback, exit 1: a deny's code) (rt25 api review, 3).
    gate = daemon_factory(design)
    request = b'{"action": "file.read", "path": "/app/data/\xff"}'
    for where in (["--policy", str(design)], ["--url", gate.url]):
        for given, stdin in (([os.fsdecode(request)], None), (["-"], request)):
            result = subprocess.run(
                [sys.executable, "-m", "sidecar.cli", "check", *where, *given],
                input=stdin, capture_output=True, timeout=60,
            )  # fmt: skip
            assert result.returncode == 2, (where, given, result.stderr)
            assert b"Traceback" not in result.stderr
            if where[0] == "--policy":
                assert result.stderr.decode().splitlines() == [
                    "tollgate check: invalid request: body is not UTF-8: invalid start byte"
                ]
            else:
                error = json.loads(result.stdout)["error"]
                assert error["code"] == "invalid_request", error
                assert error["message"].startswith("body is not UTF-8")


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-1", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error_before_any_call(
    design: Path,
    daemon_factory,  # type: ignore[no-untyped-def]
    timeout: str,
) -> None:
    # NaN and infinity crashed with a traceback after the check was sent (and recorded);
    # 0 and -1 sent it and gave up at once.
    gate = daemon_factory(design)
    before = len(gate.records())
    request = '{"action": "file.read", "path": "/app/data/x"}'
    for args in (
        ["check", "--url", gate.url, "--timeout", timeout, request],
        ["approvals", "list", "--url", gate.url, "--timeout", timeout],
    ):
        result = tollgate(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "is not a number of seconds" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(gate.records()) == before


def test_a_timeout_too_long_to_wait_for_says_so() -> None:
    # It was called "not a number of seconds above 0", which 1e10 is.
    for args in (["check", "--policy", "p.yaml"], ["approvals", "list"]):
        result = tollgate(*args, "--timeout", "1e10", *(["{}"] if args[0] == "check" else []))
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.rstrip().endswith(
            "argument --timeout: 1e10 is more seconds than a wait can take "
            f"(at most {threading.TIMEOUT_MAX:.0f})"
        ), result.stderr


def test_check_url_says_explain_needs_a_policy_file(design: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # A running gate's answer has no trace: --explain must not be dropped in silence.
    gate = daemon_factory(design)
    result = tollgate(
        "check", "--url", gate.url, "--explain", '{"action": "file.read", "path": "/etc/passwd"}'
    )
    assert result.returncode == 1 and json.loads(result.stdout)["decision"] == "deny"
    assert "--explain lists the rules considered only with --policy FILE" in result.stderr


def test_policy_validate(design: Path, tmp_path: Path) -> None:
    ok = tollgate("policy", "validate", str(design))
    assert ok.returncode == 0 and "valid, 5 rules, sha256:" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - {id: a, action: file.read, decision: allow, path: {glob: '[x'}}\n"
    )
    result = tollgate("policy", "validate", str(design), str(bad))
    assert result.returncode == 1
    assert f"{bad}: rules[0] (id 'a'): path: glob" in result.stderr and "valid" in result.stdout
    risky = tmp_path / "risky.yaml"
    risky.write_text("version: 1\ndefaultAction: allow\n")
    warned = tollgate("policy", "validate", str(risky))
    assert warned.returncode == 0 and "warning: defaultAction: allow" in warned.stderr


def test_policy_validate_warns_of_an_allow_on_any_one_argument(tmp_path: Path) -> None:
    """args [status] reads like an argv but holds when any argument is status."""
    policy = tmp_path / "git.yaml"
    policy.write_text(
        "version: 1\nrules:\n"
        "  - {id: status, action: process.exec, command: git, args: [status], decision: allow}\n"
        "  - {id: log, action: process.exec, command: git, args: {prefix: [log]}, decision: allow}\n"
        "  - {id: force, action: process.exec, command: git, args: --force, decision: deny}\n"
    )
    result = tollgate("policy", "validate", str(policy))
    assert result.returncode == 0 and "valid, 3 rules" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert "rules[0] (id 'status'): args: holds when any one argument matches" in warnings[0]
    checked = tollgate(
        "check", "--policy", str(policy), '{"action":"process.exec","argv":["git","push","status"]}'
    )
    assert checked.returncode == 0  # what the warning is about: documented, not changed


def test_policy_validate_names_test_files_for_what_they_are(tmp_path: Path) -> None:
    # `tollgate policy validate policies/*.yaml` also names the *.test.yaml files there.
    policies = Path(__file__).resolve().parent.parent / "policies"
    every_yaml = sorted(str(p) for p in policies.glob("*.yaml"))
    assert any(name.endswith(".test.yaml") for name in every_yaml)
    result = tollgate("policy", "validate", *every_yaml)
    assert result.returncode == 0, result.stderr
    assert "coding-agent.test.yaml: a policy test file," in result.stdout
    assert "coding-agent.yaml: valid," in result.stdout
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("policy: p.yaml\ncases:\n  - {name: x, request: {}, expect: maybe}\n")
    failed = tollgate("policy", "validate", str(broken))
    assert failed.returncode == 1 and f"{broken}: cases[0].expect" in failed.stderr


def test_serve_requires_policy_and_audit_dir() -> None:
    result = tollgate("serve")
    assert result.returncode == 2 and "--policy" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert tollgate("nonsense").returncode == 2
    assert (
        tollgate("check", '{"action": "file.read"}').returncode == 2
    )  # neither --policy nor --url


def test_a_bad_serve_number_in_the_environment_is_a_usage_error_of_serve_only(
    design: Path, tmp_path: Path
) -> None:
    # TOLLGATE_PORT is serve's: another command must not crash on it, and `audit verify`
    # must not exit 1, which says "tampered".
    env = {**os.environ, "TOLLGATE_PORT": "abc", "TOLLGATE_SEGMENT_BYTES": "1MiB"}
    allow = tollgate(
        "check", "--policy", str(design), '{"action": "file.read", "path": "/app/data/x"}', env=env
    )
    assert allow.returncode == 0, allow.stderr
    audit = tmp_path / "audit"
    serve = tollgate("serve", "--policy", str(design), "--audit-dir", str(audit), env=env)
    assert serve.returncode == 2 and "--port: 'abc' is not a port number" in serve.stderr
    assert "Traceback" not in serve.stderr and not audit.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--port", "70000", "--port: 70000 is outside 1-65535"),
        ("--port", "0", "--port: 0 is outside 1-65535"),
        ("--segment-bytes", "0", "--segment-bytes: 0 is not a positive number of bytes"),
    ],
)
def test_serve_refuses_a_number_out_of_range_before_opening_the_trail(
    design: Path, tmp_path: Path, flag: str, value: str, message: str
) -> None:
    audit = tmp_path / "audit"
    result = tollgate("serve", "--policy", str(design), "--audit-dir", str(audit), flag, value)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not audit.exists()


def test_python_dash_m_sidecar_is_the_command_line(design: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "check", "--policy", str(design),
         '{"action": "file.read", "path": "/etc/shadow"}'],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and json.loads(result.stdout)["decision"] == "deny"


def test_check_output_shows_the_agents_control_characters_escaped(design: Path) -> None:
    # The answer quotes the request; a terminal must not act on what the agent wrote.
    request = json.dumps({"action": "file.read", "path": "/etc/\x1b[2Kx\u202e", "cwd": "/"})
    result = tollgate("check", "--policy", str(design), request, "--explain")
    assert result.returncode == 1
    for output in (result.stdout, result.stderr):  # the answer, and the trace
        assert "\x1b" not in output and "\u202e" not in output
    assert json.loads(result.stdout)["request"]["path"].endswith("\x1b[2Kx\u202e")


def test_every_serve_flag_names_its_environment_variable_in_its_help() -> None:
    # CONTRACT 3: every flag of serve also reads TOLLGATE_<FLAG>; --help must say which.
    from sidecar.cli import build_parser

    parser = build_parser()
    serve = next(
        action.choices["serve"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    flags = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert len(flags) == 12
    for action in flags:
        variable = "$TOLLGATE_" + action.dest.upper()
        assert action.help is not None and variable in action.help, action.option_strings


def test_policy_validate_says_a_test_yml_file_is_misnamed(tmp_path: Path) -> None:
    misnamed = tmp_path / "policy.test.yml"
    misnamed.write_text("policy: policy.yaml\ncases: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "policy", "validate", str(misnamed)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == f"{misnamed}: a test file must end in .test.yaml\n"
