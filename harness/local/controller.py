"""The local cluster's endpoint controller: desired EndpointSlices from the cluster state, and the
differences handed to a proxy through the Proxy contract.

This is the split kube-proxy keeps (conventions: change tracking apart from programming): the
controller computes slices with the model's derivation (`derive_slices`, the EndpointSlice
controller's rules) and diffs them against what it last handed out; the proxy only programs.
Slices go out with their raw ready/serving/terminating conditions: choosing endpoints is the
proxy's job.
"""

from __future__ import annotations

from harness.model.endpoints import derive_slices
from harness.model.objects import EndpointSlice, Service
from harness.model.state import ClusterState
from harness.proxies.base import Proxy


class EndpointController:
    """Feeds `proxy` the Service and EndpointSlice changes between successive cluster states.

    Promises: after `update(state)` the proxy has been told exactly the Services of `state` and
    their derived slices (`derive`, keyed by slice name), in the order a watch would deliver
    them: a new Service before its slices, a deleted Service's slices before the Service. It
    never calls `sync()`; the caller decides when to program.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.services: dict[str, Service] = {}
        self.slices: dict[str, dict[str, EndpointSlice]] = {}
        self._state = ClusterState()

    def published(self, service: str) -> tuple[EndpointSlice, ...]:
        """The slices last handed to the proxy for `service` (empty if it has none)."""
        return tuple(self.slices.get(service, {}).values())

    def update(self, state: ClusterState) -> bool:
        """Hand the proxy every change since the last update; True if there was any.

        Slices are derived again only for Services that changed or select a pod that changed
        (its old or new labels), so one pod event costs little in a cluster of many Services.
        """
        affected = self._affected(self._state, state)
        self._state = state
        changed = False
        for name in sorted(set(self.services) - set(state.services)):
            changed = True
            for old_slice in self.slices.pop(name, {}).values():
                self.proxy.on_endpoint_slice_delete(old_slice)
            self.proxy.on_service_delete(self.services.pop(name))
        for name, service in sorted(state.services.items()):
            old = self.services.get(name)
            if old is None:
                self.proxy.on_service_add(service)
            elif old != service:
                self.proxy.on_service_update(old, service)
            self.services[name] = service
            changed |= old != service
            if name in affected or old != service:
                changed |= self._update_slices(name, self.derive(state, name))
        return changed

    def interim(self, state: ClusterState) -> ClusterState | None:
        """The state the real EndpointSlice controller publishes on the way to `state`, or None
        when it goes there directly.

        A pod recreated under its name (`restart-pod`, with or without its old IP) is a delete
        and then a create: the controller syncs the Service when the old pod goes, publishing
        its slices without that pod, and again when the new pod is running and ready. A proxy
        may program that interim state (kube-proxy does, for up to its `--min-sync-period`), so
        the local cluster hands it over too. Pure: reads the last state handed over."""
        replaced = [
            name
            for name, pod in state.pods.items()
            if (old := self._state.pods.get(name)) is not None and old.uid != pod.uid
        ]
        if not replaced:
            return None
        for name in replaced:
            state = state.without_pod(name)
        return state

    def derive(self, state: ClusterState, service: str) -> tuple[EndpointSlice, ...]:
        """The slices Service `service` should have: the EndpointSlice controller's rules
        (`derive_slices`). The one hook a control-plane mutant overrides."""
        return derive_slices(state, service)

    @staticmethod
    def _affected(before: ClusterState, after: ClusterState) -> set[str]:
        """Services whose slices may differ: any that selects an old or new version of a pod
        that differs between the two states."""
        pods = [
            version
            for name in set(before.pods) | set(after.pods)
            if before.pods.get(name) != after.pods.get(name)
            for version in (before.pods.get(name), after.pods.get(name))
            if version is not None
        ]
        return {
            name
            for name, service in after.services.items()
            if any(pod.matches(service.selector) for pod in pods)
        }

    def _update_slices(self, service: str, desired: tuple[EndpointSlice, ...]) -> bool:
        current = self.slices.setdefault(service, {})
        wanted = {s.name: s for s in desired}
        changed = False
        for name in sorted(set(current) - set(wanted)):
            self.proxy.on_endpoint_slice_delete(current.pop(name))
            changed = True
        for name, new in wanted.items():
            old = current.get(name)
            if old is None:
                self.proxy.on_endpoint_slice_add(new)
            elif old != new:
                self.proxy.on_endpoint_slice_update(old, new)
            current[name] = new
            changed |= old != new
        return changed
