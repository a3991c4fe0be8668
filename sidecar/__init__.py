"""Tollgate: a deny-by-default gate for AI agents, run as a sidecar.

Data flows one way: request -> normalise -> evaluate (pure) -> record -> answer.
"""

__version__ = "0.1.0"
