"""Policy loading (CONTRACT section 1, "Validation is strict"): every error names the
file, the rule and the key, and a policy with any error is never half-loaded."""

from __future__ import annotations

import gc
import hashlib
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from yaml.constructor import SafeConstructor

from sidecar.engine import evaluate_request
from sidecar.errors import PolicyError
from sidecar.policy.loader import (
    STRICT_YAML_LOADER,
    YAML_LOADERS,
    check_unambiguous,
    load_policy_bytes,
    load_policy_file,
    load_yaml_strict,
)
from sidecar.policytest import PolicyTestFileError, load_test_file

DESIGN_NOTES = """\
version: 1
defaultAction: deny
rules:
  - action: file.read
    path:
      glob: "/app/data/**"
    decision: allow
  - action: file.write
    path:
      glob: "/app/output/**"
    decision: allow
  - action: process.exec
    decision: deny
  - action: network.request
    host:
      in: ["api.openai.com", "api.anthropic.com"]
    decision: allow
  - action: network.request
    host:
      endsWith: ".internal.svc.cluster.local"
    decision: allow
"""


def problems_of(text: str, source: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy_bytes(text.encode(), source)
    assert info.value.source == source
    assert source in str(info.value)
    return info.value.problems


def test_design_notes_policy_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "design.yaml"
    path.write_bytes(DESIGN_NOTES.encode())
    policy = load_policy_file(path)
    assert policy.hash == "sha256:" + hashlib.sha256(DESIGN_NOTES.encode()).hexdigest()
    assert [r.id for r in policy.rules] == [f"rules[{i}]" for i in range(5)]
    assert policy.default_action == "deny" and policy.mode == "enforce"


def test_hash_changes_with_any_byte() -> None:
    a = load_policy_bytes(DESIGN_NOTES.encode(), "a")
    b = load_policy_bytes((DESIGN_NOTES + "\n").encode(), "b")
    assert a.hash != b.hash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nrules:\n  - {id: r, action: file.read, decision: allow, pth: /x}\n",
            "rules[0] (id 'r'): pth: unknown key",
        ),
        ("version: 1\nextra: 1\n", "extra: unknown key"),
        ("version: 2\n", "version"),
        ("version: 1\nrules:\n  - {action: file.read, decision: maybe}\n", "rules[0]: decision"),
        (
            "version: 1\nrules:\n  - {action: file.read, decision: allow, risk: extreme}\n",
            "rules[0]: risk",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, decision: allow, path: {glob: 3}}\n",
            "rules[0]: path",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, decision: allow, path: {gob: '/x'}}\n",
            "rules[0]: path.gob: unknown key",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, decision: allow, rateLimit: {count: 0, per: 1s}}\n",
            "rules[0]: rateLimit.count",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, decision: allow, rateLimit: {count: 1, per: soon}}\n",
            "rules[0]: rateLimit.per",
        ),
        ("version: 1\ndefaultAction: maybe\n", "defaultAction"),
        ("version: 1\nmode: yolo\n", "mode"),
        ("version: '1'\n", "version"),
    ],
)
def test_schema_errors_name_rule_and_key(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{id: r, action: file.read, decision: allow, host: x.com}",
            "rules[0] (id 'r'): host: action file.read has no field 'host'",
        ),
        (
            "{action: process.exec, decision: allow, path: /x}",
            "rules[0]: path: action process.exec has no field",
        ),
        (
            "{action: network.request, decision: allow, verb: get}",
            "rules[0]: verb: action network.request",
        ),
        ("{action: file.delete, decision: allow, path: {glob: '/x/[ab'}}", "rules[0]: path: glob"),
        (
            "{action: process.exec, decision: allow, command: {regex: '(a'}}",
            "rules[0]: command: regex",
        ),
        (
            "{action: process.exec, decision: allow, command: {regex: '(a)\\1'}}",
            "rules[0]: command: regex",
        ),
        (
            "{action: process.exec, decision: allow, args: {cidr: 10.0.0.0/8}}",
            "cidr applies to host only",
        ),
        (
            "{action: file.read, decision: allow, path: {prefix: [a]}}",
            "prefix applies to args only",
        ),
        ("{action: file.read, decision: allow, path: relative/x}", "must be an absolute path"),
        ("{action: file.read, decision: allow, path: {in: []}}", "the list is empty"),
        ("{action: file.read, decision: allow, path: {}}", "empty matcher"),
        # Found by a red-team review of 2026-12-06: it allowed git push --force.
        (
            "{action: process.exec, decision: allow, command: git, args: {prefix: []}}",
            "prefix: the list is empty, so every argument list matches",
        ),
        ("{action: file.raed, decision: allow}", "rules[0]: action: unknown action 'file.raed'"),
        ("{action: 'net.*', decision: allow}", "wildcard 'net.*' matches no action"),
        ("{action: 'file.*', decision: allow, verb: get}", "no action matched by the wildcard"),
        (
            "{action: file.read, decision: deny, rateLimit: {count: 1, per: 1s}}",
            "only allow rules can have a rateLimit",
        ),
        ("{action: network.request, decision: allow, port: 70000}", "not a port number"),
        # a host pattern in equals/in is compared literally and no host has '*': a deny
        # of "*.evil.com" denied nothing
        (
            "{action: network.request, decision: deny, host: '*.evil.com'}",
            "rules[0]: host: equals: '*.evil.com' is compared as written",
        ),
        (
            "{action: network.request, decision: deny, host: {in: [a.com, 'b?.com']}}",
            "for a pattern write {glob: 'b?.com'}",
        ),
        # an IPv4-mapped or NAT64 range would miss the same addresses spelt as IPv4
        (
            "{action: network.request, decision: deny, host: {cidr: '::ffff:10.0.0.0/104'}}",
            "write '10.0.0.0/8', which matches both spellings",
        ),
        (
            "{action: network.request, decision: deny, host: {cidr: ['::1/128', "
            "'64:ff9b::a9fe:a9fe/128']}}",
            "write '169.254.169.254/32'",
        ),
        # paths are matched normalised (URL paths too): these could never match
        (
            "{action: network.request, decision: deny, path: {endsWith: /}}",
            "rules[0]: path: endsWith",
        ),
        ("{action: file.read, decision: deny, path: {endsWith: x/}}", "never matches"),
        ("{action: k8s.request, decision: deny, path: {endsWith: a//b}}", "never matches"),
        ("{action: file.read, decision: deny, path: {endsWith: /../x}}", "never matches"),
        ("{action: file.read, decision: deny, path: {startsWith: /a//}}", "never matches"),
    ],
)
def test_semantic_errors_name_rule_and_key(rule: str, expected: str) -> None:
    problems = problems_of(f"version: 1\nrules:\n  - {rule}\n")
    assert any(expected in p for p in problems), problems


LIMITED = "version: 1\nrules:\n  - {{action: file.read, decision: allow, rateLimit: {{count: {count}, per: {per}}}}}\n"
HUGE = "9" * 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Unbounded, these passed validation; a timeout past year 9999 then made every
        # require_approval check fail with a 500, and a count or window of hundreds of
        # digits overflowed a float.
        ("version: 1\napprovals: {timeout: 99999999h}\n", "approvals.timeout: Value error, '99999999h' is longer than the longest allowed, 168h (7 days)"),
        ("version: 1\napprovals: {timeout: 169h}\n", "approvals.timeout"),
        ("version: 1\napprovals: {timeout: 604800001ms}\n", "approvals.timeout"),
        (f"version: 1\napprovals: {{timeout: {HUGE}s}}\n", "approvals.timeout: Value error"),
        (f"version: 1\napprovals: {{timeout: {'9' * 5000}s}}\n", "far longer than any duration"),
        (LIMITED.format(count=1, per="99999999h"), "rules[0]: rateLimit.per: Value error, '99999999h' is longer than the longest allowed, 720h (30 days)"),
        (LIMITED.format(count=1, per="721h"), "rules[0]: rateLimit.per"),
        (LIMITED.format(count=1, per=f"{HUGE}ms"), "rules[0]: rateLimit.per"),
        (LIMITED.format(count=HUGE, per="1s"), "rules[0]: rateLimit.count"),
        (LIMITED.format(count=1_000_000_001, per="1s"), "rules[0]: rateLimit.count"),
    ],
    ids=["timeout-years", "timeout-169h", "timeout-ms", "timeout-400-digits", "timeout-5000-digits", "per-years", "per-721h", "per-400-digits", "count-400-digits", "count-1e9+1"],
)  # fmt: skip
def test_durations_and_counts_have_an_upper_bound(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


def test_the_longest_durations_allowed_load() -> None:
    policy = load_policy_bytes(
        (
            LIMITED.format(count=1_000_000_000, per="720h") + "approvals: {timeout: 10080m}\n"
        ).encode(),
        "p.yaml",
    )
    assert policy.approval_timeout == 7 * 24 * 3600
    rate_limit = policy.rules[0].rate_limit
    assert rate_limit is not None and rate_limit.per_seconds == 30 * 24 * 3600


def test_duplicate_ids_are_errors_including_defaults() -> None:
    problems = problems_of(
        "version: 1\nrules:\n"
        "  - {id: a, action: file.read, decision: allow}\n"
        "  - {id: a, action: file.read, decision: deny}\n"
        "  - {action: file.read, decision: deny}\n"
        "  - {id: 'rules[2]', action: file.read, decision: deny}\n"
    )
    assert any("rules[1] (id 'a'): id: duplicate id, also used by rules[0]" in p for p in problems)
    assert any("rules[3] (id 'rules[2]'): id: duplicate id" in p for p in problems)


@pytest.mark.parametrize("blank", ["''", "' '"])
def test_a_blank_id_is_an_error(blank: str) -> None:
    # Found in the contract review of 2026-12-07: id: "" loaded, and its decisions said
    # "rule  allows file.read of /a" with "rule": "".
    problems = problems_of(
        f"version: 1\nrules:\n  - {{id: {blank}, action: file.read, decision: allow}}\n"
    )
    assert any(
        "id: must not be blank; leave it out for the default rules[0]" in p for p in problems
    )


def test_every_semantic_problem_is_reported_at_once() -> None:
    problems = problems_of(
        "version: 1\nrules:\n"
        "  - {action: file.read, decision: allow, host: x}\n"
        "  - {action: process.exec, decision: allow, command: {regex: '('}}\n"
    )
    assert len(problems) == 2


def test_duplicate_yaml_keys_are_errors() -> None:
    problems = problems_of("version: 1\nrules: []\nrules: []\n")
    assert any("duplicate key 'rules'" in p for p in problems)


def test_invalid_yaml_and_non_mapping() -> None:
    assert "invalid YAML" in problems_of("version: 1\nrules: [\n")[0]
    assert "mapping" in problems_of("- a\n- b\n")[0]
    assert "mapping" in problems_of("")[0]


def test_yaml_tags_cannot_construct_objects() -> None:
    problems = problems_of("version: 1\nrules: !!python/object/apply:os.system ['true']\n")
    assert any("invalid YAML" in p for p in problems)


def test_unreadable_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_file(tmp_path / "missing.yaml")
    assert "cannot read" in info.value.problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The value forgotten or commented out: read as "no condition", the rule matched
        # every path / every API group.
        (
            "version: 1\nrules:\n  - action: file.read\n    path:\n    decision: allow\n",
            "rules[0]: path: no value (null)",
        ),
        (
            "version: 1\nrules:\n  - {id: core, action: k8s.request, group: ~, decision: allow}\n",
            "rules[0] (id 'core'): group: no value (null)",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, path: {glob: /a/**, not: }, "
            "decision: allow}\n",
            "rules[0]: path.not: no value (null)",
        ),
        (
            "version: 1\nrules:\n  - {action: file.read, path: /a, decision: allow, rateLimit: }\n",
            "rules[0]: rateLimit: no value (null)",
        ),
        ("version: 1\ntrustedPaths:\n", "trustedPaths: no value (null)"),
    ],
)
def test_a_key_without_a_value_is_an_error_not_a_missing_condition(
    text: str, expected: str
) -> None:
    assert any(expected in p for p in problems_of(text)), problems_of(text)


def test_warnings_for_risky_but_valid_policies() -> None:
    policy = load_policy_bytes(b"version: 1\ndefaultAction: allow\n", "p")
    assert any("defaultAction: allow" in w for w in policy.warnings)


BROAD_ALLOWS = """\
version: 1
rules:
  - {id: everything, action: file.read, decision: allow}
  - {id: app, action: file.read, path: {startsWith: /app}, decision: allow}
  - {id: tmp, action: process.exec, command: make, cwd: {startsWith: /tmp}, decision: allow}
  - {id: api, action: network.request, host: {endsWith: example.com}, decision: allow}
  - {id: fine, action: file.read, path: {startsWith: /srv/}, decision: allow}
  - {id: subdomains, action: network.request, host: {endsWith: .example.org}, decision: allow}
  - {id: deny-broadly, action: file.write, path: {startsWith: /etc}, decision: deny}
"""


def test_allow_rules_that_probably_allow_more_than_meant_are_warned_of() -> None:
    warnings = list(load_policy_bytes(BROAD_ALLOWS.encode(), "p").warnings)
    assert warnings == [
        "rules[0] (id 'everything'): no conditions: the rule allows every request of its actions",
        "rules[1] (id 'app'): path: startsWith '/app' also matches '/appx'; end it with '/' "
        "or write {glob: '/app/**'}",
        "rules[2] (id 'tmp'): cwd: startsWith '/tmp' also matches '/tmpx'; end it with '/' "
        "or write {glob: '/tmp/**'}",
        "rules[3] (id 'api'): host: endsWith 'example.com' also matches 'evilexample.com'; "
        "write '.example.com' for its subdomains or {glob: '*.example.com'}",
    ]


HOST_PATTERNS = """\
version: 1
rules:
  - {id: glob-no-dot, action: network.request, host: {glob: "*example.com"}, decision: allow}
  - {id: regex-unescaped, action: network.request, host: {regex: api.github.com}, decision: allow}
  - {id: regex-suffix, action: network.request, host: {regex: ".*example\\\\.org"}, decision: allow}
  - {id: glob-stars, action: network.request, host: {glob: "**example.net"}, decision: allow}
  - {id: subdomains, action: network.request, host: {glob: "*.example.com"}, decision: allow}
  - {id: anchored, action: network.request, host: {regex: "(.*\\\\.)?example\\\\.org"}, decision: allow}
  - {id: escaped, action: network.request, host: {regex: "api\\\\.github\\\\.com"}, decision: allow}
  - {id: in-label, action: network.request, host: {glob: "api-*.example.com"}, decision: allow}
  - {id: deny-too, action: network.request, host: {glob: "*evil.example"}, decision: deny}
  # Warned of only when the compiled matcher takes the sample.
  - id: sample-excluded
    action: network.request
    host: {regex: ".*example\\\\.org", not: {in: [evilexample.org]}}
    decision: allow
"""


def test_host_globs_and_regexes_that_match_other_domains_are_warned_of() -> None:
    # rt27 policies review, finding 3: endsWith example.com was warned of, the same
    # mistake written as a glob or regex was not.
    policy = load_policy_bytes(HOST_PATTERNS.encode(), "p")
    assert list(policy.warnings) == [
        "rules[0] (id 'glob-no-dot'): host: glob '*example.com' also matches "
        "'evilexample.com'; write '*.example.com' for its subdomains",
        "rules[1] (id 'regex-unescaped'): host: regex 'api.github.com' also matches "
        "'api-github.com': an unescaped '.' matches any character; write '\\.' for a dot",
        "rules[2] (id 'regex-suffix'): host: regex '.*example\\\\.org' also matches "
        "'evilexample.org'; start the domain at a label, as in '(.*\\\\.)?example\\\\.org' "
        "for it and its subdomains",
        "rules[3] (id 'glob-stars'): host: glob '**example.net' also matches "
        "'evilexample.net'; write '**.example.net' for its subdomains",
    ]
    for host, rule in [
        ("evilexample.com", "glob-no-dot"),
        ("api-github.com", "regex-unescaped"),
        ("evilexample.org", "regex-suffix"),
        ("evilexample.net", "glob-stars"),
    ]:
        verdict = evaluate_request(policy, {"action": "network.request", "host": host})
        assert (verdict.decision, verdict.rule) == ("allow", rule)  # what the warning says


WIDE_GLOBS = """\
version: 1
rules:
  - {id: ws, action: file.read, path: {glob: "/workspace**"}, decision: allow}
  - {id: up, action: file.read, path: {glob: "/workspace/../**"}, decision: allow}
  - {id: all, action: file.write, path: {glob: "**"}, decision: allow}
  - {id: cwd, action: process.exec, command: make, cwd: {glob: "/src**"}, decision: allow}
  - {id: fine, action: file.read, path: {glob: "/data/file-*.csv"}, decision: allow}
  - {id: tree, action: file.read, path: {glob: "/workspace/**"}, decision: allow}
  - {id: deny-all, action: file.delete, path: {glob: "/**"}, decision: deny}
"""


def test_allow_globs_that_reach_further_than_they_read_are_warned_of() -> None:
    # rt24 files review: "/workspace**" allowed /workspace-secrets/.env in silence.
    policy = load_policy_bytes(WIDE_GLOBS.encode(), "p")
    assert list(policy.warnings) == [
        "rules[0] (id 'ws'): path: glob '/workspace**' also matches "
        "'/workspace-secrets/.env': a '**' that is not a whole segment crosses '/'; "
        "write '/workspace/**'",
        "rules[1] (id 'up'): path: glob '/workspace/../**' matches every path",
        "rules[2] (id 'all'): path: glob '**' matches every path",
        "rules[3] (id 'cwd'): cwd: glob '/src**' also matches '/src-secrets/.env': a '**' "
        "that is not a whole segment crosses '/'; write '/src/**'",
    ]
    reads = evaluate_request(policy, {"action": "file.read", "path": "/workspace-secrets/.env"})
    assert (reads.decision, reads.rule) == ("allow", "ws")  # what the warning says


PROGRAM_PATHS = """\
version: 1
defaultAction: allow
rules:
  - {id: no-curl, action: process.exec, command: /usr/bin/curl, decision: deny}
  - {id: ask-wget, action: process.exec, command: {in: [/bin/wget, nc]}, decision: require_approval}
  - {id: own-tool, action: process.exec, command: /opt/tool/bin/x, decision: deny}
  - {id: by-name, action: process.exec, command: rm, decision: deny}
  - {id: allowed-path, action: process.exec, command: /usr/bin/git, decision: allow}
"""


def test_a_deny_of_a_programs_trusted_path_warns_that_its_name_is_not_denied() -> None:
    # rt24 commands review, F6: a deny of /usr/bin/curl let `curl` and /bin/curl through.
    policy = load_policy_bytes(PROGRAM_PATHS.encode(), "p")
    about_paths = [w for w in policy.warnings if "trusted directories" in w]
    assert about_paths == [
        "rules[0] (id 'no-curl'): command: '/usr/bin/curl' matches that path only, not "
        "'curl' run by name nor its copies in the other trusted directories; write 'curl', "
        "which matches the name in every trusted directory",
        "rules[1] (id 'ask-wget'): command: '/bin/wget' matches that path only, not 'wget' "
        "run by name nor its copies in the other trusted directories; write 'wget', which "
        "matches the name in every trusted directory",
    ]
    by_name = evaluate_request(policy, {"action": "process.exec", "argv": ["curl", "x"]})
    assert by_name.decision == "allow"  # what the warning says
    custom = load_policy_bytes((PROGRAM_PATHS + "trustedPaths: [/opt/tool/bin]\n").encode(), "p")
    assert any("'/opt/tool/bin/x' matches that path only" in w for w in custom.warnings)
    assert not any("/usr/bin/curl" in w for w in custom.warnings)


MORE_WIDE_GLOBS = """\
version: 1
rules:
  - {id: stars, action: file.read, path: {glob: "/***"}, decision: allow}
  - {id: deep, action: file.read, path: {glob: "/**/*"}, decision: allow}
  - {id: one-more, action: file.read, path: {glob: "/workspace?**"}, decision: allow}
  - {id: root, action: file.read, path: {startsWith: "/"}, decision: allow}
  - {id: any, action: file.read, path: {regex: ".*"}, decision: allow}
  - {id: python, action: file.read, path: {glob: "/workspace/**/*.py"}, decision: allow}
  - {id: inside, action: file.read, path: {glob: "/workspace/src/**.py"}, decision: allow}
  - {id: anchored, action: file.read, path: {regex: "^/.*$"}, decision: allow}
"""


def test_more_allow_path_conditions_that_match_everything_are_warned_of() -> None:
    # Second review of 2026-12-07 (R6): these were silent.
    warnings = list(load_policy_bytes(MORE_WIDE_GLOBS.encode(), "p").warnings)
    assert warnings == [
        "rules[0] (id 'stars'): path: glob '/***' matches every path",
        "rules[1] (id 'deep'): path: glob '/**/*' matches every path",
        "rules[2] (id 'one-more'): path: glob '/workspace?**' also matches "
        "'/workspace-secrets/.env': a '**' that is not a whole segment crosses '/'; "
        "write '/workspace/**'",
        "rules[3] (id 'root'): path: startsWith '/' matches every path",
        "rules[4] (id 'any'): path: regex '.*' matches every path",
        "rules[7] (id 'anchored'): path: regex '^/.*$' matches every path",
    ]  # third review (N4): a '**' starting its segment stays inside the directory


PROGRAM_PATH_PATTERNS = """\
version: 1
defaultAction: allow
rules:
  - {id: scp, action: process.exec, command: {glob: "/usr/bin/scp"}, decision: deny}
  - {id: py, action: process.exec, command: {glob: "/usr/bin/python3*"}, decision: deny}
  - {id: sbin, action: process.exec, command: {startsWith: "/usr/sbin/"}, decision: deny}
  - {id: rsync, action: process.exec, command: {regex: "^/usr/bin/rsync$"}, decision: deny}
  - {id: telnet, action: process.exec, command: {endsWith: "/telnet"}, decision: deny}
  - {id: own, action: process.exec, command: {glob: "/opt/x/*"}, decision: deny}
  - {id: names, action: process.exec, command: {glob: "curl*"}, decision: deny}
  - {id: rm-opt, action: process.exec, command: {regex: "^(/usr)?/bin/rm$"}, decision: deny}
  - {id: any-bin, action: process.exec, command: {glob: "**/bin/rm"}, decision: deny}
  - {id: both, action: process.exec, command: {in: [/usr/bin/rm, rm]}, decision: deny}
  - {id: either, action: process.exec, command: {regex: "(.*/)?rm"}, decision: deny}
"""


def test_a_deny_pattern_for_trusted_program_paths_warns_that_names_pass() -> None:
    # Second review (R6): round one's own examples, which let scp and iptables through.
    policy = load_policy_bytes(PROGRAM_PATH_PATTERNS.encode(), "p")
    warned = [w.split(":")[0] for w in policy.warnings if "not run by name" in w]
    assert warned == [
        "rules[0] (id 'scp')",
        "rules[1] (id 'py')",
        "rules[2] (id 'sbin')",
        "rules[3] (id 'rsync')",
        "rules[4] (id 'telnet')",
        "rules[7] (id 'rm-opt')",
        "rules[8] (id 'any-bin')",
    ]  # third review (N3): the rules that name rm both ways are not warned of
    for argv in (["scp", "a", "b"], ["python3", "-c", "1"], ["iptables", "-L"]):
        verdict = evaluate_request(policy, {"action": "process.exec", "argv": argv})
        assert verdict.decision == "allow", argv  # what the warnings say


@pytest.mark.parametrize(
    "matcher",
    [
        '{glob: "/usr/bin/python3.11"}',
        '{glob: "/usr/bin/[rs]m"}',
        '{regex: "^/usr/bin/\\\\w+sh$"}',
        '{endsWith: "/vim.basic"}',
        '{startsWith: "/usr/bin/python3."}',
        '{glob: "/usr/bin/python[!2]*"}',
        '{glob: "/usr/bin/[!.]*sh"}',
    ],
)
def test_a_deny_pattern_of_names_with_dots_or_classes_is_warned_of_too(matcher: str) -> None:
    # Fourth review: the name guessed from the pattern missed these.
    text = f"version: 1\nrules:\n  - {{id: d, action: process.exec, command: {matcher}, decision: deny}}\n"
    policy = load_policy_bytes(text.encode(), "p")
    assert any("not run by name" in w for w in policy.warnings), (matcher, policy.warnings)


def test_trusted_paths_must_be_absolute() -> None:
    assert any("trustedPaths[0]" in p for p in problems_of("version: 1\ntrustedPaths: [bin]\n"))


# -- YAML strictness, on both of PyYAML's parsers ---------------------------------------
#
# The daemon parses with libyaml when PyYAML has it and with the pure-Python parser
# otherwise; both must accept and refuse exactly the same documents.

LOADERS = [pytest.param(loader, id=name) for name, loader in YAML_LOADERS.items()]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("version: 1\nversion: 1\n", id="top-level"),
        pytest.param(
            "rules:\n  - id: r\n    path: {glob: /a/**}\n    path: {glob: /b/**}\n",
            id="in-a-rule",
        ),
        pytest.param("a:\n  b:\n    - c:\n        d: 1\n        d: 2\n", id="deep"),
        pytest.param("rules: [{action: file.read, action: file.write}]\n", id="flow-mapping"),
        pytest.param("'rules': []\nrules: []\n", id="quoted-and-plain"),
        pytest.param("1: a\n+1: b\n", id="two-spellings-of-one-int"),
        pytest.param("base: &b {glob: /x/**}\nm: {<<: *b, glob: /y/**}\n", id="merge-and-key"),
        pytest.param("a: &a {k: 1}\nb: &b {k: 2}\nm: {<<: [*a, *b]}\n", id="two-merges"),
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(loader: type, text: str) -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key"):
        load_yaml_strict(text, loader)


# Found by a red-team review of 2026-12-06 (eighteenth session): YAML 1.1 read
# "port: [0022, 2222]" as ports 18 and 2222, so a deny of ssh missed port 22, and a
# policy test written the same way agreed with the mistake.
@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("number", ["0022", "0x1bb", "1:20", "8_080", "0b1", "-0022"])
def test_a_number_not_written_in_decimal_is_refused(loader: type, number: str) -> None:
    with pytest.raises(yaml.YAMLError, match="decimal"):
        load_yaml_strict(f"port: [{number}, 2222]\n", loader)


@pytest.mark.parametrize("loader", LOADERS)
def test_decimal_numbers_and_quoted_ones_load_as_written(loader: type) -> None:
    assert load_yaml_strict("a: [0, 22, +5, -1, '0022']\n", loader) == {"a": [0, 22, 5, -1, "0022"]}


def test_a_policy_denying_port_0022_is_refused_not_read_as_port_18() -> None:
    text = b"version: 1\nrules:\n  - {id: no-ssh, action: network.request, port: [0022], decision: deny}\n"
    with pytest.raises(PolicyError, match="decimal"):
        load_policy_bytes(text, "p.yaml")


def _first_key_wins_flatten(self: SafeConstructor, node: yaml.MappingNode) -> None:
    """PyYAML 6.0.4's ``flatten_mapping`` in effect: of the keys two merges share, only
    the first is kept."""
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    seen: set[str] = set()
    own = []
    for key_node, value_node in node.value:
        if key_node.tag != "tag:yaml.org,2002:merge":
            own.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            for pair in source.value:
                if pair[0].value not in seen:
                    seen.add(pair[0].value)
                    merged.append(pair)
    node.value = merged + own


@pytest.mark.parametrize("loader", LOADERS)
def test_duplicates_through_merges_are_refused_whatever_pyyaml_flattens(
    loader: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML 6.0.4 changed flatten_mapping to drop a key that an earlier merge gave; a
    # loader relying on it would load `<<: [*a, *b]` with both defining `k` silently.
    monkeypatch.setattr(SafeConstructor, "flatten_mapping", _first_key_wins_flatten)
    with pytest.raises(yaml.YAMLError, match="duplicate key 'k'"):
        load_yaml_strict("a: &a {k: 1}\nb: &b {k: 2}\nm: {<<: [*a, *b]}\n", loader)
    assert load_yaml_strict("a: &a {k: 1}\nm: {<<: [*a], j: 2}\n", loader) == {
        "a": {"k": 1},
        "m": {"k": 1, "j": 2},
    }


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "base: &b {glob: /x/**}\nm: {<<: *b, risk: low}\n",
            {"base": {"glob": "/x/**"}, "m": {"glob": "/x/**", "risk": "low"}},
            id="merge-key",
        ),
        pytest.param("a: &x [1, 2]\nb: *x\n", {"a": [1, 2], "b": [1, 2]}, id="alias"),
        pytest.param(
            "a: [yes, no, on, off, true, False, y]\n",
            {"a": [True, False, True, False, True, False, "y"]},
            id="yaml-1.1-booleans",
        ),
        pytest.param("a: [~, null, 17, -3, +4]\n", {"a": [None, None, 17, -3, 4]}, id="scalars"),
        pytest.param("a: 2024-01-02\n", {"a": date(2024, 1, 2)}, id="timestamp"),
        pytest.param("a: !!str 1\nb: '1'\n", {"a": "1", "b": "1"}, id="strings"),
        pytest.param("", None, id="empty"),
    ],
)
def test_both_parsers_build_the_same_values(loader: type, text: str, expected: object) -> None:
    assert load_yaml_strict(text, loader) == expected


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: !!python/object/apply:os.system ['true']\n", id="python-object"),
        pytest.param("a: !!python/name:os.system\n", id="python-name"),
        pytest.param("a: !local x\n", id="unknown-tag"),
        pytest.param("? [a]\n: 1\n", id="unhashable-key"),
        pytest.param("{a: 1}: 1\n", id="mapping-as-key"),
        pytest.param("&a {x: *a}\n", id="recursive-mapping"),
        pytest.param("&a {<<: *a}\n", id="mapping-merging-itself"),
        pytest.param("a: &a [1]\nm: {<<: *a}\n", id="merging-a-sequence"),
        pytest.param("a: *nowhere\n", id="undefined-alias"),
        pytest.param("a: 1\n---\nb: 2\n", id="two-documents"),
        pytest.param("a: b\x00\n", id="nul"),
        pytest.param("a: \x01\n", id="control-character"),
        pytest.param('a: "\\ud800"\n', id="lone-surrogate-escape"),
        pytest.param("a:\n\tb: 1\n", id="tab-indent"),
    ],
)
def test_both_parsers_refuse_the_same_documents(loader: type, text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml_strict(text, loader)


def _merge_bomb(levels: int) -> str:
    """A few hundred bytes whose merges double at every level."""
    lines = ["m0: &m0 {a: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # (50,000 levels, which crashed the process, are tried in a child process below.)
        pytest.param("rules: " + "[" * 1_000 + "]" * 1_000 + "\n", "deeper than 64", id="flow"),
        pytest.param("rules:\n  " + "- " * 1_000 + "x\n", "deeper than 64", id="block"),
        pytest.param(_merge_bomb(40), "an alias counts as the node it names", id="merge-bomb"),
        pytest.param(
            "a: &a ["
            + ", ".join(["x"] * 30_000)
            + "]\n"
            + "".join(f"b{i}: *a\n" for i in range(100)),
            "an alias counts as the node it names",
            id="many-aliases-of-a-big-node",
        ),
    ],
)
def test_documents_too_deep_or_too_big_once_expanded_are_refused_before_composing(
    loader: type, text: str, expected: str
) -> None:
    with pytest.raises(yaml.YAMLError, match=expected):
        load_yaml_strict(text, loader)


@pytest.mark.parametrize("loader", LOADERS)
def test_sixty_four_levels_still_load(loader: type) -> None:
    text = "a: " + "[" * 63 + "]" * 63 + "\n"  # the top mapping and 63 sequences
    assert load_yaml_strict(text, loader) is not None
    with pytest.raises(yaml.YAMLError, match="deeper than 64"):
        load_yaml_strict("a: " + "[" * 64 + "]" * 64 + "\n", loader)


def test_a_policy_nested_fifty_thousand_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # In a child process: before the fix this killed the interpreter (and the gate).
    policy = tmp_path / "deep.yaml"
    policy.write_text("version: 1\nrules: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "policy", "validate", str(policy)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, (result.returncode, result.stderr[-300:])
    assert "nests deeper than 64 levels" in result.stderr


def test_the_policy_is_parsed_with_libyaml_when_pyyaml_has_it() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    assert STRICT_YAML_LOADER is YAML_LOADERS["libyaml"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\n? [a]\n: 1\n", "invalid YAML"),
        ("version: 1\nrules:\n  - {action: file.read, decision: yes}\n", "rules[0]: decision"),
        (
            'version: 1\nrules:\n  - {action: file.read, decision: allow, reason: "\\ud800"}\n',
            "invalid YAML",
        ),
    ],
)
def test_yaml_surprises_are_policy_errors(text: str, expected: str) -> None:
    assert any(expected in p for p in problems_of(text))


def test_an_integer_beyond_the_digit_limit_is_a_policy_error() -> None:
    text = "version: 1\nrules:\n  - {action: network.request, decision: allow, port: %s}\n"
    assert any("invalid YAML" in p for p in problems_of(text % ("9" * 5000)))


def test_anchors_aliases_and_merge_keys_work_in_a_policy() -> None:
    policy = load_policy_bytes(
        b"version: 1\n"
        b"rules:\n"
        b"  - id: read-data\n"
        b"    action: file.read\n"
        b"    decision: allow\n"
        b"    path: &data {glob: /app/data/**}\n"
        b"  - id: write-data\n"
        b"    action: file.write\n"
        b"    decision: require_approval\n"
        b"    path: *data\n"
        b"  - <<: {action: file.delete, decision: deny}\n"
        b"    id: no-deletes\n",
        "p",
    )
    read, write, delete = policy.rules
    assert read.tests[0].text == write.tests[0].text == 'glob "/app/data/**"'
    assert (delete.id, delete.decision, delete.actions) == ("no-deletes", "deny", {"file.delete"})


# -- the garbage collector around a load ------------------------------------------------


def test_a_load_leaves_the_collector_running_whether_it_loads_or_fails() -> None:
    assert gc.isenabled()
    load_policy_bytes(DESIGN_NOTES.encode(), "p")
    assert gc.isenabled()
    problems_of("version: 1\nrules: [\n")
    assert gc.isenabled()
    problems_of("version: 2\n")
    assert gc.isenabled()


def test_a_load_does_not_turn_on_a_collector_someone_turned_off() -> None:
    gc.disable()
    try:
        load_policy_bytes(DESIGN_NOTES.encode(), "p")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_policy_of_more_rules_than_a_gate_is_sized_for_is_refused() -> None:
    # 30,000 rules fit in the 4 MiB file limit, but took the gate to about 240 MiB, over
    # the manifest's memory limit: a rollout would have had it killed again and again.
    def policy(count: int) -> bytes:
        rules = "".join(
            f"  - {{action: file.read, path: /app/{i}, decision: allow}}\n" for i in range(count)
        )
        return f"version: 1\nrules:\n{rules}".encode()

    assert len(load_policy_bytes(policy(10_000), "p.yaml").rules) == 10_000
    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(policy(10_001), "p.yaml")
    assert raised.value.problems == [
        "rules: 10,001 rules, more than the 10,000 a gate is sized for"
    ]


def test_a_policy_whose_regexes_compile_past_the_memory_budget_is_refused() -> None:
    # Found in the review of 2026-12-07 (rt25): memory follows a regex's RE2 program, not
    # the rule count. A bounded repetition multiplies it: 3,000 rules of '/dN/.{1000}'
    # (218 KB of YAML) took validate to 827 MB, and a reload of it would have had the
    # gate killed in its 256Mi container. Compiling stops at the regex that crosses it.
    def policy(count: int, regex: str) -> bytes:
        rules = "".join(
            f"  - {{id: r{i}, action: file.read, decision: deny, path: {{regex: '/d{i}/{regex}'}}}}\n"
            for i in range(count)
        )
        return f"version: 1\nrules:\n{rules}".encode()

    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(policy(3_000, ".{1000}"), "p.yaml")
    [problem] = raised.value.problems
    assert problem.startswith(
        "rules[142] (id 'r142'): path: regex: the policy's compiled matchers up to here "
        "take about 48.3 MiB, more than the 48 MiB a gate is sized for"
    )
    assert "bounded repetition" in problem
    # The same count of ordinary regexes is far inside it, and still denies.
    loaded = load_policy_bytes(policy(3_000, ".*"), "p.yaml")
    verdict = evaluate_request(loaded, {"action": "file.read", "path": "/d2999/x"})
    assert (verdict.decision, verdict.rule) == ("deny", "r2999")


@pytest.mark.parametrize(
    "character", ["\u0085", "\u2028", "\u2029", "\u202e", "\u2066"], ids=lambda c: f"U+{ord(c):04X}"
)
def test_a_character_other_readers_read_otherwise_is_refused(
    character: str, tmp_path: Path
) -> None:
    # Found in the red-team review of 2026-12-07: PyYAML (YAML 1.1) ends a line, and a
    # comment, at NEL, LS and PS, which editors, grep and YAML 1.2 do not: a deny whose
    # line showed a comment held a hidden condition ("# note<NEL>path: /etc/motd"), and
    # /etc/shadow went to an allow. Bidirectional controls reorder what an editor shows.
    text = (
        "version: 1\nrules:\n"
        f"  - {{id: no-etc, action: file.read, decision: deny}}  # all of /etc{character}"
        "    path: /etc/motd\n"
    )
    with pytest.raises(PolicyError, match=f"line 3: U\\+{ord(character):04X} is refused"):
        load_policy_bytes(text.encode(), "p.yaml")
    # A policy test file is read by the same loader.
    test_file = tmp_path / "p.test.yaml"
    test_file.write_text(f"policy: p.yaml  # x{character}\ncases: []\n", encoding="utf-8")
    with pytest.raises(PolicyTestFileError, match="is refused"):
        load_test_file(test_file)


@pytest.mark.parametrize(
    ("character", "escape"),
    [
        ("\u200b", "\\u200b"),  # zero-width space
        ("\u2060", "\\u2060"),  # word joiner
        ("\u00ad", "\\u00ad"),  # soft hyphen
        ("\ufeff", "\\ufeff"),  # a BOM past the start of the file
        ("\U000e0041", "\\U000e0041"),  # tag latin capital A
        # Default-ignorable, not Cf (rt25 r2-policy, 4): each let "/app/sec<it>ret" load
        # and its deny miss /app/secret.
        ("\u034f", "\\u034f"),  # combining grapheme joiner
        ("\ufe0f", "\\ufe0f"),  # variation selector 16
        ("\U000e0100", "\\U000e0100"),  # variation selector 17
        ("\u3164", "\\u3164"),  # Hangul filler
        ("\uffa0", "\\uffa0"),  # halfwidth Hangul filler
        ("\u115f", "\\u115f"),  # Hangul choseong filler
        ("\u17b4", "\\u17b4"),  # Khmer vowel inherent AQ
        ("\u180b", "\\u180b"),  # Mongolian free variation selector one
    ],
    ids=lambda c: f"U+{ord(c):04X}" if len(c) == 1 else "",
)
def test_an_invisible_character_is_refused(character: str, escape: str, tmp_path: Path) -> None:
    # Found in review (rt25 policy, 4): "/etc/sha<U+200B>dow" showed as /etc/shadow in
    # cat and editors, loaded, and its deny never matched /etc/shadow.
    text = (
        "version: 1\nrules:\n"
        f"  - {{id: shadow, action: file.read, decision: deny, path: /etc/sha{character}dow}}\n"
    )
    with pytest.raises(PolicyError) as raised:
        load_policy_bytes(text.encode(), "p.yaml")
    assert raised.value.problems == [
        f"invalid YAML: line 3: U+{ord(character):04X} is refused: an invisible "
        "character, it makes the file say one thing to the gate and another to the people "
        "and tools that read it; if it is meant, write it as an escape in a double-quoted "
        f'string: "{escape}"'
    ]
    # Written as the escape it suggests, the character is visible and the file loads.
    escaped = text.replace(character, escape).replace("/etc/sha", '"/etc/sha')
    escaped = escaped.replace("dow}", 'dow"}')
    policy = load_policy_bytes(escaped.encode(), "p.yaml")
    assert policy.rules[0].id == "shadow"
    test_file = tmp_path / "p.test.yaml"
    test_file.write_text(f"policy: p.yaml  # x{character}\ncases: []\n", encoding="utf-8")
    with pytest.raises(PolicyTestFileError, match="an invisible"):
        load_test_file(test_file)


def test_every_default_ignorable_code_point_is_refused() -> None:
    # The loader's list is fixed (unicodedata lacks the property); the regex module (a
    # test dependency) reads it from its own copy of DerivedCoreProperties.txt.
    import regex

    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    found = [chr(c) for c in range(0x80, sys.maxunicode + 1) if ignorable.match(chr(c))]
    assert len(found) > 4000
    for character in found:
        with pytest.raises(yaml.YAMLError, match=r"an invisible character|bidirectional"):
            check_unambiguous(f"path: /app/sec{character}ret\n")


COMMENT_ADVICE = "remove it from the comment (a comment has no escapes)"
ESCAPE_ADVICE = 'if it is meant, write it as an escape in a double-quoted string: "\\u200d"'


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        # Found in review (rt25 r2-policy, 8): a comment has no escapes to write.
        ("# family: \U0001f468\u200d\U0001f469\nversion: 1\n", COMMENT_ADVICE),
        ("version: 1  # a\u200db\nrules: []\n", COMMENT_ADVICE),
        ("rules:\n  # x\n  - {id: a}  # note \u200d\n", COMMENT_ADVICE),
        # A '#' inside a scalar is text, not a comment.
        ('version: 1\nid: "a # b\u200d"\n', ESCAPE_ADVICE),
        ("version: 1\nid: a#b\u200d\n", ESCAPE_ADVICE),
        ("reason: |\n  # a\u200d\n", ESCAPE_ADVICE),
        ("id: x\u200d  # a comment after\n", ESCAPE_ADVICE),
    ],
)
def test_an_invisible_character_in_a_comment_is_to_be_removed(text: str, advice: str) -> None:
    with pytest.raises(yaml.YAMLError) as raised:
        check_unambiguous(text)
    assert str(raised.value).endswith(f"tools that read it; {advice}")


def test_a_byte_order_mark_opening_the_file_is_accepted() -> None:
    policy = load_policy_bytes(
        "\ufeffversion: 1\nrules: [{action: file.read, decision: deny, path: /x}]\n".encode(),
        "p.yaml",
    )
    assert len(policy.rules) == 1


@pytest.mark.parametrize(
    ("rule", "problems"),
    [
        (
            "{id: ns, action: k8s.request, decision: deny, namespace: {in: [default, no]}}",
            ["rules[0] (id 'ns'): namespace.in[1]: \"no\" is read as the boolean false; quote it"],
        ),
        (
            "{action: network.request, decision: deny, method: [yes, Off]}",
            [
                'rules[0]: method[0]: "yes" is read as the boolean true; quote it',
                'rules[0]: method[1]: "Off" is read as the boolean false; quote it',
            ],
        ),
        (
            "{action: file.read, decision: deny, path: {not: {equals: 2024-01-01}}}",
            ['rules[0]: path.not.equals: "2024-01-01" is read as a date; quote it'],
        ),
        (
            "{action: file.read, decision: deny, path: [/a, ~]}",
            [
                'rules[0]: path[1]: "~" is read as null (no value); give a value, or quote '
                "it if meant"
            ],
        ),
        (
            "{id: x, action: network.request, decision: allow, host: a.example, on: GET}",
            ["rules[0] (id 'x'): key \"on\" is read as the boolean true; quote it"],
        ),
        (
            "{action: file.read, decision: deny, path: /a, null: 1}",
            ['rules[0]: key "null" is read as null (no value); quote it'],
        ),
    ],
)
def test_a_yaml_1_1_boolean_null_or_date_is_named_as_written(
    rule: str, problems: list[str]
) -> None:
    # Found in review (rt25 policy, 7): `namespace: {in: [default, no]}` gave five lines
    # of pydantic's union members, none saying that `no` is YAML 1.1's false; a key
    # `on:` was named `1`.
    assert problems_of(f"version: 1\nrules:\n  - {rule}\n") == problems


def test_a_yaml_boolean_where_no_text_is_expected_keeps_its_message() -> None:
    # Quoting would not help `version: true`: it must be the number 1.
    assert problems_of("version: true\n") == ["version: Input should be 1 (an integer)"]
