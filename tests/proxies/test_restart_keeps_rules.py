"""The kernel proxies keep their rules across a restart, as kube-proxy does (`RuleKeepingProxy`):
stopped for a restart they remove nothing, a new instance adopts what they left without
changing what packets see, and its first sync replaces it in one transaction, keeping the
affinity memory (xt_recent lists, nft affinity sets) of the endpoints that stay. `stop()` after
a restart still leaves the namespace as it found it. Read back from the kernel at every point
between the two instances, so a moment without rules would show."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.model.objects import Backend
from harness.proxies.base import NodeContext, keeps_rules_on_restart, stop_for_restart
from harness.proxies.bounded import SlowSyncIptables, SlowSyncNftables, SlowSyncProxy
from harness.proxies.iptables import IptablesProxy, endpoint_chain
from harness.proxies.mutants import ClearsRulesOnRestartProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.nft_ruleset import parse_nft_json
from harness.proxies.userspace import UserspaceProxy

from . import kernel_cases as cases
from .conftest import ProxyFactory

pytestmark = pytest.mark.netns
PROXIES: list[type[KernelRuleProxy]] = [IptablesProxy, NftablesProxy]
STICKY = Backend("pod-3", "uid-3")
KEPT, GONE = cases.service(affinity=True), cases.service("gone", "10.96.0.11")
KEPT_ENDPOINTS = [cases.endpoint(n) for n in range(2, 5)]
LEFT_ADDRESSES = [f"10.244.0.{n}:8080" for n in range(2, 5)]  # unknown backends: "ip:port"


def remember(proxy: KernelRuleProxy, address: str) -> Callable[[], bool]:
    """Put `address` into the affinity memory of the STICKY endpoint, as its first connection
    would have; returns a probe that says whether the kernel still remembers it."""
    netns = proxy.netns
    if isinstance(proxy, IptablesProxy):
        (plan,) = proxy.plans[KEPT.name]
        path = f"/proc/net/xt_recent/{endpoint_chain(plan, '10.244.0.3', 8080)}"
        cases.in_netns(netns, "sh", "-c", f"echo +{address} > {path}")
        return lambda: f"src={address} " in cases.in_netns(netns, "cat", path)
    assert isinstance(proxy, NftablesProxy)
    (name,) = [s for s in proxy.rendered[KEPT.name].sets if "__10.244.0.3/" in s]
    table = proxy.table
    cases.in_netns(
        netns, "nft", "-f", "-", stdin=f"add element ip {table} {name} {{ {address} }}\n"
    )

    def still() -> bool:
        listed = parse_nft_json(cases.in_netns(netns, "nft", "-j", "list", "table", "ip", table))
        found = listed[("ip", table)].sets.get(name)
        return found is not None and address in str(found.elements)

    return still


def restarted(old: KernelRuleProxy) -> KernelRuleProxy:
    """`old` stopped for a restart and a new instance of its class started on its node and
    handed KEPT, checked to serve exactly what `old` programmed at every point in between."""
    assert old.node is not None
    node, wanted = old.node, cases.expected(KEPT, KEPT_ENDPOINTS)
    cases.assert_exact(old.reachability(KEPT, "http", cases.CLIENT), wanted)
    stop_for_restart(old)
    new = type(old)()
    new.start(node)
    new.on_service_add(KEPT)  # handed, not yet synced (GONE was deleted while no proxy ran)
    new.on_endpoint_slice_add(cases.slice_of(KEPT, KEPT_ENDPOINTS))
    cases.assert_exact(
        new.reachability(KEPT, "http", cases.CLIENT), wanted
    )  # adopted, not yet synced
    assert new.reachability(GONE, "http", cases.CLIENT).rejects
    return new


@pytest.mark.parametrize("cls", PROXIES, ids=lambda cls: cls.name)
def test_a_restart_keeps_the_rules_and_the_first_sync_replaces_them(
    cls: type[KernelRuleProxy], start_proxy: ProxyFactory
) -> None:
    old = start_proxy(cls)
    cases.program(old, KEPT, KEPT_ENDPOINTS)
    cases.program(old, GONE, [])
    remembered = remember(old, cases.CLIENT)
    new = restarted(old)
    try:
        before_sync = cases.rule_handles(new.netns)
        new.sync()
        cases.assert_exact(
            new.reachability(KEPT, "http", cases.CLIENT), cases.expected(KEPT, KEPT_ENDPOINTS)
        )
        gone = new.reachability(GONE, "http", cases.CLIENT)
        assert not gone.rejects and not gone.probabilities, gone
        assert remembered(), "the affinity memory did not survive the restart"
        sticky = new.reachability(KEPT, "http", cases.CLIENT, affinity_backend=STICKY)
        assert sticky.probabilities == {STICKY: 1.0}
        rewritten = {
            c for c in set(before_sync) if before_sync[c] != cases.rule_handles(new.netns).get(c)
        }
        assert rewritten, "the first sync replaced nothing"
        assert new.last_payload.count("\n") > 10  # one transaction held the whole replacement
    finally:
        new.stop()


@pytest.mark.parametrize("cls", PROXIES, ids=lambda cls: cls.name)
def test_stop_after_a_restart_leaves_nothing(
    cls: type[KernelRuleProxy], netns: str, start_proxy: ProxyFactory
) -> None:
    pristine = cases.in_netns(netns, "nft", "list", "ruleset")
    old = start_proxy(cls)
    cases.program(old, KEPT, KEPT_ENDPOINTS)
    cases.program(old, GONE, [])
    new = restarted(old)
    new.sync()
    new.stop()
    old.stop()  # stopped for the restart already: nothing more to do
    assert cases.in_netns(netns, "nft", "list", "ruleset") == pristine


def test_the_old_behaviour_is_a_disclosed_mutant(start_proxy: ProxyFactory) -> None:
    old = start_proxy(ClearsRulesOnRestartProxy)
    cases.program(old, KEPT, KEPT_ENDPOINTS)
    assert old.node is not None
    node = old.node
    assert keeps_rules_on_restart(old)  # it claims to keep them ...
    stop_for_restart(old)
    new = ClearsRulesOnRestartProxy()
    new.start(node)
    try:  # ... and leaves a moment without them
        reach = new.reachability(KEPT, "http", cases.CLIENT)
        assert not reach.probabilities and not reach.rejects, reach
    finally:
        new.stop()


def synced(proxy: SlowSyncProxy) -> None:
    """Wait (at most 10 s) until the slow-sync proxy reports every change programmed."""
    deadline = time.monotonic() + 10.0
    while not proxy.sync_state().synced:
        assert time.monotonic() < deadline, proxy.sync_state()
        time.sleep(0.01)


@pytest.mark.parametrize("cls", [SlowSyncIptables, SlowSyncNftables], ids=lambda c: c.name)
def test_the_slow_sync_variants_keep_their_rules_too(
    cls: type[SlowSyncProxy], netns: str, tmp_path: Path
) -> None:
    node = NodeContext("node-1", netns, "hkt0", tmp_path)
    instances = [cls(), cls()]
    try:
        wanted = cases.expected(KEPT, KEPT_ENDPOINTS)
        for proxy in instances:
            proxy.start(node)
            proxy.on_service_add(KEPT)
            proxy.on_endpoint_slice_add(cases.slice_of(KEPT, KEPT_ENDPOINTS))
            if proxy is instances[1]:  # what the first one left serves until the first run
                left = proxy.reachability(
                    KEPT, "http", cases.CLIENT
                )  # slices not yet handed inside
                assert sorted(b.uid for b in left.probabilities) == LEFT_ADDRESSES, left
            proxy.sync()
            synced(proxy)
            cases.assert_exact(proxy.reachability(KEPT, "http", cases.CLIENT), wanted)
            if proxy is instances[0]:
                stop_for_restart(proxy)
    finally:
        for proxy in instances:
            proxy.stop()
    assert "KUBE-" not in cases.in_netns(netns, "iptables-save")
    assert "kube-proxy" not in cases.in_netns(netns, "nft", "list", "ruleset")


def test_who_keeps_rules_on_restart() -> None:
    for kept in (IptablesProxy(), NftablesProxy(), SlowSyncIptables(), SlowSyncNftables()):
        assert keeps_rules_on_restart(kept), kept.name
    assert not keeps_rules_on_restart(UserspaceProxy())
    assert not keeps_rules_on_restart(None)
