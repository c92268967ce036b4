"""`harness report --mutants`: the mutation report measured into a run directory of its own.

Contract: creates one new run directory under the given runs directory (`harness.reporting.runs`)
and writes mutants.json there, dated and naming this machine, with the mutants' counterexamples
under its failures/; it changes nothing else. It runs the whole mutation report
(`harness.mutation.mutation_report`): the model mutants, and as root the local cluster's data-
and control-plane mutants too, which takes minutes; callers check their other arguments first.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from harness.reporting.runs import new_run_directory, start_run, write_figures

FILE = "mutants.json"


def measure_mutants(runs_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Run the mutation report into a new run directory; (that directory, the report)."""
    from harness.mutation import local_mutant_specs, model_mutant_specs, mutation_report

    now = datetime.datetime.now(datetime.UTC)
    run = start_run(
        new_run_directory(runs_dir, now), profile="full", command="harness report --mutants"
    )
    specs = model_mutant_specs() + (local_mutant_specs() if os.geteuid() == 0 else [])
    report = mutation_report(specs, failures_dir=run / "failures" / "mutants")
    write_figures(run, FILE, report, now)
    return run, report
