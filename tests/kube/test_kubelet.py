"""`--pods local`: the harness as the kubelet of an API server without kubelets.

Against the mock API server: the Node objects, the status writes (podIP, phase, Ready), readiness
flips, the local pods started and stopped, the proxy command's placeholders and its death. With
root, also for real: local network-namespace pods answering at the model's addresses, and a proxy
command that reaches the API server from inside the node namespace through the relay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakecluster import FakeLocal
from mockapi import MockApiServer

from harness.clock import RealClock
from harness.errors import UsageError
from harness.events import CreatePod, CreateService, DeletePod, EvictPod, SetReady
from harness.kube.api import Cluster
from harness.kube.kubelet import LocalKubelet, fill_command
from harness.kube.objects import MANAGED_BY, MANAGED_BY_KEY, Placement
from harness.kube.scope import Scope
from harness.model.objects import Backend, labels_of
from harness.proxies.failure import ProxyFailure
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import CLIENTS, TrafficRequest

WEB = labels_of({"app": "web"})
NAMESPACE = "svc-lb-hk00abc"


class FakeProcess:
    def __init__(self, argv: list[str], netns: str, log: Path) -> None:
        self.argv, self.netns, self.log = argv, netns, log
        self.running = False
        self.code: int | None = None

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def alive(self) -> bool:
        return self.running

    def returncode(self) -> int | None:
        return self.code

    def tail(self) -> str:
        return "F1126 kube-proxy: failed to start\n"


@pytest.fixture
def kubelet(
    cluster: Cluster, tmp_path: Path
) -> Iterator[tuple[LocalKubelet, FakeLocal, list[Any]]]:
    cluster.core.create_namespace({"metadata": {"name": NAMESPACE}})
    local = FakeLocal()
    execs: list[Any] = []

    def exec_function(netns: str, argv: Sequence[str], timeout_s: float) -> str:
        execs.append((netns, list(argv), timeout_s))
        return "web-a--u1\n0 0.001\n"

    scope = Scope(cluster, Placement(NAMESPACE, "hk00abc"), CLIENTS, RealClock())
    runtime = LocalKubelet(
        scope,
        tmp_path,
        local_factory=lambda prefix, clients: local,
        exec_function=exec_function,
    )
    runtime.start()
    try:
        yield runtime, local, execs
    finally:
        runtime.close()


def test_nodes_are_created_ready_and_deleted(
    cluster: Cluster, kubelet: tuple[LocalKubelet, FakeLocal, list[Any]]
) -> None:
    runtime, local, _ = kubelet
    assert local.opened
    nodes = {n.metadata.name: n for n in cluster.core.list_node().items}
    assert sorted(nodes) == ["hk00abc-node-1", "hk00abc-node-2"]
    node = nodes["hk00abc-node-1"]
    assert node.metadata.labels[MANAGED_BY_KEY] == MANAGED_BY
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    assert node.status.addresses[0].address == "10.244.0.1"
    runtime.close()
    assert cluster.core.list_node().items == [] and local.closed


def test_pod_status_is_written_through_the_status_subresource(
    mock_api: MockApiServer, cluster: Cluster, kubelet: tuple[LocalKubelet, FakeLocal, list[Any]]
) -> None:
    runtime, local, _ = kubelet
    target = KubeTarget(TargetOptions(pods="local", prefix="hk00abc"), cluster=cluster)
    pod = CreatePod("web-a", WEB, ready=False).apply(target.state).pods["web-a"]
    cluster.core.create_namespaced_pod(
        NAMESPACE,
        {
            "metadata": {"name": "web-a", "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "netexec", "image": "x"}]},
        },
    )
    start = len(mock_api.requests())
    runtime.pod_created(pod)
    assert local.pods["web-a"].ip == pod.ip == "10.244.0.10"
    status = cluster.core.read_namespaced_pod("web-a", NAMESPACE).status
    assert (status.phase, status.pod_ip) == ("Running", "10.244.0.10")
    assert {c.type: c.status for c in status.conditions}["Ready"] == "False"
    runtime.set_ready(pod, True)
    status = cluster.core.read_namespaced_pod("web-a", NAMESPACE).status
    assert {c.type: c.status for c in status.conditions}["Ready"] == "True"
    paths = [
        (r.method.name, r.url.path) for r in mock_api.requests()[start:] if r.method.name != "GET"
    ]
    assert paths == [("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/web-a/status")] * 2
    runtime.pod_stopped(pod)
    assert local.pods == {}


def test_traffic_runs_in_the_client_namespace(
    kubelet: tuple[LocalKubelet, FakeLocal, list[Any]],
) -> None:
    runtime, _, execs = kubelet
    sample = runtime.send(TrafficRequest("web", client="client-3", count=1), "10.96.0.5", 80)
    assert [o.backend for o in sample.outcomes] == [Backend("web-a", "u1")]
    netns, argv, _ = execs[-1]
    assert netns == "hk00abc-c3" and "http://10.96.0.5:80/hostname" in argv[-1]
    with pytest.raises(UsageError, match="unknown client"):
        runtime.send(TrafficRequest("web", client="client-9"), "10.96.0.5", 80)


def test_proxy_command_placeholders() -> None:
    filled = fill_command(
        "kube-proxy --kubeconfig {kubeconfig} --hostname-override {node} # {namespace}",
        {"kubeconfig": "/k", "node": "n", "namespace": "ns"},
    )
    assert filled == "kube-proxy --kubeconfig /k --hostname-override n # ns"
    with pytest.raises(UsageError, match="unknown placeholder"):
        fill_command("proxy {kubconfig}", {"kubeconfig": "/k", "node": "n", "namespace": "ns"})
    with pytest.raises(UsageError, match="--pods local"):
        KubeTarget(TargetOptions(proxy_command="kube-proxy"))


def kubelet_with_proxy(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> tuple[LocalKubelet, list[FakeProcess]]:
    """A started kubelet-less runtime whose proxy processes are fakes, listed as started."""
    processes: list[FakeProcess] = []

    def proxy_factory(argv: list[str], netns: str, log: Path) -> FakeProcess:
        processes.append(FakeProcess(argv, netns, log))
        return processes[-1]

    monkeypatch.setattr("harness.kube.kubelet.Relay.start", lambda self: None)
    scope = Scope(cluster, Placement(NAMESPACE, "hk00abc"), ["client-1"], RealClock())
    runtime = LocalKubelet(
        scope,
        tmp_path,
        proxy_command=command,
        local_factory=lambda prefix, clients: FakeLocal(),
        proxy_factory=proxy_factory,
    )
    runtime.start()
    return runtime, processes


def test_a_dead_proxy_is_the_proxys_failure(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, processes = kubelet_with_proxy(
        cluster,
        tmp_path,
        monkeypatch,
        "kube-proxy --kubeconfig {kubeconfig} --hostname-override {node}",
    )
    try:
        (process,) = processes
        assert process.netns == "hk00abc-node"
        assert process.argv[-1] == (
            f"kube-proxy --kubeconfig {tmp_path}/proxy-kubeconfig"
            " --hostname-override hk00abc-node-1"
        )
        kubeconfig = (tmp_path / "proxy-kubeconfig").read_text()
        assert f"namespace: {NAMESPACE}" in kubeconfig
        runtime.check()
        process.running, process.code = False, 1
        with pytest.raises(ProxyFailure, match=r"exited with code 1.*failed to start"):
            runtime.check()
    finally:
        runtime.close()
    assert cluster.core.list_node().items == []


def test_restart_proxy_starts_the_same_command_again_in_the_node_namespace(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, processes = kubelet_with_proxy(
        cluster, tmp_path, monkeypatch, "kube-proxy --kubeconfig {kubeconfig}"
    )
    try:
        runtime.restart_proxy()
        first, second = processes
        assert not first.running and second.running
        assert (second.argv, second.netns) == (first.argv, first.netns)
        runtime.check()  # the new process is the one watched
    finally:
        runtime.close()
    assert not second.running


def test_restart_proxy_without_a_proxy_command_is_refused(
    kubelet: tuple[LocalKubelet, FakeLocal, list[Any]],
) -> None:
    runtime, _, _ = kubelet
    with pytest.raises(UsageError, match="needs --proxy-command"):
        runtime.restart_proxy()


# -- for real: root, network namespaces ----------------------------------------------------------
needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("curl") is None,
    reason="needs root, ip and curl (network namespaces)",
)


@needs_netns
@pytest.mark.netns
def test_kubelet_less_target_runs_local_pods_and_the_proxy_reaches_the_api(
    mock_api: MockApiServer, cluster: Cluster, tmp_path: Path
) -> None:
    from harness.local.cleanup import clean
    from harness.local.names import new_prefix

    prefix = new_prefix()
    out = tmp_path / "proxy-saw"
    # the "proxy": reads its Node through the relay, using only what the placeholders give it
    server = mock_api.url
    command = (
        f"curl -s -o {out} {server}/api/v1/nodes/{{node}} && echo {{namespace}} >> {out}"
        f" && grep -q 'server: {server}' {{kubeconfig}} && sleep 60"
    )
    target = KubeTarget(
        TargetOptions(pods="local", prefix=prefix, proxy_command=command), cluster=cluster
    )
    try:
        target.open()
        target.apply(CreateService("web", WEB))
        target.apply(CreatePod("web-a", WEB))
        target.apply(CreatePod("web-b", WEB, ready=False))
        status = cluster.core.read_namespaced_pod("web-a", target.namespace).status
        assert (status.phase, status.pod_ip) == ("Running", "10.244.0.10")
        assert (
            cluster.core.read_namespaced_pod("web-a", target.namespace).spec.node_name
            == f"{prefix}-node-1"
        )
        # the local pod answers at the model's address, from a client namespace
        assert target.runtime is not None
        # (a fresh link may drop the very first packets: allow two seconds)
        request = TrafficRequest("web", count=2, timeout_s=0.5)
        for _ in range(4):
            sample = target.runtime.send(request, "10.244.0.10", 8080)
            if all(o.backend is not None for o in sample.outcomes):
                break
        assert [o.backend for o in sample.outcomes] == [Backend("web-a", "u1")] * 2
        target.apply(SetReady("web-b", True))
        conditions = cluster.core.read_namespaced_pod("web-b", target.namespace).status.conditions
        assert {c.type: c.status for c in conditions}["Ready"] == "True"
        target.apply(EvictPod("web-b"))
        target.apply(DeletePod("web-a", 0))
        sample = target.runtime.send(
            TrafficRequest("web", count=1, timeout_s=0.5), "10.244.0.10", 8080
        )
        assert sample.outcomes[0].backend is None
        deadline = 50
        while deadline and not (out.exists() and target.namespace in out.read_text()):
            subprocess.run(["sleep", "0.1"], check=True)
            deadline -= 1
        saw = out.read_text()
        assert f'"name": "{prefix}-node-1"' in saw.replace("'", '"') or f"{prefix}-node-1" in saw
        assert target.namespace in saw
        target.endpoint_slices("web")  # the proxy is alive: no ProxyFailure
    finally:
        target.close()
    assert cluster.core.list_node().items == []
    assert clean(prefix, force=True) == []


def test_nodes_keep_posting_status_like_a_kubelet(
    mock_api: MockApiServer, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.kube.kubelet.HEARTBEAT_S", 0.05)
    scope = Scope(cluster, Placement(NAMESPACE, "hk00abc"), ["client-1"], RealClock())
    runtime = LocalKubelet(scope, tmp_path, local_factory=lambda prefix, clients: FakeLocal())
    runtime.start()
    try:
        time.sleep(0.4)
    finally:
        runtime.close()
    beats = [
        r
        for r in mock_api.requests()
        if r.method.name == "PATCH" and r.url.path == "/api/v1/nodes/hk00abc-node-1/status"
    ]
    assert len(beats) >= 4
    count = len(mock_api.requests())
    time.sleep(0.2)
    assert len(mock_api.requests()) == count  # stopped with close()
