"""The iptables and nftables proxies against the exact rule oracle, in a bare namespace.

Each test feeds Services and slices through the Proxy contract, reads the rules back from the
kernel (`reachability`) and compares with the model: exactly the usable endpoints, each 1/n
within the kernel's rounding, REJECT where none are usable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import EnvironmentProblem
from harness.model.objects import Backend
from harness.proxies.base import NodeContext
from harness.proxies.iptables import IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy

from .conftest import ProxyFactory
from .kernel_cases import (
    CLIENT,
    assert_exact,
    endpoint,
    expected,
    in_netns,
    program,
    replace_endpoints,
    rule_handles,
    service,
)

pytestmark = pytest.mark.netns
PROXIES: list[type[KernelRuleProxy]] = [IptablesProxy, NftablesProxy]


@pytest.fixture(params=PROXIES, ids=lambda cls: cls.name)
def proxy(request: pytest.FixtureRequest, start_proxy: ProxyFactory) -> KernelRuleProxy:
    return start_proxy(request.param)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 10])
def test_each_ready_endpoint_gets_one_nth(proxy: KernelRuleProxy, count: int) -> None:
    svc = service()
    endpoints = [endpoint(n) for n in range(2, 2 + count)]
    program(proxy, svc, endpoints)
    assert_exact(proxy.reachability(svc, "http", CLIENT), expected(svc, endpoints))


def test_iptables_prints_kube_proxy_probabilities(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(IptablesProxy)
    program(proxy, service(), [endpoint(n) for n in range(2, 6)])
    saved = in_netns(proxy.netns, "iptables-save", "-t", "nat")
    for text in ("0.25000000000", "0.33333333349", "0.50000000000"):
        assert f"--probability {text}" in saved
    assert saved.count("--probability") == 3


def test_rejects_without_endpoints(proxy: KernelRuleProxy) -> None:
    svc = service()
    program(proxy, svc, [])
    assert proxy.reachability(svc, "http", CLIENT).rejects


def test_unready_endpoints_get_nothing(proxy: KernelRuleProxy) -> None:
    svc = service()
    endpoints = [endpoint(2), endpoint(3, ready=False), endpoint(4)]
    program(proxy, svc, endpoints)
    assert_exact(proxy.reachability(svc, "http", CLIENT), expected(svc, endpoints))
    replace_endpoints(proxy, svc, [endpoint(3, ready=False)])
    assert proxy.reachability(svc, "http", CLIENT).rejects


def test_serving_terminating_endpoints_are_the_fallback(proxy: KernelRuleProxy) -> None:
    svc = service()
    draining = [endpoint(2, ready=False, serving=True, terminating=True), endpoint(3, ready=False)]
    program(proxy, svc, draining)
    reach = proxy.reachability(svc, "http", CLIENT)
    assert reach.probabilities == {Backend("pod-2", "uid-2"): 1.0}
    replace_endpoints(proxy, svc, [*draining, endpoint(4)])
    assert_exact(proxy.reachability(svc, "http", CLIENT), {Backend("pod-4", "uid-4"): 1.0})


def test_internal_traffic_policy_local(proxy: KernelRuleProxy) -> None:
    svc = service(local=True)
    endpoints = [endpoint(2), endpoint(3, node="node-2"), endpoint(4)]
    program(proxy, svc, endpoints)
    assert_exact(proxy.reachability(svc, "http", CLIENT), expected(svc, endpoints))
    replace_endpoints(proxy, svc, [endpoint(3, node="node-2")])
    dropped = proxy.reachability(svc, "http", CLIENT)  # kube-proxy: "has no local endpoints"
    assert dropped.drops and not dropped.rejects and not dropped.probabilities, dropped
    replace_endpoints(proxy, svc, [])
    rejected = proxy.reachability(svc, "http", CLIENT)  # no endpoints at all
    assert rejected.rejects and not rejected.drops, rejected


def test_affinity_first_connection_then_sticky(proxy: KernelRuleProxy) -> None:
    svc = service(affinity=True, timeout_s=125)
    endpoints = [endpoint(n) for n in range(2, 5)]
    program(proxy, svc, endpoints)
    assert_exact(proxy.reachability(svc, "http", CLIENT), expected(svc, endpoints))
    chosen = Backend("pod-3", "uid-3")
    sticky = proxy.reachability(svc, "http", CLIENT, affinity_backend=chosen)
    assert sticky.probabilities == {chosen: 1.0}


def test_affinity_rules_carry_the_timeout(start_proxy: ProxyFactory) -> None:
    iptables, nftables = start_proxy(IptablesProxy), start_proxy(NftablesProxy)
    assert isinstance(nftables, NftablesProxy)
    for proxy in (iptables, nftables):
        program(proxy, service(affinity=True, timeout_s=125), [endpoint(2), endpoint(3)])
    saved = in_netns(iptables.netns, "iptables-save", "-t", "nat")
    assert saved.count("--rcheck --seconds 125 --reap") == 2
    assert saved.count("--set --name KUBE-SEP-") == 2
    listed = in_netns(nftables.netns, "nft", "list", "table", "ip", nftables.table)
    assert listed.count("timeout 2m5s") == 2
    assert listed.count("update @affinity-") == 2


def test_two_services_and_a_missing_port(proxy: KernelRuleProxy) -> None:
    web, api = service("web", "10.96.0.10"), service("api", "10.96.0.11")
    program(proxy, web, [endpoint(2)])
    program(proxy, api, [endpoint(3), endpoint(4)])
    assert_exact(proxy.reachability(web, "http", CLIENT), {Backend("pod-2", "uid-2"): 1.0})
    assert_exact(proxy.reachability(api, "http", CLIENT), expected(api, [endpoint(3), endpoint(4)]))
    missing = proxy.reachability(web, "metrics", CLIENT)
    assert not missing.rejects and not missing.probabilities


def test_partial_sync_touches_only_the_changed_service(proxy: KernelRuleProxy) -> None:
    services = [service(f"svc{n}", f"10.96.0.{10 + n}") for n in range(3)]
    for number, svc in enumerate(services):
        program(proxy, svc, [endpoint(10 * number + k) for k in range(2, 5)])
    before, old_chains = rule_handles(proxy.netns), set(proxy.rendered["svc1"].chains)
    replace_endpoints(proxy, services[1], [endpoint(12), endpoint(13)])
    after, new_chains = rule_handles(proxy.netns), set(proxy.rendered["svc1"].chains)
    rewritten = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert {name for _, name in rewritten} <= old_chains | new_chains
    assert len(rewritten) == 2, rewritten  # the Service chain, and the removed endpoint's chain
    assert "svc0" not in proxy.last_payload and "svc2" not in proxy.last_payload
    assert_exact(
        proxy.reachability(services[1], "http", CLIENT),
        expected(services[1], [endpoint(12), endpoint(13)]),
    )


def test_deleting_a_service_removes_its_chains(proxy: KernelRuleProxy) -> None:
    svc = service(affinity=True)
    program(proxy, svc, [endpoint(2), endpoint(3)])
    chains = set(proxy.rendered["web"].chains)
    proxy.on_service_delete(svc)
    proxy.sync()
    remaining = {chain for _, chain in rule_handles(proxy.netns)}
    assert not chains & remaining
    assert "affinity-" not in in_netns(proxy.netns, "nft", "list", "ruleset")
    reach = proxy.reachability(svc, "http", CLIENT)
    assert not reach.rejects and not reach.probabilities


def test_stop_leaves_nothing(netns: str, start_proxy: ProxyFactory) -> None:
    def state() -> tuple[str, str, str]:
        ratelimit = in_netns(netns, "sysctl", "-n", "net.ipv4.icmp_ratelimit")
        return in_netns(netns, "nft", "list", "ruleset"), in_netns(netns, "ip", "route"), ratelimit

    pristine = state()
    for cls in PROXIES:
        proxy = start_proxy(cls)
        assert state()[1:] == pristine[1:]  # routes and sysctls are the node's, not the proxy's
        program(proxy, service(affinity=True), [endpoint(2), endpoint(3)])
        program(proxy, service("empty", "10.96.0.11"), [])
        proxy.stop()
        proxy.stop()
        assert state() == pristine, cls.name


def test_an_existing_route_to_the_service_range_is_kept(
    netns: str, start_proxy: ProxyFactory
) -> None:
    in_netns(netns, "ip", "route", "add", "10.96.0.0/12", "dev", "lo")
    start_proxy(IptablesProxy).stop()
    assert in_netns(netns, "ip", "route").split() == ["10.96.0.0/12", "dev", "lo", "scope", "link"]


def test_the_first_sync_removes_leftovers_of_a_crashed_run(start_proxy: ProxyFactory) -> None:
    for cls in PROXIES:  # adopted at start, as kube-proxy does, then replaced by the first sync
        crashed = start_proxy(cls)
        program(crashed, service(), [endpoint(2)])
        assert crashed.node is not None
        fresh = cls()
        fresh.start(crashed.node)
        try:
            fresh.sync()
            reach = fresh.reachability(service(), "http", CLIENT)
            assert not reach.probabilities and not reach.rejects, (cls.name, reach)
        finally:
            fresh.stop()


def test_removed_endpoint_flows_are_cleared_from_conntrack(proxy: KernelRuleProxy) -> None:
    svc = service()
    program(proxy, svc, [endpoint(2), endpoint(3)])
    for source_port, pod in ((40001, 2), (40002, 3)):
        in_netns(
            proxy.netns, "conntrack", "-I", "-p", "tcp", "-s", CLIENT, "-d", svc.cluster_ip,
            "--sport", str(source_port), "--dport", "80", "-r", f"10.244.0.{pod}", "-q", CLIENT,
            "--reply-port-src", "8080", "--reply-port-dst", str(source_port),
            "--state", "ESTABLISHED", "-u", "ASSURED", "-t", "120",
        )  # fmt: skip
    replace_endpoints(proxy, svc, [endpoint(3)])
    listed = in_netns(proxy.netns, "conntrack", "-L", "-p", "tcp")
    assert "src=10.244.0.2" not in listed
    assert "src=10.244.0.3" in listed


def test_errors_are_one_line(tmp_path: Path) -> None:
    proxy = IptablesProxy()
    with pytest.raises(EnvironmentProblem) as error:
        proxy.start(NodeContext("node-1", "hkt-no-such-namespace", "hkt0", tmp_path))
    assert "\n" not in str(error.value) and "does not exist" in str(error.value)


def test_kernel_refusal_is_one_line(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(NftablesProxy)
    with pytest.raises(EnvironmentProblem) as error:
        proxy.apply("add rule ip no-such-table no-such-chain accept\n")
    message = str(error.value)
    assert "\n" not in message and "nft" in message and "No such file" in message


def test_service_updates_move_the_vip_and_the_affinity(proxy: KernelRuleProxy) -> None:
    old = service(affinity=True, timeout_s=60)
    endpoints = [endpoint(2), endpoint(3)]
    program(proxy, old, endpoints)
    for new in (
        service(affinity=True, timeout_s=120),  # nftables: the affinity sets are declared anew
        service("web", "10.96.0.99", affinity=True, timeout_s=120),  # a new VIP
        service("web", "10.96.0.99"),  # affinity off
    ):
        proxy.on_service_update(old, new)
        proxy.sync()
        assert_exact(proxy.reachability(new, "http", CLIENT), expected(new, endpoints))
        old = new
    gone = proxy.reachability(service(), "http", CLIENT)
    assert not gone.rejects and not gone.probabilities
    listed = in_netns(proxy.netns, "iptables-save") + in_netns(
        proxy.netns, "nft", "list", "ruleset"
    )
    assert "recent" not in listed and "affinity-" not in listed and "10.96.0.10" not in listed
