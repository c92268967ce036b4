"""The statistics behind every check that judges from a sample: sizes, false-alarm budget, power.

Three kinds of evidence are statistical, and each states its false-alarm rate and its power:

**Stale traffic and convergence.** A Service counts as converged, and `no-stale-traffic`,
`availability` and `reject-when-empty` pass at a step, only on a *confirmation sample* of
`CONFIRMATION_SIZE` fresh connections in which every outcome was right. At most
`CONFIRMATIONS` such samples are drawn per Service per step (the last one after the deadline),
so a data plane that still sends a share `STALE_SHARE` or more of new connections somewhere
wrong passes one with probability at most (1 - 0.05)^117 = 0.0025, and the step catches it with
probability at least 1 - 4 x 0.0025 = 0.99 (`STEP_POWER`). A correct data plane never fails
these checks by chance: a wrong outcome cannot happen to it.

**Fairness** (`harness.checks.fairness`): a chi-square test at the per-check false-alarm level;
every verdict states the smallest relative deviation of one endpoint's share it detects with
power 0.9 (`detectable_deviation`).

**Affinity expiry** (`harness.checks.affinity`): k idle clients return after the timeout; the
check fails when every one of them lands on its old backend again. k is the smallest number for
which that happens with probability at most the per-check level when the fresh choice is uniform
random (probability n^-k) and when it is round robin visited in a random order (the multinomial
bound of `_all_stay_round_robin`), so a correct proxy of either kind alarms at most at that
level, and a proxy that never expires affinity fails with probability 1.

**The budget.** One false-alarm budget `run_alpha` (default 0.001) is shared, Bonferroni-style,
by every statistical check a run may make (`max_checks`, from the run's size), so a correct
implementation fails any of them in the whole run with probability at most `run_alpha`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy import stats

STALE_SHARE = 0.05
STEP_POWER = 0.99
CONFIRMATIONS = 4
CONFIRMATION_SIZE = math.ceil(
    math.log((1 - STEP_POWER) / CONFIRMATIONS) / math.log(1 - STALE_SHARE)
)
"""117 fresh connections: see the module docstring."""
CLEAN_WINDOW = 16
"""Clean fresh connections seen before a confirmation sample is drawn (saves drawing one that
is sure to fail while the data plane is still being programmed; it decides nothing)."""
FAIRNESS_POWER = 0.9


@dataclass(frozen=True)
class AlarmBudget:
    """The run-wide false-alarm budget and how many statistical checks share it."""

    run_alpha: float = 0.001
    max_checks: int = 1000

    @property
    def per_check(self) -> float:
        return self.run_alpha / max(self.max_checks, 1)

    def to_json(self) -> dict[str, float]:
        return {"run_alpha": self.run_alpha, "max_checks": self.max_checks}


def stale_power(connections: int, share: float = STALE_SHARE) -> float:
    """The probability that `connections` fresh connections meet a wrong destination that gets
    `share` of new connections at least once."""
    return 1.0 - (1.0 - share) ** connections


def confirmation_evidence(connections: int) -> dict[str, object]:
    """What a traffic verdict states about its sample's power (for its evidence)."""
    return {
        "connections": connections,
        "detects_share": STALE_SHARE,
        "power_per_sample": round(stale_power(connections), 4),
        "samples_per_step": CONFIRMATIONS,
        "power_per_step": STEP_POWER,
    }


# -- fairness -------------------------------------------------------------------------------------
def share_effect(endpoints: int, deviation: float) -> float:
    """Cohen's w^2 when one endpoint gets (1 + deviation)/n of the connections and the others
    share the rest equally."""
    p0 = 1.0 / endpoints
    p_one = (1.0 + deviation) * p0
    p_other = (1.0 - p_one) / (endpoints - 1)
    return ((p_one - p0) ** 2 + (endpoints - 1) * (p_other - p0) ** 2) / p0


def chi_square_power(endpoints: int, connections: int, alpha: float, deviation: float) -> float:
    """The chi-square test's power against `deviation` (see `share_effect`) at level `alpha`."""
    df = endpoints - 1
    critical = float(stats.chi2.isf(alpha, df))
    return float(stats.ncx2.sf(critical, df, connections * share_effect(endpoints, deviation)))


@lru_cache(maxsize=4096)
def detectable_deviation(
    endpoints: int, connections: int, alpha: float, power: float = FAIRNESS_POWER
) -> float | None:
    """The smallest relative deviation of one endpoint's share (0.02 means 2% more than 1/n)
    that a chi-square test of `connections` detects with `power` at level `alpha`; None when
    not even a share of the whole (deviation n - 1) is detectable."""
    if endpoints < 2 or connections < 1:
        return None
    most = endpoints - 1.0
    if chi_square_power(endpoints, connections, alpha, most) < power:
        return None
    low, high = 0.0, most
    for _ in range(40):
        middle = (low + high) / 2
        if chi_square_power(endpoints, connections, alpha, middle) >= power:
            high = middle
        else:
            low = middle
    return high


@lru_cache(maxsize=4096)
def connections_for_deviation(
    endpoints: int, deviation: float, alpha: float, power: float = FAIRNESS_POWER
) -> int:
    """Fresh connections a chi-square test needs to detect `deviation` with `power`."""
    low, high = 1, 16
    while chi_square_power(endpoints, high, alpha, deviation) < power:
        low, high = high, high * 2
    while low < high:
        middle = (low + high) // 2
        if chi_square_power(endpoints, middle, alpha, deviation) >= power:
            high = middle
        else:
            low = middle + 1
    return max(high, 5 * endpoints)


def liveness_size(endpoints: int, alpha: float) -> int:
    """Fresh connections after which a uniform balancer has reached every one of `endpoints`
    with probability at least 1 - alpha: n (1 - 1/n)^N <= n e^(-N/n) <= alpha."""
    if endpoints < 2:
        return 1
    return math.ceil(endpoints * math.log(endpoints / alpha))


# -- affinity expiry ------------------------------------------------------------------------------
def _all_stay_round_robin(clients: int, endpoints: int) -> float:
    """The chance that all `clients` land on their old backends again when a round-robin
    balancer serves them in a uniformly random order after serving them in a fixed one: the
    clients must keep their position modulo n, a multinomial fraction of the orders."""
    sizes = [clients // endpoints + (1 if r < clients % endpoints else 0) for r in range(endpoints)]
    log_ways = sum(math.lgamma(size + 1) for size in sizes) - math.lgamma(clients + 1)
    return math.exp(log_ways)


def all_stay_chance(clients: int, endpoints: int) -> float:
    """The larger of the chances that every idle client lands on its old backend for a
    uniformly random fresh choice (n^-k) and for round robin in a random order."""
    return max(float(endpoints) ** -clients, _all_stay_round_robin(clients, endpoints))


@lru_cache(maxsize=1024)
def expiry_clients(endpoints: int, alpha: float) -> int | None:
    """Idle clients needed so that a correct proxy alarms with probability at most `alpha`
    (see `all_stay_chance`); None for fewer than two endpoints (nothing to choose)."""
    if endpoints < 2:
        return None
    clients = 1
    while all_stay_chance(clients, endpoints) > alpha:
        clients += 1
    return clients
