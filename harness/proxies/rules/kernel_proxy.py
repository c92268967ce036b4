"""The shared machinery of the kernel-rule proxies (iptables and nftables).

Both follow kube-proxy's sync (`pkg/proxy/iptables/proxier.go` and
`pkg/proxy/nftables/proxier.go: syncProxyRules`): for each changed Service, choose the usable
endpoints (`CategorizeEndpoints`, here `usable_destinations`), render the Service in the proxy's
syntax, write only what differs from the last sync in one atomic transaction (KEP-3453 partial
sync), and then clear the conntrack entries of flows no longer programmed. A subclass supplies the
syntax: `render`, `transaction`, `apply`, `setup`, `teardown` and `read_rules`.

Hooks for the deliberately broken variants (`harness.proxies.mutants`) are ordinary methods:
`destinations` (which endpoints), `plan` (what to program), `affinity_enabled` and
`drops_invalid`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import ClassVar, Protocol

from harness.errors import HarnessError
from harness.model.endpoints import (
    external_destinations,
    has_any_endpoints,
    local_ready_addresses,
    usable_destinations,
)
from harness.model.objects import (
    Backend,
    Destination,
    EndpointSlice,
    Service,
    ServiceType,
    TrafficPolicy,
)
from harness.proxies.base import NodeContext, TrackingProxy
from harness.proxies.healthcheck import HealthServer, health_entries
from harness.proxies.rules.commands import require_binaries, require_netns
from harness.proxies.rules.conntrack import ConntrackCleaner, node_ports_gained, untranslated
from harness.proxies.rules.invalid import tcp_be_liberal
from harness.proxies.rules.plan import ANY, Flow, PortPlan, flows_of, plan_ports
from harness.proxies.rules.rendering import EMPTY, Delta, Rendering, merged
from harness.proxies.rules.tracing import INVALID, Packet, Verdict, to_reachability
from harness.traffic import Reachability


class Traceable(Protocol):
    """Rules read back from the kernel, ready to trace (see `harness.proxies.rules.tracing`)."""

    description: str

    def trace(self, packet: Packet) -> dict[Verdict, float]: ...

    def remembering(self, address: str, port: int) -> frozenset[str]: ...


class NotStarted(HarnessError):
    """A proxy was used before `start()` or after `stop()`."""


class KernelRuleProxy(TrackingProxy):
    """A TrackingProxy that programs kernel rules in the node namespace and reads them back.

    Obligations beyond the Proxy contract: every rule lives in `node.netns`; a sync writes one
    atomic transaction with only the changed Services' objects, except the first after `start`,
    which replaces everything an earlier instance (or a crashed run) left with every Service's
    objects in one transaction; `stop()` removes every object the proxy made, also adopted
    ones; `stop_for_restart()` removes none (`RuleKeepingProxy`: kube-proxy keeps its rules
    across a restart); `reachability` reads the kernel's rules and changes nothing. After each
    sync it serves the healthCheckNodePort of every programmed Service that has one
    (`serve_health`, `harness.proxies.healthcheck`); `stop()` and `stop_for_restart()` close
    those servers and end their thread, as a stopped kube-proxy's end.
    """

    binaries: ClassVar[tuple[str, ...]] = ()
    keeps_rules_on_restart: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.plans: dict[str, tuple[PortPlan, ...]] = {}
        self.rendered: dict[str, Rendering] = {}
        self.last_payload = ""  # the text of the last transaction applied (for tests and benches)
        self._conntrack: ConntrackCleaner | None = None
        self.adopted: Rendering | None = None  # left by an earlier instance, until the first sync
        self.health: HealthServer | None = None  # the healthCheckNodePorts, once started

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def netns(self) -> str:
        if self.node is None:
            raise NotStarted(f"proxy {self.name} is not started")
        return self.node.netns

    def start(self, node: NodeContext) -> None:
        """Check the tools and namespace, install the Service-independent objects (idempotently,
        in one transaction) and adopt what an earlier instance left (`RuleKeepingProxy`): its
        rules keep serving until the first sync, which replaces every object this proxy owns at
        once (`adopt`). In an empty namespace every Service starts without rules. (What the node
        must provide for REJECT to answer, a route for the Service range, is the node's:
        `harness.local.cluster`.)"""
        require_binaries(("nsenter", "ip", "conntrack", *self.binaries))
        require_netns(node.netns)
        super().start(node)
        self.plans, self.rendered = {}, {}
        self.setup()
        self.adopted = self.adopt()
        self._conntrack = ConntrackCleaner(node.netns)
        self.close_health()  # an instance started again without a stop serves afresh
        self.health = HealthServer(node.netns)

    def stop(self) -> None:
        """Remove every object the proxy made; harmless twice and after the namespace is gone."""
        if self.node is None:
            return
        try:
            if self._conntrack is not None:
                self._conntrack.close()
            if self.namespace_exists():
                self.teardown()
        finally:
            self.node, self._conntrack = None, None
            self.plans, self.rendered = {}, {}
            self.close_health()  # last: a hung server must not keep the rules in place

    def stop_for_restart(self) -> None:
        """`RuleKeepingProxy`: forget everything, remove nothing from the kernel (the next
        instance adopts it); harmless twice, and `stop()` after it does nothing."""
        try:
            if self._conntrack is not None:
                self._conntrack.close()
        finally:
            self.node, self._conntrack, self.adopted = None, None, None
            self.plans, self.rendered = {}, {}
            self.changed.clear()
            self.close_health()

    def namespace_exists(self) -> bool:
        try:
            require_netns(self.netns)
        except HarnessError:
            return False
        return True

    # -- programming --------------------------------------------------------------------------
    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        """The first sync after `start` replaces what was adopted with every Service at once;
        later ones write only what `changed` changed."""
        adopted = self.adopted
        if adopted is not None:
            changed = changed | set(services)
        try:
            plans = {
                name: self.plan(services[name]) if name in services else () for name in changed
            }
            rendered = {name: self.render(plan) for name, plan in plans.items()}
            delta = Delta()
            if adopted is not None:
                delta.add(adopted, merged(rendered.values()))
            for name in changed if adopted is None else ():
                delta.add(self.rendered.get(name, EMPTY), rendered[name])
            if not delta.empty:
                payload = self.transaction(delta, {**self.rendered, **rendered})
                self.apply(payload)
                self.last_payload = payload
        except BaseException:
            self.changed |= changed  # nothing was programmed: the next sync tries again
            raise
        self.adopted = None
        programmed = [plan for name, plan in plans.items() if plan and not self.plans.get(name)]
        old = [p for name in plans for p in self.plans.get(name, ())]
        gained = node_ports_gained(old, (p for ps in plans.values() for p in ps))
        removed = self.record(plans, rendered) | untranslated(p for ps in programmed for p in ps)
        if adopted is None:  # a start knows no earlier state: its reconcile judges each entry
            removed |= gained
        if not self.clears_node_ports():
            removed = {flow for flow in removed if flow.cluster_ip != ANY}
        if adopted is not None and self.reconciles_at_start() and self._conntrack is not None:
            assert self.node is not None
            every = (p for ps in self.plans.values() for p in ps)
            self._conntrack.reconcile(removed, every, self.node.service_cidr)
        elif removed and self._conntrack is not None:
            self._conntrack.clear(removed)
        self.serve_health(services)

    def serve_health(self, services: Mapping[str, Service]) -> None:
        """Serve the healthCheckNodePort of every programmed Service that has one, counting
        this node's endpoints with `health_count` (`harness.proxies.healthcheck`), as
        kube-proxy's `SyncServices` and `SyncEndpoints` after each sync."""
        if self.health is not None:
            node = self.node.node if self.node is not None else ""
            self.health.sync(
                health_entries(services.values(), self.slices_of, node, self.health_count)
            )

    def health_count(self, slices: Iterable[EndpointSlice], node: str) -> int:
        """The `localEndpoints` a health check reports: `node`'s ready endpoints by address
        (kube-proxy's `LocalReadyEndpoints`); a mutant may count otherwise."""
        return len(local_ready_addresses(slices, node))

    def close_health(self) -> None:
        """Close every health-check server (the ports are released). Idempotent."""
        health, self.health = self.health, None
        if health is not None:
            health.close()

    def clears_node_ports(self) -> bool:
        """Whether a sync also deletes the conntrack entries of node-port flows
        (`harness.proxies.rules.conntrack`, kubernetes#59368): those of removed external
        destinations, and a UDP node port's all when it gains its first; a mutant says False
        (deleting by VIP only, as before the fix)."""
        return True

    def reconciles_at_start(self) -> bool:
        """Whether the first sync after `start` reconciles conntrack with what it programs
        (`harness.proxies.rules.conntrack`: `CleanStaleEntries`), so that changes made while no
        instance ran leave no stale UDP entry; a mutant says False."""
        return True

    def record(
        self, plans: Mapping[str, tuple[PortPlan, ...]], rendered: Mapping[str, Rendering]
    ) -> set[Flow]:
        """Remember what is now programmed; return the flows no longer programmed by any
        Service. A flow one Service dropped and another programs (a Service deleted and its VIP
        and endpoints taken by a new one, seen in one sync after a relist) is still programmed,
        so its connections are kept, as kube-proxy's `CleanStaleEntries` keeps every entry that
        matches a current Service port and endpoint."""
        removed: set[Flow] = set()
        for name, plan in plans.items():
            removed |= flows_of(self.plans.get(name, ())) - flows_of(plan)
            if plan:
                self.plans[name], self.rendered[name] = plan, rendered[name]
            else:
                self.plans.pop(name, None)
                self.rendered.pop(name, None)
        if not removed:
            return removed
        # only a plan with a removed flow's VIP and port (or node port) can still program it:
        # the others are not listed, which keeps a one-endpoint change from costing O(cluster)
        keys = {(flow.cluster_ip, flow.port) for flow in removed}
        kept = (
            plan
            for plans_kept in self.plans.values()
            for plan in plans_kept
            if (plan.cluster_ip, plan.port) in keys or (ANY, plan.node_port) in keys
        )
        return removed - flows_of(kept)

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        """What to program for `service`: each port's destinations, in order."""
        destinations = {port.name: self.destinations(service, port.name) for port in service.ports}
        slices = self.slices_of(service.name)
        dropped = {p.name for p in service.ports if has_any_endpoints(slices, p.name)}
        external_ips = self.external_ips(service)
        # a ClusterIP Service without externalIPs has no external traffic: `plan_ports` would
        # ignore its external destinations, so they are not computed (most of a large cluster)
        external = (
            {port.name: self.external_destinations(service, port.name) for port in service.ports}
            if self.programs_node_ports and (service.type.external or external_ips)
            else None
        )
        return plan_ports(
            service,
            destinations,
            self.affinity_enabled(service),
            dropped,
            external,
            self.external_policy_local(service),
            self.load_balancer_ips(service),
            external_ips,
        )

    programs_node_ports: ClassVar[bool] = True
    """Whether the proxy programs NodePort and LoadBalancer Services' node ports."""

    def external_destinations(self, service: Service, port_name: str) -> list[Destination]:
        """Where new connections arriving at this node's node port may go
        (`harness.model.endpoints.external_destinations` on the raw slices)."""
        node = self.node.node if self.node is not None else ""
        return external_destinations(self.slices_of(service.name), service, port_name, node)

    def external_policy_local(self, service: Service) -> bool:
        """Whether node-port traffic is programmed as externalTrafficPolicy Local (kept
        unmasqueraded); a mutant may say otherwise."""
        return service.external_traffic_policy == TrafficPolicy.LOCAL

    def load_balancer_ips(self, service: Service) -> tuple[str, ...]:
        """The ingress IPs to program for `service` (`svcInfo.LoadBalancerVIPs()`): a
        LoadBalancer's assigned one, none for other types or before one is assigned; a mutant
        may program none."""
        if service.type != ServiceType.LOAD_BALANCER or service.load_balancer_ip is None:
            return ()
        return (service.load_balancer_ip,)

    def external_ips(self, service: Service) -> tuple[str, ...]:
        """The externalIPs to program for `service` (`svcInfo.ExternalIPs()`), of any type; a
        mutant may program none."""
        return service.external_ips

    def destinations(self, service: Service, port_name: str) -> list[Destination]:
        """Where new connections to the port may go: `CategorizeEndpoints` on the raw slices."""
        node = self.node.node if self.node is not None else ""
        return usable_destinations(self.slices_of(service.name), service, port_name, node)

    def affinity_enabled(self, service: Service) -> bool:
        """Whether ClientIP affinity is programmed (always, unless a mutant says otherwise)."""
        return True

    def drops_invalid(self) -> bool:
        """Whether to drop forwarded packets conntrack marks INVALID: as kube-proxy, unless the
        node sets `nf_conntrack_tcp_be_liberal` (`harness.proxies.rules.invalid`). Reads the
        node's sysctl; never changes it. A mutant may say False."""
        return not tcp_be_liberal(self.netns)

    # -- reading back ---------------------------------------------------------------------------
    def reachability(
        self,
        service: Service,
        port_name: str,
        client_ip: str,
        *,
        affinity_backend: Backend | None = None,
    ) -> Reachability:
        """Where a new TCP connection from `client_ip` to the Service port goes, read from the
        kernel (`RuleReadingProxy`). With ClientIP affinity this is a client's *first*
        connection; pass `affinity_backend` for a connection made while the client's affinity
        entry for that backend is fresh (a correct proxy then gives it probability 1)."""
        port = next((p for p in service.ports if p.name == port_name), None)
        if port is None:
            return Reachability(False, {}, f"{service.name} has no port {port_name!r}")
        rules = self.read_rules()
        backend_of = self.backend_lookup(service, port_name)
        remembered: frozenset[str] = frozenset()
        if affinity_backend is not None:
            for (address, endpoint_port), backend in backend_of.known.items():
                if backend == affinity_backend:
                    remembered |= rules.remembering(address, endpoint_port)
        packet = Packet(
            client_ip, service.cluster_ip, port.protocol.lower(), port.port, remembered=remembered
        )
        return to_reachability(rules.trace(packet), backend_of, rules.description)

    def node_port_reachability(
        self, service: Service, port_name: str, client_ip: str, node_ip: str
    ) -> Reachability:
        """Where a new connection from `client_ip` outside the cluster to this node's address
        `node_ip` on the Service port's node port goes, read from the kernel (a packet whose
        destination is local: `-m addrtype --dst-type LOCAL`, `fib daddr type local`): the
        rule oracle for NodePort traffic. Rejects for a port without a node port. Changes
        nothing."""
        port = next((p for p in service.ports if p.name == port_name), None)
        if port is None or port.node_port is None:
            return Reachability(True, {}, f"{service.name} has no node port {port_name!r}")
        packet = Packet(
            client_ip, node_ip, port.protocol.lower(), port.node_port, local_destination=True
        )
        rules = self.read_rules()
        backend_of = self.backend_lookup(service, port_name)
        return to_reachability(rules.trace(packet), backend_of, rules.description)

    def load_balancer_reachability(
        self, service: Service, port_name: str, client_ip: str
    ) -> Reachability:
        """Where a new connection from `client_ip` outside the cluster to the Service's ingress
        IP on the Service port goes once a load balancer handed it to this node (a forwarded
        packet: the ingress IP is no address of the node), read from the kernel: the rule
        oracle for LoadBalancer traffic. Rejects for a Service without an ingress IP or port.
        Changes nothing."""
        return self.ingress_reachability(service, port_name, client_ip, service.load_balancer_ip)

    def ingress_reachability(
        self, service: Service, port_name: str, client_ip: str, address: str | None
    ) -> Reachability:
        """Where a new connection from `client_ip` outside the cluster to `address` (an
        ingress IP or externalIP of the Service) on the Service port goes once handed to this
        node (a forwarded packet), read from the kernel: the rule oracle for both. Rejects
        without an address or port. Changes nothing."""
        port = next((p for p in service.ports if p.name == port_name), None)
        if port is None or address is None:
            return Reachability(True, {}, f"{service.name} has no such address for {port_name!r}")
        packet = Packet(client_ip, address, port.protocol.lower(), port.port)
        rules = self.read_rules()
        backend_of = self.backend_lookup(service, port_name)
        return to_reachability(rules.trace(packet), backend_of, rules.description)

    def invalid_fate(self, source: str, destination: str, port: int) -> dict[Verdict, float]:
        """Where a forwarded TCP segment from `source` to `destination:port` that conntrack
        marked INVALID ends, read from the kernel's rules: DROP with probability 1 when the
        proxy drops INVALID packets (`drops_invalid`), else ACCEPT. Changes nothing."""
        packet = Packet(source, destination, "tcp", port, ct_state=INVALID)
        return self.read_rules().trace(packet)

    def backend_lookup(self, service: Service, port_name: str) -> BackendLookup:
        """Backends by endpoint address and port, from the current slices; usable ones win."""
        node = self.node.node if self.node is not None else ""
        slices = self.slices_of(service.name)
        known: dict[tuple[str, int], Backend] = {}
        for destination in usable_destinations(slices, service, port_name, node):
            known.setdefault((destination.address, destination.port), destination.backend)
        for endpoint_slice in slices:
            endpoint_port = endpoint_slice.port_for(port_name)
            for endpoint in endpoint_slice.endpoints:
                if endpoint_port is not None:
                    known.setdefault((endpoint.address, endpoint_port), endpoint.backend)
        return BackendLookup(known)

    # -- the syntax, supplied by each proxy ----------------------------------------------------
    @abstractmethod
    def render(self, plans: tuple[PortPlan, ...]) -> Rendering:
        """The kernel objects one Service's plans need (no plans: nothing)."""

    @abstractmethod
    def transaction(self, delta: Delta, rendered: Mapping[str, Rendering]) -> str:
        """The text of one atomic transaction applying `delta`; `rendered` is every Service's
        rendering after it (for containers a proxy rewrites whole)."""

    @abstractmethod
    def apply(self, payload: str) -> None:
        """Apply a transaction atomically in the node namespace (EnvironmentProblem if refused)."""

    @abstractmethod
    def setup(self) -> None:
        """Install the Service-independent objects (hooks, top-level chains, maps) in one
        transaction; idempotent: over an earlier instance's objects it changes nothing a packet
        sees (no jump doubled, no Service's rule or set touched)."""

    @abstractmethod
    def adopt(self) -> Rendering:
        """What an earlier instance left in the node namespace, read from the kernel, as the
        `old` side of the first sync's `Delta`: every Service chain this proxy owns (with lines
        that match no rendering, so each one kept is rewritten and each other one deleted), the
        shared containers' entries and the affinity sets. Changes nothing."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove every object this kind of proxy makes in the node namespace."""

    @abstractmethod
    def read_rules(self) -> Traceable:
        """Read the rules now in the kernel."""


class BackendLookup:
    """A DNAT destination's Backend from the slices; unknown ones map to Backend("?", "ip:port")."""

    def __init__(self, known: dict[tuple[str, int], Backend]) -> None:
        self.known = known

    def __call__(self, address: str, port: int) -> Backend:
        return self.known.get((address, port), Backend("?", f"{address}:{port}"))
