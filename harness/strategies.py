"""Hypothesis strategies for valid events, one generator per event kind.

Every event kind has a generator: `applies(state, space)` says whether the kind can happen in the
current model state, and `strategy(state, space)` is a strategy of valid events of that kind,
drawn from what the state holds (existing pods, Services, terminating pods). `draw_event` picks a
kind among the enabled ones that apply and draws one event of it, so every drawn sequence is valid
on the model by construction. The search (`harness.search`) draws sequences this way, one event
at a time against the runner's model state.

`EventSpace` sets the sizes, the time scales and the odds of each choice: on simulated time (the
model) waits, grace periods and affinity timeouts may be minutes or hours; on real time they are
kept to seconds, with affinity timeouts of 1-3 s so that expiry is reached cheaply. Odds are
given by repetition (a value listed three times is drawn three times as often); the swarm
(`harness.swarm`) narrows them to aim at rare states.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from harness.checks.affinity import TIMEOUT_SLACK_S
from harness.events import (
    ADMIN_PORT,
    FIRST_PORT,
    MAX_STALE_BACK,
    MAX_WHILE_DOWN,
    MULTI_PORTS,
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
    DrainNode,
    Event,
    EvictPod,
    MovePod,
    OutOfWindow,
    PodExit,
    Probe,
    RemoveServicePort,
    RestartPod,
    RestartProxy,
    Scale,
    SetAffinity,
    SetExternalIPs,
    SetExternalTrafficPolicy,
    SetLabel,
    SetPortProtocol,
    SetPublishNotReady,
    SetReady,
    SetSelector,
    SetServiceLabel,
    SetServicePort,
    SetServiceType,
    SetTrafficDistribution,
    SetTrafficPolicy,
    StaleSnapshot,
    UnobservedChanges,
    Wait,
)
from harness.features import (
    EXTERNAL_IPS,
    EXTERNAL_TRAFFIC_POLICY,
    HEALTH_CHECK_NODE_PORT,
    INTERNAL_TRAFFIC_POLICY,
    LOAD_BALANCER,
    MULTI_PORT,
    NODE_PORT,
    OPT_OUT_LABELS_FEATURE,
    SCTP_FEATURE,
    TOPOLOGY,
    UDP_FEATURE,
)
from harness.model.objects import (
    HEADLESS_LABEL,
    OPT_OUT_LABELS,
    PROXY_NODE,
    SERVICE_PROXY_NAME_LABEL,
    TRAFFIC_DISTRIBUTIONS,
    Affinity,
    Labels,
    Pod,
    Protocol,
    Service,
    ServiceType,
    TrafficPolicy,
    labels_of,
)
from harness.model.state import ClusterState, external_ip_address
from harness.traffic import CLIENTS

GROUPS = ("web", "api")
TIERS = ("front", "back")
SERVICE_NAMES = ("svc-a", "svc-b", "svc-c")
POD_NAMES = tuple(f"p-{i}" for i in range(8))


OTHER_NODE = "node-2"
EXPIRY_MARGIN_S = 0.1
"""A wait meant to outlast an affinity timeout lasts timeout + TIMEOUT_SLACK_S + this."""


def space_nodes(nodes: Sequence[str]) -> tuple[str, ...]:
    """The `EventSpace.nodes` draw for a target whose pods may go on `nodes` (node-1 first):
    node-1, where the clients are, three times as likely as each other node (today's odds for
    two nodes)."""
    return (nodes[0],) * 3 + tuple(nodes[1:])


@dataclass(frozen=True)
class EventSpace:
    """Bounds and odds of generated sequences. `simulated` selects the time scales.

    `nodes`, `policies`, `affinities` and `http_ports` are drawn uniformly (repeat a value to
    make it likelier); `long_graces` keeps graceful deletes long (pods stay terminating for the
    rest of a real-time example); `short_affinity` keeps affinity timeouts short enough to wait
    out; `restarts_proxy` False never draws `RestartProxy` (a target that cannot restart its
    proxy: `harness.targets.base.restart_unsupported`), `shows_stale` False never `StaleSnapshot`
    (`stale_unsupported`), `hides_updates` False never `UnobservedChanges`
    (`unobserved_unsupported`), `sends_out_of_window` False never `OutOfWindow`
    (`out_of_window_unsupported`), `changes_while_down` True (the aim at `changed-while-down`
    narrows to it; only where `hides_updates` too) lets a restart carry changes made while the
    proxy is down (`RestartProxy.while_down`; off by default, so that other examples draw
    exactly what they drew before it existed); `features` are the conformance features
    the implementation declares (`harness.features`; None: every one), and no event that
    exercises an undeclared one is drawn (`for_features`), so a failure is never the result of
    asking for what the implementation said it does not do. `udp` True (the target sends UDP:
    `sends_udp`) lets a Service be created with a UDP port (one in `UDP_ODDS`, so TCP coverage
    is not starved; all with `udp_only`, an aim's narrowing) and pods with a UDP container port,
    when the `udp` feature is declared too (`makes_udp`). `sctp` True (the target sends SCTP:
    `sends_sctp`) likewise lets one Service in `SCTP_ODDS` be created with an SCTP port and pods
    get an SCTP container port, when `sctp` is declared too (`makes_sctp`); off, nothing more
    is drawn, so runs without it draw what they drew before. Where `multi-port` is supported,
    one created Service in `multi_port_odds` has several ports, and multi-port pods serve
    `admin` on one of `admin_ports`; where it is not, no Service of several ports, no pod
    serving `admin` and no port change is drawn.
    """

    max_pods: int = 50
    max_services: int = 3
    max_replicas: int = 8
    simulated: bool = True
    nodes: tuple[str, ...] = (PROXY_NODE, PROXY_NODE, PROXY_NODE, OTHER_NODE)
    policies: tuple[TrafficPolicy, ...] = (TrafficPolicy.CLUSTER,) * 3 + (TrafficPolicy.LOCAL,)
    affinities: tuple[Affinity, ...] = (Affinity.NONE,) * 3 + (Affinity.CLIENT_IP,)
    http_ports: tuple[int, ...] = (8080, 8081)
    long_graces: bool = False
    short_affinity: bool = False
    restarts_proxy: bool = True
    admin_ports: tuple[int, ...] = (9090, 9091)
    multi_port_odds: int = 4
    shows_stale: bool = True
    hides_updates: bool = True
    features: frozenset[str] | None = None
    udp: bool = False
    udp_only: bool = False
    sctp: bool = False
    sctp_only: bool = False  # an aim's narrowing: every Service created is SCTP
    sends_out_of_window: bool = True
    changes_while_down: bool = False
    cuts_api: bool = False  # draw `RestartProxy(api_only=True)` (the target can cut them)

    def supports(self, feature: str) -> bool:
        """Whether events exercising the conformance feature `feature` may be drawn."""
        return self.features is None or feature in self.features

    def for_features(self, supported: frozenset[str]) -> EventSpace:
        """This space for an implementation declaring `supported`: the odds and choices that
        would exercise an undeclared feature are taken out (internalTrafficPolicy Local; an
        opt-out label on a Service, `SetServiceLabel`)."""
        return replace(self, features=supported)

    @property
    def makes_udp(self) -> bool:
        """Whether UDP Services are drawn: the target sends UDP and `udp` is declared."""
        return self.udp and self.supports(UDP_FEATURE)

    @property
    def makes_sctp(self) -> bool:
        """Whether SCTP Services are drawn: the target sends SCTP and `sctp` is declared."""
        return self.sctp and self.supports(SCTP_FEATURE)

    @property
    def policy_choices(self) -> tuple[TrafficPolicy, ...]:
        """`policies` without Local when internalTrafficPolicy is undeclared (never empty)."""
        if self.supports(INTERNAL_TRAFFIC_POLICY):
            return self.policies
        return tuple(p for p in self.policies if p != TrafficPolicy.LOCAL) or (
            TrafficPolicy.CLUSTER,
        )

    @property
    def waits_s(self) -> tuple[float, ...]:
        return (1.0, 31.0, 301.0) if self.simulated else (0.1, 0.6)

    @property
    def graces_s(self) -> tuple[float, ...]:
        if self.long_graces:
            return (300.0,) if self.simulated else (30.0,)
        return (0.0, 30.0, 300.0) if self.simulated else (0.0, 0.5, 30.0)

    @property
    def affinity_timeouts_s(self) -> tuple[int, ...]:
        short = (10, 60) if self.simulated else (1, 2, 3)
        return short if self.short_affinity else (*short, 10800)


Applies = Callable[[ClusterState, EventSpace], bool]
Key = Callable[[ClusterState], tuple[Any, ...]]
Build = Callable[[tuple[Any, ...], EventSpace], st.SearchStrategy[Event]]


@dataclass(frozen=True)
class Generator:
    """How one event kind is generated: `applies` guards it; `key` extracts from the state the
    names the kind draws from (a tuple, so that strategies are built once per distinct key and
    cached); `build` makes the strategy from that key."""

    applies: Applies
    key: Key
    build: Build

    def strategy(self, state: ClusterState, space: EventSpace) -> st.SearchStrategy[Event]:
        return _cached_strategy(self, self.key(state), space)


@lru_cache(maxsize=4096)
def _cached_strategy(
    generator: Generator, key: tuple[Any, ...], space: EventSpace
) -> st.SearchStrategy[Event]:
    return generator.build(key, space)


def _of(cls: type[Event], *parts: st.SearchStrategy[Any]) -> st.SearchStrategy[Event]:
    """`cls(*drawn parts)`: cheaper than st.builds, which inspects signatures on every draw."""
    return st.tuples(*parts).map(lambda values: cls(*values))


def _mostly(usual: Any, *others: Any) -> st.SearchStrategy[Any]:
    """`usual` three times as often as each of `others`; shrinks towards `usual`."""
    return st.sampled_from([usual, usual, usual, *others])


def selectors() -> st.SearchStrategy[Labels]:
    app = st.sampled_from(GROUPS)
    plain = app.map(lambda g: labels_of({"app": g}))
    tiered = st.tuples(app, st.sampled_from(TIERS)).map(
        lambda gt: labels_of({"app": gt[0], "tier": gt[1]})
    )
    return st.one_of(plain, tiered)


def _services(state: ClusterState) -> tuple[str, ...]:
    return tuple(sorted(state.services))


def _pod_names(
    state: ClusterState, keep: Callable[[Pod], bool] = lambda p: True
) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in state.pods.values() if keep(p)))


def _alive(pod: Pod) -> bool:
    return not pod.phase.terminal and not pod.terminating


def _time_matters(state: ClusterState) -> bool:
    """Whether letting time pass can change anything: a grace period or an affinity timeout is
    running. On real time a wait costs its length, so it is only generated then."""
    return any(p.terminating for p in state.pods.values()) or bool(_affinity_timeouts(state))


def _affinity_timeouts(state: ClusterState) -> tuple[int, ...]:
    return tuple(
        sorted(
            {
                s.affinity_timeout_s
                for s in state.services.values()
                if s.session_affinity == Affinity.CLIENT_IP
            }
        )
    )


def _waits(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """The space's waits, and for each running affinity timeout short enough to wait out, one
    just past it (timeout + slack + margin), so expiry is reached in one event."""
    (timeouts,) = key
    past = tuple(t + TIMEOUT_SLACK_S + EXPIRY_MARGIN_S for t in timeouts if t <= 60)
    return _of(Wait, st.sampled_from(space.waits_s + past))


def _room(state: ClusterState, space: EventSpace) -> int:
    return space.max_pods - len(state.pods)


def _create_service(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """Services target the named port `http`, which pods serve on 8080 or 8081, so named ports
    resolve per pod. A numeric targetPort is not generated: pointing it at a port a pod does
    not serve fails every proxy alike (the pod's fault, not the proxy's); the model's numeric
    resolution is covered by unit tests."""
    (taken,) = key
    services = _of(
        CreateService,
        st.sampled_from([n for n in SERVICE_NAMES if n not in taken]),
        selectors(),
        st.just("http"),
        st.sampled_from(space.affinities),
        st.sampled_from(space.affinity_timeouts_s),
        _mostly(False, True),
        st.sampled_from(space.policy_choices),
    )
    return _with_sctp(_with_protocol(services, space), space)


UDP_ODDS = 8
"""With `EventSpace.makes_udp`, one Service in this many is created with a UDP port."""


def _with_protocol(
    services: st.SearchStrategy[Event], space: EventSpace
) -> st.SearchStrategy[Event]:
    """With `space.makes_udp`, some Services get a UDP port that targets the pods' `udp` port (all
    of them with `udp_only`, an aim's narrowing); without it, the strategy as it was."""
    if not space.makes_udp:
        return services
    odds = [Protocol.UDP] if space.udp_only else [Protocol.TCP] * (UDP_ODDS - 1) + [Protocol.UDP]
    return st.tuples(services, st.sampled_from(odds)).map(_udp_service)


def _udp_service(drawn: tuple[Event, Protocol]) -> Event:
    event, protocol = drawn
    if protocol == Protocol.TCP or not isinstance(event, CreateService):
        return event
    return replace(event, protocol=protocol, target_port=UDP_PORT_NAME)


SCTP_ODDS = 12
"""With `EventSpace.makes_sctp`, one Service in this many is created with an SCTP port (rarely:
TCP and UDP keep their coverage)."""


def _with_sctp(services: st.SearchStrategy[Event], space: EventSpace) -> st.SearchStrategy[Event]:
    """With `space.makes_sctp` (and not `udp_only`, an aim at UDP), one Service in `SCTP_ODDS`
    (every one with `sctp_only`, an aim's narrowing) is made SCTP, targeting the pods' `sctp`
    port (the last of the draw's values, so that shrinking, toward the first, keeps a failure's
    Services as they were drawn before SCTP); without it, the strategy as it was (no extra
    draw)."""
    if not space.makes_sctp or space.udp_only:
        return services
    last = 0 if space.sctp_only else SCTP_ODDS - 1  # `sctp_only`: every one
    return st.tuples(services, st.integers(0, last)).map(
        lambda drawn: (
            replace(drawn[0], protocol=Protocol.SCTP, target_port=SCTP_PORT_NAME)
            if drawn[1] == last and isinstance(drawn[0], CreateService)
            else drawn[0]
        )
    )


def _with_sctp_port(pods: st.SearchStrategy[Event], space: EventSpace) -> st.SearchStrategy[Event]:
    """With `space.makes_sctp`, a created pod serves SCTP on its http port number half the
    time; without it, the strategy as it was (no extra draw)."""
    if not space.makes_sctp:
        return pods
    return _with_pod_port(pods, lambda pod: replace(pod, sctp_port=pod.http_port))


def _with_pod_port(
    pods: st.SearchStrategy[Event], give: Callable[[CreatePod], CreatePod]
) -> st.SearchStrategy[Event]:
    """A created pod gets a further container port (`give`) half the time."""
    return st.tuples(pods, st.booleans()).map(
        lambda drawn: give(drawn[0]) if drawn[1] and isinstance(drawn[0], CreatePod) else drawn[0]
    )


def _with_udp_port(pods: st.SearchStrategy[Event], space: EventSpace) -> st.SearchStrategy[Event]:
    """With `space.makes_udp`, a created pod serves UDP on its http port number half the time."""
    if not space.makes_udp:
        return pods
    return _with_pod_port(pods, lambda pod: replace(pod, udp_port=pod.http_port))


def _create_pod(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    (taken,) = key
    labels = st.dictionaries(
        st.sampled_from(["app", "tier"]), st.sampled_from(GROUPS + TIERS), min_size=1
    ).map(labels_of)
    pods = _of(
        CreatePod,
        st.sampled_from([n for n in POD_NAMES if n not in taken]),
        labels,
        _mostly(True, False),
        st.sampled_from(space.nodes),
        st.sampled_from(space.http_ports),
    )
    return _with_sctp_port(_with_udp_port(pods, space), space)


def _move_pod(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """A live pod (`key`: their names and nodes) made anew on another of the space's nodes."""
    nodes = sorted(set(space.nodes))
    return st.sampled_from(key[0]).flatmap(
        lambda pod: _of(
            MovePod, st.just(pod[0]), st.sampled_from([n for n in nodes if n != pod[1]])
        )
    )


def _no_key(state: ClusterState) -> tuple[Any, ...]:
    return ()


def _service_key(state: ClusterState) -> tuple[Any, ...]:
    return (_services(state),)


def _on_named(cls: type[Event], *parts: Callable[[EventSpace], st.SearchStrategy[Any]]) -> Build:
    """Events whose first field is one of the names in the key (a Service or a pod)."""
    return lambda key, sp: _of(cls, st.sampled_from(key[0]), *(part(sp) for part in parts))


def _has_services(state: ClusterState, space: EventSpace) -> bool:
    return bool(state.services)


# -- several ports (issue 12, item 3) -------------------------------------------------------------
SERVICE_PORT_NUMBERS = (80, 81, 82, 8000, 8080)
"""The numbers a `SetServicePort` moves a port to (each unique among the Service's ports)."""
TARGET_PORT_NAMES = ("http", ADMIN_PORT)
"""The targetPorts a `SetServicePort` sets: container port names only. A numeric targetPort is
not generated, for the reason `_create_service` gives."""


def _extended(
    cls: type[Event], base: st.SearchStrategy[Event], name: str, values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Event]:
    """Events of `cls`, a subclass of the class of `base`'s events, with every field `base`
    drew and the further field `name` drawn from `values` (shrinks as `base` does)."""
    return st.tuples(base, values).map(
        lambda drawn: cls(
            **{f.name: getattr(drawn[0], f.name) for f in fields(drawn[0])}, **{name: drawn[1]}
        )
    )


def _create_multi_port_service(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """A Service as `_create_service` draws it, of 2 or 3 of `MULTI_PORTS`."""
    counts = st.sampled_from(range(2, len(MULTI_PORTS) + 1))
    single = _create_service(key, replace(space, sctp=False))  # its ports are TCP's
    return _extended(CreateMultiPortService, single, "port_count", counts)


def _create_some_service(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """A Service of one port, or, one time in `multi_port_odds` where the space allows, of
    several (shrinks towards one port)."""
    single = _create_service(key, space)
    if not space.supports(MULTI_PORT):
        return single
    return st.one_of(
        *[single] * (space.multi_port_odds - 1), _create_multi_port_service(key, space)
    )


def _create_multi_port_pod(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """A pod as `_create_pod` draws it that also serves `admin` on one of `admin_ports`."""
    admin = st.sampled_from(space.admin_ports)
    return _extended(CreateMultiPortPod, _create_pod(key, space), "admin_port", admin)


def _service_ports(state: ClusterState) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    """Each Service with its TCP ports (name, number): only those are moved, since the
    targetPorts drawn (`TARGET_PORT_NAMES`) name TCP container ports; a Service without one is
    left out."""
    found = (
        (name, tuple((p.name, p.port) for p in service.ports if p.protocol == "TCP"))
        for name, service in sorted(state.services.items())
    )
    return tuple((name, ports) for name, ports in found if ports)


def _set_service_port(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """One port of one Service moved to a number no other port of it uses, and pointed at a
    container port name."""
    (services,) = key
    choices = [
        (name, port_name, number)
        for name, ports in services
        for port_name, _ in ports
        for number in SERVICE_PORT_NUMBERS
        if all(n != number for other, n in ports if other != port_name)
    ]
    return st.tuples(st.sampled_from(choices), st.sampled_from(TARGET_PORT_NAMES)).map(
        lambda drawn: SetServicePort(drawn[0][0], drawn[0][1], drawn[0][2], drawn[1])
    )


# -- one number on TCP and UDP, ports added, removed and changed in protocol (issue 12, item 3) ----
ADDED_PORT_NAMES = ("extra", UDP_PORT_NAME)
"""The names an `AddServicePort` gives (each only where the Service lacks it; `udp` to UDP
ports only)."""
TARGET_BY_PROTOCOL = {
    Protocol.TCP: "http",
    Protocol.UDP: UDP_PORT_NAME,
    Protocol.SCTP: SCTP_PORT_NAME,
}
"""The container port a port of each protocol targets: pods serve `http` over TCP and `udp`
over UDP (`harness.events.SCALED_PORTS`, `CreatePod.udp_port`)."""


def _protocols(space: EventSpace) -> tuple[Protocol, ...]:
    """The protocols a port event may give a port: UDP only where the space makes UDP."""
    return (Protocol.TCP, Protocol.UDP) if space.makes_udp else (Protocol.TCP,)


def _taken(service: Service) -> frozenset[tuple[int, str]]:
    return frozenset((p.port, p.protocol) for p in service.ports)


def _ports_key(state: ClusterState) -> tuple[Any, ...]:
    """Each Service with its ports (name, number, protocol), in order."""
    return (
        tuple(
            (name, tuple((p.name, p.port, p.protocol) for p in service.ports))
            for name, service in sorted(state.services.items())
        ),
    )


def _port_additions(
    services: tuple[tuple[str, tuple[tuple[str, int, str], ...]], ...], space: EventSpace
) -> list[Event]:
    """Every `AddServicePort` the space allows on these Services: a free name, a number free
    for its protocol (the first port's number on the other protocol first, so shrinking
    prefers the same number on TCP and UDP)."""
    added: list[Event] = []
    for name, ports in services:
        names = {port_name for port_name, _, _ in ports}
        taken = {(number, protocol) for _, number, protocol in ports}
        for port_name in ADDED_PORT_NAMES:
            if port_name in names:
                continue
            for protocol in reversed(_protocols(space)):
                if port_name == UDP_PORT_NAME and protocol != Protocol.UDP:
                    continue  # a port named `udp` is a UDP one
                for number in (ports[0][1], *SERVICE_PORT_NUMBERS):
                    if (number, protocol.value) not in taken:
                        target = TARGET_BY_PROTOCOL[protocol]
                        added.append(AddServicePort(name, port_name, number, target, protocol))
    return list(dict.fromkeys(added))


def _port_removals(
    services: tuple[tuple[str, tuple[tuple[str, int, str], ...]], ...],
) -> list[Event]:
    """Every `RemoveServicePort`: any port but the first."""
    return [
        RemoveServicePort(name, port_name)
        for name, ports in services
        for port_name, _, _ in ports
        if port_name != FIRST_PORT
    ]


def _protocol_changes(
    services: tuple[tuple[str, tuple[tuple[str, int, str], ...]], ...],
) -> list[Event]:
    """Every `SetPortProtocol` that keeps (number, protocol) unique: a port but the first to
    the other protocol, targeting that protocol's container port."""
    changes: list[Event] = []
    for name, ports in services:
        taken = {(number, protocol) for _, number, protocol in ports}
        for port_name, number, protocol in ports:
            other = Protocol.TCP if protocol == Protocol.UDP.value else Protocol.UDP
            if port_name != FIRST_PORT and (number, other.value) not in taken:
                target = TARGET_BY_PROTOCOL[other]
                changes.append(SetPortProtocol(name, port_name, other, target))
    return changes


def _create_dual_protocol_service(
    key: tuple[Any, ...], space: EventSpace
) -> st.SearchStrategy[Event]:
    """A Service as `_create_service` draws a TCP one, with `udp` 80/UDP beside `http` 80/TCP."""
    tcp = _create_service(key, replace(space, udp=False, sctp=False))
    return tcp.map(
        lambda event: CreateDualProtocolService(
            **{f.name: getattr(event, f.name) for f in fields(event)}
        )
    )


def _dual_applies(state: ClusterState, space: EventSpace) -> bool:
    """Dual-protocol Services need UDP made (`makes_udp`) and several ports supported."""
    return space.makes_udp and space.supports(MULTI_PORT)


OPT_OUT_VALUES = {SERVICE_PROXY_NAME_LABEL: "other-proxy", HEADLESS_LABEL: "true"}
"""The value each opt-out label is set to (any value opts out; `service-proxy-name` names
another proxy)."""


def _opt_out_key(state: ClusterState) -> tuple[Any, ...]:
    """Each Service with the opt-out label it carries (None: none)."""
    return (
        tuple(
            (name, next((k for k, _ in service.labels if k in OPT_OUT_LABELS), None))
            for name, service in sorted(state.services.items())
        ),
    )


def _set_service_label(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """Always a change: a labelled Service loses its label, another gets one of the two
    (service-proxy-name first, so that shrinking prefers it)."""

    def flip(entry: tuple[str, str | None]) -> st.SearchStrategy[Event]:
        name, label = entry
        if label is not None:
            return st.just(SetServiceLabel(name, label, None))
        return st.sampled_from(OPT_OUT_LABELS).map(
            lambda chosen: SetServiceLabel(name, chosen, OPT_OUT_VALUES[chosen])
        )

    return st.sampled_from(key[0]).flatmap(flip)


def _typed_key(state: ClusterState) -> tuple[Any, ...]:
    """Services by type: every one, and those reached from outside (NodePort, LoadBalancer, or
    with externalIPs)."""
    external = tuple(sorted(n for n, s in state.services.items() if s.externally_accessible))
    return (_services(state), external)


def _set_service_type(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    types = [ServiceType.NODE_PORT, ServiceType.CLUSTER_IP]
    if space.supports(LOAD_BALANCER) or space.supports(HEALTH_CHECK_NODE_PORT):
        types.append(ServiceType.LOAD_BALANCER)
    return _of(SetServiceType, st.sampled_from(key[0]), st.sampled_from(types))


EXTERNAL_IP_CHOICES = 4
"""externalIPs are drawn among the first few addresses of EXTERNAL_IP_CIDR."""


def external_ip_options(state: ClusterState) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per Service, the externalIPs it may be given: the first EXTERNAL_IP_CHOICES addresses
    that no other Service holds (`SetExternalIPs` refuses a shared one). Pure."""
    choices = [external_ip_address(i) for i in range(EXTERNAL_IP_CHOICES)]
    return tuple(
        (name, tuple(a for a in choices if state.external_ip_holder(a, besides=name) is None))
        for name in _services(state)
    )


def _set_external_ips(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """Zero to two of a Service's free externalIPs (`external_ip_options`)."""

    def addresses(entry: tuple[str, tuple[str, ...]]) -> st.SearchStrategy[Event]:
        name, free = entry
        if not free:
            return st.just(SetExternalIPs(name, ()))
        chosen = st.lists(st.sampled_from(free), max_size=2, unique=True)
        return chosen.map(lambda drawn: SetExternalIPs(name, tuple(drawn)))

    return st.sampled_from(key[0]).flatmap(addresses)


def _distribution_key(state: ClusterState) -> tuple[Any, ...]:
    """Each Service with its trafficDistribution (None: unset)."""
    return (tuple((n, s.traffic_distribution) for n, s in sorted(state.services.items())),)


def _set_traffic_distribution(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """Always a change: an unset one gets a value (PreferClose first, so that shrinking prefers
    it), a set one is cleared or given the other value."""

    def change(entry: tuple[str, str | None]) -> st.SearchStrategy[Event]:
        name, current = entry
        values = [v for v in (*TRAFFIC_DISTRIBUTIONS, None) if v != current]
        return st.sampled_from(values).map(lambda value: SetTrafficDistribution(name, value))

    return st.sampled_from(key[0]).flatmap(change)


def _unobserved_key(state: ClusterState) -> tuple[Any, ...]:
    """What `UnobservedChanges` draws from: single-port Services (recreated whole), the free
    Service names, the live pods and the scaled groups with their sizes."""
    services = tuple(sorted((n, s) for n, s in state.services.items() if len(s.ports) == 1))
    free = tuple(n for n in SERVICE_NAMES if n not in state.services)
    pods = tuple(sorted((p.name, p) for p in state.pods.values() if _alive(p)))
    groups = tuple((g, len(state.group_pods(g))) for g in GROUPS if state.group_pods(g))
    return (services, free, pods, groups)


def _unobserved_applies(key: tuple[Any, ...]) -> bool:
    services, free, pods, groups = key
    return bool((services and free) or any(n in POD_NAMES for n, _ in pods) or groups)


def recreated(service: Service, name: str | None = None) -> CreateService:
    """The `CreateService` that makes single-port `service` again (under `name`, or its own)."""
    port = service.ports[0]
    return CreateService(
        name or service.name,
        service.selector,
        port.target_port,
        service.session_affinity,
        service.affinity_timeout_s,
        service.publish_not_ready_addresses,
        service.internal_traffic_policy,
        Protocol(port.protocol),
    )


def _unobserved(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """Changes the proxy's watch misses, each pattern one a relist collapses into an update:
    a Service deleted and created again with another VIP (a new Service took its old one
    meanwhile), a pod deleted and created again under its name, a group scaled to 0 and back.
    (Changes that cancel out, as a readiness flip and back, show the proxy nothing at all.)"""
    services, free, pods, groups = key
    options: list[st.SearchStrategy[Event]] = []
    for name, service in services:  # created again with its own VIP, nothing would change
        if free:
            moved = (DeleteService(name), recreated(service, free[0]), recreated(service))
            options.append(st.just(UnobservedChanges(moved)))
    for name, pod in pods:
        ports = {p.name: p.port for p in pod.ports}
        if name in POD_NAMES and set(ports) <= {"http"}:
            again_pod = CreatePod(
                name, pod.labels, node=pod.node, http_port=ports.get("http", 8080)
            )
            options.append(st.just(UnobservedChanges((DeletePod(name, 0.0), again_pod))))
    for group, replicas in groups:
        node = space.nodes[0]
        options.append(st.just(UnobservedChanges((Scale(group, 0), Scale(group, replicas, node)))))
    return st.one_of(options) if options else st.nothing()


WHILE_DOWN_ODDS = 3
"""One restart in this many makes changes while the proxy is down (where the target can)."""


def while_down_options(state: ClusterState) -> tuple[tuple[str, Event], ...]:
    """The changes a restart may make while the proxy is down, each with the group (or pod) it
    touches, so that changes to different ones always apply together in any order: a live pod
    deleted at once or its readiness flipped (kubernetes#19029, #105657), a scaled group
    scaled to 0 or by one more. Pure."""
    options: list[tuple[str, Event]] = []
    for pod in sorted(state.pods.values(), key=lambda p: p.name):
        if _alive(pod):
            touched = dict(pod.labels).get("app", pod.name)
            options.append((touched, DeletePod(pod.name, 0.0)))
            options.append((touched, SetReady(pod.name, not pod.ready)))
    for group in GROUPS:
        size = len(state.group_pods(group))
        if size:
            options += [(group, Scale(group, 0)), (group, Scale(group, size + 1))]
    return tuple(options)


def _restart_proxy(key: tuple[Any, ...], space: EventSpace) -> st.SearchStrategy[Event]:
    """A plain restart, or (one in `WHILE_DOWN_ODDS`, where the space asks for changes while
    down, `changes_while_down`, and the target can hold changes from its proxy:
    `hides_updates`) one with 1 to MAX_WHILE_DOWN changes to different groups or pods made
    while the proxy is down (`RestartProxy.while_down`); shrinks to a plain one. A plain
    restart draws nothing (`st.just`)."""
    plain: st.SearchStrategy[Event] = st.just(RestartProxy())
    options = [
        o for o in key[0] if not isinstance(o[1], Scale) or o[1].replicas <= space.max_replicas
    ]
    if not (space.changes_while_down and space.hides_updates) or not options:
        return plain
    changes = st.lists(
        st.sampled_from(options), min_size=1, max_size=MAX_WHILE_DOWN, unique_by=lambda o: o[0]
    )
    down = changes.map(lambda chosen: RestartProxy(tuple(change for _, change in chosen)))
    return st.one_of(*[plain] * (WHILE_DOWN_ODDS - 1), down)


GENERATORS: dict[str, Generator] = {
    "create_service": Generator(
        lambda s, sp: len(s.services) < min(sp.max_services, len(SERVICE_NAMES)),
        _service_key,
        _create_some_service,
    ),
    "delete_service": Generator(_has_services, _service_key, _on_named(DeleteService)),
    "set_selector": Generator(
        _has_services, _service_key, _on_named(SetSelector, lambda sp: selectors())
    ),
    "set_affinity": Generator(
        _has_services,
        _service_key,
        _on_named(
            SetAffinity,
            lambda sp: st.sampled_from(sp.affinities),
            lambda sp: st.sampled_from(sp.affinity_timeouts_s),
        ),
    ),
    "set_publish_not_ready": Generator(
        _has_services, _service_key, _on_named(SetPublishNotReady, lambda sp: st.booleans())
    ),
    "set_traffic_policy": Generator(
        _has_services,
        _service_key,
        _on_named(SetTrafficPolicy, lambda sp: st.sampled_from(sp.policy_choices)),
    ),
    "set_service_label": Generator(
        lambda s, sp: sp.supports(OPT_OUT_LABELS_FEATURE) and bool(s.services),
        _opt_out_key,
        _set_service_label,
    ),
    "scale": Generator(
        lambda s, sp: _room(s, sp) > 0,
        lambda s: (len(s.pods),),
        lambda key, sp: _of(
            Scale,
            st.sampled_from(GROUPS),
            st.integers(0, min(sp.max_replicas, sp.max_pods - key[0])),
            st.sampled_from(sp.nodes),
        ),
    ),
    "create_pod": Generator(
        lambda s, sp: _room(s, sp) > 0 and any(n not in s.pods for n in POD_NAMES),
        lambda s: (frozenset(s.pods),),
        _create_pod,
    ),
    "delete_pod": Generator(
        lambda s, sp: any(_alive(p) for p in s.pods.values()),
        lambda s: (_pod_names(s, _alive),),
        _on_named(DeletePod, lambda sp: st.sampled_from(sp.graces_s)),
    ),
    "pod_exit": Generator(
        lambda s, sp: any(p.terminating for p in s.pods.values()),
        lambda s: (_pod_names(s, lambda p: p.terminating),),
        _on_named(PodExit),
    ),
    "restart_pod": Generator(
        lambda s, sp: bool(s.pods),
        lambda s: (_pod_names(s),),
        _on_named(RestartPod, lambda sp: st.booleans()),
    ),
    "set_label": Generator(
        lambda s, sp: any(_alive(p) for p in s.pods.values()),
        lambda s: (_pod_names(s, _alive),),
        _on_named(
            SetLabel,
            lambda sp: st.sampled_from(["app", "tier"]),
            lambda sp: st.none() | st.sampled_from(GROUPS + TIERS),
        ),
    ),
    "set_ready": Generator(  # always a flip: a readiness "change" to the same value tests nothing
        lambda s, sp: any(not p.phase.terminal for p in s.pods.values()),
        lambda s: (
            tuple(sorted((p.name, p.ready) for p in s.pods.values() if not p.phase.terminal)),
        ),
        lambda key, sp: st.sampled_from(key[0]).map(lambda pod: SetReady(pod[0], not pod[1])),
    ),
    "evict_pod": Generator(
        lambda s, sp: any(_alive(p) for p in s.pods.values()),
        lambda s: (_pod_names(s, _alive),),
        _on_named(EvictPod),
    ),
    "wait": Generator(
        lambda s, sp: sp.simulated or _time_matters(s),
        lambda s: (_affinity_timeouts(s),),
        _waits,
    ),
    "restart_proxy": Generator(
        lambda s, sp: sp.restarts_proxy and bool(s.services),
        lambda s: (while_down_options(s),),
        _restart_proxy,
    ),
    "stale_snapshot": Generator(
        lambda s, sp: sp.shows_stale and bool(s.services),
        _no_key,
        lambda key, sp: _of(StaleSnapshot, st.integers(1, MAX_STALE_BACK)),
    ),
    "set_service_type": Generator(
        lambda s, sp: sp.supports(NODE_PORT) and bool(s.services),
        _typed_key,
        _set_service_type,
    ),
    "set_external_traffic_policy": Generator(
        lambda s, sp: sp.supports(EXTERNAL_TRAFFIC_POLICY) and bool(_typed_key(s)[1]),
        _typed_key,
        lambda key, sp: _of(
            SetExternalTrafficPolicy,
            st.sampled_from(key[1]),
            st.sampled_from([TrafficPolicy.CLUSTER, TrafficPolicy.LOCAL]),
        ),
    ),
    "set_external_ips": Generator(
        lambda s, sp: sp.supports(EXTERNAL_IPS) and bool(s.services),
        lambda s: (external_ip_options(s),),
        _set_external_ips,
    ),
    "set_traffic_distribution": Generator(
        lambda s, sp: sp.supports(TOPOLOGY) and bool(s.services),
        _distribution_key,
        _set_traffic_distribution,
    ),
    "unobserved_changes": Generator(
        lambda s, sp: sp.hides_updates and _unobserved_applies(_unobserved_key(s)),
        _unobserved_key,
        _unobserved,
    ),
    "out_of_window": Generator(
        lambda s, sp: sp.sends_out_of_window and any(_alive(p) for p in s.pods.values()),
        lambda s: (_pod_names(s, _alive),),
        _on_named(OutOfWindow),
    ),
    "probe": Generator(
        _has_services,
        lambda s: (_services(s), _affinity_services(s)),
        lambda key, sp: st.sampled_from(key[0]).flatmap(lambda name: _probe(name, key[1])),
    ),
    "create_multi_port_pod": Generator(
        lambda s, sp: sp.supports(MULTI_PORT) and GENERATORS["create_pod"].applies(s, sp),
        lambda s: (frozenset(s.pods),),
        _create_multi_port_pod,
    ),
    "set_service_port": Generator(
        lambda s, sp: sp.supports(MULTI_PORT) and bool(_service_ports(s)),
        lambda s: (_service_ports(s),),
        _set_service_port,
    ),
    "create_dual_protocol_service": Generator(
        lambda s, sp: _dual_applies(s, sp) and GENERATORS["create_service"].applies(s, sp),
        _service_key,
        _create_dual_protocol_service,
    ),
    "add_service_port": Generator(
        lambda s, sp: sp.supports(MULTI_PORT) and bool(_port_additions(_ports_key(s)[0], sp)),
        _ports_key,
        lambda key, sp: st.sampled_from(_port_additions(key[0], sp)),
    ),
    "remove_service_port": Generator(
        lambda s, sp: sp.supports(MULTI_PORT) and bool(_port_removals(_ports_key(s)[0])),
        _ports_key,
        lambda key, sp: st.sampled_from(_port_removals(key[0])),
    ),
    "set_port_protocol": Generator(
        lambda s, sp: _dual_applies(s, sp) and bool(_protocol_changes(_ports_key(s)[0])),
        _ports_key,
        lambda key, sp: st.sampled_from(_protocol_changes(key[0])),
    ),
    "move_pod": Generator(
        lambda s, sp: len(set(sp.nodes)) > 1 and any(_alive(p) for p in s.pods.values()),
        lambda s: (tuple(sorted((p.name, p.node) for p in s.pods.values() if _alive(p))),),
        _move_pod,
    ),
    "drain_node": Generator(
        lambda s, sp: any(_alive(p) for p in s.pods.values()),
        lambda s: (tuple(sorted({p.node for p in s.pods.values() if _alive(p)})),),
        lambda key, sp: _of(DrainNode, st.sampled_from(key[0]), st.sampled_from(sp.graces_s)),
    ),
    "cut_api_connection": Generator(  # last: where it is off, no other draw changes
        lambda s, sp: sp.cuts_api and bool(s.services),
        _no_key,
        lambda key, sp: st.just(RestartProxy(api_only=True)),
    ),
}


def _affinity_services(state: ClusterState) -> frozenset[str]:
    return frozenset(
        n for n, s in state.services.items() if s.session_affinity == Affinity.CLIENT_IP
    )


def _probe(service: str, affinity_services: frozenset[str]) -> st.SearchStrategy[Event]:
    """Probes of a ClientIP Service mostly come from the first client's many addresses (affinity
    expiry is judged over the same addresses before and after a wait); other probes from one
    client, kept alive a quarter of the time."""
    single = _of(Probe, st.just(service), st.sampled_from(CLIENTS), _mostly(False, True))
    if service not in affinity_services:
        return single
    many = st.just(Probe(service, CLIENTS[0], False, True))
    return st.one_of(many, many, many, single)


def draw_event(
    data: st.DataObject, state: ClusterState, space: EventSpace, kinds: Collection[str]
) -> Event | None:
    """One valid event of an enabled kind that applies in `state`, or None if none applies."""
    applicable = [k for k in GENERATORS if k in kinds and GENERATORS[k].applies(state, space)]
    if not applicable:
        return None
    kind = data.draw(st.sampled_from(applicable), label="kind")
    return data.draw(GENERATORS[kind].strategy(state, space), label=kind)


@st.composite
def event_sequences(
    draw: st.DrawFn, space: EventSpace | None = None, max_events: int = 20
) -> list[Event]:
    """A valid sequence of up to `max_events` events from an empty cluster (for replay tests)."""
    space = space or EventSpace()
    state = ClusterState()
    events: list[Event] = []
    for _ in range(draw(st.integers(0, max_events))):
        kinds = [k for k, g in GENERATORS.items() if g.applies(state, space)]
        kind = draw(st.sampled_from(kinds))
        event = draw(GENERATORS[kind].strategy(state, space))
        state = event.apply(state)
        events.append(event)
    return events
