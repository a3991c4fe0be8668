"""Wrappers and login shells, each checked against the real GNU env, bash, dash and find:
how ``env -S`` splits its text, every option form that makes a login shell, and
``find``'s arguments that are not static. Found in the review of the command analysis of
2026-12-06 (findings 1, 3 and 4, as the sections below name them).

* Finding 1: ``env -S TEXT`` was split differently from GNU env. Outside quotes ``\\_``
  separates words (the gate put a space in the word: ``env -S'rm\\_victim'`` was a
  program named ``rm victim``), and inside single quotes ``\\'`` and ``\\\\`` are escapes
  (the gate ended the quote at ``\\'``, so ``env -S "-u'\\'' rm victim \\'"`` was a bare
  ``env -u ...`` to it while env ran ``rm``). ``split_env_string`` now follows GNU env's
  ``build_argv`` (escapes, ``\\c``, ``#`` comments, empty quotes, ``${NAME}``) and
  refuses what env refuses (``unparsed-wrapper``); a ``${NAME}`` makes its word not
  static (``dynamic-command``). A differential test against the real ``env -S`` keeps it
  so.
* Finding 3: ``bash +l -c``, ``dash +l -c`` (and ``+lc``, ``+il`` ...) are login shells:
  both shells take ``l`` whatever its sign, and run /etc/profile and the profile in
  $HOME first. Only ``-l`` was ``startup-files``. Found with it: bash reads its long
  options with one dash as with two, before any short one (``-login`` is ``--login``;
  ``bash -posix -c 'rm x'`` runs rm, and the gate, reading ``-posix`` as letters with
  ``-o`` taking ``-c`` as its value, saw no script: a policy allowing ``bash`` by name
  allowed it). bash's ``-NAME`` long options are now read as bash reads them; for
  ``sh`` (bash or dash) and for ``-rcfile``/``-init-file`` they are ``unparsed-wrapper``.
* Finding 4: ``find`` never reported an argument that is not static: ``find . $x`` with
  ``x='-exec rm victim ;'``, ``find . -e* rm victim \\;`` next to a file named
  ``-exec``, ``find "$d" rm victim \\;`` with ``d=-exec`` run rm. Under a policy
  allowing ``glob``/``parameter-expansion``/``command-substitution`` these were
  allowed; any such argument is now ``dynamic-command``, as for the other wrappers.
  Found with it: ``find -fprint FILE`` (``-fprint0``, ``-fls``, ``-fprintf``) truncates
  FILE as find starts, and that write was not decided: it is now a ``file.write``.

The real tools run only stand-ins and write nothing outside the test's own directory:
an ``rm`` stub first on PATH that prints, ``echo``, profiles that print, a stub that
prints its arguments.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sidecar.normalise.shell_wrappers import Arg, split_env_string
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import check_line, command_argvs, construct_names
from tests.adversarial.conftest import load_policy_text
from tests.adversarial.real_bash import BASH, needs_bash, run_program

DASH = shutil.which("dash")
FIND = shutil.which("find")
needs_dash = pytest.mark.skipif(DASH is None, reason="dash is not installed")
needs_find = pytest.mark.skipif(FIND is None, reason="find is not installed")


def _gnu_env() -> str | None:
    env = shutil.which("env")
    if env is None:
        return None
    done = subprocess.run([env, "--version"], capture_output=True, text=True, check=False)
    return env if "GNU coreutils" in done.stdout else None


GNU_ENV = _gnu_env()
needs_gnu_env = pytest.mark.skipif(GNU_ENV is None, reason="GNU env is not installed")

# What the reviewer's allow-list allowed: harmless programs and wrappers, no shells.
ALLOW_LIST = """
    version: 1
    defaultAction: deny
    rules:
      - id: harmless
        action: process.exec
        command: [ls, echo, env, find, test, printf, timeout]
        decision: allow
"""
# The same, with the constructs of values the gate cannot see allowed by name.
ALLOW_EXPANSIONS = (
    ALLOW_LIST
    + """
      - id: expansions
        action: process.exec
        command: [glob, parameter-expansion, arithmetic, command-substitution]
        decision: allow
"""
)
# bash allowed by name (for `bash script.sh`).
BASH_BY_NAME = """
    version: 1
    defaultAction: deny
    rules:
      - {id: scripts, action: process.exec, command: [bash, echo], decision: allow}
"""
DENY_LIST = """
    version: 1
    defaultAction: allow
    rules:
      - {id: no-rm, action: process.exec, command: [rm, node, curl], decision: deny}
"""


@pytest.fixture(scope="module")
def allow_expansions() -> CompiledPolicy:
    return load_policy_text(ALLOW_EXPANSIONS, "allow-expansions.yaml")


@pytest.fixture(scope="module")
def bash_by_name() -> CompiledPolicy:
    return load_policy_text(BASH_BY_NAME, "bash-by-name.yaml")


def _stubs(directory: Path) -> Path:
    """A directory of stand-ins: ``rm`` prints ``RM-RAN`` and its arguments, ``argv``
    prints its arguments, each followed by a NUL."""
    stubs = directory / "stubs"
    stubs.mkdir()
    scripts = {
        "rm": '#!/bin/sh\necho "RM-RAN $*"\n',
        "argv": '#!/bin/sh\nfor a in "$@"; do printf \'%s\\0\' "$a"; done\n',
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    assert re.fullmatch(r"[\w/.+-]+", str(stubs)), stubs  # nothing env -S would read
    return stubs


def _run(argv: list[str], cwd: Path, stubs: Path, home: Path | None = None) -> str:
    """Run ``argv`` in ``cwd`` with the stubs first on PATH; its standard output."""
    env = {
        "PATH": f"{stubs}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home or cwd),
    }
    return run_program(argv, cwd, env)


# -- finding 1: env -S is split as GNU env splits it ----------------------------------------

ENV_HIDDEN_RM = "env -S \"-u'\\'' rm victim \\'\""  # env -S "-u'\'' rm victim \'"
ENV_SEPARATOR_RM = "env -S'rm\\_victim'"  # env -S'rm\_victim'


@needs_bash
@needs_gnu_env
@pytest.mark.parametrize("line", [ENV_HIDDEN_RM, ENV_SEPARATOR_RM])
def test_env_split_string_runs_a_hidden_rm(tmp_path: Path, line: str) -> None:
    assert BASH is not None
    output = _run([BASH, "-c", line], tmp_path, _stubs(tmp_path))
    assert output.startswith("RM-RAN victim"), output


@pytest.mark.parametrize("line", [ENV_HIDDEN_RM, ENV_SEPARATOR_RM])
def test_the_gate_finds_the_rm_env_runs(
    line: str, allow_list: CompiledPolicy, deny_list: CompiledPolicy
) -> None:
    assert any(argv[:2] == ("rm", "victim") for argv in command_argvs(line)), command_argvs(line)
    for policy in (allow_list, deny_list):
        verdict = check_line(policy, line)
        assert verdict.decision == "deny", verdict.reason
        assert "rm victim" in verdict.reason


# (text after the program, the words GNU env gives it; None: env refuses the text)
ENV_SPLITS: list[tuple[str, list[str] | None]] = [
    ("a  b\tc", ["a", "b", "c"]),
    ("a\\_b", ["a", "b"]),  # \_ separates words outside double quotes
    ("a\\_\\_b\\_", ["a", "b"]),
    ('"a\\_b"', ["a b"]),  # and is a space inside them
    ("'a\\_b'", ["a\\_b"]),  # inside single quotes a backslash is itself ...
    ("'a\\'b' c", ["a'b", "c"]),  # ... but \' is a quote, which does not end them
    ("'a\\\\b'", ["a\\b"]),  # and \\ one backslash
    ("'a\\\\'b", ["a\\b"]),
    ("\\'a b\\'", ["'a", "b'"]),
    ('"a\\"b" \\"', ['a"b', '"']),
    ("\\t\\n\\v\\f\\r", ["\t\n\v\f\r"]),
    ("\\#a \\$b", ["#a", "$b"]),
    ("a\\cb c", ["a"]),  # \c ends the text
    ("'a\\cb' c", ["a\\cb", "c"]),
    ("a #b c", ["a"]),  # # starting a word starts a comment
    ("a#b", ["a#b"]),
    ("a\\_#b", ["a"]),
    ("''#b", ["#b"]),
    ("'' b", ["", "b"]),  # empty quotes are an empty word
    ("a'' b\"\"", ["a", "b"]),
    ("'${X}'", ["${X}"]),  # not expanded inside single quotes
    ('"a\\c"', None),  # \c inside double quotes
    ("a\\q", None),  # an escape env does not have
    ("a\\", None),
    ("'a", None),
    ('"a', None),
    ("'a\\'", None),  # \' inside single quotes does not end them
]


def _split_by_env(text: str, environ: dict[str, str], stubs: Path) -> list[str] | None:
    assert GNU_ENV is not None
    done = subprocess.run(
        [GNU_ENV, "-S", f"{stubs / 'argv'} {text}"],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    if done.returncode != 0:
        assert done.returncode == 125, done.stderr  # env's own failure, not the stub's
        return None
    return done.stdout.decode().split("\0")[:-1]


def _texts(words: list[Arg] | None) -> list[str] | None:
    return None if words is None else [word.text for word in words]


@needs_gnu_env
@pytest.mark.parametrize(("text", "words"), ENV_SPLITS)
def test_gnu_env_splits_the_text_so(tmp_path: Path, text: str, words: list[str] | None) -> None:
    assert _split_by_env(text, {}, _stubs(tmp_path)) == words


@pytest.mark.parametrize(("text", "words"), ENV_SPLITS)
def test_the_gate_splits_env_text_as_gnu_env(text: str, words: list[str] | None) -> None:
    split = split_env_string(text)
    assert _texts(split) == words
    assert split is None or all(word.static for word in split)


# ${NAME}: its value, unsplit; an unset NAME is no word at all, an empty one an empty word.
ENV_VARIABLES: list[tuple[str, dict[str, str], list[str]]] = [
    ("${X} b", {"X": "p q"}, ["p q", "b"]),
    ("${X} b", {}, ["b"]),
    ("${X} b", {"X": ""}, ["", "b"]),
    ('a${X}"${X}"', {"X": "1"}, ["a11"]),
    ("${X}#b", {}, []),  # unset: the # still starts a word, a comment
    ("${X}#b", {"X": "1"}, ["1#b"]),
]


@needs_gnu_env
@pytest.mark.parametrize(("text", "environ", "words"), ENV_VARIABLES)
def test_gnu_env_expands_braced_variables(
    tmp_path: Path, text: str, environ: dict[str, str], words: list[str]
) -> None:
    assert _split_by_env(text, environ, _stubs(tmp_path)) == words
    assert _texts(split_env_string(text, environ)) == words


def test_a_variable_makes_its_word_not_static() -> None:
    assert split_env_string("${X} b") == [Arg("${X}", False), Arg("b")]
    assert split_env_string("a$X") == [Arg("a$X", False)]  # env refuses it: nothing runs
    assert "dynamic-command" in construct_names("env -S '${CMD} victim'")
    assert "dynamic-command" in construct_names('env -S "$OPTS" rm victim')


ENV_ALPHABET = [*"abtnc_ \\'\"#${}", "\\_", "\\\\", "\\'", '\\"', "\\t", "\\c", "\\#"]
ENV_ALPHABET += ["${c}", "${t}", "${x}", "''", '""']
ENV_ENVIRON = {"c": "V W", "t": ""}


@needs_gnu_env
def test_env_split_string_matches_gnu_env(tmp_path: Path) -> None:
    """Random texts: where the gate gives words, they are env's; where env refuses the
    text (nothing runs), the gate refuses it too or reports a word it cannot know."""
    stubs = _stubs(tmp_path)
    rng = random.Random(20261206)
    checked = 0
    for _ in range(400):
        text = "".join(rng.choice(ENV_ALPHABET) for _ in range(rng.randint(1, 10)))
        real = _split_by_env(text, ENV_ENVIRON, stubs)
        gate = split_env_string(text)
        if real is None:
            assert gate is None or not all(word.static for word in gate), text
            continue
        checked += 1
        assert _texts(split_env_string(text, ENV_ENVIRON)) == real, text
        if gate is None:
            assert "${" in text, text  # an unset variable before a '#' or a quote
        elif all(word.static for word in gate):
            assert _texts(gate) == real, text
    assert checked > 100


@pytest.mark.parametrize("line", ["env -S 'a\\qb' rm", 'env -S "\'rm" victim', "env -S 'a\\'"])
def test_env_text_env_refuses_is_unparsed(line: str) -> None:
    assert "unparsed-wrapper" in construct_names(line)


# -- finding 3: every option form that makes a login shell ---------------------------------

PROFILE = "echo PROFILE-RAN\n"


def _home(directory: Path) -> Path:
    home = directory / "home"
    home.mkdir()
    for name in (".profile", ".bash_profile"):
        (home / name).write_text(PROFILE)
    return home


BASH_LOGIN_FORMS = [
    "bash +l -c 'echo CMD'",
    "bash +lc 'echo CMD'",
    "bash +il -c 'echo CMD'",
    "bash -xl -c 'echo CMD'",
    "bash -O extglob +l -c 'echo CMD'",
    "bash +O extglob +lc 'echo CMD'",
    "bash -Ol extglob -c 'echo CMD'",
    "bash -login -c 'echo CMD'",
    "bash -noediting -login -c 'echo CMD'",
    "bash --norc -login +x -c 'echo CMD'",
    "rbash -debug -login -c 'echo CMD'",
    "bash --login -c 'echo CMD'",
]
DASH_LOGIN_FORMS = [
    "dash +l -c 'echo CMD'",
    "dash +lc 'echo CMD'",
    "dash +il -c 'echo CMD'",
    "dash -xl -c 'echo CMD'",
    "sh +l -c 'echo CMD'",
]


def _run_shell_line(line: str, tmp_path: Path) -> str:
    home = _home(tmp_path)
    return _run(shlex.split(line), tmp_path, _stubs(tmp_path), home)


@needs_bash
@pytest.mark.parametrize("line", BASH_LOGIN_FORMS)
def test_bash_runs_the_profile_for_these_forms(tmp_path: Path, line: str) -> None:
    if line.startswith("rbash") and shutil.which("rbash") is None:
        pytest.skip("rbash is not installed")
    output = _run_shell_line(line, tmp_path)
    assert "PROFILE-RAN" in output and output.endswith("CMD\n"), output


@needs_dash
@pytest.mark.parametrize("line", DASH_LOGIN_FORMS)
def test_dash_runs_the_profile_for_these_forms(tmp_path: Path, line: str) -> None:
    if line.startswith("sh ") and Path(os.path.realpath(shutil.which("sh") or "")).name != "dash":
        pytest.skip("sh is not dash here")
    output = _run_shell_line(line, tmp_path)
    assert "PROFILE-RAN" in output and output.endswith("CMD\n"), output


@pytest.mark.parametrize("line", BASH_LOGIN_FORMS + DASH_LOGIN_FORMS)
def test_every_login_form_is_startup_files(line: str, allow_list: CompiledPolicy) -> None:
    assert "startup-files" in construct_names(line)
    assert ("echo", "CMD") in command_argvs(line)  # and its script is still analysed
    verdict = check_line(allow_list, line)
    assert verdict.decision == "deny", verdict.reason


def test_a_shell_that_is_no_login_shell_is_still_allowed(allow_list: CompiledPolicy) -> None:
    for line in ("bash -c 'echo CMD'", "bash +i -c 'echo CMD'", "dash -x -c 'echo CMD'"):
        verdict = check_line(allow_list, line)
        assert verdict.decision == "allow", verdict.reason
        assert "constructs" not in verdict.request
    for line in ("bash --noprofile -l -c 'echo CMD'", "bash -noprofile +l -c 'echo CMD'"):
        assert "startup-files" not in construct_names(line)  # a login shell reading no profile


@needs_bash
@pytest.mark.parametrize("option", ["-posix", "-verbose", "-noediting", "-norc", "-debug"])
def test_bash_reads_a_long_option_with_one_dash(tmp_path: Path, option: str) -> None:
    output = _run([BASH or "bash", option, "-c", "rm victim"], tmp_path, _stubs(tmp_path))
    assert output == "RM-RAN victim\n"


@pytest.mark.parametrize("option", ["-posix", "-verbose", "-noediting", "-norc", "-debug"])
def test_a_bash_long_option_with_one_dash_hides_no_script(
    option: str, bash_by_name: CompiledPolicy
) -> None:
    line = f"bash {option} -c 'rm -rf /'"
    assert ("rm", "-rf", "/") in command_argvs(line)
    verdict = check_line(bash_by_name, line)
    assert verdict.decision == "deny", verdict.reason
    assert check_line(bash_by_name, f"bash {option} script.sh").decision == "allow"


@pytest.mark.parametrize(
    "line",
    [
        "sh -login -c 'echo CMD'",  # bash as sh: a login shell; dash: letters
        "sh -posix -c 'echo CMD'",
        "bash -rcfile /dev/fd/3 -i 3<<<'rm x'",  # the file is not followed with one dash
        "bash -init-file x -c 'echo CMD'",
    ],
)
def test_long_options_with_one_dash_that_are_not_followed_are_unparsed(line: str) -> None:
    assert "unparsed-wrapper" in construct_names(line)


SHELL_OPTIONS = [
    "-l", "+l", "-x", "+x", "-e", "-lc", "+lc", "-cl", "-xl", "+il", "-login", "--login",
    "-posix", "--posix", "-norc", "--norc", "-noprofile", "--noprofile", "-O extglob",
    "+O extglob", "-Ol extglob", "-lO extglob", "-o errexit", "+o errexit", "-s", "-v",
    "-verbose", "--", "-", "-c", "+c", "-debug", "-noediting", "-r", "-O login_shell", "-p",
]  # fmt: skip


@needs_bash
@needs_dash
def test_shell_options_match_the_real_shells(tmp_path: Path) -> None:
    """Random option lists before a script: whenever the real shell ran the script, the
    gate analysed it; whenever it ran the profile, the gate reported startup-files
    (unless it refused the options as unparsed)."""
    home = _home(tmp_path)
    stubs = _stubs(tmp_path)
    rng = random.Random(20261206)
    checked = 0
    for _ in range(150):
        shell = rng.choice(["bash", "dash"])
        options = " ".join(rng.choice(SHELL_OPTIONS) for _ in range(rng.randint(0, 3)))
        tail = rng.choice([["-c", "echo SCRIPT-RAN"], ["echo SCRIPT-RAN"]])
        words = [shell, *options.split(), *tail]
        line = shlex.join(words)
        constructs = construct_names(line)
        if "unparsed-wrapper" in constructs:
            continue
        checked += 1
        output = _run(["env", "-i", f"HOME={home}", f"PATH={stubs}:/usr/bin:/bin", *words],
                      tmp_path, stubs)  # fmt: skip
        if "SCRIPT-RAN" in output:
            assert ("echo", "SCRIPT-RAN") in command_argvs(line), line
        if "PROFILE-RAN" in output:
            assert "startup-files" in constructs, line
    assert checked > 100


# -- finding 4: find's arguments that are not static ---------------------------------------

FIND_ATTACKS = [
    ("x='-exec rm victim ;'; ", "find . -maxdepth 0 $x"),
    ("", "find . -maxdepth 0 -e* rm victim \\;"),  # the file -exec is there
    ("", "find . -maxdepth 0 $(echo -exec rm victim \\;)"),
    ("d=-exec; ", 'find "$d" rm victim \\; -quit'),  # a starting point read as -exec
    ("f='{} ; -exec rm victim'; ", "find . -maxdepth 0 -exec echo $f \\;"),
]


@needs_bash
@needs_find
@pytest.mark.parametrize(("setup", "line"), FIND_ATTACKS)
def test_find_runs_the_command_an_expansion_gives_it(tmp_path: Path, setup: str, line: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "-exec").touch()  # what the glob -e* matches
    output = _run([BASH or "bash", "-c", setup + line], work, _stubs(tmp_path))
    assert "RM-RAN victim" in output, output


@pytest.mark.parametrize(("setup", "line"), FIND_ATTACKS)
def test_find_with_an_argument_not_static_is_dynamic_command(
    setup: str, line: str, allow_expansions: CompiledPolicy
) -> None:
    del setup
    assert "dynamic-command" in construct_names(line)
    verdict = check_line(allow_expansions, line)
    assert verdict.decision == "deny", verdict.reason
    assert "dynamic-command" in verdict.request["constructs"]


def test_find_is_decided_like_the_other_wrappers(allow_expansions: CompiledPolicy) -> None:
    assert check_line(allow_expansions, "timeout 5 $x").decision == "deny"
    for line in ("find . -name '*.py' -type f", "find src -maxdepth 2 -name \\*.txt"):
        verdict = check_line(allow_expansions, line)
        assert verdict.decision == "allow", verdict.reason
        assert "constructs" not in verdict.request


# Found with finding 4: find's -fprint FILE (-fprint0, -fls, -fprintf FILE FORMAT) opens
# FILE for writing as find reads its arguments, even when nothing matches; the gate did
# not decide that write, so a policy denying file writes under /etc let it through.
NO_ETC_WRITES = """
    version: 1
    defaultAction: allow
    rules:
      - {id: no-etc, action: file.write, path: {glob: "/etc/**"}, decision: deny}
"""
FIND_WRITES = [
    "find . -maxdepth 0 -false -fprint out",
    "find . -maxdepth 0 -false -fprint0 out",
    "find . -maxdepth 0 -false -fls out",
    "find . -maxdepth 0 -false -fprintf out %p",
]


@needs_find
@pytest.mark.parametrize("line", FIND_WRITES)
def test_find_truncates_the_file_it_prints_to(tmp_path: Path, line: str) -> None:
    (tmp_path / "out").write_text("kept?\n")
    _run(shlex.split(line), tmp_path, _stubs(tmp_path))
    assert (tmp_path / "out").read_text() == ""


@pytest.mark.parametrize("line", FIND_WRITES)
def test_the_file_find_prints_to_is_a_file_write(line: str) -> None:
    policy = load_policy_text(NO_ETC_WRITES, "no-etc-writes.yaml")
    verdict = check_line(policy, line.replace(" out", " /etc/passwd"))
    assert (verdict.decision, verdict.rule) == ("deny", "no-etc"), verdict.reason
    verdict = check_line(policy, "cd /etc && " + line.replace(" out", " passwd"))
    assert (verdict.decision, verdict.rule) == ("deny", "no-etc"), verdict.reason
    assert check_line(policy, line).decision == "allow"
    # An argument of a command find runs is not find's.
    assert check_line(policy, "find . -exec echo -fprint /etc/passwd \\;").decision == "allow"
