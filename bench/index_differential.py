"""Differential check: the indexed evaluator against a plain scan of every rule.

Random policies (globs, prefixes, suffixes, lists, regexes, CIDRs, ``not``, rate limits)
and random subjects (paths, hosts with their IPv4 forms, the decoded and ``;``-stripped
forms of URL paths, commands with arguments and constructs); ``evaluate_subject`` must name the decision and the rule that a scan of the
action's rules in file order names. Run by hand after touching the index, the matchers
or the glob compiler (it is not a benchmark and not part of the test run):

    python -m bench.index_differential [seed] [policies]
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from typing import Any

import yaml

from sidecar.errors import PolicyError
from sidecar.evaluator import _fields_for, _rule_matches, evaluate_subject
from sidecar.normalise.hosts import canonical_host, host_forms
from sidecar.normalise.request import normalise_request
from sidecar.policy.compiler import CompiledPolicy, CompiledRule
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import CheckRequest
from sidecar.subject import Subject

# A newline is an ordinary character of a request's path; a rule's value may not hold
# one (a YAML block's slip, refused since the review of 2026-12-07), so only requests
# carry it.
RULE_SEGMENTS = ["a", "b", "ab", ".ssh", "x.y", "c"]
SEGMENTS = [*RULE_SEGMENTS, "n\nl"]
LABELS = ["a", "b", "ex", "com", "svc"]
TOKENS = ["run", "-x", "a", "b"]
# URL path segments a server may read as more, fewer or other segments (decoded, or
# without ";" parameters): every subject a URL yields is checked.
URL_SEGMENTS = ["a", "b", "ab", "a%2Fb", "%2Fa", "a;x", ";v=1", "x%20y", "c%3Bd", ".ssh"]


def scan(
    policy: CompiledPolicy, subject: Subject, exhausted: Callable[[CompiledRule], bool] | None
) -> tuple[str, str | None]:
    """CONTRACT section 1 precedence, read literally, over every rule of the action.

    A subject that only restricts (a path as written, a URL path as sent) is decided by
    deny and require_approval rules alone: allow rules, spent or not, do not see it.
    """
    fields = _fields_for(policy, subject)
    rules = [r for r in policy.rules if subject.action in r.actions]
    if subject.restrictions_only:
        rules = [r for r in rules if r.decision != "allow"]
    for rule in rules:
        spent = rule.decision == "allow" and rule.rate_limit and exhausted and exhausted(rule)
        if (rule.decision == "deny" or spent) and _rule_matches(rule, fields):
            return "deny", rule.id
    for rule in rules:
        if rule.decision == "require_approval" and _rule_matches(rule, fields):
            return "require_approval", rule.id
    for rule in rules:
        names_all = all(rule.names_construct(c) for c in subject.constructs)
        if rule.decision == "allow" and names_all and _rule_matches(rule, fields):
            return "allow", rule.id
    if subject.constructs:
        return "deny", None
    return policy.default_action, None


class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def path(self, segments: list[str] = SEGMENTS) -> str:
        return "/" + "/".join(self.rng.choice(segments) for _ in range(self.rng.randint(0, 4)))

    def rule_path(self) -> str:
        return self.path(RULE_SEGMENTS)

    def host(self) -> str:
        return ".".join(self.rng.choice(LABELS) for _ in range(self.rng.randint(1, 4)))

    def path_glob(self) -> str:
        choices = [*RULE_SEGMENTS, "*", "**", "a*", "*.y", "?b", "[ab]"]
        parts = [self.rng.choice(choices) for _ in range(self.rng.randint(1, 4))]
        relative = parts[0] == "**" and self.rng.random() < 0.5
        return ("" if relative else "/") + "/".join(parts)

    def host_glob(self) -> str:
        choices = [*LABELS, "*", "**", "e*", "?"]
        return ".".join(self.rng.choice(choices) for _ in range(self.rng.randint(1, 4)))

    def path_matcher(self) -> Any:
        return self.rng.choice(
            [
                lambda: self.rule_path(),
                lambda: [self.rule_path() for _ in range(self.rng.randint(1, 3))],
                lambda: {"glob": self.path_glob()},
                lambda: {"startsWith": self.rule_path() + self.rng.choice(["", "/", "x"])},
                lambda: {"glob": self.path_glob(), "not": {"glob": self.path_glob()}},
                lambda: {"not": {"equals": self.rule_path()}},
                lambda: {"regex": "/a.*"},
            ]
        )()

    def host_matcher(self) -> Any:
        return self.rng.choice(
            [
                lambda: self.host(),
                lambda: [self.host() for _ in range(self.rng.randint(1, 3))],
                lambda: {"glob": self.host_glob()},
                lambda: {"endsWith": self.rng.choice([".", ""]) + self.host()},
                lambda: {"in": [self.host(), self.host()], "endsWith": self.host()},
                lambda: {"cidr": "10.0.0.0/8"},
                lambda: {"cidr": ["127.0.0.0/8", "::1/128"]},
                lambda: self.rng.choice(["127.0.0.1", "::1", "0.0.0.0"]),
                lambda: {"not": {"glob": self.host_glob()}},
            ]
        )()

    def args_matcher(self) -> Any:
        return self.rng.choice(
            [
                lambda: self.rng.choice(TOKENS),
                lambda: {"prefix": self.rng.sample(TOKENS, self.rng.randint(0, 2))},
                lambda: {"equals": self.rng.sample(TOKENS, self.rng.randint(0, 2))},
                lambda: [self.rng.choice(TOKENS), self.rng.choice(TOKENS)],
            ]
        )()

    def rule(self, index: int) -> dict[str, Any]:
        rng = self.rng
        rule: dict[str, Any] = {
            "id": f"r{index}",
            "decision": rng.choice(["allow", "allow", "deny", "require_approval"]),
        }
        family = rng.randrange(3)
        if family == 0:
            rule["action"] = rng.choice(["file.read", "file.*", ["file.read", "file.write"]])
            if rng.random() < 0.9:
                rule["path"] = self.path_matcher()
        elif family == 1:
            rule["action"] = "network.request"
            if rng.random() < 0.9:
                rule["host"] = self.host_matcher()
            if rng.random() < 0.3:
                rule["port"] = rng.choice([443, 80])
            if rng.random() < 0.2:
                rule["path"] = self.path_matcher()
        else:
            rule["action"] = "process.exec"
            if rng.random() < 0.9:
                commands = ["git", ["git", "make"], {"in": ["rm", "git"]}, "/usr/bin/git"]
                rule["command"] = rng.choice([*commands, {"glob": "g*"}, {"not": "rm"}])
            if rng.random() < 0.5:
                rule["args"] = self.args_matcher()
            if rng.random() < 0.2:
                rule["cwd"] = self.path_matcher()
        if rule["decision"] == "allow" and rng.random() < 0.1:
            rule["rateLimit"] = {"count": 1, "per": "60s"}
        return rule

    def subject(self) -> Subject:
        rng = self.rng
        family = rng.randrange(3)
        if family == 0:
            action = rng.choice(["file.read", "file.write"])
            return Subject(action, {"path": (self.path(),), "agent": ("me",)})
        if family == 1 and rng.random() < 0.25:
            path = "/".join(rng.choice(URL_SEGMENTS) for _ in range(rng.randint(0, 4)))
            request = CheckRequest(action="network.request", url=f"http://{self.host()}/{path}")
            return rng.choice(normalise_request(request, "me").subjects)
        if family == 1:
            host = rng.choice([self.host(), "10.1.2.3", "::ffff:10.0.0.1", "0.0.0.0", "::"])
            forms = host_forms(canonical_host(host))
            fields = {"host": forms, "port": (rng.choice(["443", "80"]),), "agent": ("me",)}
            if rng.random() < 0.5:
                fields["path"] = (self.path(),)
            return Subject("network.request", fields)
        argv0 = rng.choice(["git", "/usr/bin/git", "make", "rm", "/tmp/git", "eval"])
        args = tuple(rng.choice(TOKENS) for _ in range(rng.randint(0, 3)))
        fields = {"command": (argv0,), "args": args, "agent": ("me",)}
        if rng.random() < 0.3:
            fields["cwd"] = (self.path(),)
        constructs = ("eval",) if argv0 == "eval" and rng.random() < 0.5 else ()
        return Subject("process.exec", fields, constructs=constructs)


def run(seed: int, count: int) -> tuple[int, int]:
    """Check ``count`` random policies; return (valid policies, subjects checked)."""
    generate = Generator(random.Random(seed))
    policies = checks = 0
    for _ in range(count):
        rules = [generate.rule(i) for i in range(generate.rng.randint(1, 40))]
        default = generate.rng.choice(["deny", "allow"])
        document = {"version": 1, "defaultAction": default, "rules": rules}
        try:
            policy = load_policy_bytes(yaml.safe_dump(document).encode(), "random.yaml")
        except PolicyError:
            continue  # the generator also writes invalid policies; they prove nothing here
        policies += 1
        spent = frozenset(r.id for r in policy.rules if generate.rng.random() < 0.5)

        def exhausted(rule: CompiledRule, spent: frozenset[str] = spent) -> bool:
            return rule.id in spent

        limits = exhausted if generate.rng.random() < 0.5 else None
        for _ in range(30):
            subject = generate.subject()
            got = evaluate_subject(policy, subject, exhausted=limits)
            want = scan(policy, subject, limits)
            if (got.decision, got.rule.id if got.rule else None) != want:
                raise AssertionError(f"{document}\n{subject}\nindexed: {got}\nscan: {want}")
            checks += 1
    return policies, checks


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    policies, checks = run(seed, count)
    print(f"seed {seed}: {policies} policies, {checks} subjects, indexed == scan for all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
