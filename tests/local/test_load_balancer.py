"""LoadBalancer ingress IPs on the local cluster (issue 11, item 2): the external client hands a
connection to an ingress IP to one chosen node, as a cloud or MetalLB load balancer would, and
the kernel proxies program the ingress IP as kube-proxy does. One 2-node target per proxy for the
module (tests/local/two_nodes.py); every test leaves it reset. What the policies do at the
ingress IP is tested beside the node port's, in tests/local/test_node_port.py (`ENTRIES`)."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.checks.external import LOAD_BALANCER_PART
from harness.checks.verdict import Verdict
from harness.errors import UsageError
from harness.events import (
    CreateService,
    Event,
    RestartProxy,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceType,
)
from harness.local.cluster import load_balancer_source
from harness.local.names import RunNames
from harness.model.objects import ServiceType, TrafficPolicy, labels_of
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import LoadBalancerIpUnprogrammedProxy
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest, TrafficSample
from tests.local import test_node_port as node_port
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
NODES = two_nodes.NODES
target = two_nodes.target  # the fixtures: a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


def via(target: LocalTarget, node: str, count: int = 8) -> TrafficSample:
    """`count` fresh connections to web's ingress IP, handed to `node`."""
    return node_port.reach(target, "ingress-ip", node, count)


def test_the_external_client_hands_the_ingress_range_to_each_node_from_its_own_address(
    cluster: LocalTarget,
) -> None:
    names = RunNames(cluster.prefix)

    def listed(*what: str) -> list[dict[str, object]]:
        command = ["ip", "-n", names.external_netns, "-j", *what]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return list(json.loads(done.stdout))

    rules = {
        str(r["src"]): str(r["table"]) for r in listed("rule", "show") if r.get("src") != "all"
    }
    assert rules == {load_balancer_source(1): "101", load_balancer_source(2): "102"}
    for number in (1, 2):
        routes = listed("route", "show", "table", str(100 + number))
        wanted = [(r, f"10.240.0.{number}") for r in ("10.254.0.0/24", "10.255.0.0/24")]
        assert [(r["dst"], r["gateway"]) for r in routes] == wanted
    assert cluster.load_balancer_source("node-2") == "10.240.0.222"
    assert cluster.load_balancer_source("node-9") is None


def test_a_service_without_an_ingress_ip_is_refused_in_one_line(cluster: LocalTarget) -> None:
    cluster.apply(CreateService("web", WEB))
    cluster.apply(SetServiceType("web", ServiceType.NODE_PORT))
    with pytest.raises(UsageError, match="no LoadBalancer ingress IP"):
        via(cluster, "node-1")
    cluster.apply(SetServiceType("web", ServiceType.LOAD_BALANCER))
    with pytest.raises(UsageError, match="node-9"):
        via(cluster, "node-9")
    request = TrafficRequest("web", sources=(1,), external_node="node-1", via_load_balancer=True)
    with pytest.raises(UsageError, match="sources=\\(0,\\)"):
        cluster.send(request)


SEQUENCE: list[Event] = [
    CreateService("web", WEB),
    Scale("web", 2, node="node-2"),
    SetServiceType("web", ServiceType.LOAD_BALANCER),
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
]


def ingress_verdicts(target: LocalTarget, events: list[Event]) -> list[list[Verdict]]:
    """The `node-port` verdicts of part `load-balancer` of each step of `events` on `target`."""
    return two_nodes.part_verdicts(target, events, LOAD_BALANCER_PART)


def test_the_part_holds_on_the_real_proxy_and_catches_the_disclosed_mutant(
    cluster: LocalTarget,
) -> None:
    """`node-port`'s part `load-balancer` by a fixed sequence: a LoadBalancer Service with
    endpoints on node-2 only, then externalTrafficPolicy Local: via node-1 the ingress IP must
    DROP, via node-2 connect with the load balancer's address for node-2 kept. The real proxy
    holds; `mutant-iptables-lb-ip-unprogrammed` fails as soon as the Service is LoadBalancer
    (its ingress IP meets no rule: the connections time out)."""
    held = ingress_verdicts(cluster, SEQUENCE)
    assert [len(v) for v in held] == [0, 0, 1, 1]  # judged once the Service has an ingress IP
    assert all(v.holds for step in held for v in step), held
    evidence = held[-1][0].evidence["samples"]
    assert [(s["node"], s["expected"]) for s in evidence] == [
        ("node-1", "drop"),
        ("node-2", "connect"),
    ]
    assert evidence[1]["seen_sources"] == [load_balancer_source(2)]
    if not isinstance(cluster.proxy, IptablesProxy):  # the mutant is iptables'
        return
    cluster.reset()
    cluster.new_proxy = LoadBalancerIpUnprogrammedProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = ingress_verdicts(cluster, SEQUENCE[:3])
    finally:
        cluster.new_proxy = IptablesProxy  # the fixture's reset starts the real ones
    (verdict,) = caught[2]
    assert not verdict.holds and "ingress IP via node-1" in verdict.message, verdict
