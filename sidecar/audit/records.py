"""Audit record envelope: fields, types and timestamps (CONTRACT section 4).

Every record is one canonical JSON object carrying ``seq``, ``ts``, ``type`` and ``prev``
beside the body's own keys; the line on disk is those canonical bytes plus ``\\n``.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

ZERO_HASH = "0" * 64
ENVELOPE_KEYS = frozenset({"seq", "ts", "type", "prev"})
RECORD_TYPES = frozenset(
    {
        "startup",
        "policyLoaded",
        "policyRejected",
        "decision",
        "invalidRequest",
        "approval",
        "checkpoint",
        "recovery",
        "shutdown",
    }
)
# ASCII digits: RFC 3339 has no others (a bare \d would also take other scripts' digits).
TS_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _second_prefix(seconds: int) -> str:
    # Cached per second, and for several seconds at once: a check that opens an approval
    # formats its expiry (minutes ahead) between two records, and a single-entry cache
    # would run strftime twice for each such check.
    # isoformat, not strftime("%Y"): glibc writes the year 999 as "999", which would
    # sort after "2026" in the string comparisons of export's bounds.
    return (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")[:19]


def format_ts(time_ns: int | None = None) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-21T22:10:00.123456Z``."""
    if time_ns is None:
        time_ns = time.time_ns()
    seconds, fraction = divmod(time_ns // 1000, 1_000_000)
    return f"{_second_prefix(seconds)}.{fraction:06d}Z"


def parse_time_bound(text: str) -> str:
    """Turn a user's ``--since``/``--until`` into the record ``ts`` form for comparison.

    Accepts RFC 3339 date-times with ``Z`` or an offset (any fraction) and plain dates
    (midnight UTC). Raises ValueError for anything else.
    """
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        moment = datetime.fromisoformat(value).replace(tzinfo=UTC)
    else:
        if not re.fullmatch(
            r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value
        ):
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    # fromisoformat drops digits past the microsecond. Records carry microseconds, so a
    # bound between two of them selects exactly what the next microsecond up does, for
    # --since (at or after) and --until (before) alike.
    fraction = re.search(r"\.(\d+)", value)
    if fraction is not None and fraction.group(1)[6:].strip("0"):
        micros += 1
    try:
        return format_ts(micros * 1000)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is in year 0 in UTC, which no record can carry.
        raise ValueError(f"out of the range of years 1 to 9999 in UTC: {text!r}") from None


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(prefix: str) -> int:
    moment = datetime.strptime(prefix, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(seconds=1)


def ts_to_epoch_ms(ts: str) -> int:
    """Milliseconds since the epoch of a record ``ts`` (exports run this per row)."""
    if not TS_PATTERN.fullmatch(ts):
        raise ValueError(f"not a record timestamp: {ts!r}")
    return _epoch_seconds(ts[:19]) * 1000 + int(ts[20:23])


def is_hex_hash(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None
