"""The UDP plots in a real headless browser (as tests/reporting/test_page.py does for the rest
of the report, with its browser and script): both render with a size and drawn marks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reporting import write_report
from tests.reporting.test_page import assert_drawn, browser, pytestmark
from tests.reporting.test_udp_report import udp_json, write

__all__ = ["browser", "pytestmark"]  # the fixture and the skip of test_page.py, reused

UDP_PLOTS = (
    "UDP flow move after its backend is deleted, p50 and p99",
    "UDP request/response through the VIP and its ceiling",
)


def test_the_udp_plots_render_with_a_size_and_drawn_marks(tmp_path: Path, browser: Any) -> None:
    run = write(tmp_path / "run", udp_json())
    write_report([run], tmp_path / "out", history_root=tmp_path / "published")
    assert_drawn(browser, tmp_path / "out" / "index.html", UDP_PLOTS)
