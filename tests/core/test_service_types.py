"""NodePort and LoadBalancer Services in the model (issue 11 items 2 and 3, model layer): types
allocate, keep and release node ports, ingress IPs and healthCheckNodePorts as the API server
does; traffic from outside goes where externalTrafficPolicy says (upstream's CategorizeEndpoints
local and cluster sets, DROP without local endpoints, REJECT without any); the health check node
port answers 200 only with a local Ready endpoint (I9); the kube target asks for the model's
node ports."""

from __future__ import annotations

import json

import pytest

from harness.errors import InvalidEvent
from harness.events import (
    CreateMultiPortService,
    CreatePod,
    CreateService,
    DeletePod,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceType,
    SetTrafficPolicy,
    apply_all,
    event_from_json,
)
from harness.kube.objects import Placement, service_manifest, service_patch
from harness.model.endpoints import expect_external, health_check_status
from harness.model.objects import ServiceType, TrafficPolicy, labels_of

WEB = labels_of({"app": "web"})
NODE_PORT, LB = ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER
LOCAL = TrafficPolicy.LOCAL


def test_types_allocate_keep_and_release_node_ports_and_ingress_ips() -> None:
    state = apply_all([CreateService("svc-a", WEB), CreateMultiPortService("svc-b", WEB)])
    state = SetServiceType("svc-a", NODE_PORT).apply(state)
    assert [p.node_port for p in state.services["svc-a"].ports] == [30000]
    state = SetServiceType("svc-b", LB).apply(state)
    svc_b = state.services["svc-b"]
    assert [p.node_port for p in svc_b.ports] == [30001, 30002]
    assert svc_b.load_balancer_ip == "10.255.0.10" and svc_b.health_check_node_port is None
    state = SetExternalTrafficPolicy("svc-b", LOCAL).apply(state)
    assert state.services["svc-b"].health_check_node_port == 30003
    state = SetServiceType("svc-b", NODE_PORT).apply(state)  # node ports kept, the rest goes
    svc_b = state.services["svc-b"]
    assert [p.node_port for p in svc_b.ports] == [30001, 30002]
    assert (svc_b.load_balancer_ip, svc_b.health_check_node_port) == (None, None)
    assert svc_b.external_traffic_policy == LOCAL
    state = SetServiceType("svc-a", ServiceType.CLUSTER_IP).apply(state)
    svc_a = state.services["svc-a"]
    assert [p.node_port for p in svc_a.ports] == [None]
    assert svc_a.external_traffic_policy == TrafficPolicy.CLUSTER
    assert SetServiceType("svc-b", LB).apply(state).services["svc-b"].ports == svc_b.ports
    assert state.next_node_ports(1) == (30000,)  # released ports are taken again, lowest first


def test_external_traffic_policy_is_refused_on_a_cluster_ip_service() -> None:
    state = apply_all([CreateService("svc-a", WEB)])
    with pytest.raises(InvalidEvent, match="applies only to NodePort and LoadBalancer"):
        SetExternalTrafficPolicy("svc-a", LOCAL).apply(state)


def test_the_events_round_trip() -> None:
    for event in (SetServiceType("svc-a", LB), SetExternalTrafficPolicy("svc-a", LOCAL)):
        assert event_from_json(json.loads(json.dumps(event.to_json()))) == event


ON_BOTH = [
    CreateService("svc-a", WEB),
    CreatePod("p-0", WEB, node="node-1"),
    CreatePod("p-1", WEB, node="node-2"),
    SetServiceType("svc-a", LB),
]


def reached(state: object, node: str) -> tuple[list[str], bool]:
    expected = expect_external(state, "svc-a", "http", node)  # type: ignore[arg-type]
    return sorted(b.pod for b in expected.usable), expected.drops


@pytest.mark.parametrize(
    ("events", "node", "pods", "drops", "health"),
    [
        # Cluster: every usable endpoint, from any node
        ([], "node-1", ["p-0", "p-1"], False, None),
        ([], "node-2", ["p-0", "p-1"], False, None),
        # Local: this node's endpoints only
        ([SetExternalTrafficPolicy("svc-a", LOCAL)], "node-1", ["p-0"], False, 200),
        ([SetExternalTrafficPolicy("svc-a", LOCAL)], "node-2", ["p-1"], False, 200),
        # Local, none here but some elsewhere: DROP (externalTrafficFilterTarget), 503
        (
            [SetExternalTrafficPolicy("svc-a", LOCAL), DeletePod("p-1", 0.0)],
            "node-2",
            [],
            True,
            503,
        ),
        # Local, only a terminating endpoint here: it still serves (local fallback), yet 503 (I9)
        (
            [SetExternalTrafficPolicy("svc-a", LOCAL), DeletePod("p-0", 30.0)],
            "node-1",
            ["p-0"],
            False,
            503,
        ),
        # no endpoints at all: REJECT, not DROP
        (
            [
                SetExternalTrafficPolicy("svc-a", LOCAL),
                DeletePod("p-0", 0.0),
                DeletePod("p-1", 0.0),
            ],
            "node-1",
            [],
            False,
            503,
        ),
    ],
)
def test_external_traffic_goes_where_the_policy_says(
    events: list, node: str, pods: list[str], drops: bool, health: int | None
) -> None:
    state = apply_all([*ON_BOTH, *events])
    assert reached(state, node) == (pods, drops)
    assert health_check_status(state, "svc-a", node) == health


def test_internal_traffic_policy_does_not_narrow_external_traffic() -> None:
    state = apply_all([*ON_BOTH, Scale("web", 0)])
    state = SetTrafficPolicy("svc-a", LOCAL).apply(state)
    assert reached(state, "node-2") == (["p-0", "p-1"], False)


def test_a_cluster_ip_service_has_no_node_port_to_reach() -> None:
    state = apply_all([CreateService("svc-a", WEB), CreatePod("p-0", WEB)])
    assert expect_external(state, "svc-a", "http", "node-1").service is None


def test_the_kube_target_asks_for_the_models_node_ports_and_drops_them_again() -> None:
    placement = Placement("svc-lb-hk0ab12", "hk0ab12")
    before = apply_all([CreateService("svc-a", WEB)])
    after = SetExternalTrafficPolicy("svc-a", LOCAL).apply(
        SetServiceType("svc-a", LB).apply(before)
    )
    spec = service_manifest(after.services["svc-a"], placement)["spec"]
    assert spec["type"] == "LoadBalancer" and spec["ports"][0]["nodePort"] == 30000
    assert spec["externalTrafficPolicy"] == "Local" and spec["healthCheckNodePort"] == 30001
    assert (
        "externalTrafficPolicy" not in service_manifest(before.services["svc-a"], placement)["spec"]
    )
    back = service_patch(after.services["svc-a"], before.services["svc-a"])
    assert back is not None
    assert back["spec"]["type"] == "ClusterIP" and back["spec"]["healthCheckNodePort"] is None
    assert "nodePort" not in back["spec"]["ports"][0]
