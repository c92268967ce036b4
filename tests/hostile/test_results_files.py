"""Results files and the other figure files `harness report` reads, broken every way.

The documents start as real ones: the figures published in reports/2026-11-26/ (results and
mutants of schema v1, the benchmarks' files from before they named a schema), a results file of
schema v2 written by `harness run --results` on the model, and a mutants file of schema v2. One
file of a run directory is then broken (`tests.hostile.hostile`) beside the intact others, and
the report must still be written: the broken file read (if it still says something usable) or
named as malformed in one line, every other figure shown, the pages valid UTF-8 with every
hostile string escaped in the HTML. Through `harness report` the same holds end to end: exit 0,
no traceback, and the output directory holds the report's files and nothing else (no temporary
file left behind).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.mutation import MUTANTS_SCHEMA
from harness.reporting.formats import READABLE, RESULTS_PATTERN, WRITTEN
from harness.reporting.history import history_entry, history_table, with_this_report
from harness.reporting.render import Section, markdown, page_html
from harness.reporting.sections import build_sections, sources_section
from harness.reporting.sources import FIGURE_FILES, figure_paths, load_sources
from harness.results import RESULTS_SCHEMA
from tests.hostile.conftest import Inputs, fuzz_settings, sizes
from tests.hostile.hostile import broken, damaged, dumps
from tests.reporting.programming_cost_files import programming_cost_json
from tests.reporting.test_churn import churn_json
from tests.reporting.test_kube_scale_report import kube_scale_json
from tests.reporting.test_kube_throughput_report import kube_throughput_json
from tests.reporting.test_udp_report import udp_json

PUBLISHED = Path(__file__).resolve().parents[2] / "reports" / "2026-11-26"
RESULTS_NEW = "results-model.json"  # written by this harness: the current schema
RESULTS_V2 = PUBLISHED.parent / "2026-11-29" / "results-local-iptables.json"  # before versions
MUTANTS_V2 = {
    "schema": MUTANTS_SCHEMA,
    "seed": 0,
    "profile": "quick",
    "mutants": {
        "mutant:keeps-deleted": {
            "caught": True,
            "property": "endpoints",
            "counterexample_events": 3,
            "examples_run": 2,
            "seconds": 0.08,
        },
        "mutant:never-rejects": {"caught": False, "examples_run": 400, "seconds": 3.1},
    },
    "caught": "1 of 2",
    "median_counterexample_events": 3,
    "references": {
        "model": {"false_alarms": 0, "failed": [], "examples": 200, "events": 4000},
        "local:iptables": {"false_alarms": 1, "failed": ["fairness"], "examples": 60},
    },
}
NEWER = {  # figure files newer than the published run, in the shapes their builders read
    "search_rate.json": {
        "schema": "harness.search_rate/v1",
        "runs": [{"seed": 1, "old": {"distinct": 40, "seconds": 60.0},
                  "new": {"distinct": 300, "seconds": 60.0},
                  "pytest_benchmark": {"rounds": 1, "seconds_median": 60.0}}],
        "old_per_minute_median": 40.0, "new_per_minute_median": 300.0, "ratio_median": 7.5,
        "goal_ratio": 5, "meets_goal": True, "baseline": "per-property searches",
    },
    "false_alarms.json": {
        "schema": "harness.false_alarms/v1",
        "runs": [{"proxy": "iptables", "examples": 200, "events": 3000, "cpu_hogs": 2,
                  "false_alarms": [], "measured_rate": 0.0, "budget_per_run": 0.01}],
    },
    "time_to_verdict.json": {
        "schema": "harness.time_to_verdict/v1",
        "correct": {"proxy": "iptables", "seconds": 300.0},
        "broken": [{"proxy": "mutant-x", "first_verdict_s": 12.0, "seconds": 40.0,
                    "ratio_to_correct": 0.04}],
    },
}  # fmt: skip
FIGURE_KEYS = ("schema", "results", "runs", "properties", "programming_latency_ms", "mutants")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Valid figure documents by file name: the published ones (results v1 and v2) and freshly
    written ones."""
    where = tmp_path_factory.mktemp("bases")
    with contextlib.chdir(where), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        size = ["--examples", "1", "--steps", "2", "--seed", "1"]
        code = main(["run", "--target", "model", *size, "--results", RESULTS_NEW,
                     "--failures-dir", "failures"])  # fmt: skip
    assert code == 0
    documents: dict[str, list[Any]] = {}
    for path in figure_paths(PUBLISHED):  # not run.json, nor the report's own results.json
        documents.setdefault(_kind(path.name), []).append(json.loads(path.read_text()))
    documents[RESULTS_PATTERN].append(json.loads(RESULTS_V2.read_text()))
    documents[RESULTS_PATTERN].append(json.loads((where / RESULTS_NEW).read_text()))
    documents["mutants.json"].append(MUTANTS_V2)
    for name, document in NEWER.items():
        documents[name] = [document]
    documents["churn.json"] = [churn_json()]  # the shape tests/reporting/test_churn.py builds
    documents["kube_scale.json"] = [kube_scale_json()]  # and test_kube_scale_report.py
    documents["kube_throughput.json"] = [kube_throughput_json()]
    documents["udp.json"] = [udp_json()]  # and test_udp_report.py
    documents["programming_cost.json"] = [programming_cost_json()]
    assert {d["schema"] for d in documents[RESULTS_PATTERN]} == set(READABLE[RESULTS_PATTERN])
    return documents


def _kind(name: str) -> str:
    return name if name in FIGURE_FILES else RESULTS_PATTERN


def _file_name(kind: str) -> str:
    return "results-hostile.json" if kind == RESULTS_PATTERN else kind


@st.composite
def hostile_figure(draw: st.DrawFn, bases: dict[str, list[Any]]) -> tuple[str, bytes]:
    """(file name, its broken bytes) for one figure file of a run."""
    kind = draw(st.sampled_from(sorted(bases)), label="kind")
    document = draw(st.sampled_from(bases[kind]), label="base")
    how = draw(st.sampled_from(["json", "json", "json", "bytes", "both"]), label="break")
    if how in ("json", "both"):
        document = draw(broken(document, FIGURE_KEYS), label="broken")
    text = dumps(document)
    data = text.encode("utf-8", "surrogatepass") if how == "json" else draw(damaged(text))
    return _file_name(kind), data


def run_directory(root: Path, bases: dict[str, list[Any]]) -> Path:
    """A run directory holding one valid file of every kind."""
    run = root / "run"
    run.mkdir()
    for kind, documents in bases.items():
        (run / _file_name(kind)).write_text(json.dumps(documents[0]))
    return run


@pytest.fixture
def run(tmp_path: Path, bases: dict[str, list[Any]]) -> Iterator[Path]:
    with contextlib.chdir(tmp_path):  # the report reads published reports under ./reports
        yield run_directory(tmp_path, bases)


def check_report(run: Path, name: str) -> str:
    """Build and render the report of `run`; `name` is read or named malformed in one line.
    Returns which of the two."""
    sources = load_sources([run])
    sections, malformed = build_sections(sources)
    this = history_entry(sources)
    json.dumps(this, allow_nan=False)  # the entry a published report's history is made of
    history = Section("History", (history_table(with_this_report([], this)),))
    sections += [history, sources_section(sources, malformed)]
    shown = set(sources.figures) | set(sources.results)
    others = {path.name for path in run.glob("*.json")} - {name}
    assert others <= shown and not others & set(malformed), malformed
    for reason in malformed.values():
        assert reason and "\n" not in reason
    lines = ["hostile input"]
    for page in (markdown("t", lines, sections), page_html("t", lines, sections)):
        page.encode("utf-8")
    assert "<script" not in page_html("t", lines, sections)
    return "malformed" if name in malformed else "read"


@sizes(1500, 10000)
def test_a_broken_figure_file_is_named_and_the_report_goes_on(
    run: Path, bases: dict[str, list[Any]], inputs: Inputs, examples: int
) -> None:
    @fuzz_settings(examples)
    @given(hostile_figure(bases))
    def one(figure: tuple[str, bytes]) -> None:
        name, data = figure
        (run / name).write_bytes(data)
        try:
            inputs.tried(check_report(run, name))
        finally:
            (run / name).write_text(json.dumps(bases[_kind(name)][0]))

    one()
    inputs.at_least(examples)


@sizes(300, 1500)
def test_harness_report_on_a_broken_run_exits_0_and_writes_whole_files(
    run: Path, bases: dict[str, list[Any]], inputs: Inputs, examples: int
) -> None:
    output = run.parent / "out"

    @fuzz_settings(examples)
    @given(hostile_figure(bases))
    def one(figure: tuple[str, bytes]) -> None:
        name, data = figure
        (run / name).write_bytes(data)
        shutil.rmtree(output, ignore_errors=True)
        err = io.StringIO()
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            code = main(["report", "--input", str(run), "--output", str(output)])
        (run / name).write_text(json.dumps(bases[_kind(name)][0]))
        assert code == 0 and err.getvalue() == "", err.getvalue()
        written = {path.name for path in output.iterdir()}
        assert {"report.md", "index.html", "run.json"} <= written
        assert not any(written_name.startswith(".") for written_name in written)
        (output / "index.html").read_text(encoding="utf-8")
        inputs.tried("reported")

    one()
    inputs.at_least(examples)


def test_every_written_results_file_is_one_the_report_reads() -> None:
    assert (
        RESULTS_SCHEMA in READABLE[RESULTS_PATTERN]
        and "harness.results/v1" in (READABLE[RESULTS_PATTERN])
    )


def test_every_kind_of_figure_file_is_fuzzed(bases: dict[str, list[Any]]) -> None:
    assert set(bases) == set(WRITTEN)


def test_the_published_figures_are_all_read(bases: dict[str, list[Any]]) -> None:
    sources = load_sources([PUBLISHED])
    assert sources.malformed == {}
    pages = {"run.json", "results.json"}  # the manifest, and the report's own summary
    published = {path.name for path in PUBLISHED.glob("*.json")} - pages
    assert set(sources.figures) | set(sources.results) == published
    assert build_sections(sources)[1] == {}
