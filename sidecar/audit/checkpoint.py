"""C2SP tlog-checkpoint note text (https://c2sp.org/tlog-checkpoint), CONTRACT section 4.

The checkpoint text is three lines: the origin, the tree size in decimal, and the base64
RFC 6962 root hash. Tollgate writes no extension lines. The text is then signed as a
C2SP signed note (see ``note.py``) under a key name equal to the origin.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from sidecar.audit.merkle import HASH_SIZE
from sidecar.audit.note import NoteError, check_key_name

# A tree size is a uint64 (C2SP tlog-checkpoint): at most 20 digits, which also keeps
# int() clear of Python's limit on the digits it converts.
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    """A Merkle tree head: which log, how many leaves, and the root over them."""

    origin: str
    size: int
    root: bytes

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode("ascii")

    def text(self) -> str:
        """The exact note text that is signed."""
        check_key_name(self.origin)
        return f"{self.origin}\n{self.size}\n{self.root_b64}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text; extension lines are accepted and ignored."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint text must be at least three newline-terminated lines")
        origin, size_text, root_b64 = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not _SIZE.fullmatch(size_text):
            shown = size_text if len(size_text) <= 40 else size_text[:40] + "..."
            raise NoteError(
                f"checkpoint tree size {shown!r} is not a decimal number of at most 20 digits"
            )
        try:
            root = base64.b64decode(root_b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise NoteError("checkpoint root hash is not base64") from exc
        if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_b64:
            raise NoteError("checkpoint root hash is not a canonical 32-byte base64 value")
        if any(line == "" for line in lines[3:-1]):
            raise NoteError("checkpoint extension lines must not be empty")
        return cls(origin, int(size_text), root)
