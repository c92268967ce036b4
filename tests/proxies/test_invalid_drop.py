"""The kernel proxies drop forwarded packets conntrack marks INVALID, as kube-proxy does
(kubernetes#74839; `harness.proxies.rules.invalid`), read back from the kernel by the rule oracle:
an out-of-window segment from a pod to a client is dropped in FORWARD, and a connection's first
packet is not. With `nf_conntrack_tcp_be_liberal` set in the node's namespace there is no such
rule (PR #120412); the disclosed mutant has none either way."""

from __future__ import annotations

import pytest

from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import MUTANT_PROXIES
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.invalid import BE_LIBERAL, tcp_be_liberal
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.tracing import ACCEPT, DROP

from .conftest import ProxyFactory
from .kernel_cases import CLIENT, endpoint, in_netns, program, service

pytestmark = pytest.mark.netns
PROXIES: list[type[KernelRuleProxy]] = [IptablesProxy, NftablesProxy]
POD = "10.244.0.2"
MUTANT = "mutant-iptables-keeps-invalid"


def fate(proxy: KernelRuleProxy) -> dict[object, float]:
    """An out-of-window segment from a backend pod back to the client's source port."""
    return dict(proxy.invalid_fate(POD, CLIENT, 40000))


@pytest.mark.parametrize("cls", PROXIES, ids=lambda cls: cls.name)
def test_invalid_segments_are_dropped_and_new_connections_pass(
    cls: type[KernelRuleProxy], start_proxy: ProxyFactory
) -> None:
    proxy = start_proxy(cls)
    svc = service()
    program(proxy, svc, [endpoint(2)])
    assert fate(proxy) == {DROP: 1.0}
    assert not proxy.reachability(svc, "http", CLIENT).rejects


def test_the_mutant_lets_invalid_segments_through(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(MUTANT_PROXIES[MUTANT])
    assert fate(proxy) == {ACCEPT: 1.0}
    assert "INVALID" not in in_netns(proxy.netns, "iptables-save", "-t", "filter")


@pytest.mark.parametrize("cls", PROXIES, ids=lambda cls: cls.name)
def test_no_drop_where_the_node_is_liberal(
    cls: type[KernelRuleProxy], netns: str, start_proxy: ProxyFactory
) -> None:
    in_netns(netns, "sh", "-c", f"echo 1 > {BE_LIBERAL}")  # the test's own namespace only
    assert tcp_be_liberal(netns)
    proxy = start_proxy(cls)
    assert fate(proxy) == {ACCEPT: 1.0}
