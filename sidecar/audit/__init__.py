"""The audit trail: hash-chained, checkpointed, redacted records (CONTRACT section 4)."""

from sidecar.audit.log import Appended, AuditLog
from sidecar.audit.note import Signer

__all__ = ["Appended", "AuditLog", "Signer"]
