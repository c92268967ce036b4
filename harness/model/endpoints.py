"""EndpointSlice derivation and endpoint categorisation: the behavioural spec of the model.

Two upstream functions are ported here:

- the EndpointSlice controller's choice of pods and conditions
  (`pkg/controller/endpointslice`, `staging/.../endpointslice/utils.go: podToEndpoint` and
  `ShouldPodBeInEndpoints`), and
- kube-proxy's choice of endpoints for new connections
  (`pkg/proxy/topology.go: CategorizeEndpoints`, with zone hints: `topologyModeFromHints`), with
  its `hasAnyEndpoints` result, which decides between REJECT and DROP when nothing is usable
  here,

and the controller's zone hints for `trafficDistribution`
(`staging/src/k8s.io/endpointslice/trafficdist/trafficdist.go`, `with_hints`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from harness.model.objects import (
    PROXY_NODE,
    TRAFFIC_DISTRIBUTIONS,
    ZONES,
    Backend,
    Destination,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Pod,
    Service,
    ServicePort,
    TrafficPolicy,
    opt_out_label,
)
from harness.model.state import ClusterState


def pod_is_listed(pod: Pod, service: Service) -> bool:
    """Whether `pod` appears in `service`'s EndpointSlices at all.

    Follows `ShouldPodBeInEndpoints(pod, includeTerminating=true)` and the controller's selector
    match: same namespace, labels match the selector, the pod has an IP, and its phase is not
    terminal. A Failed (evicted) or Succeeded pod is never listed, even with
    publishNotReadyAddresses, because its IP may already belong to another pod
    (kubernetes#109414, #109718, fixed by PR #110255). Terminating pods stay listed (KEP-1672).
    """
    return (
        pod.namespace == service.namespace
        and pod.matches(service.selector)
        and pod.ip is not None
        and not pod.phase.terminal
    )


def resolve_port(service_port: ServicePort, pod: Pod) -> EndpointPort | None:
    """The pod's port for a Service port, as `podutil.FindPort` resolves it.

    A numeric targetPort is used as is; a named one is looked up among the pod's container ports
    with the same protocol, so two pods may serve one Service port on different numbers. A name the
    pod lacks resolves to nothing and that port is left out of the pod's slice.
    """
    if isinstance(service_port.target_port, int):
        return EndpointPort(service_port.name, service_port.target_port, service_port.protocol)
    for container_port in pod.ports:
        if (
            container_port.name == service_port.target_port
            and container_port.protocol == service_port.protocol
        ):
            return EndpointPort(service_port.name, container_port.port, service_port.protocol)
    return None


def endpoint_for(pod: Pod, service: Service) -> Endpoint:
    """The endpoint and its conditions, as `podToEndpoint` sets them.

    Follows kubernetes `staging/src/k8s.io/endpointslice/utils.go: podToEndpoint` (formerly
    `pkg/controller/util/endpointslice/utils.go`):

        serving     = podutil.IsPodReady(pod)          (the pod's Ready condition only)
        terminating = pod.DeletionTimestamp != nil
        ready       = publishNotReadyAddresses || (serving && !terminating)

    publishNotReadyAddresses sets only `ready`: an unready pod of such a Service is listed
    ready but not serving (upstream's `TestPodToEndpoint` "Unready pod +
    publishNotReadyAddresses"; tests/core/test_upstream_tables.py runs that table).
    """
    assert pod.ip is not None
    serving = pod.ready
    ready = service.publish_not_ready_addresses or (serving and not pod.terminating)
    return Endpoint(
        address=pod.ip,
        pod=pod.name,
        uid=pod.uid,
        node=pod.node,
        zone=pod.zone,
        ready=ready,
        serving=serving,
        terminating=pod.terminating,
    )


def with_hints(endpoint: Endpoint, service: Service) -> Endpoint:
    """`endpoint` with the zone hints the EndpointSlice controller gives it for `service`.

    `trafficdist.ReconcileHints` (staging/src/k8s.io/endpointslice/trafficdist/trafficdist.go):
    under a `trafficDistribution` it knows (PreferClose, PreferSameZone: the
    `preferCloseHeuristic`), every *ready* endpoint that has a zone gets `hints.forZones =
    [its zone]`; endpoints that are not ready are skipped (the controller rebuilds a changed
    endpoint from the pod, `podToEndpoint`, which sets no hints, so they have none). Without
    one (`defaultHeuristic`) every hint is removed. Pure; never changes anything else."""
    if service.traffic_distribution in TRAFFIC_DISTRIBUTIONS and endpoint.ready and endpoint.zone:
        return replace(endpoint, zone_hints=(endpoint.zone,))
    return endpoint


def topology_applies(ready: Iterable[Endpoint], zone: str) -> bool:
    """Whether a proxy in `zone` filters cluster endpoints by zone hints, given a Service
    port's `ready` endpoints: kube-proxy's `topologyModeFromHints` (pkg/proxy/topology.go;
    `canUseTopology` before 1.31). Hints are all-or-nothing: used only when every ready
    endpoint has a zone hint and at least one names `zone` (so never for a node without a zone
    label, `zone` ""). Node hints (PreferSameNode) are not modelled."""
    ready = list(ready)
    return all(e.zone_hints for e in ready) and any(zone in e.zone_hints for e in ready if zone)


def node_zone(node: str) -> str:
    """The zone label of `node` in the model (`ZONES`), "" for a node it does not know."""
    return ZONES.get(node, "")


def derive_slices(state: ClusterState, service_name: str) -> tuple[EndpointSlice, ...]:
    """The EndpointSlices the controller keeps for a Service.

    Endpoints are grouped by their resolved port set, one slice per set, as the controller does
    when named ports resolve differently per pod. A Service that selects nothing has one empty
    slice (e2e "should have Endpoints and EndpointSlices pointing to API Server" / endpointslice.go
    "empty slice for a selector that matches nothing").
    """
    service = state.service(service_name)
    groups: dict[tuple[EndpointPort, ...], list[Endpoint]] = defaultdict(list)
    for pod in sorted(state.pods.values(), key=lambda p: p.name):
        if not pod_is_listed(pod, service):
            continue
        resolved = (resolve_port(port, pod) for port in service.ports)
        ports = tuple(p for p in resolved if p is not None)
        groups[ports].append(with_hints(endpoint_for(pod, service), service))
    if not groups:
        return (EndpointSlice(service.name, (), (), service.namespace, f"{service.name}-0"),)
    return tuple(
        EndpointSlice(
            service.name, ports, tuple(endpoints), service.namespace, f"{service.name}-{i}"
        )
        for i, (ports, endpoints) in enumerate(sorted(groups.items(), key=lambda kv: repr(kv[0])))
    )


def unique_endpoints(slices: Iterable[EndpointSlice]) -> list[tuple[Endpoint, EndpointSlice]]:
    """Endpoints of a Service across its slices, de-duplicated by (address, pod, uid).

    The controller may write more slices than needed and an endpoint may appear twice during an
    update (endpointslice.go Conformance), so consumers de-duplicate.
    """
    seen: dict[tuple[str, str, str], tuple[Endpoint, EndpointSlice]] = {}
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.endpoints:
            seen.setdefault(
                (endpoint.address, endpoint.pod, endpoint.uid), (endpoint, endpoint_slice)
            )
    return list(seen.values())


def categorize_endpoints(
    slices: Iterable[EndpointSlice],
    service: Service,
    node: str = PROXY_NODE,
    port_name: str | None = None,
    zone: str | None = None,
) -> list[tuple[Endpoint, EndpointSlice]]:
    """The endpoints a proxy on `node` may send new connections to (`CategorizeEndpoints`).

    Cluster policy: the Ready endpoints; if there are none, the Serving-and-Terminating ones
    (KEP-1669, GA 1.28). Under zone hints (`topology_applies`, decided on the ready endpoints
    of port `port_name`, all ports when None, for `zone`, `node`'s own when None) the Ready
    ones hinted for the zone. Local policy (internalTrafficPolicy=Local, KEP-2086): the same
    rule restricted to endpoints on `node`, hints ignored. An empty result means the proxy
    must not connect new connections anywhere: it REJECTs them if the Service has no endpoints
    at all and DROPs them otherwise (`has_any_endpoints`).

    With `port_name`, only the endpoints that have that port take part, so the fallback is
    decided per port: kube-proxy keys endpoints by Service port (`EndpointsMap` per
    `ServicePortName`) and calls `CategorizeEndpoints` with one port's endpoints, so a ready pod
    that lacks a named port does not keep that port from falling back to the terminating pods
    that have it.
    """
    candidates = _having_port(unique_endpoints(slices), port_name)
    if service.internal_traffic_policy == TrafficPolicy.LOCAL:
        candidates = [(e, s) for e, s in candidates if e.node == node]
    ready = [(e, s) for e, s in candidates if e.ready]
    if ready and service.internal_traffic_policy != TrafficPolicy.LOCAL:
        return _hinted_for(ready, node_zone(node) if zone is None else zone)
    if ready:
        return ready
    return [(e, s) for e, s in candidates if e.serving and e.terminating]


def _having_port(
    endpoints: list[tuple[Endpoint, EndpointSlice]], port_name: str | None
) -> list[tuple[Endpoint, EndpointSlice]]:
    """The `endpoints` whose slice has port `port_name` (all of them for None)."""
    if port_name is None:
        return endpoints
    return [(e, s) for e, s in endpoints if s.port_for(port_name) is not None]


def _hinted_for(
    ready: list[tuple[Endpoint, EndpointSlice]], zone: str
) -> list[tuple[Endpoint, EndpointSlice]]:
    """The `ready` endpoints (one port's, `categorize_endpoints` filters them first) a proxy in
    `zone` uses: those hinted for it when topology applies to them, else all of them."""
    if not topology_applies((e for e, _ in ready), zone):
        return ready
    return [(e, s) for e, s in ready if zone in e.zone_hints]


def has_any_endpoints(slices: Iterable[EndpointSlice], port_name: str) -> bool:
    """`CategorizeEndpoints`' `hasAnyEndpoints` for one Service port: whether any endpoint
    anywhere in the cluster, whatever the traffic policy, is ready, or serving and terminating
    (endpoints whose slice lacks the port do not count: upstream keys endpoints per port).

    kube-proxy REJECTs new connections to a Service port only when this is false
    (kubernetes#17359, PR #72534). When it is true but nothing is usable from this node
    (internalTrafficPolicy=Local, endpoints only elsewhere) it DROPs them: the iptables proxier's
    `internalTrafficFilterTarget = "DROP"` ("has no local endpoints"), the nftables proxier's
    `no-endpoint-services` element `drop` instead of `goto reject-chain`
    (pkg/proxy/iptables/proxier.go, pkg/proxy/nftables/proxier.go: syncProxyRules).
    """
    return any(
        (endpoint.ready or (endpoint.serving and endpoint.terminating))
        and endpoint_slice.port_for(port_name) is not None
        for endpoint, endpoint_slice in unique_endpoints(slices)
    )


def must_drop(
    destinations: Sequence[Destination], slices: Iterable[EndpointSlice], port_name: str
) -> bool:
    """Whether a proxy must DROP (not REJECT, not connect) new connections to the port, given
    where it may send them (`destinations`, its `CategorizeEndpoints` result): nothing is
    usable, yet the Service has endpoints (`has_any_endpoints`). The one place this rule lives:
    the model, the model target, the SDK and the harness's proxies all ask it."""
    return not destinations and has_any_endpoints(slices, port_name)


def drops_new_connections(
    slices: Iterable[EndpointSlice],
    service: Service,
    port_name: str,
    node: str = PROXY_NODE,
) -> bool:
    """`must_drop` for a proxy on `node` that follows `CategorizeEndpoints` exactly."""
    slices = tuple(slices)
    return must_drop(usable_destinations(slices, service, port_name, node), slices, port_name)


def usable_destinations(
    slices: Iterable[EndpointSlice],
    service: Service,
    port_name: str,
    node: str = PROXY_NODE,
) -> list[Destination]:
    """Where a new connection to `service`'s port `port_name` may go, from a client on `node`.

    Endpoints whose slice lacks the port (a named targetPort the pod does not have) are skipped.
    The result is sorted by backend so that every caller sees the same order.
    """
    return _on_port(categorize_endpoints(slices, service, node, port_name), port_name)


def _on_port(chosen: Iterable[tuple[Endpoint, EndpointSlice]], port_name: str) -> list[Destination]:
    """The `chosen` endpoints as destinations of port `port_name` (those whose slice lacks the
    port skipped), sorted by backend."""
    destinations = []
    for endpoint, endpoint_slice in chosen:
        port = endpoint_slice.port_for(port_name)
        if port is not None:
            destinations.append(
                Destination(endpoint.backend, endpoint.address, port, endpoint.node)
            )
    return sorted(destinations, key=lambda d: d.backend)


@dataclass(frozen=True)
class Expectation:
    """What the model says about one Service port right now, for a client on `node`: the
    Service (None once deleted), its EndpointSlices, the usable destinations (where new
    connections may go) and their backends, and, when none is usable, whether new connections
    are dropped (`drops`: the Service has endpoints, none for `node`) rather than rejected.

    The three outcomes of a new connection: a usable destination; dropped (no answer at all,
    the client times out; never a remote endpoint); rejected (refused at once).

    `opted_out` names the opt-out label ("key=value") of a Service no default proxy programs
    (`harness.model.objects.OPT_OUT_LABELS`): its slices are still published, nothing is
    usable, and new connections are neither forwarded nor refused by the proxy; the node routes
    the Service range to a sink, so they time out (`drops`)."""

    service: Service | None
    slices: tuple[EndpointSlice, ...]
    destinations: tuple[Destination, ...]
    drops: bool = False
    opted_out: str | None = None

    @property
    def usable(self) -> frozenset[Backend]:
        return frozenset(d.backend for d in self.destinations)


def expect(state: ClusterState, name: str, port_name: str, node: str = PROXY_NODE) -> Expectation:
    """The model's expectation for Service `name`'s port `port_name` from `node`.

    An opted-out Service (`opt_out_label`) keeps its EndpointSlices: the EndpointSlice controller
    does not look at the opt-out labels (staging/src/k8s.io/endpointslice/utils.go:
    `setEndpointSliceLabels` copies the Service's labels onto its slices, except the reserved
    `service.kubernetes.io/headless`, which it sets only for a Service without a ClusterIP), but
    no destination is usable and new connections are dropped (`Expectation.opted_out`)."""
    service = state.services.get(name)
    if service is None:
        return Expectation(None, (), ())
    slices = derive_slices(state, name)
    return _expectation(
        service, slices, port_name, usable_destinations(slices, service, port_name, node)
    )


def _expectation(
    service: Service,
    slices: tuple[EndpointSlice, ...],
    port_name: str,
    destinations: Sequence[Destination],
) -> Expectation:
    """The expectation for `service`'s port given where new connections may go: DROP when
    nothing is usable but the Service has endpoints (`must_drop`); nothing usable and DROP for
    an opted-out Service, whose slices are published all the same."""
    label = opt_out_label(service)
    if label is not None:
        return Expectation(service, slices, (), drops=True, opted_out=label)
    found = tuple(destinations)
    return Expectation(service, slices, found, must_drop(found, slices, port_name))


def local_endpoints(
    slices: Iterable[EndpointSlice], node: str, port_name: str | None = None
) -> list[tuple[Endpoint, EndpointSlice]]:
    """`CategorizeEndpoints`' local endpoints for a proxy on `node`: the Ready endpoints on
    `node`; if none, the Serving-and-Terminating ones on `node` (the local fallback is decided
    apart from the cluster-wide one, pkg/proxy/topology.go), among those that have port
    `port_name` when given (decided per port, as `categorize_endpoints`)."""
    endpoints = _having_port(unique_endpoints(slices), port_name)
    here = [(e, s) for e, s in endpoints if e.node == node]
    ready = [(e, s) for e, s in here if e.ready]
    return ready or [(e, s) for e, s in here if e.serving and e.terminating]


def external_destinations(
    slices: Iterable[EndpointSlice], service: Service, port_name: str, node: str
) -> list[Destination]:
    """Where a new connection from outside the cluster to `service`'s port `port_name` may go
    when it arrives at `node` (its node port on the node's IP, or a LoadBalancer's ingress IP
    routed to the node): under externalTrafficPolicy Local the node's local endpoints only
    (`local_endpoints`); under Cluster the endpoints `CategorizeEndpoints` gives any client,
    whatever internalTrafficPolicy says (it governs traffic from inside the cluster only:
    `clusterEndpoints` vs `localEndpoints` chosen by `ExternalPolicyLocal`,
    pkg/proxy/iptables/proxier.go syncProxyRules)."""
    slices = tuple(slices)
    if service.external_traffic_policy == TrafficPolicy.LOCAL:
        chosen = local_endpoints(slices, node, port_name)
    else:
        chosen = categorize_endpoints(
            slices, replace(service, internal_traffic_policy=TrafficPolicy.CLUSTER), node, port_name
        )
    return _on_port(chosen, port_name)


def expect_external(state: ClusterState, name: str, port_name: str, node: str) -> Expectation:
    """The model's expectation for a new connection from outside the cluster to Service
    `name`'s port `port_name`, arriving at `node`: a usable destination
    (`external_destinations`); dropped when the Service has endpoints but none for this node
    under externalTrafficPolicy Local (kube-proxy's `externalTrafficFilterTarget` DROP, "has no
    local endpoints"); rejected when it has none at all (KUBE-EXTERNAL-SERVICES REJECT). A
    ClusterIP Service has no node port: nothing answers there, as for a deleted Service."""
    service = state.services.get(name)
    if service is None or not service.type.external:
        return Expectation(None, (), ())
    slices = derive_slices(state, name)
    return _expectation(
        service, slices, port_name, external_destinations(slices, service, port_name, node)
    )


def expect_external_ip(
    state: ClusterState, name: str, port_name: str, node: str, address: str
) -> Expectation:
    """The model's expectation for a new connection from outside the cluster to Service
    `name`'s externalIP `address` on port `port_name`'s Service port, handed to `node`: exactly
    what `expect_external` says at that node's node port, for a Service of any type (kube-proxy's
    "Capture externalIPs" sends it to the Service's KUBE-EXT / `external-` chain while it has
    endpoints, and without external endpoints the same `externalTrafficFilterTarget` in
    KUBE-EXTERNAL-SERVICES / `no-endpoint-services`: DROP "has no local endpoints" under
    `ExternalPolicyLocal`, REJECT "has no endpoints" without any; pkg/proxy/iptables and
    nftables proxier.go `syncProxyRules`). An address the Service does not list (or no such
    Service) is programmed by nobody: nothing answers there. Pure."""
    service = state.services.get(name)
    if service is None or address not in service.external_ips:
        return Expectation(None, (), ())
    slices = derive_slices(state, name)
    return _expectation(
        service, slices, port_name, external_destinations(slices, service, port_name, node)
    )


def health_check_status(state: ClusterState, name: str, node: str) -> int | None:
    """What `node`'s healthCheckNodePort of Service `name` answers: 200 while the node has a
    local endpoint that is Ready, 503 otherwise, also when only terminating endpoints are left
    there, even while they still serve (invariant I9; pkg/proxy/healthcheck/service_health.go
    counts `NumLocalEndpoints` of ready endpoints; e2e "should fail health check node port if
    there are only terminating endpoints"). None when the Service has no healthCheckNodePort."""
    service = state.services.get(name)
    if service is None or service.health_check_node_port is None:
        return None
    ready_here = [e for e, _ in unique_endpoints(derive_slices(state, name))
                  if e.node == node and e.ready]  # fmt: skip
    return 200 if ready_here else 503


def local_ready_addresses(slices: Iterable[EndpointSlice], node: str) -> frozenset[str]:
    """The distinct addresses of `node`'s Ready endpoints among `slices`: kube-proxy's
    `EndpointsMap.LocalReadyEndpoints` (pkg/proxy/endpointschangetracker.go), which squashes a
    Service's endpoints by IP (one pod serving two ports counts once) and leaves terminating
    ones out even while they serve, since the health check must fail on a node that has only
    those (I9). Its size is the `localEndpoints` a healthCheckNodePort reports. Pure."""
    return frozenset(e.address for e, _ in unique_endpoints(slices) if e.node == node and e.ready)


def health_check_count(state: ClusterState, name: str, node: str) -> int | None:
    """The `localEndpoints` `node`'s healthCheckNodePort of Service `name` reports
    (`local_ready_addresses`); None when the Service has no healthCheckNodePort. It is 0
    exactly when `health_check_status` is 503."""
    service = state.services.get(name)
    if service is None or service.health_check_node_port is None:
        return None
    return len(local_ready_addresses(derive_slices(state, name), node))


def why_unusable(state: ClusterState, service: str, backend: Backend) -> str:
    """Why a new connection to `service` must not reach `backend`, in a few words: the pod is
    gone, recreated, evicted, relabelled out, or listed with conditions that `CategorizeEndpoints`
    does not use (for a person reading a failure; the checks decide from `usable` alone)."""
    found = state.services.get(service)
    pod = state.pods.get(backend.pod)
    if found is None:
        return "the Service is deleted"
    label = opt_out_label(found)
    if label is not None:
        return f"the Service is labelled {label}: no default proxy programs it"
    if pod is None:
        return "the pod is deleted"
    if pod.uid != backend.uid:
        return f"an old incarnation (the pod is now {pod.uid})"
    if pod.phase.terminal:
        return f"the pod is {pod.phase.value} (evicted)"
    if not pod.matches(found.selector):
        return "the pod no longer matches the selector"
    endpoint = endpoint_for(pod, found)
    conditions = (
        f"ready={endpoint.ready} serving={endpoint.serving} terminating={endpoint.terminating}"
    )
    if found.internal_traffic_policy == TrafficPolicy.LOCAL and pod.node != PROXY_NODE:
        return f"on {pod.node}, and internalTrafficPolicy is Local ({conditions})"
    if endpoint.terminating and endpoint.serving and not endpoint.ready:
        return f"terminating while ready endpoints exist ({conditions})"
    if found.traffic_distribution is not None and endpoint.ready:
        return (
            f"in {endpoint.zone}, and trafficDistribution {found.traffic_distribution} keeps"
            f" {PROXY_NODE}'s clients on {node_zone(PROXY_NODE)}'s hinted endpoints"
        )
    return f"not usable ({conditions})"
