"""NodePort traffic from outside: after a step, a few fresh connections from the external client
to every node's own address on the node port of each changed NodePort or LoadBalancer Service,
judged against that node's `expect_external` (`harness.checks.external`, `node-port`; I4, I10).

After a step whose state the proxies say is final and in which nothing failed (as
`harness.nodeclients`: this must single out what only traffic from outside shows),
`ExternalClients.after` sends a few fresh connections at once from the external client
(`TrafficRequest.external_node`) to each node's node port of the first port of every
NodePort/LoadBalancer Service whose external expectation changed for some node (every such
Service after a proxy restart or stale snapshot), at most two of them (in name
order, rotated by the step so a replay picks the same). A connection that must be dropped or
refused gets `EMPTY_TIMEOUT_S`, one that must connect the run's request timeout (the sizes and
the rotation are `harness.nodeclients`': `sample_each`, `sample_request`).

Not judged: a Service with an opt-out label (its node port is not programmed at all, so the
node's own stack answers it, which the model does not say), and pod or node traffic to a node
port (implementation-defined, issue 11 item 3). A UDP port is judged in all three cases, one
fresh flow per datagram: the external client, unlike a node's own host network
(`harness.nodeclients`), sees a REJECT's ICMP port unreachable (`refused`) and a DROP's silence;
a sample that reached a UDP node port counts as the coverage state `udp-node-port-reached`
(uncheckable where the run generates no UDP, `harness.udp_support`).

LoadBalancer ingress IPs (`node-port`'s part `load-balancer`): then, if that held, the same
sample is sent to the ingress IP of every changed LoadBalancer Service that has one (its external
expectation changed for some node, or its ingress IP; every one after a nemesis event; at most
two, rotated alike) via every node (`TrafficRequest.via_load_balancer`: the external client hands
it to that node as a load balancer would), judged by the same `expect_external` of that node
(`LoadBalancerClients`, `harness.checks.external.check_load_balancer`); its coverage state is
`load-balancer-reached`.

externalIPs (`node-port`'s part `external-ip`): then, if that held, every changed Service with
externalIPs, of any type (its externalIPs changed, or its expectation at one of them for some
node; every one after a nemesis event), is sent to from outside via every node at one of its
externalIPs (`TrafficRequest.external_ip`, from the same per-node address as via a load
balancer), judged by that node's `expect_external_ip` (`ExternalIpClients`,
`harness.checks.external.check_external_ip`); its coverage state is `external-ip-reached`.

Whenever `node-port` judged a Service, what a pod on each node gets at its own node's node port
is recorded, not judged (`harness.podnodeports`, the record's `node_port_from_pods`).

Then, if those held, the same step's health checks (`harness.healthchecks`: every node's
healthCheckNodePort of the changed LoadBalancer Services under Local, part
`health-check-node-port`).

Only on targets with an external client and a proxy on more than one node (`external_nodes`:
the model, the local cluster with `--nodes` 2 or more); elsewhere `node-port` is not applicable
and its coverage states are uncheckable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from harness import healthchecks
from harness.checks.external import (
    EXTERNAL_IP,
    LOAD_BALANCER,
    ExternalSample,
    Ingress,
    check_ingress,
    check_node_port,
)
from harness.checks.nodes import CONNECT, DROP
from harness.checks.verdict import Verdict
from harness.events import NEMESIS_EVENTS, Event
from harness.model.endpoints import expect_external, expect_external_ip
from harness.model.objects import Protocol, Service, TrafficPolicy, opt_out_label
from harness.model.state import ClusterState
from harness.nodeclients import NodeClients, host_nodes, sample_request, unsent_from_nodes
from harness.podnodeports import PodNodePorts
from harness.targets.base import Target
from harness.udp_support import generates_udp

PORT = "http"
REACHED = "node-port-reached"
LOCAL_DROPS = "external-local-no-local-endpoints"
LOAD_BALANCER_REACHED = LOAD_BALANCER.reached
EXTERNAL_IP_REACHED = EXTERNAL_IP.reached
UDP_REACHED = "udp-node-port-reached"
FEATURES = (
    frozenset({REACHED, LOCAL_DROPS, LOAD_BALANCER_REACHED, EXTERNAL_IP_REACHED, UDP_REACHED})
    | healthchecks.FEATURES
)


def external_nodes(target: object) -> tuple[str, ...]:
    """The nodes whose node ports `target` sends to from outside: its `host_nodes` when it has
    an external client (an `external_address` attribute); none otherwise."""
    return host_nodes(target) if hasattr(target, "external_address") else ()


def unavailable(target: object) -> str | None:
    """Why `node-port` cannot run on `target` (None: it can); a target may say why itself
    (`external_unsupported`, the kube target)."""
    if external_nodes(target):
        return None
    why = getattr(target, "external_unsupported", None)
    if why:
        return str(why)
    return (
        "the target has no external client on the nodes' network (a local cluster with --nodes"
        " 2 or more, or the model)"
    )


def client_address(target: object, node: str) -> str:
    """The external client's own address as sending to `node`: the target's
    `external_source(node)` where it sends to each node from elsewhere (the kube target: a
    hostNetwork client on another node), else its `external_address` ("" if none)."""
    per_node = getattr(target, "external_source", None)
    if callable(per_node):
        return str(per_node(node) or "")
    return str(getattr(target, "external_address", "") or "")


def uncheckable(target: object) -> frozenset[str]:
    """The coverage states never checked on `target`."""
    if not external_nodes(target):
        return FEATURES
    never = frozenset() if generates_udp(target) else frozenset({UDP_REACHED})
    return never | (frozenset() if healthchecks.asks_health(target) else healthchecks.FEATURES)


def judged_services(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[str]:
    """NodePort and LoadBalancer Services, without an opt-out label, with the port `PORT`,
    whose external expectation changed for any of `nodes` (all of them after a nemesis
    event). Pure."""
    names = []
    for name, service in sorted(after.services.items()):
        if not _judgeable(service):
            continue
        if isinstance(event, NEMESIS_EVENTS) or any(
            expect_external(before, name, PORT, n) != expect_external(after, name, PORT, n)
            for n in nodes
        ):
            names.append(name)
    return names


def balanced_services(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[str]:
    """The `judged_services` that have an ingress IP, and the LoadBalancer Services whose
    ingress IP changed (a Service made LoadBalancer from NodePort keeps its node-port
    expectation but gains an ingress IP). Pure."""
    names = set(judged_services(event, before, after, nodes))
    for name, service in after.services.items():
        old = before.services.get(name)
        if _judgeable(service) and (
            old is None or old.load_balancer_ip != service.load_balancer_ip
        ):
            names.add(name)
    return sorted(n for n in names if after.services[n].load_balancer_ip is not None)


def addressed_services(
    event: Event, before: ClusterState, after: ClusterState, nodes: tuple[str, ...]
) -> list[str]:
    """Services of any type with externalIPs, without an opt-out label, with the port `PORT`,
    whose externalIPs changed or whose expectation at one of them changed for any of `nodes`
    (all of them after a nemesis event). Pure."""
    names = []
    for name, service in sorted(after.services.items()):
        if not service.external_ips or not _judgeable(service, any_type=True):
            continue
        old = before.services.get(name)
        if (
            isinstance(event, NEMESIS_EVENTS)
            or old is None
            or old.external_ips != service.external_ips
            or any(
                expect_external_ip(before, name, PORT, n, a)
                != expect_external_ip(after, name, PORT, n, a)
                for n in nodes
                for a in service.external_ips
            )
        ):
            names.append(name)
    return names


def _judgeable(service: Service, any_type: bool = False) -> bool:
    """A Service `judged_services` may name: external (of any type with `any_type`), not
    opted out, with the port PORT."""
    return (
        (any_type or service.type.external)
        and opt_out_label(service) is None
        and any(p.name == PORT for p in service.ports)
    )


def external_sample(
    target: Target,
    state: ClusterState,
    service: str,
    node: str,
    timeout_s: float,
    via_load_balancer: bool = False,
    external_ip: str | None = None,
) -> ExternalSample | None:
    """A sample from outside at `node`'s node port, or at the Service's ingress IP via `node`
    (`via_load_balancer`), or at its externalIP `external_ip` via `node`, or None for one that
    cannot be judged (a UDP port that must not connect there: module docstring). Under Local
    the pod must see the address the connection left from: the external client's own, or its
    address for `node` via a load balancer (externalIPs are handed to nodes alike)."""
    if external_ip is not None:
        expected = expect_external_ip(state, service, PORT, node, external_ip)
    else:
        expected = expect_external(state, service, PORT, node)
    request = sample_request(state, service, expected, timeout_s, True, external_node=node)
    if request is None or unsent_from_nodes(target, state, service):
        return None
    if via_load_balancer or external_ip is not None:
        request = replace(request, via_load_balancer=via_load_balancer, external_ip=external_ip)
        source = getattr(target, "load_balancer_source", lambda _: None)(node)
    else:
        source = client_address(target, node)
    return ExternalSample(
        service,
        node,
        expected,
        target.send(request).outcomes,
        client_address=str(source or ""),
        keeps_source=state.services[service].external_traffic_policy == TrafficPolicy.LOCAL,
        via_load_balancer=via_load_balancer,
        external_ip=external_ip,
        udp=_udp(state.services[service]),
    )


def _udp(service: Service) -> bool:
    """Whether `service`'s port PORT is UDP."""
    return any(p.name == PORT and p.protocol == Protocol.UDP.value for p in service.ports)


class IngressClients(NodeClients):
    """A part of `node-port` at addresses a load balancer or router hands to one node
    (`ingress`): one sample per node and changed Service per step, judged by
    `check_ingress`. Subclasses say which Services changed and how a sample is sent. Holds
    nothing between steps."""

    ingress: ClassVar[Ingress] = LOAD_BALANCER

    def route_nodes(self, target: Target) -> tuple[str, ...]:
        """`external_nodes`, on a target that hands addresses to a chosen node (it says from
        which address: `load_balancer_source`); none elsewhere."""
        return external_nodes(target) if hasattr(target, "load_balancer_source") else ()

    def judge(self, samples: list[Any]) -> tuple[Verdict | None, frozenset[str]]:
        reached = any(s.outcome == CONNECT for s in samples)
        states = frozenset({self.ingress.reached} if reached else ())
        return check_ingress(samples, self.ingress), states


class LoadBalancerClients(IngressClients):
    """`node-port`'s part `load-balancer` (module docstring): one sample per node and changed
    LoadBalancer Service with an ingress IP per step. Holds nothing between steps."""

    record_key: ClassVar[str] = "load_balancer"

    def changed(self, event: Event, before: ClusterState, after: ClusterState) -> list[str]:
        return balanced_services(event, before, after, self.nodes)

    def _sample(self, state: ClusterState, service: str, node: str) -> ExternalSample | None:
        return external_sample(self.target, state, service, node, self.timeout_s, True)


class ExternalIpClients(IngressClients):
    """`node-port`'s part `external-ip` (module docstring): one sample per node and changed
    Service with externalIPs per step, node k (in `nodes` order) sent to the Service's
    externalIP number k modulo their count, so two nodes exercise two addresses. Holds
    nothing between steps."""

    record_key: ClassVar[str] = "external_ip"
    ingress: ClassVar[Ingress] = EXTERNAL_IP

    def changed(self, event: Event, before: ClusterState, after: ClusterState) -> list[str]:
        return addressed_services(event, before, after, self.nodes)

    def _sample(self, state: ClusterState, service: str, node: str) -> ExternalSample | None:
        addresses = state.services[service].external_ips
        address = addresses[self.nodes.index(node) % len(addresses)]
        return external_sample(
            self.target, state, service, node, self.timeout_s, external_ip=address
        )


class ExternalClients(NodeClients):
    """One sample per node and changed external Service per step (module docstring), from the
    external client to the node ports. Holds nothing between steps."""

    record_key: ClassVar[str] = "node_port"

    def __init__(self, target: Target, timeout_s: float) -> None:
        super().__init__(target, timeout_s)
        self.load_balancer = LoadBalancerClients(target, timeout_s)
        self.external_ips = ExternalIpClients(target, timeout_s)
        self.health = healthchecks.HealthChecks(target, self.nodes)
        self.from_pods = PodNodePorts(target, self.nodes)

    def route_nodes(self, target: Target) -> tuple[str, ...]:
        return external_nodes(target)

    def after(
        self,
        step: int,
        event: Event,
        before: ClusterState,
        after: ClusterState,
        record: dict[str, Any],
    ) -> tuple[list[Verdict], frozenset[str], frozenset[str]]:
        """The node ports' samples and verdict (`NodeClients.after`), then, while every verdict
        held, the ingress IPs' (`LoadBalancerClients`), the externalIPs' (`ExternalIpClients`)
        and the health checks (`harness.healthchecks`)."""
        verdicts, reached, checked = super().after(step, event, before, after, record)
        if verdicts:  # judged this step: what a pod gets at its own node's port, recorded only
            judged = list(dict.fromkeys(s["service"] for s in record[self.record_key]))
            self.from_pods.record(after, judged, record)
        for more_of in (self.load_balancer, self.external_ips, self.health):
            if any(not v.holds for v in verdicts):
                break
            more, more_reached, more_checked = more_of.after(step, event, before, after, record)
            verdicts, reached, checked = (
                [*verdicts, *more],
                reached | more_reached,
                checked | more_checked,
            )
        return verdicts, reached, checked

    def changed(self, event: Event, before: ClusterState, after: ClusterState) -> list[str]:
        return judged_services(event, before, after, self.nodes)

    def judge(self, samples: list[Any]) -> tuple[Verdict | None, frozenset[str]]:
        features = set()
        if any(s.outcome == CONNECT for s in samples):
            features.add(REACHED)
        if any(s.keeps_source and s.outcome == DROP for s in samples):
            features.add(LOCAL_DROPS)
        if any(s.udp and s.outcome == CONNECT for s in samples):
            features.add(UDP_REACHED)
        return check_node_port(samples), frozenset(features)

    def _sample(self, state: ClusterState, service: str, node: str) -> ExternalSample | None:
        """A sample from outside at `node`'s node port (`external_sample`)."""
        return external_sample(self.target, state, service, node, self.timeout_s)
