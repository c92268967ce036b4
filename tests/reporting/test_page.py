"""The generated index.html in a real headless browser: every plot renders, nothing is fetched.

The report is made of a synthetic night (tests/reporting/nights.py) on top of the published
figures of 2026-11-26 (throughput with per-pod counts, rule sync, local scale, conformance
results) and a history of nights before it, so it holds every kind of plot: throughput with the
ceiling, latency percentiles, requests per pod, programming time against scale, and trends.
Debian's chromium, driven by Selenium through Debian's chromedriver, opens it from a file. What
this catches: an SVG that draws nothing or has no size (bad coordinates, an empty series, a
markup error that makes the browser drop it), a page that needs the network to be viewed (a
script, style sheet, font or image from elsewhere), and a plot left out of the page.

Skipped, saying why, only when chromium, chromedriver or Selenium is absent; `.ci/run` installs
the first two and the `test` extra the third, so CI runs it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.reporting import write_report
from tests.reporting.nights import night, publish

CHECKOUT = Path(__file__).resolve().parents[2]
PUBLISHED = CHECKOUT / "reports" / "2026-11-26"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
EXPECTED_PLOTS = (
    "Throughput per implementation, with the direct-to-pod ceiling",
    "Latency percentiles through the VIP (µs)",
    "Requests per pod (locust, fresh connections)",
    "Programming time against scale (log axes)",
    "Trend: Throughput through the VIP, ratio to the ceiling",
    "Trend: Throughput through the VIP",
)

missing = [
    name
    for name, found in (
        ("chromium", CHROMIUM),
        ("chromedriver (Debian package chromium-driver)", CHROMEDRIVER),
        ("selenium (the test extra)", importlib.util.find_spec("selenium")),
    )
    if not found
]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"needs {', '.join(missing)}: `apt-get install chromium chromium-driver` and the"
    " test extra, as .ci/run does",
)

PLOTS_SCRIPT = """
return Array.from(document.querySelectorAll('svg.plot')).map(function (svg) {
  var box = svg.getBoundingClientRect();
  var drawn = svg.getBBox();
  var marks = Array.from(svg.querySelectorAll('.mark')).filter(function (mark) {
    var b = mark.getBoundingClientRect();
    return b.width > 0 || b.height > 0;
  });
  return {title: svg.getAttribute('aria-label'), width: box.width, height: box.height,
          drawnWidth: drawn.width, drawnHeight: drawn.height, marks: marks.length};
});
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """index.html of a night after four earlier nights, with the published 2026-11-26 figures
    filling in what the night lacks."""
    tmp_path = tmp_path_factory.mktemp("page")
    base = PUBLISHED / "throughput.json"
    root = publish(tmp_path, (59_000.0, 58_600.0, 59_400.0, 58_900.0), base=base)
    run = night(tmp_path / "runs", 20, 59_100.0, base=base)
    write_report([run, PUBLISHED], tmp_path / "out", history_root=root)
    return tmp_path / "out" / "index.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def assert_drawn(browser: Any, page: Path, titles: Sequence[str]) -> None:
    """`page` has exactly the plots `titles`, each rendered with a size and drawn marks."""
    browser.get(page.as_uri())
    plots = browser.execute_script(PLOTS_SCRIPT)
    assert sorted(plot["title"] for plot in plots) == sorted(titles)
    for plot in plots:
        assert plot["width"] > 0 and plot["height"] > 0, plot
        assert plot["drawnWidth"] > 0 and plot["drawnHeight"] > 0, plot
        assert plot["marks"] > 0, plot


def test_every_plot_renders_with_a_size_and_drawn_marks(page: Path, browser: Any) -> None:
    assert_drawn(browser, page, EXPECTED_PLOTS)


def test_the_page_fetches_nothing(page: Path, browser: Any) -> None:
    browser.get_log("performance")  # what earlier pages logged
    browser.get(page.as_uri())
    browser.execute_script("return document.readyState")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested == [page.as_uri()]
