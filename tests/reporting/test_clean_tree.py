"""Benchmarks and reports leave the checkout as they found it (issue 14, "A clean tree").

In a copy of this checkout (its files as `git status` sees them, committed to a fresh
repository), this runs every benchmark in the quick profile as `tox -e bench` runs them, reports
the run they made, re-renders every published report in place, and asks for a report of a
missing directory; afterwards `git status --porcelain` must be empty. It catches a benchmark or
report writing into tracked files or leaving untracked ones, a published report that its own
figures no longer reproduce, and a missing input that exits 0. Without root the network-namespace
benchmarks skip and the rest still runs. About 20-40 s here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=harness test", "-c", "user.email=test@example.invalid"]
TIMEOUT_S = 300  # the quick benchmarks take about a minute; a loaded machine more


def git(directory: Path, *argv: str) -> str:
    return subprocess.run(
        [*GIT, *argv], cwd=directory, check=True, capture_output=True, text=True, timeout=60
    ).stdout


def copy_of_checkout(target: Path) -> Path:
    """The checkout's tracked and untracked-but-not-ignored files, as they are now, committed
    to a new repository at `target`."""
    listed = git(CHECKOUT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = CHECKOUT / name
        if source.is_file():  # a file deleted but not yet staged is listed too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "copy")
    return target


def run(copy: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HARNESS_BENCH_PROFILE": "quick",
        "HARNESS_BENCH_VERDICT_EXAMPLES": "1",  # the tree, not the figure: one example will do
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        [sys.executable, *argv], cwd=copy, env=env, capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip


def assert_clean(copy: Path, after: str) -> None:
    status = git(copy, "status", "--porcelain", "--untracked-files=all")
    assert status == "", f"{after} changed the tree:\n{status}"


def published_reports(copy: Path) -> list[Path]:
    return sorted(path.parent.relative_to(copy) for path in (copy / "reports").glob("*/run.json"))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_benchmarks_and_reports_leave_the_tree_clean(tmp_path: Path) -> None:
    copy = copy_of_checkout(tmp_path / "checkout")

    bench = run(copy, "-m", "pytest", "bench", "-q")
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-2000:]
    assert_clean(copy, "pytest bench")
    runs = sorted((copy / "reports" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "model_throughput.json").is_file()

    report = run(copy, "-m", "harness.cli", "report")
    assert report.returncode == 0, report.stderr
    page = (copy / "build" / "reports" / "report.md").read_text()
    assert f"Run {runs[0].name}, profile quick" in page
    assert_clean(copy, "harness report")

    assert published_reports(copy), "no published report under reports/"
    for published in published_reports(copy):
        again = run(copy, "-m", "harness.cli", "report", "--input", str(published),
                    "--output", str(published))  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert_clean(copy, f"rendering {published} again")

    missing = run(copy, "-m", "harness.cli", "report", "--input", "reports/runs/nosuch")
    assert missing.returncode == 2
    assert len(missing.stderr.splitlines()) == 1, missing.stderr
    assert "reports/runs/nosuch not found" in missing.stderr and "tox -e bench" in missing.stderr
    assert_clean(copy, "harness report of a missing directory")
