"""Deliberately broken targets: each breaks exactly one promise of the reference model.

The harness's worth is that it catches broken proxies, so every mutant here must fail the suite's
`quick` profile (tests/core/test_mutants.py asserts it, and the mutation report records each
shrunk counterexample). They are named `mutant:NAME` on the command line. Each overrides one hook
of `ModelTarget`. Several break a state the search must reach on purpose (`harness.coverage`):
the terminating fallback, the Local policy's edges, affinity expiry and removal, many endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from types import MappingProxyType

from harness.errors import UsageError
from harness.events import Event, RestartPod
from harness.model.endpoints import unique_endpoints
from harness.model.objects import (
    PROXY_NODE,
    Destination,
    Endpoint,
    EndpointSlice,
    Phase,
    Pod,
    Service,
    TrafficPolicy,
)
from harness.model.state import ClusterState
from harness.registry import TargetOptions
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample


class KeepsDeletedEndpoints(ModelTarget):
    """Never forgets a pod once it existed: deleted and killed pods stay ready endpoints."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._graveyard: dict[str, Pod] = {}

    def apply(self, event: Event) -> None:
        before = dict(self.state.pods)
        super().apply(event)
        for name, pod in before.items():
            if name not in self.state.pods and not pod.phase.terminal:
                self._graveyard[name] = replace(pod, deletion_deadline_s=None, ready=True)

    def reset(self) -> None:
        super().reset()
        self._graveyard.clear()

    def perceived(self, state: ClusterState) -> ClusterState:
        pods = {**self._graveyard, **state.pods}
        return replace(state, pods=MappingProxyType(pods))


class IgnoresReadiness(ModelTarget):
    """Treats every pod as Ready."""

    def perceived(self, state: ClusterState) -> ClusterState:
        pods = {n: replace(p, ready=True) for n, p in state.pods.items()}
        return replace(state, pods=MappingProxyType(pods))


class KeepsOldIncarnation(ModelTarget):
    """After a restart keeps routing to the pod's first incarnation."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._first_uid: dict[str, str] = {}

    def apply(self, event: Event) -> None:
        if isinstance(event, RestartPod):
            self._first_uid.setdefault(event.pod, self.state.pod(event.pod).uid)
        super().apply(event)

    def reset(self) -> None:
        super().reset()
        self._first_uid.clear()

    def perceived(self, state: ClusterState) -> ClusterState:
        pods = {n: replace(p, uid=self._first_uid.get(n, p.uid)) for n, p in state.pods.items()}
        return replace(state, pods=MappingProxyType(pods))


class IgnoresSelectorChanges(ModelTarget):
    """Keeps every Service on the selector it was created with."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self._original: dict[str, Service] = {}

    def reset(self) -> None:
        super().reset()
        self._original.clear()

    def perceived(self, state: ClusterState) -> ClusterState:
        for name in list(self._original):
            if name not in state.services:
                del self._original[name]
        services = {}
        for name, service in state.services.items():
            first = self._original.setdefault(name, service)
            services[name] = replace(service, selector=first.selector)
        return replace(state, services=MappingProxyType(services))


class FirstEndpoint(ModelTarget):
    """Sends every connection to the first usable endpoint."""

    def choose(self, destinations: Sequence[Destination]) -> Destination:
        return destinations[0]


class WrongProbabilityChain(ModelTarget):
    """kube-proxy's statistic chain written with 1/n on every rule instead of 1/(n-i): rule i
    matches with 1/n of what is left, and the last endpoint takes the remainder."""

    def choose(self, destinations: Sequence[Destination]) -> Destination:
        n = len(destinations)
        for destination in destinations[:-1]:
            if self._random.random() < 1.0 / n:
                return destination
        return destinations[-1]


class IgnoresAffinity(ModelTarget):
    """Balances ClientIP Services as if they had no affinity."""

    def affinity_applies(self, service: Service) -> bool:
        return False


class LateProgramming(ModelTarget):
    """Applies every change to its data plane 5 s after the deadline."""

    def __init__(self, seed: int = 0, delay_s: float = 35.0) -> None:
        super().__init__(seed)
        self.delay_s = delay_s
        self._pending: list[tuple[float, Event]] = []
        self._programmed = ClusterState()

    def apply(self, event: Event) -> None:
        super().apply(event)
        self._pending.append((self.clock.now() + self.delay_s, event))

    def reset(self) -> None:
        super().reset()
        self._pending.clear()
        self._programmed = ClusterState()

    def perceived(self, state: ClusterState) -> ClusterState:
        now = self.clock.now()
        while self._pending and self._pending[0][0] <= now:
            self._programmed = self._pending.pop(0)[1].apply(self._programmed)
        return self._programmed


class ListsEvictedPods(ModelTarget):
    """Keeps evicted (Failed) pods as endpoints, the bug of kubernetes#109414."""

    def perceived(self, state: ClusterState) -> ClusterState:
        pods = {
            n: replace(p, phase=Phase.RUNNING, ready=True) if p.phase == Phase.FAILED else p
            for n, p in state.pods.items()
        }
        return replace(state, pods=MappingProxyType(pods))


class TimesOutWhenEmpty(ModelTarget):
    """Drops connections to a Service without endpoints instead of rejecting them."""

    def on_no_endpoints(self, connection: int, request: TrafficRequest, drops: bool) -> Outcome:
        return Outcome(None, ErrorKind.TIMEOUT, request.timeout_s * 1000, connection)


class RejectsWhereUpstreamDrops(ModelTarget):
    """REJECTs connections to an internalTrafficPolicy=Local Service whose endpoints are all on
    other nodes, where kube-proxy DROPs them ("has no local endpoints"): what this harness's
    own model and proxies did before issue 15."""

    def on_no_endpoints(self, connection: int, request: TrafficRequest, drops: bool) -> Outcome:
        return super().on_no_endpoints(connection, request, False)


def _categorized(
    slices: Sequence[EndpointSlice],
    service: Service,
    port: str,
    fallback: Callable[[Endpoint], bool] | None,
    local_fallback_to_cluster: bool = False,
    node: str = PROXY_NODE,
) -> list[Destination]:
    """`CategorizeEndpoints` from `node` with a replaceable fallback rule (None: no fallback),
    for mutants."""
    candidates = unique_endpoints(slices)
    if service.internal_traffic_policy == TrafficPolicy.LOCAL:
        local = [(e, s) for e, s in candidates if e.node == node]
        candidates = local if local or not local_fallback_to_cluster else candidates
    chosen = [(e, s) for e, s in candidates if e.ready]
    if not chosen and fallback is not None:
        chosen = [(e, s) for e, s in candidates if fallback(e)]
    found = []
    for endpoint, endpoint_slice in chosen:
        number = endpoint_slice.port_for(port)
        if number is not None:
            found.append(Destination(endpoint.backend, endpoint.address, number, endpoint.node))
    return sorted(found, key=lambda d: d.backend)


def _serving_terminating(endpoint: Endpoint) -> bool:
    return endpoint.serving and endpoint.terminating


class NoTerminatingFallback(ModelTarget):
    """Never falls back to serving, terminating endpoints: REJECTs once no endpoint is ready
    (ignores KEP-1669)."""

    def usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str
    ) -> list[Destination]:
        return _categorized(slices, service, port, None, node=self.node)


class FallsBackToUnserving(ModelTarget):
    """Falls back to every terminating endpoint, serving or not."""

    def usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str
    ) -> list[Destination]:
        return _categorized(slices, service, port, lambda e: e.terminating, node=self.node)


class LocalFallsBackToCluster(ModelTarget):
    """internalTrafficPolicy Local without local endpoints uses the other nodes' endpoints."""

    def usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str
    ) -> list[Destination]:
        return _categorized(slices, service, port, _serving_terminating, True, self.node)


class CapsEndpoints(ModelTarget):
    """Balances over at most the first six usable endpoints, as a proxy with a fixed-size
    backend table would."""

    limit = 6

    def usable(
        self, slices: Sequence[EndpointSlice], service: Service, port: str
    ) -> list[Destination]:
        return super().usable(slices, service, port)[: self.limit]


class AffinityNeverExpires(ModelTarget):
    """ClientIP affinity ignores timeoutSeconds: a client stays on its backend for good."""

    def keeps_affinity(
        self,
        stuck_to: Destination,
        destinations: Sequence[Destination],
        idle_s: float,
        service: Service,
    ) -> bool:
        return stuck_to in destinations


class KeepsAffinityToRemoved(ModelTarget):
    """Keeps a ClientIP client on its backend after the backend stopped being usable, while
    the affinity timeout runs (kubernetes#71809 did so until the persistence expired)."""

    def keeps_affinity(
        self,
        stuck_to: Destination,
        destinations: Sequence[Destination],
        idle_s: float,
        service: Service,
    ) -> bool:
        return idle_s <= service.affinity_timeout_s


class IgnoresPublishNotReady(ModelTarget):
    """Ignores publishNotReadyAddresses: unready pods never get traffic."""

    def perceived(self, state: ClusterState) -> ClusterState:
        services = {
            n: replace(s, publish_not_ready_addresses=False) for n, s in state.services.items()
        }
        return replace(state, services=MappingProxyType(services))


class KeepsRemovedPorts(ModelTarget):
    """Keeps serving a port removed from a Service (or moved to another protocol), from the
    Service's endpoints, as a proxy that adds and updates service ports but never deletes one
    would (upstream keys them by name and protocol, `ServicePortName`)."""

    def send(self, request: TrafficRequest) -> TrafficSample:
        return super().send(replace(request, removed_port=None))


MUTANTS: dict[str, type[ModelTarget]] = {
    "keeps-deleted": KeepsDeletedEndpoints,
    "ignores-readiness": IgnoresReadiness,
    "keeps-old-incarnation": KeepsOldIncarnation,
    "ignores-selector-changes": IgnoresSelectorChanges,
    "first-endpoint": FirstEndpoint,
    "wrong-probability-chain": WrongProbabilityChain,
    "ignores-affinity": IgnoresAffinity,
    "late-programming": LateProgramming,
    "lists-evicted": ListsEvictedPods,
    "times-out-when-empty": TimesOutWhenEmpty,
    "rejects-where-upstream-drops": RejectsWhereUpstreamDrops,
    "no-terminating-fallback": NoTerminatingFallback,
    "falls-back-to-unserving": FallsBackToUnserving,
    "local-falls-back-to-cluster": LocalFallsBackToCluster,
    "caps-endpoints": CapsEndpoints,
    "affinity-never-expires": AffinityNeverExpires,
    "keeps-affinity-to-removed": KeepsAffinityToRemoved,
    "ignores-publish-not-ready": IgnoresPublishNotReady,
    "keeps-removed-ports": KeepsRemovedPorts,
}


class MutantTarget:
    """Factory for `mutant:NAME` targets."""

    description = f"deliberately broken model targets: {', '.join(MUTANTS)}"

    @classmethod
    def from_spec(cls, arg: str | None, options: TargetOptions) -> ModelTarget:
        if arg not in MUTANTS:
            raise UsageError(
                f"unknown mutant {arg!r}; use mutant:NAME with NAME one of {', '.join(MUTANTS)}"
            )
        target = MUTANTS[arg](seed=int(options.extra.get("seed", 0)))
        target.name = f"mutant:{arg}"
        return target
