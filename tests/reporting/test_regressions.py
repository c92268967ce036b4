"""Regression flagging: a real drop is flagged, noise is not, and the rule is the one stated.

A synthetic history of published nights whose iptables keep-alive throughput wobbles by about
1% is followed by a night that loses 20% (flagged) or wobbles as before (not flagged). What
these catch: a threshold that is a guessed constant instead of the measured spread, a "worse"
that points the wrong way for lower-is-better figures, a regression judged against a quick run,
and `--fail-on-regression` exiting 0 on a flagged figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.reporting import write_report
from harness.reporting.regressions import (
    MIN_EARLIER,
    RULE,
    WINDOW,
    Figure,
    judge_one,
    noise_of,
)
from tests.reporting.nights import night, publish

FIGURE = "throughput iptables wrk_vip_keepalive"
NOISY_RATES = (55_100.0, 54_600.0, 55_500.0, 54_900.0, 55_300.0, 54_800.0, 55_200.0, 55_000.0)
"""Eight nights' requests/s: a spread of about 1% around 55,000."""


def test_a_real_drop_is_flagged_at_the_top_and_noise_is_not(tmp_path: Path) -> None:
    root = publish(tmp_path, NOISY_RATES)
    dropped = night(tmp_path / "runs", 20, 44_000.0)  # 20% down
    written = write_report([dropped], tmp_path / "dropped", history_root=root)
    assert [v.name for v in written.regressions] == [FIGURE, f"{FIGURE} x ceiling"]
    text = (tmp_path / "dropped" / "report.md").read_text()
    first_section = text.split("\n## ")[1]
    assert first_section.startswith("Regressions")
    assert f"REGRESSION: {FIGURE}: 44,000 req/s, median of {WINDOW} earlier runs" in first_section
    assert RULE in first_section
    summary = json.loads((tmp_path / "dropped" / "results.json").read_text())
    assert summary["regressions"] == [FIGURE, f"{FIGURE} x ceiling"]

    wobble = night(tmp_path / "runs", 21, 54_700.0)  # inside the spread of the earlier nights
    written = write_report([wobble], tmp_path / "wobble", history_root=root)
    assert written.regressions == ()
    verdict = next(v for v in written.verdicts if v.name == FIGURE)
    assert verdict.judged and verdict.earlier == NOISY_RATES[-WINDOW:]
    assert "No regression among" in (tmp_path / "wobble" / "report.md").read_text()


def test_the_threshold_is_the_measured_spread_not_a_constant(tmp_path: Path) -> None:
    """The same 3% drop is noise after noisy nights and a regression after steady ones."""
    figure = Figure(53_350.0, True, "req/s")
    noisy = [55_000.0, 52_000.0, 57_500.0, 53_000.0, 56_000.0, 54_000.0, 58_000.0]
    steady = [55_000.0, 55_050.0, 54_950.0, 55_020.0, 54_980.0, 55_010.0, 54_990.0]
    assert not judge_one("x", figure, noisy).regressed
    assert judge_one("x", figure, steady).regressed
    assert noise_of(noisy) > 10 * noise_of(steady)


def test_lower_is_better_and_deterministic_figures() -> None:
    slower = judge_one("sync", Figure(80.0, False, "ms"), [50.0, 52.0, 51.0, 49.0])
    faster = judge_one("sync", Figure(30.0, False, "ms"), [50.0, 52.0, 51.0, 49.0])
    assert slower.regressed and not faster.regressed
    # earlier runs all identical: the figure is deterministic, so any worsening is real
    assert judge_one("n", Figure(9.0, True, "x"), [10.0] * 5).regressed
    assert not judge_one("n", Figure(10.0, True, "x"), [10.0] * 5).regressed


def test_too_few_earlier_runs_are_not_judged() -> None:
    verdict = judge_one("x", Figure(1.0, True, "x"), [100.0] * (MIN_EARLIER - 1))
    assert not verdict.judged and not verdict.regressed
    assert "not judged" in verdict.line()


def test_a_quick_run_is_not_judged_against_full_ones(tmp_path: Path) -> None:
    root = publish(tmp_path, NOISY_RATES)
    quick = night(tmp_path / "runs", 20, 10_000.0, profile="quick")
    written = write_report([quick], tmp_path / "quick", history_root=root)
    assert written.regressions == () and not any(v.judged for v in written.verdicts)


def test_fail_on_regression_exits_1_and_names_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = publish(tmp_path, NOISY_RATES)
    dropped = night(tmp_path / "runs", 20, 44_000.0)
    argv = ["report", "--input", str(dropped), "--history", str(root)]
    assert main([*argv, "--output", str(tmp_path / "a")]) == 0  # flagged, but not asked to fail
    assert main([*argv, "--output", str(tmp_path / "b"), "--fail-on-regression"]) == 1
    assert f"REGRESSION: {FIGURE}: 44,000 req/s" in capsys.readouterr().out
    steady = night(tmp_path / "runs", 21, 55_000.0)
    argv = ["report", "--input", str(steady), "--history", str(root), "--fail-on-regression"]
    assert main([*argv, "--output", str(tmp_path / "c")]) == 0


def test_publishing_lists_every_dated_report(tmp_path: Path) -> None:
    root = publish(tmp_path, NOISY_RATES[:3])
    listing = (root / "index.html").read_text()
    assert [line.split('"')[1] for line in listing.splitlines() if "<a href" in line] == [
        "2026-11-03/index.html",
        "2026-11-02/index.html",
        "2026-11-01/index.html",
    ]
    assert "default-src 'none'" in listing
