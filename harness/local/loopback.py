"""The loopback variant (`local:loopback`): the local cluster for a user without root.

No namespaces: the pod server listens on distinct 127.x.y.z addresses, the userspace proxy on
127.x addresses in the harness's own namespace, and clients bind their own 127.x source address
(so ClientIP affinity still tells them apart). All of 127.0.0.0/8 is local on Linux, so nothing is
configured and no packet leaves the loopback interface.

The model's addresses are mapped, one to one, into second octets picked from the run prefix, so
two runs on one machine rarely collide (a collision fails with "address in use"):

| model | loopback |
|---|---|
| pod 10.244.A.B | 127.P.A.B |
| Service VIP 10.96.A.B, port N | 127.P+1.A.B, port N (N+10000 below 1024: unprivileged) |
| client M, source address S | 127.P+2.S.M |

`TranslatingProxy` applies the map at the Proxy contract's boundary, so the proxy programs
loopback addresses while the target still publishes and reports the model's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from harness.local.cluster import CLIENT_SOURCES, Client, PodHandle, RunCluster
from harness.local.podserver import PodSpec, port_mode
from harness.model.objects import EndpointSlice, Pod, Service
from harness.proxies.base import NodeContext, Proxy

UNPRIVILEGED_PORT_SHIFT = 10000
FIRST_UNPRIVILEGED_PORT = 1024


@dataclass(frozen=True)
class LoopbackAddresses:
    """The one-to-one map from model addresses to loopback ones, for one run."""

    pod_octet: int

    @classmethod
    def for_prefix(cls, prefix: str) -> LoopbackAddresses:
        return cls(2 + 3 * (int(prefix[2:], 16) % 80))

    def pod(self, address: str) -> str:
        return self._map(address, self.pod_octet)

    def vip(self, address: str) -> str:
        return self._map(address, self.pod_octet + 1)

    def client(self, number: int, source: int = 0) -> str:
        return f"127.{self.pod_octet + 2}.{source}.{number}"

    @staticmethod
    def port(port: int) -> int:
        return port + UNPRIVILEGED_PORT_SHIFT if port < FIRST_UNPRIVILEGED_PORT else port

    @staticmethod
    def _map(address: str, octet: int) -> str:
        packed = ipaddress.IPv4Address(address).packed
        return f"127.{octet}.{packed[2]}.{packed[3]}"


class LoopbackCluster(RunCluster):
    """Pods as listening addresses on 127.P.0.0/16, served by the one pod server."""

    def __init__(self, prefix: str, client_names: Sequence[str]) -> None:
        self.addresses = LoopbackAddresses.for_prefix(prefix)
        super().__init__(prefix, client_names)

    @property
    def node_netns(self) -> str:
        return ""

    def _client(self, number: int, name: str) -> Client:
        sources = tuple(self.addresses.client(number, s) for s in range(CLIENT_SOURCES))
        return Client(name, "", sources, "")

    def _build(self) -> None:
        """Nothing to build: the loopback interface is already there."""

    def add_pods(self, pods: Sequence[Pod]) -> list[PodHandle]:
        handles = self._new_handles(pods, self.addresses.pod)
        specs = [
            PodSpec(
                handle.key,
                pod.name,
                pod.uid,
                None,
                handle.address,
                tuple((p.port, port_mode(p.name)) for p in pod.ports if p.protocol == "TCP"),
            )
            for handle, pod in zip(handles, pods, strict=True)
        ]
        try:
            self.pod_server.add(specs)
        except BaseException:
            self.pod_server.remove([h.key for h in handles])
            raise
        self.pods.update((h.key, h) for h in handles)
        return handles

    def remove_pods(self, handles: Sequence[PodHandle]) -> None:
        handles = [h for h in handles if self.pods.pop(h.key, None) is not None]
        self.pod_server.remove([h.key for h in handles])

    def service_address(self, address: str, port: int) -> tuple[str, int]:
        return self.addresses.vip(address), self.addresses.port(port)

    def forget_connections(self) -> None:
        """No connection tracking on the loopback path."""


class TranslatingProxy:
    """A Proxy that hands `inner` every Service and slice with loopback addresses."""

    name: ClassVar[str] = "translating"
    description: ClassVar[str] = "maps model addresses to loopback ones for the proxy inside"

    def __init__(self, inner: Proxy, addresses: LoopbackAddresses) -> None:
        self.inner = inner
        self.addresses = addresses

    def _service(self, service: Service) -> Service:
        ports = tuple(replace(p, port=self.addresses.port(p.port)) for p in service.ports)
        return replace(service, cluster_ip=self.addresses.vip(service.cluster_ip), ports=ports)

    def _slice(self, endpoint_slice: EndpointSlice) -> EndpointSlice:
        endpoints = tuple(
            replace(e, address=self.addresses.pod(e.address)) for e in endpoint_slice.endpoints
        )
        return replace(endpoint_slice, endpoints=endpoints)

    def start(self, node: NodeContext) -> None:
        self.inner.start(node)

    def on_service_add(self, service: Service) -> None:
        self.inner.on_service_add(self._service(service))

    def on_service_update(self, old: Service, new: Service) -> None:
        self.inner.on_service_update(self._service(old), self._service(new))

    def on_service_delete(self, service: Service) -> None:
        self.inner.on_service_delete(self._service(service))

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self.inner.on_endpoint_slice_add(self._slice(endpoint_slice))

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self.inner.on_endpoint_slice_update(self._slice(old), self._slice(new))

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self.inner.on_endpoint_slice_delete(self._slice(endpoint_slice))

    def sync(self) -> None:
        self.inner.sync()

    def stop(self) -> None:
        self.inner.stop()
