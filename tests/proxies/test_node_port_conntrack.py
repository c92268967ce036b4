"""Conntrack entries of UDP node ports (kubernetes#59368, fixed by PR #71573; `*:NodePort` in
`pkg/proxy/conntrack/cleanup.go: CleanStaleEntries`): a kernel proxy deletes the entries of a
flow from outside DNATed to an endpoint it no longer uses, whatever node address the flow was
sent to, and every UDP entry of a node port when that port gains its first endpoints; it never
touches an entry whose endpoint is still used; a start's reconcile does the same from the table;
`mutant-iptables-keeps-nodeport-udp-conntrack` (by VIP only, as before the fix) leaves them.

The pure parts are checked on flows; the kernel part on entries inserted with `conntrack -I` in a
bare namespace (an entry's NAT is its reply tuple, so no packet needs to flow).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.model.objects import (
    Backend,
    Destination,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Service,
    ServiceType,
)
from harness.proxies.iptables import IptablesProxy
from harness.proxies.mutants import KeepsNodePortUdpConntrackProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.conntrack import (
    delete_command,
    flow_of,
    held_among,
    node_ports_gained,
    stale_flows,
)
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.plan import ANY, Flow, PortPlan

from .conftest import ProxyFactory
from .kernel_cases import endpoint, in_netns, service

pytestmark = pytest.mark.netns
NODE_IP = "10.240.0.1"
OUTSIDE = "10.240.0.200"
NODE_PORT = 30080
SERVICE_CIDR = "10.96.0.0/16"
UDP_PORT = EndpointPort("http", 8080, "UDP")


def plan(external: tuple[int, ...], node_port: int | None = NODE_PORT) -> PortPlan:
    """A UDP plan of VIP 10.96.0.10:80 whose node port goes to 10.244.0.N:8080 for N in
    `external`."""
    destinations = tuple(
        Destination(Backend(f"pod-{n}", f"uid-{n}"), f"10.244.0.{n}", 8080) for n in external
    )
    return PortPlan(
        "default", "web", "http", "udp", "10.96.0.10", 80, False, None, destinations,
        node_port=node_port, external=destinations if node_port is not None else (),
    )  # fmt: skip


def test_a_node_port_flow_is_deleted_at_every_node_address() -> None:
    flow = Flow("udp", ANY, NODE_PORT, "10.244.0.2", 8080)
    assert delete_command(flow) == (
        f"-D -p udp --orig-port-dst {NODE_PORT} --reply-src 10.244.0.2 --reply-port-src 8080"
    )
    whole = Flow("udp", ANY, NODE_PORT, ANY, 0)
    assert delete_command(whole) == f"-D -p udp --orig-port-dst {NODE_PORT}"
    assert plan((2, 3)).flows >= {flow, replace(flow, endpoint_ip="10.244.0.3")}
    listed = {Flow("udp", NODE_IP, NODE_PORT, "10.244.0.2", 8080)}
    assert held_among([flow, whole, replace(flow, endpoint_ip="10.244.0.9")], listed) == {
        flow,
        whole,
    }


def test_a_node_port_gaining_its_first_endpoints_is_cleared_whole() -> None:
    whole = {Flow("udp", ANY, NODE_PORT, ANY, 0)}
    assert node_ports_gained([], [plan((2,))]) == whole  # a new node port
    assert node_ports_gained([plan(())], [plan((2,))]) == whole  # rejected before
    assert node_ports_gained([plan((2,))], [plan((2, 3))]) == set()  # had some
    assert node_ports_gained([], [plan(())]) == set()  # still none
    assert node_ports_gained([], [replace(plan((2,)), protocol="tcp")]) == set()  # UDP only


def test_a_start_reconciles_node_port_entries_by_port() -> None:
    kept = Flow("udp", NODE_IP, NODE_PORT, "10.244.0.2", 8080)
    gone = Flow("udp", "10.240.0.2", NODE_PORT, "10.244.0.7", 8080)  # at another node address
    untranslated = Flow("udp", NODE_IP, NODE_PORT, NODE_IP, NODE_PORT)
    tcp = Flow("tcp", NODE_IP, NODE_PORT, "10.244.0.7", 8080)
    # a VIP port with the node port's number is judged as the VIP's, not the node port's
    vip_same_number = Flow("udp", "10.96.0.20", NODE_PORT, "10.244.0.5", 8080)
    held = [kept, gone, untranslated, tcp, vip_same_number]
    service_port = replace(plan((5,), node_port=None), cluster_ip="10.96.0.20", port=NODE_PORT)
    assert stale_flows(held, [plan((2,)), service_port], SERVICE_CIDR) == {gone, untranslated}


def nodeport_udp_service() -> Service:
    svc = service()
    ports = tuple(replace(p, protocol="UDP", node_port=NODE_PORT) for p in svc.ports)
    return replace(svc, ports=ports, type=ServiceType.NODE_PORT)


def udp_slice(endpoints: list[Endpoint]) -> EndpointSlice:
    return EndpointSlice("web", (UDP_PORT,), tuple(endpoints), name="web-0")


def insert(netns: str, source_port: int, reply_source: str, reply_port: int) -> None:
    """A UDP entry from OUTSIDE to the node's address on the node port, its reply from
    `reply_source:reply_port` (a DNATed flow; the node itself for an untranslated one)."""
    in_netns(
        netns, "conntrack", "-I", "-p", "udp", "-s", OUTSIDE, "-d", NODE_IP,
        "--sport", str(source_port), "--dport", str(NODE_PORT), "-r", reply_source,
        "-q", OUTSIDE, "--reply-port-src", str(reply_port), "--reply-port-dst",
        str(source_port), "-t", "120", "-u", "SEEN_REPLY",
    )  # fmt: skip


def held(netns: str) -> set[Flow]:
    listing = in_netns(netns, "conntrack", "-L", "-p", "udp")
    return {flow for line in listing.splitlines() if (flow := flow_of(line)) is not None}


def to(endpoint_number: int, port: int = 8080) -> Flow:
    return Flow("udp", NODE_IP, NODE_PORT, f"10.244.0.{endpoint_number}", port)


UNTRANSLATED = Flow("udp", NODE_IP, NODE_PORT, NODE_IP, NODE_PORT)


@pytest.mark.parametrize(
    ("cls", "clears"),
    [(IptablesProxy, True), (NftablesProxy, True), (KeepsNodePortUdpConntrackProxy, False)],
    ids=lambda c: getattr(c, "name", str(c)),
)
def test_node_port_entries_follow_their_endpoints(
    start_proxy: ProxyFactory, cls: type[KernelRuleProxy], clears: bool
) -> None:
    proxy = start_proxy(cls)
    svc = nodeport_udp_service()
    proxy.on_service_add(svc)
    proxy.on_endpoint_slice_add(udp_slice([]))
    proxy.sync()  # REJECTed: no endpoints
    insert(proxy.netns, 12001, NODE_IP, NODE_PORT)  # made while nothing translated it
    proxy.on_endpoint_slice_update(udp_slice([]), udp_slice([endpoint(2), endpoint(3)]))
    proxy.sync()  # the first endpoints: the untranslated entry goes (ClearEntriesForPort)
    assert (UNTRANSLATED not in held(proxy.netns)) == clears
    insert(proxy.netns, 12002, "10.244.0.2", 8080)
    insert(proxy.netns, 12003, "10.244.0.3", 8080)
    proxy.on_endpoint_slice_update(udp_slice([endpoint(2), endpoint(3)]), udp_slice([endpoint(3)]))
    proxy.sync()  # endpoint 2 removed: its node-port entry goes (ClearEntriesForPortNAT)
    now = held(proxy.netns)
    assert to(3) in now  # still used: never touched
    assert (to(2) not in now) == clears


@pytest.mark.parametrize("cls", [IptablesProxy, NftablesProxy], ids=lambda c: c.name)
def test_a_start_deletes_node_port_entries_of_endpoints_removed_while_down(
    start_proxy: ProxyFactory, cls: type[KernelRuleProxy]
) -> None:
    first = start_proxy(cls)
    svc = nodeport_udp_service()
    first.on_service_add(svc)
    first.on_endpoint_slice_add(udp_slice([endpoint(2), endpoint(3)]))
    first.sync()
    insert(first.netns, 12002, "10.244.0.2", 8080)
    insert(first.netns, 12003, "10.244.0.3", 8080)
    first.stop_for_restart()
    second = start_proxy(cls)  # endpoint 2 went while no instance ran
    second.on_service_add(svc)
    second.on_endpoint_slice_add(udp_slice([endpoint(3)]))
    second.sync()
    now = held(second.netns)
    assert to(3) in now and to(2) not in now
