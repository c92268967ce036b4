"""`harness bench`: run the benchmarks (bench/test_*.py, one pytest process each) into one run
directory, with a progress line on a terminal.

Each benchmark file runs as `python -m pytest bench/test_NAME.py --bench-output DIR` with
HARNESS_BENCH_PROFILE set to the profile (`bench/sizes.py`), so it measures exactly what
`tox -e bench` measures; every benchmark writes its own figure file, JSON with a `schema`
(`harness.reporting.runs.write_figures`), into DIR, and pytest's output goes to
DIR/logs/NAME.log. `--target local:PROXY[,PROXY]` narrows the proxies benchmarked
(HARNESS_BENCH_PROXIES and HARNESS_BENCH_ALARM_PROXIES). The tools the benchmarks start
(locust) are found first in the environment of the Python running the harness, activated or not.

Contract: it needs the checkout's bench/ directory (the benchmarks are not installed with the
package) and refuses, before running anything, a missing bench/, an unknown benchmark or
target, and an output directory holding files of another kind (UsageError, one line, exit 2).
It writes only into the output directory; each benchmark is bounded by its own sizes and by
`TIMEOUT_S`. It returns the benchmarks' outcomes; it never judges figures (that is the report's).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.errors import UsageError
from harness.reporting.runs import MANIFEST, start_run

BENCH_DIR = Path("bench")
PROFILES = ("quick", "full")
TIMEOUT_S = 3 * 60 * 60
"""No benchmark file of the full profile takes an hour here; three is a hung one."""
LOGS = "logs"
PYTEST_EXIT = {0: "passed", 1: "failed", 2: "interrupted", 3: "internal error", 4: "usage error",
               5: "no test ran (skipped)"}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """One benchmark file's run: its name, pytest's exit code, seconds, and its log."""

    name: str
    exit_code: int
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.exit_code in (0, 5)

    def line(self) -> str:
        what = PYTEST_EXIT.get(self.exit_code, f"exit {self.exit_code}")
        return f"{self.name}: {what} in {self.seconds:.0f} s (log: {self.log})"


def available(bench_dir: Path = BENCH_DIR) -> list[str]:
    """The benchmarks of `bench_dir`, by name (`bench/test_NAME.py` is NAME), sorted."""
    return sorted(path.stem.removeprefix("test_") for path in bench_dir.glob("test_*.py"))


def choose(names: Sequence[str], bench_dir: Path = BENCH_DIR) -> list[str]:
    """`names` (every benchmark when empty), checked against `bench_dir`; UsageError naming the
    problem and the fix."""
    if not bench_dir.is_dir():
        raise UsageError(
            f"bench: no {bench_dir}/ here; run `harness bench` from the harness checkout"
        )
    known = available(bench_dir)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"bench: unknown benchmark {unknown[0]!r}; one of {', '.join(known)}")
    return list(names) or known


def target_environment(target: str | None) -> dict[str, str]:
    """The environment that narrows the benchmarks to `target` (None: their defaults)."""
    if target is None or target == "local":
        return {}
    kind, _, proxies = target.partition(":")
    if kind != "local" or not proxies:
        raise UsageError(
            f"bench: --target {target} is not benchmarked here; give local or"
            " local:PROXY[,PROXY] (the kube target's benchmarks run in the nightly workflow)"
        )
    return {"HARNESS_BENCH_PROXIES": proxies, "HARNESS_BENCH_ALARM_PROXIES": proxies}


def check_output(directory: Path) -> None:
    """UsageError unless `directory` is absent, empty or a run directory (has run.json)."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"bench: --output {directory} is a file; give a directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise UsageError(
            f"bench: --output {directory} holds files that are not a benchmark run; give a new"
            " or empty directory"
        )


class Progress:
    """One line on a terminal, rewritten in place (`[2/7] rule_sync, 41 s`); plain lines, one
    per finished benchmark, when `stream` is not a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.terminal = stream.isatty()

    def start(self, number: int, name: str) -> None:
        if self.terminal:
            self.stream.write(f"\r\x1b[K[{number}/{self.total}] {name} ...")
            self.stream.flush()

    def done(self, number: int, outcome: Outcome) -> None:
        prefix = "\r\x1b[K" if self.terminal else ""
        self.stream.write(f"{prefix}[{number}/{self.total}] {outcome.line()}\n")
        self.stream.flush()


def run_benchmarks(
    output: Path,
    *,
    profile: str,
    names: Sequence[str] = (),
    target: str | None = None,
    stream: TextIO | None = None,
    bench_dir: Path = BENCH_DIR,
) -> list[Outcome]:
    """Run the benchmarks `names` (all when empty) into `output` (see the module docstring);
    progress goes to `stream`, by default the `sys.stdout` of the moment of the call."""
    stream = stream or sys.stdout
    if profile not in PROFILES:
        raise UsageError(f"bench: --profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    chosen = choose(names, bench_dir)
    extra = target_environment(target)
    check_output(output)
    start_run(output, profile=profile, command="harness bench",
              now=datetime.datetime.now(datetime.UTC))  # fmt: skip
    (output / LOGS).mkdir(exist_ok=True)
    # the tools the benchmarks start (locust) come from this Python's environment, activated or not
    tools = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    environment = {**os.environ, **extra, "HARNESS_BENCH_PROFILE": profile, "PATH": tools}
    progress = Progress(stream, len(chosen))
    outcomes = []
    for number, name in enumerate(chosen, 1):
        progress.start(number, name)
        log = output / LOGS / f"{name}.log"
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as sink:
            try:
                code = subprocess.run(
                    [sys.executable, "-m", "pytest", str(bench_dir / f"test_{name}.py"),
                     "-p", "no:cacheprovider", "--bench-output", str(output)],
                    stdout=sink, stderr=subprocess.STDOUT, env=environment, timeout=TIMEOUT_S,
                    check=False,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                code = -1
        outcome = Outcome(name, code, time.monotonic() - started, log)
        progress.done(number, outcome)
        outcomes.append(outcome)
    return outcomes
