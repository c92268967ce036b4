"""`node-port` on the model (issue 11 items 2-3): traffic from outside at every node's node port,
judged by that node's `expect_external`, the source address kept under Local; the check's
verdicts on broken targets; where the property applies."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.checks.external import PROPERTY, ExternalSample, check_node_port
from harness.errors import UsageError
from harness.events import (
    CreateService,
    Event,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceType,
)
from harness.externalclients import FEATURES, LOCAL_DROPS, REACHED, unavailable, uncheckable
from harness.model.endpoints import expect_external
from harness.model.objects import Backend, ServiceType, TrafficPolicy, labels_of
from harness.runner import Runner, replay
from harness.targets.model import EXTERNAL_ADDRESS, NODE_ADDRESS, ModelTarget
from harness.traffic import ErrorKind, Outcome, TrafficRequest

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 2, "node-2"),
    SetServiceType("svc-a", ServiceType.NODE_PORT),
    SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
]


def test_the_model_answers_from_outside_by_each_nodes_external_expectation() -> None:
    target = ModelTarget()
    for event in SEQUENCE[:3]:
        target.apply(event)
    for node in ("node-1", "node-2"):  # Cluster: any endpoint, masqueraded
        sample = target.send(TrafficRequest("svc-a", count=6, external_node=node))
        assert all(o.backend is not None for o in sample.outcomes)
        assert {o.seen_source for o in sample.outcomes} == {NODE_ADDRESS}
    target.apply(SEQUENCE[3])
    assert expect_external(target.state, "svc-a", "http", "node-1").drops
    dropped = target.send(TrafficRequest("svc-a", count=2, external_node="node-1"))
    assert {o.error for o in dropped.outcomes} == {ErrorKind.TIMEOUT}
    kept = target.send(TrafficRequest("svc-a", count=4, external_node="node-2"))
    assert {o.seen_source for o in kept.outcomes} == {EXTERNAL_ADDRESS}
    with pytest.raises(UsageError, match="no node 'node-9'"):
        target.send(TrafficRequest("svc-a", external_node="node-9"))


def test_the_property_holds_on_the_model_with_evidence_per_node_and_its_states() -> None:
    runner = replay(ModelTarget(), SEQUENCE)
    judged = [r for r in runner.history if "node_port" in r]
    assert len(judged) == 2  # from the step that made it NodePort on
    last = judged[-1]
    assert [(s["node"], s["expected"]) for s in last["node_port"]] == [
        ("node-1", "drop"),
        ("node-2", "connect"),
    ]
    assert last["node_port"][1]["seen_sources"] == [EXTERNAL_ADDRESS]
    features = {f for r in runner.history for f in r["features"]}
    assert {REACHED, LOCAL_DROPS} <= features


class _IgnoresLocal(ModelTarget):
    """A model that serves node ports as externalTrafficPolicy Cluster whatever the policy."""

    def external_usable(self, slices: Any, service: Any, port: str, node: str) -> Any:
        cluster = replace(service, external_traffic_policy=TrafficPolicy.CLUSTER)
        return super().external_usable(slices, cluster, port, node)


class _Masquerades(ModelTarget):
    """A model that masquerades node-port traffic under Local too."""

    def seen_external_source(self, service: Any, source: int) -> str:
        return NODE_ADDRESS


@pytest.mark.parametrize("broken", [_IgnoresLocal, _Masquerades])
def test_the_property_fails_where_local_policy_is_broken(broken: type[ModelTarget]) -> None:
    runner = Runner(broken())
    runner.reset()
    failing = [v for step in runner.run(SEQUENCE) for v in step.verdicts if not v.holds]
    assert failing and {v.property for v in failing} == {PROPERTY}, failing
    assert "node port" in failing[0].message


def test_a_source_other_than_the_clients_fails_under_local_only() -> None:
    target = ModelTarget()
    for event in SEQUENCE:
        target.apply(event)
    expected = expect_external(target.state, "svc-a", "http", "node-2")
    pod = next(iter(expected.usable))
    answer = Outcome(pod, None, 0.1, 0, seen_source="10.240.0.2")
    local = ExternalSample("svc-a", "node-2", expected, (answer,), EXTERNAL_ADDRESS, True)
    cluster = replace(local, keeps_source=False)
    assert check_node_port([cluster]).holds  # type: ignore[union-attr]
    verdict = check_node_port([local])
    assert verdict is not None and not verdict.holds and "10.240.0.2" in verdict.message
    stranger = Outcome(Backend("nobody", "x"), None, 0.1, 0, seen_source=EXTERNAL_ADDRESS)
    assert not check_node_port([replace(local, outcomes=(stranger,))]).holds  # type: ignore[union-attr]
    assert check_node_port([]) is None


def test_the_property_applies_only_with_an_external_client_and_several_nodes() -> None:
    assert unavailable(ModelTarget()) is None and uncheckable(ModelTarget()) == frozenset()

    class _NoExternal:
        node_names = ("node-1", "node-2")

    assert "external client" in str(unavailable(_NoExternal()))
    assert uncheckable(_NoExternal()) == FEATURES
