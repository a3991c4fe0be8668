"""Host and URL normalisation (CONTRACT 2.2 "URLs/hosts"): the functions, table by table.

The red-team cases (known gate bypasses) and end-to-end policy checks are in
tests/adversarial/test_hosts_urls.py; this file pins down each function's behaviour,
plus hypothesis properties and cross-checks against the C library's inet_aton.
"""

from __future__ import annotations

import ipaddress
import random
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.errors import RequestError
from sidecar.normalise.hosts import (
    InvalidHost,
    ParsedUrl,
    canonical_host,
    canonical_host_affix,
    canonical_host_pattern,
    default_port,
    host_forms,
    parse_url,
)
from sidecar.normalise.urls import server_paths


def _fw(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01-U+FF5E), which UTS-46 maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ---------------------------------------------------------------- canonical_host


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        # plain names, case, one trailing dot
        ("example.com", "example.com"),
        ("EXAMPLE.COM", "example.com"),
        ("Api.Example.Com", "api.example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("LOCALHOST.", "localhost"),
        ("a", "a"),
        ("web-1.apps-prod.svc.cluster.local", "web-1.apps-prod.svc.cluster.local"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("123.example.com", "123.example.com"),
        ("example.0x7g", "example.0x7g"),  # not a hex number, so a name
        ("1e100.net", "1e100.net"),
        ("0x7f.example", "0x7f.example"),  # only the last label decides "is an address"
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        # IPv4, dotted quad already
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("169.254.169.254.", "169.254.169.254"),
        # IPv4, every inet_aton form
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("0x7F.0X1", "127.0.0.1"),
        ("127.0.0x1", "127.0.0.1"),
        ("127.0x000001", "127.0.0.1"),
        ("00000000000000000177.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("0x0", "0.0.0.0"),
        ("0x00000000000000000000a9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("169.16689662", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe.", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("192.168.1", "192.168.0.1"),
        ("4294967295", "255.255.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
        # IPv6, with and without brackets, compressed lower-case hex
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("[0000:0000:0000:0000:0000:0000:0000:0001]", "::1"),
        ("::", "::"),
        ("[::]", "::"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # first longest run wins
        ("2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0"),
        ("2001:0db8:0000:0001:0000:0000:0000:0001", "2001:db8:0:1::1"),
        ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"),  # a single zero group is not compressed
        ("fe80::1", "fe80::1"),
        ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
        # IPv4-mapped and NAT64 keep their IPv6 spelling (host_forms adds the IPv4)
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[::FFFF:7F00:1]", "::ffff:7f00:1"),
        ("0:0:0:0:0:ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
        ("64:ff9b::169.254.169.254", "64:ff9b::a9fe:a9fe"),
        ("[64:FF9B:0:0:0:0:7f00:1]", "64:ff9b::7f00:1"),
        # UTS-46: fullwidth, ideographic full stop, ignorables, IDNA to A-labels
        (_fw("EXAMPLE.com"), "example.com"),
        (_fw("example") + ".com", "example.com"),
        ("api。example。com", "api.example.com"),
        ("api\uff0eexample\uff61com", "api.example.com"),  # U+FF0E, U+FF61
        ("exam\u00adple.com", "example.com"),  # soft hyphen is ignored
        ("exam\u200bple.com", "example.com"),  # zero-width space is ignored
        (_fw("127.0.0.1"), "127.0.0.1"),  # mapping happens before IPv4 detection
        ("①②⑦.0.0.1", "127.0.0.1"),  # circled digits map to digits
        ("\u212fxample.com", "example.com"),  # SCRIPT SMALL E
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("bu\u0308cher.de", "xn--bcher-kva.de"),  # NFC
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
        ("xn--strae-oqa.de", "xn--strae-oqa.de"),  # straße as an A-label is unambiguous
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("mañana.com.", "xn--maana-pta.com"),
    ],
)
def test_canonical_host_forms(raw: str, canonical: str) -> None:
    assert canonical_host(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        (".", "empty"),
        ("example.com..", "empty label"),
        (".example.com", "empty label"),
        ("a..b", "empty label"),
        (" example.com", "whitespace"),
        ("example.com ", "whitespace"),
        ("exa mple.com", "whitespace"),
        ("example.com\t", "whitespace"),
        ("example.com\n", "whitespace"),
        ("example.com\x00", "control"),
        ("example.com\x7f", "control"),
        ("exa\x1bmple.com", "control"),
        ("user@example.com", "'@'"),
        ("allowed.com:80@127.0.0.1", "'@'"),
        ("example.com/", "not a URL"),
        ("example.com/path", "not a URL"),
        ("example.com?x", "not a URL"),
        ("example.com#x", "not a URL"),
        ("https://example.com", "not a URL"),
        ("127.0.0.1\\@evil.com", "'@'"),
        ("example.com\\", "'\\'"),
        ("%65xample.com", "'%'"),
        ("127.0.0.%31", "'%'"),
        ("example.com:443", "port"),
        ("127.0.0.1:80", "port"),
        ("[::1]:80", "nothing after"),
        ("[::1", "nothing after"),
        ("[127.0.0.1]", "IPv6"),
        ("[example.com]", "IPv6"),
        ("[]", "IPv6"),
        ("::1]", "IPv6"),
        ("a]b.com", "brackets"),
        ("fe80::1%eth0", "zone id"),
        ("[fe80::1%25eth0]", "zone id"),
        ("fe80::1%1", "zone id"),
        (":::1", "IPv6"),
        ("1:2:3:4:5:6:7:8:9", "IPv6"),
        ("::ffff:127.0.0.01", "IPv6"),  # no leading zeros inside an embedded IPv4
        ("::ffff:127.1", "IPv6"),
        ("12345::1", "IPv6"),
        ("::g", "IPv6"),
        ("::7f00:1", "IPv4-compatible"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("::169.254.169.254", "IPv4-compatible"),
        # ends in a number but is no inet_aton address
        ("1.2.3.4.5", "more than 4 parts"),
        ("256.0.0.1", "out of range"),
        ("1.256.0.1", "out of range"),
        ("4294967296", "out of range"),
        ("1.16777216", "out of range"),
        ("1.2.65536", "out of range"),
        ("08.1.1.1", "IPv4"),
        ("09", "IPv4"),
        ("0x", "IPv4"),  # WHATWG reads 0, inet_aton refuses: the stricter wins
        ("0x.1", "IPv4"),
        ("foo.123", "IPv4"),
        ("example.com.1", "IPv4"),
        ("foo.0x", "IPv4"),
        ("foo.0x1f", "IPv4"),
        ("1.2.3.4..", "empty label"),
        ("1..2", "empty label"),
        ("99999999999999999999999999999999", "out of range"),
        # characters no host has
        ("exa_mple!.com", "'!'"),
        ("a*b.com", "'*'"),
        ("a,b.com", "','"),
        ("a;b.com", "';'"),
        ("a'b.com", '"\'"'),
        ('a"b.com', "'\"'"),
        ("a<b.com", "'<'"),
        ("a|b.com", "'|'"),
        ("a^b.com", "'^'"),
        ("a~b.com", "'~'"),
        ("a+b.com", "'+'"),
        ("a=b.com", "'='"),
        ("a&b.com", "'&'"),
        ("a$b.com", "'$'"),
        ("a(b).com", "'('"),
        ("a{b}.com", "'{'"),
        ("a`b.com", "'`'"),
        # Unicode that maps onto forbidden ASCII is rejected the same way
        (_fw("evil.com@good.com"), "'@'"),
        (_fw("evil.com/good.com"), "not a URL"),
        (_fw("evil.com\\good.com"), "'\\'"),
        (_fw("evil.com:443"), "port"),
        (_fw("%65xample.com"), "'%'"),
        ("exa\u3000mple.com", "whitespace"),  # ideographic space
        ("exa\u00a0mple.com", "whitespace"),  # no-break space
        ("⑴.com", "'('"),
        # invalid IDNA
        ("exa\u202emple.com", "internationalised"),  # RIGHT-TO-LEFT OVERRIDE
        ("exa\u2028mple.com", "internationalised"),  # LINE SEPARATOR
        # UTS-46 deviations: IDNA 2008 keeps them, curl, Node and urllib map them away,
        # so the gate and the client would name different hosts (found in review).
        ("faß.de", "'ß' (U+00DF"),
        ("Straße.de", "'ß' (U+00DF"),
        ("\u1e9em.us-east-1.amazonaws.com", "'ß' (U+00DF"),  # capital sharp s maps to ß
        ("ς.gr", "'ς' (U+03C2)"),
        ("a\u200db.com", "ZERO WIDTH JOINER"),
        ("\u0915\u094d\u200d.com", "ZERO WIDTH JOINER"),  # even where IDNA 2008 allows it
        ("\u0915\u094d\u200c.com", "ZERO WIDTH NON-JOINER"),
        ("i❤.ws", "internationalised"),  # emoji are not IDNA 2008
        ("\u0301a.com", "internationalised"),  # leading combining mark
        ("-bücher.de", "internationalised"),  # hyphen rules apply to U-labels
        ("bü_cher.de", "internationalised"),
        ("xn--a.com", "punycode"),
        ("xn--.com", "punycode"),
        ("xn--abc-.com", "punycode"),
        ("xn--ls8h.la", "punycode"),  # decodes to an emoji
        ("xn--example-.com", "punycode"),
        ("xn--zz.com", "punycode"),
        ("a" * 64 + ".com", "longer than 63"),
        (".".join(["a" * 60] * 5), "longer than 253"),
        ("a." * 600, "longer than 1024"),
    ],
)
def test_canonical_host_rejects(raw: str, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        canonical_host(raw, field="host")
    assert caught.value.field == "host"
    assert problem.lower() in caught.value.message.lower()


def test_canonical_host_names_the_field() -> None:
    with pytest.raises(RequestError) as caught:
        canonical_host("a b", field="k8s.host")
    assert caught.value.field == "k8s.host"


def test_canonical_host_rejects_non_strings() -> None:
    with pytest.raises(RequestError, match="string"):
        canonical_host(2130706433)  # type: ignore[arg-type]


def test_canonical_host_rejects_non_canonical_punycode() -> None:
    # "xn--Bcher-kva" is fine (case folds), but an xn-- label that decodes to pure
    # ASCII has another, shorter spelling: refused.
    with pytest.raises(RequestError, match="punycode"):
        canonical_host("xn--abc-.com")
    assert canonical_host("xn--Bcher-kva.de") == "xn--bcher-kva.de"


def test_inet_aton_forms_agree_with_the_c_library() -> None:
    """Every accepted IPv4 spelling reads the same as the C library's inet_aton."""
    rng = random.Random(20260101)
    for _ in range(3000):
        value = rng.getrandbits(32)
        text = _random_inet_aton_form(value, rng)
        canonical = canonical_host(text)
        assert canonical == str(ipaddress.IPv4Address(value)), text
        assert socket.inet_aton(text) == ipaddress.IPv4Address(value).packed, text


def _random_inet_aton_form(value: int, rng: random.Random) -> str:
    """``value`` spelt in 1-4 parts, each part in a random radix."""
    count = rng.randint(1, 4)
    octets = list(value.to_bytes(4, "big"))
    parts = [*octets[: count - 1], int.from_bytes(bytes(octets[count - 1 :]), "big")]
    spelt = []
    for part in parts:
        radix = rng.choice(("dec", "oct", "hex", "HEX"))
        if radix == "dec":
            spelt.append(str(part))
        elif radix == "oct":
            spelt.append("0" + format(part, "o"))
        else:
            spelt.append(("0x" if radix == "hex" else "0X") + format(part, "x"))
    return ".".join(spelt)


@settings(max_examples=1000, deadline=None)
@given(st.integers(min_value=0, max_value=2**128 - 1), st.randoms(use_true_random=False))
def test_ipv6_spellings_canonicalise_to_one_text(value: int, rng: random.Random) -> None:
    address = ipaddress.IPv6Address(value)
    if value >> 32 == 0 and value > 1:
        spellings = [address.exploded]
        for spelling in spellings:
            with pytest.raises(RequestError, match="IPv4-compatible"):
                canonical_host(spelling)
        return
    canonical = canonical_host(address.exploded)
    assert ipaddress.IPv6Address(canonical) == address
    assert canonical == canonical.lower()
    assert ":::" not in canonical and canonical.count("::") <= 1
    assert "." not in canonical  # hex only, never an embedded dotted quad
    if address.ipv4_mapped is None:
        # Python's own RFC 5952 compression agrees (it writes mapped ones differently
        # from 3.13 on, so those are left to the assertions above).
        assert canonical == address.compressed
    for spelling in (
        address.exploded.upper(),
        address.compressed,
        f"[{address.compressed}]",
        f"[{address.exploded}]",
        ":".join(
            group.lstrip("0") or rng.choice(("0", "00", "0000"))
            for group in address.exploded.split(":")
        ),
    ):
        assert canonical_host(spelling) == canonical, spelling


# ---------------------------------------------------------------- host_forms


@pytest.mark.parametrize(
    ("raw", "forms"),
    [
        ("example.com", ("example.com",)),
        ("127.0.0.1", ("127.0.0.1",)),
        ("2130706433", ("127.0.0.1",)),
        ("::1", ("::1",)),
        # the unspecified addresses also match as the loopback a connection reaches
        ("::", ("::", "::1")),
        ("[0::0]", ("::", "::1")),
        ("0.0.0.0", ("0.0.0.0", "127.0.0.1")),
        ("0", ("0.0.0.0", "127.0.0.1")),
        ("0x0", ("0.0.0.0", "127.0.0.1")),
        ("0.0", ("0.0.0.0", "127.0.0.1")),
        ("000.0.00.0", ("0.0.0.0", "127.0.0.1")),
        ("0.0.0.1", ("0.0.0.1",)),  # only the all-zero address is redirected
        ("127.0.0.1", ("127.0.0.1",)),  # one way: the loopback is not also 0.0.0.0
        ("2001:db8::1", ("2001:db8::1",)),
        ("::ffff:127.0.0.1", ("::ffff:7f00:1", "127.0.0.1")),
        ("::ffff:169.254.169.254", ("::ffff:a9fe:a9fe", "169.254.169.254")),
        ("[::ffff:a9fe:a9fe]", ("::ffff:a9fe:a9fe", "169.254.169.254")),
        ("::ffff:0.0.0.0", ("::ffff:0:0", "0.0.0.0", "127.0.0.1")),
        ("::ffff:ffff:ffff", ("::ffff:ffff:ffff", "255.255.255.255")),
        ("64:ff9b::10.0.0.1", ("64:ff9b::a00:1", "10.0.0.1")),
        ("64:ff9b::", ("64:ff9b::", "0.0.0.0", "127.0.0.1")),
        # not translated: other prefixes that merely embed an IPv4 somewhere
        ("64:ff9b:1::a00:1", ("64:ff9b:1::a00:1",)),  # local-use NAT64 (RFC 8215)
        ("2002:7f00:1::1", ("2002:7f00:1::1",)),  # 6to4
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ("2001:0:4136:e378:8000:63bf:3fff:fdd2",)),
        ("::ffff:0:7f00:1", ("::ffff:0:7f00:1",)),  # SIIT "IPv4-translated", not mapped
        ("::1:ffff:7f00:1", ("::1:ffff:7f00:1",)),
    ],
)
def test_host_forms(raw: str, forms: tuple[str, ...]) -> None:
    assert host_forms(canonical_host(raw)) == forms


def test_host_forms_ipv4_form_is_canonical() -> None:
    for raw in ("::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        ipv4 = host_forms(canonical_host(raw))[1]
        assert canonical_host(ipv4) == ipv4


# ---------------------------------------------------------------- default_port


@pytest.mark.parametrize(
    ("scheme", "port"),
    [
        ("http", 80),
        ("https", 443),
        ("ws", 80),
        ("wss", 443),
        ("ftp", 21),
        ("HTTPS", 443),
        ("Http", 80),
        ("ssh", 22),
        ("postgres", 5432),
        ("gopher", None),
        ("file", None),
        ("", None),
        ("https ", None),
    ],
)
def test_default_port(scheme: str, port: int | None) -> None:
    assert default_port(scheme) == port


# ---------------------------------------------------------------- parse_url


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "canonical"),
    [
        (
            "https://api.openai.com/v1/chat/completions",
            "https",
            "api.openai.com",
            443,
            "/v1/chat/completions",
            "https://api.openai.com/v1/chat/completions",
        ),
        ("http://example.com", "http", "example.com", 80, "/", "http://example.com/"),
        ("http://example.com/", "http", "example.com", 80, "/", "http://example.com/"),
        ("http://example.com?", "http", "example.com", 80, "/", "http://example.com/?"),
        ("http://example.com?a=1", "http", "example.com", 80, "/", "http://example.com/?a=1"),
        ("http://example.com#top", "http", "example.com", 80, "/", "http://example.com/"),
        ("HTTPS://EXAMPLE.COM/A/B", "https", "example.com", 443, "/A/B", "https://example.com/A/B"),
        ("https://example.com./x", "https", "example.com", 443, "/x", "https://example.com/x"),
        ("https://example.com:443/x", "https", "example.com", 443, "/x", "https://example.com/x"),
        (
            "https://example.com:8443/x",
            "https",
            "example.com",
            8443,
            "/x",
            "https://example.com:8443/x",
        ),
        ("http://example.com:00080/", "http", "example.com", 80, "/", "http://example.com/"),
        ("http://example.com:443/", "http", "example.com", 443, "/", "http://example.com:443/"),
        ("https://example.com:80/", "https", "example.com", 80, "/", "https://example.com:80/"),
        ("http://example.com:1/", "http", "example.com", 1, "/", "http://example.com:1/"),
        (
            "http://example.com:65535/",
            "http",
            "example.com",
            65535,
            "/",
            "http://example.com:65535/",
        ),
        ("ws://example.com/socket", "ws", "example.com", 80, "/socket", "ws://example.com/socket"),
        (
            "wss://example.com/socket",
            "wss",
            "example.com",
            443,
            "/socket",
            "wss://example.com/socket",
        ),
        (
            "ftp://files.example.com/pub/x.tgz",
            "ftp",
            "files.example.com",
            21,
            "/pub/x.tgz",
            "ftp://files.example.com/pub/x.tgz",
        ),
        ("http://[::1]/", "http", "::1", 80, "/", "http://[::1]/"),
        ("http://[::1]:8080/x", "http", "::1", 8080, "/x", "http://[::1]:8080/x"),
        ("http://[::FFFF:127.0.0.1]/", "http", "::ffff:7f00:1", 80, "/", "http://[::ffff:7f00:1]/"),
        ("http://2130706433/", "http", "127.0.0.1", 80, "/", "http://127.0.0.1/"),
        ("http://0x7f.1:8080", "http", "127.0.0.1", 8080, "/", "http://127.0.0.1:8080/"),
        (
            "http://bücher.de/straße",
            "http",
            "xn--bcher-kva.de",
            80,
            "/stra%C3%9Fe",
            "http://xn--bcher-kva.de/stra%C3%9Fe",
        ),
        (
            "http://" + _fw("EXAMPLE.com") + "/",
            "http",
            "example.com",
            80,
            "/",
            "http://example.com/",
        ),
        # names with dots that are no dot segments
        ("http://h/a/...", "http", "h", 80, "/a/...", "http://h/a/..."),
        ("http://h/a/..b", "http", "h", 80, "/a/..b", "http://h/a/..b"),
        ("http://h/.well-known/x", "http", "h", 80, "/.well-known/x", "http://h/.well-known/x"),
        ("http://h/a//b", "http", "h", 80, "/a//b", "http://h/a//b"),
        # percent-encoding normalised
        ("http://h/%61dmin", "http", "h", 80, "/admin", "http://h/admin"),
        ("http://h/%7e%2D%5f", "http", "h", 80, "/~-_", "http://h/~-_"),
        ("http://h/a%2fb", "http", "h", 80, "/a%2Fb", "http://h/a%2Fb"),
        ("http://h/a%20b", "http", "h", 80, "/a%20b", "http://h/a%20b"),
        ("http://h/a%00b", "http", "h", 80, "/a%00b", "http://h/a%00b"),
        ("http://h/ü", "http", "h", 80, "/%C3%BC", "http://h/%C3%BC"),
        ("http://h/a\u202eb", "http", "h", 80, "/a%E2%80%AEb", "http://h/a%E2%80%AEb"),
        ('http://h/"<>`', "http", "h", 80, "/%22%3C%3E%60", "http://h/%22%3C%3E%60"),
        ("http://h/a;b=c,d|e^f", "http", "h", 80, "/a;b=c,d|e^f", "http://h/a;b=c,d|e^f"),
        # curl's glob characters, encoded: curl sends them as written
        (
            "http://h/%7b..%7d/%5B1-2%5d",
            "http",
            "h",
            80,
            "/%7B..%7D/%5B1-2%5D",
            "http://h/%7B..%7D/%5B1-2%5D",
        ),
        # ... and in the query, where no rule looks and curl's expansion keeps the path
        ("http://h/p?f[x]={y}", "http", "h", 80, "/p", "http://h/p?f[x]={y}"),
        (
            "http://h/p?q=%7e&r=%2b&s=ü&t='",
            "http",
            "h",
            80,
            "/p",
            "http://h/p?q=~&r=%2B&s=%C3%BC&t=%27",
        ),
        ("http://h/p?a=/../b", "http", "h", 80, "/p", "http://h/p?a=/../b"),
        ("http://h/p?#", "http", "h", 80, "/p", "http://h/p?"),
        ("http://h/p#a?b", "http", "h", 80, "/p", "http://h/p"),
        # a group-project id with an encoded slash stays one segment
        (
            "https://gitlab.example.com/api/v4/projects/group%2Fproject",
            "https",
            "gitlab.example.com",
            443,
            "/api/v4/projects/group%2Fproject",
            "https://gitlab.example.com/api/v4/projects/group%2Fproject",
        ),
    ],
)
def test_parse_url(url: str, scheme: str, host: str, port: int, path: str, canonical: str) -> None:
    parsed = parse_url(url)
    assert parsed == ParsedUrl(scheme, host, port, path, canonical, had_userinfo=False)


@pytest.mark.parametrize(
    ("url", "host", "port", "canonical"),
    [
        ("https://user:secret@example.com/x", "example.com", 443, "https://example.com/x"),
        ("https://token@github.com/o/r.git", "github.com", 443, "https://github.com/o/r.git"),
        ("http://allowed.com:80@127.0.0.1", "127.0.0.1", 80, "http://127.0.0.1/"),
        ("http://allowed.com@127.0.0.1:8080/", "127.0.0.1", 8080, "http://127.0.0.1:8080/"),
        ("http://u:p%40ss@h.com/", "h.com", 80, "http://h.com/"),
        ("http://u:p%3Ass@h.com/", "h.com", 80, "http://h.com/"),
        ("http://@h.com/", "h.com", 80, "http://h.com/"),
        ("http://:@h.com/", "h.com", 80, "http://h.com/"),
        ("http://ü:ß@h.com/", "h.com", 80, "http://h.com/"),
        ("http://user@[::1]:81/", "::1", 81, "http://[::1]:81/"),
    ],
)
def test_parse_url_drops_userinfo(url: str, host: str, port: int, canonical: str) -> None:
    parsed = parse_url(url)
    assert (parsed.host, parsed.port, parsed.url, parsed.had_userinfo) == (
        host,
        port,
        canonical,
        True,
    )
    assert "secret" not in repr(parsed) and "token" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("example.com", "scheme"),
        ("//example.com/", "scheme"),
        ("/path", "scheme"),
        ("localhost:8080", "unsupported scheme 'localhost'"),
        ("file:///etc/passwd", "unsupported scheme 'file'"),
        ("data:text/plain,hi", "unsupported scheme 'data'"),
        ("javascript:alert(1)", "unsupported scheme 'javascript'"),
        ("gopher://h/", "unsupported scheme 'gopher'"),
        ("ssh://h/", "unsupported scheme 'ssh'"),
        ("h ttp://h/", "spaces"),
        ("1http://h/", "scheme"),
        ("http:example.com", "'//'"),
        ("http:/example.com", "'//'"),
        ("http:\\\\example.com", "backslash"),
        ("http:///example.com", "no host"),
        ("http://", "no host"),
        ("http://:80/", "no host"),
        ("http://@/", "no host"),
        ("http://user@", "no host"),
        ("http://?x", "no host"),
        ("http://#x", "no host"),
        # whitespace, controls, backslash anywhere
        (" http://h/", "spaces"),
        ("http://h/ ", "spaces"),
        ("http://h/a b", "spaces"),
        ("http://h /", "spaces"),
        ("http://h/\t", "control"),
        ("\thttp://h/", "control"),
        ("http://h/\n", "control"),
        ("http://h\r\n/", "control"),
        ("http://h/\x00", "control"),
        ("http://h/\x7f", "control"),
        ("http://h/?\x0b", "control"),
        ("http://h/#\x01", "control"),
        ("http://h\\/", "backslash"),
        ("http://h/a\\b", "backslash"),
        ("http://h/?a=\\", "backslash"),
        ("http://h/#\\", "backslash"),
        ("http://h/\ud800", "surrogate"),
        # authority tricks
        ("http://a@b@c/", "more than one '@'"),
        ("http://a@b.com@c.com/", "more than one '@'"),
        ("http://[::1]@evil.com/", "literal '[' in its userinfo"),
        ("http://u{:p@good.com/,}@evil.com/", "literal '{' in its userinfo"),
        ("http://u}@good.com/", "literal '}' in its userinfo"),
        ("http://evil.com\uff3b@good.com/", "look-alike"),  # FULLWIDTH LEFT SQUARE BRACKET
        ("http://evil.com%2F@good.com/", "encoded"),
        ("http://evil.com%23@good.com/", "encoded"),
        ("http://evil.com%3f@good.com/", "encoded"),
        ("http://evil.com%5C@good.com/", "encoded"),
        ("http://good.com%40evil.com/", "'%'"),
        ("http://evil.com\uff0f@good.com/", "look-alike"),  # FULLWIDTH SOLIDUS
        ("http://evil.com\uff03@good.com/", "look-alike"),  # FULLWIDTH NUMBER SIGN
        ("http://evil.com\ufe56@good.com/", "look-alike"),  # SMALL QUESTION MARK
        ("http://evil.com\uff3c@good.com/", "look-alike"),  # FULLWIDTH REVERSE SOLIDUS
        ("http://evil.com\uff20x@good.com/", "look-alike"),  # FULLWIDTH COMMERCIAL AT
        ("http://%65vil.com/", "'%'"),
        ("http://127.0.0.%31/", "'%'"),
        ("http://[fe80::1%25eth0]/", "zone id"),
        ("http://[fe80::1%eth0]/", "zone id"),
        ("http://[::1/", "unclosed"),
        ("http://[::1]x/", "after the ']'"),
        ("http://[::1]:/", "empty port"),
        ("http://[127.0.0.1]/", "IPv6"),
        ("http://::1/", "no host"),
        ("http://h:/", "empty port"),
        ("http://h:0/", "1-65535"),
        ("http://h:65536/", "1-65535"),
        ("http://h:99999999999999999999/", "1-65535"),
        ("http://h:-1/", "not a number"),
        ("http://h:+80/", "not a number"),
        ("http://h:0x50/", "not a number"),
        ("http://h:" + _fw("80") + "/", "not a number"),
        ("http://h:80:80/", "not a number"),
        ("http://h:http/", "not a number"),
        ("http://1.2.3.4.5/", "IPv4"),
        ("http://foo.123/", "IPv4"),
        ("http://h../", "empty label"),
        ("http://xn--a.com/", "punycode"),
        ("http://exa\u202emple.com/", "internationalised"),
        # paths servers disagree about
        ("http://h/%", "two hex digits"),
        ("http://h/%2", "two hex digits"),
        ("http://h/%zz", "two hex digits"),
        ("http://h/?q=%", "two hex digits"),
        # a dot segment: clients and servers disagree on resolving it
        ("http://h/a/b/../c", "'.' or '..' segment"),
        ("http://h/a/./b", "'.' or '..' segment"),
        ("http://h/a/..", "'.' or '..' segment"),
        ("http://h/a/.", "'.' or '..' segment"),
        ("http://h/../../etc/passwd", "'.' or '..' segment"),
        ("http://h/%2e%2e/x", "'.' or '..' segment"),
        ("http://h/a/%2E%2e/x", "'.' or '..' segment"),
        ("http://h/a/.%2e/x", "'.' or '..' segment"),
        ("http://h/a/%2e/x", "'.' or '..' segment"),
        ("http://h/a//../b", "'.' or '..' segment"),
        # curl's URL globs: it expands them unless given -g
        ("http://h/a/{..}/b", "literal '{' in its path"),
        ("http://h/a}", "literal '}' in its path"),
        ("http://h/v1/[1-9]", "literal '[' in its path"),
        ("http://h/a]", "literal ']' in its path"),
        ("http://h/admin/../public/x", "'.' or '..' segment"),
        ("http://h/..%2f..%2fadmin", "encoded"),
        ("http://h/a/%2e%2e%2Fadmin", "encoded"),
        ("http://h/a/..%5Cadmin", "encoded"),
        ("http://h/a%2F..", "encoded"),
        ("http://h/a/..;/admin", "';'"),
        ("http://h/a/.;/admin", "';'"),
        ("http://h/a/..;jsessionid=1/x", "';'"),
        ("http://h/a/%2e%2e;/admin", "';'"),
        ("http://h/%252e%252e/admin", "double-encoded"),
        ("http://h/a%252Fb", "double-encoded"),
        ("http://h/..%255c", "double-encoded"),
        ("http://h/a/..%3Bx/b", "';'"),
        ("http://h/a/.%3b/b", "';'"),
    ],
)
def test_parse_url_rejects(url: str, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_url(url, field="url")
    assert caught.value.field == "url"
    assert problem.lower() in caught.value.message.lower()


@pytest.mark.parametrize(
    ("url", "decoded", "stripped"),
    [
        ("http://h/a/b", None, None),
        ("http://h/admin%2Fx", "/admin/x", None),
        ("http://h/%2Fadmin/x/", "/admin/x", None),
        ("http://h/admin%5Cx", "/admin/x", None),  # "\\" read as "/"
        ("http://h/a%20b", "/a b", None),
        ("http://h/caf%C3%A9", "/café", None),
        ("http://h/a%FF%C3", "/a%FF%C3", None),  # not UTF-8: stays escaped
        ("http://h/a%2541", "/a%41", None),  # once
        ("http://h/a%25", "/a%", None),
        ("http://h/admin;x/y", None, "/admin/y"),
        ("http://h/admin;jsessionid=1", None, "/admin"),
        ("http://h/;a/b;c;d/;", None, "/b"),
        ("http://h/admin%3Bx/y", "/admin;x/y", "/admin/y"),
        ("http://h/a%20b;v=1/c%2Fd", "/a b;v=1/c/d", "/a b/c/d"),
    ],
)
def test_server_paths(url: str, decoded: str | None, stripped: str | None) -> None:
    forms = server_paths(parse_url(url).path)
    assert (forms.decoded, forms.stripped) == (decoded, stripped)


@pytest.mark.parametrize(
    ("url", "directories"),
    [
        # Each spelling ending in "/", as a server merging "//" reads it, "/" kept.
        ("http://h//admin/", ("/admin/",)),
        ("http://h//admin//", ("/admin/",)),
        ("http://h/a//b/", ("/a/b/",)),
        ("http://h/admin%2F", ("/admin/",)),  # decoded
        ("http://h/%2Fadmin/x/", ("/admin/x/",)),
        ("http://h/admin;x/", ("/admin/",)),  # stripped
        ("http://h/admin%3Bx/", ("/admin;x/", "/admin/")),  # decoded, then stripped
        ("http://h/a%2Fb;x/", ("/a/b;x/", "/a/b/")),
        # The path itself spelt so already is decided as sent; "/" alone is the root.
        ("http://h/admin/", ()),
        ("http://h/admin", ()),
        ("http://h//", ()),
        ("http://h/%2F", ()),
        ("http://h//admin", ()),
    ],
)
def test_server_paths_directories(url: str, directories: tuple[str, ...]) -> None:
    assert server_paths(parse_url(url).path).directories == directories


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h/a%00b", "control character"),
        ("http://h/a%0A", "control character"),
        ("http://h/a%1f", "control character"),
        ("http://h/a%7F", "control character"),
        ("http://h/a;x%2Fb/c", "';' parameter"),
        ("http://h/a;x%5cb", "';' parameter"),
    ],
)
def test_server_paths_rejects(url: str, problem: str) -> None:
    with pytest.raises(RequestError) as caught:
        server_paths(parse_url(url).path)
    assert caught.value.field == "url" and problem in caught.value.message


def test_parse_url_rejects_non_strings() -> None:
    with pytest.raises(RequestError, match="string"):
        parse_url(b"http://h/")  # type: ignore[arg-type]


# ---------------------------------------------------------------- rule values


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        ("api.openai.com", "api.openai.com"),
        ("API.OpenAI.com.", "api.openai.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("::FFFF:127.0.0.1", "127.0.0.1"),  # mapped and NAT64 rule values: their IPv4
        ("[::ffff:a9fe:a9fe]", "169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("64:ff9b:1::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe"),
        # an unspecified address names itself (requests for it also match as loopback)
        ("0.0.0.0", "0.0.0.0"),
        ("0x0", "0.0.0.0"),
        ("[::]", "::"),
        ("::ffff:0.0.0.0", "0.0.0.0"),
        ("*.example.com", "*.example.com"),
        ("*.Example.COM.", "*.example.com"),
        ("**.example.com", "**.example.com"),
        ("api-?.example.com", "api-?.example.com"),
        ("api[0-9].example.com", "api[0-9].example.com"),
        ("api[!0-9].example.com", "api[!0-9].example.com"),
        ("api[^a].example.com", "api[^a].example.com"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("*." + _fw("EXAMPLE.com"), "*.example.com"),
        ("*.xn--bcher-kva.de", "*.xn--bcher-kva.de"),
        ("xn--*.de", "xn--*.de"),
        ("10.0.*.*", "10.0.*.*"),
        ("10.*", "10.*"),
        ("*.0", "*.0"),
        ("*", "*"),
    ],
)
def test_canonical_host_pattern(pattern: str, canonical: str) -> None:
    assert canonical_host_pattern(pattern) == canonical


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty"),
        ("exa mple.com", "whitespace"),
        ("*.exa mple.com", "whitespace"),
        ("user@example.com", "'@'"),
        ("*.example.com/x", "not a URL"),
        ("*.example.com:443", "IPv6"),
        ("fe80::*", "cidr"),
        ("[fe80::*]", "cidr"),
        ("*.exa\\*mple.com", "'\\'"),
        ("*..example.com", "empty label"),
        (".example.com", "empty label"),
        ("*.example.com..", "empty label"),
        ("bü*.de", "must be ascii"),
        ("*.xn--a.com", "punycode"),
        ("*.foo.010", "dotted-quad"),
        ("*.256", "dotted-quad"),
        ("*.1.2.3.4", "dotted-quad"),
        ("*.example.123", "dotted-quad"),
        ("1.2.3.4.5", "more than 4 parts"),
        ("fe80::1%eth0", "zone id"),
        ("::7f00:1", "IPv4-compatible"),
        ("*.exa%6dple.com", "'%'"),
    ],
)
def test_canonical_host_pattern_rejects(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        canonical_host_pattern(pattern)
    assert problem.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("affix", "suffix", "canonical"),
    [
        (".internal.svc.cluster.local", True, ".internal.svc.cluster.local"),
        (".Internal.SVC.cluster.local.", True, ".internal.svc.cluster.local"),
        ("example.com", True, "example.com"),
        ("ample.com", True, "ample.com"),
        (".bücher.de", True, ".xn--bcher-kva.de"),
        ("com.", True, "com"),
        ("api.", False, "api."),
        ("API.example.", False, "api.example."),
        ("api", False, "api"),
        ("api.exa", False, "api.exa"),
        ("bücher.", False, "xn--bcher-kva."),
        ("10.0.", False, "10.0."),  # never turned into an address: a text prefix
        ("127.1", False, "127.1"),
        (".1", True, ".1"),
    ],
)
def test_canonical_host_affix(affix: str, suffix: bool, canonical: str) -> None:
    assert canonical_host_affix(affix, suffix=suffix) == canonical


@pytest.mark.parametrize(
    ("affix", "suffix", "problem"),
    [
        ("", True, "non-empty"),
        (".", True, "at least one label"),
        (".", False, "cannot start with '.'"),
        (".api", False, "cannot start with '.'"),
        ("bücher.de", True, "partial label"),
        ("api.bü", False, "partial label"),
        ("a..b", True, "empty label"),
        ("*.example.com", True, "'*'"),
        ("evil.com@", False, "'@'"),
        (".example.com:443", True, "port"),
    ],
)
def test_canonical_host_affix_rejects(affix: str, suffix: bool, problem: str) -> None:
    with pytest.raises(InvalidHost) as caught:
        canonical_host_affix(affix, suffix=suffix)
    assert problem.lower() in str(caught.value).lower()


# ---------------------------------------------------------------- properties

_HOST_ALPHABET = st.sampled_from(
    [
        *"abcxyzABCXYZ0123456789789.-_:[]%@/\\ \t\x00",
        *["0x", "0X", "xn--", "ß", "ü", "\u3002", "\u00ad", "\u200d", "ff", "::"],
        *[_fw(c) for c in "A.1@:/%"],
    ]
)
_HOSTS = st.one_of(
    st.text(max_size=40),
    st.lists(_HOST_ALPHABET, max_size=20).map("".join),
    st.lists(st.integers(0, 2**32), min_size=1, max_size=4).map(
        lambda parts: ".".join(str(p) for p in parts)
    ),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_HOSTS)
def test_canonical_host_is_idempotent(raw: str) -> None:
    try:
        canonical = canonical_host(raw)
    except RequestError:
        return
    assert canonical_host(canonical) == canonical
    forms = host_forms(canonical)
    # A rule for the host names its IPv4 for a mapped or NAT64 address (the same
    # destination), never the loopback an unspecified address also matches as.
    unspecified = len(forms) > 1 and forms[-2] in ("0.0.0.0", "::")
    assert canonical_host_pattern(canonical) == (forms[-2] if unspecified else forms[-1])
    assert canonical and not canonical.endswith(".")
    assert set(canonical) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-_:")
    assert forms[0] == canonical and len(forms) in (1, 2, 3)


_URL_PIECES = st.sampled_from(
    [
        "http",
        "HTTPS",
        "ws",
        "ftp",
        "file",
        ":",
        "//",
        "/",
        "\\",
        "@",
        "?",
        "#",
        "%",
        "%2e",
        "%2F",
        "%41",
        "..",
        ".",
        ";",
        "[",
        "]",
        "::1",
        "127.0.0.1",
        "0x7f",
        "example.com",
        "ü",
        "ß",
        _fw("."),
        " ",
        "\t",
        "\ud800",
        "80",
        "65536",
        "a",
        "0",
        "xn--",
        "-",
        "~",
        "'",
    ]
)
_URLS = st.one_of(
    st.text(max_size=60),
    st.lists(_URL_PIECES, max_size=16).map("".join),
    st.tuples(
        st.sampled_from(["http://", "https://", "ws://", "HTTP://"]),
        st.lists(_URL_PIECES, max_size=12).map("".join),
    ).map("".join),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_URLS)
def test_parse_url_raises_only_request_error_and_is_idempotent(url: str) -> None:
    try:
        parsed = parse_url(url)
    except RequestError:
        return
    assert parsed.host == canonical_host(parsed.host)
    assert 1 <= parsed.port <= 65535
    assert parsed.path.startswith("/")
    assert parse_url(parsed.url) == parsed.__class__(
        parsed.scheme, parsed.host, parsed.port, parsed.path, parsed.url, had_userinfo=False
    )
    assert "#" not in parsed.url and "@" not in parsed.url.split("/")[2]
