"""``tollgate policy test``: run policy test files (CONTRACT section 3).

A test file (``*.test.yaml``, format in docs/policy-tests.md) names a policy and lists
cases: a /check request, the expected decision and optionally the deciding rule. Each
case goes through ``evaluate_request``, the same path the daemon and ``tollgate check``
use, and then through the gate's rate-limit accounting against fresh limits
(``evaluate_with_fresh_limits``), so a passing test says what a freshly started gate will
answer: each case is one request against fresh limits.

Exit codes: 0 every case passed, 1 some case failed, 2 a usage, I/O, test-file or policy
error (reported, and the other files still run).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from sidecar.engine import Verdict
from sidecar.errors import PolicyError, RequestError
from sidecar.identity import resolve_identity
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import (
    MAX_YAML_NODES,
    YAMLTooLargeError,
    compose_yaml,
    load_policy_file,
    load_yaml_strict,
    mapping_pairs,
    misread_scalar,
)
from sidecar.ratelimit import evaluate_with_fresh_limits

# What resolve_identity gives with no TOLLGATE_IDENTITY and no pod variables.
GATE_DEFAULT_IDENTITY = resolve_identity({})

TEST_FILE_SUFFIX = ".test.yaml"
EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PolicyTestCase(_Strict):
    name: Annotated[StrictStr, Field(min_length=1)]
    request: dict[str, Any]
    expect: Literal["allow", "deny", "require_approval"]
    # Absent: not checked. null: no rule decided (defaultAction). A string: that rule id.
    rule: StrictStr | None = None
    # The sidecar identity the request is evaluated under, for rules matching ``agent``.
    # Left out: the one a gate has when nothing configures it, not the environment of
    # the machine running the tests (a CI runner with TOLLGATE_IDENTITY set gets the
    # same results).
    agent: StrictStr = GATE_DEFAULT_IDENTITY

    @field_validator("agent")
    @classmethod
    def _an_identity_a_gate_can_have(cls, agent: str) -> str:
        # A gate strips its identity and falls back to "local": a case under "" or
        # " ci" would prove what no gate ever decides.
        if not agent or agent != agent.strip():
            raise ValueError(
                f"{agent!r} is no gate's identity: a gate's is never empty and has no "
                f"whitespace at either end; leave agent out for {GATE_DEFAULT_IDENTITY!r}"
            )
        return agent

    @property
    def checks_rule(self) -> bool:
        return "rule" in self.model_fields_set


class PolicyTestFile(_Strict):
    policy: Annotated[StrictStr, Field(min_length=1)]
    cases: Annotated[list[PolicyTestCase], Field(min_length=1)]


class PolicyTestFileError(Exception):
    """A test file cannot be read or is not a valid test file; each problem is listed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class CaseFailure:
    file: str
    index: int
    case: PolicyTestCase
    got: str  # what happened instead, one line
    trace: tuple[str, ...]


def discover_test_files(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Every test file named or found below ``paths``, in a stable order; plus problems.

    A file given by name is used whatever it is called; directories are searched for
    ``*.test.yaml``.
    """
    found: list[Path] = []
    problems: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(p for p in path.rglob(f"*{TEST_FILE_SUFFIX}") if p.is_file())
            # A test file that is not run must not pass for one that passed.
            problems.extend(
                f"{p}: not run: test files end in {TEST_FILE_SUFFIX}"
                for p in sorted(path.rglob("*.test.yml"))
                if p.is_file()
            )
            if not candidates:
                problems.append(f"{given}: no *{TEST_FILE_SUFFIX} files below this directory")
        else:
            problems.append(f"{given}: no such file or directory")
            continue
        found.extend(p for p in candidates if p not in found)
    return found, problems


def _location(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def load_test_file(path: Path) -> PolicyTestFile:
    """Read and validate one test file. Raises ``PolicyTestFileError``."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyTestFileError(source, [f"cannot read: {exc}"]) from exc
    try:
        raw = load_yaml_strict(text)
    except YAMLTooLargeError as exc:
        too_large = (
            f"the file is too large: it has more than {MAX_YAML_NODES:,} YAML nodes, the "
            f"limit (line {exc.line} passes it); split its cases over several test files"
        )
        raise PolicyTestFileError(source, [too_large]) from exc
    except yaml.YAMLError as exc:
        raise PolicyTestFileError(source, [f"invalid YAML: {exc}".replace("\n", " ")]) from exc
    except ValueError as exc:  # e.g. an integer beyond CPython's digit limit
        raise PolicyTestFileError(source, [f"invalid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise PolicyTestFileError(source, ["the document must be a mapping with policy and cases"])
    try:
        loaded = PolicyTestFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            if item["type"] == "value_error":
                message = str(item["ctx"]["error"])  # ours, without pydantic's "Value error, "
            problems.append(f"{_location(tuple(item['loc'])) or '(top level)'}: {message}")
        raise PolicyTestFileError(source, problems) from None
    problems = [
        problem
        for index, case in enumerate(loaded.cases)
        for problem in _not_json(case.request, f"cases[{index}].request")
    ]
    if any(_holds_bool(case.request) for case in loaded.cases):
        # A YAML 1.1 word read as a boolean (namespace: no, a key on:) is named as written.
        cases = next((v for k, v in mapping_pairs(compose_yaml(text)) if k.value == "cases"), None)
        misread: list[str] = []
        for index, case in enumerate(loaded.cases):
            node = cases.value[index] if isinstance(cases, yaml.SequenceNode) else None
            request = next((v for k, v in mapping_pairs(node) if k.value == "request"), None)
            misread.extend(_misread(case.request, request, f"cases[{index}].request"))
        named = tuple(p.partition(': key "')[0] + ": the key " for p in misread if ': key "' in p)
        problems = misread + [p for p in problems if not p.startswith(named)]
    if problems:
        raise PolicyTestFileError(source, problems)
    return loaded


def _holds_bool(value: object) -> bool:
    if isinstance(value, dict):
        return any(not isinstance(k, str) or _holds_bool(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_bool(item) for item in value)
    return isinstance(value, bool)


def _misread(value: object, node: yaml.Node | None, where: str) -> list[str]:
    """Keys and values of ``value`` that YAML 1.1 read as other than the text written,
    told from the nodes they were loaded from (``node``, None when not found)."""
    problems: list[str] = []
    if isinstance(value, dict):
        pairs = mapping_pairs(node)
        if len(pairs) != len(value):
            return []
        for (key, item), (key_node, item_node) in zip(value.items(), pairs, strict=True):
            found = misread_scalar(key_node, key=True) if not isinstance(key, str) else None
            problems.extend([f"{where}: {found}"] if found else [])
            problems.extend(_misread(item, item_node, f"{where}.{key}"))
    elif isinstance(value, list) and isinstance(node, yaml.SequenceNode):
        for index, (item, item_node) in enumerate(zip(value, node.value, strict=False)):
            problems.extend(_misread(item, item_node, f"{where}[{index}]"))
    elif isinstance(value, bool) and (found := misread_scalar(node)) is not None:
        problems.append(f"{where}: {found}")
    return problems


def _not_json(value: object, where: str) -> list[str]:
    """Values in a case's request that JSON has no form for, so no POST /check body can
    hold them: YAML 1.1 reads an unquoted date as a date, and has !!binary and !!set."""
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(
                    f"{where}: the key {key!r} is a YAML {type(key).__name__}, not a string "
                    "(YAML reads on, no, numbers and dates so); quote it"
                )
            problems.extend(_not_json(item, f"{where}.{key}"))
        return problems
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _not_json(item, f"{where}[{index}]")]
    if value is None or isinstance(value, str | int):  # bool is an int
        return []
    if isinstance(value, float) and math.isfinite(value):
        return []
    if isinstance(value, datetime.date):  # a datetime is a date too
        kind = "timestamp" if isinstance(value, datetime.datetime) else "date"
        kind, fix = f"{kind} ({value})", "quote it as a string"
    elif isinstance(value, float):
        kind, fix = f"number {value}", "JSON has no NaN or infinity"
    elif isinstance(value, set | frozenset):
        kind, fix = "!!set", "write a list"
    elif isinstance(value, bytes):
        kind, fix = "!!binary value", "write the text as a string"
    elif isinstance(value, tuple):
        kind, fix = "!!pairs or !!omap entry", "write a mapping"
    else:
        kind, fix = type(value).__name__, "write a JSON value"
    return [f"{where}: a YAML {kind}, which a JSON request cannot hold; {fix}"]


def _describe(decision: str, rule: str | None) -> str:
    return f"{decision} by {rule if rule is not None else 'defaultAction'}"


def run_case(policy: CompiledPolicy, case: PolicyTestCase) -> tuple[str | None, Verdict | None]:
    """Evaluate one case; return (what went wrong or None, the verdict if there is one)."""
    try:
        verdict = evaluate_with_fresh_limits(
            policy, case.request, identity=case.agent, explain=True
        )
    except RequestError as exc:
        return f"the request is invalid: {exc}", None
    decision_ok = verdict.decision == case.expect
    rule_ok = not case.checks_rule or verdict.rule == case.rule
    if decision_ok and rule_ok:
        return None, verdict
    return f"{_describe(verdict.decision, verdict.rule)}: {verdict.reason}", verdict


def _expected(case: PolicyTestCase) -> str:
    return _describe(case.expect, case.rule) if case.checks_rule else case.expect


def _report_failure(failure: CaseFailure, out: TextIO) -> None:
    case = failure.case
    out.write(f"FAIL {failure.file}: cases[{failure.index}] {json.dumps(case.name)}\n")
    # load_test_file refuses values JSON cannot hold; repr keeps the report (and the run
    # after it) going should one slip past.
    request = json.dumps(case.request, ensure_ascii=False, default=repr)
    out.write(f"  request:  {request}\n")
    out.write(f"  expected: {_expected(case)}\n")
    out.write(f"  got:      {failure.got}\n")
    if failure.trace:
        out.write("  explain:\n")
        out.writelines(f"    {line}\n" for line in failure.trace)


def _report_error(source: str, problems: list[str], out: TextIO) -> None:
    for problem in problems:
        out.write(f"ERROR {source}: {problem}\n")


class _PolicyCache:
    """Loads each policy file once, however many test files name it."""

    def __init__(self) -> None:
        self._loaded: dict[str, CompiledPolicy | PolicyError] = {}

    def get(self, path: Path) -> CompiledPolicy:
        key = os.path.realpath(path)
        if key not in self._loaded:
            try:
                self._loaded[key] = load_policy_file(path)
            except PolicyError as exc:
                self._loaded[key] = exc
        found = self._loaded[key]
        if isinstance(found, PolicyError):
            raise found
        return found


def _run_file(path: Path, policies: _PolicyCache) -> tuple[int, list[CaseFailure]]:
    """Run one test file: (number of cases, failures). Raises on file or policy errors."""
    test_file = load_test_file(path)
    policy = policies.get(path.parent / test_file.policy)
    _check_rule_ids(path, test_file, policy)
    failures: list[CaseFailure] = []
    for index, case in enumerate(test_file.cases):
        got, verdict = run_case(policy, case)
        if got is not None:
            trace = verdict.trace if verdict is not None else ()
            failures.append(CaseFailure(str(path), index, case, got, trace))
    return len(test_file.cases), failures


def _check_rule_ids(path: Path, test_file: PolicyTestFile, policy: CompiledPolicy) -> None:
    """A case expecting a rule id the policy does not have could never pass: a typo in
    the test (or a rule renamed since) is a test-file error, not a failure to debug
    from the trace. Raises ``PolicyTestFileError``."""
    ids = {rule.id for rule in policy.rules}
    problems = [
        f"cases[{index}].rule: the policy has no rule with id {case.rule!r}"
        for index, case in enumerate(test_file.cases)
        if case.rule is not None and case.rule not in ids
    ]
    if problems:
        raise PolicyTestFileError(str(path), problems)


def run_policy_tests(paths: list[str], out: TextIO) -> int:
    """Run every test file under ``paths``, report to ``out``; return the exit code."""
    if not paths:
        out.write("ERROR: give at least one test file or directory\n")
        return EXIT_ERROR
    files, problems = discover_test_files(paths)
    errors = bool(problems)
    for problem in problems:
        out.write(f"ERROR {problem}\n")
    policies = _PolicyCache()
    passed = failed = 0
    for path in files:
        try:
            count, failures = _run_file(path, policies)
        except PolicyTestFileError as exc:
            errors = True
            _report_error(exc.source, exc.problems, out)
            continue
        except PolicyError as exc:
            errors = True
            _report_error(f"{path}: policy {exc.source}", exc.problems, out)
            continue
        passed += count - len(failures)
        failed += len(failures)
        for failure in failures:
            _report_failure(failure, out)
        status = "ok  " if not failures else "FAIL"
        out.write(f"{status} {path} ({count - len(failures)}/{count} cases passed)\n")
    out.write(f"policy test: {passed} passed, {failed} failed\n")
    if errors:
        return EXIT_ERROR
    return EXIT_FAILED if failed else EXIT_PASSED
