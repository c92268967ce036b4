"""externalIPs on the local cluster (issue 11, item 2): the external client hands a connection to
a Service's externalIP to one chosen node, from its address for that node, and the kernel proxies
program the externalIP as kube-proxy does ("Capture externalIPs"), for a ClusterIP Service too.
One 2-node target per kernel proxy for the module (tests/local/two_nodes.py); every test leaves
it reset."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.checks.external import EXTERNAL_IP
from harness.errors import UsageError
from harness.events import (
    CreateService,
    Event,
    RestartProxy,
    Scale,
    SetExternalIPs,
    SetExternalTrafficPolicy,
)
from harness.local.cluster import load_balancer_source
from harness.model.objects import TrafficPolicy, labels_of
from harness.proxies.mutants import ExternalIpUnprogrammedProxy
from harness.proxies.nftables import NftablesProxy
from harness.targets.local import LocalTarget
from harness.traffic import TrafficRequest
from tests.local import two_nodes
from tests.local.conftest import needs_root

pytestmark = [pytest.mark.netns, needs_root]

WEB = labels_of({"app": "web"})
EXTERNAL_IPS = ("10.254.0.10", "10.254.0.11")
SEQUENCE: list[Event] = [
    CreateService("web", WEB),
    Scale("web", 2, node="node-2"),
    SetExternalIPs("web", EXTERNAL_IPS),  # web stays ClusterIP: no node port
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
]


target = two_nodes.target  # the fixtures: a 2-node target per kernel proxy, reset after each test
cluster = two_nodes.cluster


def test_the_part_holds_on_the_real_proxy_and_catches_the_disclosed_mutant(
    cluster: LocalTarget,
) -> None:
    """A ClusterIP Service with endpoints on node-2 only given two externalIPs, then
    externalTrafficPolicy Local: node-1 is sent to the first address, node-2 to the second;
    under Cluster both connect, under Local via node-1 it must DROP and via node-2 connect
    with the client's address for node-2 kept. The real proxy holds;
    `mutant-nftables-external-ip-unprogrammed` fails as soon as the Service has externalIPs
    (they meet no rule: the connections time out)."""
    held = two_nodes.part_verdicts(cluster, SEQUENCE, EXTERNAL_IP.part)
    assert [len(v) for v in held] == [0, 0, 1, 1]  # judged once the Service has externalIPs
    assert all(v.holds for step in held for v in step), held
    cluster_samples = held[2][0].evidence["samples"]
    assert [s["expected"] for s in cluster_samples] == ["connect", "connect"]
    evidence = held[-1][0].evidence["samples"]
    assert [(s["node"], s["expected"], s["via"]) for s in evidence] == [
        ("node-1", "drop", f"external IP {EXTERNAL_IPS[0]}"),
        ("node-2", "connect", f"external IP {EXTERNAL_IPS[1]}"),
    ]
    assert evidence[1]["seen_sources"] == [load_balancer_source(2)]
    if not isinstance(cluster.proxy, NftablesProxy):  # the mutant is nftables'
        return
    cluster.reset()
    cluster.new_proxy = ExternalIpUnprogrammedProxy
    try:
        cluster.apply(RestartProxy())  # every node's proxy is now the mutant
        caught = two_nodes.part_verdicts(cluster, SEQUENCE[:3], EXTERNAL_IP.part)
    finally:
        cluster.new_proxy = NftablesProxy  # the fixture's reset starts the real ones
    (verdict,) = caught[2]
    assert not verdict.holds and "external IP of it via node-1" in verdict.message, verdict


def test_a_request_to_an_external_ip_is_checked_in_one_line(cluster: LocalTarget) -> None:
    cluster.apply(CreateService("web", WEB))
    request = TrafficRequest("web", external_node="node-1", external_ip=EXTERNAL_IPS[0])
    with pytest.raises(UsageError, match=r"not in 10\.254\.0\.0/24"):
        cluster.send(replace(request, external_ip="192.0.2.1"))
    with pytest.raises(UsageError, match="not both"):
        cluster.send(replace(request, via_load_balancer=True))
    with pytest.raises(UsageError, match=r"sources=\(0,\)"):
        cluster.send(replace(request, sources=(1,)))
