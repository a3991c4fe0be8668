"""The one rule for every timeout the client takes (the Gate's and its guarded helpers').

Its own module so that the helpers (fetch, kube, run) can use it without importing
``gate``, which imports them.
"""

from __future__ import annotations

import math

# The longest timeout, in seconds: 2^31 - 1 ms, the longest timer the JS client can set
# (both clients take the same timeouts).
MAX_TIMEOUT = 2_147_483.647


def valid_timeout(name: str, value: object, *, zero_allowed: bool = False) -> float:
    """``value`` if it is a finite number of seconds above 0 (or 0 when ``zero_allowed``)
    and at most ``MAX_TIMEOUT``, else ``ValueError``. ``None``, NaN, a negative or an
    infinite timeout would fail every check, or wait forever; the JS client applies the
    same rule in milliseconds (``RangeError``)."""
    valid = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero_allowed else value > 0)
        and value <= MAX_TIMEOUT
    )
    if not valid:
        least = "0 or more" if zero_allowed else "more than 0"
        raise ValueError(
            f"{name} must be a finite number of seconds, {least} and at most {MAX_TIMEOUT}, "
            f"not {value!r}"
        )
    return float(value)  # type: ignore[arg-type]
