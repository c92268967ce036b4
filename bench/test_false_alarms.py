"""Benchmark (not a unit test): false alarms of the correct proxies, on a loaded machine.

Issues 10 and 14: the reference proxies (iptables, nftables, userspace) show no false alarm in
200 examples each, with both cores busy (a CPU hog beside the run), and the figure is stated next
to the run's false-alarm budget. Each run is the `quick` profile's search with its example count
raised to `EXAMPLES` and no time budget; the hog is one busy-looping process per core, each
ending by itself after the run's expected length (and killed when the run ends).

Records, per proxy: examples, events, the properties that failed (each a false alarm: these
proxies are correct), the measured rate (failed properties per judged property) and the budget
(the run's `run_alpha`, shared by every statistical check). Asserts only that every run judged
what it was asked to; the false alarms are the figure.

Needs root. Figures go to false_alarms.json in the run directory (bench/conftest.py). Sizes:
HARNESS_BENCH_ALARM_EXAMPLES (full 200, quick 3), HARNESS_BENCH_ALARM_PROXIES (full
iptables,nftables,userspace; quick userspace), HARNESS_BENCH_ALARM_HOG (1 with the hog, 0
without; default 1).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sizes import names, size

from harness import registry
from harness.conformance import options_for, run_target
from harness.profiles import PROFILES
from harness.reporting.runs import write_figures

EXAMPLES = size("ALARM_EXAMPLES", full=200, quick=2)
PROXIES = names("ALARM_PROXIES", full="iptables,nftables,userspace", quick="userspace")
HOG = os.environ.get("HARNESS_BENCH_ALARM_HOG", "1") != "0"
SECONDS_PER_EXAMPLE = 4.0  # generous: the hog's own bound

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

BUSY = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\n" + (
    "while time.monotonic() < end:\n    pass\n"
)


@contextmanager
def cpu_hog(seconds: float) -> Iterator[int]:
    """One busy process per core, each ending by itself after `seconds` (killed on exit)."""
    cores = (os.cpu_count() or 1) if HOG else 0
    processes = [subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)]) for _ in range(cores)]
    try:
        yield len(processes)
    finally:
        for process in processes:
            process.kill()
            process.wait()


def run_reference(proxy: str, failures: Path) -> dict[str, Any]:
    target = registry.make_target(f"local:{proxy}", registry.TargetOptions(extra={"seed": 17}))
    options = options_for(
        target, seed=17, profile=PROFILES["quick"], examples=EXAMPLES, failures_dir=failures
    )
    started = time.monotonic()
    with cpu_hog(EXAMPLES * SECONDS_PER_EXAMPLE) as hogs:
        suite = run_target(target, options)
    judged = [r for r in suite.results if r.status.value in ("passed", "failed")]
    return {
        "proxy": proxy,
        "cpu_hogs": hogs,
        "examples": suite.stats.examples,
        "events": suite.stats.events,
        "seconds": round(time.monotonic() - started, 1),
        "false_alarms": [
            {"property": r.name, "message": r.message, "reproduced": r.reproduced}
            for r in suite.failed
        ],
        "measured_rate": len(suite.failed) / max(len(judged), 1),
        "budget_per_run": options.config.budget.run_alpha,
        "budget_per_check": options.config.budget.per_check,
        "error": suite.error,
    }


def test_reference_proxies_false_alarms(output_dir: Path, tmp_path: Path) -> None:
    started = datetime.datetime.now(datetime.UTC)
    runs = [run_reference(proxy, tmp_path) for proxy in PROXIES]
    report = {
        "benchmark": "false alarms of the correct proxies with both cores busy",
        "profile": "quick, examples raised, no time budget",
        "examples_per_proxy": EXAMPLES,
        "runs": runs,
        "false_alarms_total": sum(len(r["false_alarms"]) for r in runs),
    }
    print(f"wrote {write_figures(output_dir, 'false_alarms.json', report, started)}")
    assert all(r["error"] is None and r["examples"] == EXAMPLES for r in runs), runs
