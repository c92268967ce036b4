"""Clients on the nodes' own networks (`--pods cluster`): NodePort traffic from outside a node,
and a node's host network as a client (issue 11 item 9; invariants I4, I10).

One hostNetwork client pod per mapped node (`harness.kube.objects.host_client_manifest`, named
`<run>-host-<model node>`, labelled with the run, pinned by `nodeName`), in the run's own
namespace: `start()` creates them and waits (bounded) until they run, `close()` deletes them, and
whatever a killed run leaves goes with its namespace (`harness clean --kube`).

- From outside (`TrafficRequest.external_node`): a request for node N's node port runs in the
  client on *another* node (`outside_of`: the next mapped node, node-1 -> node-2 -> node-1) and
  goes to N's InternalIP (the Node object's `status.addresses`) on the Service port's node port.
  It leaves that node's host network from its own address and arrives at N from outside, as
  upstream's e2e NodePort tests send it; so every node is judged from outside itself. Each
  connection also asks the answering pod which source it saw (`harness.kube.traffic`,
  `report_source`): under externalTrafficPolicy Local it must be the sending node's InternalIP
  (`source_for`), under Cluster anything.
- From a node (`TrafficRequest.client_node`): the client on that node sends to the Service's
  ClusterIP, through that node's proxy, as a hostNetwork pod does.

A cluster whose model nodes map onto one node cannot be judged from outside (`one_node`); the
kube target then creates no such pod and says why. Sends change no cluster state: every batch
is a bounded curl loop (`harness.kube.traffic.run_batch`), or for a UDP Service port a bounded
nc loop (`harness.kube.udp`, each flow asking `clientip` too from outside), and goes only to the
mapped nodes' addresses or a ClusterIP of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import EnvironmentProblem, UsageError
from harness.kube import healthprobe
from harness.kube.api import Cluster
from harness.kube.objects import host_client_manifest, host_client_name
from harness.kube.observe import Watched
from harness.kube.runtime import pod_problem, wait_until_ready
from harness.kube.scope import Scope
from harness.kube.traffic import Exec
from harness.kube.udp import TCP, send_batch
from harness.traffic import HealthCheckReply, HealthCheckRequest, TrafficRequest, TrafficSample

CREATE_WAIT_S = 30.0  # until a new namespace's default ServiceAccount exists
INTERNAL_IP = "InternalIP"


def one_node(nodes: Mapping[str, str]) -> str | None:
    """Why the mapping `nodes` (model node -> cluster node) leaves no node to be reached from
    outside itself (every model node on one cluster node), or None when it has two or more."""
    real = sorted(set(nodes.values()))
    if len(real) > 1:
        return None
    where = real[0] if real else "none"
    return (
        f"the model's nodes map onto one cluster node ({where}): a one-node cluster cannot be"
        " judged from outside a node (map them onto two nodes: nodes=a,b in the extra options)"
    )


LOCAL_PODS = (
    "--pods local runs one node namespace (node-1's proxy), so no node port can be reached from"
    " outside another node: use --pods cluster on a cluster of two nodes or more, or"
    " --target local:iptables --nodes 2"
)
TURNED_OFF = "the hostNetwork client pods are turned off (host_clients=off)"
SWITCH_VALUES = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def switch(extra: Mapping[str, Any], key: str, default: bool) -> bool:
    """The on/off target option `key` of `extra` (`default` when absent). UsageError, one line
    naming the option and its values, for anything else."""
    value = extra.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    found = SWITCH_VALUES.get(str(value).strip().lower())
    if found is None:
        raise UsageError(f"the kube target option {key} must be on or off, not {value!r}")
    return found


def host_clients_problem(
    pods: str, extra: Mapping[str, Any], nodes: Mapping[str, str] | None
) -> str | None:
    """Why a run with `--pods` `pods`, extra options `extra` and the node mapping `nodes` gets
    no hostNetwork clients (so `node-port` and `every-node` are not applicable there), or None
    when it gets them: `--pods local` (one node namespace, `LOCAL_PODS`), `host_clients=off`,
    or one mapped node (`one_node`). UsageError for a `host_clients` that is not on or off.
    Pure."""
    if pods == "local":
        return LOCAL_PODS
    if not switch(extra, "host_clients", True):
        return TURNED_OFF
    return one_node(nodes or {})


def outside_of(nodes: Sequence[str], node: str) -> str:
    """The model node whose client sends to `node` from outside: the next one of `nodes` (in
    their order, wrapping round). UsageError for a node not in `nodes`."""
    if node not in nodes:
        raise UsageError(f"no node {node!r} to send to from outside ({', '.join(nodes)})")
    return nodes[(nodes.index(node) + 1) % len(nodes)]


def internal_addresses(listing: Any, names: Sequence[str]) -> dict[str, str]:
    """Each of the cluster nodes `names` with its first `InternalIP` address (`status.addresses`
    of the Node objects in `listing`, a `list nodes` answer). One-line EnvironmentProblem
    naming a node that has none. Pure."""
    found: dict[str, str] = {}
    for node in getattr(listing, "items", None) or []:
        name = node.metadata.name
        status = node.status
        addresses = (status.addresses if status is not None else None) or []
        internal = [a.address for a in addresses if a.type == INTERNAL_IP and a.address]
        if name in names and internal:
            found[name] = internal[0]
    missing = [name for name in names if name not in found]
    if missing:
        raise EnvironmentProblem(
            f"node {missing[0]} has no InternalIP address in its status: the harness sends"
            " NodePort traffic to the nodes' InternalIPs"
        )
    return found


class HostClients:
    """The hostNetwork client pods of one run (module docstring), on the cluster nodes `nodes`
    (model node -> cluster node, two or more distinct)."""

    def __init__(
        self,
        scope: Scope,
        pods: Watched,
        nodes: Mapping[str, str],
        exec_function: Exec,
        startup_s: float,
    ) -> None:
        self._scope = scope
        self._pods = pods
        self.nodes = dict(nodes)
        self._exec = exec_function
        self._startup_s = startup_s
        self._created: list[str] = []
        self.addresses: dict[str, str] = {}  # model node -> its cluster node's InternalIP

    @property
    def names(self) -> tuple[str, ...]:
        """The model nodes, in name order."""
        return tuple(sorted(self.nodes))

    def pod_name(self, model_node: str) -> str:
        return host_client_name(self._scope.placement.run, model_node)

    def start(self) -> None:
        """Read the nodes' InternalIPs, create one client pod per node and wait until all run
        (one-line EnvironmentProblem naming a pod that cannot start). On failure the pods made
        so far stay recorded, so `close()` removes them."""
        cluster: Cluster = self._scope.cluster
        listing = cluster.call("list nodes (cluster scope)", cluster.core.list_node)
        real = internal_addresses(listing, sorted(set(self.nodes.values())))
        self.addresses = {model: real[node] for model, node in self.nodes.items()}
        for model_node in self.names:
            name = self.pod_name(model_node)
            manifest = host_client_manifest(name, self._scope.placement, self.nodes[model_node])
            self._scope.create_pod(manifest, self._scope.clock, CREATE_WAIT_S)
            self._created.append(name)
        wait_until_ready(self._pods, list(self._created), self._startup_s, self._scope.clock)

    def source_for(self, node: str) -> str:
        """The address a connection to `node` from outside leaves from: the InternalIP of the
        node whose client sends it (`outside_of`)."""
        return self.addresses[outside_of(self.names, node)]

    def send_external(
        self, request: TrafficRequest, node_port: int, protocol: str = TCP
    ) -> TrafficSample:
        """`request` from outside to its `external_node`'s InternalIP on `node_port` (of
        `protocol`, TCP or UDP: `harness.kube.udp`), from the client on another node, each
        connection (UDP: flow) reporting the source its pod saw."""
        node = request.external_node
        if node is None:
            raise UsageError("send_external needs a request with external_node")
        sender = outside_of(self.names, node)
        if request.sources != (0,):
            raise UsageError("the kube target's external client has one source address per node")
        return send_batch(
            self._exec,
            self.pod_name(sender),
            request,
            self.addresses[node],
            node_port,
            self._scope.clock,
            protocol,
            report_source=True,
        )

    def ask_health(self, request: HealthCheckRequest) -> HealthCheckReply:
        """One GET of `request.node`'s healthCheckNodePort `request.port` at its InternalIP,
        from the client on another node (`outside_of`), as a cloud load balancer's health check
        asks it (`harness.kube.healthprobe`). UsageError for a node without a client."""
        sender = outside_of(self.names, request.node)
        argv = healthprobe.build_command(request, self.addresses[request.node])
        budget_s = request.timeout_s + healthprobe.EXEC_OVERHEAD_S
        return healthprobe.parse_output(request, self._exec(self.pod_name(sender), argv, budget_s))

    def send_from(
        self, request: TrafficRequest, address: str, port: int, protocol: str = TCP
    ) -> TrafficSample:
        """`request` from its `client_node`'s host network to `address:port` (a ClusterIP), of
        `protocol` (TCP or UDP)."""
        node = request.client_node
        if node is None or node not in self.nodes:
            known = ", ".join(self.names)
            raise UsageError(f"no node {node!r} to send from ({known})")
        if request.sources != (0,):
            raise UsageError("a node as the client has one source address: use sources=(0,)")
        clock = self._scope.clock
        return send_batch(self._exec, self.pod_name(node), request, address, port, clock, protocol)

    def check(self) -> None:
        """One-line EnvironmentProblem for a client pod that can no longer run."""
        for name in self._created:
            pod = self._pods.get(name)
            problem = pod_problem(pod) if pod is not None else None
            if problem is not None:
                raise EnvironmentProblem(f"host client pod {name} cannot run: {problem}")

    def close(self) -> None:
        """Delete the client pods (grace 0). Idempotent; a pod already gone is fine."""
        while self._created:
            self._scope.delete_pod(self._created.pop())
