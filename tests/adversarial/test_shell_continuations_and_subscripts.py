"""Line continuations and array subscripts, each checked against the real bash and dash.
Found in the review of the command analysis of 2026-12-06 (findings 2 and 5, as the
sections below name them).

* Finding 2: bash and dash remove a backslash-newline before they split words, but the
  parser classified a word by its raw text, continuation and all. ``X\\<nl>=1 rm victim``
  was a program ``X=1`` (the shells run ``rm``), ``LD_PRELOAD\\<nl>=/x.so ls`` no
  ``environment-override``, ``co\\<nl>proc rm victim`` and ``!\\<nl> rm victim`` commands
  named ``coproc`` and ``!``. A word's ``raw`` is now the text the shell tokenises (the
  continuations the lexer removed are not in it; one inside single quotes, ``$'...'``
  or a quoted here-document stays): assignments, reserved words, ``{ } [[ ((``, function
  names, ``for``/``case``'s ``in``, ``time -p``, descriptor numbers (``2\\<nl>>f``),
  ``{NAME}>`` and here-document delimiters (``<<E\\<nl>OF`` is ``EOF``), and the
  ``${...}`` forms (``${x\\<nl>@P}`` is ``eval``) all read it. A differential test
  inserts a continuation at every position of a set of commands and requires the gate
  to report every program the real bash and dash ran (or refuse the text). Found with
  it: the scan for names that may be arrays read the text with its continuations, so
  after ``local x=\\<nl>(1)`` (an array to bash) ``local x=$1`` was taken for a plain
  value, not ``eval``; the text without them is scanned too.
* Finding 5: bash expands an array subscript as it evaluates it, and quotes protect
  nothing there: with ``arithmetic`` allowed, ``test -v 'a[$(rm victim)]'``, ``printf -v
  'a[$(rm victim)]' x``, ``read``, ``declare``/``typeset``/``local``, ``let``,
  ``unset``, ``wait -p``, ``[[ -v ]]``, ``[[ ... -eq ... ]]``, ``declare -i x='a[...]'``,
  ``declare -n r='a[...]'`` and ``${a['$(rm victim)']}`` ran ``rm`` unseen. So do a
  quoted subscript of an assignment (``a['$(rm victim)']=1``, ``a=(['$(rm victim)']=1)``)
  and a quoted substring offset (``${x:'$(rm victim)'}``), and bash reads a ``$'...'``
  there at parse time as a single-quoted string (``a[$'\\x24(rm victim)']=1`` runs rm).
  The text bash evaluates is now read as bash expands it (as a here-document body:
  every ``$(...)``, backquote and ``$x`` in it), each expansion the usual construct and
  its commands decided; a name not known here (``read "$n"``) is ``arithmetic``.

Every shell runs only stand-ins (stubs first on PATH that log what they were given), in
a scratch directory, as ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.errors import RequestError
from sidecar.normalise import shell_ast as sh
from sidecar.normalise.shell_parser import parse_script
from sidecar.policy.compiler import CompiledPolicy
from tests.adversarial.command_lines import analyse, check_line, command_argvs, construct_names
from tests.adversarial.conftest import load_policy_text

BASH = shutil.which("bash")
DASH = shutil.which("dash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")
needs_dash = pytest.mark.skipif(DASH is None, reason="dash is not installed")

# The deny-list of the report: rm denied, everything else allowed (constructs aside).
DENY_LIST = """
    version: 1
    defaultAction: allow
    rules:
      - {id: no-rm, action: process.exec, command: [rm, node, curl], decision: deny}
"""
# An allow-list that allows the builtins and the constructs of values by name
# (arithmetic among them), but not command substitution.
ALLOW_LIST = """
    version: 1
    defaultAction: deny
    rules:
      - id: builtins
        action: process.exec
        command: [ls, echo, env, test, "[", "[[", printf, read, declare, typeset, local,
                  let, unset, wait, sleep, "true", mapfile, readarray, getopts]
        decision: allow
      - id: values
        action: process.exec
        command: [arithmetic, parameter-expansion, glob, function-definition]
        decision: allow
"""
# A deny-list that also allows the substitutions by name: rm itself must be decided.
SUBSTITUTIONS_ALLOWED = """
    version: 1
    defaultAction: allow
    rules:
      - {id: no-rm, action: process.exec, command: rm, decision: deny}
      - id: constructs
        action: process.exec
        command: [arithmetic, parameter-expansion, glob, function-definition,
                  command-substitution, backticks]
        decision: allow
"""


@pytest.fixture(scope="module")
def substitutions_allowed() -> CompiledPolicy:
    return load_policy_text(SUBSTITUTIONS_ALLOWED, "substitutions-allowed.yaml")


# -- the real shells, with stand-ins --------------------------------------------------------

STUBBED = ("rm", "ls", "env", "node")
WATCHED = ("LD_PRELOAD", "X")  # variables a stub logs when it sees them set
STUB = """#!/bin/sh
{{ printf '%s' {name}; for a in "$@"; do printf ' %s' "$a"; done; echo; }} >> {log}
for v in {watched}; do eval "[ -n \\"\\${{$v+x}}\\" ]" && echo "ENV $v" >> {log}; done
exit 0
"""
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _can_drop() -> bool:
    """Whether ``setpriv`` can run a program as nobody here (some containers forbid it)."""
    if shutil.which("setpriv") is None:
        return False
    done = subprocess.run([*AS_NOBODY, "true"], capture_output=True, timeout=20, check=False)
    return done.returncode == 0


class Sandbox:
    """A scratch directory with logging stubs first on PATH; shells run there (as nobody
    when root), and ``run`` returns what the stubs logged."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "ran.log"
        stubs = root / "stubs"
        stubs.mkdir()
        for name in STUBBED:
            stub = stubs / name
            stub.write_text(STUB.format(name=name, log=self.log, watched=" ".join(WATCHED)))
            stub.chmod(0o755)
        self.path = f"{stubs}:/usr/bin:/bin"
        self.prefix = AS_NOBODY if os.geteuid() == 0 and _can_drop() else []
        root.chmod(0o777)

    def run(self, shell: str, script: str) -> list[str]:
        self.log.write_text("")
        self.log.chmod(0o666)
        subprocess.run(
            [*self.prefix, shell, "-c", script],
            cwd=self.root,
            env={"PATH": self.path, "HOME": str(self.root)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            check=False,
        )
        return self.log.read_text().splitlines()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    root = Path(tempfile.mkdtemp(prefix="tollgate-continuations-"))
    try:
        yield Sandbox(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- finding 2: a continuation inside a word ------------------------------------------------

FINDING_2 = [
    ("X\\\n=1 rm victim", True),
    ("LD_PRELOAD\\\n=/no/x.so rm victim", True),
    ("co\\\nproc rm victim; wait", False),  # dash: coproc is a command (not found)
    ("!\\\n rm victim", True),
]


@needs_bash
@pytest.mark.parametrize(("line", "in_dash"), FINDING_2)
def test_the_shells_remove_the_continuation_first(
    sandbox: Sandbox, line: str, in_dash: bool
) -> None:
    assert BASH is not None
    assert "rm victim" in sandbox.run(BASH, line)
    if DASH is not None and in_dash:
        assert "rm victim" in sandbox.run(DASH, line)


@pytest.mark.parametrize(("line", "in_dash"), FINDING_2)
def test_the_gate_reads_the_word_the_shells_read(
    line: str, in_dash: bool, deny_list: CompiledPolicy
) -> None:
    argvs = command_argvs(line)
    assert ("rm", "victim") in argvs, argvs
    assert not any(argv[0] in ("X=1", "coproc", "!") for argv in argvs[:1]), argvs
    verdict = check_line(deny_list, line)
    assert verdict.decision == "deny", verdict.reason
    assert "rm victim" in verdict.reason


@needs_bash
def test_bash_sets_a_continued_assignment_for_the_command(sandbox: Sandbox) -> None:
    assert BASH is not None
    assert "ENV LD_PRELOAD" in sandbox.run(BASH, "LD_PRELOAD\\\n=/no/x.so ls")


@pytest.mark.parametrize(
    "line",
    [
        "LD_PRELOAD\\\n=/no/x.so ls",
        "LD_\\\nPRELOAD=/no/x.so ls",
        "LD_PRELOAD=\\\n/no/x.so ls",
        "export LD_PRELOAD\\\n=/no/x.so",
        "{PA\\\nTH}>/dev/null true",
        "coproc PA\\\nTH { true; }",
        "echo ${CDPATH\\\n:=/tmp}",
    ],
)
def test_a_continued_risky_name_is_an_environment_override(
    line: str, deny_list: CompiledPolicy
) -> None:
    assert "environment-override" in construct_names(line)
    assert check_line(deny_list, line).decision == "deny"


def _first_command(text: str, *, posix: bool = False) -> sh.Command:
    script = parse_script(text, max_depth=4, posix=posix)
    return script.items[0].and_or.first.commands[0]


@pytest.mark.parametrize("posix", [False, True])
def test_the_parser_sees_the_assignment(posix: bool) -> None:
    command = _first_command("X\\\n=1 e\\\nnv", posix=posix)
    assert isinstance(command, sh.SimpleCommand)
    assert [(a.name, a.word.text) for a in command.assignments] == [("X", "X=1")]
    assert [word.text for word in command.words] == ["env"]
    assert [word.raw for word in command.words] == ["env"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("co\\\nproc rm x", sh.Coprocess),
        ("i\\\nf true; th\\\nen rm x; f\\\ni", sh.If),
        ("{\\\n rm x; \\\n}", sh.Group),
        ("{ rm x; }\\\n", sh.Group),
        ("[\\\n[ -n x ]\\\n]", sh.Conditional),
        ("(\\\n(1)\\\n)", sh.Arithmetic),
        ("f\\\nor i i\\\nn 1; d\\\no rm x; don\\\ne", sh.For),
        ("ca\\\nse a i\\\nn a) rm x;\\\n; es\\\nac", sh.Case),
        ("f\\\n() { rm x; }", sh.FunctionDefinition),
        ("func\\\ntion f\\\n { rm x; }", sh.FunctionDefinition),
    ],
)
def test_the_parser_sees_the_keyword(text: str, kind: type) -> None:
    assert isinstance(_first_command(text), kind)


def test_a_continued_bang_and_time_are_keywords() -> None:
    pipeline = parse_script("!\\\n rm x", max_depth=4).items[0].and_or.first
    assert pipeline.negated
    assert command_argvs("!\\\n rm x") == [("rm", "x")]
    # bash's reading first (dash runs /usr/bin/time -p -- rm x)
    assert command_argvs("ti\\\nme -\\\np -\\\n- rm x")[0] == ("rm", "x")


def test_the_function_is_named_without_the_continuation() -> None:
    command = _first_command("f\\\nn() { rm x; }")
    assert isinstance(command, sh.FunctionDefinition)
    assert command.name == "fn"
    assert "function-definition" in construct_names("f\\\nn() { rm x; }")


@needs_bash
def test_bash_reads_the_descriptor_and_the_delimiter_without_it(sandbox: Sandbox) -> None:
    assert BASH is not None
    # 2\<nl>>f redirects descriptor 2; <<E\<nl>OF is an unquoted EOF.
    assert sandbox.run(BASH, "rm x 2\\\n>/dev/null") == ["rm x"]
    assert sandbox.run(BASH, "bash <<E\\\nOF\nrm $((1+1))\nEOF\nrm after") == ["rm 2", "rm after"]


def test_the_gate_reads_the_descriptor_and_the_delimiter_without_it() -> None:
    command = _first_command("rm x 2\\\n>/dev/null")
    assert isinstance(command, sh.SimpleCommand)
    assert [word.text for word in command.words] == ["rm", "x"]
    assert [redirect.fd for redirect in command.redirects] == ["2"]
    analysis = analyse("bash <<E\\\nOF\nrm $((1+1))\nEOF\nrm after")
    assert ("rm", "after") in [command.argv for command in analysis.commands]
    assert {"heredoc-to-shell", "arithmetic"} <= {c.name for c in analysis.constructs}


@needs_bash
def test_bash_runs_a_prompt_expansion_split_by_a_continuation(sandbox: Sandbox) -> None:
    assert BASH is not None
    assert sandbox.run(BASH, "x='$(rm victim)'; echo ${x\\\n@P}") == ["rm victim"]


def test_a_continued_prompt_expansion_is_eval() -> None:
    assert "eval" in construct_names("echo ${x\\\n@P}")
    assert "eval" in construct_names("echo ${x@\\\nP}")
    assert "arithmetic" in construct_names("echo ${a\\\n[1]}")


# x=\<newline>(1) makes x an array, so `local x=$1` then expands a (...) value: eval.
ARRAY_LOCAL = 'f(){ local x=\\\n(1); local x=$1; }; f "(\\$(rm victim))"'


@needs_bash
def test_bash_takes_a_continued_array_local_for_an_array(sandbox: Sandbox) -> None:
    assert BASH is not None
    assert sandbox.run(BASH, ARRAY_LOCAL) == ["rm victim"]


def test_a_continued_array_local_makes_the_later_one_eval() -> None:
    assert "eval" in construct_names(ARRAY_LOCAL)
    assert "eval" in construct_names(ARRAY_LOCAL.replace("\\\n", ""))


@needs_bash
def test_a_continuation_in_single_quotes_stays(sandbox: Sandbox) -> None:
    assert BASH is not None
    assert "\n".join(sandbox.run(BASH, "rm 'a\\\nb' $'c\\\nd'")) == "rm a\\\nb c\\\nd"
    assert command_argvs("rm 'a\\\nb' $'c\\\nd'")[0] == ("rm", "a\\\nb", "c\\\nd")  # dash: $c...
    # and a quoted word, continued or not, is no keyword
    assert command_argvs("'co\\\nproc' x") == [("co\\\nproc", "x")]


# A continuation at every position of these: the gate must report every program the
# real shells run (or refuse the text), and the constructs listed whenever it parses.
CONTINUED: list[tuple[str, set[str]]] = [
    ("X=1 env", set()),
    ("coproc rm x; wait", set()),
    ("! rm x", set()),
    ("if true; then rm x; fi", set()),
    ("f() { rm x; }; f", {"function-definition"}),
    ("function g { rm x; }; g", {"function-definition"}),
    ("case a in a) rm x;; esac", set()),
    ("for i in 1; do rm x; done", set()),
    ("while true; do rm x; break; done", set()),
    ("{ rm x; }", set()),
    ("[[ -n x ]] && rm x", set()),
    ("((1)) && rm x", {"arithmetic"}),
    ("time rm x", set()),
    ("time -p rm x", set()),
    ("LD_PRELOAD=/no/x.so ls", {"environment-override"}),
    ("a[1]=x rm y", {"arithmetic"}),
    ("coproc C { rm x; }; wait", set()),
    ("rm x 2>/dev/null", set()),
    ("bash <<EOF\nrm x\nEOF", {"heredoc-to-shell"}),
]
# Read by the gate only (what they run depends on values).
CONTINUED_VALUES: list[tuple[str, set[str]]] = [
    ("echo ${x@P}", {"eval", "parameter-expansion"}),
    ("rm ${a[1]} {fd}>/dev/null", {"arithmetic", "parameter-expansion"}),
    ("echo ${#a[1]} ${!b} ${c:1:2} ${PATH:=/x}", {"arithmetic", "environment-override"}),
    ("{PATH}>/dev/null true", {"environment-override"}),
]
# With quotes, where a continuation inside them is kept (and removed by the shell that
# later reads the text as code): the gate must still report what runs.
CONTINUED_QUOTED: list[tuple[str, set[str]]] = [
    ("test -v 'a[$(rm x)]'", {"arithmetic", "command-substitution"}),
    ("a['$(rm x)']=1", {"arithmetic", "command-substitution"}),
    ("a[1]=1; echo ${a['$(rm x)']}", {"arithmetic", "command-substitution"}),
    ("bash -c 'rm x'", set()),
]
# A variable a stub saw set, and the construct the gate must report for it.
WATCHED_CONSTRUCTS = {"ENV LD_PRELOAD": "environment-override"}


def _continued(line: str) -> list[str]:
    return [line[:at] + "\\\n" + line[at:] for at in range(len(line) + 1)]


def _gate_misses(variant: str, ran: list[str], constructs: set[str]) -> list[str]:
    try:
        analysis = analyse(variant)
    except RequestError:
        return []  # refused: denied whatever the policy
    reported = {" ".join(command.argv) for command in analysis.commands}
    names = {construct.name for construct in analysis.constructs}
    missed = [program for program in ran if program not in reported and program[:4] != "ENV "]
    missed += [
        WATCHED_CONSTRUCTS[line]
        for line in ran
        if line in WATCHED_CONSTRUCTS and WATCHED_CONSTRUCTS[line] not in names
    ]
    return missed + sorted(constructs - names)


Reading = tuple[list[tuple[str, ...]], list[str], tuple[str, ...], tuple[str, ...]]


def _reading(line: str) -> Reading:
    analysis = analyse(line)
    names = sorted({construct.name for construct in analysis.constructs})
    return [c.argv for c in analysis.commands], names, analysis.writes, analysis.reads


@pytest.mark.parametrize(("line", "constructs"), CONTINUED + CONTINUED_VALUES)
def test_the_gate_reads_a_continued_command_as_the_command(line: str, constructs: set[str]) -> None:
    """The shells remove the continuation before anything else: so does the gate."""
    expected = _reading(line)
    assert constructs <= set(expected[1])
    refused = []
    for variant in _continued(line):
        try:
            assert _reading(variant) == expected, variant
        except RequestError:
            refused.append(variant)
    assert refused in ([], ["bash <<EOF\nrm x\nEOF\\\n"]), refused  # EOF\ is no EOF


@needs_bash
@pytest.mark.parametrize(("line", "constructs"), CONTINUED + CONTINUED_QUOTED)
def test_a_continuation_anywhere_hides_nothing(
    sandbox: Sandbox, line: str, constructs: set[str]
) -> None:
    assert BASH is not None
    shells = [BASH] + ([DASH] if DASH is not None else [])
    assert sandbox.run(BASH, line), "the command runs a stand-in"
    failures = []
    for variant in _continued(line):
        for shell in shells:
            ran = sandbox.run(shell, variant)
            missed = _gate_misses(variant, ran, constructs)
            if missed:
                failures.append((variant, Path(shell).name, ran, missed))
    assert not failures, failures


# -- finding 5: what bash evaluates in a subscript ------------------------------------------

# Each runs `rm victim` in bash (checked below); with arithmetic allowed, the gate allowed
# them all.
SUBSCRIPTS = [
    "test -v 'a[$(rm victim)]'",
    "[ -v 'a[$(rm victim)]' ]",
    "[[ -v 'a[$(rm victim)]' ]]",
    "[[ 'a[$(rm victim)]' -eq 1 ]]",
    "[[ 1 -lt 'a[$(rm victim)]' ]]",
    "printf -v 'a[$(rm victim)]' x",
    "printf -v'a[$(rm victim)]' x",
    "read 'a[$(rm victim)]' <<<x",
    "read -r x 'a[$(rm victim)]' <<<x",
    "declare 'a[$(rm victim)]=1'",
    "declare a['$(rm victim)']=1",
    "declare 'a[x=$(rm victim)]=1'",
    "typeset 'a[$(rm victim)]=1'",
    "f() { local 'a[$(rm victim)]=1'; }; f",
    "declare -i x='a[$(rm victim)]'",
    "declare -n r='a[$(rm victim)]'; echo $r",
    "let 'a[$(rm victim)]=1'",
    "let 'x=a[$(rm victim)]'",
    "a=(1); unset 'a[$(rm victim)]'",  # (a subscript of an unset name is not read)
    "sleep 0 & wait -p 'a[$(rm victim)]' $!",
    "a[1]=1; echo ${a['$(rm victim)']}",
    "a[1]=1; echo \"${a['$(rm victim)']}\"",
    "a[1]=1; echo ${a[$'\\x24(rm victim)']}",
    "a[1]=1; echo \"${a[$'\\x24(rm victim)']}\"",
    "a=(1 2); echo ${#a['$(rm victim)']}",
    "a[1]=1; echo ${!a['$(rm victim)']}",
    "a[1]=1; echo ${a['x]$(rm victim)']}",
    "x=abc; echo ${x:'$(rm victim)'}",
    "x=abc; echo ${x:1:'$(rm victim)'}",
    "x=abc; echo ${x: $'\\x24(rm victim)'}",
    "a=(1 2); echo ${a[@]:'$(rm victim)'}",
    "a['$(rm victim)']=1",
    "a['$(rm victim)']+=1",
    "a[$'\\x24(rm victim)']=1",
    "a=(['$(rm victim)']=1)",
    "test -v 'a[`rm victim`]'",
    "test -v 'a[${x:-$(rm victim)}]'",
]


@needs_bash
@pytest.mark.parametrize("line", SUBSCRIPTS)
def test_bash_runs_what_the_subscript_holds(sandbox: Sandbox, line: str) -> None:
    assert BASH is not None
    assert "rm victim" in sandbox.run(BASH, line)


@pytest.mark.parametrize("line", SUBSCRIPTS)
def test_the_gate_decides_what_the_subscript_holds(
    line: str,
    allow_list: CompiledPolicy,
    substitutions_allowed: CompiledPolicy,
) -> None:
    assert ("rm", "victim") in command_argvs(line), command_argvs(line)
    assert construct_names(line) & {"command-substitution", "backticks"}
    assert check_line(allow_list, line).decision == "deny"
    verdict = check_line(substitutions_allowed, line)
    assert verdict.decision == "deny", verdict.reason
    assert "rm victim" in verdict.reason


# Where bash takes the text as it is, and runs nothing: none of it is reported.
NOT_EVALUATED = [
    "a[1]=1; echo ${a[1]:-'$(rm victim)'}",
    "x=; echo ${x:-'$(rm victim)'}",
    "x=abc; echo ${x:-$'\\x24(rm victim)'}",
    "echo 'a[$(rm victim)]'",
    "test 'a[$(rm victim)]' = x",
    "declare 'a[1]=$(rm victim)'",
]


@needs_bash
@pytest.mark.parametrize("line", NOT_EVALUATED)
def test_bash_runs_nothing_from_these(sandbox: Sandbox, line: str) -> None:
    assert BASH is not None
    assert "rm victim" not in sandbox.run(BASH, line)


@pytest.mark.parametrize("line", NOT_EVALUATED)
def test_the_gate_reports_nothing_from_these(line: str) -> None:
    assert ("rm", "victim") not in command_argvs(line)


NAMES_NOT_KNOWN = [
    "n='a[$(rm victim)]'; read \"$n\" <<<x",
    "n='a[$(rm victim)]'; printf -v \"$n\" x",
    "n='a[$(rm victim)]'; sleep 0 & wait -p \"$n\" $!",
]


@needs_bash
@pytest.mark.parametrize("line", NAMES_NOT_KNOWN)
def test_bash_evaluates_a_subscript_a_value_names(sandbox: Sandbox, line: str) -> None:
    assert BASH is not None
    assert "rm victim" in sandbox.run(BASH, line)


@pytest.mark.parametrize("line", NAMES_NOT_KNOWN)
def test_a_name_not_known_here_is_arithmetic(line: str) -> None:
    assert {"arithmetic", "parameter-expansion"} <= construct_names(line)


def test_a_plain_name_is_no_arithmetic() -> None:
    assert "arithmetic" not in construct_names("read -r line <<<x")
    assert "arithmetic" not in construct_names("printf -v out %s x")
    assert "arithmetic" not in construct_names('mapfile -t lines < "$f"')
