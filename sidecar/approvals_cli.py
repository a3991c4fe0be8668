"""``tollgate approvals list|approve|deny`` (CONTRACT sections 2.4 and 3).

``approve`` and ``deny`` fetch the approval, show the exact request being decided,
check that it is the request the gate bound the approval to (its hash, which covers
the request as shown, secrets redacted, is recomputed here, so neither a wrong
``--url`` nor anything in between can show one request and have another signed),
then sign the decision with the approver's Ed25519 key and post it. What the gate
answered is printed with every character a terminal would act on escaped (see
``_visible``), so the request read is the request signed. Exit codes: 0 done, 1 the
gate refused or the approval is not pending (or the approver said no at the prompt),
2 a usage, key or connection error.

The ``tollgate`` parser registers these commands on every run, so the gate's modules
are imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sidecar.deadline import DeadlineExceeded, call_within, timeout_seconds
from sidecar.visible import (
    REDACTION_MARK,
    hidden_values,
    printable_json_text,
    visible,
    visible_json,
)

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:9800"


class CommandFailed(Exception):
    """Stops a command: the message goes to stderr and ``exit_code`` is returned."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _reporting(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandFailed as exc:
            print(f"tollgate approvals: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    approvals = subparsers.add_parser("approvals", help="list, approve and deny approvals")
    sub = approvals.add_subparsers(
        dest="approvals_command", required=True, parser_class=type(approvals)
    )
    listing = sub.add_parser("list", help="show approvals (pending ones by default)")
    _add_url(listing)
    listing.add_argument(
        "--status",
        default="pending",
        help="pending (default), approved, denied, expired, redeemed or all",
    )
    listing.add_argument("--json", action="store_true", help="print the gate's JSON answer")
    # CONTRACT 3 gives the three commands one command line: an approver's alias passing
    # --key and --name to each must work for list too, which signs nothing.
    listing.add_argument("--key", help="accepted, not used: list signs nothing")
    listing.add_argument("--name", help="accepted, not used: list signs nothing")
    listing.set_defaults(func=_reporting(_cmd_list))
    for verb in ("approve", "deny"):
        command = sub.add_parser(verb, help=f"sign and send '{verb}' for one approval")
        command.add_argument("id", help="the approval id, apr_...")
        _add_url(command)
        command.add_argument("--key", required=True, help="your Ed25519 private key (PKCS8 PEM)")
        command.add_argument("--name", required=True, help="your name in the policy's approvers")
        command.add_argument("--reason", help="why (recorded; not covered by the signature)")
        command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        command.add_argument(
            "--accept-redacted",
            action="store_true",
            help="approve although values of the request are hidden as secrets "
            "([REDACTED:...]), which you cannot see; without it such a request is not signed",
        )
        command.set_defaults(func=_reporting(_cmd_decide), decision=verb)


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("TOLLGATE_URL") or DEFAULT_URL,
        help=f"the gate ($TOLLGATE_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=10.0,
        help="seconds each call to the gate may take, start to finish (default 10)",
    )


def _call(
    method: str, url: str, timeout: float, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, JSON object); CommandFailed when the gate cannot be asked, does not
    answer within ``timeout`` (the whole exchange), or answers something that is not a
    JSON object."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )

    def exchange() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        status, raw = call_within(timeout, exchange)
    except DeadlineExceeded:
        unknown = " (the decision may or may not have been recorded)" if method == "POST" else ""
        raise CommandFailed(f"{url} did not answer within {timeout:g} s{unknown}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise CommandFailed(f"cannot reach {url}: {exc!r}") from None
    try:
        payload = json.loads(raw)
    except ValueError:
        raise CommandFailed(f"{url} answered HTTP {status}, not JSON") from None
    if not isinstance(payload, dict):
        raise CommandFailed(f"{url} answered HTTP {status}, not a JSON object")
    return status, payload


def _expect_ok(status: int, payload: dict[str, Any], exit_code: int, prefix: str = "") -> None:
    if status == 200:
        return
    error = payload.get("error")
    text = f"HTTP {status}"
    if isinstance(error, dict):
        text += f" {visible(error.get('code'))}: {visible(error.get('message'))}"
    raise CommandFailed(prefix + text, exit_code)


# -- showing what the gate answered ---------------------------------------------------------
#
# Nearly everything an approval shows comes from the agent (its request, the policy's
# reason quoting it) or from whatever answers at --url: see sidecar.visible.


def _describe(view: dict[str, Any]) -> str:
    shown = {key: visible(value) for key, value in view.items() if value is not None}
    rule = shown.get("rule") or "defaultAction"
    # The agent's free-form context is shown after its action, on lines of its own: a
    # long one printed within the request (sorted first) scrolled the action away.
    raw_request = view.get("request")
    context = raw_request.get("context") if isinstance(raw_request, dict) else None
    if isinstance(raw_request, dict):
        raw_request = {k: v for k, v in raw_request.items() if k != "context"}
    request = visible_json(raw_request, sort_keys=True)
    lines = [
        f"approval   {shown.get('id')}  ({shown.get('status')}, expires {shown.get('expiresAt')})",
        f"agent      {shown.get('identity')}",
        f"action     {shown.get('action')}",
        f"rule       {rule}  (risk: {shown.get('risk') or 'not set'})",
        f"reason     {shown.get('policyReason')}",
        f"hash       {shown.get('requestHash')}",
        "request    " + request.replace("\n", "\n           "),
    ]
    if context is not None:
        shown_context = visible_json(context, sort_keys=True)
        lines.append("context    " + shown_context.replace("\n", "\n           "))
    if shown.get("approver"):
        lines.append(f"decided    by {shown['approver']} at {shown.get('decidedAt')}")
    if shown.get("reason"):
        lines.append(f"note       {shown['reason']}")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    query = "" if args.status == "all" else f"?status={args.status}"
    status, payload = _call("GET", args.url.rstrip("/") + "/v1/approvals" + query, args.timeout)
    _expect_ok(status, payload, EXIT_ERROR)
    if args.json:
        print(visible_json(payload))
        return EXIT_OK
    found = payload.get("approvals", [])
    if not found:
        print(f"no {'' if args.status == 'all' else args.status + ' '}approvals")
        return EXIT_OK
    print("\n\n".join(_describe(view) for view in found))
    return EXIT_OK


def _hash_problem(view: dict[str, Any]) -> str | None:
    """Why the shown request may not be the one signed for, or None when it is.

    The gate hashes the request as shown, secrets redacted, so this holds for every
    request; one that does not match is never signed (a gate of a version that hashed
    the raw request is refused too: it published a hash that undoes redaction)."""
    from sidecar.approvals.model import request_hash

    action, request, claimed = view.get("action"), view.get("request"), view.get("requestHash")
    if not isinstance(action, str) or not isinstance(request, dict):
        return "the gate's answer has no action and request"
    if request_hash(action, request) == claimed:
        return None
    problem = "the request shown does not match the gate's request hash; not signing"
    if REDACTION_MARK in json.dumps(request, ensure_ascii=False):
        problem += (
            " (an older gate hashes the raw request, secrets included, which the request "
            "shown cannot match: upgrade the gate and ask for a new approval)"
        )
    return problem


# What a request acts on, by action: the line shown right above the prompt.
_TARGETS = {
    # Where it runs, and where a file action lands (a symlink's target): a long context
    # must not push them out of view above the prompt (red-team review of 2026-12-07).
    "process.exec": ("commandLine", "argv", "cwd"),
    "network.request": ("method", "url", "host", "port"),
    # The path as sent first: for a proxy it is what the request does (a kubelet's
    # /run/... command), and the record after it may fill the line.
    "k8s.request": ("k8sMethod", "k8sPath", "k8sQuery", "k8s"),
}
_FILE_TARGETS = ("path", "realPath", "linkedPath", "writtenPath")
_SUMMARY_CHARS = 300


def _summary(view: dict[str, Any]) -> str:
    """One line naming the action and what it acts on, cut at ``_SUMMARY_CHARS``."""
    request = view.get("request")
    action = view.get("action")
    if not isinstance(request, dict):
        return visible(action)
    names = _TARGETS.get(action, _FILE_TARGETS) if isinstance(action, str) else ()
    parts = [
        (f"{name} " if name in ("cwd", "realPath", "linkedPath", "writtenPath") else "")
        + printable_json_text(json.dumps(request[name], ensure_ascii=False, sort_keys=True))
        for name in names
        if name in request
    ]
    text = f"{visible(action)} {' '.join(parts)}"
    if len(text) > _SUMMARY_CHARS:
        text = f"{text[:_SUMMARY_CHARS]} ... ({len(text) - _SUMMARY_CHARS} more characters above)"
    return text


def _confirm(verb: str) -> bool:
    try:
        answer = input(f"{verb} this request? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _cmd_decide(args: argparse.Namespace) -> int:
    from sidecar.approvals.signing import sign_decision
    from sidecar.keys import KeyFileError, load_private_key

    try:
        key = load_private_key(args.key)
    except (OSError, KeyFileError) as exc:
        raise CommandFailed(str(exc)) from None
    endpoint = args.url.rstrip("/") + "/v1/approvals/" + quote(args.id, safe="")
    status, view = _call("GET", endpoint, args.timeout)
    _expect_ok(status, view, EXIT_REFUSED if status == 404 else EXIT_ERROR)
    print(_describe(view))
    problem = _hash_problem(view)
    if problem is not None:
        raise CommandFailed(problem)
    if view.get("status") != "pending":
        status_shown = visible(view.get("status"))
        raise CommandFailed(f"{args.id} is {status_shown}, not pending", EXIT_REFUSED)
    hidden = hidden_values(view.get("request"))
    if hidden:
        print(
            f"\nWARNING: {len(hidden)} value(s) of this request are hidden as secrets: "
            f"{', '.join(hidden[:8])}{' ...' if len(hidden) > 8 else ''}. The agent chose "
            "them and you cannot see them; one may be what the action acts on "
            "(rm -- --token /home shows /home as a secret)."
        )
        if args.decision == "approve" and not args.accept_redacted:
            raise CommandFailed(
                "not signing: values of the request are hidden (above); deny it and ask "
                "the agent for the request without them, or pass --accept-redacted to "
                "approve what you cannot see",
                EXIT_REFUSED,
            )
    print(f"\n{args.decision} {_summary(view)}")
    if not args.yes and sys.stdin.isatty() and not _confirm(args.decision.capitalize()):
        print("nothing sent")
        return EXIT_REFUSED
    decision = {
        "decision": args.decision,
        "approver": args.name,
        "signature": sign_decision(key, args.id, args.name, args.decision, view["requestHash"]),
    }
    if args.reason:
        decision["reason"] = args.reason
    status, answer = _call("POST", endpoint, args.timeout, decision)
    _expect_ok(status, answer, EXIT_REFUSED, "refused: ")
    print(f"{args.id}: {visible(answer.get('status'))} by {visible(answer.get('approver'))}")
    return EXIT_OK
