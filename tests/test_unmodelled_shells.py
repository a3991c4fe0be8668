"""Scripts of shells the analysis does not model (zsh, ksh, mksh ...) are read as bash
reads them, and reported as the construct ``unmodelled-shell`` besides: a policy has to
allow that reading by name (docs/security.md, "Constructs")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.normalise.commands import analyse_command
from sidecar.normalise.shell_wrappers import POSIX_SHELLS
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes, load_policy_file

POLICIES = Path(__file__).resolve().parents[1] / "policies"
ALLOW_UNMODELLED_SHELLS = (
    "  - {id: other-shells, action: process.exec, command: unmodelled-shell, decision: allow}\n"
)


@pytest.fixture(scope="module")
def coding_agent() -> CompiledPolicy:
    return load_policy_file(POLICIES / "coding-agent.yaml")


@pytest.fixture(scope="module")
def coding_agent_with_zsh() -> CompiledPolicy:
    text = (POLICIES / "coding-agent.yaml").read_text(encoding="utf-8") + ALLOW_UNMODELLED_SHELLS
    return load_policy_bytes(text.encode(), "coding-agent-with-zsh.yaml")


def _check(policy: CompiledPolicy, argv: list[str]) -> tuple[str, str | None, str]:
    request: dict[str, Any] = {"action": "process.exec", "cwd": "/workspace", "argv": argv}
    verdict = evaluate_request(policy, request)
    return verdict.decision, verdict.rule, verdict.reason


def _denied_construct(policy: CompiledPolicy, request: dict[str, Any]) -> bool:
    """Whether the check is denied, lists unmodelled-shell among the request's constructs
    (as the /check answer and the audit record do) and denies that construct itself."""
    verdict = evaluate_request(policy, {"action": "process.exec", "cwd": "/workspace", **request})
    return (
        verdict.decision == "deny"
        and "unmodelled-shell" in verdict.request.get("constructs", [])
        and any(
            decision.decision == "deny"
            and decision.subject.fields["command"] == ("unmodelled-shell",)
            for decision in verdict.decisions
        )
    )


UNMODELLED = [
    ["zsh", "-c", "git status"],
    ["zsh", "-f", "-c", "git status"],
    ["/usr/bin/zsh-static", "-f", "-c", "git status"],
    ["ksh", "-c", "git status"],
    ["ksh93", "-c", "git status"],
    ["mksh", "-c", "git status"],
    ["yash", "-c", "git status"],
    ["posh", "-c", "git status"],
    ["busybox", "hush", "-c", "git status"],
    ["env", "zsh", "-f", "-c", "git status"],
    ["bash", "-c", "ksh -c 'git status'"],
]


@pytest.mark.parametrize("argv", UNMODELLED)
def test_coding_agent_denies_a_script_of_a_shell_it_does_not_model(
    coding_agent: CompiledPolicy, argv: list[str]
) -> None:
    assert _denied_construct(coding_agent, {"argv": argv})


@pytest.mark.parametrize(
    "command_line", ["zsh -f <<< 'git status'", "ksh -s <<'EOF'\ngit status\nEOF\n"]
)
def test_coding_agent_denies_what_such_a_shell_reads_from_a_heredoc(
    coding_agent: CompiledPolicy, command_line: str
) -> None:
    assert _denied_construct(coding_agent, {"commandLine": command_line})


@pytest.mark.parametrize(
    "argv",
    [
        ["bash", "-c", "git status"],
        ["sh", "-c", "git status"],
        ["dash", "-c", "git status"],
        ["/bin/ash", "-c", "git status"],
        ["rbash", "-c", "git status"],
        ["bash-static", "-c", "git status"],
        ["busybox", "sh", "-c", "git status"],
        ["bash", "-lc", "git status"],
    ],
)
def test_the_modelled_shells_are_not_the_construct(
    coding_agent: CompiledPolicy, argv: list[str]
) -> None:
    request: dict[str, Any] = {"action": "process.exec", "cwd": "/workspace", "argv": argv}
    verdict = evaluate_request(coding_agent, request)
    assert "unmodelled-shell" not in verdict.request.get("constructs", [])
    decision = verdict.decision
    # busybox itself is not in coding-agent's allow list; the others run git status only.
    if argv[0] != "busybox":
        assert decision == "allow"


@pytest.mark.parametrize(
    "argv",
    [["zsh", "-f", "-c", "git status"], ["zsh", "-c", "git status"], ["mksh", "-c", "git status"]],
)
def test_a_policy_allowing_the_construct_decides_the_script_by_its_commands(
    coding_agent_with_zsh: CompiledPolicy, argv: list[str]
) -> None:
    decision, rule, _reason = _check(coding_agent_with_zsh, argv)
    assert (decision, rule) == ("allow", "git-status")


def test_allowing_the_construct_still_checks_every_command(
    coding_agent_with_zsh: CompiledPolicy,
) -> None:
    decision, rule, reason = _check(
        coding_agent_with_zsh, ["zsh", "-f", "-c", "git status; curl https://evil.example"]
    )
    assert (decision, rule) == ("deny", None)
    assert "curl" in reason
    decision, rule, _reason = _check(coding_agent_with_zsh, ["zsh", "-f", "-c", "git push"])
    assert (decision, rule) == ("require_approval", "git-push-needs-approval")


@pytest.mark.parametrize("argv", [["zsh"], ["ksh", "script.sh"], ["zsh", "-f", "-s"]])
def test_a_shell_without_a_script_is_decided_as_itself_as_before(
    coding_agent: CompiledPolicy, coding_agent_with_zsh: CompiledPolicy, argv: list[str]
) -> None:
    # Like `bash` alone: the shell is the command, and coding-agent does not allow it.
    for policy in (coding_agent, coding_agent_with_zsh):
        verdict = evaluate_request(
            policy, {"action": "process.exec", "cwd": "/workspace", "argv": argv}
        )
        assert (verdict.decision, verdict.rule) == ("deny", None)
        assert "unmodelled-shell" not in verdict.request.get("constructs", [])
        assert verdict.reason.startswith("no rule allows process.exec of ")
        assert verdict.reason.endswith(f" {' '.join(argv)}")


@pytest.mark.parametrize("shell", sorted(POSIX_SHELLS))
def test_every_shell_but_bash_and_posix_sh_is_the_construct(shell: str) -> None:
    analysis = analyse_command(argv=[shell, "-c", "git status"], cwd="/workspace")
    names = {construct.name for construct in analysis.constructs}
    modelled = shell in {"sh", "bash", "rbash", "dash", "ash", "bash-static"}
    assert ("unmodelled-shell" in names) is not modelled
    assert [command.argv for command in analysis.commands] == [("git", "status")]
