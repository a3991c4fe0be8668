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


def test_every_bit_of_time_is_encoded() -> None:
    for millis in (0, 1, 1_700_000_000_123, (1 << 48) - 1):
        assert decode(new_ulid(millis / 1000)) >> 80 == millis


def test_the_random_part_is_the_low_five_bits_of_each_random_byte(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sidecar import ids

    # Every byte value in turn: the high three bits must not change the character.
    monkeypatch.setattr(ids.os, "urandom", lambda n: bytes(range(256)) * (n // 256))
    ids._pool.reset()
    try:
        randoms = [new_ulid(0.0)[10:] for _ in range(3)]
    finally:
        ids._pool.reset()  # the rest of the block is no longer random
    assert randoms == ["0123456789ABCDEF", "GHJKMNPQRSTVWXYZ", "0123456789ABCDEF"]


def test_every_character_of_the_random_part_is_equally_likely() -> None:
    counts = [dict.fromkeys(CROCKFORD, 0) for _ in range(16)]
    for _ in range(20_000):
        for position, char in enumerate(new_ulid()[10:]):
            counts[position][char] += 1
    # 625 expected per character and position; a skewed mapping (a character never
    # drawn, or one drawn twice as often) is far outside this band, chance is not.
    assert all(450 < count < 800 for position in counts for count in position.values())
