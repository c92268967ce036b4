"""The local cluster: a node namespace with a bridge, pods as namespaces on it, client namespaces.

```
 root namespace: untouched (no link, address, route, rule or sysctl of ours)
   <prefix>-node        bridge <prefix>br 10.244.0.1/16 for the pods; ip_forward,
     │                  bridge-nf-call-iptables on, ICMP not rate-limited and a route for the
     │                  Service range (in this namespace only: see "What the node provides");
     │                  the proxy lives here
     ├─ veth <prefix>pN ── <prefix>-pN   a pod: eth0 with the model's IP, default route via the node
     └─ veth <prefix>cM ── <prefix>-cM   client M: 10.250.M.2/24 via 10.250.M.1 (the node), and
                                         CLIENT_SOURCES - 1 further source addresses
                                         10.250.M.3 and up (a client each for ClientIP affinity)
```
No namespace has a link to the root namespace or anywhere else, so no packet can leave the
machine. The links carry IPv4 only: IPv6 is off on each of them (`disable_ipv6`, set before the
link comes up), so the kernel never sends its own link-local IPv6 (router solicitations, MLD
reports, duplicate-address probes); loopback keeps ::1. The bridge does no multicast snooping,
which would have it join the all-snoopers group and send IGMP reports to 224.0.0.22. Clients sit
on their own links so that replies route back through the node, as they do from another host;
bridge ports have hairpin on (kubelet's hairpin-veth mode) so a pod can reach itself through a
Service.

A pod recreated with an address its predecessor had gets the same MAC (`mac_for`), and its
predecessor's link is deleted before, so no stale ARP entry can send its traffic elsewhere.
Node-to-pod and pod-to-gateway ARP entries are static (permanent, from those MACs): the kernel's
neighbour table limit is machine-wide (gc_thresh3, 1,024 here) and shared with every other
namespace, and 1,000 resolved pods would exhaust it; permanent entries do not count. The
bridge has a fixed MAC too: by default it takes its lowest port's, which changes as pods come and
go and would leave every pod's cached gateway address stale. `add_pods` returns only once the node
can connect to every new pod: a new bridge port forwards only after the kernel's link watcher ran,
which on a busy machine was seen to take a second.

What the node provides to every proxy, as a real node would (a proxy must not need to set it):

- **a route for the Service range**, `SERVICE_CIDR dev <prefix>sv` (or the ranges given: a
  real cluster's, with `--pods local`): a sink, one end of a veth
  pair without ARP whose other end stays down, so whatever is sent into it is dropped (the
  kernel here has no `dummy` driver). On a real
  node the default route carries a packet to a VIP that no rule translated; without any route it
  is answered "network unreachable" before a netfilter hook sees it, so kube-proxy's REJECT (in
  filter FORWARD and OUTPUT, `pkg/proxy/iptables/proxier.go`; `filter-forward` in nftables mode)
  never runs. It is a unicast route: the packet is *forwarded* (or sent, from the node itself),
  so it meets FORWARD/OUTPUT where REJECT answers it, and a packet nothing rejects is discarded
  by the sink, as it would leave a real node: the client waits. It must not be a route
  over `lo`: a forwarded packet comes back in on `lo` and is forwarded again until its TTL runs
  out, and the client then sees "no route to host" (issue 15). Nor a `local` route: the node's
  own stack would refuse the packet and hide a missing REJECT. A userspace proxy makes its VIPs
  local itself (an address on `lo`, or a `local` route in the local table, looked up first).
- **no ICMP rate limit** (`net.ipv4.icmp_ratemask` 0): REJECT answers with ICMP
  port-unreachable, which the kernel otherwise limits per destination, so a client opening
  connections quickly would see some time out instead of being refused.
- IP forwarding, and `bridge-nf-call-iptables` so bridged pod-to-pod traffic meets the rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.errors import EnvironmentProblem
from harness.local import rtnetlink
from harness.local.cleanup import guard, hold_run_lock
from harness.local.names import RunNames, netns_path
from harness.local.netns import (
    delete_namespaces,
    flush_conntrack,
    in_thread,
    ip_batch,
    mac_for,
    namespaces,
    setns,
    write_sysctls,
)
from harness.local.podserver import PodServer, PodSpec, port_mode
from harness.model.objects import Pod
from harness.model.state import POD_CIDR, SERVICE_CIDR

POD_GATEWAY = str(POD_CIDR.network_address + 1)
POD_PREFIX_LENGTH = POD_CIDR.prefixlen
NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    # REJECT answers with ICMP, which the kernel rate-limits (1,000/s per namespace by default):
    # 3,000 fast connections to an empty Service saw 57 time out instead of being refused
    "net.ipv4.icmp_ratemask": "0",
}
POD_READY_TIMEOUT_S = 10.0
PROBE_ATTEMPT_S = 0.2
PROBE_PARALLEL = 64
CLIENT_SYSCTLS = {"net.ipv4.ip_local_port_range": "10000 65000", "net.ipv4.tcp_tw_reuse": "1"}
CLIENT_SOURCES = 48
"""Source addresses per client (`TrafficRequest.sources`): enough idle clients to test that
ClientIP affinity expires (`harness.checks.confidence.expiry_clients`: 34 at two endpoints
and the deep profile's false-alarm level)."""
IPV6_CONF = Path("/proc/sys/net/ipv6/conf")  # absent when the kernel runs without IPv6
NODE_LINK_SYSCTLS = {"net.ipv6.conf.default.disable_ipv6": "1"}  # for the links made after it


@dataclass(frozen=True)
class Client:
    """A client namespace: its name in the harness (`client-1`), namespace, its source
    addresses (the first is its own address) and its gateway."""

    name: str
    netns: str
    sources: tuple[str, ...]
    gateway: str

    @property
    def address(self) -> str:
        return self.sources[0]


@dataclass(frozen=True)
class PodHandle:
    """A pod incarnation realised as a namespace; `key` (its namespace name) identifies it."""

    key: str
    pod: str
    uid: str
    address: str
    veth: str

    @property
    def netns(self) -> str:
        return self.key


def client_addresses(number: int) -> tuple[tuple[str, ...], str]:
    """Client `number`'s source addresses (its own first) and its gateway (the node's end of
    the client's link)."""
    return tuple(f"10.250.{number}.{2 + i}" for i in range(CLIENT_SOURCES)), f"10.250.{number}.1"


class RunCluster(ABC):
    """What every cluster of a run shares: its names, work directory (holding the run's lock),
    pod server, clients and realised pods; a context manager that removes all of it.

    Promises: everything it creates is named with `prefix`; `close()` removes all of it, also after
    a failed `open()`, and may be called twice. It never changes the root namespace.
    """

    def __init__(self, prefix: str, client_names: Sequence[str]) -> None:
        self.names = RunNames(prefix)
        self.clients = {
            name: self._client(number, name) for number, name in enumerate(client_names, start=1)
        }
        self.pods: dict[str, PodHandle] = {}
        self.workdir: Path | None = None
        self._numbers = itertools.count()
        self._stack = ExitStack()
        self._server: PodServer | None = None

    @property
    @abstractmethod
    def node_netns(self) -> str:
        """The node's namespace name, where the proxy runs ("" when there is none)."""

    @abstractmethod
    def _client(self, number: int, name: str) -> Client: ...

    @abstractmethod
    def _build(self) -> None:
        """Create the node and the clients; undo steps are pushed on `self._stack`."""

    @abstractmethod
    def add_pods(self, pods: Sequence[Pod]) -> list[PodHandle]:
        """Realise pod incarnations, each serving its ports at its address; all or nothing.
        Each pod must have an address no other realised pod holds."""

    @abstractmethod
    def remove_pods(self, handles: Sequence[PodHandle]) -> None:
        """Stop serving the pods and remove what realised them. Unknown handles are ignored."""

    def service_address(self, address: str, port: int) -> tuple[str, int]:
        """Where a client really connects for a Service's VIP and port."""
        return address, port

    @abstractmethod
    def forget_connections(self) -> None:
        """Drop the node's memory of past connections (between examples)."""

    @property
    def pod_server(self) -> PodServer:
        if self._server is None:
            raise RuntimeError("the cluster is not open")
        return self._server

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Make the work directory (and take the run's lock), the node, the clients and the
        pod server."""
        try:
            self._stack.callback(guard(self.close))  # also on SIGTERM and at exit
            self.workdir = Path(tempfile.mkdtemp(prefix=self.names.workdir_prefix))
            self._stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
            self._stack.enter_context(hold_run_lock(self.workdir))
            self._build()
            self._server = self._stack.enter_context(PodServer(self.names.prefix))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the pod server, remove the node, clients and pods and the work directory.
        Idempotent."""
        self._server = None
        self._stack.close()
        self.pods = {}

    def _new_handles(
        self, pods: Sequence[Pod], address_of: Callable[[str], str]
    ) -> list[PodHandle]:
        handles = []
        for pod in pods:
            assert pod.ip is not None, f"pod {pod.name} has no address"
            number = next(self._numbers)
            key = self.names.pod_netns(number)
            handles.append(
                PodHandle(key, pod.name, pod.uid, address_of(pod.ip), self.names.pod_veth(number))
            )
        return handles


class LocalCluster(RunCluster):
    """Pods and clients as network namespaces around a node namespace (the module docstring).

    `service_ranges` are the ranges the node routes for Services (default: `SERVICE_CIDR`).
    """

    def __init__(
        self,
        prefix: str,
        client_names: Sequence[str],
        service_ranges: Sequence[str] = (str(SERVICE_CIDR),),
    ) -> None:
        super().__init__(prefix, client_names)
        self.service_ranges = tuple(service_ranges)

    @property
    def node_netns(self) -> str:
        return self.names.node_netns

    def _client(self, number: int, name: str) -> Client:
        sources, gateway = client_addresses(number)
        return Client(name, self.names.client_netns(number), sources, gateway)

    def _build(self) -> None:
        client_namespaces = [c.netns for c in self.clients.values()]
        self._stack.enter_context(namespaces([self.node_netns, *client_namespaces]))
        self._stack.callback(self._delete_pod_namespaces)
        self._build_node()

    def forget_connections(self) -> None:
        flush_conntrack(self.node_netns)

    def route_service_range(self, cidr: str) -> None:
        """Route one more Service range in the node namespace (`--pods local` on a cluster
        whose range shows only in the VIPs it allocates); removed with the namespace."""
        ip_batch([f"route add {cidr} dev {self.names.service_sink}"], netns=self.node_netns)
        self.service_ranges = (*self.service_ranges, cidr)

    def _build_node(self) -> None:
        bridge = self.names.bridge
        sink, sink_peer = self.names.service_sink, self.names.service_sink_peer
        lines = [
            "link set lo up",
            f"link add {sink} type veth peer name {sink_peer}",
            f"link set {sink} arp off up",
            *(f"route add {cidr} dev {sink}" for cidr in self.service_ranges),
            f"link add {bridge} address {mac_for(POD_GATEWAY)} type bridge mcast_snooping 0",
            f"addr add {POD_GATEWAY}/{POD_PREFIX_LENGTH} dev {bridge}",
            f"link set {bridge} up",
        ]
        for number, client in enumerate(self.clients.values(), start=1):
            veth = self.names.client_veth(number)
            lines += [
                f"link add {veth} address {mac_for(client.gateway)} type veth"
                f" peer name eth0 netns {client.netns}",
                f"addr add {client.gateway}/24 dev {veth}",
                f"link set {veth} up",
            ]
        if IPV6_CONF.exists():
            write_sysctls(self.node_netns, NODE_LINK_SYSCTLS)
        ip_batch(lines, netns=self.node_netns)
        write_sysctls(self.node_netns, NODE_SYSCTLS)
        for client in self.clients.values():
            write_sysctls(client.netns, CLIENT_SYSCTLS)
        in_thread(
            lambda: _configure_inside(
                [(c.netns, c.sources, 24, c.gateway) for c in self.clients.values()]
            )
        )

    def _delete_pod_namespaces(self) -> None:
        handles, self.pods = list(self.pods.values()), {}
        delete_namespaces(handle.netns for handle in handles)

    # -- pods ---------------------------------------------------------------------------------
    def add_pods(self, pods: Sequence[Pod]) -> list[PodHandle]:
        """A namespace each, linked to the bridge, serving its ports; returns once the node can
        reach every new pod. On failure the new namespaces are removed again."""
        handles = self._new_handles(pods, str)
        if not handles:
            return []
        self.pods.update((h.key, h) for h in handles)  # known to `close()` from the start
        try:
            ip_batch([f"netns add {h.netns}" for h in handles])
            lines = []
            for handle in handles:
                lines += [
                    f"link add {handle.veth} type veth peer name eth0"
                    f" address {mac_for(handle.address)} netns {handle.netns}",
                    f"link set {handle.veth} master {self.names.bridge} up",
                    f"link set {handle.veth} type bridge_slave hairpin on",
                    f"neigh replace {handle.address} lladdr {mac_for(handle.address)}"
                    f" dev {self.names.bridge} nud permanent",
                ]
            ip_batch(lines, netns=self.node_netns)
            in_thread(
                lambda: _configure_inside(
                    [(h.netns, (h.address,), POD_PREFIX_LENGTH, POD_GATEWAY) for h in handles]
                )
            )
            self.pod_server.add(
                [_spec(handle, pod) for handle, pod in zip(handles, pods, strict=True)]
            )
            self._wait_reachable(
                [
                    (h.address, pod.ports[0].port)
                    for h, pod in zip(handles, pods, strict=True)
                    if pod.ports
                ]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.pod_server.remove([h.key for h in handles])
            self._unlink(handles)
            for handle in handles:
                del self.pods[handle.key]
            raise
        return handles

    def _wait_reachable(self, addresses: Sequence[tuple[str, int]]) -> None:
        """Return once the node can open a TCP connection to every address.

        A new bridge port forwards only after the kernel's link watcher has seen its carrier,
        which runs from a work queue under the rtnl lock: on a busy machine (namespaces being
        deleted elsewhere) that took over a second, and a pod looked dead to its first clients.
        """

        def probe() -> list[tuple[str, int]]:
            setns(netns_path(self.node_netns))
            return asyncio.run(_probe_all(addresses, POD_READY_TIMEOUT_S))

        unreachable = in_thread(probe, POD_READY_TIMEOUT_S + 5)
        if unreachable:
            shown = ", ".join(f"{a}:{p}" for a, p in unreachable[:3])
            raise EnvironmentProblem(
                f"{len(unreachable)} new pod(s) unreachable from the node after"
                f" {POD_READY_TIMEOUT_S:.0f} s ({shown})"
            )

    def remove_pods(self, handles: Sequence[PodHandle]) -> None:
        # forgotten only once gone: an interrupt half-way leaves them to `close()`
        handles = [h for h in handles if h.key in self.pods]
        if handles:
            self._tear_down(handles)
        for handle in handles:
            del self.pods[handle.key]

    def _tear_down(self, handles: Sequence[PodHandle]) -> None:
        self.pod_server.remove([h.key for h in handles])
        self._unlink(handles)

    def _unlink(self, handles: Sequence[PodHandle]) -> None:
        """Delete the pods' links, static ARP entries and namespaces (missing ones are fine)."""
        # the links go first and synchronously, so a successor may reuse the address at once
        lines = [f"link del {h.veth}" for h in handles]
        lines += [f"neigh del {h.address} dev {self.names.bridge}" for h in handles]
        ip_batch(lines, netns=self.node_netns, force=True)
        delete_namespaces(h.netns for h in handles)


async def _probe_all(
    addresses: Sequence[tuple[str, int]], timeout_s: float
) -> list[tuple[str, int]]:
    """The addresses that did not accept a connection within `timeout_s` (tried in parallel,
    at most PROBE_PARALLEL at once)."""
    deadline_s = time.monotonic() + timeout_s
    limit = asyncio.Semaphore(PROBE_PARALLEL)

    async def probe(address: tuple[str, int]) -> bool:
        async with limit:
            while time.monotonic() < deadline_s:
                try:
                    async with asyncio.timeout(PROBE_ATTEMPT_S):
                        _, writer = await asyncio.open_connection(*address)
                    writer.close()
                    return True
                except OSError:
                    await asyncio.sleep(PROBE_ATTEMPT_S / 10)
            return False

    reached = await asyncio.gather(*(probe(address) for address in addresses))
    return [address for address, ok in zip(addresses, reached, strict=True) if not ok]


def _spec(handle: PodHandle, pod: Pod) -> PodSpec:
    served = ("TCP", "UDP")
    ports = tuple(
        (p.port, port_mode(p.name, p.protocol)) for p in pod.ports if p.protocol in served
    )
    return PodSpec(handle.key, pod.name, pod.uid, netns_path(handle.netns), "0.0.0.0", ports)


def _disable_ipv6(interface: str) -> None:
    """IPv6 off on `interface` of the calling thread's namespace (/proc/sys/net is the opener's
    namespace's), before it comes up; nothing to do on a kernel without IPv6."""
    if IPV6_CONF.exists():
        (IPV6_CONF / interface / "disable_ipv6").write_text("1")


def _configure_inside(interfaces: Sequence[tuple[str, Sequence[str], int, str]]) -> None:
    """For each (namespace, addresses, prefix length, gateway): IPv6 off on eth0, lo and eth0
    up, eth0's addresses, default route. Runs in a throw-away thread (`in_thread`), which it
    moves between namespaces."""
    for netns, addresses, prefix_length, gateway in interfaces:
        setns(netns_path(netns))
        _disable_ipv6("eth0")
        requests = rtnetlink.Requests().link_up("lo")
        for address in addresses:
            requests.add_address("eth0", address, prefix_length)
        requests.link_up("eth0").add_permanent_neighbour("eth0", gateway, mac_for(gateway))
        requests.add_default_route(gateway).send()
