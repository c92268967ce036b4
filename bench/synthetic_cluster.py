"""Services and EndpointSlices that no pod backs, handed to a proxy through its contract: the
bulk of a cluster at a scale the local cluster cannot realise (10,000 pod namespaces is too many
for one machine), for bench/test_programming_cost.py.

The bulk's VIPs come from 10.1.0.0/16, outside the Service range (10.96.0.0/16) the model
allocates real Services from, and its endpoint addresses from 10.64.0.0/12, outside the pod
range (10.244.0.0/16), so no real pod or Service ever shares an address with one. No packet is
ever sent to them: they only make the proxy's rules as large as a cluster of that size would.
The VIPs sort before every real one, so in the iptables proxy's KUBE-SERVICES chain (rules in
text order, `harness.proxies.rules.rendering.container_entries`) a real Service's rule comes
after every bulk Service's: a new connection to it walks them all, the worst case of a linear
chain (nftables looks the VIP up in a map).

Pure except `bulk_controller`'s controllers, which only call the proxy's handlers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from harness.local.controller import EndpointController
from harness.model.objects import PROXY_NODE, Endpoint, EndpointPort, EndpointSlice, Service
from harness.model.state import ClusterState

BULK_VIPS = ipaddress.IPv4Network("10.1.0.0/16")
BULK_ENDPOINTS = ipaddress.IPv4Network("10.64.0.0/12")
PORT = EndpointPort("http", 8080)


@dataclass(frozen=True)
class Bulk:
    """`endpoints` endpoints spread as evenly as they go over `services` Services."""

    services: tuple[Service, ...]
    slices: tuple[EndpointSlice, ...]

    @property
    def endpoint_count(self) -> int:
        return sum(len(s.endpoints) for s in self.slices)


def bulk(endpoints: int, services: int) -> Bulk:
    """The bulk of a cluster: Services `bulk-N`, each with one slice of ready endpoints on the
    proxy's node. ValueError when the ranges cannot hold it (more Services than endpoints, or
    more than the address ranges hold)."""
    if not 1 <= services <= endpoints:
        raise ValueError(f"{endpoints} endpoints cannot fill {services} Services (1 or more each)")
    if services >= BULK_VIPS.num_addresses - 2 or endpoints >= BULK_ENDPOINTS.num_addresses - 2:
        raise ValueError(f"{services} Services / {endpoints} endpoints exceed the bulk's ranges")
    made: list[Service] = []
    slices: list[EndpointSlice] = []
    first = 0
    for number in range(services):
        count = endpoints // services + (1 if number < endpoints % services else 0)
        name = f"bulk-{number}"
        vip = str(BULK_VIPS.network_address + 1 + number)
        made.append(Service(name, vip, (("app", name),)))
        members = tuple(
            Endpoint(str(BULK_ENDPOINTS.network_address + 2 + index), f"{name}-{index - first}",
                     f"{name}-u{index - first}", PROXY_NODE, "zone-a", ready=True, serving=True,
                     terminating=False)
            for index in range(first, first + count)
        )  # fmt: skip
        slices.append(EndpointSlice(name, (PORT,), members, name=f"{name}-0"))
        first += count
    return Bulk(tuple(made), tuple(slices))


def bulk_controller(cluster: Bulk) -> type[EndpointController]:
    """An endpoint controller (`LocalTarget`'s plug-in point) that hands its proxy the bulk's
    Services and slices before its first update, so every fresh proxy instance (a target's
    first, or one started by `RestartProxy`) programs them with the real cluster in its first
    sync. It never changes, deletes or re-hands them afterwards, and calls no `sync()`."""

    class BulkController(EndpointController):
        handed = False

        def update(self, state: ClusterState) -> bool:
            first = not self.handed
            if first:
                for service in cluster.services:
                    self.proxy.on_service_add(service)
                for endpoint_slice in cluster.slices:
                    self.proxy.on_endpoint_slice_add(endpoint_slice)
                self.handed = True
            changed = super().update(state)
            return changed or (first and bool(cluster.services))

    return BulkController
