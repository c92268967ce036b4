"""Benchmark (not a unit test): how long a broken proxy takes to its first verdict, against the
time a correct proxy needs for the same profile, on the local cluster.

Issue 10: once a Service missed its deadline, later steps do not wait again for the same
mismatch, and a run on a broken proxy reaches its first verdict (its first failed property,
shrunk, confirmed and saved) within 2x the time the correct proxy needs for the same budget.
Measured: the `quick` profile (its examples and its 3-minute budget) on local:iptables (correct)
from start to end, and on each broken proxy from start to the first verdict and to the end.
Goal recorded, never asserted.

Needs root. Figures go to time_to_verdict.json in the run directory. Sizes:
HARNESS_BENCH_VERDICT_PROXIES (the broken ones; full: mutant-userspace-wrong-port,
mutant-iptables-never-removes, mutant-iptables-drop-empty; quick: mutant-userspace-wrong-port)
and HARNESS_BENCH_VERDICT_EXAMPLES (full: the profile's own sizes and time budget, quick 2).
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sizes import names, size

from harness import registry
from harness.conformance import PropertyResult, options_for, run_target
from harness.profiles import PROFILES
from harness.reporting.runs import write_figures

GOAL_RATIO = 2.0
BROKEN = names(
    "VERDICT_PROXIES",
    full="mutant-userspace-wrong-port,mutant-iptables-never-removes,mutant-iptables-drop-empty",
    quick="mutant-userspace-wrong-port",
)
EXAMPLES = size("VERDICT_EXAMPLES", full=0, quick=2)  # 0: the profile's own (and its budget)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def timed_run(proxy: str, failures: Path) -> dict[str, Any]:
    target = registry.make_target(f"local:{proxy}", registry.TargetOptions(extra={"seed": 23}))
    options = options_for(
        target,
        seed=23,
        profile=PROFILES["quick"],
        examples=EXAMPLES or None,
        failures_dir=failures,
    )
    verdicts: list[tuple[float, str]] = []
    started = time.monotonic()

    def on_verdict(result: PropertyResult) -> None:
        verdicts.append((time.monotonic() - started, result.name))

    suite = run_target(target, options, on_verdict)
    return {
        "proxy": proxy,
        "seconds": round(time.monotonic() - started, 1),
        "first_verdict_s": round(verdicts[0][0], 1) if verdicts else None,
        "verdicts": [{"after_s": round(s, 1), "property": p} for s, p in verdicts],
        "examples": suite.stats.examples,
        "error": suite.error,
    }


def test_time_to_first_verdict(output_dir: Path, tmp_path: Path) -> None:
    started = datetime.datetime.now(datetime.UTC)
    correct = timed_run("iptables", tmp_path)
    broken = [timed_run(proxy, tmp_path) for proxy in BROKEN]
    for run in broken:
        first = run["first_verdict_s"]
        run["ratio_to_correct"] = None if first is None else round(first / correct["seconds"], 2)
    report = {
        "benchmark": "time to the first verdict on broken proxies, quick profile, local cluster",
        "correct": correct,
        "broken": broken,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": all(
            r["ratio_to_correct"] is not None and r["ratio_to_correct"] <= GOAL_RATIO
            for r in broken
        ),
    }
    print(f"wrote {write_figures(output_dir, 'time_to_verdict.json', report, started)}")
    assert correct["error"] is None and not correct["verdicts"], correct
    assert all(r["verdicts"] for r in broken), broken
