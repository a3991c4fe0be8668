"""Shell builtins that matter to the command analysis (CONTRACT 2.2, "Commands").

``cd``/``pushd``/``popd`` move the shell; ``eval``, ``source``/``.``, ``alias``,
``trap``, the callback of ``mapfile -C``, ``compgen``/``complete -C/-F/-W``, ``fc``
and ``bind -x`` run text as code; ``declare``/``export``/``read``/``let``/``unset``...
set variables by name (a risky name changes what programs run or load; a subscript is
arithmetic, which runs ``$(...)`` found in a value; a declared ``(...)`` value is an
array assignment, which expands it); ``test -v`` evaluates a subscript; ``hash
-p``/``enable -f`` rebind a command name; ``set -k``/``set -o keyword`` (and ``shopt -s
-o keyword``) make ``NAME=value`` arguments environment assignments, ``set -H`` re-reads
later lines with text from the history (``!!:s/#//``), and ``set -P`` and ``cd -P``
resolve symlinks, so the directory is no longer known. Each handler
reports the builtin as a command, reports its constructs, and returns the working
directories it may leave.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import Protocol

from sidecar.normalise.shell_context import Context, Flow, State, argv_text, later
from sidecar.normalise.shell_wrappers import (
    CD_UNKNOWABLE,
    RISKY_SHELL_OPTIONS,
    RISKY_SHOPT_OPTIONS,
    UNKNOWN_CWD,
    Arg,
    turned_on_options,
    zsh_cd_unknowable,
)

DIRECTORY_BUILTINS = frozenset({"cd", "pushd", "popd"})
RISKY_VARIABLES = frozenset(
    {"PATH", "BASH_ENV", "ENV", "IFS", "CDPATH", "SHELLOPTS", "BASHOPTS", "PS4"}
    # bash reads a script in POSIX mode under it (as dash reads it, in places).
    | {"POSIXLY_CORRECT"}
    | {"PROMPT_COMMAND", "FPATH", "ZDOTDIR", "BASH_LOADABLES_PATH", "EXECIGNORE"}
    | {"GLOBIGNORE", "GCONV_PATH", "HOSTALIASES", "PYTHONPATH", "PYTHONSTARTUP"}
    | {"PYTHONHOME", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB"}
    | {"RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "PAGER", "EDITOR"}
    | {"VISUAL", "MANPAGER", "BROWSER", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS"}
    # less (git's pager) runs its options' start-up commands (LESS='+!cmd') and reads
    # key bindings and more settings from a lesskey file.
    | {"LESS", "LESSKEY", "LESSKEYIN", "LESSKEY_CONTENT", "LESSEDIT"}
    | {"SUDO_ASKPASS"}
    # An interactive bash expands its prompts, $(...) included; fc runs $FCEDIT; sudo -s,
    # script, tmux, screen ... start $SHELL (reported as sh: the value is not seen).
    | {"PS0", "PS1", "PS2", "FCEDIT", "SHELL"}
    # Where programs find their configuration, which can name programs to run (git's
    # core.fsmonitor and aliases, tmux's run-shell, npm's script-shell ...).
    | {"HOME", "XDG_CONFIG_HOME", "TMUX_TMPDIR"}
    # Build and test tools' options and plugins, which load code: pytest -p, go
    # -toolexec, a compiler wrapper, make's variables (SHELL=...), the compiler itself.
    | {"PYTEST_ADDOPTS", "PYTEST_PLUGINS", "GOFLAGS", "RUSTC_WRAPPER", "RUSTFLAGS"}
    | {"RUSTC", "MAKEFLAGS", "MFLAGS", "CC", "CXX"}
    # Start-up code of common tools, run by any command they start: Python's user site
    # (its .pth files run code) and bytecode cache (a planted .pyc is loaded), the JVM's
    # options (-javaagent:) for java, Maven and Gradle (and Gradle's init scripts),
    # make's extra makefiles, go's env file, cargo's second wrapper, kubectl's and the
    # AWS CLI's configuration (an exec credential plugin, credential_process), vim's and
    # ex's start-up commands, Lua's and PHP's start-up code, and git protocols (ext::).
    | {"PYTHONUSERBASE", "PYTHONPYCACHEPREFIX", "JDK_JAVA_OPTIONS", "JAVA_OPTS"}
    | {"MAVEN_OPTS", "GRADLE_OPTS", "GRADLE_USER_HOME", "MAKEFILES", "GOENV"}
    | {"RUSTC_WORKSPACE_WRAPPER", "KUBECONFIG", "AWS_CONFIG_FILE", "VIMINIT", "EXINIT"}
    | {"LUA_INIT", "PHPRC", "PHP_INI_SCAN_DIR"}
    # Python imports what these name: the category of a warnings filter
    # (PYTHONWARNINGS='ignore::mod.W' imports mod from the working directory), the hook
    # breakpoint() calls, the directory of its standard library (a relative
    # PYTHONPLATLIBDIR leaves the prefix: '../../../workspace/lib'); and keyring, which
    # pip consults, imports the backend PYTHON_KEYRING_BACKEND names.
    | {"PYTHONWARNINGS", "PYTHONBREAKPOINT", "PYTHONPLATLIBDIR", "PYTHON_KEYRING_BACKEND"}
    # npm reads its global configuration (script-shell ...) from $PREFIX/etc/npmrc; node
    # loads NODE_REPL_EXTERNAL_MODULE in place of its REPL.
    | {"PREFIX", "NODE_REPL_EXTERNAL_MODULE"}
    # GNU make reads GNUMAKEFLAGS like MAKEFLAGS (SHELL=..., --eval=$(shell ...)).
    | {"GNUMAKEFLAGS"}
    # go: where modules, toolchains and the build cache come from or go (a module proxy,
    # no checksum database, another toolchain, a planted module or build cache, a
    # go.work naming other directories, GOBIN a directory go install writes programs
    # to), the programs it runs for cgo, and GOAUTH, a command it runs for credentials.
    | {"GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOVCS"}
    | {"GOTOOLCHAIN", "GOROOT", "GOPATH", "GOMODCACHE", "GOCACHE", "GOWORK", "GOBIN"}
    | {"GOAUTH", "GCCGO", "AR", "FC", "PKG_CONFIG"}
    # cargo runs $RUSTDOC for doctests, with RUSTDOCFLAGS (-C linker=...).
    | {"RUSTDOC", "RUSTDOCFLAGS"}
    # kubectl runs KUBECTL_EXTERNAL_DIFF (kubectl diff) and KUBE_EDITOR (kubectl edit),
    # and KUBERC names a preferences file whose defaults and aliases change a command.
    | {"KUBECTL_EXTERNAL_DIFF", "KUBE_EDITOR", "KUBERC"}
    # gpg (git commit -S) reads gpg.conf and gpg-agent.conf from GNUPGHOME, which name
    # programs it starts (agent-program, pinentry-program).
    | {"GNUPGHOME"}
    # OpenSSL's configuration (read by Python's ssl, curl, git) loads engines and
    # providers: shared libraries, from where these say.
    | {"OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES"}
    # bash's command hash table and aliases as arrays: BASH_CMDS=([git]=/tmp/x) is hash -p.
    | {"BASH_CMDS", "BASH_ALIASES"}
    # zsh (whose scripts are read as bash here) ties path to PATH and exposes its hash
    # table, aliases and functions as arrays (commands=(git /tmp/x)), and runs $NULLCMD
    # and $READNULLCMD for a redirection without a command.
    | {"path", "fpath", "cdpath", "module_path", "MODULE_PATH", "commands", "aliases"}
    | {"galiases", "saliases", "functions", "NULLCMD", "READNULLCMD"}
    # zsh runs an external command with $ARGV0 as its argv[0], and multi-call programs do
    # what argv[0] says (ARGV0=git-push git status pushes): like exec -a.
    | {"ARGV0"}
    # zsh's lexer takes the third character of $histchars as its comment character: set
    # to another one, "#" no longer hides what follows it from a later parse.
    | {"histchars", "HISTCHARS"}
    # Found in the red-team review of 2026-12-07: more programs' own start-up code and
    # helpers named by a variable. gcc runs its assembler and linker from COMPILER_PATH
    # (and GCC_EXEC_PREFIX); zip and unzip take options from ZIPOPT and UNZIP (zip -TT
    # CMD runs CMD); R, Erlang/Elixir, sbt, Ant (-javaagent:), Lua, Tcl and Guile load
    # code from where these say.
    | {"COMPILER_PATH", "GCC_EXEC_PREFIX", "ZIPOPT", "UNZIP", "UNZIPOPT"}
    | {"R_PROFILE", "R_PROFILE_USER", "R_ENVIRON", "R_ENVIRON_USER", "R_LIBS", "R_LIBS_USER"}
    | {"ERL_AFLAGS", "ERL_ZFLAGS", "ERL_FLAGS", "ERL_LIBS", "ELIXIR_ERL_OPTIONS"}
    | {"SBT_OPTS", "ANT_OPTS", "ANT_ARGS", "LUA_INIT", "LUA_PATH", "LUA_CPATH"}
    | {"TCLLIBPATH", "GUILE_LOAD_PATH", "GUILE_LOAD_COMPILED_PATH"}
    # A shell with history on (set -o history) writes the lines it ran to $HISTFILE when
    # it exits: a file write no redirection shows.
    | {"HISTFILE"}
    # A bash -c that sees either (Debian builds bash with SSH_SOURCE_BASHRC) takes itself
    # for a command run by sshd and first runs ~/.bashrc: startup files, unseen.
    | {"SSH_CLIENT", "SSH2_CLIENT"}
    # bash and dash take $PWD from their environment as their logical directory when it
    # names the one they start in, symlinks and all, and resolve "cd .." against it: a
    # link's directory, not the one the gate joins "cd .." to (like OLDPWD for "cd -").
    | {"PWD"}
    # bash started with SHLVL unset or below 1, and a socket on its standard input, takes
    # itself for a command run by sshd and runs ~/.bashrc first (see STARTED_BARE).
    | {"SHLVL"}
    # bash translates $"word" through the catalogue $TEXTDOMAIN in $TEXTDOMAINDIR (in
    # any locale but C and POSIX, C.UTF-8 included): a planted one makes $"status" "push".
    | {"TEXTDOMAIN", "TEXTDOMAINDIR"}
    # More tools' defaults and configuration that run a program or load code (a red-team
    # review of 2026-12-06): GNU tar's default options (--checkpoint-action=exec=,
    # --to-command=), the AWS CLI's credentials file (credential_process), .NET's
    # start-up hooks and CoreCLR's profilers, the JVM's class path (javac runs the
    # annotation processors it finds there), and the password commands, remote shells
    # and compiler prefix of restic, borg, rclone, rsync, svn, cvs and ccache.
    | {"TAR_OPTIONS", "AWS_SHARED_CREDENTIALS_FILE", "DOTNET_STARTUP_HOOKS", "CLASSPATH"}
    | {"CORECLR_ENABLE_PROFILING", "CORECLR_PROFILER", "CORECLR_PROFILER_PATH"}
    | {"CORECLR_PROFILER_PATH_32", "CORECLR_PROFILER_PATH_64", "CCACHE_PREFIX"}
    | {"RESTIC_PASSWORD_COMMAND", "BORG_PASSCOMMAND", "BORG_RSH", "RCLONE_PASSWORD_COMMAND"}
    | {"RSYNC_RSH", "RSYNC_CONNECT_PROG", "SVN_SSH", "CVS_RSH"}
    # Pagers and editors that systemd's tools, the AWS CLI, gh, psql, svn, hg and
    # sudoedit start, and psql's start-up file (\! runs a command).
    | {"SYSTEMD_PAGER", "SYSTEMD_EDITOR", "AWS_PAGER", "GH_PAGER", "GH_EDITOR"}
    | {"PSQL_PAGER", "PSQL_EDITOR", "PSQLRC", "SVN_EDITOR", "HGEDITOR", "SUDO_EDITOR"}
    # Where tools find configuration or plugins that run code: Mercurial's hooks, the
    # Docker CLI's plugins, RubyGems' gems, Azure CLI extensions, Helm plugins,
    # Terraform's CLI configuration, Google's credential file (an executable-sourced
    # credential), the environment uv and poetry take the interpreter from, curl's and
    # wget's configuration.
    | {"HGRCPATH", "DOCKER_CONFIG", "GEM_HOME", "GEM_PATH", "AZURE_EXTENSION_DIR"}
    | {"HELM_PLUGINS", "TF_CLI_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS"}
    | {"GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "VIRTUAL_ENV", "CURL_HOME", "WGETRC"}
    # Where glibc finds locales (see LOCALE_VARIABLES): a planted one, under any name.
    | {"LOCPATH"}
    # Whom programs trust over TLS (rt25 clients review, 2): a CA bundle or directory of
    # the caller's, Node's extra CAs, or no verification at all (Node's switch, and
    # PYTHONHTTPSVERIFY=0 on Python builds that read it) let a listener in the pod pass
    # for any server: a package index, the API server, an https gate. Proxies: see
    # PROXY_SUFFIX.
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}
    | {"NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "PYTHONHTTPSVERIFY"}
    # Where in-cluster clients (kubectl, client-go, gate.kube) find the API server, and
    # send the service-account token.
    | {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
)
# Where programs connect: a proxy from the environment. Python's urllib (and requests,
# pip) takes every variable whose name ends in _proxy in any case (HTTP_PROXY,
# https_proxy, ALL_PROXY, NO_PROXY ...), curl most of them; Node's NODE_USE_ENV_PROXY
# turns them on for its fetch. npm's and pip's own proxy settings are overrides already
# (npm_config_*, PIP_*).
PROXY_SUFFIX = "_proxy"
# Harmless set to nothing: an empty proxy is no proxy (urllib, curl and Node ignore it),
# and in-cluster configuration without a host is none; the program then connects to the
# host the gate decided. no_proxy only ever takes hosts out of proxying, whatever its
# value (rt25 round-2 review, E1: `NO_PROXY=localhost pytest` was denied).
HARMLESS_WHEN_EMPTY = frozenset({"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"})
HARMLESS_PROXY_VARIABLE = "no_proxy"
# bash reads its script as bytes in the locale these choose: in a double-byte one (GBK,
# GB18030, BIG5, BIG5-HKSCS) a backslash after a lead byte is part of one character and
# escapes nothing, so text read here as quoted runs. An override unless the value is
# known and read as here (SAFE_LOCALE).
LOCALE_VARIABLES = frozenset({"LC_ALL", "LC_CTYPE", "LANG"})
# C, POSIX, empty, or a name whose codeset is UTF-8, each with an optional @modifier; a
# "/" makes glibc take the name for the path of a locale, which may be any.
SAFE_LOCALE = re.compile(r"(?:C|POSIX|[^/.@]*\.(?i:utf-?8))?(?:@[^/]*)?")
RISKY_PREFIXES = (
    *("LD_", "DYLD_", "BASH_FUNC_"),
    # Every variable git reads is GIT_*, and they are many: some run a program
    # (GIT_SSH_COMMAND, GIT_EXTERNAL_DIFF, GIT_PAGER, GIT_EDITOR, GIT_ASKPASS, and
    # GIT_TEST_FSMONITOR, run through the shell on every index refresh: git status),
    # some move where git finds its configuration, hooks and objects (GIT_DIR,
    # GIT_CONFIG_*, GIT_WORK_TREE, GIT_INDEX_FILE ...), GIT_TRACE* append to any file,
    # and each release adds more. So all of them are overrides, but the few known
    # harmless (HARMLESS_GIT_VARIABLES): a name missing from a list must not be an allow.
    "GIT_",
    # Package managers' configuration: an index or a config file elsewhere installs
    # (and runs the setup code of) whatever it serves. npm's prefix is in
    # ANY_CASE_PREFIXES, as is yarn's.
    *("PIP_", "UV_", "CARGO_"),
    # cgo's compiler and linker flags (CGO_CFLAGS=-fplugin=...), and which flags the
    # #cgo lines of a package may pass (CGO_*_ALLOW); rustup's toolchain (a directory:
    # RUSTUP_TOOLCHAIN=/workspace/tc runs its bin/cargo), home and download server.
    *("CGO_", "RUSTUP_"),
    # Terraform adds TF_CLI_ARGS (and TF_CLI_ARGS_<command>) to its command line.
    "TF_CLI_ARGS",
    # Tollgate's own: TOLLGATE_URL picks the gate a client or `tollgate check` asks, and
    # a gated child pointed at another loopback port asked a listener there, which can
    # answer every check with an allow (rt25 clients review, 2); the others pick what
    # `tollgate serve` enforces and where it records.
    "TOLLGATE_",
)

# Prefixes a program reads in any case: npm (and pnpm, through npm's configuration) takes
# every variable matching /^npm_config_/i, so npm_CONFIG_registry sets its registry; yarn
# (2+) lower-cases names before it reads its settings from YARN_* (YARN_YARN_PATH runs
# the file it names as yarn itself, YARN_NPM_REGISTRY_SERVER moves the registry).
ANY_CASE_PREFIXES = ("npm_config_", "yarn_")


# git's variables that change only what a commit records, or git's output and prompts
# (git(1), ENVIRONMENT VARIABLES): not GIT_PAGER or GIT_EDITOR, which run a program, and
# not the pathspec, discovery or protocol ones, which change what a command touches.
HARMLESS_GIT_VARIABLES = frozenset(
    {"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE", "GIT_COMMITTER_NAME"}
    | {"GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE", "GIT_TERMINAL_PROMPT", "GIT_FLUSH"}
    | {"GIT_OPTIONAL_LOCKS", "GIT_PROGRESS_DELAY", "GIT_MERGE_VERBOSITY"}
)
# Names under a risky prefix known to change only output, caching or parallelism: a
# short allowlist, so that an unknown name under the prefix stays an override.
HARMLESS_VARIABLES = HARMLESS_GIT_VARIABLES | frozenset(
    {"PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT", "PIP_QUIET"}
    | {"PIP_PROGRESS_BAR", "PIP_ROOT_USER_ACTION", "PIP_DEFAULT_TIMEOUT", "PIP_NO_COLOR"}
    | {"CARGO_TERM_COLOR", "CARGO_TERM_VERBOSE", "CARGO_TERM_QUIET", "CARGO_INCREMENTAL"}
    | {"CARGO_TERM_PROGRESS_WHEN", "CARGO_BUILD_JOBS", "UV_NO_PROGRESS"}
    # libuv's (Node's) thread pool, not the uv package manager; cgo on or off.
    | {"UV_THREADPOOL_SIZE", "CGO_ENABLED"}
)


def risky_variable(name: str, value: str | None = None) -> bool:
    """Whether setting ``name`` changes what programs run or load, where they connect
    and whom they trust, or how bash reads its script; ``value``: what it is set to,
    None where that is not known here."""
    if name in LOCALE_VARIABLES:
        return value is None or SAFE_LOCALE.fullmatch(value) is None
    lowered = name.lower()
    if name in HARMLESS_WHEN_EMPTY and value == "":
        return False
    if name in RISKY_VARIABLES or lowered.startswith(ANY_CASE_PREFIXES):
        return True
    if lowered.endswith(PROXY_SUFFIX):
        return lowered != HARMLESS_PROXY_VARIABLE and value != ""
    return name.startswith(RISKY_PREFIXES) and name not in HARMLESS_VARIABLES


class Analyser(Protocol):
    """What a builtin handler needs from the command analysis."""

    def report(self, args: Sequence[Arg], state: State, context: Context) -> None: ...

    def construct(self, name: str, text: str) -> None: ...

    def script_text(
        self, text: str, state: State, context: Context, *, posix: bool = True
    ) -> None: ...

    def expanded_text(self, text: str, state: State, context: Context) -> None: ...

    def changed_directory(self, target: str, state: State) -> State: ...

    def may_be_array(self, name: str) -> bool: ...

    def file_access(self, text: str, state: State, context: Context, *, write: bool) -> None: ...


def split_operands(texts: Sequence[str], with_value: str = "") -> tuple[list[str], dict[str, str]]:
    """Split builtin arguments into operands and ``-x value`` options (first ``--`` ends)."""
    operands: list[str] = []
    values: dict[str, str] = {}
    index = 1
    while index < len(texts):
        text = texts[index]
        index += 1
        if text == "--":
            operands.extend(texts[index:])
            break
        if len(text) > 1 and text[0] in "-+" and not operands:
            for position, letter in enumerate(text[1:], start=2):
                values.setdefault(letter, "")
                if letter in with_value:
                    value = text[position:]
                    if not value and index < len(texts):
                        value, index = texts[index], index + 1
                    values[letter] = value
                    break
            continue
        operands.append(text)
    return operands, values


# Characters that make a word expand to names not written in it (a glob, a brace list).
_EXPANDING = frozenset("*?[{")


def names_unknown(args: Sequence[Arg]) -> bool:
    """Whether an argument of ``args[1:]`` may stand for words not known here: an
    expansion (``enable -n $x``), a glob or a brace list (``shopt -s cdable_v*``)."""
    return any(not arg.static or _EXPANDING & set(arg.text) for arg in args[1:])


def static_value(args: Sequence[Arg], value: str) -> bool:
    """Whether an option's value is known here: the argument it came from (itself, or the
    option cluster it was attached to) is static. Ambiguous: static only if all are."""
    holders = [arg for arg in args[1:] if arg.text == value] or [
        arg for arg in args[1:] if arg.text.startswith("-") and arg.text.endswith(value)
    ]
    return bool(holders) and all(arg.static for arg in holders)


def _directory(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``cd``/``pushd``/``popd``: on success the shell is in the new directory."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    operands, values = split_operands(texts)
    if texts[0] in ("pushd", "popd") and "n" in values:
        return state, state  # -n: only the directory stack changes, not the directory
    known = (
        texts[0] != "popd"
        and "P" not in values  # physical: symlinks resolved, so where it lands is unknown
        and len(operands) == 1
        and all(arg.static for arg in args)
        and operands[0] not in ("-", "")
        and not operands[0].startswith(("~", "+", "-"))
        # bash resolves ".." against $PWD, which a new shell takes from its environment
        # only when it names the directory (else the physical path, through every link),
        # and which a request's cwd may reach through a link too; and where that form
        # does not exist it falls back to the physical one. Either way not known here.
        and ".." not in operands[0].split("/")
    )
    if operands == [""]:
        return state, state  # cd "" stays where it is
    target = operands[0] if known else UNKNOWN_CWD
    return analyser.changed_directory(target, state), state


def _eval(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    text = " ".join(arg.text for arg in args[1:])
    analyser.construct("eval", argv_text(arg.text for arg in args))
    if text.strip() and all(arg.static for arg in args):
        analyser.script_text(text, state, context.inside("eval"))
    return later(state), later(state)


def _option_cluster_with_c(text: str) -> bool:
    """``-`` then ASCII letters, one of them ``c`` (a string test: the regex spelling of
    it backtracked quadratically on ``-cccc...c1``)."""
    letters = text[1:]
    return text.startswith("-") and letters.isascii() and letters.isalpha() and "c" in letters


def _emulate(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """zsh's ``emulate sh -c 'code'`` evaluates ``code``: like ``eval``. Any option
    cluster with a ``c`` counts, so an unusual spelling is not missed."""
    analyser.report(args, state, context)
    flags = [_option_cluster_with_c(arg.text) for arg in args]
    if not any(flags) and all(arg.static for arg in args):
        return state, state
    analyser.construct("eval", argv_text(arg.text for arg in args))
    for flag, code in zip(flags, args[1:], strict=False):
        if flag and code.static and code.text.strip():
            analyser.script_text(code.text, state, context.inside("emulate -c"))
    return later(state), later(state)


def _source(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    analyser.construct(args[0].text, argv_text(arg.text for arg in args))
    return later(state), later(state)


def _alias(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    for arg in args[1:]:
        name, is_definition, value = arg.text.partition("=")
        if not is_definition or arg.text.startswith("-"):
            continue
        analyser.construct("alias", arg.text)
        if arg.static and value.strip():
            inside = context.inside(f"alias {name}").repeating(
                f"alias {name}, used any number of times"
            )
            analyser.script_text(value, later(state), inside)
    return state, state


def _trap(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    operands, _values = split_operands([arg.text for arg in args])
    if len(operands) >= 2 and operands[0] not in ("-", ""):
        analyser.construct("trap", argv_text(arg.text for arg in args))
        action = next(arg for arg in args[1:] if arg.text == operands[0])
        if action.static and action.text.strip():
            inside = context.inside("trap").repeating("a trap, run on any number of signals")
            analyser.script_text(action.text, later(state), inside)
    return state, state


# declare's attributes that change what a variable's value reads as (an array, an
# integer, case folded) or what it is (a nameref: any later name).
ATTRIBUTES_THAT_CHANGE_A_VALUE = frozenset("aAilucnt")


def _variables(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """Builtins that set variables by name: risky names, subscripts, namerefs."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    builtin = texts[0]
    operands, values = split_operands(texts, VALUE_OPTIONS.get(builtin, ""))
    display = argv_text(texts)
    if builtin in DECLARATIONS | ZSH_NUMERIC:
        if "n" in values:
            analyser.construct("environment-override", display)  # a nameref: any later name
        flags = values.keys() & {"i", "n"} | ({"i"} if builtin in ZSH_NUMERIC else set())
        if "i" in flags:
            analyser.construct("arithmetic", display)
        _array_values(analyser, args, values, state, context)
        _declared_subscripts(analyser, args, flags, state, context)
        known = _known_names(args)
        assigned = [_declared(operand, known(operand)) for operand in operands if "=" in operand]
        # Without a value an attribute still changes a name: `declare -a PATH` leaves
        # this shell to find programs in "." only, `declare +x PATH` (or SHLVL, PWD)
        # leaves it out of every child's environment (second review of 2026-12-07, R2).
        # In a function, `local PATH` (or declare/typeset without -g) is a new variable
        # without a value: bash then looks programs up in "." too. Printing (-p) and a
        # global's export (-gx) change nothing, nor do export and readonly alone.
        unsets = any(text.startswith("+") and len(text) > 1 for text in texts[1:])
        local = builtin in ("local", "declare", "typeset") and not values.keys() & {
            "p",  # prints
            "f",  # names functions
            "F",
            "I",  # inherits the value
            "g",  # the global
        }
        if unsets or local or values.keys() & ATTRIBUTES_THAT_CHANGE_A_VALUE:
            assigned += [(operand, None) for operand in operands if "=" not in operand]
        named = [operand.partition("=")[0] for operand in operands]
    elif builtin == "let":
        analyser.construct("arithmetic", display)
        for arg in args[1:]:
            if arg.static:  # let 'x=a[$(cmd)]'
                arithmetic_text(analyser, arg.text, state, context, "let")
        named = [operand.partition("=")[0] for operand in operands]
        assigned = [(name, None) for name in named]
    else:
        named = _named_variables(builtin, operands, values)
        assigned = [(name, None) for name in named]  # read, unset ...: no value known
        # read "$n", printf -v "$n", wait -p "$n": a name not known here may hold a
        # subscript, which bash evaluates (n='a[$(cmd)]' runs cmd); mapfile, getopts and
        # read -a refuse one, and unset does not expand one that came from a value.
        evaluated = {"read": operands, "printf": named, "wait": named}.get(builtin, [])
        known = _known_names(args)
        if not all(known(name) for name in evaluated):
            analyser.construct("arithmetic", display)
        for name in named:
            if known(name):  # read 'a[$(cmd)]'
                subscript_text(analyser, name, state, context)
    if any(risky_variable(variable.removesuffix("+"), value) for variable, value in assigned):
        analyser.construct("environment-override", display)
    if any("[" in variable for variable in named):
        analyser.construct("arithmetic", display)
    if builtin in ("mapfile", "readarray") and "C" in values:
        return _callback(analyser, args, values["C"], state, context)
    return state, state


def _callback(
    analyser: Analyser, args: list[Arg], callback: str, state: State, context: Context
) -> Flow:
    """``mapfile -C callback``: bash evaluates ``callback index 'line'`` in this shell, as
    ``eval`` would, once every ``-c`` lines: the line is an argument not visible here, and
    a ``cd`` in the callback may have run any number of times."""
    display = argv_text(arg.text for arg in args)
    analyser.construct("eval", display)
    analyser.construct("unknown-arguments", display)
    if callback.strip() and static_value(args, callback):
        inside = context.inside("mapfile -C callback").repeating(
            "a mapfile -C callback, run per lines read"
        )
        analyser.script_text(callback, later(state), inside)
    return later(state), later(state)


def _completion(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``compgen``/``complete``: ``-C command`` is evaluated as code and ``-F function``
    called, each given the word being completed (``unknown-arguments``), and the ``-W``
    word list is expanded, which runs a ``$(...)`` in it, even one single-quoted on the
    command line. ``complete`` keeps them for an interactive shell's completion: they
    run later. ``-G``/``-X``/``-P``/``-S`` are patterns and text, not expanded."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    _operands, values = split_operands(texts, "oAGWFCXPS")
    display = argv_text(texts)
    builtin = texts[0]
    where = state if builtin == "compgen" else later(state)
    if builtin != "compgen":  # complete: run at every completion
        context = context.repeating(f"{builtin}, run at every completion")
    for option in "CF":
        code = values.get(option)
        if code is None:
            continue
        analyser.construct("eval", display)
        analyser.construct("unknown-arguments", display)
        if code.strip() and static_value(args, code):
            analyser.script_text(code, where, context.inside(f"{builtin} -{option}"))
    words = values.get("W")
    expands = words is not None and any(mark in words for mark in ("$", "`", "<(", ">("))
    if words is not None and (expands or not static_value(args, words)):
        analyser.construct("eval", display)
        if static_value(args, words):
            analyser.expanded_text(words, where, context.inside(f"{builtin} -W"))
    if builtin == "compgen" and "F" in values:
        return later(state), later(state)  # the function runs in this shell: a cd in it
    return state, state


def _history(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``history -w FILE`` writes the history list, which ``history -s TEXT`` filled with
    any text, to any file (``-a`` appends); ``-r``/``-n`` read one. Without FILE it is
    $HISTFILE, not known here."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    operands, values = split_operands(texts, "d")
    modes = {"a", "w", "r", "n"} & values.keys()
    if not modes:
        return state, state
    target = next((arg for arg in args[1:] if operands and arg.text == operands[0]), None)
    if target is None or not target.static:
        analyser.construct("dynamic-redirect", argv_text(texts))
        return state, state
    if modes & {"a", "w"}:
        analyser.file_access(target.text, state, context, write=True)
    if modes & {"r", "n"}:
        analyser.file_access(target.text, state, context, write=False)
    return state, state


def _fc(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``fc`` runs commands again from the history (``-s``, or after ``-e EDITOR``,
    by default ``$FCEDIT``, edited them): text the gate never sees, which ``history
    -s`` can put there. The editor is evaluated as code, given a temporary file.
    ``fc -l`` only lists."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    _operands, values = split_operands(texts, "e")
    if "l" in values:
        return state, state
    display = argv_text(texts)
    analyser.construct("eval", display)
    analyser.construct("dynamic-command", display)  # the history's text is not known here
    editor = values.get("e")
    if editor is not None and editor.strip() not in ("", "-") and "s" not in values:
        analyser.construct("unknown-arguments", display)
        if static_value(args, editor):
            analyser.script_text(editor, state, context.inside("fc -e editor"))
    return later(state), later(state)


def _bind(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``bind -x 'KEYSEQ: command'``: an interactive shell evaluates the command when the
    keys are typed (as an agent's terminal session may). Other bindings are readline's."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    _operands, values = split_operands(texts, "mqurfx")
    binding = values.get("x")
    if binding is None:
        return state, state
    display = argv_text(texts)
    analyser.construct("eval", display)
    command = _bound_command(binding) if static_value(args, binding) else None
    if command is None:
        analyser.construct("dynamic-command", display)  # not read here: assume anything
    elif command.strip():
        inside = context.inside("bind -x").repeating("bind -x, run whenever the keys are typed")
        analyser.script_text(command, later(state), inside)
    return state, state


def _bound_command(binding: str) -> str | None:
    """The command of a ``bind -x`` binding as bash cuts it: after the colon that follows
    the (possibly double-quoted) key sequence, without one pair of quotes around it."""
    rest = binding.lstrip()
    if rest.startswith('"'):
        keyseq = re.match(r'"(?:\\.|[^"\\])*"', rest)
        if keyseq is None:
            return None
        rest = rest[keyseq.end() :]
    _keys, colon, command = rest.partition(":")
    if not colon:
        return None
    command = command.lstrip()
    if command[:1] in ("'", '"'):
        quoted = re.match(r"'([^']*)'" if command[0] == "'" else r'"((?:\\.|[^"\\])*)"', command)
        return quoted.group(1) if quoted else None
    return command


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _array_values(
    analyser: Analyser, args: list[Arg], flags: dict[str, str], state: State, context: Context
) -> None:
    """``declare -a 'a=($(cmd))'``: bash reads a declared value of the form ``(...)`` as an
    array assignment (for -a, -A or a name that is an array already) and expands what is
    inside, quoted or not: evaluated like ``eval``. An argument not known here may expand
    to that form (``declare a=$v``, ``declare "$v"``). ``export``/``readonly`` do this
    only under -a/-A."""
    builtin = args[0].text
    arrays = {"a", "A"} & flags.keys()
    if builtin in ("export", "readonly") and not arrays:
        return
    for arg in args[1:]:
        if not arg.static:
            name, equals, _value = arg.text.partition("=")
            # bash checked: `local x=$1` (no -a/-A) takes the value literally unless x is
            # an array in scope already; the script would have to make it one.
            literal = builtin == "local" and not arrays and equals and _IDENTIFIER.match(name)
            if not (literal and not analyser.may_be_array(name)):
                analyser.construct("eval", arg.text)
            continue
        _name, equals, value = arg.text.partition("=")
        if not equals or arg.text.startswith(("-", "+")):
            continue
        if value.startswith("(") and value.endswith(")"):
            analyser.construct("eval", arg.text)
            analyser.script_text(arg.text, state, context.inside(f"{builtin} array"))


def _declared(operand: str, static: bool) -> tuple[str, str | None]:
    """``NAME=value`` given to ``declare``/``export`` ...: the name and the value, None
    where not known here (``NAME+=value`` appends to a value not known)."""
    name, _equals, value = operand.partition("=")
    return name, value if static and not name.endswith("+") else None


def _named_variables(builtin: str, operands: list[str], values: dict[str, str]) -> list[str]:
    if builtin in ("printf", "wait"):
        option = "v" if builtin == "printf" else "p"
        return [values[option]] if values.get(option) else []
    if builtin in ("mapfile", "readarray"):
        return operands[-1:] or ["MAPFILE"]
    if builtin == "getopts":
        return operands[1:2]
    if builtin == "read" and values.get("a"):
        return [*operands, values["a"]]
    return operands


def _test(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    if any(arg.text == "-v" for arg in args[1:]):
        analyser.construct("arithmetic", argv_text(arg.text for arg in args))
        for option, name in itertools.pairwise(args[1:]):
            if option.text == "-v" and name.static:  # test -v 'a[$(cmd)]'
                subscript_text(analyser, name.text, state, context)
    return state, state


def subscript_text(analyser: Analyser, name: str, state: State, context: Context) -> None:
    """A variable name bash is given, as text known here (``test -v NAME``, ``read
    NAME``, ``printf -v NAME``, ``unset NAME`` ...): with a subscript, bash expands it as
    it evaluates it, whatever quoted it on the command line (``test -v 'a[$(cmd)]'``
    runs cmd). Everything after the ``[`` is read so (never less than bash reads)."""
    start = name.find("[")
    if start >= 0:
        arithmetic_text(analyser, name[start + 1 :], state, context, "an array subscript")


def arithmetic_text(
    analyser: Analyser, text: str, state: State, context: Context, where: str
) -> None:
    """Text bash evaluates as arithmetic, known here (a ``let`` expression, a subscript):
    it expands the subscripts in it, so their ``$(...)``, backquotes and ``$x`` run
    whatever quoted them on the command line (``let 'x=a[$(cmd)]'``). The whole text is
    read as bash expands a subscript (as a here-document body: quotes hide nothing, a
    backslash escapes ``$``): each expansion is a construct, the commands decided."""
    if "$" in text or "`" in text:
        analyser.expanded_text(text, state, context.inside(where))


def _known_names(args: Sequence[Arg]) -> Callable[[str], bool]:
    """Whether a variable name is known here: the argument (or the option cluster,
    ``-vNAME``) it came from is static, or it is a default (``MAPFILE``).

    ``static_value`` for each of many names, with the arguments indexed once: a name
    is nearly always an argument of its own, so asking for every operand of ``read a a
    a ...`` stays linear in the command's length (scanning the arguments per name took
    minutes for 64 KiB, on the loop every check waits for).
    """
    exact: dict[str, bool] = {}
    for arg in args[1:]:
        exact[arg.text] = exact.get(arg.text, True) and arg.static
    clusters = [arg for arg in args[1:] if arg.text.startswith("-")]

    def known(name: str) -> bool:
        if name in exact:
            return exact[name]
        holders = [arg for arg in clusters if arg.text.endswith(name)]
        return all(arg.static for arg in holders)

    return known


def _declared_subscripts(
    analyser: Analyser, args: list[Arg], flags: set[str], state: State, context: Context
) -> None:
    """``declare 'a[$(cmd)]=v'``: bash evaluates the subscript of a declared name as
    arithmetic, expanding it (``subscript_text``); with ``-i`` the value too, and with
    ``-n`` the value is a name whose subscript is evaluated wherever it is used. The
    subscript is read up to the last ``]=`` (``]+=``), never less than bash reads."""
    for arg in args[1:]:
        if not arg.static or arg.text.startswith(("-", "+")):
            continue  # not known here: eval (``_array_values``)
        text = arg.text
        name, _equals, value = text.partition("=")
        ends = max(text.rfind("]="), text.rfind("]+="))
        if "[" in name and ends >= 0:  # a[x=1]=v: the subscript may hold "="
            name, value = text[:ends], text[ends:].partition("=")[2]
        subscript_text(analyser, name, state, context)
        if "i" in flags and value:
            arithmetic_text(analyser, value, state, context, "an integer value")
        if "n" in flags and value:
            subscript_text(analyser, value, state, context)


def _lookup(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    operands, values = split_operands([arg.text for arg in args], "pfd")
    if ("p" in values and args[0].text == "hash") or ("f" in values and args[0].text == "enable"):
        analyser.construct("command-lookup-override", argv_text(arg.text for arg in args))
    if args[0].text == "enable" and (
        ("n" in values and DIRECTORY_BUILTINS & set(operands)) or names_unknown(args)
    ):
        # ``enable -n cd``: ``cd`` is now the program of that name, which moves no shell
        # (``enable -n $x`` may be that too).
        return _cd_unknowable(analyser, args)
    return state, state


def _disable(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """zsh's ``disable cd`` is bash's ``enable -n cd``: no later cd moves this shell."""
    analyser.report(args, state, context)
    if DIRECTORY_BUILTINS & {arg.text for arg in args[1:]} or names_unknown(args):
        return _cd_unknowable(analyser, args)
    return state, state


def _zsh_options(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """zsh's ``setopt``/``unsetopt``: chase_links, chase_dots, cdable_vars, auto_cd make
    where a later cd leads unknown (``unknown-cwd``), as ``set -P`` does in bash."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    if zsh_cd_unknowable(texts, turned_on=texts[0] == "setopt") or names_unknown(args):
        return _cd_unknowable(analyser, args)
    return state, state


def _cd_unknowable(analyser: Analyser, args: list[Arg]) -> Flow:
    """From here on no ``cd`` of this shell leads anywhere known, an absolute one included:
    the rest of the command line runs in a directory not known here."""
    analyser.construct("unknown-cwd", argv_text(arg.text for arg in args))
    unknown: State = frozenset({UNKNOWN_CWD})
    return unknown, unknown


def _options(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``set``/``shopt -s -o`` turning on an option that changes what later lines do
    (``RISKY_SHELL_OPTIONS``): keyword mode is ``environment-override``, history
    expansion ``eval``; after ``set -P`` or ``shopt -s cdable_vars`` no ``cd`` leads
    anywhere known (``unknown-cwd``)."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    if texts[0] == "set":
        options = turned_on_options(texts)
    else:
        operands, values = split_operands(texts)
        if "s" not in values:
            options = set()
        elif "o" in values:  # shopt -s -o NAME: set's options
            options = set(operands) & set(RISKY_SHELL_OPTIONS.values())
        else:
            options = set(operands) & RISKY_SHOPT_OPTIONS
    if texts[0] == "set" and zsh_cd_unknowable(texts):
        options.add("physical")  # zsh's set -o chase_links, set -w
    if "keyword" in options:
        analyser.construct("environment-override", argv_text(texts))
    if "histexpand" in options:
        analyser.construct("eval", argv_text(texts))
    # An option not known here (set -$f, shopt -s $o) may be one of those: set's
    # positional parameters after "--" are not options.
    ends = next((i for i, text in enumerate(texts) if text == "--"), len(texts))
    if options & CD_UNKNOWABLE or names_unknown(args[:ends] if texts[0] == "set" else args):
        return _cd_unknowable(analyser, args)
    return state, state


VALUE_OPTIONS = {
    "read": "adinNptu",
    "mapfile": "dnOsuCc",
    "readarray": "dnOsuCc",
    "printf": "v",
    "wait": "p",
}
DECLARATIONS = frozenset({"declare", "typeset", "local", "export", "readonly"})
# zsh's typeset -i and -F: every value assigned to the variable is evaluated as arithmetic.
ZSH_NUMERIC = frozenset({"integer", "float"})
VARIABLE_SETTERS = frozenset(
    {"unset", "read", "mapfile", "readarray", "printf", "getopts", "wait", "let"}
)
Builtin = Callable[[Analyser, list[Arg], State, Context], Flow]
BUILTINS: dict[str, Builtin] = {
    "cd": _directory,
    "pushd": _directory,
    "popd": _directory,
    "eval": _eval,
    "emulate": _emulate,
    "source": _source,
    ".": _source,
    "alias": _alias,
    "trap": _trap,
    "test": _test,
    "[": _test,
    "hash": _lookup,
    "enable": _lookup,
    "compgen": _completion,
    "complete": _completion,
    "fc": _fc,
    "bind": _bind,
    "history": _history,
    "set": _options,
    "shopt": _options,
    "setopt": _zsh_options,
    "unsetopt": _zsh_options,
    "disable": _disable,
    **dict.fromkeys(DECLARATIONS | VARIABLE_SETTERS | ZSH_NUMERIC, _variables),
    # zsh's (and ksh's) r is fc -e -: it runs the last command of the history again.
    "r": _fc,
}
