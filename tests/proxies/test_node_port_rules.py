"""The kernel proxies' node ports against the rule oracle (issue 11 items 2-3, 7): a connection
from outside to the node's own address on the node port, traced through the rules read back from
the kernel (`KernelRuleProxy.node_port_reachability`), as `expect_external` says for this node
(node-1): under Cluster every usable endpoint 1/n, under Local only node-1's, DROP without local
endpoints, REJECT without any; and the disclosed mutants' traces differ there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model.objects import ServiceType, TrafficPolicy
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import NodePortIgnoresLocalProxy, NodePortRejectsNoLocalProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

from .conftest import ProxyFactory
from .kernel_cases import assert_exact, endpoint, program, replace_endpoints, service

pytestmark = pytest.mark.netns
OUTSIDE = "10.240.0.200"
NODE_IP = "10.240.0.1"
NODE_PORT = 30080


def node_port_service(local: bool) -> object:
    svc = service()
    ports = tuple(replace(p, node_port=NODE_PORT) for p in svc.ports)
    policy = TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER
    return replace(svc, ports=ports, type=ServiceType.NODE_PORT, external_traffic_policy=policy)


@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda c: c.name)
def test_node_ports_trace_as_the_external_expectation(
    start_proxy: ProxyFactory, cls: type[KernelRuleProxy]
) -> None:
    proxy = start_proxy(cls)
    svc = node_port_service(local=False)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(proxy, svc, endpoints)  # type: ignore[arg-type]
    reach = proxy.node_port_reachability(svc, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert_exact(reach, {e.backend: 0.5 for e in endpoints})
    cluster_ip = proxy.reachability(svc, "http", OUTSIDE)  # type: ignore[arg-type]
    assert_exact(cluster_ip, {e.backend: 0.5 for e in endpoints})  # the VIP unchanged
    local = node_port_service(local=True)
    proxy.on_service_update(svc, local)  # type: ignore[arg-type]
    proxy.sync()
    reach = proxy.node_port_reachability(local, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert_exact(reach, {endpoints[0].backend: 1.0})  # node-1's own only
    replace_endpoints(proxy, local, [endpoint(3, node="node-2")])  # type: ignore[arg-type]
    dropped = proxy.node_port_reachability(local, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert dropped.drops and not dropped.rejects and not dropped.probabilities, dropped
    replace_endpoints(proxy, local, [])  # type: ignore[arg-type]
    rejected = proxy.node_port_reachability(local, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert rejected.rejects and not rejected.drops, rejected


def test_the_node_port_mutants_trace_differently(start_proxy: ProxyFactory) -> None:
    local = node_port_service(local=True)
    ignores = start_proxy(NodePortIgnoresLocalProxy)
    endpoints = [endpoint(2), endpoint(3, node="node-2")]
    program(ignores, local, endpoints)  # type: ignore[arg-type]
    reach = ignores.node_port_reachability(local, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert set(reach.probabilities) == {e.backend for e in endpoints}  # node-2's too
    ignores.stop()
    rejects = start_proxy(NodePortRejectsNoLocalProxy)
    program(rejects, local, [endpoint(3, node="node-2")])  # type: ignore[arg-type]
    reach = rejects.node_port_reachability(local, "http", OUTSIDE, NODE_IP)  # type: ignore[arg-type]
    assert reach.rejects and not reach.drops, reach
