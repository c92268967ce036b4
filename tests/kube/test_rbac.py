"""deploy/rbac.yaml lists exactly the permissions the harness uses.

Every request the harness sends while running both modes and cleaning up (recorded by the mock API
server) is turned into an RBAC (verb, resource) pair and must be granted; every granted pair must
be used (pods/exec is exercised only on a real cluster: the mock speaks no websocket).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fakecluster import USER_AGENT, FakeCluster, FakeLocal, eventually, make_nodes
from mockapi import MockApiServer

from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    EvictPod,
    SetLabel,
    SetReady,
    SetSelector,
)
from harness.kube.api import Cluster
from harness.kube.cleanup import clean_cluster
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import TrafficRequest

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
WEB = labels_of({"app": "web"})
EXEC_ONLY = {("create", "pods/exec"), ("get", "pods/exec")}


def granted() -> set[tuple[str, str]]:
    pairs = set()
    for document in yaml.safe_load_all(RBAC.read_text()):
        if document and document["kind"] == "ClusterRole":
            for rule in document["rules"]:
                pairs |= {(v, r) for v in rule["verbs"] for r in rule["resources"]}
    return pairs


def rbac_pair(method: str, path: str, query: dict[str, str]) -> tuple[str, str] | None:
    """The (verb, resource) an API request needs, as the authorizer derives it."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        parts = parts[2:]
    elif parts[0] == "apis":
        parts = parts[3:]
    else:
        return None  # /version: allowed to everyone (system:public-info-viewer)
    if len(parts) >= 2 and parts[0] == "namespaces" and (len(parts) > 2 or method != "DELETE"):
        parts = parts[2:] if len(parts) > 2 else parts
    resource = parts[0]
    named = len(parts) >= 2
    if len(parts) >= 3:
        resource = f"{parts[0]}/{parts[2]}"
    verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}.get(method)
    if method == "GET":
        verb = "watch" if query.get("watch") == "true" else ("get" if named else "list")
    return (verb, resource) if verb else None


def used(mock: MockApiServer) -> set[tuple[str, str]]:
    pairs = set()
    for request in mock.requests():
        if request.headers.get("User-Agent") == USER_AGENT:
            continue  # the fake control plane's own requests
        pair = rbac_pair(request.method.name, request.url.path, dict(request.url.query))
        if pair is not None:
            pairs.add(pair)
    return pairs


def run_cluster_mode(mock: MockApiServer, cluster: Cluster) -> None:
    make_nodes(cluster)
    with FakeCluster(mock.url) as fake:
        fake.exec_output = "web-a--u1\n0 0.001\n"
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5}), cluster=cluster, pod_exec=fake.exec
        )
        target.open()
        try:
            for event in (
                CreateService("web", WEB),
                CreatePod("web-a", WEB),
                SetSelector("web", labels_of({"app": "web", "x": "y"})),
                SetLabel("web-a", "x", "y"),
                SetReady("web-a", False),
                DeletePod("web-a", 5),
                CreatePod("web-b", WEB),
                EvictPod("web-b"),
            ):
                target.apply(event)
            target.endpoint_slices("web")
            target._cluster_ips.clear()  # make send read the ClusterIP back (get services)
            eventually(
                lambda: bool(
                    cluster.core.read_namespaced_service("web", target.namespace).spec.cluster_ip
                )
            )
            target.send(TrafficRequest("web", count=1))
            target.reset()
        finally:
            target.close()


def run_local_mode(cluster: Cluster, monkeypatch: Any) -> None:
    monkeypatch.setattr(
        "harness.kube.kubelet._default_local_cluster", lambda prefix, clients: FakeLocal()
    )
    target = KubeTarget(TargetOptions(pods="local"), cluster=cluster)
    target.open()
    try:
        target.apply(CreatePod("web-a", WEB))
        target.apply(SetReady("web-a", False))
    finally:
        target.close()


def test_rbac_grants_exactly_what_is_used(
    mock_api: MockApiServer, cluster: Cluster, monkeypatch: Any
) -> None:
    run_cluster_mode(mock_api, cluster)
    run_local_mode(cluster, monkeypatch)
    cluster.core.create_namespace(
        {
            "metadata": {
                "name": "svc-lb-hkdead1",
                "labels": {"app.kubernetes.io/managed-by": "svc-lb-harness"},
            }
        }
    )
    clean_cluster(cluster)
    needed = used(mock_api)
    assert needed - granted() == set(), "used but not granted in deploy/rbac.yaml"
    assert granted() - needed == EXEC_ONLY, "granted but never used"


def test_request_to_permission_mapping() -> None:
    assert rbac_pair("GET", "/api/v1/namespaces/n/pods", {"watch": "true"}) == ("watch", "pods")
    assert rbac_pair("PATCH", "/api/v1/namespaces/n/pods/p/status", {}) == ("patch", "pods/status")
    assert rbac_pair("DELETE", "/api/v1/namespaces/n", {}) == ("delete", "namespaces")
    assert rbac_pair("POST", "/api/v1/namespaces", {}) == ("create", "namespaces")
    assert rbac_pair("GET", "/apis/discovery.k8s.io/v1/namespaces/n/endpointslices", {}) == (
        "list",
        "endpointslices",
    )
    assert rbac_pair("PATCH", "/api/v1/nodes/x/status", {}) == ("patch", "nodes/status")
