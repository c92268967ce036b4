"""The `userspace` proxy: an asyncio TCP proxy in the node namespace, as kube-proxy's old
userspace mode was (`pkg/proxy/userspace`, removed in 1.26): round robin over the usable
endpoints (`LoadBalancerRR`), ClientIP affinity with a timeout, and, when none is usable, REJECT
(no endpoints at all) or DROP (endpoints, none on this node), as kube-proxy decides.

Two halves:

- `UserspaceProxy` (in the harness process) tracks changes (`TrackingProxy`), picks each Service
  port's usable endpoints with the model's `CategorizeEndpoints` semantics on the raw slice
  conditions (`usable_destinations`), puts every Service VIP on the node's `lo` and hands the
  result to
- the data plane, one helper process that entered the node namespace (`python -m
  harness.proxies.userspace [NETNS_PATH]`; without a path it stays where it is, as the loopback
  variant wants): it listens on VIP:port for every Service port that has usable endpoints and
  relays each accepted connection to the endpoint it picks.

A Service port without any endpoints has no listening socket while its VIP stays local, so the
node's kernel answers a SYN with RST: the client sees "connection refused" at once, which is what
kube-proxy's REJECT rule gives. A port whose endpoints are all on other nodes under
internalTrafficPolicy=Local gets a listener whose socket filter drops every SYN
(`harness.proxies.dropping`): the client times out, as kube-proxy's "has no local endpoints" DROP
makes it. Established connections are never cut by an update (the old
userspace proxy did not either); only new connections follow the new endpoints.

A NodePort or LoadBalancer Service's port also listens on its node port at every address of the
node (as the old proxier's `openNodePort` did), relaying where traffic from outside arriving at
this node may go (`external_destinations`), with the same REJECT and DROP; only in a node
namespace, never in the root one (the loopback variant has no node port). Being a relay, it
cannot keep the client's address under externalTrafficPolicy Local, and does not declare it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.local.control import ControlledProcess, run_helper
from harness.local.names import netns_path
from harness.local.netns import ip_batch, listening_socket, setns
from harness.model.endpoints import external_destinations, must_drop, usable_destinations
from harness.model.objects import Affinity, Destination, EndpointSlice, Service
from harness.proxies.base import RELAYING_FEATURES, NodeContext, TrackingProxy
from harness.proxies.dropping import dropping_socket
from harness.proxies.listeners import NODE_PORT_ADDRESS

DIAL_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0)
"""One dial per entry, each to the next candidate (`proxysocket.go: endpointDialTimeout`)."""
RELAY_CHUNK_BYTES = 65536
Address = tuple[str, int]
_RELAYS: set[asyncio.Task[None]] = set()


# -- the harness side -----------------------------------------------------------------------------
class UserspaceProxy(TrackingProxy):
    """A userspace TCP proxy: round robin, ClientIP affinity, REJECT without endpoints."""

    name: ClassVar[str] = "userspace"
    features: ClassVar[frozenset[str]] = RELAYING_FEATURES
    description: ClassVar[str] = (
        "asyncio TCP proxy in the node namespace: round robin, ClientIP affinity, REJECT or DROP"
    )
    relays_connections: ClassVar[bool] = True
    """Connections run through this proxy's own process: they end when it restarts."""

    def __init__(self) -> None:
        super().__init__()
        self._process: ControlledProcess | None = None
        self._vips: set[str] = set()

    def start(self, node: NodeContext) -> None:
        super().start(node)
        where = [netns_path(node.netns)] if node.netns else []
        self._process = ControlledProcess(
            "userspace proxy", "harness.proxies.userspace", where, node.prefix
        )
        self._process.start()

    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        """Put new VIPs on the node's lo, send the changed Services' listeners, drop old VIPs."""
        if self._process is None or self.node is None:
            raise RuntimeError("the userspace proxy is not started")
        wanted = {service.cluster_ip for service in services.values()}
        self._set_vips(wanted - self._vips, "add")
        update = [self._listeners(services[n]) for n in sorted(changed) if n in services]
        delete = sorted(n for n in changed if n not in services)
        self._process.request({"op": "program", "set": update, "delete": delete})
        self._set_vips(self._vips - wanted, "del")

    def _listeners(self, service: Service) -> dict[str, Any]:
        assert self.node is not None
        slices = self.slices_of(service.name)
        listeners = []
        for port in service.ports:
            if port.protocol != "TCP":
                continue
            destinations = self.destinations(slices, service, port.name)
            listeners.append(
                {
                    "address": service.cluster_ip,
                    "port": port.port,
                    "destinations": [[d.address, d.port] for d in destinations],
                    "drops": must_drop(destinations, slices, port.name),
                }
            )
            if service.type.external and port.node_port is not None and self.node.netns:
                outside = external_destinations(slices, service, port.name, self.node.node)
                listeners.append(
                    {
                        "address": NODE_PORT_ADDRESS,
                        "port": port.node_port,
                        "destinations": [[d.address, d.port] for d in outside],
                        "drops": must_drop(outside, slices, port.name),
                    }
                )
        affinity = service.session_affinity == Affinity.CLIENT_IP
        return {
            "service": service.name,
            "listeners": listeners,
            "affinity_timeout_s": service.affinity_timeout_s if affinity else None,
        }

    def destinations(
        self, slices: tuple[EndpointSlice, ...], service: Service, port_name: str
    ) -> list[Destination]:
        """Where new connections to the port may go: `CategorizeEndpoints` on the raw slices
        (the hook a mutant overrides)."""
        assert self.node is not None
        return usable_destinations(slices, service, port_name, self.node.node)

    def _set_vips(self, vips: set[str], action: str) -> None:
        """Add or remove VIPs on the node's lo (not needed without a node namespace: the
        loopback variant's VIPs are 127.x addresses, all local already)."""
        assert self.node is not None
        if not self.node.netns:
            return
        lines = [f"addr {action} {vip}/32 dev lo" for vip in sorted(vips)]
        ip_batch(lines, netns=self.node.netns, force=action == "del")
        if action == "add":
            self._vips |= vips
        else:
            self._vips -= vips

    def stop(self) -> None:
        """Stop the data plane and take the VIPs off lo. Idempotent; never raises for a node
        namespace that is already gone."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        if self.node is not None and self._vips:
            with contextlib.suppress(Exception):
                self._set_vips(set(self._vips), "del")
        self._vips = set()
        self.services.clear()
        self.slices.clear()
        self.changed.clear()


# -- the data plane (the helper process) ----------------------------------------------------------
@dataclass
class _Listener:
    """One Service port: where it listens, where it may send, and its balancing memory."""

    address: Address
    destinations: list[Address] = field(default_factory=list)
    affinity_timeout_s: float | None = None
    next_index: int = 0
    affinity: dict[str, tuple[Address, float]] = field(default_factory=dict)
    server: asyncio.Server | None = None
    dropping: socket.socket | None = None

    def candidates(self, client_ip: str, now_s: float) -> list[Address]:
        """Endpoints to try for a new connection, best first (`LoadBalancerRR.NextEndpoint`):
        the client's sticky endpoint while its affinity holds, then the next in round robin and
        the rest in order, for a failed dial to move on."""
        if not self.destinations:
            return []
        if self.affinity_timeout_s is not None:
            sticky = self.affinity.get(client_ip)
            if sticky is not None:
                destination, last_used_s = sticky
                if (
                    destination in self.destinations
                    and now_s - last_used_s <= self.affinity_timeout_s
                ):
                    return [destination]
        start = self.next_index % len(self.destinations)
        self.next_index = start + 1
        return self.destinations[start:] + self.destinations[:start]

    def used(self, client_ip: str, destination: Address, now_s: float) -> None:
        if self.affinity_timeout_s is not None:
            self.affinity[client_ip] = (destination, now_s)


class _DataPlane:
    def __init__(self) -> None:
        self.services: dict[str, list[_Listener]] = {}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") != "program":
            raise ValueError(f"unknown op {request.get('op')!r}")
        for name in request["delete"]:
            for listener in self.services.pop(name, []):
                _close(listener)
        for service in request["set"]:
            await self._set(service)
        return {"services": len(self.services)}

    async def _set(self, service: dict[str, Any]) -> None:
        old = {listener.address: listener for listener in self.services.get(service["service"], [])}
        timeout_s = service["affinity_timeout_s"]
        listeners = []
        for item in service["listeners"]:
            address = (str(item["address"]), int(item["port"]))
            listener = old.pop(address, None) or _Listener(address)
            if listener.affinity_timeout_s != timeout_s:
                listener.affinity.clear()
            listener.affinity_timeout_s = timeout_s
            listener.destinations = [(str(ip), int(port)) for ip, port in item["destinations"]]
            drops = bool(item.get("drops")) and not listener.destinations
            if not drops and listener.dropping is not None:
                listener.dropping.close()
                listener.dropping = None
            if listener.destinations and listener.server is None:
                listener.server = await asyncio.start_server(
                    functools.partial(_relay, listener), sock=listening_socket(*address)
                )
            elif not listener.destinations:
                if listener.server is not None:
                    listener.server.close()
                    listener.server = None
                if drops and listener.dropping is None:
                    listener.dropping = dropping_socket(*address)
            listeners.append(listener)
        for gone in old.values():
            _close(gone)
        self.services[service["service"]] = listeners

    async def shutdown(self) -> None:
        """Stop listening and cut every relayed connection (the helper is exiting)."""
        for listeners in self.services.values():
            for listener in listeners:
                _close(listener)
        self.services.clear()
        relays = list(_RELAYS)
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)


def _close(listener: _Listener) -> None:
    """Stop listening (relaying or dropping): new connections are refused by the kernel from now
    on."""
    if listener.server is not None:
        listener.server.close()
        listener.server = None
    if listener.dropping is not None:
        listener.dropping.close()
        listener.dropping = None


async def _relay(
    listener: _Listener, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    # a stream server drops its reference to this task when the client's side closes; keep
    # one, so a relay still copying the other direction is not garbage-collected half-way
    task = asyncio.current_task()
    assert task is not None
    _RELAYS.add(task)
    task.add_done_callback(_RELAYS.discard)
    try:
        await _dial_and_copy(listener, client_reader, client_writer)
    except asyncio.CancelledError:  # the helper is shutting down: cut the connection
        client_writer.transport.abort()
        raise


async def _dial_and_copy(
    listener: _Listener, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    peer = client_writer.get_extra_info("peername")
    if peer is None:  # the client reset before the relay began
        client_writer.transport.abort()
        return
    client_ip, now_s = str(peer[0]), time.monotonic()
    candidates = listener.candidates(client_ip, now_s)
    for attempt, timeout_s in enumerate(DIAL_TIMEOUTS_S if candidates else ()):
        destination = candidates[attempt % len(candidates)]
        try:
            async with asyncio.timeout(timeout_s):
                backend_reader, backend_writer = await asyncio.open_connection(*destination)
        except OSError:
            continue
        listener.used(client_ip, destination, now_s)
        try:
            await asyncio.gather(
                _pump(client_reader, backend_writer, client_writer),
                _pump(backend_reader, client_writer, backend_writer),
            )
        except asyncio.CancelledError:
            backend_writer.transport.abort()
            raise
        backend_writer.close()
        client_writer.close()
        return
    client_writer.transport.abort()  # no endpoint answered: reset, as a failed DNAT would


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter
) -> None:
    """Copy one direction until its end, then half-close; on an error, abort both sides."""
    try:
        while data := await reader.read(RELAY_CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except OSError:
        writer.transport.abort()
        other.transport.abort()


def main() -> None:
    if len(sys.argv) > 1:
        try:
            setns(sys.argv[1])
        except FileNotFoundError:
            # the harness, interrupted while starting us, has removed the node already: leave
            # quietly (were it still waiting, it would report this exit status)
            sys.exit(1)
    data_plane = _DataPlane()
    run_helper(data_plane.handle, data_plane.shutdown)


if __name__ == "__main__":
    main()
