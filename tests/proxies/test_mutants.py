"""Every data-plane mutant is caught by the rule oracle, and the proxy it breaks is not.

Each scenario programs real rules in a bare namespace and returns the oracle's answer with the
model's; the same scenario must conform on the real proxy and fail on the mutant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace

import pytest

from harness.events import ADMIN_PORT, DUAL_UDP_PORT, MULTI_PORTS, SCTP_PORT_NAME, UDP_PORT_NAME
from harness.model.objects import SERVICE_PROXY_NAME_LABEL, Backend, EndpointPort, EndpointSlice
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import MUTANT_PROXIES
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.traffic import Reachability

from .conftest import ProxyFactory
from .kernel_cases import (
    CLIENT,
    PORT,
    STATISTIC_STEP,
    endpoint,
    expected,
    in_netns,
    program,
    replace_endpoints,
    service,
)

pytestmark = pytest.mark.netns

Wanted = tuple[bool, dict[Backend, float]]  # (rejects, probabilities)
Scenario = Callable[[KernelRuleProxy], tuple[Reachability, Wanted]]


def conforms(reach: Reachability, wanted: Wanted) -> bool:
    rejects, probabilities = wanted
    if reach.rejects != rejects or set(reach.probabilities) != set(probabilities):
        return False
    tolerance = STATISTIC_STEP * max(len(probabilities), 1)
    return all(abs(reach.probabilities[b] - p) <= tolerance for b, p in probabilities.items())


def three_endpoints(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    svc, endpoints = service(), [endpoint(2), endpoint(3), endpoint(4)]
    program(proxy, svc, endpoints)
    return proxy.reachability(svc, "http", CLIENT), (False, expected(svc, endpoints))


def one_removed(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    svc = service()
    program(proxy, svc, [endpoint(2), endpoint(3), endpoint(4)])
    kept = [endpoint(2), endpoint(3)]
    replace_endpoints(proxy, svc, kept)
    return proxy.reachability(svc, "http", CLIENT), (False, expected(svc, kept))


def one_unready(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    svc, endpoints = service(), [endpoint(2), endpoint(3, ready=False), endpoint(4)]
    program(proxy, svc, endpoints)
    return proxy.reachability(svc, "http", CLIENT), (False, expected(svc, endpoints))


def no_endpoints(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    svc = service()
    program(proxy, svc, [])
    return proxy.reachability(svc, "http", CLIENT), (True, {})


def vip_reused(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service deleted, and another one given its VIP: only the new one's endpoints."""
    old = service("legacy")  # its KUBE-SERVICES entry sorts first
    old_slice = program(proxy, old, [endpoint(2), endpoint(3)])
    proxy.on_endpoint_slice_delete(old_slice)
    proxy.on_service_delete(old)
    proxy.sync()
    new, endpoints = service("web"), [endpoint(4)]
    program(proxy, new, endpoints)
    return proxy.reachability(new, "http", CLIENT), (False, expected(new, endpoints))


def sticky_client(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    svc, chosen = service(affinity=True), Backend("pod-3", "uid-3")
    program(proxy, svc, [endpoint(2), endpoint(3), endpoint(4)])
    return proxy.reachability(svc, "http", CLIENT, affinity_backend=chosen), (False, {chosen: 1.0})


def second_port(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service of two ports, both to the same endpoints: the second port balances too."""
    svc = dataclasses.replace(service(), ports=MULTI_PORTS[:2])
    endpoints = [endpoint(2), endpoint(3)]
    endpoint_slice = EndpointSlice(
        svc.name, (PORT, EndpointPort(ADMIN_PORT, 9090)), tuple(endpoints), name="web-0"
    )
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(endpoint_slice)
    proxy.sync()
    return proxy.reachability(svc, ADMIN_PORT, CLIENT), (False, expected(svc, endpoints))


def opted_out(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service labelled service-proxy-name (I13): no rule for its VIP, so a new connection is
    neither translated nor rejected (the node's sink drops it)."""
    svc = replace(service(), labels=((SERVICE_PROXY_NAME_LABEL, "other-proxy"),))
    program(proxy, svc, [endpoint(2), endpoint(3)])
    return proxy.reachability(svc, "http", CLIENT), (False, {})


def same_number_on_tcp_and_udp(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service with port 80 on TCP (`http`) and on UDP (`udp`): the TCP port balances over
    its endpoints whatever the UDP port's rules are."""
    svc = dataclasses.replace(service(), ports=(service().ports[0], DUAL_UDP_PORT))
    endpoints = [endpoint(2), endpoint(3)]
    udp = EndpointPort(UDP_PORT_NAME, PORT.port, "UDP")
    endpoint_slice = EndpointSlice(svc.name, (PORT, udp), tuple(endpoints), name="web-0")
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(endpoint_slice)
    proxy.sync()
    return proxy.reachability(svc, "http", CLIENT), (False, expected(svc, endpoints))


def zone_hinted(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service under trafficDistribution PreferClose with one ready endpoint in node-1's zone
    (zone-a) and two in zone-b, each hinted for its own zone (I11): node-1's proxy sends new
    connections to the zone-a one only."""
    svc = replace(service(), traffic_distribution="PreferClose")
    endpoints = [
        replace(endpoint(2), zone_hints=("zone-a",)),
        replace(endpoint(3, node="node-2"), zone="zone-b", zone_hints=("zone-b",)),
        replace(endpoint(4, node="node-2"), zone="zone-b", zone_hints=("zone-b",)),
    ]
    program(proxy, svc, endpoints)
    wanted = expected(svc, endpoints)
    assert list(wanted) == [Backend("pod-2", "uid-2")]  # the model narrows to zone-a
    return proxy.reachability(svc, "http", CLIENT), (False, wanted)


def sctp_port(proxy: KernelRuleProxy) -> tuple[Reachability, Wanted]:
    """A Service whose port 80 is SCTP, to the pods' `sctp` port: a new association's INIT
    balances over its endpoints."""
    first = replace(service().ports[0], protocol="SCTP", target_port=SCTP_PORT_NAME)
    svc = dataclasses.replace(service(), ports=(first,))
    endpoints = [endpoint(2), endpoint(3)]
    sctp = EndpointPort("http", PORT.port, "SCTP")
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(EndpointSlice(svc.name, (sctp,), tuple(endpoints), name="web-0"))
    proxy.sync()
    return proxy.reachability(svc, "http", CLIENT), (False, expected(svc, endpoints))


CASES: dict[str, tuple[type[KernelRuleProxy], Scenario]] = {
    "mutant-iptables-wrong-probability": (IptablesProxy, three_endpoints),
    "mutant-iptables-never-removes": (IptablesProxy, one_removed),
    "mutant-iptables-ignores-readiness": (IptablesProxy, one_unready),
    "mutant-iptables-drop-empty": (IptablesProxy, no_endpoints),
    "mutant-iptables-no-reject": (IptablesProxy, no_endpoints),
    "mutant-nftables-no-reject": (NftablesProxy, no_endpoints),
    "mutant-nftables-no-affinity": (NftablesProxy, sticky_client),
    "mutant-iptables-two-decimals": (IptablesProxy, three_endpoints),
    "mutant-iptables-leaks-deleted": (IptablesProxy, vip_reused),
    "mutant-iptables-first-port-only": (IptablesProxy, second_port),
    "mutant-iptables-ignores-opt-out": (IptablesProxy, opted_out),
    "mutant-iptables-port-ignores-protocol": (IptablesProxy, same_number_on_tcp_and_udp),
    "mutant-iptables-sctp-as-tcp": (IptablesProxy, sctp_port),
    "mutant-iptables-ignores-topology": (IptablesProxy, zone_hinted),
}
ELSEWHERE = {
    # the rule oracle traces one connection, not the timeout its affinity entry lives for
    "mutant-nftables-affinity-never-expires": "test_the_affinity_timeout_is_programmed",
    # no rules to read: caught on real traffic by tests/local/test_dataplane_mutants.py
    "mutant-userspace-no-fallback": "tests/local/test_dataplane_mutants.py",
    "mutant-userspace-wrong-port": "tests/local/test_dataplane_mutants.py",
    # wrong only in what they do to established flows, which rules do not show
    "mutant-iptables-flushes-on-restart": "tests/local/test_long_lived.py",
    "mutant-iptables-flushes-every-sync": "tests/local/test_long_lived.py",
    # wrong only between two instances: its rules are right once synced
    "mutant-iptables-clears-rules-on-restart": "tests/proxies/test_restart_keeps_rules.py",
    # wrong only in the order of what it is handed: caught at a stale snapshot on real packets
    "mutant-iptables-tombstones": "tests/local/test_stale_snapshot.py",
    # wrong in what the pods see of a connection's source, which the reachability does not say
    "mutant-iptables-masquerades-all": "tests/local/test_source_ip.py",
    "mutant-iptables-no-hairpin-masquerade": "tests/local/test_source_ip.py",
    "mutant-iptables-keeps-udp-conntrack": "tests/local/test_udp.py",
    # wrong only in the conntrack entries of node ports, which rules do not show: caught on
    # entries in the kernel, and on a held flow from outside (tests/local/test_udp_node_port.py)
    "mutant-iptables-keeps-nodeport-udp-conntrack": "tests/proxies/test_node_port_conntrack.py",
    # wrong only in the conntrack entries a start leaves, which rules do not show
    "mutant-iptables-forgets-while-down": "tests/local/test_restart_while_down.py",
    # wrong only on nodes other than node-1, whose proxy this reads
    "mutant-iptables-wrong-node": "tests/local/test_nodes.py",
    # wrong only across an update it missed (a VIP changed under one name): caught at an
    # unobserved change on real packets
    "mutant-iptables-immutable-vip": "tests/local/test_unobserved.py",
    # wrong only for segments conntrack marks INVALID, which a new connection's trace is not
    "mutant-iptables-keeps-invalid": "tests/proxies/test_invalid_drop.py",
    # wrong only at node ports, which these cases' ClusterIP traces do not reach: caught by the
    # node-port rule oracle (`node_port_reachability`) and from outside on real packets
    # (tests/local/test_node_port.py)
    "mutant-iptables-nodeport-ignores-local": "tests/proxies/test_node_port_rules.py",
    "mutant-iptables-nodeport-rejects-no-local": "tests/proxies/test_node_port_rules.py",
    # wrong only at ingress IPs, which ClusterIP traces do not reach: caught by the ingress-IP
    # rule oracle (`load_balancer_reachability`) and from outside via a node on real packets
    # (tests/local/test_load_balancer.py)
    "mutant-iptables-lb-ip-unprogrammed": "tests/proxies/test_load_balancer_rules.py",
    # wrong only in what its health-check server answers, which no rule holds: caught from
    # outside by a fixed sequence on real packets
    "mutant-iptables-health-counts-terminating": "tests/local/test_health_check.py",
    # wrong only at externalIPs, which ClusterIP traces do not reach: caught by the ingress
    # rule oracle (`ingress_reachability`) and from outside via a node on real packets
    # (tests/local/test_external_ips.py)
    "mutant-nftables-external-ip-unprogrammed": "tests/proxies/test_external_ip_rules.py",
}


def test_every_mutant_has_a_case_and_a_description() -> None:
    assert set(MUTANT_PROXIES) == set(CASES) | set(ELSEWHERE)
    for name, cls in MUTANT_PROXIES.items():
        assert getattr(cls, "name", None) == name and getattr(cls, "description", "")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_real_proxy_conforms(name: str, start_proxy: ProxyFactory) -> None:
    real, scenario = CASES[name]
    reach, wanted = scenario(start_proxy(real))
    assert conforms(reach, wanted), reach


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_mutant_is_caught(name: str, start_proxy: ProxyFactory) -> None:
    real, scenario = CASES[name]
    mutant = MUTANT_PROXIES[name]
    assert issubclass(mutant, real)
    reach, wanted = scenario(start_proxy(mutant))
    assert not conforms(reach, wanted), reach


def test_wrong_probability_skews_toward_the_first_endpoint(start_proxy: ProxyFactory) -> None:
    reach, _ = three_endpoints(start_proxy(MUTANT_PROXIES["mutant-iptables-wrong-probability"]))
    shares = [reach.probabilities[Backend(f"pod-{n}", f"uid-{n}")] for n in (2, 3, 4)]
    for got, want in zip(shares, (1 / 3, 2 / 9, 4 / 9), strict=True):
        assert abs(got - want) < 1e-8


def test_drop_empty_neither_rejects_nor_reaches(start_proxy: ProxyFactory) -> None:
    reach, _ = no_endpoints(start_proxy(MUTANT_PROXIES["mutant-iptables-drop-empty"]))
    assert not reach.rejects and not reach.probabilities and "drop" in reach.detail


def test_nftables_honours_zone_hints(start_proxy: ProxyFactory) -> None:
    """The shared plan narrows nftables' endpoints as it does iptables' (the iptables one is
    `test_the_real_proxy_conforms[mutant-iptables-ignores-topology]`)."""
    reach, wanted = zone_hinted(start_proxy(NftablesProxy))
    assert conforms(reach, wanted), reach


def test_the_affinity_timeout_is_programmed(start_proxy: ProxyFactory) -> None:
    for cls, kept in (
        (NftablesProxy, True),
        (MUTANT_PROXIES["mutant-nftables-affinity-never-expires"], False),
    ):
        proxy = start_proxy(cls)
        program(proxy, service(affinity=True, timeout_s=7), [endpoint(2), endpoint(3)])
        ruleset = in_netns(proxy.netns, "nft", "list", "ruleset")
        assert ("timeout 7s" in ruleset) == kept, cls.name
