"""The sidecar's identity string: who the agent is, in rules (``agent``) and records.

``TOLLGATE_IDENTITY`` wins when set. Otherwise it is built from the downward-API
variables as ``<namespace>/<serviceaccount>/<pod>`` ("-" for a part that is not set),
so an ``agent`` glob like ``payments/*/*`` selects by namespace and
``*/report-bot/*`` by service account. With none of them set it is ``local``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def resolve_identity(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    explicit = env.get("TOLLGATE_IDENTITY", "").strip()
    if explicit:
        return explicit
    parts = [env.get(name, "").strip() for name in ("POD_NAMESPACE", "SERVICE_ACCOUNT", "POD_NAME")]
    if not any(parts):
        return "local"
    return "/".join(part or "-" for part in parts)
