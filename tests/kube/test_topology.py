"""trafficDistribution on the kube target: the Service is written with it, a change is one
merge patch, and the real slices' zone hints are read back in the model's terms, so the
`endpoints` comparison stays exact (the mock API stands in for the API server)."""

from __future__ import annotations

from typing import Any

from harness.events import CreatePod, CreateService, SetTrafficDistribution, apply_all
from harness.kube.api import Cluster
from harness.kube.objects import Placement, Verb, plan
from harness.kube.observe import Incarnations, to_model_slice
from harness.model.objects import PREFER_CLOSE, PREFER_SAME_ZONE, labels_of

NS = "svc-lb-hk00abc"
PLACEMENT = Placement("svc-lb-hk00001", "hk00001", nodes={"node-1": "w1", "node-2": "w2"})
WEB = labels_of({"app": "web"})
BASE = [CreateService("web", WEB), CreatePod("web-a", WEB)]


def spec_after(*events: Any) -> dict[str, Any]:
    """The spec of the Service `web` as created after BASE and `events`."""
    created = plan(apply_all([]), apply_all([*BASE, *events]), PLACEMENT)
    body = next(o.body for o in created if o.verb is Verb.CREATE_SERVICE)
    assert body is not None
    spec: dict[str, Any] = body["spec"]
    return spec


def test_the_manifest_carries_the_distribution_only_when_set() -> None:
    assert spec_after(SetTrafficDistribution("web", PREFER_CLOSE))["trafficDistribution"] == (
        PREFER_CLOSE
    )
    assert "trafficDistribution" not in spec_after()


def test_a_change_is_one_merge_patch_and_clearing_removes_the_field() -> None:
    state = apply_all(BASE)
    closer = SetTrafficDistribution("web", PREFER_SAME_ZONE).apply(state)
    (operation,) = plan(state, closer, PLACEMENT)
    assert operation.verb is Verb.PATCH_SERVICE
    assert operation.body == {"spec": {"trafficDistribution": PREFER_SAME_ZONE}}
    (cleared,) = plan(closer, SetTrafficDistribution("web", None).apply(closer), PLACEMENT)
    assert cleared.body == {"spec": {"trafficDistribution": None}}


def hinted_endpoint(address: str, zone: str | None, hints: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "addresses": [address],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "worker-b",
        "targetRef": {"kind": "Pod", "name": "web-a", "namespace": NS, "uid": "k-1"},
    }
    if zone is not None:
        found["zone"] = zone
    if hints:
        found["hints"] = {"forZones": [{"name": name} for name in hints]}
    return found


def test_real_hints_are_read_back_in_the_models_zones(cluster: Cluster) -> None:
    """worker-b is the model's node-2 (zone-b): a hint naming the endpoint's own zone label
    (`eu-1b`) reads as zone-b, another keeps its name, no hints read as none."""
    cluster.core.create_namespace({"metadata": {"name": NS}})
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-x1",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [
            hinted_endpoint("10.1.0.4", "eu-1b", ["eu-1b"]),
            hinted_endpoint("10.1.0.5", "eu-1b", ["eu-1c"]),
            hinted_endpoint("10.1.0.6", None, []),
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    cluster.discovery.create_namespaced_endpoint_slice(NS, body)
    (item,) = cluster.discovery.list_namespaced_endpoint_slice(NS).items
    converted = to_model_slice(item, Incarnations(), {"worker-b": "node-2"})
    assert converted is not None
    hints = {e.address: e.zone_hints for e in converted.endpoints}
    assert hints == {"10.1.0.4": ("zone-b",), "10.1.0.5": ("eu-1c",), "10.1.0.6": ()}
    assert {e.zone for e in converted.endpoints} == {"zone-b"}
