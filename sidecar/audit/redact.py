"""Secret redaction before an audit record is written (CONTRACT section 4).

Tokens and keys found anywhere in a record body are replaced by
``[REDACTED:<kind>:<first 8 hex of HMAC-SHA256(key, secret)>]``: the same secret always
gives the same tag, so an investigator can correlate records, yet the tag reveals
nothing without the key (and a low-entropy password cannot be brute-forced from it).

Redaction runs on every decision record, so it has a fast path: one RE2 scan of the
record's canonical JSON for anything that could start a secret. Only when that screen
hits (rare) are the body's strings walked and rewritten with the precise patterns. The
screen is deliberately a superset of the precise patterns; ``tests/audit`` checks that.
"""

from __future__ import annotations

import bisect
import functools
import hmac
import itertools
import re
from collections.abc import Callable
from hashlib import sha256
from typing import Any

import re2

# Anything a precise pattern or a sensitive key name could contain, case-insensitively.
# It runs over canonical JSON bytes, where string contents appear with JSON escapes;
# none of the trigger words contain characters that JSON escapes.
_SCREEN_PATTERN = (
    r"-----BEGIN|authori[sz]ation|cookie|bearer|api-key|auth-token|://[^\s/]*@|eyJ"
    r"|gh[pousr]_|github_pat_|AKIA|ASIA|ABIA|ACCA|xox[a-z]-|sk-|[sr]k_live_|AIza"
    r"|password|passwd|pwd|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential"
)
_screen_options = re2.Options()
_screen_options.case_sensitive = False
_SCREEN = re2.compile(_SCREEN_PATTERN.encode("ascii"), options=_screen_options)
_SCREEN_TEXT = re2.compile(_SCREEN_PATTERN, options=_screen_options)

_SECRET_NAMES = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token"
    r"|auth[_-]?token|id[_-]?token|api[_-]?key|apikey|secret[_-]?key|access[_-]?key"
    r"|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|session[_-]?token|credentials?"
)
# A value after "name=" or "name:": quoted (the secret is inside the quotes) or bare.
_VALUE = r"""(?:"([^"]*)"|'([^']*)'|([^\s&;,"'<>}\]]+))"""
_FLAGS = re.ASCII


def _pattern(regex: str, ignore_case: bool = False) -> re.Pattern[str]:
    return re.compile(regex, _FLAGS | (re.IGNORECASE if ignore_case else 0))


# (kind, pattern): the secret is the last group that took part in the match. Order
# matters: earlier kinds win where patterns overlap (an Authorization header carrying a
# JWT is reported as "authorization").
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        _pattern(
            r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$))"
        ),
    ),
    (
        "authorization",
        _pattern(
            r"\b(?:proxy-)?authori[sz]ation[\"']?\s*[:=]\s*[\"']?"
            r"(?:(?:bearer|basic|digest|token|negotiate|aws4-hmac-sha256)\s+)?"
            r"([^\s\"',;]+(?:[ \t]*,[ \t]*[A-Za-z]+=[^\s\"',;]+)*)",
            ignore_case=True,
        ),
    ),
    ("cookie", _pattern(r"\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?([^\"'\n]+)", True)),
    (
        "api-key",
        _pattern(r"\b(?:x-)?(?:api-key|auth-token)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]+)", True),
    ),
    ("url-credentials", _pattern(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@")),
    ("jwt", _pattern(r"\b(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)")),
    ("github-token", _pattern(r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_\w{20,255})")),
    ("aws-access-key", _pattern(r"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b")),
    ("slack-token", _pattern(r"\b(xox[a-z]-[A-Za-z0-9-]{8,})")),
    ("api-key", _pattern(r"(?<![A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,})")),
    ("api-key", _pattern(r"\b([sr]k_live_[A-Za-z0-9]{16,})")),
    ("api-key", _pattern(r"\b(AIza[0-9A-Za-z_-]{35})")),
    ("password", _pattern(rf"\b(?:password|passwd|pwd|pass)\b[\"']?\s*[:=]\s*{_VALUE}", True)),
    ("secret", _pattern(rf"\b(?:{_SECRET_NAMES})\b[\"']?\s*[:=]\s*{_VALUE}", True)),
    ("bearer-token", _pattern(r"\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)", True)),
]

# Object keys whose string values are secrets whatever they look like, compared after
# lower-casing and dropping '-' and '_': the exact names, then any name ending in one of
# the suffixes ("apiToken", "dbPassword", "awsSecretAccessKey" ...).
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


@functools.lru_cache(maxsize=4096)
def secret_key_kind(key: str) -> str | None:
    """The redaction kind for values under object key ``key``, or None."""
    name = key.lower().replace("-", "").replace("_", "")
    kind = _SECRET_KEYS.get(name)
    if kind is not None:
        return kind
    for suffix, suffix_kind in _SECRET_KEY_SUFFIXES:
        if name.endswith(suffix):
            return suffix_kind
    return None


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

    @staticmethod
    def may_hold_secret(encoded: bytes) -> bool:
        """Fast screen over canonical JSON: False means there is nothing to redact."""
        return _SCREEN.search(encoded) is not None

    def redact(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``body`` with every secret replaced; ``body`` itself if none found.

        One RE2 scan over all the body's strings (joined by newlines, which no screen
        match can cross) finds the few that may hold a secret; only those go through
        the precise patterns. Values under secret-named keys are replaced whole.
        """
        texts: list[str] = []
        _collect_strings(body, texts)
        flagged: set[int] = set()
        if texts:
            joined = "\n".join(texts)
            ends = list(itertools.accumulate(len(text) + 1 for text in texts))
            for match in _SCREEN_TEXT.finditer(joined):
                flagged.add(bisect.bisect_right(ends, match.start()))
        counter = itertools.count()
        result = self._value(body, None, flagged, counter)
        assert isinstance(result, dict)
        return result

    def redact_text(self, text: str) -> str:
        """Replace every secret found in one string."""
        if _SCREEN_TEXT.search(text) is None:
            return text
        return self._rewrite(text)

    def _rewrite(self, text: str) -> str:
        redacted = text
        for kind, pattern in _PATTERNS:
            if pattern.search(redacted) is None:
                continue
            # Tags already placed are split out so that no pattern matches inside one
            # (a tag's "api-key:1a2b3c4d" must not read as a key=value secret).
            parts = _TAG.split(redacted)
            replace = self._replacer(kind)
            for index in range(0, len(parts), 2):
                parts[index] = pattern.sub(replace, parts[index])
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

    def _value(self, value: Any, kind: str | None, flagged: set[int], counter: Any) -> Any:
        """Rebuild ``value``, visiting strings in the order ``_collect_strings`` lists them."""
        if isinstance(value, str):
            index = next(counter)
            if kind is not None and value and not value.startswith(_TAG_PREFIX):
                return self.tag(kind, value)
            return self._rewrite(value) if index in flagged else value
        if isinstance(value, dict):
            changed = False
            out: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = key
                item_kind = kind
                if isinstance(key, str):
                    if next(counter) in flagged:
                        new_key = self._rewrite(key)
                    if item_kind is None:
                        item_kind = secret_key_kind(key)
                new_item = self._value(item, item_kind, flagged, counter)
                changed = changed or new_key is not key or new_item is not item
                out[new_key] = new_item
            return out if changed else value
        if isinstance(value, list | tuple):
            items = [self._value(item, kind, flagged, counter) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items
            return value
        return value


def _collect_strings(value: Any, texts: list[str]) -> None:
    """Every string value and string key, depth first, in ``Redactor._value`` order."""
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                texts.append(key)
            _collect_strings(item, texts)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_strings(item, texts)
