"""CLI commands ``tollgate keygen`` and ``tollgate audit verify|export`` (CONTRACT section 3).

``tollgate audit prove`` prints a consistency proof as a C2SP witness request.

``register(subparsers)`` adds them to the main parser; each sets ``func`` to a callable
taking the parsed arguments and returning the exit code: for ``audit verify`` 0 intact,
1 tampered, 2 usage; for the others 0 done, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.audit.export import FORMATS, export
from sidecar.audit.note import NoteError, Verifier, check_key_name
from sidecar.audit.prove import ProveError, witness_request
from sidecar.audit.records import parse_time_bound
from sidecar.audit.verify import verify_trail
from sidecar.errors import AuditCorrupt
from sidecar.keys import (
    KeyFileError,
    generate_keypair,
    load_public_key,
    public_key_base64,
    public_key_from_base64,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add ``keygen`` and ``audit`` (``verify``, ``export``) to ``subparsers``."""
    keygen = subparsers.add_parser(
        "keygen",
        help="generate an Ed25519 key pair",
        description="Write a new Ed25519 key pair: N.key (PKCS8 PEM, mode 0600) and "
        "N.pub (PEM). Use it as --signing-key for audit checkpoints, for policy "
        "signatures, or as an approver key.",
    )
    keygen.add_argument("--out", required=True, metavar="DIR", help="directory for the key files")
    keygen.add_argument(
        "--name", default="tollgate", metavar="N", help="file name stem (default: tollgate)"
    )
    keygen.add_argument(
        "--origin",
        metavar="ORIGIN",
        help="also write N.vkey, the C2SP verifier key for checkpoints of this origin "
        "(serve's --audit-origin, tollgate/<identity> by default), for standard "
        "signed-note tools",
    )
    keygen.add_argument(
        "--public-key",
        metavar="FILE",
        help="with --origin: write only N.vkey, for this existing public key (PEM); "
        "no new key pair",
    )
    keygen.set_defaults(func=run_keygen)

    audit = subparsers.add_parser("audit", help="verify, export or prove the audit trail")
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND")
    commands.required = True

    verify = commands.add_parser(
        "verify",
        help="check the hash chain and the signed checkpoints",
        description="Check canonical form, contiguous seq, the prev chain and every "
        "checkpoint's root and signature. Exit 0 intact, 1 tampered, 2 usage.",
    )
    verify.add_argument("dir", metavar="DIR", help="the audit directory (--audit-dir of serve)")
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="FILE",
        help="trusted checkpoint key: PEM, raw base64, or a C2SP verifier key "
        "(repeat for rotated keys); without it signatures are only checked against the "
        "keys recorded in the trail",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed checkpoint kept outside the volume, to check the trail against "
        "(repeatable); catches a trail cut short together with DIR/checkpoint",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=run_verify)

    export_parser = commands.add_parser(
        "export",
        help="export records as JSON Lines, CSV or OCSF",
        description="Export records with their seq and leaf hash, so each row can be "
        "proven against a checkpoint. Stops with exit 1 where the chain of records is "
        "broken (run audit verify for the full check). Writes to stdout unless --out is given.",
    )
    export_parser.add_argument("dir", metavar="DIR", help="the audit directory")
    export_parser.add_argument("--format", required=True, choices=FORMATS)
    export_parser.add_argument(
        "--since", metavar="T", help="only records at or after T (RFC 3339 or YYYY-MM-DD)"
    )
    export_parser.add_argument("--until", metavar="T", help="only records before T")
    export_parser.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export_parser.set_defaults(func=run_export)

    prove = commands.add_parser(
        "prove",
        help="consistency proof from an older checkpoint, as a witness request",
        description="Print the body of a C2SP tlog-witness add-checkpoint request: "
        "'old N', the RFC 6962 consistency proof from tree size N to the checkpoint's "
        "size (one base64 hash a line), an empty line, the signed checkpoint. Checks "
        "first that the trail's records give the checkpoint's root. Exit 0 done, "
        "1 the trail cannot prove it, 2 usage.",
    )
    prove.add_argument("dir", metavar="DIR", help="the audit directory")
    prove.add_argument(
        "--old", required=True, type=int, metavar="N", help="tree size of the older checkpoint"
    )
    prove.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the newer signed checkpoint (default: DIR/checkpoint)",
    )
    prove.set_defaults(func=run_prove)


def _error(message: str) -> None:
    print(f"tollgate: {message}", file=sys.stderr)


def run_keygen(args: argparse.Namespace) -> int:
    if args.public_key:
        return _write_verifier_key_only(args)
    try:
        if args.origin:
            check_key_name(args.origin)
        key_path, pub_path = generate_keypair(args.out, args.name)
    except (FileExistsError, KeyFileError, NoteError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write keys to {args.out}: {exc}")
        return EXIT_FAILED
    public = load_public_key(pub_path)
    print(f"private key: {key_path}  (PKCS8 PEM, mode 0600; keep it secret)")
    print(f"public key:  {pub_path}")
    if args.origin:
        verifier_key = Verifier(args.origin, public).encoded()
        vkey_path = pub_path.with_suffix(".vkey")
        vkey_path.write_text(verifier_key + "\n", encoding="ascii")
        print(f"verifier key: {vkey_path}  ({verifier_key})")
    print(f"public key, raw base64 (for policy approvers): {public_key_base64(public)}")
    return EXIT_OK


def _write_verifier_key_only(args: argparse.Namespace) -> int:
    """``keygen --public-key P --origin O``: the verifier key of a key that exists."""
    if not args.origin:
        _error("--public-key makes only a verifier key: give its --origin too")
        return EXIT_USAGE
    try:
        check_key_name(args.origin)
        public = load_public_key(Path(args.public_key))
    except (OSError, UnicodeDecodeError, KeyFileError, NoteError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    verifier_key = Verifier(args.origin, public).encoded()
    vkey_path = Path(args.out) / f"{args.name}.vkey"
    try:
        vkey_path.parent.mkdir(parents=True, exist_ok=True)
        vkey_path.write_text(verifier_key + "\n", encoding="ascii")
    except OSError as exc:
        _error(f"cannot write {vkey_path}: {exc}")
        return EXIT_FAILED
    print(f"verifier key: {vkey_path}  ({verifier_key})")
    return EXIT_OK


def _load_trusted_key(path: str) -> Ed25519PublicKey | Verifier:
    """A PEM key, the base64 of a raw key (either trusted for any origin), or a C2SP
    verifier key ``name+id+key`` (trusted for its origin only)."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if text.startswith("-----BEGIN"):
        return load_public_key(text)
    raw = public_key_from_base64(text)
    if raw is not None:
        return raw
    return Verifier.parse(text)


def run_verify(args: argparse.Namespace) -> int:
    try:
        keys = [_load_trusted_key(path) for path in args.public_key]
        # Files of notes often gain a trailing newline (jq -r, editors); a note ends in one.
        notes = [(path, Path(path).read_bytes().rstrip(b"\n") + b"\n") for path in args.checkpoint]
    except (OSError, KeyFileError, NoteError, UnicodeDecodeError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    try:
        report = verify_trail(args.dir, public_keys=keys, checkpoint_notes=notes)
    except FileNotFoundError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:  # a part of the trail that cannot be read proves nothing
        print(f"tampered: cannot read the trail: {exc}")
        return EXIT_FAILED
    if report.intact and not report.records:
        report.warnings.append(
            "the trail holds no records: a gate records its start, so it was wiped or "
            "never used (pass --public-key to make that a failure)"
        )
    if report.intact and report.last_signed_size == 0 and report.records:
        report.warnings.append(
            "no signed checkpoint: records removed from the end cannot be detected"
        )
    if report.intact and report.signatures == "embedded":
        report.warnings.append(
            "signatures checked against the keys recorded in the trail only; "
            "pass --public-key to prove who signed"
        )
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        print(report.summary())
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK if report.intact else EXIT_FAILED


def run_prove(args: argparse.Namespace) -> int:
    if not (Path(args.dir) / "segments").is_dir():
        _error(f"{args.dir} is not an audit directory (no segments/)")
        return EXIT_USAGE
    try:
        note = Path(args.checkpoint).read_bytes() if args.checkpoint else None
        body = witness_request(args.dir, args.old, note)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (ProveError, AuditCorrupt) as exc:
        _error(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        _error(f"cannot read the trail: {exc}")
        return EXIT_FAILED
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    try:
        since = parse_time_bound(args.since) if args.since else None
        until = parse_time_bound(args.until) if args.until else None
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if not (Path(args.dir) / "segments").is_dir():
        _error(f"{args.dir} is not an audit directory (no segments/)")
        return EXIT_USAGE
    try:
        if args.out:
            with open(args.out, "wb") as handle:
                export(args.dir, args.format, handle, since, until)
        else:
            stdout: BinaryIO = sys.stdout.buffer
            export(args.dir, args.format, stdout, since, until)
            stdout.flush()
    except AuditCorrupt as exc:
        _error(str(exc))
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`| head`): the CLI's main ends with the error status, 2,
        # as for every command. Not 1, which says the trail is broken.
        raise
    except OSError as exc:
        _error(f"export failed: {exc}")
        return EXIT_FAILED
    return EXIT_OK
