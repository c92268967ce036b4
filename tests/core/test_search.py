"""The one search: every example a distinct sequence from a reset, exactly the examples asked
for, a time budget that holds, one finding per property, and generation aimed at what the run
has checked least."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from harness.checks import PROPERTIES
from harness.conformance import SuiteResult, options_for, run_target
from harness.profiles import Limits
from harness.runner import Runner
from harness.search import Finding, Search
from harness.strategies import EventSpace
from harness.swarm import AIMS
from harness.targets.model import ModelTarget
from harness.targets.mutants import MUTANTS, TimesOutWhenEmpty
from harness.traffic import ErrorKind, Outcome, TrafficRequest


def search(
    target: ModelTarget, limits: Limits, goal: int = 50, space: EventSpace | None = None
) -> tuple[Search, list[Finding]]:
    found: list[Finding] = []
    runner = Runner(target)
    engine = Search(runner, list(PROPERTIES), space or EventSpace(), limits, goal, found.append)
    return engine, found


def test_exactly_the_examples_asked_for_each_a_distinct_sequence() -> None:
    engine, found = search(ModelTarget(seed=1), Limits(examples=57, steps=10))
    stats = engine.run(4)
    assert stats.examples == 57 == stats.distinct_sequences
    assert stats.events > 57 * 2 and not found
    assert all(len(json.loads(s)) <= 10 for s in stats.sequences)


def test_the_same_seed_explores_the_same_sequences() -> None:
    first, _ = search(ModelTarget(seed=1), Limits(examples=25, steps=10))
    second, _ = search(ModelTarget(seed=1), Limits(examples=25, steps=10))
    assert first.run(9).sequences == second.run(9).sequences


def test_a_time_budget_ends_the_search() -> None:
    engine, _ = search(ModelTarget(seed=1), Limits(examples=10**6, steps=30, budget_s=1.0))
    began = time.monotonic()
    stats = engine.run(2)
    assert stats.stopped == "budget" and time.monotonic() - began < 5.0
    assert 0 < stats.examples < 10**6


def test_one_finding_per_property_and_the_search_goes_on() -> None:
    engine, found = search(MUTANTS["first-endpoint"](seed=1), Limits(examples=40, steps=10))
    stats = engine.run(3)
    names = [f.property for f in found]
    assert "fairness" in names and len(names) == len(set(names))
    assert stats.examples == 40  # not stopped at the first finding
    fairness = next(f for f in found if f.property == "fairness")
    assert not fairness.verdict.holds and fairness.events


def test_aims_bring_rare_states_up_to_the_goal() -> None:
    """With aims, every feature is checked; the least-checked ones are aimed at first (UDP and SCTP
    Services generated, as for the model, which supports every feature)."""
    limits = Limits(examples=200, steps=20)
    engine, _ = search(ModelTarget(seed=1), limits, goal=5, space=EventSpace(udp=True, sctp=True))
    stats = engine.run(6)
    assert stats.coverage.short_of(5) == [], stats.coverage.to_json()
    assert set(AIMS) == set(stats.coverage.to_json())


class TimesOutUntilClosed(ModelTarget):
    """Drops connections to a Service without endpoints until it is first closed: a chance
    alarm that no fresh target reproduces (as a loaded machine's can be)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.closed_once = False

    def close(self) -> None:
        self.closed_once = True
        super().close()

    def on_no_endpoints(self, connection: int, request: TrafficRequest, drops: bool) -> Outcome:
        if not self.closed_once:
            return Outcome(None, ErrorKind.TIMEOUT, request.timeout_s * 1000, connection)
        return super().on_no_endpoints(connection, request, drops)


def stop_at_first_run(target: ModelTarget, tmp_path: Path) -> SuiteResult:
    options = options_for(
        target,
        seed=3,
        examples=8,
        steps=6,
        properties=("reject-when-empty", "endpoints"),  # endpoints holds on both targets
        failures_dir=tmp_path,
    )
    return run_target(target, replace(options, stop_at_first=True))


def test_stop_at_first_stops_at_a_finding_that_reproduces(tmp_path: Path) -> None:
    suite = stop_at_first_run(TimesOutWhenEmpty(), tmp_path)
    (failure,) = suite.failed
    assert not failure.flaky and failure.reproduced == "2/2"
    assert suite.stats.stopped == "first found" and suite.stats.examples < 8


def test_stop_at_first_goes_on_after_a_finding_no_fresh_target_reproduces(tmp_path: Path) -> None:
    """The unconfirmed finding is reported (flaky, its file saved) and the search goes on to its
    limit looking for one that reproduces: a chance alarm never stands for a catch."""
    suite = stop_at_first_run(TimesOutUntilClosed(), tmp_path)
    (failure,) = suite.failed
    assert failure.flaky and failure.reproduced == "0/2"
    assert failure.failure_file is not None and failure.failure_file.exists()
    assert suite.stats.stopped == "examples" and suite.stats.examples == 8
