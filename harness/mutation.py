"""Mutation testing of the harness itself: every mutant must be caught, no correct target alarmed.

The harness's worth is what it catches. `catch` runs the `quick` profile's search against one
deliberately broken target until the first violation and records which property caught it, its
shrunk counterexample and how long it took; `false_alarms` runs a correct target and counts every
violation as a false alarm, next to the run's stated false-alarm budget. `mutation_report` does
both for a set of targets: the model mutants (`mutant:NAME`, simulated time), and where the
machine allows, the data-plane mutant proxies (`local:mutant-...`) and the control-plane mutants
of the local cluster (`mutant-controller:NAME`). `tox -e report` writes it to a file; the tests
assert the same on the CI's sizes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import registry
from harness.conformance import PropertyResult, SuiteOptions, options_for, run_target
from harness.errors import UsageError
from harness.failures import RunContext
from harness.model.objects import RUN_NODES
from harness.profiles import PROFILES, Profile
from harness.targets.mutants import MUTANTS

MUTANTS_SCHEMA = "harness.mutants/v2"
CATCH_CONFIRMATIONS = 2
"""Fresh targets a caught mutant's counterexample is replayed on. A real data plane's
counterexample may hold by chance on one replay (a flushed UDP flow re-balanced onto its own
endpoint, or a sample slowed past its timeout on a loaded machine), so a catch counts as
confirmed when at least one replay reproduces it (`confirmed`); the model's replays are exact."""


def confirmed(reproduced: str) -> bool:
    """Whether a "k/n" reproduction count confirms a catch: k >= 1."""
    return not reproduced.startswith("0/")


def model_mutant_specs() -> list[str]:
    return [f"mutant:{name}" for name in MUTANTS]


def local_mutant_specs() -> list[str]:
    """Data-plane mutant proxies and control-plane mutants of the local cluster."""
    from harness.proxies.mutants import MUTANT_PROXIES
    from harness.targets.controller_mutants import CONTROLLER_MUTANTS

    return [f"local:{name}" for name in MUTANT_PROXIES] + [
        f"mutant-controller:{name}" for name in CONTROLLER_MUTANTS
    ]


def _options(
    spec: str,
    target: Any,
    profile: Profile,
    seed: int,
    failures: Path,
    deadline_s: float | None = None,
) -> SuiteOptions:
    return options_for(
        target,
        seed=seed,
        profile=profile,
        deadline_s=deadline_s,
        failures_dir=failures,
        run=RunContext(spec, seed, _replay_options(target, deadline_s)),
    )


def _replay_options(target: Any, deadline_s: float | None) -> dict[str, Any]:
    """What a saved counterexample's replay needs of this run: the deadline when given, the
    node count of a local target (a replay of a file without one builds one node)."""
    options: dict[str, Any] = {} if deadline_s is None else {"deadline": deadline_s}
    nodes = getattr(target, "nodes", None)
    if isinstance(nodes, int):
        options["nodes"] = nodes
    return options


def catch(
    spec: str,
    profile: Profile = PROFILES["quick"],
    seed: int = 0,
    failures: Path = Path("."),
    deadline_s: float | None = None,
) -> dict[str, Any]:
    """Search one broken target with `profile` until its first violation (see the module
    docstring); the result records whether and how it was caught. `deadline_s` overrides the
    target's programming deadline (a broken data plane costs one deadline per failing replay
    while its counterexample is shrunk)."""
    target = registry.make_target(
        spec, registry.TargetOptions(nodes=nodes_to_catch(spec), extra={"seed": seed})
    )
    options = replace(
        _options(spec, target, profile, seed, failures, deadline_s),
        stop_at_first=True,
        confirmations=CATCH_CONFIRMATIONS,
    )
    started = time.monotonic()
    suite = run_target(target, options)
    seconds = round(time.monotonic() - started, 2)
    if suite.error is not None:
        return {"caught": False, "error": suite.error, "seconds": seconds}
    if not suite.failed:
        return {"caught": False, "examples_run": suite.stats.examples, "seconds": seconds}
    first = headline_finding(suite.failed)
    return {
        "caught": True,
        "property": first.name,
        "properties": sorted(r.name for r in suite.failed),
        "counterexample_events": len(first.counterexample),
        "counterexample": [str(e) for e in first.counterexample],
        "message": first.message,
        "reproduced": first.reproduced,
        "examples_run": suite.stats.examples,
        "seconds": seconds,
    }


def headline_finding(failed: Sequence[PropertyResult]) -> PropertyResult:
    """The finding that shows the mutant caught: the first found whose counterexample
    reproduced on a fresh target (a confirmed catch), else the first found. A property more
    specific than `programming-latency` comes first, since a persisting mismatch misses the
    deadline too.

    A broken data plane can make a traffic property fail by chance during another property's
    shrinking (a sample that happened to reach the stale endpoint); such a finding is kept and
    reported flaky by the run, but it is not the evidence a mutation report should quote when
    a confirmed one exists."""

    def rank(result: PropertyResult) -> tuple[bool, bool, float]:
        confirmed = not result.flaky
        specific = result.name != "programming-latency"
        return (not confirmed, not specific, result.found_after_s or 0.0)

    return sorted(failed, key=rank)[0]


def nodes_to_catch(spec: str) -> int:
    """Node namespaces a local mutant is searched on: the `nodes` its proxy class says it needs
    (one wrong only on nodes other than node-1: `mutant-iptables-wrong-node`), else one, so a
    mutant session costs what it did before the local cluster had nodes (two cost about 40%
    more per example). Other targets ignore the count."""
    kind, _, name = spec.partition(":")
    if kind != "local" or not name:
        return 1
    try:
        proxy_class = registry.load_proxy(name)
    except UsageError:
        return 1  # make_target says what is wrong with the spec
    return int(getattr(proxy_class, "nodes", 1))


def false_alarms(
    spec: str,
    examples: int,
    profile: Profile = PROFILES["quick"],
    seed: int = 0,
    failures: Path = Path("."),
) -> dict[str, Any]:
    """Run a correct target for `examples` examples; every violation is a false alarm."""
    target = registry.make_target(
        spec, registry.TargetOptions(nodes=RUN_NODES, extra={"seed": seed})
    )
    options = _options(spec, target, profile, seed, failures)
    options = replace(options, limits=replace(options.limits, examples=examples, budget_s=None))
    suite = run_target(target, options)
    budget = options.config.budget
    return {
        "false_alarms": len(suite.failed),
        "failed": [r.name for r in suite.failed],
        "error": suite.error,
        "examples": suite.stats.examples,
        "events": suite.stats.events,
        "measured_rate": len(suite.failed) / max(len(suite.results), 1),
        "budget_per_run": budget.run_alpha,
        "budget_per_check": budget.per_check,
    }


def mutation_report(
    mutants: Sequence[str],
    references: Sequence[str] = ("model",),
    reference_examples: int = 200,
    profile: Profile = PROFILES["quick"],
    seed: int = 0,
    failures_dir: Path = Path("reports/failures/mutants"),
) -> dict[str, Any]:
    """Catch every mutant in `mutants` and run every correct target in `references` (see the
    module docstring); the whole report as JSON-able data. Counterexamples go to
    `failures_dir` (created if needed)."""
    failures_dir.mkdir(parents=True, exist_ok=True)
    caught = {spec: catch(spec, profile, seed, failures_dir) for spec in mutants}
    reference = {
        spec: false_alarms(spec, reference_examples, profile, seed, failures_dir)
        for spec in references
    }
    lengths = [m["counterexample_events"] for m in caught.values() if m["caught"]]
    return {
        "schema": MUTANTS_SCHEMA,
        "seed": seed,
        "profile": profile.name,
        "mutants": caught,
        "caught": f"{len(lengths)} of {len(caught)}",
        "median_counterexample_events": statistics.median(lengths) if lengths else None,
        "references": reference,
    }
