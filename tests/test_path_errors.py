"""A bad path is refused with a message that names the field and says what is wrong.

Mutation testing showed the existing path tests only asserted "invalid" and the field:
an empty path given with a cwd would have been joined to the cwd and evaluated as the
cwd itself (``{"path": "", "cwd": "/app/data"}`` read as ``/app/data``) without a
test failing, and the messages a client sees were pinned nowhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.normalise.paths import MAX_PATH_BYTES, normalise_path
from sidecar.policy.loader import load_policy_bytes

# Everything under /app/data is allowed, so a path that slipped through as that
# directory would be allowed, not refused.
ALLOW_DATA = load_policy_bytes(
    b"version: 1\nrules:\n"
    b"  - {id: data, action: 'file.*', decision: allow, path: {glob: '/app/data/**'}}\n"
    b"  - {id: root, action: 'file.*', decision: allow, path: /app/data}\n",
    "allow-data.yaml",
)


def _error(body: dict[str, Any]) -> str:
    with pytest.raises(RequestError) as caught:
        evaluate_request(ALLOW_DATA, {"action": "file.read", **body})
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"path": "", "cwd": "/app/data"}, "path: must not be empty"),
        ({"path": ""}, "path: must not be empty"),
        (
            {"path": "/app/data/x", "realPath": "", "cwd": "/app/data"},
            "realPath: must not be empty",
        ),
        ({"path": "x", "cwd": ""}, "cwd: must not be empty"),
        ({"path": "x"}, "path: is relative and no cwd was given"),
        ({"path": "x", "cwd": "app/data"}, "cwd: must be absolute"),
        ({"path": "x", "cwd": "/app/data\x00"}, "cwd: must not contain NUL bytes"),
        ({"path": "/app/data/x\x00"}, "path: must not contain NUL bytes"),
        ({"path": "/app/data/" + "a" * MAX_PATH_BYTES}, "path: is longer than 4096 bytes"),
        (
            {"path": "x" * 3000, "cwd": "/app/data/" + "y" * 1500},
            "path: is longer than 4096 bytes",
        ),
    ],
)
def test_a_bad_path_is_refused_with_the_field_and_the_problem(
    body: dict[str, Any], message: str
) -> None:
    assert _error(body) == message


def test_the_honest_spellings_next_to_those_errors_are_allowed() -> None:
    # The same requests, made valid, are allowed: the errors above are not denials by
    # accident of the policy.
    for body in (
        {"path": "x", "cwd": "/app/data"},
        {"path": "/app/data/x", "realPath": "x", "cwd": "/app/data"},
        {"path": "/app/data/" + "a" * (MAX_PATH_BYTES - len("/app/data/"))},
    ):
        verdict = evaluate_request(ALLOW_DATA, {"action": "file.read", **body})
        assert verdict.decision == "allow", body


@pytest.mark.parametrize(
    ("path", "cwd", "message"),
    [
        ("x", "relative/dir", "cwd: must be absolute"),
        ("x", "", "cwd: must not be empty"),
        ("x", "/tmp\x00", "cwd: must not contain NUL bytes"),
        ("x", None, "path: is relative and no cwd was given"),
    ],
)
def test_normalise_path_refuses_a_cwd_it_cannot_join_to(
    path: str, cwd: str | None, message: str
) -> None:
    # The shell analyser joins redirection targets and ``cd`` arguments to the
    # directory it tracked; a relative or broken one must never yield a relative path.
    with pytest.raises(RequestError) as caught:
        normalise_path(path, cwd)
    assert str(caught.value) == message


@pytest.mark.parametrize("action", ["file.read", "process.exec"])
def test_a_relative_cwd_is_called_relative_not_missing(action: str) -> None:
    # It used to read "cwd: is relative and no cwd was given", which blames a cwd the
    # client did send.
    body: dict[str, Any] = {"action": action, "cwd": "app/data"}
    body.update({"path": "x"} if action == "file.read" else {"argv": ["ls"]})
    with pytest.raises(RequestError) as caught:
        evaluate_request(ALLOW_DATA, body)
    assert (caught.value.field, caught.value.message) == ("cwd", "must be absolute")
