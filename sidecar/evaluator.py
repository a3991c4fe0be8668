"""Decide one subject against a compiled policy (CONTRACT section 1, "Precedence").

Pure: no I/O, no clock, no globals, importable without Starlette. Precedence does not
depend on rule order: any matching ``deny`` wins; else any matching
``require_approval``; else any matching ``allow``; else ``defaultAction``. The rule
reported is the first matching rule of the winning kind in file order. An allow rule
whose rate limit is spent counts as a matching deny; whether it is spent is the
caller's state, passed in as ``exhausted``. So does a rate-limited allow rule matching
a subject that may happen an unknown number of times (``Subject.repeated``: a command
in a loop, run by ``xargs`` ...): its tokens cannot be counted. That needs no state,
so it holds with or without ``exhausted`` (``tollgate policy test`` agrees with the gate).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import NamedTuple

from sidecar.policy.compiler import CompiledPolicy, CompiledRule
from sidecar.subject import PROCESS_EXEC, FieldValues, Subject

STRICTNESS = {"allow": 0, "require_approval": 1, "deny": 2}
_VERBS = {"allow": "allows", "deny": "denies", "require_approval": "requires approval for"}

Exhausted = Callable[[CompiledRule], bool]


class SubjectDecision(NamedTuple):
    """The decision for one subject, the rule behind it (None: defaultAction) and why.

    A named tuple rather than a frozen dataclass: as immutable, and built several
    times faster, which counts on the path every check takes.
    """

    decision: str
    rule: CompiledRule | None
    reason: str
    subject: Subject
    rate_limited: bool = False


def describe_target(subject: Subject) -> str:
    """A short human description of what the subject acts on, for reasons."""
    fields = subject.fields
    if subject.constructs:
        return f"{', '.join(subject.constructs)} in {subject.label or 'the command'}"
    if "path" in fields and subject.action.startswith("file."):
        return fields["path"][0]
    if subject.action == PROCESS_EXEC:
        return subject.label or " ".join(fields.get("command", ()) + fields.get("args", ()))
    if "host" in fields:
        port = fields.get("port", ("",))[0]
        return fields["host"][0] + (f":{port}" if port else "")
    if "verb" in fields:
        if "resource" not in fields:
            return f"{fields['verb'][0]} {fields.get('path', ('',))[0]}"
        where = "/".join(fields[k][0] for k in ("namespace", "name") if fields.get(k, ("",))[0])
        group = fields.get("group", ("",))[0]
        resource = fields["resource"][0] + (f".{group}" if group else "")
        return f"{fields['verb'][0]} {resource}" + (f" {where}" if where else "")
    return subject.label or subject.action


def command_forms(argv0: str, trusted_paths: tuple[str, ...]) -> FieldValues:
    """The names a rule's ``command`` can match for this argv[0].

    A bare name stays itself (resolved from PATH). An absolute path inside a trusted
    directory also matches its bare name; any other path (``/tmp/x/git``, a normalised
    ``./git``) only matches a rule that spells that exact path.
    """
    if "/" not in argv0:
        return (argv0,)
    directory, _, name = argv0.rpartition("/")
    if name and (directory or "/") in trusted_paths:
        return (argv0, name)
    return (argv0,)


def _fields_for(policy: CompiledPolicy, subject: Subject) -> Mapping[str, FieldValues]:
    fields = subject.fields
    if subject.action != PROCESS_EXEC or "command" not in fields or subject.constructs:
        return fields
    return {**fields, "command": command_forms(fields["command"][0], policy.trusted_paths)}


def _rule_matches(rule: CompiledRule, fields: Mapping[str, FieldValues]) -> bool:
    for test in rule.tests:
        values = fields.get(test.field)
        if values is None or not test.test(values):
            return False
    return True


def _explain_rule(rule: CompiledRule, fields: Mapping[str, FieldValues]) -> str:
    for test in rule.tests:
        values = fields.get(test.field)
        if values is None:
            return f"no match: the request has no {test.field}"
        if not test.test(values):
            shown = json.dumps(list(values) if len(values) != 1 else values[0], ensure_ascii=False)
            return f"no match: {test.field} {shown} does not match {test.text}"
    return "match"


def _reason(
    policy: CompiledPolicy,
    subject: Subject,
    rule: CompiledRule | None,
    decision: str,
    rate_limited: bool,
) -> str:
    if rule is not None and rule.reason and not rate_limited:
        return rule.reason
    target = describe_target(subject)
    if rate_limited and rule is not None:
        assert rule.rate_limit is not None
        limit = rule.rate_limit.text
        if subject.repeated:
            return (
                f"rate limit {limit} of rule {rule.id} cannot count {subject.action} of "
                f"{target}: it may run an unknown number of times ({subject.repeated})"
            )
        return f"rate limit {limit} of rule {rule.id} is spent for {subject.action} of {target}"
    if rule is None:
        if decision == "allow":
            return f"no rule matches {subject.action} of {target}; defaultAction is allow"
        return f"no rule allows {subject.action} of {target}"
    return f"rule {rule.id} {_VERBS[decision]} {subject.action} of {target}"


def evaluate_subject(
    policy: CompiledPolicy,
    subject: Subject,
    *,
    exhausted: Exhausted | None = None,
    trace: list[str] | None = None,
) -> SubjectDecision:
    """Decide ``subject``. With ``trace`` given, every rule considered is explained into it."""
    fields = _fields_for(policy, subject)
    rules = policy.by_action.get(subject.action)
    if rules is None:
        # Normalisation only produces known actions; an unknown one can only be denied.
        return SubjectDecision("deny", None, f"unknown action {subject.action}", subject)
    if trace is not None:
        for rule in policy.rules:
            if subject.action in rule.actions:
                trace.append(f"  {rule.id} [{rule.decision}]: {_explain_rule(rule, fields)}")
    check_limits = policy.has_rate_limits
    # A subject that only restricts (a path as written, a URL path as sent) is decided
    # by deny and require_approval rules alone. An allow rule's spent budget must not
    # stop the scan there: it would hide a later deny and drop a matched approval, and
    # the engine then discards the subject as not restricting.
    restrictions_only = subject.restrictions_only
    approval: CompiledRule | None = None
    allow: CompiledRule | None = None
    # In file order, so the first match of each kind is the one to report. The deny kind
    # (a deny rule, or an allow rule whose rate limit is spent or cannot count a
    # repeated subject) wins outright.
    for rule in rules.index.candidates(fields):
        if rule.decision == "deny":
            if _rule_matches(rule, fields):
                return _decided(policy, subject, "deny", rule)
        elif rule.decision == "require_approval":
            if approval is None and _rule_matches(rule, fields):
                approval = rule
        elif restrictions_only:
            continue
        elif check_limits and rule.rate_limit is not None:
            if _rule_matches(rule, fields):
                if subject.repeated or (exhausted is not None and exhausted(rule)):
                    return _decided(policy, subject, "deny", rule, rate_limited=True)
                if allow is None and _may_allow(rule, subject):
                    allow = rule
        elif (
            allow is None
            and approval is None
            and _may_allow(rule, subject)
            and _rule_matches(rule, fields)
        ):
            allow = rule
    if approval is not None:
        return _decided(policy, subject, "require_approval", approval)
    if allow is not None:
        return _decided(policy, subject, "allow", allow)
    decision = policy.default_action
    if subject.constructs and decision == "allow":
        decision = "deny"  # never allow an unanalysable construct by default
    return _decided(policy, subject, decision, None)


def _may_allow(rule: CompiledRule, subject: Subject) -> bool:
    """Only a rule naming a construct can allow what cannot be analysed statically."""
    return not subject.constructs or all(rule.names_construct(c) for c in subject.constructs)


def _decided(
    policy: CompiledPolicy,
    subject: Subject,
    decision: str,
    rule: CompiledRule | None,
    *,
    rate_limited: bool = False,
) -> SubjectDecision:
    reason = _reason(policy, subject, rule, decision, rate_limited)
    return SubjectDecision(decision, rule, reason, subject, rate_limited)


def matching_allow_rules(policy: CompiledPolicy, subject: Subject) -> tuple[CompiledRule, ...]:
    """Every allow rule with a rate limit that matches ``subject`` (to spend tokens)."""
    fields = _fields_for(policy, subject)
    rules = policy.by_action.get(subject.action)
    if rules is None:
        return ()
    return tuple(
        r
        for r in rules.index.candidates(fields)
        if r.decision == "allow" and r.rate_limit is not None and _rule_matches(r, fields)
    )
