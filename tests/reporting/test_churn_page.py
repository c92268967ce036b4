"""The churn plots in a real headless browser (as tests/reporting/test_page.py does for the
rest of the report, with its browser and script): both render with a size and drawn marks, also
where every count is 0 (a proxy that kept the promise draws bars of no height, still marks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reporting import write_report
from tests.reporting.test_churn import churn_json, write
from tests.reporting.test_page import assert_drawn, browser, pytestmark

__all__ = ["browser", "pytestmark"]  # the fixture and the skip of test_page.py, reused

CHURN_PLOTS = ("Failed requests under churn, per cause", "Requests/s under churn, over the run")


def test_the_churn_plots_render_with_a_size_and_drawn_marks(tmp_path: Path, browser: Any) -> None:
    run = write(tmp_path / "run", churn_json())
    write_report([run], tmp_path / "out", history_root=tmp_path / "published")
    assert_drawn(browser, tmp_path / "out" / "index.html", CHURN_PLOTS)
