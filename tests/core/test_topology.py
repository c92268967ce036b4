"""Topology (trafficDistribution, I11) in the model: the controller's hints, kube-proxy's
all-or-nothing filter per node, the event, its generation and its feature.

The hint rows restate upstream's `TestReconcileHints`
(staging/src/k8s.io/endpointslice/trafficdist/trafficdist_test.go) in the model's terms: the
model derives slices from scratch, so each row is its end state (which endpoints carry which
`forZones`), not its split into slices to create, update or leave alone.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import InvalidEvent
from harness.events import (
    CreateService,
    Scale,
    SetReady,
    SetTrafficDistribution,
    SetTrafficPolicy,
    apply_all,
    event_from_json,
)
from harness.features import CORE_FEATURES, FEATURES, TOPOLOGY, attribute_failure
from harness.model.endpoints import derive_slices, expect, unique_endpoints, why_unusable
from harness.model.objects import (
    PREFER_CLOSE,
    PREFER_SAME_ZONE,
    TRAFFIC_DISTRIBUTIONS,
    ZONES,
    TrafficPolicy,
    labels_of,
)
from harness.model.state import ClusterState
from harness.strategies import GENERATORS, EventSpace

WEB = labels_of({"app": "web"})


def spread(distribution: str | None = PREFER_CLOSE) -> ClusterState:
    """svc-a over two pods on node-1 (zone-a) and two on node-2 (zone-b)."""
    events = [CreateService("svc-a", WEB), Scale("web", 2), Scale("web", 4, "node-2")]
    if distribution is not None:
        events.append(SetTrafficDistribution("svc-a", distribution))
    return apply_all(events)


def hints(state: ClusterState) -> dict[str, tuple[str, ...]]:
    return {e.pod: e.zone_hints for e, _ in unique_endpoints(derive_slices(state, "svc-a"))}


# -- the controller: TestReconcileHints -----------------------------------------------------------
@pytest.mark.parametrize("distribution", TRAFFIC_DISTRIBUTIONS)
def test_should_set_zone_hints_with_prefer_close(distribution: str) -> None:
    """`should set zone hints with PreferClose` (and PreferSameZone, the same heuristic): every
    ready endpoint is hinted for its own zone; `should correct incorrect hints` holds as the
    model derives hints afresh."""
    found = hints(spread(distribution))
    assert found == {"web-0": ("zone-a",), "web-1": ("zone-a",),
                     "web-2": ("zone-b",), "web-3": ("zone-b",)}  # fmt: skip


def test_unready_endpoints_get_no_hints() -> None:
    """`unready endpoints should not trigger updates`: an endpoint that is not ready has none."""
    state = SetReady("web-0", False).apply(spread())
    assert hints(state)["web-0"] == ()
    assert hints(state)["web-1"] == ("zone-a",)


def test_should_remove_hints_when_traffic_distribution_is_unset() -> None:
    """`should remove hints when trafficDistribution is unset`: clearing the field clears every
    hint; never set, there are none."""
    cleared = SetTrafficDistribution("svc-a", None).apply(spread())
    assert set(hints(cleared).values()) == {()}
    assert set(hints(spread(None)).values()) == {()}


def test_an_unrecognised_traffic_distribution_is_refused_in_one_line() -> None:
    """`should remove hints when trafficDistribution is unrecognized`: the model takes no value
    it does not know (the API validates the field); the event says which ones it knows."""
    with pytest.raises(InvalidEvent, match="PreferClose") as raised:
        SetTrafficDistribution("svc-a", "Unknown").apply(spread(None))
    assert "\n" not in str(raised.value)


# -- kube-proxy: per node, all or nothing -------------------------------------------------------
def usable_pods(state: ClusterState, node: str) -> set[str]:
    return {b.pod for b in expect(state, "svc-a", "http", node).usable}


def test_a_client_in_a_zone_with_hinted_endpoints_reaches_only_those() -> None:
    state = spread()
    assert usable_pods(state, "node-1") == {"web-0", "web-1"}
    assert usable_pods(state, "node-2") == {"web-2", "web-3"}
    assert usable_pods(spread(None), "node-1") == {"web-0", "web-1", "web-2", "web-3"}


def test_a_client_in_a_zone_without_endpoints_reaches_all() -> None:
    """node-3 is in zone-c, where no endpoint is: no hint names it, so no filtering."""
    assert ZONES["node-3"] == "zone-c"
    assert usable_pods(spread(), "node-3") == {"web-0", "web-1", "web-2", "web-3"}


def test_the_same_zone_falls_back_to_all_when_its_endpoints_are_not_ready() -> None:
    """Zone-a's endpoints unready: no ready endpoint is hinted for zone-a, so node-1's clients
    use every ready endpoint (zone-b's), not nothing."""
    state = apply_all([SetReady("web-0", False), SetReady("web-1", False)], spread())
    assert usable_pods(state, "node-1") == {"web-2", "web-3"}


def test_local_policy_ignores_hints() -> None:
    state = SetTrafficPolicy("svc-a", TrafficPolicy.LOCAL).apply(spread())
    assert usable_pods(state, "node-1") == {"web-0", "web-1"}
    assert usable_pods(state, "node-3") == set()


def test_why_unusable_names_the_zone() -> None:
    state = spread()
    backend = next(
        b for b in expect(state, "svc-a", "http").slices[0].endpoints if b.pod == "web-2"
    )
    reason = why_unusable(state, "svc-a", backend.backend)
    assert "zone-b" in reason and "PreferClose" in reason


# -- the event, its generation, its feature --------------------------------------------------------
@pytest.mark.parametrize("value", [PREFER_CLOSE, PREFER_SAME_ZONE, None])
def test_the_event_round_trips_through_json(value: str | None) -> None:
    event = SetTrafficDistribution("svc-a", value)
    assert event_from_json(event.to_json()) == event


def test_the_event_is_drawn_only_where_topology_is_declared() -> None:
    state = spread(None)
    generator = GENERATORS["set_traffic_distribution"]
    assert generator.applies(state, EventSpace())
    assert generator.applies(state, EventSpace(features=CORE_FEATURES | {TOPOLOGY}))
    assert not generator.applies(state, EventSpace(features=CORE_FEATURES))


@settings(max_examples=30, deadline=None, database=None)
@given(st.data())
def test_a_drawn_event_always_changes_the_field(data: st.DataObject) -> None:
    state = spread(data.draw(st.sampled_from([*TRAFFIC_DISTRIBUTIONS, None])))
    event = data.draw(GENERATORS["set_traffic_distribution"].strategy(state, EventSpace()))
    assert isinstance(event, SetTrafficDistribution)
    assert event.value != state.service("svc-a").traffic_distribution


def test_the_feature_is_judged_and_failures_are_attributed_to_it() -> None:
    feature = FEATURES[TOPOLOGY]
    assert "every-node" in feature.properties and feature.states == ("topology-narrowed",)
    blamed = attribute_failure("every-node", [SetTrafficDistribution("svc-a", PREFER_CLOSE)])
    assert TOPOLOGY in blamed
    assert TOPOLOGY not in attribute_failure("every-node", [SetTrafficDistribution("svc-a", None)])
