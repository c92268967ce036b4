"""Deliberately broken control planes for the local cluster: `mutant-controller:NAME[:PROXY]`.

Each replaces the local cluster's endpoint controller (`harness.local.controller`) with one that
derives EndpointSlices wrongly in one way, through the same plug-in point a third party would use
(`LocalTarget.controller_class`, the target registered under the `harness.targets` entry-point
group): the proxy, rule reading, reset and cleanup are the stock ones. The suite must catch
every one (tests/local/test_dataplane_mutants.py).
"""

from __future__ import annotations

from dataclasses import replace

from harness.errors import UsageError
from harness.local.controller import EndpointController
from harness.model.endpoints import derive_slices
from harness.model.objects import EndpointSlice, Phase
from harness.model.state import ClusterState
from harness.registry import TargetOptions
from harness.targets.local import DEFAULT_PROXY, LocalTarget, proxy_factory


class ListsEvictedController(EndpointController):
    """Keeps evicted (Failed) pods in the slices, ready: the controller bug of
    kubernetes#109414 (fixed by PR #110255); their addresses may go to other pods."""

    def derive(self, state: ClusterState, service: str) -> tuple[EndpointSlice, ...]:
        pods = {
            n: replace(p, phase=Phase.RUNNING, ready=True) if p.phase == Phase.FAILED else p
            for n, p in state.pods.items()
        }
        return derive_slices(replace(state, pods=pods), service)


class FirstPodPortController(EndpointController):
    """Resolves a named targetPort once, with the first selected pod's number, for every pod
    (instead of per pod, as `podutil.FindPort` does)."""

    def derive(self, state: ClusterState, service: str) -> tuple[EndpointSlice, ...]:
        slices = derive_slices(state, service)
        if len(slices) < 2:
            return slices
        first = slices[0]
        endpoints = tuple(e for s in slices for e in s.endpoints)
        return (replace(first, endpoints=endpoints),)


class StaleIncarnationController(EndpointController):
    """Does not update an endpoint whose pod was recreated at the same address: the slice keeps
    the old incarnation (the change detection looks at addresses only)."""

    def __init__(self, proxy: object) -> None:
        super().__init__(proxy)  # type: ignore[arg-type]
        self._first_uid: dict[tuple[str, str], str] = {}

    def derive(self, state: ClusterState, service: str) -> tuple[EndpointSlice, ...]:
        slices = derive_slices(state, service)
        kept = []
        for endpoint_slice in slices:
            endpoints = []
            for endpoint in endpoint_slice.endpoints:
                uid = self._first_uid.setdefault((endpoint.pod, endpoint.address), endpoint.uid)
                endpoints.append(replace(endpoint, uid=uid))
            kept.append(replace(endpoint_slice, endpoints=tuple(endpoints)))
        return tuple(kept)


CONTROLLER_MUTANTS: dict[str, type[EndpointController]] = {
    "lists-evicted": ListsEvictedController,
    "first-pod-port": FirstPodPortController,
    "stale-incarnation": StaleIncarnationController,
}


class ControllerMutantTarget(LocalTarget):
    """The local cluster with a broken endpoint controller (module docstring)."""

    kind = "mutant-controller"
    description = "local cluster with a broken endpoint controller: " + ", ".join(
        CONTROLLER_MUTANTS
    )

    @classmethod
    def from_spec(cls, arg: str | None, options: TargetOptions) -> LocalTarget:
        """`mutant-controller:NAME[:PROXY]` (PROXY defaults to iptables)."""
        name, _, proxy = (arg or "").partition(":")
        if name not in CONTROLLER_MUTANTS:
            raise UsageError(
                f"unknown controller mutant {name!r}; use mutant-controller:NAME with NAME one of"
                f" {', '.join(CONTROLLER_MUTANTS)}"
            )
        target = cls(
            proxy_factory(proxy or DEFAULT_PROXY, options),
            prefix=options.prefix,
            controller_class=CONTROLLER_MUTANTS[name],
        )
        target.name = f"{cls.kind}:{name}:{proxy or DEFAULT_PROXY}"
        return target
