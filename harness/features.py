"""Conformance features: what a Service proxy implements, named once, and what a run says of each.

Modelled on the Gateway API's conformance profiles (`SupportedFeatures`, core and extended, and
its `ConformanceReport`): every implementation must support the **core** features; **extended**
features are optional and an implementation declares the ones it supports. A feature is judged
by the harness's properties (`harness.checks.PROPERTIES`) and, where it is a particular state,
shown exercised by the run's state coverage (`harness.coverage.FEATURES`).

Per feature a run gives one of:

- `passed`: supported, at least one of its properties passed, none of them failed for it, and
  (if it names coverage states) the run checked at least one of them;
- `failed`: supported, and a property behind it failed for it (see `attribute_failure`);
- `skipped`: supported, but this run did not judge it (its properties were skipped, not
  selected or not judged, or its states never reached); never counted as passed;
- `unsupported`: the implementation does not declare it; never passed, and a failure
  attributed only to unsupported features counts against none (it is listed as discounted);
- `not-tested`: no property of this harness version checks it yet.

Declarations (`declared_features`): an external proxy's `hello` reply may carry `features`; a
plug-in proxy class may set a `features` class attribute; a target may offer `features()`.
**Absent means core only**: an implementation is never credited with an extended feature it did
not claim. A target that runs no proxy of its own and offers no accessor (the model, a real
cluster) is judged on every feature. A declaration naming an unknown feature, or omitting a core
one, is a usage error (one line, exit 2).

Pure: reads names, events and results; changes nothing. Properties are named here by their
strings, not imported from `harness.checks`: proxies import this module to declare what they
support, and must not pull the checks (and scipy) in with it (tests/core/test_features.py checks
every name against `harness.checks.PROPERTIES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from harness.errors import UsageError
from harness.events import (
    AddServicePort,
    CreateDualProtocolService,
    CreateMultiPortPod,
    CreateMultiPortService,
    CreateService,
    Event,
    RemoveServicePort,
    SetAffinity,
    SetExternalIPs,
    SetExternalTrafficPolicy,
    SetPortProtocol,
    SetServiceLabel,
    SetServicePort,
    SetServiceType,
    SetTrafficDistribution,
    SetTrafficPolicy,
)
from harness.model.objects import Affinity, Protocol, ServiceType, TrafficPolicy

CORE = "core"
EXTENDED = "extended"
PROFILES = (CORE, EXTENDED)
NOT_TESTED = "not tested by this harness version"
INTERNAL_TRAFFIC_POLICY = "internal-traffic-policy"
OPT_OUT_LABELS_FEATURE = "opt-out-labels"
UDP_FEATURE = "udp"
SCTP_FEATURE = "sctp"
NOT_SUPPORTED = "not supported by the implementation"
MULTI_PORT = "multi-port"
NODE_PORT = "node-port"
LOAD_BALANCER = "load-balancer"
EXTERNAL_TRAFFIC_POLICY = "external-traffic-policy"
HEALTH_CHECK_NODE_PORT = "health-check-node-port"
EXTERNAL_IPS = "external-ips"
TOPOLOGY = "topology"


class FeatureStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"
    NOT_TESTED = "not-tested"


def _uses_local_policy(event: Event) -> bool:
    if isinstance(event, SetTrafficPolicy):
        return event.policy == TrafficPolicy.LOCAL
    return isinstance(event, CreateService) and (
        event.internal_traffic_policy == TrafficPolicy.LOCAL
    )


def _uses_udp(event: Event) -> bool:
    """A UDP Service, a UDP port added, or a port's protocol changed (to or from UDP)."""
    if isinstance(event, CreateDualProtocolService | SetPortProtocol):
        return True
    if isinstance(event, AddServicePort):
        return event.protocol == Protocol.UDP
    return isinstance(event, CreateService) and event.protocol == Protocol.UDP


def _uses_sctp(event: Event) -> bool:
    """An SCTP Service, an SCTP port added, or a port's protocol changed to SCTP."""
    if isinstance(event, AddServicePort | SetPortProtocol | CreateService):
        return event.protocol == Protocol.SCTP
    return False


def _uses_client_ip(event: Event) -> bool:
    if isinstance(event, SetAffinity | CreateService):
        return event.session_affinity == Affinity.CLIENT_IP
    return False


def _uses_several_ports(event: Event) -> bool:
    """A Service of several ports, a pod serving the second named port, a port change, a port
    added or removed, or a port's protocol changed."""
    several = (CreateMultiPortService, CreateMultiPortPod, SetServicePort, *PORT_EVENTS)
    return isinstance(event, several)


PORT_EVENTS = (CreateDualProtocolService, AddServicePort, RemoveServicePort, SetPortProtocol)
"""The events that give a Service further ports, take them away or change their protocol."""


def _uses_opt_out(event: Event) -> bool:
    return isinstance(event, SetServiceLabel)


def _uses_node_port(event: Event) -> bool:
    """A Service made NodePort or LoadBalancer (so it gets node ports)."""
    return isinstance(event, SetServiceType) and event.type != ServiceType.CLUSTER_IP


def _uses_load_balancer(event: Event) -> bool:
    """A Service made LoadBalancer (so it gets an ingress IP)."""
    return isinstance(event, SetServiceType) and event.type == ServiceType.LOAD_BALANCER


def _uses_external_ips(event: Event) -> bool:
    """A Service given externalIPs."""
    return isinstance(event, SetExternalIPs) and bool(event.addresses)


def _uses_external_local(event: Event) -> bool:
    return isinstance(event, SetExternalTrafficPolicy) and event.policy == TrafficPolicy.LOCAL


def _uses_topology(event: Event) -> bool:
    """A trafficDistribution set (so the Service's ready endpoints get zone hints)."""
    return isinstance(event, SetTrafficDistribution) and event.value is not None


@dataclass(frozen=True)
class Feature:
    """One named feature: its profile, what it means, the properties that judge it, the
    coverage states that show a run exercised it (empty: any run does), and `uses`, whether an
    event exercises it (None: no event is specific to it), which attributes failures."""

    name: str
    profile: str
    description: str
    properties: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    uses: Callable[[Event], bool] | None = None


UNTESTED_EXTENDED: Mapping[str, str] = {}
"""Extended features no property of this harness version checks yet (issue 11 and the next):
reported `not-tested`, never passed. A feature moves into `_FEATURES` with its properties when
a property judges it."""

_FEATURES: tuple[Feature, ...] = (
    Feature(
        "clusterip-tcp",
        CORE,
        "ClusterIP Services over TCP: new connections reach usable endpoints only, without"
        " errors, and changes are programmed within the deadline",
        ("no-stale-traffic", "availability", "programming-latency", "proxy-contract", "every-node"),
    ),
    Feature(
        "endpoints",
        CORE,
        "EndpointSlices list exactly the selected pods with the right conditions",
        ("endpoints",),
    ),
    Feature(
        "fairness",
        CORE,
        "new connections are spread uniformly over the usable endpoints",
        ("fairness", "exact-balance"),
    ),
    Feature(
        "session-affinity",
        CORE,
        "sessionAffinity ClientIP: a client stays on one usable endpoint until the timeout",
        ("affinity",),
        ("affinity-idle-past-timeout", "affinity-backend-removed"),
        _uses_client_ip,
    ),
    Feature(
        "reject-when-empty",
        CORE,
        "a Service without endpoints refuses new connections at once (REJECT)",
        ("reject-when-empty",),
        ("usable-0",),
    ),
    Feature(
        INTERNAL_TRAFFIC_POLICY,
        EXTENDED,
        "internalTrafficPolicy Local: only this node's endpoints, DROP when it has none (KEP-2086)",
        ("reject-when-empty", "no-stale-traffic", "availability", "every-node"),
        ("local-no-local-endpoints", "local-only-terminating", "seen-from-every-node"),
        _uses_local_policy,
    ),
    Feature(
        "long-lived-connections",
        EXTENDED,
        "established connections keep their backend through unrelated changes and proxy"
        " restarts, and are never moved to another backend (kubernetes#74839; Cilium's"
        " conn-disrupt)",
        ("long-lived-connections",),
        ("long-lived-through-change",),
    ),
    Feature(
        MULTI_PORT,
        EXTENDED,
        "Services of several ports, each programmed on its own: named targetPorts resolved per"
        " pod (a pod lacking the name left out of that port), port and targetPort changes",
        ("no-stale-traffic", "availability", "reject-when-empty", "exact-balance"),
        ("multi-port-named",),
        _uses_several_ports,
    ),
    Feature(
        "hairpin",
        EXTENDED,
        "a pod reaches itself through its own Service (its source masqueraded to the node;"
        ' e2e "should allow pods to hairpin back to themselves through services")',
        ("hairpin",),
        ("hairpin",),
    ),
    Feature(
        "source-ip",
        EXTENDED,
        "a pod's source IP is preserved for ClusterIP traffic to other pods (e2e \"should"
        ' preserve source pod IP for traffic thru service cluster IP")',
        ("source-ip",),
        ("source-ip-checked",),
    ),
    Feature(
        OPT_OUT_LABELS_FEATURE,
        EXTENDED,
        "Services labelled service.kubernetes.io/service-proxy-name or .../headless are not"
        " programmed (neither forwarded nor refused); removing the label programs them (I13)",
        ("reject-when-empty", "no-stale-traffic", "exact-balance", "programming-latency"),
        ("opted-out", "opt-out-removed"),
        _uses_opt_out,
    ),
    Feature(
        UDP_FEATURE,
        EXTENDED,
        "Services over UDP: every datagram of a new flow reaches a usable endpoint, REJECT"
        " without endpoints, fair per flow; a flow with a fixed 5-tuple follows its endpoint's"
        " removal and is never blackholed while one is usable (stale conntrack entries"
        " cleared: kubernetes#19029, #105657); the same port number on TCP and UDP served"
        " independently, removing or changing one protocol's port leaving the other's alone",
        (
            "no-stale-traffic",
            "availability",
            "reject-when-empty",
            "fairness",
            "long-lived-connections",
        ),
        ("udp-flow-through-change", "dual-protocol-port"),
        _uses_udp,
    ),
    Feature(
        SCTP_FEATURE,
        EXTENDED,
        "Services over SCTP where the kernel tracks and NATs SCTP: a new association's INIT"
        " reaches a usable endpoint, REJECT without endpoints, fair per association; an SCTP"
        " port and a TCP or UDP port of the same number served independently (the protocol is"
        " part of kube-proxy's ServicePortName)",
        ("no-stale-traffic", "availability", "reject-when-empty", "fairness"),
        ("sctp-reached",),
        _uses_sctp,
    ),
    Feature(
        NODE_PORT,
        EXTENDED,
        "type NodePort: the Service on every node's IP at its node port, from outside the"
        " cluster (externalTrafficPolicy Cluster: any usable endpoint; REJECT without endpoints)",
        ("node-port",),
        ("node-port-reached",),
        _uses_node_port,
    ),
    Feature(
        EXTERNAL_TRAFFIC_POLICY,
        EXTENDED,
        "externalTrafficPolicy Local: node-port traffic reaches only the node's own endpoints,"
        " with the client's source address kept, and is dropped on a node without any",
        ("node-port",),
        ("external-local-no-local-endpoints",),
        _uses_external_local,
    ),
    Feature(
        LOAD_BALANCER,
        EXTENDED,
        "type LoadBalancer: the Service at its ingress IP from outside the cluster, handed to any"
        " node, served as at that node's node port (externalTrafficPolicy alike)",
        ("node-port",),
        ("load-balancer-reached",),
        _uses_load_balancer,
    ),
    Feature(
        HEALTH_CHECK_NODE_PORT,
        EXTENDED,
        "healthCheckNodePort (LoadBalancer, externalTrafficPolicy Local) answers 200 with local"
        " ready endpoints, 503 otherwise, also while only terminating ones serve (I9), with"
        " their number; released with the policy",
        ("node-port",),
        ("health-check-only-terminating",),
        _uses_load_balancer,  # under Local a LoadBalancer gets a healthCheckNodePort
    ),
    Feature(
        EXTERNAL_IPS,
        EXTENDED,
        "spec.externalIPs (any Service type): the Service at each external IP from outside the"
        " cluster, handed to any node, served as at that node's node port"
        " (externalTrafficPolicy alike; REJECT without endpoints)",
        ("node-port",),
        ("external-ip-reached",),
        _uses_external_ips,
    ),
    Feature(
        TOPOLOGY,
        EXTENDED,
        "trafficDistribution PreferClose / PreferSameZone (KEP-4444, I11): a client on a node"
        " whose zone has hinted ready endpoints reaches only those, otherwise every usable"
        " endpoint; hints are all-or-nothing, and Local policies ignore them",
        ("every-node", "no-stale-traffic", "availability", "endpoints"),
        ("topology-narrowed",),
        _uses_topology,
    ),
    *(Feature(name, EXTENDED, description) for name, description in UNTESTED_EXTENDED.items()),
)

FEATURES: Mapping[str, Feature] = {feature.name: feature for feature in _FEATURES}
CORE_FEATURES = frozenset(f.name for f in _FEATURES if f.profile == CORE)
ALL_FEATURES = frozenset(FEATURES)


def declared_features(names: object, source: str) -> frozenset[str]:
    """The supported features a declaration names, core always included in the result; `names`
    None means none declared (core only). UsageError (one line naming `source`, the problem and
    the fix) for anything but a list of known names that includes every core feature."""
    if names is None:
        return CORE_FEATURES
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise UsageError(f"{source}: features must be a list of feature names, not {names!r}")
    given = list(names)
    unknown = sorted(str(n) for n in given if not isinstance(n, str) or n not in FEATURES)
    if unknown:
        raise UsageError(
            f"{source}: unknown feature(s) {', '.join(unknown)}; the features are:"
            f" {', '.join(FEATURES)}"
        )
    missing = sorted(CORE_FEATURES - set(given))
    if missing:
        raise UsageError(
            f"{source}: the declaration omits core feature(s) {', '.join(missing)}; every"
            " implementation must support the core profile (declare them, or leave features out"
            " for core only)"
        )
    return frozenset(given)


def attribute_failure(prop: str, counterexample: Sequence[Event]) -> frozenset[str]:
    """The features a failure of `prop` counts against: those judged by `prop` whose events
    appear in the shrunk counterexample (a REJECT failure of a sequence that sets Local policy
    is an internalTrafficPolicy failure), else those judged by `prop` that no event singles
    out (the core ones)."""
    judged = [f for f in _FEATURES if prop in f.properties]
    specific = {f.name for f in judged if f.uses and any(f.uses(e) for e in counterexample)}
    return frozenset(specific or {f.name for f in judged if f.uses is None})


@dataclass(frozen=True)
class PropertyOutcome:
    """What the report needs of one property's result: its status and counterexample."""

    name: str
    status: str
    counterexample: tuple[Event, ...] = ()


@dataclass(frozen=True)
class FeatureResult:
    """One feature's status in a run, why, and the properties behind it (name -> status)."""

    feature: Feature
    status: FeatureStatus
    reason: str
    properties: Mapping[str, str]
    discounted: tuple[str, ...] = ()


def judge_features(
    outcomes: Sequence[PropertyOutcome],
    supported: frozenset[str],
    checked: Mapping[str, int],
) -> list[FeatureResult]:
    """Every feature's status (see the module docstring) from the run's property outcomes,
    the implementation's `supported` features and the coverage `checked` counts. A failure
    attributed only to unsupported features is discounted: recorded on those features, counted
    against none."""
    by_name = {o.name: o for o in outcomes}
    blamed: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.status == "failed":
            for name in attribute_failure(outcome.name, outcome.counterexample):
                blamed.setdefault(name, []).append(outcome.name)
    return [
        _judge(f, by_name, supported, checked, tuple(blamed.get(f.name, ()))) for f in _FEATURES
    ]


def _judge(
    feature: Feature,
    by_name: Mapping[str, PropertyOutcome],
    supported: frozenset[str],
    checked: Mapping[str, int],
    blamed: tuple[str, ...],
) -> FeatureResult:
    statuses = {
        p: by_name[p].status if p in by_name else "not selected" for p in feature.properties
    }

    def result(
        status: FeatureStatus, reason: str, discounted: tuple[str, ...] = ()
    ) -> FeatureResult:
        return FeatureResult(feature, status, reason, statuses, discounted)

    if not feature.properties:
        return result(FeatureStatus.NOT_TESTED, NOT_TESTED)
    if feature.name not in supported:
        note = f"; failures discounted: {', '.join(blamed)}" if blamed else ""
        return result(FeatureStatus.UNSUPPORTED, NOT_SUPPORTED + note, blamed)
    if blamed:
        return result(FeatureStatus.FAILED, f"failed: {', '.join(blamed)}")
    elsewhere = [p for p, s in statuses.items() if s == "failed"]
    if elsewhere:
        return result(
            FeatureStatus.SKIPPED,
            f"{', '.join(elsewhere)} failed for another feature, so this one's part of it was"
            " not judged",
        )
    passed = [p for p, s in statuses.items() if s == "passed"]
    if not passed:
        return result(FeatureStatus.SKIPPED, "none of its properties was judged in this run")
    if feature.states and not any(checked.get(state, 0) for state in feature.states):
        return result(
            FeatureStatus.SKIPPED,
            f"the search never checked its states ({', '.join(feature.states)})",
        )
    return result(FeatureStatus.PASSED, f"passed: {', '.join(passed)}")


def unsupported_properties(supported: frozenset[str]) -> list[str]:
    """Properties every one of whose features is unsupported: such a property judges nothing the
    implementation claims, and is skipped with the reason `NOT_SUPPORTED`."""
    judging: dict[str, set[str]] = {}
    for feature in _FEATURES:
        for prop in feature.properties:
            judging.setdefault(prop, set()).add(feature.name)
    return sorted(p for p, names in judging.items() if not names & supported)


def unsupported_states(supported: frozenset[str]) -> frozenset[str]:
    """The coverage states that only undeclared features show: the search never aims at them
    (their events are not drawn), and the coverage table lists them as uncheckable."""
    wanted = {s for f in _FEATURES if f.name in supported for s in f.states}
    return frozenset(
        s for f in _FEATURES if f.name not in supported for s in f.states if s not in wanted
    )
