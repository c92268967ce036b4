"""Mutation testing of the harness itself: every mutant must fail the suite, the reference must not.

`mutation_report` runs the conformance suite against the reference model and against every
deliberately broken target (and, where the machine allows, every data-plane mutant proxy of the
local cluster), and records for each mutant the property that caught it and the length of its
shrunk counterexample, and for the reference the number of false alarms. `tox -e report` writes
it to reports/mutants.json; tests/test_mutants.py asserts the same on a smaller run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from harness.conformance import Status, SuiteOptions, options_for, run_property
from harness.targets.base import Target
from harness.targets.model import ModelTarget
from harness.targets.mutants import MUTANTS

MUTANTS_SCHEMA = "harness.mutants/v1"


def suite_options(examples: int, steps: int, seed: int, failures_dir: Path) -> SuiteOptions:
    return options_for(
        ModelTarget(), seed=seed, examples=examples, steps=steps, failures_dir=failures_dir
    )


def first_failure(target: Target, options: SuiteOptions) -> dict[str, Any]:
    """Run the properties in order until one fails; what caught the target, and how."""
    started = time.monotonic()
    examples = 0
    for prop in options.properties:
        result = run_property(target, prop, options)
        examples += result.examples
        if result.status == Status.FAILED:
            return {
                "caught": True,
                "property": result.name,
                "counterexample_events": len(result.counterexample),
                "counterexample": [str(e) for e in result.counterexample],
                "message": result.message,
                "examples_run": examples,
                "seconds": round(time.monotonic() - started, 2),
            }
    return {
        "caught": False,
        "examples_run": examples,
        "seconds": round(time.monotonic() - started, 2),
    }


def false_alarms(target: Target, options: SuiteOptions) -> dict[str, Any]:
    """Run every property on a correct target; every failure is a false alarm."""
    results = [run_property(target, prop, options) for prop in options.properties]
    return {
        "false_alarms": sum(r.status == Status.FAILED for r in results),
        "examples_per_property": options.examples,
        "events": sum(r.events for r in results),
        "failed": [r.name for r in results if r.status == Status.FAILED],
    }


def mutation_report(
    examples: int = 100,
    reference_examples: int = 200,
    steps: int = 30,
    seed: int = 0,
    failures_dir: Path = Path("reports/failures/mutants"),
    extra_targets: Sequence[tuple[str, Callable[[], Any]]] = (),
) -> dict[str, Any]:
    """The whole report; `extra_targets` adds (name, factory) pairs such as local mutants."""
    options = suite_options(examples, steps, seed, failures_dir)
    reference = false_alarms(ModelTarget(seed=seed), replace(options, examples=reference_examples))
    mutants: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = [
        (f"mutant:{name}", partial(cls, seed=seed)) for name, cls in MUTANTS.items()
    ]
    for name, factory in [*factories, *extra_targets]:
        target = factory()
        target.open()
        try:
            mutants[name] = first_failure(target, options)
        finally:
            target.close()
    lengths = [m["counterexample_events"] for m in mutants.values() if m["caught"]]
    return {
        "schema": MUTANTS_SCHEMA,
        "seed": seed,
        "examples_per_property": examples,
        "steps_per_example": steps,
        "reference": reference,
        "mutants": mutants,
        "caught": f"{len(lengths)} of {len(mutants)}",
        "median_counterexample_events": statistics.median(lengths) if lengths else None,
    }
