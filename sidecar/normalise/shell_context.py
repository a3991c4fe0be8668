"""Where the command analysis is in a script: context, working directories, labels.

Part of CONTRACT 2.2 "Commands" (see ``commands``): the set of directories a command may
run in (``cd`` can fail, so ``cd /x; y`` runs ``y`` in either), and the human text that
says where a command was found.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidecar.normalise.shell_descriptors import NO_HERE_DOCUMENTS, Descriptors
from sidecar.normalise.shell_wrappers import UNKNOWN_CWD

MAX_CWDS = 8
LABEL_LENGTH = 120

State = frozenset[str | None]  # possible working directories; None: the request gave none
Flow = tuple[State, State]  # the states after success and after failure


@dataclass(frozen=True)
class Context:
    """Where a command was found: script depth, nesting, and words for its label.

    ``repeated`` says why the commands here may run an unknown number of times ("in a
    while loop", "via xargs"; empty: at most once), for rate limits (``ratelimit``).
    ``held`` is what the descriptors the commands here inherit hold: the here-documents
    of the compound commands around them (``{ ...; } <<<text``) and of the command that
    started the shell whose script they are in (``bash -c '...' <<<text``).
    """

    depth: int = 0
    nesting: int = 0
    where: tuple[str, ...] = ()
    repeated: str = ""
    held: Descriptors = NO_HERE_DOCUMENTS

    def deeper(self) -> Context:
        return dataclasses.replace(self, nesting=self.nesting + 1)

    def inside(self, where: str) -> Context:
        return dataclasses.replace(
            self, depth=self.depth + 1, nesting=self.nesting + 1, where=(*self.where, f"in {where}")
        )

    def repeating(self, why: str) -> Context:
        """Code here may run any number of times; the outermost reason is the one kept."""
        return self if self.repeated else dataclasses.replace(self, repeated=why)

    def holding(self, held: Descriptors) -> Context:
        """The commands here inherit descriptors that hold ``held``."""
        return dataclasses.replace(self, held=held)

    def reading(self, how: str) -> Context:
        return dataclasses.replace(self, where=(*self.where, how))

    def via(self, program: str) -> Context:
        return dataclasses.replace(self, where=(*self.where, f"via {program}"))


def union(*states: State) -> State:
    merged: State = frozenset().union(*states)
    return merged if len(merged) <= MAX_CWDS else frozenset({UNKNOWN_CWD})


def later(state: State) -> State:
    """The directories of code that runs later (a function, a trap): these or any."""
    return union(state, frozenset({UNKNOWN_CWD}))


def ordered_cwds(state: State) -> tuple[str | None, ...]:
    return tuple(ordered(state))


def ordered(state: State) -> list[str | None]:
    return sorted(state, key=lambda cwd: (cwd is not None, cwd != UNKNOWN_CWD, cwd or ""))


def shorten(text: str, limit: int = LABEL_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def argv_text(texts: Iterable[str]) -> str:
    return shorten(shlex.join(texts))


def command_label(texts: Sequence[str], context: Context) -> str:
    return argv_text(texts) + (f" ({', '.join(context.where)})" if context.where else "")
