"""Red team: ``..`` after a link every Linux image has (rt24 files review, F1).

``/var/run`` is a link to ``/run`` in Debian, Ubuntu, Fedora and Alpine images, so the
kernel reads ``/var/run/../etc/shadow`` as ``/etc/shadow`` while its lexical form is
``/var/etc/shadow``. Without ``realPath`` a deny rule written for the file must still
see it, or the baseline's guard rails fall to a broad allow rule. Each case is checked
against this machine's own kernel first (``os.path.realpath`` follows the links as
``open`` does), so a case that is not what it claims fails rather than passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sidecar.engine import evaluate_request
from sidecar.normalise.paths import SYSTEM_DIRECTORY_LINKS
from tests.adversarial.conftest import POLICIES, load_policy_text

DENY_LIST = """
version: 1
defaultAction: allow
rules:
  - {id: shadow, action: "file.*", path: /etc/shadow, decision: deny}
  - {id: secrets, action: "file.*", path: {glob: "/run/secrets/**"}, decision: deny}
  - {id: environ, action: "file.*", path: {glob: "/proc/*/environ"}, decision: deny}
  - {id: cwd, action: "file.*", path: {glob: "/proc/*/cwd/**"}, decision: deny}
"""

# (path as the agent sends it, the deny rule, the file the kernel opens: {pid} is this
# process's, which "self" names, {cwd} its working directory)
THROUGH_LINKS = [
    ("/var/run/../etc/shadow", "shadow", "/etc/shadow"),
    (
        "/var/run/../var/run/secrets/kubernetes.io/serviceaccount/token",
        "secrets",
        "/run/secrets/kubernetes.io/serviceaccount/token",
    ),
    (
        "/var/lock/../secrets/kubernetes.io/serviceaccount/token",
        "secrets",
        "/run/secrets/kubernetes.io/serviceaccount/token",
    ),
    ("/var/run/../proc/self/root/etc/shadow", "shadow", "/etc/shadow"),
    ("/proc/self/root/../../etc/shadow", "shadow", "/etc/shadow"),
    ("/dev/fd/../environ", "environ", "/proc/{pid}/environ"),
    ("/proc/net/../cwd/.ssh/id_rsa", "cwd", "{cwd}/.ssh/id_rsa"),
    ("/tmp/../var/run/../etc/shadow", "shadow", "/etc/shadow"),
    ("/var/run/secrets/../../etc/shadow", "shadow", "/etc/shadow"),
    # Second review: Debian's base-files links /var/spool/mail to ../mail, openssl's
    # package /usr/lib/ssl/private to /etc/ssl/private.
    ("/var/spool/mail/../../etc/shadow", "shadow", "/etc/shadow"),
    ("/usr/lib/ssl/private/../../shadow", "shadow", "/etc/shadow"),
    # Fifth review: /proc/thread-self is /proc/<pid>/task/<tid>, three levels down.
    ("/proc/thread-self/../../root/etc/shadow", "shadow", "/etc/shadow"),
    ("/proc/thread-self/../../environ", "environ", "/proc/{pid}/environ"),
]


def _kernel_reading(path: str) -> str:
    """Where ``open(path)`` lands on this machine, the last component not followed."""
    head, _, tail = path.rpartition("/")
    return os.path.join(os.path.realpath(head or "/"), tail)


def _links_present(path: str) -> bool:
    parts = [part for part in path.split("/") if part]
    for length in range(1, len(parts) + 1):
        prefix = tuple(parts[:length])
        if prefix in SYSTEM_DIRECTORY_LINKS and not os.path.islink("/" + "/".join(prefix)):
            return prefix[:2] == ("proc", "self")  # a magic link: islink is true in procfs
    return True


@pytest.mark.parametrize(("path", "rule", "opened"), THROUGH_LINKS)
def test_the_kernel_opens_the_denied_file(path: str, rule: str, opened: str) -> None:
    if not _links_present(path):
        pytest.skip(f"this machine lacks a link {path} goes through")
    assert _kernel_reading(path) == opened.format(pid=os.getpid(), cwd=os.getcwd())


@pytest.mark.parametrize("action", ["file.read", "file.write", "file.delete"])
@pytest.mark.parametrize(("path", "rule", "opened"), THROUGH_LINKS)
def test_a_dot_dot_after_a_system_link_is_denied_by_the_rule_for_the_file(
    deny_list, action: str, path: str, rule: str, opened: str
) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate_request(deny_list, {"action": action, "path": path})
    assert (verdict.decision, verdict.rule) == ("deny", rule), verdict.reason
    # The record keeps the lexical form the contract names (CONTRACT 2.2).
    assert verdict.request["path"] == os.path.normpath(path).replace("//", "/")


@pytest.mark.parametrize(
    "body",
    [
        {"path": "/var/run/../etc/shadow"},
        {"path": "../etc/shadow", "cwd": "/var/run"},
        {"path": "../../etc/shadow", "cwd": "/var/run/secrets"},
        {"path": "etc/shadow", "cwd": "/var/run/.."},
    ],
)
def test_the_cwd_a_relative_path_is_joined_to_is_read_the_same_way(
    deny_list, body: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate_request(deny_list, {"action": "file.read", **body})
    assert (verdict.decision, verdict.rule) == ("deny", "shadow")


@pytest.mark.parametrize(
    ("path", "lexical"),
    [
        ("/var/run/../tmp/notes.txt", "/var/tmp/notes.txt"),  # the kernel: /tmp/notes.txt
        ("/app/data/sub/../x.csv", "/app/data/x.csv"),
        ("/var/run/app.pid", "/var/run/app.pid"),
        ("/bin/../usr/share/doc/README", "/usr/share/doc/README"),
    ],
)
def test_paths_through_links_to_allowed_files_stay_allowed(
    deny_list, path: str, lexical: str
) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate_request(deny_list, {"action": "file.read", "path": path})
    assert (verdict.decision, verdict.rule) == ("allow", None)
    assert verdict.request["path"] == lexical


def test_the_baselines_guard_rails_hold_under_the_broad_allow_its_comment_names() -> None:
    # policies/baseline.yaml: the deny rules "keep holding when you add broad allow
    # rules later (say file.read of "/**" while debugging)".
    text = (POLICIES / "baseline.yaml").read_text() + (
        '  - {id: debug-read-all, action: file.read, path: {glob: "/**"}, decision: allow}\n'
    )
    policy = load_policy_text(text, "baseline-debug.yaml")
    for path in (
        "/var/run/../etc/shadow",
        "/var/run/../var/run/secrets/kubernetes.io/serviceaccount/token",
        "/var/lock/../secrets/kubernetes.io/serviceaccount/token",
        "/var/run/../proc/self/root/etc/shadow",
        "/var/run/../etc/sudoers",
        "/var/run/../etc/tollgate/policy.yaml",
        "/var/run/../mnt/secrets-store/db-password",
        "/var/spool/mail/../../etc/shadow",
        "/var/spool/mail/../../var/run/secrets/kubernetes.io/serviceaccount/token",
        "/var/spool/mail/../../proc/self/environ",
    ):
        verdict = evaluate_request(policy, {"action": "file.read", "path": path})
        assert verdict.decision == "deny", (path, verdict.reason)
        assert verdict.rule in ("no-credential-files", "no-gate-internals"), path
    honest = evaluate_request(policy, {"action": "file.read", "path": "/var/run/../tmp/x"})
    assert (honest.decision, honest.rule) == ("allow", "debug-read-all")


def test_the_table_names_only_links_this_machine_has_or_lacks_harmlessly(tmp_path: Path) -> None:
    # Each entry is a link on a merged-/usr Debian: where the machine has the path, it
    # must be a link to the target the table gives (else the table invents a form).
    for link, target in SYSTEM_DIRECTORY_LINKS.items():
        path = "/" + "/".join(link)
        if not os.path.lexists(path):
            continue
        expected = "/" + "/".join(target)
        real = os.path.realpath(path)
        if target[:2] == ("proc", "self"):
            expected = expected.replace("/proc/self", f"/proc/{os.getpid()}", 1)
        if target[-1] == "thread-self":  # the calling thread's id stands there
            real, expected = real.rpartition("/")[0], expected.rpartition("/")[0]
        assert real == expected, (path, real)


def test_a_deny_of_a_links_target_holds_for_the_link_without_dot_dot() -> None:
    # Second review: "/var/run/secrets/x" is "/run/secrets/x" by another name, and
    # "/proc/self/root/etc/shadow" is "/etc/shadow"; an allow of one spelling is enough.
    policy = load_policy_text(
        """
        version: 1
        defaultAction: deny
        rules:
          - {id: secrets, action: file.read, path: {glob: "/run/secrets/**"}, decision: deny}
          - {id: shadow, action: file.read, path: /etc/shadow, decision: deny}
          - {id: everything, action: file.read, path: {glob: "/**"}, decision: allow}
          - {id: app-socket, action: file.write, path: {glob: "/var/run/app/**"}, decision: allow}
        """
    )
    for path, rule in (
        ("/var/run/secrets/kubernetes.io/serviceaccount/token", "secrets"),
        ("/proc/self/root/etc/shadow", "shadow"),
    ):
        verdict = evaluate_request(policy, {"action": "file.read", "path": path})
        assert (verdict.decision, verdict.rule) == ("deny", rule), path
    socket = evaluate_request(policy, {"action": "file.write", "path": "/var/run/app/sock"})
    assert (socket.decision, socket.rule) == ("allow", "app-socket")


@pytest.mark.parametrize(
    ("allowed", "path"),
    [
        ("/var/**", "/var/run/../etc/shadow"),
        ("/proc/*", "/proc/net/../environ"),
        ("/dev/*", "/dev/fd/../environ"),
        ("/var/**", "/var/spool/mail/../../etc/passwd"),
    ],
)
def test_an_allow_must_hold_for_the_file_the_kernel_opens_too(allowed: str, path: str) -> None:
    # Second review: an allow-list of /var/** allowed /var/run/../etc/shadow by its
    # lexical form /var/etc/shadow. Through a known link the form the kernel opens is
    # decided as well, as a realPath is, and the stricter wins.
    policy = load_policy_text(
        f"""
        version: 1
        defaultAction: deny
        rules:
          - {{id: some, action: file.read, path: {{glob: "{allowed}"}}, decision: allow}}
        """
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": path})
    assert (verdict.decision, verdict.rule) == ("deny", None), verdict.reason
    assert "path through the system's links" in verdict.reason


@pytest.mark.parametrize(
    ("allowed", "path"),
    [
        ("/var/run/app/**", "/var/run/app/sub/../x.sock"),
        ("/var/run/app/**", "/var/run/app/a..b"),
        ("/lib/**", "/lib/x86_64-linux-gnu/../python3/x.py"),
    ],
)
def test_a_dot_dot_that_stays_inside_the_link_needs_no_allow_of_its_target(
    allowed: str, path: str
) -> None:
    # Third review: a ".." that does not go back through the link names the same file
    # as the lexical form, by another name: an allow of one spelling is enough.
    policy = load_policy_text(
        f"""
        version: 1
        defaultAction: deny
        rules:
          - {{id: some, action: file.read, path: {{glob: "{allowed}"}}, decision: allow}}
        """
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": path})
    assert (verdict.decision, verdict.rule) == ("allow", "some"), verdict.reason
    assert "linkedPath" not in verdict.request


def test_the_file_the_kernel_opens_is_recorded_for_the_approver() -> None:
    policy = load_policy_text(
        """
        version: 1
        rules:
          - {id: hosts, action: file.read, path: /etc/hosts, decision: require_approval}
          - {id: var, action: file.read, path: {glob: "/var/**"}, decision: allow}
        """
    )
    verdict = evaluate_request(policy, {"action": "file.read", "path": "/var/run/../etc/hosts"})
    assert (verdict.decision, verdict.rule) == ("require_approval", "hosts")
    assert verdict.request["path"] == "/var/etc/hosts"
    assert verdict.request["linkedPath"] == "/etc/hosts"


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("echo x > /var/run/secrets/x", "secrets"),
        ("cat < /proc/self/root/etc/shadow", "shadow"),
        ("history -w /var/run/secrets/x", "secrets"),
    ],
)
def test_a_redirection_through_a_link_is_denied_by_the_rule_for_its_target(
    deny_list, line: str, rule: str
) -> None:  # type: ignore[no-untyped-def]
    body = {"action": "process.exec", "commandLine": line, "cwd": "/tmp"}
    verdict = evaluate_request(deny_list, body)
    assert (verdict.decision, verdict.rule) == ("deny", rule), verdict.reason
    honest = evaluate_request(deny_list, {**body, "commandLine": "echo x > /var/run/app.pid"})
    assert honest.decision == "allow"


@pytest.mark.parametrize(
    "body",
    [
        {"path": "/var/./run/secrets/kubernetes.io/serviceaccount/token"},
        {"path": "/var//run/secrets/kubernetes.io/serviceaccount/token"},
        {"path": "run/secrets/kubernetes.io/serviceaccount/token", "cwd": "/var/"},
        {"path": "/proc/self/./root/run/secrets/kubernetes.io/serviceaccount/token"},
    ],
)
def test_a_link_spelt_with_dot_or_empty_segments_is_still_the_link(body: dict[str, str]) -> None:
    # Fourth review: the quick test before the walk looked at the path as sent.
    policy = load_policy_text(
        """
        version: 1
        defaultAction: allow
        rules:
          - {id: secrets, action: file.read, path: {glob: "/run/secrets/**"}, decision: deny}
        """
    )
    verdict = evaluate_request(policy, {"action": "file.read", **body})
    assert (verdict.decision, verdict.rule) == ("deny", "secrets"), verdict.reason


def test_a_redirection_through_a_link_spends_one_token() -> None:
    # Fourth review: its form through the link was charged as an action of its own, so
    # an approved `echo hi > /var/run/x` needed two tokens of a rule covering both.
    from sidecar.ratelimit import tokens_needed

    policy = load_policy_text(
        """
        version: 1
        rules:
          - {id: echo, action: process.exec, command: echo, decision: allow}
          - {id: run, action: file.write, path: {glob: "/run/**"}, decision: require_approval}
          - id: writes
            action: file.write
            path: {glob: "/**"}
            decision: allow
            rateLimit: {count: 1, per: 1h}
        """
    )
    body = {"action": "process.exec", "commandLine": "echo hi > /var/run/x", "cwd": "/tmp"}
    verdict = evaluate_request(policy, body)
    assert (verdict.decision, verdict.rule) == ("require_approval", "run")
    assert [rule.id for rule in tokens_needed(policy, verdict)] == ["writes"]


@pytest.mark.parametrize(
    "body",
    [
        {"path": "/proc/1/root/../../etc/shadow"},
        {"path": "/proc/1/task/1/root/etc/shadow"},
        {"path": "../../root/etc/shadow", "cwd": "/proc/thread-self"},
    ],
)
def test_every_process_root_is_a_link_to_the_root(body: dict[str, str]) -> None:
    # /proc/<pid>/root (and a task's) is "/" in the container, whatever the pid.
    policy = load_policy_text(
        """
        version: 1
        defaultAction: allow
        rules:
          - {id: shadow, action: file.read, path: /etc/shadow, decision: deny}
        """
    )
    verdict = evaluate_request(policy, {"action": "file.read", **body})
    assert (verdict.decision, verdict.rule) == ("deny", "shadow"), verdict.reason
