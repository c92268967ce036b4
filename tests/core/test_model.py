"""The model against hand-written cases taken from upstream e2e tests, code and bug reports."""

from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    EvictPod,
    PodExit,
    RestartPod,
    Scale,
    SetLabel,
    SetPublishNotReady,
    SetReady,
    SetTrafficPolicy,
    Wait,
    apply_all,
)
from harness.model import derive_slices, labels_of, usable_destinations
from harness.model.objects import TrafficPolicy

WEB = labels_of({"app": "web"})


def usable(events, service="svc"):
    state = apply_all(events)
    slices = derive_slices(state, service)
    return sorted(
        d.backend.pod for d in usable_destinations(slices, state.services[service], "http")
    )


def endpoints(events, service="svc"):
    state = apply_all(events)
    return {
        e.pod: (e.ready, e.serving, e.terminating)
        for s in derive_slices(state, service)
        for e in s.endpoints
    }


def test_basic_endpoints_follow_pods_0_1_2_1_0():
    """Conformance "should serve a basic endpoint from pods": 0 -> 1 -> 2 -> 1 -> 0 pods."""
    base = [CreateService("svc", WEB)]
    assert usable(base) == []
    assert usable([*base, Scale("web", 1)]) == ["web-0"]
    assert usable([*base, Scale("web", 2)]) == ["web-0", "web-1"]
    assert usable([*base, Scale("web", 2), DeletePod("web-1", 0)]) == ["web-0"]
    assert usable([*base, Scale("web", 2), DeletePod("web-1", 0), DeletePod("web-0", 0)]) == []


def test_conditions_of_terminating_pod_follow_pod_to_endpoint():
    """podToEndpoint: serving = Ready, terminating = deletionTimestamp set,
    ready = serving and not terminating."""
    events = [CreateService("svc", WEB), Scale("web", 2), DeletePod("web-0", 30)]
    assert endpoints(events)["web-0"] == (False, True, True)
    assert endpoints(events)["web-1"] == (True, True, False)
    assert usable(events) == ["web-1"]


def test_terminating_fallback_when_no_ready_endpoint():
    """CategorizeEndpoints: no Ready endpoint -> Serving && Terminating ones (KEP-1669)."""
    events = [CreateService("svc", WEB), Scale("web", 2), Scale("web", 0)]
    assert usable(events) == ["web-0", "web-1"]
    events += [SetReady("web-0", False)]
    assert usable(events) == ["web-1"]  # not serving any more
    assert usable([*events, PodExit("web-1")]) == []  # REJECT


def test_grace_period_runs_out():
    events = [CreateService("svc", WEB), Scale("web", 1), DeletePod("web-0", 30)]
    assert "web-0" in endpoints([*events, Wait(29)])
    assert "web-0" not in endpoints([*events, Wait(30)])


def test_unready_pod_listed_but_not_usable():
    events = [CreateService("svc", WEB), CreatePod("p", WEB, ready=False)]
    assert endpoints(events)["p"] == (False, False, False)
    assert usable(events) == []


def test_publish_not_ready_addresses_makes_unready_and_terminating_ready_not_serving():
    """e2e "should create endpoints for unready pods"; publishNotReadyAddresses=true.

    podToEndpoint: publishNotReadyAddresses sets `ready` only; `serving` stays the pod's Ready
    condition (TestPodToEndpoint "Unready pod + publishNotReadyAddresses": ready, not serving).
    """
    events = [
        CreateService("svc", WEB, publish_not_ready_addresses=True),
        CreatePod("p", WEB, ready=False),
        Scale("web", 1),
        DeletePod("web-0", 30),
    ]
    assert endpoints(events) == {"p": (True, False, False), "web-0": (True, True, True)}
    # Both are ready, so CategorizeEndpoints uses both; serving is never consulted.
    assert usable(events) == ["p", "web-0"]
    # Turned off: p (not ready) drops out; web-0 is Ready and terminating, so it is serving and
    # terminating and, with no Ready endpoint left, the terminating fallback still uses it.
    assert usable([*events, SetPublishNotReady("svc", False)]) == ["web-0"]


def test_evicted_pod_is_never_an_endpoint_even_with_publish_not_ready():
    """kubernetes#109414/#109718, PR #110255: a Failed pod's IP may already be someone else's."""
    events = [
        CreateService("svc", WEB, publish_not_ready_addresses=True),
        Scale("web", 2),
        EvictPod("web-0"),
    ]
    assert set(endpoints(events)) == {"web-1"}
    state = apply_all([*events, CreatePod("new", labels_of({"app": "other"}))])
    assert state.pods["new"].ip == state.pods["web-0"].ip  # the address was reused


def test_relabel_moves_a_pod_out_of_and_into_the_selector():
    events = [CreateService("svc", WEB), Scale("web", 2), SetLabel("web-0", "app", "api")]
    assert usable(events) == ["web-1"]
    assert usable([*events, SetLabel("web-0", "app", "web")]) == ["web-0", "web-1"]


def test_restart_is_a_new_incarnation():
    events = [CreateService("svc", WEB), Scale("web", 1)]
    before = apply_all(events).pods["web-0"]
    after = apply_all([*events, RestartPod("web-0")]).pods["web-0"]
    moved = apply_all([*events, RestartPod("web-0", new_ip=True)]).pods["web-0"]
    assert after.uid != before.uid and after.ip == before.ip
    assert moved.uid != before.uid and moved.ip != before.ip


def test_named_target_port_resolves_per_pod():
    """endpointslice.go Conformance: named targetPort resolved per pod -> one slice per port set."""
    events = [
        CreateService("svc", WEB),
        CreatePod("a", WEB, http_port=8080),
        CreatePod("b", WEB, http_port=8081),
    ]
    slices = derive_slices(apply_all(events), "svc")
    ports = {e.pod: s.port_for("http") for s in slices for e in s.endpoints}
    assert ports == {"a": 8080, "b": 8081}
    assert len(slices) == 2


def test_internal_traffic_policy_local_uses_only_local_endpoints():
    """KEP-2086: iTP=Local -> only endpoints on the client's node; none -> REJECT."""
    events = [
        CreateService("svc", WEB),
        CreatePod("near", WEB, node="node-1"),
        CreatePod("far", WEB, node="node-2"),
        SetTrafficPolicy("svc", TrafficPolicy.LOCAL),
    ]
    assert usable(events) == ["near"]
    assert usable([*events, DeletePod("near", 0)]) == []


def test_empty_selector_selects_nothing():
    assert usable([CreateService("svc", ()), Scale("web", 2)]) == []
