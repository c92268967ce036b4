"""externalIPs on the model (issue 11 item 2): `set-external-ips` on any Service type, the
expectation at an externalIP handed to a node (`expect_external_ip`), `node-port`'s part
`external-ip` judged from outside via every node on the model, its verdicts on broken targets,
which Services are sampled, and where the event is drawn."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checks.external import EXTERNAL_IP, PROPERTY, ExternalSample, check_external_ip
from harness.errors import InvalidEvent, UsageError
from harness.events import (
    CreateService,
    Event,
    Scale,
    SetExternalIPs,
    SetExternalTrafficPolicy,
    SetServiceLabel,
    SetServiceType,
    apply_all,
    event_from_json,
)
from harness.externalclients import EXTERNAL_IP_REACHED, addressed_services
from harness.features import EXTERNAL_IPS, attribute_failure
from harness.model.endpoints import expect_external_ip
from harness.model.objects import ServiceType, TrafficPolicy, labels_of
from harness.proxies.base import KERNEL_FEATURES
from harness.runner import Runner
from harness.strategies import GENERATORS, EventSpace
from harness.targets.model import NODE_ADDRESS, ModelTarget
from harness.traffic import ErrorKind, Outcome, TrafficRequest

WEB = labels_of({"app": "web"})
ADDRESSES = ("10.254.0.10", "10.254.0.11")
SEQUENCE: list[Event] = [
    CreateService("svc-a", WEB),
    Scale("web", 2, "node-2"),
    SetExternalIPs("svc-a", ADDRESSES),  # still ClusterIP
    SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL),
]
NODE_2_SOURCE = "10.240.0.222"  # the external client's address handing addresses to node-2


def to(node: str, address: str = ADDRESSES[0], count: int = 4) -> TrafficRequest:
    return TrafficRequest("svc-a", count=count, external_node=node, external_ip=address)


def test_set_external_ips_checks_its_addresses_and_keeps_the_policy_while_accessible() -> None:
    state = apply_all(SEQUENCE)
    service = state.services["svc-a"]
    assert service.type == ServiceType.CLUSTER_IP and service.externally_accessible
    assert service.external_traffic_policy == TrafficPolicy.LOCAL
    # made NodePort and back, it keeps its policy: it stays externally accessible
    made = [SetServiceType("svc-a", t) for t in (ServiceType.NODE_PORT, ServiceType.CLUSTER_IP)]
    back = apply_all(made, state)
    assert back.services["svc-a"].external_traffic_policy == TrafficPolicy.LOCAL
    cleared = SetExternalIPs("svc-a", ()).apply(back)  # no longer accessible: policy dropped
    assert cleared.services["svc-a"].external_traffic_policy == TrafficPolicy.CLUSTER
    with pytest.raises(InvalidEvent, match="only to NodePort and LoadBalancer Services and"):
        SetExternalTrafficPolicy("svc-a", TrafficPolicy.LOCAL).apply(cleared)
    other = CreateService("svc-b", WEB).apply(state)
    for bad, complaint in [
        (("10.255.0.10",), "not an address of 10.254.0.0/24"),
        (("bogus",), "not an address of"),
        (ADDRESSES[:1] * 2, "distinct"),
        ((*ADDRESSES, "10.254.0.12"), "at most 2"),
        (ADDRESSES[1:], "already Service 'svc-a'"),
    ]:
        with pytest.raises(InvalidEvent, match=complaint):
            SetExternalIPs("svc-b", bad).apply(other)
    event = SetExternalIPs("svc-a", ADDRESSES)
    assert event_from_json(event.to_json()) == event
    with pytest.raises(UsageError, match="at most 2 strings"):
        event_from_json({"kind": "set-external-ips", "service": "svc-a", "addresses": "x"})


def test_the_model_answers_an_external_ip_as_the_nodes_node_port() -> None:
    target = ModelTarget()
    for event in SEQUENCE[:2]:
        target.apply(event)
    unlisted = target.send(to("node-1"))  # no externalIPs yet: the node's sink
    assert {o.error for o in unlisted.outcomes} == {ErrorKind.TIMEOUT}
    target.apply(SEQUENCE[2])
    for node, address in zip(("node-1", "node-2"), ADDRESSES, strict=True):
        sample = target.send(to(node, address))  # Cluster: any endpoint, masqueraded
        assert all(o.backend is not None for o in sample.outcomes)
        assert {o.seen_source for o in sample.outcomes} == {NODE_ADDRESS}
    target.apply(SEQUENCE[3])
    assert expect_external_ip(target.state, "svc-a", "http", "node-1", ADDRESSES[0]).drops
    assert {o.error for o in target.send(to("node-1")).outcomes} == {ErrorKind.TIMEOUT}
    kept = target.send(to("node-2", ADDRESSES[1]))
    assert {o.seen_source for o in kept.outcomes} == {NODE_2_SOURCE}
    assert not expect_external_ip(target.state, "svc-a", "http", "node-2", "10.254.0.99").usable
    with pytest.raises(UsageError, match="not both"):
        target.send(replace(to("node-2"), via_load_balancer=True))
    with pytest.raises(UsageError, match="sources=\\(0,\\)"):
        target.send(replace(to("node-2"), sources=(1,)))


def test_the_part_holds_on_the_model_with_evidence_per_node_and_its_state() -> None:
    runner = Runner(ModelTarget())
    runner.reset()
    steps = runner.run(SEQUENCE)
    judged = [r for r in runner.history if "external_ip" in r]
    assert len(judged) == 2  # from the step that gave it externalIPs on
    assert [(s["node"], s["expected"], s["via"]) for s in judged[-1]["external_ip"]] == [
        ("node-1", "drop", f"external IP {ADDRESSES[0]}"),
        ("node-2", "connect", f"external IP {ADDRESSES[1]}"),
    ]
    assert judged[-1]["external_ip"][1]["seen_sources"] == [NODE_2_SOURCE]
    verdicts = [v for step in steps for v in step.verdicts if v.property == PROPERTY]
    assert verdicts and all(v.holds for v in verdicts), verdicts
    assert {v.evidence.get("part") for v in verdicts} == {EXTERNAL_IP.part}  # a ClusterIP one
    assert EXTERNAL_IP_REACHED in {f for r in runner.history for f in r["features"]}


class _Unprogrammed(ModelTarget):
    """A model whose externalIPs go nowhere (the node's sink)."""

    def _addressed(self, state: Any, service: Any, request: Any) -> Any:
        return [], True


class _IgnoresLocalAtExternalIps(ModelTarget):
    """A model that serves externalIPs as externalTrafficPolicy Cluster whatever the policy."""

    def _addressed(self, state: Any, service: Any, request: Any) -> Any:
        cluster = replace(service, external_traffic_policy=TrafficPolicy.CLUSTER)
        node = self._external_node(request)
        return self._from_outside(state, cluster, request, node)[0], False


@pytest.mark.parametrize("broken", [_Unprogrammed, _IgnoresLocalAtExternalIps])
def test_the_part_fails_where_external_ips_are_broken(broken: type[ModelTarget]) -> None:
    runner = Runner(broken())
    runner.reset()
    failing = [v for step in runner.run(SEQUENCE) for v in step.verdicts if not v.holds]
    assert failing and {v.property for v in failing} == {PROPERTY}, failing
    assert failing[0].evidence["part"] == EXTERNAL_IP.part
    assert "external IP of it via node-" in failing[0].message
    assert EXTERNAL_IPS in attribute_failure(PROPERTY, SEQUENCE)


def test_a_source_other_than_the_handing_address_fails_under_local() -> None:
    state = apply_all(SEQUENCE)
    expected = expect_external_ip(state, "svc-a", "http", "node-2", ADDRESSES[1])
    answer = Outcome(next(iter(expected.usable)), None, 0.1, 0, seen_source="10.240.0.2")
    local = ExternalSample(
        "svc-a", "node-2", expected, (answer,), NODE_2_SOURCE, True, external_ip=ADDRESSES[1]
    )
    verdict = check_external_ip([local])
    assert verdict is not None and not verdict.holds and "10.240.0.2" in verdict.message
    good = replace(local, outcomes=(replace(answer, seen_source=NODE_2_SOURCE),))
    held = check_external_ip([good])
    assert held is not None and held.holds and held.evidence["part"] == EXTERNAL_IP.part
    assert check_external_ip([]) is None


def test_sampled_services_have_external_ips_and_new_ones_count_as_a_change() -> None:
    nodes = ("node-1", "node-2")
    states = [ModelTarget().state]
    for event in SEQUENCE:
        states.append(event.apply(states[-1]))
    assert addressed_services(SEQUENCE[1], states[1], states[2], nodes) == []
    assert addressed_services(SEQUENCE[2], states[2], states[3], nodes) == ["svc-a"]
    assert addressed_services(SEQUENCE[3], states[3], states[4], nodes) == ["svc-a"]
    label = SetServiceLabel("svc-a", "service.kubernetes.io/headless", "")
    assert addressed_services(label, states[4], label.apply(states[4]), nodes) == []


@settings(max_examples=30, deadline=None, database=None)
@given(st.data())
def test_set_external_ips_is_drawn_only_where_declared(data: st.DataObject) -> None:
    state = apply_all(SEQUENCE[:2])
    generator = GENERATORS["set_external_ips"]
    assert not generator.applies(state, EventSpace(features=KERNEL_FEATURES - {EXTERNAL_IPS}))
    space = EventSpace(features=KERNEL_FEATURES)
    assert generator.applies(state, space)
    event = data.draw(generator.strategy(state, space))
    assert isinstance(event, SetExternalIPs) and len(event.addresses) <= 2
    event.apply(state)  # valid by construction
