"""Upstream's own unit-test tables, as data, run against the model.

The model is the oracle, so it must agree with the tables upstream checks its own code against.
Each case below is cited by its upstream test function and case name and restates that case's
inputs and expected outputs in the model's terms (written here as data, not copied code):

- `TestPodToEndpoint`: kubernetes `staging/src/k8s.io/endpointslice/utils_test.go` (formerly
  `pkg/controller/endpointslice/utils_test.go`), run against `endpoint_for`;
- `TestShouldPodBeInEndpoints`: kubernetes `pkg/controller/util/endpoint/controller_utils_test.go`
  (the table after PR #110255, where a Failed pod is never listed), run against `pod_is_listed`;
- `TestCategorizeEndpoints`: kubernetes `pkg/proxy/topology_test.go`, run against
  `usable_destinations` (the model's `CategorizeEndpoints`), its zone-hint cases against
  `categorize_endpoints` with the case's node zone (`HINT_CASES`).

Every distinct case name of those tables is either represented here or listed in
`NOT_REPRESENTED` with the reason; `test_the_lists_account_for_every_upstream_case` keeps the two
lists honest. A represented case the model disagrees with is a model bug.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from harness.model.endpoints import (
    categorize_endpoints,
    drops_new_connections,
    endpoint_for,
    external_destinations,
    has_any_endpoints,
    pod_is_listed,
    usable_destinations,
)
from harness.model.objects import (
    PROXY_NODE,
    ZONES,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Phase,
    Pod,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    labels_of,
)

POD_TO_ENDPOINT = "TestPodToEndpoint"
SHOULD_POD_BE_IN_ENDPOINTS = "TestShouldPodBeInEndpoints"
CATEGORIZE_ENDPOINTS = "TestCategorizeEndpoints"

SELECTOR = labels_of({"app": "web"})
OTHER_NODE = "node-2"


def service(
    publish_not_ready: bool = False, policy: TrafficPolicy = TrafficPolicy.CLUSTER
) -> Service:
    return Service(
        "svc",
        "10.96.0.10",
        SELECTOR,
        ports=(ServicePort("http", 80, 80),),
        publish_not_ready_addresses=publish_not_ready,
        internal_traffic_policy=policy,
    )


# -- TestPodToEndpoint --------------------------------------------------------------------------
# Upstream's fixture: one pod on node-1 at 1.2.3.5, with or without its Ready condition and
# deletionTimestamp; a Service with or without publishNotReadyAddresses; in some cases a Node
# object whose topology labels give the endpoint its zone. The model knows every node's zone, so
# the zone is compared only where upstream passes a Node (upstream's zone name there is the
# node's label; the model's node-1 is in its zone-a).


@dataclass(frozen=True)
class PodToEndpointCase:
    name: str
    pod_ready: bool
    pod_terminating: bool
    publish_not_ready: bool
    node_given: bool
    ready: bool
    serving: bool
    terminating: bool


POD_TO_ENDPOINT_CASES = [
    # upstream's table lists "Ready pod" twice with the same inputs; it is one case here
    PodToEndpointCase("Ready pod", True, False, False, False, True, True, False),
    PodToEndpointCase(
        "Ready pod + publishNotReadyAddresses", True, False, True, False, True, True, False
    ),
    PodToEndpointCase("Unready pod", False, False, False, False, False, False, False),
    PodToEndpointCase(
        "Unready pod + publishNotReadyAddresses", False, False, True, False, True, False, False
    ),
    PodToEndpointCase("Ready pod + node labels", True, False, False, True, True, True, False),
    PodToEndpointCase("Ready terminating pod", True, True, False, False, False, True, True),
    PodToEndpointCase("Not ready terminating pod", False, True, False, False, False, False, True),
]


def upstream_pod(ready: bool, terminating: bool) -> Pod:
    return Pod(
        "pod1",
        "uid-1",
        "1.2.3.5",
        SELECTOR,
        ready=ready,
        deletion_deadline_s=30.0 if terminating else None,
        node="node-1",
    )


@pytest.mark.parametrize("case", POD_TO_ENDPOINT_CASES, ids=lambda c: c.name)
def test_pod_to_endpoint(case: PodToEndpointCase) -> None:
    pod = upstream_pod(case.pod_ready, case.pod_terminating)
    endpoint = endpoint_for(pod, service(case.publish_not_ready))
    assert (endpoint.ready, endpoint.serving, endpoint.terminating) == (
        case.ready,
        case.serving,
        case.terminating,
    )
    assert (endpoint.address, endpoint.node, endpoint.pod, endpoint.uid) == (
        "1.2.3.5",
        "node-1",
        "pod1",
        "uid-1",
    )
    if case.node_given:
        assert endpoint.zone == ZONES["node-1"] == "zone-a"


def test_the_pod_to_endpoint_table_catches_serving_that_follows_publish_not_ready() -> None:
    """The table is sensitive to the bug it was added for: `serving = publishNotReadyAddresses
    or Ready` (this model's rule until now) disagrees with at least one upstream case."""

    def old_serving(case: PodToEndpointCase) -> bool:
        return case.publish_not_ready or case.pod_ready

    assert [c.name for c in POD_TO_ENDPOINT_CASES if old_serving(c) != c.serving] == [
        "Unready pod + publishNotReadyAddresses"
    ]


# -- TestShouldPodBeInEndpoints -----------------------------------------------------------------
# The model's `pod_is_listed` is `ShouldPodBeInEndpoints(pod, includeTerminating=true)` (what the
# EndpointSlice controller passes) plus the selector match, so every pod here matches the
# Service. The restartPolicy in upstream's case names is not modelled: since PR #110255 a pod in
# a terminal phase is left out whatever its restartPolicy.


@dataclass(frozen=True)
class ListedCase:
    name: str
    phase: Phase
    has_ip: bool
    terminating: bool
    listed: bool


NO_IP = (False, False, False)  # no IP, not terminating, not listed
SHOULD_POD_BE_IN_ENDPOINTS_CASES = [
    ListedCase("Failed pod with Never RestartPolicy", Phase.FAILED, True, False, False),
    ListedCase("Succeeded pod with Never RestartPolicy", Phase.SUCCEEDED, True, False, False),
    ListedCase("Succeeded pod with OnFailure RestartPolicy", Phase.SUCCEEDED, True, False, False),
    ListedCase("Empty Pod IPs, Running pod with OnFailure RestartPolicy", Phase.RUNNING, *NO_IP),
    ListedCase("Failed pod with Always RestartPolicy", Phase.FAILED, True, False, False),
    ListedCase("Pending pod with Never RestartPolicy", Phase.PENDING, True, False, True),
    ListedCase("Running pod with Never RestartPolicy", Phase.RUNNING, True, False, True),
    ListedCase("Terminating Pod with includeTerminating=true", Phase.RUNNING, True, True, True),
]


@pytest.mark.parametrize("case", SHOULD_POD_BE_IN_ENDPOINTS_CASES, ids=lambda c: c.name)
def test_should_pod_be_in_endpoints(case: ListedCase) -> None:
    pod = Pod(
        "pod1",
        "uid-1",
        "1.2.3.4" if case.has_ip else None,
        SELECTOR,
        phase=case.phase,
        deletion_deadline_s=30.0 if case.terminating else None,
    )
    assert pod_is_listed(pod, service()) is case.listed
    # publishNotReadyAddresses does not change whether a pod is listed (#109414, PR #110255)
    assert pod_is_listed(pod, service(publish_not_ready=True)) is case.listed


# -- TestCategorizeEndpoints --------------------------------------------------------------------
# The model covers ClusterIP traffic only: kube-proxy sends it to `clusterEndpoints` under
# internalTrafficPolicy Cluster and to `localEndpoints` under Local, and that set is compared
# with the model's usable destinations. For a case whose Service is externally accessible only
# its ClusterIP half is represented here (`external_half_not_represented`); the cases with zone
# hints are run apart, with the node's zone they give (`HINT_CASES`, below). The
# ProxyTerminatingEndpoints gate (the table's `pteEnabled`) is GA and always on in the model.
# Upstream's endpoints without a `serving` value are not serving.
#
# `has_any` is upstream's hasAnyEndpoints (its allEndpoints is non-empty, or the case says only
# remote endpoints exist): kube-proxy REJECTs a Service without any endpoints, and DROPs when it
# has some but none is usable from this node. The model's `has_any_endpoints` must agree.


@dataclass(frozen=True)
class Ep:
    address: str
    ready: bool
    serving: bool = False
    terminating: bool = False
    local: bool = False
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategorizeCase:
    name: str
    local_policy: bool
    endpoints: tuple[Ep, ...]
    usable: frozenset[str]
    has_any: bool
    external_half_not_represented: bool = False


def case(
    name: str,
    local_policy: bool,
    endpoints: list[Ep],
    usable: list[str],
    has_any: bool,
    external: bool = False,
) -> CategorizeCase:
    return CategorizeCase(
        name, local_policy, tuple(endpoints), frozenset(usable), has_any, external
    )


A0, A1, A2, A3 = "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"
CATEGORIZE_ENDPOINTS_CASES = [
    case(
        "internalTrafficPolicy: Local, topology ignored for Local endpoints",
        True,
        [
            Ep("10.1.2.3", True, local=True, hints=("zone-a",)),
            Ep("10.1.2.4", True, local=True, hints=("zone-b",)),
            Ep("10.1.2.5", True, hints=("zone-c",)),
            Ep("10.1.2.6", True, hints=("zone-a",)),
        ],
        ["10.1.2.3", "10.1.2.4"],
        True,
        external=True,
    ),
    case("internalTrafficPolicy: Local, with empty endpoints", True, [], [], False),
    case(
        "internalTrafficPolicy: Local, but all endpoints are remote",
        True,
        [Ep(A0, True), Ep(A1, True)],
        [],
        True,
    ),
    case(
        "internalTrafficPolicy: Local, all endpoints are local",
        True,
        [Ep(A0, True, local=True), Ep(A1, True, local=True)],
        [A0, A1],
        True,
    ),
    case(
        "internalTrafficPolicy: Local, some endpoints are local",
        True,
        [Ep(A0, True, local=True), Ep(A1, True)],
        [A0],
        True,
    ),
    case(
        "Cluster traffic policy, endpoints not Ready",
        False,
        [Ep(A0, False), Ep(A1, False)],
        [],
        False,
    ),
    case(
        "Cluster traffic policy, some endpoints are Ready",
        False,
        [Ep(A0, False), Ep(A1, True)],
        [A1],
        True,
    ),
    case(
        "Cluster traffic policy, all endpoints are terminating",
        False,
        [Ep(A0, False, True, True, local=True), Ep(A1, False, True, True)],
        [A0, A1],
        True,
    ),
    case(
        "iTP: Local, eTP: Cluster, some endpoints local",
        True,
        [Ep(A0, True, local=True), Ep(A1, True)],
        [A0],
        True,
        external=True,
    ),
    case(
        "iTP: Cluster, eTP: Local, some endpoints local",
        False,
        [Ep(A0, True, local=True), Ep(A1, True)],
        [A0, A1],
        True,
        external=True,
    ),
    case(
        "iTP: Local, eTP: Local, some endpoints local",
        True,
        [Ep(A0, True, local=True), Ep(A1, True)],
        [A0],
        True,
        external=True,
    ),
    case(
        "iTP: Local, eTP: Local, all endpoints remote",
        True,
        [Ep(A0, True), Ep(A1, True)],
        [],
        True,
        external=True,
    ),
    case(
        "iTP: Local, eTP: Local, all endpoints remote and terminating",
        True,
        [Ep(A0, False, True, True), Ep(A1, False, True, True)],
        [],
        True,
        external=True,
    ),
    case(
        "iTP: Cluster, eTP: Local, with terminating endpoints",
        False,
        [
            Ep(A0, True),
            Ep(A1, False, False, local=True),
            Ep(A2, False, True, True, local=True),
            Ep(A3, False, True, True),
        ],
        [A0],
        True,
        external=True,
    ),
    case(
        # eTP Local on a Service that is not externally accessible: nothing external to skip
        "externalTrafficPolicy ignored if not externally accessible",
        False,
        [Ep(A0, True), Ep(A1, True, local=True)],
        [A0, A1],
        True,
    ),
    case(
        "no cluster endpoints for iTP:Local internal-only service",
        True,
        [Ep(A0, True), Ep(A1, True, local=True)],
        [A1],
        True,
    ),
]


def model_slice(case: CategorizeCase) -> tuple[EndpointSlice, TrafficPolicy]:
    """The case's endpoints as one slice of port "http", and its traffic policy."""
    endpoints = tuple(
        Endpoint(
            address=e.address,
            pod=f"pod-{e.address}",
            uid=f"uid-{e.address}",
            node=PROXY_NODE if e.local else OTHER_NODE,
            zone=ZONES[PROXY_NODE if e.local else OTHER_NODE],
            ready=e.ready,
            serving=e.serving,
            terminating=e.terminating,
            zone_hints=e.hints,
        )
        for e in case.endpoints
    )
    endpoint_slice = EndpointSlice("svc", (EndpointPort("http", 80),), endpoints, name="svc-0")
    return endpoint_slice, TrafficPolicy.LOCAL if case.local_policy else TrafficPolicy.CLUSTER


def model_usable(case: CategorizeCase) -> frozenset[str]:
    endpoint_slice, policy = model_slice(case)
    found = usable_destinations([endpoint_slice], service(policy=policy), "http", PROXY_NODE)
    assert all(d.port == 80 for d in found)
    return frozenset(d.address for d in found)


@pytest.mark.parametrize("case", CATEGORIZE_ENDPOINTS_CASES, ids=lambda c: c.name)
def test_categorize_endpoints_usable(case: CategorizeCase) -> None:
    assert model_usable(case) == case.usable


@pytest.mark.parametrize("case", CATEGORIZE_ENDPOINTS_CASES, ids=lambda c: c.name)
def test_categorize_endpoints_rejects_only_without_any_endpoints(case: CategorizeCase) -> None:
    """Upstream REJECTs when hasAnyEndpoints is false and DROPs when it is true but nothing is
    usable here (Local policy, endpoints only elsewhere); the model decides the same."""
    endpoint_slice, policy = model_slice(case)
    assert has_any_endpoints([endpoint_slice], "http") is case.has_any
    drops = drops_new_connections([endpoint_slice], service(policy=policy), "http", PROXY_NODE)
    assert drops is (case.has_any and not case.usable)
    model_rejects = not model_usable(case) and not drops
    assert model_rejects is (not case.has_any)


# -- TestCategorizeEndpoints, the zone-hint cases ------------------------------------------------
# The node's zone label is given per case ("" for none: "empty node labels" and "empty zone
# label" alike). Every endpoint's hints are upstream's (the model's own hints are always the
# endpoint's zone: `with_hints`). `cluster` is upstream's clusterEndpoints (what ClusterIP
# traffic, and node-port traffic under externalTrafficPolicy Cluster, may use); `local` its
# localEndpoints where the case has externalTrafficPolicy Local (node-port traffic then, hints
# ignored), else None.


@dataclass(frozen=True)
class HintCase:
    name: str
    zone: str
    endpoints: tuple[Ep, ...]
    cluster: frozenset[str]
    local: frozenset[str] | None = None


def hint_case(
    name: str, zone: str, endpoints: list[Ep], cluster: list[str], local: list[str] | None = None
) -> HintCase:
    return HintCase(
        name,
        zone,
        tuple(endpoints),
        frozenset(cluster),
        None if local is None else frozenset(local),
    )


B3, B4, B5, B6 = "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"
ZA, ZB, ZC = ("zone-a",), ("zone-b",), ("zone-c",)
ONE_HINTED_A = [Ep(B3, True, hints=ZA)]


def hinted_abca(ready: tuple[bool, bool, bool, bool] = (True,) * 4) -> list[Ep]:
    """Upstream's usual four endpoints, .3 to .6, hinted for zones a, b, c, a."""
    addresses, hints = (B3, B4, B5, B6), (ZA, ZB, ZC, ZA)
    return [Ep(a, r, hints=h) for a, r, h in zip(addresses, ready, hints, strict=True)]


HINT_CASES = [
    hint_case(
        "should use topology since all endpoints have hints, node has a zone label and and "
        "there are endpoints for the node's zone",
        "zone-a",
        hinted_abca(),
        [B3, B6],
    ),
    hint_case(
        "externalTrafficPolicy: Local, topology ignored for Local endpoints",
        "zone-a",
        [
            Ep(B3, True, local=True, hints=ZA),
            Ep(B4, True, local=True, hints=ZB),
            Ep(B5, True, hints=ZC),
            Ep(B6, True, hints=ZA),
        ],
        [B3, B6],
        [B3, B4],
    ),
    hint_case("empty node labels", "", ONE_HINTED_A, [B3]),
    hint_case("empty zone label", "", ONE_HINTED_A, [B3]),
    hint_case("node in different zone, no endpoint filtering", "zone-b", ONE_HINTED_A, [B3]),
    hint_case(
        "unready endpoint",
        "zone-a",
        hinted_abca((True, True, True, False)),
        [B3],
    ),
    hint_case(
        "only unready endpoints in same zone (should not filter)",
        "zone-a",
        hinted_abca((False, True, True, False)),
        [B4, B5],
    ),
    hint_case(
        "missing hints, no filtering applied",
        "zone-a",
        [Ep(B3, True, hints=ZA), Ep(B4, True, hints=ZB), Ep(B5, True), Ep(B6, True, hints=ZA)],
        [B3, B4, B5, B6],
    ),
    hint_case(
        "multiple hints per endpoint, filtering includes any endpoint with zone included",
        "zone-c",
        [
            Ep(B3, True, hints=("zone-a", "zone-b", "zone-c")),
            Ep(B4, True, hints=("zone-b", "zone-c")),
            Ep(B5, True, hints=("zone-b", "zone-d")),
            Ep(B6, True, hints=ZC),
        ],
        [B3, B4, B6],
    ),
    hint_case(
        "conflicting topology and localness require merging allEndpoints",
        "zone-a",
        [
            Ep(A0, True, local=True, hints=ZA),
            Ep(A1, True, local=True, hints=ZB),
            Ep(A2, True, hints=ZA),
            Ep(A3, True, hints=ZB),
        ],
        [A0, A2],
        [A0, A1],
    ),
]


def hint_slice(hinted: HintCase) -> EndpointSlice:
    return model_slice(CategorizeCase(hinted.name, False, hinted.endpoints, frozenset(), True))[0]


@pytest.mark.parametrize("hinted", HINT_CASES, ids=lambda c: c.name)
def test_categorize_endpoints_with_zone_hints(hinted: HintCase) -> None:
    """clusterEndpoints follow the hints for the node's zone (all or nothing); localEndpoints
    (externalTrafficPolicy Local, at a node port) ignore them."""
    endpoint_slice = hint_slice(hinted)
    chosen = categorize_endpoints([endpoint_slice], service(), PROXY_NODE, "http", hinted.zone)
    assert frozenset(e.address for e, _ in chosen) == hinted.cluster
    if hinted.local is not None:
        external = replace(
            service(),
            type=ServiceType.NODE_PORT,
            external_traffic_policy=TrafficPolicy.LOCAL,
        )
        found = external_destinations([endpoint_slice], external, "http", PROXY_NODE)
        assert frozenset(d.address for d in found) == hinted.local


def test_the_model_node_zone_is_what_the_hint_cases_give_node_1() -> None:
    """The hint cases run with node-1 and an explicit zone; without one, node-1's own zone
    (zone-a) is used, so the first case chooses the same from the model's default."""
    endpoint_slice = hint_slice(HINT_CASES[0])
    chosen = usable_destinations([endpoint_slice], service(), "http", PROXY_NODE)
    assert frozenset(d.address for d in chosen) == HINT_CASES[0].cluster
    other = usable_destinations([endpoint_slice], service(), "http", OTHER_NODE)  # zone-b
    assert frozenset(d.address for d in other) == {B4}


# -- what is not represented yet ----------------------------------------------------------------
NOT_REPRESENTED: list[tuple[str, str, str]] = [
    (
        POD_TO_ENDPOINT,
        "Multi IP Ready pod + node labels",
        "dual-stack: the model's pods have one IPv4 address",
    ),
    (
        POD_TO_ENDPOINT,
        "Ready pod + hostname",
        "the model's endpoints have no hostname (pod hostname/subdomain)",
    ),
    (
        SHOULD_POD_BE_IN_ENDPOINTS,
        "Terminating Pod with includeTerminating=false",
        "the model derives EndpointSlices only, whose controller always includes terminating "
        "pods; includeTerminating=false is the Endpoints controller's",
    ),
    (
        SHOULD_POD_BE_IN_ENDPOINTS,
        "Unknown pod with OnFailure RestartPolicy",
        "the model has no Unknown pod phase",
    ),
    (
        SHOULD_POD_BE_IN_ENDPOINTS,
        "Multiple Pod IPs, Running pod with OnFailure RestartPolicy",
        "dual-stack: the model's pods have one IPv4 address",
    ),
]

# Distinct case names in the upstream tables read for this module (kubernetes/kubernetes:
# topology_test.go at 6c039d9075ef, utils_test.go at 168c15a3b354, controller_utils_test.go
# after PR #110255).
UPSTREAM_CASE_COUNTS = {
    POD_TO_ENDPOINT: 9,
    SHOULD_POD_BE_IN_ENDPOINTS: 11,
    CATEGORIZE_ENDPOINTS: 26,
}
REPRESENTED = {
    POD_TO_ENDPOINT: [c.name for c in POD_TO_ENDPOINT_CASES],
    SHOULD_POD_BE_IN_ENDPOINTS: [c.name for c in SHOULD_POD_BE_IN_ENDPOINTS_CASES],
    CATEGORIZE_ENDPOINTS: [c.name for c in CATEGORIZE_ENDPOINTS_CASES]
    + [c.name for c in HINT_CASES],
}


def test_the_lists_account_for_every_upstream_case() -> None:
    """Every upstream case is represented or listed as not represented, never both, never
    twice; each listing gives a reason."""
    for function, count in UPSTREAM_CASE_COUNTS.items():
        represented = REPRESENTED[function]
        missing = [name for f, name, _ in NOT_REPRESENTED if f == function]
        assert len(set(represented)) == len(represented), function
        assert len(set(missing)) == len(missing), function
        assert set(represented).isdisjoint(missing), function
        assert len(represented) + len(missing) == count, function
    assert {f for f, _, _ in NOT_REPRESENTED} <= set(UPSTREAM_CASE_COUNTS)
    assert all(reason.strip() for _, _, reason in NOT_REPRESENTED)


def test_the_drop_cases_are_the_local_policy_ones_with_only_remote_endpoints() -> None:
    """Upstream's table holds exactly three cases where kube-proxy DROPs (issue 15): the model
    must keep deciding them as DROP, and no other case."""
    dropped = {
        c.name
        for c in CATEGORIZE_ENDPOINTS_CASES
        if drops_new_connections(
            [model_slice(c)[0]], service(policy=model_slice(c)[1]), "http", PROXY_NODE
        )
    }
    assert dropped == {
        "internalTrafficPolicy: Local, but all endpoints are remote",
        "iTP: Local, eTP: Local, all endpoints remote",
        "iTP: Local, eTP: Local, all endpoints remote and terminating",
    }
