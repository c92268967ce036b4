"""The churn benchmark's classification of failed requests (`harness.reporting.churn`) and its
section of the report (`harness.reporting.churn_report`): no traffic, no namespaces, fast.

States and requests are written by hand on a made-up monotonic clock; churn.json is built here
from them with the same function the benchmark uses (bench/test_churn.py), so the report is
tested on the shape the benchmark writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.reporting import write_report
from harness.reporting.churn import (
    CAUSES,
    LISTED_FAILURES,
    Request,
    Span,
    cause_of,
    churn_figures,
    excused,
    phase_of,
    rate_over_time,
)
from harness.reporting.churn_report import causes_table, churn_notes, churn_plots, phases_table
from harness.reporting.history import history_entry
from harness.reporting.regressions import headline
from harness.reporting.sections import build_sections
from harness.reporting.sources import OPTIONAL_FILES, load_sources

OLD, NEW, OUT = ("web-0", "u0"), ("web-1", "u1"), ("web-2", "u2")
SPANS = [
    Span("steady", 0.0, 0.0, frozenset({OLD, OUT})),
    Span("relabel out", 10.0, 10.5, frozenset({OLD})),  # web-2 leaves the selector
    Span("rolling update", 20.0, 20.5, frozenset({OLD, NEW})),
    Span("rolling update", 30.0, 30.5, frozenset({NEW})),  # web-0 deleted
    Span("scale down", 40.0, 40.5, frozenset()),  # nothing usable: refusing is right
    Span("settle", 50.0, 50.0, frozenset()),
]


def answered(at: float, pod: tuple[str, str], took: float = 0.01) -> Request:
    return Request(at, at + took, pod[0], pod[1])


def failed(at: float, error: str) -> Request:
    return Request(at, at + 0.01, error=error)


# -- classification -------------------------------------------------------------------------------
def test_an_error_is_its_own_cause_and_an_unknown_one_is_other() -> None:
    assert [cause_of(failed(1.0, e), SPANS) for e in ("refused", "reset", "timeout")] == [
        "refused",
        "reset",
        "timeout",
    ]
    assert cause_of(failed(1.0, "unreachable"), SPANS) == "other"


def test_a_pod_relabelled_out_answering_after_the_change_settled_is_the_wrong_pod() -> None:
    assert cause_of(answered(5.0, OUT), SPANS) is None  # still selected
    assert cause_of(answered(10.2, OUT), SPANS) is None  # while the change was being applied
    assert cause_of(answered(12.0, OUT), SPANS) == "wrong_pod"
    assert cause_of(answered(12.0, ("web-0", "an older uid")), SPANS) == "wrong_pod"


def test_a_deleted_pod_may_answer_until_its_deletion_is_synced_not_after() -> None:
    assert cause_of(answered(29.99, OLD, took=0.2), SPANS) is None  # began before, overlaps
    assert cause_of(answered(30.4, OLD), SPANS) is None  # the proxy had not synced yet
    assert cause_of(answered(31.0, OLD), SPANS) == "wrong_pod"
    assert cause_of(answered(31.0, NEW), SPANS) is None


def test_failures_while_nothing_is_usable_are_excused_and_phases_follow_the_changes() -> None:
    assert excused(failed(45.0, "refused"), SPANS)
    assert excused(failed(40.2, "refused"), SPANS)  # the change to nothing usable under way
    assert not excused(failed(35.0, "refused"), SPANS)
    assert [phase_of(failed(t, "reset"), SPANS) for t in (-1.0, 5.0, 10.0, 25.0, 35.0, 55.0)] == [
        "steady",
        "steady",
        "relabel out",
        "rolling update",
        "rolling update",
        "settle",
    ]


def figures() -> dict[str, Any]:
    requests = [answered(t / 10, OLD) for t in range(0, 100)]
    requests += [answered(12.0, OUT), failed(21.0, "reset"), failed(45.0, "refused")]
    return churn_figures(requests, SPANS, began_s=0.0)


def test_figures_count_every_cause_per_phase_and_judge_the_promise() -> None:
    result = figures()
    assert result["requests"] == 103 and result["answered"] == 100
    assert result["failures"] == {"refused": 1, "reset": 1, "timeout": 0, "wrong_pod": 1,
                                  "other": 0}  # fmt: skip
    phases = {p["phase"]: p for p in result["phases"]}
    assert list(phases) == ["steady", "relabel out", "rolling update", "scale down", "settle"]
    assert phases["steady"]["requests"] == 100
    assert phases["relabel out"]["failures"]["wrong_pod"] == 1
    assert phases["rolling update"]["failures"]["reset"] == 1
    assert phases["scale down"]["failures"]["refused"] == 1
    assert result["failures_without_usable_endpoints"] == 1
    assert result["promise_kept"] is False and result["breaking_failures"] == 2
    assert [(f["cause"], f["phase"], f["pod"]) for f in result["breaking"]] == [
        ("wrong_pod", "relabel out", "web-2"),
        ("reset", "rolling update", None),
    ]
    assert result["rate_over_time"][0] == [0.0, 10.0] and len(result["rate_over_time"]) == 45


def test_the_rate_over_time_leaves_out_the_last_bin_the_load_stopped_in() -> None:
    requests = [answered(t / 4, OLD) for t in range(10)]  # 4/s from 0 to 2.25 s
    assert rate_over_time(requests, 0.0, 1.0) == [[0.0, 4.0], [1.0, 4.0]]
    assert rate_over_time(requests[:3], 0.0, 1.0) == [[0.0, 3.0]]
    assert rate_over_time([], 0.0, 1.0) == []


def test_the_promise_holds_with_only_excused_failures_and_listing_is_bounded() -> None:
    kept = churn_figures([answered(1.0, OLD), failed(45.0, "refused")], SPANS, 0.0)
    assert kept["promise_kept"] is True and kept["failures"]["refused"] == 1
    many = churn_figures([failed(1.0 + i / 100, "timeout") for i in range(50)], SPANS, 0.0)
    assert many["breaking_failures"] == 50 and len(many["breaking"]) == LISTED_FAILURES
    with pytest.raises(ValueError, match="at least one state"):
        churn_figures([], [], 0.0)


# -- the report -----------------------------------------------------------------------------------
def churn_json() -> dict[str, Any]:
    clean = churn_figures([answered(t / 10, OLD) for t in range(30)], SPANS, 0.0)
    return {
        "schema": "harness.churn/v1",
        "measured_at": "2026-11-30T04:00:00Z",
        "host": {"name": "vm", "cpus": 2},
        "settings": {"pods": 4, "rate_per_s": 100, "generator": "the test's", "client": "c"},
        "duration_s": 9.5,
        "results": [
            {"proxy": "iptables", **figures()},
            {"proxy": "nftables", **clean},
            {"proxy": "nginx", "failed": "EnvironmentProblem: nginx is missing"},
        ],
    }


def test_the_causes_table_shows_every_cause_and_who_kept_the_promise() -> None:
    table = causes_table(churn_json())
    assert table.headers[3:] == ("refused", "reset", "timeout", "wrong pod", "other", "promise")
    assert [row[0] for row in table.rows] == ["iptables", "nftables", "nginx"]
    assert table.rows[0][3:] == ("1", "1", "0", "1", "0", "broken (2)")
    assert table.rows[1][-1] == "kept" and table.rows[2][-1] == "failed"
    phases = phases_table(churn_json())
    assert phases.headers[:3] == ("proxy", "steady", "relabel out")
    assert phases.rows[0][2] == "1 sent, 1 wrong pod failed"


def test_the_notes_name_the_generator_and_the_failures_that_broke_the_promise() -> None:
    notes = churn_notes(churn_json())
    assert notes[0].startswith("Generator: the test's; 100 requests/s from c")
    assert "iptables: promise broken by wrong pod in relabel out at 12.00 s from web-2;" in (
        " ".join(notes)
    )
    assert "iptables: 1 failure(s) while no endpoint was usable (excused)" in notes
    assert "nginx: no figures (EnvironmentProblem: nginx is missing)" in notes


def test_the_plots_draw_a_bar_per_cause_and_implementation_and_name_the_machine() -> None:
    plots = churn_plots(churn_json())
    assert [plot.title for plot in plots] == [
        "Failed requests under churn, per cause",
        "Requests/s under churn, over the run",
    ]
    assert plots[0].svg.count('class="mark"') == 2 * len(CAUSES)
    assert "reset, iptables (broken): 1" in plots[0].svg
    assert plots[0].caption.startswith("Measured on vm, 2 CPUs.")
    assert churn_plots({"results": [{"proxy": "x", "failures": "none"}]}) == []


def write(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "churn.json").write_text(json.dumps(data))
    return directory


def test_the_section_is_there_with_churn_json_and_left_out_without_it(tmp_path: Path) -> None:
    sections, malformed = build_sections(load_sources([write(tmp_path / "run", churn_json())]))
    churn = next(s for s in sections if s.title == "Churn")
    assert malformed == {} and len(churn.tables) == 2 and len(churn.plots) == 2
    empty = load_sources([tmp_path / "nothing"])
    assert "churn.json" in OPTIONAL_FILES and "churn.json" not in empty.missing
    assert all(s.title != "Churn" for s in build_sections(empty)[0])


def test_a_malformed_churn_json_is_one_note_and_no_plot(tmp_path: Path) -> None:
    sources = load_sources([write(tmp_path / "run", {"schema": "harness.churn/v1", "results": 3})])
    sections, malformed = build_sections(sources)
    churn = next(s for s in sections if s.title == "Churn")
    assert churn.plots == () and "churn.json" in malformed
    assert [n for n in churn.notes if n.startswith("churn.json: malformed, skipped")]


def test_the_report_tracks_each_implementations_failures_as_a_headline(tmp_path: Path) -> None:
    run = write(tmp_path / "run", churn_json())
    entry = history_entry(load_sources([run]))
    assert entry["churn_failures"] == {"iptables": 2, "nftables": 0}
    figures_ = headline(entry)
    assert figures_["churn nftables failed requests"].value == 0.0
    assert not figures_["churn iptables failed requests"].higher_is_better
    written = write_report([run], tmp_path / "out", history_root=tmp_path / "published")
    assert "churn iptables failed requests" in [v.name for v in written.verdicts]
    page = (tmp_path / "out" / "index.html").read_text()
    assert page.count("<svg") >= 2 and "Failed requests under churn, per cause" in page
