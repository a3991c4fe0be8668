"""``tollgate``: the command line (CONTRACT section 3), a thin shell over the library.

Exit codes follow the contract: ``check`` 0 allow, 1 deny, 2 error; ``policy
validate`` 0 valid, 1 invalid, 2 usage; ``audit verify`` 0 intact, 1 tampered, 2 usage.
Any command whose standard output is closed before it has written it (``| head``) exits
2, quietly: the contract's error, never 0, and without a traceback.
Every ``serve`` flag also reads ``TOLLGATE_<FLAG>`` from the environment.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, Any

from sidecar import __version__
from sidecar.deadline import DeadlineExceeded, call_within, timeout_seconds
from sidecar.errors import PolicyError, RequestError
from sidecar.gate_answer import gate_opener
from sidecar.visible import printable_json_text, printable_text

EXIT_ALLOW, EXIT_DENY, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is also our 'error' code everywhere."""

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        # argparse drops a failed write, so --help and --version into a closed pipe
        # exited 0 with their output lost (stdout unbuffered, as PYTHONUNBUFFERED=1 in the
        # image makes it); main turns the error into the exit 2 of every other command.
        if message and file is sys.stdout:
            if file is None:  # started with stdout closed (>&-)
                raise OSError(errno.EBADF, "standard output is closed")
            file.write(message)
            return
        super()._print_message(message, file)


def _env(flag: str) -> str | None:
    return os.environ.get("TOLLGATE_" + flag.upper().replace("-", "_")) or None


def _port(text: str) -> int:
    """A TCP port, 1-65535, from the flag or ``TOLLGATE_PORT``.

    argparse converts a string default with this too, and only when ``serve`` runs, so
    a bad ``TOLLGATE_PORT`` is a usage error of ``serve`` (exit 2), not a crash of
    every command; a port out of range is refused before the trail is opened.
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 1-65535")
    return port


def _positive_bytes(text: str) -> int:
    """A positive number of bytes, from the flag or ``TOLLGATE_SEGMENT_BYTES``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of bytes")
    return value


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _log_level(value: str) -> str:
    """One of uvicorn's level names, in any case: checked before the trail is opened."""
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gate daemon",
        description="Run the gate daemon. Every flag can also be set as TOLLGATE_<FLAG>.",
    )

    def flag(name: str, help: str, default: str | None = None, **options: Any) -> None:
        variable = "TOLLGATE_" + name.upper().replace("-", "_")
        shown = f"; default {default}" if default is not None else ""
        serve.add_argument(
            f"--{name}",
            default=_env(name) or default,
            help=f"{help} (${variable}{shown})",
            **options,
        )

    flag("policy", "policy YAML file")
    flag("audit-dir", "audit trail directory")
    flag("host", "address to listen on; keep it loopback in a pod", "127.0.0.1")
    flag("port", "port to listen on, 1-65535", "9800", type=_port)
    flag("signing-key", "Ed25519 PKCS8 PEM key that signs the checkpoints")
    flag("policy-public-key", "accept only policies whose FILE.sig verifies with this key")
    flag("require-policy-hash", "accept only the policy with this sha256:<hex> hash")
    flag(
        "segment-bytes",
        "rotate audit segments at this size",
        str(64 * 2**20),
        type=_positive_bytes,
    )
    flag(
        "audit-origin",
        "checkpoint origin, the signed-note key name (default tollgate/<identity>); "
        "set a stable one when the pod name changes with every restart",
    )
    flag(
        "metrics-port",
        "also serve the Prometheus metrics, and nothing else, on this port, for a scraper "
        "outside the pod (off unless set)",
        type=_port,
    )
    flag("metrics-host", "address of the metrics port", "0.0.0.0")
    flag(
        "log-level",
        "critical, error, warning, info, debug or trace (trace also logs every request)",
        "warning",
        type=_log_level,
    )
    serve.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.identity import resolve_identity
    from sidecar.server import ServeConfig, serve

    missing = [
        f"{flag} (or {variable})"
        for flag, variable, value in (
            ("--policy", "TOLLGATE_POLICY", args.policy),
            ("--audit-dir", "TOLLGATE_AUDIT_DIR", args.audit_dir),
        )
        if not value
    ]
    if missing:
        print(f"tollgate serve: {' and '.join(missing)} required", file=sys.stderr)
        return EXIT_ERROR
    # Set but empty (`--require-policy-hash "$(HASH)"` with HASH unset, a template's
    # `value: ""`) meant "check this": running without the check would accept any policy.
    # An empty origin would silently fall back to tollgate/<identity>, which changes with
    # the pod's name, and no verifier key bound to the chosen origin would match.
    for flag, variable, otherwise in (
        ("--signing-key", "TOLLGATE_SIGNING_KEY", "run without signed checkpoints"),
        ("--policy-public-key", "TOLLGATE_POLICY_PUBLIC_KEY", "run without signed policies"),
        (
            "--require-policy-hash",
            "TOLLGATE_REQUIRE_POLICY_HASH",
            "run without a pinned policy hash",
        ),
        ("--audit-origin", "TOLLGATE_AUDIT_ORIGIN", "use the default origin tollgate/<identity>"),
    ):
        given = getattr(args, flag[2:].replace("-", "_"))
        from_env = os.environ.get(variable)
        if (given is not None and not given.strip()) or (
            given is None and from_env is not None and not from_env.strip()
        ):
            print(
                f"tollgate serve: {flag} / ${variable} is set but empty; give a value, "
                f"or leave it out entirely to {otherwise}",
                file=sys.stderr,
            )
            return EXIT_ERROR
    if args.require_policy_hash:
        pinned = _pinned_hash(args.require_policy_hash)
        if pinned is None:
            print("tollgate serve: --require-policy-hash takes sha256:<64 hex>", file=sys.stderr)
            return EXIT_ERROR
        args.require_policy_hash = pinned
    return serve(
        ServeConfig(
            policy=args.policy,
            audit_dir=args.audit_dir,
            host=args.host,
            port=args.port,
            signing_key=args.signing_key,
            policy_public_key=args.policy_public_key,
            require_policy_hash=args.require_policy_hash,
            segment_bytes=args.segment_bytes,
            audit_origin=args.audit_origin,
            identity=resolve_identity(),
            log_level=args.log_level,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    )


def _pinned_hash(text: str) -> str | None:
    """``sha256:<64 hex>`` in lower case, or None if ``text`` is not of that form."""
    prefix, _, digest = text.partition(":")
    if prefix != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        return None
    # sha256sum prints lower case; a hash copied in upper case names the same bytes.
    return "sha256:" + digest.lower()


def _add_check(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="decide one request: exit 0 allow, 1 deny, 2 error")
    where = check.add_mutually_exclusive_group(required=True)
    where.add_argument("--policy", help="evaluate offline against this policy file")
    where.add_argument("--url", help="ask a running gate, e.g. http://127.0.0.1:9800")
    check.add_argument("request", help="the request JSON, or - to read it from stdin")
    check.add_argument(
        "--explain",
        action="store_true",
        help="with --policy: list every rule considered (on stderr)",
    )
    check.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=5.0,
        help="with --url: seconds the whole exchange may take (default 5)",
    )
    check.set_defaults(func=_cmd_check)


def _print_json(value: Any) -> None:
    # The answer quotes the agent's request: nothing in it may act on the terminal.
    print(printable_json_text(json.dumps(value, indent=2, ensure_ascii=False)))


def _cmd_check(args: argparse.Namespace) -> int:
    # The bytes as given: one that is not UTF-8 is refused as an invalid request (exit
    # 2) by the gate or parse_json_body, not a crash encoding the text back.
    body = sys.stdin.buffer.read() if args.request == "-" else os.fsencode(args.request)
    if args.url:
        if args.explain:
            # The gate answers without a trace; a flag must not be dropped in silence.
            print(
                "tollgate check: --explain lists the rules considered only with --policy "
                "FILE (a running gate's answer carries no trace)",
                file=sys.stderr,
            )
        return _check_remote(args.url, body, args.timeout)
    from sidecar.identity import resolve_identity
    from sidecar.policy.loader import load_policy_file
    from sidecar.ratelimit import evaluate_with_fresh_limits
    from sidecar.request import parse_json_body

    try:
        policy = load_policy_file(args.policy)
    except PolicyError as exc:
        _print_policy_error(exc)
        return EXIT_ERROR
    try:
        # As a freshly started gate answers: rate limits full, but counted.
        verdict = evaluate_with_fresh_limits(
            policy,
            parse_json_body(body),
            identity=resolve_identity(),
            explain=args.explain,
        )
    except RequestError as exc:
        print(f"tollgate check: invalid request: {printable_text(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    _print_json(
        {
            "allowed": verdict.allowed,
            "decision": verdict.decision,
            "reason": verdict.reason,
            "rule": verdict.rule,
            "risk": verdict.risk,
            "mode": verdict.mode,
            "policy": verdict.policy_hash,
            "request": verdict.answered_request(),  # as the daemon answers
        }
    )
    if args.explain:
        # On stderr: stdout stays the answer alone, for jq and scripts.
        print("\n".join(printable_text(line) for line in verdict.trace), file=sys.stderr)
    return EXIT_ALLOW if verdict.allowed else EXIT_DENY


def _check_remote(url: str, body: bytes, timeout: float) -> int:
    """Ask a running gate; anything but a 200 with allowed: true exits 1 (deny) or 2.

    ``timeout`` bounds the whole exchange (``call_within``), not each socket read.
    """
    try:
        code, payload, problem = call_within(timeout, lambda: _ask(url, body, timeout))
    except DeadlineExceeded:
        print(
            f"tollgate check: the gate did not answer within {timeout:g} s; treating as deny",
            file=sys.stderr,
        )
        return EXIT_DENY
    if problem is not None:
        print(problem, file=sys.stderr)
    else:
        _print_json(payload)
    return code


# The gate is asked directly and only once, and its answer read as the clients read it
# (sidecar/gate_answer.py): no proxy from the environment, no redirect followed (a 3xx
# is an HTTPError, a deny, and the host it names is never asked), a head that breaks
# RFC 9112 refused.
_GATE_OPENER = gate_opener()


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        # json.loads keeps the last of two equal keys: {"allowed":false,"allowed":true}
        # would read as an allow. An answer that says two things is not trusted.
        raise ValueError("the answer has a key twice in one object")
    return value


# The clients refuse an answer nested deeper than this, or with a run of more digits in
# a number (docs/clients.md): a gate's answer nests two levels and holds no long number,
# and past these the Python and JS parsers read one body differently.
_MAX_ANSWER_DEPTH = 32
_LONG_DIGITS = re.compile(r"[0-9]{4301}")


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    if _LONG_DIGITS.search(text):
        raise ValueError("the answer has a number of more than 4300 digits")
    return kind(text)


def _strict_json(data: bytes) -> Any:
    try:
        value = json.loads(
            data,
            object_pairs_hook=_unique_keys,
            parse_int=lambda text: _number(text, int),
            parse_float=lambda text: _number(text, float),
        )
    except RecursionError:
        raise ValueError(f"the answer nests deeper than {_MAX_ANSWER_DEPTH} levels") from None
    if _deeper_than(value, _MAX_ANSWER_DEPTH):
        raise ValueError(f"the answer nests deeper than {_MAX_ANSWER_DEPTH} levels")
    return value


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``levels`` deep (itself one)."""
    if not isinstance(value, dict | list):
        return False
    if levels == 0:
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(item, levels - 1) for item in items)


def _loopback_address(url: str) -> str:
    """``url`` with a ``localhost`` host written as 127.0.0.1, where the gate listens.

    Looked up, ``localhost`` is ``::1`` first in a pod (the kubelet's /etc/hosts), an
    address any process in the pod may take at the gate's port (as the clients do).
    """
    parts = urllib.parse.urlsplit(url)
    if (parts.hostname or "").rstrip(".").lower() != "localhost":
        return url
    netloc = "127.0.0.1" + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _ask(url: str, body: bytes, timeout: float) -> tuple[int, Any, str | None]:
    """(exit code, the answer to print, or else a problem for stderr); never raises."""
    try:
        url = _loopback_address(url)
    except ValueError as exc:  # a port that is not a number
        return EXIT_DENY, None, f"tollgate check: bad --url ({exc}); treating as deny"
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/check",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _GATE_OPENER.open(request, timeout=timeout) as response:
            # A gate answers 200 with a length; another 2xx, or an answer that ends only
            # when the connection does (a cut cannot be told from the end), is not one.
            if response.status != 200:
                problem = f"tollgate check: the gate answered HTTP {response.status}, not 200"
                return EXIT_DENY, None, problem + "; treating as deny"
            if response.getheader("Content-Length") is None:
                problem = "tollgate check: the answer has no Content-Length; treating as deny"
                return EXIT_DENY, None, problem
            coding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if coding != "identity":
                # A coded body is not the JSON it may read as (the clients refuse it too).
                problem = f"tollgate check: the answer is {coding}-encoded; treating as deny"
                return EXIT_DENY, None, problem
            payload = _strict_json(response.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = _strict_json(exc.read())
        except (OSError, ValueError):
            payload = {"error": {"code": "http", "message": f"HTTP {exc.code}"}}
        return (EXIT_ERROR if exc.code in (400, 413) else EXIT_DENY), payload, None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        problem = (
            f"tollgate check: gate unreachable or answer unreadable ({exc!r}); treating as deny"
        )
        return EXIT_DENY, None, problem
    allowed = isinstance(payload, dict) and payload.get("allowed") is True
    return (EXIT_ALLOW if allowed else EXIT_DENY), payload, None


def _print_policy_error(error: PolicyError) -> None:
    for problem in error.problems:
        print(f"{error.source}: {problem}", file=sys.stderr)


def _add_policy(sub: argparse._SubParsersAction) -> None:
    policy = sub.add_parser("policy", help="validate, test and sign policies")
    psub = policy.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    validate = psub.add_parser(
        "validate",
        help="check policy files (and the shape of *.test.yaml files); exit 0 valid, 1 invalid",
    )
    validate.add_argument("files", nargs="+")
    validate.add_argument(
        "--policy-public-key",
        help="also require FILE.sig to verify with this key, as serve does",
    )
    validate.add_argument(
        "--require-policy-hash", help="also require this sha256:<hex> hash, as serve does"
    )
    validate.set_defaults(func=_cmd_policy_validate)
    test = psub.add_parser("test", help="run every *.test.yaml under the paths given")
    test.add_argument("paths", nargs="+")
    test.set_defaults(func=_cmd_policy_test)
    sign = psub.add_parser("sign", help="write FILE.sig, the base64 Ed25519 signature of FILE")
    sign.add_argument("file")
    sign.add_argument("--key", required=True, help="Ed25519 private key (PKCS8 PEM)")
    sign.set_defaults(func=_cmd_policy_sign)


def _cmd_policy_validate(args: argparse.Namespace) -> int:
    from sidecar import keys
    from sidecar.policy.loader import load_policy_file
    from sidecar.policy.source import PolicySource
    from sidecar.policytest import TEST_FILE_SUFFIX

    # With --policy-public-key or --require-policy-hash a file is read exactly as the gate
    # reads it (PolicySource), so CI can tell before a rollout that gates will accept it.
    public_key = None
    if args.policy_public_key is not None:
        try:
            public_key = keys.load_public_key(args.policy_public_key)
        except (OSError, ValueError) as exc:
            print(f"tollgate policy validate: {exc}", file=sys.stderr)
            return EXIT_ERROR
    pinned = None
    if args.require_policy_hash is not None:
        pinned = _pinned_hash(args.require_policy_hash)
        if pinned is None:
            print(
                "tollgate policy validate: --require-policy-hash takes sha256:<64 hex>",
                file=sys.stderr,
            )
            return EXIT_ERROR
    as_served = public_key is not None or pinned is not None

    failed = False
    for path in args.files:
        # `validate policies/*.yaml` also names the test files next to the policies.
        if path.endswith(TEST_FILE_SUFFIX):
            failed |= not _validate_test_file(path)
            continue
        if path.endswith(".test.yml"):
            # Read as a policy it would only list schema errors; say what it is instead.
            print(f"{path}: a test file must end in {TEST_FILE_SUFFIX}", file=sys.stderr)
            failed = True
            continue
        try:
            if as_served:
                source = PolicySource(path, public_key=public_key, required_hash=pinned)
                policy = source.read()
            else:
                policy = load_policy_file(path)
        except PolicyError as exc:
            _print_policy_error(exc)
            failed = True
            continue
        for warning in policy.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        checked = [
            *(["signature verified"] if public_key is not None else []),
            *(["the required hash"] if pinned is not None else []),
        ]
        shown = f" ({', '.join(checked)})" if checked else ""
        print(f"{path}: valid, {len(policy.rules)} rules, {policy.hash}{shown}")
    return 1 if failed else 0


def _validate_test_file(path: str) -> bool:
    """Check a policy test file's shape; its cases run with ``tollgate policy test``."""
    from pathlib import Path

    from sidecar.policytest import PolicyTestFileError, load_test_file

    try:
        loaded = load_test_file(Path(path))
    except PolicyTestFileError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return False
    print(f"{path}: a policy test file, {len(loaded.cases)} cases (run: tollgate policy test)")
    return True


def _cmd_policy_test(args: argparse.Namespace) -> int:
    from sidecar.policytest import run_policy_tests

    return run_policy_tests(args.paths, sys.stdout)


def _cmd_policy_sign(args: argparse.Namespace) -> int:
    import base64
    import tempfile

    from sidecar import keys
    from sidecar.policy.loader import (
        MAX_POLICY_BYTES,
        load_policy_bytes,
        read_regular_file,
    )
    from sidecar.policy.source import signature_path

    try:
        private_key = keys.load_private_key(args.key)
    except (OSError, ValueError) as exc:
        print(f"tollgate policy sign: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        # As the gate reads it: a FIFO or a device is refused, not waited on forever.
        data, _ = read_regular_file(args.file, MAX_POLICY_BYTES + 1)
    except OSError as exc:
        print(f"tollgate policy sign: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    # The bytes signed are the bytes validated: a signature on a policy every gate
    # would reject only hides the mistake until the ConfigMap is rolled out.
    try:
        policy = load_policy_bytes(data, args.file)
    except PolicyError as exc:
        _print_policy_error(exc)
        print(
            f"tollgate policy sign: {args.file} is not a valid policy, not signed", file=sys.stderr
        )
        return EXIT_ERROR
    # Signing is the reviewer's approval: what `validate` warns about is shown here too.
    for warning in policy.warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    out = signature_path(args.file)
    encoded = base64.b64encode(private_key.sign(data)) + b"\n"
    # Written beside it and renamed over it: a gate following the directory never reads
    # a half-written .sig, and a .sig that is a link is replaced, not written through.
    try:
        fd, scratch = tempfile.mkstemp(
            prefix=".tollgate-sig-", dir=os.path.dirname(os.path.abspath(out))
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded)
            os.chmod(scratch, 0o644)
            os.replace(scratch, out)
        except BaseException:
            os.unlink(scratch)
            raise
    except OSError as exc:
        print(f"tollgate policy sign: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {out} (signs {policy.hash})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tollgate", description="Deny-by-default gate for AI agents.")
    parser.add_argument("--version", action="version", version=f"tollgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_serve(sub)
    _add_check(sub)
    _add_policy(sub)
    try:
        from sidecar.audit.commands import register as register_audit
    except ImportError:  # pragma: no cover - only while the audit package is incomplete
        pass
    else:
        register_audit(sub)
    from sidecar.approvals_cli import register as register_approvals

    register_approvals(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)  # --help and --version print too
            return int(args.func(args))
        finally:
            if sys.stdout is not None:  # None: started with stdout closed
                sys.stdout.flush()  # a closed pipe shows here, not in the flush at exit
    except BrokenPipeError:
        # The reader went away (`tollgate check ... | head`): end quietly with the
        # contract's error status (not a shell's 141: the codes are 0, 1, 2).
        _discard_stdout()
        return EXIT_ERROR
    except OSError as exc:
        # Standard output full or closed (> /dev/full, >&-), or another I/O failure no
        # command handled: the contract's error status with the reason, not a traceback
        # and 1, which `check` means as deny.
        print(f"tollgate: error: {exc}", file=sys.stderr)
        _discard_stdout()
        return EXIT_ERROR


def _discard_stdout() -> None:
    """Point stdout at /dev/null: Python flushes it again at exit and would complain of
    the same failure (the recipe of the signal module's documentation)."""
    if sys.stdout is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no descriptor behind it: nothing left to flush into
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
