"""Field matchers (CONTRACT section 1, "Matchers"), compiled once per policy load.

A matcher compiles to a ``FieldTest``: a predicate over a field's values (a tuple of
strings, see ``sidecar.subject``) plus a description for explain traces. Positive
operators hold when any value matches; ``not`` negates the whole nested matcher, so an
IPv4-mapped address never escapes a ``not cidr`` by its IPv6 spelling. Rule values are
brought to the same canonical form as request values (hosts, paths, methods ...), so a
rule and a request compare like with like.

Each test also names its ``Anchor`` when it has one: a literal every accepted value
equals, starts with or ends with, which ``sidecar.policy.index`` looks rules up by.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring

import re2

from sidecar.errors import RequestError
from sidecar.normalise.paths import normalise_path
from sidecar.policy.glob import GlobError, compile_glob_sized, literal_head, literal_tail
from sidecar.policy.schema import Matcher, MatcherSpec

Values = tuple[str, ...]
Test = Callable[[Values], bool]

PATH_FIELDS = frozenset({"path", "cwd"})
# Fields compared after lower-casing, and the one upper-cased (HTTP methods).
LOWER_FIELDS = frozenset({"scheme", "verb"})
UPPER_FIELDS = frozenset({"method"})
# Fields whose request values never hold "*", "?" or "[" (hosts are checked apart): a
# rule value with one is a pattern written where a literal goes, and would never match.
NO_WILDCARD_FIELDS = frozenset(
    {"scheme", "method", "verb", "group", "version", "resource", "namespace", "name"}
)
WILDCARDS = "*?["
# Kubernetes fields whose names are lower case wherever the apiserver serves them:
# namespaces are DNS labels, groups DNS subdomains, versions and resources lower-case
# names (CRDs included). ``name`` is not one: object names of some kinds (RBAC roles)
# may hold capitals.
K8S_LOWER_CASE_FIELDS = frozenset({"group", "version", "resource", "namespace"})


class MatcherError(ValueError):
    """A matcher is invalid; the message names the operator and the problem."""


class BudgetError(MatcherError):
    """Compiling this matcher took the policy past its memory budget: stop compiling."""


# What compiled matchers cost in resident memory, charged as they compile so that a
# policy's compiled size is bounded and the same on every machine. Measured on CPython
# 3.11 with google-re2 1.1 (x86-64) as the RSS growth of a process compiling and keeping
# many of one shape (50,000-100,000 small ones, 5-300 large ones), divided by their
# count and RE2 instruction count (``programsize``):
# - an RE2 program (a regex, or a glob no string test covers) costs a fixed part plus a
#   part per instruction: '/aN' (11 instructions) 1.9 KiB, '/xN/[a-z0-9-]{1,20}' (90)
#   3.7 KiB, '/xN/.{1000}' (7,010) 244 KiB, '.{1000}' x 60 (420,008) 16.2 MiB, the glob
#   '/aN/*/b?' (30) 3.0 KiB and '/aN/' + '?' x 1000 (8,010) 371 KiB (47.5 bytes an
#   instruction, the most seen); case-folded (host, method, scheme, verb): 'aN\.com'
#   (14) 4.2 KiB, 190 instructions 10.4 KiB;
# - a matcher operator (equals, glob, startsWith, cidr, one level of not ...) 0.7 to
#   1.5 KiB with its closure and explain text, and a listed value about 100 bytes.
# The costs below are at or above each measurement.
PROGRAM_BYTES = 2048
FOLDED_PROGRAM_BYTES = 4096
INSTRUCTION_BYTES = 50
OPERATOR_BYTES = 1536
VALUE_BYTES = 100
# `not` nests a matcher; past a few levels it only makes a rule unreadable (and each
# level repeats the text of those inside it in explain traces).
MAX_NOT_DEPTH = 8


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


class CompileBudget:
    """The memory a policy's compiled matchers may take, charged as each compiles.

    Crossing it raises ``BudgetError`` at the matcher that crossed it, so compiling
    stops holding at most one program more than the limit (RE2 caps a program at
    about 20 MiB).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self.programs = 0
        self.program_bytes = 0  # their fixed parts
        self.instructions = 0
        self.operators = 0
        self.values = 0

    def charge_operator(self, operator: str, values: int = 0) -> None:
        """One operator of a matcher, holding ``values`` listed values."""
        self.operators += 1
        self.values += values
        cost = OPERATOR_BYTES + values * VALUE_BYTES
        # Only a long list is worth naming: one operator alone is never the cause.
        this = (
            f"this {operator} alone lists {values:,} values ({_mib(cost)}); "
            if values > 100
            else ""
        )
        self._charge(operator, cost, this)

    def charge_program(self, operator: str, instructions: int, *, folded: bool) -> None:
        """The RE2 program a regex or a glob compiled to."""
        fixed = FOLDED_PROGRAM_BYTES if folded else PROGRAM_BYTES
        self.programs += 1
        self.program_bytes += fixed
        self.instructions += instructions
        cost = fixed + instructions * INSTRUCTION_BYTES
        self._charge(
            operator,
            cost,
            f"this {operator} alone compiles to {instructions:,} RE2 instructions ({_mib(cost)}); ",
        )

    def _charge(self, operator: str, cost: int, this: str) -> None:
        self.spent += cost
        if self.spent <= self.limit:
            return
        drivers = {
            "instructions": self.instructions * INSTRUCTION_BYTES,
            "programs": self.program_bytes,
            "operators": (self.operators * OPERATOR_BYTES + self.values * VALUE_BYTES),
        }
        cause = max(drivers, key=drivers.__getitem__)
        if cause == "instructions":
            advice = (
                f"{_mib(drivers[cause])} of it is the {self.instructions:,} instructions of "
                f"{self.programs:,} RE2 programs: a bounded repetition (.{{1000}}, "
                "[a-z]{1,63}) multiplies a regex's program, and each ? or [...] of a glob "
                "adds to one; use *, + or ** where you can"
            )
        elif cause == "programs":
            advice = (
                f"{_mib(drivers[cause])} of it is {self.programs:,} regexes and globs "
                "compiled to RE2, 2 to 4 KiB each however short: merge regexes (a|b), or "
                "use equals, in, startsWith or globs of * and ** only, which need no program"
            )
        else:
            advice = (
                f"{_mib(drivers[cause])} of it is {self.operators:,} matcher operators and "
                f"{self.values:,} listed values: merge rules, or list fewer values"
            )
        raise BudgetError(
            f"{operator}: the policy's compiled matchers up to here take about "
            f"{_mib(self.spent)}, more than the {self.limit / 2**20:g} MiB a gate is sized "
            f'for (docs/deploy.md, "Memory"); {this}{advice}'
        )


@dataclass(frozen=True, slots=True)
class Anchor:
    """What every value a test accepts has: one of ``keys`` as the whole value (``exact``),
    as a prefix ending in "/" (``prefix``, paths) or as a suffix starting with "."
    (``suffix``, hosts). A test holds only if some value of its field has an anchor key."""

    kind: str  # exact | prefix | suffix
    keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class FieldTest:
    field: str
    test: Test
    text: str  # e.g. 'glob "/app/data/**"', for explain traces and reasons
    # Exact names this matcher accepts (bare string, list, equals, in): only such a
    # name can allow a construct that cannot be analysed statically (``eval`` ...).
    literal_names: frozenset[str]
    anchor: Anchor | None = None


def _quote(value: object) -> str:
    if isinstance(value, str):  # what json.dumps(ensure_ascii=False) gives, without its setup
        return encode_basestring(value)
    return json.dumps(value, ensure_ascii=False)


@lru_cache(maxsize=4096)
def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _refuse_wildcard(field: str, value: str, operator: str, pattern: str) -> None:
    """Refuse a value of a field whose values never hold a wildcard, if it holds one;
    ``pattern`` is the glob to suggest instead."""
    if not any(c in value for c in WILDCARDS):
        return
    # RBAC's resources: ["*"] means every resource; here it would match none (a deny
    # with a hole), so say how to write the pattern.
    suggestion = f"{{glob: {pattern!r}}}"
    if field == "resource":
        # A glob's '*' stays inside one '/'-separated part: "*" is every resource but
        # no subresource (pods/exec), which RBAC's "*" includes.
        suggestion = (
            "{glob: '**'} (every resource and subresource, as RBAC's '*')"
            if pattern == "*"
            else f"{{glob: {pattern!r}}} ('*' does not cross the '/' of a subresource; '**' does)"
        )
    raise MatcherError(
        f"{operator}: {value!r} is compared as written and no {field} contains "
        f"'*', '?' or '['; for a pattern write {suggestion}"
    )


# What a YAML block scalar leaves at the end of a value ("|" and ">" keep one line break).
_LINE_BREAKS = "\n\r"


def blank_end_problem(
    value: str, *, line_breaks_only: bool = False, space_hint: str = ""
) -> str | None:
    """Why a value or pattern that starts or ends with whitespace is refused, or None.

    A value written as a YAML ``|`` or ``>`` block keeps its last line break, so a deny
    rule's ``"/etc/shadow\n"`` (or regex, or glob) never matched a request and the rule
    was a hole. Other whitespace at either end is a stray space in quotes: refused too,
    unless ``line_breaks_only`` (an argument may end with a space: ``"-m "``).
    ``space_hint`` follows the message for a plain space.
    """
    for end, char in (("starts", value[:1]), ("ends", value[-1:])):
        if not char.isspace() or (line_breaks_only and char not in _LINE_BREAKS):
            continue
        if char in _LINE_BREAKS:
            cause = (
                "remove it (a YAML `|` or `>` block keeps one: write `|-` or `>-`)"
                if end == "ends" and char == "\n"
                else "remove it"
            )
            return f"{value!r} {end} with a line break: {cause}"
        hint = space_hint if char == " " else ""
        return (
            f"{value!r} {end} with whitespace ({char!r}), almost surely by mistake; remove it{hint}"
        )
    return None


def _refuse_blank_ends(field: str, value: str, operator: str) -> None:
    """Refuse a matcher value or pattern with whitespace at either end (``args``: a
    line break only)."""
    # Only a path, command, agent or object name can really hold a space.
    hint = (
        ""
        if field in NO_WILDCARD_FIELDS or field in ("host", "port")
        else " (for one that really does, write the space as a glob class: '[ ]')"
    )
    problem = blank_end_problem(value, line_breaks_only=field == "args", space_hint=hint)
    if problem is not None:
        raise MatcherError(f"{operator}: {problem}")


def _outside_classes(pattern: str) -> str:
    """The glob's characters outside its ``[...]`` classes (a class may admit lower case)."""
    outside: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            outside.append(pattern[i + 1 : i + 2])
            i += 2
        elif pattern[i] == "[":
            # As glob.py reads a class: "!" or "^" negates, a "]" first is a member.
            i += 2 if pattern[i + 1 : i + 2] in ("!", "^") else 1
            first = True
            while i < len(pattern) and (pattern[i] != "]" or first):
                first = False
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        else:
            outside.append(pattern[i])
            i += 1
    return "".join(outside)


def _glob_pieces(pattern: str) -> list[tuple[str, bool]]:
    """The glob's text in pieces, each flagged when it is a named item of a class
    (``[:digit:]``; ``[=e=]`` and ``[.a.]``, which globs refuse), read as glob.py reads them."""
    pieces: list[tuple[str, bool]] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            pieces.append((pattern[i : i + 2], False))
            i += 2
            continue
        if pattern[i] != "[":
            pieces.append((pattern[i], False))
            i += 1
            continue
        opening = 2 if pattern[i + 1 : i + 2] in ("!", "^") else 1
        pieces.append((pattern[i : i + opening], False))
        i += opening
        first = True  # a "]" first is a member
        while i < len(pattern) and (pattern[i] != "]" or first):
            first = False
            kind = pattern[i + 1 : i + 2]
            end = pattern.find(kind + "]", i + 2) if kind in (":", "=", ".") else -1
            if pattern[i] == "[" and end >= 0:
                pieces.append((pattern[i : end + 2], True))
                i = end + 2
            else:
                step = 2 if pattern[i] == "\\" else 1
                pieces.append((pattern[i : i + step], False))
                i += step
        if i < len(pattern):
            pieces.append(("]", False))
            i += 1
    return pieces


# What a POSIX class comes to in a host glob, whose labels hold lower-case letters,
# digits, "-" and "_" only (a host is matched in lower case).
_HOST_CLASS_SPELLINGS = {
    "[:alnum:]": "a-z0-9",
    "[:alpha:]": "a-z",
    "[:digit:]": "0-9",
    "[:lower:]": "a-z",
    "[:upper:]": "a-z",
    "[:xdigit:]": "0-9a-f",
}


def _refuse_host_posix_classes(pattern: str) -> None:
    """Refuse a host glob naming a POSIX class: its ':' was refused as if a port or an
    IPv6 address were meant, which said nothing of the class."""
    pieces = _glob_pieces(pattern)
    named = [piece for piece, is_named in pieces if is_named]
    if not named:
        return
    if all(item in _HOST_CLASS_SPELLINGS for item in named):
        written_out = "".join(
            _HOST_CLASS_SPELLINGS[piece] if is_named else piece for piece, is_named in pieces
        )
        fix = f"write the characters out: {written_out!r}"
    else:
        fix = "write the characters meant out (a host label holds a-z, 0-9, '-' and '_')"
    raise MatcherError(
        f"glob: {pattern!r} is not a valid host: POSIX classes such as {named[0]} are not "
        f"supported in host globs; {fix}"
    )


def _refuse_impossible_k8s_name(field: str, value: str, operator: str) -> None:
    """Refuse a Kubernetes group, version, resource or namespace no request can name."""
    if field not in K8S_LOWER_CASE_FIELDS:
        return
    literal = _outside_classes(value) if operator == "glob" else value
    if literal != literal.lower():
        raise MatcherError(
            f"{operator}: {value!r} holds upper-case letters, but Kubernetes {field} names "
            f"are lower case (the apiserver serves no other); write {value.lower()!r}"
        )
    if field == "group" and value == "core":
        # kubectl and the docs say "core", but the core group's name is empty: /api/v1.
        raise MatcherError(
            f"{operator}: 'core' is no API group: the core group (pods, secrets, "
            'configmaps ...) has the empty name; write ""'
        )


def _refuse_empty_agent(field: str, value: str, operator: str) -> None:
    """Refuse ``agent: ""``: it matched only ``policy test``'s old default identity, so
    a deny the tests proved never fired on a gate (sidecar/identity.py)."""
    if field == "agent" and value == "":
        raise MatcherError(
            f"{operator}: an empty agent matches no gate: a gate's identity is never empty "
            "(TOLLGATE_IDENTITY, else <namespace>/<serviceaccount>/<pod> from the pod's "
            'downward-API variables, else local; docs/policy.md, "Identity")'
        )


def _canonical_value(field: str, value: str | int, operator: str) -> str:
    """Bring one rule value to the canonical form of request values of ``field``."""
    if isinstance(value, str):
        _refuse_blank_ends(field, value, operator)
        _refuse_empty_agent(field, value, operator)
    if isinstance(value, int):
        if field != "port":
            raise MatcherError(f"{operator}: {value} must be a string")
        value = str(value)
    if field == "port":
        # ASCII digits only: "²" is a digit to str.isdigit, and int() refuses it.
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
            raise MatcherError(f"{operator}: {value!r} is not a port number 1-65535")
        return str(int(value))
    if field in NO_WILDCARD_FIELDS and operator != "glob":
        _refuse_wildcard(field, value, operator, value)
    _refuse_impossible_k8s_name(field, value, operator)
    if field in LOWER_FIELDS:
        return value.lower()
    if field in UPPER_FIELDS:
        return value.upper()
    if field == "host":
        from sidecar.normalise.hosts import canonical_host_pattern

        ipv6_literal = value.startswith("[") and value.endswith("]") and ":" in value
        if operator != "glob" and not ipv6_literal and any(c in value for c in "*?[]"):
            # No request host has one, so the rule would never match (a deny with a hole).
            raise MatcherError(
                f"{operator}: {value!r} is compared as written and no host contains "
                f"'*', '?' or '['; for a pattern write {{glob: {value!r}}}"
            )
        try:
            return canonical_host_pattern(value)
        except (ValueError, RequestError) as exc:
            raise MatcherError(f"{operator}: {value!r} is not a valid host: {exc}") from exc
    if field in PATH_FIELDS or (field == "command" and "/" in value):
        if not value.startswith("/"):
            raise MatcherError(f"{operator}: {value!r} must be an absolute path")
        try:
            return normalise_path(value)
        except RequestError as exc:
            raise MatcherError(f"{operator}: {exc.message}") from exc
    return value


def _host_affix(value: str, operator: str) -> str:
    """Canonicalise a host fragment for startsWith/endsWith (never turned into an IP)."""
    from sidecar.normalise.hosts import canonical_host_affix

    try:
        return canonical_host_affix(value, suffix=operator == "endsWith")
    except ValueError as exc:
        raise MatcherError(f"{operator}: {value!r} is not a valid host fragment: {exc}") from exc


def _any(predicate: Callable[[str], bool]) -> Test:
    return lambda values: any(map(predicate, values))


def _equals(field: str, value: object) -> tuple[Test, str, frozenset[str]]:
    if isinstance(value, list):
        if field != "args":
            raise MatcherError("equals: a list is only for args (the exact argument list)")
        tokens = tuple(_canonical_value(field, v, "equals") for v in value)
        return (lambda values: values == tokens), f"equals {_quote(list(tokens))}", frozenset()
    canonical = _canonical_value(field, value, "equals")  # type: ignore[arg-type]
    return (
        (lambda values: canonical in values),
        f"equals {_quote(canonical)}",
        frozenset({canonical}),
    )


def _in(field: str, items: list[str | int]) -> tuple[Test, str, frozenset[str]]:
    if not items:
        raise MatcherError("in: the list is empty, so nothing could match")
    members = frozenset(_canonical_value(field, v, "in") for v in items)
    return (
        (lambda values: not members.isdisjoint(values)),
        f"in {_quote(sorted(members))}",
        members,
    )


def _canonical_path_glob(pattern: str) -> str:
    """Resolve ``//``, ``.``, ``..`` and a trailing ``/`` in a path glob, as requests are.

    Requests are normalised, so a deny glob written ``/etc//**`` or ``/tmp/../etc/**``
    would otherwise silently match nothing. ``..`` after a wildcard segment has no
    single meaning and is refused.
    """
    if not pattern.startswith(("/", "**")):
        # Every path is absolute and "*" stays within a segment, so "*.pem" (or "*")
        # could never match: a deny rule that silently denies nothing.
        hint = (
            f"; to match at any depth write {'**/' + pattern!r}" if pattern.startswith("*") else ""
        )
        raise MatcherError(
            f"glob: {pattern!r} must be an absolute path pattern (start with '/' or '**'){hint}"
        )
    segments: list[str] = []
    for segment in pattern.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments and any(c in segments[-1] for c in "*?[\\"):
                raise MatcherError(f"glob: {pattern!r}: '..' after a wildcard segment is ambiguous")
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    if pattern.startswith("**"):
        return "/".join(segments)
    return "/" + "/".join(segments)


def _prefix_anchor(start: str) -> Anchor | None:
    """Paths starting with ``start`` start with it up to its last "/"."""
    cut = start.rfind("/")
    return Anchor("prefix", frozenset({start[: cut + 1]})) if cut >= 0 else None


def _suffix_anchor(end: str) -> Anchor | None:
    """Hosts ending with ``end`` end with it from its first "."."""
    cut = end.find(".")
    return Anchor("suffix", frozenset({end[cut:]})) if cut >= 0 else None


def _fold_case(field: str, value: str) -> str:
    """A method, scheme or verb pattern in the case of the request values it is matched on."""
    if field in LOWER_FIELDS:
        return value.lower()
    if field in UPPER_FIELDS:
        return value.upper()
    return value


def _fold_glob_case(field: str, pattern: str) -> str:
    """A method, scheme or verb glob in the case of the request values it is matched on.

    Letters fold, in classes too (a method's ``[a-z]`` is ``[A-Z]``), but a POSIX class
    name is kept as written: upper-casing made a method's ``[[:upper:]]`` the unknown
    ``[[:UPPER:]]``. ``[:lower:]`` and ``[:upper:]`` are refused: these values are
    matched in one case, so either class holds for every letter or for none, and which
    one depends on the field (negated, ``[![:upper:]]`` on a verb, it flipped a deny
    rule from every verb to none when the class took the field's case: rt26).
    """
    if field not in LOWER_FIELDS and field not in UPPER_FIELDS:
        return pattern
    pieces = list(_glob_pieces(pattern))
    for piece, is_named in pieces:
        if is_named and piece in ("[:lower:]", "[:upper:]"):
            case = "lower" if field in LOWER_FIELDS else "upper"
            raise MatcherError(
                f"glob: {pattern!r}: {piece} names a letter case, but every {field} is "
                f"matched in {case} case, so it holds for every letter or for none; write "
                "[:alpha:] for any letter"
            )
    return "".join(piece if is_named else _fold_case(field, piece) for piece, is_named in pieces)


_COMMAND_FORMS = (
    "a command is matched as a name (no '/') or as an absolute path, so it never matches"
)


def _is_path_like(field: str, value: str) -> bool:
    """Paths, and a command given as a path (a bare name has no "/")."""
    return field in PATH_FIELDS or (field == "command" and value.startswith("/"))


# A whole host label an address could have in a glob: a number as inet_aton reads one,
# or wildcards with no letter (``*``, ``?``, ``[0-9]``).
_NUMBER_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_ADDRESS_WILDCARD_LABEL = re.compile(r"[^a-z]*[*?\[][^a-z]*")


def _octet(label: str) -> int | None:
    """What a number label means as an IPv4 part (``0177`` octal, ``0x7f`` hex), if an octet."""
    try:
        if label.startswith("0x"):
            number = int(label[2:], 16)
        elif len(label) > 1 and label.startswith("0"):
            number = int(label[1:], 8)
        else:
            number = int(label)
    except ValueError:
        return None
    return number if number < 256 else None


def _check_ipv4_glob(pattern: str) -> None:
    """Refuse an IPv4-looking host glob with an octet no request holds.

    Requests hold an IPv4 address as a dotted quad of decimal octets (``0177.0.0.1`` is
    ``127.0.0.1``), so a label ``0177`` in ``0177.*.*.*`` never matches one. The host
    canonicaliser checks the octets of a glob whose last label is a number; this covers
    one ending in a wildcard.
    """
    labels = pattern.split(".")
    numbers = [label for label in labels if _NUMBER_LABEL.fullmatch(label)]
    if len(labels) > 4 or not numbers:
        return
    if not all(
        _NUMBER_LABEL.fullmatch(label) or _ADDRESS_WILDCARD_LABEL.fullmatch(label)
        for label in labels
    ):
        return  # a name: "010.*.example" may match the host 010.a.example
    for label in numbers:
        octet = _octet(label)
        if octet is not None and str(octet) == label:
            continue
        if octet is None:
            meaning, fix = f"{label!r} is no octet", "write a cidr"
        else:
            rewritten = ".".join(str(octet) if part == label else part for part in labels)
            meaning, fix = f"{label!r} is {octet}", f"write {rewritten!r}, or a cidr"
        raise MatcherError(
            f"glob: {pattern!r} is not a valid host: an IPv4 glob must use dotted-quad "
            f"decimal octets, as request addresses are matched ({meaning}); {fix}"
        )


def _glob(field: str, pattern: str, budget: CompileBudget) -> tuple[Test, Anchor | None]:
    _refuse_blank_ends(field, pattern, "glob")
    if field == "host":
        _refuse_host_posix_classes(pattern)
        pattern = _canonical_value(field, pattern, "glob")
        _check_ipv4_glob(pattern)
    elif _is_path_like(field, pattern):
        pattern = _canonical_path_glob(pattern)
    elif field == "command" and "/" in pattern and not pattern.startswith("**"):
        # argv[0] is matched as a bare name or a normalised absolute path: "bin/*" (or
        # "*/curl", whose "*" would have to match the empty text before the first "/")
        # never matches, as `command: bin/git` never would.
        anywhere = "*" + pattern if pattern.startswith("*") else "**/" + pattern
        raise MatcherError(
            f"glob: {pattern!r} holds a '/' but does not start with '/' or '**': "
            f"{_COMMAND_FORMS}; write {anywhere!r} for any directory, or an absolute "
            "path pattern"
        )
    else:
        pattern = _fold_glob_case(field, pattern)
    try:
        glob_test, instructions = compile_glob_sized(pattern, "." if field == "host" else "/")
    except GlobError as exc:
        raise MatcherError(f"glob: {pattern!r}: {exc}") from exc
    if instructions is not None:
        budget.charge_program("glob", instructions, folded=False)
    test = _any(glob_test)
    _refuse_impossible_k8s_name(field, pattern, "glob")
    head = literal_head(pattern)
    if head == pattern:
        return test, Anchor("exact", frozenset({pattern}))
    if field in PATH_FIELDS:
        return test, _prefix_anchor(head)
    if field == "host":
        return test, _suffix_anchor(literal_tail(pattern, "."))
    return test, None


# ``.`` in a rule's regex matches any character, newline included (the ``s`` flag):
# request values (paths, arguments) can hold a newline, and a deny regex must not be
# escaped by one. A rule can still opt out with ``(?-s)``.
_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.dot_nl = True
# The error is reported in the policy error; RE2's own log line on stderr is only noise.
_REGEX_OPTIONS.log_errors = False
# Hosts, methods, schemes and verbs are matched in one case (their canonical form), so
# a regex on them ignores case: "Evil\\.com" or "delete|put" must not miss.
_FOLDED_REGEX_OPTIONS = re2.Options()
_FOLDED_REGEX_OPTIONS.dot_nl = True
_FOLDED_REGEX_OPTIONS.log_errors = False
_FOLDED_REGEX_OPTIONS.case_sensitive = False
CASE_FOLDED_FIELDS = LOWER_FIELDS | UPPER_FIELDS | {"host"}


_ESCAPED_DOT = "\\."
# A run of word characters holding a non-ASCII one: a label an IDN regex spells in Unicode.
_UNICODE_WORD = re.compile(r"[\w-]*[^\x00-\x7f][\w-]*")


def _check_host_regex(pattern: str) -> None:
    """Refuse a host regex that can never match a canonical host.

    Hosts are matched as ASCII (IDNA A-labels: ``bücher.de`` is ``xn--bcher-kva.de``)
    and without a trailing dot, which is dropped: a regex spelling a label in Unicode,
    or ending in ``\\.``, would be a deny with a hole.
    """
    if not pattern.isascii():
        import idna

        examples = []
        for word in _UNICODE_WORD.findall(pattern):
            try:
                examples.append(f"{word!r} is {idna.alabel(word.lower()).decode('ascii')!r}")
            except (idna.IDNAError, UnicodeError):  # no A-label form: no example
                continue
        shown = f" ({'; '.join(examples)})" if examples else ""
        raise MatcherError(
            f"regex: {pattern!r} holds non-ASCII text, which no host holds: hosts are "
            f"matched as IDNA A-labels{shown}; write the xn-- form"
        )
    body = pattern[:-1]
    if pattern.endswith(".") and (len(body) - len(body.rstrip("\\"))) % 2 == 1:
        raise MatcherError(
            f"regex: {pattern!r} ends in {_ESCAPED_DOT!r}, but hosts are matched without a "
            f"trailing dot (one is dropped), so it never matches; write {pattern[:-2]!r}"
        )


def _regex(field: str, pattern: str, budget: CompileBudget) -> Test:
    _refuse_blank_ends(field, pattern, "regex")
    if field == "host":
        _check_host_regex(pattern)
    folded = field in CASE_FOLDED_FIELDS
    options = _FOLDED_REGEX_OPTIONS if folded else _REGEX_OPTIONS
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as exc:
        # RE2 reports its message as bytes: show the text, not a b'...' repr.
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise MatcherError(f"regex: {pattern!r} is not valid RE2: {detail}") from exc
    budget.charge_program("regex", compiled.programsize, folded=folded)
    return _any(lambda value: compiled.fullmatch(value) is not None)


def _cidr(field: str, ranges: str | list[str]) -> Test:
    if field != "host":
        raise MatcherError("cidr applies to host only")
    networks = []
    from sidecar.normalise.hosts import embedded_ipv4_network

    for text in [ranges] if isinstance(ranges, str) else ranges:
        _refuse_blank_ends(field, text, "cidr")
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            raise MatcherError(f"cidr: {text!r} is not a valid CIDR range: {exc}") from exc
        # Such a range would miss the same addresses spelt as IPv4 (a deny with a hole).
        ipv4 = embedded_ipv4_network(network) if network.version == 6 else None
        if ipv4 is not None:
            raise MatcherError(
                f"cidr: {text!r} is an IPv4-mapped or NAT64 range and would not match "
                f"{ipv4.network_address} written as IPv4; write {str(ipv4)!r}, which "
                "matches both spellings"
            )
        networks.append(network)
    if not networks:
        raise MatcherError("cidr: the list is empty, so nothing could match")

    def inside(value: str) -> bool:
        address = _ip(value)
        return address is not None and any(
            address.version == net.version and address in net for net in networks
        )

    return _any(inside)


def _prefix(field: str, tokens: list[str]) -> Test:
    if field != "args":
        raise MatcherError("prefix applies to args only")
    if not tokens:
        # Every argument list starts with nothing: read as "no arguments", it would
        # allow any. (An empty in list or matcher object is refused the same way.)
        raise MatcherError(
            "prefix: the list is empty, so every argument list matches; leave args out "
            "for any arguments, or write args: {not: {glob: '**'}} for none"
        )
    for token in tokens:
        _refuse_blank_ends(field, token, "prefix")
    wanted = tuple(tokens)
    size = len(wanted)
    return lambda values: values[:size] == wanted


def _exact_anchor(names: frozenset[str]) -> Anchor | None:
    return Anchor("exact", names) if names else None


def _best_anchor(anchors: list[Anchor | None]) -> Anchor | None:
    """Any anchor of a conjunction will do; exact ones with the fewest keys select most."""
    found: list[Anchor] = [a for a in anchors if a is not None]
    exact = [a for a in found if a.kind == "exact"]
    if not found:
        return None
    return min(exact or found, key=lambda a: len(a.keys))


def _not_depth(matcher: Matcher) -> int:
    depth = 0
    while isinstance(matcher, MatcherSpec) and matcher.not_ is not None:
        depth += 1
        matcher = matcher.not_
    return depth


def _listed(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def compile_matcher(field: str, matcher: Matcher, budget: CompileBudget) -> FieldTest:
    """Compile the matcher written for ``field``, charging ``budget`` as it goes.

    Raises ``MatcherError`` (``BudgetError`` when the budget is crossed)."""
    depth = _not_depth(matcher)
    if depth > MAX_NOT_DEPTH:
        # Refused before anything compiles: each level may hold a regex.
        raise MatcherError(
            f"not: nested {depth} levels deep, more than the {MAX_NOT_DEPTH} a matcher may "
            "nest; not of not is the matcher itself, and the operators of one level must "
            "all hold, so write them side by side"
        )
    return _compile_matcher(field, matcher, budget)


def _compile_matcher(field: str, matcher: Matcher, budget: CompileBudget) -> FieldTest:
    if isinstance(matcher, list):
        budget.charge_operator("in", len(matcher))
        test, text, listed = _in(field, matcher)
        return FieldTest(field, test, text, listed, _exact_anchor(listed))
    if not isinstance(matcher, MatcherSpec):
        budget.charge_operator("equals")
        test, text, equal = _equals(field, matcher)
        return FieldTest(field, test, text, equal, _exact_anchor(equal))
    spec = matcher
    parts: list[tuple[Test, str]] = []
    anchors: list[Anchor | None] = []
    names: frozenset[str] | None = None
    # Every operator given costs its closure and text, charged before it compiles.
    for operator, value in (
        ("equals", spec.equals),
        ("in", spec.in_),
        ("glob", spec.glob),
        ("startsWith", spec.startsWith),
        ("endsWith", spec.endsWith),
        ("regex", spec.regex),
        ("cidr", spec.cidr),
        ("prefix", spec.prefix),
        ("not", spec.not_),
    ):
        if value is not None:
            budget.charge_operator(operator, _listed(value) if operator != "not" else 0)
    if spec.equals is not None:
        test, text, names = _equals(field, spec.equals)
        parts.append((test, text))
        anchors.append(_exact_anchor(names))
    if spec.in_ is not None:
        test, text, in_names = _in(field, spec.in_)
        names = in_names if names is None else names & in_names
        parts.append((test, text))
        anchors.append(_exact_anchor(in_names))
    if spec.glob is not None:
        test, anchor = _glob(field, spec.glob, budget)
        parts.append((test, f"glob {_quote(spec.glob)}"))
        anchors.append(anchor)
    if spec.startsWith is not None:
        _refuse_blank_ends(field, spec.startsWith, "startsWith")
        start = (
            _host_affix(spec.startsWith, "startsWith")
            if field == "host"
            else _fold_case(field, spec.startsWith)
        )
        # Every path value is absolute: a prefix without the leading "/" (``etc/``,
        # ``~/.ssh``) would never match, a deny rule with a hole.
        if field in PATH_FIELDS and start and not start.startswith("/"):
            raise MatcherError(
                f"startsWith: {start!r} does not start with '/' and every path is "
                "absolute, so it never matches"
            )
        if field == "command" and "/" in start and not start.startswith("/"):
            raise MatcherError(
                f"startsWith: {start!r} holds a '/' but does not start with '/': {_COMMAND_FORMS}"
            )
        if field in NO_WILDCARD_FIELDS:
            pattern = start if start.endswith("*") else start + "*"
            _refuse_wildcard(field, start, "startsWith", pattern)
        if start != "core":  # a group starting so (coredns.example) may exist
            _refuse_impossible_k8s_name(field, start, "startsWith")
        # Whole segments before the last (which may be cut) must be normal ones.
        if _is_path_like(field, start) and {"", ".", ".."} & set(start.split("/")[1:-1]):
            raise MatcherError(
                f"startsWith: {start!r} is not a normalised path, so it never matches"
            )
        parts.append((_any(lambda v: v.startswith(start)), f"startsWith {_quote(start)}"))
        if field in PATH_FIELDS:
            anchors.append(_prefix_anchor(start))
    if spec.endsWith is not None:
        _refuse_blank_ends(field, spec.endsWith, "endsWith")
        end = (
            _host_affix(spec.endsWith, "endsWith")
            if field == "host"
            else _fold_case(field, spec.endsWith)
        )
        if field in NO_WILDCARD_FIELDS:
            _refuse_wildcard(field, end, "endsWith", end if end.startswith("*") else "*" + end)
        if end != "core":
            _refuse_impossible_k8s_name(field, end, "endsWith")
        # Whole segments after the first "/" (the one before may be cut) must be normal
        # ones: paths, URL paths included, are matched without "//" or a trailing "/".
        # A command with a "/" is a normalised path too.
        path_like = field in PATH_FIELDS or (field == "command" and "/" in end)
        if path_like and {"", ".", ".."} & set(end.split("/")[1:]):
            raise MatcherError(
                f"endsWith: {end!r} is not the end of a normalised path (no '//', '.' or "
                "'..' segment, no trailing '/'), so it never matches"
            )
        parts.append((_any(lambda v: v.endswith(end)), f"endsWith {_quote(end)}"))
        if field == "host":
            anchors.append(_suffix_anchor(end))
    if spec.regex is not None:
        parts.append((_regex(field, spec.regex, budget), f"regex {_quote(spec.regex)}"))
    if spec.cidr is not None:
        parts.append((_cidr(field, spec.cidr), f"cidr {_quote(spec.cidr)}"))
    if spec.prefix is not None:
        parts.append((_prefix(field, spec.prefix), f"prefix {_quote(spec.prefix)}"))
        if spec.prefix:  # the first argument is one of the values
            anchors.append(Anchor("exact", frozenset(spec.prefix[:1])))
    if spec.not_ is not None:
        inner = _compile_matcher(field, spec.not_, budget)
        parts.append(((lambda values: not inner.test(values)), f"not ({inner.text})"))
    if not parts:
        raise MatcherError("an empty matcher object matches nothing; give an operator")
    # A matcher that is not purely a set of exact names cannot name a construct.
    exact = names if names is not None and len(parts) == 1 else frozenset()
    anchor = _best_anchor(anchors)
    if len(parts) == 1:
        return FieldTest(field, parts[0][0], parts[0][1], exact, anchor)
    tests = tuple(test for test, _ in parts)
    return FieldTest(
        field,
        lambda values: all(test(values) for test in tests),
        " and ".join(text for _, text in parts),
        exact,
        anchor,
    )
