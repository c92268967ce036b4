"""How a load generator reads which pod answered: shared by bench/locustfile.py (which runs
inside locust, so this module imports nothing) and bench/load_results.py.

The local cluster's pods answer any HTTP request with `POD UID` (`harness.local.podserver`).
"""

from __future__ import annotations

BACKEND_PREFIX = "backend:"
"""Locust reports each answer under `backend:POD`, so its stats entries are per-pod counts."""


def pod_of(text: str) -> str | None:
    """The pod name in a pod server's answer `POD UID`, or None if the body is not one."""
    fields = text.split()
    return fields[0] if len(fields) == 2 else None
