"""The `model` target: the reference model as a system under test.

It publishes the EndpointSlices the model derives and balances like kube-proxy's iptables mode:
each new connection picks uniformly at random among the usable endpoints, with ClientIP affinity
keeping a client on its backend until the affinity timeout passes without a connection. It runs
on simulated time, so deadlines and affinity timeouts cost no real waiting.

It holds long-lived connections (`ConnectionHolder`): each keeps the backend it was opened to
and answers from it while that pod incarnation still runs (a terminating pod still serves its
established connections); a pod that is gone resets it. `RestartProxy` changes nothing.
A held UDP flow (a Service whose port is UDP) keeps its backend while that endpoint is usable;
once it is not, its next datagram is balanced as a new flow's, as kube-proxy's conntrack cleanup
makes it (`pkg/proxy/conntrack/cleanup.go`); it is kept whatever it got. A flow belongs to the
Service that holds its VIP and port now (`flow_owner`), whatever its name.

It has the model's two nodes (`node_names`), each with its own proxy: a request from a node's
host network (`TrafficRequest.client_node`) or from a pod (through its own node) is balanced
over what is usable from that node (`node`, which `usable` reads); the harness's clients are on
node-1.

Mutants subclass it and break exactly one promise through one of its hooks (`perceived`,
`usable`, `choose`, `affinity_applies`, `keeps_affinity`, `on_no_endpoints`, `held_answer`,
`on_restart`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_address

from harness.clock import SimulatedClock
from harness.errors import UsageError
from harness.events import Event, RestartProxy
from harness.model.endpoints import (
    derive_slices,
    external_destinations,
    health_check_count,
    health_check_status,
    must_drop,
    usable_destinations,
)
from harness.model.objects import (
    NODES,
    PROXY_NODE,
    Affinity,
    Backend,
    Destination,
    EndpointSlice,
    Service,
    TrafficPolicy,
    opt_out_label,
)
from harness.model.state import POD_CIDR, ClusterState
from harness.registry import TargetOptions
from harness.traffic import (
    EXTERNAL_IP_AND_LOAD_BALANCER,
    VIA_LOAD_BALANCER_SOURCES,
    ErrorKind,
    HealthCheckReply,
    HealthCheckRequest,
    Outcome,
    TrafficRequest,
    TrafficSample,
)

MODEL_LATENCY_MS = 0.1  # what one simulated request "takes"
NODE_ADDRESS = str(POD_CIDR.network_address + 1)  # where masqueraded hairpin traffic comes from
EXTERNAL_ADDRESS = "10.240.0.200"  # the external client's, as on the local cluster's fabric
LOAD_BALANCER_SOURCE_OFFSET = 20  # node-k's load-balancer source: EXTERNAL_ADDRESS + 20 + k


@dataclass
class HeldConnection:
    """A long-lived connection of the model target: its Service, client and backend, and the
    Service's VIP and port number it was opened to (a UDP flow belongs to whichever Service
    holds them: `ModelTarget.flow_owner`)."""

    service: str
    client: str
    backend: Backend
    udp: bool = False
    address: tuple[str, str, int] | None = None  # VIP, port name, port number
    node: str | None = None
    """A UDP flow from the external client to this node's node port: `address` then holds the
    node's name, the port name and the node port (`ModelTarget.hold_node_port`)."""


@dataclass
class _Stickiness:
    destination: Destination
    last_used_s: float


class ModelTarget:
    """The reference: EndpointSlices as the model derives them, uniform random balancing."""

    name = "model"
    description = "the reference model itself (simulated time, uniform random balancing)"
    max_sources = 64
    relays_connections = False
    sends_from_pods = True
    sends_udp = True
    sends_sctp = True
    addresses_removed_ports = True
    node_names: tuple[str, ...] = NODES
    external_address: str | None = EXTERNAL_ADDRESS

    def __init__(self, seed: int = 0) -> None:
        self.node = PROXY_NODE  # the node whose proxy the request being balanced goes through
        self.clock = SimulatedClock()
        self.state = ClusterState()
        self.seed = seed
        self._random = random.Random(seed)
        self._affinity: dict[tuple[str, str, str], _Stickiness] = {}  # service, port, client
        self.held: dict[int, HeldConnection] = {}

    @classmethod
    def from_spec(cls, arg: str | None, options: TargetOptions) -> ModelTarget:
        """`model`: takes no argument and no target options."""
        if arg is not None:
            raise UsageError(
                f"the model target takes no argument; use --target model, not model:{arg}"
            )
        if options.proxy_command:
            raise UsageError("--proxy-command does not apply to the model target; drop it")
        return cls(seed=int(options.extra.get("seed", 0)))

    # -- the Target contract ------------------------------------------------------------------
    def open(self) -> None:
        """Nothing to prepare: the model starts empty."""

    def close(self) -> None:
        """Nothing to remove."""

    def reset(self) -> None:
        """Back to an empty cluster with the random stream restarted, so that an example replays
        exactly; the clock keeps running."""
        self.state = ClusterState()
        self._affinity.clear()
        self.held.clear()
        self._random.seed(self.seed)

    def apply(self, event: Event) -> None:
        self.state = event.apply(self.state)
        if isinstance(event, RestartProxy):
            self.on_restart()

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]:
        state = self.perceived(self.state)
        if service not in state.services:
            return ()
        return derive_slices(state, service)

    def send(self, request: TrafficRequest) -> TrafficSample:
        return self._sample(request)

    def _sample(self, request: TrafficRequest) -> TrafficSample:
        started_s = self.clock.now()
        state = self.perceived(self.state)
        service = state.services.get(request.service)
        destinations: list[Destination] = []
        drops = False
        if request.external_node is not None and request.external_ip is not None:
            destinations, drops = self._addressed(state, service, request)
        elif request.external_node is not None and request.via_load_balancer:
            destinations, drops = self._load_balanced(state, service, request)
        elif request.external_node is not None:
            destinations, drops = self._external(state, service, request)
        elif service is not None and _lacks(service, request.removed_port):
            pass  # a port the Service no longer has: nothing is programmed there, refused
        elif service is not None and self.programs(service):
            slices = derive_slices(state, service.name)
            self.node = self._through(state, request)
            try:
                destinations = self.usable(slices, service, request.port)
            finally:
                self.node = PROXY_NODE
            drops = must_drop(destinations, slices, request.port)
        elif service is not None:  # not programmed: the node's Service-range sink drops it
            drops = True
        connections = request.connections if request.keep_alive else request.count
        picks: list[Destination | None] = []
        for index in range(max(connections, 0)):
            self.clock.sleep(MODEL_LATENCY_MS / 1000)
            source = 0 if request.keep_alive else request.sources[index % len(request.sources)]
            client = request.client if source == 0 else f"{request.client}#{source}"
            if request.client_pod is not None:
                client = f"pod/{request.client_pod}"
            if request.client_node is not None:
                client = f"node/{request.client_node}"
            if request.external_node is not None:
                client = f"external#{source}"
            picks.append(self._route(service, client, destinations, request.port))
        outcomes = []
        for index in range(request.count):
            connection = index % connections if request.keep_alive else index
            pick = picks[connection] if picks else None
            source = 0 if request.keep_alive else request.sources[index % len(request.sources)]
            outcome = self._outcome(pick, connection, request, drops)
            if pick is not None and outcome.backend is not None and request.client_pod:
                outcome = replace(outcome, seen_source=self.seen_source(state, pick, request))
            if pick is not None and outcome.backend is not None and request.external_node:
                seen = self.seen_external_source(service, source)
                handed = request.via_load_balancer or request.external_ip is not None
                if handed and seen != NODE_ADDRESS:
                    seen = self.load_balancer_source(request.external_node) or seen
                outcome = replace(outcome, seen_source=seen)
            outcomes.append(replace(outcome, source=source) if source else outcome)
        return TrafficSample(request, tuple(outcomes), started_s, self.clock.now())

    def _external(
        self, state: ClusterState, service: Service | None, request: TrafficRequest
    ) -> tuple[list[Destination], bool]:
        """Where a connection from the external client to `request.external_node`'s node port
        may go, and whether it is dropped (`harness.model.endpoints.expect_external`): nothing
        answers a Service without a node port (refused, as a closed port is). UsageError for a
        node the model lacks."""
        node = self._external_node(request)
        if service is None or not service.type.external:
            return [], False
        return self._from_outside(state, service, request, node)

    def _external_node(self, request: TrafficRequest) -> str:
        """`request.external_node`; UsageError for a node the model lacks."""
        node = request.external_node or ""
        if node not in self.node_names:
            raise UsageError(
                f"the model has no node {node!r} to send to ({', '.join(self.node_names)})"
            )
        return node

    def _from_outside(
        self, state: ClusterState, service: Service, request: TrafficRequest, node: str
    ) -> tuple[list[Destination], bool]:
        """Where a connection from outside the cluster that met `node`'s proxy for `service`
        may go (`external_usable`), and whether it is dropped; dropped for a Service the proxy
        does not program."""
        if not self.programs(service):
            return [], True
        slices = derive_slices(state, service.name)
        destinations = self.external_usable(slices, service, request.port, node)
        return destinations, must_drop(destinations, slices, request.port)

    def _addressed(
        self, state: ClusterState, service: Service | None, request: TrafficRequest
    ) -> tuple[list[Destination], bool]:
        """Where a connection from the external client to the Service's externalIP
        `request.external_ip`, handed to `request.external_node`, may go: as at that node's
        node port, for a Service of any type that lists the address
        (`harness.model.endpoints.expect_external_ip`); dropped for one it does not list (the
        node routes the externalIP range into its sink). UsageError for a node the model lacks,
        further source addresses, or `via_load_balancer` too."""
        if request.sources != (0,):
            raise UsageError(VIA_LOAD_BALANCER_SOURCES)
        if request.via_load_balancer:
            raise UsageError(EXTERNAL_IP_AND_LOAD_BALANCER)
        node = self._external_node(request)
        if service is None or request.external_ip not in service.external_ips:
            return [], True
        return self._from_outside(state, service, request, node)

    def _load_balanced(
        self, state: ClusterState, service: Service | None, request: TrafficRequest
    ) -> tuple[list[Destination], bool]:
        """Where a connection from the external client to the Service's ingress IP, handed to
        `request.external_node`, may go: as at that node's node port (`_external`; kube-proxy
        sends both to the Service's KUBE-EXT chain); dropped for a Service without an ingress
        IP (the node routes the ingress range into its sink). UsageError for a node the model
        lacks or further source addresses."""
        if request.sources != (0,):
            raise UsageError(VIA_LOAD_BALANCER_SOURCES)
        destinations, drops = self._external(state, service, request)
        if service is None or service.load_balancer_ip is None:
            return [], True
        return destinations, drops

    def load_balancer_source(self, node: str) -> str | None:
        """The external client's address whose connections to an ingress IP go via `node`, as
        on the local cluster's fabric (10.240.0.220+k for node-k), or None for a node the model
        lacks."""
        if node not in self.node_names:
            return None
        number = self.node_names.index(node) + 1
        return str(ip_address(EXTERNAL_ADDRESS) + LOAD_BALANCER_SOURCE_OFFSET + number)

    def _through(self, state: ClusterState, request: TrafficRequest) -> str:
        """The node whose proxy `request` goes through: its `client_node` (UsageError for one
        the model lacks), its client pod's node, else node-1 (the harness's clients)."""
        if request.client_node is not None:
            if request.client_node not in self.node_names:
                raise UsageError(
                    f"the model has no node {request.client_node!r} to send from"
                    f" ({', '.join(self.node_names)})"
                )
            return request.client_node
        pod = state.pods.get(request.client_pod or "")
        return pod.node if pod is not None and pod.node in self.node_names else PROXY_NODE

    def health_check(self, request: HealthCheckRequest) -> HealthCheckReply:
        """What `request.node`'s port `request.port` answers a health check with: the
        programmed Service whose healthCheckNodePort it is answers as kube-proxy's server does
        (`health_check_status`, `health_check_count`); nothing listens there otherwise
        (refused). The model does not know what another Service's node port on that number
        would answer: a caller asks a released port only while no Service holds it.
        UsageError for a node the model lacks."""
        node = request.node
        if node not in self.node_names:
            raise UsageError(
                f"the model has no node {node!r} to ask ({', '.join(self.node_names)})"
            )
        state = self.perceived(self.state)
        for service in state.services.values():
            if service.health_check_node_port == request.port and self.programs(service):
                count = health_check_count(state, service.name, node) or 0
                body = {
                    "service": {"namespace": service.namespace, "name": service.name},
                    "localEndpoints": count,
                    "serviceProxyHealthy": True,
                }
                status = health_check_status(state, service.name, node)
                return HealthCheckReply(request, status, body=body, nosniff=True)
        return HealthCheckReply(request, None, ErrorKind.REFUSED, detail="connection refused")

    # -- long-lived connections (`ConnectionHolder`) -------------------------------------------
    def hold(self, service: str, client: str, timeout_s: float) -> tuple[int | None, Outcome]:
        """A kept-alive connection balanced as a new one; kept when it was answered."""
        request = TrafficRequest(service=service, client=client, count=1, timeout_s=timeout_s)
        (outcome,) = self._sample(request).outcomes
        udp = self._is_udp(service, request.port)
        if outcome.backend is None and not udp:
            return None, outcome
        number = max(self.held, default=-1) + 1
        found = self.state.services.get(service)
        port = (
            next((p.port for p in found.ports if p.name == request.port), None) if found else None
        )
        address = (found.cluster_ip, request.port, port) if found and port is not None else None
        backend = outcome.backend or Backend("", "")
        self.held[number] = HeldConnection(service, client, backend, udp, address)
        return number, replace(outcome, connection=number)

    def hold_node_port(
        self, service: str, node: str, timeout_s: float
    ) -> tuple[int | None, Outcome]:
        """A UDP flow from the external client to `node`'s node port of the Service's port
        `http`, balanced as a new one there and kept whatever it got (`harness.longlived`).
        UsageError for a TCP port or one without a node port, or a node the model lacks."""
        request = TrafficRequest(service, count=1, timeout_s=timeout_s, external_node=node)
        found = self.state.services.get(service)
        port = next((p for p in found.ports if p.name == request.port), None) if found else None
        if port is None or port.protocol != "UDP" or port.node_port is None:
            raise UsageError(
                f"Service {service!r} has no UDP port {request.port!r} with a node port to hold"
                " a flow to"
            )
        (outcome,) = self._sample(request).outcomes
        number = max(self.held, default=-1) + 1
        backend = outcome.backend or Backend("", "")
        address = (node, request.port, port.node_port)
        self.held[number] = HeldConnection(service, "external", backend, True, address, node)
        return number, replace(outcome, connection=number)

    def node_port_owner(self, state: ClusterState, flow: HeldConnection) -> Service | None:
        """The Service a held node-port flow's next datagram goes to: the NodePort or
        LoadBalancer one with a UDP port of the flow's name on the flow's node port."""
        if flow.address is None:
            return None
        _, name, number = flow.address
        for service in state.services.values():
            if service.type.external and any(
                p.name == name and p.protocol == "UDP" and p.node_port == number
                for p in service.ports
            ):
                return service
        return None

    def flow_owner(self, state: ClusterState, flow: HeldConnection) -> Service | None:
        """The Service a held UDP flow's next datagram goes to: the one on the flow's VIP with a
        UDP port of the flow's name and number (a Service deleted and created again on another
        VIP no longer gets it; one given that VIP meanwhile does)."""
        if flow.address is None:
            return None
        vip, name, number = flow.address
        for service in state.services.values():
            if service.cluster_ip == vip and any(
                p.name == name and p.protocol == "UDP" and p.port == number for p in service.ports
            ):
                return service
        return None

    def _is_udp(self, service: str, port: str) -> bool:
        """Whether the Service's port `port` is UDP (only that port: a Service may have TCP
        and UDP on one number, and a connection held on its TCP port is a TCP connection)."""
        found = self.state.services.get(service)
        return found is not None and any(p.protocol == "UDP" for p in found.ports if p.name == port)

    def _flow_answer(self, flow: HeldConnection, number: int) -> Outcome:
        """A held UDP flow's next datagram: its backend while usable, else a new flow's."""
        state = self.perceived(self.state)
        node = flow.node
        service = (self.flow_owner if node is None else self.node_port_owner)(state, flow)
        if service is None or flow.address is None:
            return Outcome(None, ErrorKind.REFUSED, MODEL_LATENCY_MS, number)
        slices = derive_slices(state, service.name)
        programmed = self.programs(service)  # an opted-out Service's entries are cleared too
        if node is not None:  # from the external client, at that node's node port
            request = TrafficRequest(
                service.name, count=1, port=flow.address[1], external_node=node
            )
            destinations = (
                self.external_usable(slices, service, request.port, node) if programmed else []
            )
        else:
            request = TrafficRequest(service.name, flow.client, count=1, port=flow.address[1])
            destinations = self.usable(slices, service, request.port) if programmed else []
        if any(d.backend == flow.backend for d in destinations):
            return Outcome(flow.backend, None, MODEL_LATENCY_MS, number)
        (outcome,) = self._sample(request).outcomes
        if outcome.backend is not None:
            flow.backend = outcome.backend
        return replace(outcome, connection=number)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        """One request on a held connection (`held_answer`); a failure forgets it."""
        self.clock.sleep(MODEL_LATENCY_MS / 1000)
        connection = self.held.get(number)
        if connection is not None and connection.udp:
            return self._flow_answer(connection, number)
        backend = self.held_answer(connection) if connection is not None else None
        if backend is None:
            self.held.pop(number, None)
            return Outcome(None, ErrorKind.RESET, MODEL_LATENCY_MS, number)
        return Outcome(backend, None, MODEL_LATENCY_MS, number)

    def release_held(self) -> None:
        self.held.clear()

    # -- balancing ----------------------------------------------------------------------------
    def _route(
        self,
        service: Service | None,
        client: str,
        destinations: Sequence[Destination],
        port: str = "http",
    ) -> Destination | None:
        """Where one new connection goes. ClientIP affinity is kept per Service port, as
        kube-proxy keeps one affinity record per `ServicePortName`."""
        if service is None or not destinations:
            return None
        key = (service.name, port, client)
        now_s = self.clock.now()
        sticky = self._affinity.get(key)
        if self.affinity_applies(service):
            if sticky is not None and self.keeps_affinity(
                sticky.destination, destinations, now_s - sticky.last_used_s, service
            ):
                sticky.last_used_s = now_s
                return sticky.destination
            chosen = self.choose(destinations)
            self._affinity[key] = _Stickiness(chosen, now_s)
            return chosen
        return self.choose(destinations)

    def _outcome(
        self, pick: Destination | None, connection: int, request: TrafficRequest, drops: bool
    ) -> Outcome:
        if pick is None:
            return self.on_no_endpoints(connection, request, drops)
        return Outcome(pick.backend, None, MODEL_LATENCY_MS, connection)

    # -- hooks for mutants --------------------------------------------------------------------
    def seen_source(self, state: ClusterState, pick: Destination, request: TrafficRequest) -> str:
        """The address the backend sees a pod client's connection come from: the client pod's
        own IP (kube-proxy marks for masquerade only `-s <endpoint IP>` in KUBE-SEP-*), except
        when the pod reached itself (hairpin), masqueraded to the node."""
        client = state.pods.get(request.client_pod or "")
        if client is None or client.ip is None or client.name == pick.backend.pod:
            return NODE_ADDRESS
        return client.ip

    def seen_external_source(self, service: Service | None, source: int) -> str:
        """The address a backend sees an external client's connection come from: the client's
        own under externalTrafficPolicy Local (kube-proxy does not masquerade it), a node's
        under Cluster (`KUBE-EXT-*` marks it for masquerade)."""
        local = service is not None and service.external_traffic_policy == TrafficPolicy.LOCAL
        if local:
            return EXTERNAL_ADDRESS if source == 0 else f"{EXTERNAL_ADDRESS}#{source}"
        return NODE_ADDRESS

    def external_usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str, node: str
    ) -> list[Destination]:
        """Where new connections from outside, arriving at `node`'s node port, may go
        (`external_destinations` on the slices)."""
        return external_destinations(slices, service, port, node)

    def programs(self, service: Service) -> bool:
        """Whether the proxy programs `service`: not when it carries an opt-out label
        (`harness.model.objects.opt_out_label`, I13)."""
        return opt_out_label(service) is None

    def held_answer(self, connection: HeldConnection) -> Backend | None:
        """Who answers on an established connection: its own backend while that pod
        incarnation runs (terminating included), else nobody (the connection resets)."""
        pod = self.state.pods.get(connection.backend.pod)
        if pod is None or pod.uid != connection.backend.uid or pod.ip is None:
            return None
        return None if pod.phase.terminal else connection.backend

    def on_restart(self) -> None:
        """The proxy restarted: nothing changes (established connections survive)."""

    def perceived(self, state: ClusterState) -> ClusterState:
        """The cluster state the target's control and data planes act on (the truth here)."""
        return state

    def usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str
    ) -> list[Destination]:
        """Where new connections through `node`'s proxy may go (`CategorizeEndpoints` on the
        slices)."""
        return usable_destinations(slices, service, port, self.node)

    def keeps_affinity(
        self,
        stuck_to: Destination,
        destinations: Sequence[Destination],
        idle_s: float,
        service: Service,
    ) -> bool:
        """Whether a client stuck to `stuck_to`, idle for `idle_s`, stays there: only while its
        backend is usable and the timeout has not passed."""
        return stuck_to in destinations and idle_s <= service.affinity_timeout_s

    def choose(self, destinations: Sequence[Destination]) -> Destination:
        """Pick the backend of a new connection: uniform random, as iptables' statistic chain."""
        return self._random.choice(destinations)

    def affinity_applies(self, service: Service) -> bool:
        return service.session_affinity == Affinity.CLIENT_IP

    def on_no_endpoints(self, connection: int, request: TrafficRequest, drops: bool) -> Outcome:
        """A new connection nothing usable can take: refused at once (REJECT) when the Service
        has no endpoints at all; with endpoints but none usable from this node (`drops`), never
        answered, so the client times out (DROP; `harness.model.endpoints.has_any_endpoints`)."""
        if drops:
            return Outcome(None, ErrorKind.TIMEOUT, request.timeout_s * 1000, connection)
        return Outcome(None, ErrorKind.REFUSED, MODEL_LATENCY_MS, connection)


def _lacks(service: Service, removed: tuple[int, str] | None) -> bool:
    """Whether `removed` names a (number, protocol) none of `service`'s ports has."""
    if removed is None:
        return False
    return all((p.port, p.protocol) != removed for p in service.ports)
