"""The kube target against a mock API server: the calls each event makes, the EndpointSlice watch
conversion, traffic, and the error paths (each one line, the namespace cleaned up)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fakecluster import USER_AGENT, FakeCluster, eventually, make_nodes
from mockapi import MockApiServer

from harness.checks.endpoints import check_endpoints
from harness.errors import EnvironmentProblem, UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    EvictPod,
    RestartPod,
    SetLabel,
    SetPublishNotReady,
    SetReady,
    SetSelector,
    Wait,
)
from harness.kube.api import Cluster, connect_url
from harness.kube.objects import INCARNATION_LABEL, MANAGED_BY, MANAGED_BY_KEY
from harness.model.endpoints import derive_slices
from harness.model.objects import Backend, labels_of
from harness.registry import TargetOptions, make_target
from harness.targets.kube import KubeTarget
from harness.traffic import ErrorKind, TrafficRequest

WEB = labels_of({"app": "web"})


def new_target(cluster: Cluster, fake: FakeCluster, **extra: Any) -> KubeTarget:
    return KubeTarget(
        TargetOptions(extra={"startup_s": 5, **extra}), cluster=cluster, pod_exec=fake.exec
    )


def namespaces(cluster: Cluster) -> list[str]:
    return [n.metadata.name for n in cluster.core.list_namespace().items]


def writes(mock: MockApiServer, since: int) -> list[tuple[str, str, Any]]:
    """(METHOD, path, body) of the harness's writes after request number `since`; a DELETE's
    body is its query (where the client puts gracePeriodSeconds)."""
    out = []
    for request in mock.requests()[since:]:
        method = request.method.name
        if (
            method in ("POST", "PATCH", "DELETE")
            and request.headers.get("User-Agent") != USER_AGENT
        ):
            body = dict(request.url.query) if method == "DELETE" else request.data
            out.append((method, request.url.path, body))
    return out


@pytest.fixture
def running(mock_api: MockApiServer, cluster: Cluster) -> Iterator[tuple[KubeTarget, FakeCluster]]:
    make_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        target = new_target(cluster, fake)
        target.open()
        try:
            yield target, fake
        finally:
            target.close()


def test_open_makes_a_labelled_namespace_and_clients_and_close_removes_it(
    cluster: Cluster, running: tuple[KubeTarget, FakeCluster]
) -> None:
    target, _ = running
    namespace = cluster.core.read_namespace(target.namespace)
    assert namespace.metadata.labels[MANAGED_BY_KEY] == MANAGED_BY
    pods = cluster.core.list_namespaced_pod(target.namespace).items
    assert sorted(p.metadata.name for p in pods) == [
        "harness-client-1",
        "harness-client-2",
        "harness-client-3",
    ]
    assert {p.spec.node_name for p in pods} == {"worker-a"}  # the model's node-1
    assert cluster.core.list_namespaced_service(target.namespace).items == []
    used = target.namespace
    target.close()
    assert used not in namespaces(cluster)
    assert target.namespace != used  # a reopened target gets a fresh namespace
    target.close()  # twice is harmless


def test_events_become_the_documented_api_calls(
    mock_api: MockApiServer, running: tuple[KubeTarget, FakeCluster]
) -> None:
    target, fake = running
    start = len(mock_api.requests())
    ns = target.namespace
    target.apply(CreateService("web", WEB))
    target.apply(CreatePod("web-a", WEB))
    target.apply(SetSelector("web", labels_of({"tier": "x"})))
    target.apply(SetLabel("web-a", "tier", "x"))
    target.apply(SetReady("web-a", False))
    target.apply(DeletePod("web-a", 20))
    target.apply(Wait(21))
    target.apply(CreatePod("web-b", WEB))
    target.apply(RestartPod("web-b"))
    target.apply(EvictPod("web-b"))
    calls = [
        (m, p.removeprefix(f"/api/v1/namespaces/{ns}/")) for m, p, _ in writes(mock_api, start)
    ]
    assert calls == [
        ("POST", "services"),  # create-service
        ("POST", "pods"),  # create-pod
        ("PATCH", "services/web"),  # set-selector
        ("PATCH", "pods/web-a"),  # set-label (set-ready is an exec)
        ("DELETE", "pods/web-a"),  # delete-pod, graceful
        ("DELETE", "pods/web-a"),  # the grace period ran out: grace 0
        ("POST", "pods"),  # create-pod web-b
        ("DELETE", "pods/web-b"),  # restart: delete with grace 0 ...
        ("POST", "pods"),  # ... and create under the same name
        ("PATCH", "pods/web-b/status"),  # evict: a status write
    ]
    bodies = {(m, p): b for m, p, b in writes(mock_api, start)}
    assert bodies[("PATCH", f"/api/v1/namespaces/{ns}/services/web")] == {
        "spec": {"selector": {"app": None, "tier": "x"}}
    }
    deletes = [(p, b) for m, p, b in writes(mock_api, start) if m == "DELETE" and "/pods/" in p]
    assert [(p.rsplit("/", 1)[1], b.get("gracePeriodSeconds")) for p, b in deletes] == [
        ("web-a", "3600"),
        ("web-a", "0"),
        ("web-b", "0"),
    ]
    assert ("/bin/sh", "-c", "rm -f /tmp/ready") in {(a[0], a[1], a[2]) for _, a in fake.execs}
    evicted = [
        b
        for m, p, b in writes(mock_api, start)
        if m == "PATCH"
        and p == f"/api/v1/namespaces/{ns}/pods/web-b/status"
        and b.get("status", {}).get("reason") == "Evicted"
    ]
    assert evicted and evicted[0]["status"]["phase"] == "Failed"
    created = [
        b
        for m, p, b in writes(mock_api, start)
        if m == "POST" and p.endswith("/pods") and b["metadata"]["name"] == "web-b"
    ]
    assert [b["metadata"]["labels"][INCARNATION_LABEL] for b in created] == ["u2", "u3"]


def test_endpoint_slices_follow_the_model(running: tuple[KubeTarget, FakeCluster]) -> None:
    target, _ = running
    steps = [
        CreateService("web", WEB),
        CreatePod("web-a", WEB),
        CreatePod("web-b", WEB, ready=False),
        RestartPod("web-a"),  # a new incarnation: the uid in the slice must change
        SetReady("web-b", True),
        SetLabel("web-a", "app", "other"),
        SetPublishNotReady("web", True),
        SetReady("web-b", False),  # listed ready (publishNotReadyAddresses), not serving
    ]
    for event in steps:
        target.apply(event)

        def matches() -> bool:
            expected = derive_slices(target.state, "web")
            return check_endpoints("web", expected, target.endpoint_slices("web")).holds

        eventually(matches)
    (observed,) = target.endpoint_slices("web")
    assert [(e.pod, e.uid, e.ready, e.serving, e.node) for e in observed.endpoints] == [
        ("web-b", "u2", True, False, "node-1")
    ]


def test_send_execs_a_bounded_loop_in_the_client_pod(
    running: tuple[KubeTarget, FakeCluster],
) -> None:
    target, fake = running
    target.apply(CreateService("web", WEB))
    target.apply(CreatePod("web-a", WEB))
    eventually(lambda: bool(target.state.services))
    fake.exec_output = "web-a--u1\n0 0.001\n\n7 0.0001\n! Connection refused\n"
    eventually(
        lambda: (
            target.cluster is not None
            and bool(
                target.cluster.core.read_namespaced_service("web", target.namespace).spec.cluster_ip
            )
        )
    )
    sample = target.send(TrafficRequest("web", client="client-2", count=2))
    assert [o.backend for o in sample.outcomes] == [Backend("web-a", "u1"), None]
    assert sample.outcomes[1].error == ErrorKind.REFUSED
    pod, argv = fake.execs[-1]
    assert pod == "harness-client-2"
    assert re.search(r"http://10\.96\.0\.\d+:80/hostname", argv[-1])


def test_reset_empties_the_namespace_but_keeps_clients(
    cluster: Cluster, running: tuple[KubeTarget, FakeCluster]
) -> None:
    target, _ = running
    target.apply(CreateService("web", WEB))
    target.apply(CreatePod("web-a", WEB))
    target.reset()
    assert not target.state.pods and not target.state.services
    assert cluster.core.list_namespaced_service(target.namespace).items == []
    names = [p.metadata.name for p in cluster.core.list_namespaced_pod(target.namespace).items]
    assert "web-a" not in names and "harness-client-1" in names


# -- errors ---------------------------------------------------------------------------------------
def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_unreachable_server_is_one_line() -> None:
    target = KubeTarget(TargetOptions(), cluster=connect_url("http://127.0.0.1:1"))
    with pytest.raises(EnvironmentProblem) as raised:
        target.open()
    assert "cannot reach the Kubernetes API server at http://127.0.0.1:1" in one_line(raised.value)


def test_bad_kubeconfig_is_a_usage_error(tmp_path: Any) -> None:
    path = tmp_path / "config"
    path.write_text("not: [a kubeconfig")
    with pytest.raises(UsageError) as raised:  # before anything starts
        make_target("kube", TargetOptions(kubeconfig=str(path)))
    assert str(path) in one_line(raised.value)
    with pytest.raises(UsageError):
        make_target("kube", TargetOptions(pods="elsewhere"))


FORBIDDEN = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "reason": "Forbidden",
    "code": 403,
    "message": "forbidden",
}


def test_forbidden_namespace_names_the_permission(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    mock_api.handler["post /api/v1/namespaces"] << 403 << FORBIDDEN
    with pytest.raises(EnvironmentProblem) as raised:
        KubeTarget(TargetOptions(), cluster=cluster).open()
    message = one_line(raised.value)
    assert "missing permission" in message and "create namespaces" in message
    assert "deploy/rbac.yaml" in message


def test_forbidden_pod_create_names_the_permission_and_close_cleans_up(
    mock_api: MockApiServer, cluster: Cluster, running: tuple[KubeTarget, FakeCluster]
) -> None:
    target, _ = running
    (
        mock_api.handler["post", re.compile(rf"/api/v1/namespaces/{target.namespace}/pods")]
        << 403
        << FORBIDDEN
    )
    with pytest.raises(EnvironmentProblem) as raised:
        target.apply(CreatePod("web-a", WEB))
    assert f"create pods in namespace {target.namespace}" in one_line(raised.value)
    used = target.namespace
    target.close()
    assert used not in namespaces(cluster)


def test_image_pull_failure_is_one_line_and_the_namespace_goes(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    with FakeCluster(mock_api.url, waiting_reason="ImagePullBackOff") as fake:
        target = new_target(cluster, fake)
        with pytest.raises(EnvironmentProblem) as raised:
            target.open()
    message = one_line(raised.value)
    assert "cannot start: ImagePullBackOff" in message and "harness-client-" in message
    assert not [n for n in namespaces(cluster) if n.startswith("svc-lb-")]


def test_pod_never_ready_is_one_line_and_the_namespace_goes(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    with FakeCluster(mock_api.url, kubelet=False) as fake:
        target = new_target(cluster, fake, startup_s=0.5)
        with pytest.raises(EnvironmentProblem) as raised:
            target.open()
    assert "did not become ready within" in one_line(raised.value)
    assert not [n for n in namespaces(cluster) if n.startswith("svc-lb-")]


def test_backend_that_cannot_pull_is_an_environment_problem(
    running: tuple[KubeTarget, FakeCluster],
) -> None:
    target, fake = running
    fake.waiting_reason = "ErrImagePull"
    target.apply(CreateService("web", WEB))
    target.apply(CreatePod("web-a", WEB))

    def raises() -> bool:
        try:
            target.endpoint_slices("web")
        except EnvironmentProblem as error:
            return "pod web-a cannot run: ErrImagePull" in one_line(error)
        return False

    eventually(raises)


def test_one_node_is_not_enough(mock_api: MockApiServer, cluster: Cluster) -> None:
    make_nodes(cluster, ["only"])
    with FakeCluster(mock_api.url) as fake:
        target = new_target(cluster, fake)
        with pytest.raises(UsageError) as raised:
            target.open()
    assert "needs 2 schedulable nodes" in one_line(raised.value)
    assert not [n for n in namespaces(cluster) if n.startswith("svc-lb-")]


def test_the_runner_drives_the_kube_target(mock_api: MockApiServer, cluster: Cluster) -> None:
    """The lead's runner over the kube target, with a fake proxy answering from the slices: every
    step converges and no property is violated (the Target contract holds end to end)."""
    from harness.runner import RunConfig, Runner

    make_nodes(cluster)
    with FakeCluster(mock_api.url) as fake:
        fake.data_plane = True
        target = new_target(cluster, fake)
        target.open()
        try:
            runner = Runner(target, RunConfig(deadline_s=10.0))
            runner.run(
                [
                    CreateService("web", WEB),
                    CreatePod("web-a", WEB),
                    CreatePod("web-b", WEB, ready=False),
                    SetReady("web-b", True),
                    RestartPod("web-a"),
                    SetLabel("web-b", "app", "other"),
                    DeletePod("web-a", 0),  # kmock deletes at once: no graceful deletion
                ]
            )
            runner.reset()
            runner.run(
                [
                    CreateService("api", labels_of({"app": "api"})),
                    CreatePod("api-0", labels_of({"app": "api"})),
                ]
            )
        finally:
            target.close()


SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
from fakecluster import FakeCluster
from harness.kube.api import connect_url
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
cluster = connect_url({url!r})
with FakeCluster({url!r}) as fake:
    target = KubeTarget(TargetOptions(extra={{"startup_s": 5}}), cluster=cluster,
                        pod_exec=fake.exec)
    target.open()
    print(target.namespace, flush=True)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, never caught by this script
    time.sleep(10)
"""


def test_ctrl_c_removes_the_namespace(
    mock_api: MockApiServer, cluster: Cluster, tmp_path: Any
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    make_nodes(cluster)
    script = SCRIPT.format(tests=str(Path(__file__).parent), url=mock_api.url)
    from tests.local.runs import sigint_disposition

    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=sigint_disposition(False),  # as at a terminal, whatever this process inherited
    )
    namespace = result.stdout.strip()
    assert namespace.startswith("svc-lb-") and "KeyboardInterrupt" in result.stderr
    assert namespace not in namespaces(cluster)


def test_a_new_namespace_without_its_service_account_yet_is_waited_for(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    """Right after a namespace is made, pods are refused until its default ServiceAccount exists
    (403 from the ServiceAccount admission plugin): a transient refusal, retried."""
    make_nodes(cluster)
    not_yet = dict(
        FORBIDDEN,
        message='pods "harness-client-1" is forbidden: error looking up'
        ' service account svc-lb-x/default: serviceaccount "default" not found',
    )

    def refuse(request: Any) -> dict[str, Any]:
        # kmock stores a created object before any reaction runs; a refused create must not
        metadata = request.data["metadata"]
        del mock_api.handler.objects[request.resource, request.namespace, metadata["name"]]
        return not_yet

    mock_api.handler["post", re.compile(r"/api/v1/namespaces/[^/]+/pods")][:2] << 403 << refuse
    with FakeCluster(mock_api.url) as fake:
        target = new_target(cluster, fake)
        target.open()
        try:
            posts = [
                r
                for r in mock_api.requests()
                if r.method.name == "POST" and r.url.path.endswith("/pods")
            ]
            assert len(posts) == 5  # two refusals, then the three clients
        finally:
            target.close()


def test_the_target_reports_the_api_servers_version(
    running: tuple[KubeTarget, FakeCluster],
) -> None:
    """kmock answers /version with v1.33.0; in cluster mode the proxy is the cluster's own and
    its version is not claimed."""
    target, _ = running
    assert target.versions() == {"server": "v1.33.0"}
