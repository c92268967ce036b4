"""The `local` target: a real cluster on this host, with no container runtime and no Kubernetes.

`local:PROXY` (default `local:iptables`) runs pods as network namespaces behind a node namespace
(`harness.local.cluster`), plays the API server and the EndpointSlice controller itself (its own
`ClusterState`, `harness.local.controller`) and feeds the proxy under test through the Proxy
contract. Traffic is real: bounded batches of TCP connections from client namespaces to the
Service VIPs (`harness.local.traffic`), answered by the pods with their name and incarnation.

How an event becomes real (`apply`): the new state is `event.apply(state)`, exactly the model's;
then pod incarnations that ended (deleted, killed, restarted, evicted, grace period over) lose
their namespace, new incarnations get one with the model's IP and ports, and the proxy is handed
the Service and slice changes and synced. Readiness is a control-plane flag only: an unready pod
still answers if traffic reaches it, which is how a proxy that ignores readiness is caught.

Nodes (`nodes`, `--nodes`): each node namespace runs its own instance of the proxy under test
(`harness.local.node_proxies`), told its node's name, namespace and work directory, and fed by a
controller of its own; every change goes to all of them, and `sync_state` says programmed only
when every instance has. Pods hang off their own node (`Pod.node`), the clients off node-1, whose
proxy they go through; a host-network client in each node (`TrafficRequest.client_node`, made
on first use) sends through that node's proxy. With one node (the default when built directly)
the model's second node is logical: its pods hang off node-1 and node-1's proxy serves them.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from ipaddress import ip_address
from typing import Any, ClassVar, cast

from harness.clock import RealClock
from harness.errors import EnvironmentProblem, UsageError
from harness.events import (
    MAX_STALE_BACK,
    Event,
    OutOfWindow,
    RestartProxy,
    StaleSnapshot,
    UnobservedChanges,
    unknown_node,
)
from harness.local.cleanup import guard
from harness.local.cluster import (
    CLIENT_SOURCES,
    INGRESS_RANGES,
    LocalCluster,
    PodHandle,
    RunCluster,
    check_node_count,
)
from harness.local.controller import EndpointController
from harness.local.counting import count_fresh
from harness.local.healthprobe import ask_health
from harness.local.loopback import LoopbackCluster, TranslatingProxy
from harness.local.names import check_prefix, netns_path, new_prefix
from harness.local.node_proxies import NodeProxies
from harness.local.outofwindow import Sent, send_out_of_window
from harness.local.traffic import Batch, ClientAgent
from harness.model.objects import PROXY_NODE, Backend, EndpointSlice, Pod, Service, run_nodes
from harness.model.state import EXTERNAL_IP_CIDR, SERVICE_CIDR, ClusterState
from harness.protocols import sctp_unsupported
from harness.proxies.base import NodeContext, Proxy, SyncState
from harness.proxies.failure import ProxyFailure, last_line
from harness.proxies.userspace import UserspaceProxy
from harness.registry import TargetOptions, load_proxy
from harness.traffic import (
    CLIENTS,
    EXTERNAL_IP_AND_LOAD_BALANCER,
    VIA_LOAD_BALANCER_SOURCES,
    HealthCheckReply,
    HealthCheckRequest,
    Outcome,
    Reachability,
    Tally,
    TrafficRequest,
    TrafficSample,
)
from harness.versions import proxy_version

EXTERNAL_AGENT = "<external>"
"""The external client's agent's key among the nodes' agents (no node has this name)."""

DEFAULT_PROXY = "iptables"
LOOPBACK = "loopback"
NEEDS_ROOT = (
    "the local target needs root to create network namespaces;"
    " run as root, or use --target local:loopback (pods on 127.x addresses, userspace proxy)"
)


ProxyFactory = Callable[[], Proxy]


def proxy_factory(name: str, options: TargetOptions) -> ProxyFactory:
    """A maker of fresh, unstarted proxies of the registered class `name`; classes that need
    options (an external command) provide `from_options(options)`, the others are built without
    arguments. A proxy that takes no command refuses `--proxy-command` (UsageError)."""
    proxy_class = load_proxy(name)
    from_options = getattr(proxy_class, "from_options", None)
    if callable(from_options):
        from_options(options)  # checks the options now, before anything starts
        return lambda: cast(Proxy, from_options(options))
    if options.proxy_command:
        raise UsageError(
            f"--proxy-command is for local:external (and kube --pods local); the {name} proxy"
            " takes no command: drop --proxy-command or use --target local:external"
        )
    return cast(ProxyFactory, proxy_class)


def check_environment() -> None:
    """EnvironmentProblem (one line) unless this process can build namespaces: root, with
    CAP_NET_ADMIN and CAP_SYS_ADMIN in its effective set (uid 0 in an unprivileged container has
    neither), and the `ip` tool. Reads /proc/self/status; changes nothing."""
    if os.geteuid() != 0:
        raise EnvironmentProblem(NEEDS_ROOT)
    try:
        with open("/proc/self/status") as status:
            lines = status.read().splitlines()
    except OSError:
        lines = []  # no /proc to ask: the namespace commands will say what they lack
    effective = next((int(line.split()[1], 16) for line in lines if line.startswith("CapEff:")), -1)
    needed = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21}  # linux/capability.h
    missing = [name for name, bit in needed.items() if not effective >> bit & 1]
    if missing:
        raise EnvironmentProblem(
            "the local target needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN to create network"
            f" namespaces, and this process lacks {' and '.join(missing)} (an unprivileged"
            " container?); grant them (docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN), or"
            " use --target local:loopback (pods on 127.x addresses, userspace proxy)"
        )
    if shutil.which("ip") is None:
        raise EnvironmentProblem("the local target needs the `ip` tool: apt-get install iproute2")


class LocalTarget:
    """Pods as namespaces, a real proxy, real traffic (see the module docstring).

    Target contract obligations (harness.targets.base.Target) plus:

    - `reset()` empties the cluster and starts a *fresh proxy* (a new instance, a new process):
      every example, shrinking replay and confirmation begins from a state its sequence fully
      describes, so nothing a proxy leaked in one example can show up in the next.
    - `reachability()` (the `RuleOracle`) when the proxy can read its rules back
      (`reads_rules`).
    - `nodes` node namespaces (1 to 16; UsageError otherwise), each with its own proxy
      instance (module docstring); `node_names` are those with a namespace, `accepted_nodes`
      those a pod may be placed on (at least the model's two).
    - Plug-in points, for targets registered under `harness.targets` that subclass this one:
      `controller_class` (the endpoint controller: replace it, or pass one to the constructor,
      to test another control plane; rule reading, reset and cleanup stay as they are) and
      `kind` (the spec name the target is registered under).
    """

    kind: ClassVar[str] = "local"
    description = "real pods as network namespaces behind a real proxy (local:iptables, ...)"
    controller_class: type[EndpointController] = EndpointController
    # Proxies here program in milliseconds (p99 well under a second even on a loaded 2-core
    # machine), so the upstream 30 s budget would only make every failing step slow to report.
    default_deadline_s = 5.0
    max_sources = CLIENT_SOURCES
    runs_proxy = True
    sends_udp = True  # the client agents send UDP flows (`harness.local.udp`)
    addresses_removed_ports = True  # `TrafficRequest.removed_port`: a number on the last VIP

    def __init__(
        self,
        new_proxy: ProxyFactory,
        prefix: str | None = None,
        clients: tuple[str, ...] = CLIENTS,
        loopback: bool = False,
        controller_class: type[EndpointController] | None = None,
        nodes: int = 1,
    ) -> None:
        try:
            self.nodes = check_node_count(nodes)
        except ValueError as error:
            raise UsageError(f"{error}; give --nodes 1 to 16") from None
        if loopback and nodes != 1:
            raise UsageError(
                "local:loopback has one node (its pods share a namespace); drop --nodes"
            )
        self.clock = RealClock()
        if controller_class is not None:
            self.controller_class = controller_class
        self.new_proxy = new_proxy
        self.proxy = new_proxy()
        self.prefix = check_prefix(prefix) if prefix else new_prefix()
        self.loopback = loopback
        proxy_name = "loopback" if loopback else getattr(self.proxy, "name", "")
        self.name = f"{self.kind}:{proxy_name or type(self.proxy).__name__}"
        self.client_names = clients
        self.state = ClusterState()
        self.cluster: RunCluster | None = None
        self.controller = self.controller_class(self.proxy)
        self._proxies = NodeProxies(self.controller_class)
        self._fresh = False
        self._contexts: list[NodeContext] = []
        self._handles: dict[str, PodHandle] = {}
        self._agents: dict[str, ClientAgent] = {}
        self._node_agents: dict[str, ClientAgent] = {}  # by node: host-network clients
        self._pod_agents: dict[str, ClientAgent] = {}  # by pod handle key: pods as clients
        self._vips: dict[str, Service] = {}
        self._held: dict[int, tuple[str, int]] = {}
        self.out_of_window_sent: list[Sent] = []  # the last `OutOfWindow`'s segments
        self._past: deque[ClusterState] = deque(maxlen=MAX_STALE_BACK)  # states before changes
        self._stack = ExitStack()

    @classmethod
    def from_spec(cls, arg: str | None, options: TargetOptions) -> LocalTarget:
        """`KIND[:PROXY]`: PROXY is a registered proxy name (default iptables)."""
        if options.prefix is not None:
            try:
                check_prefix(options.prefix)
            except ValueError as error:
                raise UsageError(str(error)) from None
        if arg == LOOPBACK:
            if options.proxy_command:
                raise UsageError("--proxy-command does not apply to local:loopback; drop it")
            if options.nodes not in (None, 1):
                raise UsageError(
                    "local:loopback has one node (its pods share a namespace); drop --nodes"
                )
            return cls(UserspaceProxy, prefix=options.prefix, loopback=True)
        return cls(
            proxy_factory(arg or DEFAULT_PROXY, options),
            prefix=options.prefix,
            nodes=options.nodes or 1,  # `harness run` and the suite ask for RUN_NODES
        )

    @property
    def node_names(self) -> tuple[str, ...]:
        """The nodes with a namespace and a proxy of their own, node-1 first."""
        return run_nodes(self.nodes)[: 1 if self.loopback else self.nodes]

    @property
    def accepted_nodes(self) -> tuple[str, ...]:
        """The nodes a pod may be placed on (`harness.model.objects.run_nodes`)."""
        return run_nodes(self.nodes)

    def versions(self) -> dict[str, str]:
        """The proxy's version line (`harness.versions.proxy_version`); reads only."""
        return {"proxy": proxy_version(self.proxy)}

    @property
    def sends_from_pods(self) -> bool:
        """Whether requests may come from inside a pod (`TrafficRequest.client_pod`): every pod
        has a namespace of its own, except on the loopback variant."""
        return not self.loopback

    @property
    def sends_sctp(self) -> bool:
        """Whether the clients send SCTP (`harness.local.sctp`): where the kernel tracks SCTP
        (`harness.protocols.sctp_unsupported`), except on the loopback variant (its pods share
        the harness's namespace, where no raw SCTP responder may run). Reads files only."""
        return not self.loopback and sctp_unsupported() is None

    @property
    def records_pod_node_ports(self) -> bool:
        """Whether a pod may send to a node's node port (`TrafficRequest.to_node_port`): where
        pods have namespaces of their own and the nodes have addresses (2 nodes or more)."""
        return self.sends_from_pods and len(self.node_names) > 1

    @property
    def reads_rules(self) -> bool:
        """Whether the proxy can read its programmed rules back (`RuleReadingProxy`)."""
        return callable(getattr(self.proxy, "reachability", None))

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Build the node, the clients and the pod server, start the proxy (about 0.2 s).

        Raises EnvironmentProblem without root, and when the proxy cannot start at all (a
        missing command, no answer to hello): that is the environment's or the command line's
        problem, not a verdict. On any failure, what was built is removed.
        """
        if self.cluster is not None:
            raise UsageError(f"the target {self.name} is already open")
        if not self.loopback:
            check_environment()
        try:
            self._stack.callback(guard(self.close))
            cluster: RunCluster
            if self.loopback:
                cluster = LoopbackCluster(self.prefix, self.client_names)
            else:
                cluster = LocalCluster(
                    self.prefix, self.client_names, (str(SERVICE_CIDR), *INGRESS_RANGES), self.nodes
                )
            self.cluster = self._stack.enter_context(cluster)
            self._contexts = [self._context(self.cluster, node) for node in self.node_names]
            self._stack.callback(self._stop_proxy)
            try:
                self._start_proxy(self.new_proxy())
            except ProxyFailure as failure:
                raise EnvironmentProblem(
                    f"the proxy could not start: {failure.problem}"
                    + (f" ({last_line(failure.stderr_tail)})" if failure.stderr_tail else "")
                    + "; check the proxy (for local:external, its --proxy-command)"
                ) from None
            for client in self.cluster.clients.values():
                agent = self._stack.enter_context(ClientAgent(client.netns or None))
                self._agents[client.name] = agent
        except BaseException:
            self.close()
            raise

    def _context(self, cluster: RunCluster, node: str) -> NodeContext:
        """Where `node`'s proxy runs: its namespace and a work directory of its own (node-1's
        is `proxy`, as before the cluster had nodes)."""
        assert cluster.workdir is not None
        workdir = cluster.workdir / ("proxy" if node == PROXY_NODE else f"proxy-{node}")
        workdir.mkdir()
        netns = cluster.node_netns_of(node)
        return NodeContext(node, netns, self.prefix, workdir, str(SERVICE_CIDR))

    def _start_proxy(self, proxy: Proxy) -> None:
        """Start `proxy` on node-1 and a fresh instance on every other node, each with a
        controller of its own (nothing handed to any yet)."""
        assert self.cluster is not None
        self.proxy = proxy
        self._fresh = True
        cluster = self.cluster

        def fed(instance: Proxy) -> Proxy:
            if isinstance(cluster, LoopbackCluster):
                return TranslatingProxy(instance, cluster.addresses)
            return instance

        self._proxies.controller_class = self.controller_class
        self._proxies.start(self._contexts, self.new_proxy, fed, first=proxy)
        self.controller = self._proxies.members[0].controller

    def _stop_proxy(self) -> None:
        """Stop every node's proxy (`NodeProxies.stop`: idempotent)."""
        self._proxies.stop()

    def _restart_proxy(self, while_down: Sequence[Event] = ()) -> None:
        """`RestartProxy`: stop every node's proxy and start a new instance of each in the same
        node namespace, then hand it every Service and slice and sync, as a restarted kube-proxy
        lists everything from the API server and programs it anew. The node's connection
        tracking is left alone: established connections must survive the restart (Cilium's
        conn-disrupt test). A proxy that cannot start again raises `ProxyFailure` (one
        proxy-contract verdict). `while_down`: changes made to the cluster (its pods) between
        the stop and the start, one by one, which no proxy instance is handed (none runs)."""
        self._open_cluster()
        states, state = [], self.state
        for change in while_down:  # refused before anything stops
            self._check_node(change)
            state = change.apply(state)
            states.append(state)
        self._proxies.stop(for_restart=True)  # a RuleKeepingProxy leaves its rules for the next
        for state in states:  # no proxy runs: only the pods change
            self._set_state(state)
        self._start_proxy(self.new_proxy())
        self._fresh = False
        self._set_state(self.state)

    def close(self) -> None:
        """Stop the proxy and the pod server, delete every namespace and the work directory.
        Idempotent; also called at exit and on SIGTERM while the target is open."""
        try:
            self._close_pod_agents(list(self._pod_agents))
            self._close_node_agents()
            self._stack.close()
        finally:
            self.cluster = None
            self._contexts = []
            self._agents = {}
            self._held = {}
            self._handles = {}
            self._vips = {}
            self.state = ClusterState()
            self._past.clear()
            self.controller = self.controller_class(self.proxy)

    def reset(self) -> None:
        """Back to an empty cluster (no Services, no pods) with a fresh proxy, keeping node and
        clients: the old proxy is stopped (its rules, processes and files go), every pod is
        removed, and a new proxy instance starts with nothing programmed.

        The node's connection tracking is flushed too, as a new cluster's would be empty: the
        next example reuses the same VIPs and pod IPs, and a client source port that matched an
        old entry would follow its old NAT binding to a pod that is gone.
        """
        self._open_cluster()
        if not self._fresh:  # a proxy nothing was handed to yet is as fresh as a new one
            self._stop_proxy()
            self.state = ClusterState()
            self._start_proxy(self.new_proxy())
        self.release_held()
        self._set_state(ClusterState())
        self._past.clear()
        self._vips = {}
        self._open_cluster().forget_connections()

    # -- the Target contract ------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Make the change real and hand it to the proxy; returns after `proxy.sync()`.
        `RestartProxy` restarts the proxy (`_restart_proxy`); `StaleSnapshot` shows it an
        earlier state first (`_show_stale`); `UnobservedChanges` hands it only the end state
        (`apply_many`)."""
        if isinstance(event, RestartProxy):
            self._restart_proxy(event.while_down)
            return
        if isinstance(event, StaleSnapshot):
            self._show_stale(event.back)
            return
        self._check_node(event)
        if isinstance(event, UnobservedChanges):  # the proxy sees only the end state
            self.apply_many(event.changes)
            return
        if isinstance(event, OutOfWindow):
            self._send_out_of_window(event)
            return
        self._fresh = False
        self._set_state(event.apply(self.state))

    def _check_node(self, event: Event) -> None:
        """UsageError (one line) for an event that places a pod on a node this target lacks."""
        node = getattr(event, "node", None)
        if isinstance(node, str) and node not in self.accepted_nodes:
            raise UsageError(unknown_node(node, self.accepted_nodes))

    def apply_many(self, events: Sequence[Event]) -> None:
        """Apply several events as one change: realised in one batch and synced once.

        For building large clusters fast (benchmarks); the end state is the one `apply` would
        reach event by event, but the proxy never sees the intermediate states.
        """
        state = self.state
        for event in events:
            state = event.apply(state)
        self._fresh = False
        self._set_state(state)

    def _show_stale(self, back: int) -> None:
        """`StaleSnapshot`: hand the proxy the Services and slices of the state `back` changes
        ago (the empty cluster before the first ones) and sync, then hand it the current ones
        and sync, as a watch that relisted from a lagging API server and then caught up. Pods
        are not touched: only the proxy's view goes back."""
        stale = self._past[-back] if back <= len(self._past) else ClusterState()
        self._fresh = False
        self._proxies.update(stale)
        self._proxies.sync()
        self._proxies.update(self.state)
        self._proxies.sync()

    def _set_state(self, state: ClusterState) -> None:
        if state != self.state:
            self._past.append(self.state)
        cluster = self._open_cluster()
        ended = [
            handle
            for name, handle in self._handles.items()
            if not _serving(state.pods.get(name), handle.uid)
        ]
        self._close_pod_agents([handle.key for handle in ended])
        cluster.remove_pods(ended)
        for handle in ended:
            del self._handles[handle.pod]
        interim = self.controller.interim(state)
        if interim is not None:  # a recreated pod: the old one's slices go first, and are synced
            self._proxies.update(interim)
            self._proxies.sync()
        started = [
            pod
            for pod in state.pods.values()
            if _serving(pod, pod.uid) and pod.name not in self._handles
        ]
        for handle in cluster.add_pods(started):
            self._handles[handle.pod] = handle
        self.state = state
        self._vips.update(state.services)
        self._proxies.update(state)
        self._proxies.sync()

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]:
        return self.controller.published(service)

    def send(self, request: TrafficRequest) -> TrafficSample:
        """One bounded batch from the client's namespace (or from inside `client_pod`) to the
        Service's VIP and port.

        A Service deleted since is still addressed at its last VIP (what a client with a cached
        address would do); a Service never created, an unknown port or client is a UsageError.
        """
        address, port = self._destination(request)
        client_node = request.client_node
        if request.client_pod is not None:
            agent = self._pod_agent(request)
            sources: tuple[str, ...] = ()  # the pod's own address, the kernel's choice
            if request.to_node_port is not None:
                address, port = self._node_port_destination(request, request.to_node_port)
        elif request.external_node is not None and request.external_ip is not None:
            agent, sources = self._load_balancer_agent(request, request.external_node)
            address, port = self._external_ip_destination(request, request.external_ip)
        elif request.external_node is not None and request.via_load_balancer:
            agent, sources = self._load_balancer_agent(request, request.external_node)
            address, port = self._load_balancer_destination(request)
        elif request.external_node is not None:
            agent, sources = self._external_agent(request)
            address, port = self._node_port_destination(request, request.external_node)
        elif client_node is not None:
            agent, sources = self._node_agent(client_node, request)
        else:
            agent = self._agents[request.client]
            addresses = self._open_cluster().clients[request.client].sources
            if not request.sources or not all(0 <= s < len(addresses) for s in request.sources):
                raise UsageError(
                    f"a client's source addresses are numbered 0 to {len(addresses) - 1}"
                )
            sources = tuple(addresses[s] for s in request.sources)
        batch = Batch(
            address,
            port,
            request.count,
            request.keep_alive,
            max(request.connections, 1),
            request.timeout_s,
            sources,
            request.time_limit_s,
            request.parallel and not request.keep_alive,
            self._protocol(request),
        )
        started_s = self.clock.now()
        outcomes = agent.run(batch)
        if request.sources != (0,):  # the agent numbers sources by position in the batch
            outcomes = [replace(o, source=request.sources[o.source]) for o in outcomes]
        return TrafficSample(request, tuple(outcomes), started_s, self.clock.now())

    # -- pods as clients ------------------------------------------------------------------------
    def _pod_agent(self, request: TrafficRequest) -> ClientAgent:
        """The client agent inside the running pod `request.client_pod` (requests leave from its
        pod IP): entered into the pod's namespace on first use and closed with the pod.
        UsageError on the loopback variant, for a pod not running, or for further source
        addresses (a pod has one)."""
        if not self.sends_from_pods:
            raise UsageError("local:loopback pods share one namespace: it cannot send from a pod")
        handle = self._handles.get(request.client_pod or "")
        if handle is None:
            raise UsageError(f"pod {request.client_pod!r} is not running: it cannot be a client")
        if request.sources != (0,):
            raise UsageError("a pod as the client has one source address: use sources=(0,)")
        agent = self._pod_agents.get(handle.key)
        if agent is None:
            agent = ClientAgent(handle.netns)
            agent.start()
            self._pod_agents[handle.key] = agent
        return agent

    # -- nodes' host networks as clients -------------------------------------------------------
    def _node_agent(
        self, node: str, request: TrafficRequest
    ) -> tuple[ClientAgent, tuple[str, ...]]:
        """The host-network client agent of `node` and its one source address (the node's own):
        made on first use, closed with the target. UsageError for a node without a namespace
        of its own, or for further source addresses."""
        cluster = self._open_cluster()
        address = cluster.node_address_of(node)
        if node not in self.node_names or address is None:
            raise UsageError(unknown_node(node, self.node_names, "send from"))
        if request.sources != (0,):
            raise UsageError("a node as the client has one source address: use sources=(0,)")
        agent = self._node_agents.get(node)
        if agent is None:
            agent = ClientAgent(cluster.node_netns_of(node))
            agent.start()
            self._node_agents[node] = agent
        return agent, (address,)

    # -- the external client -------------------------------------------------------------------
    @property
    def external_address(self) -> str | None:
        """The external client's own address (`TrafficRequest.external_node`), or None when the
        cluster has no external client (one node, or not open)."""
        external = self.cluster.external if self.cluster is not None else None
        return external.address if external is not None else None

    def _external_agent(self, request: TrafficRequest) -> tuple[ClientAgent, tuple[str, ...]]:
        """The external client's agent (made on first use, closed with the nodes' agents) and
        the request's source addresses. UsageError without an external client or for a source
        it lacks."""
        external = self._open_cluster().external
        if external is None:
            raise UsageError(
                "this local cluster has no external client: NodePort traffic needs --nodes 2"
                " or more"
            )
        if not request.sources or not all(0 <= s < len(external.sources) for s in request.sources):
            raise UsageError(
                f"the external client's source addresses are numbered 0 to"
                f" {len(external.sources) - 1}"
            )
        agent = self._node_agents.get(EXTERNAL_AGENT)
        if agent is None:
            agent = ClientAgent(external.netns)
            agent.start()
            self._node_agents[EXTERNAL_AGENT] = agent
        return agent, tuple(external.sources[s] for s in request.sources)

    def _node_port_destination(self, request: TrafficRequest, node: str) -> tuple[str, int]:
        """`node`'s own address and the request's Service port's node port (its last one).
        UsageError for a node without a namespace or a port without a node port."""
        address = self._open_cluster().node_address_of(node)
        if node not in self.node_names or address is None:
            raise UsageError(unknown_node(node, self.node_names, "send to"))
        service = self._vips[request.service]
        node_port = next(p.node_port for p in service.ports if p.name == request.port)
        if node_port is None:
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} has no node port (type"
                f" {service.type.value}): make it NodePort or LoadBalancer first"
            )
        return address, node_port

    # -- LoadBalancer ingress IPs from the external client ---------------------------------------
    def load_balancer_source(self, node: str) -> str | None:
        """The external client's address whose connections to an ingress IP go via `node`
        (`TrafficRequest.via_load_balancer`), or None without an external client or that node."""
        cluster = self.cluster
        return cluster.load_balancer_source_of(node) if isinstance(cluster, LocalCluster) else None

    def _load_balancer_agent(
        self, request: TrafficRequest, node: str
    ) -> tuple[ClientAgent, tuple[str, ...]]:
        """The external client's agent and its one source address that routes ingress IPs via
        `node`. UsageError without an external client, for a node the cluster lacks, or for
        further source addresses."""
        if request.sources != (0,):
            raise UsageError(VIA_LOAD_BALANCER_SOURCES)
        agent, _ = self._external_agent(request)
        source = self.load_balancer_source(node)
        if source is None:
            raise UsageError(unknown_node(node, self.node_names, "send via"))
        return agent, (source,)

    def _load_balancer_destination(self, request: TrafficRequest) -> tuple[str, int]:
        """The Service's ingress IP and the request's Service port. UsageError for a Service
        without an ingress IP (not a LoadBalancer)."""
        service = self._vips[request.service]
        port = next(p.port for p in service.ports if p.name == request.port)
        if service.load_balancer_ip is None:
            raise UsageError(
                f"Service {request.service!r} has no LoadBalancer ingress IP (type"
                f" {service.type.value}): make it LoadBalancer first"
            )
        return service.load_balancer_ip, port

    def _external_ip_destination(self, request: TrafficRequest, address: str) -> tuple[str, int]:
        """`address` and the request's Service port (`TrafficRequest.external_ip`: sent even
        where the Service does not list it, to see that nothing answers). UsageError for an
        address outside the externalIP range the external client routes (nothing else is sent
        there), or with `via_load_balancer` too."""
        if request.via_load_balancer:
            raise UsageError(EXTERNAL_IP_AND_LOAD_BALANCER)
        try:
            inside = ip_address(address) in EXTERNAL_IP_CIDR
        except ValueError:
            inside = False
        if not inside:
            raise UsageError(
                f"external_ip {address!r} is not in {EXTERNAL_IP_CIDR}, the range the external"
                " client hands to the nodes: use a Service's externalIP"
            )
        service = self._vips[request.service]
        return address, next(p.port for p in service.ports if p.name == request.port)

    def health_check(self, request: HealthCheckRequest) -> HealthCheckReply:
        """One HTTP GET from the external client to `request.node`'s own address on
        `request.port` (`harness.local.healthprobe`): what a kernel proxy's healthCheckNodePort
        answers there, or how the connection failed. UsageError without an external client or
        for a node the cluster lacks."""
        cluster = self._open_cluster()
        external, address = cluster.external, cluster.node_address_of(request.node)
        if external is None:
            raise UsageError(
                "this local cluster has no external client: health checks need --nodes 2 or more"
            )
        if request.node not in self.node_names or address is None:
            raise UsageError(unknown_node(request.node, self.node_names, "ask"))
        return ask_health(external.netns, address, request)

    def _close_node_agents(self) -> None:
        """Stop the nodes' host-network client agents. Idempotent."""
        agents, self._node_agents = self._node_agents, {}
        for agent in agents.values():
            agent.close()

    def _close_pod_agents(self, keys: Sequence[str]) -> None:
        """Stop the client agents of these pods (before their namespaces go). Idempotent."""
        for key in keys:
            agent = self._pod_agents.pop(key, None)
            if agent is not None:
                agent.close()

    # -- long-lived connections (`ConnectionHolder`) -------------------------------------------
    @property
    def relays_connections(self) -> bool:
        """Whether connections run through the proxy's own process (the proxy says so)."""
        return bool(getattr(self.proxy, "relays_connections", False))

    @property
    def out_of_window_unsupported(self) -> str | None:
        """Why a pod cannot send out-of-window segments here (`OutOfWindow`), or None."""
        if self.loopback:
            return "local:loopback pods are addresses of one namespace, not namespaces of their own"
        if self.relays_connections:
            return (
                "the proxy relays connections through its own process, which terminates TCP: a"
                " backend's out-of-window segment reaches the proxy's socket, never conntrack on"
                " the client's connection, so there is no INVALID packet to drop"
            )
        return None

    def _send_out_of_window(self, event: OutOfWindow) -> None:
        """`OutOfWindow`: the pod sends one out-of-window segment on each established
        connection it serves (`harness.local.outofwindow`); a pod not running sends nothing.
        Refused with its reason where unsupported, never taken as a no-op."""
        why = self.out_of_window_unsupported
        if why is not None:
            raise UsageError(f"{OutOfWindow.kind}: {why}")
        event.apply(self.state)
        handle = self._handles.get(event.pod)
        sent: list[Sent] = []
        if handle is not None:
            sent = send_out_of_window(netns_path(handle.netns), handle.address)
        self.out_of_window_sent = sent

    def hold(self, service: str, client: str, timeout_s: float) -> tuple[int | None, Outcome]:
        """Open a kept-alive connection from `client` to the Service's VIP, ask once and keep it
        (`ConnectionHolder`); its number, or None when the request failed."""
        request = TrafficRequest(service=service, client=client, count=1, timeout_s=timeout_s)
        address, port = self._destination(request)
        if self._protocol(request) == "udp":  # a flow with a fixed 5-tuple, kept whatever it got
            flow, answer = self._agents[client].hold_udp(address, port, timeout_s)
            return self._remember_held(client, flow, answer)
        agent_number, outcome = self._agents[client].hold(address, port, timeout_s)
        if agent_number is None:
            return None, outcome
        return self._remember_held(client, agent_number, outcome)

    def hold_node_port(
        self, service: str, node: str, timeout_s: float
    ) -> tuple[int | None, Outcome]:
        """Open a UDP flow with a fixed 5-tuple from the external client to `node`'s address on
        the node port of the Service's port `http`, ask once and keep it whatever it got
        (`ConnectionHolder.hold` for a UDP port, from outside; `harness.longlived`): its
        number, which `ask_held` and `release_held` take as any other. UsageError without an
        external client, for a node the cluster lacks, a port without a node port, or a TCP
        port (a held connection from outside is not judged)."""
        request = TrafficRequest(service=service, count=1, timeout_s=timeout_s, external_node=node)
        if self._protocol(request) != "udp":
            raise UsageError(
                f"Service {service!r} port {request.port!r} is not UDP: only UDP flows are held"
                " to a node port"
            )
        agent, _ = self._external_agent(request)
        address, port = self._node_port_destination(request, node)
        flow, answer = agent.hold_udp(address, port, timeout_s)
        return self._remember_held(EXTERNAL_AGENT, flow, answer)

    def _held_agent(self, client: str) -> ClientAgent:
        """The agent holding a connection of `client` (the external client's: `EXTERNAL_AGENT`)."""
        if client == EXTERNAL_AGENT:
            return self._node_agents[EXTERNAL_AGENT]
        return self._agents[client]

    def _remember_held(
        self, client: str, agent_number: int, outcome: Outcome
    ) -> tuple[int | None, Outcome]:
        number = len(self._held)
        self._held[number] = (client, agent_number)
        return number, replace(outcome, connection=number)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        """One request on a held connection; a failure closes it (`ConnectionHolder`)."""
        client, agent_number = self._held.get(number, (CLIENTS[0], -1))
        outcome = self._held_agent(client).ask_held(agent_number, timeout_s)
        return replace(outcome, connection=number)

    def release_held(self) -> None:
        """Close every held connection (also the external client's). Idempotent."""
        self._held = {}
        for agent in self._agents.values():
            agent.release_held()
        external = self._node_agents.get(EXTERNAL_AGENT)
        if external is not None:
            external.release_held()

    def tally(self, request: TrafficRequest) -> Tally:
        """At least `request.count` fresh connections from the client's own address, counted at
        the pods (`harness.local.counting`): for samples too large to send one by one. Bounded
        by `request.count * request.timeout_s`."""
        address, port = self._destination(request)
        protocol = self._protocol(request)
        if protocol in ("udp", "sctp"):
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} is {protocol.upper()};"
                " counting at the pods (wrk) is for TCP only: send a sample instead"
            )
        cluster = self._open_cluster()
        backends = {h.key: Backend(h.pod, h.uid) for h in self._handles.values()}
        started_s = self.clock.now()
        counted = count_fresh(
            cluster.clients[request.client].netns or None,
            f"http://{address}:{port}/",
            request.count,
            self.prefix,
            cluster.pod_server.counts,
            request.count * request.timeout_s,
        )
        answered: Counter[Backend] = Counter()
        for key, number in counted.answered.items():
            answered[backends.get(key, Backend("?", key))] += number
        return Tally(request, answered, counted.failed, started_s, self.clock.now())

    # -- helpers ------------------------------------------------------------------------------
    def _destination(self, request: TrafficRequest) -> tuple[str, int]:
        """Where a client really connects for the request's Service port: its last VIP and port
        (UsageError for a Service never created, an unknown port or client)."""
        service = self._vips.get(request.service)
        if service is None:
            raise UsageError(f"no Service named {request.service!r} was ever created")
        port = next((p.port for p in service.ports if p.name == request.port), None)
        if request.removed_port is not None:
            port = request.removed_port[0]
        if port is None:
            raise UsageError(f"Service {request.service!r} has no port named {request.port!r}")
        if request.client not in self._agents:
            known = ", ".join(self._agents) or "none (the target is not open)"
            raise UsageError(f"unknown client {request.client!r}; clients: {known}")
        return self._open_cluster().service_address(service.cluster_ip, port)

    def _protocol(self, request: TrafficRequest) -> str:
        """The request's Service port's protocol, lower case (`_destination` checked it);
        UsageError (one line) for an SCTP port where the target does not send SCTP."""
        if request.removed_port is not None:
            return request.removed_port[1].lower()
        service = self._vips[request.service]
        protocol = next(p.protocol for p in service.ports if p.name == request.port).lower()
        if protocol == "sctp" and not self.sends_sctp:
            raise UsageError(
                f"Service {request.service!r} port {request.port!r} is SCTP, which this target"
                f" cannot send: {'local:loopback' if self.loopback else sctp_unsupported()};"
                " replay it on local:iptables or local:nftables where the kernel tracks SCTP"
            )
        return protocol

    def _open_cluster(self) -> RunCluster:
        if self.cluster is None:
            raise UsageError("the local target is not open; call open() first")
        return self.cluster

    def client_address(self, client: str) -> str:
        cluster = self._open_cluster()
        if client not in cluster.clients:
            raise UsageError(f"unknown client {client!r}; clients: {', '.join(cluster.clients)}")
        return cluster.clients[client].address

    def sync_state(self) -> SyncState:
        """Whether every node's proxy has programmed every change handed to it: each one's own
        report where it gives one (`SyncReportingProxy`), else the return of its `sync()`
        (`CONTRACT_SYNC`), which `apply` waited for (`NodeProxies.sync_state`). Reads only."""
        return self._proxies.sync_state()

    def reachability(self, service: str, port: str, client: str) -> Reachability:
        """Where a new connection from `client` to `service`'s port goes, read from the kernel
        by the proxy (`RuleOracle`; only when `reads_rules`). Sends no traffic, changes
        nothing."""
        if not self.reads_rules:
            raise UsageError(f"the {self.name} proxy cannot show its programmed rules")
        found = self.state.services.get(service)
        if found is None:
            raise UsageError(f"no Service named {service!r}")
        reachability: Reachability = self.proxy.reachability(  # type: ignore[attr-defined]
            found, port, self.client_address(client)
        )
        return reachability

    def node_port_reachability(self, service: str, port: str, node: str) -> Reachability:
        """Where a new connection from the external client to `node`'s own address on
        `service`'s port's node port goes, read from the kernel by `node`'s own proxy instance
        (`KernelRuleProxy.node_port_reachability`; only when `reads_rules` and the cluster has
        an external client). Sends no traffic, changes nothing. UsageError for an unknown
        Service or node, or without an external client."""
        if not self.reads_rules:
            raise UsageError(f"the {self.name} proxy cannot show its programmed rules")
        found = self.state.services.get(service)
        if found is None:
            raise UsageError(f"no Service named {service!r}")
        cluster = self._open_cluster()
        address = cluster.node_address_of(node)
        member = next((m for m in self._proxies if m.context.node == node), None)
        if member is None or address is None or cluster.external is None:
            raise UsageError(unknown_node(node, self.node_names, "trace the node port of"))
        reachability: Reachability = member.proxy.node_port_reachability(  # type: ignore[attr-defined]
            found, port, cluster.external.address, address
        )
        return reachability

    def stats(self) -> dict[str, Any]:
        """Sizes for reports: pods realised, Services, and the helper processes' ids."""
        cluster = self._open_cluster()
        return {
            "prefix": self.prefix,
            "pods": len(self._handles),
            "services": len(self.state.services),
            "pod_server_pid": cluster.pod_server.pid,
        }


def _serving(pod: Pod | None, uid: str) -> bool:
    """Whether this incarnation of the pod has a running process: it exists, is the same
    incarnation, has an address and has not ended (an evicted pod's process is gone)."""
    return pod is not None and pod.uid == uid and pod.ip is not None and not pod.phase.terminal
