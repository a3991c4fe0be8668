"""/openapi.json: generated from the models the gate validates with, and honoured by the
live daemon (schemathesis: no 5xx, no answer outside the documented schema)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sidecar.openapi import AuditStatus, CheckpointRef, PolicyStatus, StatusAnswer
from sidecar.request import CheckRequest
from tests.test_policy_loader import DESIGN_NOTES


def test_openapi_describes_every_route_and_uses_the_request_model(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(DESIGN_NOTES)
    gate = daemon_factory(policy)
    document = gate.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for route in (
        "/check",
        "/v1/check",
        "/health",
        "/ready",
        "/v1/status",
        "/metrics",
        "/openapi.json",
        "/v1/approvals",
        "/v1/approvals/{id}",
    ):
        assert route in document["paths"], route
    schema = document["components"]["schemas"]["CheckRequest"]
    model = CheckRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schema["properties"] == model["properties"]
    assert schema["additionalProperties"] is False


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    tmp_path: Path, daemon_factory
) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(DESIGN_NOTES)
    gate = daemon_factory(policy)
    command = shutil.which("schemathesis") or shutil.which("st")
    assert command, "schemathesis is a test dependency (pip install -e '.[test]')"
    result = subprocess.run(
        [command, "run", f"{gate.url}/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", "25", "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]
    assert gate.get("/health").json() == {"status": "ok"}


def test_the_status_answer_is_described_field_by_field(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # /v1/status's policy and audit objects are typed in the document, and the live
    # answer has exactly the fields described, at every level: a field added to one and
    # not the other fails here.
    policy = tmp_path / "policy.yaml"
    policy.write_text(DESIGN_NOTES)
    keys = tmp_path / "keys"
    subprocess.run(["tollgate", "keygen", "--out", str(keys)], check=True, capture_output=True)
    audit = tmp_path / "audit"
    daemon_factory(policy, "--signing-key", str(keys / "tollgate.key"), audit_dir=audit).stop()
    gate = daemon_factory(policy, "--signing-key", str(keys / "tollgate.key"), audit_dir=audit)
    answer = gate.get("/v1/status").json()
    assert answer["audit"]["lastCheckpoint"] is not None  # the first run's, at its stop
    StatusAnswer.model_validate(answer)
    assert set(answer) == set(StatusAnswer.model_fields)
    assert set(answer["policy"]) == set(PolicyStatus.model_fields)
    assert set(answer["audit"]) == set(AuditStatus.model_fields)
    assert set(answer["audit"]["lastCheckpoint"]) == set(CheckpointRef.model_fields)
    schemas = gate.get("/openapi.json").json()["components"]["schemas"]
    status = schemas["StatusAnswer"]["properties"]
    assert status["policy"] == {"$ref": "#/components/schemas/PolicyStatus"}
    assert status["audit"] == {"$ref": "#/components/schemas/AuditStatus"}
    assert set(schemas["AuditStatus"]["required"]) == set(AuditStatus.model_fields)
