"""Node ports on the relaying proxies (userspace, nginx, haproxy; issue 11, item 2): each
node's instance listens on the node port at the node's addresses and relays to any usable
endpoint (externalTrafficPolicy Cluster), the node's kernel refuses it without endpoints, and
the `node-port` property holds on a fixed sequence. One 2-node target per proxy for the
module, reset after each test."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.checks.external import PROPERTY
from harness.events import CreatePod, CreateService, DeletePod, Event, Scale, SetServiceType
from harness.features import EXTERNAL_TRAFFIC_POLICY, NODE_PORT
from harness.model.objects import ServiceType, labels_of
from harness.proxies.haproxy import HaproxyProxy
from harness.proxies.nginx import NginxProxy
from harness.proxies.userspace import UserspaceProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = two_nodes.NODES
RELAYS = [UserspaceProxy, NginxProxy, HaproxyProxy]


target = two_nodes.targets(RELAYS)  # one 2-node target per relaying proxy, reset after each test
cluster = two_nodes.cluster


def seen(target: LocalTarget, node: str, count: int) -> Counter[str]:
    """Who answered `count` fresh connections from outside at `node`'s node port of web."""
    request = TrafficRequest("web", count=count, timeout_s=0.5, parallel=True, external_node=node)
    sample = target.send(request)
    return Counter(o.backend.pod if o.backend else str(o.error) for o in sample.outcomes)


def test_a_relay_declares_node_ports_but_not_the_local_policy(cluster: LocalTarget) -> None:
    """A relay cannot keep the client's address, so externalTrafficPolicy Local is reported
    as not supported (and never drawn), while node ports are judged."""
    assert NODE_PORT in cluster.proxy.features
    assert EXTERNAL_TRAFFIC_POLICY not in cluster.proxy.features


def test_every_node_relays_its_node_port_to_every_endpoint_and_refuses_without_any(
    cluster: LocalTarget,
) -> None:
    cluster.apply(CreateService("web", WEB))
    for number, node in enumerate(NODES, 1):
        cluster.apply(CreatePod(f"p{number}", WEB, node=node))
    cluster.apply(SetServiceType("web", ServiceType.NODE_PORT))
    for node in NODES:
        assert set(seen(cluster, node, 16)) == {"p1", "p2"}, node
    cluster.apply(SetServiceType("web", ServiceType.CLUSTER_IP))
    cluster.apply(SetServiceType("web", ServiceType.NODE_PORT))  # a new node port
    for node in NODES:
        assert set(seen(cluster, node, 16)) == {"p1", "p2"}, node
    for name in ("p1", "p2"):
        cluster.apply(DeletePod(name, grace_s=0))
    for node in NODES:
        assert seen(cluster, node, 4) == {"refused": 4}, node


SEQUENCE: list[Event] = [
    CreateService("web", WEB),
    Scale("web", 2, node="node-2"),
    SetServiceType("web", ServiceType.NODE_PORT),
    Scale("web", 0),
]


def test_the_node_port_property_holds_on_a_fixed_sequence(cluster: LocalTarget) -> None:
    steps = Runner(cluster, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    judged = [[v for v in step.verdicts if v.property == PROPERTY] for step in steps]
    assert [len(v) for v in judged] == [0, 0, 1, 1], judged
    assert all(v.holds for step in judged for v in step), judged
    evidence = judged[2][0].evidence["samples"]
    assert [(s["node"], s["expected"]) for s in evidence] == [
        ("node-1", "connect"),
        ("node-2", "connect"),
    ]
