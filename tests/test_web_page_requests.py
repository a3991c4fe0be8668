"""Requests from web pages are refused (sidecar/browsers.py; review of 2026-12-06/07).

A browser in the agent's pod can be made to send requests to the gate's loopback port:
a cross-site page with simple POSTs (no preflight: ``text/plain`` is accepted as any
content type is), or, with DNS rebinding, a page whose own name resolves to 127.0.0.1
and so reads the answers. Before, such a page could spend the agent's rate limits, fill
the approval queue, read pending approvals and redeem a granted one before the agent.
Now any request with ``Origin``, a cross-site ``Sec-Fetch-Site`` or a ``Host`` that is
neither ``localhost`` nor an IP address is answered 403 ``forbidden``; a refused check
is recorded, and spends and redeems nothing, and a refused approval decision is recorded
as ``forged``. Real daemons on real ports.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from sidecar.browsers import loopback_host, refusal
from tests import test_approvals
from tests.daemon import Daemon, answer_to_a_streaming_body
from tests.test_approvals import DELETE_WEB, ask, decide, redeem

people = test_approvals.people  # the fixture, under its name
start = test_approvals.start

FROM_A_PAGE = {
    "rebound host": {"Host": "attacker.example:9800"},
    "origin": {"Origin": "http://attacker.example"},
    "null origin": {"Origin": "null"},
    "cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
    "same-site fetch": {"Sec-Fetch-Site": "same-site"},
}


def raw_post(gate: Daemon, body: bytes, fields: dict[str, str]) -> tuple[int, bytes]:
    """POST /check written on a socket, as a browser would send it (``text/plain``)."""
    fields = {"Host": f"127.0.0.1:{gate.port}", **fields}
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    request = (
        f"POST /check HTTP/1.1\r\n{head}Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("fields", FROM_A_PAGE.values(), ids=FROM_A_PAGE.keys())
def test_a_check_from_a_web_page_is_refused_and_recorded(start, fields: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    gate: Daemon = start()
    status, body = raw_post(gate, b'{"action": "file.read", "path": "/app/data/x"}', fields)
    assert status == 403
    assert b'"allowed":false' in body and b'"code":"forbidden"' in body
    refused = [r for r in gate.records() if r["type"] == "invalidRequest"]
    assert [r["code"] for r in refused] == ["forbidden"]
    assert not [r for r in gate.records() if r["type"] == "decision"]


def test_a_web_page_cannot_open_read_or_redeem_approvals(start, people) -> None:  # type: ignore[no-untyped-def]
    gate: Daemon = start()
    assert gate.client is not None
    page = {"Host": "attacker.example", "Origin": "http://attacker.example"}
    # It cannot open one (filling the queue approvers read) ...
    status, _ = raw_post(gate, b'{"action": "file.delete", "path": "/app/x"}', page)
    assert status == 403
    assert gate.client.get("/v1/approvals").json()["approvals"] == []
    # ... nor read the agent's, nor use one an approver granted the agent.
    approval_id = ask(gate)["approval"]["id"]
    assert decide(gate, approval_id, people["alice"]).status_code == 200
    for path in ("/v1/approvals?status=approved", f"/v1/approvals/{approval_id}"):
        for fields in ({"Host": "attacker.example"}, {"Origin": "http://attacker.example"}):
            answer = gate.client.get(path, headers=fields)
            assert answer.status_code == 403
            assert approval_id not in answer.text
    status, _ = raw_post(gate, json.dumps({**DELETE_WEB, "approval": approval_id}).encode(), page)
    assert status == 403
    used = redeem(gate, approval_id)
    assert used["allowed"] is True, used["reason"]


@pytest.mark.parametrize("fields", FROM_A_PAGE.values(), ids=FROM_A_PAGE.keys())
def test_a_decision_from_a_web_page_is_refused_and_recorded_as_forged(  # type: ignore[no-untyped-def]
    start, fields: dict[str, str]
) -> None:
    """CONTRACT 2.4: anything unsigned is 403 *and recorded*. An agent approving itself
    with one of these fields added left no trace in the trail (rt25 api review, 2)."""
    gate: Daemon = start()
    assert gate.client is not None
    approval_id = ask(gate)["approval"]["id"]
    unsigned = {"decision": "approve", "approver": "alice"}
    answer = gate.client.post(f"/v1/approvals/{approval_id}", json=unsigned, headers=fields)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"
    forged = [r for r in gate.records() if r.get("event") == "forged"]
    assert len(forged) == 1
    assert forged[0]["approval"] == approval_id
    assert forged[0]["problem"] == answer.json()["error"]["message"]
    assert forged[0]["bytes"] == 0  # the body was never read
    assert gate.client.get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"
    # Reading is no decision: refused, and not recorded.
    assert gate.client.get(f"/v1/approvals/{approval_id}", headers=fields).status_code == 403
    assert len([r for r in gate.records() if r.get("event") == "forged"]) == 1
    # ... and counted, for an alert (rt25 round-2 review, A5).
    metrics = gate.client.get("/metrics").text
    assert "tollgate_approval_decisions_refused_total 1.0" in metrics


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "localhost.:{port}", "10.1.2.3"]
)
def test_the_agent_and_the_kubelet_are_served(start, host: str) -> None:  # type: ignore[no-untyped-def]
    gate: Daemon = start()
    status, body = raw_post(
        gate,
        b'{"action": "file.read", "path": "/app/data/x"}',
        {"Host": host.format(port=gate.port), "Sec-Fetch-Site": "none"},
    )
    assert status == 200, body
    assert b'"allowed":true' in body
    assert gate.client is not None
    assert gate.client.get("/ready", headers={"Host": "10.1.2.3:9800"}).status_code == 200


HOSTS: dict[bytes, bool] = {
    b"127.0.0.1": True,
    b"127.0.0.1:9800": True,
    b"[::1]:9800": True,
    b"[::1]": True,
    b"localhost": True,
    b"Localhost:1": True,
    b"10.244.0.7:9800": True,
    b"attacker.example": False,
    b"attacker.example:9800": False,
    b"127.0.0.1.nip.io:9800": False,
    b"localhost.attacker.example": False,
    b"[::1]x": False,
    b"[::ffff:127.0.0.1": False,
    b"127.0.0.1:port": False,
    b"0x7f.1": False,
    b"": False,
}


@pytest.mark.parametrize("value", HOSTS, ids=[v.decode() or "empty" for v in HOSTS])
def test_which_host_fields_name_the_gate(value: bytes) -> None:
    assert loopback_host(value) is HOSTS[value]


def test_a_request_without_browser_fields_is_served() -> None:
    fields: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1:9800"), (b"content-type", b"x")]
    assert refusal(fields) is None
    assert refusal([]) is None  # HTTP/1.0 without Host: no browser sends that
    reason: Any = refusal([*fields, (b"origin", b"http://a.example")])
    assert "Origin" in reason


@pytest.mark.parametrize("target", [b"/check", b"/v1/approvals/apr_x"])
def test_a_refused_request_closes_its_connection_unread(start, target: bytes) -> None:  # type: ignore[no-untyped-def]
    """The refusal reads no body, so the connection is closed with the answer: kept open,
    the server went on reading, and dropping, the length the page declared."""
    gate: Daemon = start()
    head = (
        b"POST %s HTTP/1.1\r\nHost: localhost\r\nOrigin: http://attacker.example\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 999999999999\r\n\r\n" % target
    )
    answer = answer_to_a_streaming_body(gate.port, head)
    assert answer is not None, "the gate kept the connection open"
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"connection: close" in answer
