"""Red team: path spellings that have bypassed other agent gates (CONTRACT 2.2, "Paths").

Every case goes end to end: a real policy loaded by the loader, a /check body through
``sidecar.engine.evaluate_request``. Two gates are attacked:

* an allow-list gate (``defaultAction: deny``, reads and writes under ``/app/data``):
  no spelling of a path outside ``/app/data`` may be allowed;
* a deny-list gate (``defaultAction: allow``, deny ``/etc/**`` and the secrets
  directory): every spelling of a denied path must be denied *by the deny rule*, which
  proves it was normalised and not merely refused by default.

A case is refused either as ``deny`` or as an invalid request (answered 400, which a
client treats as deny). The honest spellings must still be allowed, so a test cannot
pass by denying everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import evaluate_request
from sidecar.errors import PolicyError, RequestError
from sidecar.normalise.paths import MAX_PATH_BYTES
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.conftest import load_policy_text

FILE_ACTIONS = ("file.read", "file.write", "file.delete")

ALLOW_LIST = """
version: 1
defaultAction: deny
rules:
  - id: data
    action: "file.*"
    path: {glob: "/app/data/**"}
    decision: allow
  - id: secrets
    action: "file.*"
    path: {glob: "/app/data/secrets/**"}
    decision: deny
  - id: reports
    action: file.write
    path: {glob: "/app/data/reports/**"}
    decision: require_approval
"""

DENY_LIST = """
version: 1
defaultAction: allow
rules:
  - id: etc
    action: "file.*"
    path: {glob: "/etc/**"}
    decision: deny
  - id: shadow
    action: "file.*"
    path: /etc/shadow
    decision: deny
  - id: secrets
    action: "file.*"
    path: {glob: "/app/data/secrets/**"}
    decision: deny
"""


def _load(text: str) -> CompiledPolicy:
    return load_policy_text(text, "paths.yaml")


def _outcome(
    policy: CompiledPolicy, body: dict[str, Any], action: str = "file.read"
) -> tuple[str, str | None]:
    """(decision, rule) or ("invalid", field): an invalid request is answered 400."""
    try:
        verdict = evaluate_request(policy, {"action": action, **body})
    except RequestError as exc:
        return "invalid", exc.field
    return verdict.decision, verdict.rule


def _refused(outcome: tuple[str, str | None]) -> bool:
    return outcome[0] in ("deny", "invalid")


# ------------------------------------------------------------------ honest spellings

HONEST = [
    ({"path": "/app/data/x.csv"}, "/app/data/x.csv"),
    ({"path": "/app/data/sub/dir/x.csv"}, "/app/data/sub/dir/x.csv"),
    ({"path": "/app/data/sub/../x.csv"}, "/app/data/x.csv"),
    ({"path": "/app/data/./x.csv"}, "/app/data/x.csv"),
    ({"path": "//app//data//x.csv"}, "/app/data/x.csv"),
    ({"path": "/app/data/sub/"}, "/app/data/sub"),
    ({"path": "x.csv", "cwd": "/app/data"}, "/app/data/x.csv"),
    ({"path": "./x.csv", "cwd": "/app/data/"}, "/app/data/x.csv"),
    ({"path": "../data/x.csv", "cwd": "/app/data"}, "/app/data/x.csv"),
    ({"path": ".", "cwd": "/app/data/sub"}, "/app/data/sub"),
    ({"path": "/app/data/" + "a" * 3000 + "/../x.csv"}, "/app/data/x.csv"),
    ({"path": "/app/data/.hidden"}, "/app/data/.hidden"),
    ({"path": "/app/data/...", "cwd": "/"}, "/app/data/..."),
    ({"path": "/app/data/..x"}, "/app/data/..x"),
]


@pytest.mark.parametrize("action", FILE_ACTIONS)
@pytest.mark.parametrize(("body", "recorded"), HONEST)
def test_honest_spellings_are_allowed_and_recorded_normalised(
    allow_list: CompiledPolicy, action: str, body: dict[str, Any], recorded: str
) -> None:
    verdict = evaluate_request(allow_list, {"action": action, **body})
    assert (verdict.decision, verdict.rule) == ("allow", "data")
    assert verdict.request["path"] == recorded


# ------------------------------------------------------------------ `..`, `.`, `//`, trailing /

# Each is some spelling of a path outside /app/data.
ESCAPES = [
    "/app/data/../secret.txt",
    "/app/data/../../etc/shadow",
    "/app/data/../../../../../../../../etc/shadow",
    "/app/data/x/../../../etc/shadow",
    "/app/data/./../etc/shadow",
    "/app/data//..//..//etc/shadow",
    "/app/data/../data-evil/x",
    "/app/data/sub/../../data2/x",
    "/app/data/..",
    "/app/data/../",
    "/app/data/.",
    "/app/data/",
    "/app/data",
    "/app/data//",
    "/app/data/./.",
    "/app/data/sub/../..",
    "/app/data/sub/../../",
    "/../app/data/../etc/shadow",
]

# Each is some spelling of /etc/shadow or of something under /etc.
ETC_SPELLINGS = [
    "/etc/shadow",
    "/etc/shadow/",
    "/etc//shadow",
    "//etc/shadow",
    "///etc///shadow///",
    "/etc/./shadow",
    "/./etc/shadow",
    "/etc/shadow/.",
    "/etc/x/../shadow",
    "/etc/../etc/shadow",
    "/tmp/../etc/shadow",
    "/../etc/shadow",
    "/../../../../etc/shadow",
    "/app/data/../../etc/shadow",
    "/app/data/x/y/../../../../etc/shadow",
    "/etc/ssl/../shadow",
    "/etc/.",
    "/etc/passwd",
    "/etc/sudoers.d/../sudoers",
]


@pytest.mark.parametrize("action", FILE_ACTIONS)
@pytest.mark.parametrize("path", ESCAPES + ETC_SPELLINGS)
def test_escapes_from_the_allowed_root_are_not_allowed(
    allow_list: CompiledPolicy, action: str, path: str
) -> None:
    assert _refused(_outcome(allow_list, {"path": path}, action))


@pytest.mark.parametrize("action", FILE_ACTIONS)
@pytest.mark.parametrize("path", [p for p in ETC_SPELLINGS if p != "/etc/."])
def test_deny_rules_catch_every_spelling(deny_list: CompiledPolicy, action: str, path: str) -> None:
    decision, rule = _outcome(deny_list, {"path": path}, action)
    assert decision == "deny"
    assert rule in ("etc", "shadow")


@pytest.mark.parametrize(
    "path",
    [
        "/app/data/secrets/k",
        "/app/data/secrets/k/",
        "/app/data//secrets//k",
        "/app/data/./secrets/k",
        "/app/data/x/../secrets/k",
        "/app/data/secrets/../secrets/k",
        "/app/data/secrets/./././k",
        "/app/x/../data/secrets/k",
        "/app/data/secrets/a/b/../../k",
    ],
)
def test_a_deny_inside_an_allowed_tree_holds_in_every_spelling(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, path: str
) -> None:
    assert _outcome(allow_list, {"path": path}) == ("deny", "secrets")
    assert _outcome(deny_list, {"path": path}) == ("deny", "secrets")


@pytest.mark.parametrize(
    "path",
    [
        "/app/data-evil/x",
        "/app/database/x",
        "/app/data.bak/x",
        "/app/data_old/x",
        "/app/datax",
        "/app/dat/x",
        "/app/data\\x",  # a backslash is an ordinary character: one name, under /app
        "/app/data\\..\\..\\etc\\shadow",
        "/app/data\u2215x",  # DIVISION SLASH is not a separator
        "/app/data\uff0fx",  # FULLWIDTH SOLIDUS is not a separator
        "/app/data%2Fx",  # file paths are not URL-decoded
        "/app/dat%61/x",
    ],
)
def test_a_prefix_is_only_a_prefix_at_a_separator(allow_list: CompiledPolicy, path: str) -> None:
    # The classic startsWith bug: "/app/data" is a prefix of "/app/database".
    assert _refused(_outcome(allow_list, {"path": path}))


@pytest.mark.parametrize(
    "path",
    [
        "/app/data/%2e%2e/%2e%2e/etc/shadow",
        "/app/data/\uff0e\uff0e/\uff0e\uff0e/etc/shadow",  # fullwidth full stops
        "/app/data/\u2025/etc/shadow",  # TWO DOT LEADER
        "/app/data/.. /etc/shadow",
        "/app/data/ ../etc/shadow",
        "/app/data/..\t/etc/shadow",
        "/app/data/...//etc/shadow",
    ],
)
def test_dot_look_alikes_are_names_not_parent_references(
    allow_list: CompiledPolicy, path: str
) -> None:
    # The kernel resolves only the exact segment "..": these are directories named
    # "%2e%2e", two fullwidth full stops and so on, inside /app/data, and are recorded as such.
    verdict = evaluate_request(allow_list, {"action": "file.read", "path": path})
    assert verdict.decision == "allow"
    assert verdict.request["path"].startswith("/app/data/")
    assert verdict.request["path"].endswith("/etc/shadow")


# ------------------------------------------------------------------ relative paths and cwd


@pytest.mark.parametrize(
    ("path", "cwd"),
    [
        ("../../etc/shadow", "/app/data"),
        ("../../../../../../etc/shadow", "/app/data"),
        ("shadow", "/etc"),
        ("./shadow", "/etc/"),
        ("../etc/shadow", "/tmp"),
        ("x/../../etc/shadow", "/tmp"),
        ("shadow", "/app/data/../../etc"),
        ("shadow", "//etc//"),
        ("../shadow", "/etc/ssl"),
        ("etc/shadow", "/"),
        ("../../../etc/shadow", "/"),
        (".", "/etc/ssl"),
        ("..", "/etc/ssl/certs"),
    ],
)
def test_relative_paths_are_joined_to_cwd_before_matching(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, path: str, cwd: str
) -> None:
    body = {"path": path, "cwd": cwd}
    assert _refused(_outcome(allow_list, body))
    decision, rule = _outcome(deny_list, body)
    assert decision == "deny" and rule in ("etc", "shadow")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "etc/shadow"}, "path"),
        ({"path": "./x"}, "path"),
        ({"path": "../etc/shadow"}, "path"),
        ({"path": "~/x"}, "path"),
        ({"path": "x", "cwd": "app/data"}, "cwd"),
        ({"path": "x", "cwd": "./app/data"}, "cwd"),
        ({"path": "x", "cwd": "~"}, "cwd"),
        ({"path": "x", "cwd": ""}, "cwd"),
        ({"path": ""}, "path"),
        ({"path": "/app/data/x", "realPath": "x"}, "realPath"),
        ({"path": "/app/data/x", "realPath": ""}, "realPath"),
    ],
)
def test_relative_paths_without_an_absolute_cwd_are_invalid(
    allow_list: CompiledPolicy, body: dict[str, Any], field: str
) -> None:
    assert _outcome(allow_list, body) == ("invalid", field)


def test_a_tilde_is_a_name_not_a_home_directory(allow_list: CompiledPolicy) -> None:
    # The gate is not a shell: "~" is expanded by shells, never by the kernel.
    verdict = evaluate_request(
        allow_list, {"action": "file.read", "path": "~/.ssh/id_rsa", "cwd": "/app/data"}
    )
    assert verdict.request["path"] == "/app/data/~/.ssh/id_rsa"


# ------------------------------------------------------------------ NUL bytes


@pytest.mark.parametrize(
    "body",
    [
        {"path": "/etc/shadow\x00"},
        {"path": "\x00/app/data/x"},
        {"path": "/app/data/x\x00/../../../etc/shadow"},
        {"path": "/etc/shadow\x00/app/data/x"},
        {"path": "/app/data/\x00"},
        {"path": "/app/data/x.csv\x00.txt"},
        {"path": "x\x00", "cwd": "/app/data"},
        {"path": "x", "cwd": "/app/data\x00/../../etc"},
        {"path": "/app/data/x", "realPath": "/etc/shadow\x00"},
        {"path": "/app/data/x", "realPath": "/app/data/\x00x"},
    ],
)
@pytest.mark.parametrize("action", FILE_ACTIONS)
def test_nul_bytes_are_invalid_everywhere(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, action: str, body: dict[str, Any]
) -> None:
    # C truncates at NUL: "/etc/shadow\0/app/data/x" opens /etc/shadow.
    assert _outcome(allow_list, body, action)[0] == "invalid"
    assert _outcome(deny_list, body, action)[0] == "invalid"


@pytest.mark.parametrize("cwd", ["/app/data\x00", "app/data", "/tmp/\x00/x"])
def test_a_bad_cwd_is_invalid_even_when_unused(allow_list: CompiledPolicy, cwd: str) -> None:
    # CONTRACT 2.1: NUL bytes are answered 400, whichever field carries them.
    assert _outcome(allow_list, {"path": "/app/data/x", "cwd": cwd}) == ("invalid", "cwd")


# ------------------------------------------------------------------ long paths


@pytest.mark.parametrize("length", [150, 190, 199, 200, 201, 255, 256, 511, 1024, 4000])
def test_a_long_segment_then_dot_dot_is_not_truncated(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, length: int
) -> None:
    # A gate that cut the path at N characters saw only /app/data/aaaa... here.
    path = "/app/data/" + "a" * length + "/../../../etc/shadow"
    assert len(path.encode()) <= MAX_PATH_BYTES
    assert _refused(_outcome(allow_list, {"path": path}))
    assert _outcome(deny_list, {"path": path}) in (("deny", "etc"), ("deny", "shadow"))


@pytest.mark.parametrize("depth", [10, 50, 200, 1000])
def test_many_segments_then_as_many_dot_dots(deny_list: CompiledPolicy, depth: int) -> None:
    path = "/app/data" + "/d" * depth + "/.." * (depth + 2) + "/etc/shadow"
    if len(path) > MAX_PATH_BYTES:
        assert _outcome(deny_list, {"path": path}) == ("invalid", "path")
    else:
        assert _outcome(deny_list, {"path": path}) in (("deny", "etc"), ("deny", "shadow"))


def test_the_limit_counts_utf8_bytes_and_is_inclusive(allow_list: CompiledPolicy) -> None:
    prefix = "/app/data/"
    fits = prefix + "\u00e9" * ((MAX_PATH_BYTES - len(prefix)) // 2)  # 2 bytes each
    assert len(fits.encode()) == MAX_PATH_BYTES
    assert _outcome(allow_list, {"path": fits}) == ("allow", "data")
    too_long = fits + "x"
    assert len(too_long) < MAX_PATH_BYTES < len(too_long.encode())
    assert _outcome(allow_list, {"path": too_long}) == ("invalid", "path")


@pytest.mark.parametrize(
    "body",
    [
        {"path": "/app/data/" + "a" * MAX_PATH_BYTES},
        {"path": "/app/data/" + "a" * 5000 + "/../../../etc/shadow"},
        {"path": "/app/data/x" + "/." * 3000},
        {"path": "/app/data/x" + "/" * 5000},
        {"path": "/app/data/x/" + "../data/x/" * 500},
        {"path": "/app/data/" + "\U0001f600" * 1100},  # 4 bytes each
        # joined: each part fits, the joined path does not
        {"path": "x" * 3000, "cwd": "/app/data/" + "y" * 1500},
        {"path": "../" * 1000 + "etc/shadow", "cwd": "/app/data/" + "y" * 1500},
        {"path": "/app/data/x", "realPath": "/app/data/" + "a" * MAX_PATH_BYTES},
    ],
)
def test_over_long_paths_are_invalid_never_truncated(
    allow_list: CompiledPolicy, deny_list: CompiledPolicy, body: dict[str, Any]
) -> None:
    # Invalid even where every prefix a truncating gate could check is inside /app/data.
    assert _outcome(allow_list, body)[0] == "invalid"
    assert _outcome(deny_list, body)[0] == "invalid"


# ------------------------------------------------------------------ realPath (symlinks)


@pytest.mark.parametrize(
    ("path", "real", "expected"),
    [
        # a symlink inside the allowed tree pointing out of it
        ("/app/data/link", "/etc/shadow", ("deny", None)),
        ("/app/data/link", "/app/data/secrets/k", ("deny", "secrets")),
        ("/app/data/link", "/app/other/x", ("deny", None)),
        ("/app/data/link", "/app/data", ("deny", None)),
        # a path outside that resolves inside is still judged by its path too
        ("/etc/shadow", "/app/data/x", ("deny", None)),
        ("/app/data/secrets/k", "/app/data/x", ("deny", "secrets")),
        # require_approval beats allow
        ("/app/data/link", "/app/data/reports/r.pdf", ("require_approval", "reports")),
        ("/app/data/reports/r.pdf", "/app/data/x", ("require_approval", "reports")),
        # both inside: allowed
        ("/app/data/link", "/app/data/real/x", ("allow", "data")),
        ("/app/data/x", "/app/data/x", ("allow", "data")),
        # realPath is normalised like path
        ("/app/data/link", "/app/data/real/../../../etc/shadow", ("deny", None)),
        ("/app/data/link", "//app//data//secrets//k//", ("deny", "secrets")),
    ],
)
def test_the_stricter_of_path_and_realpath_wins(
    allow_list: CompiledPolicy, path: str, real: str, expected: tuple[str, str | None]
) -> None:
    body = {"action": "file.write", "path": path, "realPath": real}
    verdict = evaluate_request(allow_list, body)
    assert (verdict.decision, verdict.rule) == expected


def test_a_relative_realpath_is_joined_to_cwd(deny_list: CompiledPolicy) -> None:
    body = {"action": "file.read", "path": "/app/x", "realPath": "../etc/shadow", "cwd": "/app"}
    verdict = evaluate_request(deny_list, body)
    assert (verdict.decision, verdict.rule) == ("deny", "etc")
    assert verdict.request == {"path": "/app/x", "realPath": "/etc/shadow"}
    assert "realPath" in verdict.reason


def test_a_real_symlink_is_caught_only_through_realpath(tmp_path: Path) -> None:
    # A real tree on disk: <tmp>/app/data/link -> <tmp>/secret/key.
    root = tmp_path.resolve()
    (root / "app" / "data").mkdir(parents=True)
    (root / "secret").mkdir()
    (root / "secret" / "key").write_text("k")
    link = root / "app" / "data" / "link"
    os.symlink(root / "secret" / "key", link)
    dir_link = root / "app" / "data" / "up"
    os.symlink(root, dir_link)
    policy = _load(
        f"""
        version: 1
        rules:
          - {{id: data, action: file.read, path: {{glob: "{root}/app/data/**"}}, decision: allow}}
        """
    )

    def decide(path: str) -> str:
        body = {"action": "file.read", "path": path, "realPath": os.path.realpath(path)}
        return evaluate_request(policy, body).decision

    # The lexical path alone looks inside the tree: that is the documented limit.
    for path in (str(link), f"{dir_link}/secret/key"):
        assert evaluate_request(policy, {"action": "file.read", "path": path}).decision == "allow"
        assert decide(path) == "deny"
    # The kernel resolves ".." after following a symlink; the lexical path does not.
    tricky = f"{dir_link}/app/data/../../secret/key"
    assert os.path.realpath(tricky) == str(root / "secret" / "key")
    assert decide(tricky) == "deny"
    honest = root / "app" / "data" / "plain.txt"
    honest.write_text("x")
    assert decide(str(honest)) == "allow"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "path",
    [
        "/proc/self/root/etc/shadow",
        "/proc/thread-self/root/etc/shadow",
        "/proc/self/root/etc/./shadow",
    ],
)
def test_proc_magic_links_are_caught_as_the_links_they_are(
    deny_list: CompiledPolicy, path: str
) -> None:
    # /proc/self/root is a link to "/": lexically this is a /proc path. The gate knows
    # this link (docs/security.md, "Known limits"), and realPath covers every link.
    real = os.path.realpath(path)
    assert real == "/etc/shadow"
    assert _outcome(deny_list, {"path": path}) in (("deny", "etc"), ("deny", "shadow"))
    body = {"path": path, "realPath": real}
    assert _outcome(deny_list, body) in (("deny", "etc"), ("deny", "shadow"))


# ------------------------------------------------------------------ case


@pytest.mark.parametrize(
    "path",
    ["/APP/DATA/x", "/App/Data/x", "/app/Data/x", "/app/DATA/x", "/app/data/../DATA/x"],
)
def test_paths_are_case_sensitive(allow_list: CompiledPolicy, path: str) -> None:
    # /app/Data is another directory on Linux; it is not under the allowed /app/data.
    assert _refused(_outcome(allow_list, {"path": path}))


@pytest.mark.parametrize("path", ["/app/data/Secrets/k", "/app/data/SECRETS/k"])
def test_case_variants_of_a_denied_directory_are_other_directories(
    allow_list: CompiledPolicy, path: str
) -> None:
    # Documented limit (docs/security.md): on a case-insensitive file system these
    # would be the secrets directory; Linux file systems are case-sensitive.
    assert _outcome(allow_list, {"path": path}) == ("allow", "data")


# ------------------------------------------------------------------ rule values


@pytest.mark.parametrize(
    "matcher",
    [
        "/etc/./shadow",
        "/etc//shadow",
        "/etc/shadow/",
        "/tmp/../etc/shadow",
        "{equals: /etc/x/../shadow}",
        "{in: [//etc/shadow]}",
    ],
)
def test_exact_rule_paths_are_normalised_like_requests(matcher: str) -> None:
    policy = _load(
        f"""
        version: 1
        defaultAction: allow
        rules:
          - {{id: shadow, action: file.read, path: {matcher}, decision: deny}}
        """
    )
    assert _outcome(policy, {"path": "/etc/shadow"}) == ("deny", "shadow")


@pytest.mark.parametrize(
    "glob",
    ["/etc//**", "/etc/./**", "/tmp/../etc/**", "//etc/**", "/etc/shadow/", "/etc/**/"],
)
def test_non_canonical_deny_globs_are_normalised_or_rejected(glob: str) -> None:
    text = f"""
        version: 1
        defaultAction: allow
        rules:
          - {{id: etc, action: file.read, path: {{glob: "{glob}"}}, decision: deny}}
        """
    try:
        policy = _load(text)
    except PolicyError:
        return  # refusing the rule at load time is as good as normalising it
    assert _outcome(policy, {"path": "/etc/shadow"}) == ("deny", "etc")
