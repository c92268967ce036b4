"""`harness bench` and `harness report`'s refusals on the command line.

What these catch: a bench run that writes no schema-versioned figure file, a progress line
that is missing or garbles a log, a usage error that runs benchmarks anyway or leaves a
directory behind, and a report of an empty run directory that exits 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main

CHECKOUT = Path(__file__).resolve().parents[2]


def test_bench_writes_one_versioned_file_per_benchmark_with_progress_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(CHECKOUT)
    output = tmp_path / "run"
    argv = ["bench", "--profile", "quick", "--benchmark", "model_throughput"]
    assert main([*argv, "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1/1] model_throughput: passed in ")
    assert f"benchmark figures: {output}" in out
    figures = json.loads((output / "model_throughput.json").read_text())
    assert figures["schema"] == "harness.model_throughput/v1"
    manifest = json.loads((output / "run.json").read_text())
    assert manifest["profile"] == "quick" and manifest["command"] == "harness bench"
    assert (output / "logs" / "model_throughput.log").read_text().strip()
    assert main(["report", "--input", str(output), "--output", str(tmp_path / "report")]) == 0
    assert "Model target speed" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--benchmark", "nosuch"], "bench: unknown benchmark 'nosuch'; one of "),
        (["--target", "kube"], "bench: --target kube is not benchmarked here; give local or"),
        (["--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    ],
)
def test_bench_refuses_bad_input_in_one_line_before_running(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(CHECKOUT)
    assert main(["bench", *argv, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()


def test_bench_outside_a_checkout_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--output", "run"]) == 2
    assert capsys.readouterr().err == (
        "harness: bench: no bench/ here; run `harness bench` from the harness checkout\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_report_of_an_empty_directory_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty").mkdir()
    assert main(["report", "--input", "empty", "--output", "out"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert "report: empty holds no figure file" in err and "tox -e bench" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
