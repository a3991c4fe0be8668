"""A program a wrapper runs under another root directory, found by the red-team review
of round 24 (commands, F3). ``chroot DIR PROG``, ``unshare -R DIR``, ``nsenter
--root=DIR``, ``capsh --chroot=DIR``, ``sudo -R DIR`` and ``chpst -/ DIR`` look PROG up
and run it inside DIR's file tree, but the gate decided PROG as the host's: ``chroot
/tmp/evil git status`` matched ``command: git`` and ``chroot /tmp/evil /usr/bin/git``
the trusted ``/usr/bin/git``, while what ran was a file the agent may have written
(checked as root with a planted ``DIR/usr/bin/git``: all five installed wrappers ran
it). Now a static absolute PROG under a static DIR is decided as the path under DIR,
and any other (a name looked up in DIR, a DIR not known here) is ``dynamic-command``,
decided by no name. The root ``/`` is the host's.
"""

from __future__ import annotations

import pytest

from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line, command_argvs, construct_names

ALLOW_LIST = """
    version: 1
    defaultAction: deny
    rules:
      - id: chroot-wrappers
        action: process.exec
        command: [chroot, unshare, nsenter, capsh, sudo, chpst, firejail, systemd-run]
        decision: allow
      - id: git-status
        action: process.exec
        command: git
        args: {prefix: [status]}
        decision: allow
"""

LOOKED_UP_THERE = [
    "chroot /tmp/evil git status",
    "unshare -R /tmp/evil git status",
    "unshare --root=/tmp/evil git status",
    "nsenter --root=/tmp/evil git status",
    "nsenter -r git status",  # the target process's root
    "sudo -R /tmp/evil git status",
    "sudo --chroot=/tmp/evil git status",
    "chpst -/ /tmp/evil git status",
    "chroot $DIR /usr/bin/git status",
    "chroot /tmp/evil ./git status",
    "capsh --chroot=/tmp/evil -- -c 'git status'",  # /tmp/evil/bin/bash, and its git
    "chroot /tmp/evil /bin/sh -c 'git status'",
]
PATHS_THERE = [
    "chroot /tmp/evil /usr/bin/git status",
    "chroot /tmp/evil /../usr/bin/git status",  # ".." stops at the root
    "unshare -R /tmp/evil /usr/bin/git status",
    "nsenter --root=/tmp/evil /usr/bin/git status",
    "capsh --chroot=/tmp/evil --shell=/usr/bin/git -- status",
    "sudo -R /tmp/evil /usr/bin/git status",
    "chpst -/ /tmp/evil /usr/bin/git status",
]


@pytest.mark.parametrize("line", LOOKED_UP_THERE + PATHS_THERE)
def test_a_program_under_another_root_is_not_the_trusted_one(
    allow_list: CompiledPolicy, line: str
) -> None:
    verdict = check_line(allow_list, line)
    assert verdict.decision == "deny", verdict.reason


@pytest.mark.parametrize("line", LOOKED_UP_THERE)
def test_a_program_looked_up_under_another_root_is_a_dynamic_command(line: str) -> None:
    assert "dynamic-command" in construct_names(line)
    assert ("git", "status") not in command_argvs(line)[:1]


@pytest.mark.parametrize("line", PATHS_THERE)
def test_a_path_under_another_root_is_decided_as_that_path(
    allow_list: CompiledPolicy, line: str
) -> None:
    assert ("/tmp/evil/usr/bin/git", "status") in command_argvs(line)
    assert "/tmp/evil/usr/bin/git status" in check_line(allow_list, line).reason


@pytest.mark.parametrize(
    "line",
    ["chroot / git status", "chroot --userspec=a:b / /usr/bin/git status", "sudo git status"],
)
def test_the_host_root_keeps_the_trusted_program(allow_list: CompiledPolicy, line: str) -> None:
    assert check_line(allow_list, line).decision == "allow"


def test_chroot_without_a_program_starts_the_shell_of_the_other_root() -> None:
    # Second review (R4): DIR's $SHELL runs, a file of DIR's tree, not the host's sh.
    assert command_argvs("chroot /srv") == [("chroot", "/srv")]
    assert construct_names("chroot /srv") == {"dynamic-command"}
    assert command_argvs("chroot /") == [("chroot", "/"), ("sh", "-i")]


@pytest.mark.parametrize(
    "line",
    [
        "firejail --chroot=/tmp/evil git status",
        "systemd-run -p RootDirectory=/tmp/evil git status",
        "systemd-run --property=BindPaths=/tmp/evil:/usr/bin git status",
        "chroot /bin/.. git status",
        "unshare -R /tmp/evil",
    ],
)
def test_other_roots_of_other_wrappers_are_not_the_hosts(
    allow_list: CompiledPolicy, line: str
) -> None:
    assert check_line(allow_list, line).decision == "deny", line


def test_firejail_chroot_decides_an_absolute_program_under_the_root() -> None:
    line = "firejail --chroot=/tmp/evil /usr/bin/git status"
    assert command_argvs(line)[1] == ("/tmp/evil/usr/bin/git", "status")


@pytest.mark.parametrize(
    ("line", "construct"),
    [
        ("firejail --rmenv=PATH bash -c 'git status'", "environment-override"),
        ("firejail --rmenv=SHLVL bash -c 'git status'", "environment-override"),
        ("firejail --bind=/tmp/evil,/usr/bin git status", "unparsed-wrapper"),
        ("firejail --output=/etc/cron.d/x git status", "unparsed-wrapper"),
        ("firejail --profile=/tmp/p git status", "unparsed-wrapper"),
        ("systemd-run -p StandardOutput=file:/etc/x git status", "unparsed-wrapper"),
    ],
)
def test_firejail_and_systemd_run_options_that_change_what_runs_or_write_a_file(
    line: str, construct: str
) -> None:
    # Third review (N1, N2).
    assert construct in construct_names(line)


def test_other_firejail_options_still_unwrap() -> None:
    assert construct_names("firejail --net=none --rmenv=FOO git status") == set()
