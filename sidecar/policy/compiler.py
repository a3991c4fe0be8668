"""From a validated ``PolicyDocument`` to a ``CompiledPolicy`` ready to evaluate.

Checks what the schema cannot (CONTRACT section 1, "Validation is strict"): known
actions, matchers only on fields the action has, valid globs / RE2 regexes / CIDRs,
unique rule ids, rateLimit on allow rules only. Rules are compiled once and indexed by
action, then by the literal values, path prefixes and host suffixes their matchers
require (``sidecar.policy.index``), so evaluating a request costs the rules that could
match it, not every rule.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter
from urllib.parse import urlsplit

import re2

from sidecar.canonical import canonical_bytes
from sidecar.errors import RequestError
from sidecar.keys import KeyFileError, public_key_from_base64
from sidecar.normalise.k8s import K8sAttributes, resolve_request
from sidecar.normalise.paths import lexical_path, normalise_path
from sidecar.normalise.urls import canonical_escape
from sidecar.policy.glob import POSIX_CLASSES
from sidecar.policy.index import RuleIndex
from sidecar.policy.matchers import (
    BudgetError,
    CompileBudget,
    FieldTest,
    MatcherError,
    blank_end_problem,
    compile_matcher,
)
from sidecar.policy.schema import (
    MATCHABLE_FIELDS,
    MAX_APPROVAL_TIMEOUT,
    MAX_RATE_LIMIT_WINDOW,
    Approvals,
    Matcher,
    MatcherSpec,
    PolicyDocument,
    Rule,
    parse_duration,
)
from sidecar.subject import (
    ACTION_FIELDS,
    ACTIONS,
    FILE_ACTIONS,
    K8S_REQUEST,
    NETWORK_REQUEST,
    FieldValues,
)

DEFAULT_TRUSTED_PATHS = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    count: int
    per_seconds: float
    text: str  # as written, e.g. "60/60s"
    # Whose budget this is across reloads: the rule's id, or for a rule without one its
    # content. A default id (rules[3]) names a position, which an edit elsewhere moves.
    owner: str


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    index: int
    id: str
    actions: frozenset[str]
    decision: str  # allow | deny | require_approval
    tests: tuple[FieldTest, ...]
    reason: str | None
    risk: str | None
    rate_limit: RateLimitSpec | None

    def names_construct(self, name: str) -> bool:
        """True if this rule's ``command`` matcher names ``name`` exactly (eval, ...)."""
        return any(t.field == "command" and name in t.literal_names for t in self.tests)


@dataclass(frozen=True, slots=True)
class ActionRules:
    """The rules that can apply to one action: by decision, each in file order, and indexed."""

    deny: tuple[CompiledRule, ...]
    require_approval: tuple[CompiledRule, ...]
    allow: tuple[CompiledRule, ...]
    index: RuleIndex

    @classmethod
    def of(cls, rules: list[CompiledRule]) -> ActionRules:
        return cls(
            deny=tuple(r for r in rules if r.decision == "deny"),
            require_approval=tuple(r for r in rules if r.decision == "require_approval"),
            allow=tuple(r for r in rules if r.decision == "allow"),
            index=RuleIndex(rules),
        )


@dataclass(frozen=True)
class CompiledPolicy:
    source: str
    hash: str  # "sha256:<hex of the file bytes>"
    default_action: str
    mode: str
    rules: tuple[CompiledRule, ...]
    by_action: Mapping[str, ActionRules]
    trusted_paths: tuple[str, ...]
    approvals: Approvals | None
    approval_timeout: float
    warnings: tuple[str, ...] = field(default=())
    has_rate_limits: bool = False


# What a policy's compiled matchers may take, as matchers.CompileBudget estimates it.
# Memory follows the matchers and their RE2 programs, not the rule count: 3,000 rules of
# '.{1000}' took 800 MB, 3,900 globs of 1,000 '?' 1.6 GB, 10,000 rules of seven small
# regexes 340 MB. A reload holds two policies for a moment (docs/deploy.md, "Memory").
MAX_COMPILED_BYTES = 48 * 2**20


# The matchers of a rule, in MATCHABLE_FIELDS order, in one call.
_matchers_of = attrgetter(*MATCHABLE_FIELDS)


def rule_label(index: int, rule_id: str | None) -> str:
    return f"rules[{index}]" + (f" (id {rule_id!r})" if rule_id else "")


def _expand_actions(written: str | list[str]) -> tuple[list[str], list[str], list[str]]:
    """Return (explicit actions, wildcard-expanded actions, errors)."""
    explicit: list[str] = []
    expanded: list[str] = []
    errors: list[str] = []
    for name in [written] if isinstance(written, str) else written:
        if any(c in name for c in "*?["):
            found = [a for a in ACTIONS if fnmatchcase(a, name)]
            if not found:
                errors.append(f"action: wildcard {name!r} matches no action")
            expanded.extend(a for a in found if a not in expanded)
        elif name in ACTIONS:
            explicit.append(name)
        else:
            errors.append(f"action: unknown action {name!r} (known: {', '.join(ACTIONS)})")
    if isinstance(written, list) and not written:
        errors.append("action: the list is empty")
    return explicit, expanded, errors


def _budget_owner(rule: Rule) -> str:
    if rule.id is not None:
        return f"id {rule.id}"
    content = rule.model_dump(mode="json", exclude={"rateLimit"}, exclude_none=True)
    return "content " + hashlib.sha256(canonical_bytes(content)).hexdigest()


def _any_argument(matcher: Matcher) -> bool:
    """True if an ``args`` matcher holds for a list of any length in which one argument
    matches, nothing pinning the list: a bare value or list (read as an argv, it is not),
    or operators without ``prefix`` or a list ``equals``."""
    if not isinstance(matcher, MatcherSpec):
        return True
    if matcher.prefix is not None or isinstance(matcher.equals, list):
        return False
    positive = (matcher.equals, matcher.in_, matcher.glob, matcher.startsWith)
    return any(op is not None for op in (*positive, matcher.endsWith, matcher.regex))


def _literal_wildcards(matcher: Matcher) -> list[str]:
    """Values of ``matcher`` compared as written (bare, list, equals, in) that hold a
    glob character, in ``not`` too."""
    if isinstance(matcher, list):
        written: list[object] = list(matcher)
    elif not isinstance(matcher, MatcherSpec):
        written = [matcher]
    else:
        written = [*(matcher.in_ or [])]
        if matcher.equals is not None and not isinstance(matcher.equals, list):
            written.append(matcher.equals)
        if matcher.not_ is not None:
            written.extend(_literal_wildcards(matcher.not_))
    return [v for v in written if isinstance(v, str) and any(c in v for c in "*?[")]


def _literal_wildcard_warnings(rule: Rule) -> list[str]:
    """A path or command written like a glob but compared as written.

    A file name can hold "*", so this is valid; but ``path: "/etc/**"`` in a deny rule
    most likely meant the glob, and as written denies nothing below /etc.
    """
    warnings = []
    for name in ("path", "cwd", "command"):
        matcher = getattr(rule, name)
        if matcher is None:
            continue
        for value in _literal_wildcards(matcher):
            warnings.append(
                f"{name}: {value!r} is compared as written, '*', '?' and '[' included; "
                f"for a pattern write {{glob: {value!r}}}"
            )
    return warnings


# A brace list as gitignore, minimatch and the shells expand it: "/proc/*/{root,cwd}/**".
_BRACE_LIST = re.compile(r"\{[^{}]*,[^{}]*\}")


def _globs(matcher: Matcher) -> list[str]:
    """The ``glob`` values of ``matcher``, in ``not`` too."""
    if not isinstance(matcher, MatcherSpec):
        return []
    found = [matcher.glob] if matcher.glob is not None else []
    if matcher.not_ is not None:
        found.extend(_globs(matcher.not_))
    return found


def _brace_glob_warnings(matchers: list[tuple[str, Matcher]]) -> list[str]:
    """Globs holding a brace list, which the contract's glob matches as written.

    A deny of ``/proc/*/{root,cwd}/**`` matches only a directory named "{root,cwd}":
    valid, but almost surely meant as two patterns.
    """
    warnings = []
    for name, matcher in matchers:
        for value in _globs(matcher):
            if _BRACE_LIST.search(value):
                warnings.append(
                    f"{name}: glob {value!r} holds a brace list, which a glob matches as "
                    "written (no alternation); write a rule per alternative or a regex"
                )
    return warnings


# A host label an IPv4 address could have: digits, or wildcards and digits ("*", "1?").
_ADDRESS_LABEL = re.compile(r"[0-9*?]+")
# The start of an address as inet_aton reads one: labels of digits (or hex), then a dot.
_ADDRESS_START = re.compile(r"(?:(?:0x[0-9a-f]*|[0-9]+)\.)+(?:0x?[0-9a-f]*|[0-9]*)")


def _operator_values(matcher: Matcher | None, operator: str) -> list[str]:
    """The values of one operator of ``matcher`` (``glob``, ``startsWith``), in ``not`` too."""
    if not isinstance(matcher, MatcherSpec):
        return []
    found = [getattr(matcher, operator)] if getattr(matcher, operator) is not None else []
    if matcher.not_ is not None:
        found.extend(_operator_values(matcher.not_, operator))
    return found


def _address_pattern_warnings(host: Matcher | None) -> list[str]:
    """Host patterns that look meant for IPv4 addresses but can only match names.

    Requests hold an address as four decimal octets (``0177.1`` is ``127.0.0.1``) and
    a glob's ``*`` stays within one label, so ``127.*`` matches the name ``127.example``
    and never the address ``127.0.0.1``; a deny so written denies no address at all.
    ``_check_ipv4_glob`` refuses a glob with an octet no address holds; these are valid
    patterns for names, so they are warned of, not refused.
    """
    warnings = []
    for glob in _operator_values(host, "glob"):
        labels = glob.split(".")
        if (
            "**" not in glob
            and any(character in glob for character in "*?[")  # else read as an address
            and len(labels) < 4
            and all(_ADDRESS_LABEL.fullmatch(label) for label in labels)
            and any(character.isdigit() for character in glob)
        ):
            meant = ".".join(labels + ["*"] * (4 - len(labels)))
            warnings.append(
                f"host: glob {glob!r} matches names of {len(labels)} labels only ('*' "
                "stays within a label), never an IPv4 address, which a request holds as "
                f"four decimal octets; for addresses write {meant!r} or a cidr"
            )
    for start in _operator_values(host, "startsWith"):
        whole_labels = start.split(".")[:-1]
        if _ADDRESS_START.fullmatch(start) and any(
            not label.isdigit() or str(int(label)) != label or int(label) > 255
            for label in whole_labels
        ):
            warnings.append(
                f"host: startsWith {start!r} never matches an IPv4 address, which a request "
                "holds as four decimal octets without leading zeros (0177.0.0.1 is "
                "127.0.0.1); write a cidr"
            )
    return warnings


def _written_values(matcher: Matcher) -> list[str]:
    """The strings of ``matcher`` compared with a path as written (not its regexes)."""
    if isinstance(matcher, str):
        return [matcher]
    if isinstance(matcher, list):
        return [v for v in matcher if isinstance(v, str)]
    if not isinstance(matcher, MatcherSpec):
        return []
    found = [*_written_values(matcher.equals or []), *_written_values(matcher.in_ or [])]
    found += [v for v in (matcher.glob, matcher.startsWith, matcher.endsWith) if v is not None]
    if matcher.not_ is not None:
        found += _written_values(matcher.not_)
    return found


def _operator_strings(matcher: Matcher) -> list[tuple[str, str]]:
    """Every string of ``matcher`` with the operator it is given to, in ``not`` too."""
    if isinstance(matcher, str):
        return [("equals", matcher)]
    if isinstance(matcher, list):
        return [("in", v) for v in matcher if isinstance(v, str)]
    if not isinstance(matcher, MatcherSpec):
        return []
    found = [("equals", v) for v in _as_list(matcher.equals) if isinstance(v, str)]
    found += [("in", v) for v in matcher.in_ or [] if isinstance(v, str)]
    for operator in ("glob", "startsWith", "endsWith", "regex"):
        if getattr(matcher, operator) is not None:
            found.append((operator, getattr(matcher, operator)))
    found += [("cidr", v) for v in _as_list(matcher.cidr) if isinstance(v, str)]
    found += [("prefix", v) for v in matcher.prefix or []]
    if matcher.not_ is not None:
        found += _operator_strings(matcher.not_)
    return found


def _inner_line_break_problems(field: str, matcher: Matcher) -> list[str]:
    """A value or pattern holding a line break inside, as a YAML ``|`` block over two
    lines leaves (``path: |-`` then ``/etc/shadow`` and ``/etc/gshadow``): one value that
    no path, name or host holds, so a deny so written never matched. Its ends are
    refused by the matchers (``_refuse_blank_ends``). An argument may hold a line break
    (``git commit -m``); a regex that must match one writes ``\n``."""
    if field == "args":
        return []
    return [
        f"{operator}: {value!r} holds a line break: a YAML `|` or `>` block is one value, "
        "not one per line; for several values write a list (`in: [a, b]` or one item a "
        "line after `-`), and a regex that must match a line break writes `\\n`"
        for operator, value in _operator_strings(matcher)
        if any(b in value.strip("\r\n") for b in "\r\n")
    ]


# A percent-escape, or a '%' without two hex digits after it.
_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2})?")


def _url_path_escape_problems(matcher: Matcher) -> list[str]:
    """Path values a URL's path can never equal: an escape in lower-case hex (``%2f``) or
    of a letter, digit or ``-._~`` (``%7E``), which requests hold as ``%2F`` and ``~``
    (sidecar.normalise.urls), or a '%' without two hex digits, which is refused."""
    problems = []
    for value in _written_values(matcher):
        if "%" not in value:
            continue
        if any(len(escape) < 3 for escape in _ESCAPE.findall(value)):
            problems.append(
                f"{value!r} holds a '%' without two hex digits after it, which no URL "
                "path holds (such a request is refused); write '%25' for a '%'"
            )
            continue
        canonical = _ESCAPE.sub(lambda match: canonical_escape(match.group()), value)
        if canonical != value:
            problems.append(
                f"{value!r} never matches a URL's path, whose escapes are matched in "
                "upper-case hex and with letters, digits and '-._~' unescaped; write "
                f"{canonical!r}"
            )
    return problems


def _broad_allow_warnings(rule: Rule, used: list[str]) -> list[str]:
    """Valid allow rules that probably allow more than their author meant."""
    warnings = []
    if not used:
        warnings.append("no conditions: the rule allows every request of its actions")
    for name in used:
        spec = getattr(rule, name)
        if not isinstance(spec, MatcherSpec):
            continue
        # Every value starts and ends with "": the operator is no condition (and "" is
        # falsy, so the checks below would pass it over in silence).
        for operator, value, affix in (
            ("startsWith", spec.startsWith, "prefix"),
            ("endsWith", spec.endsWith, "suffix"),
        ):
            if value == "":
                warnings.append(
                    f"{name}: {operator} '' holds for every value, so it is no condition; "
                    f"give the {affix} meant, or leave the operator out"
                )
    for name in ("path", "cwd"):
        spec = getattr(rule, name)
        if isinstance(spec, MatcherSpec) and spec.startsWith and not spec.startsWith.endswith("/"):
            prefix = spec.startsWith
            warnings.append(
                f"{name}: startsWith {prefix!r} also matches {prefix + 'x'!r}; end it with "
                f"'/' or write {{glob: {prefix.rstrip('/') + '/**'!r}}}"
            )
        if isinstance(spec, MatcherSpec) and spec.glob:
            warnings.extend(f"{name}: {w}" for w in _path_glob_warnings(spec.glob))
        if isinstance(spec, MatcherSpec) and (
            spec.startsWith == "/"
            or (spec.regex or "").removeprefix("^").removesuffix("$") in (".*", "/.*", ".+", "/.+")
        ):
            operator = "startsWith" if spec.startsWith == "/" else "regex"
            value = spec.startsWith if operator == "startsWith" else spec.regex
            warnings.append(f"{name}: {operator} {value!r} matches every path")
    command = rule.command
    if isinstance(command, MatcherSpec):
        # A bare name matches only argv[0] as a name or in a trusted directory, but an
        # operator sees an untrusted program's absolute path too, and only a glob's "*"
        # stops at its "/".
        if command.endsWith and "/" not in command.endsWith:
            warnings.append(
                f"command: endsWith {command.endsWith!r} also matches "
                f"{'/tmp/x/evil' + command.endsWith!r} (a program in any directory); "
                f"write {{glob: {'*' + command.endsWith!r}}} for names in trusted directories"
            )
        if command.glob and "**" in command.glob and "/" not in command.glob:
            warnings.append(
                f"command: glob {command.glob!r} also matches a program's path in any "
                f"directory ('**' crosses '/'); write {command.glob.replace('**', '*')!r} "
                "for names in trusted directories"
            )
        if command.regex:
            warnings.append(
                f"command: regex {command.regex!r} is also tried on the absolute path of a "
                "program in any directory (/tmp/x/...), not only on names in trusted "
                "directories; a glob without '/' matches names only"
            )
    host = rule.host
    if isinstance(host, MatcherSpec) and host.endsWith and not host.endsWith.startswith("."):
        suffix = host.endsWith
        warnings.append(
            f"host: endsWith {suffix!r} also matches {'evil' + suffix!r}; write "
            f"'.{suffix}' for its subdomains or {{glob: {'*.' + suffix!r}}}"
        )
    return warnings


def _host_pattern_warnings(host: MatcherSpec, test: Callable[[FieldValues], bool]) -> list[str]:
    """A host glob or regex of an allow rule that also matches a domain anyone can
    register, as ``endsWith: example.com`` does (``_broad_allow_warnings``).

    Told by what the compiled matcher does on samples: ``evil`` before the pattern's
    literal end when that end does not start at a label (``*example.com``), and for a
    regex its literal with one unescaped ``.`` made ``-`` (``api.github.com``)."""
    warnings = []
    if host.glob is not None:
        found = _host_glob_sample(host.glob)
        if found is not None and test((found[0],)):
            sample, fixed = found
            warnings.append(
                f"host: glob {host.glob!r} also matches {sample!r}; write {fixed!r} for "
                "its subdomains"
            )
    if host.regex is not None:
        literal, unescaped = _host_regex_literal(host.regex)
        # Only a domain's name: "evil" before ".example.com" is one of its subdomains.
        if "." in literal and literal[0].isalnum() and test(("evil" + literal,)):
            fixed = "(.*\\.)?" + literal.replace(".", "\\.")
            warnings.append(
                f"host: regex {host.regex!r} also matches {'evil' + literal!r}; start the "
                f"domain at a label, as in {fixed!r} for it and its subdomains"
            )
        for dot in unescaped:
            # A '.' first in the literal follows a wildcard (".*.example.com").
            made = literal[:dot] + "-" + literal[dot + 1 :] if dot else "evil" + literal[1:]
            taken = next((s for s in (made, "evil" + made) if test((s,))), None)
            if taken is not None:
                warnings.append(
                    f"host: regex {host.regex!r} also matches {taken!r}: an unescaped '.' "
                    "matches any character; write '\\.' for a dot"
                )
                break
    return warnings


def _host_glob_sample(glob: str) -> tuple[str, str] | None:
    """For a host glob whose text after its last '*' starts with a letter or digit and
    names a domain (``*example.com``): a host it may also match (``evilexample.com``)
    and the glob of that domain's subdomains (``*.example.com``)."""
    if any(c in glob for c in "[]{}\\"):
        return None  # classes and braces: no sample is written for them
    head, star, suffix = glob.rpartition("*")
    if not star or not suffix[:1].isalnum() or "." not in suffix or "?" in suffix:
        return None
    # The last '*' (with any '*' before it) is "evil"; other wildcards are one letter.
    sample = re.sub(r"\*+|\?", "x", head.rstrip("*")) + "evil" + suffix
    return sample.lower(), head + star + "." + suffix


# A regex token: an escape, a character class, or one character.
_REGEX_TOKEN = re.compile(r"\\.|\[(?:\\.|[^\]])*\]?|.", re.DOTALL)


def _host_regex_literal(regex: str) -> tuple[str, list[int]]:
    """The literal end of a host regex (``api.github.com`` of ``^api.github\\.com$``), in
    lower case, with the places of its unescaped '.' (read as the dots they look like)."""
    tokens = _REGEX_TOKEN.findall(regex)
    while tokens and tokens[-1] in ("$", "\\z"):
        tokens.pop()
    literal: list[str] = []
    unescaped: list[int] = []
    for token in reversed(tokens):
        if token == ".":
            unescaped.append(len(literal))
            literal.append(".")
        elif token in ("\\.", "\\-") or (len(token) == 1 and (token.isalnum() or token in "-_")):
            literal.append(token[-1])
        else:
            break  # a quantifier, group, class, anchor or '|': the literal starts after it
    literal.reverse()
    return "".join(literal).lower(), sorted(len(literal) - 1 - i for i in unescaped)


# Per action, the fields that name what its requests reach, what to call them in a
# warning, and what such a request reaches when a rule names none of them.
_TARGET_FIELDS: Mapping[str, tuple[frozenset[str], str, str]] = {
    NETWORK_REQUEST: (frozenset({"host"}), "a host", "requests to any host"),
    K8S_REQUEST: (
        frozenset({"resource", "verb", "path", "group", "version", "namespace", "name"}),
        "a resource, verb or path",
        "every Kubernetes request",
    ),
}


def _wildcard_reach_warnings(
    rule: Rule, used: list[str], explicit: list[str], fitting: list[str]
) -> list[str]:
    """An allow rule whose wildcard action takes in network.request with no host, or
    k8s.request with nothing naming a resource or path.

    A wildcard covers every action with the rule's fields, so ``action: "*"`` with
    ``path: /app/**``, written for files, also allows a request to any host whose URL
    path is under /app; one with only an ``agent`` allows every host and every
    Kubernetes request. An action also named outright is meant, and not warned of.
    """
    if not used:
        return []  # "no conditions" is warned of already
    taken = [
        action
        for action, (fields, _, _) in _TARGET_FIELDS.items()
        if action in fitting and action not in explicit and fields.isdisjoint(used)
    ]
    if not taken:
        return []
    written = [rule.action] if isinstance(rule.action, str) else rule.action
    wildcards = ", ".join(repr(name) for name in written if any(c in name for c in "*?["))
    lacking = " and ".join(f"{a} with no {_TARGET_FIELDS[a][1].removeprefix('a ')}" for a in taken)
    reach = " and ".join(_TARGET_FIELDS[a][2] for a in taken)
    if "path" in used and NETWORK_REQUEST in taken:
        reach = reach.replace("any host", "any host whose URL path it matches")
    fixes = [f"match {_TARGET_FIELDS[a][1]}" for a in taken]
    # What the rule was most likely written for: the actions it takes in that reach no server.
    meant = list(dict.fromkeys(a for a in explicit + fitting if a not in taken))
    meant = [a for a in meant if a in explicit or a not in _TARGET_FIELDS]
    if set(FILE_ACTIONS) <= set(meant):
        meant = ["file.*", *(a for a in meant if a not in FILE_ACTIONS)]
    if meant:
        listed = meant[0] if len(meant) == 1 else f"[{', '.join(meant)}]"
        fixes.insert(0, f"name the actions meant (action: {listed})")
    return [
        f"action: {wildcards} takes in {lacking}: the rule allows {reach}; {', or '.join(fixes)}"
    ]


def _hostless_request_warnings(rule: Rule, used: list[str], explicit: list[str]) -> list[str]:
    """An allow rule naming network.request outright that matches no host.

    ``{action: network.request, path: /api/**}`` allows that path on every host, as a
    wildcard action with no host does (``_wildcard_reach_warnings``).
    """
    if not used:
        return []  # "no conditions" is warned of already
    if NETWORK_REQUEST not in explicit or "host" in used:
        return []
    reach = "any host whose URL path it matches" if "path" in used else "any host"
    return [
        f"action: {NETWORK_REQUEST} with no host: the rule allows requests to {reach}; match a host"
    ]


# The first segments of the paths kube-apiserver serves outside its resources (its
# "GET /" lists them), and some such paths. A k8s.request has a path only when it is
# no resource request, so a path matcher matching none of these matches nothing the
# server answers but 404.
_NON_RESOURCE_ROOTS = frozenset(
    {"", "api", "apis", "healthz", "livez", "readyz", "version", "metrics", "openapi"}
    | {"logs", ".well-known", "openid", "debug"}
)
_NON_RESOURCE_PATHS = (
    "/",
    "/api",
    "/api/v1",
    "/apis",
    "/apis/apps",
    "/apis/apps/v1",
    "/apis/example.com/v1",
    "/version",
    "/healthz",
    "/healthz/etcd",
    "/livez",
    "/livez/ping",
    "/readyz",
    "/readyz/informer-sync",
    "/metrics",
    "/metrics/slis",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/api/v1",
    "/openapi/v3/apis/apps/v1",
    "/logs",
    "/logs/kube-apiserver.log",
    "/.well-known/openid-configuration",
    "/openid/v1/jwks",
    "/debug/pprof/profile",
    "/debug/flags/v",
)
# Where a word of a path pattern may stand in a resource request's path.
_RESOURCE_PLACES = (
    "/api/v1/{}",
    "/api/v1/namespaces/default/{}",
    "/api/v1/namespaces/default/{}/x",
    "/api/v1/namespaces/default/pods/x/{}",
    "/api/v1/namespaces/{}/pods/x",
    "/apis/apps/v1/namespaces/default/{}/x",
)


def _path_samples(pattern: str) -> set[str]:
    """Paths ``pattern`` (a value, glob, affix or regex) may match: its text with the
    wildcards, classes and optional groups read as in ``_sample_names``, and each path
    above one of those (the discovery of a group, /apis/<group>/<version>)."""
    skeleton = re.sub(r"\[:([a-z]+):\]", _posix_sample, pattern)
    skeleton = re.sub(r"\[[!^][^\]]*\]", "x", skeleton)
    skeleton = re.sub(r"\[(.)[^\]]*\]", r"\1", skeleton)
    skeleton = re.sub(r"\([^()]*\)[?*]|\{0(,\d*)?\}", "", skeleton)  # (/.*)? may be absent
    skeleton = re.sub(r"\.[*+]", "x", skeleton)
    skeleton = re.sub(r"\\(.)", r"\1", skeleton)
    skeleton = re.sub(r"\{\d*,?\d*\}|[+()^$]", "", skeleton)
    skeleton = re.sub(r"\*+|\?", "x", skeleton)
    found = {part if part.startswith("/") else "/" + part for part in skeleton.split("|")}
    # Paths below each, as a startsWith or a trailing "**" reaches: a word under the
    # pattern, and a resource's name under a group and version. A "/" the pattern ends
    # with is not doubled: a "//" path is refused, so it is no evidence of anything.
    found |= {part.rstrip("/") + below for part in found for below in ("/x", "/x/x/x")}
    return found | {path[:cut] for path in found for cut in range(1, len(path)) if path[cut] == "/"}


def _resource_path_warnings(rule: Rule, test: Callable[[FieldValues], bool]) -> list[str]:
    """A k8s.request ``path`` matcher, or a value of its list, that matches resource
    requests' paths only.

    A resource request (``/api/v1/namespaces/kube-system/secrets/x``: three or more
    segments under /api, four or more under /apis) has a verb, resource, namespace and
    name but no path, so a deny of ``glob: /api/v1/namespaces/kube-system/**`` never
    fires."""
    if rule.path is None:
        return []
    example = _resource_path_example(rule.path, test)
    if example is not None:
        path, found, discovery = example
        if discovery is None:
            return [
                "path: matches only the paths of resource requests, such as "
                f"{path} ({_described(found)}){_NO_PATH}"
            ]
        # Only a hole in a deny or require_approval rule: an allow of discovery alone is
        # what kubectl needs, and what it leaves out is denied.
        if rule.decision != "allow":
            return [
                "path: of the paths kube-apiserver serves outside its resources, matches "
                f"only discovery ones ({discovery}); otherwise it matches the paths of "
                f"resource requests, such as {path} ({_described(found)}), and a resource "
                "request has no path, so the rule holds for discovery requests only: "
                "match resources by resource, namespace and name"
            ]
    # The values of a list are alternatives: one naming a resource is one that never holds.
    spec = rule.path
    listed = spec.in_ or [] if isinstance(spec, MatcherSpec) else _as_list(spec)
    warnings = []
    for value in listed:
        request = _resource_request(value) if isinstance(value, str) else None
        if request is not None:
            described = f"a resource request ({_described(request)})"
            warnings.append(f"path: {value!r} is the path of {described}{_NO_PATH}")
    return warnings


def _resource_path_example(
    matcher: Matcher, test: Callable[[FieldValues], bool]
) -> tuple[str, K8sAttributes, str | None] | None:
    """A resource request's path ``test`` matches, if it matches none that kube-apiserver
    serves outside its resources, or only discovery ones (the third item names one).
    Told by what the compiled matcher does on sample paths: the patterns' own (see
    ``_path_samples``), then their words in the places of a resource request's path."""
    patterns = [*_written_values(matcher), *_operator_values(matcher, "regex")]
    samples = sorted(
        {sample for pattern in patterns for sample in _path_samples(pattern)},
        key=lambda sample: (sample.endswith("/"), len(sample)),
    )
    found_of = {sample: _resource_request(sample) for sample in samples}
    served = [s for s in samples if _is_non_resource_request(s) and _is_served(s)]
    # As sent, a non-resource path may end in "/" (a deny rule sees that form too).
    matched = [
        form
        for path in dict.fromkeys([*_NON_RESOURCE_PATHS, *served])
        for form in (path, path + "/")
        if test((form,))
    ]
    if any(not _is_discovery(path) for path in matched):
        return None
    discovery = matched[0] if matched else None
    # Not the paths above the placed words: "/apis/secrets" is no path a ".*/secrets"
    # was written for.
    placed = (
        place.format(word)
        for pattern in patterns
        for word in re.findall(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", pattern)
        for place in _RESOURCE_PLACES
    )
    for path in (*(s for s, found in found_of.items() if found is not None), *placed):
        found = _resource_request(path)
        if found is not None and test((path,)):
            return path, found, discovery
    return None


def _is_served(path: str) -> bool:
    """A non-resource path under a root kube-apiserver serves."""
    return path.split("/")[1] in _NON_RESOURCE_ROOTS


def _is_discovery(path: str) -> bool:
    """A non-resource path under /api or /apis: the discovery of a version or group."""
    return path.split("/")[1] in ("api", "apis")


@lru_cache(maxsize=4096)
def _resolved(path: str) -> K8sAttributes | None:
    """What ``path`` asks of kube-apiserver, or None for a path the gate refuses."""
    try:
        return resolve_request("GET", path)
    except RequestError:
        return None


def _resource_request(path: str) -> K8sAttributes | None:
    """What ``path`` asks of kube-apiserver, if it is a resource request's path."""
    found = _resolved(path)
    return found if found is not None and found.is_resource_request else None


def _is_non_resource_request(path: str) -> bool:
    found = _resolved(path)
    return found is not None and not found.is_resource_request


_NO_PATH = (
    "; a resource request has no path, only non-resource requests have one (/api, "
    "/apis/<group>/<version>, /version, /healthz ...), so the rule never matches it: "
    "match it by resource, namespace and name"
)


def _described(found: K8sAttributes) -> str:
    where = f" in namespace {found.namespace}" if found.namespace else ""
    named = f" named {found.name}" if found.name else ""
    return f"{found.verb} {found.resource}{where}{named}"


def _path_glob_warnings(glob: str) -> list[str]:
    """An allow glob on paths that reaches further than it reads."""
    segments = _glob_segments(glob)
    if segments and all(set(segment) == {"*"} for segment in segments) and "**" in glob:
        return [f"glob {glob!r} matches every path"]
    for segment in segments:
        prefix = segment.partition("**")[0]
        # Only a literal before the "**" reaches past a directory ("/workspace**"); one
        # that starts the segment ("/src/**.py", "/src/[!.]**") stays inside "/src/".
        if "**" in segment and re.split(r"[*?\[{]", prefix, maxsplit=1)[0]:
            # "/workspace**" is "/workspace" then anything, "/" included (gitignore and
            # minimatch would read it as "/workspace*", which is one segment).
            head = glob[: glob.index(segment) + segment.index("**")]
            whole = head.rstrip("*?") or head
            return [
                f"glob {glob!r} also matches {whole + '-secrets/.env'!r}: a '**' that is "
                f"not a whole segment crosses '/'; write {whole.rstrip('/') + '/**'!r}"
            ]
    return []


def _glob_segments(glob: str) -> list[str]:
    """The segments of ``glob`` with "." and "//" dropped and ".." resolved, as the
    matcher reads it (a '..' after a wildcard is refused there)."""
    segments: list[str] = []
    for segment in glob.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return segments


def _program_path_warnings(
    rule: Rule, test: Callable[[FieldValues], bool], trusted: tuple[str, ...]
) -> list[str]:
    """A deny (or require_approval) rule naming a program by its path in a trusted
    directory: the same program run by name, or from the other trusted directories
    (/bin is /usr/bin in merged-/usr images), is another argv[0] it does not match.
    Told by what the compiled matcher does: for the names its values end in, it
    matches one under a trusted directory but not the name itself."""
    command = rule.command
    values: list[object]
    if isinstance(command, MatcherSpec):
        values = [*_as_list(command.equals), *(command.in_ or [])]
        patterns = [
            (operator, pattern)
            for operator, pattern in (
                ("glob", command.glob),
                ("startsWith", command.startsWith),
                ("endsWith", command.endsWith),
                ("regex", command.regex),
            )
            if pattern is not None
        ]
    else:
        values, patterns = _as_list(command), []
    warnings = []
    for value in values:
        if not isinstance(value, str) or not value.startswith("/"):
            continue
        directory, _, name = lexical_path(value).rpartition("/")
        if name and (directory or "/") in trusted and not test((name,)):
            warnings.append(
                f"command: {value!r} matches that path only, not {name!r} run by name nor "
                f"its copies in the other trusted directories; write {name!r}, which "
                "matches the name in every trusted directory"
            )
    for operator, pattern in patterns:
        names = {"x", *_sample_names(pattern)}
        if any(
            test((f"{directory.rstrip('/')}/{name}",)) and not test((name,))
            for name in names
            for directory in trusted
        ):
            warnings.append(
                f"command: {operator} {pattern!r} matches programs by their path in a "
                "trusted directory, not run by name (argv[0] without '/'), which it "
                "never sees; match names with a value or a glob without '/' (they match "
                "the name in every trusted directory)"
            )
            break
    return warnings


def _sample_names(pattern: str) -> set[str]:
    """Names a program path ``pattern`` (glob, regex or affix) may end in, to try the
    compiled matcher with: its last segment with a class read as its first character
    (a POSIX class as its first letter or digit), a regex's word and digit escapes as a
    letter and a digit, wildcards as a letter, quantifiers and other operators dropped."""
    last = pattern.rpartition("/")[2]
    sample = re.sub(r"\[:([a-z]+):\]", _posix_sample, last)  # [[:digit:]] -> [0]
    sample = re.sub(r"\[[!^][^\]]*\]", "x", sample)  # [!2] -> x (assumed not excluded)
    sample = re.sub(r"\[(.)[^\]]*\]", r"\1", sample)  # [rs]m -> rm
    sample = re.sub(r"\\[wWsS]", "a", sample)
    sample = re.sub(r"\\d", "1", sample)
    sample = re.sub(r"\\(.)", r"\1", sample)
    sample = re.sub(r"[+{}()|^$]", "", re.sub(r"\{\d*,?\d*\}", "", sample))
    sample = re.sub(r"[*?]", "x", sample)
    tokens = re.findall(r"\w[\w.+-]*", last)
    return {sample, sample + "x", *tokens, *(token + "x" for token in tokens[-1:])} - {""}


def _posix_sample(match: re.Match[str]) -> str:
    members = POSIX_CLASSES.get(match[1], "x")
    return next((c for c in members if c.isalnum()), members[0])


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _trusted_paths_warnings(trusted: tuple[str, ...]) -> list[str]:
    """``trustedPaths`` replaces the defaults: name the default directories it leaves out.

    An author adding the image's own tools directory (``[/opt/tools/bin]``) most likely
    meant to add it; as written, a deny by name (``command: bash``) no longer matches
    ``/usr/bin/bash``, while a glob on ``/usr/bin/*`` may go on allowing it.
    """
    omitted = [path for path in DEFAULT_TRUSTED_PATHS if path not in trusted]
    if not omitted:
        return []
    return [
        "trustedPaths: replaces the default trusted directories (it does not add to them) "
        f"and leaves out {', '.join(omitted)}: a bare command name in a rule no longer "
        f"matches a program there (command: bash does not match {omitted[0]}/bash), in "
        "deny rules as in allow rules; list the directories to keep trusted"
    ]


def compile_policy(
    document: PolicyDocument, *, source: str, policy_hash: str
) -> tuple[CompiledPolicy | None, list[str]]:
    """Compile ``document``; return (policy, []) or (None, problems)."""
    try:
        return _compile_policy(document, source=source, policy_hash=policy_hash)
    finally:
        # The re2 module keeps the last 128 regexes it compiled (up to 8 MiB each) in a
        # cache of its own: held past a reload or a refused policy, they are memory the
        # budget never counted. A compiled policy keeps its own references.
        re2.purge()


def _compile_policy(
    document: PolicyDocument, *, source: str, policy_hash: str
) -> tuple[CompiledPolicy | None, list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    rules: list[CompiledRule] = []
    seen_ids: dict[str, int] = {}
    seen_owners: dict[str, int] = {}
    budget = CompileBudget(MAX_COMPILED_BYTES)
    for index, rule in enumerate(document.rules):
        label = rule_label(index, rule.id)
        rule_id = rule.id if rule.id is not None else f"rules[{index}]"
        if rule.id is not None and not rule.id.strip():
            # Named by nothing, a decision's rule and reason ("rule  allows ...") would
            # say nothing either.
            problems.append(
                f"{label}: id: must not be blank; leave it out for the default rules[{index}]"
            )
        if rule_id in seen_ids:
            problems.append(f"{label}: id: duplicate id, also used by rules[{seen_ids[rule_id]}]")
        seen_ids.setdefault(rule_id, index)
        explicit, expanded, errors = _expand_actions(rule.action)
        problems.extend(f"{label}: {e}" for e in errors)
        matchers = [
            (name, matcher)
            for name, matcher in zip(MATCHABLE_FIELDS, _matchers_of(rule), strict=True)
            if matcher is not None
        ]
        used = [name for name, _ in matchers]
        for action in explicit:
            for name in used:
                if name not in ACTION_FIELDS[action]:
                    problems.append(
                        f"{label}: {name}: action {action} has no field {name!r} "
                        f"(it has: {', '.join(sorted(ACTION_FIELDS[action]))})"
                    )
        # A wildcard covers the actions that have every field the rule matches.
        fitting = [a for a in expanded if ACTION_FIELDS[a].issuperset(used)]
        if expanded and not fitting:
            problems.append(
                f"{label}: action: no action matched by the wildcard has all of the fields "
                f"{', '.join(used)}"
            )
        tests: list[FieldTest] = []
        over_budget = False
        for name, matcher in matchers:
            try:
                tests.append(compile_matcher(name, matcher, budget))
            except BudgetError as exc:
                problems.append(f"{label}: {name}: {exc}")
                over_budget = True
                break
            except MatcherError as exc:
                problems.append(f"{label}: {name}: {exc}")
        if over_budget:
            # Stop here: compiling the rest would only hold more memory, which is what
            # the budget is for (a gate killed for memory fails every check).
            break
        actions = frozenset(explicit + fitting)
        if rule.path is not None and "network.request" in actions:
            # Only a URL's path is canonicalised so: a file name may hold "%2f" as such.
            found = [f"{label}: path: {p}" for p in _url_path_escape_problems(rule.path)]
            if actions == {"network.request"}:
                problems.extend(found)
            else:
                warnings.extend(f"{f} (as the path of a network.request)" for f in found)
        for name, matcher in matchers:
            problems.extend(
                f"{label}: {name}: {p}" for p in _inner_line_break_problems(name, matcher)
            )
        rate_limit = None
        if rule.rateLimit is not None:
            if rule.decision != "allow":
                problems.append(f"{label}: rateLimit: only allow rules can have a rateLimit")
            owner = _budget_owner(rule)
            # Id-less rules alike but for their limits are still two budgets.
            seen_owners[owner] = seen_owners.get(owner, 0) + 1
            if seen_owners[owner] > 1:
                owner += f" #{seen_owners[owner]}"
            rate_limit = RateLimitSpec(
                rule.rateLimit.count,
                parse_duration(rule.rateLimit.per, at_most=MAX_RATE_LIMIT_WINDOW),
                f"{rule.rateLimit.count}/{rule.rateLimit.per}",
                owner,
            )
        if (
            rule.decision == "allow"
            and isinstance(rule.host, MatcherSpec)
            and rule.host.startsWith is not None
        ):
            warnings.append(
                f"{label}: host: startsWith on a host also matches longer hosts "
                "(api.example.com.evil.net); prefer equals, in or a glob"
            )
        if rule.decision == "allow":
            warnings.extend(f"{label}: {w}" for w in _broad_allow_warnings(rule, used))
            host_test = next((t.test for t in tests if t.field == "host"), None)
            if isinstance(rule.host, MatcherSpec) and host_test is not None:
                warnings.extend(
                    f"{label}: {w}" for w in _host_pattern_warnings(rule.host, host_test)
                )
            warnings.extend(
                f"{label}: {w}" for w in _wildcard_reach_warnings(rule, used, explicit, fitting)
            )
            warnings.extend(
                f"{label}: {w}" for w in _hostless_request_warnings(rule, used, explicit)
            )
        warnings.extend(f"{label}: {w}" for w in _literal_wildcard_warnings(rule))
        path_test = next((t.test for t in tests if t.field == "path"), None)
        if actions == {K8S_REQUEST} and path_test is not None:
            warnings.extend(f"{label}: {w}" for w in _resource_path_warnings(rule, path_test))
        warnings.extend(f"{label}: {w}" for w in _brace_glob_warnings(matchers))
        warnings.extend(f"{label}: {w}" for w in _address_pattern_warnings(rule.host))
        if rule.decision == "allow" and rule.args is not None and _any_argument(rule.args):
            warnings.append(
                f"{label}: args: holds when any one argument matches, wherever it is "
                "(args [status] allows git push status); pin the argument list with "
                "{prefix: [...]} or {equals: [...]}"
            )
        rules.append(
            CompiledRule(
                index=index,
                id=rule_id,
                actions=actions,
                decision=rule.decision,
                tests=tuple(tests),
                reason=rule.reason,
                risk=rule.risk,
                rate_limit=rate_limit,
            )
        )
    trusted: tuple[str, ...] = DEFAULT_TRUSTED_PATHS
    if document.trustedPaths is not None:
        trusted_list = []
        for position, path in enumerate(document.trustedPaths):
            blank_end = blank_end_problem(path)
            if blank_end is not None:
                problems.append(f"trustedPaths[{position}]: {blank_end}")
                continue
            if not path.startswith("/"):
                problems.append(f"trustedPaths[{position}]: {path!r} must be an absolute path")
                continue
            trusted_list.append(normalise_path(path))
        trusted = tuple(trusted_list)
        warnings.extend(_trusted_paths_warnings(trusted))
    command_tests = {
        compiled.index: test
        for compiled in rules
        for test in compiled.tests
        if test.field == "command"
    }
    for index, rule in enumerate(document.rules):
        test = command_tests.get(index)
        if rule.decision != "allow" and test is not None:
            label = rule_label(index, rule.id)
            warnings.extend(
                f"{label}: {w}" for w in _program_path_warnings(rule, test.test, trusted)
            )
    if document.approvals is not None:
        problems.extend(_approvals_problems(document.approvals))
    asking = [r.id for r in rules if r.decision == "require_approval"]
    if asking and (document.approvals is None or not document.approvals.approvers):
        # Valid (the policy may be signed first and given approvers later), but every such
        # request waits until it expires, denied: no signature can approve it.
        warnings.append(
            f"{len(asking)} require_approval rule(s) ({', '.join(asking[:3])}"
            f"{', ...' if len(asking) > 3 else ''}) but no approvals.approvers: no one can "
            "approve, so every such request is denied when its approval expires"
        )
    if document.defaultAction == "allow":
        warnings.append("defaultAction: allow lets through everything no rule denies")
    if document.mode == "audit":
        warnings.append("mode: audit answers allowed:true to every request")
    if problems:
        return None, problems
    of_action: dict[str, list[CompiledRule]] = {action: [] for action in ACTIONS}
    for compiled in rules:
        for action in compiled.actions:
            of_action[action].append(compiled)
    by_action = {action: ActionRules.of(found) for action, found in of_action.items()}
    approvals = document.approvals
    return (
        CompiledPolicy(
            source=source,
            hash=policy_hash,
            default_action=document.defaultAction,
            mode=document.mode,
            rules=tuple(rules),
            by_action=by_action,
            trusted_paths=trusted,
            approvals=approvals,
            approval_timeout=(
                parse_duration(approvals.timeout, at_most=MAX_APPROVAL_TIMEOUT)
                if approvals
                else 300.0
            ),
            warnings=tuple(warnings),
            has_rate_limits=any(r.rate_limit for r in rules),
        ),
        [],
    )


def _approvals_problems(approvals: Approvals) -> list[str]:
    """Approver keys must be usable and their own, names unique; the webhook must be an
    http(s) URL."""
    problems: list[str] = []
    seen: set[str] = set()
    keys_seen: dict[bytes, str] = {}
    for position, approver in enumerate(approvals.approvers):
        where = f"approvals.approvers[{position}]"
        blank_end = blank_end_problem(approver.name)
        if not approver.name.strip():
            problems.append(f"{where}.name: must not be empty")
        elif blank_end is not None:
            problems.append(f"{where}.name: {blank_end}")
        elif approver.name in seen:
            problems.append(f"{where}.name: duplicate approver {approver.name!r}")
        seen.add(approver.name)
        try:
            key = public_key_from_base64(approver.publicKey)
        except KeyFileError as exc:
            problems.append(f"{where}.publicKey: {exc} (tollgate keygen makes a key)")
            continue
        if key is None:
            problems.append(
                f"{where}.publicKey: not the base64 of a raw 32-byte Ed25519 public key "
                "(tollgate keygen prints it)"
            )
            continue
        # One key under two names lets its holder sign as either, and the trail would
        # name the wrong person as approver.
        raw = key.public_bytes_raw()
        if raw in keys_seen:
            problems.append(
                f"{where}.publicKey: the same key as {keys_seen[raw]!r}; each approver "
                "needs a key of their own"
            )
        keys_seen.setdefault(raw, approver.name)
    if approvals.notify is not None:
        problems.extend(_webhook_problems(approvals.notify.webhook))
    return problems


def _webhook_problems(webhook: str) -> list[str]:
    """The webhook must be an http(s) URL that can be posted to. The problems never quote
    it: the URL holds the webhook's secret."""
    try:
        url = urlsplit(webhook)
        hostname = url.hostname
    except ValueError:
        # urlsplit's own message quotes the netloc, password and all (a ']' typo, a
        # fullwidth at sign, U+FF20, in a password): never shown (rt25 review of the fix).
        return ["approvals.notify.webhook: is not a valid URL"]
    if url.scheme not in ("http", "https") or not hostname:
        return ["approvals.notify.webhook: must be an http:// or https:// URL"]
    problems: list[str] = []
    # urllib would try to connect to 'user:password@host' and fail, echoing the password
    # in its error, which is logged and recorded.
    if "@" in url.netloc:
        problems.append(
            "approvals.notify.webhook: must not hold a user name or password (user@ or "
            "user:password@); a webhook's secret goes in its path, as a Slack URL's does"
        )
    try:
        _ = url.port  # reading it raises for a port that is not a number in range
    except ValueError:
        problems.append("approvals.notify.webhook: its port must be a number from 0 to 65535")
    return problems
