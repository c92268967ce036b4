"""Recipes: short event sequences that lead a Service into one coverage feature's state.

Uniform generation reaches some states only by luck: a Service whose every ready endpoint is
gone while terminating ones still serve, or a ClientIP client that stays idle past its timeout.
A recipe draws, from the current model state, the few events that get there (delete every ready
endpoint with a long grace period; stick many clients, wait out the timeout, come back), and an
aimed example (`harness.swarm`) mixes its aim's recipe into its steps. Every event a recipe
draws is valid on the state it is drawn from, so the sequence stays valid by construction.

Pure: draws from Hypothesis's data and reads the model state; changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from harness.checks.affinity import TIMEOUT_SLACK_S
from harness.coverage import has_dual_protocol_port
from harness.events import (
    MAX_STALE_BACK,
    SCTP_PORT_NAME,
    UDP_PORT_NAME,
    AddServicePort,
    CreateDualProtocolService,
    CreateMultiPortPod,
    CreateMultiPortService,
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    Event,
    EvictPod,
    OutOfWindow,
    Probe,
    RestartPod,
    RestartProxy,
    Scale,
    SetAffinity,
    SetExternalIPs,
    SetExternalTrafficPolicy,
    SetLabel,
    SetPublishNotReady,
    SetReady,
    SetSelector,
    SetServiceLabel,
    SetServiceType,
    SetTrafficDistribution,
    SetTrafficPolicy,
    StaleSnapshot,
    UnobservedChanges,
    Wait,
)
from harness.features import (
    HEALTH_CHECK_NODE_PORT,
    INTERNAL_TRAFFIC_POLICY,
    MULTI_PORT,
    OPT_OUT_LABELS_FEATURE,
)
from harness.model.endpoints import pod_is_listed
from harness.model.objects import (
    OPT_OUT_LABELS,
    PREFER_CLOSE,
    PROXY_NODE,
    ZONES,
    Affinity,
    Pod,
    Protocol,
    Service,
    ServiceType,
    TrafficPolicy,
    labels_of,
)
from harness.model.state import ClusterState
from harness.strategies import (
    EXPIRY_MARGIN_S,
    GROUPS,
    OPT_OUT_VALUES,
    OTHER_NODE,
    POD_NAMES,
    SERVICE_NAMES,
    EventSpace,
    external_ip_options,
    recreated,
)
from harness.traffic import CLIENTS

Recipe = Callable[[st.DataObject, ClusterState, EventSpace], list[Event]]


def _service(data: st.DataObject, state: ClusterState) -> Service:
    return state.services[data.draw(st.sampled_from(sorted(state.services)), label="service")]


def _listed(state: ClusterState, service: Service, keep: Callable[[Pod], bool]) -> list[Pod]:
    pods = [p for p in state.pods.values() if pod_is_listed(p, service) and keep(p)]
    return sorted(pods, key=lambda p: p.name)


def _group(service: Service) -> str | None:
    """The Scale group a Service selects by `app` alone, if it does."""
    selector = dict(service.selector)
    return selector.get("app") if set(selector) == {"app"} else None


def _populated(
    data: st.DataObject, state: ClusterState, service: Service, node: str
) -> list[Event]:
    """A Scale that gives `service` a few more ready endpoints on `node`, unless it has two
    already there (or is not a group's Service)."""
    group = _group(service)
    ready = _listed(state, service, lambda p: p.ready and not p.terminating and p.node == node)
    if group is None or len(ready) >= 2:
        return []
    replicas = len(state.group_pods(group)) + data.draw(st.integers(2, 4), label="more")
    return [Scale(group, replicas, node)]


def _drain(
    state: ClusterState, service: Service, grace_s: float, keep: Callable[[Pod], bool]
) -> list[Event]:
    """Graceful deletes of every ready, not terminating endpoint of `service` that `keep`s: one
    Scale to 0 when they are all its group's pods (a ReplicaSet's 30 s grace), else one delete
    each."""
    pods = _listed(state, service, lambda p: p.ready and not p.terminating and keep(p))
    group = _group(service)
    if (
        group is not None
        and pods
        and {p.name for p in pods} == {p.name for p in state.group_pods(group)}
    ):
        return [Scale(group, 0)]
    return [DeletePod(p.name, grace_s) for p in pods]


def _long_grace(space: EventSpace) -> float:
    return max(space.graces_s) if space.long_graces else (300.0 if space.simulated else 30.0)


def _apply_all(state: ClusterState, events: list[Event]) -> ClusterState:
    for event in events:
        state = event.apply(state)
    return state


# -- the recipes ----------------------------------------------------------------------------------
def _fallback_of(
    data: st.DataObject, state: ClusterState, space: EventSpace, service: Service
) -> list[Event]:
    events = _populated(data, state, service, PROXY_NODE)
    state = _apply_all(state, events)
    return events + _drain(state, service, _long_grace(space), lambda p: True)


def fallback(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Every ready endpoint of a Service terminates (long grace): only serving+terminating
    endpoints are left."""
    return _fallback_of(data, state, space, _service(data, state))


def not_serving(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """The fallback, then one of the Service's terminating endpoints stops serving (its
    readiness fails)."""
    service = _service(data, state)
    events = _fallback_of(data, state, space, service)
    state = _apply_all(state, events)
    terminating = [p.name for p in _listed(state, service, lambda p: p.terminating and p.ready)]
    if terminating:
        events.append(SetReady(data.draw(st.sampled_from(terminating), label="pod"), False))
    return events


def local_only_terminating(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> list[Event]:
    """internalTrafficPolicy Local, and every ready local endpoint terminates."""
    service = _service(data, state)
    events: list[Event] = _populated(data, state, service, PROXY_NODE)
    if service.internal_traffic_policy != TrafficPolicy.LOCAL:
        events.append(SetTrafficPolicy(service.name, TrafficPolicy.LOCAL))
    state = _apply_all(state, events)
    return events + _drain(state, service, _long_grace(space), lambda p: p.node == PROXY_NODE)


def _node_one_emptied(state: ClusterState, service: Service, events: list[Event]) -> list[Event]:
    """Deletes, at once, of the Service's pods still running on node-1 after `events`: only
    the other nodes keep endpoints."""
    after = _apply_all(state, events)
    local = _listed(after, service, lambda p: p.node == PROXY_NODE and not p.terminating)
    return [DeletePod(p.name, 0.0) for p in local]


def no_local(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """internalTrafficPolicy Local, endpoints on the other node only."""
    service = _service(data, state)
    events: list[Event] = _populated(data, state, service, OTHER_NODE)
    if service.internal_traffic_policy != TrafficPolicy.LOCAL:
        events.append(SetTrafficPolicy(service.name, TrafficPolicy.LOCAL))
    return [*events, *_node_one_emptied(state, service, events)]


def node_port_reached(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Endpoints on some node and the Service made NodePort: every node's node port then
    forwards from outside (`harness.externalclients`)."""
    return _reached_from_outside(data, state, space, ServiceType.NODE_PORT)


def udp_node_port_reached(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> list[Event]:
    """A UDP Service (created if there is none and a name is free) with usable endpoints, made
    NodePort unless it has node ports already: every node's node port then answers datagrams
    from outside (`harness.externalclients`). Nothing where the space makes no UDP."""
    found = _udp_populated(data, state, space)
    if found is None:
        return []
    events, service = found
    if not service.type.external:
        events.append(SetServiceType(service.name, ServiceType.NODE_PORT))
    return events


def load_balancer_reached(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> list[Event]:
    """Endpoints on some node and the Service made LoadBalancer: its ingress IP then forwards
    from outside via every node (`harness.externalclients.LoadBalancerClients`)."""
    return _reached_from_outside(data, state, space, ServiceType.LOAD_BALANCER)


def external_ip_reached(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Endpoints on some node and the Service given an externalIP unless it has one: each
    external IP then forwards from outside via every node
    (`harness.externalclients.ExternalIpClients`)."""
    service = _service(data, state)
    events = _populated_somewhere(data, state, space, service)
    free = dict(external_ip_options(state)).get(service.name, ())
    if not service.external_ips and free:
        events.append(SetExternalIPs(service.name, (free[0],)))
    return events


def _populated_somewhere(
    data: st.DataObject, state: ClusterState, space: EventSpace, service: Service
) -> list[Event]:
    """`_populated` on a drawn node of `space`."""
    node = data.draw(st.sampled_from(sorted(space.nodes) or [PROXY_NODE]), label="node")
    return _populated(data, state, service, node)


def _reached_from_outside(
    data: st.DataObject, state: ClusterState, space: EventSpace, kind: ServiceType
) -> list[Event]:
    """Endpoints on a drawn node, and the Service made `kind` unless it is already (a
    LoadBalancer counts as NodePort: it has node ports too)."""
    service = _service(data, state)
    events = _populated_somewhere(data, state, space, service)
    kept = service.type.external if kind == ServiceType.NODE_PORT else service.type == kind
    if not kept:
        events.append(SetServiceType(service.name, kind))
    return events


def external_local_no_local(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> list[Event]:
    """A NodePort Service under externalTrafficPolicy Local with endpoints on another node
    only: node-1's node port must DROP."""
    service = _service(data, state)
    events: list[Event] = _populated(data, state, service, OTHER_NODE)
    if not service.type.external:
        events.append(SetServiceType(service.name, ServiceType.NODE_PORT))
    if service.external_traffic_policy != TrafficPolicy.LOCAL:
        events.append(SetExternalTrafficPolicy(service.name, TrafficPolicy.LOCAL))
    return [*events, *_node_one_emptied(state, service, events)]


def health_only_terminating(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> list[Event]:
    """A LoadBalancer under externalTrafficPolicy Local with ready endpoints on a node, then
    every one of them there terminating (long grace, still serving): that node's
    healthCheckNodePort must answer 503 (I9). Nothing where the space does not hand out the
    health check (the implementation does not declare it)."""
    if not space.supports(HEALTH_CHECK_NODE_PORT):
        return []
    service = _service(data, state)
    node = data.draw(st.sampled_from(sorted(space.nodes) or [PROXY_NODE]), label="node")
    events: list[Event] = _populated(data, state, service, node)
    if service.type != ServiceType.LOAD_BALANCER:
        events.append(SetServiceType(service.name, ServiceType.LOAD_BALANCER))
    if service.external_traffic_policy != TrafficPolicy.LOCAL:
        events.append(SetExternalTrafficPolicy(service.name, TrafficPolicy.LOCAL))
    after = _apply_all(state, events)
    return events + _drain(after, service, _long_grace(space), lambda p: p.node == node)


def spread_over_nodes(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Endpoints on a node other than node-1, and internalTrafficPolicy Local where it is
    declared: every node then sees the Service differently (connect, or DROP)."""
    service = _service(data, state)
    others = sorted(set(space.nodes) - {PROXY_NODE}) or [OTHER_NODE]
    node = data.draw(st.sampled_from(others), label="node")
    events: list[Event] = _populated(data, state, service, node)
    local = service.internal_traffic_policy == TrafficPolicy.LOCAL
    if space.supports(INTERNAL_TRAFFIC_POLICY) and not local:
        events.append(SetTrafficPolicy(service.name, TrafficPolicy.LOCAL))
    return events


def topology_narrowed(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Ready endpoints on node-1 (the clients' node, zone-a) and on another node of another
    zone, internalTrafficPolicy Cluster, and trafficDistribution PreferClose: node-1's clients
    then reach only zone-a's endpoints, the other node's only their own zone's (I11)."""
    service = _service(data, state)
    others = sorted(n for n in set(space.nodes) if ZONES.get(n) != ZONES[PROXY_NODE])
    node = data.draw(st.sampled_from(others or [OTHER_NODE]), label="node")
    events: list[Event] = _populated(data, state, service, PROXY_NODE)
    events += _populated(data, _apply_all(state, events), service, node)
    if service.internal_traffic_policy == TrafficPolicy.LOCAL:
        events.append(SetTrafficPolicy(service.name, TrafficPolicy.CLUSTER))
    if service.traffic_distribution is None:
        events.append(SetTrafficDistribution(service.name, PREFER_CLOSE))
    return events


def idle_clients(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """ClientIP with a short timeout, many clients stick, stay idle past it, come back."""
    service = _service(data, state)
    timeout = data.draw(st.sampled_from((10, 60) if space.simulated else (1, 1, 2, 3)), label="t")
    events: list[Event] = _populated(data, state, service, PROXY_NODE)  # expiry needs n >= 2
    if (service.session_affinity, service.affinity_timeout_s) != (Affinity.CLIENT_IP, timeout):
        events.append(SetAffinity(service.name, Affinity.CLIENT_IP, timeout))
    probe = Probe(service.name, CLIENTS[0], False, True)
    return [*events, probe, Wait(timeout + TIMEOUT_SLACK_S + EXPIRY_MARGIN_S), probe]


def removed_backend(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """ClientIP clients stick, then one of the endpoints stops being usable, and they return."""
    service = _service(data, state)
    events: list[Event] = _populated(data, state, service, PROXY_NODE)
    if service.session_affinity != Affinity.CLIENT_IP:
        events.append(SetAffinity(service.name, Affinity.CLIENT_IP, max(space.affinity_timeouts_s)))
    probe = Probe(service.name, CLIENTS[0], False, True)
    events.append(probe)
    state = _apply_all(state, events)
    ready = _listed(state, service, lambda p: p.ready and not p.terminating)
    if ready:
        pod = data.draw(st.sampled_from([p.name for p in ready]), label="pod")
        how = data.draw(st.sampled_from(("kill", "unready", "relabel")), label="how")
        removals: dict[str, Event] = {
            "kill": DeletePod(pod, 0.0),
            "unready": SetReady(pod, False),
            "relabel": SetLabel(pod, "app", None),
        }
        removal = removals[how]
        events += [removal, probe]
    return events


def many_endpoints(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A Service's group scaled to 7 or more."""
    group = _group(_service(data, state))
    if group is None:
        return []
    return [Scale(group, data.draw(st.integers(7, 10), label="replicas"))]


def one_endpoint(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    group = _group(_service(data, state))
    return [] if group is None else [Scale(group, 1)]


def some_endpoints(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    group = _group(_service(data, state))
    return [] if group is None else [Scale(group, data.draw(st.integers(2, 6), label="n"))]


def no_endpoint(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Every endpoint of a Service killed (no grace): nothing usable, it must REJECT."""
    service = _service(data, state)
    return [DeletePod(p.name, 0.0) for p in _listed(state, service, lambda p: not p.terminating)]


def named_ports(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A pod serving the named port on 8081 beside the group's pods on 8080."""
    service = _service(data, state)
    free = [n for n in POD_NAMES if n not in state.pods]
    if not free or len(state.pods) >= space.max_pods:
        return []
    events = _populated(data, state, service, PROXY_NODE)
    pod = data.draw(st.sampled_from(free), label="pod")
    return [*events, CreatePod(pod, service.selector, True, PROXY_NODE, 8081)]


def multi_port_pods(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A Service of several ports (the chosen one recreated so, if it has one port) and two
    pods of its selector serving `http` and `admin` on different numbers; its other pods lack
    `admin` and are left out of that port."""
    if not space.supports(MULTI_PORT):
        return []
    service = _service(data, state)
    events: list[Event] = []
    if len(service.ports) < 2:
        count = data.draw(st.integers(2, 3), label="ports")
        events = [
            DeleteService(service.name),
            CreateMultiPortService(service.name, service.selector, port_count=count),
        ]
    free = [n for n in POD_NAMES if n not in state.pods]
    if len(free) < 2 or len(state.pods) + 2 > space.max_pods:
        return events
    first, second = data.draw(st.permutations(free), label="pods")[:2]
    return [
        *events,
        CreateMultiPortPod(first, service.selector, True, PROXY_NODE, 8080, 9090),
        CreateMultiPortPod(second, service.selector, True, PROXY_NODE, 8081, 9091),
    ]


def reused_ip(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A listed pod killed and another incarnation given its address (a restart at the same
    address, or a new pod taking the lowest free one)."""
    service = _service(data, state)
    listed = _listed(state, service, lambda p: not p.terminating)
    if not listed:
        return _populated(data, state, service, PROXY_NODE)
    pod = data.draw(st.sampled_from([p.name for p in listed]), label="pod")
    if data.draw(st.booleans(), label="restart"):
        return [RestartPod(pod, False)]
    group = _group(service)
    scale = [Scale(group, len(state.group_pods(group)))] if group else []
    return [DeletePod(pod, 0.0), *scale]


def reused_vip(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A Service deleted and a new one created, which gets its VIP: under another name when
    one is free (so nothing of the old one's is simply overwritten), else the same."""
    service = _service(data, state)
    group = data.draw(st.sampled_from(GROUPS), label="group")
    free = [n for n in SERVICE_NAMES if n not in state.services] or [service.name]
    name = data.draw(st.sampled_from(free), label="name")
    return [DeleteService(service.name), CreateService(name, labels_of({"app": group}))]


def toggled_publish(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A listed pod turns unready (or terminates), then publishNotReadyAddresses flips."""
    service = _service(data, state)
    events: list[Event] = _populated(data, state, service, PROXY_NODE)
    state = _apply_all(state, events)
    ready = _listed(state, service, lambda p: p.ready and not p.terminating)
    if ready:
        pod = data.draw(st.sampled_from([p.name for p in ready]), label="pod")
        terminate = data.draw(st.booleans(), label="terminate")
        events.append(DeletePod(pod, _long_grace(space)) if terminate else SetReady(pod, False))
    flip = not service.publish_not_ready_addresses
    return [
        *events,
        SetPublishNotReady(service.name, flip),
        SetPublishNotReady(service.name, not flip),
    ]


def reselected(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A selector narrowed to a tier and widened back, or switched to the other group."""
    service = _service(data, state)
    group = _group(service) or dict(service.selector).get("app", GROUPS[0])
    tier = data.draw(st.sampled_from(("front", "back")), label="tier")
    free = [n for n in POD_NAMES if n not in state.pods]
    events: list[Event] = []
    if free and len(state.pods) < space.max_pods:
        labels = labels_of({"app": group, "tier": tier})
        events.append(CreatePod(data.draw(st.sampled_from(free), label="pod"), labels))
    narrow = SetSelector(service.name, labels_of({"app": group, "tier": tier}))
    return [*events, narrow, SetSelector(service.name, labels_of({"app": group}))]


def evicted(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    service = _service(data, state)
    listed = _listed(state, service, lambda p: not p.terminating)
    if not listed:
        return _populated(data, state, service, PROXY_NODE)
    return [EvictPod(data.draw(st.sampled_from([p.name for p in listed]), label="pod"))]


def restarted(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a Service usable endpoints (connections are held to it from then on), then restart
    the proxy: every Service must converge again, every held connection keep its backend."""
    service = _service(data, state)
    return [*_populated(data, state, service, PROXY_NODE), RestartProxy()]


def stale_shown(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a Service usable endpoints, then show the proxy a stale snapshot from before some of
    that: it must come back to the current state within the deadline."""
    service = _service(data, state)
    back: int = data.draw(st.integers(1, MAX_STALE_BACK), label="back")
    return [*_populated(data, state, service, PROXY_NODE), StaleSnapshot(back)]


def unobserved(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a single-port Service usable endpoints, then, while the proxy's watch is down,
    delete and create it again (with another VIP when a free name can take its old one
    meanwhile) or scale its group to 0 and back (`UnobservedChanges`): the proxy must reach the
    end state within the deadline from only that state."""
    service = _service(data, state)
    events = _populated(data, state, service, PROXY_NODE)
    group = _group(service)
    free = [n for n in SERVICE_NAMES if n not in state.services]
    if len(service.ports) != 1 or not space.hides_updates:
        return events
    patterns: list[tuple[Event, ...]] = []  # created again with its own VIP: nothing changed
    if free:
        patterns.append(
            (DeleteService(service.name), recreated(service, free[0]), recreated(service))
        )
    if group is not None:
        replicas = len(_apply_all(state, events).group_pods(group))
        patterns.append((Scale(group, 0), Scale(group, max(replicas, 1), PROXY_NODE)))
    if not patterns:
        return events
    changes = data.draw(st.sampled_from(patterns), label="unobserved")
    return [*events, UnobservedChanges(changes)]


def out_of_window(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a Service usable endpoints (connections are held to it from then on), then have one
    of its ready pods send an out-of-window segment on each of its connections: every held
    connection must keep working (kubernetes#74839)."""
    service = _service(data, state)
    events = _populated(data, state, service, PROXY_NODE)
    ready = _listed(_apply_all(state, events), service, lambda p: p.ready and not p.terminating)
    if not ready:
        return events
    return [*events, OutOfWindow(data.draw(st.sampled_from([p.name for p in ready]), label="pod"))]


def held_through_change(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a Service usable endpoints, then change something: restart the proxy, or flip one
    endpoint's readiness (the other endpoints' connections must not notice)."""
    service = _service(data, state)
    events = _populated(data, state, service, PROXY_NODE)
    ready = _listed(_apply_all(state, events), service, lambda p: p.ready and not p.terminating)
    change: Event = RestartProxy()
    flip: bool = data.draw(st.booleans(), label="flip readiness")
    if ready and flip:
        change = SetReady(data.draw(st.sampled_from([p.name for p in ready]), label="pod"), False)
    return [*events, change]


def _labelled(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> tuple[list[Event], str, str] | None:
    """Events that leave a Service with usable endpoints' pods and an opt-out label, with the
    Service's name and the label's key; None for an implementation the space does not hand
    labelled Services (an implementation that does not declare the feature)."""
    if not space.supports(OPT_OUT_LABELS_FEATURE):
        return None
    service = _service(data, state)
    events = _populated(data, state, service, PROXY_NODE)
    carried = [key for key, _ in service.labels if key in OPT_OUT_LABELS]
    if carried:
        return events, service.name, carried[0]
    key = data.draw(st.sampled_from(OPT_OUT_LABELS), label="opt-out label")
    return [*events, SetServiceLabel(service.name, key, OPT_OUT_VALUES[key])], service.name, key


def opted_out(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """Give a Service ready endpoints, then label it service-proxy-name or headless: its VIP
    must stop answering although its slices still list them."""
    found = _labelled(data, state, space)
    return found[0] if found else []


def opt_out_removed(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """An opted-out Service with ready endpoints loses its label: it must be programmed again."""
    found = _labelled(data, state, space)
    if found is None:
        return []
    events, name, key = found
    return [*events, SetServiceLabel(name, key, None)]


def udp_flow_changed(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A UDP Service (created if there is none and a name is free) with usable endpoints, whose
    held flows then see their endpoints change: one made unready (kubernetes#105657), deleted
    at once (#19029), or the group scaled to 0 and back (#48370, #139628). Nothing when the
    space generates no UDP (`EventSpace.makes_udp`: the target cannot send it, or the
    implementation does not declare it)."""
    found = _udp_populated(data, state, space)
    if found is None:
        return []
    events, service = found
    return [*events, *_endpoint_change(data, _apply_all(state, events), service)]


def _udp_populated(
    data: st.DataObject, state: ClusterState, space: EventSpace
) -> tuple[list[Event], Service] | None:
    """Events that leave a UDP Service (one drawn, or created when there is none and a name is
    free) with usable endpoints, and that Service; None where the space makes no UDP or no
    name is free."""
    if not space.makes_udp:
        return None
    return _protocol_populated(data, state, Protocol.UDP, UDP_PORT_NAME)


def sctp_reached(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """An SCTP Service (created if there is none and a name is free) with usable endpoints:
    every probe of it is then an INIT answered through the proxy's DNAT. Nothing where the
    space makes no SCTP."""
    if not space.makes_sctp:
        return []
    found = _protocol_populated(data, state, Protocol.SCTP, SCTP_PORT_NAME)
    return [] if found is None else found[0]


def _protocol_populated(
    data: st.DataObject, state: ClusterState, protocol: Protocol, port_name: str
) -> tuple[list[Event], Service] | None:
    """Events that leave a Service whose first port (the probed one, which held flows use too)
    is of `protocol` with usable endpoints, and that Service: one drawn, or one created
    targeting the pods' `port_name` port when there is none; None when no name is free."""
    same = [s for s in state.services.values() if s.ports[0].protocol == protocol.value]
    events: list[Event] = []
    if same:
        service = data.draw(st.sampled_from(sorted(same, key=lambda s: s.name)), label="service")
    else:
        free = [n for n in SERVICE_NAMES if n not in state.services]
        if not free:
            return None
        group = data.draw(st.sampled_from(GROUPS), label="group")
        created = CreateService(
            data.draw(st.sampled_from(free), label="name"),
            labels_of({"app": group}),
            port_name,
            protocol=protocol,
        )
        events.append(created)
        service = created.apply(state).service(created.service)
    events += _populated(data, _apply_all(state, events), service, PROXY_NODE)
    return events, service


def _endpoint_change(data: st.DataObject, after: ClusterState, service: Service) -> list[Event]:
    """A change that takes a usable endpoint away from `service` in `after`: one made unready,
    deleted at once, or its group scaled to 0 and back; none when nothing can."""
    ready = _listed(after, service, lambda p: p.ready and not p.terminating)
    owner = _group(service)
    change = data.draw(st.sampled_from(["unready", "delete", "scale"]), label="change")
    if change == "scale" and owner is not None:
        replicas = len(after.group_pods(owner))
        return [Scale(owner, 0), Scale(owner, max(replicas, 2))]
    if not ready:
        return []
    pod = data.draw(st.sampled_from([p.name for p in ready]), label="pod")
    return [SetReady(pod, False) if change == "unready" else DeletePod(pod, 0)]


def changed_while_down(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A Service with usable endpoints (a UDP one where the space makes UDP, so that flows are
    held to it), then a proxy restart during which one of its endpoints is made unready,
    deleted, or its group scaled to 0 and back (`RestartProxy.while_down`): the restarted proxy
    must reconcile what it never saw (kubernetes#105657, #122740, #126130). A plain restart
    where the target cannot hold changes from its proxy (`hides_updates`)."""
    found = _udp_populated(data, state, space)
    if found is None:
        service = _service(data, state)
        found = (_populated(data, state, service, PROXY_NODE), service)
    events, service = found
    if not space.hides_updates:
        return [*events, RestartProxy()]
    changes = _endpoint_change(data, _apply_all(state, events), service)
    return [*events, RestartProxy(tuple(changes))]


def dual_protocol(data: st.DataObject, state: ClusterState, space: EventSpace) -> list[Event]:
    """A Service with its first port's number on UDP too (a `udp` port added to a TCP Service
    that has none, or a dual-protocol Service created), populated: both protocols then have
    endpoints to judge. Nothing when the space makes no UDP or several ports are undeclared."""
    if not (space.makes_udp and space.supports(MULTI_PORT)):
        return []
    events: list[Event] = []
    ready = [s for s in state.services.values() if has_dual_protocol_port(s)]
    open_ = [s for s in state.services.values() if _can_add_udp(s)]
    free = [n for n in SERVICE_NAMES if n not in state.services]
    if ready:
        service = data.draw(st.sampled_from(sorted(ready, key=lambda s: s.name)), label="dual")
    elif open_:
        service = data.draw(st.sampled_from(sorted(open_, key=lambda s: s.name)), label="tcp")
        first = service.ports[0]
        events.append(
            AddServicePort(service.name, UDP_PORT_NAME, first.port, UDP_PORT_NAME, Protocol.UDP)
        )
    elif free:
        group = data.draw(st.sampled_from(GROUPS), label="group")
        name = data.draw(st.sampled_from(free), label="name")
        created = CreateDualProtocolService(name, labels_of({"app": group}))
        events.append(created)
        service = created.apply(state).service(name)
    else:
        return []
    return events + _populated(data, _apply_all(state, events), service, PROXY_NODE)


def _can_add_udp(service: Service) -> bool:
    """Whether a `udp` port on the first port's number can be added to `service`."""
    first = service.ports[0]
    return first.protocol == Protocol.TCP.value and all(
        p.name != UDP_PORT_NAME and (p.port, p.protocol) != (first.port, Protocol.UDP.value)
        for p in service.ports
    )


RECIPES: dict[str, Recipe] = {
    "usable-0": no_endpoint,
    "usable-1": one_endpoint,
    "usable-2-6": some_endpoints,
    "usable-7+": many_endpoints,
    "terminating-fallback": fallback,
    "terminating-not-serving": not_serving,
    "local-no-local-endpoints": no_local,
    "local-only-terminating": local_only_terminating,
    "publish-not-ready-toggled": toggled_publish,
    "affinity-idle-past-timeout": idle_clients,
    "affinity-backend-removed": removed_backend,
    "vip-reused": reused_vip,
    "named-port-per-pod": named_ports,
    "pod-ip-reused": reused_ip,
    "selector-widened": reselected,
    "selector-narrowed": reselected,
    "evicted-pod": evicted,
    "proxy-restarted": restarted,
    "stale-snapshot": stale_shown,
    "unobserved-changes": unobserved,
    "out-of-window": out_of_window,
    "long-lived-through-change": held_through_change,
    "multi-port-named": multi_port_pods,
    "hairpin": one_endpoint,  # a pod client then reaches itself on every request
    "source-ip-checked": some_endpoints,
    "opted-out": opted_out,
    "opt-out-removed": opt_out_removed,
    "udp-flow-through-change": udp_flow_changed,
    "changed-while-down": changed_while_down,
    "seen-from-every-node": spread_over_nodes,
    "dual-protocol-port": dual_protocol,
    "node-port-reached": node_port_reached,
    "udp-node-port-reached": udp_node_port_reached,
    "external-local-no-local-endpoints": external_local_no_local,
    "load-balancer-reached": load_balancer_reached,
    "external-ip-reached": external_ip_reached,
    "health-check-only-terminating": health_only_terminating,
    "topology-narrowed": topology_narrowed,
    "sctp-reached": sctp_reached,
}


def draw_recipe(
    data: st.DataObject, feature: str, state: ClusterState, space: EventSpace
) -> list[Event]:
    """The events of `feature`'s recipe from `state` (none if it has no recipe, or the state
    has no Service to work on)."""
    recipe = RECIPES.get(feature)
    if recipe is None or not state.services:
        return []
    events: list[Any] = recipe(data, state, space)
    return events
