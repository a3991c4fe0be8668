"""One /check request, start to finish, without I/O: parse -> normalise -> evaluate.

``evaluate_request`` is what the HTTP app, ``tollgate check --policy`` and
``tollgate policy test`` all call, so the three can never disagree under the same
identity (a policy test case without ``agent`` is a gate nothing configures, ``local``;
the two offline ones go through ``sidecar.ratelimit.evaluate_with_fresh_limits``, which
then counts the check's tokens as a freshly started gate does). A request that
yields several subjects (a path and its realPath, each command of a command line, a
redirection, a URL path's decoded and ``;``-stripped forms, an exec GET that is also a
create) is decided subject by subject and the strictest decision wins; among equally
strict ones, one decided by a rule, and of those the one whose rule comes first in the
file (CONTRACT section 1, "Precedence"), whatever order the request names them in. A
subject marked ``restrictions_only`` (a URL path as sent) counts only when a deny or
require_approval rule decided it: as another view of the first subject, or, marked
``apart`` too (a patch as the create it may be, a proxied object under its own name),
as a part of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.evaluator import STRICTNESS, Exhausted, SubjectDecision, evaluate_subject
from sidecar.normalise.request import Normalised, normalise_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.request import CheckRequest, parse_request


@dataclass(frozen=True)
class Verdict:
    """The outcome of one request, as answered and recorded."""

    action: str
    decision: str  # allow | deny | require_approval
    allowed: bool  # the bit a client acts on (true for everything in audit mode)
    rule: str | None
    reason: str
    risk: str | None
    mode: str
    policy_hash: str
    request: dict[str, Any]  # the normalised request, as recorded
    parsed: CheckRequest
    decisions: tuple[SubjectDecision, ...]
    trace: tuple[str, ...] = field(default=())

    def answered_request(self) -> dict[str, Any]:
        """The normalised request as an answer shows it: without the caller's
        ``context``, of any shape, whose '{"allowed":true}' must not appear in a deny
        answer (the record keeps it)."""
        return {key: value for key, value in self.request.items() if key != "context"}


def decide(
    policy: CompiledPolicy,
    normalised: Normalised,
    parsed: CheckRequest,
    *,
    explain: bool = False,
    exhausted: Exhausted | None = None,
) -> Verdict:
    """Evaluate every subject of a normalised request and combine, strictest first."""
    trace: list[str] | None = [] if explain else None
    decisions: list[SubjectDecision] = []
    first: SubjectDecision | None = None  # the first subject, with its views' rules
    for subject in normalised.subjects:
        if trace is not None:
            trace.append(f"{subject.label or subject.action} ({subject.action}):")
        decided = evaluate_subject(policy, subject, exhausted=exhausted, trace=trace)
        if subject.restrictions_only:
            # Another view of the request's first subject (the path as written, the
            # URL path as sent, localhost as the loopback): its deny and approval rules
            # count as matches of that subject. The
            # subject's own decision stays in ``decisions``: the allow rules it matched
            # spend their tokens when an approval allows the request.
            if not _restricts(decided):
                continue
            if subject.apart:
                decisions.append(decided)  # a part of its own: strictest wins
                continue
            assert first is not None  # views always follow the subject they view
            first = _with_view(first, decided)
            continue
        if first is None:
            first = decided
        decisions.append(decided)
    assert first is not None
    candidates = [first, *decisions[1:]]
    # Strictest first; among equals, one decided by a rule explains more than the default,
    # the rule first in the file is the one reported (not the part first in the request),
    # and of one rule, a form of its own (realPath, a decoded path) explains more than
    # another view of the first.
    winner = (
        first
        if len(candidates) == 1
        else max(
            candidates,
            key=lambda d: (
                STRICTNESS[d.decision],
                d.rule is not None,
                -d.rule.index if d.rule is not None else 0,
                not d.subject.restrictions_only,
            ),
        )
    )
    reason = winner.reason
    # Say which part of the request decided, unless the reason already names it.
    several = len(candidates) > 1 or winner.subject.restrictions_only
    if several and winner.subject.label and winner.subject.label not in reason:
        reason = f"{winner.subject.label}: {reason}"
    if trace is not None:
        trace.append(
            f"=> {winner.decision}"
            + (f" by {winner.rule.id}" if winner.rule else " by defaultAction")
        )
    return Verdict(
        action=normalised.action,
        decision=winner.decision,
        allowed=winner.decision == "allow" or policy.mode == "audit",
        rule=winner.rule.id if winner.rule else None,
        reason=reason,
        risk=winner.rule.risk if winner.rule else None,
        mode=policy.mode,
        policy_hash=policy.hash,
        request=normalised.record,
        parsed=parsed,
        decisions=tuple(decisions),
        trace=tuple(trace or ()),
    )


def _with_view(main: SubjectDecision, view: SubjectDecision) -> SubjectDecision:
    """``main`` decided with the deny or approval rule another view of it matched.

    The precedence of one subject: a deny rule over an approval rule over the rest (an
    allow rule, or the defaultAction: a rule that matched the request, in any view,
    decides rather than the default), and among rules of one kind the first in the
    file.
    """
    main_rank, view_rank = _rank(main), _rank(view)
    if view_rank > main_rank:
        return view
    if view_rank == main_rank and main.rule is not None and view.rule is not None:
        return view if view.rule.index < main.rule.index else main
    return main


def _rank(decided: SubjectDecision) -> int:
    if decided.rule is None or decided.decision == "allow":
        return 0
    return 2 if decided.decision == "deny" else 1


def _restricts(decided: SubjectDecision) -> bool:
    """A deny or an approval that a deny or require_approval rule asked for."""
    return (
        decided.rule is not None
        and decided.decision != "allow"
        and decided.rule.decision != "allow"
    )


def evaluate_request(
    policy: CompiledPolicy,
    body: Mapping[str, Any],
    *,
    identity: str = "",
    explain: bool = False,
    exhausted: Exhausted | None = None,
) -> Verdict:
    """Parse, normalise and decide ``body``. Raises ``RequestError`` for a bad request."""
    parsed = parse_request(body)
    return decide(
        policy, normalise_request(parsed, identity), parsed, explain=explain, exhausted=exhausted
    )
