"""The report's parts: tables from figure files, missing and malformed files, rendering.

Fixtures in tests/reporting/fixtures/ are small hand-written figure files in the shapes the
benchmarks, the mutation report and `harness run --results` write. Runs, provenance, history and
the output directory are tested in test_runs.py; the clean tree in test_clean_tree.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.reporting.history import history_entry, history_table
from harness.reporting.provenance import Provenance
from harness.reporting.render import Section, Table, markdown, page_html
from harness.reporting.sections import build_sections
from harness.reporting.sources import FIGURE_FILES, OPTIONAL_FILES, load_sources
from harness.reporting.tables import (
    calibration_lines,
    latency_row,
    locust_calibration,
    mutation,
    mutation_notes,
    programming_latency,
    rule_sync,
    search_rate,
    throughput_overview,
    throughput_runs,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A reports directory holding every fixture file."""
    directory = tmp_path / "reports"
    shutil.copytree(FIXTURES, directory)
    return directory


def column(table: Table, header: str) -> list[str]:
    index = table.headers.index(header)
    return [row[index] for row in table.rows]


# -- tables ---------------------------------------------------------------------------------------
def test_throughput_overview_shows_every_proxy_with_its_ratio_to_the_ceiling() -> None:
    table = throughput_overview(fixture("throughput.json"))
    assert column(table, "proxy") == ["iptables", "nginx", "haproxy"]
    assert column(table, "wrk VIP keep-alive req/s (x ceiling)") == [
        "55,061 (0.84)",
        "24,000 (0.40)",
        "failed",
    ]
    assert column(table, "wrk to a pod, keep-alive (ceiling) req/s")[:2] == ["65,410", "60,000"]
    assert column(table, "pods reached, fresh")[:2] == ["10/10, J 1.000", "-"]
    assert column(table, "locust VIP keep-alive req/s (x ceiling)")[:2] == ["-", "failed"]
    assert column(table, "locust VIP fresh conn. req/s (x ceiling)")[0] == "2,974 (0.90)"


def test_a_proxy_or_run_without_figures_is_a_note() -> None:
    sections, malformed = build_sections(load_sources([FIXTURES]))
    throughput = next(s for s in sections if s.title == "Throughput")
    assert malformed == {}
    assert "haproxy: EnvironmentProblem: haproxy is not installed" in throughput.notes
    assert "nginx locust_vip_keepalive: locust wrote no stats.json (exit 1)" in throughput.notes
    assert [t.title for t in throughput.tables[1:3]] == ["iptables: every run", "nginx: every run"]


def test_throughput_runs_name_each_runs_ceiling_and_latency() -> None:
    data = fixture("throughput.json")
    table = throughput_runs(data["results"][0])  # type: ignore[index]
    vip = dict(zip(table.headers, table.rows[1], strict=True))
    assert vip["run"] == "wrk_vip_keepalive"
    assert vip["ceiling"] == "wrk_pod_keepalive"
    assert vip["generator"] == "wrk 2 threads, 10 conn."
    assert (vip["x ceiling"], vip["p50 µs"], vip["p90 µs"], vip["p99 µs"]) == (
        "0.842", "136", "1,210", "2,620")  # fmt: skip
    locust = dict(zip(table.headers, table.rows[-1], strict=True))
    assert locust["generator"] == "locust 2 workers, 10 users, locustfile.py (fast)"
    # sub-millisecond locust latencies keep three digits: never "0.000 ms"
    assert (locust["p50 µs"], locust["p90 µs"], locust["p99 µs"]) == ("7.25", "48.1", "8,000")
    assert column(table, "Jain")[-1] == "1.000"


def test_locust_calibration_is_a_table_and_two_headline_lines() -> None:
    calibration: dict[str, Any] = json.loads((FIXTURES / "throughput.json").read_text())[
        "calibration"
    ]
    table = locust_calibration(calibration)
    assert column(table, "run") == ["locust_pod_keepalive_w1", "locust_pod_keepalive_w2",
                                    "bare_pod_keepalive_w2", "locust_pod_keepalive_w3"]  # fmt: skip
    assert column(table, "ratio") == ["-", "0.930", "-", "-"]
    assert column(table, "compared with")[1] == "bare_pod_keepalive_w2"
    assert column(table, "p50 µs")[:3] == ["541", "386", "-"]
    assert column(table, "req/s")[3] == "failed"
    assert calibration_lines(calibration) == [
        "harness locustfile / bare one-task FastHttpUser locustfile, 2 workers each, same pod,"
        " same run: 0.930x",
        "workers against one worker (2 CPUs): 1 worker 1.00x, 2 workers 1.40x, 3 workers -;"
        " still gaining at the largest count measured",
    ]
    stopped = {**calibration, "scaling": {**calibration["scaling"], "stops_at": 3}}
    assert calibration_lines(stopped)[1].endswith(
        "stops scaling at 3 workers (gains less than 1.10x over one fewer)"
    )


def test_a_v1_file_shows_wrk_latencies_in_microseconds_and_no_ratio_across_generators() -> None:
    pod = {"tool": "locust", "requests_per_s": 9000.0, "latency_p50_ms": 0.0, "processes": 1,
           "requests": 1, "errors": 0}  # fmt: skip
    runs = {
        "wrk_pod_keepalive": {"tool": "wrk", "requests_per_s": 60000.0, "latency_p50_ms": 0.128,
                              "requests": 1, "errors": 0},
        "locust_pod_keepalive": {**pod, "ceiling": "wrk_pod_keepalive", "ratio_to_ceiling": 0.15},
        "locust_vip_keepalive": {**pod, "ceiling": "locust_pod_keepalive", "ratio_to_ceiling": 1.0},
        "locust_vip_keepalive_processes": {**pod, "processes": 2,
                                           "ceiling": "locust_pod_keepalive",
                                           "ratio_to_ceiling": 1.2},
    }  # fmt: skip
    table = throughput_runs({"proxy": "iptables", "runs": runs})
    assert column(table, "p50 µs") == ["128", "-", "-", "-"]  # locust's whole ms are not shown
    assert column(table, "x ceiling") == ["-", "-", "1.000", "-"]
    assert column(table, "ceiling") == ["-", "-", "locust_pod_keepalive", "-"]


def test_programming_latency_has_one_row_per_results_file_by_target() -> None:
    names = ("results-model.json", "results-local-iptables.json")
    origin = Provenance("2026-11-26T19:00:00Z", "box", "reports/runs/r1")
    rows = [latency_row(name, fixture(name), origin) for name in names]
    table = programming_latency(rows)
    assert column(table, "target") == ["local:iptables", "model"]
    assert column(table, "from") == ["reports/runs/r1", "reports/runs/r1"]
    assert column(table, "started") == ["2026-11-26T19:00:00Z"] * 2
    assert column(table, "p50 ms") == ["24.5", "-"]
    assert column(table, "p99 ms") == ["61.2", "-"]
    assert column(table, "properties passed") == ["1 of 2", "1 of 1"]


def test_rule_sync_rows_are_per_proxy_medians() -> None:
    table = rule_sync(fixture("rule_sync.json"))
    assert column(table, "proxy") == ["iptables", "nftables"]
    assert column(table, "sync, median ms") == ["50.1", "48.2"]
    assert "1.5" in table.title


def test_search_rate_rows_carry_pytest_benchmarks_timing_when_it_timed_the_run() -> None:
    timed = {"distinct": 300, "seconds": 60.2}
    data = {
        "runs": [
            {"seed": 1, "old": {"distinct": 12, "seconds": 60.0}, "new": timed,
             "pytest_benchmark": {"rounds": 1, "seconds_median": 60.24}},
            {"seed": 2, "old": {"distinct": 12, "seconds": 60.0}, "new": timed},
        ]
    }  # fmt: skip
    table = search_rate(data)
    assert column(table, "one search: distinct") == ["300", "300"]
    assert column(table, "pytest-benchmark: s") == ["60.2", "-"]


def test_mutation_table_names_the_catching_property_and_counterexample_length() -> None:
    data = fixture("mutants.json")
    table = mutation(data)
    rows = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.rows}
    assert rows["mutant:ignores-readiness"]["caught by"] == "endpoints"
    assert rows["mutant:ignores-readiness"]["counterexample events"] == "3"
    assert rows["mutant:sleeper"]["caught"] == "no"
    assert rows["mutant:sleeper"]["caught by"] == "-"
    notes = mutation_notes(data)
    assert any("0 false alarm(s)" in note for note in notes)
    assert any("caught 2 of 3" in note for note in notes)


def test_a_row_that_does_not_fit_its_headers_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        Table("t", ("a", "b"), (("1",),))


# -- missing and malformed files ------------------------------------------------------------------
def test_missing_files_are_notes_with_the_command_that_makes_them(tmp_path: Path) -> None:
    sources = load_sources([tmp_path / "nothing-here"])
    assert set(sources.missing) == set(FIGURE_FILES) - OPTIONAL_FILES
    sections, malformed = build_sections(sources)
    notes = [note for section in sections for note in section.notes]
    assert malformed == {}
    assert (
        "throughput.json: not in this report's input (made by `pytest bench/test_throughput.py`)"
        in notes
    )
    assert any(note.startswith("no results*.json") for note in notes)


def test_a_file_that_is_not_json_is_named_in_one_line(reports: Path) -> None:
    (reports / "rule_sync.json").write_text("{not json")
    (reports / "mutants.json").write_text("[1, 2]")
    sections, malformed = build_sections(load_sources([reports]))
    assert set(malformed) == {"rule_sync.json", "mutants.json"}
    notes = [note for section in sections for note in section.notes]
    rule_notes = [note for note in notes if note.startswith("rule_sync.json")]
    assert rule_notes == ["rule_sync.json: malformed, skipped (not valid JSON (Expecting property"
                          " name enclosed in double quotes: line 1 column 2))"]  # fmt: skip
    assert "\n" not in "".join(notes)


def test_json_lacking_the_fields_a_table_needs_is_malformed_and_the_rest_goes_on(
    reports: Path,
) -> None:
    throughput = {"schema": "harness.throughput/v1", "results": [{"proxy": "x"}]}
    (reports / "throughput.json").write_text(json.dumps(throughput))
    sections, malformed = build_sections(load_sources([reports]))
    assert malformed == {"throughput.json": "KeyError: 'runs'"}
    throughput = next(s for s in sections if s.title == "Throughput")
    assert throughput.tables == ()
    assert throughput.notes == ("throughput.json: malformed, skipped (KeyError: 'runs')",)
    mutants = next(s for s in sections if s.title == "Mutation testing")
    assert len(mutants.tables) == 1


def test_a_results_file_of_another_schema_is_malformed(reports: Path) -> None:
    (reports / "results-old.json").write_text(json.dumps({"schema": "other/v0"}))
    (reports / "results-broken.json").write_text(
        json.dumps({"schema": "harness.results/v1", "target": "t"})
    )
    sources = load_sources([reports])
    assert "results-old.json" in sources.malformed
    sections, malformed = build_sections(sources)
    assert malformed["results-broken.json"] == "KeyError: 'programming_latency_ms'"
    latency = next(s for s in sections if s.title == "Programming latency")
    assert column(latency.tables[0], "file") == [
        "results-local-iptables.json",
        "results-model.json",
    ]


# -- history ---------------------------------------------------------------------------------------
def test_history_entry_picks_headline_figures(reports: Path) -> None:
    entry = history_entry(load_sources([reports]))
    assert entry["run"] == "reports"  # no manifest: the directory's name
    assert entry["throughput"]["iptables"]["wrk_vip_keepalive"] == [55060.66, 0.842]
    assert "locust_vip_keepalive_processes" not in entry["throughput"]["nginx"]
    assert entry["mutants"] == {"caught": "2 of 3", "false_alarms": 0}
    assert entry["programming_latency_ms"]["results-local-iptables.json"]["p99"] == 61.25
    assert entry["model_events_per_s"] == 4021
    table = history_table([entry])
    assert column(table, "wrk VIP keep-alive x ceiling") == ["iptables 0.84, nginx 0.40"]


def test_history_entry_of_an_empty_directory_has_only_its_run(tmp_path: Path) -> None:
    entry = history_entry(load_sources([tmp_path]))
    assert entry == {"run": tmp_path.name, "files": []}


# -- rendering ------------------------------------------------------------------------------------
def test_html_is_escaped_and_has_no_script() -> None:
    table = Table("<b>", ("a|b",), (("<script>alert(1)</script>",),))
    page = page_html("t", ["p & q"], [Section("s", (table,), ("n<",))])
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "p &amp; q" in page and "n&lt;" in page
    text = markdown("t", [], [Section("s", (table,))])
    assert "| a\\|b |" in text


# -- plots ----------------------------------------------------------------------------------------
def test_plots_are_drawn_from_the_figures_and_a_malformed_file_gives_none() -> None:
    from harness.reporting.plots import figure_plots

    figures = {name: fixture(name) for name in ("throughput.json", "rule_sync.json")}
    plots = figure_plots(figures)
    assert [plot.title for plot in plots] == [
        "Throughput per implementation, with the direct-to-pod ceiling",
        "Latency percentiles through the VIP (µs)",
        "Programming time against scale (log axes)",
    ]  # the fixture's per-pod counts are empty: no distribution plot
    throughput = plots[0]
    # bars: wrk keep-alive for iptables and nginx, locust fresh for iptables; a ceiling each
    assert throughput.svg.count('class="mark"') == 3 + 2
    latency = plots[1]
    # p50, p90, p99 of iptables' wrk keep-alive and locust fresh, nginx's wrk keep-alive
    assert latency.svg.count('class="mark"') == 3 * 3
    assert "p50, iptables locust fresh: 7.25" in latency.svg
    assert "wrk_vip_keepalive, iptables: 55,061" in throughput.svg
    assert throughput.caption.startswith("Measured on ") and "one run of the benchmark" in (
        throughput.caption
    )
    assert figure_plots({"throughput.json": {"results": "not a list"}, "rule_sync.json": {}}) == []
