"""Red team, end to end: bypass families against whole policies (CONTRACT 1 and 2.2).

The per-parser suites (``test_hosts_urls``, ``test_commands``, ``test_k8s``) check
that each normaliser produces the right form. This suite checks what a user sees: a
decision. Each case is a /check body evaluated with ``sidecar.engine.evaluate_request``
against a policy loaded by the real loader, and two kinds of gate are attacked:

* ``ALLOW_LIST`` -- deny by default, a coding agent's allow rules: nothing outside them
  may come out allowed;
* ``DENY_LIST`` -- allow by default, deny rules for the dangerous things: every
  disguise of a denied thing must be denied, and where the gate can see it, denied
  *by the deny rule* (which proves the disguise was normalised, not merely refused).

The last tests run a sample of every family through the real daemon over HTTP and read
the audit trail, so the normalised forms are also what gets recorded.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.commands import CONSTRUCTS
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.conftest import load_policy_text

PRIVATE = ["127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fd00::/8"]

ALLOW_LIST = """
version: 1
defaultAction: deny
rules:
  - {id: read-workspace, action: file.read, path: {glob: "/workspace/**"}, decision: allow}
  - {id: write-workspace, action: file.write, path: {glob: "/workspace/**"}, decision: allow}
  - {id: tools, action: process.exec, command: [git, ls, cat, echo, grep, make, "true"], decision: allow}
  - {id: no-force-push, action: process.exec, command: git, args: {in: [--force, -f]}, decision: deny}
  - {id: apis, action: network.request, host: {in: [api.openai.com, github.com]}, scheme: https, decision: allow}
  - {id: cluster, action: network.request, host: {endsWith: .svc.cluster.local}, decision: allow}
  - {id: no-apiserver, action: network.request, host: [kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.cluster.local], decision: deny}
  - {id: no-private, action: network.request, host: {cidr: PRIVATE}, decision: deny}
  - {id: k8s-read, action: k8s.request, verb: [get, list, watch], namespace: apps, decision: allow}
  - {id: no-secrets, action: k8s.request, resource: secrets, decision: deny}
""".replace("PRIVATE", json.dumps(PRIVATE))

DENY_LIST = """
version: 1
defaultAction: allow
rules:
  - {id: no-etc, action: "file.*", path: {glob: "/etc/**"}, decision: deny}
  - {id: no-rm, action: process.exec, command: rm, decision: deny}
  - {id: no-curl, action: process.exec, command: [curl, wget], decision: deny}
  - {id: no-force-push, action: process.exec, command: git, args: {in: [--force, -f]}, decision: deny}
  - {id: no-private, action: network.request, host: {cidr: PRIVATE}, decision: deny}
  - {id: no-exec, action: k8s.request, verb: create, resource: [pods/exec, pods/attach, pods/portforward], decision: deny}
  - {id: no-secrets, action: k8s.request, resource: secrets, decision: deny}
""".replace("PRIVATE", json.dumps(PRIVATE))


def _load(text: str) -> CompiledPolicy:
    return load_policy_text(text, "pipeline.yaml")


def _decide(policy: CompiledPolicy, action: str, body: dict[str, Any]) -> tuple[str, str | None]:
    """(decision, rule), or ("invalid", field) for a request answered 400."""
    try:
        verdict = evaluate_request(policy, {"action": action, **body})
    except RequestError as exc:
        return "invalid", exc.field
    return verdict.decision, verdict.rule


def _exec(
    policy: CompiledPolicy, command_line: str, cwd: str = "/workspace"
) -> tuple[str, str | None]:
    return _decide(policy, "process.exec", {"commandLine": command_line, "cwd": cwd})


def _refused(outcome: tuple[str, str | None]) -> bool:
    return outcome[0] in ("deny", "invalid")


# ------------------------------------------------------------------ cidr vs every host form


def _host_forms(address: str) -> list[str]:
    """Spellings of one IP address a URL or host field can carry."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return sorted({ip.compressed, ip.exploded, ip.exploded.upper(), ip.compressed.upper()})
    value = int(ip)
    a, b, c, d = (value >> 24) & 255, (value >> 16) & 255, (value >> 8) & 255, value & 255
    return sorted(
        {
            address,
            address + ".",
            str(value),
            hex(value),
            "0" + format(value, "o"),
            f"{a}.{(b << 16) | (c << 8) | d}",
            f"{a}.{b}.{(c << 8) | d}",
            f"0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}",
            f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
            f"::ffff:{address}",
            f"::ffff:{value >> 16:x}:{value & 0xFFFF:x}",
            f"64:ff9b::{address}",
            f"64:ff9b::{value >> 16:x}:{value & 0xFFFF:x}",
        }
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


FORBIDDEN = [
    "127.0.0.1",
    "169.254.169.254",
    "10.0.0.1",
    "10.255.255.254",
    "0.0.0.0",
    "::1",
    "fd00::1",
]
HOST_CASES = sorted({form for address in FORBIDDEN for form in _host_forms(address)})


@pytest.mark.parametrize("host", HOST_CASES)
def test_cidr_deny_rules_see_every_host_form(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, host: str
) -> None:
    # The same address arrives as a URL, as host+port, behind userinfo naming an allowed
    # host, and over WebSocket; with a default allow, only the cidr rule can deny it.
    bodies = [
        {"url": f"http://{_bracket(host)}/latest/meta-data/", "method": "GET"},
        {"url": f"https://api.openai.com@{_bracket(host)}/v1/models"},
        {"url": f"https://api.openai.com:443@{_bracket(host)}:443/"},
        {"url": f"wss://{_bracket(host)}:8443/socket"},
        {"host": host, "port": 443, "scheme": "https"},
        {"host": _bracket(host), "port": 22},
    ]
    for body in bodies:
        outcome = _decide(deny_list, "network.request", body)
        assert outcome in (("deny", "no-private"), ("invalid", "url"), ("invalid", "host")), body
        assert _refused(_decide(allow_list, "network.request", body)), body
    # The plain URL form is always understood, never just refused as invalid.
    assert _decide(deny_list, "network.request", bodies[0]) == ("deny", "no-private")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com.evil.net/",
        "https://api.openai.com@evil.net/",
        "https://evil.net#@api.openai.com/",
        "https://evil.net\\@api.openai.com/",
        "http://api.openai.com/",  # the allow rule pins https
        "https://github.com.svc.cluster.local.evil.net/",
        "https://svc.cluster.local/",  # endsWith ".svc..." needs a label before it
        "https://x.svc.cluster.local@169.254.169.254/",
        "https://10.0.0.1.svc.cluster.local.evil.net/",
    ],
)
def test_allow_rules_by_name_are_not_fooled(allow_list: CompiledPolicy, url: str) -> None:
    assert _refused(_decide(allow_list, "network.request", {"url": url}))


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://api.openai.com/v1/chat/completions", "apis"),
        ("https://API.OpenAI.com./v1/models", "apis"),
        ("https://github.com:443/org/repo", "apis"),
        ("http://web.apps.svc.cluster.local:8080/", "cluster"),
    ],
)
def test_honest_network_requests_are_allowed(
    allow_list: CompiledPolicy, url: str, rule: str
) -> None:
    assert _decide(allow_list, "network.request", {"url": url}) == ("allow", rule)


def test_a_private_address_behind_an_allowed_name_is_still_denied() -> None:
    # A deny on the address wins over an allow on anything, whichever the rule order.
    policy = _load(
        f"""
        version: 1
        rules:
          - {{id: anything, action: network.request, host: {{glob: "**"}}, decision: allow}}
          - {{id: no-private, action: network.request, host: {{cidr: {PRIVATE}}}, decision: deny}}
        """
    )
    for url in ("http://2130706433/", "http://[::ffff:7f00:1]/", "http://example.com@0x7f.1/"):
        assert _decide(policy, "network.request", {"url": url}) == ("deny", "no-private")
    assert _decide(policy, "network.request", {"url": "http://example.com/"}) == (
        "allow",
        "anything",
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://kubernetes.default.svc.cluster.local/api/v1/namespaces/kube-system/secrets",
        "https://KUBERNETES.default.svc.cluster.local./api/v1/secrets",
        "https://kubernetes.default.svc/api/v1/secrets",
        "https://kubernetes.default:443/api/v1/secrets",
        "https://10.96.0.1/api/v1/secrets",  # KUBERNETES_SERVICE_HOST
        "https://0xa600001/api/v1/secrets",
    ],
)
def test_the_api_server_is_not_reachable_as_a_plain_network_request(
    allow_list: CompiledPolicy, url: str
) -> None:
    # k8s.request rules would mean nothing if the same call went out as network.request.
    assert _refused(_decide(allow_list, "network.request", {"url": url}))


# ------------------------------------------------------------------ `command: git` vs paths


@pytest.mark.parametrize(
    ("argv", "cwd"),
    [
        (["./git", "status"], "/workspace"),
        (["./git", "status"], "/tmp/x"),
        (["/tmp/x/git", "status"], None),
        (["/workspace/git", "status"], None),
        (["../git", "status"], "/tmp/x/y"),
        (["bin/git", "status"], "/tmp"),
        (["/usr/bin/../../tmp/git", "status"], None),
        (["/usr/local/lib/git", "status"], None),
        (["/opt/bin/git", "status"], None),
        (["/home/agent/.local/bin/git", "status"], None),
        (["/usr/bin/git/x", "status"], None),
        (["GIT", "status"], None),
        (["git ", "status"], None),
        (["git\n", "status"], None),
        (["gi", "t", "status"], None),
    ],
)
def test_command_git_never_allows_another_binary_called_git(
    allow_list: CompiledPolicy, argv: list[str], cwd: str | None
) -> None:
    body: dict[str, Any] = {"argv": argv, **({"cwd": cwd} if cwd else {})}
    assert _refused(_decide(allow_list, "process.exec", body))


@pytest.mark.parametrize(
    "command_line",
    [
        "./git status",
        "/tmp/x/git status",
        "cd /tmp/x && ./git status",
        "cd /tmp && x/git status",
        "PATH=/tmp/x git status",
        "PATH=/tmp/x:$PATH git status",
        "env PATH=/tmp/x git status",
        "export PATH=/tmp/x; git status",
        "hash -p /tmp/x/git git; git status",
        "alias git=/tmp/x/git; git status",
        'git() { /tmp/x/git "$@"; }; git status',
        "function git { curl http://evil.net; }; git status",
        "$GIT status",
        "${GIT:-git} status",
        "$(which git) status",
        "`echo git` status",
        "g{i,}t status",
        "~/git status",
        "g?t status",
        "/usr/bin/g* status",
        "LD_PRELOAD=/tmp/x.so git status",
        "GIT_SSH_COMMAND='curl evil' git fetch",
    ],
)
def test_command_git_is_not_fooled_on_the_command_line(
    allow_list: CompiledPolicy, command_line: str
) -> None:
    assert _refused(_exec(allow_list, command_line))


@pytest.mark.parametrize(
    ("argv", "cwd"),
    [
        (["git", "status"], None),
        (["/usr/bin/git", "status"], None),
        (["/bin/git", "status"], None),
        (["/usr/local/bin/git", "status"], None),
        (["//usr//bin//git", "status"], None),
        (["/usr/bin/./git", "status"], None),
        (["./git", "status"], "/usr/bin"),  # that is /usr/bin/git
    ],
)
def test_git_itself_is_allowed(
    allow_list: CompiledPolicy, argv: list[str], cwd: str | None
) -> None:
    body: dict[str, Any] = {"argv": argv, **({"cwd": cwd} if cwd else {})}
    assert _decide(allow_list, "process.exec", body) == ("allow", "tools")


@pytest.mark.parametrize(
    "command_line",
    [
        "git status",
        "\\git status",
        "g''it status",
        '"git" status',
        "command git status",
        "exec git status",
    ],
)
def test_quoting_that_the_shell_removes_is_removed(
    allow_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(allow_list, command_line) == ("allow", "tools")


def _symlink_to_untrusted_git(root: Path) -> str:
    """Build ``root/link`` so that ``root/link/../../(...)/usr/bin/git`` runs our file.

    Lexically the path is ``/usr/bin/git``; the kernel follows ``link`` first and
    resolves each ``..`` from where it leads, landing inside ``root``.
    """
    depth = str(root).count("/")
    deep = root.joinpath(*(f"d{i}" for i in range(2 * depth + 2)))
    deep.mkdir(parents=True)
    landing = root.joinpath(*(f"d{i}" for i in range(depth + 1)), "usr", "bin")
    landing.mkdir(parents=True)
    fake = landing / "git"
    fake.write_text("#!/bin/sh\necho not-git\n")
    fake.chmod(0o755)
    (root / "link").symlink_to(deep)
    return str(root / "link") + "/.." * (depth + 1) + "/usr/bin/git"


def test_a_dot_dot_after_a_symlink_reaches_another_binary(tmp_path: Path) -> None:
    # The premise of the next test, shown on the real kernel.
    argv0 = _symlink_to_untrusted_git(tmp_path.resolve())
    assert os.path.normpath(argv0) == "/usr/bin/git"
    assert os.path.realpath(argv0).startswith(str(tmp_path.resolve()))
    # Through sh, so that a noexec /tmp does not matter: the kernel resolves the path.
    ran = subprocess.run(["/bin/sh", argv0], capture_output=True, text=True, timeout=10, check=True)
    assert ran.stdout == "not-git\n"


def test_command_git_is_not_fooled_by_dot_dot_through_a_symlink(
    allow_list: CompiledPolicy, tmp_path: Path
) -> None:
    argv0 = _symlink_to_untrusted_git(tmp_path.resolve())
    assert _refused(_decide(allow_list, "process.exec", {"argv": [argv0, "status"]}))


# ------------------------------------------------------------------ cwd rules vs `cd`

CWD_POLICY = """
version: 1
rules:
  - {id: moves, action: process.exec, command: [cd, pushd, env], decision: allow}
  - {id: make-in-workspace, action: process.exec, command: make, cwd: {glob: "/workspace/**"}, decision: allow}
"""


def test_a_cwd_rule_allows_its_own_directory() -> None:
    policy = _load(CWD_POLICY)
    assert _exec(policy, "make test", "/workspace/app") == ("allow", "make-in-workspace")
    assert _exec(policy, "cd sub && make test", "/workspace/app")[0] == "allow"
    assert _exec(policy, "make test", "/etc")[0] == "deny"


def test_a_cwd_rule_follows_cd() -> None:
    policy = _load(CWD_POLICY)
    allowed = [
        line
        for line in (
            "cd /etc && make install",
            "cd / ; make",
            "cd ../../.. && make",
            "(cd /etc; make)",
            "pushd /etc && make",
            "env -C /etc make",
            "cd $HOME && make",
        )
        if _exec(policy, line, "/workspace/app")[0] == "allow"
    ]
    assert allowed == []


# ------------------------------------------------------------------ chains hiding a denied command

# Each runs `rm` somewhere; the deny-list gate must find it and deny by rule no-rm.
RM_CHAINS = [
    "git status && rm -rf /",
    "git status || rm -rf /",
    "git status; rm -rf /",
    "git status | rm -rf /",
    "git status |& rm -rf /",
    "git status & rm -rf /",
    "git status\nrm -rf /",
    "git status\r\nrm -rf /",
    "git status;rm -rf /",
    "git status&&rm -rf /",
    "(rm -rf /)",
    "{ rm -rf /; }",
    "true && { git status; rm -rf /; }",
    "if git status; then rm -rf /; fi",
    "if false; then :; else rm -rf /; fi",
    "while rm -rf /; do :; done",
    "until true; do rm -rf /; done",
    "for f in a b; do rm -rf $f; done",
    "case x in x) rm -rf /;; esac",
    "! rm -rf /",
    "coproc rm -rf /",
    "time rm -rf /",
    "bash -c 'rm -rf /'",
    'sh -c "rm -rf /"',
    "env bash -c 'rm -rf /'",
    "env -i bash -c 'git status && rm -rf /'",
    "env FOO=1 sh -c 'rm -rf /'",
    "/usr/bin/env bash -c 'rm -rf /'",
    "sh -c \"sh -c 'rm -rf /'\"",
    "bash -lc 'rm -rf /'",
    "bash -e -c 'rm -rf /'",
    "/bin/bash -c 'rm -rf /'",
    "env -S 'rm -rf /'",
    "nice -n 10 rm -rf /",
    "timeout 5 rm -rf /",
    "nohup rm -rf / &",
    "stdbuf -o0 rm -rf /",
    "sudo rm -rf /",
    "sudo -u root -- rm -rf /",
    "su -c 'rm -rf /'",
    "setsid rm -rf /",
    "ionice -c3 rm -rf /",
    "chroot / rm -rf /",
    "busybox rm -rf /",
    "watch rm -rf /",
    "flock /tmp/lock rm -rf /",
    "command rm -rf /",
    "builtin rm -rf /",
    "exec rm -rf /",
    "\\rm -rf /",
    "r''m -rf /",
    'r""m -rf /',
    "'rm' -rf /",
    "r\\m -rf /",
    "$'rm' -rf /",
    "$'\\x72m' -rf /",
    "/bin/rm -rf /",
    "/usr/bin/rm -rf /",
    "//bin//rm -rf /",
    "/bin/../bin/rm -rf /",
    "/usr/bin/./rm -rf /",
    "git status; \\\nrm -rf /",
]

# Each hides `rm` (or what runs at all) behind something the gate cannot see through.
RM_HIDDEN = [
    "git status $(rm -rf /)",
    "git status `rm -rf /`",
    "echo <(rm -rf /)",
    "eval 'rm -rf /'",
    "eval rm -rf /",
    "x=rm; $x -rf /",
    "${CMD:-rm} -rf /",
    "rm${IFS}-rf /",
    "bash <<< 'rm -rf /'",
    "bash <<EOF\nrm -rf /\nEOF\n",
    "f() { rm -rf /; }; f",
    "alias x='rm -rf /'; x",
    "source ./script.sh",
    ". ./script.sh",
    "find / -exec rm {} \\;",
    "xargs rm < list",
    "git status | xargs -I{} rm {}",
    "trap 'rm -rf /' EXIT",
    "{r,m} -rf /",
    "r? -rf /",
    "/bin/r* -rf /",
]


@pytest.mark.parametrize("command_line", RM_CHAINS)
def test_a_denied_command_in_any_chain_is_denied_by_its_rule(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(deny_list, command_line) == ("deny", "no-rm")
    assert _refused(_exec(allow_list, command_line))


@pytest.mark.parametrize("command_line", RM_HIDDEN)
def test_a_command_hidden_from_analysis_is_denied_even_by_default_allow(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(deny_list, command_line)[0] == "deny"
    assert _refused(_exec(allow_list, command_line))


# ------------------------------------------------------------------ shells started by wrappers

# The shipped baseline's guard rail with every other command allowed (the reviewer's
# repro): a shell that reads commands the gate never sees is denied by name.
NO_SHELLS = """
version: 1
defaultAction: deny
rules:
  - {id: any-exec, action: process.exec, decision: allow}
  - {id: no-shells, action: process.exec, command: [sh, bash, dash, zsh, ash, busybox], decision: deny}
"""

# Each starts an interactive or login shell by itself (reported as sh: the user's shell
# is unknown), or runs a shell through options after an operand.
SHELL_STARTERS = [
    "sudo -s",
    "sudo -i",
    "sudo --login -u app",
    "su",
    "su -",
    "su root",
    "su -l app",
    "su root -- -c bash",
    "doas -s",
    "pkexec",
    "chroot /",
    "unshare -r",
    "nsenter -t 1 -a",
    "script",
    "script /dev/null",
    "script -q /dev/null -c bash",
    "newgrp",
    "zsh -c 'repeat 1 bash'",
    "echo 'rm -rf /' | sudo -s",
    "tmux",
    "tmux -L agent new-session -d -s work",
    "tmux new-window",
    "screen",
    "login",
    "systemd-run --shell",
    "systemd-run -S -u x",
    "run0",
    "firejail",
    "firejail --private",
]


@pytest.mark.parametrize("command_line", SHELL_STARTERS)
def test_a_wrapper_that_starts_a_shell_is_denied_as_a_shell(command_line: str) -> None:
    assert _exec(_load(NO_SHELLS), command_line) == ("deny", "no-shells")


@pytest.mark.parametrize(
    "wrapper", ["sudo -s", "sudo -i", "su", "su - root", "doas -s", "pkexec", "script -q /dev/null"]
)
def test_what_a_started_shell_reads_is_analysed_like_sudo_bash(
    deny_list: CompiledPolicy, wrapper: str
) -> None:
    for feed in (" <<< 'rm -rf /'", " <<'E'\nrm -rf /\nE"):
        assert _exec(deny_list, wrapper + feed) == ("deny", "no-rm")
        assert _exec(deny_list, wrapper + feed) == _exec(deny_list, "sudo bash" + feed)


@pytest.mark.parametrize(
    "command_line",
    ["mapfile -C 'rm -rf /;' -c 1 a <<< x", "readarray -tC 'rm -rf /;' a < list"],
)
def test_a_mapfile_callback_is_analysed_like_eval(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(deny_list, command_line) == ("deny", "no-rm")
    assert _refused(_exec(allow_list, command_line))


# Builtins that run code, and programs that run a command, each allowed by name: what
# they run is still decided (or is a construct).
BY_NAME = """
version: 1
defaultAction: deny
rules:
  - id: tools
    action: process.exec
    command: [compgen, complete, fc, bind, history, declare, local, tmux, screen, systemd-run, run0, firejail, git]
    decision: allow
"""
CODE_RUN_BY_NAME = [
    "compgen -C 'rm -rf /' x",
    "compgen -F rm x",
    "compgen -W '$(rm -rf /)' x",
    "complete -C 'rm -rf /' git",
    "history -s 'rm -rf /'; fc -s",
    "fc -e 'rm -rf /' 1",
    "bind -x '\"\\C-x\": rm -rf /'",
    "declare -a 'a=($(rm -rf /))'",
    "tmux new -d 'rm -rf /'",
    "tmux send-keys -t work 'rm -rf /' Enter",
    "tmux display -p '#(rm -rf /)'",
    "screen -dm rm -rf /",
    "systemd-run --scope rm -rf /",
    "systemd-run -p 'ExecStartPre=/bin/rm -rf /' git status",
    "run0 rm -rf /",
    "firejail rm -rf /",
]


@pytest.mark.parametrize("command_line", CODE_RUN_BY_NAME)
def test_code_run_by_a_builtin_or_program_allowed_by_name_is_decided(
    deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _refused(_exec(_load(BY_NAME), command_line))
    assert _refused(_exec(deny_list, command_line))  # by no-rm, or a construct


@pytest.mark.parametrize(
    "command_line",
    ["compgen -f x", "compgen -W 'start stop' -- st", "fc -l", "tmux ls", "screen -ls"],
)
def test_builtins_and_programs_that_run_nothing_stay_allowed(command_line: str) -> None:
    assert _exec(_load(BY_NAME), command_line) == ("allow", "tools")


@pytest.mark.parametrize(
    "argv",
    [
        ["bash", "-c", "rm -rf /"],
        ["sh", "-c", "git status && rm -rf /", "sh"],
        ["/bin/sh", "-c", "rm -rf /"],
        ["env", "bash", "-c", "rm -rf /"],
        ["env", "-i", "PATH=/bin", "rm", "-rf", "/"],
        ["sudo", "rm", "-rf", "/"],
        ["timeout", "5", "rm", "-rf", "/"],
        ["xargs", "rm"],
        ["/bin/rm", "-rf", "/"],
        ["rm", "-rf", "/"],
    ],
)
def test_argv_is_unwrapped_like_a_command_line(deny_list: CompiledPolicy, argv: list[str]) -> None:
    assert _decide(deny_list, "process.exec", {"argv": argv})[0] == "deny"


@pytest.mark.parametrize(
    "command_line",
    [
        "git status && make test",
        "ls | grep x",
        "cat README.md; echo done",
        "git status > /workspace/status.txt",
        "bash -c 'git status && ls'",
        "sh -c 'make test' && echo ok",
    ],
)
def test_chains_of_allowed_commands_stay_allowed(
    allow_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(allow_list, command_line)[0] == "allow"


# ------------------------------------------------------------------ flag reordering


@pytest.mark.parametrize(
    "command_line",
    [
        "git push --force",
        "git push --force origin main",
        "git push origin main --force",
        "git push origin --force main",
        "git push -f",
        "git push origin main -f",
        "git -C /workspace push --force",
        "git -c user.name=x push origin --force",
        "git status && git push --force",
        "bash -c 'git push origin --force'",
        "timeout 60 git push --force",
    ],
)
def test_flag_reordering_does_not_escape_an_args_deny(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(deny_list, command_line) == ("deny", "no-force-push")
    assert _exec(allow_list, command_line)[0] == "deny"


# ------------------------------------------------------------------ redirections are writes

PASSWD_WRITES = [
    "echo x > /etc/passwd",
    "echo x >/etc/passwd",
    "echo x>/etc/passwd",
    "echo x >> /etc/passwd",
    "echo x >| /etc/passwd",
    "echo x &> /etc/passwd",
    "echo x &>> /etc/passwd",
    "echo x >& /etc/passwd",
    "echo x 1> /etc/passwd",
    "echo x 2> /etc/passwd",
    "echo x 3<> /etc/passwd",
    "> /etc/passwd echo x",
    "> /etc/passwd",
    "exec 3> /etc/passwd",
    "echo x > /etc//passwd",
    "echo x > /etc/./passwd",
    "echo x > /tmp/../etc/passwd",
    "echo x > '/etc/passwd'",
    'echo x > "/etc"/passwd',
    "echo x > /etc/pass\\wd",
    "echo x > passwd",  # run from cwd /etc, see below
    "cd /etc && echo x > passwd",
    "{ echo x; } > /etc/passwd",
    "(echo x) > /etc/passwd",
    "for i in 1; do echo x; done > /etc/passwd",
    "git status && echo x > /etc/passwd",
    "bash -c 'echo x > /etc/passwd'",
    "sudo sh -c 'echo x >> /etc/passwd'",
]


@pytest.mark.parametrize("command_line", PASSWD_WRITES)
def test_a_redirection_is_a_file_write(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, command_line: str
) -> None:
    cwd = "/etc" if command_line == "echo x > passwd" else "/workspace"
    assert _exec(deny_list, command_line, cwd) == ("deny", "no-etc")
    assert _exec(allow_list, command_line, cwd)[0] == "deny"


@pytest.mark.parametrize(
    "command_line",
    ["cat < /etc/shadow", "cat 0< /etc/shadow", "grep root < /etc//shadow", "cat <> /etc/shadow"],
)
def test_an_input_redirection_is_a_file_read(deny_list: CompiledPolicy, command_line: str) -> None:
    assert _exec(deny_list, command_line) == ("deny", "no-etc")


@pytest.mark.parametrize(
    "command_line",
    [
        "echo x > ~/.bashrc",
        "echo x > $HOME/.bashrc",
        "echo x > ${F}",
        "echo x > /etc/$(echo passwd)",
        "echo x > /etc/*",
    ],
)
def test_a_redirection_the_gate_cannot_resolve_is_denied(
    deny_list: CompiledPolicy, command_line: str
) -> None:
    assert _exec(deny_list, command_line)[0] == "deny"


def test_redirections_inside_the_workspace_are_allowed(allow_list: CompiledPolicy) -> None:
    verdict = evaluate_request(
        allow_list,
        {
            "action": "process.exec",
            "commandLine": "git log > out/log.txt 2>&1",
            "cwd": "/workspace",
        },
    )
    assert verdict.decision == "allow"
    assert verdict.request["writes"] == ["/workspace/out/log.txt"]


# ------------------------------------------------------------------ exec GET is a create

EXEC_REQUESTS = [
    {
        "method": "GET",
        "path": "/api/v1/namespaces/apps/pods/web/exec?command=sh&stdin=true&tty=true",
    },
    {
        "method": "GET",
        "path": "/api/v1/namespaces/apps/pods/web/exec?command=sh&command=-c&command=id",
    },
    {"method": "get", "path": "/api/v1/namespaces/apps/pods/web/exec"},
    {"method": "HEAD", "path": "/api/v1/namespaces/apps/pods/web/exec"},
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/exec/"},
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/%65xec"},
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/attach?stdin=true"},
    {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/portforward?ports=5432"},
    {"method": "POST", "path": "/api/v1/namespaces/apps/pods/web/exec?command=sh"},
    {"verb": "get", "resource": "pods", "subresource": "exec", "namespace": "apps", "name": "web"},
    {"verb": "get", "resource": "pods/exec", "namespace": "apps", "name": "web"},
    {
        "verb": "GET",
        "resource": "pods",
        "subresource": "attach",
        "namespace": "apps",
        "name": "web",
    },
    {
        "verb": "create",
        "resource": "pods",
        "subresource": "portforward",
        "namespace": "apps",
        "name": "web",
    },
    {
        "verb": "create",
        "version": "v1",
        "resource": "pods/exec",
        "namespace": "apps",
        "name": "web",
    },
]


@pytest.mark.parametrize("k8s", EXEC_REQUESTS)
def test_exec_attach_portforward_need_create_whatever_the_verb(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, k8s: dict[str, str]
) -> None:
    # A read-only allow rule (get/list/watch) must not open a shell in a pod.
    assert _refused(_decide(allow_list, "k8s.request", {"k8s": k8s}))
    assert _decide(deny_list, "k8s.request", {"k8s": k8s}) in (
        ("deny", "no-exec"),
        ("invalid", "k8s"),
    )
    if "path" in k8s and k8s["method"].upper() in ("GET", "POST"):
        assert _decide(deny_list, "k8s.request", {"k8s": k8s}) == ("deny", "no-exec")


@pytest.mark.parametrize(
    "k8s",
    [
        {"method": "GET", "path": "/api/v1/namespaces/apps/secrets/db"},
        {"method": "GET", "path": "/api/v1/namespaces/apps/secrets"},
        {
            "method": "GET",
            "path": "/api/v1/namespaces/apps/secrets?fieldSelector=metadata.name%3Ddb",
        },
        {"method": "GET", "path": "/api/v1/watch/namespaces/apps/secrets/db"},
        {"method": "GET", "path": "/api/v1/namespaces/apps/%73ecrets/db"},
        {"verb": "get", "version": "v1", "resource": "secrets", "namespace": "apps", "name": "db"},
    ],
)
def test_secrets_stay_denied_under_a_read_rule(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, k8s: dict[str, str]
) -> None:
    assert _decide(allow_list, "k8s.request", {"k8s": k8s}) == ("deny", "no-secrets")
    assert _decide(deny_list, "k8s.request", {"k8s": k8s}) == ("deny", "no-secrets")


def test_plain_reads_are_allowed(allow_list: CompiledPolicy) -> None:
    for k8s in (
        {"method": "GET", "path": "/api/v1/namespaces/apps/pods"},
        {"method": "GET", "path": "/api/v1/namespaces/apps/pods/web/log"},
        {"method": "GET", "path": "/apis/apps/v1/namespaces/apps/deployments/web?watch=1"},
    ):
        assert _decide(allow_list, "k8s.request", {"k8s": k8s}) == ("allow", "k8s-read")


# ------------------------------------------------------------------ the real daemon

DAEMON_CASES: list[tuple[dict[str, Any], str]] = [
    ({"action": "network.request", "url": "http://0xa9fea9fe/latest/meta-data/"}, "no-private"),
    (
        {"action": "network.request", "url": "http://example.com:80@[::ffff:127.0.0.1]/"},
        "no-private",
    ),
    ({"action": "network.request", "host": "169.254.169.254.", "port": 80}, "no-private"),
    ({"action": "file.write", "path": "/workspace/../etc/passwd"}, "no-etc"),
    ({"action": "file.read", "path": "shadow", "cwd": "/etc/ssl/.."}, "no-etc"),
    ({"action": "process.exec", "commandLine": "git status && rm -rf /"}, "no-rm"),
    ({"action": "process.exec", "commandLine": "env bash -c 'r\"m\" -rf /'"}, "no-rm"),
    ({"action": "process.exec", "commandLine": "echo x > /etc//passwd", "cwd": "/"}, "no-etc"),
    ({"action": "process.exec", "argv": ["git", "push", "origin", "--force"]}, "no-force-push"),
    (
        {
            "action": "k8s.request",
            "k8s": {"method": "GET", "path": "/api/v1/namespaces/a/pods/p/exec?command=sh"},
        },
        "no-exec",
    ),
]


def test_the_daemon_denies_and_records_the_normalised_request(
    tmp_path: Path, daemon_factory: Any
) -> None:
    policy = tmp_path / "deny-list.yaml"
    policy.write_text(textwrap.dedent(DENY_LIST))
    gate = daemon_factory(policy)
    for body, rule in DAEMON_CASES:
        response = gate.check(body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["allowed"], answer["decision"], answer["rule"]) == (False, "deny", rule), (
            body
        )
    # The honest request goes through, so the gate is not simply closed.
    response = gate.check({"action": "network.request", "url": "https://example.com/"})
    assert response.json()["allowed"] is True
    decisions = [r for r in gate.records() if r["type"] == "decision"]
    recorded = [d["request"] for d in decisions]
    assert recorded[0]["host"] == "169.254.169.254"
    assert recorded[1]["host"] == "::ffff:7f00:1"
    assert recorded[2] == {"host": "169.254.169.254", "port": 80}
    # The lexical path rules match, and the path as written (an approver must see it).
    assert recorded[3] == {"path": "/etc/passwd", "writtenPath": "/workspace/../etc/passwd"}
    assert recorded[4] == {"path": "/etc/shadow", "writtenPath": "/etc/ssl/../shadow"}
    assert recorded[5]["commands"] == [["git", "status"], ["rm", "-rf", "/"]]
    assert ["rm", "-rf", "/"] in recorded[6]["commands"]
    assert recorded[7]["writes"] == ["/etc/passwd"]
    assert recorded[9]["k8s"]["resource"] == "pods/exec"
    assert [d["rule"] for d in decisions[:-1]] == [rule for _, rule in DAEMON_CASES]


# ------------------------------------------------------------------ the documentation


def test_every_construct_is_documented_in_the_security_guide() -> None:
    # docs/policy.md sends policy authors to docs/security.md for the names a rule must
    # use to allow a construct; a name missing there cannot be written by anyone.
    guide = (Path(__file__).parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    table = guide.split("## Constructs that cannot be analysed statically", 1)[1]
    table = table.split("\n## ", 1)[0]
    missing = [name for name in sorted(CONSTRUCTS) if f"`{name}`" not in table]
    assert not missing


# Second review of 2026-12-07: matching a relative program by its path alone (an attempt
# at reading CONTRACT 1 as "a bare name never matches ./git", reverted) let an allow of
# every command but a few through for ./rm run in /bin. The name a program has in a
# trusted directory is seen by a `not` as by any matcher.
@pytest.mark.parametrize(
    "body",
    [
        {"argv": ["./rm", "-rf", "/"], "cwd": "/bin"},
        {"commandLine": "cd /bin && ./rm -rf /", "cwd": "/"},
        {"argv": ["./bash"], "cwd": "/usr/bin"},
    ],
)
def test_an_allow_of_every_command_but_some_does_not_allow_them_run_relatively(
    body: dict[str, Any],
) -> None:
    policy = load_policy_text(
        "version: 1\nrules:\n  - {id: most, action: process.exec,"
        " command: {not: {in: [rm, bash, sh]}}, decision: allow}\n",
        "most.yaml",
    )
    assert _decide(policy, "process.exec", body) == ("deny", None)
