"""Property `fairness`: new connections spread uniformly over the usable endpoints (I17, I4).

The test, over a sample of fresh connections from one client to a Service without affinity:

1. Liveness (I4, `verifyServeHostnameServiceUp`): every usable endpoint is reached.
2. Uniformity: Pearson's chi-square goodness-of-fit against uniform (n-1 degrees of freedom).

False alarms. Each check gets the per-check level of the run's `AlarmBudget`
(`harness.checks.confidence`), split equally between the two tests, so a correct uniform balancer
fails any fairness check of the whole run with probability at most the run's budget. Liveness is
only judged when the sample is large enough for that level (`liveness_size`).

Power. Every verdict states the smallest relative deviation of one endpoint's share its sample
detects with power 0.9 (`detectable_deviation`: 0.3 means one endpoint getting 30% more than
1/n). A step's sample is the confirmation sample (`CONFIRMATION_SIZE`, or more when liveness
needs it), so it detects only coarse skew; a `probe` event's sample is sized to detect a 2x bias
(one endpoint getting twice the share of each other one) with power 0.9; the `deep` profile adds
a balancing probe sized for a 2% deviation at every n from 2 to 10. Jain's index and max/mean are
reported with every verdict, never asserted.

Keep-alive samples are not tested here: a backend is chosen per connection, so N kept-alive
connections reach at most N backends (kubernetes#38456); they are reported per connection.
"""

from __future__ import annotations

from collections.abc import Collection

from scipy import stats

from harness.checks.confidence import (
    AlarmBudget,
    connections_for_deviation,
    detectable_deviation,
    liveness_size,
)
from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import Counted

PROPERTY = "fairness"
BIAS = 2.0
MAX_SAMPLE = 20000


def bias_deviation(endpoints: int, bias: float = BIAS) -> float:
    """The relative deviation of an endpoint with `bias` times the share of each other one."""
    return bias * endpoints / (bias + endpoints - 1) - 1.0


def sample_size(endpoints: int, alpha: float) -> int:
    """Fresh connections that detect a 2x bias with power 0.9 and test liveness, at `alpha`
    split between the two tests."""
    if endpoints < 2:
        return 5
    needed = connections_for_deviation(endpoints, bias_deviation(endpoints), alpha / 2)
    return min(max(needed, liveness_size(endpoints, alpha / 2)), MAX_SAMPLE)


def jain_index(counts: Collection[int]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 is equal shares, k/n if k of n share."""
    total, squares = sum(counts), sum(c * c for c in counts)
    return (total * total) / (len(counts) * squares) if squares else 0.0


def balance_report(usable: Collection[Backend], sample: Counted) -> dict[str, object]:
    """Per-backend counts, Jain's index and max/mean: reported with every balancing verdict."""
    hits = sample.hits()
    counts = [hits.get(b, 0) for b in sorted(usable)]
    mean = sum(counts) / len(counts) if counts else 0.0
    return {
        "counts": {str(b): hits.get(b, 0) for b in sorted(usable)},
        "jain": round(jain_index(counts), 4) if counts else None,
        "max_over_mean": round(max(counts) / mean, 3) if counts and mean else None,
    }


def check_fairness(
    service: str, usable: Collection[Backend], sample: Counted, budget: AlarmBudget
) -> Verdict:
    """Liveness and chi-square uniformity over a fresh-connection sample (module docstring)."""
    report = balance_report(usable, sample)
    n = len(usable)
    if n < 2:
        return passed(PROPERTY, f"{service}: {n} usable endpoint(s); nothing to balance", **report)
    hits = sample.hits()
    counts = [hits.get(b, 0) for b in sorted(usable)]
    if not sum(counts):
        return passed(PROPERTY, f"{service}: no connection reached a usable endpoint", **report)
    alpha = budget.per_check / 2
    unreached = [str(b) for b in sorted(usable) if hits.get(b, 0) == 0]
    if unreached and sum(counts) >= liveness_size(n, alpha):
        return failed(
            PROPERTY,
            f"{service}: {len(unreached)} of {n} usable endpoint(s) never reached in"
            f" {sum(counts)} connections: {', '.join(unreached)}",
            service=service,
            **report,
        )
    statistic, p_value = stats.chisquare(counts)
    detects = detectable_deviation(n, sum(counts), alpha)
    largest = max(abs(c * n / sum(counts) - 1) for c in counts)
    evidence = {
        **report,
        "chi2": round(float(statistic), 2),
        "p_value": float(p_value),
        "alpha": alpha,
        "connections": sum(counts),
        "detects_deviation": None if detects is None else round(detects, 3),
        "power": 0.9,
        "largest_deviation": round(largest, 4),
    }
    if p_value < alpha:
        return failed(
            PROPERTY,
            f"{service}: connections are not uniform over {n} endpoints"
            f" (chi-square p={p_value:.2e} < {alpha:.1e}; Jain {report['jain']},"
            f" max/mean {report['max_over_mean']})",
            service=service,
            **evidence,
        )
    power_text = (
        "too few connections to detect any skew"
        if detects is None
        else f"detects a {detects:.0%} deviation of one share with power 0.9"
    )
    return passed(
        PROPERTY,
        f"{service}: uniform over {n} endpoints (p={p_value:.3f}; {power_text})",
        **evidence,
    )
