"""UDP node ports on real packets (issue 12 item 1; kubernetes#59368): the kernel proxies program
a UDP NodePort Service's node port on every node as a TCP one's (kube-proxy's node-port rules
are protocol-generic: `-p udp --dport NODEPORT`, nft's `udp dport`), and `node-port` judges it
from outside, one fresh flow per datagram: answered by any usable endpoint under Cluster;
under Local only by the node's own, which sees the client's address, and dropped (silence) on a
node without any; rejected (ICMP port unreachable, `refused`) without endpoints. One 2-node
target per kernel proxy for the module (`tests.local.two_nodes`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from harness.checks.connections import PROPERTY as LONG_LIVED
from harness.checks.external import PROPERTY
from harness.events import (
    CreateService,
    DeletePod,
    Event,
    RestartProxy,
    Scale,
    SetExternalTrafficPolicy,
    SetReady,
    SetServiceType,
)
from harness.externalclients import UDP_REACHED
from harness.known_issues import match
from harness.local.cluster import load_balancer_source
from harness.model.objects import Protocol, ServiceType, TrafficPolicy, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import KeepsNodePortUdpConntrackProxy
from harness.runner import RunConfig, Runner, replay
from harness.targets.local import LocalTarget
from tests.local import two_nodes
from tests.local.conftest import needs_root
from tests.local.test_node_port import ENTRIES, EXTERNAL, client_address, reach
from tests.local.test_udp import failures

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = two_nodes.NODES

target = two_nodes.target  # the fixtures: a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


def seen(target: LocalTarget, node: str, count: int = 6, entry: str = "node-port") -> Counter[str]:
    """Who answered `count` fresh UDP flows from outside through `node`, by `entry` (an
    error's name where nothing did), and the sources the answering pods saw."""
    return Counter(
        f"{o.backend.pod} saw {o.seen_source}" if o.backend else str(o.error)
        for o in reach(target, entry, node, count).outcomes
    )


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_udp_node_port_answers_rejects_and_drops_as_the_model_says(
    cluster: LocalTarget, entry: str
) -> None:
    cluster.apply(CreateService("web", WEB, "udp", protocol=Protocol.UDP))
    cluster.apply(SetServiceType("web", ENTRIES[entry]))
    for node in NODES:  # no endpoints: REJECT, read as ICMP port unreachable
        assert seen(cluster, node, 3, entry) == {"refused": 3}
    cluster.apply(Scale("web", 1, node="node-2"))  # web-0 on node-2
    for node in NODES:  # Cluster: through either node, masqueraded
        answers = seen(cluster, node, entry=entry)
        assert sum(answers.values()) == 6 and all(a.startswith("web-0 saw") for a in answers)
        clients = (EXTERNAL, load_balancer_source(1), load_balancer_source(2))
        assert not any(a.endswith(f" {c}") for a in answers for c in clients), answers
    cluster.apply(SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL))
    kept = client_address(entry, 2)
    assert seen(cluster, "node-2", entry=entry) == {f"web-0 saw {kept}": 6}  # source kept
    assert seen(cluster, "node-1", 2, entry) == {"timeout": 2}  # no local endpoint: DROP
    cluster.apply(DeletePod("web-0", 0))
    for node in NODES:
        assert seen(cluster, node, 3, entry) == {"refused": 3}


SEQUENCE: list[Event] = [
    CreateService("web", WEB, "udp", protocol=Protocol.UDP),
    SetServiceType("web", ServiceType.NODE_PORT),  # REJECT at both nodes
    Scale("web", 2, node="node-2"),
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),  # node-1 DROPs
]


def test_node_port_judges_a_udp_node_port_in_every_case(cluster: LocalTarget) -> None:
    """`node-port` on a fixed UDP sequence: every verdict holds, and its samples were judged
    where the node REJECTs, connects and DROPs, counting `udp-node-port-reached`."""
    steps = Runner(cluster, RunConfig(deadline_s=2.0)).run(SEQUENCE)
    verdicts = [[v for v in step.verdicts if v.property == PROPERTY] for step in steps]
    assert [len(v) for v in verdicts] == [0, 1, 1, 1], verdicts
    assert all(v.holds for step in verdicts for v in step), verdicts
    expected = [
        [(s["node"], s["expected"], s["protocol"]) for s in step[0].evidence["samples"]]
        for step in verdicts[1:]
    ]
    assert expected == [
        [("node-1", "reject", "UDP"), ("node-2", "reject", "UDP")],
        [("node-1", "connect", "UDP"), ("node-2", "connect", "UDP")],
        [("node-1", "drop", "UDP"), ("node-2", "connect", "UDP")],
    ]
    assert UDP_REACHED in steps[2].checked and UDP_REACHED not in steps[1].checked


HELD: list[Event] = [
    CreateService("web", WEB, "udp", protocol=Protocol.UDP),
    Scale("web", 1),  # web-0 on node-1
    SetServiceType("web", ServiceType.NODE_PORT),  # a flow from outside held at each node
    Scale("web", 2),  # the flows stay on web-0
    SetReady("web-0", False),  # they must move to web-1 (the unready pod still answers)
]


def external_flows(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in record["long_lived"] if "node port" in c["client"]]


def test_a_held_flow_from_outside_follows_its_endpoint_and_the_mutant_keeps_it(
    cluster: LocalTarget,
) -> None:
    """A UDP flow with a fixed 5-tuple from the external client to each node's node port
    (`harness.longlived`), judged by `long-lived-connections`: it moves off web-0 once web-0
    is unready, at both nodes; `mutant-iptables-keeps-nodeport-udp-conntrack` (deletes by VIP
    only, kubernetes#59368) keeps both on web-0 and is caught there."""
    history = list(replay(cluster, HELD, RunConfig(deadline_s=2.0)).history)
    assert [failures(record) for record in history] == [[]] * len(HELD)
    held = external_flows(history[3])
    assert sorted(c["client"] for c in held) == [
        "external at node-1's node port",
        "external at node-2's node port",
    ]
    assert {c["answered_by"] for c in held} == {"web-0/u1"}
    moved = external_flows(history[4])
    assert {c["answered_by"] for c in moved} == {"web-1/u2"}, moved
    if not isinstance(cluster.proxy, IptablesProxy):  # the mutant is iptables'
        return
    cluster.reset()
    cluster.new_proxy = KeepsNodePortUdpConntrackProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = list(replay(cluster, HELD, RunConfig(deadline_s=2.0)).history)
    finally:
        cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones
    assert [failures(record) for record in caught[:4]] == [[]] * 4
    (found,) = [v for v in failures(caught[4]) if v["property"] == LONG_LIVED]
    flows = found["evidence"]["udp_flows"]
    assert {(f["fault"], f["answered_by"]) for f in flows} == {("stale", "web-0/u1")}
    assert all("node port" in f["client"] for f in flows), flows
    assert "kubernetes#59368" in {m.issue.id for m in match(LONG_LIVED, HELD, [found])}
