"""`harness.restart_traffic.DuringRestart` without a kernel: it samples only a restart of a proxy
that keeps its rules, and a request that fails in the window fails availability with the
evidence `part: during-restart`."""

from __future__ import annotations

import time

from harness.events import CreateService, Probe, RestartProxy, Scale
from harness.model.objects import Backend, labels_of
from harness.model.state import ClusterState
from harness.restart_traffic import PART, DuringRestart
from harness.traffic import ErrorKind, Outcome, TrafficRequest, TrafficSample

WEB = labels_of({"app": "web"})
STATE = Scale("web", 2).apply(CreateService("svc", WEB).apply(ClusterState()))
USABLE = Backend("web-0", "u1")


class FakeTarget:
    """Answers every request with `outcome`; `keeps_proxy_state` as given."""

    def __init__(self, keeps: bool, outcome: Outcome) -> None:
        self.keeps_proxy_state = keeps
        self.outcome = outcome
        self.sent: list[TrafficRequest] = []

    def send(self, request: TrafficRequest) -> TrafficSample:
        self.sent.append(request)
        time.sleep(0.001)
        return TrafficSample(request, (self.outcome,), 0.0, 0.0)


def sampled(target: FakeTarget, event: object) -> DuringRestart:
    during = DuringRestart(target, event, STATE, "http", 1.0, time.monotonic)  # type: ignore[arg-type]
    with during:
        time.sleep(0.01)  # the restart
    return during


def test_only_a_restart_of_a_proxy_that_keeps_its_rules_is_sampled() -> None:
    answer = Outcome(None, ErrorKind.TIMEOUT, 1000.0, 0)
    for keeps, event in ((False, RestartProxy()), (True, Probe("svc"))):
        target = FakeTarget(keeps, answer)
        assert sampled(target, event).verdicts() == [] and target.sent == []


def test_a_request_lost_in_the_window_fails_availability() -> None:
    target = FakeTarget(True, Outcome(None, ErrorKind.TIMEOUT, 1000.0, 0))
    verdicts = sampled(target, RestartProxy()).verdicts()
    assert target.sent and {r.service for r in target.sent} == {"svc"}
    (availability,) = [v for v in verdicts if v.property == "availability"]
    assert not availability.holds and availability.evidence["part"] == PART
    assert "during a proxy restart" in availability.message


def test_answers_from_usable_pods_hold() -> None:
    usable = sorted(STATE.pods.values(), key=lambda p: p.name)[0]
    backend = Backend(usable.name, usable.uid)
    target = FakeTarget(True, Outcome(backend, None, 1.0, 0))
    verdicts = sampled(target, RestartProxy()).verdicts()
    assert len(verdicts) == 2 and all(v.holds for v in verdicts), verdicts
