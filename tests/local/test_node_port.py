"""NodePort and externalTrafficPolicy on the local cluster (issue 11, items 2-3): the external
client on the fabric, and the kernel proxies' node ports as kube-proxy programs them. One 2-node
target per proxy for the module; every test leaves it reset."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from harness.checks.external import PROPERTY
from harness.checks.verdict import Verdict
from harness.errors import UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    Event,
    RestartProxy,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceType,
)
from harness.local.cluster import load_balancer_source
from harness.local.names import RunNames
from harness.model.endpoints import expect_external
from harness.model.objects import ServiceType, TrafficPolicy, labels_of
from harness.node_port_rules import PART as NODE_PORT_PART
from harness.podnodeports import RECORD_KEY as FROM_PODS
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import NodePortIgnoresLocalProxy, NodePortRejectsNoLocalProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest, TrafficSample
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = two_nodes.NODES
EXTERNAL = "10.240.0.200"


target = two_nodes.target  # the fixtures: a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


ENTRIES = {"node-port": ServiceType.NODE_PORT, "ingress-ip": ServiceType.LOAD_BALANCER}
"""How the external client reaches web, and the type that gives web that entry: a node's own
address on the node port, or the LoadBalancer ingress IP handed to a node (test_load_balancer)."""


def reach(target: LocalTarget, entry: str, node: str, count: int = 8) -> TrafficSample:
    """`count` fresh connections from outside to web through `node`, by `entry`."""
    via_load_balancer = entry == "ingress-ip"
    request = TrafficRequest(
        "web",
        count=count,
        timeout_s=0.5,
        parallel=True,
        external_node=node,
        via_load_balancer=via_load_balancer,
    )
    return target.send(request)


def from_outside(target: LocalTarget, node: str, count: int = 8) -> TrafficSample:
    return reach(target, "node-port", node, count)


def client_address(entry: str, number: int) -> str:
    """The address node-`number`'s pods see under externalTrafficPolicy Local, by `entry`."""
    return load_balancer_source(number) if entry == "ingress-ip" else EXTERNAL


def seen(sample: TrafficSample) -> Counter[str]:
    """Who answered (an error's name where nothing did)."""
    return Counter(o.backend.pod if o.backend else str(o.error) for o in sample.outcomes)


def node_port_web(target: LocalTarget, kind: ServiceType = ServiceType.NODE_PORT) -> None:
    """web with a pod on each node, made `kind` (its node port, and ingress IP, assigned)."""
    if "web" not in target.state.services:
        target.apply(CreateService("web", WEB))
    for number, node in enumerate(NODES, 1):
        target.apply(CreatePod(f"p{number}", WEB, node=node))
    target.apply(SetServiceType("web", kind))


def test_the_external_client_sits_on_the_fabric_and_routes_nowhere_else(
    cluster: LocalTarget,
) -> None:
    names = RunNames(cluster.prefix)
    assert cluster.external_address == EXTERNAL
    done = subprocess.run(
        ["ip", "-n", names.external_netns, "-j", "route", "show"],
        capture_output=True,
        text=True,
        check=True,
    )
    routes = {str(r["dst"]): r for r in json.loads(done.stdout)}
    assert set(routes) == {"default", "10.240.0.0/24"}
    assert routes["default"]["gateway"] == "10.240.0.1"  # node-1, which routes nothing off


def test_a_cluster_ip_service_has_no_node_port_to_send_to(cluster: LocalTarget) -> None:
    cluster.apply(CreateService("web", WEB))
    with pytest.raises(UsageError, match="has no node port"):
        from_outside(cluster, "node-1")
    node_port_web(cluster)
    with pytest.raises(UsageError, match="node-9"):
        from_outside(cluster, "node-9")


@pytest.mark.parametrize("entry", ENTRIES)
def test_cluster_policy_reaches_every_endpoint_through_every_node_masqueraded(
    cluster: LocalTarget, entry: str
) -> None:
    node_port_web(cluster, ENTRIES[entry])
    for number, node in enumerate(NODES, 1):
        sample = reach(cluster, entry, node, count=16)
        assert set(seen(sample)) == {"p1", "p2"}, (node, seen(sample))
        sources = {o.seen_source for o in sample.outcomes}
        assert client_address(entry, number) not in sources and None not in sources  # a node's


@pytest.mark.parametrize("entry", ENTRIES)
def test_local_policy_keeps_the_source_and_a_node_without_local_endpoints_drops(
    cluster: LocalTarget, entry: str
) -> None:
    node_port_web(cluster, ENTRIES[entry])
    cluster.apply(SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL))
    for number, node in enumerate(NODES, 1):
        sample = reach(cluster, entry, node)
        assert seen(sample) == {f"p{number}": 8}
        assert {o.seen_source for o in sample.outcomes} == {client_address(entry, number)}
    cluster.apply(DeletePod("p2", grace_s=0))
    assert expect_external(cluster.state, "web", "http", "node-2").drops
    assert seen(reach(cluster, entry, "node-2", count=2)) == {"timeout": 2}
    assert seen(reach(cluster, entry, "node-1")) == {"p1": 8}
    cluster.apply(DeletePod("p1", grace_s=0))
    for node in NODES:  # no endpoints at all: rejected
        assert seen(reach(cluster, entry, node, count=4)) == {"refused": 4}


SEQUENCE: list[Event] = [
    CreateService("web", WEB),
    Scale("web", 2, node="node-2"),
    SetServiceType("web", ServiceType.NODE_PORT),
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
]


def node_port_verdicts(target: LocalTarget) -> list[list[Verdict]]:
    """The `node-port` verdicts, and `exact-balance`'s at the node ports (part `node-port`), of
    each step of SEQUENCE run on `target`."""
    steps = Runner(target, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    return [
        [
            v
            for v in step.verdicts
            if v.property == PROPERTY or v.evidence.get("part") == NODE_PORT_PART
        ]
        for step in steps
    ]


def test_the_property_holds_on_the_real_proxy_and_catches_the_disclosed_mutants(
    cluster: LocalTarget,
) -> None:
    """`node-port` and `exact-balance` at the node ports by a fixed sequence: a NodePort
    Service with endpoints on node-2 only, then externalTrafficPolicy Local: node-1 must DROP,
    node-2 connect with the client's address kept. The real proxy holds;
    `mutant-iptables-nodeport-ignores-local` (node-1 forwards to node-2, masqueraded) and
    `mutant-iptables-nodeport-rejects-no-local` (node-1 refuses) fail at the last step, on
    node-1: its traced rules, and its traffic, which does not DROP."""
    held = node_port_verdicts(cluster)
    # judged once the Service has a node port: traffic, and each node's rules traced
    assert [sorted(v.property for v in step) for step in held] == [
        [],
        [],
        ["exact-balance", "exact-balance", PROPERTY],
        ["exact-balance", "exact-balance", PROPERTY],
    ]
    assert all(v.holds for step in held for v in step), held
    traced = [v.evidence for v in held[-1] if v.property == "exact-balance"]
    assert [(e["node"], e["drops"], len(e["probabilities"])) for e in traced] == [
        ("node-1", True, 0),
        ("node-2", False, 2),
    ]
    evidence = next(v for v in held[-1] if v.property == PROPERTY).evidence["samples"]
    assert [(s["node"], s["expected"]) for s in evidence] == [
        ("node-1", "drop"),
        ("node-2", "connect"),
    ]
    assert evidence[1]["seen_sources"] == [EXTERNAL]
    if not isinstance(cluster.proxy, IptablesProxy):  # the mutants are iptables'
        return
    for mutant in (NodePortIgnoresLocalProxy, NodePortRejectsNoLocalProxy):
        cluster.reset()
        cluster.new_proxy = mutant
        try:
            cluster.apply(RestartProxy())  # every node's proxy is now the mutant
            caught = node_port_verdicts(cluster)
            # what the traffic shows (judged by `node-port` where the rules cannot be read)
            dropped = seen(reach(cluster, "node-port", "node-1", count=2)) == {"timeout": 2}
        finally:
            cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones
        assert all(v.holds for v in caught[2]), caught
        # the rule oracle sees it first; traffic from outside is sent only after a clean step
        failing = [(v.property, v.evidence.get("node")) for v in caught[3] if not v.holds]
        assert failing == [("exact-balance", "node-1")], caught
        assert not dropped


def test_what_a_pod_gets_at_its_own_nodes_node_port_is_recorded_not_judged(
    cluster: LocalTarget,
) -> None:
    """Under Local with web's pods on node-2 only, a pod on node-1 at node-1's node port is
    dropped by the harness's proxies (kube-proxy would send it on: implementation-defined), a
    pod on node-2 at node-2's answered by a local pod; both recorded, neither a verdict."""
    other = CreatePod("o1", labels_of({"app": "other"}), node="node-1")
    runner = Runner(cluster, RunConfig(deadline_s=2.0))
    steps = runner.run([other, *SEQUENCE])
    assert all(v.holds for step in steps for v in step.verdicts)
    recorded = [r[FROM_PODS] for r in runner.history if FROM_PODS in r]
    assert len(recorded) == 2  # the steps node-port judged: NodePort, then Local
    last = {entry["node"]: entry for entry in recorded[-1]}
    assert (last["node-1"]["pod"], last["node-1"]["answered_by"]) == ("o1", None)
    assert last["node-1"]["error"] == "timeout"
    assert last["node-2"]["pod"] == "web-0" and last["node-2"]["error"] is None
    assert str(last["node-2"]["answered_by"]).split("/")[0] in {"web-0", "web-1"}
