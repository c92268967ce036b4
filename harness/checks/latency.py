"""Property `programming-latency`: a change reaches the target within a deadline (I18).

The latency is the target-clock time from `apply(event)` returning to the first observation
that matched the model (EndpointSlices equal, and the data plane sending new connections only to
usable endpoints, or rejecting). The default deadline is upstream's
`KubeProxyEndpointLagTimeout` (30 s, test/e2e/framework/service/const.go); targets may choose a
tighter default (the embedded local cluster programs in milliseconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.checks.verdict import Verdict, failed, passed

PROPERTY = "programming-latency"


def check_latency(service: str, latency_s: float | None, deadline_s: float, why: str) -> Verdict:
    """`latency_s` is None when the target had not converged when the deadline passed."""
    if latency_s is not None and latency_s <= deadline_s:
        return passed(
            PROPERTY, f"{service}: programmed in {latency_s * 1000:.1f} ms", latency_s=latency_s
        )
    return failed(
        PROPERTY,
        f"{service}: not programmed within the {deadline_s:g}s deadline ({why})",
        service=service,
        deadline_s=deadline_s,
        still_wrong=why,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
