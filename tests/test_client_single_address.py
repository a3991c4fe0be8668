"""Both clients connect to the one address the gate listens on, never to another
process on another loopback address. Found in the review of 2026-12-06 (threat model of
the Kubernetes deployment).

The gate binds what ``--host`` says (127.0.0.1 in the manifests) and nothing else. The
clients resolved ``localhost`` through the system, and in a pod the kubelet's /etc/hosts
lists ``::1 localhost`` first: a process with no privileges listening on [::1] at the
gate's port answered every check while the real gate was healthy, and no probe, restart
or record showed it. A URL naming another loopback address (127.0.0.2) could be squatted
the same way. Now ``localhost`` (any case, a trailing dot allowed) is 127.0.0.1, never
looked up, and only 127.0.0.1, localhost and [::1] are accepted as a gate's address.

Everything here runs on real sockets: the real gate or a stand-in on 127.0.0.1, a fake
gate answering allow on [::1] or 127.0.0.2, the Python client in this process or in a
child, the JS client in a real Node process. The kubelet's /etc/hosts is given to the
clients with a user and mount namespace (``unshare -rm``), as the review reproduced it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_client_parity import DRIVER, ipv6_loopback_available, run_js
from tests.test_js_client import JS_DIR, node_binary
from tests.test_python_client import CLIENT_DIR, Gate, http_answer, read_request

FAKE_REASON = "FAKE GATE"
FAKE_ALLOW = json.dumps({"allowed": True, "decision": "allow", "reason": FAKE_REASON}).encode()
REAL_ALLOW = json.dumps({"allowed": True, "decision": "allow", "reason": "the gate"}).encode()
# The hosts file the kubelet writes into every pod (pkg/kubelet/kubelet_pods.go).
KUBELET_HOSTS = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
    "10.244.1.5\tagent-5d9c7b8f6-x2x7q\n"
)
LOCALHOST_SPELLINGS = ("localhost", "LOCALHOST", "localhost.")
NO_IPV6 = "no IPv6 loopback in this sandbox: nothing can listen on [::1] to squat it"


class Listener:
    """Answers every request on every connection with ``body`` (200), on ``host:port``."""

    def __init__(self, host: str, port: int, body: bytes) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.port = int(self.sock.getsockname()[1])
        self.body = body
        self.connections = 0
        # Polled, so that close() can stop the thread before the socket goes: a thread
        # still in accept() on a closed socket's number could take the next test's
        # connections once that number is reused.
        self.sock.settimeout(0.05)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while read_request(conn) is not None:
                conn.sendall(http_answer(200, self.body))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[Listener] = []

    def start(host: str, port: int, body: bytes) -> Listener:
        started.append(Listener(host, port, body))
        return started[-1]

    yield start
    for listener in started:
        listener.close()


PYTHON_CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tollgate_client import Gate
found = []
for url in json.loads(sys.argv[2]):
    try:
        gate = Gate(url, timeout=2.0)
    except ValueError as exc:
        found.append({"construct": "ValueError", "message": str(exc)})
        continue
    with gate:
        d = gate.check("file.read", path="/app/data/x")
    found.append({"allowed": d.allowed, "error": d.error, "reason": d.reason})
print(json.dumps(found))
"""


def python_checks(
    urls: list[str], wrap: Callable[[list[str]], list[str]] = list
) -> list[dict[str, Any]]:
    """What the Python client decides for each URL, or ``construct``: the error it
    refused to be made with (as the JS driver reports it). Run in a Python process of
    its own, as the agent runs it (``wrap`` may put it in a namespace)."""
    command = [sys.executable, "-c", PYTHON_CLIENT, str(CLIENT_DIR), json.dumps(urls)]
    python = subprocess.run(wrap(command), capture_output=True, text=True, timeout=60, check=False)
    assert python.returncode == 0, python.stderr[-4000:]
    return list(json.loads(python.stdout))


# -- without any namespace: localhost is 127.0.0.1, whatever a resolver says --------------


def test_localhost_is_connected_as_127_0_0_1_by_both_clients(listen) -> None:  # type: ignore[no-untyped-def]
    """A gate listening on 127.0.0.1 only is asked under every spelling of localhost."""
    gate = listen("127.0.0.1", 0, REAL_ALLOW)
    urls = [f"http://{host}:{gate.port}" for host in LOCALHOST_SPELLINGS]
    python = python_checks(urls)
    js = run_js([{"url": url, "timeout": 2000} for url in urls])
    for result in python + js:
        assert (result.get("allowed"), result.get("reason")) == (True, "the gate"), result
        assert result["error"] is None
    assert gate.connections == 2 * len(urls)


@pytest.mark.skipif(not ipv6_loopback_available(), reason=NO_IPV6)
def test_a_resolver_putting_ipv6_first_leads_neither_client_to_a_squatter(
    listen, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The system's resolver, made to answer as the kubelet's /etc/hosts does (::1 first),
    is never asked: the gate on 127.0.0.1 answers, the squatter on [::1] never hears."""
    gate = listen("127.0.0.1", 0, REAL_ALLOW)
    squatter = listen("::1", gate.port, FAKE_ALLOW)
    urls = [f"http://{host}:{gate.port}" for host in LOCALHOST_SPELLINGS]
    real = socket.getaddrinfo
    asked: list[str] = []

    def kubelet_order(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).lower().rstrip(".") == "localhost":
            asked.append(host)
            return real("::1", port, *args, **kwargs) + real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", kubelet_order)
    python = python_checks(urls)
    monkeypatch.undo()
    # Node: dns.lookup answers ::1 first too (dns.lookup is what net.connect asks).
    script = textwrap.dedent(
        """
        import dns from 'node:dns';
        const real = dns.lookup;
        const asked = [];
        dns.lookup = (hostname, options, callback) => {
          if (typeof options === 'function') [options, callback] = [{}, options];
          if (hostname.toLowerCase().replace(/\\.$/, '') !== 'localhost') {
            return real(hostname, options, callback);
          }
          asked.push(hostname);
          const found = [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }];
          if (options.all) callback(null, found);
          else callback(null, found[0].address, found[0].family);
        };
        const { Gate } = await import(process.argv[1]);
        const results = [];
        for (const url of JSON.parse(process.argv[2])) {
          let gate;
          try {
            gate = new Gate({ url, timeout: 2000 });
          } catch (error) {
            results.push({ construct: error.constructor.name, message: error.message });
            continue;
          }
          const d = await gate.check({ action: 'file.read', path: '/app/data/x' });
          results.push({ allowed: d.allowed, error: d.error, reason: d.reason });
          gate.close();
        }
        process.stdout.write(JSON.stringify({ asked, results }));
        """
    )
    run = subprocess.run(
        [node_binary(), "--input-type=module", "-e", script, "--",
         (JS_DIR / "src" / "index.js").as_uri(), json.dumps(urls)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    js = json.loads(run.stdout)
    for result in python + js["results"]:
        assert (result.get("allowed"), result.get("reason")) == (True, "the gate"), result
    assert asked == [] and js["asked"] == []
    assert squatter.connections == 0
    assert gate.connections == 2 * len(urls)


@pytest.mark.parametrize("address", ["127.0.0.2", "127.0.1.1", "127.255.255.254"])
def test_a_url_naming_another_loopback_address_is_refused_by_both_clients(
    listen, address: str
) -> None:  # type: ignore[no-untyped-def]
    """The gate holds 127.0.0.1:PORT; anyone in the pod can bind 127.0.0.2:PORT (checked
    here: the bind succeeds) and answer allow. Both clients used to ask it."""
    gate = listen("127.0.0.1", 0, REAL_ALLOW)
    try:
        squatter = listen(address, gate.port, FAKE_ALLOW)
    except OSError as exc:
        pytest.skip(f"cannot bind {address} in this sandbox: {exc}")
    url = f"http://{address}:{gate.port}"
    try:
        Gate(url, timeout=2.0).close()
        python = None
    except ValueError as exc:
        python = str(exc)
    if python is None:
        # Made anyway (before the fix): what it would have decided, for the message.
        python_decision = python_checks([url])[0]
        pytest.fail(f"the Python client was made for {url}: {python_decision}")
    assert "127.0.0.1, localhost or [::1]" in python and "allow_remote" in python
    (js,) = run_js([{"url": url, "timeout": 2000}])
    assert js.get("construct") == "TypeError", js
    assert "allowRemote" in js["message"]
    assert squatter.connections == 0


# -- in a pod: the kubelet's /etc/hosts, ::1 first ----------------------------------------


def in_kubelet_hosts(hosts: Path, argv: list[str]) -> list[str]:
    """``argv`` run with ``hosts`` bind-mounted on /etc/hosts (a private mount namespace
    in a user namespace: nothing outside it sees the change)."""
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"',
        str(hosts),
        *argv,
    ]


@pytest.fixture
def kubelet_hosts(tmp_path: Path) -> Path:
    if not ipv6_loopback_available():
        pytest.skip(NO_IPV6)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here: cannot give a process the kubelet's /etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text(KUBELET_HOSTS)
    probe = subprocess.run(
        in_kubelet_hosts(hosts, [sys.executable, "-c", RESOLVE]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(
            "cannot bind-mount a hosts file in a user and mount namespace here "
            f"(unshare -rm: {probe.stderr.strip()[-300:]})"
        )
    # The premise of the finding: the system resolver gives ::1 first for localhost.
    assert json.loads(probe.stdout)[0] == "::1", probe.stdout
    return hosts


RESOLVE = (
    "import json, socket; print(json.dumps([a[4][0] for a in "
    "socket.getaddrinfo('localhost', 1, 0, socket.SOCK_STREAM)]))"
)


def clients_in_the_pod(hosts: Path, urls: list[str]) -> list[dict[str, Any]]:
    """Both clients, as the agent container runs them: the Python client in a Python
    process and the JS client in Node, both with the kubelet's /etc/hosts."""
    python = python_checks(urls, lambda command: in_kubelet_hosts(hosts, command))
    request = {
        "client": str(JS_DIR / "src" / "index.js"),
        "cases": [{"url": url, "timeout": 2000} for url in urls],
    }
    js = subprocess.run(
        in_kubelet_hosts(hosts, [node_binary(), str(DRIVER)]),
        input=json.dumps(request), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert js.returncode == 0, js.stderr[-4000:]
    node_lookup = subprocess.run(
        in_kubelet_hosts(hosts, [node_binary(), "-e", NODE_RESOLVE]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    # Node resolves localhost ::1 first there too: the JS client would have gone there.
    assert json.loads(node_lookup.stdout)[0] == "::1", node_lookup.stdout + node_lookup.stderr
    return [*python, *json.loads(js.stdout)]


NODE_RESOLVE = (
    "require('dns').lookup('localhost', {all: true}, (e, found) => "
    "console.log(JSON.stringify(e ? [String(e)] : found.map((a) => a.address))))"
)


def test_in_a_pod_a_squatter_on_ipv6_loopback_never_answers_for_the_real_gate(
    kubelet_hosts: Path, tmp_path: Path, daemon_factory, listen
) -> None:  # type: ignore[no-untyped-def]
    """The review's reproduction: the real gate on 127.0.0.1:PORT, a fake gate answering
    allow on [::1]:PORT, both clients with TOLLGATE_URL=http://localhost:PORT and the
    kubelet's /etc/hosts. Both clients took the fake's allow for /etc/shadow-like reads."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ndefaultAction: deny\nrules: []\n", encoding="utf-8")
    gate = daemon_factory(policy)
    squatter = listen("::1", gate.port, FAKE_ALLOW)
    urls = [f"http://{host}:{gate.port}" for host in LOCALHOST_SPELLINGS]
    results = clients_in_the_pod(kubelet_hosts, urls)
    assert len(results) == 2 * len(urls)
    for result in results:
        assert (result.get("allowed"), result.get("error")) == (False, None), result
        assert result["reason"] == "no rule allows file.read of /app/data/x", result
    assert squatter.connections == 0
    # The gate decided (and recorded) every one of them.
    records = [
        json.loads(line)
        for segment in sorted(gate.audit_dir.rglob("*.jsonl"))
        for line in segment.read_text().splitlines()
        if line.strip()
    ]
    assert sum(1 for r in records if r.get("type") == "decision") == len(results)


def test_in_a_pod_with_the_gate_down_localhost_is_unreachable_not_the_squatter(
    kubelet_hosts: Path, listen
) -> None:  # type: ignore[no-untyped-def]
    """Nothing on 127.0.0.1:PORT (the gate restarting), a fake on [::1]:PORT: a deny
    (``unreachable``), never a fall-back to the other address."""
    squatter = listen("::1", 0, FAKE_ALLOW)
    with socket.socket() as probe:  # the port must be free on 127.0.0.1 as well
        try:
            probe.bind(("127.0.0.1", squatter.port))
        except OSError:
            pytest.skip("the squatter's port is taken on 127.0.0.1 by something else")
    urls = [f"http://{host}:{squatter.port}" for host in LOCALHOST_SPELLINGS]
    results = clients_in_the_pod(kubelet_hosts, urls)
    assert len(results) == 2 * len(urls)
    for result in results:
        assert (result.get("allowed"), result.get("error")) == (False, "unreachable"), result
        assert FAKE_REASON not in result["reason"]
    assert squatter.connections == 0


def test_the_environment_variable_is_read_the_same_way(kubelet_hosts: Path, listen) -> None:  # type: ignore[no-untyped-def]
    """TOLLGATE_URL=http://localhost:PORT, as an operator may write it: the same."""
    gate = listen("127.0.0.1", 0, REAL_ALLOW)
    squatter = listen("::1", gate.port, FAKE_ALLOW)
    env = {**os.environ, "TOLLGATE_URL": f"http://localhost:{gate.port}"}
    script = "import sys; sys.path.insert(0, sys.argv[1]); from tollgate_client import Gate; "
    script += "print(Gate(timeout=2.0).check('file.read', path='/x').reason)"
    python = subprocess.run(
        in_kubelet_hosts(kubelet_hosts, [sys.executable, "-c", script, str(CLIENT_DIR)]),
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert python.returncode == 0, python.stderr[-4000:]
    request = {
        "client": str(JS_DIR / "src" / "index.js"),
        "cases": [{"url": None, "timeout": 2000}],
    }
    js = subprocess.run(
        in_kubelet_hosts(kubelet_hosts, [node_binary(), str(DRIVER)]),
        input=json.dumps(request), capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert js.returncode == 0, js.stderr[-4000:]
    assert python.stdout.strip() == "the gate"
    assert json.loads(js.stdout)[0]["reason"] == "the gate"
    assert squatter.connections == 0 and gate.connections == 2


def test_the_cli_check_connects_to_localhost_as_127_0_0_1(kubelet_hosts: Path) -> None:
    # The review found `tollgate check --url http://localhost:P` answered by a stand-in
    # on [::1]:P in a pod (urllib resolves the name, ::1 first there).
    import http.server
    import threading

    if not ipv6_loopback_available():
        pytest.skip(NO_IPV6)

    class Allow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"allowed": true, "decision": "allow", "reason": "FAKE GATE"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class V6Server(http.server.HTTPServer):
        address_family = socket.AF_INET6

    fake = V6Server(("::1", 0), Allow)
    port = fake.server_address[1]
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    check = [sys.executable, "-m", "sidecar.cli", "check", "--url", f"http://localhost:{port}",
             '{"action": "file.read", "path": "/etc/shadow"}']  # fmt: skip
    try:
        # Nothing listens on 127.0.0.1 at this port: the real gate is down.
        done = subprocess.run(
            in_kubelet_hosts(kubelet_hosts, check),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        fake.shutdown()
    assert "FAKE GATE" not in done.stdout + done.stderr
    assert done.returncode != 0 and "unreachable" in done.stderr, done.stderr
