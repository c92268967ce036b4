"""`node-port`'s part `load-balancer` on the model (issue 11 item 2): a LoadBalancer Service's
ingress IP reached from outside via every node, judged by that node's `expect_external`, the
source kept under Local; the check's verdicts on broken targets; which Services are sampled."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.checks.external import (
    LOAD_BALANCER_PART,
    PROPERTY,
    ExternalSample,
    check_load_balancer,
)
from harness.errors import UsageError
from harness.events import (
    CreateService,
    Event,
    Scale,
    SetExternalTrafficPolicy,
    SetServiceLabel,
    SetServiceType,
)
from harness.externalclients import LOAD_BALANCER_REACHED, balanced_services
from harness.model.endpoints import expect_external
from harness.model.objects import Destination, ServiceType, TrafficPolicy, labels_of
from harness.runner import Runner
from harness.targets.model import NODE_ADDRESS, ModelTarget
from harness.traffic import ErrorKind, Outcome, TrafficRequest

WEB = labels_of({"app": "web"})
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 2, "node-2"),
    SetServiceType("svc-a", ServiceType.NODE_PORT),
    SetServiceType("svc-a", ServiceType.LOAD_BALANCER),
    SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
]
NODE_2_SOURCE = "10.240.0.222"  # the external client's address handing ingress IPs to node-2


def via(node: str, count: int = 4) -> TrafficRequest:
    return TrafficRequest("svc-a", count=count, external_node=node, via_load_balancer=True)


def test_the_model_answers_an_ingress_ip_as_the_nodes_node_port() -> None:
    target = ModelTarget()
    for event in SEQUENCE[:3]:
        target.apply(event)
    dropped = target.send(via("node-1"))  # NodePort: no ingress IP, its range goes to the sink
    assert {o.error for o in dropped.outcomes} == {ErrorKind.TIMEOUT}
    target.apply(SEQUENCE[3])
    for node in ("node-1", "node-2"):  # Cluster: any endpoint, masqueraded
        sample = target.send(via(node))
        assert all(o.backend is not None for o in sample.outcomes)
        assert {o.seen_source for o in sample.outcomes} == {NODE_ADDRESS}
    target.apply(SEQUENCE[4])
    assert expect_external(target.state, "svc-a", "http", "node-1").drops
    assert {o.error for o in target.send(via("node-1")).outcomes} == {ErrorKind.TIMEOUT}
    kept = target.send(via("node-2"))
    assert {o.seen_source for o in kept.outcomes} == {NODE_2_SOURCE}
    assert target.load_balancer_source("node-2") == NODE_2_SOURCE
    with pytest.raises(UsageError, match="no node 'node-9'"):
        target.send(via("node-9"))
    with pytest.raises(UsageError, match="sources=\\(0,\\)"):
        target.send(replace(via("node-2"), sources=(1,)))


def test_the_part_holds_on_the_model_with_evidence_per_node_and_its_state() -> None:
    runner = Runner(ModelTarget())
    runner.reset()
    steps = runner.run(SEQUENCE)
    judged = [r for r in runner.history if "load_balancer" in r]
    assert len(judged) == 2  # from the step that made it LoadBalancer on
    last = judged[-1]
    assert [(s["node"], s["expected"], s["via"]) for s in last["load_balancer"]] == [
        ("node-1", "drop", "ingress IP"),
        ("node-2", "connect", "ingress IP"),
    ]
    assert last["load_balancer"][1]["seen_sources"] == [NODE_2_SOURCE]
    verdicts = [v for step in steps for v in step.verdicts if v.property == PROPERTY]
    assert all(v.holds for v in verdicts), verdicts
    parts = [v.evidence.get("part") for v in verdicts]
    assert parts == [None, None, LOAD_BALANCER_PART, None, LOAD_BALANCER_PART]
    assert LOAD_BALANCER_REACHED in {f for r in runner.history for f in r["features"]}


class _Unprogrammed(ModelTarget):
    """A model whose ingress IPs go nowhere (the node's sink), its node ports served."""

    def _load_balanced(self, state: Any, service: Any, request: Any) -> Any:
        return [], True


class _IgnoresLocalAtIngress(ModelTarget):
    """A model that serves ingress IPs as externalTrafficPolicy Cluster whatever the policy."""

    def _load_balanced(self, state: Any, service: Any, request: Any) -> Any:
        cluster = replace(service, external_traffic_policy=TrafficPolicy.CLUSTER)
        destinations: list[Destination] = self._external(state, cluster, request)[0]
        return destinations, False


@pytest.mark.parametrize("broken", [_Unprogrammed, _IgnoresLocalAtIngress])
def test_the_part_fails_where_ingress_ips_are_broken(broken: type[ModelTarget]) -> None:
    runner = Runner(broken())
    runner.reset()
    failing = [v for step in runner.run(SEQUENCE) for v in step.verdicts if not v.holds]
    assert failing and {v.property for v in failing} == {PROPERTY}, failing
    assert failing[0].evidence["part"] == LOAD_BALANCER_PART
    assert "ingress IP via node-" in failing[0].message


def test_a_source_other_than_the_handing_address_fails_under_local() -> None:
    target = ModelTarget()
    for event in SEQUENCE:
        target.apply(event)
    expected = expect_external(target.state, "svc-a", "http", "node-2")
    pod = next(iter(expected.usable))
    answer = Outcome(pod, None, 0.1, 0, seen_source="10.240.0.2")
    local = ExternalSample("svc-a", "node-2", expected, (answer,), NODE_2_SOURCE, True, True)
    verdict = check_load_balancer([local])
    assert verdict is not None and not verdict.holds and "10.240.0.2" in verdict.message
    assert "ingress IP via node-2" in verdict.message
    good = replace(local, outcomes=(replace(answer, seen_source=NODE_2_SOURCE),))
    held = check_load_balancer([good])
    assert held is not None and held.holds and held.evidence["part"] == LOAD_BALANCER_PART
    assert check_load_balancer([]) is None


def test_sampled_services_have_an_ingress_ip_and_a_new_one_counts_as_a_change() -> None:
    nodes = ("node-1", "node-2")
    states = [ModelTarget().state]
    for event in SEQUENCE:
        states.append(event.apply(states[-1]))
    made_node_port, made_balanced = SEQUENCE[2], SEQUENCE[3]
    assert balanced_services(made_node_port, states[2], states[3], nodes) == []
    # the node ports' expectation is unchanged, the ingress IP is new
    assert balanced_services(made_balanced, states[3], states[4], nodes) == ["svc-a"]
    label = SetServiceLabel("svc-a", "service.kubernetes.io/headless", "")
    opted_out = label.apply(states[4])
    assert balanced_services(label, states[4], opted_out, nodes) == []
