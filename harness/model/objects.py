"""The Kubernetes objects the model knows, as frozen values.

Only the fields that decide load balancing are kept. Labels and selectors are sorted tuples of
pairs so that objects hash, compare and serialise the same way every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

Labels = tuple[tuple[str, str], ...]

DEFAULT_NAMESPACE = "default"
DEFAULT_AFFINITY_TIMEOUT_S = 10800  # core/v1 ClientIPConfig default: 3 hours
MAX_AFFINITY_TIMEOUT_S = 86400  # validation: 0 < timeoutSeconds <= 86400
PROXY_NODE = "node-1"  # the node whose proxy the clients use
NODES = ("node-1", "node-2")
MAX_NODES = 16
"""The most nodes a local cluster builds (`--nodes`): node-k's pod range is the k-th /20 of the
pod /16 (`harness.model.state.node_pod_cidr`), and 16 of them fill it."""
RUN_NODES = 2
"""Nodes of the local cluster a run builds (`harness run`, the suite, the mutation report's
false-alarm runs) unless `--nodes` says otherwise (issue 11: "default 2 for the suite"). A local
target made any other way (built directly, or from a spec without a count: the benchmarks; a
mutant's search, `harness.mutation.nodes_to_catch`) has one, today's cost."""
ZONE_NAMES = ("zone-a", "zone-b", "zone-c")
MODEL_VERSION = (1, 33)
"""The Kubernetes minor version whose Service semantics the model follows, where they differ
between versions (today: which `trafficDistribution` values exist)."""
PREFER_CLOSE = "PreferClose"
PREFER_SAME_ZONE = "PreferSameZone"
TRAFFIC_DISTRIBUTIONS = (
    (PREFER_CLOSE, PREFER_SAME_ZONE) if MODEL_VERSION >= (1, 33) else (PREFER_CLOSE,)
)
"""The `spec.trafficDistribution` values the model knows (KEP-4444): PreferClose (beta 1.31, GA
1.33) and, from 1.33, PreferSameZone, its new name with the same meaning (KEP-3015). Both make
the EndpointSlice controller hint every ready endpoint for its own zone
(`harness.model.endpoints.with_hints`). PreferSameNode (alpha 1.33) is not modelled."""


def node_name(number: int) -> str:
    """The model's name of node `number` (1-based): `node-1`, `node-2`, ..."""
    return f"node-{number}"


ALL_NODES = tuple(node_name(k) for k in range(1, MAX_NODES + 1))
"""Every node name an event may place a pod on; a target refuses those it does not have."""
ZONES = {node: ZONE_NAMES[k % len(ZONE_NAMES)] for k, node in enumerate(ALL_NODES)}
"""Zones per node, cycling: node-1 zone-a, node-2 zone-b, node-3 zone-c, node-4 zone-a, ..."""


def run_nodes(count: int) -> tuple[str, ...]:
    """The node names a run with `count` node namespaces places pods on: node-1 to node-count,
    and never fewer than the model's two (`NODES`): with one namespace the second node is
    logical, its pods hang off node-1's namespace and are served by node-1's proxy, as before
    the local cluster had nodes."""
    return ALL_NODES[: max(count, len(NODES))]


def labels_of(mapping: Mapping[str, str]) -> Labels:
    """The canonical (sorted) form of a label map."""
    return tuple(sorted(mapping.items()))


class Phase(StrEnum):
    """core/v1 PodPhase. Succeeded and Failed are terminal (an evicted pod is Failed)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class Affinity(StrEnum):
    """core/v1 ServiceAffinity."""

    NONE = "None"
    CLIENT_IP = "ClientIP"


class TrafficPolicy(StrEnum):
    """core/v1 ServiceInternalTrafficPolicy."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class ServiceType(StrEnum):
    """core/v1 ServiceType, as far as load balancing goes (ExternalName has no endpoints)."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"

    @property
    def external(self) -> bool:
        """Whether the Service is reached from outside the cluster (a node port on every
        node; a LoadBalancer also on its ingress IP)."""
        return self != ServiceType.CLUSTER_IP


class Protocol(StrEnum):
    """core/v1 Protocol of a Service or container port, as far as the model knows them."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True)
class ContainerPort:
    """A named port a pod's container listens on; named targetPorts resolve against these."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """One incarnation of a pod. `uid` changes when the pod is recreated under the same name.

    `deletion_deadline_s` is set when a graceful delete starts (the pod is terminating) and is the
    model time at which the kubelet would kill it.
    """

    name: str
    uid: str
    ip: str | None
    labels: Labels = ()
    namespace: str = DEFAULT_NAMESPACE
    phase: Phase = Phase.RUNNING
    ready: bool = True
    deletion_deadline_s: float | None = None
    node: str = PROXY_NODE
    ports: tuple[ContainerPort, ...] = (ContainerPort("http", 8080),)

    @property
    def terminating(self) -> bool:
        return self.deletion_deadline_s is not None

    @property
    def zone(self) -> str:
        return ZONES.get(self.node, "zone-a")

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def matches(self, selector: Labels) -> bool:
        """Equality-based selection, as Services use: every selector pair is among the labels.

        An empty selector selects nothing for a Service (it means "no selector": endpoints are
        managed by hand), see the EndpointSlice controller's `serviceSelectorIsNil` handling.
        """
        if not selector:
            return False
        labels = self.label_map
        return all(labels.get(key) == value for key, value in selector)


@dataclass(frozen=True)
class ServicePort:
    """A Service port; `target_port` is a number or the name of a container port."""

    name: str = "http"
    port: int = 80
    target_port: int | str = "http"
    protocol: str = "TCP"
    node_port: int | None = None  # allocated for NodePort and LoadBalancer Services


@dataclass(frozen=True)
class Service:
    """A Service with the fields that shape its endpoints and balancing: a ClusterIP always;
    for type NodePort and LoadBalancer (`type.external`) a node port per port and an
    externalTrafficPolicy; a LoadBalancer's ingress IP once its controller assigned one, and its
    healthCheckNodePort under externalTrafficPolicy Local."""

    name: str
    cluster_ip: str
    selector: Labels
    ports: tuple[ServicePort, ...] = (ServicePort(),)
    namespace: str = DEFAULT_NAMESPACE
    session_affinity: Affinity = Affinity.NONE
    affinity_timeout_s: int = DEFAULT_AFFINITY_TIMEOUT_S
    publish_not_ready_addresses: bool = False
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    labels: Labels = ()
    type: ServiceType = ServiceType.CLUSTER_IP
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    health_check_node_port: int | None = None  # LoadBalancer with externalTrafficPolicy Local
    load_balancer_ip: str | None = None  # status.loadBalancer.ingress[0].ip, once assigned
    external_ips: tuple[str, ...] = ()  # spec.externalIPs, any type (`set-external-ips`)
    traffic_distribution: str | None = None  # spec.trafficDistribution: TRAFFIC_DISTRIBUTIONS

    @property
    def externally_accessible(self) -> bool:
        """`apiservice.ExternallyAccessible`: NodePort, LoadBalancer, or any Service with
        externalIPs; only such a Service has an externalTrafficPolicy (validation refuses it on
        others) and is reached from outside the cluster."""
        return self.type.external or bool(self.external_ips)


SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OPT_OUT_LABELS = (SERVICE_PROXY_NAME_LABEL, HEADLESS_LABEL)
"""Service labels that take a Service away from the default proxy, whatever their value
(invariant I13; e2e "should implement service.kubernetes.io/service-proxy-name" and
"... /headless"). kube-proxy lists Services with a label selector requiring that neither
exists: `noProxyName` (`apis.LabelServiceProxyName`, `selection.DoesNotExist`) and
`noHeadlessEndpoints` (`v1.IsHeadlessService`, `selection.DoesNotExist`) in
cmd/kube-proxy/app/server.go `(*ProxyServer).Run`. (Newer upstream main applies the headless
requirement to the EndpointSlice informer only; the e2e test above still requires a ClusterIP
Service carrying the label to stay unreachable, which is what the model follows.)"""


def opt_out_label(service: Service) -> str | None:
    """The opt-out label that keeps a default proxy from programming `service`, as
    "key=value", or None when it carries none (`OPT_OUT_LABELS`)."""
    labels = dict(service.labels)
    for key in OPT_OUT_LABELS:
        if key in labels:
            return f"{key}={labels[key]}"
    return None


@dataclass(frozen=True)
class EndpointPort:
    """A resolved port of an EndpointSlice (the pod's real port for a Service port name)."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Endpoint:
    """One address of an EndpointSlice with its conditions (discovery/v1, KEP-1672)."""

    address: str
    pod: str
    uid: str
    node: str
    zone: str
    ready: bool
    serving: bool
    terminating: bool
    zone_hints: tuple[str, ...] = ()
    """`hints.forZones[].name`: the zones whose proxies may send it traffic when topology is
    used (`harness.model.endpoints.topology_applies`); empty: no hints."""

    @property
    def backend(self) -> Backend:
        return Backend(self.pod, self.uid)


@dataclass(frozen=True)
class EndpointSlice:
    """The endpoints of one Service that share one resolved port set."""

    service: str
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]
    namespace: str = DEFAULT_NAMESPACE
    name: str = ""

    def port_for(self, name: str) -> int | None:
        return next((p.port for p in self.ports if p.name == name), None)


@dataclass(frozen=True, order=True)
class Backend:
    """What a request reaches: a pod incarnation. Pods answer with exactly this pair."""

    pod: str
    uid: str

    def __str__(self) -> str:
        return f"{self.pod}/{self.uid}"


@dataclass(frozen=True)
class Destination:
    """A usable endpoint for one Service port: where a proxy may send a new connection."""

    backend: Backend
    address: str
    port: int
    node: str = field(default=PROXY_NODE, compare=False)
