"""Bounded fuzzing of the whole /check path: no input escapes as a 500 or as an allow.

Each parser has its own "raises only RequestError" property next to its tables
(``test_hosts``, ``test_k8s_requestinfo``, ``test_commands``). This suite fuzzes what
they feed: whole request bodies, generated per action with hostile values in every
field, wrong types, extra fields, broken JSON and raw bytes.

* In process, many examples: ``parse_json_body`` -> ``parse_request`` ->
  ``normalise_request`` -> ``decide`` raises nothing but ``RequestError`` (anything else
  is what the HTTP app answers 500).
* Over HTTP against the real daemon, a few hundred examples: every answer is a 200, 400
  or 413 with a JSON body; ``allowed`` is true only in a 200 whose decision is allow;
  every answer has its audit record; and the daemon is still healthy and still
  deciding correctly at the end.
"""

from __future__ import annotations

import json
import math
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.engine import decide
from sidecar.errors import RequestError
from sidecar.normalise.request import normalise_request
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes
from sidecar.request import MAX_BODY_BYTES, parse_body, parse_json_body, parse_request

POLICY = """
version: 1
defaultAction: deny
rules:
  - {id: data, action: "file.*", path: {glob: "/app/data/**"}, decision: allow}
  - {id: etc, action: "file.*", path: {glob: "/etc/**"}, decision: deny}
  - {id: tools, action: process.exec, command: [git, ls, echo, cat], decision: allow}
  - {id: no-rm, action: process.exec, command: rm, decision: deny}
  - {id: apis, action: network.request, host: {in: [api.openai.com, example.com]}, decision: allow}
  - {id: private, action: network.request, host: {cidr: [127.0.0.0/8, 169.254.0.0/16, "::1/128"]}, decision: deny}
  - {id: reads, action: k8s.request, verb: [get, list, watch], namespace: apps, decision: allow}
  - {id: deletes, action: k8s.request, verb: delete, decision: require_approval}
  - {id: healthz, action: k8s.request, verb: get, path: /healthz, decision: allow}
"""

ACTIONS = [
    "file.read",
    "file.write",
    "file.delete",
    "process.exec",
    "network.request",
    "k8s.request",
]

# ------------------------------------------------------------------ generators

# Bodies are built from plain pieces by a random.Random seeded from one integer that
# Hypothesis draws (and reports and replays on failure): far cheaper than composing
# strategies or drawing every choice through Hypothesis, so the same seconds buy many
# more examples. Nothing is shrunk; the failing body is printed whole.

# Pieces attackers use, per kind of value; mixed with random code points.
_NASTY = [
    *("", " ", "\t", "\n", "\r", "\x00", "\x01", "\x7f", "\u0085", "\u2028", "\ufeff"),
    *("\u202e", "\u200b", "\uff0e", "\uff0f", "\u3002", "\u2024", "ß", "İ", "é", "\U0001f600"),
    *("%00", "%2e", "%2E%2E", "%2f", "%5c", "%25", "%zz", "%", "\\", "'", '"', "`", "$"),
    *("{", "}", "[", "]", "(", ")", "<", ">", "|", "&", ";", "*", "?", "~", "#", "@", ":"),
    *("..", ".", "/", "//", "-", "--", "=", ",", "+", "!", "a" * 300),
]
_SEGMENTS = ["app", "data", "etc", "shadow", "x", "..", ".", "", "secrets", "tmp", "ü"]
_PATH_PIECES = [*_NASTY, "/app/data/", "/etc/shadow", "/app/data/../../etc", "x", "../", "./"]
_HOSTS = [
    *("api.openai.com", "example.com", "EXAMPLE.com.", "127.0.0.1", "0x7f.1", "2130706433"),
    *("[::1]", "[::ffff:127.0.0.1]", "[64:ff9b::a9fe:a9fe]", "169.254.169.254.", "b\u00fccher.de"),
    *("xn--bcher-kva.de", "a.b.c.d.e", "1.2.3.4.5", "[fe80::1%25eth0]", "[::127.0.0.1]"),
]
_URL_PIECES = [
    *_NASTY,
    *_HOSTS,
    *("http://", "https://", "ws://", "ftp://", "file://", "gopher://", "HTTP://", "//"),
    *("user:pw@", "@", ":80", ":443", ":0", ":65536", ":99999999999", "/v1/x", "?q=1", "#f"),
]
_WORDS = [
    *("git", "status", "rm", "-rf", "/", "ls", "bash", "sh", "-c", "env", "sudo", "xargs"),
    *("eval", "timeout", "5", "nice", "find", "-exec", "{}", "\\;", "cat", "echo", "x", "./x"),
    *("/bin/rm", "'ls; rm x'", '"a b"', "$x", "$(ls)", "`ls`", "*", "~", "{a,b}", "PATH=/tmp"),
]
_OPERATORS = [";", "&&", "||", "|", "&", "\n", "> /etc/passwd", "< /etc/x", "2>&1", ">> o"]
_COMMAND_PIECES = [
    *_NASTY,
    *_WORDS,
    *_OPERATORS,
    *("$(", "${", "$((", "<(", ">(", "<<", "<<<", "EOF", ">&", "&>", "|&", ";;", "case", "esac"),
    *("if", "then", "fi", "for", "do", "done", "while", "function", "f()", "coproc", "exec"),
    *("source", "alias", "trap", "LD_PRELOAD=x", "$'\\x72m'", "\\\n", "#", "!", "[[", "]]"),
]
_K8S_PREFIXES = ["/api/v1", "/apis/apps/v1", "/api/v1/watch", "/api/v1/proxy", "/apis", "/api"]
_K8S_PIECES = [
    *_NASTY,
    *("/namespaces", "/apps", "/kube-system", "/pods", "/web", "/exec", "/attach", "/proxy"),
    *("/portforward", "/watch", "/log", "/status", "/finalize", "/secrets", "/deployments"),
    *("/nodes", "?watch=1", "&watch=false", "?fieldSelector=", "metadata.name%3Dx"),
    *("?command=sh", "/healthz", "/openapi/v2", "/.."),
]
_METHODS = ["GET", "get", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"]
_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_WRONG: list[Any] = [None, True, False, 0, -1, 1.5, 1e300, "", [], {}, ["x"], {"a": 1}]
_INTS = [0, 1, 80, 443, 65535, 65536, -1, 2**31, 2**63, -(2**63) - 1, 10**30]
# (low, high, weight): mostly ASCII, now and then a lone surrogate (invalid UTF-8).
_CODE_POINT_RANGES = [
    (0, 0x7F),
    (0x80, 0x7FF),
    (0x800, 0xFFFF),
    (0x10000, 0x10FFFF),
    (0xD800, 0xDFFF),
]
_CODE_POINT_WEIGHTS = [50, 20, 20, 7, 3]


def _chars(rng: random.Random) -> str:
    ((low, high),) = rng.choices(_CODE_POINT_RANGES, _CODE_POINT_WEIGHTS)
    return "".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 4)))


def _mix(rng: random.Random, pieces: list[str], most: int = 8, sep: str = "") -> str:
    """Join pieces (and now and then random code points) into one hostile string."""
    count = rng.randint(0, most)
    return sep.join(rng.choice(pieces) if rng.random() < 0.8 else _chars(rng) for _ in range(count))


def _path(rng: random.Random) -> str:
    if rng.random() < 0.7:
        lead = "/" if rng.random() < 0.85 else ""
        return lead + "/".join(rng.choice(_SEGMENTS) for _ in range(rng.randint(1, 6)))
    return _mix(rng, _PATH_PIECES)


def _url(rng: random.Random) -> str:
    if rng.random() < 0.6:
        scheme = rng.choice(["http", "https", "ws", "wss", "HTTPS"])
        userinfo = rng.choice(["", "", "", "user@", "u:sk-secret@", "example.com:80@"])
        port = rng.choice(["", "", ":80", ":443", ":8080", ":0", ":65536"])
        path = "/" + "/".join(rng.choice(_SEGMENTS) for _ in range(rng.randint(0, 4)))
        return f"{scheme}://{userinfo}{rng.choice(_HOSTS)}{port}{path}"
    return _mix(rng, _URL_PIECES)


def _command(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _mix(rng, [*_WORDS, *_WORDS, *_OPERATORS], most=10, sep=" ")
    return _mix(rng, _COMMAND_PIECES, most=12, sep=rng.choice(["", " "]))


def _k8s(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        path = rng.choice(_K8S_PREFIXES) + _mix(rng, _K8S_PIECES, most=6)
        if rng.random() < 0.5:
            path = rng.choice(_K8S_PREFIXES) + rng.choice(
                ["/namespaces/apps/pods", "/namespaces/apps/pods/web/exec", "/nodes/n/proxy"]
            )
        return {"method": _maybe_wrong(rng, rng.choice(_METHODS)), "path": _maybe_wrong(rng, path)}
    body: dict[str, Any] = {"verb": _maybe_wrong(rng, rng.choice([*_VERBS, "GET", "x"]))}
    for name in ("group", "version", "resource", "subresource", "namespace", "name"):
        if rng.random() < 0.5:
            plain = rng.choice(["", "apps", "v1", "pods", "exec", "apps", "web", "pods/exec"])
            body[name] = _maybe_wrong(rng, plain if rng.random() < 0.7 else _mix(rng, _NASTY, 3))
    return body


def _maybe_wrong(rng: random.Random, value: Any) -> Any:
    """Mostly the value, sometimes one of the wrong type."""
    return rng.choice(_WRONG) if rng.random() < 0.08 else value


_VALUES: dict[str, Any] = {
    "path": _path,
    "realPath": _path,
    "cwd": _path,
    "argv": lambda rng: [_command(rng) for _ in range(rng.randint(0, 4))] or [],
    "commandLine": _command,
    "url": _url,
    "host": lambda rng: rng.choice(_HOSTS) if rng.random() < 0.6 else _mix(rng, _URL_PIECES),
    "port": lambda rng: rng.choice(_INTS),
    "scheme": lambda rng: rng.choice(["http", "https", "HTTPS", "ws", "ssh", "", "h\u0000"]),
    "method": lambda rng: rng.choice([*_METHODS, "", "G ET", "get\n"]),
    "k8s": _k8s,
    "context": lambda rng: {_mix(rng, _NASTY, 2): rng.choice([*_WRONG, _chars(rng)])},
    "approval": lambda rng: "apr_" + _mix(rng, _NASTY, 2),
    "dryRun": lambda rng: rng.random() < 0.5,
}
# The fields each action takes, in the combinations a client would send.
_SHAPES: dict[str, list[list[str]]] = {
    "file": [["path"], ["path", "cwd"], ["path", "realPath"], ["path", "realPath", "cwd"], []],
    "process.exec": [["argv"], ["commandLine"], ["commandLine", "cwd"], ["argv", "cwd"], []],
    "network.request": [["url"], ["url", "method"], ["host", "port", "scheme"], ["host"], []],
    "k8s.request": [["k8s"], []],
}


def _body(rng: random.Random) -> dict[str, Any]:
    """A /check body shaped like a real request of one action, with hostile values."""
    action = rng.choice(ACTIONS) if rng.random() < 0.92 else _mix(rng, [*ACTIONS, *_NASTY], 2)
    family = "file" if action in ("file.read", "file.write", "file.delete") else action
    fields = list(rng.choice(_SHAPES.get(family, [[]])))
    fields += [name for name in ("context", "approval", "dryRun") if rng.random() < 0.1]
    if rng.random() < 0.1:  # a field of another action, or none at all
        fields.append(rng.choice([*_VALUES, "extra", "Path", "allowed", _chars(rng)]))
    body: dict[str, Any] = {"action": action} if rng.random() < 0.97 else {}
    for name in fields:
        make = _VALUES.get(name)
        body[name] = _maybe_wrong(rng, make(rng)) if make else rng.choice(_WRONG)
    return body


_EDGE_RAW = [
    b'{"action": "file.read", "path": "/app/data/x", "path": "/etc/shadow"}',
    b'{"action": "file.read", "path": "/app/data/x", "context": {"x": NaN}}',
    b'{"action": "file.read", "path": "/app/data/x", "context": {"x": Infinity}}',
    b'{"action": "file.read", "path": "/app/data/x", "context": {"x": 1e999}}',
    b'{"action": "file.read", "path": "/app/data/\\ud800"}',
    b'{"action": "file.read", "path": "/app/data/\\u0000"}',
    b'\xef\xbb\xbf{"action": "file.read", "path": "/app/data/x"}',
    b'{"action": "file.read", "path": "/app/data/x"} {}',
    b'{"action": "file.read", "path": "/app/data/x",}',
    b"{'action': 'file.read', 'path': '/app/data/x'}",
    b'{"action": "file.read", "path": "/app/data/x"}\x00',
    b'"{\\"action\\": \\"file.read\\"}"',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"",
    b"null",
]


def _encode(rng: random.Random, body: Any) -> bytes:
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def _any_body(rng: random.Random) -> bytes:
    """Mostly an encoded body; sometimes garbage, a mutation, a truncation or an edge case."""
    data = _encode(rng, _body(rng))
    kind = rng.random()
    if kind < 0.85:
        return data
    if kind < 0.88:
        return rng.randbytes(rng.randint(0, 100))
    if kind < 0.92:
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        return bytes(mutated)
    if kind < 0.96:
        return data[: rng.randrange(len(data))]
    return rng.choice(_EDGE_RAW)


_BODIES = st.integers(0, 2**64 - 1).map(lambda seed: _any_body(random.Random(seed)))


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return load_policy_bytes(textwrap.dedent(POLICY).encode(), "fuzz.yaml")


# ------------------------------------------------------------------ in process


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_BODIES)
def test_the_pipeline_raises_only_request_errors(policy: CompiledPolicy, body: bytes) -> None:
    try:
        parsed = parse_request(parse_json_body(body))
        verdict = decide(policy, normalise_request(parsed, "fuzz/agent"), parsed)
    except RequestError as exc:
        assert str(exc)  # a message a person can read
        return
    assert verdict.decision in ("allow", "deny", "require_approval")
    assert verdict.allowed == (verdict.decision == "allow")
    json.dumps(verdict.request, allow_nan=False)  # what is recorded is plain JSON


def _outcome(parse: Any) -> Any:
    try:
        return parse().model_dump()
    except RequestError as exc:
        return ("refused", str(exc), exc.field)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_BODIES)
def test_the_gates_body_parse_skips_no_check(body: bytes) -> None:
    """``parse_body`` (which skips the lone-surrogate walk for a body without a ``\\u``
    escape) accepts and refuses exactly what the full parse does, with the same error."""
    assert _outcome(lambda: parse_body(body)) == _outcome(
        lambda: parse_request(parse_json_body(body))
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "process.exec", "argv": ["ls", "\\ud800"]}',
        b'{"action": "file.read", "path": "/x", "context": {"k": ["a", {"\\udc00": 1}]}}',
        b'{"action": "file.read", "path": "/x", "context": {"\\ud83d": 1}}',
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_refused(body: bytes) -> None:
    with pytest.raises(RequestError, match="invalid Unicode escape"):
        parse_body(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"action": "file.read", "path": "/x", "context": {"task": "a\\u0000b"}}',
            "context.task",
        ),
        (b'{"action": "file.read", "path": "/x", "context": {"k": [{"\\u0000": 1}]}}', "context.k"),
        (b'{"action": "file.read", "path": "/x", "approval": "apr_1\\u0000"}', "approval"),
        (b'{"action": "process.exec", "argv": ["ls", "\\u0000"]}', "argv"),
        (b'{"action": "k8s.request", "k8s": {"method": "GET", "path": "/api\\u0000"}}', "k8s.path"),
    ],
)
def test_a_nul_anywhere_in_a_body_is_refused(body: bytes, field: str) -> None:
    """CONTRACT 2.1 lists NUL bytes among the 400s; a field that is only recorded
    (``context``) or looked up (``approval``) is no exception: C code reading the
    record or the id would see it cut short."""
    with pytest.raises(RequestError, match="must not contain NUL bytes") as raised:
        parse_body(body)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "network.request", "host": "example.com", "port": 1' + b"0" * 5000 + b"}",
        b'{"action": "file.read", "path": "/x", "context": {"n": -' + b"9" * 4301 + b"}}",
        b"1" * 4400,
    ],
    ids=["port", "context", "bare"],
)
def test_huge_integers_are_invalid_requests(body: bytes) -> None:
    with pytest.raises(RequestError):
        parse_request(parse_json_body(body))


# ------------------------------------------------------------------ over HTTP


def _check_answer(response: httpx.Response) -> str:
    """Assert the answer is one a fail-closed client can act on; return its kind."""
    assert response.status_code in (200, 400, 413), (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert isinstance(answer["allowed"], bool)
    if response.status_code != 200:
        assert answer["allowed"] is False
        expected = "invalid_request" if response.status_code == 400 else "too_large"
        assert answer["error"]["code"] == expected
        assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
        return "invalid"
    assert answer["decision"] in ("allow", "deny", "require_approval")
    assert answer["allowed"] is (answer["decision"] == "allow")
    assert answer["mode"] == "enforce"
    assert isinstance(answer["audit"]["seq"], int)
    return "decision"


def test_the_daemon_answers_every_fuzzed_body_safely(tmp_path: Path, daemon_factory: Any) -> None:
    policy_file = tmp_path / "fuzz.yaml"
    policy_file.write_text(textwrap.dedent(POLICY))
    gate = daemon_factory(policy_file)
    counts = {"decision": 0, "invalid": 0}

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        _BODIES,
        st.sampled_from(["/check", "/v1/check"]),
        st.sampled_from(_CONTENT_TYPES),
        st.integers(0, 64),
    )
    def post(body: bytes, route: str, content_type: str | None, chunk: int) -> None:
        headers = {"content-type": content_type} if content_type else {}
        content: bytes | Iterator[bytes] = body
        if chunk:  # sent chunked, without a Content-Length, in pieces of `chunk` bytes
            content = iter([body[i : i + chunk] for i in range(0, len(body), chunk)])
        assert gate.client is not None
        response = gate.client.post(route, content=content, headers=headers)
        counts[_check_answer(response)] += 1

    post()
    for body in _EDGE_BODIES:
        counts[_check_answer(gate.check(body))] += 1
        # The same again, chunked: no Content-Length to refuse it by.
        chunks = iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
        counts[_check_answer(gate.check(chunks))] += 1  # type: ignore[arg-type]

    # Still alive, still deciding, both ways.
    assert gate.get("/health").json() == {"status": "ok"}
    assert gate.get("/ready").status_code == 200
    allowed = gate.check({"action": "file.read", "path": "/app/data/x"}).json()
    denied = gate.check({"action": "file.read", "path": "/app/data/../../etc/shadow"}).json()
    assert (allowed["allowed"], denied["allowed"], denied["rule"]) == (True, False, "etc")
    counts["decision"] += 2
    # Every answer was recorded: decisions as decisions, bad requests as invalidRequest.
    records = gate.records()
    kinds = [record["type"] for record in records]
    assert kinds.count("decision") == counts["decision"]
    assert kinds.count("invalidRequest") == counts["invalid"]
    assert counts["decision"] > 20 and counts["invalid"] > 20  # both paths were exercised
    assert [record["seq"] for record in records] == list(range(len(records)))


_CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
]

_EDGE_BODIES: list[bytes] = [
    b"x" * (MAX_BODY_BYTES + 1),
    b'{"action": "file.read", "path": "/' + b"a" * MAX_BODY_BYTES + b'"}',
    b'{"action": "file.read", "path": "/app/data/' + b"a" * (MAX_BODY_BYTES - 50) + b'"}',
    b'{"action": "file.read", "path": "/app/data/x", "context": {"t": "'
    + b"c" * (MAX_BODY_BYTES - 80)
    + b'"}}',
    json.dumps({"action": "process.exec", "commandLine": "(" * 3000 + "ls" + ")" * 3000}).encode(),
    json.dumps({"action": "process.exec", "commandLine": "$(" * 500 + "ls" + ")" * 500}).encode(),
    json.dumps({"action": "process.exec", "commandLine": "bash -c " * 200 + "ls"}).encode(),
    json.dumps({"action": "process.exec", "argv": ["ls"] * 4096}).encode(),
    json.dumps({"action": "process.exec", "argv": ["ls"] * 4097}).encode(),
    json.dumps({"action": "network.request", "url": "http://" + "a." * 2000 + "com/"}).encode(),
    json.dumps({"action": "network.request", "url": "http://x/" + "%2e%2e/" * 3000}).encode(),
    json.dumps({"action": "k8s.request", "k8s": {"method": "GET", "path": "/api" * 5000}}).encode(),
    json.dumps({"action": "file.read", "path": "/" + "/.." * 10000}).encode(),
    json.dumps({"action": "file.read", "path": "/x", "context": {"x": math.pi}}).encode(),
]
