"""A list or watch restricted by ``fieldSelector=metadata.name=X`` is named X only when
the apiserver certainly decodes its other list options; ``limit`` and ``timeoutSeconds``
decode as Go int64, so the name holds up to 2^63-1 and is dropped one past either end.

Mutation testing found only a 20-digit value pinned: the int64 bounds themselves could
move without a test failing.
"""

from __future__ import annotations

import pytest

from sidecar.normalise.k8s import resolve_request

BASE = "/api/v1/namespaces/o/secrets?fieldSelector=metadata.name=db&"


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("limit=9223372036854775807", "db"),
        ("limit=9223372036854775808", ""),
        ("limit=-9223372036854775808", "db"),
        ("limit=-9223372036854775809", ""),
        ("timeoutSeconds=+9223372036854775807", "db"),
        ("timeoutSeconds=9999999999999999999", ""),
        ("limit=0009223372036854775807", "db"),  # leading zeros are not significant
    ],
)
def test_int64_list_options_keep_the_name_only_in_range(option: str, name: str) -> None:
    attributes = resolve_request("GET", BASE + option.replace("+", "%2B"))
    assert (attributes.verb, attributes.resource, attributes.name) == ("list", "secrets", name)
