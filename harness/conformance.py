"""Running the conformance suite: one Hypothesis state-machine run per property.

Each property runs as its own search (like one conformance spec), so that a failure shrinks
towards that property's shortest counterexample and the others still get a verdict.

Hypothesis generates the sequences; a failing one is shrunk by events (`harness.shrink`, delta
debugging with a bounded number of replays), replayed once more to record its history, and saved
so that `harness replay FILE` reproduces it. Hypothesis's own shrinker is off by default: it
minimises the choices behind a sequence, not its length, and on this suite it took 10-40 times
as many replays for counterexamples no shorter (measured on the ten model mutants: median 3
events either way), which matters when every replay drives a real data plane.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test

from harness.checks import PROPERTIES, rules
from harness.checks.fairness import FairnessPolicy
from harness.clock import SimulatedClock
from harness.errors import Violation
from harness.events import Event, save_sequence
from harness.history import History
from harness.runner import RunConfig, Runner
from harness.shrink import shrink_events
from harness.strategies import EventSpace, machine_factory
from harness.targets.base import RuleOracle, Target

FAILURE_SCHEMA = "harness.failure/v1"


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class PropertyResult:
    """The outcome of one property's run."""

    name: str
    status: Status
    examples: int = 0
    events: int = 0
    duration_s: float = 0.0
    message: str = ""
    counterexample: list[Event] = field(default_factory=list)
    verdicts: Any = None
    history: History | None = None
    failure_file: Path | None = None
    latencies_s: list[float] = field(default_factory=list)
    flaky: bool = False


@dataclass(frozen=True)
class SuiteOptions:
    """What to run: properties, examples per property, steps per example, seed, sizes."""

    properties: Sequence[str] = tuple(PROPERTIES)
    examples: int = 100
    steps: int = 30
    seed: int = 0
    space: EventSpace = field(default_factory=EventSpace)
    config: RunConfig = field(default_factory=RunConfig)
    failures_dir: Path = Path("reports/failures")
    extra_shrink_tries: int = 200
    extra_shrink_seconds: float = 120.0
    hypothesis_shrink: bool = False


def select_properties(focus: str | None, skip: str | None) -> list[str]:
    """Property names matching the `focus` regex and not the `skip` regex (Ginkgo-style)."""
    import re

    chosen = [p for p in PROPERTIES if focus is None or re.search(focus, p)]
    return [p for p in chosen if skip is None or not re.search(skip, p)]


def applicable(prop: str, target: Target) -> str | None:
    """Why `prop` cannot run on `target`, or None if it can."""
    if prop == rules.PROPERTY and not isinstance(target, RuleOracle):
        return "the target cannot show its programmed rules"
    return None


def _unwrap(error: BaseException) -> Violation | None:
    if isinstance(error, Violation):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _unwrap(inner)
            if found is not None:
                return found
    return None


def _hypothesis_settings(options: SuiteOptions) -> settings:
    phases = (
        tuple(Phase) if options.hypothesis_shrink else tuple(p for p in Phase if p != Phase.shrink)
    )
    return settings(
        phases=phases,
        max_examples=options.examples,
        stateful_step_count=options.steps,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )


def run_property(
    target: Target,
    prop: str,
    options: SuiteOptions,
    progress: Callable[[str, int, int], None] | None = None,
    on_example_end: Callable[[Runner], None] | None = None,
) -> PropertyResult:
    """Search for a counterexample to `prop` on `target`; shrink and save it if one is found.

    `on_example_end`, if given, sees the runner before every reset (after each example and
    each shrinking replay), with that example's events and history."""
    started = time.monotonic()
    reason = applicable(prop, target)
    if reason is not None:
        return PropertyResult(prop, Status.SKIPPED, message=reason)
    counts = {"examples": 0, "events": 0}
    latencies: list[float] = []

    def on_step(event: Event) -> None:
        counts["events"] += 1

    config = replace(options.config, properties=frozenset({prop}))

    def on_reset(finished: Runner) -> None:
        latencies.extend(finished.history.latencies_s())
        counts["examples"] += 1
        if progress is not None:
            progress(prop, counts["examples"], options.examples)
        if on_example_end is not None:
            on_example_end(finished)

    runner = Runner(target, config, on_step=on_step, on_reset=on_reset)
    # get_state_machine_test takes any factory of machines (run_state_machine_as_test documents
    # it); its annotation varies across Hypothesis releases, hence the cast.
    build_test = cast(Any, get_state_machine_test)
    test = build_test(
        machine_factory(runner, options.space), settings=_hypothesis_settings(options)
    )
    test = seed(options.seed)(test)
    violation: Violation | None = None
    flaky = False
    try:
        test()
    except Violation as error:
        violation = error
    except Flaky as error:
        # A real data plane may not fail the same way on every replay; Hypothesis then reports
        # flakiness instead of the violation. The violation is still the finding.
        violation, flaky = _unwrap(error) or runner.last_violation, True
        if violation is None:
            raise
    latencies.extend(runner.history.latencies_s())
    result = PropertyResult(
        prop,
        Status.PASSED,
        examples=counts["examples"],
        events=counts["events"],
        latencies_s=latencies,
        flaky=flaky,
    )
    if violation is not None:
        _record_failure(result, violation, target, runner, options)
    result.duration_s = time.monotonic() - started
    return result


def _replay_fails(runner: Runner, events: list[Event]) -> Violation | None:
    try:
        runner.reset()
        runner.run(events)
    except Violation as violation:
        return violation
    return None


def _record_failure(
    result: PropertyResult,
    violation: Violation,
    target: Target,
    runner: Runner,
    options: SuiteOptions,
) -> None:
    events: list[Event] = list(getattr(violation, "events", []))
    shrunk = shrink_events(
        events,
        lambda candidate: _replay_fails(runner, candidate) is not None,
        max_tries=options.extra_shrink_tries,
        max_seconds=options.extra_shrink_seconds,
    )
    final = _replay_fails(runner, shrunk)
    if final is None:  # did not reproduce on replay: keep what Hypothesis found
        shrunk, final, result.flaky = events, violation, True
    result.status = Status.FAILED
    result.message = str(final)
    result.counterexample = shrunk
    result.verdicts = final.evidence
    result.history = getattr(final, "history", None)
    result.failure_file = save_failure(result, target.name, options)


def failure_id(prop: str, target_name: str, events: Sequence[Event]) -> str:
    digest = hashlib.sha256(json.dumps([e.to_json() for e in events]).encode()).hexdigest()[:8]
    safe_target = "".join(c if c.isalnum() else "-" for c in target_name)
    return f"{prop}-{safe_target}-{digest}"


def save_failure(result: PropertyResult, target_name: str, options: SuiteOptions) -> Path:
    """Write the shrunk sequence with its failure and history; `harness replay` reads it."""
    path = (
        options.failures_dir / f"{failure_id(result.name, target_name, result.counterexample)}.json"
    )
    save_sequence(
        path,
        result.counterexample,
        failure={
            "schema": FAILURE_SCHEMA,
            "property": result.name,
            "target": target_name,
            "seed": options.seed,
            "message": result.message,
            "verdicts": result.verdicts,
            "flaky": result.flaky,
        },
        history=result.history.to_json() if result.history else [],
    )
    return path


def run_suite(
    target: Target,
    options: SuiteOptions,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[PropertyResult]:
    """Run every selected property in order on an opened target."""
    return [run_property(target, prop, options, progress) for prop in options.properties]


def options_for(
    target: Target,
    *,
    seed: int,
    examples: int | None = None,
    steps: int | None = None,
    deadline_s: float | None = None,
    properties: Sequence[str] = tuple(PROPERTIES),
    failures_dir: Path = Path("reports/failures"),
) -> SuiteOptions:
    """Suite options with the target's defaults filled in.

    Simulated targets (the model) get 100 examples of up to 30 steps; real ones 10 of up to 12,
    unless the target names its own `default_examples`, `default_steps`, `default_deadline_s`.
    The fairness budget is shared by every step of every example of every property.
    """
    simulated = isinstance(target.clock, SimulatedClock)
    chosen_examples = int(_given_or(examples, target, "default_examples", 100 if simulated else 10))
    chosen_steps = int(_given_or(steps, target, "default_steps", 30 if simulated else 12))
    deadline = float(_given_or(deadline_s, target, "default_deadline_s", 30.0))
    return SuiteOptions(
        properties=tuple(properties),
        examples=chosen_examples,
        steps=chosen_steps,
        seed=seed,
        space=EventSpace(simulated=simulated),
        config=RunConfig(
            deadline_s=deadline,
            fairness=FairnessPolicy(max_checks=chosen_examples * chosen_steps * len(PROPERTIES)),
        ),
        failures_dir=failures_dir,
        extra_shrink_tries=200 if simulated else 60,
    )


def _given_or(given: float | None, target: Target, attribute: str, fallback: float) -> float:
    """The value the user gave, else the target's own default, else the harness's."""
    if given is not None:
        return given
    value = getattr(target, attribute, fallback)
    return float(value)
