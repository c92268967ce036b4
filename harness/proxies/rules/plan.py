"""What a kernel-rule proxy programs for one Service port: the plan both layouts render.

kube-proxy computes, per ServicePort, the endpoints new connections may use
(`pkg/proxy/topology.go: CategorizeEndpoints`) and then writes them in its own syntax
(`pkg/proxy/iptables/proxier.go`, `pkg/proxy/nftables/proxier.go: syncProxyRules`). The first half
is the same for both proxies and lives here; each proxy only renders a `PortPlan`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.model.objects import Affinity, Destination, Service, TrafficPolicy

NO_CLUSTER_IP = ("", "None")  # headless Services get no rules (kube-proxy skips them)
ANY = ""
"""A `Flow` field that matches every value (`harness.proxies.rules.conntrack`): a node-port
flow's original destination (any of the node's addresses), or a whole port's reply source."""


@dataclass(frozen=True)
class PortPlan:
    """One Service port as programmed: its VIP, policy, affinity and endpoints, in order.

    `destinations` are de-duplicated by address and port (kube-proxy keys endpoints by
    "ip:port", so two entries for one address would share a chain). `affinity_timeout_s` is None
    without ClientIP affinity. `local_policy` is internalTrafficPolicy=Local (KEP-2086). Without
    destinations, `drops` says new connections are dropped (the Service has endpoints, none
    usable here: kube-proxy's "has no local endpoints" DROP) rather than rejected.

    `node_port` (NodePort and LoadBalancer Services only, else None) is reached on the node's own
    addresses; traffic arriving there goes to `external` (externalTrafficPolicy Local,
    `external_local`: this node's endpoints only; Cluster: any usable endpoint, whatever
    internalTrafficPolicy says), and without any it is dropped when `external_drops` (endpoints
    elsewhere only) and rejected otherwise (`harness.model.endpoints.expect_external`).

    `load_balancer_ips` (a LoadBalancer's ingress IPs, `status.loadBalancer.ingress[].ip`; only
    with a `node_port`) are reached on `port`, through the forwarding path, and go exactly where
    the node port goes (kube-proxy sends both to the Service's `KUBE-EXT-<hash>` / `external-`
    chain, and drops or rejects both alike without external endpoints).

    `external_ips` (`spec.externalIPs`, a Service of any type) are reached on `port` through the
    forwarding path and go where `external` says, as ingress IPs do (kube-proxy's "Capture
    externalIPs"); a ClusterIP Service with externalIPs has `external` and `external_drops`
    without a `node_port`.
    """

    namespace: str
    service: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    local_policy: bool
    affinity_timeout_s: int | None
    destinations: tuple[Destination, ...]
    drops: bool = False
    node_port: int | None = None
    external_local: bool = False
    external: tuple[Destination, ...] = ()
    external_drops: bool = False
    load_balancer_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """`ServicePortName.String()`: "namespace/name:port" ("namespace/name" without a name)."""
        base = f"{self.namespace}/{self.service}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def flows(self) -> frozenset[Flow]:
        """The (VIP, port) to (endpoint, port) translations this plan lets connections take, and
        its node port's (`node_port_flows`)."""
        return (
            frozenset(
                Flow(self.protocol, self.cluster_ip, self.port, d.address, d.port)
                for d in self.destinations
            )
            | self.node_port_flows
        )

    @property
    def node_port_flows(self) -> frozenset[Flow]:
        """The (any node address, node port) to (endpoint, port) translations connections from
        outside may take (`external`; original destination `ANY`, since the entry's is whichever
        node address was used): none without a node port."""
        if self.node_port is None:
            return frozenset()
        return frozenset(
            Flow(self.protocol, ANY, self.node_port, d.address, d.port) for d in self.external
        )


@dataclass(frozen=True, order=True)
class Flow:
    """A DNAT a connection may have been given: what conntrack cleanup looks for."""

    protocol: str
    cluster_ip: str
    port: int
    endpoint_ip: str
    endpoint_port: int


def plan_ports(
    service: Service,
    destinations_of: dict[str, list[Destination]],
    affinity: bool,
    dropped: Collection[str] = (),
    external_of: Mapping[str, list[Destination]] | None = None,
    external_local: bool = False,
    load_balancer_ips: tuple[str, ...] = (),
    external_ips: tuple[str, ...] = (),
) -> tuple[PortPlan, ...]:
    """The plans of every port of `service`, given each port's usable destinations.

    `affinity` says whether ClientIP affinity is programmed (a mutant may ignore it); `dropped`
    names the ports whose new connections are dropped when they have no destinations (from
    inside or, at a node port, from outside). `external_of` gives each port's destinations for
    traffic at its node port (None: the Service's node ports are not programmed);
    `external_local` whether it is programmed as externalTrafficPolicy Local;
    `load_balancer_ips` the ingress IPs to program for every port that has a node port;
    `external_ips` the externalIPs to program for every port (with `external_of`).
    """
    if service.cluster_ip in NO_CLUSTER_IP:
        return ()
    plans = []
    for port in service.ports:
        plans.append(
            PortPlan(
                namespace=service.namespace,
                service=service.name,
                port_name=port.name,
                protocol=port.protocol.lower(),
                cluster_ip=service.cluster_ip,
                port=port.port,
                local_policy=service.internal_traffic_policy == TrafficPolicy.LOCAL,
                affinity_timeout_s=(
                    service.affinity_timeout_s
                    if affinity and service.session_affinity == Affinity.CLIENT_IP
                    else None
                ),
                destinations=unique_by_address(destinations_of.get(port.name, [])),
                drops=port.name in dropped and not destinations_of.get(port.name),
                **{
                    **_node_port_fields(service, port.name, port.node_port, external_of, dropped),
                    **_external_ip_fields(port.name, external_of, dropped, external_ips),
                },
                external_local=external_local,
                load_balancer_ips=_ingress_ips(
                    service, port.node_port, external_of, load_balancer_ips
                ),
            )
        )
    return tuple(plans)


def _node_port_fields(
    service: Service,
    port_name: str,
    node_port: int | None,
    external_of: Mapping[str, list[Destination]] | None,
    dropped: Collection[str],
) -> dict[str, Any]:
    """A PortPlan's node-port fields: none for a ClusterIP Service or without `external_of`."""
    if external_of is None or node_port is None or not service.type.external:
        return {}
    return {"node_port": node_port, **_external_fields(port_name, external_of, dropped)}


def _external_ip_fields(
    port_name: str,
    external_of: Mapping[str, list[Destination]] | None,
    dropped: Collection[str],
    external_ips: tuple[str, ...],
) -> dict[str, Any]:
    """A PortPlan's externalIP fields: none without `external_ips` or `external_of`; else the
    addresses, and the same `external` and `external_drops` as `_node_port_fields` gives a
    port with a node port (the one KUBE-EXT chain serves both)."""
    if external_of is None or not external_ips:
        return {}
    return {"external_ips": external_ips, **_external_fields(port_name, external_of, dropped)}


def _external_fields(
    port_name: str, external_of: Mapping[str, list[Destination]], dropped: Collection[str]
) -> dict[str, Any]:
    """A PortPlan's `external` (the port's destinations for traffic from outside) and
    `external_drops` (dropped, not rejected, without any)."""
    external = unique_by_address(external_of.get(port_name, []))
    return {"external": external, "external_drops": port_name in dropped and not external}


def _ingress_ips(
    service: Service,
    node_port: int | None,
    external_of: Mapping[str, list[Destination]] | None,
    load_balancer_ips: tuple[str, ...],
) -> tuple[str, ...]:
    """A PortPlan's ingress IPs: `load_balancer_ips` where its node-port fields are programmed
    (`_node_port_fields`), none elsewhere."""
    if external_of is None or node_port is None or not service.type.external:
        return ()
    return load_balancer_ips


def unique_by_address(destinations: Iterable[Destination]) -> tuple[Destination, ...]:
    """Keep the first destination for each address:port, in order."""
    seen: dict[tuple[str, int], Destination] = {}
    for destination in destinations:
        seen.setdefault((destination.address, destination.port), destination)
    return tuple(seen.values())


def flows_of(plans: Iterable[PortPlan]) -> frozenset[Flow]:
    """Every flow the plans allow."""
    return frozenset(flow for plan in plans for flow in plan.flows)


def name_hash(text: str, length: int) -> str:
    """The first `length` characters of base32(sha256(text)), as kube-proxy names its chains
    (`portProtoHash`, `servicePortEndpointChainName`, `hashAndTruncate`)."""
    digest = hashlib.sha256(text.encode()).digest()
    # base32 turns each 5 bytes into 8 characters, so the prefix needs only the first
    # ceil(length / 8) * 5 bytes encoded: the same characters for a fraction of the work (a
    # full sync names thousands of chains)
    return base64.b32encode(digest[: -(-length // 8) * 5]).decode()[:length]
