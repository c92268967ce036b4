"""Property `fairness`: new connections spread uniformly over the usable endpoints (I17, I4).

The test, over a sample of fresh connections from one client to a Service without affinity:

1. Liveness (I4, `verifyServeHostnameServiceUp`): every usable endpoint is reached.
2. Uniformity: Pearson's chi-square goodness-of-fit against uniform (n-1 degrees of freedom).

False alarms. A run states one false-alarm budget `run_alpha` (default 0.001) and the most
fairness checks it may make (`max_checks`); each check gets `run_alpha / max_checks`
(Bonferroni), split equally between the two tests. So a correct uniform balancer fails any
fairness check in the whole run with probability at most `run_alpha`. (For liveness,
P(miss some endpoint) <= n (1 - 1/n)^N <= n e^(-N/n), and N is chosen so this is below its share.)

Power. The sample size N is the smallest for which the chi-square test, at its per-check level,
detects a 2x bias on one endpoint (that endpoint gets twice the share of each other one) with
probability at least 0.9, computed from the noncentral chi-square distribution with
noncentrality N * w^2, where w^2 is Cohen's effect size of that bias; N is also at least 5 per
endpoint so the chi-square approximation is valid. Jain's index and max/mean are reported with
every verdict, never asserted.

Keep-alive samples are not tested here: a backend is chosen per connection, so N kept-alive
connections reach at most N backends (kubernetes#38456); they are reported per connection.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from scipy import stats

from harness.checks.verdict import Verdict, failed, passed
from harness.model.objects import Backend
from harness.traffic import TrafficSample

PROPERTY = "fairness"
POWER = 0.9
BIAS = 2.0
MAX_SAMPLE = 20000


@dataclass(frozen=True)
class FairnessPolicy:
    """The run-wide false-alarm budget and how many fairness checks share it."""

    run_alpha: float = 0.001
    max_checks: int = 1000

    @property
    def alpha_per_check(self) -> float:
        return self.run_alpha / max(self.max_checks, 1)

    def sample_size(self, endpoints: int) -> int:
        return sample_size(endpoints, self.alpha_per_check)


def _effect_size(endpoints: int, bias: float) -> float:
    """Cohen's w^2 for one endpoint with `bias` times the share of each other endpoint."""
    p0 = 1.0 / endpoints
    total = bias + endpoints - 1
    p_biased, p_other = bias / total, 1.0 / total
    return ((p_biased - p0) ** 2 + (endpoints - 1) * (p_other - p0) ** 2) / p0


@lru_cache(maxsize=512)
def sample_size(endpoints: int, alpha: float, power: float = POWER, bias: float = BIAS) -> int:
    """The fresh connections needed to test `endpoints` backends (see the module docstring)."""
    if endpoints < 2:
        return 5
    df = endpoints - 1
    critical = float(stats.chi2.isf(alpha / 2, df))
    w2 = _effect_size(endpoints, bias)

    def powerful(n: int) -> bool:
        return float(stats.ncx2.sf(critical, df, n * w2)) >= power

    low, high = 1, 16
    while not powerful(high):
        low, high = high, high * 2
        if high > MAX_SAMPLE:
            high = MAX_SAMPLE
            break
    while low < high:
        middle = (low + high) // 2
        if powerful(middle):
            high = middle
        else:
            low = middle + 1
    liveness = math.ceil(endpoints * math.log(endpoints / (alpha / 2)))
    return min(max(high, 5 * endpoints, liveness), MAX_SAMPLE)


def jain_index(counts: Collection[int]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 is equal shares, k/n if k of n share."""
    total, squares = sum(counts), sum(c * c for c in counts)
    return (total * total) / (len(counts) * squares) if squares else 0.0


def balance_report(usable: Collection[Backend], sample: TrafficSample) -> dict[str, object]:
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
    service: str, usable: Collection[Backend], sample: TrafficSample, policy: FairnessPolicy
) -> Verdict:
    """Liveness and chi-square uniformity over a fresh-connection sample (module docstring)."""
    report = balance_report(usable, sample)
    n = len(usable)
    if n < 2:
        return passed(PROPERTY, f"{service}: {n} usable endpoint(s); nothing to balance", **report)
    hits = sample.hits()
    counts = [hits.get(b, 0) for b in sorted(usable)]
    unreached = [str(b) for b in sorted(usable) if hits.get(b, 0) == 0]
    if unreached:
        return failed(
            PROPERTY,
            f"{service}: {len(unreached)} of {n} usable endpoint(s) never reached in"
            f" {sum(counts)} connections: {', '.join(unreached)}",
            service=service,
            **report,
        )
    alpha = policy.alpha_per_check / 2
    statistic, p_value = stats.chisquare(counts)
    evidence = {
        **report,
        "chi2": round(float(statistic), 2),
        "p_value": float(p_value),
        "alpha": alpha,
        "connections": sum(counts),
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
    return passed(PROPERTY, f"{service}: uniform over {n} endpoints (p={p_value:.3f})", **evidence)
