"""Convergence waits for the proxy's own sync evidence before it judges any traffic, and says in
the latency verdict's evidence what a converged step rested on (issue 15, item 3)."""

from __future__ import annotations

from harness.events import CreateService, Event, RestartPod, Scale
from harness.model.endpoints import derive_slices
from harness.model.objects import EndpointSlice, labels_of
from harness.model.state import ClusterState
from harness.proxies.base import SyncState
from harness.runner import RunConfig, replay
from harness.targets.model import ModelTarget
from harness.traffic import TrafficRequest, TrafficSample

WEB = labels_of({"app": "web"})
LAG_S = 1.5
SEQUENCE = [CreateService("svc", WEB), Scale("web", 3), RestartPod("web-1")]


class ProgramsLate(ModelTarget):
    """Publishes slices at once; its data plane acts on the state before the last change until
    `lag_s` of simulated time has passed, as a proxy that syncs once a period would. Records
    when each batch of traffic was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.programmed = ClusterState()
        self.applied_s = 0.0
        self.sent_at: list[float] = []
        self.lag_s = LAG_S

    def apply(self, event: Event) -> None:
        self.programmed = self.perceived(self.state)
        self.applied_s = self.clock.now()
        super().apply(event)

    def endpoint_slices(self, service: str) -> tuple[EndpointSlice, ...]:
        if service not in self.state.services:
            return ()
        return derive_slices(self.state, service)

    def perceived(self, state: ClusterState) -> ClusterState:
        return state if self._synced() else self.programmed

    def send(self, request: TrafficRequest) -> TrafficSample:
        self.sent_at.append(self.clock.now() - self.applied_s)
        return super().send(request)

    def _synced(self) -> bool:
        return self.clock.now() - self.applied_s >= self.lag_s


class ReportsItsSync(ProgramsLate):
    """The same data plane, with the proxy's report of it."""

    def sync_state(self) -> SyncState:
        return SyncState(self._synced(), "the proxy's own report")


def test_no_traffic_is_judged_before_the_proxy_reports_its_state_final() -> None:
    target = ReportsItsSync()
    runner = replay(target, SEQUENCE, RunConfig(deadline_s=5.0))
    assert [r["verdicts"] for r in runner.history if isinstance(r["verdicts"], list)] == []
    assert target.sent_at and min(target.sent_at) >= LAG_S
    latencies = runner.history.latencies_s()
    assert latencies and min(latencies) >= LAG_S
    services = [r["services"]["svc"] for r in runner.history]
    assert all("sync evidence (the proxy's own report)" in s["convergence"] for s in services)


def test_without_sync_evidence_traffic_alone_stands_for_it_and_the_evidence_says_so() -> None:
    target = ProgramsLate()
    runner = replay(target, SEQUENCE[:2], RunConfig(deadline_s=5.0))
    assert min(target.sent_at) < LAG_S  # traffic was the only way to know
    services = [r["services"]["svc"] for r in runner.history]
    assert all("no sync evidence from the target" in s["convergence"] for s in services)


def test_a_proxy_that_reports_a_sync_it_has_not_done_is_caught_by_traffic() -> None:
    class Lies(ProgramsLate):
        def sync_state(self) -> SyncState:
            return SyncState(True, "the proxy's own report (a lie)")

    class NeverPrograms(Lies):
        def _synced(self) -> bool:
            return False

    runner = replay(NeverPrograms(), SEQUENCE[:2], RunConfig(deadline_s=5.0))
    found = [v for r in runner.history if isinstance(r["verdicts"], list) for v in r["verdicts"]]
    latency = [v for v in found if v["property"] == "programming-latency"]
    assert latency and "a lie" in latency[0]["evidence"]["convergence"]


def test_a_proxy_that_missed_a_deadline_still_syncing_is_waited_for_at_the_next_change() -> None:
    target = ReportsItsSync()
    target.lag_s = 6.0  # longer than the deadline
    runner = replay(target, [], RunConfig(deadline_s=5.0))
    first = runner.step(SEQUENCE[0])
    assert "has not programmed every change" in first.failures()[0].message
    target.lag_s = LAG_S
    assert runner.step(SEQUENCE[1]).failures() == []


def test_no_traffic_verdict_judges_a_state_the_proxy_says_is_not_final() -> None:
    target = ReportsItsSync()
    runner = replay(target, SEQUENCE[:2], RunConfig(deadline_s=5.0))
    target.lag_s = 6.0  # longer than the deadline: the step ends on the interim state
    step = runner.step(Scale("web", 5))
    assert {v.property for v in step.verdicts} == {"programming-latency", "endpoints"}
    assert [v.property for v in step.failures()] == ["programming-latency"]
    assert not step.checked  # no feature counts as checked on an interim state
