"""NodePort from outside a node on the kube target (`harness.kube.external`; issue 11 item 9).

Against kmock with nodes that have InternalIPs: the hostNetwork client pods (pinned, named by the
run, bounded), the batch a node-port request runs (in the client on the *other* node, to the
node's InternalIP on the node port, each connection asking the pod's view of its source), the
parsing into outcomes with `seen_source`, the `node-port` verdict under externalTrafficPolicy
Local (the sending node's address kept, or a masqueraded one failing), and every reason the
property is not applicable (one mapped node, `--pods local`, host clients off or unable to run).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from fakecluster import MERGE, FakeCluster, make_nodes
from mockapi import MockApiServer

from harness.conformance import applicable
from harness.errors import EnvironmentProblem, UsageError
from harness.events import CreatePod, CreateService, SetExternalTrafficPolicy, SetServiceType
from harness.externalclients import ExternalClients
from harness.kube.api import Cluster
from harness.kube.external import (
    LOCAL_PODS,
    TURNED_OFF,
    host_clients_problem,
    internal_addresses,
    outside_of,
)
from harness.kube.objects import HOST_CLIENT_ROLE, RUN_LABEL, Placement, host_client_manifest
from harness.kube.scope import Scope
from harness.model.objects import ServiceType, TrafficPolicy, labels_of
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import TrafficRequest

WEB = labels_of({"app": "web"})
ADDRESSES = {"worker-a": "172.18.0.3", "worker-b": "172.18.0.4"}


def make_addressed_nodes(cluster: Cluster, addresses: dict[str, str] = ADDRESSES) -> None:
    """Ready nodes with an InternalIP each, as a kubelet reports them."""
    make_nodes(cluster, list(addresses))
    for name, address in addresses.items():
        cluster.core.patch_node_status(
            name,
            {"status": {"addresses": [{"type": "InternalIP", "address": address}]}},
            _content_type=MERGE,
        )


class Answers:
    """`pods/exec` for the target: readiness through the fake kubelet, and a scripted answer
    for every request loop (`answer(pod, script)`), each recorded."""

    marker = "curl"  # in the request loops' scripts

    def __init__(self, fake: FakeCluster) -> None:
        self.fake = fake
        self.loops: list[tuple[str, str]] = []
        self.answer = lambda pod, script: ""

    def __call__(self, pod: str, argv: Sequence[str], timeout_s: float) -> str:
        if self.marker not in argv[-1]:
            return self.fake.exec(pod, argv, timeout_s)
        self.loops.append((pod, argv[-1]))
        return self.answer(pod, argv[-1])


@contextmanager
def open_target(
    url: str, cluster: Cluster, **extra: Any
) -> Iterator[tuple[KubeTarget, FakeCluster]]:
    """The kube target opened on kmock (extra options `extra`) with the fake control plane
    running; closed afterwards."""
    with FakeCluster(url) as fake:
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5, **extra}), cluster=cluster, pod_exec=fake.exec
        )
        target.open()
        try:
            yield target, fake
        finally:
            target.close()


@contextmanager
def answered_target(
    url: str, cluster: Cluster, marker: str = Answers.marker, **extra: Any
) -> Iterator[tuple[KubeTarget, Answers, Cluster]]:
    """The kube target opened on kmock with addressed nodes (extra options `extra`), its
    request loops (scripts with `marker`) answered by the `Answers` it yields; closed
    afterwards."""
    make_addressed_nodes(cluster)
    with FakeCluster(url) as fake:
        answers = Answers(fake)
        answers.marker = marker
        target = KubeTarget(
            TargetOptions(extra={"startup_s": 5, **extra}), cluster=cluster, pod_exec=answers
        )
        target.open()
        try:
            yield target, answers, cluster
        finally:
            target.close()


@pytest.fixture
def opened(
    mock_api: MockApiServer, cluster: Cluster
) -> Iterator[tuple[KubeTarget, Answers, Cluster]]:
    with answered_target(mock_api.url, cluster) as found:
        yield found


def test_the_host_client_manifest_is_pinned_host_network_named_by_the_run_and_bounded() -> None:
    placement = Placement("svc-lb-hk1a2b3", "hk1a2b3")
    manifest = host_client_manifest("hk1a2b3-host-node-1", placement, "worker-a")
    spec = manifest["spec"]
    assert manifest["metadata"]["namespace"] == "svc-lb-hk1a2b3"
    assert manifest["metadata"]["labels"][RUN_LABEL] == "hk1a2b3"
    assert manifest["metadata"]["labels"]["svc-lb-harness/role"] == HOST_CLIENT_ROLE
    assert spec["hostNetwork"] is True and spec["nodeName"] == "worker-a"
    assert 0 < spec["activeDeadlineSeconds"] <= 86400
    assert spec["terminationGracePeriodSeconds"] == 0
    assert "securityContext" not in spec["containers"][0]  # unprivileged
    assert spec["containers"][0]["args"] == ["pause"]


def test_every_node_is_sent_to_from_another_node() -> None:
    assert outside_of(("node-1", "node-2"), "node-1") == "node-2"
    assert outside_of(("node-1", "node-2"), "node-2") == "node-1"
    assert outside_of(("node-1", "node-2", "node-3"), "node-3") == "node-1"
    with pytest.raises(UsageError, match="no node 'node-9'"):
        outside_of(("node-1", "node-2"), "node-9")


def test_node_addresses_are_the_nodes_internal_ips(cluster: Cluster) -> None:
    make_addressed_nodes(cluster)
    listing = cluster.core.list_node()
    assert internal_addresses(listing, ["worker-a", "worker-b"]) == ADDRESSES
    with pytest.raises(EnvironmentProblem, match="node worker-c has no InternalIP"):
        internal_addresses(listing, ["worker-a", "worker-c"])


def test_why_there_are_no_host_clients() -> None:
    two = {"node-1": "a", "node-2": "b"}
    assert host_clients_problem("cluster", {}, two) is None
    assert host_clients_problem("local", {}, two) == LOCAL_PODS
    assert host_clients_problem("cluster", {"host_clients": "off"}, two) == TURNED_OFF
    with pytest.raises(UsageError, match="host_clients must be on or off, not 'sometimes'"):
        host_clients_problem("cluster", {"host_clients": "sometimes"}, two)
    one = host_clients_problem("cluster", {}, {"node-1": "a", "node-2": "a"})
    assert one is not None and "one cluster node (a)" in one and "outside" in one


def test_open_runs_one_host_client_per_node_and_declares_the_external_client(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, _, cluster = opened
    pods = cluster.core.list_namespaced_pod(target.namespace).items
    host = {p.metadata.name: p.spec for p in pods if p.spec.host_network}
    assert {name: spec.node_name for name, spec in host.items()} == {
        f"{target.prefix}-host-node-1": "worker-a",
        f"{target.prefix}-host-node-2": "worker-b",
    }
    assert target.node_names == ("node-1", "node-2")
    assert target.external_unsupported is None
    assert target.external_source("node-1") == ADDRESSES["worker-b"]
    assert target.external_source("node-2") == ADDRESSES["worker-a"]
    assert applicable("node-port", target) is None
    assert applicable("every-node", target) is None


def test_a_node_port_batch_runs_on_the_other_node_and_parses_the_seen_source(
    opened: tuple[KubeTarget, Answers, Cluster],
) -> None:
    target, answers, _ = opened
    target.apply(CreateService("web", WEB))
    target.apply(SetServiceType("web", ServiceType.NODE_PORT))
    target.apply(CreatePod("web-a", WEB))
    node_port = target.state.services["web"].ports[0].node_port
    assert node_port is not None
    answers.answer = lambda pod, script: (
        "web-a--u1\n0 0.002\n172.18.0.4:40001\n0 0.001\n\n7 0.0003\n! Connection refused\n"
    )
    request = TrafficRequest("web", count=2, timeout_s=1.0, external_node="node-1")
    sample = target.send(request)
    pod, script = answers.loops[-1]
    assert pod == f"{target.prefix}-host-node-2"  # from outside node-1
    assert f"http://{ADDRESSES['worker-a']}:{node_port}/hostname" in script
    assert "--fail-early" in script and "/clientip" in script
    assert [o.backend.pod if o.backend else o.error for o in sample.outcomes] == [
        "web-a",
        "refused",
    ]
    assert [o.seen_source for o in sample.outcomes] == ["172.18.0.4", None]
    target.send(TrafficRequest("web", count=1, client_node="node-2"))
    pod, script = answers.loops[-1]
    assert pod == f"{target.prefix}-host-node-2" and "/clientip" not in script
    assert f"http://{target.service_ip('web')}:80/hostname" in script
    with pytest.raises(UsageError, match="does not send to LoadBalancer ingress IPs"):
        target.send(replace(request, via_load_balancer=True))
    with pytest.raises(UsageError, match="has no node port"):
        target.apply(SetServiceType("web", ServiceType.CLUSTER_IP))
        target.send(request)


@pytest.mark.parametrize(("seen", "holds"), [("172.18.0.4", True), ("10.244.1.1", False)])
def test_external_traffic_policy_local_is_judged_by_the_source_the_pod_saw(
    opened: tuple[KubeTarget, Answers, Cluster], seen: str, holds: bool
) -> None:
    """node-1 has the Service's one endpoint: from outside node-1 (the client on node-2) every
    connection must reach it and the pod must see node-2's own address; node-2 drops."""
    target, answers, _ = opened
    target.apply(CreatePod("web-a", WEB))
    target.apply(CreateService("web", WEB))
    target.apply(SetServiceType("web", ServiceType.NODE_PORT))
    before = target.state
    event = SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL)
    target.apply(event)
    node_1 = ADDRESSES["worker-a"]

    def answer(pod: str, script: str) -> str:
        if node_1 in script:  # to node-1: its local pod answers, seeing `seen`
            return f"web-a--u1\n0 0.002\n{seen}:40001\n0 0.001\n" * 4
        return "\n28 0.5\n" * 4  # node-2 has no local endpoint: dropped

    answers.answer = answer
    clients = ExternalClients(target, 1.0)
    record: dict[str, Any] = {}
    verdicts, _, _ = clients.after(1, event, before, target.state, record)
    assert [v.holds for v in verdicts] == [holds]
    if not holds:
        assert "saw source 10.244.1.1, not the client's 172.18.0.4" in verdicts[0].message


def test_one_mapped_node_makes_node_port_not_applicable_with_the_reason(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_addressed_nodes(cluster)
    with open_target(mock_api.url, cluster, nodes="worker-a,worker-a") as (target, _):
        why = applicable("node-port", target)
        assert why is not None and "one cluster node (worker-a)" in why
        assert applicable("every-node", target) == why  # the same hostNetwork clients
        assert target.node_names == ()
        pods = cluster.core.list_namespaced_pod(target.namespace).items
        assert not [p for p in pods if p.spec.host_network]
        with pytest.raises(UsageError, match="cannot send from the nodes"):
            target.send(TrafficRequest("web", external_node="node-2"))


def test_nodes_without_addresses_leave_node_port_not_applicable_not_the_run_failed(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    with open_target(mock_api.url, cluster) as (target, _):
        why = applicable("node-port", target)
        assert why is not None and "has no InternalIP" in why


@pytest.mark.parametrize("masquerade", [False, True])
def test_the_runner_judges_node_ports_from_outside_on_the_kube_target(
    mock_api: MockApiServer, cluster: Cluster, masquerade: bool
) -> None:
    """The runner over the kube target with a fake data plane that serves node ports: under
    externalTrafficPolicy Local node-1 serves its own endpoint to the client on node-2, keeping
    its address, and node-2, whose only endpoint is not ready, drops; `node-port` holds there,
    and fails when the data plane masquerades Local traffic (a broken proxy)."""
    from harness.runner import RunConfig, Runner

    make_addressed_nodes(cluster)
    with open_target(mock_api.url, cluster) as (target, fake):
        fake.data_plane = True
        fake.masquerade_local = masquerade
        steps = Runner(target, RunConfig(deadline_s=10.0)).run(
            [
                CreatePod("web-a", WEB),
                CreatePod("web-b", WEB, ready=False, node="node-2"),
                CreateService("web", WEB),
                SetServiceType("web", ServiceType.NODE_PORT),
                SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
            ]
        )
    judged = [v for step in steps for v in step.verdicts if v.property == "node-port"]
    assert judged, "node-port was never judged"
    failed = [v for step in steps for v in step.failures()]
    if masquerade:
        assert [v.property for v in failed] == ["node-port"]
        assert "answering pods saw source 172.18.0.3" in failed[0].message
    else:
        assert failed == [] and all(v.holds for v in judged)
        assert "external-local-no-local-endpoints" in steps[-1].checked


def test_refused_host_pods_leave_node_port_not_applicable_and_the_run_going(
    mock_api: MockApiServer, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pod Security Admission below `privileged` refuses hostNetwork pods (403): the refusal
    becomes the reason, the clients and the namespace stay usable."""
    refusal = 'pods "x" is forbidden: violates PodSecurity "baseline:latest": hostNetwork=true'
    create = Scope.create_pod

    def refuse_host_network(scope: Scope, manifest: Any, clock: Any, wait_s: float) -> None:
        if manifest["spec"].get("hostNetwork"):
            raise EnvironmentProblem(f"missing permission: ... ({refusal})")
        create(scope, manifest, clock, wait_s)

    monkeypatch.setattr(Scope, "create_pod", refuse_host_network)
    make_addressed_nodes(cluster)
    with open_target(mock_api.url, cluster) as (target, _):
        why = applicable("node-port", target)
        assert why is not None and why.startswith("the hostNetwork client pods cannot run here")
        assert "violates PodSecurity" in why
        assert target.node_names == ()
        target.apply(CreateService("web", WEB))  # the run goes on
