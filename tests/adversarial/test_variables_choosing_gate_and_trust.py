"""Variables that choose which gate a client asks, where programs connect and whom they
trust over TLS are ``environment-override`` (rt25 clients review, 2).

``TOLLGATE_URL=http://127.0.0.1:4444 ./deploy.py`` was a plain assignment: the clients
screen the gate's host, not its port, so a gated child (a deploy script, a sub-agent, a
tool wrapper) asked whatever listened on that port of the loopback, which could answer
every check with an allow. A CA bundle of the caller's, no verification at all or a
proxy let a listener in the pod pass for any server in the same way.
"""

from __future__ import annotations

import pytest

from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line

DENY_LIST = """\
version: 1
defaultAction: allow
rules:
  - {id: no-rm, action: process.exec, command: rm, decision: deny}
"""


@pytest.mark.parametrize(
    "line",
    [
        "TOLLGATE_URL=http://127.0.0.1:4444 python3 deploy.py",
        "TOLLGATE_URL=http://127.0.0.1:4444 echo hi",
        "env TOLLGATE_URL=http://127.0.0.1:4444 node agent.js",
        "export TOLLGATE_URL=http://127.0.0.1:4444",
        "TOLLGATE_POLICY=/workspace/allow-all.yaml tollgate serve",
        "NODE_EXTRA_CA_CERTS=/workspace/ca.pem npm ci",
        "NODE_TLS_REJECT_UNAUTHORIZED=0 node agent.js",
        "SSL_CERT_FILE=/workspace/ca.pem pip install x",
        "SSL_CERT_DIR=/workspace/certs git fetch",
        "REQUESTS_CA_BUNDLE=/workspace/ca.pem python3 tool.py",
        "CURL_CA_BUNDLE=/workspace/ca.pem curl -g https://api.github.com/",
        "PYTHONHTTPSVERIFY=0 pip install x",
        "HTTPS_PROXY=http://127.0.0.1:8080 pip install x",
        "https_proxy=http://127.0.0.1:8080 curl -g https://api.github.com/",
        "http_proxy=http://127.0.0.1:8080 curl -g http://example.com/",
        "ALL_PROXY=socks5://127.0.0.1:1080 curl -g https://api.github.com/",
        "Https_Proxy=http://127.0.0.1:8080 python3 tool.py",  # urllib reads any case
        "NODE_USE_ENV_PROXY=1 node agent.js",
        "KUBERNETES_SERVICE_HOST=127.0.0.1 kubectl get pods",
        "KUBERNETES_SERVICE_PORT=4444 kubectl get pods",
    ],
)
def test_variables_choosing_the_gate_the_server_or_the_trust_are_overrides(
    deny_list: CompiledPolicy, line: str
) -> None:
    verdict = check_line(deny_list, line)
    assert verdict.decision == "deny", verdict.reason
    assert verdict.request["constructs"] == ["environment-override"]


@pytest.mark.parametrize(
    "line",
    ["NO_COLOR=1 echo hi", "PROXY=x echo hi", "MY_PROXY_HOST=x echo hi", "KUBERNETES_X=1 echo hi"],
)
def test_names_that_only_look_alike_are_plain_assignments(
    deny_list: CompiledPolicy, line: str
) -> None:
    assert check_line(deny_list, line).decision == "allow"


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        # Found in the review of the list (rt25 round 2, E1): an empty proxy is no proxy,
        # and no_proxy only takes hosts out of proxying; either way the program connects
        # to the host the gate decided. An empty in-cluster host is no in-cluster config.
        ("http_proxy= pytest -q", "run-tests"),
        ("NO_PROXY=localhost pytest -q", "run-tests"),
        ("no_proxy='*' pytest -q", "run-tests"),
        ("HTTPS_PROXY= pip install -r requirements.txt", "pip-install"),
        ("KUBERNETES_SERVICE_HOST= pytest tests/", "run-tests"),
    ],
)
def test_a_proxy_set_to_nothing_or_no_proxy_is_no_override(
    coding_agent: CompiledPolicy, line: str, rule: str
) -> None:
    verdict = check_line(coding_agent, line)
    assert (verdict.decision, verdict.rule) == ("allow", rule), verdict.reason


@pytest.mark.parametrize(
    "line",
    [
        "HTTPS_PROXY=http://evil.example:8080 pytest",
        "all_proxy=socks5://evil.example pytest",
        'http_proxy="$X" pytest',
        "KUBERNETES_SERVICE_HOST=10.0.0.9 pytest",
    ],
)
def test_a_proxy_or_api_server_with_a_value_still_is(
    coding_agent: CompiledPolicy, line: str
) -> None:
    verdict = check_line(coding_agent, line)
    assert verdict.decision == "deny", verdict.reason
