"""A Kubernetes Secret's data is redacted whatever its keys are called (``db-pw``,
``tls.key``): as an object in a request (``{"kind": "Secret", "data": {...}}``), as YAML
in a here-document or a context string (``kind: Secret`` ... ``data:``), as JSON text,
and in ``kubectl patch secret NAME -p '{"data": ...}'``. Found by the red-team review of
2026-12-07: such a manifest went to the trail in clear. A ConfigMap's data is kept.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from sidecar.audit.redact import Redactor
from tests.audit.conftest import assert_redacted_in_linear_time, assert_tagged_in_place
from tests.daemon import answered_through_a_gate

KEY = b"k" * 32

MANIFEST = """kubectl apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
data:
  db-pw: cGFzc3dvcmQx
  tls.key: "a2V5MQ=="  # base64
stringData:
  user: admin1
  note: a#b c  # a comment
EOF
kubectl get pods"""


def test_a_secrets_data_in_a_here_document_is_tagged_line_by_line() -> None:
    # The keys and the comments stay readable; a '#' inside a value is the value's.
    assert_tagged_in_place(MANIFEST, ["cGFzc3dvcmQx", "a2V5MQ==", "admin1", "a#b c"], "secret")


BLOCK_SCALARS = """kind: Secret
stringData:
  a: url=https://x/?token=Tk1Tk1Tk1
  pw: plain1
  config.ini: |
    [db]
    password = Pw2Pw2Pw2

    host = db
  folded: >-  # a comment
    line one
    line two
  last: plain3
type: Opaque"""


def test_a_secrets_block_scalars_and_the_values_after_another_secret_are_tagged() -> None:
    # Found on 2026-12-07: a block scalar's lines (config.ini: |) went to the trail in
    # clear, and a value another pattern tags (the token= in a) ended the text the data
    # block was read in, so that every value after it (pw, last) was kept in clear.
    value = "[db]\n    password = Pw2Pw2Pw2\n\n    host = db"
    assert_tagged_in_place(
        BLOCK_SCALARS,
        ["url=https://x/?token=Tk1Tk1Tk1", "plain1", value, "line one\n    line two", "plain3"],
        "secret",
    )


def test_a_secret_object_in_a_request_has_its_data_tagged() -> None:
    redactor = Redactor(KEY)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "labels": {"app": "web"}},
        "data": {"db-pw": "cHcx", ".dockerconfigjson": "e30="},
        "stringData": {"user": "u1", "pin": 1234},
    }
    out = redactor.redact({"context": {"object": secret}})["context"]["object"]
    assert out["metadata"] == secret["metadata"]
    assert out["data"] == {
        "db-pw": redactor.tag("secret", "cHcx"),
        ".dockerconfigjson": redactor.tag("secret", "e30="),
    }
    assert out["stringData"] == {
        "user": redactor.tag("secret", "u1"),
        "pin": redactor.tag("secret", "1234"),
    }
    # Written as JSON text in a string, the same values get the same tags.
    text = redactor.redact({"context": json.dumps(secret)})["context"]
    assert "cHcx" not in text and redactor.tag("secret", "cHcx") in text


def test_kubectl_patch_secret_hides_the_patch() -> None:
    redactor = Redactor(KEY)
    line = """kubectl patch -n prod secret db -p '{"data":{"pw":"cHcx"}}'"""
    patch = '{"data":{"pw":"cHcx"}}'
    argv = shlex.split(line)
    assert redactor.redact({"argv": argv})["argv"][-1] == redactor.tag("secret", patch)
    record = redactor.redact({"request": {"commandLine": line, "commands": [argv]}})
    assert record["request"]["commandLine"] == line.replace(patch, redactor.tag("secret", patch))
    # Alone, as a log line: the values of its data.
    assert redactor.redact_text(line) == line.replace("cHcx", redactor.tag("secret", "cHcx"))
    inline = ["kubectl", "patch", "secrets/db", '--patch={"stringData":{"a":"b1"}}']
    assert redactor.redact({"argv": inline})["argv"][-1] == "--patch=" + redactor.tag(
        "secret", '{"stringData":{"a":"b1"}}'
    )


def test_other_objects_and_patches_are_kept() -> None:
    redactor = Redactor(KEY)
    for body in (
        {"context": {"kind": "ConfigMap", "data": {"a": "b"}}},
        {"context": {"kind": "Secret", "metadata": {"name": "db"}}},
        {"argv": ["kubectl", "patch", "deploy", "web", "-p", '{"data":1}']},
        {"argv": ["kubectl", "patch", "secret", "db", "-p", '{"metadata":{"labels":{}}}']},
    ):
        assert redactor.redact(body) == body
    for text in (
        "kind: ConfigMap\ndata:\n  a: b\n",
        "data:\n  a: b\n",
        'echo \'{"data":{"a":"b"}}\'',
    ):
        assert redactor.redact_text(text) == text


def test_a_secrets_data_is_read_in_linear_time() -> None:
    assert_redacted_in_linear_time(["  k: v\n"], tail="")
    assert_redacted_in_linear_time(["kind: Secret\ndata:\n", "data:\n  a", '"data":{"a":"'])
    assert_redacted_in_linear_time(["kind: Secret\ndata:\n  k: |\n", "   x\n", "\n"])


def test_no_secret_data_reaches_the_audit_directory(tmp_path: Path) -> None:
    policy = """\
version: 1
defaultAction: deny
rules:
  - {id: tools, action: process.exec, command: "*", cwd: /app, decision: allow}
  - {id: k8s, action: k8s.request, decision: allow}
"""
    requests = [
        {
            "action": "process.exec",
            "commandLine": MANIFEST.replace("cGFzc3dvcmQx", "Qa1Qa1Qa1"),
            "cwd": "/app",
        },
        {
            "action": "k8s.request",
            "k8s": {"method": "POST", "path": "/api/v1/namespaces/prod/secrets"},
            "context": {"body": {"kind": "Secret", "data": {"pw": "Qb2Qb2Qb2"}}},
        },
        {
            "action": "process.exec",
            "argv": ["kubectl", "patch", "secret", "db", "-p", '{"data":{"pw":"Qc3Qc3Qc3"}}'],
            "cwd": "/app",
        },
    ]
    _, statuses, everything = answered_through_a_gate(tmp_path, policy, requests)
    assert statuses == [200, 200, 200]
    for core in ("Qa1Qa1Qa1", "Qb2Qb2Qb2", "Qc3Qc3Qc3"):
        assert core.encode() not in everything, core
