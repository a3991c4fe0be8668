"""Host canonicalisation (CONTRACT 2.2, "URLs/hosts"; section 1, "Hosts in rules").

A host from a request (``canonical_host``) or a rule (``canonical_host_pattern``,
``canonical_host_affix``) is brought to one canonical text so that rules and requests
compare like with like, and so that no spelling of an address can slip past a rule
written for another spelling. Nothing here does DNS.

Canonical form, in the order applied:

* ``[...]``, or hex digits and dots with two or more ``:``, is an IPv6 address, parsed
  by ``ipaddress`` and written in RFC 5952 form (lower-case, longest zero run
  compressed, hex only, never an embedded dotted quad), **without** brackets.
* Otherwise the text is a domain or an IPv4 address, handled like WHATWG URL "host
  parsing" (UTS-46 mapping, then IPv4 detection), only stricter:

  - UTS-46 mapping (``idna``, non-transitional) lower-cases and folds compatibility
    forms: fullwidth letters and full stops spell ``example.com`` as well as ASCII
    does, so does ``API`` + IDEOGRAPHIC FULL STOP + ``example.com``; ignorable
    characters (soft hyphen, zero-width space) vanish.
  - One trailing dot is dropped (``169.254.169.254.`` is ``169.254.169.254``); a second
    one, or any other empty label, is rejected.
  - If the last label is a number (digits, or ``0x`` and hex digits) the whole host
    must be an IPv4 address in one of the ``inet_aton`` forms -- 1 to 4 parts, each
    decimal, octal (leading ``0``) or hex (``0x``), the last part filling the remaining
    bytes -- and becomes a dotted quad: ``2130706433``, ``0x7f.1``, ``017700000001`` and
    ``127.1`` are all ``127.0.0.1``. Anything else ending in a number (``1.2.3.4.5``,
    ``256.1.1.1``, ``08.1.1.1``, ``foo.123``, a bare ``0x``) is rejected: a resolver
    might read it as an address, a rule would read it as a name.
  - Each label is ``[a-z0-9_-]``, 1-63 characters; ``xn--`` labels must be valid,
    canonical punycode of a valid IDNA 2008 label (round-trip checked); labels with
    non-ASCII characters become A-labels by ``idna.alabel`` (IDNA 2008 code points,
    CONTEXTJ/CONTEXTO, hyphen and bidi rules). The whole host is at most 253
    characters. Underscores and odd hyphens in ASCII labels are accepted, as WHATWG and
    resolvers accept them.

Rejected (``RequestError`` for requests, ``ValueError`` for rules), because different
HTTP clients read them differently or a gate could be fooled by them: empty hosts,
whitespace and control characters, ``@`` (userinfo), ``/ ? #`` (a URL, not a host),
``\\`` (a ``/`` to some parsers), ``%`` (percent-encoded hosts: some clients decode them,
others do not), ``:`` outside an IPv6 address (a port belongs in ``port``), brackets
around anything but IPv6, IPv6 zone ids (``fe80::1%eth0`` names a local interface),
IPv4-compatible IPv6 addresses (see ``host_forms``), invalid IDNA, UTS-46's deviation
characters (``_DEVIATIONS``), Unicode that IDNA 2003 (Python's codec) reads as another
host (``_check_idna2003``) and any other character. Unicode that UTS-46 maps onto
one of these (FULLWIDTH COMMERCIAL AT) is rejected the same way.

``parse_url``, ``ParsedUrl`` and ``default_port`` live in ``sidecar.normalise.urls`` and
are re-exported here, the one import for everything host-shaped.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import idna

from sidecar.errors import RequestError

if TYPE_CHECKING:
    from sidecar.normalise.urls import ParsedUrl, default_port, parse_url

__all__ = [
    "InvalidHost",
    "ParsedUrl",
    "canonical_host",
    "canonical_host_affix",
    "canonical_host_pattern",
    "default_port",
    "host_forms",
    "parse_url",
]

MAX_RAW_HOST = 1024  # raw text may exceed 253: UTS-46 drops ignorable characters
MAX_HOST = 253
MAX_LABEL = 63

# The common case, checked before anything else: lower-case LDH(+underscore) labels whose
# last label starts with a non-digit (so it cannot be an IPv4 number). Labels starting
# "xn--" take the slow path, which validates their punycode.
_FAST_HOST = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62}")
_ASCII_LABEL = re.compile(r"[a-z0-9_-]+")
_NUMBER_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_GLOB_LABEL = re.compile(r"[a-z0-9_*?!^\[\]-]+")
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"[0-7]+")
_HEX = re.compile(r"[0-9a-f]+")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_GLOB_CHARS = frozenset("*?[]")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")

_NAT64_PREFIX = 0x0064_FF9B << 64  # 64:ff9b::/96 (RFC 6052), shifted right by 32 bits
_IPV4_MAPPED_PREFIX = 0xFFFF  # ::ffff:0:0/96 (RFC 4291 2.5.5.2), shifted right by 32 bits


class InvalidHost(ValueError):
    """A host (or host pattern) is invalid or ambiguous; the message says why."""


def _char_problem(char: str) -> str:
    """Explain why ``char`` cannot appear in a host."""
    if char in " \t\n\r\f\v":
        return "must not contain whitespace"
    if ord(char) < 0x20 or char == "\x7f":
        return "must not contain control characters"
    if char == "@":
        return "must not contain '@' (userinfo is never part of a host)"
    if char in "/?#":
        return f"must be a host alone, not a URL (found {char!r})"
    if char == "\\":
        return "must not contain '\\' (some parsers read it as '/')"
    if char == "%":
        return "must not contain '%' (percent-encoded hosts are ambiguous and rejected)"
    if char == ":":
        return "must not contain ':' outside an IPv6 address (a port belongs in the port field)"
    if char in "[]":
        return "may have brackets only around a whole IPv6 address"
    return f"must not contain {char!r}"


def _check_chars(text: str, allowed: frozenset[str] = _HOST_CHARS) -> None:
    """Reject ASCII characters that are not allowed; non-ASCII is IDNA's job.

    Of several bad characters the most telling is named: ``a.com:80@127.0.0.1`` is
    refused for its ``@`` rather than its ``:``.
    """
    bad = [char for char in text if char.isascii() and char not in allowed]
    if bad:
        raise InvalidHost(_char_problem(min(bad, key=_char_priority)))  # first of the most


_TELLING_CHARS = "@\\/?#%:"  # most telling first


def _char_priority(char: str) -> int:
    if ord(char) <= 0x20 or char == "\x7f":
        return -1
    index = _TELLING_CHARS.find(char)
    return index if index >= 0 else len(_TELLING_CHARS)


# UTS-46's deviation characters: IDNA 2008 (non-transitional, as WHATWG URL and the
# gate map) keeps them, IDNA 2003 and transitional processing (Python's "idna" codec and
# so urllib, curl with libidn2 in transitional mode, Node) turn them into "ss", sigma or
# nothing. The two readings name different hosts: "ẞm.example.com" is decided as
# xn--m-pfa.example.com while curl connects to ssm.example.com. Rejected, never guessed.
_DEVIATIONS = {
    "\u00df": "'ß' (U+00DF, also the mapping of 'ẞ' U+1E9E), which some clients turn into 'ss'",
    "\u03c2": "'ς' (U+03C2), which some clients turn into U+03C3",
    "\u200c": "ZERO WIDTH NON-JOINER (U+200C), which some clients drop",
    "\u200d": "ZERO WIDTH JOINER (U+200D), which some clients drop",
}


def _uts46(text: str) -> str:
    """UTS-46 map (non-transitional, STD3 rules off: our own ASCII check is stricter)."""
    if text.isascii():
        return text.lower()
    try:
        mapped = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise InvalidHost(f"is not a valid internationalised host name: {exc}") from exc
    for char, problem in _DEVIATIONS.items():
        if char in mapped:
            raise InvalidHost(
                f"must not contain {problem}: HTTP clients disagree on which host it names"
            )
    return mapped


def _format_ipv6(value: int) -> str:
    """RFC 5952 text: lower-case hex, the first longest run of 2+ zero groups as '::'."""
    groups = [(value >> shift) & 0xFFFF for shift in range(112, -1, -16)]
    best_start, best_len, run_start = -1, 1, -1
    for index, group in enumerate([*groups, 1]):  # the sentinel closes a trailing run
        if group == 0:
            if run_start < 0:
                run_start = index
        elif run_start >= 0:
            if index - run_start > best_len:
                best_start, best_len = run_start, index - run_start
            run_start = -1
    text = [f"{group:x}" for group in groups]
    if best_start < 0:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len :])


def _ipv6(text: str) -> str:
    """Canonical text of an IPv6 address given without brackets."""
    if "%" in text:
        raise InvalidHost(
            "must not have an IPv6 zone id (fe80::1%eth0 names a local interface; rejected)"
        )
    if not _IPV6_CHARS.fullmatch(text):
        raise InvalidHost("is not a valid IPv6 address")
    try:
        value = int(ipaddress.IPv6Address(text))
    except ValueError as exc:
        raise InvalidHost(f"is not a valid IPv6 address: {exc}") from exc
    if value >> 32 == 0 and value > 1:
        # ::a.b.c.d (RFC 4291 2.5.5.1, deprecated): some stacks tunnel it to a.b.c.d,
        # most route it nowhere; either reading could fool a rule, so it is refused.
        raise InvalidHost(
            "is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated and ambiguous); "
            "use the IPv4 address or ::ffff:a.b.c.d"
        )
    return _format_ipv6(value)


def _ipv4_number(part: str) -> int:
    """One inet_aton part: decimal, octal with a leading 0, or hex with 0x (lower-cased)."""
    if part.startswith("0x"):
        digits, pattern, base = part[2:], _HEX, 16
    elif len(part) > 1 and part.startswith("0"):
        digits, pattern, base = part[1:], _OCTAL, 8
    else:
        digits, pattern, base = part, _DECIMAL, 10
    # A bare "0x" is 0 to WHATWG but an error to inet_aton: the stricter reading wins.
    if not pattern.fullmatch(digits):
        raise InvalidHost(f"is not a valid IPv4 address (bad part {part!r})")
    return int(digits, base)


def _ipv4(labels: list[str]) -> str:
    """Dotted quad of an IPv4 address in any inet_aton form (1-4 parts)."""
    if len(labels) > 4:
        raise InvalidHost("is not a valid IPv4 address (more than 4 parts)")
    numbers = [_ipv4_number(label) for label in labels]
    last_limit = 256 ** (5 - len(numbers))
    if any(number > 255 for number in numbers[:-1]) or numbers[-1] >= last_limit:
        raise InvalidHost("is not a valid IPv4 address (a part is out of range)")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return str(ipaddress.IPv4Address(value))


def _label(label: str) -> str:
    """Canonical (A-label) form of one UTS-46-mapped, non-empty domain label."""
    if label.isascii():
        if not _ASCII_LABEL.fullmatch(label):
            raise InvalidHost(_char_problem(next(c for c in label if c not in _HOST_CHARS)))
        if len(label) > MAX_LABEL:
            raise InvalidHost(f"has a label longer than {MAX_LABEL} characters")
        if label.startswith("xn--"):
            try:
                unicode_label = idna.ulabel(label)
                canonical = idna.alabel(unicode_label).decode("ascii")
            except idna.IDNAError as exc:
                raise InvalidHost(f"has an invalid punycode label {label!r}: {exc}") from exc
            if unicode_label.isascii() or canonical != label:
                raise InvalidHost(f"has a punycode label {label!r} that is not canonical")
        return label
    try:
        return idna.alabel(label).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidHost(f"is not a valid internationalised host name: {exc}") from exc


def _split_labels(mapped: str) -> list[str]:
    """Drop one trailing dot and split; any empty label is an error."""
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if not mapped:
        raise InvalidHost("must not be empty")
    labels = mapped.split(".")
    if "" in labels:
        raise InvalidHost("must not have an empty label ('..' or a leading '.')")
    return labels


def _join(labels: list[str]) -> str:
    host = ".".join(labels)
    if len(host) > MAX_HOST:
        raise InvalidHost(f"is longer than {MAX_HOST} characters")
    return host


@lru_cache(maxsize=8192)
def _canonical(raw: str) -> str:
    """Canonical host text; raises ``InvalidHost``. Cached: this is on the hot path."""
    if _FAST_HOST.fullmatch(raw) and len(raw) <= MAX_HOST and "xn--" not in raw:
        return raw
    if not raw:
        raise InvalidHost("must not be empty")
    if len(raw) > MAX_RAW_HOST:
        raise InvalidHost(f"is longer than {MAX_RAW_HOST} characters")
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise InvalidHost(
                "must be [IPv6] with nothing after ']' (a port belongs in the port field)"
            )
        return _ipv6(raw[1:-1])
    if raw.count(":") > 1 and _IPV6_CHARS.fullmatch(raw.partition("%")[0]):
        return _ipv6(raw)
    _check_chars(raw)
    mapped = _uts46(raw)
    _check_chars(mapped)  # UTS-46 maps some Unicode onto forbidden ASCII (fullwidth '@')
    labels = _split_labels(mapped)
    if _NUMBER_LABEL.fullmatch(labels[-1]):
        canonical = _ipv4(labels)
    else:
        canonical = _join([_label(label) for label in labels])
    if not raw.isascii():
        _check_idna2003(raw, canonical)
    return canonical


def _check_idna2003(raw: str, canonical: str) -> None:
    """Refuse a host that IDNA 2003 turns into another host than UTS-46 does.

    Python's "idna" codec (``http.client``, ``socket.getaddrinfo``) implements IDNA 2003
    on Unicode 3.2: it passes newer characters through unmapped, so ``ex\u1d2cmple.com``
    (MODIFIER LETTER CAPITAL A) is ``example.com`` here and ``xn--exmple-c75b.com`` there.
    A host the codec cannot encode at all is not reached by those clients: no conflict.
    """
    try:
        reading = raw.encode("idna").decode("ascii")
    except UnicodeError:
        return
    try:
        other = _canonical(reading)
    except InvalidHost:
        other = reading
    if other != canonical:
        raise InvalidHost(
            f"is {other!r} to IDNA 2003 clients (Python's http.client and sockets) but "
            f"{canonical!r} to UTS-46 ones: HTTP clients disagree on which host it names"
        )


def canonical_host(raw: str, field: str = "host") -> str:
    """Return the canonical form of a request's host (see the module docstring).

    Raises ``RequestError(message, field)`` for an empty, invalid or ambiguous host.
    """
    if not isinstance(raw, str):
        raise RequestError("must be a string", field)
    try:
        return _canonical(raw)
    except InvalidHost as exc:
        raise RequestError(str(exc), field) from None


# What connecting to an unspecified address reaches: Linux (and the BSDs) send a
# connect() to 0.0.0.0 to 127.0.0.1 and one to :: to ::1, so ``http://0.0.0.0/`` and
# ``http://[::]/`` are requests to the local host.
_UNSPECIFIED_REACHES = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _embedded_ipv4(canonical: str) -> str | None:
    """The IPv4 address an IPv4-mapped or well-known NAT64 address stands for, else None."""
    if ":" not in canonical:
        return None
    value = int(ipaddress.IPv6Address(canonical))
    if value >> 32 in (_IPV4_MAPPED_PREFIX, _NAT64_PREFIX):
        return str(ipaddress.IPv4Address(value & 0xFFFF_FFFF))
    return None


def embedded_ipv4_network(network: ipaddress.IPv6Network) -> ipaddress.IPv4Network | None:
    """The IPv4 range an IPv6 range strictly inside ``::ffff:0:0/96`` (IPv4-mapped) or
    ``64:ff9b::/96`` (well-known NAT64) stands for, else None.

    A request in either spelling also matches as its IPv4 (``host_forms``), a plain IPv4
    request never as its mapped form: the IPv4 range covers both, the IPv6 one only one.
    """
    value = int(network.network_address)
    if network.prefixlen <= 96 or value >> 32 not in (_IPV4_MAPPED_PREFIX, _NAT64_PREFIX):
        return None
    return ipaddress.IPv4Network((value & 0xFFFF_FFFF, network.prefixlen - 96))


@lru_cache(maxsize=8192)
def host_forms(canonical: str) -> tuple[str, ...]:
    """All forms a canonical host is matched as: itself, its IPv4, then its loopback.

    An IPv4-mapped address (``::ffff:a.b.c.d``) is how a dual-stack socket reaches
    ``a.b.c.d``; a NAT64 address in the well-known prefix ``64:ff9b::/96`` (RFC 6052)
    is translated to ``a.b.c.d`` by the network. Both "also match as their IPv4", so a
    ``cidr: 169.254.0.0/16`` rule sees ``::ffff:169.254.169.254``.

    The unspecified addresses also match as the loopback address a connection to them
    reaches (``_UNSPECIFIED_REACHES``): ``0.0.0.0`` (however spelt: ``0``, ``0x0``,
    ``::ffff:0.0.0.0`` ...) as ``127.0.0.1``, and ``::`` as ``::1``, so a rule for
    ``127.0.0.0/8`` or ``::1`` catches them. The relation is one way: a request for
    ``127.0.0.1`` is not also ``0.0.0.0``.

    Not given an IPv4 form: IPv4-compatible ``::a.b.c.d`` (rejected by
    ``canonical_host`` instead), 6to4 ``2002::/16`` and Teredo (tunnels to a relay, not
    a connection to the IPv4 host), the local-use NAT64 prefix ``64:ff9b:1::/48`` and
    operator-chosen NAT64 prefixes (where the IPv4 sits depends on a prefix length
    the gate cannot know; write ``cidr`` rules for them explicitly).
    """
    forms = [canonical]
    ipv4 = _embedded_ipv4(canonical)
    if ipv4 is not None:
        forms.append(ipv4)
    loopback = _UNSPECIFIED_REACHES.get(forms[-1])
    if loopback is not None:
        forms.append(loopback)
    return tuple(forms)


def canonical_host_pattern(pattern: str) -> str:
    """Canonical form of a whole-host value in a policy rule (equals, in, glob).

    A value that is an IP literal or has no glob character (``* ? [ ]``) is
    canonicalised exactly like ``canonical_host`` (so ``127.1`` becomes ``127.0.0.1``
    and ``[2001:DB8::1]`` becomes ``2001:db8::1``), except that an IPv4-mapped or NAT64
    address becomes its IPv4 address: requests in either spelling also match as their
    IPv4 (``host_forms``), so the rule then covers the destination however spelt. An
    unspecified address stays itself (``0.0.0.0``, ``::``): requests for it also match
    as the loopback, but a rule for it covers only it.

    A glob is lower-cased and UTS-46 mapped, loses one trailing dot, and each label
    without glob characters is canonicalised like a host label (IDNA to A-labels);
    labels with glob characters must be ASCII (``[a-z0-9_-]`` plus ``* ? [ ] ! ^``;
    write IDN parts as ``xn--``). A glob whose last label is a number targets IPv4
    addresses and must use canonical dotted-quad octets (``10.0.*.*``); IPv6 ranges
    and anything subtler belong in ``cidr``. Raises ``ValueError`` (``InvalidHost``).
    """
    if not isinstance(pattern, str):
        raise InvalidHost("must be a string")
    if ":" in pattern and ("*" in pattern or "?" in pattern):
        raise InvalidHost("IPv6 addresses cannot be globbed; write a cidr range")
    is_ip_literal = pattern.startswith("[") and pattern.endswith("]") and ":" in pattern
    if is_ip_literal or not _GLOB_CHARS.intersection(pattern):
        # Not host_forms()[-1]: a rule for 0.0.0.0 names 0.0.0.0, not 127.0.0.1 too.
        literal = _canonical(pattern)
        return _embedded_ipv4(literal) or literal
    _check_chars(pattern, _HOST_CHARS | _GLOB_CHARS | {"!", "^"})
    mapped = _uts46(pattern)
    _check_chars(mapped, _HOST_CHARS | _GLOB_CHARS | {"!", "^"})
    labels = _split_labels(mapped)
    canonical: list[str] = []
    for label in labels:
        if not _GLOB_CHARS.intersection(label):
            canonical.append(_label(label))
        elif _GLOB_LABEL.fullmatch(label):
            canonical.append(label)
        else:
            raise InvalidHost(
                f"glob label {label!r} must be ASCII; write internationalised parts as xn--"
            )
    if _NUMBER_LABEL.fullmatch(labels[-1]):
        octets_ok = len(labels) <= 4 and all(
            _GLOB_CHARS.intersection(label)
            or (_DECIMAL.fullmatch(label) and str(int(label)) == label and int(label) < 256)
            for label in labels
        )
        if not octets_ok:
            raise InvalidHost(
                "an IPv4 glob must use dotted-quad decimal octets (10.0.*.*); prefer cidr"
            )
    return _join(canonical)


def canonical_host_affix(affix: str, *, suffix: bool) -> str:
    """Canonical form of a ``startsWith`` (``suffix=False``) or ``endsWith`` host value.

    Unlike a whole host, an affix is never turned into an IPv4 address (``10.0.`` stays
    a text prefix of dotted quads) and its edge dots are kept, since they mark label
    boundaries: ``.internal.svc.cluster.local`` keeps its leading dot. For ``endsWith``
    one trailing dot is dropped (canonical hosts have none); a ``startsWith`` value
    cannot start with a dot (no host does). Labels cut by the affix edge (``ample.com``
    in endsWith, ``api.exa`` in startsWith) must be ASCII, since a partial Unicode label
    has no A-label form; complete labels are canonicalised like host labels.
    """
    if not isinstance(affix, str) or not affix:
        raise InvalidHost("must be a non-empty string")
    _check_chars(affix)
    mapped = _uts46(affix)
    _check_chars(mapped)
    leading = mapped.startswith(".")
    if suffix and mapped.endswith("."):
        mapped = mapped[:-1]
    elif not suffix and leading:
        raise InvalidHost("a startsWith value cannot start with '.' (no host does)")
    trailing = mapped.endswith(".")
    core = mapped[1 if leading else 0 : -1 if trailing else None]
    if not core:
        raise InvalidHost("must contain at least one label")
    labels = core.split(".")
    if "" in labels:
        raise InvalidHost("must not have an empty label ('..')")
    partial_first = suffix and not leading
    partial_last = not suffix and not trailing
    out: list[str] = []
    for index, label in enumerate(labels):
        cut = (index == 0 and partial_first) or (index == len(labels) - 1 and partial_last)
        if cut and not label.isascii():
            raise InvalidHost(
                f"the partial label {label!r} must be ASCII; start or end the value at a '.'"
            )
        out.append(label if cut and len(label) <= MAX_LABEL else _label(label))
    return ("." if leading else "") + _join(out) + ("." if trailing else "")


def __getattr__(name: str) -> Any:
    """Re-export the URL half lazily (``urls`` imports this module)."""
    if name in ("ParsedUrl", "default_port", "parse_url"):
        from sidecar.normalise import urls

        return getattr(urls, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
