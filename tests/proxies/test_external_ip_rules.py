"""The kernel proxies' externalIPs against the rule oracle (issue 11 items 2, 7): a connection
from outside to a Service's externalIP, handed to this node (node-1), traced through the rules
read back from the kernel (`KernelRuleProxy.ingress_reachability`) goes where
`expect_external_ip` says for this node, for a ClusterIP Service (no node port) and a NodePort
one alike: under Cluster every usable endpoint 1/n, under Local only node-1's, DROP without
local endpoints, REJECT without any, nothing once the address is taken away; and
`mutant-nftables-external-ip-unprogrammed` leaves it untranslated."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model.objects import Service, ServiceType, TrafficPolicy
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import ExternalIpUnprogrammedProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.traffic import Reachability

from .conftest import ProxyFactory
from .kernel_cases import assert_exact, endpoint, program, replace_endpoints, service

pytestmark = pytest.mark.netns
OUTSIDE = "10.240.0.221"
EXTERNAL_IPS = ("10.254.0.10", "10.254.0.11")


def addressed_service(local: bool, kind: ServiceType = ServiceType.CLUSTER_IP) -> Service:
    """The kernel cases' Service with two externalIPs, of type `kind` (a node port for
    NodePort), externalTrafficPolicy Local or Cluster."""
    svc = service()
    if kind != ServiceType.CLUSTER_IP:
        svc = replace(svc, ports=tuple(replace(p, node_port=30080) for p in svc.ports))
    policy = TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER
    return replace(svc, type=kind, external_traffic_policy=policy, external_ips=EXTERNAL_IPS)


def at(proxy: KernelRuleProxy, svc: Service, address: str) -> Reachability:
    return proxy.ingress_reachability(svc, "http", OUTSIDE, address)


@pytest.mark.parametrize("kind", [ServiceType.CLUSTER_IP, ServiceType.NODE_PORT])
@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda c: c.name)
def test_external_ips_trace_as_the_model_says(
    start_proxy: ProxyFactory, cls: type[KernelRuleProxy], kind: ServiceType
) -> None:
    proxy = start_proxy(cls)
    svc = addressed_service(local=False, kind=kind)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(proxy, svc, endpoints)
    for address in EXTERNAL_IPS:
        assert_exact(at(proxy, svc, address), {e.backend: 0.5 for e in endpoints})
    local = addressed_service(local=True, kind=kind)
    proxy.on_service_update(svc, local)
    proxy.sync()
    assert_exact(at(proxy, local, EXTERNAL_IPS[1]), {endpoints[0].backend: 1})
    replace_endpoints(proxy, local, [endpoint(3, node="node-2")])
    dropped = at(proxy, local, EXTERNAL_IPS[0])
    assert dropped.drops and not dropped.rejects and not dropped.probabilities, dropped
    replace_endpoints(proxy, local, [])
    rejected = at(proxy, local, EXTERNAL_IPS[0])
    assert rejected.rejects and not rejected.drops, rejected
    one = replace(local, external_ips=EXTERNAL_IPS[:1])
    proxy.on_service_update(local, one)
    proxy.sync()  # the second address taken away: its REJECT goes, the first's stays
    gone = at(proxy, one, EXTERNAL_IPS[1])
    assert not gone.rejects and not gone.drops and not gone.probabilities, gone
    assert at(proxy, one, EXTERNAL_IPS[0]).rejects


def test_the_unprogrammed_mutant_leaves_external_ips_untranslated(
    start_proxy: ProxyFactory,
) -> None:
    mutant = start_proxy(ExternalIpUnprogrammedProxy)
    svc = addressed_service(local=False, kind=ServiceType.NODE_PORT)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(mutant, svc, endpoints)
    reach = at(mutant, svc, EXTERNAL_IPS[0])
    assert not reach.probabilities and not reach.rejects and not reach.drops, reach
    node_port = mutant.node_port_reachability(svc, "http", OUTSIDE, "10.240.0.1")
    assert_exact(node_port, {e.backend: 0.5 for e in endpoints})  # its node ports are right
