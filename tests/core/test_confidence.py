"""The statistics behind the checks state their false-alarm rates and powers, and simulation
agrees with every stated figure (harness.checks.confidence)."""

import random

import pytest

from harness.checks.confidence import (
    CONFIRMATION_SIZE,
    CONFIRMATIONS,
    STALE_SHARE,
    STEP_POWER,
    all_stay_chance,
    connections_for_deviation,
    detectable_deviation,
    expiry_clients,
    liveness_size,
    stale_power,
)


def test_the_stated_stale_bound_holds():
    assert CONFIRMATION_SIZE == 117
    per_sample_miss = (1 - STALE_SHARE) ** CONFIRMATION_SIZE
    assert CONFIRMATIONS * per_sample_miss <= 1 - STEP_POWER
    rng = random.Random(5)
    trials = 20000
    clean = sum(
        all(rng.random() >= STALE_SHARE for _ in range(CONFIRMATION_SIZE)) for _ in range(trials)
    )
    assert clean / trials <= 2 * per_sample_miss  # about 50 of 20,000 expected
    assert stale_power(CONFIRMATION_SIZE) >= 0.997


@pytest.mark.parametrize("endpoints", [2, 3, 6, 10])
def test_expiry_clients_bound_a_correct_proxys_false_alarms(endpoints):
    alpha = 1e-2
    k = expiry_clients(endpoints, alpha)
    assert k is not None and all_stay_chance(k, endpoints) <= alpha
    assert all_stay_chance(k - 1, endpoints) > alpha  # the smallest such k
    rng = random.Random(endpoints)
    trials = 20000

    def round_robin_all_stay() -> bool:
        pointer = rng.randrange(endpoints)
        first = {c: (pointer + i) % endpoints for i, c in enumerate(rng.sample(range(k), k))}
        pointer = rng.randrange(endpoints)
        order = rng.sample(range(k), k)
        return all((pointer + i) % endpoints == first[c] for i, c in enumerate(order))

    def random_all_stay() -> bool:
        return all(rng.randrange(endpoints) == 0 for _ in range(k))

    for simulate in (round_robin_all_stay, random_all_stay):  # at most 200 expected
        assert sum(simulate() for _ in range(trials)) <= 1.25 * alpha * trials


def test_expiry_needs_two_endpoints():
    assert expiry_clients(1, 1e-6) is None


@pytest.mark.parametrize("endpoints", [2, 5])
def test_a_stated_detectable_deviation_is_detected_with_its_power(endpoints):
    from scipy import stats

    alpha, connections = 1e-3, 2000
    deviation = detectable_deviation(endpoints, connections, alpha)
    assert deviation is not None and 0 < deviation < 1
    assert connections_for_deviation(endpoints, deviation, alpha) <= connections + 1
    p_one = (1 + deviation) / endpoints
    weights = [p_one] + [(1 - p_one) / (endpoints - 1)] * (endpoints - 1)
    rng = random.Random(endpoints)
    trials, caught = 400, 0
    for _ in range(trials):
        picks = rng.choices(range(endpoints), weights=weights, k=connections)
        counts = [picks.count(i) for i in range(endpoints)]
        caught += stats.chisquare(counts).pvalue < alpha
    assert caught / trials >= 0.85  # stated power 0.9, minus sampling noise


def test_liveness_size_reaches_every_endpoint():
    n, alpha = 12, 1e-3
    size = liveness_size(n, alpha)
    assert n * (1 - 1 / n) ** size <= alpha
    assert liveness_size(1, alpha) == 1
