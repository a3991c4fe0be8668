"""A case's request holding a value only YAML has (a date, !!binary, !!set) is a
test-file error naming the field, and the failure report never stops the run.

Found by the policy review of rt25 (finding 6): an unquoted date failed its case, the
report of that failure raised a TypeError from json.dumps, and the files after it were
not run, with no summary and exit 1.
"""

from __future__ import annotations

import datetime
import io
import textwrap
from pathlib import Path

import pytest

from sidecar.policytest import CaseFailure, PolicyTestCase, _report_failure, run_policy_tests

POLICY = """\
version: 1
rules:
  - {id: read-app, action: file.read, decision: allow, path: {glob: "/app/**"}}
  - {id: no-secret, action: file.read, decision: deny, path: {glob: "/app/secret/**"}}
"""


def _run(directory: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_policy_tests([str(directory)], out)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("request_yaml", "problem"),
    [
        (
            "{action: file.read, path: 2024-01-01}",
            "cases[0].request.path: a YAML date (2024-01-01), which a JSON request cannot "
            "hold; quote it as a string",
        ),
        (
            "{action: file.read, path: /app/x, context: {when: 2024-01-01 10:00:00}}",
            "cases[0].request.context.when: a YAML timestamp (2024-01-01 10:00:00), which a "
            "JSON request cannot hold; quote it as a string",
        ),
        (
            "{action: file.read, path: /app/x, context: {blob: !!binary aGVsbG8=}}",
            "cases[0].request.context.blob: a YAML !!binary value, which a JSON request "
            "cannot hold; write the text as a string",
        ),
        (
            "{action: process.exec, argv: [ls, !!set {a, b}]}",
            "cases[0].request.argv[1]: a YAML !!set, which a JSON request cannot hold; "
            "write a list",
        ),
        (
            "{action: file.read, path: /app/x, context: {on: 1}}",
            # Named as written, as the policy loader names one (rt25 r2-policy, 8).
            'cases[0].request.context: key "on" is read as the boolean true; quote it',
        ),
        (
            "{action: file.read, path: /app/x, context: {1: x}}",
            'cases[0].request.context: key "1" is read as a number; quote it',
        ),
        (
            # Norway's code: the case failed with "Input should be a valid string".
            "{action: k8s.request, k8s: {verb: get, resource: pods, namespace: no}}",
            'cases[0].request.k8s.namespace: "no" is read as the boolean false; quote it',
        ),
        (
            "{action: process.exec, argv: [git, Off]}",
            'cases[0].request.argv[1]: "Off" is read as the boolean false; quote it',
        ),
        (
            "{action: file.read, path: /app/x, context: {n: .nan}}",
            "cases[0].request.context.n: a YAML number nan, which a JSON request cannot "
            "hold; JSON has no NaN or infinity",
        ),
    ],
)
def test_a_yaml_only_value_in_a_request_is_a_test_file_error(
    tmp_path: Path, request_yaml: str, problem: str
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "a.test.yaml").write_text(
        f"policy: p.yaml\ncases:\n  - {{name: odd, request: {request_yaml}, expect: deny}}\n"
    )
    (tmp_path / "b.test.yaml").write_text(
        textwrap.dedent(
            """\
            policy: p.yaml
            cases:
              - {name: would fail, request: {action: file.read, path: /app/secret/x}, expect: allow}
            """
        )
    )
    code, output = _run(tmp_path)
    assert code == 2
    lines = output.splitlines()
    assert lines[0] == f"ERROR {tmp_path / 'a.test.yaml'}: {problem}"
    # The next file still runs, and the summary is printed.
    assert f"FAIL {tmp_path / 'b.test.yaml'} (0/1 cases passed)" in lines
    assert lines[-1] == "policy test: 0 passed, 1 failed"


def test_the_failure_report_shows_a_value_json_cannot() -> None:
    case = PolicyTestCase.model_validate(
        {
            "name": "dated",
            "request": {"action": "file.read", "path": datetime.date(2024, 1, 1)},
            "expect": "allow",
        }
    )
    out = io.StringIO()
    _report_failure(CaseFailure("a.test.yaml", 0, case, "deny by defaultAction: ...", ()), out)
    assert '  request:  {"action": "file.read", "path": "datetime.date(2024, 1, 1)"}' in (
        out.getvalue().splitlines()
    )
