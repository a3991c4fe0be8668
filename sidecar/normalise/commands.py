r"""Static analysis of the commands of a ``process.exec`` request.

Implements CONTRACT 2.2 "Commands" (and the command side of 1, "process command"):
a request's ``argv`` or ``commandLine`` becomes every simple command it would run, the
files its redirections read and write, and the constructs that cannot be analysed
statically. The lead evaluates each command as ``process.exec``, each write as
``file.write``, each read as ``file.read``, and denies every construct unless a rule
allows it by name; the strictest decision wins.

What is reported
----------------
* A command line may be run by bash or by POSIX sh (dash is ``/bin/sh`` on Debian and
  Ubuntu, and what ``system()`` and ``shell=True`` use), and the two read some text
  differently: ``[[ a || b ]]`` runs ``b`` in dash, ``((x))`` is two subshells,
  ``a &>f b`` runs ``b``. So ``commandLine`` (and the scripts of ``sh -c``, ``eval``,
  ``su -c`` ...) is read both ways and the union is reported: first what bash runs,
  then what only POSIX sh runs, labelled "as POSIX sh reads it" (except a "program"
  starting with ``-``, as in ``[[ a || -f b ]]``, which runs nothing). It must parse as
  bash; POSIX sh runs the lines before its first syntax error, and so many are read.
  ``bash``/``zsh``/``ksh -c`` scripts are read as bash only.
* ``commandLine`` is parsed the way bash parses it (``shell_parser``): lists (``;``
  ``&`` ``&&`` ``||`` newline), pipelines, subshells, groups, if/while/until/for/select/
  case bodies, functions, ``coproc``. Every simple command is reported, in order (a
  substitution's commands before the command that uses its output), shell builtins
  included (``cd``, ``echo``, ``test`` ...; ``[[ ... ]]`` as a command ``[[``): a policy
  allows them by name. Function bodies, traps and aliases are analysed where they are
  defined, with an unknowable working directory (they run later).
* Shells (``sh bash dash zsh ksh mksh ash yash posh ...``, by name or by path) with
  ``-c`` are replaced by the commands of their script, analysed recursively (also after
  other flags: ``-lc``, ``-ec``, ``-o pipefail -c`` ...). A shell reading a script file
  or standard input is reported as itself: the policy decides on ``bash`` (allowing it
  allows whatever it reads, as in ``curl ... | sh``). A shell named by a path outside
  the trusted directories, or started interactive (``-i``: it first runs ~/.bashrc or
  $ENV, which the gate cannot see, and ``+O interactive_comments`` turns ``#`` into a
  word), is reported as itself as well as unwrapped. A login shell (``-l``; also one
  started by ``exec -l``, ``sudo -i``, ``su -`` ...: ``Unwrapped.login``) and zsh
  (unless its rcs option ends up off) first run startup files the gate cannot see: the
  construct ``startup-files``, and their script is unwrapped all the same. A script
  (``-c``, or a here-document or here-string on standard input) run by a shell other
  than those modelled (``MODELLED_SHELLS``: ``sh bash rbash dash ash bash-static``) is
  the construct ``unmodelled-shell`` as well: it is read as bash reads it, which zsh,
  ksh and the others do not always do. Other languages
  (``fish``, ``python -c``, ``awk``, ``git -c alias...``) are programs like any other.
* Wrappers are unwrapped (``shell_wrappers``): ``env`` (``VAR=x``, ``-i``, ``-u``,
  ``-C``, ``-S``), ``nice``, ``timeout``, ``nohup``, ``stdbuf``, ``xargs``, ``sudo``,
  ``doas``, ``pkexec``, ``chroot``, ``ionice``, ``setsid``, ``nsenter``, ``unshare``,
  ``taskset``, ``chrt``, ``flock``, ``su``/``runuser``, ``sg``, ``newgrp``, ``watch``,
  ``script`` (its typescript and ``-O/-I/-B/-T/-t`` logs are writes), ``time`` (the
  program; ``-o FILE`` is a write), ``busybox APPLET``, ``toybox APPLET``, ``tmux``
  (``new-session``/``new-window``/``split-window``/``run-shell``, ``-c``), ``screen``,
  ``systemd-run``, ``run0``, ``firejail``, ``strace``/``ltrace`` (``-o FILE`` is a
  write), ``setpriv``, ``capsh`` (``--`` runs ``/bin/bash`` with the arguments after it,
  ``==`` capsh again), runit's ``chpst``, ``bwrap``, ``faketime`` (without ``-f`` it
  also runs ``date -d TIMESTAMP +%s``), ``catchsegv``, ``eatmydata``, ``torsocks``,
  ``proxychains``/``proxychains4``, ``fakeroot`` (``-s FILE`` is a write, ``-i FILE`` a
  read), ``unbuffer``, ``prlimit``, ``cpulimit``, ``numactl``, ``valgrind``
  (``--log-file=FILE``/``--xml-file=FILE`` are writes), ``ip netns exec``/``ip vrf
  exec`` (other ``ip`` commands run nothing), and the commands of
  ``find -exec/-execdir/-ok/-okdir``. Each of these is a program that runs: it is
  reported itself (so a policy can deny ``sudo``, and must allow ``timeout`` to allow
  ``timeout 60 make``), followed by the command it runs. The shell builtins and keywords
  ``exec``, ``command``, ``builtin``, ``time``, ``noglob``, ``nocorrect`` are stripped
  without being reported (``command -v x`` runs nothing and is reported as ``command``);
  bash's ``time`` keyword skips one plain ``--`` after it (and after ``-p``). bash's
  ``jobs -x command`` runs the command in this shell: ``jobs`` is reported, then the
  command (a ``%`` job spec in it is replaced by a process group id: not known here).
* A wrapper that starts a shell by itself (``sudo -s``/``-i``, ``su [-] [user]``,
  ``doas -s``, ``pkexec``, ``chroot DIR``, ``unshare``/``nsenter`` without a program,
  ``script`` without ``-c``, ``newgrp``, ``login``, and without a command ``tmux``,
  ``screen``, ``systemd-run --shell``, ``run0``, ``firejail``, ``fakeroot``, and
  ``torsocks --shell``) runs ``$SHELL`` or the user's login shell,
  which the gate cannot know: it is reported as the command ``sh`` (``sh -i`` where the
  wrapper passes ``-i``), so a rule that denies shells denies it, and a here-document or
  here-string it reads is analysed as for ``sudo bash <<< ...``. A command given to it
  (``sudo -s CMD``, ``su -c CMD``, ``su user -- -c CMD``) is that shell's ``-c``
  script. ``su``, ``runuser`` and ``script`` take options after their operands, as
  their GNU getopt does.
* zsh's ``repeat COUNT command`` (zsh scripts are parsed as bash) reports both
  ``repeat`` and the command it repeats; a count other than digits is ``arithmetic``.
  zsh syntax bash lacks (glob qualifiers, ``=(...)``, anonymous functions, ``always``,
  short loop forms) does not parse and is a ``RequestError``; zsh syntax that bash
  parses otherwise is why a zsh script is ``unmodelled-shell``.
* A command (and a redirection) that may run an unknown number of times is marked
  ``repeated``, with why: in a loop body or a ``while``/``until`` condition (a ``for``'s
  words are expanded once; a ``for ((;;))`` header is repeated), a function body, a
  trap, an alias, a ``mapfile -C`` callback, a ``complete -C/-F`` or ``bind -x``
  command, or what ``xargs``, ``find -exec``, ``watch``, ``systemd-run`` with a timer,
  path or socket unit or a restart policy, or ``repeat N`` (N above 1) runs. The
  wrapper itself runs once. A rate-limited allow rule cannot count its tokens and
  denies it (``ratelimit``).
* ``VAR=x`` prefixes are removed; an assignment alone is not a command.
* ``argv[0]`` is kept as written when it has no ``/``; otherwise it is normalised
  (``paths.normalise_path``) against the working directory; a relative one without
  ``cwd`` is a ``RequestError``. The working directory is followed through ``cd``,
  ``pushd``/``popd`` (not ``-n``, which moves no shell), ``env -C`` and ``sudo -D``:
  after ``cd /x; ./y`` both
  ``<cwd>/y`` and ``/x/y`` are reported (the ``cd`` may fail); ``cd /x && ./y``
  reports ``/x/y`` only. When it cannot be known (``cd $D``, ``cd -``, a ``cd`` in a
  loop or a function, after ``eval``/``source``, a physical ``cd -P`` or ``set -P``,
  after which ``..`` is the parent of a symlink's target), a relative path is the construct
  ``unknown-cwd`` instead. ``CDPATH`` in the agent's environment is assumed unset.
* Redirections: ``>`` ``>>`` ``>|`` ``&>`` ``&>>`` ``>&file`` ``<>`` targets are
  writes, ``<`` ``<&file`` ``<>`` targets are reads, all normalised like paths
  (``/dev/null`` included: the policy decides); each file once, with how many
  redirections open it (``write_counts``, ``read_counts``: each is an action for a
  rate limit). Descriptor duplications (``2>&1``) and
  here-documents are neither. So are the files ``history -w/-a FILE`` writes (any
  text, via ``history -s``) and ``history -r/-n FILE`` reads; without FILE, $HISTFILE
  is a ``dynamic-redirect``. bash expands the target of ``>&WORD`` on standard output
  (``1>&``, ``01>&``, ``exec >&``) twice when it is not a number or ``-``
  (``shell_descriptors.reexpanded``), so quotes protect nothing there: a target that
  holds anything but ``A-Z a-z 0-9 _ . / , : @ % + = -`` once expanded is read again as
  bash reads it (``>&'$(cmd)'`` is ``command-substitution``, ``cmd`` reported) and is a
  ``dynamic-redirect``, not a file; a target not known here is ``eval`` too. bash looks
  for the ``-`` of a move (``>&4-``) before quote removal: ``>&"4-"`` is the file ``4-``.

Constructs (``Construct.name``), each denied unless a rule allows it by name
------------------------------------------------------------------------------
``command-substitution``  ``$(...)``; its commands are reported too.
``backticks``             ```...```; its commands are reported too.
``process-substitution``  ``<(...)`` and ``>(...)``; its commands are reported too.
``parameter-expansion``   ``$x``, ``${x...}`` anywhere: a value the gate cannot see.
``arithmetic``            ``$((...))``, ``((...))``, ``$[...]``, ``let``, ``for ((``,
                          ``[[ -eq/-v ]]``, ``test -v``, array subscripts (also
                          ``a=([i]=v)``), ``${x:n}``,
                          ``${!x}``, ``declare -i``, zsh's ``integer``/``float``: bash
                          evaluates variable values as arithmetic there, and
                          ``a[$(cmd)]`` in a value runs ``cmd``. Such text known here
                          is read as bash expands it, quotes protecting nothing, its
                          substitutions reported (``test -v 'a[$(cmd)]'``, ``read``,
                          ``printf -v``, ``declare 'a[...]=v'``, ``let``,
                          ``${a['...']}``, ``${x:'...'}``, ``a['...']=v``); a name not
                          known here (``read "$n"``) is ``arithmetic``.
``eval``                  ``eval`` (its static text is analysed too), ``${x@P}``, the
                          callback of ``mapfile -C`` (analysed too; also
                          ``unknown-arguments``: bash adds the line read), zsh's
                          ``emulate ... -c CODE`` (analysed too), ``compgen``/
                          ``complete -C/-F`` (analysed; ``unknown-arguments``) and a
                          ``-W`` word list with ``$`` or a backquote (its expansions
                          analysed), ``fc`` but ``fc -l``, and zsh's/ksh's ``r`` (also
                          ``dynamic-command``: the history; an ``-e`` editor is
                          analysed), ``bind -x``
                          (analysed), a declared array value: ``declare -a
                          'a=(...)'`` (analysed) or a value not known here, and a
                          ``>&`` target not known here (``>&"$x"``: bash expands
                          the value again, and runs a ``$(...)`` in it).
``source`` / ``.``        reading a script file into the shell.
``alias``                 defining an alias (its static text is analysed too).
``trap``                  a trap action (its static text is analysed too).
``function-definition``   ``f() {...}``: a name may no longer mean a program.
``heredoc-to-shell``      a here-document or here-string feeding a shell's standard
                          input, or the descriptor its script operand, its
                          ``--rcfile``/``--init-file`` file or what ``source`` reads
                          names (``bash /dev/fd/3 3<<<...``, ``bash 3<<<... <&3``,
                          ``bash 3<<<... </dev/fd/3``, ``source /dev/stdin <<<...``: see
                          ``shell_descriptors``; its static text is analysed too),
                          given to it or inherited (``Context.held``) from a compound
                          command around it (``{ bash; } <<<...``) or the command that
                          started the shell running it (``bash -c bash <<<...``). Also,
                          failing closed: any here-document ``exec`` keeps open without
                          a command (``exec 3<<<...``), and one on the descriptors of a
                          call of a function the request defines (``f <<<...``).
``dynamic-command``       what runs depends on a value: ``$CMD args``, ``$(...) args``,
                          ``{rm,-rf,/}``, a glob or ``~`` in command position, ``sh -c
                          "$x"``, a wrapper option or ``env -S`` text with ``$``; or on
                          an argv[0] naming another program than the one run (``exec -a
                          git-push git status``: git runs ``git-push`` as ``git push``;
                          ``chpst -b``, ``bwrap --argv0``).
``glob``                  unquoted ``*``, ``?``, ``[...]`` in an argument.
``brace-expansion``       unquoted ``{a,b}`` or ``{1..3}`` in an argument.
``tilde-expansion``       an unquoted ``~`` starting an argument, or after the first ``=``
                          or a ``:`` of one spelt like an assignment (``x=a:~-``):
                          ``$HOME``, ``$OLDPWD`` (``~-``), ``$PWD`` (``~+``), a
                          ``$DIRSTACK`` entry (``~1``) or a home directory (``~user``).
``dynamic-redirect``      a redirection target that is not static (``> $f``, ``> ~/x``),
                          a ``>&`` target bash expands again (``>&'~/x'``), or one
                          that zsh reads otherwise (``>!file`` is zsh's ``>| file``).
``unknown-cwd``           a relative path when the working directory is unknowable.
``environment-override``  setting a variable that changes what programs run or load
                          (``PATH``, ``LD_*``, ``BASH_ENV``, ``ENV``, ``BASH_FUNC_*``,
                          ``IFS``, every ``GIT_*`` but a few harmless ones ...; see
                          ``RISKY_VARIABLES``, ``RISKY_PREFIXES``), by
                          assignment, ``env``, ``sudo``, ``export``/``declare``,
                          ``read``, ``for`` ..., a named descriptor (``{PATH}<f`` sets
                          PATH to its number), ``coproc NAME``, and namerefs
                          (``declare -n``); also keyword mode (``set -k``, ``set -o
                          keyword``, ``bash -k``), where ``NAME=value`` anywhere in a
                          command is an environment assignment, not an argument. Also
                          zsh's ``ARGV0`` (argv[0], as ``exec -a``), ``HISTFILE``
                          (written at exit by a shell with history on), ``SSH_CLIENT``
                          (Debian's ``bash -c`` then runs ~/.bashrc), ``TEXTDOMAIN``
                          and ``TEXTDOMAINDIR`` (the catalogue ``$"word"`` is translated
                          through), and an expansion
                          that assigns a risky name when it is unset (``${CDPATH:=/x}``;
                          any name for ``${!ref:=x}``).
``command-lookup-override`` ``hash -p`` and ``enable -f``.
``unknown-arguments``     the command gets arguments not visible here (``xargs``,
                          ``find -exec ... {}``, ``mapfile -C``).
``unparsed-wrapper``      a wrapper or shell with options this analysis does not know:
                          what it runs is unknown (also tmux commands other than those
                          unwrapped, a tmux ``#(...)`` format or ``;`` chain, ``screen``
                          with options, a ``systemd-run -p Exec...=`` property).
``network-redirect``      a redirection to ``/dev/tcp/HOST/PORT`` or ``/dev/udp/...``:
                          bash connects to HOST, which no ``network.request`` rule
                          sees (the target is a ``file.write``/``file.read`` too).
``unmodelled-shell``      a script run by a shell this analysis does not model (zsh,
                          ksh, ksh93, mksh, yash, posh, hush ...: not in
                          ``MODELLED_SHELLS``): its ``-c`` script or the here-document
                          it reads is analysed as bash (and dash) read it, but that
                          shell reads some of it otherwise (zsh's ``=cmd``,
                          ``${(e)x}``, option names; ksh93's ``.sh`` disciplines).
``dot-dot-path``          a program, redirection or ``env -C`` path with a ``..``
                          segment: the kernel resolves ``..`` after symlinks, so
                          ``link/../../usr/bin/git`` may run another file than the
                          ``/usr/bin/git`` its lexical form names (``cd`` is logical, as
                          in bash, and needs no such care). ``normalise.request``
                          reports it too for a ``process.exec`` request's ``cwd`` with
                          a ``..`` segment.

Text that cannot be parsed, NUL bytes, an empty ``argv``, nesting deeper than
``max_depth`` scripts and a command line with nothing to evaluate (only comments or
assignments) are ``RequestError`` (400), never a partial analysis. So are the places
where bash itself would guess: ``((`` or ``$((`` that bash would re-read as subshells,
here-document delimiters other than plain words (``EOF``, ``'EOF'``, ``"EOF"``,
``\EOF``), a here-document not ended before the end of the text, a descriptor
assigned to an array element (``{a[1]}>f``), and ``!(`` (a negated subshell, or with
extglob on a pattern in command position, whose first match bash runs).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.errors import RequestError
from sidecar.normalise import shell_ast as sh
from sidecar.normalise.paths import normalise_path
from sidecar.normalise.shell_builtins import (
    BUILTINS,
    DIRECTORY_BUILTINS,
    arithmetic_text,
    risky_variable,
    subscript_text,
)
from sidecar.normalise.shell_context import (
    Context,
    Flow,
    State,
    argv_text,
    command_label,
    later,
    ordered,
    ordered_cwds,
    shorten,
    union,
)
from sidecar.normalise.shell_descriptors import (
    NO_HERE_DOCUMENTS,
    PLAIN_TARGET,
    Descriptors,
    Feeds,
    descriptors,
    duplication,
    reached,
    reexpanded,
)
from sidecar.normalise.shell_parser import (
    ShellSyntaxError,
    parse_budget,
    parse_expanded_word,
    parse_expansions,
    parse_script,
)
from sidecar.normalise.shell_wrappers import (
    BUILTIN_WRAPPERS,
    CD_UNKNOWABLE,
    COMMAND,
    POSIX_SHELLS,
    REPORTED_BUILTIN_WRAPPERS,
    UNKNOWN_CWD,
    WRAPPERS,
    Arg,
    ShellInvocation,
    UnknownOption,
    parse_options,
    parse_shell,
)
from sidecar.policy.compiler import DEFAULT_TRUSTED_PATHS

__all__ = [
    "CONSTRUCTS",
    "TRUSTED_DIRECTORIES",
    "UNKNOWN_CWD",
    "CommandAnalysis",
    "Construct",
    "SimpleCommand",
    "analyse_command",
]

TRUSTED_DIRECTORIES = DEFAULT_TRUSTED_PATHS
CONSTRUCTS = frozenset(
    {"command-substitution", "backticks", "process-substitution", "parameter-expansion"}
    | {"arithmetic", "eval", "source", ".", "alias", "trap", "function-definition"}
    | {"heredoc-to-shell", "dynamic-command", "glob", "brace-expansion", "dynamic-redirect"}
    | {"unknown-cwd", "environment-override", "command-lookup-override"}
    | {"unknown-arguments", "unparsed-wrapper", "dot-dot-path", "startup-files"}
    | {"network-redirect", "unmodelled-shell", "tilde-expansion"}
)
# An argument spelt like an assignment (``x=~``, ``a[1]+=~``): bash expands a tilde after
# its first ``=`` and after each ``:`` (``x=a:~-``); in POSIX mode, and dash, only for
# ``export``, ``declare`` and their kin.
ASSIGNMENT_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
# bash opens a connection for these names instead of a file (redirections only).
NETWORK_DEVICES = ("/dev/tcp/", "/dev/udp/")
WRITE_OPERATORS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})
READ_OPERATORS = frozenset({"<", "<&", "<>"})
ARITHMETIC_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v"})
SUBSTITUTION_LABELS = {
    "command-substitution": "$(...)",
    "backticks": "`...`",
    "process-substitution": "<(...)",
}
# Shells whose scripts are read as bash reads them (they share [[ ]] and (( ))); every
# other script (sh, dash, ash, a command line, eval ...) is read both ways.
BASH_DIALECTS = frozenset(
    {"bash", "rbash", "zsh", "ksh", "ksh93", "mksh", "lksh", "pdksh"}
    | {"bash-static", "zsh-static", "mksh-static"}
)
# The shells this analysis models (bash, and dash as POSIX sh; ash is busybox's sh and
# dash's ancestor). A script any other shell runs (zsh, ksh, mksh, yash ...) is still
# read as bash or dash read it, but that shell reads some text otherwise (zsh's glob
# qualifiers and ``=cmd``, ksh93's disciplines ...): it is ``unmodelled-shell`` too.
MODELLED_SHELLS = frozenset({"sh", "bash", "rbash", "dash", "ash", "bash-static"})


@dataclass(frozen=True)
class SimpleCommand:
    """One program (or builtin) the command line runs, after unwrapping.

    ``cwds`` lists every directory it may run in, in order: the request's ``cwd`` until
    ``cd``/``pushd``/``env -C``/``sudo -D`` change it; ``None`` when the request gave
    none; ``UNKNOWN_CWD`` ("?") when it cannot be known (``cd $D``, in a function ...).
    ``repeated`` says why it may run an unknown number of times (``Context.repeated``);
    empty when it runs at most once.
    """

    argv: tuple[str, ...]
    label: str
    cwds: tuple[str | None, ...] = ()
    repeated: str = ""


@dataclass(frozen=True)
class Construct:
    """Something that cannot be analysed statically; ``name`` is one of ``CONSTRUCTS``."""

    name: str
    label: str


@dataclass(frozen=True)
class CommandAnalysis:
    commands: tuple[SimpleCommand, ...]
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    constructs: tuple[Construct, ...]
    # Why a file of ``writes``/``reads`` may be opened an unknown number of times (a
    # redirection in a loop ...), by path; a path absent is opened at most once.
    repeated_writes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    repeated_reads: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # How many redirections (or wrapper options) open each file of ``writes``/``reads``,
    # by path, when more than one: each is an action of its own for a rate limit.
    write_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    read_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)


def analyse_command(
    *,
    argv: list[str] | None = None,
    command_line: str | None = None,
    cwd: str | None = None,
    max_depth: int = 8,
) -> CommandAnalysis:
    """Analyse exactly one of ``argv`` or ``command_line`` (see the module docstring)."""
    if (argv is None) == (command_line is None):
        raise RequestError("exactly one of argv or commandLine is required", "commandLine")
    field = "argv" if argv is not None else "commandLine"
    if cwd is not None and not cwd.startswith("/"):
        raise RequestError("must be absolute", "cwd")
    start: State = frozenset({normalise_path(cwd, field="cwd") if cwd is not None else None})
    analyser = _Analyser(field, max_depth)
    try:
        with parse_budget():
            if argv is not None:
                analyser.run(_checked_argv(argv), start, Context())
            else:
                analyser.script_text(_checked_text(command_line), start, Context())
    except RecursionError:
        raise RequestError("is nested too deeply", field) from None
    analysis = analyser.result()
    if not (analysis.commands or analysis.writes or analysis.reads or analysis.constructs):
        raise RequestError("contains no command", field)
    return analysis


def _checked_argv(argv: object) -> list[Arg]:
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        raise RequestError("must be a list of strings", "argv")
    if not argv or not argv[0]:
        raise RequestError("must not be empty", "argv")
    if any("\x00" in arg for arg in argv):
        raise RequestError("must not contain NUL bytes", "argv")
    return [Arg(arg) for arg in argv]


def _checked_text(text: object) -> str:
    if not isinstance(text, str):
        raise RequestError("must be a string", "commandLine")
    if "\x00" in text:
        raise RequestError("must not contain NUL bytes", "commandLine")
    return text


def _parse(text: str, max_depth: int, field: str, *, depth: int = 0, nesting: int = 0) -> sh.Script:
    try:
        return parse_script(text, max_depth=max_depth, depth=depth, nesting=nesting)
    except ShellSyntaxError as error:
        raise RequestError(f"cannot be parsed as a shell command: {error}", field) from None


# Commands unwrapped from wrappers (and builtin wrappers, zsh repeat) in one request,
# all readings of a command line together (bash's and dash's). Each
# level reports its whole argument list again, so without a bound a 60 KiB line of
# `nohup nohup ...` cost quadratic time (tens of seconds on the event loop).
MAX_UNWRAPPED = 64


_LOCAL_STATEMENT = re.compile(r"\blocal\b([^;&|\n]*)")


_NAME = re.compile(r"(?<![\w$])[A-Za-z_][A-Za-z0-9_]*(?!\w)")


def _names_used_otherwise(text: str) -> set[str]:
    """The names in ``text`` used other than as ``$name``, ``${name...}`` or a scalar
    ``local name=...`` (no ``-a``/``-A``, not ``name=(``). One pass: linear in ``text``."""
    plain_locals: set[int] = set()
    for statement in _LOCAL_STATEMENT.finditer(text):
        tokens = list(re.finditer(r"\S+", statement.group(1)))
        if any(t.group()[0] in "-+" and ("a" in t.group() or "A" in t.group()) for t in tokens):
            continue
        for token in tokens:
            _name, equals, value = token.group().partition("=")
            if equals and not value.startswith("("):
                plain_locals.add(statement.start(1) + token.start())
    return {
        found.group()
        for found in _NAME.finditer(text)
        if text[max(0, found.start() - 2) : found.start()] != "${"
        and found.start() not in plain_locals
    }


class _Analyser:
    def __init__(self, field: str, max_depth: int) -> None:
        self.field = field
        self.max_depth = max_depth
        self.unwrapped = 0
        self.texts: list[str] = []  # every script text read, for may_be_array
        self._scanned = 0
        self._other_uses: set[str] = set()
        self.commands: list[SimpleCommand] = []
        # path -> why it may be opened an unknown number of times ("": at most once)
        self.writes: dict[str, str] = {}
        self.reads: dict[str, str] = {}
        # path -> how many times it is opened (each redirection of it is an action)
        self.counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
        self.constructs: dict[Construct, None] = {}
        # Each script text analysed (in its place) -> the slice of ``commands`` it added
        # and the openings of files it counted (write, read).
        self.analysed: dict[
            tuple[str, State, bool, str, Descriptors],
            tuple[int, int, Counter[str], Counter[str]],
        ] = {}
        # The name of every function any script text read defines, wherever: a call of
        # one with a here-document fails closed (``fed_to_function``).
        self.functions: set[str] = set()

    def result(self) -> CommandAnalysis:
        return CommandAnalysis(
            tuple(self.commands),
            tuple(self.writes),
            tuple(self.reads),
            tuple(self.constructs),
            {path: why for path, why in self.writes.items() if why},
            {path: why for path, why in self.reads.items() if why},
            {path: n for path, n in self.counts[True].items() if n > 1},
            {path: n for path, n in self.counts[False].items() if n > 1},
        )

    def construct(self, name: str, text: str) -> None:
        self.constructs[Construct(name, shorten(text))] = None

    # -- scripts -------------------------------------------------------------------------

    def script_text(self, text: str, state: State, context: Context, *, posix: bool = True) -> None:
        """Analyse a script given as text: as bash reads it and, with ``posix``, as POSIX
        sh reads it (a command line or ``sh -c`` script may well run under dash)."""
        # The descriptors are part of the place: ``bash -c bash`` reads a here-string
        # given to the outer shell.
        key = (text, state, posix, context.repeated, context.held)
        done = self.analysed.get(key)
        if done is not None:
            # The same text in the same place is not analysed again, but its commands run
            # again: each is reported once more, so a rate limit counts every run
            # (``sh -c 'curl x'; sh -c 'curl x'`` spends two tokens).
            # So do its redirections: each opening is counted again.
            self.commands.extend(self.commands[done[0] : done[1]])
            self.counts[True].update(done[2])
            self.counts[False].update(done[3])
            return
        first = len(self.commands)
        before = {write: counts.copy() for write, counts in self.counts.items()}
        # nothing yet, should the text recur inside
        self.analysed[key] = (first, first, Counter(), Counter())
        self._script_text(text, state, context, posix=posix)
        self.analysed[key] = (
            first,
            len(self.commands),
            self.counts[True] - before[True],
            self.counts[False] - before[False],
        )

    def _script_text(self, text: str, state: State, context: Context, *, posix: bool) -> None:
        self.texts.append(text)
        if "\\\n" in text:  # l\<newline>ocal x=\<newline>(...) is local x=(...) to bash
            self.texts.append(text.replace("\\\n", ""))
        at_start = {write: counts.copy() for write, counts in self.counts.items()}
        depth, nesting = context.depth, context.nesting
        parsed = _parse(text, self.max_depth, self.field, depth=depth, nesting=nesting)
        # Before any command: a loop may call a function defined after the call.
        self.functions |= _function_names(parsed)
        self.script(parsed, state, context)
        if not posix:
            return
        try:
            # The complete commands before dash's own syntax error (it runs those, one
            # line at a time); what is raised is text this reader will not guess about,
            # where dash may run more: refused, as bash's reading refuses it.
            script = parse_script(
                text, max_depth=self.max_depth, depth=depth, nesting=nesting, posix=True
            )
        except ShellSyntaxError as error:
            message = f"cannot be parsed as POSIX sh reads it: {error}"
            raise RequestError(message, self.field) from None
        self.functions |= _function_names(script)
        # A command bash runs once may repeat as dash reads the text: kept then too.
        known = {(command.argv, command.repeated) for command in self.commands}
        start = len(self.commands)
        # One reading or the other runs: a file is opened as often as the reading that
        # opens it more often says, not as often as both together.
        as_bash = {write: counts.copy() for write, counts in self.counts.items()}
        self.script(script, state, context.reading("as POSIX sh reads it"))
        for write, counts in self.counts.items():
            by_posix = counts - as_bash[write]
            by_bash = as_bash[write] - at_start[write]
            self.counts[write] = at_start[write] + (by_bash | by_posix)
        added, self.commands[start:] = self.commands[start:], []
        for command in added:
            # Only what bash would not run; "-d b ]]" from "[[ a || -d b ]]" runs nothing.
            seen = (command.argv, command.repeated)
            if seen not in known and not command.argv[0].startswith("-"):
                known.add(seen)
                self.commands.append(command)

    def expanded_text(self, text: str, state: State, context: Context) -> None:
        """Report what expanding ``text`` runs (a word list bash expands, ``compgen -W``).
        It is read as an unquoted here-document body, which finds every ``$(...)`` and
        backquote in it: quotes in the text could only hide some from bash."""
        try:
            word = parse_expansions(
                text, max_depth=self.max_depth, depth=context.depth, nesting=context.nesting
            )
        except ShellSyntaxError as error:
            message = f"cannot be parsed as a shell command: {error}"
            raise RequestError(message, self.field) from None
        self.expansions(word, state, context)

    def script(self, script: sh.Script, state: State, context: Context) -> Flow:
        flow: Flow = (state, state)
        for item in script.items:
            flow = self.and_or(item.and_or, state, context)
            if item.background:
                flow = (state, state)  # it runs in a subshell
            state = union(*flow)
        return flow

    def and_or(self, node: sh.AndOr, state: State, context: Context) -> Flow:
        ok, fail = self.pipeline(node.first, state, context)
        for operator, pipeline in node.rest:
            if operator == "&&":
                next_ok, next_fail = self.pipeline(pipeline, ok, context)
                ok, fail = next_ok, union(fail, next_fail)
            else:
                next_ok, next_fail = self.pipeline(pipeline, fail, context)
                ok, fail = union(ok, next_ok), next_fail
        return ok, fail

    def pipeline(self, node: sh.Pipeline, state: State, context: Context) -> Flow:
        # A pipe replaces standard input after the first command and standard output
        # before the last: ``{ cat | bash; } <<<text`` is ``cat <<<text | bash``, where
        # bash reads a pipe and is decided as itself.
        last = len(node.commands) - 1
        flow: Flow = (state, state)
        for index, command in enumerate(node.commands):
            piped: tuple[int, ...] = (0,) if index else ()
            piped += (1,) if index < last else ()
            flow = self.command(command, state, context.holding(context.held.without(*piped)))
        ok, fail = flow
        if len(node.commands) > 1:  # the last part runs in this shell only with lastpipe/zsh
            ok, fail = union(state, ok), union(state, fail)
        return (fail, ok) if node.negated else (ok, fail)

    def command(self, node: sh.Command, state: State, context: Context) -> Flow:
        context = context.deeper()
        if isinstance(node, sh.SimpleCommand):
            return self.simple(node, state, context)
        if isinstance(node, sh.FunctionDefinition):
            self.construct("function-definition", node.raw or node.name + "()")
            # It runs when called, anywhere, as often as called (or recursing).
            body_context = context.repeating(f"in function {node.name}, called any number of times")
            # It runs with its caller's descriptors, not those around its definition: a
            # call given a here-document fails closed (``fed_to_function``).
            body_context = body_context.holding(NO_HERE_DOCUMENTS)
            self.command(node.body, later(state), body_context)
            after = later(state) if _changes_cwd(node.body) else state
            return after, after
        if isinstance(node, sh.Coprocess):
            # NAME holds the coprocess's descriptors and NAME_PID its process id.
            if node.name is not None and any(
                risky_variable(variable) for variable in (node.name, f"{node.name}_PID")
            ):
                self.construct("environment-override", f"coproc {node.name}")
            self.command(node.command, state, context)
            return state, state
        self.redirects(node.redirects, state, context)
        # Every command inside (and the substitutions of a for's words, a case's
        # subject) inherits the descriptors its redirections set: ``{ bash; } <<<text``.
        context = context.holding(
            descriptors(node.redirects, context.held, lambda text: self.named_paths(text, state))
        )
        if isinstance(node, sh.Group):
            return self.script(node.body, state, context)
        if isinstance(node, sh.Subshell):
            self.script(node.body, state, context)
            return state, state
        reached = self.compound(node, state, context)
        return reached, reached

    def compound(self, node: sh.Command, state: State, context: Context) -> State:
        """Analyse an if/loop/for/case/(( ))/[[ ]]; return every state it may end in."""
        reached: list[State] = [state]
        if isinstance(node, sh.If):
            for condition, body in node.clauses:
                ok, state = self.script(condition, state, context)
                reached.extend(self.script(body, ok, context))
                reached.append(state)
            if node.otherwise is not None:
                reached.extend(self.script(node.otherwise, state, context))
        elif isinstance(node, sh.Loop | sh.For | sh.ArithmeticFor):
            if _changes_cwd(node):  # a cd repeated any number of times
                state = later(state)
                reached.append(state)
            looping = context.repeating(f"in {_loop_kind(node)} loop")
            if isinstance(node, sh.Loop):  # the condition runs on every round too
                ok, fail = self.script(node.condition, state, looping)
                reached.extend(
                    (ok, fail, *self.script(node.body, fail if node.until else ok, looping))
                )
            else:
                # A for's words are expanded once; a for (( ))'s tests run every round.
                self.loop_header(
                    node, state, looping if isinstance(node, sh.ArithmeticFor) else context
                )
                reached.extend(self.script(node.body, state, looping))
        elif isinstance(node, sh.Case):
            for word in (
                node.subject,
                *(pattern for patterns, _ in node.arms for pattern in patterns),
            ):
                self.expansions(word, state, context)
            for _patterns, body in node.arms:
                reached.extend(self.script(body, state, context))
        elif isinstance(node, sh.Arithmetic):
            self.expansions(node.expression, state, context)
        elif isinstance(node, sh.Conditional):
            texts = ("[[", *(word.text for word in node.words), "]]")
            self.commands.append(
                SimpleCommand(
                    texts, command_label(texts, context), ordered_cwds(state), context.repeated
                )
            )
            for word in node.words:
                self.expansions(word, state, context)
                if word.text in ARITHMETIC_TESTS and not word.quoted:
                    self.construct("arithmetic", " ".join(w.raw for w in node.words))
            self.conditional_arithmetic(node.words, state, context)
            self.redirects(_comparisons_as_redirects(node), state, context)
        return union(*reached)

    def conditional_arithmetic(
        self, words: Sequence[sh.Word], state: State, context: Context
    ) -> None:
        """``[[ -v 'a[$(cmd)]' ]]``, ``[[ 'a[$(cmd)]' -eq 1 ]]``: bash evaluates the
        subscript of a ``-v`` name, and both sides of ``-eq`` ``-lt`` ..., as arithmetic,
        expanding what quotes hid on the command line. A word without expansions is known
        here (``[[ ]]`` expands no pathnames): its text is read as bash expands it."""
        for index, word in enumerate(words):
            if word.text not in ARITHMETIC_TESTS or word.quoted:
                continue
            if word.text == "-v":
                for name in words[index + 1 : index + 2]:
                    if not name.expansions:
                        subscript_text(self, name.text, state, context)
                continue
            for side in (*words[max(index - 1, 0) : index], *words[index + 1 : index + 2]):
                if not side.expansions:
                    arithmetic_text(self, side.text, state, context, "[[ arithmetic ]]")

    def loop_header(self, node: sh.For | sh.ArithmeticFor, state: State, context: Context) -> None:
        if isinstance(node, sh.ArithmeticFor):
            self.expansions(node.header, state, context)
            return
        if risky_variable(node.variable):
            self.construct("environment-override", f"for {node.variable} in ...")
        for word in node.words or ():
            self.argument(word, state, context)

    # -- words and redirections ----------------------------------------------------------

    def expansions(self, word: sh.Word, state: State, context: Context) -> None:
        self.expanded(word.expansions, state, context)

    def expanded(self, expansions: Sequence[sh.Expansion], state: State, context: Context) -> None:
        """Report ``expansions``: each a construct, the commands of a substitution too."""
        for expansion in expansions:
            if expansion.kind == "parameter":
                self.construct("parameter-expansion", expansion.text)
                if expansion.arithmetic:
                    self.construct("arithmetic", expansion.text)
                if expansion.prompt:
                    self.construct("eval", expansion.text)
                # ${CDPATH:=/tmp} sets CDPATH when it is unset: an assignment too.
                if expansion.assigns is not None and (
                    expansion.assigns == "" or risky_variable(expansion.assigns)
                ):
                    self.construct("environment-override", expansion.text)
                continue
            self.construct(expansion.kind, expansion.text)
            if expansion.script is not None:
                where = SUBSTITUTION_LABELS[expansion.kind]
                self.script(expansion.script, state, context.inside(where))

    def argument(self, word: sh.Word, state: State, context: Context) -> None:
        self.expansions(word, state, context)
        if word.glob:
            self.construct("glob", word.raw)
        if word.brace:
            self.construct("brace-expansion", word.raw)
        if _tilde_expanded(word):
            self.construct("tilde-expansion", word.raw)

    def redirects(self, redirects: Sequence[sh.Redirect], state: State, context: Context) -> None:
        for redirect in redirects:
            # ``{PATH}<file`` sets PATH to the new descriptor's number ("10"), in this
            # shell for a builtin or compound command: a relative PATH entry.
            fd = redirect.fd
            if fd is not None and fd.startswith("{") and risky_variable(fd[1:-1]):
                shown = redirect.target.raw if redirect.target is not None else ""
                self.construct("environment-override", f"{fd}{redirect.op}{shown}")
            if redirect.heredoc is not None:
                if redirect.heredoc.body is not None:
                    self.expansions(redirect.heredoc.body, state, context)
                continue
            target = redirect.target
            if target is None:
                continue
            self.expansions(target, state, context)
            if redirect.op == "<<<":
                # bash expands a here-string as an assignment's value: a tilde-prefix at
                # its start and after each ":" (<<< 'true x':~-), text the line can set.
                if target.raw.startswith("~") or ":~" in target.raw:
                    self.construct("tilde-expansion", f"{redirect.op} {target.raw}")
                continue
            if _is_descriptor(redirect):
                continue
            if _is_process_substitution(target):
                continue  # > >(cmd): a pipe to cmd, whose commands are reported
            shown = f"{redirect.fd or ''}{redirect.op} {target.raw}"
            again = reexpanded(redirect)
            if target.static and _tilde_expanded(target):
                # > a=~-: bash expands a tilde after an assignment-like target's "=" or ":"
                # too, to a value the line can set (OLDPWD=...): not the file ./a=~-.
                self.construct("dynamic-redirect", shown)
                continue
            if not target.static:
                self.construct("dynamic-redirect", shown)
                if again:  # >&"$x": bash expands the value again, and runs a $(...) in it
                    self.construct("eval", shown)
                continue
            if again and target.text and not PLAIN_TARGET.fullmatch(target.text):
                # >&'$(cmd)', >&'~/.bashr?': quotes removed, bash expands the text again.
                self.expanded_again(target.text, state, context)
                self.construct("dynamic-redirect", shown)
                continue
            if redirect.op in WRITE_OPERATORS and target.raw.startswith("!"):
                # zsh reads ">!FILE" (">>!", "&>!" ...) as ">|" and writes FILE, where bash
                # writes "!FILE" (zsh scripts are read as bash here): FILE is not known.
                self.construct("dynamic-redirect", shown)
            self.check_dot_dot(target.text)
            for path in self.paths(target.text, state):
                if path.startswith(NETWORK_DEVICES):
                    # > /dev/tcp/HOST/PORT: a connection the network.request rules never
                    # see (the file.write of the name is decided too).
                    self.construct("network-redirect", f"{redirect.fd or ''}{redirect.op} {path}")
                if redirect.op in WRITE_OPERATORS:
                    _opened(self.writes, self.counts[True], path, context)
                if redirect.op in READ_OPERATORS:
                    _opened(self.reads, self.counts[False], path, context)

    def expanded_again(self, text: str, state: State, context: Context) -> None:
        """Report what bash's second expansion of a ``>&`` target runs: ``text`` (the
        target once expanded) read as one word whose blanks and operators are literal
        (``reexpanded``); its substitutions and parameters are constructs as anywhere."""
        try:
            word = parse_expanded_word(
                text, max_depth=self.max_depth, depth=context.depth, nesting=context.nesting
            )
        except ShellSyntaxError as error:
            message = f"cannot be parsed as a shell command: {error} (a >& target, expanded again)"
            raise RequestError(message, self.field) from None
        self.expansions(word, state, context.inside("a >& target, expanded again"))

    def paths(self, text: str, state: State) -> list[str]:
        """``text`` normalised against every possible working directory."""
        if text.startswith("/"):
            return [normalise_path(text, None, field=self.field)]
        found: dict[str, None] = {}
        for cwd in ordered(state):
            if cwd == UNKNOWN_CWD:
                self.construct("unknown-cwd", text)
            else:
                found[normalise_path(text, cwd, field=self.field)] = None
        return list(found)

    def assignment(self, assignment: sh.Assignment, state: State, context: Context) -> None:
        for word in assignment.values:
            self.expansions(word, state, context)
        if risky_variable(assignment.name, _assigned_value(assignment)):
            self.construct("environment-override", assignment.word.raw)
        if assignment.subscript is not None:
            self.construct("arithmetic", assignment.word.raw)
            # a['$(cmd)']=v: bash expands the subscript as it evaluates it, quotes and all.
            self.expanded(assignment.word.subscript, state, context)
        elements = assignment.values[1:]  # a=(...): the words between the parentheses
        if any(element.raw.startswith("[") for element in elements):
            # a=([i]=v): like a[i]=v, bash evaluates the index as arithmetic, and
            # i='x[$(cmd)]' set before makes that run cmd.
            shown = " ".join(element.raw for element in elements)
            self.construct("arithmetic", f"{assignment.word.raw}({shown})")
            for element in elements:
                if element.raw.startswith("["):
                    self.expanded(element.subscript, state, context)

    # -- simple commands -----------------------------------------------------------------

    def simple(self, node: sh.SimpleCommand, state: State, context: Context) -> Flow:
        for assignment in node.assignments:
            self.assignment(assignment, state, context)
        if node.words:
            self.expansions(node.words[0], state, context)
        for word in node.words[1:]:
            self.argument(word, state, context)
        for word in node.words:
            if not word.static:
                # declare a['$(cmd)']=v, read a[$'\x24(cmd)']: bash expands the subscript
                # of a name it is given, quotes and all; a glob there (a[...]) matches no
                # file named so. A static word's text is read by the builtin's handler.
                self.expanded(word.subscript, state, context)
        self.redirects(node.redirects, state, context)
        if not node.words:
            return state, state
        args = [Arg(word.text, word.static) for word in node.words]
        held = descriptors(node.redirects, context.held, lambda text: self.named_paths(text, state))
        return self.run(args, state, context, held)

    def may_be_array(self, name: str) -> bool:
        """Whether any script text read uses ``name`` other than as ``$name``,
        ``${name...}`` or in ``local name=...`` (without ``-a``/``-A``, not ``=(``):
        anything else (``x=(``, ``-a x``, ``mapfile x``, ``for x``) may make it an array,
        so assume it does."""
        while self._scanned < len(self.texts):  # texts read since the last question
            self._other_uses |= _names_used_otherwise(self.texts[self._scanned])
            self._scanned += 1
        return name in self._other_uses

    def count_unwrap(self) -> None:
        self.unwrapped += 1
        if self.unwrapped > MAX_UNWRAPPED:
            raise RequestError(f"unwraps more than {MAX_UNWRAPPED} wrapped commands", self.field)

    def report(self, args: Sequence[Arg], state: State, context: Context) -> None:
        texts = [arg.text for arg in args]
        label = command_label(texts, context)
        program = texts[0]
        programs = [program]
        if args[0].static and "/" in program:
            self.check_dot_dot(program)
            programs = self.paths(program, state)
            if UNKNOWN_CWD in state and not program.startswith("/"):
                programs.append(program)
        cwds = ordered_cwds(state)
        for resolved in programs:
            self.commands.append(
                SimpleCommand((resolved, *texts[1:]), label, cwds, context.repeated)
            )

    def file_access(self, text: str, state: State, context: Context, *, write: bool) -> None:
        """A file a builtin writes or reads by name (``history -w FILE``): decided as
        ``file.write``/``file.read`` like a redirection's target."""
        self.check_dot_dot(text)
        for path in self.paths(text, state):
            _opened(self.writes if write else self.reads, self.counts[write], path, context)

    def check_dot_dot(self, path: str) -> None:
        """The kernel resolves ``..`` after symlinks, so ``link/../x`` may not be where
        its lexical form says: whatever the form, it is a construct."""
        if ".." in path.split("/"):
            self.construct("dot-dot-path", path)

    def run(
        self,
        args: list[Arg],
        state: State,
        context: Context,
        held: Descriptors | None = None,
    ) -> Flow:
        """Report what ``args`` runs, unwrapping shells and wrappers; return the flow.

        ``held``: what its descriptors hold once its own redirections are applied (by
        default, those it inherits): the shells, wrappers and builtins it runs inherit
        them, and so do the scripts they run (``bash -c bash <<<text``, ``eval``).
        """
        inherited = context.held
        if held is not None:
            context = context.holding(held)
        held = context.held
        outer = state
        outer_args = args
        in_child = False  # once a wrapper runs, builtins no longer touch this shell
        while True:
            if args is not outer_args:  # a wrapped command: count it
                self.count_unwrap()
            head = args[0]
            if not head.static:
                self.construct("dynamic-command", argv_text(arg.text for arg in args))
                self.report(args, state, context)
                return outer, outer
            name = head.text
            if "/" not in name and not in_child:
                if name in self.functions and held.every():
                    self.fed_to_function(name, held, state, context)
                if name == "repeat" and len(args) > 2:
                    return self.repeat(args, state, context, held)
                if name in BUILTIN_WRAPPERS or name == "command":
                    inner = self.builtin_wrapper(name, args, state, context)
                    if not inner:
                        if name == "exec":
                            self.kept_by_exec(args, held.gained(inherited), state, context)
                        return outer, outer
                    args = inner
                    continue
                if name in SOURCE_BUILTINS and held.every():
                    sourced = self.sourced_input(args, state, held)
                    if sourced:
                        display = argv_text(arg.text for arg in args)
                        self.here_documents_read(sourced, display, state, context)
                builtin = BUILTINS.get(name)
                if builtin is not None:
                    return builtin(self, args, state, context)
            program = name.rsplit("/", 1)[-1]
            if program in POSIX_SHELLS:
                self.shell(program, args, state, context, held)
                return outer, outer
            handler = WRAPPERS.get(program)
            if "/" not in name and name in BUILTINS:
                BUILTINS[name](self, args, state, context)  # `env cd x`: strict, no effect here
                return outer, outer
            self.report(args, state, context)
            if handler is None:
                return outer, outer
            unwrapped = handler(args)
            display = argv_text(arg.text for arg in args)
            if unwrapped.unparsed:
                self.construct("unparsed-wrapper", display)
                return outer, outer
            if unwrapped.dynamic:
                self.construct("dynamic-command", display)
            if unwrapped.login:  # sudo -i, su -: the login shell runs its startup files
                self.construct("startup-files", display)
            if unwrapped.unknown_arguments:
                self.construct("unknown-arguments", display)
            if unwrapped.unsets_path_or_shlvl:  # env -i: see STARTED_BARE
                self.construct("environment-override", display)
            for variable, value in unwrapped.assigned:
                # A wrapper with an argument not known here may have any value in it.
                if risky_variable(variable, None if unwrapped.dynamic else value):
                    self.construct("environment-override", f"{program} {variable}=...")
            for path in unwrapped.writes:  # strace -o FILE: opened like > FILE
                self.file_access(path, state, context, write=True)
            for path in unwrapped.reads:
                self.file_access(path, state, context, write=False)
            if unwrapped.cwd is not None:
                self.check_dot_dot(unwrapped.cwd)  # env -C and sudo -D use chdir(2)
                state = self.changed_directory(unwrapped.cwd, state)
            context = context.via(program)
            if unwrapped.repeats:  # xargs, find -exec, watch: once per input, file, round
                context = context.repeating(f"run repeatedly by {program}")
            for command in unwrapped.also:
                self.run(list(command), state, context)
            if unwrapped.script is not None:
                self.shell_script(unwrapped.script, args, state, context, f"{program} script")
            if not unwrapped.inner:
                return outer, outer
            args = list(unwrapped.inner)
            in_child = True

    def fed_to_function(self, name: str, held: Descriptors, state: State, context: Context) -> None:
        """A function called with here-documents on its descriptors (its own, or those of
        a compound command around the call): its body, analysed where it is defined, may
        start a shell that reads them (``f() { bash; }; f <<<text``). Following each call
        into the body is not done: fail closed, as if a shell read every text."""
        self.here_documents_read(held.every(), f"{name} (a function)", state, context)

    def kept_by_exec(self, args: list[Arg], kept: Feeds, state: State, context: Context) -> None:
        """``exec`` without a command keeps its redirections for the rest of the shell:
        ``exec <<<text; bash``, ``exec 3<<<text; bash <&3``, also ``{ exec 3<&0; } <<<
        text`` (the copy outlives the group). Whatever runs later may read the text, in
        this script or one it starts, a function, ``eval``, a trap: following the
        descriptors through every later command is not done. Fail closed: the
        ``heredoc-to-shell`` construct, and the text is analysed as a script."""
        if kept:
            self.here_documents_read(kept, argv_text(arg.text for arg in args), state, context)

    def here_documents_read(
        self, feeds: Feeds, display: str, state: State, context: Context
    ) -> None:
        """Here-documents some shell may read as its script, which one not known here
        (so both bash's and POSIX sh's readings): the construct, and each text analysed."""
        self.construct("heredoc-to-shell", display)
        inside = context.inside(f"a here-document read by {display}")
        for feed in feeds:
            if feed.static:
                self.script_text(feed.text, state, inside)

    def repeat(self, args: list[Arg], state: State, context: Context, held: Descriptors) -> Flow:
        """zsh's ``repeat COUNT command`` runs the command COUNT times in this shell.

        zsh scripts are parsed as bash, where ``repeat`` would be a program: both readings
        are reported, ``repeat`` itself and then the command it repeats.
        """
        self.report(args, state, context)
        count = args[1]
        # ASCII digits only: "²" is a digit to str.isdigit and no number to int().
        number = count.static and count.text.isascii() and count.text.isdigit()
        if not number:
            self.construct("arithmetic", argv_text(arg.text for arg in args))  # zsh math
        self.count_unwrap()
        inner = context.via("repeat")
        if not (number and count.text.lstrip("0") in ("", "1")):
            inner = inner.repeating(f"run {count.text} times by repeat")
        ok, fail = self.run(args[2:], state, inner, held)
        if (ok, fail) != (state, state) and count.text != "1":
            ok = fail = later(state)  # a cd repeated any number of times
        return union(ok, state), union(fail, state)  # also "repeat 0", or the program

    def builtin_wrapper(
        self, name: str, args: list[Arg], state: State, context: Context
    ) -> list[Arg]:
        """``exec``/``command``/``builtin``...: the command they run (empty: none)."""
        texts = [arg.text for arg in args]
        if name == "command":
            try:
                options, index = parse_options(texts, 1, COMMAND)
            except UnknownOption:
                self.construct("unparsed-wrapper", argv_text(texts))
                return []
            if {"v", "V"} & {option for option, _value in options}:
                self.report(args, state, context)  # a lookup: nothing runs
                return []
            return args[index:]
        unwrapped = BUILTIN_WRAPPERS[name](args)
        if name in REPORTED_BUILTIN_WRAPPERS:
            self.report(args, state, context)
        if unwrapped.unparsed:
            self.construct("unparsed-wrapper", argv_text(texts))
            return []
        if unwrapped.dynamic:
            self.construct("dynamic-command", argv_text(texts))
        if unwrapped.unknown_arguments:  # jobs -x cmd %1: a job's process group id
            self.construct("unknown-arguments", argv_text(texts))
        if unwrapped.login:  # exec -l bash: a login shell runs its startup files
            self.construct("startup-files", argv_text(texts))
        if unwrapped.unsets_path_or_shlvl:  # exec -c: see STARTED_BARE
            self.construct("environment-override", argv_text(texts))
        return list(unwrapped.inner)

    def shell(
        self, program: str, args: list[Arg], state: State, context: Context, held: Descriptors
    ) -> None:
        invocation = parse_shell(program, args)
        display = argv_text(arg.text for arg in args)
        trusted = "/" not in args[0].text or any(
            path.rsplit("/", 1)[0] in TRUSTED_DIRECTORIES
            for path in self.paths(args[0].text, state)
        )
        if invocation.kind == "unparsed":
            self.construct("unparsed-wrapper", display)
            self.report(args, state, context)
            return
        if invocation.dynamic:
            self.construct("dynamic-command", display)
        if "keyword" in invocation.options:
            self.construct("environment-override", display)
        if "histexpand" in invocation.options:
            self.construct("eval", display)
        if invocation.startup_files:
            self.construct("startup-files", display)
        # With -P its cd resolves symlinks: where "cd link/.." lands is unknown.
        inside_state = state
        if CD_UNKNOWABLE & invocation.options:
            self.construct("unknown-cwd", display)
            inside_state = frozenset({UNKNOWN_CWD})
        # A script given to it (the -c one, or what it reads from a here-document): a
        # shell reading the agent's stdin or a script file is decided as itself anyway.
        # So is a startup file it is given (``--rcfile /dev/fd/3``), read before either.
        feeds = self.shell_input(invocation, state, held)
        if held.every():
            for operand in _startup_file_operands(args):
                feeds += self.named_input(operand, state, held)
            feeds = tuple(dict.fromkeys(feeds))
        if program not in MODELLED_SHELLS and (invocation.kind == "script" or feeds):
            self.construct("unmodelled-shell", display)
        if feeds:
            self.construct("heredoc-to-shell", display)
            # Its commands inherit its descriptors, but standard input holds the rest of
            # the script being analysed here: not analysed twice.
            inside = context.holding(held.without(0)).inside(f"{program} standard input")
            posix = program not in BASH_DIALECTS or "posix" in invocation.options
            for feed in feeds:
                if feed.static:
                    self.script_text(feed.text, inside_state, inside, posix=posix)
        if invocation.kind == "script" and invocation.script is not None:
            if not trusted or invocation.interactive:
                self.report(args, state, context)
            posix = program not in BASH_DIALECTS or "posix" in invocation.options
            where = f"{program} -c script"
            self.shell_script(invocation.script, args, inside_state, context, where, posix=posix)
            return
        self.report(args, state, context)

    def shell_input(
        self, invocation: ShellInvocation, state: State, held: Descriptors
    ) -> tuple[Arg, ...]:
        """The here-documents a shell reads as its script: its standard input's, or those
        of the descriptor its script operand names (``bash /dev/fd/3 3<<<...``). An
        operand that may name a descriptor in a way not followed here (``/proc/PID/fd/0``,
        a value, a relative path in an unknown directory) reads any of them."""
        if invocation.kind == "stdin":
            return held.readable(0)
        operand = invocation.operand
        if invocation.kind != "plain" or operand is None or not held.every():
            return ()
        return self.named_input(operand, state, held)

    def named_input(self, operand: Arg, state: State, held: Descriptors) -> Feeds:
        """The here-documents a file a shell reads by name (its script operand, a startup
        file, what ``source`` reads) may hold: those of a descriptor it names. One that
        may name a descriptor in a way not followed here (``/proc/PID/fd/0``, a value, a
        relative path in an unknown directory) may hold any of them."""
        if not held.every():
            return ()
        if not operand.static:
            return held.every()
        return reached(self.named_paths(operand.text, state), held)

    def sourced_input(self, args: list[Arg], state: State, held: Descriptors) -> Feeds:
        """The here-documents ``source FILE`` / ``. FILE`` reads as script text in this
        shell (``source /dev/stdin <<<text``). A FILE without a slash is looked up in
        PATH first (``PATH=/dev:$PATH; source stdin``): any of them. Options (bash 5.3's
        ``-p PATH``) are skipped; an unknown one fails closed."""
        index = 1
        while index < len(args):
            text = args[index].text
            if text == "--":
                index += 1
                break
            if text == "-p":
                return held.every()  # FILE is looked up in a path given by value
            if not text.startswith("-") or text == "-" or not args[index].static:
                break
            index += 1
        if index >= len(args):
            return ()
        operand = args[index]
        if operand.static and "/" not in operand.text:
            return held.every()
        return self.named_input(operand, state, held)

    def named_paths(self, text: str, state: State) -> list[str] | None:
        """The normalised absolute paths ``text`` may be, one for each working directory
        it may be read in; None where that is not known (a relative path in an unknown
        directory: ``cd /dev; bash stdin``)."""
        if text.startswith("/"):
            return [normalise_path(text, None, field=self.field)]
        if None in state or UNKNOWN_CWD in state:
            return None
        return [normalise_path(text, cwd, field=self.field) for cwd in ordered(state)]

    def shell_script(
        self,
        script: Arg,
        args: list[Arg],
        state: State,
        context: Context,
        where: str,
        *,
        posix: bool = True,
    ) -> None:
        """Analyse the script a shell or wrapper runs; a dynamic one is reported as is."""
        if not script.static:
            self.construct("dynamic-command", argv_text(arg.text for arg in args))
            self.report(args, state, context)
            return
        # A bash script that turns POSIX mode on (set -o posix) reads on as dash does.
        posix = posix or "posix" in script.text
        self.script_text(script.text, state, context.inside(where), posix=posix)

    def changed_directory(self, target: str, state: State) -> State:
        if target == UNKNOWN_CWD:
            return frozenset({UNKNOWN_CWD})
        if target.startswith("/"):
            return frozenset({normalise_path(target, None, field=self.field)})
        return frozenset(
            cwd
            if cwd is None or cwd == UNKNOWN_CWD
            else normalise_path(target, cwd, field=self.field)
            for cwd in state
        )


def _assigned_value(assignment: sh.Assignment) -> str | None:
    """The value a plain ``NAME=value`` gives, where known here: not for ``+=``, an
    array or an element, or a value with an expansion."""
    prefix = assignment.name + "="
    word = assignment.word
    plain = assignment.subscript is None and len(assignment.values) == 1
    if not (plain and word.static and word.text.startswith(prefix)):
        return None
    return word.text.removeprefix(prefix)


# The builtins that read a file's text as script in this shell.
SOURCE_BUILTINS = frozenset({"source", "."})
# bash's options naming a startup file an interactive shell reads first.
_STARTUP_FILE_OPTIONS = ("--rcfile", "--init-file")


def _startup_file_operands(args: Sequence[Arg]) -> list[Arg]:
    """The files a shell's ``--rcfile FILE`` / ``--init-file FILE`` (``=FILE``) name,
    among its options (read before its script; without ``-i`` they are not read, but
    fail closed on them all the same)."""
    found: list[Arg] = []
    index = 1
    while index < len(args):
        text = args[index].text
        if text in ("--", "-") or not text.startswith(("-", "+")):
            break
        option, has_value, value = text.partition("=")
        if option in _STARTUP_FILE_OPTIONS:
            if has_value:
                found.append(Arg(value, args[index].static))
            elif index + 1 < len(args):
                found.append(args[index + 1])
                index += 1
        elif not text.startswith("--"):
            index += text.count("o") + text.count("O")  # -o NAME, -O NAME: values
        index += 1
    return found


def _loop_kind(node: sh.Loop | sh.For | sh.ArithmeticFor) -> str:
    """The loop's name, for why its commands repeat: "a while", "a for (( ))" ..."""
    if isinstance(node, sh.Loop):
        return "an until" if node.until else "a while"
    if isinstance(node, sh.ArithmeticFor):
        return "a for (( ))"
    return "a select" if node.select else "a for"


def _opened(files: dict[str, str], counts: Counter[str], path: str, context: Context) -> None:
    """Record that ``path`` is opened here (once more); a repeated opening is the one
    remembered."""
    counts[path] += 1
    if not files.get(path):
        files[path] = context.repeated


def _comparisons_as_redirects(node: sh.Conditional) -> list[sh.Redirect]:
    """``[[ a > b ]]`` compares strings in bash, but POSIX sh (and bash itself inside
    ``$(time [[ ... ]])``) opens ``b`` for writing: count ``<``/``>`` as redirections."""
    words = node.words
    return [
        sh.Redirect(word.raw, None, words[index + 1])
        for index, word in enumerate(words[:-1])
        if word.raw in ("<", ">") and not word.quoted and word.raw == word.text
    ]


def _function_names(node: object) -> set[str]:
    """The name of every function ``node`` defines, at any depth.

    A walk with a stack, not recursion building a set per node: a 60 KB command line of
    2,500 short commands has some 130,000 nodes, and that took 75 ms per reading.
    """
    names: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, sh.FunctionDefinition):
            names.add(item.name)
            stack.append(item.body)
        elif isinstance(item, tuple):
            stack.extend(item)
        elif not isinstance(item, str | sh.Redirect):
            stack.extend([getattr(item, name) for name in _node_fields(type(item))])
    return names


# Field types of the syntax tree that hold no node (the annotations as written): a word's
# flags and texts are most of a tree.
_LEAF_FIELD_TYPES = frozenset({"bool", "str", "str | None", "int", "ExpansionKind"})


_NODE_FIELDS: dict[type, tuple[str, ...]] = {}


def _node_fields(cls: type) -> tuple[str, ...]:
    """The fields of a syntax node's class that may hold nodes; none for anything else."""
    fields = _NODE_FIELDS.get(cls)
    if fields is None:
        fields = ()
        if dataclasses.is_dataclass(cls):
            fields = tuple(
                field.name
                for field in dataclasses.fields(cls)
                if field.type not in _LEAF_FIELD_TYPES
            )
        _NODE_FIELDS[cls] = fields
    return fields


def _is_descriptor(redirect: sh.Redirect) -> bool:
    """``2>&1``, ``<&3``, ``>&-``, ``3>&4-``: descriptors, not files (``>&"4-"`` is the
    file ``4-``: see ``shell_descriptors.duplication``)."""
    return duplication(redirect) is not None


def _is_process_substitution(word: sh.Word) -> bool:
    expansions = word.expansions
    return (
        len(expansions) == 1
        and expansions[0].kind == "process-substitution"
        and word.raw == expansions[0].text
    )


# Builtins that run the command in the words after them (and their options) in this
# shell, where a ``cd`` moves it.
RUNS_NEXT_WORDS = frozenset({"builtin", "command", "exec", "jobs"})


def _changes_cwd(node: object) -> bool:
    """Whether running ``node`` may change this shell's directory (syntactically)."""
    if isinstance(node, sh.SimpleCommand):
        words = list(node.words)
        while words and words[0].text in RUNS_NEXT_WORDS and words[0].static:
            words = words[1:]
            while words and words[0].text.startswith("-") and words[0].static:
                words = words[1:]  # its options: ``command -p cd``, ``jobs -x cd``
        if not words:
            return False
        head = words[0]
        return not head.static or head.text in DIRECTORY_BUILTINS | {"eval", "source", "."}
    if isinstance(node, sh.Subshell | sh.Word | sh.Redirect):
        return False
    if isinstance(node, tuple):
        return any(_changes_cwd(item) for item in node)
    if dataclasses.is_dataclass(node):
        return any(_changes_cwd(getattr(node, field.name)) for field in dataclasses.fields(node))
    return False


def _tilde_expanded(word: sh.Word) -> bool:
    """Whether bash may expand a tilde-prefix in the argument ``word``: ``~`` is $HOME,
    ``~-`` $OLDPWD, ``~+`` $PWD, ``~N`` an entry of $DIRSTACK, ``~user`` a home
    directory, values the line itself can set (``OLDPWD=--output=x; git log ~-``). A
    quoted character in the prefix (``~"x"``, a quoted ``:~``) stops bash expanding it:
    taken for a tilde all the same, the stricter side."""
    if word.raw.startswith("~"):
        return True
    assignment = ASSIGNMENT_LIKE.match(word.raw)
    value = word.raw[assignment.end() :] if assignment is not None else ""
    return value.startswith("~") or ":~" in value
