"""How a load generator reads which pod answered: shared by bench/worker_tally.py (which runs
inside locust, so this module imports nothing) and the benchmarks.

The local cluster's pods answer any HTTP request with `POD UID` (`harness.local.podserver`); the
kube target's agnhost pods answer `/hostname` with `POD--UID` (`harness.kube.objects.pod_hostname`).
"""

from __future__ import annotations

KUBE_SEPARATOR = "--"  # harness.kube.objects.HOSTNAME_SEPARATOR (imported by neither side)


def pod_of(text: str) -> str | None:
    """The pod name in a pod's answer, `POD UID` or `POD--UID`, or None if the body is neither."""
    fields = text.split()
    if len(fields) == 2:
        return fields[0]
    if len(fields) == 1:
        name, separator, uid = fields[0].rpartition(KUBE_SEPARATOR)
        return name if separator and name and uid else None
    return None
