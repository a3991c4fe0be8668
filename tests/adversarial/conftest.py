"""Shared by the red-team suites: each module defines ``ALLOW_LIST`` and ``DENY_LIST``
policy texts, and gets them compiled as the ``allow_list`` / ``deny_list`` fixtures;
``coding_agent`` is the shipped policies/coding-agent.yaml."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes, load_policy_file

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def load_policy_text(text: str, name: str = "adversarial.yaml") -> CompiledPolicy:
    return load_policy_bytes(textwrap.dedent(text).encode(), name)


@pytest.fixture(scope="module")
def allow_list(request: pytest.FixtureRequest) -> CompiledPolicy:
    return load_policy_text(request.module.ALLOW_LIST, f"{request.module.__name__}-allow.yaml")


@pytest.fixture(scope="module")
def deny_list(request: pytest.FixtureRequest) -> CompiledPolicy:
    return load_policy_text(request.module.DENY_LIST, f"{request.module.__name__}-deny.yaml")


@pytest.fixture(scope="module")
def coding_agent() -> CompiledPolicy:
    return load_policy_file(POLICIES / "coding-agent.yaml")
