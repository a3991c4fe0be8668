"""A host that cannot be one is refused with the reason it is dangerous, not merely
the character: the existing cases matched substrings ("'@'") that the generic
"must not contain '@'" also holds, so the explanations were pinned nowhere."""

from __future__ import annotations

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.policy.loader import load_policy_bytes

POLICY = load_policy_bytes(b"version: 1\nrules: []\n", "hosts.yaml")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("a@b.com", "must not contain '@' (userinfo is never part of a host)"),
        ("a\\b.com", "must not contain '\\' (some parsers read it as '/')"),
        ("a/b.com", "must be a host alone, not a URL (found '/')"),
        ("a%41.com", "must not contain '%' (percent-encoded hosts are ambiguous and rejected)"),
        (
            "a.com:80",
            "must not contain ':' outside an IPv6 address (a port belongs in the port field)",
        ),
        ("a b.com", "must not contain whitespace"),
        ("a\x01.com", "must not contain control characters"),
        ("a$b.com", "must not contain '$'"),
    ],
)
def test_a_bad_host_is_refused_with_why(host: str, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        evaluate_request(POLICY, {"action": "network.request", "host": host})
    assert (caught.value.field, caught.value.message) == ("host", message)
