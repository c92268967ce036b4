"""Where benchmarks write their figures: one run directory per session, never a tracked file.

`output_dir` is a new run directory `reports/runs/<UTC start time>/` of this checkout (ignored
by git), or the directory given with `--bench-output DIR`, with a manifest (run.json) naming the
machine, the start time and the profile (`bench/sizes.py`). Every benchmark writes its figure file
there (`harness.reporting.runs.write_figures`) and asserts only what can fail for a correctness
reason; timings are figures for the report (`harness report --input DIR`), never pass/fail. The
directory is made only when a benchmark asks for it, and named at the end of the session.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from sizes import PROFILE

from harness.reporting.runs import RUNS_DIR, new_run_directory, start_run

CHECKOUT = Path(__file__).resolve().parents[1]
OUTPUT = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-output",
        type=Path,
        metavar="DIR",
        help=f"write the benchmarks' figures to DIR (default: a new {RUNS_DIR}/<UTC time>/)",
    )


@pytest.fixture(scope="session")
def output_dir(request: pytest.FixtureRequest) -> Path:
    """The session's run directory (see the module docstring), created on first use."""
    now = datetime.datetime.now(datetime.UTC)
    given: Path | None = request.config.getoption("--bench-output")
    directory = given or new_run_directory(CHECKOUT / RUNS_DIR, now)
    start_run(directory, profile=PROFILE, command="pytest bench", now=now)
    request.config.stash[OUTPUT] = directory
    return directory


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Name the run directory, if a benchmark wrote to it, and how to report it."""
    directory = config.stash.get(OUTPUT, None)
    if directory is not None:
        terminalreporter.write_line(
            f"benchmark figures: {directory} (report: harness report --input {directory})"
        )
