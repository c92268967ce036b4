"""State coverage: the named states where Service-proxy bugs live, and how often a run met them.

A search is only as good as the states it reaches. Each feature below names a state (or a change)
that real proxies have got wrong; `service_features` and `change_features` say which of them a
Service is in at one step, from the model alone, and `Coverage` counts, over a run, how often each
was *reached* (a step observed a Service in that state) and *checked* (the properties that judge
that state ran on a real observation: a traffic sample for the data-plane states, the expiry or
the move for the affinity ones). The runner reports the features of every step; the search
steers toward the rare ones (`harness.swarm`); every run prints the table and writes it to its
results.

Pure: reads model states and events, changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from harness.events import (
    CreateService,
    Event,
    EvictPod,
    RestartProxy,
    SetPublishNotReady,
    SetSelector,
    SetServiceLabel,
    StaleSnapshot,
    UnobservedChanges,
)
from harness.model.endpoints import (
    Expectation,
    node_zone,
    pod_is_listed,
    topology_applies,
    unique_endpoints,
)
from harness.model.objects import PROXY_NODE, Endpoint, Service, TrafficPolicy, opt_out_label
from harness.model.state import ClusterState

FEATURES: dict[str, str] = {
    "usable-0": "a Service without usable endpoints (it must REJECT, or DROP under Local policy)",
    "usable-1": "a Service with one usable endpoint",
    "usable-2-6": "a Service with 2 to 6 usable endpoints",
    "usable-7+": "a Service with 7 or more usable endpoints",
    "terminating-fallback": "only serving+terminating endpoints are left (KEP-1669 fallback)",
    "terminating-not-serving": "no ready endpoint, and terminating endpoints that do not serve",
    "local-no-local-endpoints": (
        "internalTrafficPolicy Local, endpoints usable only on other nodes (it must DROP)"
    ),
    "local-only-terminating": "internalTrafficPolicy Local, only local terminating endpoints",
    "publish-not-ready-toggled": "publishNotReadyAddresses toggled over unready/terminating pods",
    "affinity-idle-past-timeout": "ClientIP clients idle past the timeout connect again",
    "affinity-backend-removed": "a ClientIP client's backend stops being usable; it connects again",
    "vip-reused": "a Service deleted and its VIP given to a new Service",
    "named-port-per-pod": "a named targetPort resolving to different ports on different pods",
    "pod-ip-reused": "a pod IP that another pod incarnation held earlier is listed again",
    "selector-widened": "a selector change adds endpoints",
    "selector-narrowed": "a selector change removes endpoints",
    "evicted-pod": "a listed pod is evicted",
    "proxy-restarted": "the proxy restarts while the Service has usable endpoints",
    "stale-snapshot": (
        "the proxy is shown a stale snapshot of the cluster, then the current one, while the"
        " Service has usable endpoints"
    ),
    "unobserved-changes": (
        "the proxy's watch misses changes (it is handed only their end state, as after a"
        " relist) and the Service has usable endpoints after them"
    ),
    "out-of-window": (
        "a pod sends an out-of-window segment on its established connections (kubernetes#74839;"
        " the e2e test's boom server), and a connection held to it is asked again"
    ),
    "long-lived-through-change": (
        "a kept-alive connection held open through a change (its endpoint, another one, another"
        " Service, a proxy restart) and asked again"
    ),
    "multi-port-named": (
        "a Service of several ports whose named targetPorts resolve per pod: to different numbers"
        " on different pods, or a pod lacking the name left out of that port"
    ),
    "hairpin": "a pod that is a usable endpoint reaches itself through its own Service",
    "source-ip-checked": (
        "a pod reaches another pod through a Service, which reports the source address it saw"
    ),
    "opted-out": (
        "a Service labelled service-proxy-name or headless: not programmed (neither forwarded"
        " nor refused)"
    ),
    "opt-out-removed": "a Service's opt-out label removed: it must be programmed again",
    "udp-flow-through-change": (
        "a UDP flow with a fixed 5-tuple held through a change (its endpoint removed or made"
        " unready, scaled to 0 and back, a proxy restart) and asked again"
    ),
    "changed-while-down": (
        "the proxy restarts after changes made while it was down (an endpoint removed or made"
        " unready, a group scaled), and the Service has usable endpoints after them"
    ),
    "seen-from-every-node": (
        "a changed Service the nodes see differently (internalTrafficPolicy Local, endpoints on"
        " some nodes) reached from every node's host network, each by its own proxy"
    ),
    "dual-protocol-port": (
        "a Service with the same port number on TCP and UDP, each port judged on its own"
    ),
    "node-port-reached": (
        "a NodePort or LoadBalancer Service with usable endpoints reached from outside at"
        " every node's node port, each node by its own proxy"
    ),
    "external-local-no-local-endpoints": (
        "externalTrafficPolicy Local with endpoints on other nodes only: that node's node port"
        " must DROP"
    ),
    "sctp-reached": (
        "an SCTP Service with usable endpoints judged: each new association's INIT DNATed to"
        " one of them and its INIT-ACK NATed back (issue 12 item 3)"
    ),
    "udp-node-port-reached": (
        "a UDP NodePort or LoadBalancer Service with usable endpoints reached from outside at"
        " every node's node port, one fresh flow per datagram, each node by its own proxy"
    ),
    "load-balancer-reached": (
        "a LoadBalancer Service with usable endpoints reached from outside at its ingress IP"
        " via every node, each node by its own proxy"
    ),
    "external-ip-reached": (
        "a Service (any type) with usable endpoints reached from outside at one of its"
        " externalIPs via every node, each node by its own proxy"
    ),
    "health-check-only-terminating": (
        "a LoadBalancer under externalTrafficPolicy Local whose endpoints on a node are all"
        " terminating, one still serving: that node's healthCheckNodePort must answer 503 (I9)"
    ),
    "topology-narrowed": (
        "trafficDistribution set, the client's node zone has hinted ready endpoints and another"
        " zone has ready endpoints too: only the same-zone ones are usable (I11)"
    ),
}
MULTI_PORT_FEATURE = "multi-port-named"
UNOBSERVED_FEATURE = "unobserved-changes"
WHILE_DOWN_FEATURE = "changed-while-down"
AFFINITY_FEATURES = frozenset({"affinity-idle-past-timeout", "affinity-backend-removed"})


def _size_feature(usable: int) -> str:
    if usable <= 1:
        return f"usable-{usable}"
    return "usable-2-6" if usable <= 6 else "usable-7+"


def service_features(expected: Expectation, node: str = PROXY_NODE) -> set[str]:
    """The state features of one Service as the model expects it now (from a client on
    `node`)."""
    service = expected.service
    if service is None:
        return set()
    if expected.opted_out is not None:  # not this proxy's: none of the states below apply
        return {"opted-out"}
    found = {_size_feature(len(expected.usable))}
    everywhere = [endpoint for endpoint, _ in unique_endpoints(expected.slices)]
    local_policy = service.internal_traffic_policy == TrafficPolicy.LOCAL
    candidates = [e for e in everywhere if e.node == node] if local_policy else everywhere
    if not any(e.ready for e in candidates):
        if expected.usable:
            found.add("terminating-fallback")
        if any(e.terminating and not e.serving for e in candidates):
            found.add("terminating-not-serving")
    if local_policy:
        if expected.drops:  # kube-proxy's "has no local endpoints" DROP
            found.add("local-no-local-endpoints")
        if expected.usable and not any(e.ready for e in candidates):
            found.add("local-only-terminating")
    if len({d.port for d in expected.destinations}) >= 2:
        found.add("named-port-per-pod")
    if resolves_per_pod(expected):
        found.add(MULTI_PORT_FEATURE)
    if has_dual_protocol_port(service):
        found.add(DUAL_PROTOCOL_FEATURE)
    if expected.usable and any(port.protocol == "SCTP" for port in service.ports):
        found.add(SCTP_STATE)
    if not local_policy and topology_narrows([e for e in everywhere if e.ready], node_zone(node)):
        found.add(TOPOLOGY_FEATURE)
    return found


TOPOLOGY_FEATURE = "topology-narrowed"


def topology_narrows(ready: list[Endpoint], zone: str) -> bool:
    """Whether zone hints take some of a Service's `ready` endpoints away from a client in
    `zone`: topology applies there (`topology_applies`) and an endpoint is hinted elsewhere."""
    return topology_applies(ready, zone) and any(zone not in e.zone_hints for e in ready)


DUAL_PROTOCOL_FEATURE = "dual-protocol-port"
SCTP_STATE = "sctp-reached"


def has_dual_protocol_port(service: Service) -> bool:
    """Whether `service` has one port number on two protocols (TCP 53 and UDP 53)."""
    protocols: dict[int, set[str]] = {}
    for port in service.ports:
        protocols.setdefault(port.port, set()).add(port.protocol)
    return any(len(found) >= 2 for found in protocols.values())


def resolves_per_pod(expected: Expectation) -> bool:
    """Whether the Service has several ports and one of them resolves per pod among its listed
    endpoints: to two numbers, or to a number on some pods and to nothing (the pod lacks the
    container port's name, upstream's `getEndpointPorts` leaves the port out) on others."""
    service = expected.service
    if service is None or len(service.ports) < 2:
        return False
    listed = [s for s in expected.slices if s.endpoints]
    return any(len({s.port_for(port.name) for s in listed}) >= 2 for port in service.ports)


@dataclass
class ExampleMemory:
    """What one example has seen so far that a single state does not show: the VIPs of deleted
    Services and which pod incarnations held each address."""

    retired_vips: set[str] = field(default_factory=set)
    holders: dict[str, set[str]] = field(default_factory=dict)

    def after(self, before: ClusterState, after: ClusterState) -> None:
        """Remember what the step from `before` to `after` retired and allocated."""
        for name, service in before.services.items():
            if name not in after.services:
                self.retired_vips.add(service.cluster_ip)
        for pod in after.pods.values():
            if pod.ip is not None:
                self.holders.setdefault(pod.ip, set()).add(pod.uid)


def change_features(
    before: ClusterState,
    after: ClusterState,
    event: Event,
    name: str,
    expected: Expectation,
    memory: ExampleMemory,
) -> set[str]:
    """The features the step's change brings to Service `name` (memory: before this step)."""
    found: set[str] = set()
    service_before, service_after = before.services.get(name), after.services.get(name)
    if (
        isinstance(event, CreateService)
        and event.service == name
        and service_after is not None
        and service_after.cluster_ip in memory.retired_vips
    ):
        found.add("vip-reused")
    if isinstance(event, SetSelector) and event.service == name and service_before:
        was, now = _listed(before, name), _listed(after, name)
        if now - was:
            found.add("selector-widened")
        if was - now:
            found.add("selector-narrowed")
    if (
        isinstance(event, SetPublishNotReady)
        and event.service == name
        and service_before is not None
        and service_before.publish_not_ready_addresses != event.value
        and any(
            not pod.ready or pod.terminating
            for pod in before.pods.values()
            if pod_is_listed(pod, service_before)
        )
    ):
        found.add("publish-not-ready-toggled")
    if (
        isinstance(event, SetServiceLabel)
        and event.service == name
        and service_before is not None
        and service_after is not None
        and opt_out_label(service_before) is not None
        and opt_out_label(service_after) is None
    ):
        found.add("opt-out-removed")
    if isinstance(event, RestartProxy) and expected.usable:
        found.add("proxy-restarted")
    if isinstance(event, RestartProxy) and event.while_down and expected.usable:
        found.add(WHILE_DOWN_FEATURE)
    if isinstance(event, StaleSnapshot) and expected.usable:
        found.add("stale-snapshot")
    if isinstance(event, UnobservedChanges) and expected.usable:
        found.add(UNOBSERVED_FEATURE)
    if isinstance(event, EvictPod) and service_before is not None:
        pod = before.pods.get(event.pod)
        if pod is not None and pod_is_listed(pod, service_before):
            found.add("evicted-pod")
    for endpoint, _ in unique_endpoints(expected.slices):
        if memory.holders.get(endpoint.address, set()) - {endpoint.uid}:
            found.add("pod-ip-reused")
            break
    return found


def _listed(state: ClusterState, name: str) -> set[tuple[str, str]]:
    service = state.services[name]
    return {(p.name, p.uid) for p in state.pods.values() if pod_is_listed(p, service)}


@dataclass
class Coverage:
    """How often each feature was reached and checked over a run (or one example)."""

    reached: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)

    def add(self, reached: Iterable[str], checked: Iterable[str]) -> None:
        self.reached.update(reached)
        self.checked.update(checked)

    def merge(self, other: Coverage) -> None:
        self.reached.update(other.reached)
        self.checked.update(other.checked)

    def short_of(self, goal: int) -> list[str]:
        """Features checked fewer than `goal` times, the least checked first."""
        return sorted(
            (f for f in FEATURES if self.checked[f] < goal), key=lambda f: (self.checked[f], f)
        )

    def to_json(self) -> dict[str, dict[str, int]]:
        return {
            name: {"reached": self.reached[name], "checked": self.checked[name]}
            for name in FEATURES
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, int]]) -> Coverage:
        coverage = cls()
        for name, counts in data.items():
            coverage.reached[name] = int(counts.get("reached", 0))
            coverage.checked[name] = int(counts.get("checked", 0))
        return coverage
