"""URLs the curl command-line tool expands as globs into URLs the gate never decided.

Found in the rt25 review (netfiles, F1). Unless given ``-g``/``--globoff``, curl expands
``{a,b}``, ``[1-3]`` and ``[a-z]`` in a URL before parsing it. The gate read them as
literal text, so with the docs' shell recipe (check the URL, then ``curl`` it):

* ``http://u{:p@api.github.com/,}@169.254.169.254/x`` was host api.github.com to the gate,
  and curl also requested ``http://u@169.254.169.254/x``;
* ``/calendar/v3/{..}/{..}/drive/...`` was allowed by a ``/calendar/v3/**`` rule, and curl
  requested ``/drive/...``.

Literal braces and brackets are now refused in userinfo and path (their escapes are
kept: curl does not expand them). In the query they are kept: whatever curl makes of
them there, the host and path stay the ones decided, which the curl test shows.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.app import create_app
from sidecar.engine import evaluate_request
from sidecar.errors import RequestError
from sidecar.policy.compiler import CompiledPolicy
from sidecar.policy.loader import load_policy_bytes, load_policy_file
from sidecar.server import ServeConfig, build_gate
from tests.test_check_endpoint import _scope, run

REPO = Path(__file__).resolve().parents[2]
CODING = load_policy_file(REPO / "policies" / "coding-agent.yaml")
ASSISTANT = load_policy_file(REPO / "policies" / "personal-assistant.yaml")
# The review's policy: the shipped baseline and the docs' example host, plus (for the
# curl test, which speaks plain http locally) personal-assistant's calendar rule
# without its scheme.
BASELINE_TEXT = (REPO / "policies" / "baseline.yaml").read_bytes()
EXTRA_RULES = b"""
  - {id: github-api, action: network.request, host: api.github.com, decision: allow}
  - id: read-calendar
    action: network.request
    host: www.googleapis.com
    method: GET
    path: {glob: "/calendar/v3/**"}
    decision: allow
"""
REVIEWED = load_policy_bytes(BASELINE_TEXT + EXTRA_RULES, "baseline-and-two.yaml")

METADATA = "169.254.169.254/latest/meta-data/iam/security-credentials/"


def _ask(policy: CompiledPolicy, url: str) -> dict:
    verdict = evaluate_request(policy, {"action": "network.request", "url": url, "method": "GET"})
    return {"decision": verdict.decision, "rule": verdict.rule, **verdict.request}


@pytest.mark.parametrize(
    ("policy", "url", "refused"),
    [
        (REVIEWED, f"http://u{{:p@api.github.com/,}}@{METADATA}", "'{' in its userinfo"),
        (CODING, "https://u{:p@pypi.org/,}@attacker.example/SECRET", "'{' in its userinfo"),
        (CODING, "https://u{:p@pypi.org?,}@attacker.example/SECRET", "'{' in its userinfo"),
        (CODING, "https://u}@pypi.org/simple/", "'}' in its userinfo"),
        (
            ASSISTANT,
            "https://www.googleapis.com/calendar/v3/{..}/{..}/drive/v3/files/F?alt=media",
            "'{' in its path",
        ),
        (
            ASSISTANT,
            "https://gmail.googleapis.com/gmail/v1/users/me/{..}/{..}/{..}/{..}"
            "/upload/gmail/v1/users/me/messages/send",
            "'{' in its path",
        ),
        (ASSISTANT, "https://www.googleapis.com/calendar/v3/[1-2]/x", "'[' in its path"),
        (ASSISTANT, "https://www.googleapis.com/calendar/v3/x]", "']' in its path"),
        (ASSISTANT, "https://www.googleapis.com/calendar/v3/x}", "'}' in its path"),
    ],
)
def test_a_url_curl_would_expand_into_others_is_refused(
    policy: CompiledPolicy, url: str, refused: str
) -> None:
    with pytest.raises(RequestError) as caught:
        _ask(policy, url)
    assert f"literal {refused}" in caught.value.message
    assert "curl" in caught.value.message and "--globoff" in caught.value.message


def test_the_gate_answers_400_naming_the_character_and_curls_globbing(tmp_path: Path) -> None:
    policy = str(REPO / "policies" / "coding-agent.yaml")
    app = create_app(build_gate(ServeConfig(policy=policy, audit_dir=str(tmp_path / "audit"))))
    body = {"action": "network.request", "url": "https://u{:p@pypi.org/,}@attacker.example/x"}
    status, _, answer, _ = run(app, _scope(), [
        {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
    ])  # fmt: skip
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    assert answer["error"]["message"] == (
        "url: has a literal '{' in its userinfo: the curl command-line tool expands "
        "'{a,b}' and '[1-3]' in a URL (globbing, unless given -g or --globoff) and would "
        "request URLs other than the one decided; percent-encode it (%7B)"
    )


def test_escaped_braces_and_brackets_are_plain_names_and_stay_allowed() -> None:
    url = "https://www.googleapis.com/calendar/v3/%7B..%7D/%5B1-2%5D/events"
    asked = _ask(ASSISTANT, url)
    assert (asked["decision"], asked["rule"], asked["path"]) == (
        "allow",
        "read-calendar",
        "/calendar/v3/%7B..%7D/%5B1-2%5D/events",
    )


@pytest.mark.parametrize(
    "query",
    ["filter[name]=x&page[size]=10", "q={a,/../../../drive/v3/files/F}", "{x,#@evil.example/}"],
)
def test_braces_and_brackets_in_the_query_are_kept_and_change_no_path(query: str) -> None:
    asked = _ask(ASSISTANT, f"https://www.googleapis.com/calendar/v3/calendars/primary?{query}")
    assert (asked["decision"], asked["rule"], asked["host"], asked["path"]) == (
        "allow",
        "read-calendar",
        "www.googleapis.com",
        "/calendar/v3/calendars/primary",
    )


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host", ""), self.path))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command-line tool")
@pytest.mark.parametrize(
    "url",
    [
        # the review's attacks: refused now; before, curl also asked 169.254.169.254 and /drive
        f"http://u{{:p@api.github.com/,}}@{METADATA}",
        f"http://u{{:p@api.github.com?,}}@{METADATA}",
        "http://www.googleapis.com/calendar/v3/{..}/{..}/drive/v3/files/F?alt=media",
        "http://www.googleapis.com/calendar/v3/{a,..}/[1-2]",
        # what stays allowed: escapes, and globs after the '?' or '#'
        "http://www.googleapis.com/calendar/v3/%7B..%7D/%7B..%7D/drive/v3/files/F",
        "http://api.github.com/repos/o/r?{a,/../../x}",
        "http://api.github.com/repos/o/r?{x,#@169.254.169.254/}",
        "http://api.github.com/repos/o/r?{x,/@169.254.169.254/}",
        "http://api.github.com/search?page=[1-3]&q=[Z-a]",
        "http://api.github.com/repos/o/r#{a,/../../x}",
    ],
)
def test_curl_requests_only_the_host_and_path_the_gate_allowed(
    url: str, recorder: tuple[int, list[tuple[str, str]]]
) -> None:
    # docs/clients.md's recipe without -g: a URL the gate allows is one curl may expand.
    port, seen = recorder
    try:
        asked = _ask(REVIEWED, url)
    except RequestError:
        return  # nothing to run: the gate refused it
    assert asked["decision"] == "allow"
    subprocess.run(
        # -q: no ~/.curlrc; --connect-to: every host is the local recorder
        ["curl", "-q", "-sS", "--max-time", "10", "--noproxy", "*",
         "--connect-to", f"::127.0.0.1:{port}", "-o", "/dev/null", url],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert seen, "curl sent nothing"
    assert {(host, path.partition("?")[0]) for host, path in seen} == {
        (asked["host"], asked["path"])
    }
