"""One port number on TCP and UDP in one Service (issue 12, item 3), read back from the kernel:
the harness's iptables and nftables proxies program each (number, protocol) on its own, so both
balance over their endpoints, and removing the UDP port takes only its rules away."""

from __future__ import annotations

import dataclasses

import pytest

from harness.events import DUAL_UDP_PORT, UDP_PORT_NAME
from harness.model.objects import EndpointPort, EndpointSlice, Service
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

from .conftest import ProxyFactory
from .kernel_cases import CLIENT, PORT, assert_exact, endpoint, expected, service

pytestmark = pytest.mark.netns

UDP = EndpointPort(UDP_PORT_NAME, PORT.port, "UDP")


def dual() -> Service:
    return dataclasses.replace(service(), ports=(service().ports[0], DUAL_UDP_PORT))


@pytest.mark.parametrize("proxy_class", [IptablesProxy, NftablesProxy])
def test_each_protocol_is_programmed_and_removed_on_its_own(
    proxy_class: type[KernelRuleProxy], start_proxy: ProxyFactory
) -> None:
    proxy, svc, endpoints = start_proxy(proxy_class), dual(), [endpoint(2), endpoint(3)]
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(EndpointSlice(svc.name, (PORT, UDP), tuple(endpoints), name="s"))
    proxy.sync()
    assert_exact(proxy.reachability(svc, "http", CLIENT), expected(svc, endpoints))
    assert_exact(proxy.reachability(svc, UDP_PORT_NAME, CLIENT), expected(svc, endpoints))

    tcp_only = dataclasses.replace(svc, ports=svc.ports[:1])
    proxy.on_service_update(svc, tcp_only)
    proxy.sync()
    assert_exact(proxy.reachability(tcp_only, "http", CLIENT), expected(tcp_only, endpoints))
    gone = proxy.reachability(svc, UDP_PORT_NAME, CLIENT)  # traced with the old port's number
    assert not gone.probabilities and not gone.rejects, gone
