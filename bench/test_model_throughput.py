"""Benchmark (not a unit test): events applied and checked per second on the `model` target.

Goal (issue 2, "Speed"): at least 2,000 events/s on this 2-core machine.

The sequences are the ones the conformance search itself generates (a fixed seed, recorded from
a run of the reference), so the mix of events and probes is the real one. Each round replays all
of them from an empty cluster through the runner with every check on; `events_per_s` is events
divided by the round's time. The fairness-focused figure is the same replay with the fairness
property selected, where every step also draws a sample sized for the chi-square test's power.

Run: `pytest bench/test_model_throughput.py` (`tox -e bench` runs every benchmark); figures go
to reports/model_throughput.json and pytest-benchmark's own JSON.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from harness.checks import PROPERTIES
from harness.checks.fairness import FairnessPolicy
from harness.conformance import options_for, run_property
from harness.events import Event
from harness.runner import RunConfig, Runner
from harness.targets.model import ModelTarget

REPORT = Path("reports/model_throughput.json")
GOAL_EVENTS_PER_S = 2000
ROUNDS = 5


def recorded_sequences(examples: int = 60, seed: int = 7) -> list[list[Event]]:
    """The sequences one property's search generates on the reference, one list per example."""
    target = ModelTarget(seed=seed)
    options = options_for(target, seed=seed, examples=examples, properties=["endpoints"])
    sequences: list[list[Event]] = []

    def record(runner: Runner) -> None:
        if runner.events:
            sequences.append(list(runner.events))

    run_property(target, "endpoints", options, on_example_end=record)
    return sequences


def replay_all(sequences: list[list[Event]], config: RunConfig) -> int:
    target = ModelTarget()
    runner = Runner(target, config)
    events = 0
    for sequence in sequences:
        runner.reset()
        runner.run(sequence)
        events += len(sequence)
    return events


def measure(sequences: list[list[Event]], config: RunConfig) -> dict[str, Any]:
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        events = replay_all(sequences, config)
        rates.append(events / (time.perf_counter() - started))
    return {
        "events_per_round": events,
        "rounds": ROUNDS,
        "events_per_s_median": round(statistics.median(rates)),
        "events_per_s_min": round(min(rates)),
        "events_per_s_max": round(max(rates)),
    }


@pytest.fixture(scope="module")
def sequences() -> list[list[Event]]:
    return recorded_sequences()


def test_model_events_per_second(benchmark: Any, sequences: list[list[Event]]) -> None:
    every_check = RunConfig(properties=frozenset(PROPERTIES) - {"fairness"})
    fairness = RunConfig(
        properties=frozenset({"fairness"}),
        fairness=FairnessPolicy(max_checks=100 * 30 * len(PROPERTIES)),
    )
    figures = {
        "all_checks_but_per_step_fairness": measure(sequences, every_check),
        "fairness_focused": measure(sequences, fairness),
    }
    benchmark.pedantic(replay_all, args=(sequences, every_check), rounds=3, iterations=1)
    report = {
        "benchmark": "model target: events applied and checked per second",
        "goal_events_per_s": GOAL_EVENTS_PER_S,
        "sequences": len(sequences),
        "host": {"cpus": 2, "python": platform.python_version(), "kernel": platform.release()},
        **figures,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    assert figures["all_checks_but_per_step_fairness"]["events_per_s_median"] >= GOAL_EVENTS_PER_S
