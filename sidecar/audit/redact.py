"""Secret redaction before an audit record is written (CONTRACT section 4).

Tokens and keys found anywhere in a record body are replaced by
``[REDACTED:<kind>:<first 8 hex of HMAC-SHA256(key, secret)>]``: the same secret always
gives the same tag, so an investigator can correlate records, yet the tag reveals
nothing without the key (and a low-entropy password cannot be brute-forced from it).

Redaction runs on every decision record, so it has a fast path: one RE2 scan of the
record's canonical JSON for anything a secret needs: the start of a token or a header,
or a word naming a secret with something assigned to it or ending an object key (not
"secrets" in a path). Only when that screen hits are the body's strings looked at with
the precise patterns, each pattern only on a string holding one of its literals; a body
in which they find nothing is returned as it is, without being rebuilt. The screens and
the literals are deliberately supersets of the precise patterns; ``tests/audit`` checks
them, the screens against every form of assignment the patterns accept.
"""

from __future__ import annotations

import bisect
import functools
import hmac
import itertools
import re
import string
from collections.abc import Callable
from hashlib import sha256
from typing import Any, NamedTuple

import re2

_SECRET_NAMES = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token"
    r"|auth[_-]?token|id[_-]?token|api[_-]?key|apikey|secret[_-]?key|access[_-]?key"
    r"|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|session[_-]?token|credentials?"
    # The signature of a pre-signed URL (S3 X-Amz-Signature, GCS X-Goog-Signature, Azure
    # SAS sig) grants access until it expires, like a token.
    r"|signature|sig"
)
# A value after "name=" or "name:": quoted (the secret is inside the quotes) or bare.
# Quotes may be JSON-escaped (\"), as in a request body kept as text in an
# invalidRequest record or JSON carried inside a string: then the secret runs to the
# closing \" (or, in a body cut short, to the end of the string).
_VALUE = (
    r"""(?:\\"((?:[^"\\]|\\[^"])*)(?:\\?"|$)|"([^"]*)"|'([^']*)'"""
    r"""|((?:[^\s&;,"'<>}\]\\]|\\[^"])+))"""
)
# A header value: up to a quote, a separator, or a JSON-escaped quote (\").
_TOKEN = r"""(?:[^\s"',;\\]|\\[^"])+"""
# A name may end in the secret word after '_' or '-': DB_PASSWORD=, GITHUB_TOKEN=,
# MYSQL_PWD= (environment variables on a command line), db-password: ... Not "bypass=".
# A lookbehind rather than a repeated prefix: Python's re backtracks, and a string of
# many "a-a-a-..." must not cost quadratic time on the event loop.
_NAME_START = r"(?:\b|(?<=[_-]))"
# "password" and "passwd" also end a name glued to its prefix: PGPASSWORD= (libpq's),
# DBPASSWORD=. The short words do not ("bypass=", "compass=").
_GLUED = r"(?<=[A-Za-z0-9])"
# Between the name and the '=' or ':', a closing quote, JSON-escaped or not.
_AFTER_NAME = r"""(?:\\?["'])?"""
_QUOTE = _AFTER_NAME
_FLAGS = re.ASCII
# A command-line option naming a secret whose value is the next word (``--password pw``,
# ``vault login --token t``): one or two dashes, words joined by '-' or '_', the last
# one a secret's name. ``--password-stdin`` and ``--password-file`` name no value.
_PASSWORD_WORDS = r"password|passwd|pwd|pass"
_OPTION_HEAD = r"--?(?:[A-Za-z0-9]+[-_])*"
_PASSWORD_OPTION = rf"{_OPTION_HEAD}(?:{_PASSWORD_WORDS})"
_SECRET_OPTION = rf"{_OPTION_HEAD}(?:{_SECRET_NAMES})"


class SecretPattern(NamedTuple):
    """A precise pattern, and literals one of which every match contains (lower-cased)."""

    kind: str
    regex: re.Pattern[str]
    literals: tuple[str, ...]


def _pattern(
    kind: str, regex: str, literals: tuple[str, ...], ignore_case: bool = False
) -> SecretPattern:
    flags = _FLAGS | (re.IGNORECASE if ignore_case else 0)
    return SecretPattern(kind, re.compile(regex, flags), literals)


# The secret is the last group that took part in the match. Order matters: earlier
# kinds win where patterns overlap (an Authorization header carrying a JWT is reported
# as "authorization"). The literals only spare a search: a string that holds none of
# them (after str.lower, which lowers every ASCII letter) cannot match.
_PATTERNS: list[SecretPattern] = [
    _pattern(
        "private-key",
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$))",
        ("-----begin ",),
    ),
    _pattern(
        "authorization",
        rf"\b(?:proxy-)?authori[sz]ation{_QUOTE}\s*[:=]\s*{_QUOTE}"
        r"(?:(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256)\s+)?"
        rf"({_TOKEN}(?:[ \t]*,[ \t]*[A-Za-z]+={_TOKEN})*)",
        ("authorization", "authorisation"),
        ignore_case=True,
    ),
    _pattern(
        "cookie",
        rf"\b(?:set-)?cookie{_QUOTE}\s*[:=]\s*{_QUOTE}((?:[^\"'\n\\]|\\[^\"])+)",
        ("cookie",),
        True,
    ),
    _pattern(
        "api-key",
        rf"\b(?:x-)?(?:api-key|auth-token){_QUOTE}\s*[:=]\s*{_QUOTE}({_TOKEN})",
        ("api-key", "auth-token"),
        ignore_case=True,
    ),
    _pattern("url-credentials", r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@", ("://",)),
    _pattern("jwt", r"\b(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)", ("eyj",)),
    _pattern(
        "github-token",
        r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_\w{20,255})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _pattern(
        "aws-access-key",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b",
        ("akia", "asia", "abia", "acca"),
    ),
    _pattern("slack-token", r"\b(xox[a-z]-[A-Za-z0-9-]{8,})", ("xox",)),
    _pattern("api-key", r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,})", ("sk-",)),
    _pattern("api-key", r"\b([sr]k_live_[A-Za-z0-9]{16,})", ("k_live_",)),
    _pattern("api-key", r"\b(AIza[0-9A-Za-z_-]{35})", ("aiza",)),
    _pattern(
        "password",
        rf"(?:{_NAME_START}(?:password|passwd|pwd|pass)|{_GLUED}(?:password|passwd))\b"
        rf"{_AFTER_NAME}\s*[:=]\s*{_VALUE}",
        ("pass", "pwd"),
        ignore_case=True,
    ),
    _pattern(
        "secret",
        rf"{_NAME_START}(?:{_SECRET_NAMES})\b{_AFTER_NAME}\s*[:=]\s*{_VALUE}",
        # Every name of _SECRET_NAMES holds one of these.
        ("pass", "pwd", "secret", "token", "key", "credential", "sig"),
        ignore_case=True,
    ),
    _pattern("bearer-token", r"\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)", ("bearer",), True),
    # An option and its value as separate words of a command line (argv lists are
    # handled item by item, see ``option_kind``).
    _pattern(
        "password",
        rf"(?:^|(?<=\s)){_PASSWORD_OPTION}[ \t]+{_VALUE}",
        ("pass", "pwd"),
        ignore_case=True,
    ),
    _pattern(
        "secret",
        rf"(?:^|(?<=\s)){_SECRET_OPTION}[ \t]+{_VALUE}",
        ("pass", "pwd", "secret", "token", "key", "credential", "sig"),
        ignore_case=True,
    ),
    # curl's -u/--user user:password (also -uuser:pw, --user=user:pw): the part after
    # the first colon. (docker's -u uid:gid loses its gid to this; a secret comes first.)
    _pattern(
        "password",
        r"""(?:^|(?<=\s))(?:-u|--user)(?:[ \t]+|=)?["']?[^\s:"'/]*:((?:[^\s"'\\]|\\.)+)""",
        ("-u",),
    ),
    # mysql's (and mariadb's) -pPASSWORD, glued; elsewhere -p is a port or a path.
    _pattern(
        "password",
        r"(?:^|(?<=\s))-p((?:[^\s\\]|\\.)+)",
        ("mysql", "mariadb"),
    ),
]

_OPTION = re.compile(rf"(?:({_PASSWORD_OPTION})|{_SECRET_OPTION})", _FLAGS | re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def option_kind(argument: str) -> str | None:
    """The redaction kind of the argument after ``argument`` in an argv list, or None.

    ``["mysql", "--password", "pw"]``: the item after a secret-naming option is its value.
    """
    match = _OPTION.fullmatch(argument)
    if match is None:
        return None
    return "password" if match.group(1) is not None else "secret"


_USER_OPTIONS = frozenset({"-u", "--user"})  # curl: the next item is user:password
_MYSQL = re.compile(r"(?:.*/)?(?:mysql|mariadb)[\w.-]*", _FLAGS)


def _argument_secret(previous: Any, item: str, mysql: bool) -> tuple[str, str, str] | None:
    """(kind, text kept, secret) when list item ``item`` is (or ends in) a secret because
    of the item before it or the command the list runs, else None."""
    if not item or item.startswith(_TAG_PREFIX):
        return None
    if type(previous) is str:
        kind = option_kind(previous)
        if kind is not None:
            return kind, "", item
        if previous in _USER_OPTIONS and ":" in item:
            user, _, password = item.partition(":")
            if password and not password.startswith(_TAG_PREFIX):
                return "password", user + ":", password
    if mysql and item.startswith("-p") and len(item) > 2 and not item[2:].startswith(_TAG_PREFIX):
        return "password", "-p", item[2:]
    return None


def _runs_mysql(items: Any) -> bool:
    first = items[0] if items else None
    return type(first) is str and _MYSQL.fullmatch(first) is not None


# Object keys whose string values are secrets whatever they look like, compared after
# lower-casing ASCII letters and dropping '-' and '_': the exact names, then any name
# ending in one of the suffixes ("apiToken", "dbPassword", "awsSecretAccessKey" ...).
# Only ASCII letters are lowered, as the screen (RE2, case-insensitive over bytes) does:
# a Kelvin sign does not make "\u212aey" a "key".
_SECRET_KEYS = {
    "pwd": "password",
    "authorization": "authorization",
    "proxyauthorization": "authorization",
    "cookie": "cookie",
    "setcookie": "cookie",
}
_SECRET_KEY_SUFFIXES = (
    ("password", "password"),
    ("passwd", "password"),
    ("passphrase", "password"),
    ("secret", "secret"),
    ("token", "secret"),
    ("apikey", "api-key"),
    ("privatekey", "private-key"),
    ("secretkey", "secret"),
    ("secretaccesskey", "secret"),
    ("credential", "secret"),
    ("credentials", "secret"),
)


_KEY_NAME_FORM = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, "-_")


@functools.lru_cache(maxsize=4096)
def secret_key_kind(key: str) -> str | None:
    """The redaction kind for values under object key ``key``, or None."""
    name = key.translate(_KEY_NAME_FORM)
    kind = _SECRET_KEYS.get(name)
    if kind is not None:
        return kind
    for suffix, suffix_kind in _SECRET_KEY_SUFFIXES:
        if name.endswith(suffix):
            return suffix_kind
    return None


# The screens: anything a precise pattern or a secret-named key needs, case-insensitively.
# Words that start a token or a header are enough on their own.
_TRIGGERS = (
    r"-----BEGIN|authori[sz]ation|cookie|bearer|api-key|auth-token|://[^\s/]*@|eyJ"
    r"|gh[pousr]_|github_pat_|AKIA|ASIA|ABIA|ACCA|xox[a-z]-|sk-|[sr]k_live_|AIza"
)
# Words that only name a secret ("password", "token" ...) matter when something is
# assigned to them (password=..., "token: ..."; the "password" and "secret" patterns).
# A path like /srv/secrets/ or a Kubernetes resource "secrets" holds no secret.
_NAME_CORE = (
    r"(?:password|passwd|pwd|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|credential|sig)"
)
_NAME_WORDS = _NAME_CORE + r"[A-Za-z0-9_-]*"
# An option word naming a secret ("--password", "-db_token"), at the start of a string
# or after white space, so that a rule id such as "no-secrets" in a reason is not one.
_OPTION_WORD = r"--?[A-Za-z0-9_-]*" + _NAME_WORDS


def _key_ending(name: str) -> str:
    """An object key whose name, as ``secret_key_kind`` reads it, ends with ``name``."""
    return "[-_]*".join(re.escape(letter) for letter in name) + '[-_]*":'


# Over canonical JSON bytes. A key ends with '":', and every key that secret_key_kind
# names ends with one of its names, spread with '-' and '_' ("Api_Key", "t-o-k-e-n").
# Inside a string a double quote is \" and whitespace other than the space is escaped
# (\t \n \r \f \u000b).
_SCREEN_PATTERN = "|".join(
    [
        _TRIGGERS,
        _NAME_WORDS + r"""(?:\\\\|\\"|'|\s|\\[tnrf]|\\u000b)*[:=]""",
        # An option whose value is the next word or argv item: "--password","pw".
        # curl's -u user:pw (in argv "-u","user:pw"), mysql's -ppw.
        r"""(?:"|\s|\\[tnrf]|\\u000b)(?:-u|--user)(?:",?"|(?: |\\t)+|=)?[^\s":/]*:""",
        r"""(?:"|\s|\\[tnrf]|\\u000b)-p[^\s"]""",
        r"""(?:"|\s|\\[tnrf]|\\u000b)""" + _OPTION_WORD + r"""(?:"|\s|\\[tnrf]|\\u000b)""",
        *sorted({_key_ending(name) for name in (*_SECRET_KEYS, *dict(_SECRET_KEY_SUFFIXES))}),
    ]
)
# Over plain strings, as the precise patterns see them (keys are named apart, by
# secret_key_kind). Their \s (Python, re.ASCII) includes the vertical tab, RE2's does
# not: the class is spelled out.
_SCREEN_TEXT_PATTERN = (
    _TRIGGERS
    + "|"
    + _NAME_WORDS
    + r"""\\?["']?[\t\n\x0b\f\r ]*[:=]"""
    + r"|(?:^|[\t\n\x0b\f\r ])"
    + _OPTION_WORD
    + r"[\t ]"
    + r"""|(?:^|[\t\n\x0b\f\r ])(?:-u|--user)[\t =]*["']?[^\t\n\x0b\f\r :"'/]*:"""
    + r"|(?:^|[\t\n\x0b\f\r ])-p[^\t\n\x0b\f\r ]"
)
_screen_options = re2.Options()
_screen_options.case_sensitive = False
_SCREEN = re2.compile(_SCREEN_PATTERN.encode("ascii"), options=_screen_options)
_SCREEN_TEXT = re2.compile(_SCREEN_TEXT_PATTERN, options=_screen_options)


_TAG_PREFIX = "[REDACTED:"
_TAG = re.compile(r"(\[REDACTED:[a-z-]+:[0-9a-f]{8}\])")


class Redactor:
    """Replaces secrets in record bodies with keyed tags."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("redaction key must be at least 16 bytes")
        self._key = key

    def tag(self, kind: str, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), sha256).hexdigest()
        return f"{_TAG_PREFIX}{kind}:{digest[:8]}]"

    def keyed_digest(self, data: bytes) -> str:
        """Hex HMAC-SHA256 of ``data`` under the redaction key, all 64 digits: a value
        that pins data holding secrets without letting anyone test guesses against it."""
        return hmac.new(self._key, data, sha256).hexdigest()

    @staticmethod
    def may_hold_secret(encoded: bytes) -> bool:
        """Fast screen over canonical JSON: False means there is nothing to redact."""
        return _SCREEN.search(encoded) is not None

    def redact(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``body`` with every secret replaced; ``body`` itself if none found.

        One RE2 scan over all the body's strings (joined by newlines, which no screen
        match can cross) finds the few that may hold a secret; only those go through
        the precise patterns. Values under secret-named keys are replaced whole. When
        neither finds anything (a screen hit on a harmless word), ``body`` is returned
        without being rebuilt.
        """
        texts: list[str] = []
        secret_keys = _collect_strings(body, texts)
        rewritten: dict[int, str] = {}
        if texts:
            joined = "\n".join(texts)
            ends = list(itertools.accumulate(len(text) + 1 for text in texts))
            flagged = {bisect.bisect_right(ends, m.start()) for m in _SCREEN_TEXT.finditer(joined)}
            for index in flagged:
                text = texts[index]
                new = self._rewrite(text)
                if new is not text:
                    rewritten[index] = new
        if not rewritten and not secret_keys:
            return body
        result = self._value(body, None, rewritten, itertools.count())
        assert isinstance(result, dict)
        return result

    def redact_text(self, text: str) -> str:
        """Replace every secret found in one string."""
        if _SCREEN_TEXT.search(text) is None:
            return text
        return self._rewrite(text)

    def _rewrite(self, text: str) -> str:
        """``text`` with every secret replaced; ``text`` itself when nothing was."""
        redacted = text
        lowered = text.lower()
        for secret in _PATTERNS:
            for literal in secret.literals:
                if literal in lowered:
                    break
            else:
                continue  # none of its literals: the pattern cannot match
            if secret.regex.search(redacted) is None:
                continue
            # Tags already placed are split out so that no pattern matches inside one
            # (a tag's "api-key:1a2b3c4d" must not read as a key=value secret).
            parts = _TAG.split(redacted)
            replace = self._replacer(secret.kind)
            for index in range(0, len(parts), 2):
                parts[index] = secret.regex.sub(replace, parts[index])
            redacted = "".join(parts)
        return text if redacted == text else redacted

    def _replacer(self, kind: str) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            group = match.lastindex or 0
            secret = match.group(group)
            if not secret or secret.startswith(_TAG_PREFIX):
                return match.group(0)
            start, end = match.span(group)
            whole, offset = match.group(0), match.start()
            return whole[: start - offset] + self.tag(kind, secret) + whole[end - offset :]

        return replace

    def _value(self, value: Any, kind: str | None, rewritten: dict[int, str], counter: Any) -> Any:
        """Rebuild ``value``, visiting strings in the order ``_collect_strings`` lists them.

        ``rewritten`` holds the redacted form of the strings, by that order, in which the
        precise patterns found a secret.
        """
        if isinstance(value, str):
            index = next(counter)
            if kind is not None and value and not value.startswith(_TAG_PREFIX):
                return self.tag(kind, value)
            return rewritten.get(index, value)
        if kind is not None and type(value) is int:
            # A PIN or a one-time code under a secret-named key is a secret as a number
            # too; true, false and null say nothing.
            return self.tag(kind, str(value))
        if isinstance(value, dict):
            changed = False
            out: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = key
                item_kind = kind
                if isinstance(key, str):
                    new_key = rewritten.get(next(counter), key)
                    if item_kind is None:
                        item_kind = secret_key_kind(key)
                new_item = self._value(item, item_kind, rewritten, counter)
                changed = changed or new_key is not key or new_item is not item
                out[new_key] = new_item
            return out if changed else value
        if isinstance(value, list | tuple):
            items = []
            mysql = _runs_mysql(value)
            previous = None
            for item in value:
                new = self._value(item, kind, rewritten, counter)
                # An argv list: the value after --password, curl's -u user:pw, mysql -ppw.
                if kind is None and type(item) is str:
                    found = _argument_secret(previous, item, mysql)
                    if found is not None:
                        found_kind, kept, secret = found
                        new = kept + self.tag(found_kind, secret)
                elif kind is None and type(item) is int and type(previous) is str:
                    option = option_kind(previous)
                    if option is not None:
                        new = self.tag(option, str(item))
                items.append(new)
                previous = item
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items
            return value
        return value


def _collect_strings(value: Any, texts: list[str]) -> bool:
    """Every string value and string key, depth first, in ``Redactor._value`` order.

    Returns whether a key names a secret, or an option in a list is followed by its
    value: those values are replaced whatever they hold.
    """
    if isinstance(value, str):
        texts.append(value)
        return False
    secret_key = False
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                texts.append(key)
                secret_key = secret_key or secret_key_kind(key) is not None
            secret_key = _collect_strings(item, texts) or secret_key
    elif isinstance(value, list | tuple):
        mysql = _runs_mysql(value)
        previous = None
        for item in value:
            secret_key = _collect_strings(item, texts) or secret_key
            if type(item) is str:
                secret_key = secret_key or _argument_secret(previous, item, mysql) is not None
            elif type(item) is int and type(previous) is str:
                secret_key = secret_key or option_kind(previous) is not None
            previous = item
    return secret_key
