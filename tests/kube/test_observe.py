"""The EndpointSlice watch and its conversion into the model's form."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem
from harness.kube.api import Cluster
from harness.kube.observe import Incarnations, Watched, selector_matches, to_model_slice
from harness.model.objects import Endpoint, EndpointPort

NS = "svc-lb-hk00abc"


def api_slice(
    endpoints: list[dict[str, Any]], name: str = "web-x1", family: str = "IPv4"
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def endpoint(pod: str, uid: str, address: str, **conditions: Any) -> dict[str, Any]:
    return {
        "addresses": [address],
        "conditions": conditions,
        "nodeName": "worker-b",
        "targetRef": {"kind": "Pod", "name": pod, "namespace": NS, "uid": uid},
    }


def pod(name: str, kube_uid: str, incarnation: str) -> Any:
    from kubernetes.client import V1ObjectMeta, V1Pod

    return V1Pod(
        metadata=V1ObjectMeta(
            name=name, uid=kube_uid, labels={"svc-lb-harness/incarnation": incarnation}
        )
    )


def converted(cluster: Cluster, body: dict[str, Any], incarnations: Incarnations) -> Any:
    cluster.discovery.create_namespaced_endpoint_slice(NS, body)
    (item,) = cluster.discovery.list_namespaced_endpoint_slice(NS).items
    return to_model_slice(item, incarnations, {"worker-a": "node-1", "worker-b": "node-2"})


def test_conversion_maps_identity_node_and_conditions(cluster: Cluster) -> None:
    cluster.core.create_namespace({"metadata": {"name": NS}})
    incarnations = Incarnations()
    incarnations.record("ADDED", pod("web-a", "k-1", "u1"))
    incarnations.record("DELETED", pod("web-a", "k-1", "u1"))
    incarnations.record("ADDED", pod("web-a", "k-2", "u3"))  # restarted: a new incarnation
    body = api_slice(
        [
            endpoint("web-a", "k-2", "10.1.0.5", ready=True, serving=True, terminating=False),
            endpoint("web-a", "k-1", "10.1.0.4", ready=False, serving=True, terminating=True),
            endpoint(
                "ghost", "k-9", "10.1.0.9"
            ),  # unset conditions: ready, serving, not terminating
        ]
    )
    result = converted(cluster, body, incarnations)
    assert result.service == "web" and result.ports == (EndpointPort("http", 8080, "TCP"),)
    assert result.endpoints == (
        Endpoint("10.1.0.9", "ghost", "?k-9", "node-2", "zone-b", True, True, False),
        Endpoint("10.1.0.4", "web-a", "u1", "node-2", "zone-b", False, True, True),
        Endpoint("10.1.0.5", "web-a", "u3", "node-2", "zone-b", True, True, False),
    )


def test_ipv6_slices_are_left_out(cluster: Cluster) -> None:
    cluster.core.create_namespace({"metadata": {"name": NS}})
    assert converted(cluster, api_slice([], family="IPv6"), Incarnations()) is None


def test_selector_matching_on_the_client_side() -> None:
    assert selector_matches("kubernetes.io/service-name", {"kubernetes.io/service-name": "w"})
    assert not selector_matches("kubernetes.io/service-name", {"app": "w"})
    assert selector_matches("a=1,b", {"a": "1", "b": ""})
    assert not selector_matches("a=1", {"a": "2"})


def test_watch_follows_changes_and_reports_a_lost_server(
    mock_api: MockApiServer, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.kube.observe.RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr("harness.kube.observe.READ_TIMEOUT_S", 1.0)
    cluster.core.create_namespace({"metadata": {"name": NS}})
    watched = Watched(
        cluster,
        cluster.discovery.list_namespaced_endpoint_slice,
        NS,
        "kubernetes.io/service-name",
        "endpointslices",
    )
    watched.start()
    try:
        generation = watched.generation
        cluster.discovery.create_namespaced_endpoint_slice(NS, api_slice([], name="web-1"))
        unlabelled = api_slice([], name="other")
        unlabelled["metadata"]["labels"] = {}
        cluster.discovery.create_namespaced_endpoint_slice(NS, unlabelled)
        watched.wait_for_change(generation, 2.0)
        assert [i.metadata.name for i in watched.items()] == ["web-1"]
        mock_api.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                watched.items()
            except EnvironmentProblem as problem:
                assert "cannot reach the Kubernetes API server" in str(problem)
                assert "\n" not in str(problem)
                break
            assert time.monotonic() < deadline, "the lost server was never reported"
            time.sleep(0.05)
    finally:
        watched.stop()
