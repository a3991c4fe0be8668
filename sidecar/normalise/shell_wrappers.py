"""Programs that run other programs: shells and wrappers (CONTRACT 2.2, "Commands").

Given a command's arguments, say what it runs: ``sh -c`` style shells give a script to
analyse; wrappers (``env``, ``nice``, ``timeout``, ``nohup``, ``stdbuf``, ``xargs``,
``sudo``, ``doas``, ``busybox``, ``toybox``, ``strace``, ``setpriv``, ``bwrap``,
``numactl``, ``valgrind``, ``ip netns exec`` ...) give the
command they run after their own options, and the files they open themselves
(``strace -o FILE``, ``time -o FILE``, ``script``'s typescript);
``find -exec`` gives further commands. Options are read the way each program's
``getopt`` reads them (clusters, attached values, ``--``, unique prefixes of long
options, stopping at the first operand, or anywhere before ``--`` for the programs
whose GNU getopt permutes: ``su``, ``runuser``, ``script``). An option a program does
not have, or a missing value, makes the result ``unparsed``: the caller then cannot
know what runs and must fail closed.

Some wrappers start a shell by themselves (``sudo -s``/``-i``, ``su``, ``doas -s``,
``pkexec``, ``chroot DIR``, ``unshare``, ``nsenter``, ``script``, ``newgrp``, ``login``,
and terminal or session programs: ``tmux``, ``screen``, ``systemd-run --shell``,
``run0``, ``firejail``, with no command): that shell is the user's ``$SHELL`` or login
shell, which cannot be known here, so it is given as the inner command ``sh``
(``LOGIN_SHELL``). The caller then treats it like any shell: a policy that denies
shells denies it, and what it reads from a here-document or here-string is analysed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sidecar.normalise.paths import normalise_path

UNKNOWN_CWD = "?"  # a working directory that cannot be known statically

POSIX_SHELLS = frozenset(
    {"sh", "bash", "rbash", "dash", "ash", "zsh", "ksh", "ksh93", "mksh", "lksh", "pdksh", "oksh"}
    | {"loksh", "yash", "posh", "hush"}
    # Debian's static builds (bash-static, zsh-static, mksh) install under these names.
    | {"bash-static", "zsh-static", "mksh-static"}
)
ZSH_NAMES = frozenset({"zsh", "zsh-static"})
KSH_LIKE = frozenset({"ksh", "ksh93", "mksh", "mksh-static", "lksh", "pdksh", "oksh", "loksh"})
BASH_LONG_FLAGS = frozenset(
    {"debug", "debugger", "dump-po-strings", "dump-strings", "help", "login", "noediting"}
    | {"noprofile", "norc", "posix", "pretty-print", "protected", "restricted", "verbose"}
    | {"version", "wordexp"}
)
BASH_LONG_WITH_ARGUMENT = frozenset({"init-file", "rcfile"})
# bash reads its long options before any other, with one dash as with two (``-login`` is
# ``--login``, ``-posix -c 'rm x'`` runs rm); other shells read ``-login`` as letters.
BASH_NAMES = frozenset({"bash", "rbash", "bash-static"})
# A script operand that means standard input; the paths that name a descriptor
# (/dev/stdin, /dev/fd/N ...) are ``shell_descriptors``'.
STDIN_SCRIPTS = frozenset({"-"})
# The shell a wrapper starts by itself is $SHELL or the target user's login shell: not
# knowable here, so it is reported as "sh" (a policy that denies shells names sh).
LOGIN_SHELL = "sh"


@dataclass(frozen=True)
class Arg:
    """One argument: its text and whether that text is known without running anything."""

    text: str
    static: bool = True


class UnknownOption(Exception):
    """An option the program does not have, or one missing its value."""


@dataclass(frozen=True)
class OptionSpec:
    """What a program's getopt accepts."""

    flags: str = ""  # short options without a value
    with_value: str = ""  # short options with a value (attached or next argument)
    optional: str = ""  # short options whose value can only be attached
    long_flags: frozenset[str] = frozenset()
    long_with_value: frozenset[str] = frozenset()
    long_optional: frozenset[str] = frozenset()  # value only as --name=value
    stop_after: frozenset[str] = frozenset()  # return right after one of these

    def long_names(self) -> frozenset[str]:
        return self.long_flags | self.long_with_value | self.long_optional


Options = list[tuple[str, str | None]]


def parse_options(
    args: Sequence[str], start: int, spec: OptionSpec, *, one: bool = False
) -> tuple[Options, int]:
    """Read options from ``args[start:]``; return them and the index of the first operand.

    With ``one``, read a single argument's options (and their values) only.
    """
    options: Options = []
    index = start
    while index < len(args) and not (one and index > start):
        arg = args[index]
        if arg == "--":
            return options, index + 1
        if not arg.startswith("-") or arg == "-":
            return options, index
        index += 1
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            name = _long_name(name, spec)
            if name in spec.long_with_value and not has_value:
                if index >= len(args):
                    raise UnknownOption(arg)
                value, index = args[index], index + 1
            elif name in spec.long_flags and has_value:
                raise UnknownOption(arg)
            options.append((name, value if (has_value or name in spec.long_with_value) else None))
            if name in spec.stop_after:
                return options, index
            continue
        position = 1
        while position < len(arg):
            letter = arg[position]
            position += 1
            if letter in spec.flags:
                options.append((letter, None))
                continue
            if letter in spec.with_value:
                value = arg[position:]
                if not value:
                    if index >= len(args):
                        raise UnknownOption(arg)
                    value, index = args[index], index + 1
                options.append((letter, value))
            elif letter in spec.optional:
                options.append((letter, arg[position:] or None))
            else:
                raise UnknownOption(arg)
            if letter in spec.stop_after:
                return options, index
            break
    return options, index


def _long_name(name: str, spec: OptionSpec) -> str:
    names = spec.long_names()
    if name in names:
        return name
    candidates = [known for known in names if known.startswith(name)] if name else []
    if len(candidates) != 1:
        raise UnknownOption("--" + name)
    return candidates[0]


def parse_permuted(args: Sequence[str], start: int, spec: OptionSpec) -> tuple[Options, list[int]]:
    """Read options the way a permuting GNU getopt does: anywhere until ``--``.

    Return the options and the indexes of the operands, in order.
    """
    options: Options = []
    operands: list[int] = []
    index = start
    while index < len(args):
        if args[index] == "--":
            operands.extend(range(index + 1, len(args)))
            break
        if args[index] == "-" or not args[index].startswith("-"):
            operands.append(index)
            index += 1
            continue
        found, index = parse_options(args, index, spec, one=True)
        options.extend(found)
    return options, operands


def _names(options: Options) -> set[str]:
    return {name for name, _value in options}


def _value(options: Options, *names: str) -> str | None:
    found = None
    for name, value in options:
        if name in names:
            found = value
    return found


# -- shells -----------------------------------------------------------------------------


# Shell options (set -o names, and their letters) that change what later lines do:
# keyword: a NAME=value argument anywhere goes into the command's environment
# (git status GIT_DIR=x); histexpand: bash re-reads each line with history text
# substituted for !-designators (git status !!:s/#// brings back a commented-out
# "; rm ..."); physical: cd resolves symlinks, so cd link/.. lands beside the target.
RISKY_SHELL_OPTIONS = {"k": "keyword", "H": "histexpand", "P": "physical"}
# bash's shopt options of the same kind: cdable_vars makes ``cd NAME`` go to $NAME when
# NAME is not a directory, so where a cd lands is unknown.
RISKY_SHOPT_OPTIONS = frozenset({"cdable_vars"})
# Options after which the analysis no longer knows where cd leads.
CD_UNKNOWABLE = frozenset({"physical", "cdable_vars"})
# zsh's options of that kind, as zsh compares names (lower case, no '_'): chase_links
# (-w) and chase_dots resolve symlinks like bash's -P, cdable_vars (-T) is bash's, and
# auto_cd (-J) makes a directory's name a cd.
ZSH_CD_OPTIONS = frozenset({"chaselinks", "chasedots", "cdablevars", "autocd"})
ZSH_CD_LETTERS = "wTJ"


def zsh_cd_option(turned_on: bool, option: str) -> bool:
    """Whether ``-o OPTION`` (``+o`` when not ``turned_on``; ``setopt OPTION``) turns on
    one of ``ZSH_CD_OPTIONS``; ``no`` before a name turns it the other way."""
    plain = option.lower().replace("_", "").replace("-", "")
    if plain.startswith("no") and plain[2:] in ZSH_CD_OPTIONS:
        return not turned_on
    return turned_on and plain in ZSH_CD_OPTIONS


def zsh_cd_unknowable(texts: Sequence[str], turned_on: bool = True) -> bool:
    """``setopt``/``unsetopt``/``set`` arguments (``texts[1:]``) that turn on one of
    ``ZSH_CD_OPTIONS``: by name, by ``-o NAME`` or by letter (``-w``); ``turned_on`` is
    False for ``unsetopt``, which turns its names off."""
    index = 1
    while index < len(texts):
        text = texts[index]
        index += 1
        if text in ("-", "--") or text[:1] not in "-+" or text[1:2] == "-":
            if text not in ("-", "--") and zsh_cd_option(turned_on, text):
                return True
            continue
        on = (text[0] == "-") == turned_on
        for letter in text[1:]:
            if letter == "o":
                value = texts[index] if index < len(texts) else ""
                index += 1
                if zsh_cd_option(on, value):
                    return True
            elif letter in ZSH_CD_LETTERS and on and letter != "T":
                return True  # -w, -J (bash has neither); bash's -T is functrace
    return False


def turned_on_options(texts: Sequence[str], valued: str = "o") -> set[str]:
    """The ``RISKY_SHELL_OPTIONS`` that ``set``-style arguments (``texts[1:]``) turn on,
    by letter (``-k``, in clusters like ``-ek``) or by name (``-o keyword``). Letters in
    ``valued`` take the next argument (``-o NAME``; a shell's ``-O shopt_name`` ...)."""
    found: set[str] = set()
    index = 1
    while index < len(texts):
        text = texts[index]
        index += 1
        if text in ("-", "--") or len(text) < 2 or text[0] not in "-+" or text[1] == "-":
            break
        for letter in text[1:]:
            if letter in valued:
                value = texts[index] if index < len(texts) else ""
                index += 1
                if letter == "o" and text[0] == "-" and value in RISKY_SHELL_OPTIONS.values():
                    found.add(value)
                elif letter == "O" and text[0] == "-" and value in RISKY_SHOPT_OPTIONS:
                    found.add(value)  # bash -O cdable_vars
            elif text[0] == "-" and letter in RISKY_SHELL_OPTIONS:
                found.add(RISKY_SHELL_OPTIONS[letter])
    return found


@dataclass(frozen=True)
class ShellInvocation:
    """How a POSIX shell was asked to run.

    ``script``: ``-c``, its script is ``script``; ``stdin``: it reads commands from
    standard input; ``plain``: it runs a script file (or nothing): the policy decides on
    the shell itself; ``unparsed``: options it cannot read.
    """

    kind: Literal["script", "stdin", "plain", "unparsed"]
    script: Arg | None = None
    dynamic: bool = False  # an argument that decides what runs is not static
    # The RISKY_SHELL_OPTIONS its options turn on (-k, -o keyword, -H, -P ...).
    options: frozenset[str] = frozenset()
    # ``-i``: an interactive shell first runs its startup files (~/.bashrc, $ENV), which
    # the gate cannot see, and reads the script differently (aliases from those files;
    # ``+O interactive_comments`` makes ``#`` an ordinary word).
    interactive: bool = False
    # It first runs startup files the gate cannot see, which the agent may have
    # written: a login shell (``-l``, ``+l`` too in bash and dash, ``--login``, bash's
    # ``-login``: /etc/profile, ~/.profile, ~/.bash_profile, ~/.zprofile ...) or zsh,
    # which reads /etc/zshenv and ~/.zshenv for every script unless its rcs option is
    # off (``-f``, ``+o rcs``).
    startup_files: bool = False
    # ``plain``: the script file it runs, if any (``bash /dev/fd/3`` reads a descriptor).
    operand: Arg | None = None


def parse_shell(name: str, args: Sequence[Arg]) -> ShellInvocation:
    texts = [arg.text for arg in args]
    valued_letters = "oO" + ("RT" if name in KSH_LIKE else "")
    command_mode = stdin_mode = interactive = login = no_profile = zsh_cd = False
    posix_mode = False  # bash --posix, -o posix: its script is read as POSIX sh reads it
    # zsh reads ~/.zshenv unless the rcs option is off (-f, --no-rcs, +o rcs, -o norcs).
    reads_rcs = name in ZSH_NAMES
    short_options = [name]  # the option clusters and their values, read like set's
    index = 1
    long_first = True  # no short option read yet: bash still reads -NAME as --NAME
    while index < len(texts):
        arg = texts[index]
        if arg in ("--", "-"):
            index += 1
            break
        single = long_first and arg[:1] == "-" and arg[1:2] != "-"
        if single and arg[1:] in BASH_LONG_FLAGS | BASH_LONG_WITH_ARGUMENT:
            if name not in BASH_NAMES:
                if name == "sh":  # bash as sh reads a long option, dash letters
                    return ShellInvocation("unparsed")
            elif arg[1:] in BASH_LONG_WITH_ARGUMENT:
                return ShellInvocation("unparsed")  # -rcfile FILE: not followed (--rcfile is)
            else:
                arg = "-" + arg
        if arg.startswith("--"):
            option = arg[2:].partition("=")[0]
            index += 1
            if option == "login":
                login = True
            elif option == "posix":
                posix_mode = True
            elif option == "noprofile":  # a login shell that reads no profile
                no_profile = True
            elif name in ZSH_NAMES and (rcs := _zsh_rcs(True, option.replace("-", ""))) is not None:
                reads_rcs = rcs  # --no-rcs, --rcs: the last one wins
            elif name in ZSH_NAMES and zsh_cd_option(True, option):
                zsh_cd = True  # --chase-links
            takes_value = option in BASH_LONG_WITH_ARGUMENT or (
                name in ZSH_NAMES and option == "emulate"
            )
            if takes_value and "=" not in arg:
                index += 1
            elif option not in BASH_LONG_FLAGS and not (name in ZSH_NAMES and "=" not in arg):
                return ShellInvocation("unparsed")
            continue
        if arg == "+":
            # An empty option group to bash and dash (bash -c + 'script'): skipped.
            index += 1
            long_first = False
            continue
        if len(arg) < 2 or arg[0] not in "-+":
            break
        index += 1
        long_first = False
        short_options.append(arg)
        turned_on = arg[0] == "-"
        for letter in arg[1:]:
            if letter == "c":
                command_mode = True
            elif letter == "s":
                stdin_mode = True
            elif letter == "i" and turned_on:
                interactive = True
            elif letter == "l":  # bash and dash: +l is a login shell too
                login = True
            elif letter in ZSH_CD_LETTERS and turned_on and name in ZSH_NAMES:
                zsh_cd = True  # zsh -w: chase_links ...
            elif letter == "f" and name in ZSH_NAMES:
                reads_rcs = not turned_on  # -f: no rcs; +f turns them back on
            elif letter in valued_letters:
                value = texts[index] if index < len(texts) else ""
                short_options.append(value)
                index += 1
                if letter == "o" and value == "posix":
                    posix_mode = turned_on
                # zsh -o login (+o nologin) is -l; other shells refuse the name.
                if letter == "o" and value.lower().replace("_", "") in ("login", "nologin"):
                    login = login or turned_on == (value.lower().replace("_", "") == "login")
                if letter == "o" and name in ZSH_NAMES and zsh_cd_option(turned_on, value):
                    zsh_cd = True
                rcs = _zsh_rcs(turned_on, value) if letter == "o" else None
                if rcs is not None and name in ZSH_NAMES:
                    reads_rcs = rcs  # the last setting wins: -f -o rcs reads them
            elif not letter.isalnum():
                return ShellInvocation("unparsed")
    if index > len(texts):
        return ShellInvocation("unparsed")
    dynamic = any(not arg.static for arg in args[: min(index + 1, len(args))])
    options = frozenset(turned_on_options(short_options, valued_letters))
    if zsh_cd:
        options |= {"physical"}  # where its cd leads is as unknown as after bash's -P
    if posix_mode:
        options |= {"posix"}
    startup = (login and not no_profile) or reads_rcs
    if login and no_profile:
        # A login shell that reads no profile still runs ~/.bash_logout when it runs the
        # exit builtin: a script read from a file, one the gate cannot see, or one that
        # may name exit or logout (anywhere, or spelt with quotes, escapes or expansions
        # the word only becomes once bash has read it: ex""it, e\xit, $x).
        shown = args[index] if command_mode and index < len(args) else None
        startup = (
            shown is None
            or not shown.static
            or any(word in shown.text for word in ("exit", "logout"))
            or any(char in shown.text for char in "'\"\\$`")
        )
    if command_mode:
        if index >= len(args):
            return ShellInvocation("plain", None, False, options, interactive, startup)
        return ShellInvocation("script", args[index], dynamic, options, interactive, startup)
    if stdin_mode or index >= len(args) or texts[index] in STDIN_SCRIPTS:
        return ShellInvocation("stdin", None, dynamic, options, interactive, startup)
    operand = args[index]
    return ShellInvocation("plain", None, dynamic, options, interactive, startup, operand)


def _zsh_rcs(turned_on: bool, option: str) -> bool | None:
    """Whether ``-o OPTION`` (``+o`` when not ``turned_on``) leaves zsh's rcs option on;
    None when OPTION is another one. zsh ignores case and underscores in option names,
    and ``no`` before one turns it the other way (``-o norcs`` = ``+o rcs``)."""
    plain = option.lower().replace("_", "")
    if plain == "rcs":
        return turned_on
    if plain == "norcs":
        return not turned_on
    return None


# -- wrappers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unwrapped:
    """What a wrapper runs.

    ``inner`` is the command it runs (empty: none); ``script`` a shell script it runs;
    ``also`` further commands it runs (``find -exec``). ``cwd`` is the directory the
    inner command starts in when the wrapper changes it (``UNKNOWN_CWD`` when that
    cannot be known); ``assigned`` the environment variables it sets for it, each with
    its value as written (None: not given).
    ``unknown_arguments``: the inner command also gets arguments not visible here
    (``xargs``, ``find -exec ... {}``). ``dynamic``: an argument that decides what runs
    is not static. ``unparsed``: its options could not be read. ``repeats``: what it
    runs may run any number of times (``xargs``, ``find -exec``, ``watch``).
    ``login``: it starts the command as a login shell (``sudo -i``, ``su -``, ``exec
    -l``: argv[0] begins with ``-``), which first runs startup files. ``writes`` and
    ``reads``: files the wrapper opens itself. ``unsets_path_or_shlvl``: the command
    starts without ``PATH`` or ``SHLVL`` in its environment (``env -i``, ``env -u PATH``,
    ``exec -c``; see ``STARTED_BARE``).
    """

    inner: tuple[Arg, ...] = ()
    script: Arg | None = None
    also: tuple[tuple[Arg, ...], ...] = ()
    cwd: str | None = None
    assigned: tuple[tuple[str, str | None], ...] = ()
    unknown_arguments: bool = False
    dynamic: bool = False
    unparsed: bool = False
    repeats: bool = False
    login: bool = False
    # Files the wrapper itself opens by name (``strace -o FILE``, ``fakeroot -s FILE``):
    # decided as ``file.write``/``file.read`` like a redirection's target.
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    unsets_path_or_shlvl: bool = False


UNPARSED = Unwrapped(unparsed=True)
# A bash started without PATH sets its own default, which ends in "." (a bare name not
# found in /usr/bin ... runs ./NAME), and one started without SHLVL and a socket on its
# standard input runs ~/.bashrc first. Not only for a shell run directly: every program
# passes the environment on to the shells it starts (make's recipes, git's hooks, npm's
# scripts; sh is bash on some images), so whatever starts so is an override. (A program's
# own execvp finds a bare name without ".": glibc's default path has none.)
STARTED_BARE = frozenset({"PATH", "SHLVL"})
HELP_VERSION = frozenset({"help", "version"})
Handler = Callable[[Sequence[Arg]], Unwrapped]


def _fail_closed(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The handlers, each giving ``UNPARSED`` where its parsing raised ``UnknownOption``.

    The one place that failure is caught: a handler reads its options with
    ``parse_options`` and lets an unknown option (or a missing value) propagate, so no
    handler can forget to fail closed.
    """

    def closed(handler: Handler) -> Handler:
        def unwrap(args: Sequence[Arg]) -> Unwrapped:
            try:
                return handler(args)
            except UnknownOption:
                return UNPARSED

        return unwrap

    return {name: closed(handler) for name, handler in handlers.items()}


def _assignment(text: str) -> tuple[str, str | None]:
    """``NAME=value`` put in a command's environment: the name and the value (None
    without ``=``: systemd-run's ``-E NAME`` passes its own NAME on)."""
    name, equals, value = text.partition("=")
    return name, value if equals else None


def _texts(args: Sequence[Arg]) -> list[str]:
    return [arg.text for arg in args]


def _dynamic(args: Sequence[Arg], end: int) -> bool:
    return any(not arg.static for arg in args[:end])


def _simple_wrapper(spec: OptionSpec, operands: int = 0, default: tuple[str, ...] = ()) -> Handler:
    """A wrapper ``name [options] [operands...] command [args...]``.

    Without a command it runs ``default`` (``xargs`` runs ``echo``; ``chroot``,
    ``unshare`` and ``nsenter`` start a shell), unless asked for its help or version.
    """

    def handler(args: Sequence[Arg]) -> Unwrapped:
        options, index = parse_options(_texts(args), 1, spec)
        if index >= len(args) and _names(options) & HELP_VERSION:
            return Unwrapped(dynamic=_dynamic(args, index))
        index += operands
        if index > len(args):
            return UNPARSED
        inner = tuple(args[index:]) or tuple(Arg(text) for text in default)
        return Unwrapped(inner=inner, dynamic=_dynamic(args, index + 1))

    return handler


ENV = OptionSpec(
    flags="i0v",
    with_value="uCS",
    long_flags=HELP_VERSION | {"ignore-environment", "null", "debug", "list-signal-handling"},
    long_with_value=frozenset({"unset", "chdir", "split-string"}),
    long_optional=frozenset({"default-signal", "ignore-signal", "block-signal"}),
    stop_after=frozenset({"S", "split-string"}),
)


def _env(args: Sequence[Arg]) -> Unwrapped:
    rest = list(args[1:])
    cwd: str | None = None
    dynamic = False
    bare = False  # PATH or SHLVL removed: -i, -u PATH, -u SHLVL, or a lone "-"
    while True:
        options, index = parse_options(["env", *_texts(rest)], 1, ENV)
        dynamic = dynamic or _dynamic(rest, index)
        bare = bare or any(
            name in ("i", "ignore-environment")
            or (name in ("u", "unset") and value in STARTED_BARE)
            for name, value in options
        )
        chdir = _value(options, "C", "chdir")
        cwd = chdir if chdir is not None else cwd
        split = _value(options, "S", "split-string") if options else None
        if split is None or options[-1][0] not in ("S", "split-string"):
            break
        words = split_env_string(split)
        if words is None:
            return UNPARSED
        dynamic = dynamic or "$" in split or "\\c" in split
        if not rest[index - 2].static:  # the argument the text came from (-S TEXT, -STEXT)
            words = [Arg(word.text, False) for word in words]
        rest = words + rest[index - 1 :]
    rest = rest[index - 1 :]
    if rest and rest[0].text == "-":  # a lone "-" is -i
        rest = rest[1:]
        bare = True
    assigned: list[tuple[str, str | None]] = []
    while rest and "=" in rest[0].text:
        assigned.append(_assignment(rest[0].text))
        dynamic = dynamic or not rest[0].static
        rest = rest[1:]
    dynamic = dynamic or bool(rest and not rest[0].static)
    return Unwrapped(
        inner=tuple(rest),
        cwd=cwd,
        assigned=tuple(assigned),
        dynamic=dynamic,
        unsets_path_or_shlvl=bare and bool(rest),
    )


# GNU env's -S escapes (coreutils' build_argv): a backslash before one of these stands for
# the character; ``\_`` is a separator outside double quotes and a space inside them;
# ``\c`` ends the text (outside quotes; env refuses it inside double quotes). Any other
# backslash is refused by env (``invalid sequence``), and so here.
ENV_STRING_ESCAPES = {"f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"} | {
    char: char for char in "\"#$'\\"
}
ENV_STRING_SPACES = " \t\n\v\f\r"  # C's isspace, as env splits on it
ENV_STRING_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def split_env_string(text: str, environ: Mapping[str, str] | None = None) -> list[Arg] | None:
    """Split ``env -S`` text as GNU env's ``build_argv`` does; None where env refuses it.

    Outside quotes whitespace and ``\\_`` separate words, ``#`` at the start of a word
    starts a comment, and ``\\c`` ends the text. Inside ``'...'`` only ``\\\\`` and
    ``\\'`` are escapes (any other backslash is itself); outside them the escapes are
    ``ENV_STRING_ESCAPES``, and another one, an unterminated quote, a backslash at the
    end, ``\\c`` inside ``"..."`` make env fail (None). ``''`` or ``""`` alone is an
    empty word.

    ``${NAME}`` (outside single quotes) is replaced by NAME's value, unsplit; an unset
    NAME adds nothing, not even an empty word. Without ``environ`` the value is not
    known: the word it is in is not static (and may vanish: env's words may be fewer).
    Any other ``$`` makes env fail: that ``$`` is kept, in a word that is not static, so
    the caller reports the text as dynamic (nothing runs).
    """
    words: list[list[str]] = []
    unknown: set[int] = set()  # indexes of the words holding a value not known here
    separated = True  # the last character ended a word (or none was read yet)
    single = double = False
    index = 0

    def add(piece: str, known: bool = True) -> None:
        nonlocal separated
        if separated:
            words.append([])
            separated = False
        words[-1].append(piece)
        if not known:
            unknown.add(len(words) - 1)

    while index < len(text):
        char = text[index]
        index += 1
        if char == "'" and not double:
            single = not single
            add("")
        elif char == '"' and not single:
            double = not double
            add("")
        elif char in ENV_STRING_SPACES and not (single or double):
            separated = True
        elif char == "#" and separated:
            break  # a comment, to the end (never inside quotes: a quote starts a word)
        elif char == "\\" and not (single and text[index : index + 1] not in ("\\", "'")):
            if index >= len(text):
                return None  # "invalid backslash at end of string"
            escaped = text[index]
            index += 1
            if escaped == "_" and not double:
                separated = True
            elif escaped == "_":
                add(" ")
            elif escaped == "c":
                if double:
                    return None  # "'\c' must not appear in double-quoted -S string"
                break
            elif escaped in ENV_STRING_ESCAPES:
                add(ENV_STRING_ESCAPES[escaped])
            else:
                return None  # "invalid sequence '\x' in -S"
        elif char == "$" and not single:
            match = ENV_STRING_VARIABLE.match(text, index - 1)
            if match is None:
                add("$", known=False)  # env fails: "only ${VARNAME} expansion is supported"
            elif environ is None:
                add(match.group(), known=False)
                index = match.end()
            else:
                value = environ.get(match.group(1))
                if value is not None:
                    add(value)
                index = match.end()
        else:
            add(char)
    else:  # the end of the text (a comment and \c end it with quotes closed)
        if single or double:
            return None  # "no terminating quote in -S string"
    return [Arg("".join(word), number not in unknown) for number, word in enumerate(words)]


NICE = OptionSpec(
    with_value="n", long_flags=HELP_VERSION, long_with_value=frozenset({"adjustment"})
)


def _nice(args: Sequence[Arg]) -> Unwrapped:
    if len(args) > 1 and re.fullmatch(r"-[-+]?[0-9]+", args[1].text):
        args = [args[0], *args[2:]]  # the old "nice -10 command" form
    return _simple_wrapper(NICE)(args)


SUDO = OptionSpec(
    flags="AbBEeHiKklNnPSsVv",
    with_value="aCcDgpRrTtUu",
    optional="h",
    long_flags=HELP_VERSION
    | {"askpass", "background", "bell", "edit", "set-home", "login", "remove-timestamp"}
    | {"reset-timestamp", "list", "non-interactive", "preserve-groups", "stdin", "shell"}
    | {"validate"},
    long_with_value=frozenset(
        {"auth-type", "close-from", "chdir", "group", "login-class", "prompt", "chroot"}
        | {"role", "type", "command-timeout", "other-user", "user"}
    ),
    long_optional=frozenset({"preserve-env", "host"}),
)
SUDO_NOTHING_RUNS = frozenset(
    {"e", "edit", "l", "list", "v", "validate", "V", "version", "help", "h", "K"}
    | {"remove-timestamp"}
)


def _sudo(args: Sequence[Arg]) -> Unwrapped:
    options, index = parse_options(_texts(args), 1, SUDO)
    names = _names(options)
    if args[0].text.rsplit("/", 1)[-1] == "sudoedit" or names & SUDO_NOTHING_RUNS:
        return Unwrapped(dynamic=_dynamic(args, index))
    assigned: list[tuple[str, str | None]] = []
    while index < len(args) and "=" in args[index].text:
        assigned.append(_assignment(args[index].text))
        index += 1
    cwd = _value(options, "D", "chdir")
    if names & {"R", "chroot", "i", "login"}:
        cwd = UNKNOWN_CWD  # a chroot, or the target user's home
    inner = tuple(args[index:])
    named = bool(inner)
    if names & {"s", "shell", "i", "login"}:
        inner = _sudo_shell(inner)
    unwrapped = Unwrapped(
        inner=inner,
        cwd=cwd,
        assigned=tuple(assigned),
        dynamic=_dynamic(args, index + 1),
        login=bool(names & {"i", "login"}),  # the target user's login shell
    )
    return under_root(unwrapped, _value(options, "R", "chroot"), named)


def _sudo_escape(char: str) -> str:
    return char if (char.isascii() and char.isalnum()) or char in "_-$" else "\\" + char


def _sudo_shell(command: tuple[Arg, ...]) -> tuple[Arg, ...]:
    """``sudo -s``/``-i``: a shell, given the command (if any) as one ``-c`` script.

    sudo backslash-escapes every character of the command but letters, digits, ``_``,
    ``-`` and ``$`` and joins the words with spaces, so the shell sees the same words,
    except that ``$x`` is expanded.
    """
    shell = Arg(LOGIN_SHELL)
    if not command:
        return (shell,)
    script = " ".join("".join(map(_sudo_escape, arg.text)) for arg in command)
    return (shell, Arg("-c"), Arg(script, all(arg.static for arg in command)))


DOAS = OptionSpec(flags="nsL", with_value="uC")


def _doas(args: Sequence[Arg]) -> Unwrapped:
    options, index = parse_options(_texts(args), 1, DOAS)
    names = _names(options)
    if names & {"C", "L"}:  # check a configuration, clear persisted logins: nothing runs
        return Unwrapped(dynamic=_dynamic(args, index))
    if "s" in names:  # the shell; doas refuses a command with -s
        return Unwrapped(inner=(Arg(LOGIN_SHELL),), dynamic=_dynamic(args, index))
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


PKEXEC = OptionSpec(
    long_flags=HELP_VERSION | {"disable-internal-agent", "keep-cwd"},
    long_with_value=frozenset({"user"}),
)


def _pkexec(args: Sequence[Arg]) -> Unwrapped:
    options, index = parse_options(_texts(args), 1, PKEXEC)
    names = _names(options)
    if names & HELP_VERSION:
        return Unwrapped(dynamic=_dynamic(args, index))
    cwd = None if "keep-cwd" in names else UNKNOWN_CWD
    inner = tuple(args[index:]) or (Arg(LOGIN_SHELL),)  # no program: the target's shell
    return Unwrapped(inner=inner, cwd=cwd, dynamic=_dynamic(args, index + 1))


def _with_cwd(handler: Handler, cwd: str) -> Handler:
    """A wrapper whose command starts in another (unknowable) directory or root."""

    def wrapped(args: Sequence[Arg]) -> Unwrapped:
        result = handler(args)
        return result if result.unparsed else replace(result, cwd=cwd)

    return wrapped


def under_root(unwrapped: Unwrapped, root: str | None, named: bool) -> Unwrapped:
    """What a wrapper runs under another root directory (``chroot DIR``, ``unshare -R
    DIR`` ...): its program is a file of DIR's tree, looked up there, not the host's
    program of that name or path. A static absolute program under a static absolute DIR
    is decided as the path under DIR (``/srv/x/usr/bin/git``: in no trusted directory);
    any other (a name looked up in DIR, a DIR or program not known here) is
    ``dynamic-command``, and nothing is decided by its name. ``named``: a program was
    given (without one the user's shell starts, DIR's: ``dynamic-command`` too). The
    root ``/`` is the host's."""
    if root is None or unwrapped.unparsed or not unwrapped.inner:
        return unwrapped
    program = unwrapped.inner[0]
    # "/bin/.." is "/usr" to the kernel on merged-/usr images: ".." leaves DIR unknown.
    root_known = not unwrapped.dynamic and root.startswith("/") and ".." not in root.split("/")
    if root_known and normalise_path(root) == "/":
        return unwrapped
    if not named:
        return replace(unwrapped, inner=(), dynamic=True)  # DIR's own shell, not the host's
    if not (root_known and program.static and program.text.startswith("/")):
        return replace(unwrapped, inner=(), dynamic=True)
    # The program's path normalised first: in DIR, ".." stops at DIR as at "/".
    path = normalise_path(root) + normalise_path(program.text)
    # A shell or a wrapper there looks up the names it runs in DIR too.
    name = path.rsplit("/", 1)[-1]
    looks_up = name in POSIX_SHELLS or name in WRAPPERS
    return replace(
        unwrapped, inner=(Arg(path), *unwrapped.inner[1:]), dynamic=unwrapped.dynamic or looks_up
    )


CHROOT = OptionSpec(
    long_flags=HELP_VERSION | {"skip-chdir"}, long_with_value=frozenset({"userspec", "groups"})
)


def _chroot(args: Sequence[Arg]) -> Unwrapped:
    """``chroot [options] DIR [command]``; no command: ``$SHELL -i``."""
    unwrapped = _simple_wrapper(CHROOT, operands=1, default=(LOGIN_SHELL, "-i"))(args)
    _options, index = parse_options(_texts(args), 1, CHROOT)
    root = args[index].text if index < len(args) else None
    return under_root(unwrapped, root, named=index + 1 < len(args))


def _rooted_wrapper(spec: OptionSpec, roots: tuple[str, str], default: tuple[str, ...]) -> Handler:
    """A wrapper (``unshare``, ``nsenter``) whose option ``roots`` (short, long) runs its
    command under another root; one given without a value is a root not known here."""
    plain = _simple_wrapper(spec, default=default)

    def handler(args: Sequence[Arg]) -> Unwrapped:
        unwrapped = plain(args)
        options, index = parse_options(_texts(args), 1, spec)
        given = [value for name, value in options if name in roots]
        root = None if not given else given[-1] if given[-1] is not None else UNKNOWN_CWD
        return under_root(unwrapped, root, named=index < len(args))

    return handler


def _xargs(args: Sequence[Arg]) -> Unwrapped:
    result = _simple_wrapper(XARGS, default=("echo",))(args)
    # Once per batch of input (-n, -L, the size limit): any number of times.
    return result if result.unparsed else replace(result, unknown_arguments=True, repeats=True)


XARGS = OptionSpec(
    flags="0oprtx",
    with_value="adEILnPs",
    optional="eil",
    long_flags=HELP_VERSION
    | {"null", "interactive", "no-run-if-empty", "verbose", "exit", "open-tty", "show-limits"},
    long_with_value=frozenset(
        {"arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"}
    ),
    long_optional=frozenset({"eof", "replace", "max-lines"}),
)


def _not_for_processes(handler: Handler, spec: OptionSpec, process_options: set[str]) -> Handler:
    """``ionice -p``, ``taskset -p``, ``chrt -p``: act on running processes, run nothing."""

    def wrapped(args: Sequence[Arg]) -> Unwrapped:
        options, _index = parse_options(_texts(args), 1, spec)
        if _names(options) & process_options:
            return Unwrapped(dynamic=_dynamic(args, len(args)))
        return handler(args)

    return wrapped


IONICE = OptionSpec(
    flags="t",
    with_value="cnpPu",
    long_flags=HELP_VERSION | {"ignore"},
    long_with_value=frozenset({"class", "classdata", "pid", "pgid", "uid"}),
)
TASKSET = OptionSpec(flags="apc", long_flags=HELP_VERSION | {"all-tasks", "pid", "cpu-list"})
CHRT = OptionSpec(
    flags="abdfimoRrpv",
    with_value="TPD",
    long_flags=HELP_VERSION
    | {"all-tasks", "batch", "deadline", "fifo", "idle", "other", "rr", "reset-on-fork"}
    | {"max", "pid", "verbose"},
    long_with_value=frozenset({"sched-runtime", "sched-period", "sched-deadline"}),
)


def _chrt(args: Sequence[Arg]) -> Unwrapped:
    _options, index = parse_options(_texts(args), 1, CHRT)
    # The priority as strtol reads it: blanks, a sign (chrt -o +0 rm ...), digits.
    if index < len(args) and re.fullmatch(r"\s*[+-]?[0-9]+", args[index].text):
        index += 1
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


FLOCK = OptionSpec(
    flags="sexunoFhV",
    with_value="wE",
    long_flags=HELP_VERSION
    | {"shared", "exclusive", "unlock", "nonblock", "nb", "close", "no-fork", "verbose"}
    | {"fcntl"},
    long_with_value=frozenset({"timeout", "wait", "conflict-exit-code"}),
)


def _flock(args: Sequence[Arg]) -> Unwrapped:
    _options, index = parse_options(_texts(args), 1, FLOCK)
    index += 1  # the lock file or descriptor
    if index < len(args) and args[index].text in ("-c", "--command"):
        if index + 1 >= len(args):
            return UNPARSED
        return Unwrapped(script=args[index + 1], dynamic=_dynamic(args, index + 1))
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


SU = OptionSpec(
    flags="flmpPhV",
    with_value="cgGsw",
    long_flags=HELP_VERSION | {"fast", "login", "preserve-environment", "pty"},
    long_with_value=frozenset(
        {"command", "session-command", "group", "supp-group", "shell", "whitelist-environment"}
    ),
)
RUNUSER = OptionSpec(
    SU.flags, SU.with_value + "u", long_flags=SU.long_flags, long_with_value=SU.long_with_value
)


def _su(spec: OptionSpec) -> Handler:
    """``su``/``runuser [-] [user [argument...]]``: the user's shell, given the arguments.

    GNU getopt permutes, so options may follow the user name (``--`` ends them). su runs
    the shell (``-s``, or the user's login shell, unknown here: ``LOGIN_SHELL``) as
    ``shell [-c command] [argument...]``: no command and no arguments is an interactive
    shell. ``runuser -u user command`` runs the command itself.
    """

    def handler(args: Sequence[Arg]) -> Unwrapped:
        options, operands = parse_permuted(_texts(args), 1, spec)
        dynamic = _dynamic(args, len(args))
        if _names(options) & (HELP_VERSION | {"h", "V"}):
            return Unwrapped(dynamic=dynamic)
        command = _value(options, "c", "command", "session-command")
        if command is None and "u" in _names(options):
            return Unwrapped(inner=tuple(args[i] for i in operands), dynamic=dynamic)
        login = bool(_names(options) & {"l", "login"})
        if operands and args[operands[0]].text == "-":  # "su - user": a login shell
            operands = operands[1:]
            login = True
        shell = _value(options, "s", "shell")
        inner = [_source(args, shell) if shell else Arg(LOGIN_SHELL)]
        if command is not None:
            inner += [Arg("-c"), _source(args, command)]
        inner += [args[i] for i in operands[1:]]  # after the user: the shell's arguments
        return Unwrapped(inner=tuple(inner), dynamic=dynamic, login=login)

    return handler


def _source(args: Sequence[Arg], value: str) -> Arg:
    """The argument an option value came from (static when it was attached to it)."""
    return next((arg for arg in args if arg.text == value), Arg(value))


WATCH = OptionSpec(
    flags="bcCdegtxprwhv",
    with_value="nq",
    long_flags=HELP_VERSION
    | {"beep", "color", "no-color", "errexit", "chgexit", "no-title", "exec", "precise"}
    | {"no-wrap", "no-rerun"},
    long_with_value=frozenset({"interval", "equexit"}),
    long_optional=frozenset({"differences"}),
)


def _watch(args: Sequence[Arg]) -> Unwrapped:
    options, index = parse_options(_texts(args), 1, WATCH)
    command = args[index:]
    if not command:
        return Unwrapped()
    # It runs the command every interval until stopped.
    if _names(options) & {"x", "exec"}:
        return Unwrapped(inner=tuple(command), dynamic=_dynamic(args, index + 1), repeats=True)
    # Without -x, watch joins its arguments and hands them to sh -c.
    script = Arg(" ".join(arg.text for arg in command), all(arg.static for arg in command))
    return Unwrapped(script=script, dynamic=_dynamic(args, index), repeats=True)


SCRIPT = OptionSpec(
    flags="aefqhV",
    with_value="cEIOBTom",
    optional="t",
    long_flags=HELP_VERSION | {"append", "return", "flush", "force", "quiet"},
    long_with_value=frozenset(
        {"command", "echo", "log-in", "log-out", "log-io", "log-timing", "output-limit"}
        | {"logging-format"}
    ),
    long_optional=frozenset({"timing"}),
)


# script's options that name a file it writes: the logs of output, input, both, and the
# timing (-t only with an attached value: without one the timing goes to stderr).
SCRIPT_LOGS = frozenset({"O", "log-out", "I", "log-in", "B", "log-io", "T", "log-timing"})
SCRIPT_WRITES = SCRIPT_LOGS | {"t", "timing"}
# Without a file operand or one of these, script writes ./typescript.
SCRIPT_NAMED_LOGS = frozenset({"O", "log-out", "I", "log-in", "B", "log-io"})


def _script(args: Sequence[Arg]) -> Unwrapped:
    """``script [options] [file]``: util-linux getopt permutes, so options may follow the
    file. With ``-c`` the shell runs that command; without, ``$SHELL -i`` is started. The
    typescript (the file operand, or ``typescript`` in the working directory unless a
    log option names the output) and the logs are files it writes."""
    options, operands = parse_permuted(_texts(args), 1, SCRIPT)
    dynamic = _dynamic(args, len(args))  # any argument may turn out to be an option
    if _names(options) & (HELP_VERSION | {"h", "V"}):
        return Unwrapped(dynamic=dynamic)
    writes = [value for name, value in options if name in SCRIPT_WRITES and value]
    writes += [args[index].text for index in operands]
    if not operands and not _names(options) & SCRIPT_NAMED_LOGS:
        writes.append("typescript")
    command = _value(options, "c", "command")
    if command is None:
        shell = (Arg(LOGIN_SHELL), Arg("-i"))
        return Unwrapped(inner=shell, dynamic=dynamic, writes=tuple(writes))
    return Unwrapped(script=_source(args, command), dynamic=dynamic, writes=tuple(writes))


def _newgrp(args: Sequence[Arg]) -> Unwrapped:
    """``newgrp [-] [group]``: a new login shell with another group."""
    return Unwrapped(inner=(Arg(LOGIN_SHELL),), dynamic=_dynamic(args, len(args)))


# -- terminal and session programs: what they start, or a shell ---------------------------

TMUX = OptionSpec(flags="2CDdlNqUuvV", with_value="cfLST")
# The tmux commands that start a program in a new pane, as tmux 3.3 reads their options.
TMUX_PANES = {
    "new-session": OptionSpec(flags="AdDEPX", with_value="cefFnstxy"),
    "new-window": OptionSpec(flags="abdkPS", with_value="ceFnt"),
    "split-window": OptionSpec(flags="bdfhIPvZ", with_value="ceFlpt"),
}
TMUX_RUN_SHELL = OptionSpec(flags="bC", with_value="dt")
TMUX_ALIASES = {"new": "new-session", "neww": "new-window", "splitw": "split-window"}
# tmux commands that start nothing (by their full names or aliases only). Any other
# command may run one (send-keys types into a shell, if-shell, pipe-pane, respawn-pane,
# display-popup, set-hook, source-file ...): it is not modelled, so it is unparsed.
TMUX_QUIET = frozenset(
    # (Not detach-client: its -E runs a shell command.)
    {"attach-session", "attach", "has-session", "has"}
    | {"kill-server", "kill-session", "kill-window", "killw", "kill-pane", "killp"}
    | {"list-sessions", "ls", "list-windows", "lsw", "list-panes", "lsp", "list-clients"}
    | {"lsc", "list-buffers", "lsb", "list-keys", "lsk", "list-commands", "lscm"}
    | {"show-buffer", "showb", "capture-pane", "capturep", "display-message", "display"}
    | {"show-options", "show", "show-environment", "showenv", "show-messages", "showmsgs"}
    | {"rename-session", "rename", "rename-window", "renamew", "select-window", "selectw"}
    | {"select-pane", "selectp", "resize-pane", "resizep", "start-server", "start"}
    | {"server-info", "info", "wait-for", "wait"}
)


def _tmux(args: Sequence[Arg]) -> Unwrapped:
    """``tmux [options] [command [flags]]``: no command is ``new-session``, whose pane
    runs the default shell (``LOGIN_SHELL``); ``new-session``/``new-window``/
    ``split-window [options] [command...]`` run one argument with the shell's ``-c`` and
    several directly; ``run-shell`` and ``tmux -c`` run a shell command. A ``#(...)``
    in any format runs a shell command and an argument ending in ``;`` chains another
    tmux command: neither is followed, so both are unparsed; so is ``-f FILE``, a
    configuration whose commands (``run-shell`` ...) the server runs."""
    texts = _texts(args)
    if any("#(" in text or text.endswith(";") for text in texts[1:]):
        return UNPARSED
    options, index = parse_options(texts, 1, TMUX)
    if "V" in _names(options):
        return Unwrapped()
    if "f" in _names(options):  # a configuration file runs whatever commands it holds
        return UNPARSED
    command = _value(options, "c")
    if command is not None:  # as a login shell: run the command with the default shell
        return Unwrapped(script=_source(args, command), dynamic=_dynamic(args, index))
    name = TMUX_ALIASES.get(texts[index], texts[index]) if index < len(args) else "new-session"
    if name in TMUX_QUIET:
        return Unwrapped(dynamic=_dynamic(args, index + 1))
    if name == "run-shell":
        return _tmux_run_shell(args, index + 1)
    if name not in TMUX_PANES:
        return UNPARSED
    found, start = parse_options(texts, min(index + 1, len(args)), TMUX_PANES[name])
    directory = _value(found, "c")
    cwd = None if name == "new-session" else UNKNOWN_CWD  # the client's, or the session's
    if directory is not None:
        cwd = directory if directory.startswith("/") and "#" not in directory else UNKNOWN_CWD
    assigned = tuple(_assignment(value) for letter, value in found if letter == "e" and value)
    pane = Unwrapped(cwd=cwd, assigned=assigned, dynamic=_dynamic(args, start + 1))
    if len(args) - start == 1:  # one argument: "$SHELL -c argument"
        return replace(pane, script=args[start])
    return replace(pane, inner=tuple(args[start:]) or (Arg(LOGIN_SHELL),))


def _tmux_run_shell(args: Sequence[Arg], index: int) -> Unwrapped:
    """``run-shell [-b] [-d delay] [-t pane] [command]``; with ``-C`` a tmux command."""
    options, start = parse_options(_texts(args), index, TMUX_RUN_SHELL)
    if "C" in _names(options):
        return UNPARSED
    if start >= len(args):
        return Unwrapped(dynamic=_dynamic(args, start))
    return Unwrapped(script=args[start], cwd=UNKNOWN_CWD, dynamic=_dynamic(args, start))


SCREEN_QUIET = frozenset({"-ls", "-list", "-wipe", "-v", "--version", "--help"})


def _screen(args: Sequence[Arg]) -> Unwrapped:
    """``screen [command [args]]`` runs the command in a new window; without one, the
    shell (``$SHELL``: ``LOGIN_SHELL``). screen's own option parser (values in the same
    or the next argument, optional session names, ``-X`` sending commands to a running
    session) is not modelled: any option other than a listing is unparsed."""
    if len(args) == 1:
        return Unwrapped(inner=(Arg(LOGIN_SHELL),))
    if args[1].text in SCREEN_QUIET:
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    if args[1].text.startswith("-"):
        return UNPARSED
    return Unwrapped(inner=tuple(args[1:]), dynamic=not args[1].static)


LOGIN = OptionSpec(flags="fHpV", with_value="h", long_flags=HELP_VERSION)


def _login(args: Sequence[Arg]) -> Unwrapped:
    """``login [-p] [-h host] [-f] [user]``: the user's login shell, once authenticated."""
    options, _operands = parse_permuted(_texts(args), 1, LOGIN)
    if _names(options) & (HELP_VERSION | {"V"}):
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    return Unwrapped(inner=(Arg(LOGIN_SHELL),), dynamic=_dynamic(args, len(args)), login=True)


SYSTEMD_RUN = OptionSpec(
    flags="hrtPqGdS",
    with_value="HMEpu",
    long_flags=HELP_VERSION
    | {"no-ask-password", "user", "system", "scope", "slice-inherit", "no-block", "wait"}
    | {"remain-after-exit", "send-sighup", "same-dir", "pty", "pipe", "quiet", "collect"}
    | {"shell", "on-timezone-change", "on-clock-change"},
    long_with_value=frozenset(
        {"host", "machine", "unit", "property", "description", "slice", "service-type"}
        | {"uid", "gid", "nice", "working-directory", "setenv", "path-property"}
        | {"socket-property", "timer-property", "on-active", "on-boot", "on-startup"}
        | {"on-unit-active", "on-unit-inactive", "on-calendar"}
    ),
)
RUN0 = OptionSpec(
    flags="hV",
    with_value="ugD",
    long_flags=HELP_VERSION | {"no-ask-password", "slice-inherit"},
    long_with_value=frozenset(
        {"machine", "unit", "property", "description", "slice", "user", "group", "nice"}
        | {"chdir", "setenv", "background"}
    ),
)
UNIT_PROPERTIES = frozenset({"p", "property", "path-property", "socket-property"}) | {
    "timer-property"
}
# Options that start the command from a timer: ``--on-calendar``, ``--on-unit-active``
# and the clock events run it again and again (any of them: as often as it fires). A
# path or socket unit (``--path-property``, ``--socket-property``) starts it whenever the
# path changes or a connection comes.
TIMER_OPTIONS = frozenset(
    {"on-active", "on-boot", "on-startup", "on-unit-active", "on-unit-inactive"}
    | {"on-calendar", "on-timezone-change", "on-clock-change", "timer-property"}
    | {"path-property", "socket-property"}
)


def _restarts(name: str, value: str | None) -> bool:
    """``-p Restart=always`` (any value but ``no``): systemd starts the command again
    each time it exits, as often as that happens."""
    if name not in ("p", "property") or value is None:
        return False
    field, _equals, setting = value.partition("=")
    return field.strip() == "Restart" and setting.strip() not in ("no", "")


# Unit properties that run a program, set or unset its environment, or give it another
# file tree (a root, an image, paths bound over others): what runs is not modelled.
UNMODELLED_PROPERTIES = (
    "Exec", "Environment", "UnsetEnvironment", "PassEnvironment", "Root", "Bind",
    "TemporaryFileSystem", "MountImages", "ExtensionImages", "ExtensionDirectories",
    "StandardInput", "StandardOutput", "StandardError",  # file:PATH, append:, truncate:
)  # fmt: skip


def _systemd_run(spec: OptionSpec) -> Handler:
    """``systemd-run``/``run0 [options] [command [args]]``: the command in a transient
    unit (a service starts in ``/`` or a home directory, unless ``--scope``,
    ``--same-dir`` or a working directory says otherwise). ``--shell`` (and run0 without
    a command) starts ``$SHELL``. A unit property that runs a program (``ExecStartPre=``
    ...) or sets its environment is not modelled: unparsed. With a timer option the
    command runs each time the timer fires: ``repeats``."""

    def handler(args: Sequence[Arg]) -> Unwrapped:
        options, index = parse_options(_texts(args), 1, spec)
        names = _names(options)
        if names & (HELP_VERSION | {"h", "V"}):
            return Unwrapped(dynamic=_dynamic(args, index))
        if any(
            name in UNIT_PROPERTIES and (value or "").startswith(UNMODELLED_PROPERTIES)
            for name, value in options
        ):
            return UNPARSED
        run0 = spec is RUN0
        command = tuple(args[index:])
        if not command and (run0 or names & {"S", "shell"}):
            command = (Arg(LOGIN_SHELL),)
        directory = _value(options, "D", "chdir", "working-directory")
        cwd = None if names & {"d", "same-dir", "scope"} else UNKNOWN_CWD
        if directory is not None:
            cwd = directory if directory.startswith("/") else UNKNOWN_CWD
        assigned = tuple(
            _assignment(value or "") for name, value in options if name in ("E", "setenv")
        )
        # systemd >= 254 expands $VAR in a service's command line: the word is a value.
        dynamic = _dynamic(args, index + 1) or any("$" in arg.text for arg in command)
        repeats = bool(names & TIMER_OPTIONS) or any(
            _restarts(name, value) for name, value in options
        )
        return Unwrapped(
            inner=command, cwd=cwd, assigned=assigned, dynamic=dynamic, repeats=repeats
        )

    return handler


FIREJAIL_QUIET = frozenset(
    {"help", "version", "list", "tree", "top", "netstats", "debug-caps", "debug-errnos"}
    | {"debug-protocols", "debug-syscalls", "debug-syscalls32"}
)


# firejail options that put other files where programs are looked up (--bind over
# /usr/bin, an overlay, a private /bin), write a file (--output), or read more options
# from one (--profile, --include): what runs, or what it writes, is not modelled.
FIREJAIL_UNMODELLED = frozenset(
    {"bind", "output", "output-stderr", "profile", "include", "private-bin", "tmpfs"}
    | {"overlay", "overlay-named", "overlay-tmpfs", "private-opt", "private-lib"}
)


def _firejail(args: Sequence[Arg]) -> Unwrapped:
    """``firejail [--option[=value]...] [program [args]]``: every option is one argument;
    without a program it starts a shell (``--shell=`` or ``$SHELL``). Short options
    (``-c`` ...) are not modelled: unparsed. The sandbox may start elsewhere than here
    (``--private``, ``--chroot`` ...)."""
    index = 1
    options: list[tuple[str, str]] = []
    while index < len(args) and args[index].text.startswith("-"):
        text = args[index].text
        index += 1
        if text == "--":
            break
        if not text.startswith("--"):
            return UNPARSED
        name, _equals, value = text[2:].partition("=")
        options.append((name, value))
    names = {name for name, _value in options}
    dynamic = _dynamic(args, index + 1)
    if names & FIREJAIL_QUIET:
        return Unwrapped(dynamic=dynamic)
    if names & FIREJAIL_UNMODELLED:
        return UNPARSED
    shell = next((value for name, value in reversed(options) if name == "shell"), "none")
    inner = tuple(args[index:]) or (Arg(shell) if shell != "none" else Arg(LOGIN_SHELL),)
    assigned = tuple(_assignment(value) for name, value in options if name == "env")
    cwd = UNKNOWN_CWD if options else None
    bare = any(name == "rmenv" and value in STARTED_BARE for name, value in options)
    unwrapped = Unwrapped(
        inner=inner, cwd=cwd, assigned=assigned, dynamic=dynamic, unsets_path_or_shlvl=bare
    )
    roots = [value or UNKNOWN_CWD for name, value in options if name == "chroot"]
    return under_root(unwrapped, roots[-1] if roots else None, named=index < len(args))


def _sg(args: Sequence[Arg]) -> Unwrapped:
    """``sg [-] [group [-c] command]``: the command is one string run by /bin/sh."""
    index = 1
    if index < len(args) and args[index].text == "-":
        index += 1
    index += 1  # the group
    if index < len(args) and args[index].text == "-c":
        index += 1
    if index >= len(args):
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    return Unwrapped(script=args[index], dynamic=_dynamic(args, index))


def _busybox(args: Sequence[Arg]) -> Unwrapped:
    """``busybox APPLET [args]`` and ``toybox APPLET [args]``, multi-call programs: the
    applet runs (``busybox sh``, ``toybox sh`` are shells); options list or install."""
    if len(args) < 2 or args[1].text.startswith("-"):
        return Unwrapped(dynamic=_dynamic(args, len(args)))  # --list, --install, --help
    # The applet is named by the last component of its path (busybox /any/path/rm runs
    # rm, the path need not exist), as when busybox is run through a link so named.
    applet = Arg(args[1].text.rpartition("/")[2], args[1].static)
    return Unwrapped(inner=(applet, *args[2:]), dynamic=not args[1].static)


FIND_ACTIONS = {"-exec": (";", "+"), "-execdir": (";", "+"), "-ok": (";",), "-okdir": (";",)}
# GNU find's actions that write a file they name, and how many arguments they take: find
# opens (truncates) it as it reads its arguments, even when nothing matches.
FIND_WRITES = {"-fprint": 1, "-fprint0": 1, "-fls": 1, "-fprintf": 2}
# GNU find's tests and options that take an operand: it is a word of its own, whatever it
# holds (find . -name -exec -o -exec rm x ';' runs rm, -name's pattern being "-exec").
FIND_OPERANDS = frozenset(
    {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex"}
    | {"-lname", "-ilname", "-newer", "-anewer", "-cnewer", "-perm", "-type", "-xtype"}
    | {"-user", "-group", "-uid", "-gid", "-size", "-links", "-inum", "-samefile", "-used"}
    | {"-amin", "-atime", "-cmin", "-ctime", "-mmin", "-mtime", "-fstype", "-context"}
    | {"-printf", "-maxdepth", "-mindepth", "-regextype", "-files0-from"}
)
FIND_NEWER_XY = re.compile(r"-newer[aBcmt][aBcmt]")


def _find(args: Sequence[Arg]) -> Unwrapped:
    """``find ... -exec command ... ;``: find itself runs; so does every -exec command.

    An argument that is not static is ``dynamic``, wherever it is: its value may be
    (or split into) ``-exec CMD ;`` (``find . $x``; a glob ``-e*`` matching a file
    named ``-exec``), and a starting point that is one (``find "$dir"``) is read as
    an expression when it starts with ``-`` (``-delete``). The files ``-fprint FILE``,
    ``-fprint0``, ``-fls`` and ``-fprintf FILE FORMAT`` write are ``writes``."""
    commands: list[tuple[Arg, ...]] = []
    writes: list[str] = []
    unknown = False
    index = 1
    while index < len(args):
        text = args[index].text
        if text in FIND_OPERANDS or FIND_NEWER_XY.fullmatch(text):
            index += 2  # the test and its operand
            continue
        ends = FIND_ACTIONS.get(text)
        count = FIND_WRITES.get(text)
        index += 1
        if count is not None and index < len(args):
            writes.append(args[index].text)
            index += count
        if ends is None:
            continue
        start = index
        # "+" ends -exec only right after "{}"; anywhere else it is an argument.
        while index < len(args) and not (
            args[index].text == ";"
            or (args[index].text == "+" and "+" in ends and args[index - 1].text == "{}")
        ):
            index += 1
        if index >= len(args) or index == start:
            return UNPARSED
        command = tuple(args[start:index])
        unknown = unknown or any("{}" in arg.text for arg in command)
        commands.append(command)
        index += 1
    # Once per file found (``+``: per batch of files): any number of times.
    return Unwrapped(
        also=tuple(commands),
        unknown_arguments=unknown,
        dynamic=_dynamic(args, len(args)),
        repeats=bool(commands),
        writes=tuple(writes),
    )


# -- tracers, sandboxes and preloaders ------------------------------------------------------

# As strace's getopt_long table has them: an option with an optional value takes it only
# after '=' (--tips, --quiet), so the next argument is the command.
STRACE = OptionSpec(
    flags="AcCdDfFhiknqrtTvVwxyYzZ",
    with_value="abeEIoOpPsSuUX",
    long_flags=HELP_VERSION
    | {"summary-only", "summary", "summary-wall-clock", "debug"}
    | {"follow-forks", "output-separately", "instruction-pointer"}
    | {"syscall-number", "no-abbrev", "seccomp-bpf"}
    | {"successful-only", "failed-only", "kill-on-exit", "output-append-mode"},
    long_with_value=frozenset(
        {"columns", "detach-on", "expr", "trace", "trace-fds", "signal", "status", "abbrev"}
        | {"verbose", "raw", "read", "write", "fault", "inject", "kvm", "env", "output"}
        | {"summary-sort-by", "summary-columns", "string-limit", "trace-path", "attach"}
        | {"user", "const-print-style", "decode-pids"}
    ),
    long_optional=frozenset(
        {"daemonize", "stack-trace", "relative-timestamps", "syscall-times", "decode-fds"}
        | {"quiet", "absolute-timestamps", "timestamps", "strings-in-hex", "tips"}
    ),
)
LTRACE = OptionSpec(
    flags="bcCfhiLrStTV",
    with_value="aAD" + "eFln" + "opsuwx",
    long_flags=HELP_VERSION | {"demangle", "no-signals"},
    long_with_value=frozenset({"align", "config", "indent", "library", "output"}),
)


def _tracer(spec: OptionSpec) -> Handler:
    """``strace``/``ltrace [options] [command [args]]``: they run the command under the
    tracer; ``-o FILE`` (``--output``) is a file they write (``-o '|cmd'`` or ``'!cmd'``
    pipes the trace to a shell command, and ``-ff`` writes ``FILE.PID``: unparsed);
    ``-p PID`` attaches to a running process. ``-E VAR=x`` sets the command's
    environment, ``-u USER`` runs it as that user."""

    def handler(args: Sequence[Arg]) -> Unwrapped:
        options, index = parse_options(_texts(args), 1, spec)
        names = [name for name, _value in options]
        if names.count("f") > 1 or "output-separately" in names:
            return UNPARSED
        output = _value(options, "o", "output")
        writes: tuple[str, ...] = ()
        if output is not None:
            if output.startswith(("|", "!")):
                return UNPARSED
            writes = (output,)
        assigned = tuple(
            _assignment(value or "")
            for name, value in options
            if name in ("E", "env") and spec is STRACE and "=" in (value or "")
        )
        return Unwrapped(
            inner=tuple(args[index:]),
            assigned=assigned,
            dynamic=_dynamic(args, index + 1),
            writes=writes,
        )

    return handler


SETPRIV = OptionSpec(
    flags="dhV",
    long_flags=HELP_VERSION
    | {"dump", "clear-groups", "keep-groups", "init-groups", "nnp", "no-new-privs"}
    | {"reset-env"},
    long_with_value=frozenset(
        {"groups", "inh-caps", "ambient-caps", "bounding-set", "ruid", "euid", "rgid", "egid"}
        | {"reuid", "regid", "securebits", "pdeathsig", "selinux-label", "apparmor-profile"}
        | {"landlock-access", "landlock-rule", "ptracer"}
    ),
)


def _setpriv(args: Sequence[Arg]) -> Unwrapped:
    """``setpriv [options] program [args]``; ``--dump`` shows the state and runs nothing."""
    options, index = parse_options(_texts(args), 1, SETPRIV)
    if _names(options) & (HELP_VERSION | {"h", "V", "d", "dump"}):
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    if index >= len(args):
        return UNPARSED  # setpriv needs a program
    return Unwrapped(
        inner=tuple(args[index:]),
        dynamic=_dynamic(args, index + 1),
        # --reset-env keeps a few variables, SHLVL not among them: see STARTED_BARE.
        unsets_path_or_shlvl="reset-env" in _names(options),
    )


def _plain(args: Sequence[Arg]) -> Unwrapped:
    """``catchsegv``/``eatmydata program [args]``: no options of their own; an argument
    starting with ``-`` would be taken as the program, which this does not follow."""
    if len(args) > 1 and args[1].text.startswith("-"):
        return UNPARSED
    return Unwrapped(inner=tuple(args[1:]), dynamic=_dynamic(args, 2))


FAKETIME_FLAGS = frozenset({"-m", "-f", "--exclude-monotonic"})
FAKETIME_VALUED = frozenset({"-p", "--date-prog"})


def _faketime(args: Sequence[Arg]) -> Unwrapped:
    """``faketime [-m] [-f] [-p PID] [--date-prog PROG] TIMESTAMP program [args]``, each
    option a whole argument (its own parser). Without ``-f`` it first runs ``date -d
    TIMESTAMP +%s`` (or ``--date-prog``'s program) to read the timestamp."""
    texts = _texts(args)
    index = 1
    date = Arg("date")
    direct = False
    while index < len(args) and texts[index].startswith("-"):
        text = texts[index]
        if text in ("-v", "--version", "-h", "-?", "--help"):
            return Unwrapped(dynamic=_dynamic(args, index + 1))
        if text in FAKETIME_VALUED:
            if index + 1 >= len(args):
                return UNPARSED
            if text == "--date-prog":
                date = args[index + 1]
            index += 2
            continue
        if text not in FAKETIME_FLAGS:
            return UNPARSED  # an option of another version: the timestamp is unknown
        direct = direct or text == "-f"
        index += 1
    if index + 1 >= len(args):
        return Unwrapped(dynamic=_dynamic(args, len(args)))  # usage: nothing runs
    also = () if direct else ((date, Arg("-d"), args[index], Arg("+%s")),)
    return Unwrapped(inner=tuple(args[index + 1 :]), also=also, dynamic=_dynamic(args, index + 2))


TORSOCKS_VALUED = frozenset({"-u", "-p", "-a", "-P"})
TORSOCKS_FLAGS = frozenset({"-i", "-d", "-q", "--quiet"})


def _torsocks(args: Sequence[Arg]) -> Unwrapped:
    """``torsocks [-u user] [-p pass] [-a addr] [-P port] [-i] [-d] [-q] command``;
    ``--shell`` starts ``$SHELL``; ``on``/``off``/``show`` change or show a shell that
    sourced it (run as a program: nothing)."""
    texts = _texts(args)
    index = 1
    while index < len(args) and texts[index].startswith("-"):
        text = texts[index]
        if text in ("-h", "--help", "--version"):
            return Unwrapped(dynamic=_dynamic(args, index + 1))
        if text == "--shell":
            return Unwrapped(inner=(Arg(LOGIN_SHELL),), dynamic=_dynamic(args, index + 1))
        if text in TORSOCKS_VALUED:
            index += 2
        elif text in TORSOCKS_FLAGS:
            index += 1
        else:
            return UNPARSED
    if index > len(args):
        return UNPARSED
    if index < len(args) and texts[index] in ("on", "off", "show", "sh"):
        return Unwrapped(dynamic=_dynamic(args, index + 1))
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


def _proxychains(args: Sequence[Arg]) -> Unwrapped:
    """``proxychains4 [-q] [-f config] program [args]``: proxychains-ng reads at most two
    options (by their second letter: ``-q``, ``-f FILE``), then the program."""
    texts = _texts(args)
    index = 1
    for _round in range(2):
        if index >= len(args) or not texts[index].startswith("-"):
            break
        letter = texts[index][1:2]
        if letter == "q":
            index += 1
        elif letter == "f":
            if index + 1 >= len(args):
                return UNPARSED
            index += 2
        else:
            break
    if index < len(args) and texts[index].startswith("-"):
        return UNPARSED
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


def _unbuffer(args: Sequence[Arg]) -> Unwrapped:
    """``unbuffer [-p] program [args]``: its only option is ``-p`` (read stdin)."""
    index = 2 if len(args) > 1 and args[1].text == "-p" else 1
    if index < len(args) and args[index].text.startswith("-"):
        return UNPARSED
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


PRLIMIT_RESOURCES = "cdefilmnqrstuvxy"
PRLIMIT = OptionSpec(
    flags="hV",
    with_value="op",
    optional=PRLIMIT_RESOURCES,
    long_flags=HELP_VERSION | {"noheadings", "raw", "verbose"},
    long_with_value=frozenset({"output", "pid"}),
    long_optional=frozenset(
        {"core", "data", "nice", "fsize", "sigpending", "memlock", "rss", "nofile"}
        | {"msgqueue", "rtprio", "stack", "cpu", "nproc", "as", "locks", "rttime"}
    ),
)


CPULIMIT = OptionSpec(
    flags="vzih",
    with_value="pel",
    long_flags=frozenset({"verbose", "lazy", "include-children", "help"}),
    long_with_value=frozenset({"pid", "exe", "limit"}),
)


def _cpulimit(args: Sequence[Arg]) -> Unwrapped:
    """``cpulimit -l N [options] (-p PID | -e EXE | [--] command [args])``: with ``-p`` or
    ``-e`` it limits a running process and runs nothing."""
    options, index = parse_options(_texts(args), 1, CPULIMIT)
    if _names(options) & {"p", "pid", "e", "exe", "h", "help"}:
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


FAKEROOT = OptionSpec(
    flags="uvh",
    with_value="lsib",
    long_flags=HELP_VERSION | {"unknown-is-real"},
    long_with_value=frozenset({"lib", "faked", "fd-base"}),
)


def _fakeroot(args: Sequence[Arg]) -> Unwrapped:
    """``fakeroot [-s save-file] [-i load-file] [-u] [-b fd] [--] [command]``: no command
    starts ``$SHELL``. ``-s`` writes its state to a file, ``-i`` reads one; another
    preload library (``-l``) or ``faked`` program is not followed: unparsed."""
    options, index = parse_options(_texts(args), 1, FAKEROOT)
    names = _names(options)
    if names & {"l", "lib", "faked"}:
        return UNPARSED
    if names & (HELP_VERSION | {"v", "h"}):
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    save, load = _value(options, "s"), _value(options, "i")
    return Unwrapped(
        inner=tuple(args[index:]) or (Arg(LOGIN_SHELL),),
        dynamic=_dynamic(args, index + 1),
        writes=(save,) if save is not None else (),
        reads=(load,) if load is not None else (),
    )


CHPST = OptionSpec(flags="vP012V", with_value="uUbemdofpcrtnlL/C")


def _chpst(args: Sequence[Arg]) -> Unwrapped:
    """runit's ``chpst [options] program [args]``. ``-e DIR`` sets variables from the
    files of DIR (any variable: unparsed); ``-/ ROOT`` chroots, ``-C DIR`` changes
    directory; ``-b NAME`` is argv[0] (a ``-`` first makes a shell a login shell)."""
    options, index = parse_options(_texts(args), 1, CHPST)
    names = _names(options)
    if "e" in names:
        return UNPARSED
    if "V" in names:
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    if index >= len(args):
        return UNPARSED
    cwd = UNKNOWN_CWD if "/" in names else None
    directory = _value(options, "C")
    if directory is not None:
        cwd = directory if directory.startswith("/") and cwd is None else UNKNOWN_CWD
    name = _value(options, "b")
    unwrapped = Unwrapped(
        inner=tuple(args[index:]),
        cwd=cwd,
        dynamic=_dynamic(args, index + 1) or renamed(name, args[index:]),
        login=name is not None and name.startswith("-"),
    )
    return under_root(unwrapped, _value(options, "/"), named=True)


CAPSH_FLAGS = frozenset(
    {"--print", "--current", "--noamb", "--has-ambient", "--license", "--strict"}
    | {"--quiet", "--noenv", "--no-new-privs", "--modes", "--help", "--explain"}
)
CAPSH_VALUED = frozenset(
    {"caps", "drop", "inh", "user", "uid", "gid", "groups", "chroot", "secbits", "keep"}
    | {"addamb", "delamb", "iab", "mode", "forkfor", "killit", "decode", "supports"}
    | {"has-p", "has-i", "has-a", "has-b", "is-uid", "is-gid", "explain", "shell"}
)


def _capsh(args: Sequence[Arg]) -> Unwrapped:
    """``capsh [--option[=value]...] [-- args | == args]``: each option is one argument,
    taken in order; ``--`` runs ``/bin/bash`` (or ``--shell=``'s) with the arguments
    after it (``-- -c 'script'``), ``==`` runs capsh again with them."""
    shell = "/bin/bash"
    cwd: str | None = None
    root: str | None = None
    for index in range(1, len(args)):
        text = args[index].text
        dynamic = _dynamic(args, index + 1)
        if text in ("--", "=="):
            program = Arg(shell) if text == "--" else Arg("capsh")
            unwrapped = Unwrapped(inner=(program, *args[index + 1 :]), cwd=cwd, dynamic=dynamic)
            return under_root(unwrapped, root, named=True)
        name, equals, value = text.partition("=")
        if text in CAPSH_FLAGS:
            continue
        if not (equals and name.startswith("--") and name[2:] in CAPSH_VALUED):
            return UNPARSED
        if name == "--shell":
            shell = value
        elif name == "--chroot":
            cwd, root = UNKNOWN_CWD, value
    return Unwrapped(dynamic=_dynamic(args, len(args)))  # nothing after -- : nothing runs


# bubblewrap's options, by how many values follow each (one argument each, exact names).
BWRAP_VALUES = {
    0: {"--unshare-all", "--share-net", "--unshare-user", "--unshare-user-try"}
    | {"--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"}
    | {"--unshare-cgroup", "--unshare-cgroup-try", "--clearenv", "--new-session"}
    | {"--die-with-parent", "--as-pid-1", "--disable-userns", "--assert-userns-disabled"}
    | {"--level-prefix"},
    1: {"--argv0", "--userns", "--userns2", "--pidns", "--uid", "--gid", "--hostname"}
    | {"--chdir", "--unsetenv", "--lock-file", "--sync-fd", "--remount-ro", "--proc"}
    | {"--dev", "--tmpfs", "--mqueue", "--dir", "--seccomp", "--add-seccomp-fd"}
    | {"--block-fd", "--userns-block-fd", "--info-fd", "--json-status-fd", "--cap-add"}
    | {"--cap-drop", "--perms", "--size", "--exec-label", "--file-label", "--overlay-src"}
    | {"--tmp-overlay", "--ro-overlay"},
    2: {"--setenv", "--bind", "--bind-try", "--dev-bind", "--dev-bind-try", "--ro-bind"}
    | {"--ro-bind-try", "--bind-fd", "--ro-bind-fd", "--file", "--bind-data"}
    | {"--ro-bind-data", "--symlink", "--chmod"},
    3: {"--overlay"},
}


def _bwrap(args: Sequence[Arg]) -> Unwrapped:
    """``bwrap [options] [--] command [args]``: each option is a whole argument followed by
    its 0 to 3 values. The command starts in ``--chdir``'s directory, else in this
    one if the sandbox has it (unknown). ``--args FD`` reads more options from a
    descriptor: unparsed."""
    texts = _texts(args)
    index = 1
    cwd = UNKNOWN_CWD
    assigned: list[tuple[str, str | None]] = []
    argv0: str | None = None
    bare = False  # see STARTED_BARE
    while index < len(args) and texts[index].startswith("-"):
        text = texts[index]
        index += 1
        if text == "--":
            break
        if text in ("--help", "--version"):
            return Unwrapped(dynamic=_dynamic(args, index))
        count = next((n for n, names in BWRAP_VALUES.items() if text in names), None)
        if count is None or index + count > len(args):
            return UNPARSED
        if text == "--chdir":
            directory = texts[index]
            cwd = directory if directory.startswith("/") else UNKNOWN_CWD
        elif text == "--setenv":
            assigned.append((texts[index], texts[index + 1]))
        elif text == "--clearenv" or (text == "--unsetenv" and texts[index] in STARTED_BARE):
            bare = True
        elif text == "--argv0":
            if texts[index].startswith("-"):
                return UNPARSED  # a login shell by another name: not modelled
            argv0 = texts[index]
        index += count
    if index >= len(args):
        return UNPARSED  # bwrap needs a command
    return Unwrapped(
        inner=tuple(args[index:]),
        cwd=cwd,
        assigned=tuple(assigned),
        dynamic=_dynamic(args, index + 1) or renamed(argv0, args[index:]),
        unsets_path_or_shlvl=bare,
    )


# numactl 2.0's options (getopt_long, "+": they end at the first operand). The shared
# memory ones (--shm, --file ... which create and size a file) run no command and are not
# modelled: unparsed.
NUMACTL = OptionSpec(
    flags="ablsHv",
    with_value="iwpPcNCm",
    long_flags=frozenset({"all", "balancing", "localalloc", "show", "hardware", "version"}),
    long_with_value=frozenset(
        {"interleave", "weighted-interleave", "preferred", "preferred-many", "cpubind"}
        | {"cpunodebind", "physcpubind", "membind"}
    ),
)


def _numactl(args: Sequence[Arg]) -> Unwrapped:
    """``numactl [policy options] [--] command [args]``; ``--show``, ``--hardware`` and
    ``--version`` print and run nothing."""
    options, index = parse_options(_texts(args), 1, NUMACTL)
    if _names(options) & {"s", "show", "H", "hardware", "v", "version"}:
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    if index >= len(args):
        return UNPARSED  # numactl needs a command
    return Unwrapped(inner=tuple(args[index:]), dynamic=_dynamic(args, index + 1))


# iproute2's global options, in the order ip.c tries them: an option is matched by any
# prefix of its name (``-n`` is ``-netns``), ``--name`` as ``-name``. The value says what
# follows: 0 nothing, 1 one value; "batch" reads commands from a file (unparsed), "exit"
# prints and runs nothing, "exact" must be written in full.
IP_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("-loops", 1),
    ("-family", 1),
    ("-4", "exact"),
    ("-6", "exact"),
    ("-0", "exact"),
    ("-M", "exact"),
    ("-B", "exact"),
    ("-human", 0),
    ("-human-readable", 0),
    ("-iec", 0),
    ("-stats", 0),
    ("-statistics", 0),
    ("-details", 0),
    ("-resolve", 0),
    ("-oneline", 0),
    ("-timestamp", 0),
    ("-tshort", 0),
    ("-Version", "exit"),
    ("-force", 0),
    ("-batch", "batch"),
    ("-brief", 0),
    ("-json", 0),
    ("-pretty", 0),
    ("-rcvbuf", 1),
    ("-color", 0),
    ("-help", "exit"),
    ("-netns", 1),
    ("-Numeric", 0),
    ("-all", 0),
    ("-echo", "exact"),
)


def _ip_option(text: str) -> tuple[str, int | str]:
    """The option ``text`` names; an abbreviation two options of different kinds share
    (``-r``: ``-resolve`` or ``-rcvbuf``) raises ``UnknownOption`` rather than trusting
    one version's order."""
    option = text[1:] if text.startswith("--") else text
    if option.startswith("-color=") or option.startswith("-c="):
        option = option.partition("=")[0]  # -color=always
    found = [
        (name, kind)
        for name, kind in IP_OPTIONS
        if (option == name if kind == "exact" else len(option) > 1 and name.startswith(option))
    ]
    if not found or len({kind for _name, kind in found}) != 1:
        raise UnknownOption(text)
    return found[0]


def _ip(args: Sequence[Arg]) -> Unwrapped:
    """iproute2's ``ip [options] netns exec NAME command [args]`` (``ip -all netns exec
    command`` runs it once in every namespace) and ``ip vrf exec NAME command [args]``;
    every other ``ip`` command runs nothing. Objects and subcommands are matched by
    prefix as ip does, and any prefix of ``netns``, ``vrf`` or ``exec`` is taken for
    them (``ip n`` is ``neigh``, which then fails: reporting the command is safe)."""
    texts = _texts(args)
    index = 1
    every_namespace = False
    while index < len(args) and texts[index].startswith("-"):
        text = texts[index]
        index += 1
        if text == "--":
            break
        name, kind = _ip_option(text)
        if kind == "batch":
            return UNPARSED  # the commands come from a file
        if kind == "exit":
            return Unwrapped(dynamic=_dynamic(args, index))
        if kind == 1:
            if index >= len(args):
                return UNPARSED
            index += 1
        every_namespace = every_namespace or name == "-all"
    if index + 1 >= len(args):
        return Unwrapped(dynamic=_dynamic(args, len(args)))
    obj, command = texts[index], texts[index + 1]
    netns = obj != "" and "netns".startswith(obj)
    vrf = obj != "" and "vrf".startswith(obj)
    if not (netns or vrf) or not (command and "exec".startswith(command)):
        return Unwrapped(dynamic=_dynamic(args, index + 2))
    start = index + 2 if netns and every_namespace else index + 3  # after NAME
    if start >= len(args) or texts[start].startswith("-"):
        return UNPARSED  # no command, or one this does not follow
    return Unwrapped(
        inner=tuple(args[start:]),
        dynamic=_dynamic(args, start + 1),
        repeats=netns and every_namespace,
    )


# valgrind's own options: each is -q, -v, -d, -h, a flag below, or --name=value (one
# argument). Only the names below are known; another (a tool's option not listed here,
# --log-socket, --db-command, --vgdb-prefix ...) is unparsed.
VALGRIND_FLAGS = frozenset({"-q", "-v", "-d", "--quiet", "--verbose"})
VALGRIND_QUIET = frozenset({"-h", "--help", "--help-debug", "--help-dyn-options", "--version"})
VALGRIND_WRITES = frozenset({"--log-file", "--xml-file"})
VALGRIND_VALUED = VALGRIND_WRITES | frozenset(
    {"--tool", "--xml", "--log-fd", "--xml-fd", "--trace-children", "--trace-children-skip"}
    | {"--child-silent-after-fork", "--track-fds", "--time-stamp", "--error-limit"}
    | {"--error-exitcode", "--exit-on-first-error", "--show-error-list", "--num-callers"}
    | {"--suppressions", "--gen-suppressions", "--demangle", "--max-stackframe"}
    | {"--main-stacksize", "--max-threads", "--smc-check", "--read-inline-info"}
    | {"--read-var-info", "--keep-debuginfo", "--fair-sched", "--vgdb", "--vgdb-error"}
    | {"--fullpath-after", "--extra-debuginfo-path", "--leak-check", "--leak-resolution"}
    | {"--show-leak-kinds", "--errors-for-leak-kinds", "--leak-check-heuristics"}
    | {"--show-reachable", "--show-possibly-lost", "--undef-value-errors", "--track-origins"}
    | {"--partial-loads-ok", "--expensive-definedness-checks", "--keep-stacktraces"}
    | {"--freelist-vol", "--freelist-big-blocks", "--ignore-ranges", "--malloc-fill"}
    | {"--free-fill", "--show-mismatched-frees", "--redzone-size", "--history-level"}
    | {"--conflict-cache-size", "--check-stack-var", "--first-race-only"}
)
# Tools that write no file of their own (cachegrind, callgrind, massif, dhat write
# NAME.out.PID in the working directory: unparsed).
VALGRIND_TOOLS = frozenset({"memcheck", "helgrind", "drd", "none"})


def _valgrind(args: Sequence[Arg]) -> Unwrapped:
    """``valgrind [options] [--] program [args]``: ``--log-file=FILE`` and
    ``--xml-file=FILE`` are files it writes (a name with ``%p``, ``%q{VAR}`` ... that it
    expands: unparsed)."""
    texts = _texts(args)
    index = 1
    writes: list[str] = []
    reads: list[str] = []
    while index < len(args) and texts[index].startswith("-"):
        text = texts[index]
        index += 1
        if text == "--":
            break
        if text in VALGRIND_QUIET:
            return Unwrapped(dynamic=_dynamic(args, index))
        if text in VALGRIND_FLAGS:
            continue
        name, equals, value = text.partition("=")
        if not equals or name not in VALGRIND_VALUED:
            return UNPARSED
        if name == "--tool" and value not in VALGRIND_TOOLS:
            return UNPARSED
        if name in VALGRIND_WRITES or name == "--suppressions":
            if "%" in value or not value:
                return UNPARSED
            (reads if name == "--suppressions" else writes).append(value)
    if index >= len(args):
        return UNPARSED  # valgrind needs a program
    return Unwrapped(
        inner=tuple(args[index:]),
        dynamic=_dynamic(args, index + 1),
        writes=tuple(writes),
        reads=tuple(reads),
    )


TIME = OptionSpec(
    flags="apvqV",
    with_value="fo",
    long_flags=HELP_VERSION | {"append", "portability", "verbose", "quiet"},
    long_with_value=frozenset({"format", "output"}),
)


def _time(args: Sequence[Arg]) -> Unwrapped:
    """GNU ``time [options] command [args]``: ``-o FILE``/``--output=FILE`` is a file it
    writes itself (``-a`` appends to it), with text ``-f`` makes anything."""
    options, _index = parse_options(_texts(args), 1, TIME)
    unwrapped = _simple_wrapper(TIME)(args)
    writes = tuple(value for name, value in options if name in ("o", "output") and value)
    return replace(unwrapped, writes=writes)


# External programs that run a command: each is reported itself, then what it runs.
WRAPPERS: dict[str, Handler] = {
    "env": _env,
    "nice": _nice,
    "timeout": _simple_wrapper(
        OptionSpec(
            flags="v",
            with_value="sk",
            long_flags=HELP_VERSION | {"preserve-status", "foreground", "verbose"},
            long_with_value=frozenset({"signal", "kill-after"}),
        ),
        operands=1,
    ),
    "nohup": _simple_wrapper(OptionSpec(long_flags=HELP_VERSION)),
    "stdbuf": _simple_wrapper(
        OptionSpec(
            with_value="ioe",
            long_flags=HELP_VERSION,
            long_with_value=frozenset({"input", "output", "error"}),
        )
    ),
    "xargs": _xargs,
    "sudo": _sudo,
    "sudoedit": _sudo,
    "doas": _doas,
    "pkexec": _pkexec,
    "chroot": _with_cwd(_chroot, UNKNOWN_CWD),
    "ionice": _not_for_processes(_simple_wrapper(IONICE), IONICE, {"p", "P", "u", "pid"}),
    "setsid": _simple_wrapper(
        OptionSpec(flags="cfw", long_flags=HELP_VERSION | {"ctty", "fork", "wait"})
    ),
    "nsenter": _with_cwd(
        _rooted_wrapper(
            OptionSpec(
                flags="aFZe",
                with_value="tSG",
                optional="mutinpUCTrw",
                long_flags=HELP_VERSION
                | {"all", "no-fork", "preserve-credentials", "follow-context", "env"},
                long_with_value=frozenset({"target", "setuid", "setgid"}),
                long_optional=frozenset(
                    {"mount", "uts", "ipc", "net", "pid", "user", "cgroup", "time", "root", "wd"}
                ),
            ),
            ("r", "root"),  # without a value: the target process's root
            default=(LOGIN_SHELL,),  # no program: $SHELL
        ),
        UNKNOWN_CWD,
    ),
    "unshare": _with_cwd(
        _rooted_wrapper(
            OptionSpec(
                flags="fmuinpCTUrc",
                with_value="RwSG",
                long_flags=HELP_VERSION
                | {"fork", "map-root-user", "map-current-user", "keep-caps", "map-auto"},
                long_with_value=frozenset(
                    {"propagation", "setgroups", "root", "wd", "setuid", "setgid", "map-user"}
                    | {"map-group", "map-users", "map-groups", "monotonic", "boottime"}
                    | {"load-interp"}
                ),
                long_optional=frozenset(
                    {"mount", "uts", "ipc", "net", "pid", "user", "cgroup", "time"}
                    | {"kill-child", "mount-proc", "mount-binfmt"}
                ),
            ),
            ("R", "root"),
            default=(LOGIN_SHELL,),  # no program: $SHELL
        ),
        UNKNOWN_CWD,
    ),
    "taskset": _not_for_processes(_simple_wrapper(TASKSET, operands=1), TASKSET, {"p", "pid"}),
    "chrt": _not_for_processes(_chrt, CHRT, {"p", "pid", "m", "max"}),
    "flock": _flock,
    "su": _su(SU),
    "runuser": _su(RUNUSER),
    "watch": _watch,
    "script": _script,
    "sg": _sg,
    "newgrp": _newgrp,
    "time": _time,
    "busybox": _busybox,
    "toybox": _busybox,
    "find": _find,
    "tmux": _tmux,
    "screen": _screen,
    "login": _login,
    "systemd-run": _systemd_run(SYSTEMD_RUN),
    "run0": _systemd_run(RUN0),
    "firejail": _firejail,
    "strace": _tracer(STRACE),
    "ltrace": _tracer(LTRACE),
    "setpriv": _setpriv,
    "catchsegv": _plain,
    "eatmydata": _plain,
    "faketime": _faketime,
    "torsocks": _torsocks,
    "proxychains": _proxychains,
    "proxychains4": _proxychains,
    "unbuffer": _unbuffer,
    "prlimit": _not_for_processes(_simple_wrapper(PRLIMIT), PRLIMIT, {"p", "pid"}),
    "cpulimit": _cpulimit,
    "fakeroot": _fakeroot,
    "chpst": _chpst,
    "capsh": _capsh,
    "bwrap": _bwrap,
    "numactl": _numactl,
    "ip": _ip,
    "valgrind": _valgrind,
}

# Shell builtins and keywords that run the command after them; not programs themselves.
EXEC = OptionSpec(flags="cl", with_value="a")
COMMAND = OptionSpec(flags="pvV")


def _exec(args: Sequence[Arg]) -> Unwrapped:
    """``exec [-cl] [-a name] command``: ``-l``, or an ``-a`` name starting with ``-``,
    puts a ``-`` before argv[0], and a shell started so is a login shell. Another ``-a``
    name is ``dynamic``: see ``renamed``."""
    options, _index = parse_options(_texts(args), 1, EXEC)
    unwrapped = _simple_wrapper(EXEC)(args)
    name = _value(options, "a")
    if renamed(name, unwrapped.inner):
        unwrapped = replace(unwrapped, dynamic=True)
    login = "l" in _names(options) or (name is not None and name.startswith("-"))
    if login and unwrapped.inner and not unwrapped.unparsed:  # "exec -l" alone runs nothing
        unwrapped = replace(unwrapped, login=True)
    if "c" in _names(options) and unwrapped.inner and not unwrapped.unparsed:
        unwrapped = replace(unwrapped, unsets_path_or_shlvl=True)  # an empty environment
    return unwrapped


def renamed(argv0: str | None, inner: Sequence[Arg]) -> bool:
    """Whether a wrapper runs ``inner`` with an argv[0] (``exec -a NAME``, ``chpst -b``,
    ``bwrap --argv0``) that names another program than the one run. Multi-call programs
    do what argv[0] says: git runs ``git-push`` as ``git push`` (``exec -a git-push git
    status`` pushes), busybox runs the applet named. A ``-`` before the name (a login
    shell) is not a rename."""
    if argv0 is None or not inner:
        return False
    name = argv0.removeprefix("-").rsplit("/", 1)[-1]
    return not inner[0].static or name != inner[0].text.rsplit("/", 1)[-1]


# bash's jobs: -x runs a command; -l, -n, -p, -r, -s only list jobs.
JOBS = OptionSpec(flags="lnprsx")


def _jobs(args: Sequence[Arg]) -> Unwrapped:
    """bash's ``jobs -x command [args]`` runs the command in this shell (a builtin, a
    function or a program: ``jobs -x cd /`` moves the shell), its words not expanded
    again, after replacing each job spec in them (a word starting with ``%``) by the
    job's process group id: such a word is not known here. Without ``-x`` it lists
    jobs and runs nothing."""
    options, index = parse_options(_texts(args), 1, JOBS)
    if "x" not in _names(options) or index >= len(args):
        return Unwrapped(dynamic=_dynamic(args, index))
    inner = tuple(
        Arg(arg.text, arg.static and not arg.text.startswith("%")) for arg in args[index:]
    )
    return Unwrapped(
        inner=inner,
        dynamic=_dynamic(args, index),
        unknown_arguments=any(arg.text.startswith("%") for arg in inner[1:]),
    )


def _login_prefix(args: Sequence[Arg]) -> Unwrapped:
    """zsh's ``- command``: argv[0] with a ``-`` before it: a shell runs as a login shell."""
    return replace(_simple_wrapper(OptionSpec())(args), login=True)


BUILTIN_WRAPPERS: dict[str, Handler] = {
    "exec": _exec,
    "builtin": _simple_wrapper(OptionSpec()),
    "noglob": _simple_wrapper(OptionSpec()),
    "nocorrect": _simple_wrapper(OptionSpec()),
    "-": _login_prefix,  # zsh: run the command with "-" before argv[0]
    "jobs": _jobs,
}
# Those of them that are commands of their own, reported before what they run: a
# policy names ``jobs`` (it lists jobs), not the keyword-like ``exec`` or ``builtin``.
REPORTED_BUILTIN_WRAPPERS = frozenset({"jobs"})

# Each handler lets UnknownOption propagate; here every one of them fails closed on it.
WRAPPERS = _fail_closed(WRAPPERS)
BUILTIN_WRAPPERS = _fail_closed(BUILTIN_WRAPPERS)
