"""Explicit error classes shared by the engine, the audit log, the CLI and the HTTP app."""

from __future__ import annotations


class TollgateError(Exception):
    """Base class of every error Tollgate raises on purpose."""


class PolicyError(TollgateError):
    """A policy file failed to load or validate; nothing of it is used.

    ``problems`` lists every problem found, each naming the file, the rule and the key.
    ``rejected_hash`` is the ``sha256:`` hash of the bytes refused, when they were read;
    ``signature_sha256`` the hex SHA-256 of the ``.sig`` read with them ("" when it could
    not be read, None when no signature is required).
    """

    def __init__(
        self, source: str, problems: list[str], *, rejected_hash: str | None = None
    ) -> None:
        self.source = source
        self.problems = problems
        self.rejected_hash = rejected_hash
        self.signature_sha256: str | None = None
        super().__init__(f"{source}: " + "; ".join(problems))


class RequestError(TollgateError):
    """A /check request is malformed; answered 400 ``invalid_request``.

    ``field`` is the dotted name of the offending field when one is to blame.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class AuditUnavailable(TollgateError):
    """The audit trail cannot be written; checks are answered 503 / deny until it can."""


class AuditCorrupt(TollgateError):
    """The audit trail on disk is damaged beyond the torn-last-line case."""
