"""The kube target on a real cluster (kind, or any kubeconfig): marked `kube`, skipped without one.

Run with `HARNESS_KUBECONFIG=$HOME/.kube/config pytest -m kube tests/kube` after
`kind create cluster --config deploy/kind.yaml` (docs/kube.md). Every object goes into a namespace
the target creates and deletes.
"""

from __future__ import annotations

import time

import pytest

from harness.checks.endpoints import check_endpoints
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    SetExternalTrafficPolicy,
    SetReady,
    SetServiceType,
)
from harness.kube.api import connect
from harness.model.endpoints import derive_slices
from harness.model.objects import Backend, Protocol, ServiceType, TrafficPolicy, labels_of
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget
from harness.traffic import ErrorKind, TrafficRequest

pytestmark = pytest.mark.kube
WEB = labels_of({"app": "web"})
DEADLINE_S = 30.0  # KubeProxyEndpointLagTimeout


def converge(target: KubeTarget, service: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        expected = derive_slices(target.state, service)
        verdict = check_endpoints(service, expected, target.endpoint_slices(service))
        if verdict.holds:
            return
        assert time.monotonic() < deadline, verdict.message
        time.sleep(0.5)


def local_web(target: KubeTarget, kind: ServiceType) -> None:
    """Service `web` of type `kind` under externalTrafficPolicy Local, its one endpoint on
    node-1, converged; the target must have its hostNetwork clients on two nodes."""
    assert target.node_names == ("node-1", "node-2"), target.external_unsupported
    for event in (
        CreateService("web", WEB),
        SetServiceType("web", kind),
        SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
        CreatePod("web-a", WEB),
    ):
        target.apply(event)
    converge(target, "web")


def test_endpoints_traffic_and_readiness_on_a_real_cluster(real_kubeconfig: str) -> None:
    target = KubeTarget(TargetOptions(kubeconfig=real_kubeconfig))
    target.open()
    namespace = target.namespace
    try:
        target.apply(CreateService("web", WEB))
        target.apply(CreatePod("web-a", WEB))
        target.apply(CreatePod("web-b", WEB, node="node-2"))
        converge(target, "web")
        sample = target.send(TrafficRequest("web", count=40))
        assert set(sample.hits()) == {Backend("web-a", "u1"), Backend("web-b", "u2")}
        target.apply(SetReady("web-b", False))
        converge(target, "web")
        target.apply(DeletePod("web-a", 0))
        converge(target, "web")
        time.sleep(2)  # let the proxy catch up with the last change before asserting a REJECT
        sample = target.send(TrafficRequest("web", count=5))
        assert sample.errors() == {ErrorKind.REFUSED: 5}
    finally:
        target.close()
    cluster = connect(real_kubeconfig)
    left = cluster.call("get namespaces", cluster.core.read_namespace, namespace, allow=(404,))
    assert left is None or left.status.phase == "Terminating"


def test_node_port_from_outside_keeps_the_source_under_local_on_a_real_cluster(
    real_kubeconfig: str,
) -> None:
    """externalTrafficPolicy Local, the one endpoint on node-1: from outside node-1 (the
    hostNetwork client on node-2) every connection reaches it and the pod sees node-2's own
    address; node-2 has no local endpoint and drops what arrives at its node port."""
    target = KubeTarget(TargetOptions(kubeconfig=real_kubeconfig))
    target.open()
    try:
        local_web(target, ServiceType.NODE_PORT)
        deadline = time.monotonic() + DEADLINE_S
        while True:  # until node-1's proxy programs the node port
            sample = target.send(TrafficRequest("web", count=4, external_node="node-1"))
            if sample.hits() == {Backend("web-a", "u1"): 4} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sample.hits() == {Backend("web-a", "u1"): 4}
        sources = {o.seen_source for o in sample.outcomes}
        assert sources == {target.external_source("node-1")}
        dropped = target.send(
            TrafficRequest("web", count=2, timeout_s=1.0, parallel=True, external_node="node-2")
        )
        assert dropped.errors() == {ErrorKind.TIMEOUT: 2}
    finally:
        target.close()


def test_udp_flows_reach_the_pods_move_off_a_removed_one_and_are_refused_on_a_real_cluster(
    real_kubeconfig: str,
) -> None:
    """A UDP Service (docs/kube.md "UDP Services"): fresh nc flows from a client pod reach both
    pods, a held flow (fixed source port) keeps its pod and moves once that pod is deleted
    (kube-proxy deletes its conntrack entries), and with no endpoint left a flow is refused at
    once (REJECT, ICMP port unreachable) rather than timing out."""
    target = KubeTarget(TargetOptions(kubeconfig=real_kubeconfig))
    target.open()
    try:
        target.apply(CreateService("dns", WEB, target_port="udp", protocol=Protocol.UDP))
        target.apply(CreatePod("web-a", WEB, udp_port=8080))
        target.apply(CreatePod("web-b", WEB, node="node-2", udp_port=8080))
        converge(target, "dns")
        both = {Backend("web-a", "u1"), Backend("web-b", "u2")}
        deadline = time.monotonic() + DEADLINE_S
        while True:  # until the proxy programs the UDP port
            sample = target.send(TrafficRequest("dns", count=40))
            if set(sample.hits()) == both or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert set(sample.hits()) == both and not sample.errors()
        number, first = target.hold("dns", "client-1", 2.0)
        assert number is not None and first.backend is not None and first.backend in both
        assert target.ask_held(number, 2.0).backend == first.backend
        (other,) = both - {first.backend}
        target.apply(DeletePod(first.backend.pod, 0))
        converge(target, "dns")
        deadline = time.monotonic() + DEADLINE_S
        while (moved := target.ask_held(number, 2.0)).backend != other:
            assert time.monotonic() < deadline, f"the held flow stayed at {moved}"
            time.sleep(1)
        target.apply(DeletePod(other.pod, 0))
        converge(target, "dns")
        time.sleep(2)  # let the proxy catch up with the last change before asserting a REJECT
        refused = target.send(TrafficRequest("dns", count=5))
        assert refused.errors() == {ErrorKind.REFUSED: 5}
        assert all(o.latency_ms < 1000 for o in refused.outcomes)
    finally:
        target.close()


def test_health_check_node_port_answers_per_node_on_a_real_cluster(real_kubeconfig: str) -> None:
    """A LoadBalancer Service under Local (no LoadBalancer controller needed: the
    healthCheckNodePort is allocated and served anyway) with its one endpoint on node-1: node-1's
    healthCheckNodePort answers 200 with one local endpoint, node-2's 503 with none (I9)."""
    from harness.traffic import HealthCheckRequest

    target = KubeTarget(TargetOptions(kubeconfig=real_kubeconfig))
    target.open()
    try:
        local_web(target, ServiceType.LOAD_BALANCER)
        port = target.state.services["web"].health_check_node_port
        assert port is not None
        deadline = time.monotonic() + DEADLINE_S
        while True:  # until node-1's proxy counts its ready endpoint
            reply = target.health_check(HealthCheckRequest("node-1", port, 2.0))
            if reply.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert (reply.status, reply.local_endpoints) == (200, 1), reply.detail
        assert reply.service == ("default", "web")
        other = target.health_check(HealthCheckRequest("node-2", port, 2.0))
        assert (other.status, other.local_endpoints) == (503, 0), other.detail
    finally:
        target.close()


def test_restarting_the_clusters_kube_proxy_keeps_services_served(real_kubeconfig: str) -> None:
    """--restart-cluster-proxy: restart-proxy deletes kube-proxy's pods, the DaemonSet brings
    new ones Ready, and the Service is served again within the deadline."""
    from harness.events import RestartProxy

    options = TargetOptions(kubeconfig=real_kubeconfig, extra={"restart_cluster_proxy": "on"})
    target = KubeTarget(options)
    target.open()
    try:
        assert target.restart_unsupported is None
        target.apply(CreateService("web", WEB))
        target.apply(CreatePod("web-a", WEB))
        converge(target, "web")
        target.apply(RestartProxy())
        deadline = time.monotonic() + DEADLINE_S
        while True:
            sample = target.send(TrafficRequest("web", count=4))
            if sample.hits() == {Backend("web-a", "u1"): 4} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sample.hits() == {Backend("web-a", "u1"): 4}
    finally:
        target.close()


def test_sctp_services_are_dialled_from_the_client_pods(real_kubeconfig: str) -> None:
    """--kube-sctp: a backend serves its SCTP port with netexec --sctp-port, and every SCTP
    request from a client pod's netexec /dial (a fresh association each) reaches it within
    the deadline. Needs the sctp module on every node: skipped where this machine's kernel
    has no SCTP sockets (a kind cluster's nodes share it; the nightly loads it first)."""
    from harness.events import SCTP_PORT_NAME
    from harness.protocols import SctpMode, sctp_mode

    if sctp_mode() != SctpMode.SOCKET:
        pytest.skip("no sctp module loaded here (modprobe sctp): kind's nodes share this kernel")
    options = TargetOptions(kubeconfig=real_kubeconfig, extra={"sctp": "on"})
    target = KubeTarget(options)
    target.open()
    try:
        target.apply(CreateService("sig", WEB, target_port=SCTP_PORT_NAME, protocol=Protocol.SCTP))
        target.apply(CreatePod("web-a", WEB, sctp_port=9000))
        converge(target, "sig")
        deadline = time.monotonic() + DEADLINE_S
        while True:
            sample = target.send(TrafficRequest("sig", count=4, timeout_s=2.0))
            if sample.hits() == {Backend("web-a", "u1"): 4} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sample.hits() == {Backend("web-a", "u1"): 4}, sample.outcomes
    finally:
        target.close()
