"""The programming-cost plot in a real headless browser (as tests/reporting/test_page.py does for
the rest of the report, with its browser and script): it renders with a size and a drawn mark
per measured point, on log axes spanning three decades of endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reporting import write_report
from harness.reporting.programming_cost import PLOT_TITLE
from tests.reporting.programming_cost_files import SCALES, programming_cost_json, write
from tests.reporting.test_page import PLOTS_SCRIPT, browser, pytestmark

__all__ = ["browser", "pytestmark"]  # the fixture and the skip of test_page.py, reused


def test_the_programming_cost_plot_renders_every_point(tmp_path: Path, browser: Any) -> None:
    run = write(tmp_path / "run", programming_cost_json())
    write_report([run], tmp_path / "out", history_root=tmp_path / "published")
    browser.get((tmp_path / "out" / "index.html").as_uri())
    plots = {plot["title"]: plot for plot in browser.execute_script(PLOTS_SCRIPT)}
    assert sorted(plots) == [PLOT_TITLE]
    plot = plots[PLOT_TITLE]
    assert plot["width"] > 0 and plot["height"] > 0, plot
    assert plot["drawnWidth"] > 0 and plot["drawnHeight"] > 0, plot
    assert plot["marks"] == 2 * 2 * len(SCALES), plot  # 2 proxies x 2 measures x sizes
