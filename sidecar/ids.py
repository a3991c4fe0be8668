"""Sortable unique ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32).

Decision ids sort by time in an export without a separate column, and carry no
information an attacker could use to guess the next one: the random part comes from
the operating system's CSPRNG, drawn in blocks so that an id costs no system call on
the /check path, and turned into characters a block at a time.
"""

from __future__ import annotations

import os
import time

_BLOCK = 4096
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters for every 10-bit value: the time part is 5 lookups, cached per millisecond.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_TIME_SHIFTS = (40, 30, 20, 10, 0)  # 48 bits of milliseconds, as 10 characters
_RANDOM_CHARACTERS = 16  # 80 random bits
# Each random byte becomes the character of its low five bits: 256 is a multiple of 32,
# so every character is equally likely, and a block is turned into text by one call.
_CHARACTER_OF_BYTE = bytes.maketrans(bytes(range(256)), (_CROCKFORD * 8).encode("ascii"))


class _RandomPool:
    """The random part of ULIDs, 16 characters at a time, cut from blocks of
    ``os.urandom`` already in Crockford base32 (five random bits a character)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._text = ""
        self._offset = 0

    def take(self) -> str:
        start = self._offset
        if start + _RANDOM_CHARACTERS > len(self._text):
            self._text = os.urandom(_BLOCK).translate(_CHARACTER_OF_BYTE).decode("ascii")
            start = 0
        self._offset = start + _RANDOM_CHARACTERS
        return self._text[start : start + _RANDOM_CHARACTERS]


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
    return _time_part(millis) + _pool.take()
