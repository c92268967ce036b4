"""`node-port`'s part `health-check-node-port` on the model (issue 11 item 3, I9): which ports a
step asks, what each reply is judged by, and the model's own answers."""

from __future__ import annotations

from harness import externalclients, healthchecks
from harness.checks.external import PROPERTY
from harness.checks.health import PART, HealthSample, check_health
from harness.events import (
    CreatePod,
    CreateService,
    DeletePod,
    DeleteService,
    Event,
    RestartProxy,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceLabel,
    SetServiceType,
)
from harness.features import CORE_FEATURES
from harness.model.objects import HEADLESS_LABEL, ServiceType, TrafficPolicy, labels_of
from harness.model.state import ClusterState
from harness.runner import replay
from harness.targets.model import ModelTarget
from harness.traffic import ErrorKind, HealthCheckReply, HealthCheckRequest

WEB = labels_of({"app": "web"})
NODES = ("node-1", "node-2")
LOCAL_LB: list[Event] = [
    CreateService("web", WEB),
    CreatePod("p1", WEB, node="node-1"),
    CreatePod("p2", WEB, node="node-2"),
    SetServiceType("web", ServiceType.LOAD_BALANCER),
    SetExternalTrafficPolicy("web", TrafficPolicy.LOCAL),
]


def state_of(events: list[Event]) -> ClusterState:
    state = ClusterState()
    for event in events:
        state = event.apply(state)
    return state


def reply(status: int | None, count: int | None = None, **rest: object) -> HealthCheckReply:
    body = None if count is None else {"service": {"namespace": "default", "name": "web"},
                                       "localEndpoints": count}  # fmt: skip
    return HealthCheckReply(HealthCheckRequest("node-1", 30001), status, body=body, **rest)  # type: ignore[arg-type]


def sample(status: int | None, count: int | None, got: HealthCheckReply) -> HealthSample:
    return HealthSample("web", "default", "node-1", 30001, status, count, got)


def test_a_reply_is_judged_by_status_count_and_the_service_named() -> None:
    assert sample(200, 1, reply(200, 1)).problem() is None
    assert sample(503, 0, reply(200, 1)).problem() == "status 200, not 503"
    assert sample(200, 2, reply(200, 1)).problem() == "localEndpoints 1, not 2"
    assert "no answer" in str(sample(200, 1, reply(None, error=ErrorKind.TIMEOUT)).problem())
    refused = reply(None, error=ErrorKind.REFUSED)
    assert sample(None, None, refused).problem() is None
    assert "nothing may listen" in str(sample(None, None, reply(503, 0)).problem())
    other = HealthCheckReply(
        HealthCheckRequest("node-1", 30001),
        200,
        body={"service": {"namespace": "default", "name": "api"}, "localEndpoints": 1},
    )
    assert "names Service" in str(sample(200, 1, other).problem())


def test_the_verdict_names_the_first_wrong_node_with_every_sample_as_evidence() -> None:
    assert check_health([]) is None
    good, bad = sample(200, 1, reply(200, 1)), sample(503, 0, reply(200, 1))
    held = check_health([good])
    assert held is not None and held.holds and held.property == PROPERTY
    verdict = check_health([good, bad])
    assert verdict is not None and not verdict.holds
    assert verdict.evidence["part"] == PART and len(verdict.evidence["samples"]) == 2
    assert "at node-1: status 200, not 503" in verdict.message


def test_a_step_asks_changed_services_and_released_ports_only() -> None:
    before = state_of(LOCAL_LB[:4])
    after = state_of(LOCAL_LB)
    port = after.services["web"].health_check_node_port
    assert port is not None
    judged = healthchecks.judged
    assert judged(LOCAL_LB[4], before, after, NODES) == [("web", port)]
    unchanged = CreateService("other", WEB)
    assert judged(unchanged, after, unchanged.apply(after), NODES) == []
    assert judged(RestartProxy(), after, after, NODES) == [("web", port)]  # a nemesis: all
    terminating = DeletePod("p2", 30.0)
    assert judged(terminating, after, terminating.apply(after), NODES) == [("web", port)]
    for release in (
        SetExternalTrafficPolicy("web", TrafficPolicy.CLUSTER),
        SetServiceType("web", ServiceType.NODE_PORT),
        DeleteService("web"),
        SetServiceLabel("web", HEADLESS_LABEL, "true"),
    ):
        assert judged(release, after, release.apply(after), NODES) == [("web", port)], release


def test_the_model_answers_as_kube_proxy_and_refuses_a_released_port() -> None:
    model = ModelTarget()
    for event in [*LOCAL_LB, Scale("web", 0)]:  # no group pods: p1, p2 stay
        model.apply(event)
    port = model.state.services["web"].health_check_node_port
    assert port is not None
    model.apply(DeletePod("p2", 30.0))
    answers = [model.health_check(HealthCheckRequest(node, port)) for node in NODES]
    assert [(r.status, r.local_endpoints, r.nosniff) for r in answers] == [
        (200, 1, True),
        (503, 0, True),
    ]
    model.apply(SetExternalTrafficPolicy("web", TrafficPolicy.CLUSTER))
    assert model.health_check(HealthCheckRequest("node-1", port)).error == ErrorKind.REFUSED


def test_the_runner_judges_the_part_on_the_model_and_counts_the_i9_state() -> None:
    runner = replay(ModelTarget(), [*LOCAL_LB, DeletePod("p2", 30.0)])
    records = runner.history.records
    parts = [r.get(healthchecks.RECORD_KEY) for r in records]
    assert [p is not None for p in parts] == [False, False, False, False, True, True]
    assert healthchecks.ONLY_TERMINATING in records[-1]["features"]
    assert healthchecks.ONLY_TERMINATING not in records[-2]["features"]


def test_a_target_that_cannot_ask_or_does_not_declare_is_not_asked() -> None:
    class CannotAsk:
        node_names = NODES
        external_address = "10.240.0.200"

    checks = healthchecks.HealthChecks(CannotAsk(), NODES)
    after = state_of(LOCAL_LB)
    assert checks.after(5, LOCAL_LB[4], state_of(LOCAL_LB[:4]), after, {}) == (
        [],
        frozenset(),
        frozenset(),
    )
    never = healthchecks.FEATURES | {externalclients.UDP_REACHED}  # it sends no UDP either
    assert externalclients.uncheckable(CannotAsk()) == never

    class Undeclared(ModelTarget):  # could ask, but its implementation does not claim it
        def features(self) -> list[str]:
            return sorted(CORE_FEATURES | {"node-port", "external-traffic-policy"})

    undeclared = healthchecks.HealthChecks(Undeclared(), NODES)
    assert undeclared.after(5, LOCAL_LB[4], state_of(LOCAL_LB[:4]), after, {})[0] == []
    declared = healthchecks.HealthChecks(ModelTarget(), NODES)
    assert len(declared.after(5, LOCAL_LB[4], state_of(LOCAL_LB[:4]), after, {})[0]) == 1
    assert healthchecks.ONLY_TERMINATING in externalclients.uncheckable(object())
    assert externalclients.uncheckable(ModelTarget()) == frozenset()
