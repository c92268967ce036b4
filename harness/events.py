"""The event vocabulary: what can happen to a cluster, as plain data.

Every event is a frozen dataclass with an exact JSON round trip (`to_json` / `event_from_json`) and
a pure `apply(state) -> state` on the model. Events that change the cluster are the generator's and
the nemesis's operations; `Probe` is the client's read (Jepsen's split): it changes nothing and asks
the runner to measure balancing and affinity with a larger sample.

A sequence saves to and loads from a versioned JSON file (`save_sequence` / `load_sequence`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from harness.documents import BadDocument, check_schema, read_document, shorten
from harness.errors import InvalidEvent, UsageError
from harness.files import write_atomically
from harness.model.names import (
    group_name_problem,
    label_key_problem,
    label_value_problem,
    pod_name_problem,
    port_name_problem,
    service_name_problem,
)
from harness.model.objects import (
    ALL_NODES,
    DEFAULT_AFFINITY_TIMEOUT_S,
    MAX_AFFINITY_TIMEOUT_S,
    OPT_OUT_LABELS,
    PROXY_NODE,
    TRAFFIC_DISTRIBUTIONS,
    Affinity,
    ContainerPort,
    Labels,
    Phase,
    Protocol,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    labels_of,
)
from harness.model.state import EXTERNAL_IP_CIDR, ClusterState
from harness.traffic import CLIENTS

SEQUENCE_SCHEMA = "harness.sequence/v1"
MAX_EVENTS = 10_000
"""A sequence file holds at most this many events (a search's examples hold tens)."""
MAX_REPLICAS = 1_000
MAX_WAIT_S = 2 * 86_400.0
"""The longest `wait` (twice the longest affinity timeout): a replay on a real target sleeps it."""
DEFAULT_SCALE_GRACE_S = 30.0  # core/v1 terminationGracePeriodSeconds default
UDP_PORT_NAME = "udp"
"""The name of a pod's UDP container port (`CreatePod.udp_port`), which UDP Services target."""
SCTP_PORT_NAME = "sctp"
"""The name of a pod's SCTP container port (`CreatePod.sctp_port`), which SCTP Services target."""
SCALED_PORTS = (
    ContainerPort("http", 8080),
    ContainerPort(UDP_PORT_NAME, 8080, "UDP"),
    ContainerPort(SCTP_PORT_NAME, 8080, "SCTP"),
)
"""The container ports of a pod `Scale` creates."""


@dataclass(frozen=True)
class Event:
    """Base of all events. `kind` is the JSON tag; subclasses implement `apply`."""

    kind: ClassVar[str] = ""

    def apply(self, state: ClusterState) -> ClusterState:
        """The model state after this event. Pure; raises InvalidEvent if it does not apply."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _LABEL_FIELDS and value is not None:
                value = dict(value)
            elif f.name in _LIST_FIELDS:
                value = list(value)
            elif isinstance(value, StrEnum):
                value = value.value
            data[f.name] = value
        return data

    def __str__(self) -> str:
        args = " ".join(
            f"{k}={v}" for k, v in self.to_json().items() if k != "kind" and v is not None
        )
        return f"{self.kind} {args}".strip()


_LABEL_FIELDS = {"selector", "labels"}
_LIST_FIELDS = {"addresses"}  # tuples of strings, JSON lists


def _check_node(node: str) -> None:
    if node not in ALL_NODES:
        raise InvalidEvent(
            f"unknown node {shorten(node)}: use one of {ALL_NODES[0]} to {ALL_NODES[-1]}"
        )


def _check_affinity_timeout(timeout_s: int) -> None:
    if not 0 < timeout_s <= MAX_AFFINITY_TIMEOUT_S:
        raise InvalidEvent(
            f"affinity timeout {timeout_s}s is out of range: it must be 1..{MAX_AFFINITY_TIMEOUT_S}"
        )


# -- Services -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateService(Event):
    """Create a ClusterIP Service with one port 80, named `http`, of `protocol` (TCP, UDP or
    SCTP) to
    `target_port` (a number or a name; a named one resolves against container ports of the same
    protocol, so a UDP Service names the pods' `udp` port: `CreatePod.udp_port`)."""

    kind: ClassVar[str] = "create-service"
    service: str
    selector: Labels
    target_port: int | str = "http"
    session_affinity: Affinity = Affinity.NONE
    affinity_timeout_s: int = DEFAULT_AFFINITY_TIMEOUT_S
    publish_not_ready_addresses: bool = False
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    protocol: Protocol = Protocol.TCP

    def apply(self, state: ClusterState) -> ClusterState:
        if self.service in state.services:
            raise InvalidEvent(f"Service {self.service!r} already exists")
        _check_affinity_timeout(self.affinity_timeout_s)
        return state.with_service(
            Service(
                name=self.service,
                cluster_ip=state.next_service_ip(),
                selector=self.selector,
                ports=(ServicePort("http", 80, self.target_port, self.protocol.value),),
                session_affinity=self.session_affinity,
                affinity_timeout_s=self.affinity_timeout_s,
                publish_not_ready_addresses=self.publish_not_ready_addresses,
                internal_traffic_policy=self.internal_traffic_policy,
            )
        )


@dataclass(frozen=True)
class DeleteService(Event):
    kind: ClassVar[str] = "delete-service"
    service: str

    def apply(self, state: ClusterState) -> ClusterState:
        return state.without_service(self.service)


@dataclass(frozen=True)
class SetSelector(Event):
    kind: ClassVar[str] = "set-selector"
    service: str
    selector: Labels

    def apply(self, state: ClusterState) -> ClusterState:
        return state.patch_service(self.service, selector=self.selector)


@dataclass(frozen=True)
class SetAffinity(Event):
    kind: ClassVar[str] = "set-affinity"
    service: str
    session_affinity: Affinity
    timeout_s: int = DEFAULT_AFFINITY_TIMEOUT_S

    def apply(self, state: ClusterState) -> ClusterState:
        _check_affinity_timeout(self.timeout_s)
        return state.patch_service(
            self.service, session_affinity=self.session_affinity, affinity_timeout_s=self.timeout_s
        )


@dataclass(frozen=True)
class SetPublishNotReady(Event):
    kind: ClassVar[str] = "set-publish-not-ready"
    service: str
    value: bool

    def apply(self, state: ClusterState) -> ClusterState:
        return state.patch_service(self.service, publish_not_ready_addresses=self.value)


@dataclass(frozen=True)
class SetTrafficPolicy(Event):
    """Set internalTrafficPolicy (KEP-2086)."""

    kind: ClassVar[str] = "set-traffic-policy"
    service: str
    policy: TrafficPolicy

    def apply(self, state: ClusterState) -> ClusterState:
        return state.patch_service(self.service, internal_traffic_policy=self.policy)


@dataclass(frozen=True)
class SetTrafficDistribution(Event):
    """Set (or, with None, clear) `spec.trafficDistribution` (KEP-4444): PreferClose, and
    PreferSameZone where the model's version has it (`TRAFFIC_DISTRIBUTIONS`). The
    EndpointSlice controller then hints every ready endpoint for its own zone, and a proxy
    in a zone that has hinted endpoints uses only those (I11,
    `harness.model.endpoints.topology_applies`)."""

    kind: ClassVar[str] = "set-traffic-distribution"
    service: str
    value: str | None

    def apply(self, state: ClusterState) -> ClusterState:
        if self.value is not None and self.value not in TRAFFIC_DISTRIBUTIONS:
            raise InvalidEvent(
                f"trafficDistribution {shorten(self.value)} is not modelled: use one of"
                f" {', '.join(TRAFFIC_DISTRIBUTIONS)}, or null to clear it"
            )
        return state.patch_service(self.service, traffic_distribution=self.value)


def typed(state: ClusterState, service: Service, kind: ServiceType) -> Service:
    """`service` as type `kind`, with what the API server keeps, allocates and drops on the
    way (pkg/registry/core/service/storage: `dropTypeDependentFields`, the node port and
    healthCheckNodePort allocators): a node port per port for NodePort and LoadBalancer, kept
    between the two; an ingress IP for a LoadBalancer (the local cluster's load-balancer
    controller, `LOAD_BALANCER_CIDR`); a healthCheckNodePort for a LoadBalancer under
    externalTrafficPolicy Local; none of them, and externalTrafficPolicy Cluster, for ClusterIP
    (kept for a ClusterIP Service with externalIPs, which stays externally accessible)."""
    if not kind.external:
        ports = tuple(replace(p, node_port=None) for p in service.ports)
        kept = service.external_traffic_policy if service.external_ips else TrafficPolicy.CLUSTER
        return replace(
            service,
            type=kind,
            ports=ports,
            external_traffic_policy=kept,
            health_check_node_port=None,
            load_balancer_ip=None,
        )
    missing = [p for p in service.ports if p.node_port is None]
    fresh = iter(state.next_node_ports(len(missing)))
    ports = tuple(p if p.node_port is not None else replace(p, node_port=next(fresh))
                  for p in service.ports)  # fmt: skip
    balanced = kind == ServiceType.LOAD_BALANCER
    changed = replace(
        service,
        type=kind,
        ports=ports,
        load_balancer_ip=(service.load_balancer_ip or state.next_load_balancer_ip())
        if balanced
        else None,
    )
    return with_health_check(state, changed)


def with_health_check(state: ClusterState, service: Service) -> Service:
    """`service` with a healthCheckNodePort exactly when it is a LoadBalancer under
    externalTrafficPolicy Local (kept while it stays one, allocated when it becomes one)."""
    wanted = (
        service.type == ServiceType.LOAD_BALANCER
        and service.external_traffic_policy == TrafficPolicy.LOCAL
    )
    if not wanted:
        return replace(service, health_check_node_port=None)
    if service.health_check_node_port is not None:
        return service
    taken = [p.node_port for p in service.ports if p.node_port]
    (port,) = state.next_node_ports(1, taken)
    return replace(service, health_check_node_port=port)


@dataclass(frozen=True)
class SetServiceType(Event):
    """Change a Service's type: ClusterIP, NodePort or LoadBalancer (`typed`: node ports are
    allocated, kept or released as the API server does; a LoadBalancer gets an ingress IP).

    A NodePort Service answers on every node's IP at each port's node port; a LoadBalancer
    also on its ingress IP. New connections from outside the cluster go where
    externalTrafficPolicy says (`harness.model.endpoints.expect_external`)."""

    kind: ClassVar[str] = "set-service-type"
    service: str
    type: ServiceType

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        if service.type == self.type:
            return state
        return state.with_service(typed(state, service, self.type))


@dataclass(frozen=True)
class SetExternalTrafficPolicy(Event):
    """Set externalTrafficPolicy of a NodePort or LoadBalancer Service: Cluster (any usable
    endpoint; the client's address may be masqueraded) or Local (this node's endpoints only,
    the client's address kept, dropped where there is none; a LoadBalancer gets a
    healthCheckNodePort). The API refuses it on a ClusterIP Service."""

    kind: ClassVar[str] = "set-external-traffic-policy"
    service: str
    policy: TrafficPolicy

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        if not service.externally_accessible:
            raise InvalidEvent(
                f"Service {self.service!r} is {service.type.value}: externalTrafficPolicy"
                " applies only to NodePort and LoadBalancer Services and to Services with"
                " externalIPs"
            )
        changed = replace(service, external_traffic_policy=self.policy)
        return state.with_service(with_health_check(state, changed))


@dataclass(frozen=True)
class SetServiceLabel(Event):
    """Set one of the opt-out labels on a Service (`OPT_OUT_LABELS`), or remove it when `value`
    is None: a labelled Service is left to another proxy (or to DNS) and a default proxy must
    not program it; removing the label programs it again (I13). Only the opt-out keys are
    modelled: other Service labels do not change what a proxy does."""

    kind: ClassVar[str] = "set-service-label"
    service: str
    key: str
    value: str | None

    def apply(self, state: ClusterState) -> ClusterState:
        if self.key not in OPT_OUT_LABELS:
            raise InvalidEvent(
                f"Service label {shorten(self.key)} is not modelled: use one of"
                f" {', '.join(OPT_OUT_LABELS)}"
            )
        labels = dict(state.service(self.service).labels)
        if self.value is None:
            labels.pop(self.key, None)
        else:
            labels[self.key] = self.value
        return state.patch_service(self.service, labels=labels_of(labels))


MAX_EXTERNAL_IPS = 2
"""At most this many externalIPs per Service in a sequence (`SetExternalIPs`)."""


@dataclass(frozen=True)
class SetExternalIPs(Event):
    """Set a Service's `spec.externalIPs` (any type, as in Kubernetes), or clear them with ().

    Each address must lie in `EXTERNAL_IP_CIDR` (the range the local cluster's external client
    routes to the nodes) and belong to no other Service (all Services serve the same port
    numbers, so a shared address would be two Services on one address and port, which
    kube-proxy programs first-come). A Service with externalIPs is externally accessible: its
    externalTrafficPolicy applies there (`ExternalPolicyLocal`); one that loses its last
    externalIP and has no node ports goes back to externalTrafficPolicy Cluster, as the API
    server drops the policy from a Service that is no longer externally accessible. New
    connections from outside the cluster to an external IP handed to a node go where that
    node's externalTrafficPolicy says (`harness.model.endpoints.expect_external_ip`)."""

    kind: ClassVar[str] = "set-external-ips"
    service: str
    addresses: tuple[str, ...] = ()

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        if len(self.addresses) > MAX_EXTERNAL_IPS or len(set(self.addresses)) != len(
            self.addresses
        ):
            raise InvalidEvent(
                f"externalIPs {list(self.addresses)} must be at most {MAX_EXTERNAL_IPS} distinct"
                " addresses"
            )
        for address in self.addresses:
            _check_external_ip(state, self.service, address)
        changed = replace(service, external_ips=tuple(self.addresses))
        if not changed.externally_accessible:
            changed = replace(changed, external_traffic_policy=TrafficPolicy.CLUSTER)
        return state.with_service(changed)


def _check_external_ip(state: ClusterState, service: str, address: str) -> None:
    """InvalidEvent (naming the fix) for an externalIP outside `EXTERNAL_IP_CIDR` or held by a
    Service other than `service`."""
    try:
        inside = ipaddress.IPv4Address(address) in EXTERNAL_IP_CIDR
    except ValueError:
        inside = False
    if not inside:
        raise InvalidEvent(
            f"externalIP {shorten(address)} is not an address of {EXTERNAL_IP_CIDR}: take"
            " externalIPs from that range (the one the local cluster routes to the nodes)"
        )
    holder = state.external_ip_holder(address, besides=service)
    if holder is not None:
        raise InvalidEvent(
            f"externalIP {address} is already Service {holder!r}'s: give each Service its own"
        )


# -- Pods -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreatePod(Event):
    """Create a Running pod whose container port `http` is `http_port`, and, with `udp_port`, a
    UDP container port `udp` on that number (the port UDP Services name); with `sctp_port`, an
    SCTP container port `sctp` on that number (the port SCTP Services name)."""

    kind: ClassVar[str] = "create-pod"
    pod: str
    labels: Labels
    ready: bool = True
    node: str = PROXY_NODE
    http_port: int = 8080
    udp_port: int | None = None
    sctp_port: int | None = None

    def apply(self, state: ClusterState) -> ClusterState:
        if self.pod in state.pods:
            raise InvalidEvent(f"pod {self.pod!r} already exists")
        _check_node(self.node)
        if not 1024 < self.http_port < 65536:
            raise InvalidEvent(f"http_port {self.http_port} must be in 1025..65535")
        ports: tuple[ContainerPort, ...] = (ContainerPort("http", self.http_port),)
        if self.udp_port is not None:
            if not 1024 < self.udp_port < 65536:
                raise InvalidEvent(f"udp_port {self.udp_port} must be in 1025..65535")
            ports += (ContainerPort(UDP_PORT_NAME, self.udp_port, Protocol.UDP.value),)
        if self.sctp_port is not None:
            if not 1024 < self.sctp_port < 65536:
                raise InvalidEvent(f"sctp_port {self.sctp_port} must be in 1025..65535")
            ports += (ContainerPort(SCTP_PORT_NAME, self.sctp_port, Protocol.SCTP.value),)
        return state.new_incarnation(
            self.pod, self.labels, ready=self.ready, node=self.node, ports=ports
        )


@dataclass(frozen=True)
class Scale(Event):
    """Scale the group `group` (pods `group-N` labelled app=group) to `replicas`.

    Scaling up creates ready pods with new ordinals on `node`, each serving `http` (TCP),
    `udp` (UDP) and `sctp` (SCTP) on 8080 (`SCALED_PORTS`: a group serves TCP, UDP and SCTP
    Services alike); scaling
    down deletes the newest pods gracefully, as a ReplicaSet does, with the default 30 s grace
    period.
    """

    kind: ClassVar[str] = "scale"
    group: str
    replicas: int
    node: str = PROXY_NODE

    def apply(self, state: ClusterState) -> ClusterState:
        if not 0 <= self.replicas <= MAX_REPLICAS:
            raise InvalidEvent(
                f"replicas must be 0 to {MAX_REPLICAS:,}, got {shorten(self.replicas)}"
            )
        _check_node(self.node)
        current = state.group_pods(self.group)
        for pod in reversed(current[self.replicas :]):
            state = DeletePod(pod.name, DEFAULT_SCALE_GRACE_S).apply(state)
        for _ in range(self.replicas - len(current)):
            ordinal, state = state.next_ordinal(self.group)
            state = state.new_incarnation(
                f"{self.group}-{ordinal}",
                labels_of({"app": self.group}),
                node=self.node,
                ports=SCALED_PORTS,
            )
        return state


@dataclass(frozen=True)
class DeletePod(Event):
    """Delete a pod with a grace period; grace 0 kills it (gone at once, like --force).

    A graceful delete leaves the pod terminating (still serving, not ready) until its grace period
    runs out or its process exits (`PodExit`).
    """

    kind: ClassVar[str] = "delete-pod"
    pod: str
    grace_s: float = DEFAULT_SCALE_GRACE_S

    def apply(self, state: ClusterState) -> ClusterState:
        pod = state.pod(self.pod)
        if self.grace_s < 0:
            raise InvalidEvent(f"grace_s must be >= 0, got {self.grace_s}")
        if self.grace_s == 0 or pod.phase.terminal:
            return state.without_pod(self.pod)
        if pod.terminating:
            return state
        return state.with_pod(replace(pod, deletion_deadline_s=state.now_s + self.grace_s))


@dataclass(frozen=True)
class PodExit(Event):
    """A terminating pod's process exits before its grace period ends; the pod is gone."""

    kind: ClassVar[str] = "pod-exit"
    pod: str

    def apply(self, state: ClusterState) -> ClusterState:
        if not state.pod(self.pod).terminating:
            raise InvalidEvent(f"pod {self.pod!r} is not terminating")
        return state.without_pod(self.pod)


@dataclass(frozen=True)
class RestartPod(Event):
    """Recreate a pod under the same name: a new incarnation (uid), ready, maybe a new address."""

    kind: ClassVar[str] = "restart-pod"
    pod: str
    new_ip: bool = False

    def apply(self, state: ClusterState) -> ClusterState:
        old = state.pod(self.pod)
        state = state.without_pod(self.pod)
        keep = not self.new_ip and old.ip is not None
        ip = old.ip if keep and all(p.ip != old.ip for p in state.live_pods()) else None
        if ip is None:
            ip = state.next_pod_ip(avoid=[old.ip] if old.ip else [], node=old.node)
        return state.new_incarnation(
            old.name, old.labels, ip=ip, node=old.node, ports=old.ports, namespace=old.namespace
        )


@dataclass(frozen=True)
class MovePod(Event):
    """The pod comes back on another node: its old incarnation is gone at once and a new one,
    under the same name and labels and ready, runs on `node` with an address from that node's
    pod range (a StatefulSet's pod after its node was drained or lost: Kubernetes never moves a
    pod, its controller makes it anew where the scheduler put it). Its endpoint changes node,
    address and zone; a proxy must follow all three (internalTrafficPolicy, externalTrafficPolicy
    and topology choose by node and zone)."""

    kind: ClassVar[str] = "move-pod"
    pod: str
    node: str

    def apply(self, state: ClusterState) -> ClusterState:
        old = state.pod(self.pod)
        _check_node(self.node)
        if old.node == self.node:
            raise InvalidEvent(f"pod {self.pod!r} already runs on {self.node}")
        state = state.without_pod(self.pod)
        ip = state.next_pod_ip(avoid=[old.ip] if old.ip else [], node=self.node)
        return state.new_incarnation(
            old.name, old.labels, ip=ip, node=self.node, ports=old.ports, namespace=old.namespace
        )


@dataclass(frozen=True)
class DrainNode(Event):
    """`kubectl drain NODE`: every live pod on `node` that is not terminating yet is evicted,
    which deletes it with its grace period (staging/src/k8s.io/kubectl/pkg/drain/drain.go:
    `evictPods` posts a policy/v1 Eviction per pod, and the API server deletes the pod
    gracefully), so each stays terminating, serving until it exits or `grace_s` runs out, as
    `DeletePod` leaves it; grace 0 removes them at once. The node itself and its proxy stay
    (cordoning only stops new pods being scheduled there, and the model schedules nothing by
    itself); replacements elsewhere are separate events (`Scale`, `MovePod`). No PodDisruption
    budget is modelled: every pod is evicted."""

    kind: ClassVar[str] = "drain-node"
    node: str
    grace_s: float = DEFAULT_SCALE_GRACE_S

    def apply(self, state: ClusterState) -> ClusterState:
        _check_node(self.node)
        if self.grace_s < 0:
            raise InvalidEvent(f"grace_s must be >= 0, got {self.grace_s}")
        drained = sorted(
            p.name
            for p in state.pods.values()
            if p.node == self.node and not p.phase.terminal and not p.terminating
        )
        for name in drained:
            state = DeletePod(name, self.grace_s).apply(state)
        return state


@dataclass(frozen=True)
class SetLabel(Event):
    """Set a pod label, or remove it when `value` is None (relabel into or out of a selector)."""

    kind: ClassVar[str] = "set-label"
    pod: str
    key: str
    value: str | None

    def apply(self, state: ClusterState) -> ClusterState:
        pod = state.pod(self.pod)
        labels = pod.label_map
        if self.value is None:
            labels.pop(self.key, None)
        else:
            labels[self.key] = self.value
        return state.with_pod(replace(pod, labels=labels_of(labels)))


@dataclass(frozen=True)
class SetReady(Event):
    """Flip the pod's Ready condition (its readiness probe starts passing or failing)."""

    kind: ClassVar[str] = "set-ready"
    pod: str
    ready: bool

    def apply(self, state: ClusterState) -> ClusterState:
        pod = state.pod(self.pod)
        if pod.phase.terminal:
            raise InvalidEvent(f"pod {self.pod!r} has ended; its readiness cannot change")
        return state.with_pod(replace(pod, ready=self.ready))


@dataclass(frozen=True)
class EvictPod(Event):
    """The kubelet evicts the pod: phase Failed, the pod object stays, its address is freed."""

    kind: ClassVar[str] = "evict-pod"
    pod: str

    def apply(self, state: ClusterState) -> ClusterState:
        return state.with_phase(self.pod, Phase.FAILED)


# -- Time and reads -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wait(Event):
    """Let `seconds` of target time pass (grace periods and affinity timeouts may run out)."""

    kind: ClassVar[str] = "wait"
    seconds: float

    def apply(self, state: ClusterState) -> ClusterState:
        if not 0 <= self.seconds <= MAX_WAIT_S:
            raise InvalidEvent(f"wait seconds must be 0 to {MAX_WAIT_S:g}, got {self.seconds:g}")
        return state.advance_to(state.now_s + self.seconds)


@dataclass(frozen=True)
class Probe(Event):
    """A client's read: measure balancing (and affinity) of one Service with a large sample.

    Changes nothing. With `keep_alive` the sample reuses connections, so balancing is reported per
    connection and not asserted. With `many_clients` the client also connects once from each of
    many further addresses of its own (in an order fixed by the sequence), so that ClientIP
    affinity expiry can be judged over many idle clients. With `deviation` (e.g. 0.02) the
    sample is sized to detect one endpoint's share deviating that much from 1/n with power 0.9
    (hundreds of thousands of fresh connections, counted at the pods: the deep profile's
    balancing probe).

    A probe measures the Service's first port, `http` (`FIRST_PORT`), in its protocol. With
    `protocol` the sequence says which protocol it means to probe (a UDP probe): a Service whose
    probed port is not of that protocol is refused as bad input, one line naming the ports.
    """

    kind: ClassVar[str] = "probe"
    service: str
    client: str = "client-1"
    keep_alive: bool = False
    many_clients: bool = False
    deviation: float | None = None
    protocol: Protocol | None = None

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        if self.deviation is not None and not 0 < self.deviation < 1:
            raise InvalidEvent(f"probe deviation {self.deviation} must be between 0 and 1")
        if self.protocol is not None:
            _check_probed_protocol(service, self.protocol)
        return state


def _check_probed_protocol(service: Service, protocol: Protocol) -> None:
    """InvalidEvent (one line) unless `service`'s probed port (`FIRST_PORT`) is of `protocol`:
    a UDP probe to a Service with no UDP port, or whose UDP port is not the probed one."""
    probed = next((p for p in service.ports if p.name == FIRST_PORT), None)
    if probed is not None and probed.protocol == protocol.value:
        return
    listed = ", ".join(f"{p.name} {p.port}/{p.protocol}" for p in service.ports)
    same = [p.name for p in service.ports if p.protocol == protocol.value]
    if not same:
        raise InvalidEvent(
            f"probe protocol={protocol.value}: Service {service.name!r} has no {protocol.value}"
            f" port (its ports: {listed}); probe it without protocol, or add one"
            " (add-service-port)"
        )
    raise InvalidEvent(
        f"probe protocol={protocol.value}: a probe measures Service {service.name!r}'s port"
        f" {FIRST_PORT!r}, which is not {protocol.value} (its ports: {listed}); its"
        f" {protocol.value} port {same[0]!r} is judged after every step without a probe"
    )


# -- Disruption (the nemesis's) ------------------------------------------------------------------
@dataclass(frozen=True)
class RestartProxy(Event):
    """The proxy under test stops and starts again on its node, as kube-proxy does on a rollout,
    a crash or an OOM kill. The cluster does not change, so the model's state does not either.

    What must hold after it (Cilium's connectivity test "conn-disrupt", which holds connections
    open across an agent restart): every Service converges again within the deadline (the
    restarted proxy starts empty and must program everything anew), and established
    connections to endpoints that are still usable keep working and keep their backend
    (`harness.checks.connections`)."""

    kind: ClassVar[str] = "restart-proxy"
    while_down: tuple[Event, ...] = ()
    """Changes of the cluster made between the stop and the start (none, or 1 to
    MAX_WHILE_DOWN): the new instance lists a cluster its predecessor never saw change, as when
    kube-proxy is down during a rollout while pods come and go. What must hold besides: a held
    UDP flow whose endpoint went meanwhile reaches a usable endpoint within the deadline (its
    stale conntrack entry is reconciled at the start: `pkg/proxy/conntrack/cleanup.go:
    CleanStaleEntries`, kubernetes PR #127318; before it, kubernetes#105657 and #122740)."""
    api_only: bool = False
    """The proxy keeps running and only its connections to the API server are cut (issue 12
    item 4): it must reconnect, list and watch again, and every Service still converges within
    the deadline. Drawn only where the target can cut them (`EventSpace.cuts_api`: the kube
    target with `--pods local`, whose relay carries them); never with `while_down`."""

    def apply(self, state: ClusterState) -> ClusterState:
        """The changes made while the proxy was down, in order (the restart itself changes
        nothing); InvalidEvent for more than MAX_WHILE_DOWN of them or one that is not a change
        of the cluster (`NOT_CHANGES`), and for `api_only` with changes (the proxy is not down)."""
        if self.api_only and self.while_down:
            raise InvalidEvent(f"{self.kind} api_only holds no changes while down")
        if len(self.while_down) > MAX_WHILE_DOWN:
            raise InvalidEvent(
                f"restart-proxy holds {len(self.while_down)} changes while down: it may hold 1 to"
                f" {MAX_WHILE_DOWN}"
            )
        return _apply_changes(self.kind, self.while_down, state)

    def to_json(self) -> dict[str, Any]:
        """A plain restart is `{"kind": "restart-proxy"}`, as before `while_down` existed."""
        if self.api_only:
            return {"kind": self.kind, "api_only": True}
        if not self.while_down:
            return {"kind": self.kind}
        return {"kind": self.kind, "while_down": [change.to_json() for change in self.while_down]}

    def __str__(self) -> str:
        if self.api_only:
            return f"{self.kind} api-only"
        if not self.while_down:
            return self.kind
        return f"{self.kind} while-down [{'; '.join(str(c) for c in self.while_down)}]"


MAX_WHILE_DOWN = 3
"""The most changes one `RestartProxy` makes while the proxy is down."""


# -- Several ports (issue 12, item 3) -------------------------------------------------------------
ADMIN_PORT = "admin"
"""The second named container port a pod may serve (`CreateMultiPortPod`); a pod created any
other way lacks it, and is left out of the Service ports that target it."""
MULTI_PORTS: tuple[ServicePort, ...] = (
    ServicePort("http", 80, "http"),
    ServicePort(ADMIN_PORT, 81, ADMIN_PORT),
    ServicePort("alt", 8000, "http"),
)
"""The ports of a multi-port Service, in order (`CreateMultiPortService` takes the first 2 or
3): distinct names and numbers, named targetPorts that resolve per pod, and two Service ports
on one container port (`alt` and `http`), which Kubernetes allows."""


@dataclass(frozen=True)
class CreateMultiPortService(CreateService):
    """Create a ClusterIP Service with the first `port_count` (2 or 3) of `MULTI_PORTS`, the
    first port's targetPort being `target_port`. Each port's named targetPort resolves per pod
    (`harness.model.endpoints.resolve_port`, upstream's `podutil.FindPort`), so one port may
    reach different container port numbers on different pods, and a pod lacking a name is left
    out of that port's endpoints (upstream's `getEndpointPorts` skips a port `FindPort` cannot
    resolve)."""

    kind: ClassVar[str] = "create-multi-port-service"
    port_count: int = 2

    def apply(self, state: ClusterState) -> ClusterState:
        if not 2 <= self.port_count <= len(MULTI_PORTS):
            raise InvalidEvent(
                f"port_count {self.port_count} must be 2 to {len(MULTI_PORTS)}"
                " (a Service of one port is create-service)"
            )
        first = replace(MULTI_PORTS[0], target_port=self.target_port)
        ports = (first, *MULTI_PORTS[1 : self.port_count])
        return super().apply(state).patch_service(self.service, ports=ports)


@dataclass(frozen=True)
class CreateMultiPortPod(CreatePod):
    """Create a Running pod whose container ports are `http` on `http_port` and `admin` on
    `admin_port`: pods of one selector may serve the same name on different numbers."""

    kind: ClassVar[str] = "create-multi-port-pod"
    admin_port: int = 9090

    def apply(self, state: ClusterState) -> ClusterState:
        if not 1024 < self.admin_port < 65536 or self.admin_port == self.http_port:
            raise InvalidEvent(
                f"admin_port {self.admin_port} must be in 1025..65535 and differ from http_port"
            )
        state = super().apply(state)
        ports = (ContainerPort("http", self.http_port), ContainerPort(ADMIN_PORT, self.admin_port))
        return state.with_pod(replace(state.pod(self.pod), ports=ports))


@dataclass(frozen=True)
class SetServicePort(Event):
    """Change one port of a Service, named `port_name` (a port's name and protocol are its
    identity; names are unique within a Service): its number `port` and its `target_port` (a
    number or a container port name). Clients of the old number are refused or dropped once
    the proxy has programmed the change; the endpoints follow the new targetPort."""

    kind: ClassVar[str] = "set-service-port"
    service: str
    port_name: str
    port: int
    target_port: int | str
    protocol: Protocol = Protocol.TCP

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        found = [
            p for p in service.ports if (p.name, p.protocol) == (self.port_name, self.protocol)
        ]
        if not found:
            raise InvalidEvent(
                f"Service {self.service!r} has no {self.protocol} port named {self.port_name!r}"
            )
        if not 0 < self.port < 65536:
            raise InvalidEvent(f"port {self.port} must be 1 to 65535")
        if any(
            (p.port, p.protocol) == (self.port, self.protocol)
            for p in service.ports
            if p.name != self.port_name
        ):
            raise InvalidEvent(
                f"Service {self.service!r} already has {self.protocol} port {self.port}"
                " under another name (ports must be unique per protocol)"
            )
        changed = replace(found[0], port=self.port, target_port=self.target_port)
        ports = tuple(changed if p == found[0] else p for p in service.ports)
        return state.patch_service(self.service, ports=ports)


# -- One port number on TCP and UDP, and protocol changes (issue 12, item 3) ----------------------
FIRST_PORT = "http"
"""The port every Service keeps, under its name and protocol (`CreateService` makes it): the
runner converges, probes and holds connections on it (`harness.runner.PORT`,
`harness.longlived.PORT`), so the port events below leave it be; every other port is judged by
`harness.ports`."""
DUAL_UDP_PORT = ServicePort(UDP_PORT_NAME, 80, UDP_PORT_NAME, Protocol.UDP.value)
"""The UDP port of a dual-protocol Service: the first port's number 80, named `udp`, to the
pods' `udp` container port."""


def _port_problem(service: Service, name: str, port: int, protocol: str) -> str | None:
    """Why a port `name` `port`/`protocol` cannot join `service`'s other ports, or None: the API
    server's validation of a Service's ports (names unique, and each (port, protocol) pair
    unique: `ValidateService`, "duplicate ... port and protocol")."""
    if not 0 < port < 65536:
        return f"port {port} must be 1 to 65535"
    others = [p for p in service.ports if p.name != name]
    if any((p.port, p.protocol) == (port, protocol) for p in others):
        return (
            f"Service {service.name!r} already has {protocol} port {port} under another name"
            " (a port number is unique per protocol)"
        )
    return None


@dataclass(frozen=True)
class CreateDualProtocolService(CreateService):
    """Create a ClusterIP Service with the same port number on TCP and UDP: `http` 80/TCP to
    `target_port` and `udp` 80/UDP to the pods' `udp` container port (`DUAL_UDP_PORT`).
    Kubernetes allows it since the two differ in protocol (names unique, (port, protocol)
    unique; Conformance "should serve endpoints on same port and different protocols", v1.29,
    test/e2e/network/service.go), and kube-proxy keys its Service ports by name *and* protocol
    (`ServicePortName{NamespacedName, Port, Protocol}`, pkg/proxy/types.go; built per port in
    pkg/proxy/servicechangetracker.go and pkg/proxy/serviceport.go), so each protocol has its
    own rules, endpoints and REJECT, and removing one leaves the other alone. `protocol` is the
    first port's and must be TCP."""

    kind: ClassVar[str] = "create-dual-protocol-service"

    def apply(self, state: ClusterState) -> ClusterState:
        if self.protocol != Protocol.TCP:
            raise InvalidEvent(
                f"a dual-protocol Service's first port is TCP, got protocol {self.protocol.value}:"
                " leave protocol out (its UDP port is `udp`)"
            )
        state = super().apply(state)
        first = state.service(self.service).ports[0]
        return state.patch_service(self.service, ports=(first, DUAL_UDP_PORT))


@dataclass(frozen=True)
class AddServicePort(Event):
    """Add a port to a Service: `port_name` (unique in the Service), number `port` of
    `protocol` (unique per protocol: TCP 53 and UDP 53 may both be there), to `target_port` (a
    number, or a container port name resolved among the pods' ports of the same protocol)."""

    kind: ClassVar[str] = "add-service-port"
    service: str
    port_name: str
    port: int
    target_port: int | str
    protocol: Protocol = Protocol.TCP

    def apply(self, state: ClusterState) -> ClusterState:
        service = state.service(self.service)
        if any(p.name == self.port_name for p in service.ports):
            raise InvalidEvent(
                f"Service {self.service!r} already has a port named {self.port_name!r}"
                " (port names are unique in a Service)"
            )
        problem = _port_problem(service, self.port_name, self.port, self.protocol.value)
        if problem is not None:
            raise InvalidEvent(problem)
        added = ServicePort(self.port_name, self.port, self.target_port, self.protocol.value)
        return state.patch_service(self.service, ports=(*service.ports, added))


def _other_port(state: ClusterState, service: str, port_name: str) -> ServicePort:
    """Service `service`'s port `port_name`, which a port event may change; InvalidEvent for
    an unknown one and for `FIRST_PORT`."""
    found = next((p for p in state.service(service).ports if p.name == port_name), None)
    if found is None:
        raise InvalidEvent(f"Service {service!r} has no port named {port_name!r}")
    if port_name == FIRST_PORT:
        raise InvalidEvent(
            f"port {FIRST_PORT!r} is the one every Service keeps (the harness judges a Service"
            " by it): remove or change another port, or delete the Service"
        )
    return found


@dataclass(frozen=True)
class RemoveServicePort(Event):
    """Remove one port (any but `FIRST_PORT`) from a Service: its protocol's rules for that
    number go within the deadline, and the Service's other ports, also the other protocol's
    port of the same number, keep working (kube-proxy deletes only that `ServicePortName`'s
    rules, and for UDP its conntrack entries: pkg/proxy/conntrack/cleanup.go, `CleanStaleEntries`
    deletes the entries of every removed UDP Service port by its cluster IP and port)."""

    kind: ClassVar[str] = "remove-service-port"
    service: str
    port_name: str

    def apply(self, state: ClusterState) -> ClusterState:
        removed = _other_port(state, self.service, self.port_name)
        ports = tuple(p for p in state.service(self.service).ports if p != removed)
        return state.patch_service(self.service, ports=ports)


@dataclass(frozen=True)
class SetPortProtocol(Event):
    """Change one port's protocol (any port but `FIRST_PORT`): it keeps its name and number and
    gets `protocol` and `target_port`, in one update, as `kubectl apply` of an edited manifest
    replaces the ports list (the TCP port 53 deleted and a UDP port 53 added at once). To a proxy
    this is one `ServicePortName` gone and another added (the protocol is part of the key):
    the old protocol's clients are refused or dropped once programmed, the new one's served."""

    kind: ClassVar[str] = "set-port-protocol"
    service: str
    port_name: str
    protocol: Protocol
    target_port: int | str

    def apply(self, state: ClusterState) -> ClusterState:
        found = _other_port(state, self.service, self.port_name)
        if found.protocol == self.protocol.value:
            raise InvalidEvent(
                f"Service {self.service!r} port {self.port_name!r} is already {self.protocol.value}"
            )
        service = state.service(self.service)
        problem = _port_problem(service, self.port_name, found.port, self.protocol.value)
        if problem is not None:
            raise InvalidEvent(problem)
        changed = replace(found, protocol=self.protocol.value, target_port=self.target_port)
        ports = tuple(changed if p == found else p for p in service.ports)
        return state.patch_service(self.service, ports=ports)


MAX_STALE_BACK = 3
"""How many changes back a stale snapshot may reach."""


@dataclass(frozen=True)
class StaleSnapshot(Event):
    """The proxy is shown the cluster as it was `back` changes ago, synced, then shown it as it
    is now: a watch that reconnected to a lagging API server and relisted from its stale cache
    (Sieve's stale-state perturbation), then caught up. The cluster does not change, so the
    model's state does not either; before the run's first changes the stale view is the empty
    cluster.

    What must hold after it: every Service converges again within the deadline to the current
    state (a proxy that skips an update it believes it has already programmed stays on the
    stale view). Held connections may drop where the stale view lacked their endpoint (the
    proxy was told it was gone), and are never moved to another backend."""

    kind: ClassVar[str] = "stale-snapshot"
    back: int = 1

    def apply(self, state: ClusterState) -> ClusterState:
        if not 1 <= self.back <= MAX_STALE_BACK:
            raise InvalidEvent(
                f"stale-snapshot back={self.back} is out of range: it must be 1..{MAX_STALE_BACK}"
            )
        return state


# -- Out-of-window segments (issue 12, item 5) ----------------------------------------------------
@dataclass(frozen=True)
class OutOfWindow(Event):
    """Pod `pod` sends, on every established connection it serves, one TCP segment with a
    sequence number far outside the window: upstream's e2e "should drop INVALID conntrack
    entries" (test/e2e/network/conntrack.go, whose "boom" server does this), the regression test
    of kubernetes#74839 (`harness.local.outofwindow`). The cluster does not change, so the
    model's state does not either; an unknown pod is an invalid event.

    What must hold after it: every held connection to that pod keeps working and keeps its
    backend (`long-lived-connections`, part `out-of-window`). Conntrack on the node marks the
    segment INVALID; a proxy must drop it (kube-proxy's `--ctstate INVALID -j DROP`, unless the
    node sets `nf_conntrack_tcp_be_liberal`) rather than let it through untranslated, which makes
    the client answer RST and resets the connection. Only for a data plane that translates
    connections (kernel NAT): one that relays them terminates TCP itself, so the segment never
    meets the client's connection (`out_of_window_unsupported`)."""

    kind: ClassVar[str] = "out-of-window"
    pod: str

    def apply(self, state: ClusterState) -> ClusterState:
        if self.pod not in state.pods:
            raise InvalidEvent(f"out-of-window pod={self.pod!r}: no such pod")
        return state


MAX_UNOBSERVED = 4
"""The most changes one `UnobservedChanges` holds back from the proxy."""


@dataclass(frozen=True)
class UnobservedChanges(Event):
    """The cluster makes `changes` (2 to MAX_UNOBSERVED events, in order) while the proxy's
    watch is down; when it comes back the proxy is handed only the end state, as a watch that
    reconnected and relisted (Sieve's unobserved-state perturbation: the proxy never sees the
    states in between). A Service deleted and created again under its name meanwhile reaches
    the proxy as one *update*, possibly with another ClusterIP, although the API never changes
    a Service's ClusterIP (it is immutable); a pod deleted and created again, as one slice
    update with another UID.

    The model's state is the changes applied in order; what must hold after it is what holds
    after any step: every Service converges to the end state within the deadline. Nested
    unobserved changes, nemesis events (`RestartProxy`, `StaleSnapshot`), waits and probes are
    not changes of the cluster and are refused."""

    kind: ClassVar[str] = "unobserved-changes"
    changes: tuple[Event, ...] = ()

    def apply(self, state: ClusterState) -> ClusterState:
        if not 2 <= len(self.changes) <= MAX_UNOBSERVED:
            raise InvalidEvent(
                f"unobserved-changes holds {len(self.changes)} changes: it must hold 2 to"
                f" {MAX_UNOBSERVED}"
            )
        return _apply_changes(self.kind, self.changes, state)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "changes": [change.to_json() for change in self.changes]}

    def __str__(self) -> str:
        return f"{self.kind} [{'; '.join(str(change) for change in self.changes)}]"


def _apply_changes(holder: str, changes: Sequence[Event], state: ClusterState) -> ClusterState:
    """`changes` applied in order for the event `holder` that holds them; InvalidEvent for one
    that is not a change of the cluster (`NOT_CHANGES`)."""
    for change in changes:
        if isinstance(change, NOT_CHANGES):
            raise InvalidEvent(f"{holder} cannot hold {change.kind}: only changes of the cluster")
        state = change.apply(state)
    return state


NOT_CHANGES: tuple[type[Event], ...] = (
    RestartProxy,
    StaleSnapshot,
    UnobservedChanges,
    Wait,
    Probe,
    OutOfWindow,
)
"""Events an `UnobservedChanges` may not hold: they change the proxy, time, packets or nothing."""


NEMESIS_EVENTS: tuple[type[Event], ...] = (RestartProxy, StaleSnapshot)
"""Events that disturb the proxy, not the cluster: every Service is waited for after them."""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        CreateService,
        DeleteService,
        SetSelector,
        SetAffinity,
        SetPublishNotReady,
        SetTrafficPolicy,
        SetServiceLabel,
        SetServiceType,
        SetExternalTrafficPolicy,
        SetExternalIPs,
        SetTrafficDistribution,
        CreatePod,
        Scale,
        DeletePod,
        PodExit,
        RestartPod,
        SetLabel,
        SetReady,
        EvictPod,
        MovePod,
        DrainNode,
        Wait,
        Probe,
        RestartProxy,
        CreateMultiPortService,
        CreateMultiPortPod,
        SetServicePort,
        StaleSnapshot,
        UnobservedChanges,
        CreateDualProtocolService,
        AddServicePort,
        RemoveServicePort,
        SetPortProtocol,
        OutOfWindow,
    )
}


# -- JSON -----------------------------------------------------------------------------------------
def _convert(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a field's type hint and convert it to the field's Python form."""
    if hint is Labels or hint == Labels:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise UsageError(f"{where} must be an object of string labels, got {shorten(value)}")
        for key, label in value.items():
            _check_name(key, label_key_problem, f"{where} key")
            _check_name(label, label_value_problem, f"{where}[{shorten(key)}]")
        return labels_of(value)
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint) == (str, ...):
        if not isinstance(value, list) or len(value) > MAX_EXTERNAL_IPS:
            raise UsageError(
                f"{where} must be a list of at most {MAX_EXTERNAL_IPS} strings, got"
                f" {shorten(value)}"
            )
        return tuple(_convert(item, str, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is tuple and typing.get_args(hint) == (Event, ...):
        most = MAX_WHILE_DOWN if where.endswith(".while_down") else MAX_UNOBSERVED
        if not isinstance(value, list) or len(value) > most:
            raise UsageError(
                f"{where} must be a list of at most {most} events, got {shorten(value)}"
            )
        return tuple(event_from_json(item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        given = [o for o in typing.get_args(hint) if o is not type(None)]
        if value is not None and len(given) == 1:  # an optional field: say what it must be
            return _convert(value, given[0], where)
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, where)
            except UsageError:
                continue
        raise UsageError(f"{where} has the wrong type: {shorten(value)}")
    if hint is type(None):
        if value is not None:
            raise UsageError(f"{where} must be null, got {shorten(value)}")
        return None
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(m.value for m in hint)
            raise UsageError(f"{where} must be one of {allowed}, got {shorten(value)}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false, got {shorten(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where} must be an integer, got {shorten(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where} must be a number, got {shorten(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise UsageError(f"{where} must be a finite number, got {shorten(value)}")
        return number
    if hint is str:
        if not isinstance(value, str) or not value:
            raise UsageError(f"{where} must be a non-empty string, got {shorten(value)}")
        return value
    raise TypeError(f"unsupported field type {hint!r}")  # a harness bug, not bad input


_FIELD_NAMES: dict[str, Callable[[str], str | None]] = {
    "service": service_name_problem,
    "pod": pod_name_problem,
    "group": group_name_problem,
    "key": label_key_problem,
    "value": label_value_problem,
    "target_port": port_name_problem,
    "port_name": port_name_problem,
}
"""Fields that hold a name, and the Kubernetes rule the name must follow (on strings only:
`value` is also SetPublishNotReady's boolean, `target_port` also a number)."""


def _check_name(value: str, problem: Callable[[str], str | None], where: str) -> None:
    reason = problem(value)
    if reason is not None:
        raise UsageError(f"{where} {reason}, got {shorten(value)}")


def _check_field(name: str, value: Any, where: str) -> None:
    """The checks a field's type does not say: names as Kubernetes validates them, known
    clients, port numbers in range."""
    if isinstance(value, str) and name in _FIELD_NAMES:
        _check_name(value, _FIELD_NAMES[name], where)
    if name == "client" and value not in CLIENTS:
        raise UsageError(f"{where} must be one of {', '.join(CLIENTS)}, got {shorten(value)}")
    if name == "target_port" and isinstance(value, int) and not 0 < value < 65536:
        raise UsageError(f"{where} must be a port number, 1 to 65535, got {shorten(value)}")


def event_from_json(data: Any, where: str = "event") -> Event:
    """Parse one event, checking every field's presence, type and, for names, syntax;
    UsageError (one line) on bad input."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where} must be a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UsageError(
            f"{where} has unknown kind {shorten(kind)}; known: {', '.join(EVENT_TYPES)}"
        )
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known - {"kind"}
    if unknown:
        names = ", ".join(n if n.isidentifier() else shorten(n) for n in sorted(unknown)[:5])
        raise UsageError(f"{where} ({kind}) has unknown field(s): {names}")
    values = {}
    for f in fields(cls):
        if f.name in data:
            value = _convert(data[f.name], hints[f.name], f"{where}.{f.name}")
            _check_field(f.name, value, f"{where}.{f.name}")
            values[f.name] = value
        elif f.default is MISSING and f.default_factory is MISSING:
            raise UsageError(f"{where} ({kind}) is missing field {f.name!r}")
    return cls(**values)


def apply_all(events: Sequence[Event], state: ClusterState | None = None) -> ClusterState:
    """The model state after applying `events` in order from `state` (empty by default)."""
    state = state or ClusterState()
    for event in events:
        state = event.apply(state)
    return state


def sequence_to_json(events: Sequence[Event], **meta: Any) -> dict[str, Any]:
    return {"schema": SEQUENCE_SCHEMA, **meta, "events": [e.to_json() for e in events]}


def sequence_from_json(data: Any, where: str = "sequence") -> list[Event]:
    """Parse a sequence document; refuses unknown schema versions, more than MAX_EVENTS
    events and invalid event orders (UsageError, one line)."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where} must be a JSON object with 'schema' and 'events'")
    try:
        check_schema(data, (SEQUENCE_SCHEMA,))
    except BadDocument as error:
        raise UsageError(f"{where} {error} (re-record it with this version)") from None
    raw = data.get("events")
    if not isinstance(raw, list):
        raise UsageError(f"{where}.events must be a list")
    if len(raw) > MAX_EVENTS:
        raise UsageError(
            f"{where} holds {len(raw):,} events; a sequence has at most {MAX_EVENTS:,}"
        )
    events = [event_from_json(item, f"{where}.events[{i}]") for i, item in enumerate(raw)]
    try:
        apply_all(events)
    except UsageError as error:
        raise UsageError(f"{where} does not replay on an empty cluster: {error}") from None
    return events


def save_sequence(path: Path, events: Sequence[Event], **meta: Any) -> None:
    """Write a sequence file atomically (its directory must exist)."""
    write_atomically(path, json.dumps(sequence_to_json(events, **meta), indent=2) + "\n")


def load_sequence_document(path: Path) -> tuple[list[Event], dict[str, Any]]:
    """The events of a sequence file (a failure file holds one too) and the whole document;
    one-line UsageError on any problem (`harness.documents` says which)."""
    try:
        data = read_document(path)
    except BadDocument as error:
        raise UsageError(f"{path} {error}; give a sequence or failure file") from None
    except OSError as error:
        raise UsageError(
            f"cannot read sequence file {path}: {error.strerror or type(error).__name__}"
        ) from None
    events = sequence_from_json(data, where=str(path))
    return events, data


def load_sequence(path: Path) -> list[Event]:
    """Read a sequence file (a failure file holds one too); one-line UsageError on any problem."""
    return load_sequence_document(path)[0]


def unknown_node(node: str, nodes: Sequence[str], verb: str = "place a pod on") -> str:
    """The one line for a node a target does not have (`nodes`: those it has)."""
    return (
        f"this target has no node {shorten(node)} to {verb} (it has {', '.join(nodes)});"
        " give --nodes N for a local cluster of N nodes, or edit the sequence"
    )


def check_nodes(events: Sequence[Event], nodes: Sequence[str] | None) -> None:
    """UsageError (one line, `unknown_node`) for the first event that places a pod on a node
    not in `nodes`; None: the target takes any node the model knows. Reads only."""
    if nodes is None:
        return
    for number, event in enumerate(events, 1):
        node = getattr(event, "node", None)
        if isinstance(node, str) and node not in nodes:
            raise UsageError(f"event {number} ({event.kind}): {unknown_node(node, nodes)}")
