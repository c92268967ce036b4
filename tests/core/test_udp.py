"""UDP Services in the model, the events, the search and the checks (issue 12 items 1 and 2):
what a held UDP flow's answer must be, the events' JSON, that the search generates UDP only for
implementations that declare it, and the model's held flows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import known_issues
from harness.checks.connections import PROPERTY, HeldAnswer, check_long_lived
from harness.checks.udp_flows import UDP, FlowFault, flow_fault
from harness.conformance import uncheckable_features
from harness.errors import UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    Event,
    RestartProxy,
    Scale,
    SetReady,
    apply_all,
    event_from_json,
)
from harness.features import CORE_FEATURES, FEATURES, attribute_failure
from harness.longlived import UDP_FEATURE, LongLived
from harness.model.endpoints import expect
from harness.model.objects import Backend, Protocol, labels_of
from harness.model.state import ClusterState
from harness.runner import replay
from harness.strategies import GENERATORS, EventSpace
from harness.swarm import AIMS
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, Outcome
from harness.udp_support import generates_udp

A, B, C = Backend("web-0", "u1"), Backend("web-1", "u2"), Backend("web-2", "u3")
WEB = labels_of({"app": "web"})
UDP_SERVICE = CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP)


def answer(backend: Backend | None) -> Outcome:
    return Outcome(backend, None if backend else ErrorKind.TIMEOUT, 1.0, 0)


@pytest.mark.parametrize(
    ("last", "got", "usable", "fault"),
    [
        (A, A, {A, B}, None),  # its endpoint, still usable
        (A, B, {B}, None),  # followed its endpoint's removal
        (None, B, {B}, None),  # never answered (refused while empty), now reaches one
        (A, None, set(), None),  # nothing usable: REJECT or DROP is right
        (A, A, {B}, FlowFault.STALE),  # kubernetes#105657: unready, still reached
        (A, C, {A, B}, FlowFault.STALE),  # another unusable backend
        (A, B, {A, B}, FlowFault.MOVED),  # kubernetes#122740: flushed while usable
        (A, None, {B}, FlowFault.BLACKHOLED),  # kubernetes#19029: a dead endpoint's entry
    ],
)
def test_a_held_flows_answer_is_judged_against_the_usable_backends(
    last: Backend | None, got: Backend | None, usable: set[Backend], fault: FlowFault | None
) -> None:
    assert flow_fault(last, answer(got), frozenset(usable), excused=False) == fault


def test_an_excused_step_excuses_moves_and_failures_never_stale_answers() -> None:
    assert flow_fault(A, answer(None), frozenset({A}), excused=True) is None
    assert flow_fault(A, answer(B), frozenset({A, B}), excused=True) is None  # a stale snapshot
    assert flow_fault(A, answer(C), frozenset({A}), excused=True) == FlowFault.STALE


def _flow(got: Backend | None, usable: set[Backend]) -> HeldAnswer:
    return HeldAnswer("svc-a", "client-1", A, answer(got), A in usable, 3, UDP, frozenset(usable))


def test_the_verdict_names_each_fault_and_keeps_tcp_rules_apart() -> None:
    verdict = check_long_lived([_flow(A, {B}), _flow(None, {B}), _flow(B, {B})])
    assert verdict.property == PROPERTY and not verdict.holds
    assert "stale conntrack entry" in verdict.message and "no answer" in verdict.message
    assert [f["fault"] for f in verdict.evidence["udp_flows"]] == ["stale", "blackholed"]
    assert not verdict.evidence["moved"] and not verdict.evidence["dropped"]
    assert check_long_lived([_flow(B, {B}), _flow(None, set())]).holds


def test_udp_events_round_trip_and_a_bad_protocol_is_one_line() -> None:
    pod = CreatePod("p-0", WEB, udp_port=8081)
    for event in (UDP_SERVICE, pod, CreateService("svc-b", WEB)):
        assert event_from_json(event.to_json()) == event
    bad = {**UDP_SERVICE.to_json(), "protocol": "QUIC"}
    with pytest.raises(UsageError, match=r"protocol must be one of TCP, UDP, SCTP, got 'QUIC'"):
        event_from_json(bad)
    ports = {(p.name, p.port, p.protocol) for p in pod.apply(ClusterState()).pod("p-0").ports}
    assert ports == {("http", 8080, "TCP"), ("udp", 8081, "UDP")}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_search_creates_udp_services_only_when_the_space_allows(data: st.DataObject) -> None:
    state = ClusterState()
    closed = data.draw(GENERATORS["create_service"].strategy(state, EventSpace()))
    only = data.draw(GENERATORS["create_service"].strategy(state, EventSpace(udp_only=True)))
    udp = data.draw(
        GENERATORS["create_service"].strategy(state, EventSpace(udp=True, udp_only=True))
    )
    assert isinstance(closed, CreateService) and isinstance(only, CreateService)
    assert closed.protocol == only.protocol == Protocol.TCP
    assert isinstance(udp, CreateService) and udp.protocol == Protocol.UDP
    assert udp.target_port == "udp"


class _Target:
    name = "local:x"
    sends_udp = True

    def __init__(self, features: frozenset[str] | None) -> None:
        self.proxy = type("P", (), {"name": "p", "features": features})()


class _NoUdpClients(_Target):
    sends_udp = False


def test_udp_reaches_the_search_only_where_declared_and_sendable() -> None:
    assert generates_udp(ModelTarget())
    assert generates_udp(_Target(CORE_FEATURES | {"udp"}))
    assert not generates_udp(_Target(CORE_FEATURES))  # userspace, nginx, haproxy: undeclared
    assert not generates_udp(_Target(None))  # core only
    assert not generates_udp(_NoUdpClients(CORE_FEATURES | {"udp"}))  # the kube target
    assert EventSpace(udp=True).makes_udp and not EventSpace().makes_udp
    assert not EventSpace(udp=True).for_features(CORE_FEATURES).makes_udp  # undeclared
    assert EventSpace(udp=True).for_features(CORE_FEATURES | {"udp"}).makes_udp


def test_a_udp_failure_counts_against_the_udp_feature() -> None:
    assert "long-lived-connections" in FEATURES["udp"].properties
    assert attribute_failure(PROPERTY, [UDP_SERVICE, Scale("web", 2)]) == {"udp"}
    assert attribute_failure(PROPERTY, [CreateService("svc-a", WEB)]) == {"long-lived-connections"}


def test_the_models_held_flows_follow_their_endpoint() -> None:
    runner = replay(ModelTarget(), [UDP_SERVICE, Scale("web", 3), SetReady("web-0", False)])
    history: list[dict[str, Any]] = list(runner.history)
    assert all(isinstance(record["verdicts"], int) for record in history)
    flows = [c for c in history[-1]["long_lived"] if c.get("protocol") == UDP]
    assert flows and all(c["answered_by"] != "web-0/u1" for c in flows)
    assert "udp-flow-through-change" in history[-1]["features"]


@pytest.mark.parametrize(
    ("change", "got", "issue"),
    [
        (SetReady("web-0", False), A, "kubernetes#105657"),  # stale on an unready pod
        (DeletePod("web-0", 0), None, "kubernetes#19029"),  # blackholed on a deleted one
        (RestartProxy(), B, "kubernetes#122740"),  # moved off a usable one by a restart
        (DeleteService("svc-a"), A, "kubernetes#19029"),  # its Service deleted (PR #141371)
    ],
)
def test_udp_conntrack_failures_match_their_known_issue(
    change: Event, got: Backend | None, issue: str
) -> None:
    events = [UDP_SERVICE, Scale("web", 3), change]
    state = apply_all(events)
    live = "svc-a" in state.services
    usable = frozenset(expect(state, "svc-a", "http").usable) if live else frozenset()
    held = HeldAnswer("svc-a", "client-1", A, answer(got), A in usable, 2, UDP, usable)
    verdict = check_long_lived([held])
    assert not verdict.holds
    found = known_issues.match(PROPERTY, events, [verdict.to_json()])
    assert [m.issue.id for m in found] == [issue]


def test_without_udp_the_flow_state_is_uncheckable_and_never_aimed_at() -> None:
    assert UDP_FEATURE not in uncheckable_features(ModelTarget())
    no_udp = ModelTarget()
    no_udp.sends_udp = False  # the kube target: clients that speak HTTP only
    assert UDP_FEATURE in uncheckable_features(no_udp)
    assert not AIMS[UDP_FEATURE].possible(EventSpace())
    assert AIMS[UDP_FEATURE].possible(EventSpace(udp=True))
    assert AIMS["usable-0"].possible(EventSpace())


class _ScriptedFlows:
    """A ConnectionHolder whose held flows answer what the test says."""

    relays_connections = False

    def __init__(self) -> None:
        self.answer: Outcome = answer(A)

    def hold(self, service: str, client: str, timeout_s: float) -> tuple[int | None, Outcome]:
        return 0, answer(A)

    def ask_held(self, number: int, timeout_s: float) -> Outcome:
        return self.answer

    def release_held(self) -> None:
        """Nothing is open."""


def test_a_flow_whose_endpoint_went_away_may_come_back_on_any_usable_one() -> None:
    """Scaled to nothing usable and back (an opt-out label removed, a pod ready again): the
    proxy deleted the flow's entry meanwhile, so another backend taking it is no move."""
    target = _ScriptedFlows()
    held = LongLived(target, 1.0)
    events: list[Event] = [UDP_SERVICE, Scale("web", 2)]
    held.after(1, events[-1], apply_all(events))  # flows opened, answered by web-0
    events += [SetReady("web-0", False), SetReady("web-1", False)]
    target.answer = Outcome(None, ErrorKind.REFUSED, 1.0, 0)
    (refused,), _ = held.after(3, events[-1], apply_all(events))
    events += [SetReady("web-0", True), SetReady("web-1", True)]
    target.answer = answer(B)
    (moved,), _ = held.after(5, events[-1], apply_all(events))
    assert refused.holds and moved.holds, moved.message
