"""Convergence from what the proxy has (issue 15, item 3): a proxy that syncs at most once a
second, as kube-proxy does, and a same-IP pod restart whose interim state it programs.

On a real cluster the EndpointSlice controller publishes a recreated pod's slices without it
first; kube-proxy programs that interim state and the final one up to its min-sync period later.
Traffic alone cannot tell the old rules (same pod IP and port) from the final ones, so a harness
that judged convergence from traffic declared the step converged through the old rules and then
sampled balancing across the interim state: a false alarm. The harness now waits for the proxy's
own report that it has programmed every change; these tests reproduce the sequence on the local
cluster with the proxy's rules unreadable, as on a cluster whose rules the harness cannot read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from harness.events import CreateService, Probe, RestartPod, Scale, Wait
from harness.local.controller import EndpointController
from harness.model.objects import EndpointSlice, Service, labels_of
from harness.model.state import ClusterState
from harness.proxies.base import NodeContext, Proxy, SyncState
from harness.proxies.bounded import BoundedSyncProxy, bounded
from harness.proxies.external import ExternalProxy
from harness.proxies.iptables import IptablesProxy
from harness.runner import RunConfig, replay
from harness.targets.base import reads_rules
from harness.targets.local import LocalTarget
from tests.local.conftest import needs_root
from tests.local.runs import EXAMPLE_PROXY

WEB = labels_of({"app": "web"})
CONFIG = RunConfig(deadline_s=5.0)
RESTART = [
    CreateService("svc", WEB),
    Scale("web", 2),
    Wait(1.2),  # longer than the period: the interim state is programmed as soon as it arrives
    RestartPod("web-0"),  # same IP: the old rules reach the new incarnation
    Wait(0.6),  # past the interim run's 0.5 s, inside the final run's wait for its period
    Probe("svc"),  # a balancing sample: judged only if the step converged on the final state
]


PROXIES: dict[str, tuple[Callable[[], Proxy], bool]] = {
    "iptables-rules-unread": (IptablesProxy, True),
    "iptables-rules-read": (IptablesProxy, False),
    "external-example": (lambda: ExternalProxy(EXAMPLE_PROXY), True),
}


@pytest.fixture(params=sorted(PROXIES))
def slow_target(prefix: str, request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    """A proxy synced at most once a second, each sync taking 0.5 s from reading the changes to
    the rules being in the kernel (kube-proxy's sync_proxy_rules_duration): the iptables proxy
    with its rules hidden from the harness or not (read rules cannot tell the old rule from the
    final one either: both send to the same pod address and port), and the example candidate
    proxy over the external protocol."""
    inner, unreadable = PROXIES[request.param]
    target = LocalTarget(bounded(inner, 1.0, 0.5, unreadable=unreadable), prefix=prefix)
    target.open()
    try:
        yield target
    finally:
        target.close()


@needs_root
def test_a_same_ip_restart_through_a_proxy_syncing_once_a_second_is_not_a_false_alarm(
    slow_target: LocalTarget, request: pytest.FixtureRequest
) -> None:
    assert reads_rules(slow_target) == ("rules-read]" in request.node.name)
    runner = replay(slow_target, RESTART[:3], CONFIG)
    proxy = slow_target.proxy
    assert isinstance(proxy, BoundedSyncProxy)
    runs_before = proxy.runs
    restart = runner.step(RESTART[3])
    assert proxy.runs - runs_before == 2  # the interim state was programmed, then the final one
    results = [restart, *runner.run(RESTART[4:])]
    assert [v.message for r in results for v in r.failures()] == []
    records = list(runner.history)
    record = records[3]
    assert record["services"]["svc"]["latency_s"] is not None
    assert "the proxy's own report" in record["services"]["svc"]["convergence"]
    probe = records[5]["services"]["svc"]
    assert set(probe["hits"]) == {"web-0/u3", "web-1/u2"}


class ClaimsSynced(BoundedSyncProxy):
    """A mutant: reports every change programmed while its next sync is a minute away."""

    name: ClassVar[str] = "claims-synced"

    def sync_state(self) -> SyncState:
        return SyncState(True, "the proxy's own report (a lie)")


@needs_root
def test_a_proxy_that_claims_to_have_synced_but_has_not_is_caught_by_traffic(
    prefix: str,
) -> None:
    target = LocalTarget(lambda: ClaimsSynced(IptablesProxy(), 60.0), prefix=prefix)
    target.open()
    try:
        runner = replay(target, [CreateService("svc", WEB)], RunConfig(2.0))
        step = runner.step(Scale("web", 2))  # its sync waits for the minute to pass
    finally:
        target.close()
    failing = {v.property: v for v in step.failures()}
    assert "programming-latency" in failing
    assert "a lie" in failing["programming-latency"].evidence["convergence"]


# -- without root: the runner and the controller ------------------------------------------------
class CountingProxy:
    """Records the order of what it is handed and how many syncs it ran."""

    name: ClassVar[str] = "counting"
    description: ClassVar[str] = "counts"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.syncs = 0

    def start(self, node: NodeContext) -> None:
        self.calls.append("start")

    def on_service_add(self, service: Service) -> None:
        self.calls.append(f"service {service.name}")

    def on_service_update(self, old: Service, new: Service) -> None:
        self.calls.append(f"service {new.name}")

    def on_service_delete(self, service: Service) -> None:
        self.calls.append(f"-service {service.name}")

    def on_endpoint_slice_add(self, endpoint_slice: EndpointSlice) -> None:
        self.calls.append(f"slice {_pods(endpoint_slice)}")

    def on_endpoint_slice_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self.calls.append(f"slice {_pods(new)}")

    def on_endpoint_slice_delete(self, endpoint_slice: EndpointSlice) -> None:
        self.calls.append("-slice")

    def sync(self) -> None:
        self.syncs += 1

    def stop(self) -> None:
        self.calls.append("stop")


def _pods(endpoint_slice: EndpointSlice) -> str:
    return ",".join(f"{e.pod}/{e.uid}" for e in endpoint_slice.endpoints)


def _state(*events: object) -> ClusterState:
    state = ClusterState()
    for event in events:
        state = event.apply(state)  # type: ignore[attr-defined]
    return state


def test_a_recreated_pod_leaves_its_slices_before_its_successor_joins() -> None:
    controller = EndpointController(CountingProxy())
    before = _state(CreateService("svc", WEB), Scale("web", 2))
    controller.update(before)
    after = RestartPod("web-0").apply(before)
    interim = controller.interim(after)
    assert interim is not None and "web-0" not in interim.pods
    controller.update(interim)
    controller.update(after)
    proxy = controller.proxy
    assert isinstance(proxy, CountingProxy)
    assert proxy.calls[-2:] == ["slice web-1/u2", "slice web-0/u3,web-1/u2"]
    assert controller.interim(Scale("web", 3).apply(after)) is None  # no pod recreated


def _wait_for(proxy: BoundedSyncProxy) -> SyncState:
    """The proxy's report once it says synced (or after 10 s, whatever it says then)."""
    bound = time.monotonic() + 10.0
    while not (state := proxy.sync_state()).synced and time.monotonic() < bound:
        time.sleep(0.01)
    return state


def test_a_bounded_proxy_programs_a_change_at_once_then_waits_out_its_period(
    tmp_path: object,
) -> None:
    inner = CountingProxy()
    proxy = BoundedSyncProxy(inner, min_sync_period_s=60.0)
    proxy.start(NodeContext("node-1", "unused", "t", tmp_path))  # type: ignore[arg-type]
    try:
        service = _state(CreateService("svc", WEB)).services["svc"]
        proxy.sync()  # nothing handed over: asks for nothing
        proxy.on_service_add(service)
        assert not proxy.sync_state().synced
        proxy.sync()
        assert _wait_for(proxy).synced and inner.syncs == 1
        assert inner.calls == ["start", "service svc"]
        proxy.on_service_delete(service)
        proxy.sync()
        time.sleep(0.05)
        state = proxy.sync_state()
        assert not state.synced and "1 of the 2 changes" in state.source
        assert inner.syncs == 1 and inner.calls == ["start", "service svc"]
    finally:
        proxy.stop()
    assert inner.calls[-1] == "stop"
