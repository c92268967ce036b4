"""`long-lived-connections` and `restart-proxy` on the model: the check's hand-written cases
(kubernetes#74839, Cilium's conn-disrupt), the runner holding connections across steps, a
restart making every Service converge again, and targets that cannot restart their proxy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.checks import PROPERTIES
from harness.checks.connections import PROPERTY, HeldAnswer, check_long_lived
from harness.conformance import applicable, options_for, uncheckable_features
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    Probe,
    RestartProxy,
    Scale,
    SetReady,
    StaleSnapshot,
    UnobservedChanges,
    event_from_json,
)
from harness.longlived import FEATURE, MAX_HELD, MAX_UDP_HELD, RELAY_RESTARTED, STALE_SHOWN
from harness.model.objects import Affinity, Backend, Protocol, labels_of
from harness.profiles import PROFILES
from harness.registry import TargetOptions
from harness.runner import Runner, StepResult, replay
from harness.strategies import GENERATORS, EventSpace
from harness.targets.kube import KubeTarget
from harness.targets.model import HeldConnection, ModelTarget
from harness.traffic import ErrorKind, Outcome

WEB = labels_of({"app": "web"})
A, B = Backend("web-0", "u1"), Backend("web-1", "u2")


def answer(outcome: Outcome, usable: bool = True) -> HeldAnswer:
    return HeldAnswer("svc-a", "client-1", A, outcome, usable, 2)


KEPT = Outcome(A, None, 1.0, 0)
MOVED = Outcome(B, None, 1.0, 0)
RESET = Outcome(None, ErrorKind.RESET, 1.0, 0)


def test_a_connection_answered_by_its_backend_holds_even_once_unusable() -> None:
    verdict = check_long_lived([answer(KEPT), answer(KEPT, usable=False)])
    assert verdict.holds and verdict.property == PROPERTY
    assert len(verdict.evidence["connections"]) == 2


def test_a_connection_answered_by_another_backend_moved_silently() -> None:
    verdict = check_long_lived([answer(KEPT), answer(MOVED, usable=False)])
    assert not verdict.holds
    assert "moved silently" in verdict.message and "web-1/u2" in verdict.message
    (moved,) = verdict.evidence["moved"]
    assert moved["backend"] == "web-0/u1" and moved["answered_by"] == "web-1/u2"


def test_a_reset_while_the_endpoint_is_usable_is_a_spurious_drop() -> None:
    verdict = check_long_lived([answer(RESET)])
    assert not verdict.holds and "still usable were dropped" in verdict.message
    assert verdict.evidence["dropped"][0]["error"] == "reset"


def test_a_reset_after_the_endpoint_went_away_is_allowed() -> None:
    assert check_long_lived([answer(RESET, usable=False)]).holds


def test_a_relaying_proxys_restart_excuses_drops_but_never_moves() -> None:
    excused = check_long_lived([answer(RESET)], RELAY_RESTARTED)
    assert excused.holds and excused.evidence["failures_excused"] == RELAY_RESTARTED
    assert not check_long_lived([answer(MOVED)], RELAY_RESTARTED).holds


def test_the_property_is_listed() -> None:
    assert PROPERTY in PROPERTIES


def test_restart_proxy_round_trips_and_changes_no_state() -> None:
    event = event_from_json(json.loads(json.dumps(RestartProxy().to_json())))
    assert event == RestartProxy() and str(event) == "restart-proxy"
    target = ModelTarget()
    target.apply(CreateService("svc-a", WEB))
    before = target.state
    target.apply(RestartProxy())
    assert target.state == before


def long_lived(step: StepResult) -> list[dict[str, object]]:
    return [v.to_json() for v in step.verdicts if v.property == PROPERTY]


def test_the_runner_holds_connections_and_judges_them_after_every_step() -> None:
    runner = replay(
        ModelTarget(),
        [CreateService("svc-a", WEB), Scale("web", 3), RestartProxy(), DeletePod("web-0", 0)],
    )
    history = list(runner.history)
    held = [record.get("long_lived") for record in history]
    assert held[0] is None and held[1] is None  # nothing usable, then opened after step 2
    assert len(held[2]) == MAX_HELD
    assert all(c["answered_by"] == c["backend"] for c in held[2])
    assert FEATURE in list(runner.history)[2]["features"]
    assert "proxy-restarted" in list(runner.history)[2]["features"]
    gone = [c for c in held[3] if c["backend"].startswith("web-0/")]
    assert all(c["error"] == "reset" and not c["backend_still_usable"] for c in gone)
    assert all(isinstance(record["verdicts"], int) for record in runner.history)  # none failed


def test_a_restart_makes_every_service_converge_again() -> None:
    runner = replay(
        ModelTarget(),
        [
            CreateService("svc-a", WEB),
            CreateService("svc-b", labels_of({"app": "api"})),
            Scale("web", 2),
            RestartProxy(),
        ],
    )
    assert sorted(list(runner.history)[3]["services"]) == ["svc-a", "svc-b"]


def test_connections_go_only_to_services_without_client_ip_affinity() -> None:
    runner = replay(
        ModelTarget(),
        [
            CreateService("svc-a", WEB, session_affinity=Affinity.CLIENT_IP),
            Scale("web", 2),
            Probe("svc-a"),
        ],
    )
    assert all("long_lived" not in record for record in runner.history)


class MovesOnRestart(ModelTarget):
    """A proxy that re-balances every established connection when it restarts."""

    def on_restart(self) -> None:
        for number, connection in self.held.items():
            pods = self.state.pods.values()
            others = [Backend(p.name, p.uid) for p in pods if p.uid != connection.backend.uid]
            self.held[number] = HeldConnection(connection.service, connection.client, others[0])


class DropsOnChange(ModelTarget):
    """A proxy that resets every established connection on any change (a conntrack flush)."""

    def apply(self, event: object) -> None:
        super().apply(event)  # type: ignore[arg-type]
        self.held.clear()


@pytest.mark.parametrize(
    ("target", "events", "words"),
    [
        (MovesOnRestart(), [RestartProxy()], "moved silently"),
        (DropsOnChange(), [CreatePod("p-0", labels_of({"app": "api"}))], "were dropped"),
        (DropsOnChange(), [SetReady("web-0", False)], "were dropped"),
    ],
)
def test_broken_targets_are_caught_at_the_step(
    target: ModelTarget, events: list[object], words: str
) -> None:
    runner = Runner(target)
    runner.reset()
    runner.run([CreateService("svc-a", WEB), Scale("web", 2)])
    (step,) = runner.run(events)  # type: ignore[arg-type]
    (verdict,) = step.failures({PROPERTY})
    assert words in verdict.message


def test_a_deleted_service_may_keep_or_close_its_connections() -> None:
    runner = replay(
        ModelTarget(), [CreateService("svc-a", WEB), Scale("web", 2), DeleteService("svc-a")]
    )
    connections = list(runner.history)[2]["long_lived"]
    assert len(connections) == MAX_HELD
    assert not any(c["backend_still_usable"] for c in connections)
    assert isinstance(list(runner.history)[2]["verdicts"], int)  # none failed


@pytest.mark.parametrize(
    ("protocol", "target_port", "held"), [("TCP", "http", MAX_HELD), ("UDP", "udp", MAX_UDP_HELD)]
)
def test_the_service_on_a_connections_vip_owns_it(
    protocol: str, target_port: str, held: int
) -> None:
    """Found by the quick search on the local cluster (TCP and UDP alike): svc-a deleted and
    created again within one unobserved batch gets another VIP, and svc-b the old one. The
    connections opened to svc-a's old VIP are then svc-b's, to an endpoint it still uses (they
    must keep working); once svc-b is deleted they are on a flow nobody programs, and may end."""
    api = labels_of({"app": "api"})

    def create(name: str) -> CreateService:
        return CreateService(name, api, target_port=target_port, protocol=Protocol(protocol))

    recreated = (DeleteService("svc-a"), create("svc-b"), create("svc-a"))
    events = [
        create("svc-a"),
        Scale("api", 1),
        UnobservedChanges(recreated),
        DeleteService("svc-b"),
    ]
    runner = replay(ModelTarget(), events)
    steps = list(runner.history)
    for step, usable in ((steps[2], True), (steps[3], False)):
        asked = step["long_lived"]
        assert len(asked) == held and {c["opened_at_step"] for c in asked} == {2}
        assert all(c["backend_still_usable"] is usable for c in asked)
        assert isinstance(step["verdicts"], int)  # none failed


def test_a_target_that_cannot_restart_is_never_given_a_restart() -> None:
    space = EventSpace(restarts_proxy=False)
    state = CreateService("svc-a", WEB).apply(ModelTarget().state)
    assert not GENERATORS["restart_proxy"].applies(state, space)
    assert GENERATORS["restart_proxy"].applies(state, EventSpace())


def kube_target(**options: Any) -> KubeTarget:
    target = KubeTarget.__new__(KubeTarget)  # nothing opened: only its declarations are read
    target.options = TargetOptions(**options)
    target.clock = ModelTarget().clock  # type: ignore[misc]
    return target


def test_the_kube_target_reports_restarts_unsupported_and_holds_udp_flows_only() -> None:
    target = kube_target()
    assert "needs --pods local with --proxy-command" in str(target.restart_unsupported)
    with pytest.raises(UsageError, match="restart-proxy: restarting the proxy needs --pods local"):
        target.apply(RestartProxy())
    assert applicable(PROPERTY, target) is None  # held UDP flows (tests/kube/test_udp.py)
    assert "proxy-restarted" in uncheckable_features(target)
    assert "out-of-window" in uncheckable_features(target)  # no TCP connection is held there
    assert applicable(PROPERTY, ModelTarget()) is None
    assert not uncheckable_features(ModelTarget()) & {"proxy-restarted", FEATURE}


def test_the_kube_target_restarts_its_own_proxy_command_under_pods_local() -> None:
    target = kube_target(pods="local", proxy_command="kube-proxy --kubeconfig {kubeconfig}")
    assert target.restart_unsupported is None
    assert "proxy-restarted" not in uncheckable_features(target)


def test_runs_draw_restarts_only_where_the_target_can_restart() -> None:
    assert options_for(ModelTarget(), seed=1, profile=PROFILES["quick"]).space.restarts_proxy
    kube = kube_target()
    assert not options_for(kube, seed=1, profile=PROFILES["quick"]).space.restarts_proxy


# -- stale snapshots ----------------------------------------------------------------------------
def test_a_stale_snapshot_round_trips_changes_no_state_and_is_bounded() -> None:
    event = event_from_json(json.loads(json.dumps(StaleSnapshot(2).to_json())))
    assert event == StaleSnapshot(2) and str(event) == "stale-snapshot back=2"
    target = ModelTarget()
    target.apply(CreateService("svc-a", WEB))
    before = target.state
    target.apply(StaleSnapshot(1))
    assert target.state == before
    with pytest.raises(InvalidEvent, match="back=9 is out of range"):
        StaleSnapshot(9).apply(before)


def test_a_stale_snapshot_excuses_drops_but_never_moves() -> None:
    excused = check_long_lived([answer(RESET)], STALE_SHOWN)
    assert excused.holds and excused.evidence["failures_excused"] == STALE_SHOWN
    assert not check_long_lived([answer(MOVED)], STALE_SHOWN).holds
    runner = replay(ModelTarget(), [CreateService("svc-a", WEB), Scale("web", 2)])
    (step,) = runner.run([StaleSnapshot(1)])
    (verdict,) = [v for v in step.verdicts if v.property == PROPERTY]
    assert verdict.evidence["failures_excused"] == STALE_SHOWN
    assert sorted(list(runner.history)[2]["services"]) == ["svc-a"]  # waited for again


def test_the_kube_target_never_gets_a_stale_snapshot() -> None:
    target = kube_target(pods="local", proxy_command="kube-proxy --kubeconfig {kubeconfig}")
    with pytest.raises(UsageError, match="stale-snapshot: a real proxy reads its inputs"):
        target.apply(StaleSnapshot(1))
    assert "stale-snapshot" in uncheckable_features(target)
    assert not options_for(target, seed=1, profile=PROFILES["quick"]).space.shows_stale
    assert options_for(ModelTarget(), seed=1, profile=PROFILES["quick"]).space.shows_stale
    state = CreateService("svc-a", WEB).apply(ModelTarget().state)
    assert not GENERATORS["stale_snapshot"].applies(state, EventSpace(shows_stale=False))
    assert GENERATORS["stale_snapshot"].applies(state, EventSpace())
