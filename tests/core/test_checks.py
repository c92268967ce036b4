"""The checks: each catches the failure it names, and the fairness test has its stated power."""

import random

import pytest

from harness.checks.affinity import AffinityMemory, check_affinity
from harness.checks.confidence import AlarmBudget
from harness.checks.endpoints import check_endpoints
from harness.checks.fairness import check_fairness, jain_index, sample_size
from harness.checks.latency import check_latency, percentile
from harness.checks.rules import check_exact_balance
from harness.checks.traffic import check_availability, check_no_stale, check_reject
from harness.events import CreateService, DeletePod, Scale, apply_all
from harness.model import derive_slices, labels_of
from harness.model.objects import Affinity, Backend, Service
from harness.traffic import ErrorKind, Outcome, Reachability, TrafficRequest, TrafficSample

B = [Backend(f"web-{i}", f"u{i}") for i in range(10)]


BUDGET = AlarmBudget()


def sample(backends, errors=(), started=0.0, finished=0.1, client="client-1", latency_ms=1.0):
    outcomes = [Outcome(b, None, latency_ms, i) for i, b in enumerate(backends)]
    outcomes += [Outcome(None, e, latency_ms, len(outcomes) + i) for i, e in enumerate(errors)]
    return TrafficSample(TrafficRequest("svc", client), tuple(outcomes), started, finished)


def test_endpoints_check_names_missing_and_unexpected():
    state = apply_all([CreateService("svc", labels_of({"app": "web"})), Scale("web", 2)])
    later = DeletePod("web-0", 0).apply(state)
    verdict = check_endpoints("svc", derive_slices(later, "svc"), derive_slices(state, "svc"))
    assert not verdict.holds
    assert verdict.evidence["unexpected"] == ["web-0/u1[ready,serving](http:8080)"]
    duplicated = derive_slices(state, "svc") * 2
    assert check_endpoints("svc", derive_slices(state, "svc"), duplicated).holds


def test_no_stale_and_availability_and_reject():
    usable = set(B[:2])
    assert check_no_stale("svc", usable, sample([B[0], B[1]])).holds
    stale = check_no_stale("svc", usable, sample([B[0], B[5]]))
    assert not stale.holds and "web-5/u5" in stale.message
    assert not check_availability("svc", usable, sample([B[0]], [ErrorKind.RESET])).holds
    assert check_reject("svc", set(), sample([], [ErrorKind.REFUSED] * 3)).holds
    assert not check_reject("svc", set(), sample([], [ErrorKind.TIMEOUT])).holds
    assert not check_reject("svc", set(), sample([B[0]])).holds
    slow = sample([], [ErrorKind.REFUSED], latency_ms=1500)
    assert not check_reject("svc", set(), slow).holds


def test_a_service_with_endpoints_only_elsewhere_drops_and_a_refusal_fails():
    """Upstream DROPs (internalTrafficPolicy Local, endpoints on other nodes only): only a
    timeout passes; a refusal, an answer or a reset fails, naming the rule."""
    assert check_reject("svc", set(), sample([], [ErrorKind.TIMEOUT] * 3), drops=True).holds
    refused = check_reject("svc", set(), sample([], [ErrorKind.REFUSED]), drops=True)
    assert not refused.holds and "kube-proxy DROPs" in refused.message
    assert refused.evidence["expected"] == "drop"
    assert not check_reject("svc", set(), sample([B[0]]), drops=True).holds
    assert not check_reject("svc", set(), sample([], [ErrorKind.RESET]), drops=True).holds


def simulate(weights, n_connections, rng):
    return sample(rng.choices(B[: len(weights)], weights=weights, k=n_connections))


@pytest.mark.parametrize("endpoints", [2, 3, 5, 10])
def test_fairness_false_alarm_rate_and_power(endpoints):
    """Per check: uniform traffic passes; a 2x bias on one endpoint fails with power >= 0.9.

    Uses a lenient per-check alpha (1e-3) so both rates are measurable in 300 trials."""
    policy = AlarmBudget(run_alpha=1e-3, max_checks=1)
    n = sample_size(endpoints, policy.per_check)
    rng = random.Random(endpoints)
    usable = set(B[:endpoints])
    trials = 300
    alarms = sum(
        not check_fairness("svc", usable, simulate([1] * endpoints, n, rng), policy).holds
        for _ in range(trials)
    )
    caught = sum(
        not check_fairness(
            "svc", usable, simulate([2] + [1] * (endpoints - 1), n, rng), policy
        ).holds
        for _ in range(trials)
    )
    assert alarms <= 3  # expected 0.3 at alpha 1e-3
    assert caught / trials >= 0.85  # stated power 0.9, minus sampling noise


def test_fairness_catches_an_unreached_endpoint_and_reports_jain_and_power():
    verdict = check_fairness("svc", set(B[:3]), sample([B[0], B[1]] * 200), BUDGET)
    assert not verdict.holds and "never reached" in verdict.message
    assert verdict.evidence["jain"] == pytest.approx(2 / 3, abs=1e-3)
    assert jain_index([5, 5, 0]) == pytest.approx(2 / 3)
    uniform = check_fairness("svc", set(B[:2]), sample([B[0], B[1]] * 200), BUDGET)
    assert uniform.holds and 0 < uniform.evidence["detects_deviation"] < 1
    assert "deviation of one share with power 0.9" in uniform.message


def test_sample_size_grows_with_endpoints_and_strictness():
    assert sample_size(10, 1e-6) > sample_size(2, 1e-6)
    assert sample_size(10, 1e-8) > sample_size(10, 1e-4)
    assert sample_size(10, 1e-6) >= 50


def test_affinity_holds_across_batches_until_timeout():
    service = Service(
        "svc",
        "10.96.0.10",
        labels_of({"app": "web"}),
        session_affinity=Affinity.CLIENT_IP,
        affinity_timeout_s=10,
    )
    memory = AffinityMemory()
    usable = set(B[:3])
    assert check_affinity(
        service, usable, sample([B[1]] * 15, started=0, finished=1), memory, BUDGET
    ).holds
    moved = check_affinity(
        service, usable, sample([B[2]] * 15, started=5, finished=6), memory, BUDGET
    )
    assert not moved.holds and "web-1/u1" in moved.message
    memory = AffinityMemory()
    check_affinity(service, usable, sample([B[1]] * 5, started=0, finished=1), memory, BUDGET)
    assert check_affinity(
        service, usable, sample([B[2]] * 5, started=20, finished=21), memory, BUDGET
    ).holds
    split = check_affinity(
        service, usable, sample([B[0], B[1]], started=30, finished=31), AffinityMemory(), BUDGET
    )
    assert not split.holds


def test_affinity_ends_with_its_backend_and_is_not_owed_when_it_returns():
    """kube-proxy deletes an endpoint's affinity state with its rules (iptables `recent` list,
    nftables set): a client stuck to a backend that left and came back may pick anew."""
    service = Service("svc", "10.96.0.10", (("app", "web"),), session_affinity=Affinity.CLIENT_IP)
    kept, forgotten = AffinityMemory(), AffinityMemory()
    for memory in (kept, forgotten):
        check_affinity(service, set(B[:2]), sample([B[0]] * 5), memory, BUDGET)
    forgotten.forget("svc", keep=set())  # a step without usable endpoints
    back = sample([B[1]] * 5, started=2, finished=3)
    assert check_affinity(service, set(B[:2]), back, forgotten, BUDGET).holds
    assert not check_affinity(service, set(B[:2]), back, kept, BUDGET).holds
    other = Service("other", "10.96.0.11", (("app", "web"),), session_affinity=Affinity.CLIENT_IP)
    check_affinity(other, set(B[:2]), sample([B[0]] * 5), forgotten, BUDGET)
    forgotten.forget("svc", keep=set())  # another Service's clients stay stuck
    assert not check_affinity(other, set(B[:2]), back, forgotten, BUDGET).holds


def test_affinity_lets_a_client_leave_a_dead_backend():
    service = Service("svc", "10.96.0.10", (("app", "web"),), session_affinity=Affinity.CLIENT_IP)
    memory = AffinityMemory()
    check_affinity(service, set(B[:2]), sample([B[0]] * 5), memory, BUDGET)
    assert check_affinity(
        service, {B[1]}, sample([B[1]] * 5, started=1, finished=2), memory, BUDGET
    ).holds


def test_latency_and_percentiles():
    assert check_latency("svc", 0.5, 30, "").holds
    assert not check_latency("svc", None, 30, "EndpointSlices differ").holds
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 99) == 4
    assert percentile([], 50) is None


def test_exact_balance():
    usable = set(B[:3])
    exact = Reachability(False, {b: 1 / 3 for b in usable})
    assert check_exact_balance("svc", usable, exact).holds
    chain = Reachability(False, {B[0]: 1 / 3, B[1]: 2 / 9, B[2]: 4 / 9})
    assert "not 1/3" in check_exact_balance("svc", usable, chain).message
    assert not check_exact_balance("svc", set(), Reachability(False, {B[0]: 1.0})).holds
    assert check_exact_balance("svc", set(), Reachability(True)).holds
    assert not check_exact_balance("svc", usable, Reachability(True)).holds
    dropping = Reachability(False, drops=True)
    assert check_exact_balance("svc", set(), dropping, drops=True).holds
    assert (
        "kube-proxy must DROP"
        in check_exact_balance("svc", set(), Reachability(True), True).message
    )
    assert "must REJECT" in check_exact_balance("svc", set(), dropping).message
    assert not check_exact_balance("svc", usable, dropping).holds
    assert not check_exact_balance("svc", set(), Reachability(False), drops=True).holds


STICKY_2S = Service(
    "svc",
    "10.96.0.10",
    (("app", "web"),),
    session_affinity=Affinity.CLIENT_IP,
    affinity_timeout_s=2,
)


def spread(backends, started, finished):
    """One connection from each further address of client-1 (sources 1..k)."""
    outcomes = [Outcome(b, None, 1.0, i, i + 1) for i, b in enumerate(backends)]
    request = TrafficRequest("svc", "client-1", sources=tuple(range(1, len(backends) + 1)))
    return TrafficSample(request, tuple(outcomes), started, finished)


@pytest.mark.parametrize("returns_to_old", [True, False])
def test_affinity_expiry_is_judged_over_many_idle_clients(returns_to_old):
    """After timeoutSeconds + slack, idle clients choose anew: all of k idle clients back on
    their old backends fails (a proxy that never expires); a fresh choice passes."""
    service = STICKY_2S
    usable, memory, rng = set(B[:2]), AffinityMemory(), random.Random(1)
    first = [rng.choice(B[:2]) for _ in range(40)]
    assert check_affinity(service, usable, spread(first, 0, 0.1), memory, BUDGET).holds
    again = first if returns_to_old else [rng.choice(B[:2]) for _ in range(40)]
    verdict = check_affinity(service, usable, spread(again, 3.0, 3.1), memory, BUDGET)
    assert verdict.evidence["expiry_judged"] and verdict.evidence["idle_clients"] == 40
    assert verdict.holds != returns_to_old
    if returns_to_old:
        assert "never expires" in verdict.message


def test_affinity_expiry_is_not_judged_before_the_timeout_or_with_too_few_clients():
    service = STICKY_2S
    memory = AffinityMemory()
    check_affinity(service, set(B[:2]), spread([B[0]] * 40, 0, 0.1), memory, BUDGET)
    early = check_affinity(service, set(B[:2]), spread([B[0]] * 40, 1.0, 1.1), memory, BUDGET)
    assert early.holds and not early.evidence.get("idle_clients")
    few = AffinityMemory()
    check_affinity(service, set(B[:2]), spread([B[0]] * 3, 0, 0.1), few, BUDGET)
    judged = check_affinity(service, set(B[:2]), spread([B[0]] * 3, 3.0, 3.1), few, BUDGET)
    assert judged.holds and judged.evidence["expiry_judged"] is False
