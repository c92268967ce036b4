"""`restart-proxy` with changes made while the proxy is down, without a kernel: the event's JSON
and text, its bad input (one line each), the model's judgement of held UDP flows through it (a
data plane that keeps a flow on an endpoint removed meanwhile is caught as stale), the
generator and recipe that draw it, the targets that refuse it, and the pure reconciliation
that a kernel proxy's start runs (`harness.proxies.rules.conntrack.stale_flows`)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checks.connections import PROPERTY
from harness.conformance import uncheckable_features
from harness.coverage import WHILE_DOWN_FEATURE
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    MAX_WHILE_DOWN,
    CreateService,
    DeletePod,
    Event,
    Probe,
    RestartProxy,
    Scale,
    SetReady,
    Wait,
    apply_all,
    event_from_json,
    sequence_from_json,
    sequence_to_json,
)
from harness.model.objects import Backend, Destination, Protocol, labels_of
from harness.proxies.rules.conntrack import stale_flows
from harness.proxies.rules.plan import Flow, PortPlan
from harness.recipes import changed_while_down
from harness.registry import TargetOptions
from harness.restart_traffic import DuringRestart
from harness.runner import replay
from harness.strategies import GENERATORS, EventSpace, while_down_options
from harness.targets.kube import KubeTarget
from harness.targets.model import HeldConnection, ModelTarget
from harness.traffic import Outcome

WEB = labels_of({"app": "web"})
DOWN = RestartProxy((SetReady("web-0", False), DeletePod("web-1", 0)))
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB, "udp", protocol=Protocol.UDP),
    Scale("web", 1),  # every held flow opens to web-0
    Scale("web", 3),
    DOWN,
]


def test_a_restart_with_changes_round_trips_and_applies_them_in_order() -> None:
    assert event_from_json(json.loads(json.dumps(DOWN.to_json()))) == DOWN
    assert sequence_from_json(json.loads(json.dumps(sequence_to_json(SEQUENCE)))) == SEQUENCE
    assert str(DOWN) == (
        "restart-proxy while-down [set-ready pod=web-0 ready=False; delete-pod pod=web-1 grace_s=0]"
    )
    assert RestartProxy().to_json() == {"kind": "restart-proxy"} == RestartProxy(()).to_json()
    state = apply_all(SEQUENCE)
    assert "web-1" not in state.pods and not state.pods["web-0"].ready
    assert state == apply_all([*SEQUENCE[:3], *DOWN.while_down])


@pytest.mark.parametrize(
    ("while_down", "problem"),
    [
        ([{"kind": "wait", "seconds": 1}], "restart-proxy cannot hold wait: only changes"),
        ([{"kind": "restart-proxy"}], "restart-proxy cannot hold restart-proxy"),
        ([{"kind": "delete-pod", "pod": "nope"}], "no pod named 'nope'"),
        ([{"kind": "scale", "group": "web", "replicas": 1}] * 4, "at most 3 events"),
        ("web-0", "must be a list of at most 3 events"),
    ],
)
def test_bad_changes_while_down_are_one_line(while_down: Any, problem: str) -> None:
    document = {
        "schema": "harness.sequence/v1",
        "events": [
            {"kind": "create-service", "service": "svc-a", "selector": {"app": "web"}},
            {"kind": "scale", "group": "web", "replicas": 2},
            {"kind": "restart-proxy", "while_down": while_down},
        ],
    }
    with pytest.raises(UsageError, match=problem) as raised:
        sequence_from_json(document)
    assert "\n" not in str(raised.value)


def test_nested_events_that_are_not_changes_are_invalid() -> None:
    state = apply_all(SEQUENCE[:3])
    for change in (Wait(1.0), Probe("svc-a"), RestartProxy()):
        with pytest.raises(InvalidEvent, match=f"cannot hold {change.kind}"):
            RestartProxy((change,)).apply(state)
    with pytest.raises(InvalidEvent, match=f"1 to {MAX_WHILE_DOWN}"):
        RestartProxy((Scale("web", 1),) * (MAX_WHILE_DOWN + 1)).apply(state)


def test_the_model_moves_held_flows_off_endpoints_removed_while_down() -> None:
    history = list(replay(ModelTarget(), SEQUENCE).history)
    assert all(isinstance(r["verdicts"], int) for r in history), history[-1]["verdicts"]
    flows = history[-1]["long_lived"]
    assert flows and all(c["backend"] == "web-0/u1" for c in flows)
    assert all(c["answered_by"] == "web-2/u3" for c in flows), flows  # the only usable one
    assert WHILE_DOWN_FEATURE in history[-1]["features"]


class ForgetsWhileDown(ModelTarget):
    """A data plane that keeps every held UDP flow on its first backend (no reconciliation)."""

    def _flow_answer(self, flow: HeldConnection, number: int) -> Outcome:
        return Outcome(flow.backend, None, 0.1, number)


def test_a_flow_left_on_an_endpoint_removed_while_down_is_stale() -> None:
    history = list(replay(ForgetsWhileDown(), SEQUENCE).history)
    assert all(isinstance(r["verdicts"], int) for r in history[:-1])
    (found,) = [v for v in history[-1]["verdicts"] if v["property"] == PROPERTY]
    assert "stale conntrack entry" in found["message"]


def test_drawn_only_where_the_target_can_restart_and_hide_changes() -> None:
    state = apply_all(SEQUENCE[:3])
    options = while_down_options(state)
    assert {type(change) for _, change in options} == {DeletePod, SetReady, Scale}
    drawn: list[RestartProxy] = []

    @settings(max_examples=60, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        for space in (
            EventSpace(changes_while_down=True),
            EventSpace(changes_while_down=True, hides_updates=False),
            EventSpace(),  # only the aim at changed-while-down asks for them
        ):
            event = data.draw(GENERATORS["restart_proxy"].strategy(state, space))
            assert isinstance(event, RestartProxy)
            assert (space.hides_updates and space.changes_while_down) or not event.while_down
            event.apply(state)  # raises InvalidEvent for a change that does not apply
            drawn.append(event)

    draw()
    assert any(e.while_down for e in drawn) and any(not e.while_down for e in drawn)
    assert max(len(e.while_down) for e in drawn) <= MAX_WHILE_DOWN


def test_the_recipe_removes_a_held_udp_flows_endpoint_while_down() -> None:
    space = EventSpace(udp=True)
    found: list[list[Event]] = []

    @settings(max_examples=20, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        found.append(changed_while_down(data, apply_all([CreateService("svc-b", WEB)]), space))

    draw()
    for events in found:
        *before, restart = events
        assert isinstance(restart, RestartProxy) and restart.while_down
        assert any(s.ports[0].protocol == "UDP" for s in apply_all(before).services.values())


def test_the_kube_target_refuses_it_and_the_feature_is_uncheckable_there() -> None:
    kube = KubeTarget(TargetOptions(kubeconfig="/nonexistent"))
    with pytest.raises(UsageError, match="restart-proxy while_down: a real proxy watches"):
        kube.apply(DOWN)
    assert WHILE_DOWN_FEATURE in uncheckable_features(kube)
    assert WHILE_DOWN_FEATURE not in uncheckable_features(ModelTarget())


def test_no_fresh_connections_are_judged_during_a_restart_with_changes() -> None:
    class Keeps:
        keeps_proxy_state = True

    during = DuringRestart(Keeps(), DOWN, apply_all(SEQUENCE[:3]), "http", 1.0, time.monotonic)  # type: ignore[arg-type]
    with during:
        pass
    assert during.expected is None and during.verdicts() == []


VIP, OTHER_VIP = "10.96.0.10", "10.96.0.11"
PLAN = PortPlan(
    "default", "svc-a", "udp", "udp", VIP, 53, False, None,
    (Destination(Backend("web-0", "u1"), "10.244.0.2", 8080),),
)  # fmt: skip


def test_a_start_deletes_exactly_the_stale_udp_entries() -> None:
    current = Flow("udp", VIP, 53, "10.244.0.2", 8080)
    removed = Flow("udp", VIP, 53, "10.244.0.3", 8080)  # made unready while down
    untranslated = Flow("udp", VIP, 53, VIP, 53)  # sent while the port had no rules
    deleted_service = Flow("udp", OTHER_VIP, 53, "10.244.0.4", 8080)  # its Service went
    tcp = Flow("tcp", VIP, 53, "10.244.0.3", 8080)  # TCP entries end with their connections
    pod_direct = Flow("udp", "10.244.0.9", 53, "10.244.0.9", 53)  # not to the Service range
    never_programmed = Flow("udp", OTHER_VIP, 80, OTHER_VIP, 80)  # untranslated, no Service
    held = [current, removed, untranslated, deleted_service, tcp, pod_direct, never_programmed]
    assert stale_flows(held, [PLAN], "10.96.0.0/16") == {removed, untranslated, deleted_service}
    empty = PortPlan("default", "svc-a", "udp", "udp", VIP, 53, False, None, ())
    assert stale_flows([current], [empty], "10.96.0.0/16") == {current}  # kubernetes#139628
