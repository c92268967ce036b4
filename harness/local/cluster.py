"""The local cluster: node namespaces with a bridge each, pods as namespaces on them, clients.

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
With `nodes` N > 1, node k (1-based) is a namespace of its own, joined to the others as a
host-gw CNI joins hosts (flannel's host-gw backend, Calico without encapsulation):
```
   <prefix>-net         bridge <prefix>fb: the fabric, one port <prefix>nK per node
     ├─ <prefix>-node   <prefix>fab 10.240.0.1/24; pods on 10.244.0.0/20 (bridge 10.244.0.1/20)
     ├─ <prefix>-node2  <prefix>fab 10.240.0.2/24; pods on 10.244.16.0/20 (bridge 10.244.16.1/20)
     └─ <prefix>-nodeK  <prefix>fab 10.240.0.K/24; pods on node K's /20 (`node_pod_cidr`)
```
Every node routes each other node's pod /20 via that node's fabric address, and the nodes other
than node-1 route the client links (10.250.0.0/16) via node-1, where the clients hang.
The fabric also carries the **external client** (`<prefix>-ext`, eth0 on the fabric port
`<prefix>nx`): a client on the nodes' network, outside every node and pod, with
`EXTERNAL_SOURCES` addresses from 10.240.0.200/24 (`external_addresses`); it reaches every node's
own address directly, as NodePort traffic from another host does (`TrafficRequest.external_node`),
and routes nothing else (its default route points at node-1, which has none). It also
stands in for a cloud or MetalLB load balancer: one more address per node,
`load_balancer_source(k)` (10.240.0.220+k), each with a policy rule (`from 10.240.0.220+k
lookup 100+k`) whose table routes only the ingress ranges (`INGRESS_RANGES`: LoadBalancer
ingress IPs and externalIPs) via node k, so a connection to an ingress IP or externalIP from
that address is handed to node k alone (`TrafficRequest.via_load_balancer`, `external_ip`);
all in its own namespace, none in the root one. Each node has its own Service-range sink and
sysctls (below) and its own proxy. With one node (the default) there is no fabric and the layout
is the single node above, its bridge on the whole pod /16: pods of the model's other, logical
node (`run_nodes`) hang off it too.

No namespace has a link to the root namespace or anywhere else, and no node has a default route
(pods and clients route via their node), so no packet can leave the machine. The links carry IPv4
only: IPv6 is off on each of them (`disable_ipv6`, set before the link comes up), so the kernel
never sends its own link-local IPv6 (router solicitations, MLD reports, duplicate-address probes);
loopback keeps ::1. The bridges do no multicast snooping, which would have them join the all-
snoopers group and send IGMP reports to 224.0.0.22. Clients sit on their own links so that replies
route back through the node, as they do from another host; bridge ports have hairpin on (kubelet's
hairpin-veth mode) so a pod can reach itself through a Service.

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
from dataclasses import dataclass, field
from ipaddress import IPv4Network
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
from harness.model.objects import MAX_NODES, PROXY_NODE, Pod, node_name
from harness.model.state import (
    EXTERNAL_IP_CIDR,
    LOAD_BALANCER_CIDR,
    POD_CIDR,
    SERVICE_CIDR,
    node_pod_cidr,
)

POD_GATEWAY = str(POD_CIDR.network_address + 1)
POD_PREFIX_LENGTH = POD_CIDR.prefixlen
FABRIC_CIDR = IPv4Network("10.240.0.0/24")
"""The nodes' own addresses (their InternalIPs): node k is 10.240.0.k on the fabric."""
EXTERNAL_SOURCES = 4
"""Addresses of the external client (`external_addresses`): its own and a few more."""
EXTERNAL_FIRST = 200
"""The external client's first address is the fabric's address number EXTERNAL_FIRST."""
LOAD_BALANCER_SOURCE_FIRST = 220
"""Node k's load-balancer source address is the fabric's address number
LOAD_BALANCER_SOURCE_FIRST + k (`load_balancer_source`)."""
LOAD_BALANCER_TABLE_FIRST = 100
"""Node k's load-balancer routing table in the external client is number
LOAD_BALANCER_TABLE_FIRST + k."""
INGRESS_RANGES = (str(LOAD_BALANCER_CIDR), str(EXTERNAL_IP_CIDR))
"""The ranges the external client hands to a chosen node (LoadBalancer ingress IPs and
externalIPs); every node routes them into its Service-range sink, as a real node's default
route carries them."""
CLIENT_LINKS = IPv4Network("10.250.0.0/16")
"""Where the client namespaces' links are (`client_addresses`), all on node-1."""
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
class Node:
    """A node namespace: the model's node `name` (node `number`, 1-based), its namespace, the pod
    range its bridge serves (`pod_cidr`: the pods' prefix, its first address the bridge's, the
    pods' gateway) and `address`, the node's own address (its fabric address; the bridge's when
    the cluster has one node and no fabric): where its host-network traffic leaves from."""

    name: str
    number: int
    netns: str
    pod_cidr: IPv4Network
    address: str

    @property
    def gateway(self) -> str:
        return str(self.pod_cidr.network_address + 1)


def node_address(number: int) -> str:
    """Node `number`'s fabric address."""
    return str(FABRIC_CIDR.network_address + number)


def external_addresses() -> tuple[str, ...]:
    """The external client's source addresses on the fabric, its own first (10.240.0.200...)."""
    base = FABRIC_CIDR.network_address + EXTERNAL_FIRST
    return tuple(str(base + i) for i in range(EXTERNAL_SOURCES))


def load_balancer_source(number: int) -> str:
    """The external client's source address whose traffic to an ingress IP goes via node
    `number` (10.240.0.220+number; module docstring)."""
    return str(FABRIC_CIDR.network_address + LOAD_BALANCER_SOURCE_FIRST + number)


def load_balancer_routes(numbers: Sequence[int], ranges: Sequence[str]) -> list[str]:
    """The `ip` lines, inside the external client only, that hand `ranges` to node k from
    `load_balancer_source(k)` for each k in `numbers`: its address, a policy rule and a table
    routing only `ranges` via node k (no default route: other traffic from that address falls
    through to the main table)."""
    lines = []
    for number in numbers:
        source, table = load_balancer_source(number), LOAD_BALANCER_TABLE_FIRST + number
        lines += [
            f"addr add {source}/{FABRIC_CIDR.prefixlen} dev eth0",
            f"rule add from {source} lookup {table} priority {1000 + number}",
            *(f"route add {r} via {node_address(number)} table {table}" for r in ranges),
        ]
    return lines


def check_node_count(nodes: int) -> int:
    """`nodes` if a local cluster can have that many (1 to MAX_NODES); ValueError otherwise."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(
            f"--nodes {nodes} is out of range: a local cluster has 1 to {MAX_NODES} nodes"
        )
    return nodes


@dataclass(frozen=True)
class PodHandle:
    """A pod incarnation realised as a namespace; `key` (its namespace name) identifies it;
    `node_netns` is the node namespace its link hangs off."""

    key: str
    pod: str
    uid: str
    address: str
    veth: str
    node_netns: str = field(default="", compare=False)

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

    @property
    def node_names(self) -> tuple[str, ...]:
        """The model nodes that have a namespace (and a proxy) of their own, node-1 first."""
        return (PROXY_NODE,)

    def node_netns_of(self, node: str) -> str:
        """The namespace of the node that serves pods placed on `node` (node-1's for a node
        without a namespace of its own)."""
        return self.node_netns

    def node_address_of(self, node: str) -> str | None:
        """Where host-network traffic of `node` leaves from (None: the cluster has no
        host network to send from)."""
        return None

    @property
    def external(self) -> Client | None:
        """The client outside every node, on the nodes' network (None: the cluster has none)."""
        return None

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
            veth = self.names.pod_veth(number)
            host = self.node_netns_of(pod.node)
            handles.append(PodHandle(key, pod.name, pod.uid, address_of(pod.ip), veth, host))
        return handles


class LocalCluster(RunCluster):
    """Pods and clients as network namespaces around `nodes` node namespaces (the module
    docstring); `nodes` is 1 to MAX_NODES (ValueError otherwise).

    `service_ranges` are the ranges every node routes for Services (default: `SERVICE_CIDR`).
    """

    def __init__(
        self,
        prefix: str,
        client_names: Sequence[str],
        service_ranges: Sequence[str] = (str(SERVICE_CIDR),),
        nodes: int = 1,
    ) -> None:
        super().__init__(prefix, client_names)
        self.service_ranges = tuple(service_ranges)
        check_node_count(nodes)
        self.nodes = {
            node.name: node for node in (self._node(k, nodes) for k in range(1, 1 + nodes))
        }
        self._external = (
            Client("external", self.names.external_netns, external_addresses(), node_address(1))
            if nodes > 1
            else None
        )

    def _node(self, number: int, count: int) -> Node:
        name = node_name(number)
        if count == 1:  # today's single node: its bridge on the whole pod range, no fabric
            return Node(name, 1, self.names.node_netns, POD_CIDR, POD_GATEWAY)
        netns = self.names.node_netns_of(number)
        return Node(name, number, netns, node_pod_cidr(name), node_address(number))

    @property
    def node_netns(self) -> str:
        return self.names.node_netns

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    def node_netns_of(self, node: str) -> str:
        return self._node_of(node).netns

    def node_address_of(self, node: str) -> str | None:
        return self._node_of(node).address

    @property
    def external(self) -> Client | None:
        """The external client on the fabric (module docstring); only with more than one node."""
        return self._external

    def load_balancer_source_of(self, node: str) -> str | None:
        """The external client's address that hands ingress IPs to `node`, or None without an
        external client or for a node the cluster lacks."""
        if self._external is None or node not in self.nodes:
            return None
        return load_balancer_source(self.nodes[node].number)

    def _node_of(self, node: str) -> Node:
        """The node that hosts pods placed on `node`: its own, or node-1 when it has none
        (the one-node cluster's logical second node)."""
        return self.nodes.get(node) or self.nodes[PROXY_NODE]

    def _client(self, number: int, name: str) -> Client:
        sources, gateway = client_addresses(number)
        return Client(name, self.names.client_netns(number), sources, gateway)

    def _build(self) -> None:
        client_namespaces = [c.netns for c in self.clients.values()]
        fabric = [self.names.fabric_netns] if len(self.nodes) > 1 else []
        external = [self._external.netns] if self._external is not None else []
        node_namespaces = [node.netns for node in self.nodes.values()]
        self._stack.enter_context(
            namespaces([*node_namespaces, *fabric, *external, *client_namespaces])
        )
        self._stack.callback(self._delete_pod_namespaces)
        for node in self.nodes.values():
            self._build_node(node)
        if fabric:
            self._build_fabric()
        if self._external is not None:
            self._build_external(self._external)

    def forget_connections(self) -> None:
        for node in self.nodes.values():
            flush_conntrack(node.netns)

    def route_service_range(self, cidr: str) -> None:
        """Route one more Service range in every node namespace (`--pods local` on a cluster
        whose range shows only in the VIPs it allocates); removed with the namespaces."""
        for node in self.nodes.values():
            ip_batch([f"route add {cidr} dev {self.names.service_sink}"], netns=node.netns)
        self.service_ranges = (*self.service_ranges, cidr)

    def _build_fabric(self) -> None:
        """The fabric bridge, each node's link to it and address on it, and the routes between
        the nodes (module docstring). No route leads anywhere but to another node."""
        fabric, bridge, link = (
            self.names.fabric_netns,
            self.names.fabric_bridge,
            self.names.fabric_link,
        )
        if IPV6_CONF.exists():
            write_sysctls(fabric, NODE_LINK_SYSCTLS)
        ip_batch(
            [
                "link set lo up",
                f"link add {bridge} type bridge mcast_snooping 0",
                f"link set {bridge} up",
            ],
            netns=fabric,
        )
        for node in self.nodes.values():
            port = self.names.fabric_port(node.number)
            ip_batch(
                [
                    f"link add {link} address {mac_for(node.address)} type veth"
                    f" peer name {port} netns {fabric}",
                    f"addr add {node.address}/{FABRIC_CIDR.prefixlen} dev {link}",
                    f"link set {link} up",
                ],
                netns=node.netns,
            )
        ip_batch(
            [
                f"link set {self.names.fabric_port(n.number)} master {bridge} up"
                for n in self.nodes.values()
            ],
            netns=fabric,
        )
        for node in self.nodes.values():
            routes = [
                f"route add {other.pod_cidr} via {other.address} dev {link}"
                for other in self.nodes.values()
                if other is not node
            ]
            if node.name != PROXY_NODE:
                routes.append(f"route add {CLIENT_LINKS} via {self.nodes[PROXY_NODE].address}")
            ip_batch(routes, netns=node.netns)

    def _build_external(self, client: Client) -> None:
        """The external client's link to the fabric bridge, its addresses and sysctls (module
        docstring); its only routes are the fabric's /24, a default via node-1 and, from each
        node's load-balancer source, the ingress ranges via that node."""
        fabric, port = self.names.fabric_netns, self.names.external_port
        ip_batch(
            [
                f"link add {port} type veth peer name eth0"
                f" address {mac_for(client.address)} netns {client.netns}",
                f"link set {port} master {self.names.fabric_bridge} up",
            ],
            netns=fabric,
        )
        write_sysctls(client.netns, CLIENT_SYSCTLS)
        inside = [(client.netns, client.sources, FABRIC_CIDR.prefixlen, client.gateway)]
        in_thread(lambda: _configure_inside(inside))
        numbers = [node.number for node in self.nodes.values()]
        ip_batch(load_balancer_routes(numbers, INGRESS_RANGES), netns=client.netns)

    def _build_node(self, node: Node) -> None:
        """Node `node`'s links (sink, bridge; node-1 also the clients'), routes and sysctls."""
        bridge = self.names.bridge
        sink, sink_peer = self.names.service_sink, self.names.service_sink_peer
        lines = [
            "link set lo up",
            f"link add {sink} type veth peer name {sink_peer}",
            f"link set {sink} arp off up",
            *(f"route add {cidr} dev {sink}" for cidr in self.service_ranges),
            f"link add {bridge} address {mac_for(node.gateway)} type bridge mcast_snooping 0",
            f"addr add {node.gateway}/{node.pod_cidr.prefixlen} dev {bridge}",
            f"link set {bridge} up",
        ]
        clients = node.name == PROXY_NODE
        if clients:
            lines += self._client_links()
        if IPV6_CONF.exists():
            write_sysctls(node.netns, NODE_LINK_SYSCTLS)
        ip_batch(lines, netns=node.netns)
        write_sysctls(node.netns, NODE_SYSCTLS)
        if clients:
            self._configure_clients()

    def _client_links(self) -> list[str]:
        """The `ip` lines in node-1 that link the client namespaces to it."""
        lines: list[str] = []
        for number, client in enumerate(self.clients.values(), start=1):
            veth = self.names.client_veth(number)
            lines += [
                f"link add {veth} address {mac_for(client.gateway)} type veth"
                f" peer name eth0 netns {client.netns}",
                f"addr add {client.gateway}/24 dev {veth}",
                f"link set {veth} up",
            ]
        return lines

    def _configure_clients(self) -> None:
        """Inside each client namespace: sysctls, addresses, the default route via node-1."""
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
            hosts = [self._node_of(pod.node) for pod in pods]
            for node in self.nodes.values():
                ip_batch(
                    [
                        line
                        for handle, host in zip(handles, hosts, strict=True)
                        if host is node
                        for line in self._pod_link(handle)
                    ],
                    netns=node.netns,
                )
            inside = [
                (h.netns, (h.address,), host.pod_cidr.prefixlen, host.gateway)
                for h, host in zip(handles, hosts, strict=True)
            ]
            in_thread(lambda: _configure_inside(inside))
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

    def _pod_link(self, handle: PodHandle) -> list[str]:
        """The `ip` lines in its node that link a new pod to the node's bridge."""
        return [
            f"link add {handle.veth} type veth peer name eth0"
            f" address {mac_for(handle.address)} netns {handle.netns}",
            f"link set {handle.veth} master {self.names.bridge} up",
            f"link set {handle.veth} type bridge_slave hairpin on",
            f"neigh replace {handle.address} lladdr {mac_for(handle.address)}"
            f" dev {self.names.bridge} nud permanent",
        ]

    def _wait_reachable(self, addresses: Sequence[tuple[str, int]]) -> None:
        """Return once node-1 can open a TCP connection to every address.

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
        for netns in dict.fromkeys(h.node_netns or self.node_netns for h in handles):
            mine = [h for h in handles if (h.node_netns or self.node_netns) == netns]
            lines = [f"link del {h.veth}" for h in mine]
            lines += [f"neigh del {h.address} dev {self.names.bridge}" for h in mine]
            ip_batch(lines, netns=netns, force=True)
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
    served = ("TCP", "UDP", "SCTP")
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
