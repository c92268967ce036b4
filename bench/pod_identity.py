"""How a load generator reads which pod answered: shared by bench/worker_tally.py (which runs
inside locust, so this module imports nothing) and the benchmarks.

The local cluster's pods answer any HTTP request with `POD UID` (`harness.local.podserver`).
"""

from __future__ import annotations


def pod_of(text: str) -> str | None:
    """The pod name in a pod server's answer `POD UID`, or None if the body is not one."""
    fields = text.split()
    return fields[0] if len(fields) == 2 else None
