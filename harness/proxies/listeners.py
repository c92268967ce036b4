"""What a config-driven balancer listens on: `Listener`s planned from Services and slices. Pure.

One listener per TCP Service port that has usable endpoints, chosen as kube-proxy's
`CategorizeEndpoints` chooses them (`harness.model.endpoints.usable_destinations`). A Service port
without usable endpoints gets no listener: the balancer then REJECTs, which it does by not
listening on a VIP the node treats as local (see `harness.proxies.reloading`). It REJECTs even
where kube-proxy DROPs (endpoints on other nodes only, `has_any_endpoints`): these balancers cannot
drop a SYN, a deviation `reject-when-empty` reports.

A NodePort or LoadBalancer Service's port also gets a listener on its node port at every address
of the node (`NODE_PORT_ADDRESS`, kube-proxy's default `--nodeport-addresses`: all of the node's
own addresses), sending where a connection from outside the cluster arriving at this node may go
(`harness.model.endpoints.external_destinations`); none when nothing may be reached there, so
the node's kernel refuses it, as kube-proxy's KUBE-EXTERNAL-SERVICES REJECT does for a Service
without endpoints. These balancers relay, so a pod sees the node's address, never the client's:
they cannot keep externalTrafficPolicy Local's promise of the client's source address, and do
not declare that feature (`harness.proxies.base.RELAYING_FEATURES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.model.endpoints import external_destinations, usable_destinations
from harness.model.objects import Affinity, Destination, EndpointSlice, Service

NODE_PORT_ADDRESS = "0.0.0.0"
"""Where a node port listens: every address of the node (the proxy runs in the node's own
namespace, never in the root one)."""


@dataclass(frozen=True)
class Listener:
    """One Service port the balancer listens on, and where its new connections may go.

    `key` is unique among listeners and safe as a config identifier; `affinity_timeout_s` is the
    ClientIP affinity timeout, None for sessionAffinity None.
    """

    key: str
    address: str
    port: int
    destinations: tuple[Destination, ...]
    affinity_timeout_s: int | None = None


def identifier(*parts: str) -> str:
    """`parts` joined by `_`, with anything but letters, digits and `_` replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))


def plan_listeners(
    services: Mapping[str, Service],
    slices_of: Callable[[str], Sequence[EndpointSlice]],
    node: str,
) -> tuple[Listener, ...]:
    """The listeners for `services`, in a stable order. Pure.

    Only TCP ports are planned (both balancers here are TCP-only in this harness); a port with no
    usable destination gets no listener, so its VIP:port refuses connections. A port's node
    port (NodePort and LoadBalancer Services) gets one more, on `NODE_PORT_ADDRESS`, to the
    destinations of traffic from outside arriving at `node`.
    """
    listeners = []
    for service in sorted(services.values(), key=lambda s: (s.namespace, s.name)):
        slices = slices_of(service.name)
        sticky = service.session_affinity == Affinity.CLIENT_IP
        timeout_s = service.affinity_timeout_s if sticky else None
        for index, port in enumerate(service.ports):
            if port.protocol != "TCP":
                continue
            key = identifier("hk", service.namespace, service.name, str(index))
            inside = usable_destinations(slices, service, port.name, node)
            if inside:
                listeners.append(
                    Listener(key, service.cluster_ip, port.port, tuple(inside), timeout_s)
                )
            if not service.type.external or port.node_port is None:
                continue
            outside = external_destinations(slices, service, port.name, node)
            if outside:
                listeners.append(
                    Listener(
                        f"{key}_np", NODE_PORT_ADDRESS, port.node_port, tuple(outside), timeout_s
                    )
                )
    return tuple(listeners)
