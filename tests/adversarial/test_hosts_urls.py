"""Red team: host and URL spellings that have bypassed other agent gates (CONTRACT 2.2).

Each family is run end to end -- a real policy loaded by the loader, a /check body
through ``sidecar.engine.evaluate_request`` -- and must come out denied or rejected as an
invalid request, never allowed; the honest spellings of the same hosts must still be
allowed, so the tests cannot pass by denying everything. The last test is a
differential check against a real WHATWG URL parser (Node's ``URL``): whenever we
accept a URL, a browser-grade parser must agree on its host and port.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.hosts import canonical_host, parse_url
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.conftest import load_policy_text

PRIVATE = ["127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "::1/128", "fe80::/10"]

# An allow-list gate: two APIs and the cluster's internal services.
ALLOW_LIST = """
version: 1
defaultAction: deny
rules:
  - id: model-apis
    action: network.request
    host:
      in: ["api.openai.com", "api.anthropic.com"]
    decision: allow
  - id: internal
    action: network.request
    host:
      endsWith: ".internal.svc.cluster.local"
    decision: allow
  - id: mirror
    action: network.request
    host: {glob: "*.pypi.example.org"}
    decision: allow
"""

# A deny-list gate: anything on the internet, except private and metadata addresses.
DENY_LIST = f"""
version: 1
defaultAction: deny
rules:
  - id: no-private
    action: network.request
    host: {{cidr: {json.dumps(PRIVATE)}}}
    decision: deny
  - id: no-metadata-names
    action: network.request
    host: {{in: ["metadata.google.internal", "localhost"]}}
    decision: deny
  - id: internet
    action: network.request
    host: {{not: {{cidr: {json.dumps(PRIVATE)}}}}}
    decision: allow
"""


def _load(text: str) -> CompiledPolicy:
    return load_policy_text(text, "adversarial.yaml")


def _outcome(policy: CompiledPolicy, body: dict[str, Any]) -> str:
    """'allow', 'deny', 'require_approval' or 'invalid' (answered 400, so denied)."""
    try:
        return evaluate_request(policy, {"action": "network.request", **body}).decision
    except RequestError:
        return "invalid"


def _url(url: str) -> dict[str, Any]:
    return {"url": url, "method": "GET"}


# ------------------------------------------------------------------ allow-list gate

# Each looks like an allowed host to a naive check (startsWith, contains, first '@',
# WHATWG leniency) but reaches another host, or is too ambiguous to tell.
LOOKALIKES = [
    "https://api.openai.com.evil.net/v1/chat",
    "https://api.openai.com.evil.net./v1/chat",
    "https://api.openai.comevil.net/",
    "https://evil.net/api.openai.com",
    "https://evil.net/?host=api.openai.com",
    "https://evil.net/#api.openai.com",
    "https://evil.net#@api.openai.com",
    "https://evil.net?@api.openai.com",
    "https://api.openai.com@evil.net/",
    "https://api.openai.com:443@evil.net/",
    "https://api.openai.com:443@127.0.0.1/",
    "https://user:api.openai.com@evil.net/",
    "https://api.openai.com%40evil.net/",
    "https://api.openai.com%2F@evil.net/",
    "https://evil.net%23@api.openai.com/",
    "https://evil.net%2F@api.openai.com/",
    "https://evil.net%5C@api.openai.com/",
    "https://evil.net\\@api.openai.com/",
    "https://evil.net\\api.openai.com/",
    "https:\\\\api.openai.com/",
    "https://api.openai.com@evil.net@api.openai.com/",
    "https://[::1]@api.openai.com/",
    "https://api.openai.com\t.evil.net/",
    "https://api.openai.com\n.evil.net/",
    "https://api.openai.com\x00.evil.net/",
    "https://api.openai.com .evil.net/",
    " https://evil.net/ https://api.openai.com/",
    "https://api.openai.com\u3002evil.net/",  # ideographic full stop is a dot
    "https://api.openai.com\uff0eevil.net/",  # fullwidth full stop is a dot
    "https://api.openai.com\uff20evil.net/",  # fullwidth '@' is refused
    "https://api.openai.com\uff0fevil.net/",  # fullwidth '/' is refused
    "https://api.openai.com\u2024evil.net/",  # one dot leader
    "https://xn--api-openai-com.evil.net/",
    "https://api.open\u0430i.com/",  # Cyrillic a: a different host, in A-label form
    "https://%61pi.openai.com/",
    "https://api.openai.com%2eevil.net/",
    "http://api.openai.com:80:443/",
    "https://api.openai.com.:443.evil.net/",
    "https://evil.internal.svc.cluster.local.attacker.com/",
    "https://internal.svc.cluster.local/",  # endsWith '.internal...' needs a label before
    "https://x.internal.svc.cluster.local%2F.attacker.com/",
    "https://x.internal.svc.cluster.local@attacker.com/",
    "https://pypi.example.org/",  # '*.' needs a label
    "https://a.b.pypi.example.org/",  # '*' is one label
    "https://files.pypi.example.org.evil.net/",
    "file:///etc/passwd",
    "gopher://api.openai.com/",
    "//api.openai.com/",
    "https:api.openai.com",
    "https:/api.openai.com",
]


@pytest.mark.parametrize("url", LOOKALIKES)
def test_lookalike_urls_are_never_allowed(allow_list: CompiledPolicy, url: str) -> None:
    assert _outcome(allow_list, _url(url)) in ("deny", "invalid")


@pytest.mark.parametrize(
    "host",
    [
        "api.openai.com.evil.net",
        "api.openai.com@evil.net",
        "evil.net@api.openai.com",
        "api.openai.com:443",
        "api.openai.com/",
        "api.openai.com\\",
        "api.openai.com..",
        ".api.openai.com",
        "api.openai.com ",
        " api.openai.com",
        "api.openai.com\x00",
        "%61pi.openai.com",
        "https://api.openai.com",
        "[api.openai.com]",
        "evil.internal.svc.cluster.local.attacker.com",
    ],
)
def test_lookalike_hosts_are_never_allowed(allow_list: CompiledPolicy, host: str) -> None:
    assert _outcome(allow_list, {"host": host, "port": 443, "scheme": "https"}) in (
        "deny",
        "invalid",
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1/chat/completions",
        "https://API.OpenAI.com/v1/chat/completions",
        "https://api.openai.com./v1/chat/completions",
        "https://api.openai.com:443/v1/chat/completions",
        "https://api.openai.com:8443/",
        "https://sk-secret@api.openai.com/v1/models",
        "https://evil.net:pass@api.openai.com/",  # userinfo is not the host, either way
        "https://\uff41\uff50\uff49.openai.com/",  # fullwidth "api"
        "https://api\u3002openai\u3002com/",
        "https://api.open\u00adai.com/",  # soft hyphen is ignored by UTS-46
        "https://api.openai.co\u217f/",  # SMALL ROMAN NUMERAL ONE THOUSAND maps to 'm'
        "https://api.anthropic.com/v1/messages#fragment",
        "https://web.internal.svc.cluster.local/",
        "https://WEB.Internal.SVC.cluster.local./x",
        "https://files.pypi.example.org/simple/",
        "https://FILES.pypi.example.org./simple/",
    ],
)
def test_honest_spellings_are_allowed(allow_list: CompiledPolicy, url: str) -> None:
    assert _outcome(allow_list, _url(url)) == "allow"


def test_secrets_in_userinfo_are_not_recorded(allow_list: CompiledPolicy) -> None:
    verdict = evaluate_request(
        allow_list,
        {"action": "network.request", "url": "https://u:sk-SECRET@api.openai.com/v1/x#frag"},
    )
    assert verdict.decision == "allow"
    recorded = json.dumps(verdict.request)
    assert "sk-SECRET" not in recorded and "frag" not in recorded
    assert verdict.request["url"] == "https://api.openai.com/v1/x"


# ------------------------------------------------------------------ deny-list gate


def _spellings_of_ipv4(address: str) -> list[str]:
    """Every inet_aton spelling of ``address``, plus IPv6 and Unicode disguises."""
    value = int(ipaddress.IPv4Address(address))
    octets = [(value >> shift) & 0xFF for shift in (24, 16, 8, 0)]
    a, b, c, d = octets
    forms = {
        address,
        address + ".",
        str(value),
        hex(value),
        hex(value).upper().replace("X", "x"),
        "0" + format(value, "o"),
        "0x" + format(value, "08x"),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"0x{a:x}.{b}.{c}.{d}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}",
        f"0x{a:x}.{(b << 16) | (c << 8) | d}",
        f"0{a:o}.0x{(b << 16) | (c << 8) | d:x}",
        f"000{a}.{b}.{c}.{d}" if a < 8 else f"0{a:o}.{b}.{c}.{d}",
        f"{a}.{b}.{c}.{d}".translate({ord(ch): ord(ch) + 0xFEE0 for ch in "0123456789."}),
        f"{a}\u3002{b}\u3002{c}\u3002{d}",
        f"[::ffff:{address}]",
        f"[::ffff:{(value >> 16):x}:{value & 0xFFFF:x}]",
        f"[0:0:0:0:0:FFFF:{address}]",
        f"[64:ff9b::{address}]",
        f"[64:ff9b::{(value >> 16):x}:{value & 0xFFFF:x}]",
    }
    return sorted(forms)


FORBIDDEN_TARGETS = ["127.0.0.1", "169.254.169.254", "10.0.0.1", "0.0.0.0", "127.255.255.254"]


@pytest.mark.parametrize(
    "host",
    sorted({form for target in FORBIDDEN_TARGETS for form in _spellings_of_ipv4(target)}),
)
def test_private_addresses_are_denied_in_every_spelling(
    deny_list: CompiledPolicy, host: str
) -> None:
    assert _outcome(deny_list, _url(f"http://{host}/latest/meta-data/")) in ("deny", "invalid")
    bare = host[1:-1] if host.startswith("[") else host
    assert _outcome(deny_list, {"host": bare, "port": 80}) in ("deny", "invalid")


@pytest.mark.parametrize(
    "host",
    [
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::0001]",
        "[fe80::1]",
        "[FE80::1]",
        "[fe80::1%25eth0]",
        "[fe80::1%eth0]",
        "[::127.0.0.1]",  # IPv4-compatible: refused, not guessed
        "[::7f00:1]",
        "[::169.254.169.254]",
        "localhost",
        "LOCALHOST.",
        "localhost.",
        "metadata.google.internal.",
        "METADATA.GOOGLE.INTERNAL",
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # fullwidth localhost
        "127.0.0.1.",
        "127.1",
        "0",
        "0x0",
        "0177.1",
        "2130706433.",
    ],
)
def test_loopback_and_metadata_hosts_are_denied(deny_list: CompiledPolicy, host: str) -> None:
    assert _outcome(deny_list, _url(f"http://{host}/")) in ("deny", "invalid")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:80@127.0.0.1/",
        "http://example.com@169.254.169.254/latest/meta-data/",
        "http://example.com:80@2130706433/",
        "http://example.com@[::ffff:127.0.0.1]/",
        "http://example.com@127.0.0.1#@example.com",
        "http://127.0.0.1\\@example.com/",
        "http://127.0.0.1%2F@example.com/",  # ambiguous userinfo: refused
        "http://127.0.0.1:80\\@example.com/",
        "http://127.0.0.1 @example.com/",
        "http://127.0.0.1\t@example.com/",
        "http://0x7f.1/",
        "http://0x7f.0x0.0x0.0x1/",
        "http://017700000001/",
        "http://127.0.0.1./",
        "http://127.0.0.1../",
        "http://127.000.000.001/",
        "http://127.0.0.1:80/",
        "http://127.0.0.1:00080/",
        "http://[::ffff:7f00:1]:8080/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://%31%32%37.0.0.1/",
        "http://127.0.0.%31/",
        "http://127%2E0%2E0%2E1/",
        "http://1.2.3.4.127.0.0.1/",
    ],
)
def test_userinfo_and_encoding_tricks_on_private_addresses(
    deny_list: CompiledPolicy, url: str
) -> None:
    assert _outcome(deny_list, _url(url)) in ("deny", "invalid")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/",
        "https://127.0.0.1.example.com/",  # a name, not an address
        "https://0x7f.example.com/",
        "https://example.com/http://127.0.0.1/",
        "https://example.com/?next=http://169.254.169.254/",
        "https://127.0.0.1@example.com/",  # userinfo is not the host
        "http://[2001:db8::1]/",
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::8.8.8.8]/",
        "http://134744072/",  # 8.8.8.8
    ],
)
def test_public_hosts_stay_allowed(deny_list: CompiledPolicy, url: str) -> None:
    assert _outcome(deny_list, _url(url)) == "allow"


def test_mapped_addresses_are_recorded_with_their_ipv6_spelling(deny_list: CompiledPolicy) -> None:
    verdict = evaluate_request(
        deny_list, {"action": "network.request", "url": "http://[::ffff:169.254.169.254]/"}
    )
    assert (verdict.decision, verdict.rule) == ("deny", "no-private")
    assert verdict.request["host"] == "::ffff:a9fe:a9fe"


def test_rules_written_in_odd_spellings_match_canonical_requests() -> None:
    policy = _load(
        """
        version: 1
        rules:
          - action: network.request
            host: {in: ["2130706433", "API.OpenAI.com.", "b\u00fccher.de", "[::FFFF:a9fe:a9fe]"]}
            decision: deny
          - action: network.request
            host: {glob: "**"}
            decision: allow
        """
    )
    for url in (
        "http://127.0.0.1/",
        "http://0x7f.1/",
        "https://api.openai.com/",
        "https://xn--bcher-kva.de/",
        "https://B\u00dcCHER.de./",
        "http://[::ffff:169.254.169.254]/",
    ):
        assert _outcome(policy, _url(url)) == "deny", url
    assert _outcome(policy, _url("https://example.com/")) == "allow"


# ------------------------------------------------------------------ unspecified addresses

# Linux sends a connect() to 0.0.0.0 to 127.0.0.1, and one to :: to ::1.
UNSPECIFIED = [
    "http://0.0.0.0/",
    "http://0/",
    "http://0x0:8080/",
    "http://0.0/",
    "http://000.0.0.0./",
    "http://[::]/",
    "http://[0:0:0:0:0:0:0:0]/",
    "http://[::ffff:0.0.0.0]/",
    "http://[64:ff9b::]/",
]
LOOPBACK_POLICIES = {
    "cidr-deny": """
        version: 1
        rules:
          - {id: loopback, action: network.request, host: {cidr: [127.0.0.0/8, "::1/128"]}, decision: deny}
          - {id: rest, action: network.request, host: {glob: "**"}, decision: allow}
        """,
    "ip-deny": """
        version: 1
        rules:
          - {id: loopback, action: network.request, host: [127.0.0.1, "::1"], decision: deny}
          - {id: rest, action: network.request, host: {glob: "**"}, decision: allow}
        """,
    "not-cidr-allow": """
        version: 1
        rules:
          - {id: rest, action: network.request, host: {not: {cidr: [127.0.0.0/8, "::1/128"]}}, decision: allow}
        """,
}


@pytest.mark.parametrize("name", sorted(LOOPBACK_POLICIES))
@pytest.mark.parametrize("url", UNSPECIFIED)
def test_unspecified_addresses_match_as_the_loopback(name: str, url: str) -> None:
    policy = _load(LOOPBACK_POLICIES[name])
    assert _outcome(policy, _url(url)) == "deny", url
    host = parse_url(url).host
    assert _outcome(policy, {"host": host, "port": 80}) == "deny", host
    assert _outcome(policy, _url("http://8.8.8.8/")) == "allow"


def test_a_rule_for_an_unspecified_address_does_not_cover_the_loopback() -> None:
    policy = _load(
        """
        version: 1
        rules:
          - {id: any, action: network.request, host: [0.0.0.0, "::"], decision: deny}
          - {id: rest, action: network.request, host: {glob: "**"}, decision: allow}
        """
    )
    assert _outcome(policy, _url("http://0/")) == "deny"
    assert _outcome(policy, _url("http://[::]/")) == "deny"
    assert _outcome(policy, _url("http://127.0.0.1/")) == "allow"
    assert _outcome(policy, _url("http://[::1]/")) == "allow"


def test_each_loopback_family_is_denied_by_its_own_rule() -> None:
    # docs/policy.md said a deny of 127.0.0.0/8 "or" ::1/128 catches both unspecified
    # addresses (rt24 network F2); each catches its own family, hence the advice to deny both.
    policy = _load(
        """
        version: 1
        rules:
          - {id: v4, action: network.request, host: {cidr: 127.0.0.0/8}, decision: deny}
          - {id: rest, action: network.request, host: {glob: "**"}, decision: allow}
        """
    )
    assert _outcome(policy, _url("http://0.0.0.0/")) == "deny"
    assert _outcome(policy, _url("http://[::]:8080/")) == "allow"
    assert _outcome(policy, _url("http://[::1]:8080/")) == "allow"


# ------------------------------------------------------------------ paths in URLs


def test_dot_segments_cannot_escape_an_allowed_path_prefix() -> None:
    policy = _load(
        """
        version: 1
        rules:
          - action: network.request
            host: api.example.com
            path: {glob: "/public/**"}
            decision: allow
        """
    )
    allowed = ["https://api.example.com/public/x", "https://api.example.com/public/a.b/..c"]
    refused = [
        "https://api.example.com/public/../admin",
        "https://api.example.com/public/%2e%2e/admin",
        "https://api.example.com/public/%2E%2E/admin",
        "https://api.example.com/public/.%2e/admin",
        "https://api.example.com/public/..%2fadmin",
        "https://api.example.com/public/..%5cadmin",
        "https://api.example.com/public/..;/admin",
        "https://api.example.com/public/%252e%252e/admin",
        "https://api.example.com/public/..%252fadmin",
        "https://api.example.com/public//../../admin",
        "https://api.example.com/public\\..\\admin",
        "https://api.example.com/%70ublic/../admin",
        "https://api.example.com/admin#/public/x",
        "https://api.example.com/admin?/public/x",
    ]
    for url in allowed:
        assert _outcome(policy, _url(url)) == "allow", url
    for url in refused:
        assert _outcome(policy, _url(url)) in ("deny", "invalid"), url


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/admin/../public/x",
        "https://api.example.com/admin/%2e%2e/public/x",
        "https://api.example.com/admin/.%2E/public/x",
        "https://api.example.com/admin/%2E./public/x",
        "https://api.example.com/admin/./../public/x",
        "https://api.example.com/public/./x",
    ],
)
def test_dot_segments_cannot_enter_an_allowed_path_from_a_denied_one(url: str) -> None:
    # Python's urllib (the Python client's fetch) sends "/admin/../public/x" as written,
    # and Flask and Starlette route it to their /admin/ handler, while curl and browsers
    # resolve it to /public/x: no one reading is safe to decide, so the URL is refused.
    allow_list = _load(
        """
        version: 1
        rules:
          - {action: network.request, host: api.example.com, path: {glob: "/public/**"}, decision: allow}
        """
    )
    deny_list = _load(
        """
        version: 1
        defaultAction: allow
        rules:
          - {action: network.request, path: {glob: "/admin/**"}, decision: deny}
        """
    )
    assert _outcome(allow_list, _url(url)) == "invalid"
    assert _outcome(deny_list, _url(url)) == "invalid"


def test_encoded_unreserved_characters_cannot_dodge_a_deny() -> None:
    policy = _load(
        """
        version: 1
        rules:
          - action: network.request
            host: api.example.com
            path: {glob: "/admin/**"}
            decision: deny
          - action: network.request
            host: api.example.com
            decision: allow
        """
    )
    for url in (
        "https://api.example.com/admin/users",
        "https://api.example.com/%61dmin/users",
        "https://api.example.com/%61%64%6D%69%6E/users",
    ):
        assert _outcome(policy, _url(url)) == "deny", url
    for url in (
        "https://api.example.com/x/../admin/users",
        "https://api.example.com/./admin/users",
        "https://api.example.com/admin/./users",
    ):
        assert _outcome(policy, _url(url)) == "invalid", url


# Rule paths and URL paths are compared in one form, that of file paths: "//" merged
# (as nginx and others do) and a trailing "/" dropped, on both sides.
URL_PATH_DENY = """
version: 1
rules:
  - {id: admin-dir, action: network.request, path: "/admin/", decision: deny}
  - {id: admin-tree, action: network.request, path: {glob: "/admin/**"}, decision: deny}
  - {id: upload, action: network.request, path: {glob: "/upload/*/"}, decision: deny}
  - {id: listed, action: network.request, path: {in: ["/internal/", "/debug//pprof"]}, decision: deny}
  - {id: rest, action: network.request, decision: allow}
"""
URL_PATH_ALLOW = """
version: 1
rules:
  - {id: models, action: network.request, path: "/v1/models/", decision: allow}
  - {id: public, action: network.request, path: {glob: "/public/*/"}, decision: allow}
  - {id: x, action: network.request, path: {glob: "/*/x"}, decision: allow}
"""


@pytest.mark.parametrize(
    ("policy", "url", "decision", "rule"),
    [
        ("deny-rules", "http://a.com/admin/", "deny", "admin-dir"),
        ("deny-rules", "http://a.com/admin", "deny", "admin-dir"),
        ("deny-rules", "http://a.com//admin", "deny", "admin-dir"),
        ("deny-rules", "http://a.com//admin/x", "deny", "admin-tree"),
        ("deny-rules", "http://a.com/admin//x", "deny", "admin-tree"),
        ("deny-rules", "http://a.com/admin/x/", "deny", "admin-tree"),
        ("deny-rules", "http://a.com/upload/x/", "deny", "upload"),
        ("deny-rules", "http://a.com/upload//x", "deny", "upload"),
        ("deny-rules", "http://a.com/internal/", "deny", "listed"),
        ("deny-rules", "http://a.com/debug/pprof/", "deny", "listed"),
        ("deny-rules", "http://a.com/public/", "allow", "rest"),
        ("deny-rules", "http://a.com/administrator/", "allow", "rest"),
        ("deny-rules", "http://a.com/upload/x/y", "allow", "rest"),
        ("allow-rules", "http://a.com/v1/models", "allow", "models"),
        ("allow-rules", "http://a.com/v1/models/", "allow", "models"),
        ("allow-rules", "http://a.com//v1//models//", "allow", "models"),
        ("allow-rules", "http://a.com/v1/models/x", "deny", None),
        ("allow-rules", "http://a.com/public/a/", "allow", "public"),
        ("allow-rules", "http://a.com/public//a", "allow", "public"),
        ("allow-rules", "http://a.com/public/a/b", "deny", None),
        ("allow-rules", "http://a.com/a/x", "allow", "x"),
        ("allow-rules", "http://a.com//x", "deny", None),  # "/x" to a server merging "//"
    ],
)
def test_url_paths_and_rule_paths_are_compared_in_one_form(
    policy: str, url: str, decision: str, rule: str | None
) -> None:
    text = URL_PATH_DENY if policy == "deny-rules" else URL_PATH_ALLOW
    verdict = evaluate_request(_load(text), {"action": "network.request", "url": url})
    assert (verdict.decision, verdict.rule) == (decision, rule)


AS_SENT = """
version: 1
rules:
  - {id: admin, action: network.request, path: {startsWith: "/admin/"}, decision: deny}
  - {id: private, action: network.request, path: {glob: "/private/*"}, decision: deny}
  - {id: secret, action: network.request, path: {regex: "/secret/.*"}, decision: deny}
  - {id: ops, action: network.request, path: {startsWith: "/ops/"}, decision: require_approval}
  - {id: rest, action: network.request, decision: allow}
"""


@pytest.mark.parametrize(
    ("url", "decision", "rule"),
    [
        # Matched as "/admin" etc. alone, these escaped rules written for the path as
        # sent; the path as sent is decided too, for deny and approval rules.
        ("http://a.com/admin/", "deny", "admin"),
        ("http://a.com/private/", "deny", "private"),
        ("http://a.com/secret/", "deny", "secret"),
        ("http://a.com/ops/", "require_approval", "ops"),
        ("http://a.com/admin/x", "deny", "admin"),
        ("http://a.com/admin", "allow", "rest"),
        ("http://a.com/administrator/", "allow", "rest"),
    ],
)
def test_deny_and_approval_rules_also_see_the_path_as_sent(
    url: str, decision: str, rule: str
) -> None:
    verdict = evaluate_request(_load(AS_SENT), {"action": "network.request", "url": url})
    assert (verdict.decision, verdict.rule) == (decision, rule)


def test_the_url_is_recorded_as_sent_and_the_path_as_matched() -> None:
    verdict = evaluate_request(
        _load(URL_PATH_DENY), {"action": "network.request", "url": "http://a.com//admin/x/?q=1"}
    )
    assert verdict.request["url"] == "http://a.com//admin/x/?q=1"
    assert verdict.request["path"] == "/admin/x"


# A server may route the path decoded (nginx decodes %XX, %2F included, before matching
# locations) or without ";" path parameters (Tomcat, Spring, Jetty): the request is also
# decided on those forms and the strictest decision wins, as with realPath.
SERVER_FORMS_DENY = """
version: 1
rules:
  - {id: admin, action: network.request, path: {glob: "/admin/**"}, decision: deny}
  - {id: rest, action: network.request, decision: allow}
"""
SERVER_FORMS_ALLOW = """
version: 1
rules:
  - {id: files, action: network.request, path: {glob: "/files/**"}, decision: allow}
  - {id: status, action: network.request, path: {glob: "/api/*/status"}, decision: allow}
  - {id: api, action: network.request, path: {glob: "/api/**"}, method: POST, decision: allow}
"""


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://a.com/admin%2Fx", "admin"),  # the reviewer's cases
        ("http://a.com/%2Fadmin/x", "admin"),
        ("http://a.com/admin;x/y", "admin"),
        ("http://a.com/admin%2fx", "admin"),
        ("http://a.com/admin;jsessionid=1/x", "admin"),
        ("http://a.com/admin;/x", "admin"),
        ("http://a.com/;x/admin/y", "admin"),
        ("http://a.com/admin%3Bx/y", "admin"),  # decode, then drop parameters
        ("http://a.com/admin%5Cx", "admin"),  # a separator to Windows servers
        ("http://a.com/x%2F..%2F/admin/y", None),  # refused: dot segment in disguise
        ("http://a.com/adm%69n%2Fx", "admin"),
        # A decoding server reads "/admin/", which "/admin/**" covers (as sent it is denied).
        ("http://a.com/admin%2F", "admin"),
        ("http://a.com/admin/", "admin"),
        ("http://a.com//admin/", "admin"),  # "/admin/" to a server merging slashes
        ("http://a.com//admin//", "admin"),
        ("http://a.com/admin;x/", "admin"),  # "/admin/" without its parameter
        ("http://a.com/admin", None),  # "/admin" is not below "/admin/**"
        ("http://a.com//admin", None),
        ("http://a.com/admin;x", None),
    ],
)
def test_encoded_slashes_and_path_parameters_cannot_dodge_a_deny(url: str, rule: str) -> None:
    policy = _load(SERVER_FORMS_DENY)
    try:
        verdict = evaluate_request(policy, {"action": "network.request", "url": url})
    except RequestError:
        assert rule is None, url
        return
    if rule is None:
        assert verdict.decision == "allow", url
    else:
        assert (verdict.decision, verdict.rule) == ("deny", rule), url


@pytest.mark.parametrize(
    ("url", "method", "decision"),
    [
        # ordinary URLs: one form, decided as before
        ("http://a.com/files/a/b", "GET", "allow"),
        ("http://a.com/files", "GET", "deny"),
        ("http://a.com/api/v1/status", "GET", "allow"),
        ("http://a.com/api/v1/x/status", "GET", "deny"),
        # harmless escapes and parameters: every form is allowed
        ("http://a.com/files/a%20b", "GET", "allow"),
        ("http://a.com/files/r%C3%A9sum%C3%A9.pdf", "GET", "allow"),
        ("http://a.com/files/a%2Fb", "GET", "allow"),
        ("http://a.com/files/a;v=1/b", "GET", "allow"),
        ("http://a.com/files/100%25", "GET", "allow"),
        ("http://a.com/api/caf%C3%A9/status", "GET", "allow"),
        ("http://a.com/api/x%2Fy;z", "POST", "allow"),
        # a decoded form outside what is allowed
        ("http://a.com/api/a%2Fb/status", "GET", "deny"),  # /api/a/b/status
        ("http://a.com/api/v1;x/status", "GET", "allow"),  # /api/v1/status, both allowed
        ("http://a.com/api/v1/status;x/y", "GET", "deny"),
        ("http://a.com/files%2F..%2Fadmin", "GET", "invalid"),
        ("http://a.com/api/%2e%2e%2fadmin", "POST", "invalid"),
        ("http://a.com/api/..%2Fadmin", "POST", "invalid"),
        ("http://a.com/api/..%3B/admin", "POST", "invalid"),  # /admin once ";" is dropped
        ("http://a.com/api/.%3Bx/../admin", "POST", "invalid"),  # "." to Tomcat
        ("http://a.com/api/;x/../../admin", "POST", "invalid"),  # "/admin" merged
        ("http://a.com/api/v1/a%2Fb/../status", "GET", "invalid"),  # /api/v1/a/status
        ("http://a.com/api/x;a%2Fb/y", "POST", "invalid"),  # where does ";a%2Fb" end?
        ("http://a.com/files/a%00.txt", "GET", "invalid"),  # control characters
        ("http://a.com/files/a%0Ab", "GET", "invalid"),
        ("http://a.com/files/a%7F", "GET", "invalid"),
        ("http://a.com/files/a%250A", "GET", "allow"),  # decoded once: a literal "%0A"
    ],
)
def test_allow_rules_see_every_form_a_server_may_route(
    url: str, method: str, decision: str
) -> None:
    assert _outcome(_load(SERVER_FORMS_ALLOW), {"url": url, "method": method}) == decision


@pytest.mark.parametrize(
    ("url", "path", "forms"),
    [
        ("http://a.com/admin%2Fx", "/admin%2Fx", {"decodedPath": "/admin/x"}),
        ("http://a.com/admin;x/y", "/admin;x/y", {"strippedPath": "/admin/y"}),
        (
            "http://a.com/a%20b;v=1/c",
            "/a%20b;v=1/c",
            {"decodedPath": "/a b;v=1/c", "strippedPath": "/a b/c"},
        ),
        ("http://a.com/a%3Bb", "/a%3Bb", {"decodedPath": "/a;b", "strippedPath": "/a"}),
        ("http://a.com/a%2541", "/a%2541", {"decodedPath": "/a%41"}),
        ("http://a.com/a%FF", "/a%FF", {}),  # not UTF-8: stays escaped, the same form
        ("http://a.com/a/b", "/a/b", {}),
    ],
)
def test_the_forms_evaluated_are_recorded(url: str, path: str, forms: dict[str, str]) -> None:
    verdict = evaluate_request(_load(SERVER_FORMS_DENY), {"action": "network.request", "url": url})
    assert {k: v for k, v in verdict.request.items() if k.endswith("Path")} == forms
    assert verdict.request["path"] == path
    assert [d.subject.fields["path"] for d in verdict.decisions] == [
        (path,),
        *((form,) for form in dict.fromkeys(forms.values())),
    ]


def test_a_form_ending_in_a_slash_is_decided_as_a_server_reads_it() -> None:
    """A decoding server reads "/admin%2Fx/" as "/admin/x/": decided after the decoded form
    (whose reason wins), recorded only in ``url``, for the deny rules alone."""
    verdict = evaluate_request(
        _load(SERVER_FORMS_DENY), {"action": "network.request", "url": "http://a.com/admin%2Fx/"}
    )
    assert (verdict.decision, verdict.rule) == ("deny", "admin")
    assert verdict.reason == "decoded path /admin/x: rule admin denies network.request of a.com:80"
    assert verdict.request["url"] == "http://a.com/admin%2Fx/"
    assert {k: v for k, v in verdict.request.items() if k.endswith("Path")} == {
        "decodedPath": "/admin/x"
    }
    # The form read with its "/" is a view of the first subject, not a subject of its
    # own: its deny counts for that subject, whose own decision is kept.
    assert [(d.subject.label, d.subject.fields["path"]) for d in verdict.decisions] == [
        ("", ("/admin%2Fx",)),
        ("decoded path /admin/x", ("/admin/x",)),
    ]


def test_the_deciding_form_is_named_in_the_reason() -> None:
    verdict = evaluate_request(
        _load(SERVER_FORMS_DENY), {"action": "network.request", "url": "http://a.com/admin%2Fx"}
    )
    assert verdict.reason == "decoded path /admin/x: rule admin denies network.request of a.com:80"


# ------------------------------------------------------------------ differential check


def _differential_corpus() -> list[str]:
    """URLs we accept, hand-picked and generated, each to be re-read by Node's URL."""
    rng = random.Random(7)
    hosts = [
        "example.com",
        "EXAMPLE.com.",
        "b\u00fccher.de",
        "fa\u00df.de",
        "\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
        "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
        "api\u3002example\u3002com",
        "exam\u00adple.com",
        "xn--bcher-kva.de",
        "a_b.example",
        "0x7f.example",
        "123.example",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::1.2.3.4]",
        "[2001:DB8:0:0:1:0:0:1]",
        "[1:0:1:1:1:1:1:1]",
    ]
    for _ in range(400):
        value = rng.getrandbits(32)
        octets = [(value >> shift) & 0xFF for shift in (24, 16, 8, 0)]
        count = rng.randint(1, 4)
        parts = [*octets[: count - 1], value & ((1 << (8 * (5 - count))) - 1)]
        spelt = []
        for part in parts:
            style = rng.randrange(3)
            spelt.append(
                str(part) if style == 0 else (f"0{part:o}" if style == 1 else f"0x{part:x}")
            )
        hosts.append(".".join(spelt) + rng.choice(["", "."]))
    for _ in range(100):
        hosts.append(f"[{ipaddress.IPv6Address(rng.getrandbits(128)).exploded}]")
    paths = ["", "/", "/a/b", "/a/...", "/.a/..b/.c", "/a//b", "/ü/x?q=1"]
    prefixes = ["", "user@", "user:pw@", "example.com:80@"]
    corpus = []
    for host in hosts:
        scheme = rng.choice(["http", "https", "ws", "wss", "HTTP"])
        port = rng.choice(["", ":1", ":80", ":443", ":8080", ":65535", ":0080"])
        corpus.append(f"{scheme}://{rng.choice(prefixes)}{host}{port}{rng.choice(paths)}")
    return corpus


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js for a WHATWG parser")
def test_whatwg_parser_agrees_on_every_url_we_accept() -> None:
    corpus = [url for url in _differential_corpus() if _accepts(url)]
    assert len(corpus) > 500
    script = (
        "const urls = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(urls.map(u => {"
        "  try { const x = new URL(u);"
        "    return [x.protocol, x.hostname, x.port, x.pathname]; }"
        "  catch (e) { return null; } })));"
    )
    result = subprocess.run(
        ["node", "-e", script],
        input=json.dumps(corpus),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for url, whatwg in zip(corpus, json.loads(result.stdout), strict=True):
        ours = parse_url(url)
        assert whatwg is not None, f"WHATWG rejects {url!r}, which we accept"
        protocol, hostname, port, pathname = whatwg
        assert protocol == ours.scheme + ":", url
        # WHATWG keeps a trailing dot on names; we drop one (documented).
        assert hostname.strip("[]").removesuffix(".") == ours.host, url
        assert (int(port) if port else {"http": 80, "ws": 80}.get(ours.scheme, 443)) == ours.port
        if "%" not in url and url.isascii():
            assert pathname == ours.path, url
        # Our canonical host text is itself a host every parser reads the same way.
        assert canonical_host(hostname.strip("[]")) == ours.host


def _accepts(url: str) -> bool:
    try:
        parse_url(url)
    except RequestError:
        return False
    return True
