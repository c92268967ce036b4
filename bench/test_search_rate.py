"""Benchmark (not a unit test): distinct sequences explored per minute on the local cluster, the
one search against the per-property searches it replaced, side by side on one machine.

Before the one search, `harness run` ran one Hypothesis search per property, each with the same
seed and preconditions, so every property replayed the same sequences (issue 10: "about 12
distinct event sequences in all"). This benchmark runs that code (commit `BASELINE`, checked out
in a temporary git worktree, imported through PYTHONPATH in a child process) with its defaults
on local:iptables and counts the distinct sequences it explored and its wall time; then it runs
today's search (the `default` profile, with the old default's 12 steps per example, so that the
sequences compared are as long) on the same target for the same wall time, and records both
rates and their ratio. Goal (issue 10): a ratio of at least 5; recorded, never asserted. The one
search's run is timed by pytest-benchmark (its `benchmark` fixture, one round per seed); its
statistics go into the figure file beside the rates.

Needs root (network namespaces) and the repository's history (git). Figures go to
search_rate.json in the run directory (bench/conftest.py). Sizes: HARNESS_BENCH_RATE_SEEDS
(runs of each, full 3, quick 1) and HARNESS_BENCH_RATE_OLD_EXAMPLES (examples per property of
the old search, full 10 as its default, quick 3: Hypothesis's first example is the empty
sequence, which counts for none).
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sizes import size

from harness import registry
from harness.conformance import options_for, run_target
from harness.profiles import PROFILES
from harness.reporting.runs import write_figures

BASELINE = "da5312d"  # main before the one search: one Hypothesis search per property
GOAL_RATIO = 5.0
SEEDS = size("RATE_SEEDS", full=3, quick=1)
OLD_EXAMPLES = size("RATE_OLD_EXAMPLES", full=10, quick=3)
CHECKOUT = Path(__file__).resolve().parents[1]
OLD_STEPS = 12  # the old default's steps per example: the same length of sequence on both sides

OLD_DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from harness import registry
    from harness.checks import PROPERTIES
    from harness.conformance import options_for, run_property
    seed, examples = int(sys.argv[1]), int(sys.argv[2])
    target = registry.make_target("local:iptables", registry.TargetOptions(extra={"seed": seed}))
    target.open()
    seen, ran = set(), 0
    def record(runner):
        global ran
        ran += 1
        if runner.events:
            seen.add(json.dumps([e.to_json() for e in runner.events]))
    started = time.monotonic()
    try:
        options = options_for(target, seed=seed, examples=examples)
        for prop in PROPERTIES:
            run_property(target, prop, options, on_example_end=record)
    finally:
        target.close()
    print(json.dumps({"seconds": time.monotonic() - started, "distinct": len(seen),
                      "examples": ran}))
    """
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def old_run(worktree: Path, seed: int) -> dict[str, Any]:
    environment = {**os.environ, "PYTHONPATH": str(worktree)}
    done = subprocess.run(
        [sys.executable, "-c", OLD_DRIVER, str(seed), str(OLD_EXAMPLES)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=worktree,
        timeout=3600,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def new_run(seed: int, seconds: float, tmp: Path) -> dict[str, Any]:
    target = registry.make_target("local:iptables", registry.TargetOptions(extra={"seed": seed}))
    options = options_for(
        target,
        seed=seed,
        profile=PROFILES["default"],
        steps=OLD_STEPS,
        budget_s=seconds,
        failures_dir=tmp,
    )
    started = time.monotonic()
    suite = run_target(target, options)
    return {
        "seconds": time.monotonic() - started,
        "distinct": suite.stats.distinct_sequences,
        "examples": suite.stats.examples,
        "failed": [r.name for r in suite.failed],
    }


@pytest.fixture(scope="module")
def baseline_worktree(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("baseline") / "checkout"
    found = subprocess.run(
        ["git", "-C", str(CHECKOUT), "worktree", "add", "--detach", str(path), BASELINE],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        pytest.skip(f"the baseline commit {BASELINE} is not in this checkout's history")
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(CHECKOUT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
        )


def per_minute(run: dict[str, Any]) -> float:
    return float(run["distinct"]) * 60.0 / max(float(run["seconds"]), 1e-9)


def timed_by_pytest_benchmark(benchmark: Any) -> dict[str, Any] | None:
    """pytest-benchmark's own statistics of the run it timed (None when it is disabled)."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    figures: dict[str, Any] = stats.stats.as_dict()
    return {"rounds": figures["rounds"], "seconds_median": round(figures["median"], 3)}


PAIRS: list[dict[str, Any]] = []  # one per seed, in order: the module's tests fill it
STARTED = datetime.datetime.now(datetime.UTC)


def summary(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of every seed so far; a seed whose old search explored nothing has no ratio
    (it is kept in `runs`, and the test fails on it)."""
    ratios = [per_minute(p["new"]) / per_minute(p["old"]) for p in pairs if p["old"]["distinct"]]
    median_ratio = round(statistics.median(ratios), 2) if ratios else None
    return {
        "benchmark": "distinct sequences explored per minute on local:iptables",
        "baseline": f"commit {BASELINE}, default settings (10 examples x 12 steps per property)"
        if OLD_EXAMPLES == 10
        else f"commit {BASELINE}, {OLD_EXAMPLES} examples x 12 steps per property",
        "new": "one search, default profile with 12 steps, for the baseline's wall time"
        " (timed by pytest-benchmark, one round per seed)",
        "runs": pairs,
        "old_per_minute_median": round(statistics.median(per_minute(p["old"]) for p in pairs), 2),
        "new_per_minute_median": round(statistics.median(per_minute(p["new"]) for p in pairs), 2),
        "ratio_median": median_ratio,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": median_ratio is not None and median_ratio >= GOAL_RATIO,
    }


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
def test_distinct_sequences_per_minute(
    seed: int, baseline_worktree: Path, output_dir: Path, tmp_path: Path, benchmark: Any
) -> None:
    """One seed, side by side: the old searches, then the one search for as long, timed by
    pytest-benchmark. search_rate.json is rewritten after every seed with all seeds so far."""
    benchmark.group = "search rate (distinct sequences per minute)"
    old = old_run(baseline_worktree, seed)
    new = benchmark.pedantic(
        new_run, args=(seed, float(old["seconds"]), tmp_path), rounds=1, iterations=1
    )
    pair = {"seed": seed, "old": old, "new": new, "pytest_benchmark": None}
    pair["pytest_benchmark"] = timed_by_pytest_benchmark(benchmark)
    benchmark.extra_info.update(
        old_per_minute=round(per_minute(old), 2), new_per_minute=round(per_minute(new), 2)
    )
    PAIRS.append(pair)
    print(f"wrote {write_figures(output_dir, 'search_rate.json', summary(PAIRS), STARTED)}")
    assert old["distinct"] > 0 and new["distinct"] > 0, pair
    assert not new["failed"], pair
