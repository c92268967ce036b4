"""The proxy under test once per node: each instance with its own node, namespace, work directory
and endpoint-controller feed, handed every change and synced together.

A real cluster runs one kube-proxy per node, each watching the API server on its own (its own
informers: `cmd/kube-proxy/app/server.go`) and programming its own node; none waits for another.
The local target keeps that shape: every node's proxy gets the same Services and slices from a
controller of its own (`harness.local.controller`), and a change counts as programmed only once
every instance has programmed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from harness.local.controller import EndpointController
from harness.model.state import ClusterState
from harness.proxies.base import (
    CONTRACT_SYNC,
    NodeContext,
    Proxy,
    SyncState,
    stop_for_restart,
)


@dataclass(frozen=True)
class NodeProxy:
    """One node's proxy instance: where it runs, the instance, and the controller that feeds it
    (which may feed it through a wrapper: `fed`)."""

    context: NodeContext
    proxy: Proxy
    controller: EndpointController


def sync_state_of(proxy: Proxy) -> SyncState:
    """Whether `proxy` has programmed every change handed to it: its own report where it gives
    one (`SyncReportingProxy`), else the return of its `sync()` (`CONTRACT_SYNC`). Reads only."""
    report = getattr(proxy, "sync_state", None)
    if callable(report):
        state: SyncState = report()
        return state
    return SyncState(True, CONTRACT_SYNC)


class NodeProxies:
    """The running proxy instances, node-1's first.

    Promises: `start` starts one instance per context in order and, when one cannot start,
    stops those it started before raising; `stop` stops every instance (also after a failed
    start) and may be called twice; `update` and `sync` reach every instance, in node order. It
    never builds or removes a namespace and never touches the pods.
    """

    def __init__(self, controller_class: type[EndpointController]) -> None:
        self.controller_class = controller_class
        self.members: list[NodeProxy] = []

    def __iter__(self) -> Iterator[NodeProxy]:
        return iter(self.members)

    def start(
        self,
        contexts: list[NodeContext],
        new_proxy: Callable[[], Proxy],
        fed: Callable[[Proxy], Proxy] = lambda proxy: proxy,
        first: Proxy | None = None,
    ) -> None:
        """Start a fresh instance in each context (`first`, when given, is node-1's instance,
        already made but not started), each with a new controller that has handed it nothing."""
        self.stop()
        try:
            for number, context in enumerate(contexts):
                proxy = first if number == 0 and first is not None else new_proxy()
                member = NodeProxy(context, proxy, self.controller_class(fed(proxy)))
                self.members.append(member)
                proxy.start(context)
        except BaseException:
            self.stop()
            raise

    def stop(self, for_restart: bool = False) -> None:
        """Stop every instance, node-1's first; the list is empty afterwards. Every instance is
        asked to stop even when one raises; the first error is raised at the end. `for_restart`:
        new instances are about to start on the same nodes, so one that keeps its rules across
        a restart leaves them (`stop_for_restart`)."""
        members, self.members = self.members, []
        failure: BaseException | None = None
        for member in members:
            try:
                if for_restart:
                    stop_for_restart(member.proxy)
                else:
                    member.proxy.stop()
            except BaseException as error:  # the others must stop too
                failure = failure or error
        if failure is not None:
            raise failure

    def update(self, state: ClusterState) -> None:
        """Hand every instance the changes up to `state` (no sync)."""
        for member in self.members:
            member.controller.update(state)

    def sync(self) -> None:
        """Sync every instance; returns when each `sync()` returned."""
        for member in self.members:
            member.proxy.sync()

    def sync_state(self) -> SyncState:
        """Programmed only when every instance says so; the evidence names the nodes that have
        not, or is node-1's own when all have (one line, as for one proxy)."""
        states = [(m.context.node, sync_state_of(m.proxy)) for m in self.members]
        pending = [node for node, state in states if not state.synced]
        if not states:
            return SyncState(True, CONTRACT_SYNC)
        if not pending:
            source = states[0][1].source
            if len(states) > 1:
                source += f" (on each of the {len(states)} nodes' proxies)"
            return SyncState(True, source)
        first = next(state for _, state in states if not state.synced)
        return SyncState(False, f"{first.source} (not yet programmed on {', '.join(pending)})")
