"""Benchmark (not a unit test): distinct sequences explored per minute on the local cluster, the
one search against the per-property searches it replaced, side by side on one machine.

Before the one search, `harness run` ran one Hypothesis search per property, each with the same
seed and preconditions, so every property replayed the same sequences (issue 10: "about 12
distinct event sequences in all"). This benchmark runs that code (commit `BASELINE`, checked out
in a temporary git worktree, imported through PYTHONPATH in a child process) with its defaults
on local:iptables and counts the distinct sequences it explored and its wall time; then it runs
today's search (the `default` profile, with the old default's 12 steps per example, so that the
sequences compared are as long) on the same target for the same wall time, and records both
rates and their ratio. Goal (issue 10): a ratio of at least 5; recorded, never asserted.

Needs root (network namespaces) and the repository's history (git). Figures go to
search_rate.json in the run directory (bench/conftest.py). Sizes: HARNESS_BENCH_RATE_SEEDS
(runs of each, full 3, quick 1) and HARNESS_BENCH_RATE_OLD_EXAMPLES (examples per property of
the old search, full 10 as its default, quick 2).
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
OLD_EXAMPLES = size("RATE_OLD_EXAMPLES", full=10, quick=1)
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


def test_distinct_sequences_per_minute(
    baseline_worktree: Path, output_dir: Path, tmp_path: Path
) -> None:
    started = datetime.datetime.now(datetime.UTC)
    pairs = []
    for seed in range(1, SEEDS + 1):
        old = old_run(baseline_worktree, seed)
        new = new_run(seed, float(old["seconds"]), tmp_path)
        pairs.append({"seed": seed, "old": old, "new": new})
    ratios = [per_minute(p["new"]) / per_minute(p["old"]) for p in pairs]
    report = {
        "benchmark": "distinct sequences explored per minute on local:iptables",
        "baseline": f"commit {BASELINE}, default settings (10 examples x 12 steps per property)"
        if OLD_EXAMPLES == 10
        else f"commit {BASELINE}, {OLD_EXAMPLES} examples x 12 steps per property",
        "new": "one search, default profile with 12 steps, for the baseline's wall time",
        "runs": pairs,
        "old_per_minute_median": round(statistics.median(per_minute(p["old"]) for p in pairs), 2),
        "new_per_minute_median": round(statistics.median(per_minute(p["new"]) for p in pairs), 2),
        "ratio_median": round(statistics.median(ratios), 2),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": statistics.median(ratios) >= GOAL_RATIO,
    }
    print(f"wrote {write_figures(output_dir, 'search_rate.json', report, started)}")
    assert all(p["old"]["distinct"] > 0 and p["new"]["distinct"] > 0 for p in pairs), pairs
    assert all(not p["new"]["failed"] for p in pairs), pairs
