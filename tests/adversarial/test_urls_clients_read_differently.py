"""Hosts and URLs the gate and HTTP clients read differently: UTS-46's deviation
characters, ``localhost`` names, a second ``#`` and hosts IDNA 2003 reads as other hosts.
Found in the review of 2026-12-06.

* UTS-46's deviation characters (ß, and ẞ which maps to it; ς; ZWJ, ZWNJ) name one
  host to the gate (IDNA 2008 keeps them: ``ẞm.example.com`` is xn--m-pfa...) and
  another to curl, Node and urllib (``ssm.example.com``). A deny of the second was
  escaped through an allow of its parent domain. They are now refused, in requests and
  in rules; the A-label spelling stays valid.
* ``localhost`` and every name under it reach the loopback in curl and browsers without
  DNS (RFC 6761), so a deny of 127.0.0.0/8 or ::1 now sees them; an allow of 127.0.0.1
  does not cover them, since other resolvers may ask DNS.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.policy.loader import PolicyError, load_policy_bytes

AWS = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: aws, action: network.request, host: {glob: '*.us-east-1.amazonaws.com'},"
    b" decision: allow}\n"
    b"  - {id: no-ssm, action: network.request, host: ssm.us-east-1.amazonaws.com,"
    b" decision: deny}\n",
    "aws.yaml",
)
DEVIATING = [
    "\u1e9em.us-east-1.amazonaws.com",  # ẞ: ssm to curl and Node
    "\u00dfm.us-east-1.amazonaws.com",  # ß: ssm to urllib
    "\u03c2.us-east-1.amazonaws.com",
    "a\u200db.us-east-1.amazonaws.com",
    "\u0915\u094d\u200c.us-east-1.amazonaws.com",
]


@pytest.mark.parametrize("host", DEVIATING)
def test_a_host_clients_read_differently_is_refused_not_allowed(host: str) -> None:
    for body in (
        {"action": "network.request", "url": f"https://{host}/"},
        {"action": "network.request", "host": host, "port": 443},
    ):
        with pytest.raises(RequestError, match="HTTP clients disagree"):
            evaluate_request(AWS, body)


def test_the_a_label_spelling_is_still_a_host() -> None:
    verdict = evaluate_request(
        AWS, {"action": "network.request", "url": "https://xn--m-pfa.us-east-1.amazonaws.com/"}
    )
    assert (verdict.decision, verdict.rule, verdict.request["host"]) == (
        "allow",
        "aws",
        "xn--m-pfa.us-east-1.amazonaws.com",
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_node_reads_the_capital_sharp_s_as_the_denied_host() -> None:
    # Why refusing is right: what the gate would have decided is not what Node reaches.
    result = subprocess.run(
        [
            "node",
            "-e",
            "process.stdout.write(JSON.stringify(new URL(process.argv[1]).hostname))",
            f"https://{DEVIATING[0]}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(result.stdout) == "ssm.us-east-1.amazonaws.com"
    assert DEVIATING[1].encode("idna") == b"ssm.us-east-1.amazonaws.com"  # urllib's codec


@pytest.mark.parametrize(
    "value", ["stra\u00dfe.de", "{glob: '*.stra\u00dfe.de'}", "{endsWith: .\u03c2.gr}"]
)
def test_a_rule_value_with_a_deviation_character_is_refused(value: str) -> None:
    with pytest.raises(PolicyError, match="HTTP clients disagree"):
        load_policy_bytes(
            f"version: 1\nrules:\n  - {{action: network.request, decision: deny, host: {value}}}\n".encode(),
            "rule.yaml",
        )


LOOPBACK_DENY = load_policy_bytes(
    b"version: 1\ndefaultAction: allow\nrules:\n"
    b"  - {id: no-loopback, action: network.request, host: {cidr: [127.0.0.0/8, '::1/128']},"
    b" decision: deny}\n",
    "loopback.yaml",
)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST.:8080/x",
        "http://app.localhost/",
        "ws://a.b.localhost/",
        # Every pod's /etc/hosts (the kubelet's) names ::1 so (review, 2026-12-06).
        "http://ip6-localhost:8080/",
        "http://IP6-Loopback./",
    ],
)
def test_a_loopback_deny_sees_localhost_names(url: str) -> None:
    verdict = evaluate_request(LOOPBACK_DENY, {"action": "network.request", "url": url})
    assert (verdict.decision, verdict.rule) == ("deny", "no-loopback")
    assert "as the loopback" in verdict.reason


@pytest.mark.parametrize(
    "url", ["http://localhost.example.com/", "http://notlocalhost/", "http://ip6-localnet/"]
)
def test_names_that_only_look_local_are_not_the_loopback(url: str) -> None:
    verdict = evaluate_request(LOOPBACK_DENY, {"action": "network.request", "url": url})
    assert verdict.decision == "allow"


def test_an_allow_of_the_loopback_address_does_not_cover_localhost_names() -> None:
    policy = load_policy_bytes(
        b"version: 1\nrules:\n"
        b"  - {id: local, action: network.request, host: 127.0.0.1, decision: allow}\n",
        "local.yaml",
    )
    for url in ("http://localhost/", "http://x.localhost/"):
        assert (
            evaluate_request(policy, {"action": "network.request", "url": url}).decision == "deny"
        )
    assert evaluate_request(
        policy, {"action": "network.request", "url": "http://127.0.0.1/"}
    ).allowed


# Found by the differential review of 2026-12-06 (URLs sent through Node, urllib,
# requests, urllib3, httpx and curl to a recording server).
API = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: api, action: network.request, host: api.example.com,"
    b" path: {glob: '/v1/**'}, decision: allow}\n",
    "api.yaml",
)


def test_a_second_hash_in_a_url_is_refused_not_read_as_a_fragment() -> None:
    # urllib.request cuts a URL at its last '#': it sent "GET /v1/x#/../admin/secret",
    # which a Go file server cleaned to /v1/../admin/secret and served, while the gate
    # had decided /v1/x (allowed).
    url = "http://api.example.com/v1/x#/../admin/secret#"
    with pytest.raises(RequestError, match="more than one '#'"):
        evaluate_request(API, {"action": "network.request", "url": url})
    one = evaluate_request(
        API, {"action": "network.request", "url": "http://api.example.com/v1/x#f"}
    )
    assert (one.decision, one.request["url"]) == ("allow", "http://api.example.com/v1/x")


def test_a_host_idna_2003_reads_as_another_host_is_refused() -> None:
    # U+1D2C (MODIFIER LETTER CAPITAL A) is 'a' to UTS-46 but unassigned in Unicode 3.2:
    # Python's "idna" codec (http.client, sockets) keeps it, and connects to
    # api.xn--exmple-c75b.com while the gate would decide and record api.example.com.
    host = "api.ex\u1d2cmple.com"
    assert host.encode("idna") == b"api.xn--exmple-c75b.com"
    for body in (
        {"action": "network.request", "url": f"http://{host}/v1/x"},
        {"action": "network.request", "host": host, "port": 443},
    ):
        with pytest.raises(RequestError, match="IDNA 2003"):
            evaluate_request(API, body)
    with pytest.raises(PolicyError):
        load_policy_bytes(
            f"version: 1\nrules:\n  - {{action: network.request, host: '{host}', decision: allow}}\n".encode(),
            "rule.yaml",
        )


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("b\u00fccher.example", "xn--bcher-kva.example"),  # both readings agree
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),  # fullwidth
        ("\uff11\uff12\uff17.\uff11", "127.0.0.1"),  # an address, however spelt
        ("m\u00fcnchen\u3002example", "xn--mnchen-3ya.example"),  # ideographic full stop
    ],
)
def test_hosts_both_idna_readings_agree_on_are_kept(host: str, canonical: str) -> None:
    verdict = evaluate_request(API, {"action": "network.request", "host": host, "port": 443})
    assert verdict.request["host"] == canonical
