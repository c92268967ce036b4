"""Deliberately broken data planes: each overrides one small piece of a real proxy and breaks
one promise on real packets. The suite (and the rule oracle) must catch every one of them.

- mutant-iptables-wrong-probability (fairness): rule i of n uses 1/n instead of 1/(n-i), so
  the first endpoints get more than 1/n (visible from n = 3).
- mutant-iptables-never-removes (removal): an endpoint's rules stay once programmed, so removed,
  unready and deleted pods keep getting new connections.
- mutant-iptables-ignores-readiness (readiness): every listed endpoint is used, ready or not.
- mutant-iptables-drop-empty (REJECT): a Service without endpoints DROPs, so clients time out
  instead of being refused.
- mutant-nftables-no-affinity (ClientIP affinity): no affinity sets, so a client's next
  connection is balanced again.
- mutant-iptables-two-decimals (fairness, kubernetes#37932): probabilities printed with two
  decimals, as kube-proxy did before PR #83599, so shares deviate by 2-4% at n = 7-8.
- mutant-iptables-leaks-deleted (VIP reuse): a deleted Service's rules stay, so a new Service
  that gets its VIP sends new connections to the old one's endpoints.
- mutant-nftables-affinity-never-expires (affinity expiry): affinity sets that never time out.
- mutant-userspace-no-fallback (KEP-1669): never falls back to serving, terminating endpoints.
- mutant-userspace-wrong-port (availability): dials every endpoint one port too high, so no
  connection through a Service with endpoints succeeds (a proxy broken this plainly must reach
  its verdict fast: issue 10).
- mutant-iptables-flushes-on-restart (long-lived connections across a restart, Cilium's
  conn-disrupt): flushes every conntrack entry of its node when it starts, so a restart
  re-balances, and so resets, established connections to endpoints that are still usable.
- mutant-iptables-clears-rules-on-restart (a restart without a moment of no rules, kube-proxy;
  ClientIP affinity across it): declares that it keeps its rules across a restart but removes
  them when stopped for one, as the harness's proxies did before, so the new instance starts
  empty: new connections meet no rules until its first sync, and the xt_recent lists go with
  their rules, so every ClientIP client is balanced anew.
- mutant-iptables-tombstones (stale snapshots, Sieve's stale-state perturbation): remembers
  every Service it saw deleted (by name and VIP) and ignores it if it is added again, as a guard
  against resurrection by a late watch event would; a relist from a stale cache deletes a
  Service created since, and the add that catches up is then ignored, so the Service is never
  programmed again (a Service deleted and created again with its name and VIP is lost too).
- mutant-iptables-flushes-every-sync (long-lived connections through unrelated changes,
  kubernetes#74839): flushes every conntrack entry after each sync instead of only the removed
  endpoints' (`harness.proxies.rules.conntrack`), so any change resets established connections.
- mutant-iptables-first-port-only (several ports, issue 12): programs only the first port of a
  Service of several ports, so its other ports neither reach their endpoints nor REJECT.
- mutant-iptables-masquerades-all (source IP, I15): every endpoint chain marks every packet for
  masquerade (as `--masquerade-all` would), so pods see the node's address, not the client
  pod's.
- mutant-iptables-no-hairpin-masquerade (hairpin, I15): no `-s <endpoint IP> -j KUBE-MARK-MASQ`,
  so a pod that reaches itself through its Service gets its own packet from its own address,
  drops it as martian, and times out.
- mutant-iptables-ignores-opt-out (opt-out labels, I13): programs every Service it is handed,
  also those labelled `service.kubernetes.io/service-proxy-name` or `.../headless`, as a proxy
  that lists Services without kube-proxy's label selector would; their VIPs then answer.
- mutant-iptables-keeps-udp-conntrack (UDP flows, kubernetes#19029, #105657): never deletes the
  UDP conntrack entries of removed endpoints, so a flow that keeps its 5-tuple keeps reaching an
  unready pod, or nothing once its pod is gone.
- mutant-iptables-keeps-nodeport-udp-conntrack (UDP node ports, kubernetes#59368, fixed by PR
  #71573): deletes conntrack entries by VIP only, never a node port's, so a flow from outside
  that keeps its 5-tuple keeps reaching its endpoint after that endpoint was removed.
- mutant-iptables-forgets-while-down (UDP flows across a restart, kubernetes#105657, #122740,
  #126130): does not reconcile conntrack at its first sync after a start, so the UDP entries of
  endpoints removed or made unready while no instance ran keep their flows on them.
- mutant-iptables-wrong-node (every node, I10): takes node-1 as its node whatever node it runs
  on, so under internalTrafficPolicy Local every node's proxy uses node-1's endpoints: right on
  node-1, where the clients are, wrong on every other node (`every-node`; pod clients on other
  nodes see it too).
- mutant-iptables-immutable-vip (unobserved changes, Sieve's unobserved-state perturbation):
  takes a Service's ClusterIP as immutable, as the API makes it, and keeps the VIP a Service was
  first added with through every update; a relist that missed a Service deleted and created
  again, with another VIP because a new Service took its old one meanwhile, hands the proxy one
  update, and the Service's new VIP is never programmed.
- mutant-iptables-port-ignores-protocol (one number on TCP and UDP, issue 12): keys a Service's
  ports by number alone, as a proxy that forgot the protocol in kube-proxy's `ServicePortName`
  key would, so of TCP 80 and UDP 80 only the last is programmed: the other protocol's clients
  time out. Cilium's datapath did this until 1.17 (cilium/cilium#9207: one frontend per IP and
  port, whatever the protocol), and failed the Conformance test "should serve endpoints on same
  port and different protocols" once kubernetes PR #120069 promoted it in v1.29
  (cilium/cilium#29913).
- mutant-iptables-sctp-as-tcp (SCTP Services, issue 12 item 3): programs an SCTP Service port's
  rules with `-p tcp -m tcp`, as a proxy that knows only TCP and UDP and takes anything else
  for TCP would: an SCTP INIT to the VIP meets no rule and is routed on (into the node's sink),
  so SCTP clients time out where they must connect or be refused, and a TCP client reaches the
  SCTP port's pods (`availability`, `reject-when-empty`, `exact-balance`).
- mutant-iptables-keeps-invalid (long-lived connections, kubernetes#74839): no `KUBE-FORWARD
  -m conntrack --ctstate INVALID -j DROP` although the node leaves `nf_conntrack_tcp_be_liberal`
  at 0, as kube-proxy before v1.14 (PR #74840): an out-of-window segment from a backend reaches
  the client untranslated, the client answers RST, and the established connection is reset.
- mutant-iptables-nodeport-ignores-local (externalTrafficPolicy Local, I10): programs every node
  port as externalTrafficPolicy Cluster, so traffic from outside reaches other nodes' endpoints,
  masqueraded, where it must reach only the node's own with the client's address (`node-port`).
- mutant-iptables-nodeport-rejects-no-local (externalTrafficPolicy Local, I10): REJECTs node-port
  traffic at a node without local endpoints where kube-proxy DROPs it (so that a load balancer's
  health check, not a refusal, takes the node out), and the client is refused (`node-port`).
- mutant-iptables-ignores-topology (trafficDistribution, I11): programs every usable endpoint
  whatever the zone hints say, as a proxy written before topology-aware routing (or one that
  lists endpoints without their hints) would, so a client in a zone with hinted endpoints also
  reaches the other zones' (`every-node`, `no-stale-traffic`).
- mutant-iptables-lb-ip-unprogrammed (LoadBalancer, I4): programs a LoadBalancer's node ports
  but not its ingress IP (no "loadbalancer IP" rule in KUBE-SERVICES, nothing in
  KUBE-EXTERNAL-SERVICES), as a proxy that leaves `status.loadBalancer.ingress` to the cloud's
  load balancer would: a connection the load balancer hands to a node for the ingress IP meets
  no rule and is routed on (here into the node's sink), so the client times out where it must
  connect or be refused (`node-port`, part `load-balancer`).
- mutant-iptables-health-counts-terminating (healthCheckNodePort, I9): counts a node's local
  endpoints as the traffic rules use them, with the terminating fallback (`local_endpoints`),
  so a node left with only terminating, still serving endpoints answers the health check 200,
  and a load balancer keeps sending it new connections it should send elsewhere (`node-port`,
  part `health-check-node-port`; e2e "should fail health check node port if there are only
  terminating endpoints").
- mutant-nftables-external-ip-unprogrammed (externalIPs, I4): programs node ports and ingress
  IPs but no Service's `spec.externalIPs` (no `service-ips` element for them, nothing in
  `no-endpoint-services`), as a proxy that treats externalIPs as somebody else's routing
  would: a connection to an externalIP handed to a node meets no rule and is routed on (into
  the node's sink), so the client times out where it must connect or be refused
  (`node-port`, part `external-ip`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import ClassVar

from harness.local.netns import flush_conntrack
from harness.model.endpoints import local_endpoints, unique_endpoints, usable_destinations
from harness.model.objects import (
    MAX_AFFINITY_TIMEOUT_S,
    PROXY_NODE,
    Destination,
    EndpointSlice,
    Service,
    TrafficPolicy,
)
from harness.proxies.base import NodeContext
from harness.proxies.iptables import MARK_MASQ, IptablesProxy
from harness.proxies.nftables import NftablesProxy
from harness.proxies.rules.kernel_proxy import KernelRuleProxy
from harness.proxies.rules.plan import Flow, PortPlan, unique_by_address
from harness.proxies.rules.rendering import Lines, Rendering
from harness.proxies.userspace import UserspaceProxy


class WrongProbabilityProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-wrong-probability"
    description: ClassVar[str] = "iptables with every probability rule at 1/n instead of 1/(n-i)"

    def probability(self, index: int, count: int) -> float:
        return 1.0 / count


class NeverRemovesProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-never-removes"
    description: ClassVar[str] = "iptables that never deletes an endpoint's rules once programmed"

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        previous = {plan.port_name: plan for plan in self.plans.get(service.name, ())}
        plans = []
        for plan in super().plan(service):
            kept = previous[plan.port_name].destinations if plan.port_name in previous else ()
            merged = unique_by_address((*plan.destinations, *kept))
            plans.append(replace(plan, destinations=merged, drops=plan.drops and not merged))
        return tuple(plans)


class IgnoresReadinessProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-ignores-readiness"
    description: ClassVar[str] = "iptables that uses every listed endpoint, ready or not"

    def destinations(self, service: Service, port_name: str) -> list[Destination]:
        found = []
        for endpoint, endpoint_slice in unique_endpoints(self.slices_of(service.name)):
            port = endpoint_slice.port_for(port_name)
            if port is not None:
                found.append(Destination(endpoint.backend, endpoint.address, port, endpoint.node))
        return sorted(found, key=lambda destination: destination.backend)


class DropEmptyProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-drop-empty"
    description: ClassVar[str] = "iptables that DROPs (not REJECTs) for Services without endpoints"
    no_endpoints_target: ClassVar[str] = "DROP"


class _NoReject(KernelRuleProxy):
    """Programs nothing for a Service port without any endpoints, so no REJECT at all; the DROP
    for ports whose endpoints are all elsewhere is kept (only the REJECT goes)."""

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        return tuple(p for p in super().plan(service) if p.destinations or p.drops)


class NoRejectIptablesProxy(_NoReject, IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-no-reject"
    description: ClassVar[str] = "iptables that programs no REJECT for Services without endpoints"


class NoRejectNftablesProxy(_NoReject, NftablesProxy):
    name: ClassVar[str] = "mutant-nftables-no-reject"
    description: ClassVar[str] = "nftables that programs no REJECT for Services without endpoints"


class NoAffinityProxy(NftablesProxy):
    name: ClassVar[str] = "mutant-nftables-no-affinity"
    description: ClassVar[str] = "nftables that ignores sessionAffinity ClientIP"

    def affinity_enabled(self, service: Service) -> bool:
        return False


class TwoDecimalsProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-two-decimals"
    description: ClassVar[str] = "iptables with probabilities rounded to two decimals (#37932)"

    def probability(self, index: int, count: int) -> float:
        return round(1.0 / (count - index), 2)


class LeaksDeletedProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-leaks-deleted"
    description: ClassVar[str] = "iptables that never removes a deleted Service's rules"

    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        super().program(services, {name for name in changed if name in services})


class AffinityNeverExpiresProxy(NftablesProxy):
    name: ClassVar[str] = "mutant-nftables-affinity-never-expires"
    description: ClassVar[str] = "nftables whose ClientIP affinity ignores timeoutSeconds"

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        return super().plan(replace(service, affinity_timeout_s=MAX_AFFINITY_TIMEOUT_S))


class NoFallbackUserspaceProxy(UserspaceProxy):
    name: ClassVar[str] = "mutant-userspace-no-fallback"
    description: ClassVar[str] = "userspace proxy that never uses terminating endpoints"

    def destinations(
        self, slices: tuple[EndpointSlice, ...], service: Service, port_name: str
    ) -> list[Destination]:
        return [
            Destination(e.backend, e.address, port, e.node)
            for e, s in unique_endpoints(slices)
            if e.ready
            and (port := s.port_for(port_name)) is not None
            and (service.internal_traffic_policy == TrafficPolicy.CLUSTER or e.node == self._node)
        ]

    @property
    def _node(self) -> str:
        return self.node.node if self.node is not None else ""


class WrongPortUserspaceProxy(UserspaceProxy):
    name: ClassVar[str] = "mutant-userspace-wrong-port"
    description: ClassVar[str] = "userspace proxy that dials every endpoint one port too high"

    def destinations(
        self, slices: tuple[EndpointSlice, ...], service: Service, port_name: str
    ) -> list[Destination]:
        return [
            replace(d, port=d.port + 1) for d in super().destinations(slices, service, port_name)
        ]


class FlushesOnRestartProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-flushes-on-restart"
    description: ClassVar[str] = "iptables that flushes the node's conntrack table when it starts"

    def start(self, node: NodeContext) -> None:
        super().start(node)
        flush_conntrack(node.netns)


class ClearsRulesOnRestartProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-clears-rules-on-restart"
    description: ClassVar[str] = (
        "iptables that removes every rule when stopped for a restart (and so starts empty)"
    )

    def stop_for_restart(self) -> None:
        self.stop()


class FlushesEverySyncProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-flushes-every-sync"
    description: ClassVar[str] = (
        "iptables that flushes the node's conntrack table after every sync, not only removed flows"
    )

    def program(self, services: Mapping[str, Service], changed: set[str]) -> None:
        super().program(services, changed)
        if self.node is not None:
            flush_conntrack(self.node.netns)


class FirstPortOnlyProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-first-port-only"
    description: ClassVar[str] = "iptables that programs only the first port of every Service"

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        return super().plan(service)[:1]


class TombstonesProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-tombstones"
    description: ClassVar[str] = (
        "iptables that ignores a Service added again after it saw it deleted (name and VIP)"
    )

    def __init__(self) -> None:
        super().__init__()
        self.tombstones: set[tuple[str, str]] = set()

    def on_service_add(self, service: Service) -> None:
        if (service.name, service.cluster_ip) not in self.tombstones:
            super().on_service_add(service)

    def on_service_delete(self, service: Service) -> None:
        self.tombstones.add((service.name, service.cluster_ip))
        super().on_service_delete(service)


class MasqueradesAllProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-masquerades-all"
    description: ClassVar[str] = (
        "iptables that masquerades all Service traffic, so pods never see a client pod's address"
    )

    def endpoint_rules(self, plan: PortPlan, chain: str, address: str, port: int) -> Lines:
        hairpin, *rest = super().endpoint_rules(plan, chain, address, port)
        return (hairpin.replace(f" -s {address}/32 ", " "), *rest)


class NoHairpinMasqueradeProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-no-hairpin-masquerade"
    description: ClassVar[str] = (
        "iptables without the hairpin masquerade: a pod cannot reach itself through its Service"
    )

    def endpoint_rules(self, plan: PortPlan, chain: str, address: str, port: int) -> Lines:
        return tuple(
            line
            for line in super().endpoint_rules(plan, chain, address, port)
            if not line.endswith(f"-j {MARK_MASQ}")
        )


class IgnoresOptOutProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-ignores-opt-out"
    description: ClassVar[str] = (
        "iptables that programs Services labelled service-proxy-name or headless (I13)"
    )
    honours_opt_out: ClassVar[bool] = False


class KeepsUdpConntrackProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-keeps-udp-conntrack"
    description: ClassVar[str] = (
        "iptables that never deletes the UDP conntrack entries of removed endpoints"
    )

    def record(
        self, plans: Mapping[str, tuple[PortPlan, ...]], rendered: Mapping[str, Rendering]
    ) -> set[Flow]:
        return {f for f in super().record(plans, rendered) if f.protocol != "udp"}


class KeepsNodePortUdpConntrackProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-keeps-nodeport-udp-conntrack"
    description: ClassVar[str] = (
        "iptables that deletes conntrack entries by VIP only, never a node port's (as before"
        " kubernetes#59368's fix)"
    )
    nodes: ClassVar[int] = 2  # judged from outside, which needs two nodes

    def clears_node_ports(self) -> bool:
        return False


class ForgetsWhileDownProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-forgets-while-down"
    description: ClassVar[str] = (
        "iptables that does not reconcile conntrack when it starts, so UDP flows to endpoints"
        " removed while it was down stay stale"
    )

    def reconciles_at_start(self) -> bool:
        return False


class WrongNodeProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-wrong-node"
    description: ClassVar[str] = (
        "iptables that takes node-1 as its node on every node (internalTrafficPolicy Local)"
    )
    nodes: ClassVar[int] = 2  # wrong only on another node: searched on two (`mutation`)

    def destinations(self, service: Service, port_name: str) -> list[Destination]:
        slices = self.slices_of(service.name)
        return usable_destinations(slices, service, port_name, PROXY_NODE)


class ImmutableVipProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-immutable-vip"
    description: ClassVar[str] = (
        "iptables that keeps the ClusterIP a Service was first added with through every update"
    )

    def on_service_update(self, old: Service, new: Service) -> None:
        first = self.services.get(new.name, old)
        super().on_service_update(old, replace(new, cluster_ip=first.cluster_ip))


class PortIgnoresProtocolProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-port-ignores-protocol"
    description: ClassVar[str] = (
        "iptables that keys Service ports by number only: of TCP and UDP on one number, one is lost"
    )

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        by_number = {plan.port: plan for plan in super().plan(service)}  # the last one wins
        return tuple(by_number.values())


class SctpAsTcpProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-sctp-as-tcp"
    description: ClassVar[str] = (
        "iptables that programs SCTP Service ports as TCP (`-p tcp`), so SCTP is never translated"
    )

    def plan(self, service: Service) -> tuple[PortPlan, ...]:
        return tuple(
            replace(plan, protocol="tcp") if plan.protocol == "sctp" else plan
            for plan in super().plan(service)
        )


class KeepsInvalidProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-keeps-invalid"
    description: ClassVar[str] = (
        "iptables without the INVALID conntrack drop, so out-of-window segments reset connections"
    )

    def drops_invalid(self) -> bool:
        return False


class NodePortIgnoresLocalProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-nodeport-ignores-local"
    description: ClassVar[str] = (
        "iptables that programs node ports as externalTrafficPolicy Cluster whatever the policy"
    )
    nodes: ClassVar[int] = 2  # only a node without local endpoints shows it: searched on two

    def external_destinations(self, service: Service, port_name: str) -> list[Destination]:
        cluster = replace(service, external_traffic_policy=TrafficPolicy.CLUSTER)
        return super().external_destinations(cluster, port_name)

    def external_policy_local(self, service: Service) -> bool:
        return False


class NodePortRejectsNoLocalProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-nodeport-rejects-no-local"
    description: ClassVar[str] = (
        "iptables that REJECTs node-port traffic at a node without local endpoints (eTP Local)"
    )
    nodes: ClassVar[int] = 2
    no_local_external_target: ClassVar[str] = "REJECT --reject-with icmp-port-unreachable"


class LoadBalancerIpUnprogrammedProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-lb-ip-unprogrammed"
    description: ClassVar[str] = (
        "iptables that programs a LoadBalancer's node ports but not its ingress IP"
    )
    nodes: ClassVar[int] = 2  # the external client, which sends to ingress IPs, needs two

    def load_balancer_ips(self, service: Service) -> tuple[str, ...]:
        return ()


class HealthCountsTerminatingProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-health-counts-terminating"
    description: ClassVar[str] = (
        "iptables whose healthCheckNodePort counts serving terminating endpoints as healthy (I9)"
    )
    nodes: ClassVar[int] = 2  # judged from outside, which needs two nodes

    def health_count(self, slices: Iterable[EndpointSlice], node: str) -> int:
        return len({e.address for e, _ in local_endpoints(slices, node)})


class ExternalIpUnprogrammedProxy(NftablesProxy):
    name: ClassVar[str] = "mutant-nftables-external-ip-unprogrammed"
    description: ClassVar[str] = "nftables that programs no Service's externalIPs"
    nodes: ClassVar[int] = 2  # the external client, which sends to externalIPs, needs two

    def external_ips(self, service: Service) -> tuple[str, ...]:
        return ()


class IgnoresTopologyProxy(IptablesProxy):
    name: ClassVar[str] = "mutant-iptables-ignores-topology"
    description: ClassVar[str] = (
        "iptables that programs every usable endpoint whatever the zone hints (trafficDistribution)"
    )

    def destinations(self, service: Service, port_name: str) -> list[Destination]:
        node = self.node.node if self.node is not None else ""
        unhinted = tuple(
            replace(s, endpoints=tuple(replace(e, zone_hints=()) for e in s.endpoints))
            for s in self.slices_of(service.name)
        )
        return usable_destinations(unhinted, service, port_name, node)


MUTANT_PROXIES: dict[str, type] = {
    cls.name: cls
    for cls in (
        WrongProbabilityProxy,
        NeverRemovesProxy,
        IgnoresReadinessProxy,
        DropEmptyProxy,
        NoRejectIptablesProxy,
        NoRejectNftablesProxy,
        NoAffinityProxy,
        TwoDecimalsProxy,
        LeaksDeletedProxy,
        AffinityNeverExpiresProxy,
        NoFallbackUserspaceProxy,
        WrongPortUserspaceProxy,
        FlushesOnRestartProxy,
        ClearsRulesOnRestartProxy,
        FlushesEverySyncProxy,
        FirstPortOnlyProxy,
        TombstonesProxy,
        MasqueradesAllProxy,
        NoHairpinMasqueradeProxy,
        IgnoresOptOutProxy,
        KeepsUdpConntrackProxy,
        KeepsNodePortUdpConntrackProxy,
        ForgetsWhileDownProxy,
        WrongNodeProxy,
        ImmutableVipProxy,
        PortIgnoresProtocolProxy,
        SctpAsTcpProxy,
        KeepsInvalidProxy,
        NodePortIgnoresLocalProxy,
        NodePortRejectsNoLocalProxy,
        LoadBalancerIpUnprogrammedProxy,
        HealthCountsTerminatingProxy,
        ExternalIpUnprogrammedProxy,
        IgnoresTopologyProxy,
    )
}
