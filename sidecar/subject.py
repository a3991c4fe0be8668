"""What the evaluator sees: one action and the values of its fields.

Normalisation turns one /check request into one or more ``Subject``s (a path and its
realPath, every simple command of a command line, a redirection's file.write, a URL
path and its decoded and ``;``-stripped forms, an exec GET that is also a create).
Each is evaluated and the strictest decision wins.

Every field value is a tuple of strings:

* for most fields, a 1-tuple: ``("/app/data/x.csv",)``;
* for ``host``, the canonical host followed by its equivalent forms (an IPv4-mapped or
  NAT64 IPv6 address is followed by its IPv4, an unspecified address by the loopback
  it reaches; see ``host_forms``): a positive matcher holds when any form matches, and
  ``not`` negates that, so ``::ffff:10.0.0.1`` is treated as ``10.0.0.1`` and
  ``0.0.0.0`` as ``127.0.0.1`` whatever the rule says;
* for ``args``, the arguments after argv[0], in order: string matchers hold when any
  argument matches, ``prefix`` compares the leading tokens;
* for ``command``, argv[0] as given (bare name or normalised absolute path); the
  evaluator derives the bare-name form for trusted directories.

A field the request lacks is simply absent, and a rule that matches it does not match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FieldValues = tuple[str, ...]

FILE_ACTIONS = ("file.read", "file.write", "file.delete")
PROCESS_EXEC = "process.exec"
NETWORK_REQUEST = "network.request"
K8S_REQUEST = "k8s.request"
ACTIONS: tuple[str, ...] = (*FILE_ACTIONS, PROCESS_EXEC, NETWORK_REQUEST, K8S_REQUEST)

# The fields a rule may match, per action (CONTRACT section 1). ``agent`` is on all.
ACTION_FIELDS: Mapping[str, frozenset[str]] = {
    **{a: frozenset({"path", "agent"}) for a in FILE_ACTIONS},
    PROCESS_EXEC: frozenset({"command", "args", "cwd", "agent"}),
    NETWORK_REQUEST: frozenset({"host", "port", "scheme", "method", "path", "agent"}),
    K8S_REQUEST: frozenset(
        {"verb", "group", "version", "resource", "namespace", "name", "path", "agent"}
    ),
}


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing to decide: an action and its normalised field values.

    ``label`` says where the subject came from when a request yields several
    (``"realPath"``, ``"command 2: rm -rf /"``, ``"redirection > /etc/passwd"``); it ends
    up in reasons and explain traces so a person sees which part decided.
    """

    action: str
    fields: Mapping[str, FieldValues]
    label: str = ""
    # Names of statically unanalysable constructs (``$(...)``, ``eval`` ...) that this
    # subject stands for; only a rule naming them can allow it.
    constructs: tuple[str, ...] = field(default=())
    # Decided only for the deny or require_approval rules it matches: a URL path as
    # sent ("/admin/"), next to the form rules take ("/admin"). Rules written for the
    # path as sent still hold it back; nothing it fails to match counts against it.
    restrictions_only: bool = False
    # Why the action may happen an unknown number of times (a command in a loop, run by
    # xargs or find -exec ...); empty: at most once. A rate-limited allow rule cannot
    # count its tokens, so it denies such a subject (``evaluator``).
    repeated: str = ""
    # How many actions it stands for: a file that several redirections of one command
    # line open is one subject, and each redirection spends a rate limit's token.
    count: int = 1
    # With ``restrictions_only``: a part of the request of its own (what it may also
    # do: a patch as the create it may be, a proxied object under its own name), whose
    # deny or approval competes with the other parts' decisions, strictest first,
    # instead of deciding the first subject as another spelling of it does (where a
    # rule's approval outranks the default's deny: localhost is the loopback).
    apart: bool = False
