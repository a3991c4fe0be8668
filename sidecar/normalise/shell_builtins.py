"""Shell builtins that matter to the command analysis (CONTRACT 2.2, "Commands").

``cd``/``pushd``/``popd`` move the shell; ``eval``, ``source``/``.``, ``alias``,
``trap`` and the callback of ``mapfile -C`` run text as code;
``declare``/``export``/``read``/``let``/``unset``... set variables by name (a risky
name changes what programs run or load; a subscript is arithmetic, which runs
``$(...)`` found in a value); ``test -v`` evaluates a subscript; ``hash -p``/``enable
-f`` rebind a command name. Each handler reports the builtin as a command, reports its
constructs, and returns the working directories it may leave.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from sidecar.normalise.shell_context import Context, Flow, State, argv_text, later
from sidecar.normalise.shell_wrappers import UNKNOWN_CWD, Arg

DIRECTORY_BUILTINS = frozenset({"cd", "pushd", "popd"})
RISKY_VARIABLES = frozenset(
    {"PATH", "BASH_ENV", "ENV", "IFS", "CDPATH", "SHELLOPTS", "BASHOPTS", "PS4"}
    | {"PROMPT_COMMAND", "FPATH", "ZDOTDIR", "BASH_LOADABLES_PATH", "EXECIGNORE"}
    | {"GLOBIGNORE", "GCONV_PATH", "HOSTALIASES", "PYTHONPATH", "PYTHONSTARTUP"}
    | {"PYTHONHOME", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB"}
    | {"RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "PAGER", "EDITOR"}
    | {"VISUAL", "MANPAGER", "BROWSER", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS"}
    | {"SUDO_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_EDITOR"}
    | {"GIT_SEQUENCE_EDITOR", "GIT_PAGER", "GIT_ASKPASS", "GIT_PROXY_COMMAND"}
    | {"GIT_EXEC_PATH", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"}
    | {"GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "GIT_DIR", "GIT_TEMPLATE_DIR"}
)
RISKY_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


def risky_variable(name: str) -> bool:
    """Whether setting ``name`` changes what programs run or load."""
    return name in RISKY_VARIABLES or name.startswith(RISKY_PREFIXES)


class Analyser(Protocol):
    """What a builtin handler needs from the command analysis."""

    def report(self, args: Sequence[Arg], state: State, context: Context) -> None: ...

    def construct(self, name: str, text: str) -> None: ...

    def script_text(
        self, text: str, state: State, context: Context, *, posix: bool = True
    ) -> None: ...

    def changed_directory(self, target: str, state: State) -> State: ...


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


def _directory(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """``cd``/``pushd``/``popd``: on success the shell is in the new directory."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    operands, _values = split_operands(texts)
    known = (
        texts[0] != "popd"
        and len(operands) == 1
        and all(arg.static for arg in args)
        and operands[0] not in ("-", "")
        and not operands[0].startswith(("~", "+", "-"))
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


def _emulate(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """zsh's ``emulate sh -c 'code'`` evaluates ``code``: like ``eval``. Any option
    cluster with a ``c`` counts, so an unusual spelling is not missed."""
    analyser.report(args, state, context)
    flags = [bool(re.fullmatch(r"-[A-Za-z]*c[A-Za-z]*", arg.text)) for arg in args]
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
            analyser.script_text(value, later(state), context.inside(f"alias {name}"))
    return state, state


def _trap(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    operands, _values = split_operands([arg.text for arg in args])
    if len(operands) >= 2 and operands[0] not in ("-", ""):
        analyser.construct("trap", argv_text(arg.text for arg in args))
        action = next(arg for arg in args[1:] if arg.text == operands[0])
        if action.static and action.text.strip():
            analyser.script_text(action.text, later(state), context.inside("trap"))
    return state, state


def _variables(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    """Builtins that set variables by name: risky names, subscripts, namerefs."""
    analyser.report(args, state, context)
    texts = [arg.text for arg in args]
    builtin = texts[0]
    operands, values = split_operands(texts, VALUE_OPTIONS.get(builtin, ""))
    display = argv_text(texts)
    if builtin in DECLARATIONS:
        if "n" in values:
            analyser.construct("environment-override", display)  # a nameref: any later name
        if "i" in values:
            analyser.construct("arithmetic", display)
        assigned = [operand.partition("=")[0] for operand in operands if "=" in operand]
        named = [operand.partition("=")[0] for operand in operands]
    elif builtin == "let":
        analyser.construct("arithmetic", display)
        assigned = named = [operand.partition("=")[0] for operand in operands]
    else:
        assigned = named = _named_variables(builtin, operands, values)
    if any(risky_variable(variable.removesuffix("+")) for variable in assigned):
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
    if callback.strip() and all(arg.static for arg in args):
        analyser.script_text(callback, later(state), context.inside("mapfile -C callback"))
    return later(state), later(state)


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
    return state, state


def _lookup(analyser: Analyser, args: list[Arg], state: State, context: Context) -> Flow:
    analyser.report(args, state, context)
    _operands_found, values = split_operands([arg.text for arg in args], "pfd")
    if ("p" in values and args[0].text == "hash") or ("f" in values and args[0].text == "enable"):
        analyser.construct("command-lookup-override", argv_text(arg.text for arg in args))
    return state, state


VALUE_OPTIONS = {
    "read": "adinNptu",
    "mapfile": "dnOsuCc",
    "readarray": "dnOsuCc",
    "printf": "v",
    "wait": "p",
}
DECLARATIONS = frozenset({"declare", "typeset", "local", "export", "readonly"})
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
    **dict.fromkeys(DECLARATIONS | VARIABLE_SETTERS, _variables),
}
