"""Command analysis for process.exec (CONTRACT 2.2 "Commands"): what a command line runs.

Each table gives a command line and exactly what ``analyse_command`` must find: the
simple commands (argv after unwrapping), the redirection targets, the constructs.
"""

from __future__ import annotations

import pytest

from sidecar.errors import RequestError
from sidecar.normalise.commands import (
    CONSTRUCTS,
    CommandAnalysis,
    Construct,
    SimpleCommand,
    analyse_command,
)
from sidecar.normalise.shell_context import UNKNOWN_CWD

CWD = "/work"


def analyse(line: str, cwd: str | None = CWD) -> CommandAnalysis:
    return analyse_command(command_line=line, cwd=cwd)


def argvs(analysis: CommandAnalysis) -> list[tuple[str, ...]]:
    return [command.argv for command in analysis.commands]


def names(analysis: CommandAnalysis) -> set[str]:
    return {construct.name for construct in analysis.constructs}


# -- splitting into simple commands ---------------------------------------------------------

SPLITTING = [
    ("git status", [("git", "status")]),
    ("git status && make test", [("git", "status"), ("make", "test")]),
    ("a || b", [("a",), ("b",)]),
    ("a; b;c", [("a",), ("b",), ("c",)]),
    ("a | b |& c", [("a",), ("b",), ("c",)]),
    ("a & b", [("a",), ("b",)]),
    ("a\nb\n\nc", [("a",), ("b",), ("c",)]),
    ("a &&\n  b ||\n c", [("a",), ("b",), ("c",)]),
    ("a |\n b", [("a",), ("b",)]),
    ("(a; b) && { c; d; }", [("a",), ("b",), ("c",), ("d",)]),
    ("! a", [("a",)]),
    ("time -p a | b", [("a",), ("b",), ("time", "-p", "a")]),  # sh: time is a program
    ("if a; then b; elif c; then d; else e; fi", [("a",), ("b",), ("c",), ("d",), ("e",)]),
    ("while a; do b; done; until c; do d; done", [("a",), ("b",), ("c",), ("d",)]),
    ("for x in 1 2; do b; done", [("b",)]),
    ("for x; do b; done", [("b",)]),
    ("for x in 1; { b; }", [("b",)]),
    ("select x in a b; do c; done", [("c",)]),
    ("case x in a) b;; (c|d) e;& *) f;;& esac", [("b",), ("e",), ("f",)]),
    ("case x in\n a)\n b\n ;;\nesac", [("b",)]),
    ("coproc a b", [("a", "b"), ("coproc", "a", "b")]),
    ("coproc NAME { a; }", [("a",)]),
    ("f() { a; }", [("a",)]),
    ("function f { a; }; function g() ( b )", [("a",), ("b",)]),
    ("[[ -f x ]] && a", [("[[", "-f", "x", "]]"), ("a",)]),
    ("test -f x && [ -d y ]", [("test", "-f", "x"), ("[", "-d", "y", "]")]),
    ("echo a # ; rm -rf /", [("echo", "a")]),
    ("echo a#b;c", [("echo", "a#b"), ("c",)]),
    ("a;#b\nc", [("a",), ("c",)]),
]


@pytest.mark.parametrize(("line", "expected"), SPLITTING)
def test_command_line_is_split_like_sh(line: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(analyse(line)) == expected


# -- words: quoting, escapes, continuation -----------------------------------------------------

WORDS = [
    ("echo 'a b' \"c d\" e\\ f", ("echo", "a b", "c d", "e f")),
    ("e'ch'o hi", ("echo", "hi")),
    ('"e"c\\ho hi', ("echo", "hi")),
    ("ec\\\nho hi", ("echo", "hi")),
    ("echo a\\\nb", ("echo", "ab")),
    ("echo 'a\\\nb'", ("echo", "a\\\nb")),
    ('echo "a\\"b\\$c\\\\d\\e"', ("echo", 'a"b$c\\d\\e')),
    ("echo '' \"\"", ("echo", "", "")),
    ("echo \\; \\| \\&", ("echo", ";", "|", "&")),
    ("echo a$", ("echo", "a$")),
    ("echo {}", ("echo", "{}")),
    ("echo [", ("echo", "[")),
]


@pytest.mark.parametrize(("line", "expected"), WORDS)
def test_words_are_quote_removed_like_sh(line: str, expected: tuple[str, ...]) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == [expected]
    assert analysis.constructs == ()


ANSI_C = [
    (
        "echo $'\\x72m\\t\\101\\u00e9\\n'",
        ("echo", "rm\tA\u00e9\n"),
        ("echo", "$\\x72m\\t\\101\\u00e9\\n"),
    ),
    ("echo $'ab\\x00cd'", ("echo", "ab"), ("echo", "$ab\\x00cd")),  # a NUL ends it in bash
    ('echo $"a b"', ("echo", "a b"), ("echo", "$a b")),
]


@pytest.mark.parametrize(("line", "in_bash", "in_sh"), ANSI_C)
def test_ansi_c_quotes_are_bash_and_a_dollar_to_posix_sh(
    line: str, in_bash: tuple[str, ...], in_sh: tuple[str, ...] | None
) -> None:
    assert argvs(analyse(line)) == [in_bash] + ([in_sh] if in_sh else [])


@pytest.mark.parametrize(
    "line",
    [
        "echo $'a\\'b' $\"c\"",  # sh: an unterminated quote
        # Found in the red-team review of 2026-12-07: text bash reads as one $'...' word
        # and dash as commands, past a construct this reader may take for dash's syntax
        # error where dash has none (see tests/adversarial/test_dash_reading_differs.py).
        "git status $'\\' ; touch x\n\" #'",
    ],
)
def test_text_bash_and_posix_sh_split_differently_is_refused_where_sh_fails(line: str) -> None:
    # dash runs the lines before its own syntax error; where the text holds $'...', which
    # dash splits otherwise, this reader will not guess where that error is.
    with pytest.raises(RequestError, match=r"split differently \(\$'\.\.\.'\)"):
        analyse(line)


# -- the POSIX sh reading ----------------------------------------------------------------------

POSIX_READING = [
    (
        "[[ -f x || rm y ]]",
        [("[[", "-f", "x", "||", "rm", "y", "]]"), ("[[", "-f", "x"), ("rm", "y", "]]")],
        [],
    ),
    ("[[ -f a && -d b ]]", [("[[", "-f", "a", "&&", "-d", "b", "]]"), ("[[", "-f", "a")], []),
    ("[[ a > b ]]", [("[[", "a", ">", "b", "]]"), ("[[", "a", "]]")], ["/work/b"]),
    ("((rm x))", [("rm", "x")], []),
    ("a &>f b", [("a", "b"), ("a",), ("b",)], ["/work/f"]),
    ("a |& b", [("a",), ("b",)], []),
    (
        "sh -c '[[ x || rm y ]]'",
        [("[[", "x", "||", "rm", "y", "]]"), ("[[", "x"), ("rm", "y", "]]")],
        [],
    ),
    ("dash -c '((rm x))'", [("rm", "x")], []),
    ("bash -c '[[ x || rm y ]]'", [("[[", "x", "||", "rm", "y", "]]")], []),
    ("zsh -c '((rm x))'", [], []),
    ("diff <(a) <(b)", [("a",), ("b",), ("diff", "<(a)", "<(b)")], []),
    ("x=(1 2); rm y", [("rm", "y")], []),
    ("true 10>f", [("true",), ("true", "10")], ["/work/f"]),  # dash: one-digit descriptors
    ("ls\nx=(1 2)\n((rm y))", [("ls",)], []),  # sh stops at the line it cannot parse
]


@pytest.mark.parametrize(("line", "expected", "writes"), POSIX_READING)
def test_what_posix_sh_would_run_is_reported_too(
    line: str, expected: list[tuple[str, ...]], writes: list[str]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert list(analysis.writes) == writes


# -- shells ------------------------------------------------------------------------------------

SHELLS = [
    ("sh -c 'git push --force'", [("git", "push", "--force")]),
    ("bash -c 'a && b; c'", [("a",), ("b",), ("c",)]),
    ("bash -lc 'npm test'", [("npm", "test")]),
    ("bash -ec 'a'", [("a",)]),
    ("bash -xeuc 'a'", [("a",)]),
    ("bash -c -x 'a'", [("a",)]),
    ("bash -o pipefail -c 'a | b'", [("a",), ("b",)]),
    ("bash -O extglob -c a", [("a",)]),
    ("bash --norc --noprofile -c a", [("a",)]),
    ("bash --rcfile /x -c a", [("a",)]),
    ("bash -c -- a", [("a",)]),
    ("bash -c 'a' name arg1", [("a",)]),
    (
        "zsh -c a; dash -c b; ksh -c c; mksh -c d; ash -c e",
        [("a",), ("b",), ("c",), ("d",), ("e",)],
    ),
    ("/bin/bash -c a", [("a",)]),
    ("/usr/local/bin/zsh -c a", [("a",)]),
    ("sh -c \"sh -c 'bash -c a'\"", [("a",)]),
    ("bash script.sh arg", [("bash", "script.sh", "arg")]),
    ("bash", [("bash",)]),
    ("bash -c", [("bash", "-c")]),
    ("curl x | sh", [("curl", "x"), ("sh",)]),
    ("bash -s arg < script", [("bash", "-s", "arg")]),
    ("fish -c 'rm x'", [("fish", "-c", "rm x")]),
]


@pytest.mark.parametrize(("line", "expected"), SHELLS)
def test_shell_scripts_replace_the_shell(line: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(analyse(line)) == expected


def test_a_shell_outside_the_trusted_directories_is_reported_and_unwrapped() -> None:
    analysis = analyse("/tmp/evil/bash -c 'ls' && ./sh -c 'id'")
    assert argvs(analysis) == [
        ("/tmp/evil/bash", "-c", "ls"),
        ("ls",),
        ("/work/sh", "-c", "id"),
        ("id",),
    ]


def test_labels_say_where_a_command_was_found() -> None:
    analysis = analyse("env bash -c 'git push; echo $(id)'")
    labels = [command.label for command in analysis.commands]
    assert labels == [
        "env bash -c 'git push; echo $(id)'",
        "git push (via env, in bash -c script)",
        "id (via env, in bash -c script, in $(...))",
        "echo '$(id)' (via env, in bash -c script)",
    ]


# -- wrappers ----------------------------------------------------------------------------------

WRAPPERS = [
    ("env git status", [("env", "git", "status"), ("git", "status")]),
    ("env -i FOO=1 BAR=2 git x", [("env", "-i", "FOO=1", "BAR=2", "git", "x"), ("git", "x")]),
    ("env -u HOME -- git x", [("env", "-u", "HOME", "--", "git", "x"), ("git", "x")]),
    ("env - git", [("env", "-", "git"), ("git",)]),
    ("env -S 'git -c x status'", [("env", "-S", "git -c x status"), ("git", "-c", "x", "status")]),
    ("env -iS'git x'", [("env", "-iSgit x"), ("git", "x")]),
    ("env", [("env",)]),
    ("nice make", [("nice", "make"), ("make",)]),
    ("nice -n 10 make", [("nice", "-n", "10", "make"), ("make",)]),
    ("nice -10 make", [("nice", "-10", "make"), ("make",)]),
    ("nice --adjustment=5 make", [("nice", "--adjustment=5", "make"), ("make",)]),
    ("timeout 5 make", [("timeout", "5", "make"), ("make",)]),
    (
        "timeout -s KILL -k 1 5s make",
        [("timeout", "-s", "KILL", "-k", "1", "5s", "make"), ("make",)],
    ),
    ("timeout --sig=KILL 5 make", [("timeout", "--sig=KILL", "5", "make"), ("make",)]),
    ("nohup make &", [("nohup", "make"), ("make",)]),
    ("stdbuf -oL -e0 make", [("stdbuf", "-oL", "-e0", "make"), ("make",)]),
    ("stdbuf --output=L make", [("stdbuf", "--output=L", "make"), ("make",)]),
    ("sudo make", [("sudo", "make"), ("make",)]),
    ("sudo -u app -E -- make", [("sudo", "-u", "app", "-E", "--", "make"), ("make",)]),
    ("sudo -nu app make", [("sudo", "-nu", "app", "make"), ("make",)]),
    ("sudo --user=app make", [("sudo", "--user=app", "make"), ("make",)]),
    ("sudo A=1 make", [("sudo", "A=1", "make"), ("make",)]),
    ("sudo -i make x", [("sudo", "-i", "make", "x"), ("make", "x")]),
    ("sudo -s make 'a b'", [("sudo", "-s", "make", "a b"), ("make", "a b")]),
    ("sudo -l make", [("sudo", "-l", "make")]),
    ("doas -u app make", [("doas", "-u", "app", "make"), ("make",)]),
    ("command make", [("make",)]),
    ("command -p make", [("make",)]),
    ("command -v make", [("command", "-v", "make")]),
    ("exec make", [("make",)]),
    ("exec -a name make", [("make",)]),
    ("builtin echo x", [("echo", "x")]),
    ("time make", [("make",), ("time", "make")]),
    ("/usr/bin/time -v make", [("/usr/bin/time", "-v", "make"), ("make",)]),
    ("busybox rm x", [("busybox", "rm", "x"), ("rm", "x")]),
    ("busybox --list", [("busybox", "--list")]),
    # Under another root: the path there (a bare name is dynamic-command).
    (
        "chroot /srv /usr/bin/make",
        [("chroot", "/srv", "/usr/bin/make"), ("/srv/usr/bin/make",)],
    ),
    ("ionice -c3 make", [("ionice", "-c3", "make"), ("make",)]),
    ("ionice -c3 -p 42", [("ionice", "-c3", "-p", "42")]),
    ("setsid -f make", [("setsid", "-f", "make"), ("make",)]),
    ("nsenter -t 1 -m make", [("nsenter", "-t", "1", "-m", "make"), ("make",)]),
    ("unshare -rn make", [("unshare", "-rn", "make"), ("make",)]),
    ("taskset -c 0 make", [("taskset", "-c", "0", "make"), ("make",)]),
    ("taskset -p 42", [("taskset", "-p", "42")]),
    ("chrt -f 10 make", [("chrt", "-f", "10", "make"), ("make",)]),
    ("flock /tmp/l make", [("flock", "/tmp/l", "make"), ("make",)]),
    ("flock -w 5 /tmp/l -c 'a; b'", [("flock", "-w", "5", "/tmp/l", "-c", "a; b"), ("a",), ("b",)]),
    ("su -c 'a' app", [("su", "-c", "a", "app"), ("a",)]),
    ("su app -c 'a'", [("su", "app", "-c", "a"), ("a",)]),
    ("su app -- -c 'a'", [("su", "app", "--", "-c", "a"), ("a",)]),
    ("su -s /bin/bash -c 'a' app", [("su", "-s", "/bin/bash", "-c", "a", "app"), ("a",)]),
    ("su app ./x.sh", [("su", "app", "./x.sh"), ("sh", "./x.sh")]),
    ("runuser -u app -- make x", [("runuser", "-u", "app", "--", "make", "x"), ("make", "x")]),
    ("sg grp -c 'a; b'", [("sg", "grp", "-c", "a; b"), ("a",), ("b",)]),
    ("watch -n 1 'a | b'", [("watch", "-n", "1", "a | b"), ("a",), ("b",)]),
    ("watch -x make x", [("watch", "-x", "make", "x"), ("make", "x")]),
    ("script -qc 'make' /dev/null", [("script", "-qc", "make", "/dev/null"), ("make",)]),
    ("script -q /dev/null -c make", [("script", "-q", "/dev/null", "-c", "make"), ("make",)]),
    ("script /dev/null --command=make", [("script", "/dev/null", "--command=make"), ("make",)]),
    ("script --help", [("script", "--help")]),
    ("chroot --help", [("chroot", "--help")]),
    ("su --version", [("su", "--version")]),
    ("repeat 3 make", [("repeat", "3", "make"), ("make",)]),
    (
        "zsh -c 'repeat 2 repeat 1 make'",
        [("repeat", "2", "repeat", "1", "make"), ("repeat", "1", "make"), ("make",)],
    ),
    ("repeat 3", [("repeat", "3")]),
    ("env repeat 3 make", [("env", "repeat", "3", "make"), ("repeat", "3", "make")]),
    ("pkexec --user app make", [("pkexec", "--user", "app", "make"), ("make",)]),
    ("tmux new 'a; b'", [("tmux", "new", "a; b"), ("a",), ("b",)]),
    (
        "tmux -L s new-session -d -s w make x",
        [("tmux", "-L", "s", "new-session", "-d", "-s", "w", "make", "x"), ("make", "x")],
    ),
    ("tmux new -d -- make", [("tmux", "new", "-d", "--", "make"), ("make",)]),
    ("tmux splitw -h 'make'", [("tmux", "splitw", "-h", "make"), ("make",)]),
    ("tmux run-shell -b 'a | b'", [("tmux", "run-shell", "-b", "a | b"), ("a",), ("b",)]),
    ("tmux -c 'make'", [("tmux", "-c", "make"), ("make",)]),
    ("tmux ls", [("tmux", "ls")]),
    ("tmux -V", [("tmux", "-V")]),
    ("tmux run-shell", [("tmux", "run-shell")]),
    ("screen make x", [("screen", "make", "x"), ("make", "x")]),
    ("screen -ls", [("screen", "-ls")]),
    ("systemd-run --scope make", [("systemd-run", "--scope", "make"), ("make",)]),
    (
        "systemd-run -t --wait -u job make",
        [("systemd-run", "-t", "--wait", "-u", "job", "make"), ("make",)],
    ),
    ("systemd-run --help", [("systemd-run", "--help")]),
    ("run0 -u app make", [("run0", "-u", "app", "make"), ("make",)]),
    ("firejail --net=none make x", [("firejail", "--net=none", "make", "x"), ("make", "x")]),
    ("firejail --list", [("firejail", "--list")]),
    ("login --help", [("login", "--help")]),
    ("busybox sh -c 'make'", [("busybox", "sh", "-c", "make"), ("make",)]),
    ("noglob make", [("make",)]),
    ("- make", [("make",)]),
    (
        "sudo -u app env FOO=1 timeout 5 nice -n 1 git push",
        [
            ("sudo", "-u", "app", "env", "FOO=1", "timeout", "5", "nice", "-n", "1", "git", "push"),
            ("env", "FOO=1", "timeout", "5", "nice", "-n", "1", "git", "push"),
            ("timeout", "5", "nice", "-n", "1", "git", "push"),
            ("nice", "-n", "1", "git", "push"),
            ("git", "push"),
        ],
    ),
    ("exec env git x", [("env", "git", "x"), ("git", "x")]),
    ("env exec git", [("env", "exec", "git"), ("exec", "git")]),
    ("find . -name x", [("find", ".", "-name", "x")]),
    (
        "find . -exec rm + -rf x \\;",
        [("find", ".", "-exec", "rm", "+", "-rf", "x", ";"), ("rm", "+", "-rf", "x")],
    ),
    (
        "find . -exec grep -l x {} + -execdir rm y \\;",
        [
            ("find", ".", "-exec", "grep", "-l", "x", "{}", "+", "-execdir", "rm", "y", ";"),
            ("grep", "-l", "x", "{}"),
            ("rm", "y"),
        ],
    ),
]


@pytest.mark.parametrize(("line", "expected"), WRAPPERS)
def test_wrappers_are_reported_and_unwrapped(line: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(analyse(line)) == expected


# The shell these start is $SHELL or a login shell, unknown here: it is reported as sh.
SHELL_STARTERS = [
    ("sudo -s", [("sudo", "-s"), ("sh",)]),
    ("sudo -i", [("sudo", "-i"), ("sh",)]),
    ("sudo -u app --login", [("sudo", "-u", "app", "--login"), ("sh",)]),
    ("su", [("su",), ("sh",)]),
    ("su -", [("su", "-"), ("sh",)]),
    ("su - app", [("su", "-", "app"), ("sh",)]),
    ("su root", [("su", "root"), ("sh",)]),
    ("su -l app", [("su", "-l", "app"), ("sh",)]),
    ("su -s /bin/zsh app", [("su", "-s", "/bin/zsh", "app"), ("/bin/zsh",)]),
    ("runuser app", [("runuser", "app"), ("sh",)]),
    ("doas -s", [("doas", "-s"), ("sh",)]),
    ("doas -u app -s", [("doas", "-u", "app", "-s"), ("sh",)]),
    ("pkexec", [("pkexec",), ("sh",)]),
    ("pkexec --user app", [("pkexec", "--user", "app"), ("sh",)]),
    ("chroot /", [("chroot", "/"), ("sh", "-i")]),
    ("unshare -rn", [("unshare", "-rn"), ("sh",)]),
    ("nsenter -t 1 -m", [("nsenter", "-t", "1", "-m"), ("sh",)]),
    ("script", [("script",), ("sh", "-i")]),
    ("script -q /dev/null", [("script", "-q", "/dev/null"), ("sh", "-i")]),
    ("newgrp wheel", [("newgrp", "wheel"), ("sh",)]),
    ("echo x | sudo -s", [("echo", "x"), ("sudo", "-s"), ("sh",)]),
    ("tmux", [("tmux",), ("sh",)]),
    ("tmux -L s new -d", [("tmux", "-L", "s", "new", "-d"), ("sh",)]),
    ("tmux new-window -n w", [("tmux", "new-window", "-n", "w"), ("sh",)]),
    ("screen", [("screen",), ("sh",)]),
    ("login", [("login",), ("sh",)]),
    ("login -f root", [("login", "-f", "root"), ("sh",)]),
    ("systemd-run --shell", [("systemd-run", "--shell"), ("sh",)]),
    ("systemd-run -S", [("systemd-run", "-S"), ("sh",)]),
    ("run0", [("run0",), ("sh",)]),
    ("run0 -u app", [("run0", "-u", "app"), ("sh",)]),
    ("firejail", [("firejail",), ("sh",)]),
    ("firejail --private", [("firejail", "--private"), ("sh",)]),
    ("firejail --shell=/bin/zsh", [("firejail", "--shell=/bin/zsh"), ("/bin/zsh",)]),
    ("busybox sh", [("busybox", "sh"), ("sh",)]),
    ("exec bash", [("bash",)]),
]


@pytest.mark.parametrize(("line", "expected"), SHELL_STARTERS)
def test_wrappers_that_start_a_shell_report_it_as_sh(
    line: str, expected: list[tuple[str, ...]]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    # zsh reads ~/.zshenv first, whoever starts it; a login shell its profile.
    started_zsh = expected[-1][0].endswith("zsh")
    assert names(analysis) == ({"startup-files"} if started_zsh or line in LOGINS else set())


# Those of them that start a login shell (argv[0] "-sh"), which runs its profile first.
LOGINS = frozenset(
    {"sudo -i", "sudo -u app --login", "su -", "su - app", "su -l app", "login"} | {"login -f root"}
)


def test_xargs_runs_its_command_with_unseen_arguments() -> None:
    analysis = analyse("ls | xargs -0 -n 1 -I{} cp {} /x")
    assert argvs(analysis) == [
        ("ls",),
        ("xargs", "-0", "-n", "1", "-I{}", "cp", "{}", "/x"),
        ("cp", "{}", "/x"),
    ]
    assert names(analysis) == {"unknown-arguments"}
    assert argvs(analyse("xargs < list")) == [("xargs",), ("echo",)]


WRAPPER_OPTIONS_NOT_UNDERSTOOD = [
    "timeout --bogus 5 rm x",
    "env --bogus rm x",
    "sudo -Z rm x",
    "nice -q rm x",
    "bash --bogus -c 'rm x'",
    "timeout",
    "env -u",
    "find . -exec rm",
    "tmux send-keys 'rm x' Enter",  # types into a shell: tmux commands are not followed
    "tmux new -d 'make;' ';' run-shell 'rm x'",  # a command sequence
    "tmux new -d -s '#(rm x)' make",  # formats run #(...) with the shell
    "tmux run -C 'run-shell \"rm x\"'",
    "tmux new-s rm x",  # abbreviations are not followed
    "tmux new -Z rm x",
    "screen -dmS s rm x",
    "systemd-run -p 'ExecStartPre=/bin/rm x' true",
    "systemd-run --frobnicate rm x",
    "run0 --frobnicate rm x",
    "firejail -c rm x",
    "tmux -f /workspace/t.conf new -d rm x",  # the configuration's commands run too
    "tmux detach-client -E 'rm x'",  # -E runs a shell command
]


@pytest.mark.parametrize("line", WRAPPER_OPTIONS_NOT_UNDERSTOOD)
def test_a_wrapper_whose_options_are_not_understood_is_a_construct(line: str) -> None:
    analysis = analyse(line)
    assert "unparsed-wrapper" in names(analysis)
    assert argvs(analysis)[0][0] == line.split()[0]
    assert ("rm", "x") not in argvs(analysis)


# -- assignments and programs --------------------------------------------------------------------

PROGRAMS = [
    ("FOO=1 BAR=$'x' git status", [("git", "status")]),
    ("git", [("git",)]),
    ("/usr/bin/git", [("/usr/bin/git",)]),
    ("/usr/bin//./git", [("/usr/bin/git",)]),
    ("./git x", [("/work/git", "x")]),
    ("bin/git", [("/work/bin/git",)]),
    ("/tmp/x/git", [("/tmp/x/git",)]),
]


@pytest.mark.parametrize(("line", "expected"), PROGRAMS)
def test_programs_by_name_or_normalised_path(line: str, expected: list[tuple[str, ...]]) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert analysis.constructs == ()


DOT_DOT = [
    ("/usr/bin/../bin/git", [("/usr/bin/git",)], []),
    ("../git", [("/git",)], []),
    ("echo x > ../out", [("echo", "x")], ["/out"]),
    ("env -C ../x make", [("env", "-C", "../x", "make"), ("make",)], []),
]


@pytest.mark.parametrize(("line", "expected", "writes"), DOT_DOT)
def test_a_dot_dot_in_a_path_is_normalised_and_a_construct(
    line: str, expected: list[tuple[str, ...]], writes: list[str]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert list(analysis.writes) == writes
    assert names(analysis) == {"dot-dot-path"}


@pytest.mark.parametrize("line", ["cd .. && ./x", "cd ../y && ./x", "cd /a/../b && ./x"])
def test_cd_through_dot_dot_leaves_the_directory_unknown(line: str) -> None:
    # bash reads ".." against $PWD, which may be the physical path (a new shell started
    # without a PWD naming its directory, a cwd reached through a link) and falls back to
    # the physical form where the logical one does not exist (rt24 second review, R1).
    analysis = analyse(line)
    assert argvs(analysis)[1] == ("./x",)
    assert names(analysis) == {"unknown-cwd"}
    git = analyse(line.replace("./x", "git status"))
    assert git.commands[1].cwds == (UNKNOWN_CWD,)


def test_assignments_alone_are_not_commands() -> None:
    with pytest.raises(RequestError) as caught:
        analyse("FOO=1 BAR=2")
    assert caught.value.field == "commandLine"
    assert argvs(analyse("FOO=1; git x")) == [("git", "x")]


def test_a_relative_program_without_cwd_is_rejected() -> None:
    with pytest.raises(RequestError) as caught:
        analyse("./git status", cwd=None)
    assert caught.value.field == "commandLine"
    assert argvs(analyse("git status", cwd=None)) == [("git", "status")]


# -- redirections ------------------------------------------------------------------------------

REDIRECTIONS = [
    ("echo x > out", ["/work/out"], []),
    ("echo x >> /tmp/log", ["/tmp/log"], []),
    ("echo x >| a 1>b 2>c 2>>d", ["/work/a", "/work/b", "/work/c", "/work/d"], []),
    ("make &> log", ["/work/log"], []),
    ("make &>> log", ["/work/log"], []),
    ("make >& log", ["/work/log"], []),
    ("sort < in > out", ["/work/out"], ["/work/in"]),
    ("cat 0< in 3<&- 4<>rw", ["/work/rw"], ["/work/in", "/work/rw"]),
    ("make 2>&1 >/dev/null", ["/dev/null"], []),
    ("make 2>&1 >&2 3>&4- <&0", [], []),
    (">trunc", ["/work/trunc"], []),
    ("{ a; b; } > o 2>e", ["/work/o", "/work/e"], []),
    ("while read l; do a; done < list", [], ["/work/list"]),
    ("(a) > o; if a; then b; fi > p", ["/work/o", "/work/p"], []),
    ("exec 3>/tmp/f", ["/tmp/f"], []),
    ("echo {fd}>x", ["/work/x"], []),
    ("echo x > ../../etc/passwd", ["/etc/passwd"], []),
    ("cat <<EOF\nbody > x\nEOF\n", [], []),
    ("cat <<< 'x > y'", [], []),
    ("echo x >'a b'", ["/work/a b"], []),
]


@pytest.mark.parametrize(("line", "writes", "reads"), REDIRECTIONS)
def test_redirections_are_reads_and_writes(line: str, writes: list[str], reads: list[str]) -> None:
    analysis = analyse(line)
    assert list(analysis.writes) == writes
    assert list(analysis.reads) == reads


def test_a_relative_redirection_without_cwd_is_rejected() -> None:
    with pytest.raises(RequestError) as caught:
        analyse("echo x > out", cwd=None)
    assert caught.value.field == "commandLine"
    assert analyse("echo x > /tmp/out", cwd=None).writes == ("/tmp/out",)


def test_a_redirection_alone_is_a_write() -> None:
    analysis = analyse("> /app/output/x")
    assert analysis.commands == () and analysis.writes == ("/app/output/x",)


# -- working directory -------------------------------------------------------------------------

WORKING_DIRECTORY = [
    ("cd /tmp && ./x", [("cd", "/tmp"), ("/tmp/x",)], set()),
    ("cd /tmp; ./x", [("cd", "/tmp"), ("/tmp/x",), ("/work/x",)], set()),
    ("cd sub && ./x > o", [("cd", "sub"), ("/work/sub/x",)], set()),
    ("cd /a || ./x", [("cd", "/a"), ("/work/x",)], set()),
    # cd -P resolves symlinks: the shell's PWD becomes a path not known here, and a later
    # "cd .." (or "cd -P link/..") goes to the parent of the link's target.
    (
        "cd -P /a && cd b && ./x",
        [("cd", "-P", "/a"), ("cd", "b"), ("./x",)],
        {"unknown-cwd"},
    ),
    # cdable_vars: "cd a" goes to $a when ./a is not a directory; "enable -n cd" makes
    # cd the program of that name, which moves no shell: either way, where is unknown.
    (
        "shopt -s cdable_vars; cd a && ./x",
        [("shopt", "-s", "cdable_vars"), ("cd", "a"), ("./x",)],
        {"unknown-cwd"},
    ),
    (
        "bash -O cdable_vars -c 'cd a && ./x'",
        [("cd", "a"), ("./x",)],
        {"unknown-cwd"},
    ),
    (
        "shopt -u cdable_vars; cd a && ./x",
        [("shopt", "-u", "cdable_vars"), ("cd", "a"), ("/work/a/x",)],
        set(),
    ),
    (
        "shopt -s extglob; cd a && ./x",
        [("shopt", "-s", "extglob"), ("cd", "a"), ("/work/a/x",)],
        set(),
    ),
    (
        "enable -n cd; cd /a && ./x",
        [("enable", "-n", "cd"), ("cd", "/a"), ("/a/x",)],
        {"unknown-cwd"},
    ),
    ("enable -n echo; cd /a && ./x", [("enable", "-n", "echo"), ("cd", "/a"), ("/a/x",)], set()),
    # The option holds for the rest of the line: an absolute cd is no way back.
    (
        "set -P; cd /a && cd .. && ./x",
        [("set", "-P"), ("cd", "/a"), ("cd", ".."), ("./x",)],
        {"unknown-cwd"},
    ),
    (
        "shopt -s cdable_vars; cd /a && cd b && ./x",
        [("shopt", "-s", "cdable_vars"), ("cd", "/a"), ("cd", "b"), ("/a/b/x",)],
        {"unknown-cwd"},
    ),
    ("(cd /a); ./x", [("cd", "/a"), ("/work/x",)], set()),
    ("cd /a & ./x", [("cd", "/a"), ("/work/x",)], set()),
    ("bash -c 'cd /a' && ./x", [("cd", "/a"), ("/work/x",)], set()),
    ("pushd /a && ./x", [("pushd", "/a"), ("/a/x",)], set()),
    ("env -C /srv ./run", [("env", "-C", "/srv", "./run"), ("/srv/run",)], set()),
    ("sudo -D /srv ./run", [("sudo", "-D", "/srv", "./run"), ("/srv/run",)], set()),
    (
        "repeat 1 cd /a && ./x",
        [("repeat", "1", "cd", "/a"), ("cd", "/a"), ("/a/x",), ("/work/x",)],
        set(),
    ),
    (
        "repeat 2 cd a; ./x",
        [("repeat", "2", "cd", "a"), ("cd", "a"), ("/work/x",), ("./x",)],
        {"unknown-cwd"},
    ),
    (
        "mapfile -C 'cd /a' l && /bin/x",
        [("mapfile", "-C", "cd /a", "l"), ("cd", "/a"), ("/bin/x",)],
        {"eval", "unknown-arguments"},
    ),
    (
        "mapfile -C 'cd /a' l; ./x",
        [("mapfile", "-C", "cd /a", "l"), ("cd", "/a"), ("/work/x",), ("./x",)],
        {"eval", "unknown-arguments", "unknown-cwd"},
    ),
    (
        "systemd-run --working-directory=/srv ./x",
        [("systemd-run", "--working-directory=/srv", "./x"), ("/srv/x",)],
        set(),
    ),
    ("systemd-run ./x", [("systemd-run", "./x"), ("./x",)], {"unknown-cwd"}),
    ("systemd-run --scope ./x", [("systemd-run", "--scope", "./x"), ("/work/x",)], set()),
    ("tmux new -c /srv ./x a", [("tmux", "new", "-c", "/srv", "./x", "a"), ("/srv/x", "a")], set()),
    ("tmux neww ./x a", [("tmux", "neww", "./x", "a"), ("./x", "a")], {"unknown-cwd"}),
    ("run0 -D /srv ./x", [("run0", "-D", "/srv", "./x"), ("/srv/x",)], set()),
    ("firejail --private ./x", [("firejail", "--private", "./x"), ("./x",)], {"unknown-cwd"}),
    ("firejail ./x", [("firejail", "./x"), ("/work/x",)], set()),
    (
        "f() { cd /a; }; compgen -F f y; ./x",
        [("cd", "/a"), ("compgen", "-F", "f", "y"), ("f",), ("/work/x",), ("./x",)],
        {"function-definition", "eval", "unknown-arguments", "unknown-cwd"},
    ),
    ("cd && ./x", [("cd",), ("./x",)], {"unknown-cwd"}),
    ("cd - && ./x", [("cd", "-"), ("./x",)], {"unknown-cwd"}),
    ("cd ~/p && ./x", [("cd", "~/p"), ("./x",)], {"unknown-cwd", "tilde-expansion"}),
    ("cd $D && ./x", [("cd", "$D"), ("./x",)], {"unknown-cwd", "parameter-expansion"}),
    ("popd && ./x", [("popd",), ("./x",)], {"unknown-cwd"}),
    (
        "for d in a b; do cd $d; done; ./x",
        [("cd", "$d"), ("/work/x",), ("./x",)],
        {"unknown-cwd", "parameter-expansion"},
    ),
    (
        "source env.sh; ./x",
        [("source", "env.sh"), ("/work/x",), ("./x",)],
        {"source", "unknown-cwd"},
    ),
    (
        "go() { cd /a; }; go; ./x",
        [("cd", "/a"), ("go",), ("/work/x",), ("./x",)],
        {"function-definition", "unknown-cwd"},
    ),
    ("cd /a && echo > f", [("cd", "/a"), ("echo",)], set()),
    (
        "f() { ./x; }; cd /a; f",
        [("/work/x",), ("./x",), ("cd", "/a"), ("f",)],
        {"function-definition", "unknown-cwd"},
    ),
    (
        "trap './x' EXIT; cd /a",
        [("trap", "./x", "EXIT"), ("/work/x",), ("./x",), ("cd", "/a")],
        {"trap", "unknown-cwd"},
    ),
]


@pytest.mark.parametrize(("line", "expected", "constructs"), WORKING_DIRECTORY)
def test_relative_paths_follow_cd(
    line: str, expected: list[tuple[str, ...]], constructs: set[str]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert names(analysis) == constructs


def test_writes_follow_cd_to_every_possible_directory() -> None:
    assert analyse("cd /etc; echo x > passwd").writes == ("/etc/passwd", "/work/passwd")
    assert analyse("cd /etc && echo x > passwd").writes == ("/etc/passwd",)


# -- constructs --------------------------------------------------------------------------------

CONSTRUCT_CASES = [
    ("echo $(id)", [("id",), ("echo", "$(id)")], {"command-substitution"}),
    ("echo `id`", [("id",), ("echo", "`id`")], {"backticks"}),
    ('echo "$(id)"', [("id",), ("echo", "$(id)")], {"command-substitution"}),
    ("x=$(id)", [("id",)], {"command-substitution"}),
    (
        "echo ${x:-$(id)}",
        [("id",), ("echo", "${x:-$(id)}")],
        {"parameter-expansion", "command-substitution"},
    ),
    (
        "diff <(ls a) >(wc)",
        [("ls", "a"), ("wc",), ("diff", "<(ls a)", ">(wc)")],
        {"process-substitution"},
    ),
    ("ls > >(wc)", [("wc",), ("ls",)], {"process-substitution"}),
    (
        "echo `echo \\`id\\``",
        [("id",), ("echo", "`id`"), ("echo", "`echo \\`id\\``")],
        {"backticks"},
    ),
    ("echo $((1+2))", [("echo", "$((1+2))")], {"arithmetic"}),
    ("echo $[1+2]", [("echo", "$[1+2]")], {"arithmetic", "glob"}),  # sh: a glob
    ("((i++))", [("i++",)], {"arithmetic"}),  # sh: ( (i++) )
    ("for ((i=0;i<2;i++)); do a; done", [("a",)], {"arithmetic"}),
    ("let i=1", [("let", "i=1")], {"arithmetic"}),
    ("[[ $a -eq 1 ]]", [("[[", "$a", "-eq", "1", "]]")], {"arithmetic", "parameter-expansion"}),
    # bash expands the subscript as test -v evaluates it: id runs (review 2026-12-06).
    (
        "test -v 'a[$(id)]'",
        [("test", "-v", "a[$(id)]"), ("id",)],
        {"arithmetic", "command-substitution"},
    ),
    ("a[1]=x", [], {"arithmetic"}),
    (
        "echo ${!x} ${a[i]} ${s:1}",
        [("echo", "${!x}", "${a[i]}", "${s:1}")],
        {"parameter-expansion", "arithmetic"},
    ),
    ("echo ${x@P}", [("echo", "${x@P}")], {"parameter-expansion", "eval"}),
    ("eval 'rm -rf /'", [("eval", "rm -rf /"), ("rm", "-rf", "/")], {"eval"}),
    ('eval "$x"', [("eval", "$x")], {"eval", "parameter-expansion"}),
    ("source ./x.sh", [("source", "./x.sh")], {"source"}),
    (". ./x.sh", [(".", "./x.sh")], {"."}),
    ("alias ll='rm -rf /'", [("alias", "ll=rm -rf /"), ("rm", "-rf", "/")], {"alias"}),
    ("trap 'rm -rf /' EXIT", [("trap", "rm -rf /", "EXIT"), ("rm", "-rf", "/")], {"trap"}),
    ("trap - EXIT", [("trap", "-", "EXIT")], set()),
    ("trap INT", [("trap", "INT")], set()),
    (
        "compgen -C 'rm x' y",
        [("compgen", "-C", "rm x", "y"), ("rm", "x")],
        {"eval", "unknown-arguments"},
    ),
    ("compgen -F f y", [("compgen", "-F", "f", "y"), ("f",)], {"eval", "unknown-arguments"}),
    (
        "compgen -W 'a $(rm x) `rm y`' -- a",
        [("compgen", "-W", "a $(rm x) `rm y`", "--", "a"), ("rm", "x"), ("rm", "y")],
        {"eval", "command-substitution", "backticks"},
    ),
    (
        'compgen -W "$w" -- a',
        [("compgen", "-W", "$w", "--", "a")],
        {"eval", "parameter-expansion"},
    ),
    ("compgen -W 'a b' -- a", [("compgen", "-W", "a b", "--", "a")], set()),
    # bash expands process substitutions in the word list too (it ran the command).
    ("compgen -W '<(rm x)' -- a", [("compgen", "-W", "<(rm x)", "--", "a")], {"eval"}),
    (
        "compgen -f -P '$(x)' -X '!*.py' a",
        [("compgen", "-f", "-P", "$(x)", "-X", "!*.py", "a")],
        set(),
    ),
    (
        "complete -C 'rm x' git",
        [("complete", "-C", "rm x", "git"), ("rm", "x")],
        {"eval", "unknown-arguments"},
    ),
    ("complete -o default git", [("complete", "-o", "default", "git")], set()),
    ("fc -s", [("fc", "-s")], {"eval", "dynamic-command"}),
    (
        "history -s 'rm x'; fc -s",
        [("history", "-s", "rm x"), ("fc", "-s")],
        {"eval", "dynamic-command"},
    ),
    (
        "fc -e 'rm x' 3",
        [("fc", "-e", "rm x", "3"), ("rm", "x")],
        {"eval", "dynamic-command", "unknown-arguments"},
    ),
    ("fc -l -5", [("fc", "-l", "-5")], set()),
    (
        "bind -x '\"\\C-x\": rm x'",
        [("bind", "-x", '"\\C-x": rm x'), ("rm", "x")],
        {"eval"},
    ),
    (
        'bind -x \'"\\C-x": "a; b"\'',
        [("bind", "-x", '"\\C-x": "a; b"'), ("a",), ("b",)],
        {"eval"},
    ),
    ("bind -x nocolon", [("bind", "-x", "nocolon")], {"eval", "dynamic-command"}),
    ("bind '\"\\C-x\": kill-line'", [("bind", '"\\C-x": kill-line')], set()),
    (
        "declare -a 'a=($(rm x))'",
        [("declare", "-a", "a=($(rm x))"), ("rm", "x")],
        {"eval", "command-substitution"},
    ),
    (
        "local -A 'a=([k]=`rm x`)'",
        [("local", "-A", "a=([k]=`rm x`)"), ("rm", "x")],
        # [k]= is read as in a=([k]=...), where an indexed array's index is arithmetic
        # (the analysis does not carry -A into the re-read value: stricter, never looser).
        {"eval", "backticks", "arithmetic"},
    ),
    ("declare a=$v", [("declare", "a=$v")], {"eval", "parameter-expansion"}),
    ("export -a a=$v", [("export", "-a", "a=$v")], {"eval", "parameter-expansion"}),
    ("export A=$v", [("export", "A=$v")], {"parameter-expansion"}),
    ("export A='(y)'", [("export", "A=(y)")], set()),
    ("declare x='(y'", [("declare", "x=(y")], set()),
    (
        "mapfile -C 'rm x;' \"$a\"",
        [("mapfile", "-C", "rm x;", "$a"), ("rm", "x")],
        {"eval", "unknown-arguments", "parameter-expansion"},
    ),
    ("exec bash <<< 'rm x'", [("rm", "x"), ("bash",)], {"heredoc-to-shell"}),
    ("source", [("source",)], {"source"}),
    (
        "tmux new -e LD_PRELOAD=/x.so make",
        [("tmux", "new", "-e", "LD_PRELOAD=/x.so", "make"), ("make",)],
        {"environment-override"},
    ),
    (
        "systemd-run -E LD_PRELOAD=/x.so make",
        [("systemd-run", "-E", "LD_PRELOAD=/x.so", "make"), ("make",)],
        {"environment-override"},
    ),
    (
        "systemd-run make '${HOME}'",  # expanded by systemd (>= 254) for a service
        [("systemd-run", "make", "${HOME}"), ("make", "${HOME}")],
        {"dynamic-command"},
    ),
    ("PS1='$(rm x)' bash -i", [("bash", "-i")], {"environment-override"}),
    ("SHELL=/tmp/x sudo -s", [("sudo", "-s"), ("sh",)], {"environment-override"}),
    ("f() { a; }", [("a",)], {"function-definition"}),
    ("bash <<'EOF'\nrm -rf /\nEOF\n", [("rm", "-rf", "/"), ("bash",)], {"heredoc-to-shell"}),
    ("bash <<EOF\nrm $x\nEOF\n", [("bash",)], {"heredoc-to-shell", "parameter-expansion"}),
    ("sh <<< 'rm -rf /'", [("rm", "-rf", "/"), ("sh",)], {"heredoc-to-shell"}),
    (
        "sudo bash -s <<'E'\nrm x\nE",
        [("sudo", "bash", "-s"), ("rm", "x"), ("bash", "-s")],
        {"heredoc-to-shell"},
    ),
    ("cat <<'E' | bash\nrm x\nE", [("cat",), ("bash",)], set()),
    ("sudo -s <<< 'rm x'", [("sudo", "-s"), ("rm", "x"), ("sh",)], {"heredoc-to-shell"}),
    (  # su - starts a login shell: its profile runs first
        "su - <<'E'\nrm x\nE",
        [("su", "-"), ("rm", "x"), ("sh",)],
        {"heredoc-to-shell", "startup-files"},
    ),
    (
        "script -q /dev/null <<< 'rm x'",
        [("script", "-q", "/dev/null"), ("rm", "x"), ("sh", "-i")],
        {"heredoc-to-shell"},
    ),
    (
        "sudo -s echo '$HOME'",
        [("sudo", "-s", "echo", "$HOME"), ("echo", "$HOME")],
        {"parameter-expansion"},
    ),
    ("sudo -s echo '$(id)'", [("sudo", "-s", "echo", "$(id)"), ("echo", "$(id)")], set()),
    (
        "mapfile -C 'rm x;' -c 1 a <<< y",
        [("mapfile", "-C", "rm x;", "-c", "1", "a"), ("rm", "x")],
        {"eval", "unknown-arguments"},
    ),
    (
        "readarray -tC'rm x' a",
        [("readarray", "-tCrm x", "a"), ("rm", "x")],
        {"eval", "unknown-arguments"},
    ),
    (
        'mapfile -C "$f" a',
        [("mapfile", "-C", "$f", "a")],
        {"eval", "unknown-arguments", "parameter-expansion"},
    ),
    ("mapfile -t a < f", [("mapfile", "-t", "a")], set()),
    (
        "zsh -f -c 'emulate sh -c \"rm x\"'",
        [("emulate", "sh", "-c", "rm x"), ("rm", "x")],
        {"eval", "unmodelled-shell"},
    ),
    ("emulate -L zsh", [("emulate", "-L", "zsh")], set()),
    (
        "repeat $n rm x",
        [("repeat", "$n", "rm", "x"), ("rm", "x")],
        {"arithmetic", "parameter-expansion"},
    ),
    ("cat <<E\n$(rm x)\nE", [("rm", "x"), ("cat",)], {"command-substitution"}),
    ("$CMD x", [("$CMD", "x")], {"dynamic-command", "parameter-expansion"}),
    (
        "$(echo rm) -rf /",
        [("echo", "rm"), ("$(echo rm)", "-rf", "/")],
        {"dynamic-command", "command-substitution"},
    ),
    ("{rm,-rf,/}", [("{rm,-rf,/}",)], {"dynamic-command"}),
    ("/bin/r? x", [("/bin/r?", "x")], {"dynamic-command"}),
    ("~/bin/x", [("~/bin/x",)], {"dynamic-command"}),
    ('bash -c "$S"', [("bash", "-c", "$S")], {"dynamic-command", "parameter-expansion"}),
    (
        "env $OPTS rm x",
        [("env", "$OPTS", "rm", "x"), ("$OPTS", "rm", "x")],
        {"dynamic-command", "parameter-expansion"},
    ),
    (
        "timeout $T rm x",
        [("timeout", "$T", "rm", "x"), ("rm", "x")],
        {"dynamic-command", "parameter-expansion"},
    ),
    ("env -S 'a $X'", [("env", "-S", "a $X"), ("a", "$X")], {"dynamic-command"}),
    ("ls *.py", [("ls", "*.py")], {"glob"}),
    ("ls '*.py' \\*", [("ls", "*.py", "*")], set()),
    ("cp x{,.bak}", [("cp", "x{,.bak}")], {"brace-expansion"}),
    ("git log ~- x=a:~+", [("git", "log", "~-", "x=a:~+")], {"tilde-expansion"}),
    ("echo x > $f", [("echo", "x")], {"dynamic-redirect", "parameter-expansion"}),
    ("echo x > ~/f", [("echo", "x")], {"dynamic-redirect"}),
    ("echo x > *.txt", [("echo", "x")], {"dynamic-redirect"}),
    ("echo x > /dev/tcp/a.example/80", [("echo", "x")], {"network-redirect"}),
    ("exec 3<>/dev/udp/a.example/53", [], {"network-redirect"}),
    ("PATH=/tmp git", [("git",)], {"environment-override"}),
    ("LD_PRELOAD=/x.so git", [("git",)], {"environment-override"}),
    ("export PATH=/x; git", [("export", "PATH=/x"), ("git",)], {"environment-override"}),
    ("export PATH", [("export", "PATH")], set()),
    (
        "env BASH_ENV=/x bash -c a",
        [("env", "BASH_ENV=/x", "bash", "-c", "a"), ("a",)],
        {"environment-override"},
    ),
    (
        "sudo LD_LIBRARY_PATH=/x git",
        [("sudo", "LD_LIBRARY_PATH=/x", "git"), ("git",)],
        {"environment-override"},
    ),
    ("read -r PATH", [("read", "-r", "PATH")], {"environment-override"}),
    ("declare -n r=x", [("declare", "-n", "r=x")], {"environment-override"}),
    ("for PATH in /x; do git; done", [("git",)], {"environment-override"}),
    ("GIT_SSH_COMMAND='rm -rf /' git fetch", [("git", "fetch")], {"environment-override"}),
    ("hash -p /tmp/x git", [("hash", "-p", "/tmp/x", "git")], {"command-lookup-override"}),
    (
        "enable -f /tmp/x.so git",
        [("enable", "-f", "/tmp/x.so", "git")],
        {"command-lookup-override"},
    ),
    (
        "find . -exec rm {} \\;",
        [("find", ".", "-exec", "rm", "{}", ";"), ("rm", "{}")],
        {"unknown-arguments"},
    ),
    # A login shell, and zsh for every script, first run startup files the gate cannot
    # see (~/.profile, ~/.zshenv ...), which the agent may have written.
    ("bash -lc 'npm test'", [("npm", "test")], {"startup-files"}),
    ("bash -l -c 'npm test'", [("npm", "test")], {"startup-files"}),
    ("bash --login -c 'npm test'", [("npm", "test")], {"startup-files"}),
    ("sh -l -c a", [("a",)], {"startup-files"}),
    ("bash -xlc a", [("a",)], {"startup-files"}),
    # (zsh's scripts are also unmodelled-shell: the gate reads them as bash.)
    ("zsh -c a", [("a",)], {"startup-files", "unmodelled-shell"}),
    ("/usr/bin/zsh -ec a", [("a",)], {"startup-files", "unmodelled-shell"}),
    ("zsh -o norcs -c a", [("a",)], {"unmodelled-shell"}),  # only /etc/zshenv, the image's
    ("zsh -o rcs -c a", [("a",)], {"startup-files", "unmodelled-shell"}),
    ("zsh -f -c a", [("a",)], {"unmodelled-shell"}),
    ("zsh -fc a", [("a",)], {"unmodelled-shell"}),
    ("zsh --no-rcs -c a", [("a",)], {"unmodelled-shell"}),
    ("zsh +o rcs -c a", [("a",)], {"unmodelled-shell"}),
    ("zsh +o RCS -c a", [("a",)], {"unmodelled-shell"}),
    ("bash -c a", [("a",)], set()),
    # bash and dash read "l" as a login shell whatever its sign (cmdfuzz review,
    # 2026-12-06: the real bash +l -c read ~/.bash_profile).
    ("bash +l -c a", [("a",)], {"startup-files"}),
    ("bash --noprofile --norc -c a", [("a",)], set()),
    ("bash --login --noprofile -c a", [("a",)], set()),
    ("bash -l script.sh", [("bash", "-l", "script.sh")], {"startup-files"}),
    # Shells the analysis does not model: their scripts are read as bash (and dash) read
    # them, and are unmodelled-shell too; bash, sh, dash, ash are modelled.
    ("ksh -c 'git status'", [("git", "status")], {"unmodelled-shell"}),
    ("/bin/mksh -c 'git status'", [("git", "status")], {"unmodelled-shell"}),
    ("ksh93 -c 'git status'", [("git", "status")], {"unmodelled-shell"}),
    ("yash -c 'git status'", [("git", "status")], {"unmodelled-shell"}),
    (
        "busybox hush -c 'git status'",
        [("busybox", "hush", "-c", "git status"), ("git", "status")],
        {"unmodelled-shell"},
    ),
    (
        "env zsh -f -c 'git status'",
        [("env", "zsh", "-f", "-c", "git status"), ("git", "status")],
        {"unmodelled-shell"},
    ),
    (
        'zsh -f -c "$x"',
        [("zsh", "-f", "-c", "$x")],
        {"dynamic-command", "parameter-expansion", "unmodelled-shell"},
    ),
    (
        "zsh -f <<< 'git status'",
        [("git", "status"), ("zsh", "-f")],
        {"heredoc-to-shell", "unmodelled-shell"},
    ),
    (
        "mksh -s <<< 'git status'",
        [("git", "status"), ("mksh", "-s")],
        {"heredoc-to-shell", "unmodelled-shell"},
    ),
    ("sh -c 'git status'", [("git", "status")], set()),
    ("dash -c 'git status'", [("git", "status")], set()),
    ("ash -c 'git status'", [("git", "status")], set()),
    ("rbash -c 'git status'", [("git", "status")], set()),
    ("bash-static -c 'git status'", [("git", "status")], set()),
    (
        "busybox sh -c 'git status'",
        [("busybox", "sh", "-c", "git status"), ("git", "status")],
        set(),
    ),
    # No script the gate reads: the shell is decided as itself, like bash.
    ("zsh -f", [("zsh", "-f")], set()),
    ("ksh", [("ksh",)], set()),
    ("ksh script.sh", [("ksh", "script.sh")], set()),
    ("echo x | zsh -f", [("echo", "x"), ("zsh", "-f")], set()),
]


@pytest.mark.parametrize(("line", "expected", "constructs"), CONSTRUCT_CASES)
def test_constructs_are_reported_and_their_commands_too(
    line: str, expected: list[tuple[str, ...]], constructs: set[str]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert names(analysis) == constructs


def test_every_construct_name_is_documented() -> None:
    found: set[str] = set()
    for line, _expected, constructs in CONSTRUCT_CASES:
        found |= constructs
        assert names(analyse(line)) <= CONSTRUCTS
    assert found | {"unknown-cwd", "unparsed-wrapper", "dot-dot-path"} == CONSTRUCTS


def test_construct_labels_show_the_offending_text() -> None:
    analysis = analyse("echo $(id) > $f")
    assert analysis.constructs == (
        Construct("command-substitution", "$(id)"),
        Construct("parameter-expansion", "$f"),
        Construct("dynamic-redirect", "> $f"),
    )
    long = analyse("echo $(" + "x" * 500 + ")")
    assert all(len(construct.label) <= 120 for construct in long.constructs)


# -- argv requests -----------------------------------------------------------------------------

ARGV = [
    (["git", "status"], [("git", "status")], set()),
    (["git", "status; rm -rf /"], [("git", "status; rm -rf /")], set()),
    (["ls", "$(id)", "*"], [("ls", "$(id)", "*")], set()),
    (
        ["env", "bash", "-c", "git push && rm x"],
        [("env", "bash", "-c", "git push && rm x"), ("git", "push"), ("rm", "x")],
        set(),
    ),
    (["sh", "-c", "echo $(id)"], [("id",), ("echo", "$(id)")], {"command-substitution"}),
    (["./git"], [("/work/git",)], set()),
    (["/usr/bin/../bin/git"], [("/usr/bin/git",)], {"dot-dot-path"}),
    (["sudo", "eval", "x"], [("sudo", "eval", "x"), ("eval", "x"), ("x",)], {"eval"}),
    (["cd", "/tmp"], [("cd", "/tmp")], set()),
]


@pytest.mark.parametrize(("argv", "expected", "constructs"), ARGV)
def test_argv_words_are_literal_but_wrappers_and_shells_unwrap(
    argv: list[str], expected: list[tuple[str, ...]], constructs: set[str]
) -> None:
    analysis = analyse_command(argv=argv, cwd=CWD)
    assert argvs(analysis) == expected
    assert names(analysis) == constructs


# -- errors ------------------------------------------------------------------------------------

ERRORS = [
    ({"command_line": "echo 'unbalanced"}, "commandLine", "single quote"),
    ({"command_line": 'echo "unbalanced'}, "commandLine", "double quote"),
    ({"command_line": "echo $(unbalanced"}, "commandLine", "syntax error"),
    ({"command_line": "echo `x"}, "commandLine", "backquote"),
    ({"command_line": "echo ${x"}, "commandLine", "${"),
    ({"command_line": "a &&"}, "commandLine", "syntax error"),
    ({"command_line": "| a"}, "commandLine", "syntax error"),
    ({"command_line": "a ;; b"}, "commandLine", "syntax error"),
    ({"command_line": "if a; then b"}, "commandLine", "syntax error"),
    ({"command_line": "a )"}, "commandLine", "syntax error"),
    ({"command_line": "f() a"}, "commandLine", "compound"),
    ({"command_line": "echo >"}, "commandLine", "no target"),
    ({"command_line": "cat <<EOF\nno end"}, "commandLine", "not ended"),
    ({"command_line": "cat <<$X\nx\n$X"}, "commandLine", "delimiter"),
    ({"command_line": "echo $((1+(2)"}, "commandLine", "arithmetic"),
    ({"command_line": "((a) ; b)"}, "commandLine", "'( ('"),
    ({"command_line": "[[ a ; b ]]"}, "commandLine", "syntax error"),
    ({"command_line": "echo a\x00b"}, "commandLine", "NUL"),
    ({"command_line": ""}, "commandLine", "no command"),
    ({"command_line": "  # only a comment"}, "commandLine", "no command"),
    ({"command_line": "bash -c 'echo \"'"}, "commandLine", "double quote"),
    ({"command_line": "eval 'echo \"'"}, "commandLine", "double quote"),
    ({"argv": []}, "argv", "empty"),
    ({"argv": [""]}, "argv", "empty"),
    ({"argv": ["ls", "a\x00"]}, "argv", "NUL"),
    ({"argv": ["sh", "-c", "echo ("]}, "argv", "syntax error"),
    ({"argv": ["ls", 3]}, "argv", "strings"),
    ({}, "commandLine", "exactly one"),
    ({"argv": ["ls"], "command_line": "ls"}, "commandLine", "exactly one"),
]


@pytest.mark.parametrize(("request_fields", "field", "message"), ERRORS)
def test_what_cannot_be_parsed_is_a_request_error(
    request_fields: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(RequestError) as caught:
        analyse_command(cwd=CWD, **request_fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert message in caught.value.message


def test_cwd_must_be_absolute() -> None:
    with pytest.raises(RequestError) as caught:
        analyse_command(command_line="ls", cwd="work")
    assert caught.value.field == "cwd"
    assert argvs(analyse_command(command_line="./x", cwd="/a/../b/")) == [("/b/x",)]


def test_nesting_deeper_than_max_depth_is_rejected() -> None:
    script = "rm x"
    for _ in range(3):
        script = "bash -c " + "'" + script.replace("'", "'\\''") + "'"
    assert argvs(analyse_command(command_line=script, max_depth=3)) == [("rm", "x")]
    with pytest.raises(RequestError) as caught:
        analyse_command(command_line=script, max_depth=2)
    assert "deeper than 2" in caught.value.message
    with pytest.raises(RequestError):
        analyse_command(command_line="echo " + "$(" * 9 + "x" + ")" * 9)
    with pytest.raises(RequestError):
        analyse_command(command_line="{ " * 200 + "x;" + " }" * 200)


@pytest.mark.parametrize("wrapper", ["nohup ", "nice ", "tmux new -d ", "repeat 1 ", "env A=1 "])
def test_wrapped_commands_in_one_request_are_bounded(wrapper: str) -> None:
    # Each level reports its whole argument list again: unbounded, 5,000 levels of a
    # 60 KiB line cost minutes on the event loop.
    # (A command line is read both as bash and as dash reads it: both readings count.)
    assert argvs(analyse(wrapper * 20 + "make"))[-1] == ("make",)
    with pytest.raises(RequestError, match="unwraps more than 64 wrapped commands"):
        analyse(wrapper * 100 + "make")
    # Commands side by side are not nested.
    assert len(argvs(analyse("git status; " * 200))) == 200


def test_emulate_finds_its_c_option_in_any_cluster() -> None:
    from sidecar.normalise.shell_builtins import _option_cluster_with_c

    for text in ("-c", "-Lc", "-cL", "-aLcR"):
        assert _option_cluster_with_c(text), text
    for text in ("-", "c", "-L", "-c1", "--c", "-é c", "-" + "c" * 5000 + "1"):
        assert not _option_cluster_with_c(text), text


def test_results_are_tuples_of_frozen_values() -> None:
    analysis = analyse("cd /a; ./x > o")
    assert isinstance(analysis.commands, tuple) and isinstance(analysis.writes, tuple)
    assert analysis.commands[0] == SimpleCommand(("cd", "/a"), "cd /a", ("/work",))
    assert analysis.commands[1].cwds == ("/a", "/work")
    with pytest.raises(AttributeError):
        analysis.commands[0].argv = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("line", "is_eval"),
    [
        # A scalar local takes its value literally (bash 5.2, checked) ...
        ('f(){ local x=$1; echo "$x"; }; f a', False),
        ('f(){ local dir=${1:-.}; ls "$dir"; }', False),
        ('f(){ local x=$1 y=$2; echo "${x}${y}"; }', False),
        ("f(){ local -r x=$1; }", False),
        # ... unless the name is an array already, when bash re-reads "(...)" as an
        # array assignment and runs what is inside: any other use of the name counts.
        ("f(){ local -a x=(1); local x=$1; }; f a", True),
        ("f(){ local x=(1); local x=$1; }; f a", True),
        ("x=(1 2); f(){ local x=$1; }; f a", True),
        ("f(){ local -ra x; local x=$1; }", True),
        ("f(){ mapfile x < f; local x=$1; }", True),
        ("bash -c 'f(){ local -a x; local x=$1; }'", True),
        ('declare y="$x"', True),  # declare: y may be a global array
        ('f(){ local "$v"; }', True),
    ],
)
def test_a_scalar_local_with_a_dynamic_value_is_not_eval(line: str, is_eval: bool) -> None:
    assert ("eval" in names(analyse(line))) is is_eval


# -- tracers, sandboxes and preloaders that run a command -------------------------------------

MORE_WRAPPERS = [
    ("strace make", [("strace", "make"), ("make",)]),
    (
        "strace -f -e trace=file -s 200 make x",
        [("strace", "-f", "-e", "trace=file", "-s", "200", "make", "x"), ("make", "x")],
    ),
    ("strace -fo /tmp/t make", [("strace", "-fo", "/tmp/t", "make"), ("make",)]),
    ("strace --trace=open -- make", [("strace", "--trace=open", "--", "make"), ("make",)]),
    ("strace -p 1", [("strace", "-p", "1")]),  # attaches: nothing new runs
    ("ltrace -S -n 2 make", [("ltrace", "-S", "-n", "2", "make"), ("make",)]),
    (
        "setpriv --reuid=1000 --regid=1000 --init-groups make",
        [("setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "make"), ("make",)],
    ),
    ("setpriv --nnp -- make", [("setpriv", "--nnp", "--", "make"), ("make",)]),
    ("setpriv -d", [("setpriv", "-d")]),
    ("catchsegv ./a.out x", [("catchsegv", "./a.out", "x"), ("/work/a.out", "x")]),
    (
        "eatmydata apt-get install x",
        [("eatmydata", "apt-get", "install", "x"), ("apt-get", "install", "x")],
    ),
    (
        "faketime '2020-01-01' make",
        [("faketime", "2020-01-01", "make"), ("date", "-d", "2020-01-01", "+%s"), ("make",)],
    ),
    ("faketime -f '+2d' make", [("faketime", "-f", "+2d", "make"), ("make",)]),
    (
        "faketime --date-prog gdate -m yesterday make",
        [
            ("faketime", "--date-prog", "gdate", "-m", "yesterday", "make"),
            ("gdate", "-d", "yesterday", "+%s"),
            ("make",),
        ],
    ),
    ("torsocks curl x", [("torsocks", "curl", "x"), ("curl", "x")]),
    ("torsocks -i -P 9050 curl x", [("torsocks", "-i", "-P", "9050", "curl", "x"), ("curl", "x")]),
    ("torsocks on", [("torsocks", "on")]),
    (
        "proxychains4 -q -f /etc/p.conf curl x",
        [("proxychains4", "-q", "-f", "/etc/p.conf", "curl", "x"), ("curl", "x")],
    ),
    ("proxychains curl x", [("proxychains", "curl", "x"), ("curl", "x")]),
    ("unbuffer -p make", [("unbuffer", "-p", "make"), ("make",)]),
    ("prlimit --nofile=1024 -c0 make", [("prlimit", "--nofile=1024", "-c0", "make"), ("make",)]),
    ("prlimit -p 1 --nofile=10", [("prlimit", "-p", "1", "--nofile=10")]),
    ("cpulimit -l 50 -- make", [("cpulimit", "-l", "50", "--", "make"), ("make",)]),
    ("cpulimit -l 50 -p 12", [("cpulimit", "-l", "50", "-p", "12")]),
    ("fakeroot -u -- make", [("fakeroot", "-u", "--", "make"), ("make",)]),
    ("chpst -u app -n 5 make", [("chpst", "-u", "app", "-n", "5", "make"), ("make",)]),
    (
        "capsh --drop=cap_net_raw -- -c 'make x'",
        [("capsh", "--drop=cap_net_raw", "--", "-c", "make x"), ("make", "x")],
    ),
    ("capsh --print", [("capsh", "--print")]),
    (
        "capsh --caps=x == --print",
        [("capsh", "--caps=x", "==", "--print"), ("capsh", "--print")],
    ),
    (
        "bwrap --ro-bind / / --dev /dev --setenv A b --unshare-net make x",
        [
            (
                "bwrap",
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--setenv",
                "A",
                "b",
                "--unshare-net",
                "make",
                "x",
            ),
            ("make", "x"),
        ],
    ),
    (
        "bwrap --overlay /a /b /c --chdir /src -- ./build",
        [
            ("bwrap", "--overlay", "/a", "/b", "/c", "--chdir", "/src", "--", "./build"),
            ("/src/build",),
        ],
    ),
]


@pytest.mark.parametrize(("line", "expected"), MORE_WRAPPERS)
def test_more_wrappers_are_reported_and_unwrapped(
    line: str, expected: list[tuple[str, ...]]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert "unparsed-wrapper" not in names(analysis)


# strace's long options as its getopt_long reads them: --tips takes its value only after
# '=' (optional), --decode-pids always takes one (the next argument when not after '=').
STRACE_LONG_OPTIONS = [
    ("strace --tips rm x", [("strace", "--tips", "rm", "x"), ("rm", "x")]),
    ("strace --tips=full rm x", [("strace", "--tips=full", "rm", "x"), ("rm", "x")]),
    (
        "strace --decode-pids comm rm x",
        [("strace", "--decode-pids", "comm", "rm", "x"), ("rm", "x")],
    ),
    ("strace --quiet=attach rm x", [("strace", "--quiet=attach", "rm", "x"), ("rm", "x")]),
    ("strace --stack-trace rm x", [("strace", "--stack-trace", "rm", "x"), ("rm", "x")]),
]


@pytest.mark.parametrize(("line", "expected"), STRACE_LONG_OPTIONS)
def test_strace_long_options_take_values_as_strace_reads_them(
    line: str, expected: list[tuple[str, ...]]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert "unparsed-wrapper" not in names(analysis)


MORE_SHELL_STARTERS = [
    ("fakeroot", [("fakeroot",), ("sh",)]),
    ("torsocks --shell", [("torsocks", "--shell"), ("sh",)]),
    ("capsh --", [("capsh", "--"), ("/bin/bash",)]),
    ("capsh --shell=/bin/zsh --", [("capsh", "--shell=/bin/zsh", "--"), ("/bin/zsh",)]),
]


@pytest.mark.parametrize(("line", "expected"), MORE_SHELL_STARTERS)
def test_more_wrappers_that_start_a_shell(line: str, expected: list[tuple[str, ...]]) -> None:
    assert argvs(analyse(line)) == expected


# The files these wrappers open themselves: (line, writes, reads).
WRAPPER_FILES = [
    ("strace -o /etc/x make", ["/etc/x"], []),
    ("strace --output=trace.log make", ["/work/trace.log"], []),
    ("ltrace -o out make", ["/work/out"], []),
    ("fakeroot -s /tmp/state -i /tmp/old make", ["/tmp/state"], ["/tmp/old"]),
    ("cd /x && strace -o t make", ["/x/t"], []),
]


@pytest.mark.parametrize(("line", "writes", "reads"), WRAPPER_FILES)
def test_wrappers_that_open_files_report_them(
    line: str, writes: list[str], reads: list[str]
) -> None:
    analysis = analyse(line)
    assert list(analysis.writes) == writes
    assert list(analysis.reads) == reads
    assert ("make",) in argvs(analysis)


def test_a_wrapper_file_with_dot_dot_is_a_construct() -> None:
    assert "dot-dot-path" in names(analyse("strace -o /tmp/a/../../etc/x make"))


def test_wrappers_change_the_working_directory_and_environment() -> None:
    analysis = analyse("bwrap --bind / / ./x")  # in the sandbox: unknown
    assert "unknown-cwd" in names(analysis)
    analysis = analyse("chpst -/ /srv /bin/sh -c ./x")  # in the new root: unknown
    assert "unknown-cwd" in names(analysis)
    assert "environment-override" in names(analyse("bwrap --setenv LD_PRELOAD /x.so make"))
    assert "environment-override" in names(analyse("strace -E LD_PRELOAD=/x.so make"))
    assert "startup-files" in names(analyse("chpst -b -bash bash -c x"))


MORE_WRAPPER_OPTIONS_NOT_UNDERSTOOD = [
    "strace --bogus rm x",
    "strace -o '|sh' rm x",  # the trace goes to a shell command
    "strace -ff -o /tmp/t rm x",  # writes /tmp/t.PID
    "ltrace -Z rm x",
    "setpriv --bogus rm x",
    "setpriv",
    "catchsegv -x rm x",
    "faketime --disable-shm now rm x",
    "faketime -p",
    "torsocks -Z rm x",
    "proxychains4 -q -q -q rm x",  # the third is taken as the program
    "unbuffer -x rm x",
    "prlimit --bogus rm x",
    "cpulimit --bogus rm x",
    "fakeroot -l /tmp/lib.so rm x",
    "fakeroot --faked /tmp/faked rm x",
    "chpst -e /tmp/env rm x",
    "chpst -Z rm x",
    "capsh --bogus -- -c 'rm x'",
    "capsh --user=x rm x",  # an operand is no option
    "bwrap --args 3 rm x",
    "bwrap --frobnicate rm x",
    "bwrap --bind-try=/ / rm x",  # no --name=value forms
    "bwrap --argv0 -sh bash",
]


@pytest.mark.parametrize("line", MORE_WRAPPER_OPTIONS_NOT_UNDERSTOOD)
def test_more_wrappers_whose_options_are_not_understood(line: str) -> None:
    analysis = analyse(line)
    assert "unparsed-wrapper" in names(analysis)
    assert argvs(analysis)[0][0] == line.split()[0]
    assert ("rm", "x") not in argvs(analysis)


# -- numactl, valgrind, ip netns/vrf exec ------------------------------------------------------

LAST_WRAPPERS = [
    ("numactl --interleave=all make", [("numactl", "--interleave=all", "make"), ("make",)]),
    (
        "numactl -N 0 -m 0 -C 1-3 -- make x",
        [("numactl", "-N", "0", "-m", "0", "-C", "1-3", "--", "make", "x"), ("make", "x")],
    ),
    (
        "numactl --cpunodebind=0 --localalloc make",
        [("numactl", "--cpunodebind=0", "--localalloc", "make"), ("make",)],
    ),
    ("numactl -l make", [("numactl", "-l", "make"), ("make",)]),
    ("numactl --show", [("numactl", "--show")]),  # prints, runs nothing
    ("numactl --hardware", [("numactl", "--hardware")]),
    ("valgrind make x", [("valgrind", "make", "x"), ("make", "x")]),
    (
        "valgrind -q --leak-check=full --track-origins=yes -- make",
        [("valgrind", "-q", "--leak-check=full", "--track-origins=yes", "--", "make"), ("make",)],
    ),
    ("valgrind --tool=helgrind make", [("valgrind", "--tool=helgrind", "make"), ("make",)]),
    ("valgrind --version", [("valgrind", "--version")]),
    ("ip netns exec blue make x", [("ip", "netns", "exec", "blue", "make", "x"), ("make", "x")]),
    (
        "ip -n red -json netns exec blue make",
        [("ip", "-n", "red", "-json", "netns", "exec", "blue", "make"), ("make",)],
    ),
    ("ip vrf exec red make", [("ip", "vrf", "exec", "red", "make"), ("make",)]),
    ("ip netn e blue make", [("ip", "netn", "e", "blue", "make"), ("make",)]),  # prefixes
    (
        "ip --color=always netns exec b make",
        [("ip", "--color=always", "netns", "exec", "b", "make"), ("make",)],
    ),
    ("ip -all netns exec make", [("ip", "-all", "netns", "exec", "make"), ("make",)]),
    ("ip addr show", [("ip", "addr", "show")]),  # runs nothing
    ("ip -s -s link", [("ip", "-s", "-s", "link")]),
    ("ip netns list", [("ip", "netns", "list")]),
    ("ip -V", [("ip", "-V")]),
]


@pytest.mark.parametrize(("line", "expected"), LAST_WRAPPERS)
def test_last_wrappers_are_reported_and_unwrapped(
    line: str, expected: list[tuple[str, ...]]
) -> None:
    analysis = analyse(line)
    assert argvs(analysis) == expected
    assert "unparsed-wrapper" not in names(analysis)


def test_ip_all_netns_exec_runs_the_command_once_per_namespace() -> None:
    commands = analyse("ip -all netns exec make").commands
    assert [c.repeated for c in commands if c.argv == ("make",)] == ["run repeatedly by ip"]
    commands = analyse("ip netns exec blue make").commands
    assert [c.repeated for c in commands if c.argv == ("make",)] == [""]


# The files valgrind writes (--log-file, --xml-file) and reads (--suppressions).
VALGRIND_FILES = [
    ("valgrind --log-file=/etc/x make", ["/etc/x"], []),
    ("valgrind --xml=yes --xml-file=out.xml make", ["/work/out.xml"], []),
    ("valgrind --suppressions=/tmp/s.supp make", [], ["/tmp/s.supp"]),
]


@pytest.mark.parametrize(("line", "writes", "reads"), VALGRIND_FILES)
def test_valgrind_files_are_reported(line: str, writes: list[str], reads: list[str]) -> None:
    analysis = analyse(line)
    assert list(analysis.writes) == writes
    assert list(analysis.reads) == reads
    assert ("make",) in argvs(analysis)


LAST_WRAPPER_OPTIONS_NOT_UNDERSTOOD = [
    "numactl --bogus rm x",
    "numactl --shm /tmp/k rm x",  # shared memory: not modelled
    "numactl --file /dev/shm/f rm x",
    "numactl",
    "valgrind --bogus=1 rm x",
    "valgrind --leak-check rm x",  # valgrind's values are always --name=value
    "valgrind --log-file=/tmp/v.%p rm x",  # expanded by valgrind
    "valgrind --db-command=sh rm x",
    "valgrind --log-socket=10.0.0.1 rm x",
    "valgrind --tool=callgrind rm x",  # writes callgrind.out.PID in the cwd
    "ip -batch /tmp/cmds rm x",  # the commands come from a file
    "ip -r netns exec blue rm x",  # -resolve or -rcvbuf
    "ip -bogus netns exec blue rm x",
    "ip netns exec blue -x rm x",
]


@pytest.mark.parametrize("line", LAST_WRAPPER_OPTIONS_NOT_UNDERSTOOD)
def test_last_wrappers_whose_options_are_not_understood(line: str) -> None:
    analysis = analyse(line)
    assert "unparsed-wrapper" in names(analysis)
    assert argvs(analysis)[0][0] == line.split()[0]
    assert ("rm", "x") not in argvs(analysis)
