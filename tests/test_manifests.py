"""The k8s/ manifests (issue 8, part 2): the properties users rely on, and schema validity.

Each test reads the manifests exactly as ``kubectl apply -k k8s/`` would see them and
asserts one promise of docs/deploy.md: the native sidecar and its probes, the restricted
security context, resources, the secret mounted only into the sidecar, downward-API
identity, no service-account token, and default-deny egress.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
KUBERNETES_VERSION = "1.31.0"
GATE_PORT = 9800


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _manifest_files() -> list[Path]:
    return [K8S / name for name in _kustomization()["resources"]]


def _resources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in _manifest_files():
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def _one(kind: str) -> dict[str, Any]:
    matches = [r for r in _resources() if r["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def _pod_spec() -> dict[str, Any]:
    return _one("Deployment")["spec"]["template"]["spec"]


def _sidecar() -> dict[str, Any]:
    (gate,) = [c for c in _pod_spec()["initContainers"] if c["name"] == "tollgate"]
    return gate


def _agent() -> dict[str, Any]:
    (agent,) = _pod_spec()["containers"]
    return agent


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_kustomization_lists_every_manifest_in_the_directory() -> None:
    listed = {path.name for path in _manifest_files()}
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_gate_is_a_native_sidecar_that_gates_agent_start_on_ready() -> None:
    gate = _sidecar()
    # First of the init containers: any listed before it would run before the gate.
    assert _pod_spec()["initContainers"][0]["name"] == gate["name"]
    assert gate["restartPolicy"] == "Always"
    assert gate["ports"] == [{"name": "gate", "containerPort": GATE_PORT, "protocol": "TCP"}]
    startup = " ".join(gate["startupProbe"]["exec"]["command"])
    assert "/ready" in startup
    assert "/health" in " ".join(gate["livenessProbe"]["exec"]["command"])
    # The agent starts only after the startup probe passes; give it room to load.
    probe = gate["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 30


def test_gate_listens_on_loopback_only() -> None:
    env = _env(_sidecar())
    assert env["TOLLGATE_HOST"] == "127.0.0.1"
    assert env["TOLLGATE_PORT"] == str(GATE_PORT)
    assert _env(_agent())["TOLLGATE_URL"] == f"http://127.0.0.1:{GATE_PORT}"
    # httpGet probes come from the node and cannot reach a loopback listener.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "httpGet" not in _sidecar().get(probe, {})


@pytest.mark.parametrize("container", ["tollgate", "agent"])
def test_containers_run_restricted(container: str) -> None:
    pod = _pod_spec()
    spec = _sidecar() if container == "tollgate" else _agent()
    ctx = spec["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root still needs somewhere for temporary files.
    tmp = [m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[tmp[0]["name"]]


def test_sidecar_runs_as_the_image_user_with_group_access_to_its_volumes() -> None:
    pod_ctx = _pod_spec()["securityContext"]
    assert _sidecar()["securityContext"]["runAsUser"] == 65532
    assert pod_ctx["fsGroup"] == 65532
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USER 65532:65532" in dockerfile


def test_the_agent_runs_as_another_user_than_the_gate() -> None:
    agent, gate = _agent()["securityContext"], _sidecar()["securityContext"]
    assert agent["runAsNonRoot"] is True
    assert agent["runAsUser"] != gate["runAsUser"] and agent["runAsGroup"] != gate["runAsGroup"]


def test_no_container_is_given_the_gates_uid_by_the_pod() -> None:
    """Review 2026-12-06: a pod-level runAsUser 65532 made every container without its
    own (an existing agent copied into the pod) run as the gate's uid, which with a shared
    process namespace reads the signing key and writes the trail via /proc/<pid>/root."""
    pod = _pod_spec()
    assert "runAsUser" not in pod["securityContext"]
    assert "runAsGroup" not in pod["securityContext"]
    containers = pod["initContainers"] + pod["containers"]
    uids = {c["name"]: c["securityContext"]["runAsUser"] for c in containers}
    gids = {c["name"]: c["securityContext"]["runAsGroup"] for c in containers}
    assert [name for name, uid in uids.items() if uid == uids["tollgate"]] == ["tollgate"]
    assert [name for name, gid in gids.items() if gid == gids["tollgate"]] == ["tollgate"]


def test_the_pod_shares_no_process_namespace() -> None:
    pod = _pod_spec()
    # Explicit, so that a copy into an existing Deployment carries the decision along.
    assert pod["shareProcessNamespace"] is False
    for host in ("hostPID", "hostIPC", "hostNetwork"):
        assert not pod.get(host, False), host


def test_sidecar_resources() -> None:
    assert _sidecar()["resources"] == {
        "requests": {"memory": "96Mi", "cpu": "50m"},
        "limits": {"memory": "256Mi", "cpu": "500m"},
    }


def test_policy_configmap_is_mounted_read_only_as_a_directory() -> None:
    gate = _sidecar()
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    configmap = _one("ConfigMap")
    (mount,) = [m for m in gate["volumeMounts"] if m["name"] == "policy"]
    assert volumes["policy"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert mount["readOnly"] is True
    # A subPath mount would never see ConfigMap updates, so the policy could not rotate.
    assert "subPath" not in mount
    assert _env(gate)["TOLLGATE_POLICY"] == mount["mountPath"] + "/policy.yaml"
    assert "policy.yaml" in configmap["data"]


def test_policy_configmap_ships_the_baseline_policy() -> None:
    shipped = _one("ConfigMap")["data"]["policy.yaml"]
    assert shipped == (REPO / "policies" / "baseline.yaml").read_text()


def test_audit_volume_is_a_claim_with_a_single_writer() -> None:
    deployment = _one("Deployment")
    pvc = _one("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    assert volumes["audit"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (mount,) = [m for m in _sidecar()["volumeMounts"] if m["name"] == "audit"]
    assert _env(_sidecar())["TOLLGATE_AUDIT_DIR"] == mount["mountPath"]
    assert not mount.get("readOnly", False)
    # Two pods appending to one hash chain would fork it.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_signing_key_is_mounted_only_into_the_sidecar() -> None:
    secret = _one("Secret")
    pod = _pod_spec()
    volumes = {v["name"]: v for v in pod["volumes"]}
    (key_volume,) = [
        name
        for name, v in volumes.items()
        if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
    ]
    mounted_by = [
        c["name"]
        for c in pod["initContainers"] + pod["containers"]
        if any(m["name"] == key_volume for m in c.get("volumeMounts", []))
    ]
    assert mounted_by == ["tollgate"]
    (mount,) = [m for m in _sidecar()["volumeMounts"] if m["name"] == key_volume]
    assert mount["readOnly"] is True
    assert _env(_sidecar())["TOLLGATE_SIGNING_KEY"] == mount["mountPath"] + "/tollgate.key"
    # Group-readable for the fsGroup, nothing for others.
    assert volumes[key_volume]["secret"]["defaultMode"] == 0o440
    # No key material in git: the Secret is filled in by the operator.
    assert "data" not in secret
    assert "stringData" not in secret


def test_agent_sees_no_gate_internals() -> None:
    gate_volumes = {m["name"] for m in _sidecar()["volumeMounts"]}
    agent_volumes = {m["name"] for m in _agent()["volumeMounts"]}
    assert gate_volumes.isdisjoint(agent_volumes)


def test_identity_comes_from_the_downward_api() -> None:
    env = _env(_sidecar())
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SERVICE_ACCOUNT"] == {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}


def test_checkpoint_origin_survives_a_pod_restart() -> None:
    # Kubernetes expands $(VAR) only from variables listed earlier in the same env.
    names = [e["name"] for e in _sidecar()["env"]]
    origin = _env(_sidecar())["TOLLGATE_AUDIT_ORIGIN"]
    assert origin == "tollgate/$(POD_NAMESPACE)/$(SERVICE_ACCOUNT)" and "$(POD_NAME)" not in origin
    assert names.index("TOLLGATE_AUDIT_ORIGIN") > names.index("POD_NAMESPACE")
    assert names.index("TOLLGATE_AUDIT_ORIGIN") > names.index("SERVICE_ACCOUNT")


def test_service_account_mounts_no_token() -> None:
    account = _one("ServiceAccount")
    pod = _pod_spec()
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False


def test_egress_is_denied_except_dns_and_https() -> None:
    policy = _one("NetworkPolicy")["spec"]
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert not policy.get("ingress"), "no ingress rule: nothing reaches the agent pod"
    allowed = {
        (port.get("protocol", "TCP"), port["port"])
        for rule in policy["egress"]
        for port in rule["ports"]
    }
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    # Every egress rule names its ports: none opens all traffic to some peer.
    assert all(rule.get("ports") for rule in policy["egress"])


def _kubernetes_validate() -> list[str]:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    script = Path(sys.executable).parent / "kubernetes-validate"
    found = str(script) if script.exists() else shutil.which("kubernetes-validate")
    if found is None:
        pytest.skip("the kubernetes-validate command is not on PATH")
    return [found, "--strict", "--kubernetes-version", KUBERNETES_VERSION]


def test_every_manifest_is_valid_for_kubernetes_1_31_strict() -> None:
    command = _kubernetes_validate()
    files = [str(path) for path in _manifest_files()]
    result = subprocess.run(
        [*command, *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # One "passed" line per resource: nothing was skipped as unknown.
    assert result.stdout.count("passed") + result.stderr.count("passed") == len(_resources())


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """Guards the test above: a misspelt field must fail, not pass silently."""
    command = _kubernetes_validate()
    deployment = _one("Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = "Always"
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = subprocess.run(
        [*command, str(broken)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "restartPolicyy" in result.stdout + result.stderr


def _kustomize_build() -> list[str]:
    """``kubectl kustomize`` (what ``kubectl apply -k`` runs), else the standalone
    ``kustomize build`` (.ci/run installs one: a fresh CI machine has no kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build"]
    pytest.skip("neither kubectl nor kustomize is installed; cannot build k8s/")


def test_kustomize_build_is_valid(tmp_path: Path) -> None:
    built = subprocess.run(
        [*_kustomize_build(), str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    resources = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    assert sorted(r["kind"] for r in resources) == sorted(r["kind"] for r in _resources())
    images = {
        c["name"]: c["image"]
        for r in resources
        if r["kind"] == "Deployment"
        for c in r["spec"]["template"]["spec"]["initContainers"]
        + r["spec"]["template"]["spec"]["containers"]
    }
    # Images are pinned to a tag; nothing runs ":latest" or untagged.
    for image in images.values():
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
    output = tmp_path / "built.yaml"
    output.write_text(built.stdout)
    command = _kubernetes_validate()
    result = subprocess.run(
        [*command, str(output)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers /health 200 and /ready with the status the test sets."""

    ready_status = 200

    def do_GET(self) -> None:
        status = 200 if self.path == "/health" else type(self).ready_status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _probe_commands() -> dict[str, list[str]]:
    gate = _sidecar()
    return {
        name: gate[name]["exec"]["command"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }


def _run_probe(command: list[str], port: int, extra_env: dict[str, str] | None = None) -> int:
    # The probe runs with the container's environment; "python" is the image's python.
    assert command[0] == "python"
    env = {"TOLLGATE_PORT": str(port), "PATH": os.environ.get("PATH", "")} | (extra_env or {})
    result = subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode


def test_probe_commands_follow_the_gate_status() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        probes = _probe_commands()
        _StatusHandler.ready_status = 200
        assert {name: _run_probe(cmd, port) for name, cmd in probes.items()} == {
            "startupProbe": 0,
            "readinessProbe": 0,
            "livenessProbe": 0,
        }
        # Not ready (no valid policy, audit not writable): the agent must not start.
        _StatusHandler.ready_status = 503
        assert _run_probe(probes["startupProbe"], port) != 0
        assert _run_probe(probes["readinessProbe"], port) != 0
        assert _run_probe(probes["livenessProbe"], port) == 0
    finally:
        server.shutdown()
        server.server_close()
    # Nothing listening at all fails every probe.
    assert all(_run_probe(cmd, port) != 0 for cmd in _probe_commands().values())


def _socket_timeout(command: list[str]) -> float:
    (found,) = re.findall(r"create_connection\(.*?timeout=([0-9.]+)\)", " ".join(command))
    return float(found)


def test_liveness_tolerates_a_busy_gate_and_still_restarts_a_silent_one() -> None:
    """Review 2026-12-06: checks and /health share the gate's event loop, and under the
    500m limit each concurrent 64 KiB command line delays /health by about 2 s (3.9 s with
    two, 5.7 s with three, 7.0 s with four). With a 2 s wait and 3 failures, two such
    checks got the gate restarted, which refills every rate limit and frees its port."""
    gate = _sidecar()
    liveness = gate["livenessProbe"]
    waits = _socket_timeout(liveness["exec"]["command"])
    assert waits >= 10
    # The kubelet's own timeout must not cut the probe's wait short.
    assert liveness["timeoutSeconds"] > waits
    assert liveness["failureThreshold"] >= 6
    # A gate that stops answering is still restarted, after about 70 s (docs/deploy.md):
    # one period before the first failing probe, then each failing probe waits in full.
    worst = liveness["periodSeconds"] + liveness["failureThreshold"] * max(
        liveness["periodSeconds"], liveness["timeoutSeconds"]
    )
    assert worst <= 90
    readiness = gate["readinessProbe"]
    assert _socket_timeout(readiness["exec"]["command"]) == waits
    assert readiness["timeoutSeconds"] > waits


class _SlowStatusHandler(_StatusHandler):
    """Answers like _StatusHandler, after ``delay`` seconds (a gate busy with checks)."""

    delay = 0.0
    ready_status = 200

    def do_GET(self) -> None:
        time.sleep(type(self).delay)
        super().do_GET()


def test_probes_pass_on_a_slow_answer_and_fail_on_none() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowStatusHandler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probes = _probe_commands()
    try:
        # Five seconds of busy loop (two or three heavy checks) used to fail liveness.
        _SlowStatusHandler.delay = 5.0
        for name in ("livenessProbe", "readinessProbe"):
            started = time.monotonic()
            assert _run_probe(probes[name], port) == 0, name
            assert time.monotonic() - started >= 5.0
    finally:
        server.shutdown()
        server.server_close()
    # A gate that accepts and never answers fails liveness once the wait is over.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        started = time.monotonic()
        assert _run_probe(probes["livenessProbe"], silent.getsockname()[1]) != 0
        assert 9.5 <= time.monotonic() - started < 20
    finally:
        silent.close()


def test_probe_commands_against_a_real_gate(tmp_path: Path, daemon_factory) -> None:  # type: ignore[no-untyped-def]
    # The gate itself, not a stand-in: its /ready turns 200 only once a valid policy is
    # loaded, and the probes read its status line as uvicorn writes it.
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaultAction: allow\nrules: [\n")  # a YAML error
    gate = daemon_factory(policy, wait_ready=False)
    probes = _probe_commands()
    deadline = time.monotonic() + 20
    while gate.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.get("/ready").status_code == 503
    assert _run_probe(probes["startupProbe"], gate.port) != 0
    assert _run_probe(probes["readinessProbe"], gate.port) != 0
    assert _run_probe(probes["livenessProbe"], gate.port) == 0
    # A valid policy arrives (hot reload): every probe passes.
    policy.write_text("version: 1\ndefaultAction: deny\nrules: []\n")
    while gate.get("/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {name: _run_probe(cmd, gate.port) for name, cmd in probes.items()} == {
        "startupProbe": 0,
        "readinessProbe": 0,
        "livenessProbe": 0,
    }


# --- what the NetworkPolicy lets out ------------------------------------------------------


def _egress_allows(destination: str, port: int, protocol: str = "TCP") -> bool:
    """Whether the agent pod's NetworkPolicy admits a connection to an address outside the
    pod, by the rules of networking.k8s.io/v1: a rule admits it when one of its ports
    matches (or it names none) and one of its peers contains the address (or it names none).
    Pod and namespace selectors select pods, never the addresses asked about here.
    """
    address = ipaddress.ip_address(destination)
    for rule in _one("NetworkPolicy")["spec"].get("egress", []):
        ports = rule.get("ports")
        if ports and not any(
            p.get("protocol", "TCP") == protocol
            and p["port"] <= port <= p.get("endPort", p["port"])
            for p in ports
        ):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block is None or address not in ipaddress.ip_network(block["cidr"]):
                continue
            if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


_PROBED_PORTS = (22, 80, 443, 6443, 8080, 10250)


def _baseline_denied_addresses() -> list[str]:
    """IP literals and ranges that the shipped policy's network deny rules name."""
    policy = yaml.safe_load(_one("ConfigMap")["data"]["policy.yaml"])
    found: list[str] = []
    for rule in policy["rules"]:
        if rule["action"] != "network.request" or rule["decision"] != "deny":
            continue
        host = rule.get("host", {})
        # Names (metadata.google.internal ...) resolve to the addresses listed with them.
        for value in host.get("in", []):
            with contextlib.suppress(ValueError):
                found.append(str(ipaddress.ip_address(value)))
        for cidr in host.get("cidr", []):
            network = ipaddress.ip_network(cidr)
            found += [str(network[0]), str(network[1]), str(network[-1])]
    return found


def test_egress_floor_blocks_what_the_shipped_policy_denies_by_address() -> None:
    addresses = _baseline_denied_addresses()
    assert {"169.254.169.254", "100.100.100.200", "168.63.129.16", "192.0.0.192"} <= set(addresses)
    leaks = [
        f"{address}:{port}"
        for address in addresses
        for port in _PROBED_PORTS
        if _egress_allows(address, port)
    ]
    assert leaks == [], "the NetworkPolicy lets out what the gate's guard rails deny"


@pytest.mark.parametrize(
    "destination",
    [
        "10.96.0.1",  # the API server's service address on kubeadm clusters
        "10.0.0.1",  # ... and on GKE; 172.20.0.1 on EKS
        "172.20.0.1",
        "192.168.1.10",  # node and VPC-internal addresses
        "100.64.0.10",  # carrier-grade NAT range, used for pod networks and by clouds
        "169.254.169.254",  # cloud metadata
        "169.254.170.2",  # ECS/EKS container credentials
        "2606:4700:4700::1111",  # IPv6: not needed by the agent, so not let out
        "fd00:ec2::254",
        # Reserved ranges clusters use for pods and services (review 2026-12-06: GKE's
        # non-RFC 1918 ranges were let out on 443).
        "240.10.0.5",  # class E
        "198.18.3.4",  # benchmarking, 198.18.0.0/15
        "198.19.255.254",
        "192.0.2.10",  # TEST-NET-1, -2, -3
        "198.51.100.7",
        "203.0.113.200",
        "192.88.99.1",  # the retired 6to4 relay anycast
    ],
)
def test_egress_floor_keeps_in_cluster_and_private_addresses_out(destination: str) -> None:
    # Child processes that never ask the gate (pip, git, a test suite) and code that
    # skips the check meet this floor: what sits in private and reserved ranges (on most
    # clusters the API service, other pods and services, nodes) and the metadata services
    # are not reachable on any port. A public address is (docs/deploy.md, "Egress").
    assert [port for port in _PROBED_PORTS if _egress_allows(destination, port)] == []


def test_egress_floor_still_lets_the_agent_reach_public_https() -> None:
    assert _egress_allows("104.18.32.47", 443)  # a public API endpoint
    assert not _egress_allows("104.18.32.47", 80)  # plain HTTP is not let out
    assert not _egress_allows("104.18.32.47", 22)


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself, as a captive or broken one does."""

    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>proxy</html>")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_probes_ask_the_gate_itself_even_with_a_proxy_in_the_environment(variable: str) -> None:
    # A cluster-wide webhook or a copied env block may give the sidecar proxy variables.
    # The probes must still ask the gate on the pod's loopback: through a proxy, a proxy's
    # 200 would pass the startup probe (the agent would start while the gate denies
    # everything) and a proxy's error would fail liveness (the gate restarted in a loop).
    gate = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    for server in (gate, proxy):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy_env = {variable: f"http://127.0.0.1:{proxy.server_address[1]}"}
    try:
        probes = _probe_commands()
        _StatusHandler.ready_status = 503
        _ProxyHandler.status = 200
        for name in ("startupProbe", "readinessProbe"):
            assert _run_probe(probes[name], gate.server_address[1], proxy_env) != 0, name
        _StatusHandler.ready_status = 200
        _ProxyHandler.status = 502
        for name, command in probes.items():
            assert _run_probe(command, gate.server_address[1], proxy_env) == 0, name
    finally:
        for server in (gate, proxy):
            server.shutdown()
            server.server_close()
        _StatusHandler.ready_status = 200


# --- Pod Security Standard "restricted" -------------------------------------------------------

_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the Pod Security Standard ``restricted`` (Kubernetes 1.31) refuses in a pod spec.

    Each control of the baseline and restricted profiles that a pod spec can break, as
    the PodSecurity admission plugin checks it; an empty list means the pod is admitted
    into a namespace labelled ``pod-security.kubernetes.io/enforce=restricted``.
    """
    found: list[str] = []
    pod_ctx = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            found.append(host)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for sysctl in pod_ctx.get("sysctls", []):
        found.append(f"sysctl {sysctl['name']}")  # none of ours needs one; the safe set is small
    containers = [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]
    for container in containers:
        name = container["name"]
        ctx = container.get("securityContext", {})

        def setting(key: str, ctx: dict[str, Any] = ctx) -> Any:
            return ctx.get(key, pod_ctx.get(key))

        if ctx.get("privileged"):
            found.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if setting("runAsNonRoot") is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if setting("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = setting("seccompProfile") or {}
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{name}: seccompProfile {seccomp.get('type')}")
        capabilities = ctx.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities not dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities added {capabilities['add']}")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
        if ctx.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
        apparmor = setting("appArmorProfile") or {}
        if apparmor.get("type") == "Unconfined":
            found.append(f"{name}: appArmor unconfined")
        selinux = setting("seLinuxOptions") or {}
        if selinux.get("user") or selinux.get("role"):
            found.append(f"{name}: seLinuxOptions user/role")
        if selinux.get("type") not in {
            None,
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
        }:
            found.append(f"{name}: seLinuxOptions type")
    return found


def test_the_gated_pod_meets_pod_security_restricted() -> None:
    assert _restricted_violations(_pod_spec()) == []


def test_the_audit_reader_pod_in_the_deploy_guide_meets_pod_security_restricted() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    pods = [
        doc
        for block in re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)
        for doc in yaml.safe_load_all(block)
        if doc and doc.get("kind") == "Pod"
    ]
    assert [pod["metadata"]["name"] for pod in pods] == ["tollgate-audit-reader"]
    assert _restricted_violations(pods[0]["spec"]) == []


def test_the_restricted_check_catches_what_a_careless_edit_brings() -> None:
    """Guards the two tests above: the check must see each kind of violation."""
    spec = _pod_spec()
    spec["hostPID"] = True
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    spec["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del spec["containers"][0]["securityContext"]["capabilities"]
    spec["securityContext"].pop("seccompProfile")
    spec["containers"][0]["securityContext"].pop("seccompProfile")
    found = _restricted_violations(spec)
    assert "hostPID" in found
    assert "volume host: ['hostPath']" in found
    assert "tollgate: allowPrivilegeEscalation is not false" in found
    assert "agent: capabilities not dropped" in found
    assert "agent: seccompProfile None" in found
    assert "tollgate: seccompProfile RuntimeDefault" not in found  # its own still holds
