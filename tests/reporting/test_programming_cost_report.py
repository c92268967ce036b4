"""The report reads programming_cost.json (bench/test_programming_cost.py, issue 13 item 5):
a section with the figures per proxy and size, the issue's ratios from the one run beside their
goals, and one log-log plot; nothing at all when the file is absent (optional, so published
reports render again byte for byte); one note when malformed. No traffic, fast: synthetic files
(tests/reporting/programming_cost_files.py) whose ratios are known by hand."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.reporting import write_report
from harness.reporting.programming_cost import (
    PLOT_TITLE,
    TITLE,
    cost_notes,
    cost_plot,
    cost_ratios,
    cost_table,
    ratios_table,
)
from harness.reporting.sections import build_sections
from harness.reporting.sources import OPTIONAL_FILES, load_sources
from tests.reporting.programming_cost_files import programming_cost_json, write

CHECKOUT = Path(__file__).resolve().parents[2]


def ratios(data: Any) -> dict[str, tuple[float | None, bool | None]]:
    return {ratio.name: (ratio.value, ratio.met) for ratio in cost_ratios(data)}


def section_of(directory: Path) -> Any:
    sections, malformed = build_sections(load_sources([directory]))
    return next((s for s in sections if s.title == TITLE), None), malformed


def test_the_ratios_are_those_of_the_one_runs_figures_beside_the_goals() -> None:
    """Programming (the sync until its rule command returned) carries the goal; the whole
    sync, conntrack housekeeping included, is shown beside it without one."""
    found = ratios(programming_cost_json())
    span = "from 10 to 10,000 endpoints"
    worst = "over the bare command, worst of 3 size(s)"
    assert found == {
        f"iptables full sync, growth {span}": (100.0, True),
        f"nftables one-change programming, growth {span}": (pytest.approx(12 / 8.5), True),
        f"iptables one-change programming {worst}": (pytest.approx(16 / 12), True),
        f"iptables one-change sync {worst}": (2.5, None),
        f"iptables full programming {worst}": (1.25, True),
        f"iptables full sync {worst}": (2.5, None),
        f"nftables one-change programming {worst}": (pytest.approx(8.5 / 8), True),
        f"nftables one-change sync {worst}": (pytest.approx(12 / 9), None),
        f"nftables full programming {worst}": (1.0, True),
        f"nftables full sync {worst}": (pytest.approx(100 / 70), None),
        f"nftables first-packet latency, growth {span}": (1.2, True),
    }
    table = ratios_table(programming_cost_json())
    assert (f"iptables full sync {worst}", "2.50x", "shown (with conntrack housekeeping)",
            "-") in table.rows  # fmt: skip
    assert (f"iptables full programming {worst}", "1.25x", "at most 1.5x", "yes") in table.rows


def test_the_bare_commands_floor_is_shown_beside_the_growth_with_the_chains() -> None:
    """The floor (the smallest committing transaction at each size) is shown, without a goal:
    it is what the nftables growth goal cannot get under; files without it show nothing."""
    data = programming_cost_json()
    for result in data["results"]:
        for size, (floor, chains) in zip(
            result["sizes"], ((4.0, 12), (6.0, 150), (16.0, 15002)), strict=True
        ):
            size["floor_bare_ms"], size["chains"] = floor, chains
    found = ratios(data)
    assert found["nftables bare command's floor, growth from 10 to 10,000 endpoints"] == (4.0, None)
    notes = [n for n in cost_notes(data) if "the bare command's floor" in n]
    assert len(notes) == 2 and notes[1].startswith("nftables")
    assert "10,000 endpoints: 16 ms with 15,002 chains" in notes[1]
    assert not [n for n in cost_notes(programming_cost_json()) if "floor" in n]


def test_a_file_without_programmed_figures_is_judged_on_its_whole_sync() -> None:
    """A file written before programming was measured: the goal applies to the sync, as then."""
    data = programming_cost_json()
    for result in data["results"]:
        for size in result["sizes"]:
            del size["change_programmed_ms"], size["full_programmed_ms"]
    found = ratios(data)
    assert found["iptables full sync over the bare command, worst of 3 size(s)"] == (2.5, False)
    assert found["nftables one-change sync, growth from 10 to 10,000 endpoints"] == (1.5, True)
    assert not [name for name in found if "programming" in name]
    assert cost_table(data).rows[0][6] == "-"


def test_goals_the_file_states_are_the_ones_judged() -> None:
    data = programming_cost_json()
    data["goals"]["nftables_change_growth_at_most"] = 1.2
    found = ratios(data)
    growth = found["nftables one-change programming, growth from 10 to 10,000 endpoints"]
    assert growth == (pytest.approx(12 / 8.5), False)


def test_a_row_per_proxy_and_size_with_the_rule_commands_share_and_sync_over_bare() -> None:
    table = cost_table(programming_cost_json())
    assert len(table.rows) == 6
    assert table.rows[2] == (
        "iptables", "10,000", "5,000", "30 (15)", "12", "2.50x", "1.33x", "32", "5,000 (2,000)",
        "2,500", "2.00x", "1.04x", "5,100", "40",
    )  # fmt: skip


def test_a_failed_proxy_is_a_note_and_its_ratios_are_left_out() -> None:
    data = programming_cost_json()
    data["results"][0] = {"proxy": "iptables", "failed": "iptables-restore is missing"}
    assert [row[0] for row in cost_table(data).rows] == ["nftables"] * 3
    assert not [name for name in ratios(data) if name.startswith("iptables")]
    assert "iptables: no figures (iptables-restore is missing)" in cost_notes(data)


def test_one_size_has_no_growth_and_a_zero_bare_figure_no_quotient() -> None:
    data = programming_cost_json()
    for result in data["results"]:
        result["sizes"] = result["sizes"][:1]
    data["results"][1]["sizes"][0]["change_bare_ms"] = 0
    found = ratios(data)
    assert not [name for name in found if "growth" in name]
    assert found["nftables one-change sync over the bare command, worst of 1 size(s)"] == (
        None,
        None,
    )
    assert cost_table(data).rows[1][5] == "-"


def test_the_plot_is_log_log_with_both_proxies_and_both_measures() -> None:
    plot = cost_plot(programming_cost_json())
    assert plot is not None and plot.title == PLOT_TITLE
    assert plot.svg.count("<polyline") == 4
    for name in ("iptables one change, sync", "iptables full sync", "nftables one change, sync",
                 "nftables full sync"):  # fmt: skip
        assert f"<title>{name}</title>" in plot.svg
    assert ">10k</text>" in plot.svg and ">1k</text>" in plot.svg  # decades on both axes
    assert "Measured on vm, 2 CPUs" in plot.caption and "21 fresh connection(s)" in plot.caption


def test_the_report_has_the_section_with_its_plot(tmp_path: Path) -> None:
    run = write(tmp_path / "run", programming_cost_json())
    section, malformed = section_of(run)
    assert malformed == {}
    assert [plot.title for plot in section.plots] == [PLOT_TITLE]
    assert [table.title.split(" (")[0] for table in section.tables] == [
        "Programming cost against scale",
        "Ratios measured in this run, beside the goals",
    ]
    write_report([run], tmp_path / "out", history_root=tmp_path / "published")
    page = (tmp_path / "out" / "index.html").read_text()
    assert f'aria-label="{PLOT_TITLE}"' in page
    assert f"## {TITLE}" in (tmp_path / "out" / "report.md").read_text()


def test_malformed_it_is_one_note_without_a_plot(tmp_path: Path) -> None:
    data = programming_cost_json()
    del data["results"][1]["sizes"][2]["full_sync_ms"]
    section, malformed = section_of(write(tmp_path / "broken", data))
    assert "programming_cost.json" in malformed
    assert section.plots == () and section.tables == ()
    note = "programming_cost.json: malformed, skipped (KeyError: 'full_sync_ms')"
    assert section.notes == (note,)
    other = {**programming_cost_json(), "schema": "harness.programming_cost/v9"}
    section, malformed = section_of(write(tmp_path / "future", other))
    assert "programming_cost.json" in malformed and len(section.notes) == 1


def test_absent_it_is_no_part_of_the_report(tmp_path: Path) -> None:
    """A run without the file has no such section, and a published report (made before the
    file existed) renders again byte for byte."""
    assert "programming_cost.json" in OPTIONAL_FILES
    empty = tmp_path / "empty"
    empty.mkdir()
    assert section_of(empty)[0] is None
    published = CHECKOUT / "reports" / "2026-11-29"
    again = tmp_path / "again"
    shutil.copytree(published, again)
    write_report([again], again, history_root=CHECKOUT / "reports")
    for page in ("report.md", "index.html", "results.json"):
        assert (again / page).read_bytes() == (published / page).read_bytes(), page


def test_a_failed_size_is_a_row_and_a_note_and_the_restart_with_flows_a_note() -> None:
    data = programming_cost_json()
    sizes = data["results"][1]["sizes"]
    sizes[2] = {"endpoints": 10_000, "services": 5_000, "failed": "nft timed out"}
    sizes[1]["flows_sync_ms"] = None
    sizes[1]["flows_sync_failed"] = "conntrack did not finish within 30 s"
    rows = cost_table(data).rows
    assert rows[3][:4] == ("nftables", "10,000", "5,000", "failed")
    assert [row[1] for row in rows[4:]] == ["10", "100"]
    notes = cost_notes(data)
    assert "nftables at 10,000 endpoints: no figures (nft timed out)" in notes
    (flows,) = [note for note in notes if note.startswith("nftables, full sync after a restart")]
    assert flows.endswith(
        "10 endpoints: 80 ms with 30 tracked; 100 endpoints: failed (conntrack did not finish"
        " within 30 s) with 30 tracked"
    )
    growth = ratios(data)["nftables one-change programming, growth from 10 to 100 endpoints"]
    assert growth == (pytest.approx(9.5 / 8.5), True)  # the sizes that gave figures only


def test_a_variant_is_named_with_its_nft_and_judged_on_its_own() -> None:
    """The nftables proxy run once more with another `nft` (HARNESS_BENCH_PROGCOST_NFT) is a
    result of its own, named `nftables (nft v1.1.3)` in rows, ratios, plot and notes; each
    result's rule tool is a note, so a reader sees which `nft` gave which growth."""
    data = programming_cost_json()
    data["results"][1]["tool"] = "nftables v1.0.6 (Lester Gooch #5)"
    variant = {**data["results"][1], "variant": "nft v1.1.3", "tool": "nftables v1.1.3 (x)"}
    variant["sizes"] = [dict(size) for size in variant["sizes"]]
    variant["sizes"][-1]["change_programmed_ms"] = 34.0  # 4x the smallest size's 8.5
    data["results"].append(variant)
    found = ratios(data)
    growth = "one-change programming, growth from 10 to 10,000 endpoints"
    assert found[f"nftables {growth}"] == (12.0 / 8.5, True)
    assert found[f"nftables (nft v1.1.3) {growth}"] == (4.0, False)
    assert "nftables (nft v1.1.3) first-packet latency, growth from 10 to 10,000 endpoints" in found
    assert [row[0] for row in cost_table(data).rows].count("nftables (nft v1.1.3)") == 3
    notes = cost_notes(data)
    assert "nftables ran nftables v1.0.6 (Lester Gooch #5)" in notes
    assert "nftables (nft v1.1.3) ran nftables v1.1.3 (x)" in notes
    plot = cost_plot(data)
    assert plot is not None and "nftables (nft v1.1.3) one change, sync" in plot.svg


def test_the_floor_with_a_goto_is_shown_beside_the_plain_one() -> None:
    """The nftables sizes' floor with a goto (the kernel validates the table on such a commit,
    as on every endpoint change) is a ratio without a goal and part of the floor note; iptables
    has none, and a file without it shows nothing of it."""
    data = programming_cost_json()
    for result in data["results"]:
        for size, floor in zip(result["sizes"], (4.0, 6.0, 16.0), strict=True):
            size["floor_bare_ms"] = floor
            if result["proxy"] == "nftables":
                size["floor_goto_bare_ms"] = 2 * floor + 1
    found = ratios(data)
    growth = "growth from 10 to 10,000 endpoints"
    assert found[f"nftables bare command's floor with a goto, {growth}"] == (33.0 / 9.0, None)
    assert f"iptables bare command's floor with a goto, {growth}" not in found
    (note,) = [n for n in cost_notes(data) if n.startswith("nftables, the bare command's floor")]
    assert "10,000 endpoints: 16 ms (with a goto 33 ms)" in note
    assert "nft_table_validate" in note
    del data["results"][1]["sizes"][0]["floor_goto_bare_ms"]
    assert not [name for name in ratios(data) if "with a goto" in name]
