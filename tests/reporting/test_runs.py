"""Run directories, provenance, history, the output directory and `harness report`.

What these catch: a report that shows figures from another run without saying so, a history row
added each time the same run is reported, a report that changes bytes when nothing changed, an
output that deletes files it did not write, and a missing input that writes a report anyway.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.reporting import write_report
from harness.reporting.provenance import Provenance, describe_host, resolve
from harness.reporting.runs import (
    RUN_SCHEMA,
    RUNS_DIR,
    new_run_directory,
    newest_run,
    start_run,
    write_figures,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime.datetime(2026, 11, 27, 10, 0, tzinfo=datetime.UTC)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def make_run(
    root: Path, name: str, files: Mapping[str, Mapping[str, Any]], started: str, **extra: Any
) -> Path:
    """A run directory `root/name` with a manifest started at `started` and `files`."""
    directory = root / name
    directory.mkdir(parents=True)
    manifest = {"schema": RUN_SCHEMA, "run": name, "started_at": started,
                "host": {"name": "box", "cpus": 2}, "profile": "full", **extra}  # fmt: skip
    (directory / "run.json").write_text(json.dumps(manifest))
    for file_name, data in files.items():
        (directory / file_name).write_text(json.dumps(data))
    return directory


def table_rows(text: str, heading: str) -> list[str]:
    """The body rows of the Markdown table under the bold `heading`."""
    lines = text.split(f"**{heading}", 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.strip() and rows:
            break
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append(line)
    return rows[1:]  # without the header row


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """A run of days ago: throughput and a conformance results file."""
    files = {
        "throughput.json": fixture("throughput.json"),
        "results-local-iptables.json": fixture("results-local-iptables.json"),
    }
    return make_run(tmp_path / "runs", "20261120T080000Z", files, "2026-11-20T08:00:00Z")


@pytest.fixture
def new_run(tmp_path: Path) -> Path:
    """Today's run: the model's speed only, dated by the run (the file records no date)."""
    files = {"model_throughput.json": fixture("model_throughput.json")}
    return make_run(tmp_path / "runs", "20261127T100000Z", files, "2026-11-27T10:00:00Z")


# -- which figures a report shows --------------------------------------------------------------
def test_a_report_of_a_run_shows_that_runs_figures_only(
    tmp_path: Path, old_run: Path, new_run: Path
) -> None:
    write_report([new_run], tmp_path / "out", history_root=tmp_path / "published")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "local:iptables" not in text and "55,061" not in text
    assert "no results*.json in this report's input" in text
    assert "model_throughput.json: measured 2026-11-27T10:00:00Z on box, 2 CPUs" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.html",
        "model_throughput.json",
        "report.md",
        "results.json",
        "run.json",
    ]


def test_older_figures_given_after_the_run_are_shown_with_their_date_and_directory(
    tmp_path: Path, old_run: Path, new_run: Path
) -> None:
    write_report([new_run, old_run], tmp_path / "out", history_root=tmp_path / "published")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "more than one directory" in text
    where = f"measured 2026-11-26T21:00:00Z on box, 2 CPUs, kernel 6.18, from {old_run}"
    assert f"throughput.json: {where}" in text
    [latency] = table_rows(text, "Programming latency in conformance runs")
    assert f"| {old_run} | 2026-11-26T20:00:00Z |" in latency


def test_a_missing_or_empty_input_or_a_foreign_output_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match=r"input directory .*nowhere not found"):
        write_report([tmp_path / "nowhere"], tmp_path / "out")
    with pytest.raises(UsageError, match="holds no figure file"):
        write_report([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "empty" / "rule_sync.json").write_text(json.dumps(fixture("rule_sync.json")))
    with pytest.raises(UsageError, match="holds files that are not a report"):
        write_report([tmp_path / "empty"], tmp_path / "mine")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


# -- the same run twice, and history ------------------------------------------------------------
def test_reporting_the_same_run_twice_gives_the_same_bytes_and_one_history_row(
    tmp_path: Path, old_run: Path, new_run: Path
) -> None:
    published = tmp_path / "published"
    write_report([old_run], published / "2026-11-20", history_root=published)
    pages = []
    for _ in range(2):
        write_report([new_run], tmp_path / "out", history_root=published)
        pages.append((tmp_path / "out" / "report.md").read_bytes())
    assert pages[0] == pages[1]
    rows = table_rows(pages[0].decode(), "History")
    assert [row.split(" | ")[0] for row in rows] == [
        "| 20261127T100000Z (this report)",
        "| 20261120T080000Z",
    ]
    # published, then reported again: still one row for the run
    write_report([new_run], published / "2026-11-27", history_root=published)
    write_report([new_run], tmp_path / "out", history_root=published)
    rows = table_rows((tmp_path / "out" / "report.md").read_text(), "History")
    assert len(rows) == 2


def test_a_run_published_twice_is_one_row_and_later_reports_are_left_out(
    tmp_path: Path, old_run: Path, new_run: Path
) -> None:
    published = tmp_path / "published"
    write_report([new_run], published / "2026-11-27", history_root=published)
    write_report([new_run], published / "2026-11-27b", history_root=published)
    write_report([old_run], tmp_path / "out", history_root=published)
    rows = table_rows((tmp_path / "out" / "report.md").read_text(), "History")
    assert [row.split(" | ")[0] for row in rows] == ["| 20261120T080000Z (this report)"]
    files = {"mutants.json": fixture("mutants.json")}
    newer = make_run(tmp_path / "runs", "20261128T100000Z", files, "2026-11-28T10:00:00Z",
                     profile="quick")  # fmt: skip
    write_report([newer], tmp_path / "out", history_root=published)
    rows = table_rows((tmp_path / "out" / "report.md").read_text(), "History")
    assert [row.split(" | ")[0] for row in rows] == [
        "| 20261128T100000Z (this report, profile quick)",
        "| 20261127T100000Z",
    ]


@pytest.mark.parametrize("order", ["new first", "old first", "old alone"])
def test_a_published_report_rendered_again_in_place_is_unchanged(
    tmp_path: Path, old_run: Path, new_run: Path, order: str
) -> None:
    """Byte for byte, also when the figures came from several directories in any order."""
    inputs = {"new first": [new_run, old_run], "old first": [old_run, new_run]}.get(
        order, [old_run]
    )
    published = tmp_path / "published"
    target = published / "2026-11-20"
    write_report(inputs, target, history_root=published)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    write_report([target], target, history_root=published)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    manifest = json.loads((target / "run.json").read_text())
    assert manifest["files"]["throughput.json"]["from"] == str(old_run)


def test_an_output_keeps_only_the_figures_it_shows(
    tmp_path: Path, old_run: Path, new_run: Path
) -> None:
    out = tmp_path / "out"
    write_report([new_run, old_run], out, history_root=tmp_path / "published")
    assert (out / "throughput.json").is_file()
    write_report([new_run], out, history_root=tmp_path / "published")
    assert not (out / "throughput.json").exists()
    assert not (out / "results-local-iptables.json").exists()
    assert (old_run / "throughput.json").is_file()  # inputs are never changed


# -- provenance ---------------------------------------------------------------------------------
def test_provenance_prefers_the_files_own_date_then_the_manifest_then_the_run() -> None:
    manifest = {
        "started_at": "2026-11-27T09:00:00Z",
        "host": "runbox",
        "files": {"b.json": {"measured_at": "2026-11-26T22:00:00Z", "from": "reports",
                             "note": "from commit abc"}},
    }  # fmt: skip
    own = resolve({"measured_at": "2026-11-27T09:30:00Z", "machine": {"cpus": 2}}, "d", manifest,
                  "a.json")  # fmt: skip
    assert own == Provenance("2026-11-27T09:30:00Z", "2 CPUs", "d")
    recorded = resolve({}, "d", manifest, "b.json")
    assert recorded == Provenance("2026-11-26T22:00:00Z", "runbox", "reports", "from commit abc")
    by_run = resolve({}, "d", manifest, "c.json")
    assert by_run.measured_at == "2026-11-27T09:00:00Z"
    assert by_run.note == "date of the run that wrote it"
    unknown = resolve({}, "d", None, "c.json")
    assert unknown.line() == "date not recorded on machine not recorded, from d"


def test_a_recorded_machine_is_one_line() -> None:
    assert describe_host({"name": "vm", "cpus": 2, "kernel": "6.1", "python": "3.11.2"}) == (
        "vm, 2 CPUs, kernel 6.1, Python 3.11.2"
    )
    assert describe_host("vm (2 CPUs)") == "vm (2 CPUs)"
    assert describe_host(None) is None and describe_host({}) is None


# -- run directories ------------------------------------------------------------------------------
def test_runs_are_named_by_start_time_and_never_reuse_a_directory(tmp_path: Path) -> None:
    first = start_run(new_run_directory(tmp_path, NOW), profile="quick", command="c", now=NOW)
    second = start_run(new_run_directory(tmp_path, NOW), profile="quick", command="c", now=NOW)
    assert (first.name, second.name) == ("20261127T100000Z", "20261127T100000Z-2")
    assert newest_run(tmp_path) == second
    manifest = json.loads((first / "run.json").read_text())
    assert (manifest["started_at"], manifest["profile"]) == ("2026-11-27T10:00:00Z", "quick")
    (first / "run.json").write_text(json.dumps({"schema": RUN_SCHEMA, "run": "kept"}))
    start_run(first, profile="full", command="c")
    assert json.loads((first / "run.json").read_text()) == {"schema": RUN_SCHEMA, "run": "kept"}
    assert newest_run(tmp_path / "none") is None


def test_figure_files_are_dated_and_name_their_machine(tmp_path: Path) -> None:
    path = write_figures(tmp_path, "x.json", {"figure": 1}, NOW)
    data = json.loads(path.read_text())
    assert data["measured_at"] == "2026-11-27T10:00:00Z" and data["figure"] == 1
    assert set(data["host"]) == {"name", "cpus", "kernel", "python"}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left


# -- the command line ---------------------------------------------------------------------------
def test_report_on_a_missing_directory_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--input", "reports/runs/nosuch"]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "harness: report: input directory reports/runs/nosuch not found; run `tox -e bench` (or"
        " `harness report --mutants`) to make one under reports/runs/, or give --input DIR of an"
        " existing run"
    ]
    assert out == ""
    assert main(["report"]) == 2
    assert "no run under reports/runs/" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_report_defaults_to_the_newest_run_and_an_ignored_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_run(RUNS_DIR, "20261120T080000Z", {"rule_sync.json": fixture("rule_sync.json")},
             "2026-11-20T08:00:00Z")  # fmt: skip
    make_run(RUNS_DIR, "20261127T100000Z", {"mutants.json": fixture("mutants.json")},
             "2026-11-27T10:00:00Z")  # fmt: skip
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "wrote build/reports/report.md" in out
    text = Path("build/reports/report.md").read_text()
    assert "Run 20261127T100000Z" in text and "rule_sync.json: not in this report's input" in text


def test_report_mutants_checks_the_output_before_measuring(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[Path] = []

    def mutation_report(mutants: list[str], failures_dir: Path) -> dict[str, Any]:
        calls.append(failures_dir)
        return {**fixture("mutants.json"), "median_counterexample_events": 2.5}

    monkeypatch.setattr("harness.mutation.mutation_report", mutation_report)
    Path("taken").mkdir()
    Path("taken/notes.txt").write_text("x")
    assert main(["report", "--mutants", "--output", "taken"]) == 2
    assert calls == []
    capsys.readouterr()
    assert main(["report", "--mutants"]) == 0
    [run] = list(RUNS_DIR.iterdir())
    assert calls == [run / "failures" / "mutants"]
    mutants = json.loads((run / "mutants.json").read_text())
    assert mutants["measured_at"].endswith("Z") and mutants["caught"] == "2 of 3"
    assert "Mutants (mutants.json)" in Path("build/reports/report.md").read_text()
