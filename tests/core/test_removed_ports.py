"""A port removed from a Service is judged too (issue 12 item 3: "removing one protocol stops
only it within the deadline"): after a step that removes a port or moves it to another
protocol, fresh connections to its old number and protocol on the VIP must reach no pod
(`no-stale-traffic`, part `removed-port`); the model mutant that keeps serving removed ports is
caught at that step, and the reference passes it."""

from __future__ import annotations

from harness.events import (
    AddServicePort,
    CreateDualProtocolService,
    RemoveServicePort,
    Scale,
    SetPortProtocol,
)
from harness.model.objects import Protocol, Service, ServicePort, labels_of
from harness.ports import REMOVED_PART, removed_ports
from harness.runner import RunConfig, Runner
from harness.targets.model import ModelTarget
from harness.targets.mutants import MUTANTS

WEB = labels_of({"app": "web"})
SEQUENCE = [
    CreateDualProtocolService("svc-a", WEB),
    Scale("web", 2),
    RemoveServicePort("svc-a", "udp"),
    AddServicePort("svc-a", "dns", 53, "udp", Protocol.UDP),
    SetPortProtocol("svc-a", "dns", Protocol.TCP, "http"),
]


def removed_verdicts(target: ModelTarget) -> list[tuple[int, bool, int]]:
    """(step, holds, port) of every removed-port verdict of SEQUENCE on `target`."""
    runner = Runner(target, RunConfig(deadline_s=5.0))
    runner.reset()
    return [
        (step, verdict.holds, verdict.evidence["port"])
        for step, result in enumerate(runner.run(SEQUENCE), start=1)
        for verdict in result.verdicts
        if verdict.evidence.get("part") == REMOVED_PART
    ]


def test_removed_ports_are_those_whose_number_and_protocol_went() -> None:
    old = Service(
        "s", "10.96.0.10", WEB, (ServicePort("http", 80), ServicePort("u", 80, "udp", "UDP"))
    )
    assert removed_ports(old, Service("s", "10.96.0.10", WEB)) == ((80, "UDP"),)
    moved = Service(
        "s", "10.96.0.10", WEB, (ServicePort("http", 80), ServicePort("u", 81, "udp", "UDP"))
    )
    assert removed_ports(old, moved) == ((80, "UDP"),)
    assert removed_ports(old, old) == () and removed_ports(None, old) == ()


def test_the_reference_stops_serving_a_removed_port_and_the_mutant_does_not() -> None:
    reference = removed_verdicts(ModelTarget())
    assert [(step, holds, port) for step, holds, port in reference if not holds] == []
    assert {port for _, _, port in reference} == {80, 53}  # UDP 80 removed, UDP 53 moved to TCP
    caught = removed_verdicts(MUTANTS["keeps-removed-ports"]())
    assert [(step, port) for step, holds, port in caught if not holds][:1] == [(3, 80)]
