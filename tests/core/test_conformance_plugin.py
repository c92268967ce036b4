"""The conformance suite's pytest plug-in (properties/): a problem that stops the run is reported
once, as one line, with the harness's exit code, never as a traceback per property."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_suite(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("options", "code", "complaint"),
    [
        (("--target", "kube", "--kubeconfig", "/nonexistent/kubeconfig"), 2, "kubeconfig"),
        (("--target", "nosuch"), 2, "unknown target 'nosuch'"),
        (("--target", "model", "--budget", "soon"), 2, "not a duration"),
        (("--target", "model", "--results", "/nonexistent/dir/r.json"), 2, "does not exist"),
    ],
)
def test_a_stopping_problem_is_one_line_once(
    options: tuple[str, ...], code: int, complaint: str
) -> None:
    done = run_suite(*options)
    output = done.stdout + done.stderr
    assert done.returncode == code, output
    lines = [line for line in output.splitlines() if complaint in line]
    assert len(lines) == 1, output
    assert "Traceback" not in output


def test_the_model_passes_and_prints_the_summary(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = run_suite(
        *("--target", "model", "--examples", "30", "--seed", "2"),
        *("--results", str(results), "--failures-dir", str(tmp_path)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 passed, 3 skipped" in done.stdout  # every-node and node-port too: two nodes
    assert "coverage, checked/reached per state feature" in done.stdout
    assert results.exists()
