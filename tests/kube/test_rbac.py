"""deploy/rbac.yaml grants exactly what the harness uses, and this test sees any call it does not.

The mock API server logs every request. The harness runs every path that talks to the API:

- `--pods cluster`: open (server version, namespace, nodes, the pod and EndpointSlice watches,
  client pods), every API operation of `harness.kube.objects.Verb` (asserted), the slices, traffic,
  the programming-latency cross-check, reset and close; plus one real `pods/exec` request (the
  mock refuses the websocket, but the request is what needs the permission);
- `--pods local`: Nodes created and their status written, pod status writes, evictions, kills;
- `harness clean --kube`: labelled namespaces and Nodes listed, their runs' Leases read, the dead
  ones deleted;
- the run's Lease: created by open, renewed (a merge patch), deleted by close.

Each request becomes the authorization attributes the API server derives for it
(`k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory`): verb (`list`/`get`/`watch` for GET
by shape and `watch=true`; `create`, `update`, `patch`; `delete` or `deletecollection`), API group,
resource and subresource, namespace. A websocket exec needs `create` besides `get` (Kubernetes
1.35, AuthorizePodWebsocketUpgradeCreatePermission, kubernetes#134577). Requests in a namespace are
checked against the namespaced role and must go to a namespace a harness run created (the run's
own, or a leftover the cleaner reads); cluster-scoped
ones against the cluster role. Non-resource paths must be the discovery ones every authenticated
user may read.

One call is used and deliberately not granted: `get nodes/proxy` (kube-proxy's metrics through the
API server), which the harness tolerates being refused (documented in deploy/rbac.yaml).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakecluster import USER_AGENT, FakeCluster, FakeLocal, make_nodes
from kubernetes.client import CoordinationV1Api
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    EvictPod,
    RestartPod,
    SetLabel,
    SetReady,
    SetSelector,
)
from harness.kube.api import Cluster, connect_url
from harness.kube.cleanup import clean_cluster
from harness.kube.heartbeat import lease_manifest, utc_now
from harness.kube.objects import MANAGED_BY, MANAGED_BY_KEY, Verb, managed_labels
from harness.kube.runtime import PodExec
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.targets.kube import NAMESPACE_PREFIX, KubeTarget
from harness.traffic import TrafficRequest

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
CLUSTER_ROLE = "svc-lb-harness-cluster"
NAMESPACED_ROLE = "svc-lb-harness-namespaced"
SERVICE_ACCOUNT = ("svc-lb-harness", "svc-lb-harness-system")
WEB = labels_of({"app": "web"})
DISCOVERY_PATHS = {"/version", "/version/", "/api", "/api/", "/apis", "/apis/"}
WEBSOCKET_SUBRESOURCES = {"exec", "attach", "portforward"}


@dataclass(frozen=True, order=True)
class Permission:
    """One RBAC permission: verb on a resource (`pods`, or `pods/exec`) of an API group."""

    verb: str
    resource: str
    group: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f" ({self.group})" if self.group else "")


OPTIONAL = {Permission("get", "nodes/proxy")}  # refused politely: KubeTarget.programming_latency


@dataclass(frozen=True)
class Access:
    """What one request needs: permissions, and its namespace (None: cluster-scoped)."""

    permissions: frozenset[Permission]
    namespace: str | None
    request: str


def access(method: str, path: str, query: Mapping[str, str]) -> Access | None:
    """The attributes the API server authorizes a request by; None for a non-resource path."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, parts = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, parts = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if parts[0] == "namespaces" and len(parts) > 2:
        namespace, parts = parts[1], parts[2:]
    resource, name = parts[0], parts[1] if len(parts) > 1 else None
    if len(parts) > 2:
        resource = f"{resource}/{parts[2]}"
    verbs = {
        "POST": ["create"],
        "PUT": ["update"],
        "PATCH": ["patch"],
        "DELETE": ["delete" if name else "deletecollection"],
    }.get(method)
    if method == "GET":
        watching = query.get("watch") in ("true", "1")
        verbs = ["watch" if watching else "get" if name else "list"]
        if len(parts) > 2 and parts[2] in WEBSOCKET_SUBRESOURCES:
            verbs.append("create")
    if verbs is None:
        raise AssertionError(f"unexpected method {method} {path}")
    permissions = frozenset(Permission(verb, resource, group) for verb in verbs)
    return Access(permissions, namespace, f"{method} {path}")


def granted() -> dict[str, set[Permission]]:
    """Each ClusterRole of deploy/rbac.yaml -> the permissions its rules grant."""
    roles: dict[str, set[Permission]] = {}
    for document in yaml.safe_load_all(RBAC.read_text()):
        if document and document["kind"] == "ClusterRole":
            roles[document["metadata"]["name"]] = {
                Permission(verb, resource, group)
                for rule in document["rules"]
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
    return roles


@dataclass
class Recording:
    """The harness's requests in the scenarios, and the namespaces it created."""

    accesses: list[Access]
    created_namespaces: set[str]
    non_resource: set[str]
    operations: set[Verb]


def problems(recording: Recording, roles: Mapping[str, set[Permission]]) -> list[str]:
    """Every request that `roles` do not allow, one line each (empty: all allowed). Pure."""
    found = []
    for used in recording.accesses:
        role = NAMESPACED_ROLE if used.namespace else CLUSTER_ROLE
        missing = used.permissions - roles[role] - OPTIONAL
        if missing:
            names = ", ".join(str(p) for p in sorted(missing))
            found.append(f"{used.request} needs {names}, not granted by {role}")
        if used.namespace is not None and used.namespace not in recording.created_namespaces:
            found.append(f"{used.request} is in namespace {used.namespace}, not the run's own")
    found += [f"non-resource request {path}" for path in recording.non_resource - DISCOVERY_PATHS]
    return found


def used_by_role(recording: Recording) -> dict[str, set[Permission]]:
    used: dict[str, set[Permission]] = {CLUSTER_ROLE: set(), NAMESPACED_ROLE: set()}
    for entry in recording.accesses:
        used[NAMESPACED_ROLE if entry.namespace else CLUSTER_ROLE] |= entry.permissions
    return used


def record(mock: MockApiServer) -> Recording:
    accesses, created, non_resource = [], set(), set()
    for request in mock.requests():
        method, path = request.method.name, request.url.path
        if method == "POST" and path.rstrip("/") == "/api/v1/namespaces":
            body = request.data or {}
            labels = body.get("metadata", {}).get("labels", {})
            if labels.get(MANAGED_BY_KEY) == MANAGED_BY:
                created.add(body["metadata"]["name"])  # also a leftover made by the test
        if request.headers.get("User-Agent") == USER_AGENT:
            continue  # the fake control plane's own requests, and the test's reads
        entry = access(method, path, dict(request.url.query))
        if entry is None:
            non_resource.add(path)
            continue
        accesses.append(entry)
    return Recording(accesses, created, non_resource, set())


# -- the scenarios ---------------------------------------------------------------------------------
def traced(target: KubeTarget, operations: set[Verb]) -> None:
    """Record every API operation the target executes."""
    execute = target._execute

    def tracing(operation: Any) -> None:
        operations.add(operation.verb)
        execute(operation)

    target._execute = tracing  # type: ignore[method-assign]


def run_cluster_mode(mock: MockApiServer, cluster: Cluster, operations: set[Verb]) -> None:
    with FakeCluster(mock.url) as fake:
        make_nodes(fake.cluster)
        fake.exec_output = "web-a--u1\n0 0.001\n"
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5, "lease_renew_s": 0.02}),
            cluster=cluster,
            pod_exec=fake.exec,
        )
        traced(target, operations)
        target.open()
        try:
            wait_for_a_renewal(target)
            for event in (
                CreateService("web", WEB),
                CreatePod("web-a", WEB),
                SetSelector("web", labels_of({"app": "web", "x": "y"})),
                SetLabel("web-a", "x", "y"),
                SetReady("web-a", False),
                DeletePod("web-a", 5),
                CreatePod("web-b", WEB),
                EvictPod("web-b"),
                CreateService("api", WEB),
                DeleteService("api"),
            ):
                target.apply(event)
            target.endpoint_slices("web")
            target.send(TrafficRequest("web", count=1))
            assert target.programming_latency() is None  # the mock has no node proxy
            with pytest.raises(EnvironmentProblem, match="pods/exec"):
                PodExec(cluster, target.namespace)("harness-client-1", ["true"], 5.0)
            target.reset()
        finally:
            target.close()


def wait_for_a_renewal(target: KubeTarget) -> None:
    """Bounded: the Lease is renewed (a patch) at least once."""
    heartbeat = target._heartbeat
    assert heartbeat is not None
    for _ in range(250):
        if heartbeat.renewals:
            return
        time.sleep(0.02)
    raise AssertionError("the run's lease was never renewed")


def run_local_mode(cluster: Cluster, operations: set[Verb]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "harness.kube.kubelet._default_local_cluster",
            lambda prefix, clients, service_ranges: FakeLocal(),
        )
        target = KubeTarget(TargetOptions(pods="local"), cluster=cluster)
        traced(target, operations)
        target.open()
        try:
            for event in (
                CreatePod("web-a", WEB),
                SetReady("web-a", False),
                CreatePod("web-b", WEB),
                EvictPod("web-b"),
                CreatePod("web-c", WEB),
                RestartPod("web-c"),
            ):
                target.apply(event)
        finally:
            target.close()


def run_clean(mock: MockApiServer) -> None:
    """A killed run's namespace and Node, left for `harness clean --kube`, and a live run's (its
    Lease fresh), which the cleaner reads and keeps."""
    leftovers = connect_url(mock.url)
    leftovers.api_client.user_agent = USER_AGENT  # the leftovers are not the cleaner's requests
    for run in ("hkdead1", "hklive1"):
        labels = managed_labels(run)
        leftovers.core.create_namespace({"metadata": {"name": f"svc-lb-{run}", "labels": labels}})
        leftovers.core.create_node({"metadata": {"name": f"{run}-node-1", "labels": labels}})
    CoordinationV1Api(leftovers.api_client).create_namespaced_lease(
        "svc-lb-hklive1", lease_manifest("svc-lb-hklive1", "hklive1", utc_now())
    )
    leftovers.close()
    cleaner = connect_url(mock.url)
    try:
        cleaned = clean_cluster(cleaner)
        assert cleaned.removed == ["namespace/svc-lb-hkdead1", "node/hkdead1-node-1"]
        assert [line.split(":")[0] for line in cleaned.kept] == [
            "namespace/svc-lb-hklive1",
            "node/hklive1-node-1",
        ]
    finally:
        cleaner.close()


@pytest.fixture(scope="module")
def recording() -> Iterator[Recording]:
    mock = MockApiServer()
    cluster = connect_url(mock.url)
    operations: set[Verb] = set()
    try:
        run_cluster_mode(mock, cluster, operations)
        run_local_mode(cluster, operations)
        run_clean(mock)
        result = record(mock)
        result.operations = operations
        yield result
    finally:
        cluster.close()
        mock.stop()


# -- the tests -------------------------------------------------------------------------------------
def test_the_scenarios_run_every_api_operation_of_the_kube_target(recording: Recording) -> None:
    assert recording.operations == set(Verb)


def test_every_request_the_harness_sends_is_granted(recording: Recording) -> None:
    assert problems(recording, granted()) == []


def test_every_granted_permission_is_used(recording: Recording) -> None:
    used = used_by_role(recording)
    for role, permissions in granted().items():
        assert permissions - used[role] == set(), f"{role} grants what the harness never uses"


def test_the_only_permission_used_but_not_granted_is_the_optional_one(
    recording: Recording,
) -> None:
    used = used_by_role(recording)
    assert used[CLUSTER_ROLE] - granted()[CLUSTER_ROLE] == OPTIONAL
    assert "nodes/proxy" in RBAC.read_text()  # with the reason it is left out


def permissions_granted() -> list[tuple[str, Permission]]:
    return [(role, p) for role, granted_ in sorted(granted().items()) for p in sorted(granted_)]


@pytest.mark.parametrize(("role", "permission"), permissions_granted(), ids=str)
def test_a_role_with_one_permission_less_fails_the_check(
    recording: Recording, role: str, permission: Permission
) -> None:
    roles = granted()
    roles[role] = roles[role] - {permission}
    found = problems(recording, roles)
    assert found, f"nothing the harness does needs {permission}"
    assert all(str(permission) in line and role in line for line in found), found


def test_a_call_the_role_does_not_grant_fails_the_check(mock_api: MockApiServer) -> None:
    cluster = connect_url(mock_api.url)
    try:
        cluster.core.create_namespace(
            {"metadata": {"name": "svc-lb-hk00001", "labels": {MANAGED_BY_KEY: MANAGED_BY}}}
        )
        cluster.call("list services", cluster.core.list_namespaced_service, "svc-lb-hk00001")
        cluster.call("list pods", cluster.core.list_pod_for_all_namespaces)
        cluster.call("get pods", cluster.core.read_namespaced_pod, "x", "kube-system", allow=(404,))
    finally:
        cluster.close()
    found = problems(record(mock_api), granted())
    assert len(found) == 4, found
    assert "list services, not granted by svc-lb-harness-namespaced" in found[0]
    assert "list pods, not granted by svc-lb-harness-cluster" in found[1]  # all namespaces
    assert "get pods, not granted" in found[2] and "kube-system, not the run's own" in found[3]


def test_request_attributes_follow_the_api_servers_request_info() -> None:
    cases = {
        ("GET", "/api/v1/namespaces/n/pods", "true"): ({"watch pods"}, "n"),
        ("GET", "/api/v1/namespaces/n/pods", ""): ({"list pods"}, "n"),
        ("GET", "/api/v1/namespaces/n/pods/p", ""): ({"get pods"}, "n"),
        ("GET", "/api/v1/namespaces/n/pods/p/exec", ""): (
            {"get pods/exec", "create pods/exec"},
            "n",
        ),
        ("PATCH", "/api/v1/namespaces/n/pods/p/status", ""): ({"patch pods/status"}, "n"),
        ("DELETE", "/api/v1/namespaces/n/pods", ""): ({"deletecollection pods"}, "n"),
        ("DELETE", "/api/v1/namespaces/n", ""): ({"delete namespaces"}, None),
        ("POST", "/api/v1/namespaces", ""): ({"create namespaces"}, None),
        ("GET", "/api/v1/pods", ""): ({"list pods"}, None),
        ("PATCH", "/api/v1/nodes/x/status", ""): ({"patch nodes/status"}, None),
        ("GET", "/api/v1/nodes/x:10249/proxy/metrics", ""): ({"get nodes/proxy"}, None),
        ("GET", "/apis/discovery.k8s.io/v1/namespaces/n/endpointslices", ""): (
            {"list endpointslices (discovery.k8s.io)"},
            "n",
        ),
    }
    for (method, path, watch), (permissions, namespace) in cases.items():
        entry = access(method, path, {"watch": watch} if watch else {})
        assert entry is not None
        assert ({str(p) for p in entry.permissions}, entry.namespace) == (permissions, namespace)
    assert access("GET", "/version/", {}) is None
    assert access("GET", "/apis", {}) is None


def test_the_roles_are_bound_to_the_service_account_and_grant_no_wildcard() -> None:
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    bound = {
        d["roleRef"]["name"]: [(s["name"], s["namespace"]) for s in d["subjects"]]
        for d in documents
        if d["kind"] == "ClusterRoleBinding"
    }
    assert bound == {CLUSTER_ROLE: [SERVICE_ACCOUNT], NAMESPACED_ROLE: [SERVICE_ACCOUNT]}
    for permissions in granted().values():
        assert not any("*" in (p.verb + p.resource + p.group) for p in permissions)
        assert not {p.verb for p in permissions} & {"bind", "escalate", "impersonate"}
    assert NAMESPACE_PREFIX == "svc-lb-"  # the run namespaces the comments in rbac.yaml name
