"""The kernel proxies' LoadBalancer ingress IPs against the rule oracle (issue 11 items 2, 7): a
connection from outside to the ingress IP, handed to this node (node-1) by a load balancer,
traced through the rules read back from the kernel (`KernelRuleProxy.load_balancer_reachability`)
goes where the node port does, as `expect_external` says for this node: under Cluster every
usable endpoint 1/n, under Local only node-1's, DROP without local endpoints, REJECT without any;
and `mutant-iptables-lb-ip-unprogrammed` leaves it untranslated."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model.objects import Service, ServiceType, TrafficPolicy
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import LoadBalancerIpUnprogrammedProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

from .conftest import ProxyFactory
from .kernel_cases import assert_exact, endpoint, program, replace_endpoints, service

pytestmark = pytest.mark.netns
OUTSIDE = "10.240.0.221"
NODE_IP = "10.240.0.1"
NODE_PORT = 30080
INGRESS_IP = "10.255.0.1"


def balanced_service(local: bool) -> Service:
    svc = service()
    ports = tuple(replace(p, node_port=NODE_PORT) for p in svc.ports)
    policy = TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER
    return replace(
        svc,
        ports=ports,
        type=ServiceType.LOAD_BALANCER,
        external_traffic_policy=policy,
        load_balancer_ip=INGRESS_IP,
    )


@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda c: c.name)
def test_ingress_ips_trace_as_the_node_port(
    start_proxy: ProxyFactory, cls: type[KernelRuleProxy]
) -> None:
    proxy = start_proxy(cls)
    svc = balanced_service(local=False)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(proxy, svc, endpoints)
    reach = proxy.load_balancer_reachability(svc, "http", OUTSIDE)
    assert_exact(reach, {e.backend: 0.5 for e in endpoints})
    assert_exact(proxy.reachability(svc, "http", OUTSIDE), {e.backend: 0.5 for e in endpoints})
    local = balanced_service(local=True)
    proxy.on_service_update(svc, local)
    proxy.sync()
    assert_exact(
        proxy.load_balancer_reachability(local, "http", OUTSIDE), {endpoints[0].backend: 1}
    )
    node_port = proxy.node_port_reachability(local, "http", OUTSIDE, NODE_IP)
    assert_exact(node_port, {endpoints[0].backend: 1.0})
    replace_endpoints(proxy, local, [endpoint(3, node="node-2")])
    dropped = proxy.load_balancer_reachability(local, "http", OUTSIDE)
    assert dropped.drops and not dropped.rejects and not dropped.probabilities, dropped
    replace_endpoints(proxy, local, [])
    rejected = proxy.load_balancer_reachability(local, "http", OUTSIDE)
    assert rejected.rejects and not rejected.drops, rejected
    node_port_service = replace(local, type=ServiceType.NODE_PORT, load_balancer_ip=None)
    proxy.on_service_update(local, node_port_service)
    proxy.sync()  # made NodePort: the ingress IP's REJECT goes, the node port's stays
    gone = proxy.load_balancer_reachability(local, "http", OUTSIDE)
    assert not gone.rejects and not gone.drops and not gone.probabilities, gone
    assert proxy.node_port_reachability(local, "http", OUTSIDE, NODE_IP).rejects


def test_the_unprogrammed_mutant_leaves_the_ingress_ip_untranslated(
    start_proxy: ProxyFactory,
) -> None:
    mutant = start_proxy(LoadBalancerIpUnprogrammedProxy)
    svc = balanced_service(local=False)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(mutant, svc, endpoints)
    reach = mutant.load_balancer_reachability(svc, "http", OUTSIDE)
    assert not reach.probabilities and not reach.rejects and not reach.drops, reach
    assert "accept" in reach.detail
    node_port = mutant.node_port_reachability(svc, "http", OUTSIDE, NODE_IP)
    assert_exact(node_port, {e.backend: 0.5 for e in endpoints})  # its node ports are right
