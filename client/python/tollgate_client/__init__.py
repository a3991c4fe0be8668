"""Tollgate's Python client (CONTRACT section 5): ask the gate before acting, fail closed.

    from tollgate_client import Gate, Denied

    gate = Gate()                      # $TOLLGATE_URL, else http://127.0.0.1:9800
    if gate.check("file.read", path="/app/data/x.csv").allowed:
        ...
    gate.require("process.exec", argv=["git", "push"])   # raises Denied
    with gate.open("/app/data/x.csv") as handle:          # guarded helpers check first
        ...

Standard library only. See docs/clients.md.
"""

from tollgate_client.answers import Approval, Decision
from tollgate_client.errors import Denied
from tollgate_client.gate import DEFAULT_URL, Gate, wait_for_approval
from tollgate_client.kube import KubeCluster, KubeResponse

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "Approval",
    "Decision",
    "Denied",
    "Gate",
    "KubeCluster",
    "KubeResponse",
    "__version__",
    "wait_for_approval",
]
