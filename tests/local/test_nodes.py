"""Several nodes in the local cluster (issue 11, item 1): node namespaces on their own pod ranges,
routed as a host-gw CNI routes them, a proxy instance per node, clients on every node's host
network, pod clients through their own node's proxy. One 3-node iptables target for the module
(about 1 s to open); every test leaves it reset."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections import Counter

import pytest

from harness.checks.nodes import PROPERTY
from harness.errors import UsageError
from harness.events import (
    CreatePod,
    CreateService,
    RestartProxy,
    Scale,
    SetTrafficPolicy,
)
from harness.local.names import RunNames, new_prefix
from harness.model.objects import TrafficPolicy, labels_of
from harness.model.state import node_pod_cidr
from harness.podclients import PodClients
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import WrongNodeProxy
from harness.runner import RunConfig, Runner
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local import three_nodes, two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = three_nodes.NODES


target = three_nodes.target  # one 3-node iptables target for the module, reset after each test
cluster = two_nodes.cluster


def ip_json(netns: str, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        ["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True
    )
    found: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return found


def answered(target: LocalTarget, **request: object) -> Counter[str]:
    """Who answered 9 fresh connections to `web` (an error's name where nothing did)."""
    sample = target.send(TrafficRequest("web", count=9, timeout_s=0.5, parallel=True, **request))  # type: ignore[arg-type]
    return Counter(o.backend.pod if o.backend else str(o.error) for o in sample.outcomes)


def one_pod_per_node(target: LocalTarget) -> None:
    target.apply(CreateService("web", WEB))
    for number, node in enumerate(NODES, 1):
        target.apply(CreatePod(f"p{number}", WEB, node=node))


def test_every_node_has_its_namespace_pod_range_and_routes_to_the_others_and_nowhere_else(
    cluster: LocalTarget,
) -> None:
    one_pod_per_node(cluster)
    names = RunNames(cluster.prefix)
    for number, node in enumerate(NODES, 1):
        netns = names.node_netns_of(number)
        pod = cluster.state.pods[f"p{number}"]
        assert pod.ip is not None
        assert ipaddress.IPv4Address(pod.ip) in node_pod_cidr(node)
        handle = cluster._handles[pod.name]
        assert handle.node_netns == netns  # its link hangs off its own node
        assert ip_json(netns, "link", "show", handle.veth)
        routes = {str(r["dst"]): r for r in ip_json(netns, "route", "show")}
        assert "default" not in routes  # nothing leaves the machine
        for other_number, other in enumerate(NODES, 1):
            if other != node:  # host-gw: the other node's pod range via its fabric address
                assert routes[str(node_pod_cidr(other))]["gateway"] == f"10.240.0.{other_number}"
        assert "10.96.0.0/16" in routes  # every node has its own Service-range sink
    assert names.node_netns_of(1) == names.node_netns  # node-1 keeps today's name
    assert ip_json(names.fabric_netns, "link", "show", names.fabric_bridge)


def test_a_proxy_per_node_each_told_its_own_node_and_workdir(cluster: LocalTarget) -> None:
    contexts = [member.context for member in cluster._proxies]
    assert [c.node for c in contexts] == list(NODES)
    assert len({c.netns for c in contexts}) == len({c.workdir for c in contexts}) == 3
    assert cluster.proxy is cluster._proxies.members[0].proxy
    one_pod_per_node(cluster)
    assert cluster.sync_state().synced
    assert "3 nodes" in cluster.sync_state().source
    # internalTrafficPolicy Local: each node's proxy uses only its own node's endpoint
    cluster.apply(SetTrafficPolicy("web", TrafficPolicy.LOCAL))
    for number, node in enumerate(NODES, 1):
        assert answered(cluster, client_node=node) == {f"p{number}": 9}
    assert answered(cluster) == {"p1": 9}  # the clients hang off node-1


def test_every_node_reaches_endpoints_on_every_node_through_its_proxy(
    cluster: LocalTarget,
) -> None:
    one_pod_per_node(cluster)
    for node in NODES:
        seen = answered(cluster, client_node=node)
        assert set(seen) <= {"p1", "p2", "p3"} and sum(seen.values()) == 9, (node, seen)
    assert set(answered(cluster)) <= {"p1", "p2", "p3"}


def test_a_restart_restarts_every_nodes_proxy_and_each_programs_again(
    cluster: LocalTarget,
) -> None:
    one_pod_per_node(cluster)
    cluster.apply(SetTrafficPolicy("web", TrafficPolicy.LOCAL))
    before = [member.proxy for member in cluster._proxies]
    cluster.apply(RestartProxy())
    after = [member.proxy for member in cluster._proxies]
    assert len(after) == 3 and not set(map(id, before)) & set(map(id, after))
    assert answered(cluster, client_node="node-3") == {"p3": 9}


def test_a_node_the_target_lacks_is_one_clear_usage_error(cluster: LocalTarget) -> None:
    cluster.apply(CreateService("web", WEB))
    with pytest.raises(UsageError, match=r"no node 'node-4'.*node-1, node-2, node-3"):
        cluster.apply(CreatePod("p", WEB, node="node-4"))
    assert "p" not in cluster.state.pods
    with pytest.raises(UsageError, match="no node 'node-4' to send from"):
        cluster.send(TrafficRequest("web", client_node="node-4"))


def test_a_pod_client_goes_through_its_own_nodes_proxy(cluster: LocalTarget) -> None:
    one_pod_per_node(cluster)
    cluster.apply(SetTrafficPolicy("web", TrafficPolicy.LOCAL))
    clients = PodClients(cluster, timeout_s=1.0)
    for step in range(3):  # each step picks the next endpoint as the client
        record: dict[str, object] = {}
        verdicts, _, _ = clients.after(step, cluster.state, record)
        assert verdicts and all(v.holds for v in verdicts), verdicts
        evidence = record["pod_client"]
        assert isinstance(evidence, dict)
        assert evidence["usable"] == [evidence["client_pod"]]  # its own node's expectation
        answers = {a.get("backend") for a in evidence["answers"]}
        assert answers == {evidence["client_pod"]}, evidence  # only itself, under Local policy


def test_a_proxy_told_the_wrong_node_is_caught_from_the_other_nodes(
    cluster: LocalTarget,
) -> None:
    """`mutant-iptables-wrong-node` by a fixed sequence: a Local Service with endpoints on
    node-1 only must be dropped by the other nodes' proxies; the mutant's forward to node-1's
    endpoints. The real proxies hold on the same sequence (no false alarm)."""
    sequence = [
        CreateService("web", WEB, internal_traffic_policy=TrafficPolicy.LOCAL),
        Scale("web", 2, node="node-1"),
    ]
    held = Runner(cluster, RunConfig(deadline_s=2.0)).run(sequence)
    judged = [v for step in held for v in step.verdicts if v.property == PROPERTY]
    assert judged and all(v.holds for v in judged), judged
    assert [s["expected"] for s in judged[-1].evidence["samples"]] == ["connect", "drop", "drop"]
    cluster.reset()
    cluster.new_proxy = WrongNodeProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = Runner(cluster, RunConfig(deadline_s=2.0)).run(sequence)
        failing = [v for v in caught[-1].verdicts if not v.holds]
        assert [v.property for v in failing] == [PROPERTY], failing
        assert "from node-2's host network" in failing[0].message
    finally:
        cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones again


def test_one_node_keeps_todays_single_namespace_layout() -> None:
    run = new_prefix()
    single = LocalTarget(IptablesProxy, prefix=run)
    assert single.nodes == 1 and single.node_names == ("node-1",)
    assert single.accepted_nodes == ("node-1", "node-2")  # the logical second node stays
    with pytest.raises(UsageError, match="1 to 16"):
        LocalTarget(IptablesProxy, prefix=run, nodes=17)
