"""What a config-driven balancer listens on: `Listener`s planned from Services and slices. Pure.

One listener per TCP Service port that has usable endpoints, chosen as kube-proxy's
`CategorizeEndpoints` chooses them (`harness.model.endpoints.usable_destinations`). A Service port
without usable endpoints gets no listener: the balancer then REJECTs, which it does by not
listening on a VIP the node treats as local (see `harness.proxies.reloading`). It REJECTs even
where kube-proxy DROPs (endpoints on other nodes only, `has_any_endpoints`): these balancers cannot
drop a SYN, a deviation `reject-when-empty` reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from harness.model.endpoints import usable_destinations
from harness.model.objects import Affinity, Destination, EndpointSlice, Service


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
    usable destination gets no listener, so its VIP:port refuses connections.
    """
    listeners = []
    for service in sorted(services.values(), key=lambda s: (s.namespace, s.name)):
        slices = slices_of(service.name)
        for index, port in enumerate(service.ports):
            if port.protocol != "TCP":
                continue
            destinations = usable_destinations(slices, service, port.name, node)
            if not destinations:
                continue
            sticky = service.session_affinity == Affinity.CLIENT_IP
            listeners.append(
                Listener(
                    key=identifier("hk", service.namespace, service.name, str(index)),
                    address=service.cluster_ip,
                    port=port.port,
                    destinations=tuple(destinations),
                    affinity_timeout_s=service.affinity_timeout_s if sticky else None,
                )
            )
    return tuple(listeners)
