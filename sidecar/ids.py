"""Sortable unique ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32).

Decision ids sort by time in an export without a separate column, and carry no
information an attacker could use to guess the next one: the random part comes from
the operating system's CSPRNG, drawn in blocks so that an id costs no system call on
the /check path.
"""

from __future__ import annotations

import os
import time

_BLOCK = 4096
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters for every 10-bit value: a ULID is 13 lookups, not a base32 encoder run.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_TIME_SHIFTS = (40, 30, 20, 10, 0)  # 48 bits of milliseconds, as 10 characters
_RANDOM_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)  # 80 random bits, as 16 characters


class _RandomPool:
    """80-bit random values cut from blocks of ``os.urandom``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._block = b""
        self._offset = 0

    def take(self) -> int:
        if self._offset + 10 > len(self._block):
            self._block, self._offset = os.urandom(_BLOCK), 0
        start = self._offset
        self._offset = start + 10
        return int.from_bytes(self._block[start : start + 10], "big")


_pool = _RandomPool()
# A forked child must not hand out its parent's unread random bytes.
os.register_at_fork(after_in_child=_pool.reset)
_time_cache: tuple[int, str] = (-1, "")


def _time_part(millis: int) -> str:
    global _time_cache
    cached, text = _time_cache
    if cached != millis:
        text = "".join([_PAIRS[(millis >> shift) & 1023] for shift in _TIME_SHIFTS])
        _time_cache = (millis, text)
    return text


def new_ulid(now: float | None = None) -> str:
    """26 characters: 10 for the time in milliseconds, 16 for 80 random bits."""
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    random = _pool.take()
    return _time_part(millis) + "".join(
        [_PAIRS[(random >> shift) & 1023] for shift in _RANDOM_SHIFTS]
    )
