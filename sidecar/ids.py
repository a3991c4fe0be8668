"""Sortable unique ids (ULID: 48-bit millisecond time + 80 random bits, Crockford base32).

Decision ids sort by time in an export without a separate column, and carry no
information an attacker could use to guess the next one: the random part comes from
the operating system's CSPRNG, drawn in blocks so that an id costs no system call on
the /check path.
"""

from __future__ import annotations

import base64
import os
import time

_BLOCK = 4096
# RFC 4648 base32 spelled in Crockford's alphabet (what ULIDs use).
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


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


def new_ulid(now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | _pool.take()
    # 20 bytes are 32 base32 characters; the last 26 carry the 128-bit value.
    encoded = base64.b32encode(value.to_bytes(20, "big"))[6:]
    return encoded.translate(_TO_CROCKFORD).decode("ascii")
