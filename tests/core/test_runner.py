"""The runner on hand-written sequences: it converges, records, and raises on the right step."""

import pytest

from harness.errors import Violation
from harness.events import CreateService, DeletePod, Probe, RestartPod, Scale, SetAffinity, Wait
from harness.model import labels_of
from harness.model.objects import Affinity
from harness.runner import RunConfig, replay
from harness.targets.model import ModelTarget
from harness.targets.mutants import MUTANTS

WEB = labels_of({"app": "web"})
SEQUENCE = [
    CreateService("svc", WEB),
    Scale("web", 3),
    Probe("svc"),
    DeletePod("web-0", 30),
    RestartPod("web-1", new_ip=True),
    Wait(31),
    SetAffinity("svc", Affinity.CLIENT_IP, 60),
    Probe("svc", "client-2"),
    Scale("web", 0),
    Probe("svc", keep_alive=True),
]


def test_reference_holds_and_history_records_every_step():
    runner = replay(ModelTarget(), SEQUENCE)
    assert len(runner.history) == len(SEQUENCE)
    first = runner.history.records[1]
    assert first["event"]["kind"] == "scale"
    assert first["services"]["svc"]["usable"] == ["web-0/u1", "web-1/u2", "web-2/u3"]
    assert runner.history.records[-1]["services"]["svc"]["per_connection"]["connections"] == 4
    assert all(0 <= latency < 0.01 for latency in runner.history.latencies_s())


@pytest.mark.parametrize(
    ("mutant", "failing_step", "prop"),
    [
        ("keeps-deleted", 6, "endpoints"),  # web-0's grace period ran out, but it is kept
        ("keeps-old-incarnation", 5, "endpoints"),
        ("first-endpoint", 2, "fairness"),  # checked on every step when focused
        ("late-programming", 2, "programming-latency"),  # an empty Service looks the same late
        ("times-out-when-empty", 1, "reject-when-empty"),
    ],
)
def test_mutants_fail_at_the_step_that_breaks_them(mutant, failing_step, prop):
    target = MUTANTS[mutant]()
    with pytest.raises(Violation) as error:
        replay(target, SEQUENCE, RunConfig(properties=frozenset({prop})))
    assert len(error.value.events) == failing_step
    assert error.value.evidence[0]["property"] == prop


def test_late_programming_is_measured_against_the_deadline_on_simulated_time():
    with pytest.raises(Violation, match="not programmed within the 30s deadline"):
        replay(MUTANTS["late-programming"](), SEQUENCE[:2])
    runner = replay(MUTANTS["late-programming"](), SEQUENCE[:2], RunConfig(deadline_s=60))
    assert max(runner.history.latencies_s()) >= 35
