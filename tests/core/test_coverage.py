"""State coverage: every feature is recognised where it holds and only there, every recipe leads
to its feature, and the model's default run checks every feature at least 50 times."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from harness import search, swarm
from harness.conformance import options_for, run_suite
from harness.coverage import FEATURES
from harness.events import (
    CreateDualProtocolService,
    CreateMultiPortPod,
    CreateMultiPortService,
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    Event,
    EvictPod,
    OutOfWindow,
    Probe,
    RestartPod,
    RestartProxy,
    Scale,
    SetAffinity,
    SetExternalIPs,
    SetExternalTrafficPolicy,
    SetPublishNotReady,
    SetReady,
    SetSelector,
    SetServiceLabel,
    SetServiceType,
    SetTrafficDistribution,
    SetTrafficPolicy,
    StaleSnapshot,
    UnobservedChanges,
    Wait,
)
from harness.model.objects import Affinity, Protocol, ServiceType, TrafficPolicy, labels_of
from harness.profiles import PROFILES, Limits
from harness.recipes import RECIPES
from harness.runner import replay
from harness.strategies import EventSpace
from harness.swarm import AIMS
from harness.targets.model import ModelTarget

WEB = labels_of({"app": "web"})
START = [CreateService("svc-a", WEB), Scale("web", 3)]
EXAMPLES: dict[str, list[Event]] = {
    "usable-0": [CreateService("svc-a", WEB)],
    "usable-1": [CreateService("svc-a", WEB), Scale("web", 1)],
    "usable-2-6": START,
    "usable-7+": [CreateService("svc-a", WEB), Scale("web", 7)],
    "terminating-fallback": [*START, Scale("web", 0)],
    "terminating-not-serving": [*START, Scale("web", 0), SetReady("web-0", False)],
    "local-no-local-endpoints": [
        CreateService("svc-a", WEB),
        Scale("web", 2, "node-2"),
        SetTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
    ],
    "local-only-terminating": [
        *START,
        SetTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
        Scale("web", 0),
    ],
    "publish-not-ready-toggled": [
        *START,
        SetReady("web-0", False),
        SetPublishNotReady("svc-a", True),
    ],
    "affinity-idle-past-timeout": [
        *START,
        SetAffinity("svc-a", Affinity.CLIENT_IP, 10),
        Probe("svc-a", many_clients=True),
        Wait(11),
        Probe("svc-a", many_clients=True),
    ],
    "affinity-backend-removed": [
        *START,
        SetAffinity("svc-a", Affinity.CLIENT_IP, 60),
        Probe("svc-a", many_clients=True),
        DeletePod("web-0", 0),
        Probe("svc-a", many_clients=True),
    ],
    "vip-reused": [*START, DeleteService("svc-a"), CreateService("svc-b", WEB)],
    "named-port-per-pod": [*START, CreatePod("p-0", WEB, http_port=8081)],
    "pod-ip-reused": [*START, RestartPod("web-1")],
    "selector-widened": [
        *START,
        SetSelector("svc-a", labels_of({"app": "api"})),
        Scale("api", 1),
        SetSelector("svc-a", WEB),
    ],
    "selector-narrowed": [*START, SetSelector("svc-a", labels_of({"app": "web", "tier": "x"}))],
    "evicted-pod": [*START, EvictPod("web-2")],
    "proxy-restarted": [*START, RestartProxy()],
    "stale-snapshot": [*START, StaleSnapshot(2)],
    "unobserved-changes": [*START, UnobservedChanges((Scale("web", 0), Scale("web", 2)))],
    "changed-while-down": [*START, RestartProxy((SetReady("web-0", False),))],
    "long-lived-through-change": [*START, SetReady("web-0", False)],
    "multi-port-named": [  # p-1 lacks `admin`: left out of that port, listed on the others
        CreateMultiPortService("svc-a", WEB, port_count=3),
        CreateMultiPortPod("p-0", WEB),
        CreatePod("p-1", WEB),
    ],
    "hairpin": [CreateService("svc-a", WEB), Scale("web", 1)],
    "source-ip-checked": START,
    "opted-out": [*START, SetServiceLabel("svc-a", "service.kubernetes.io/headless", "true")],
    "opt-out-removed": [
        *START,
        SetServiceLabel("svc-a", "service.kubernetes.io/service-proxy-name", "other"),
        SetServiceLabel("svc-a", "service.kubernetes.io/service-proxy-name", None),
    ],
    "out-of-window": [*START, OutOfWindow("web-0")],
    "udp-flow-through-change": [
        CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP),
        Scale("web", 3),
        SetReady("web-0", False),
    ],
    "seen-from-every-node": [
        CreateService("svc-a", WEB),
        Scale("web", 2, "node-2"),
        SetTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
    ],
    "dual-protocol-port": [CreateDualProtocolService("svc-a", WEB), Scale("web", 2)],
    "node-port-reached": [*START, SetServiceType("svc-a", ServiceType.NODE_PORT)],
    "udp-node-port-reached": [
        CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP),
        Scale("web", 2),
        SetServiceType("svc-a", ServiceType.NODE_PORT),
    ],
    "load-balancer-reached": [*START, SetServiceType("svc-a", ServiceType.LOAD_BALANCER)],
    "external-ip-reached": [*START, SetExternalIPs("svc-a", ("10.254.0.10",))],
    "external-local-no-local-endpoints": [
        CreateService("svc-a", WEB),
        Scale("web", 2, "node-2"),
        SetServiceType("svc-a", ServiceType.NODE_PORT),
        SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
    ],
    "health-check-only-terminating": [
        CreateService("svc-a", WEB),
        Scale("web", 2, "node-2"),
        SetServiceType("svc-a", ServiceType.LOAD_BALANCER),
        SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
        Scale("web", 0),
    ],
    "topology-narrowed": [
        *START,
        Scale("web", 5, "node-2"),
        SetTrafficDistribution("svc-a", "PreferClose"),
    ],
    "sctp-reached": [CreateService("svc-a", WEB, "sctp", protocol=Protocol.SCTP), Scale("web", 2)],
}


def checked(events: list[Event]) -> set[str]:
    runner = replay(ModelTarget(), events)
    return {feature for record in runner.history for feature in record["features"]}


def test_every_feature_has_an_example_a_recipe_and_an_aim():
    assert set(EXAMPLES) == set(FEATURES) == set(RECIPES) == set(AIMS)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_each_feature_is_recognised_where_it_holds(feature: str) -> None:
    assert feature in checked(EXAMPLES[feature])


def test_a_plain_service_has_no_rare_feature():
    found = checked(START)
    # every step with a usable endpoint sends from a pod (harness.podclients): not rare
    assert found == {"usable-0", "usable-2-6", "hairpin", "source-ip-checked"}


@pytest.mark.parametrize("feature", sorted(RECIPES))
def test_each_recipe_leads_to_its_feature(feature: str) -> None:
    """From a Service with three pods, the recipe's events reach the feature in most draws."""
    space = AIMS[feature].narrow(EventSpace(simulated=True, udp=True, sctp=True))
    reached = []

    @seed(7)
    @settings(
        max_examples=20,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        state = ModelTarget().state
        for event in START:
            state = event.apply(state)
        events = RECIPES[feature](data, state, space)
        reached.append(feature in checked([*START, *events]))

    draw()
    assert sum(reached) >= 0.7 * len(reached), f"{feature}: {sum(reached)} of {len(reached)}"


@pytest.mark.search  # about 140 s of CPU: tox -e mutants runs it, beside the mutant searches
def test_the_models_default_run_checks_every_feature_50_times(tmp_path):
    target = ModelTarget(seed=3)
    options = options_for(target, seed=3, profile=PROFILES["default"], failures_dir=tmp_path)
    suite = run_suite(target, options)
    assert suite.stats.examples == PROFILES["default"].simulated.examples
    assert suite.coverage.short_of(50) == [], suite.coverage.to_json()


QUICK_REAL_SEEDS = (1, 2, 3, 4)


def quick_real_run_on_the_model(run_seed: int, examples: int) -> list[str]:
    """The features a real target's quick run would leave short of its goal after `examples`
    examples: the same search on the model with the real targets' event space and round size.
    The aims are decided from the model alone, so they are the ones a local run takes."""
    target = ModelTarget(seed=run_seed)
    quick = PROFILES["quick"]
    options = options_for(target, seed=run_seed, profile=quick)
    options = replace(
        options,
        limits=Limits(examples, quick.real.steps),
        coverage_goal=quick.coverage_goal_real,
        space=replace(options.space, simulated=False),
    )
    target.open()
    try:
        suite = run_suite(target, options)
    finally:
        target.close()
    assert suite.stats.examples == examples
    return suite.coverage.short_of(quick.coverage_goal_real)


@pytest.mark.parametrize("run_seed", QUICK_REAL_SEEDS)
def test_thirty_examples_of_the_quick_real_profile_check_every_feature_three_times(run_seed):
    """A real target's quick run may end on its budget after some 30 examples (CI's two cores
    ran 37 in 180 s on the local cluster); by then its aims have checked every feature as often
    as the profile's goal."""
    assert quick_real_run_on_the_model(run_seed, 30) == []


@pytest.mark.search  # about 10 s of CPU: tox -e mutants runs it, beside the mutant searches
def test_the_quick_real_profile_check_can_fail(monkeypatch):
    """The check above is not vacuous: with the aiming this harness had before (half of the
    examples aimed among four candidates, rounds of five, recipes followed half the time), 30
    examples leave features short on three of those four seeds (and on 6 of seeds 1-8)."""
    monkeypatch.setattr(swarm, "AIMED_ODDS", (1, 2))
    monkeypatch.setattr(swarm, "AIM_CANDIDATES", 4)
    monkeypatch.setattr(search, "RECIPE_ODDS", (1, 2))
    monkeypatch.setattr(search, "ROUND_EXAMPLES", {True: 20, False: 5})
    short = [run_seed for run_seed in QUICK_REAL_SEEDS if quick_real_run_on_the_model(run_seed, 30)]
    assert len(short) >= 3, short
