"""The cluster state the model evolves: pods, Services and model time.

`ClusterState` is immutable; every change returns a new state, so applying an event is a pure
function and a failing sequence can be replayed step by step. Addresses and UIDs are allocated
deterministically from the state alone, so the model and any target that adopts the model's
addresses (the local cluster) agree on every IP.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from harness.errors import InvalidEvent
from harness.model.objects import ALL_NODES, PROXY_NODE, Labels, Phase, Pod, Service

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
NODE_POD_PREFIX_LENGTH = 20
"""Each node's pod range is one /20 of POD_CIDR, in node order (a CNI's per-node podCIDR, as
kube-controller-manager's `--node-cidr-mask-size` allocates): node-1 10.244.0.0/20, node-2
10.244.16.0/20, ..., node-16 10.244.240.0/20; 4,086 pods each, more than MAX_PODS."""
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
LOAD_BALANCER_CIDR = ipaddress.IPv4Network("10.255.0.0/24")
"""Where the local cluster's load-balancer controller (the harness) takes ingress IPs from."""
EXTERNAL_IP_CIDR = ipaddress.IPv4Network("10.254.0.0/24")
"""Where Services' externalIPs come from (`Service.external_ips`, set by `set-external-ips`): a
range of its own, apart from pods (10.244/16), Services (10.96/16), ingress IPs (10.255.0/24),
the local cluster's fabric (10.240.0/24) and client links (10.250/16), which the local cluster's
external client hands to a chosen node as it does ingress IPs (`harness.local.cluster`)."""
NODE_PORT_RANGE = range(30000, 32768)
"""The API server's default --service-node-port-range, 30000-32767; healthCheckNodePorts come
from it too (pkg/registry/core/service/portallocator)."""
_FIRST_HOST_INDEX = 10  # keep .0-.9 of each range free for gateways and the node
MAX_PODS = 2048
MAX_SERVICES = 2048
"""The model holds at most this many pods (live or ended) and Services: far more than a search
makes (tens) or the local scale benchmark (1,000 pods, 200 Services), and few enough that a
sequence file asking for more is refused at once instead of taking minutes to allocate them."""


def node_pod_cidr(node: str) -> ipaddress.IPv4Network:
    """The pod range of `node` (one of `ALL_NODES`; ValueError otherwise)."""
    if node not in ALL_NODES:
        raise ValueError(f"unknown node {node!r}")
    subnets = POD_CIDR.subnets(new_prefix=NODE_POD_PREFIX_LENGTH)
    return next(itertools.islice(subnets, ALL_NODES.index(node), None))


def pod_address(index: int, node: str = PROXY_NODE) -> str:
    """The index-th pod address in `node`'s pod range (node-1's is the start of POD_CIDR)."""
    return str(node_pod_cidr(node).network_address + _FIRST_HOST_INDEX + index)


def service_address(index: int) -> str:
    """The index-th Service VIP in SERVICE_CIDR."""
    return str(SERVICE_CIDR.network_address + _FIRST_HOST_INDEX + index)


def external_ip_address(index: int) -> str:
    """The index-th externalIP of EXTERNAL_IP_CIDR."""
    return str(EXTERNAL_IP_CIDR.network_address + _FIRST_HOST_INDEX + index)


@lru_cache(maxsize=65536)
def _as_int(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


def _lowest_free(taken: Iterable[str], network: ipaddress.IPv4Network) -> int:
    """The lowest host index of `network` (counted from _FIRST_HOST_INDEX) not in `taken`."""
    base = int(network.network_address) + _FIRST_HOST_INDEX
    used = {_as_int(address) - base for address in taken}
    index = 0
    while index in used:
        index += 1
    return index


@dataclass(frozen=True)
class ClusterState:
    """Pods and Services at model time `now_s`.

    `uid_counter` numbers pod incarnations; `ordinals` counts the pods each scaled group has made,
    as a ReplicaSet never reuses a name.
    """

    pods: Mapping[str, Pod] = field(default_factory=lambda: MappingProxyType({}))
    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))
    now_s: float = 0.0
    uid_counter: int = 0
    ordinals: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    # -- lookups ------------------------------------------------------------------------------
    def pod(self, name: str) -> Pod:
        try:
            return self.pods[name]
        except KeyError:
            raise InvalidEvent(f"no pod named {name!r}") from None

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise InvalidEvent(f"no Service named {name!r}") from None

    def live_pods(self) -> list[Pod]:
        """Pods that hold an address: existing and not in a terminal phase."""
        return [p for p in self.pods.values() if not p.phase.terminal]

    def group_pods(self, group: str) -> list[Pod]:
        """The running, non-terminating pods a Scale of `group` owns, oldest first."""
        prefix = f"{group}-"
        owned = [
            p
            for p in self.pods.values()
            if p.name.startswith(prefix)
            and p.name[len(prefix) :].isdigit()
            and not p.terminating
            and not p.phase.terminal
        ]
        return sorted(owned, key=lambda p: int(p.name[len(prefix) :]))

    # -- allocation ---------------------------------------------------------------------------
    def next_pod_ip(self, avoid: Iterable[str] = (), node: str = PROXY_NODE) -> str:
        """The lowest address of `node`'s pod range no live pod holds: addresses are reused, as
        on real nodes, and a pod's address says its node, as a CNI's per-node podCIDR does."""
        taken = [p.ip for p in self.live_pods() if p.ip]
        return pod_address(_lowest_free([*taken, *avoid], node_pod_cidr(node)), node)

    def taken_node_ports(self) -> set[int]:
        """Every node port and healthCheckNodePort a Service holds."""
        taken = {p.node_port for s in self.services.values() for p in s.ports if p.node_port}
        return taken | {
            s.health_check_node_port for s in self.services.values() if s.health_check_node_port
        }

    def next_node_ports(self, count: int, avoid: Iterable[int] = ()) -> tuple[int, ...]:
        """The `count` lowest node ports no Service holds (nor `avoid`). The API server picks at
        random; the model picks the lowest so that a sequence always gets the same ports, and a
        target that can asks for exactly those. InvalidEvent when the range is spent."""
        taken = self.taken_node_ports() | set(avoid)
        free = [port for port in NODE_PORT_RANGE if port not in taken][:count]
        if len(free) < count:
            raise InvalidEvent("the node port range 30000-32767 is spent")
        return tuple(free)

    def next_load_balancer_ip(self) -> str:
        """The lowest ingress IP of LOAD_BALANCER_CIDR no Service holds."""
        taken = [s.load_balancer_ip for s in self.services.values() if s.load_balancer_ip]
        base = LOAD_BALANCER_CIDR.network_address + _FIRST_HOST_INDEX
        return str(base + _lowest_free(taken, LOAD_BALANCER_CIDR))

    def external_ip_holder(self, address: str, besides: str = "") -> str | None:
        """The Service other than `besides` that lists `address` among its externalIPs, or
        None."""
        holders = (n for n, s in sorted(self.services.items()) if address in s.external_ips)
        return next((n for n in holders if n != besides), None)

    def next_service_ip(self) -> str:
        return service_address(
            _lowest_free((s.cluster_ip for s in self.services.values()), SERVICE_CIDR)
        )

    # -- changes ------------------------------------------------------------------------------
    def with_pod(self, pod: Pod) -> ClusterState:
        if pod.name not in self.pods and len(self.pods) >= MAX_PODS:
            raise InvalidEvent(f"the model holds at most {MAX_PODS} pods")
        pods = dict(self.pods)
        pods[pod.name] = pod
        return replace(self, pods=MappingProxyType(pods))

    def without_pod(self, name: str) -> ClusterState:
        self.pod(name)
        pods = dict(self.pods)
        del pods[name]
        return replace(self, pods=MappingProxyType(pods))

    def with_service(self, service: Service) -> ClusterState:
        if service.name not in self.services and len(self.services) >= MAX_SERVICES:
            raise InvalidEvent(f"the model holds at most {MAX_SERVICES} Services")
        services = dict(self.services)
        services[service.name] = service
        return replace(self, services=MappingProxyType(services))

    def patch_service(self, name: str, **changes: Any) -> ClusterState:
        """The state with Service `name`'s fields changed, as a PATCH does."""
        return self.with_service(replace(self.service(name), **changes))

    def without_service(self, name: str) -> ClusterState:
        self.service(name)
        services = dict(self.services)
        del services[name]
        return replace(self, services=MappingProxyType(services))

    def new_incarnation(
        self, name: str, labels: Labels, *, ip: str | None = None, **fields: object
    ) -> ClusterState:
        """Add a pod incarnation with a fresh uid (and the lowest free address unless given)."""
        uid = f"u{self.uid_counter + 1}"
        node = fields.get("node", PROXY_NODE)
        assert isinstance(node, str)
        ip = ip or self.next_pod_ip(node=node)
        pod = Pod(name=name, uid=uid, ip=ip, labels=labels, **fields)  # type: ignore[arg-type]
        return replace(self.with_pod(pod), uid_counter=self.uid_counter + 1)

    def next_ordinal(self, group: str) -> tuple[int, ClusterState]:
        ordinal = self.ordinals.get(group, 0)
        ordinals = dict(self.ordinals)
        ordinals[group] = ordinal + 1
        return ordinal, replace(self, ordinals=MappingProxyType(ordinals))

    def advance_to(self, now_s: float) -> ClusterState:
        """Move model time forward; terminating pods whose grace period ran out are gone."""
        if now_s <= self.now_s:
            return self
        expired = [
            p.name
            for p in self.pods.values()
            if p.deletion_deadline_s is not None and p.deletion_deadline_s <= now_s
        ]
        state = replace(self, now_s=now_s)
        for name in expired:
            state = state.without_pod(name)
        return state

    def with_phase(self, name: str, phase: Phase) -> ClusterState:
        return self.with_pod(replace(self.pod(name), phase=phase, ready=False))
