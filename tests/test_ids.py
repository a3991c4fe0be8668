"""Decision ids: ULIDs (Crockford base32, time-sortable, unique)."""

from __future__ import annotations

import os

from sidecar.ids import new_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(ulid: str) -> int:
    value = 0
    for char in ulid:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_ulid_shape_time_and_uniqueness() -> None:
    ids = [new_ulid(1_700_000_000.123) for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and set(i) <= set(CROCKFORD) for i in ids)
    assert {decode(i) >> 80 for i in ids} == {1_700_000_000_123}


def test_ulids_sort_by_time() -> None:
    assert new_ulid(1000.0) < new_ulid(1000.002) < new_ulid(2000.0)


def test_a_forked_child_draws_fresh_randomness() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_ulid(5.0).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 26).decode()
    assert child != new_ulid(5.0)


def test_every_bit_of_time_and_randomness_is_encoded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sidecar import ids

    for random in (0, 1, (1 << 80) - 1, 0x0123456789ABCDEF0123):
        monkeypatch.setattr(ids._pool, "take", lambda r=random: r)
        for millis in (0, 1, 1_700_000_000_123, (1 << 48) - 1):
            assert decode(new_ulid(millis / 1000)) == (millis << 80) | random
