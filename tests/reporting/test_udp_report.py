"""The report's UDP section (`harness.reporting.udp_report`, from bench/test_udp.py's udp.json):
no traffic, no namespaces, fast. udp.json is written here by hand in the shape the benchmark
writes (tests/bench/test_udp_rules.py holds the same shape to the benchmark's structure rule).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from harness.reporting import write_report
from harness.reporting.render import markdown
from harness.reporting.sections import build_sections
from harness.reporting.sources import OPTIONAL_FILES, load_sources
from harness.reporting.udp_report import (
    flow_move_table,
    throughput_table,
    udp_notes,
    udp_plots,
)

GENERATOR = {"tool": "harness-udp-rr", "threads": 1, "flows": 4, "seconds": 1, "timeout_ms": 200}


def run(rate: float, p50: float, p99: float, **more: Any) -> dict[str, Any]:
    """One generator run's summary, as `load_results.summarise` writes it."""
    return {
        "tool": "harness-udp-rr",
        "generator": GENERATOR,
        "rounds": 1,
        "requests_per_s": rate,
        "latency_p50_us": p50,
        "latency_p90_us": (p50 + p99) / 2,
        "latency_p99_us": p99,
        "requests": int(rate),
        "errors": 0,
        "round_requests_per_s": [rate],
        "backends": {"web-0": int(rate)},
        **more,
    }


def measured(proxy: str, ratio: float, moves: list[float]) -> dict[str, Any]:
    samples = [
        {"from": f"web-{i}", "to": f"web-{i + 1}", "move_ms": ms, "apply_ms": ms - 2}
        for i, ms in enumerate(moves)
    ]
    ordered = sorted(moves)
    return {
        "proxy": proxy,
        "pod": run(30000.0, 66.4, 710.0),
        "vip": run(30000.0 * ratio, 65.1, 2396.0, ceiling="pod", ratio_to_ceiling=ratio),
        "flow_move": {
            "moves": len(moves),
            "moved": len(moves),
            "not_moved": 0,
            "move_p50_ms": ordered[(len(ordered) + 1) // 2 - 1],
            "move_p99_ms": ordered[-1],
            "apply_p50_ms": 50.0,
            "samples": samples,
        },
    }


def udp_json() -> dict[str, Any]:
    """The shape bench/test_udp.py writes (its report, schema and stamps added)."""
    return {
        "schema": "harness.udp/v1",
        "measured_at": "2026-11-30T07:17:51Z",
        "host": {"name": "vm", "cpus": 2, "kernel": "6.18", "python": "3.11.2"},
        "benchmark": "UDP request/response through the VIP against direct-to-pod, and flow moves",
        "started_at": "2026-11-30T07:17:51Z",
        "settings": {
            "generator": "harness UDP request/response loop",
            "flows": 4,
            "seconds": 1,
            "rounds": 1,
            "timeout_ms": 200,
            "pods": 3,
            "client": "client-1",
            "moves": 3,
            "interval_ms": 5,
            "move_limit_s": 10,
            "source_port": 12345,
        },
        "duration_s": 6.5,
        "results": [
            measured("iptables", 0.816, [55.4, 59.9, 41.0]),
            measured("nftables", 1.001, [56.3, 72.1, 50.0]),
            {"proxy": "userspace", "not_supported": "does not declare the udp feature"},
            {"proxy": "nginx", "failed": "HarnessError: the fixed UDP flow stopped"},
        ],
    }


def write(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "udp.json").write_text(json.dumps(data))
    return directory


def test_the_throughput_table_sets_each_vip_beside_its_own_ceiling() -> None:
    table = throughput_table(udp_json())
    assert "against direct-to-pod" in table.title and "side by side" in table.title
    assert table.rows[0] == (
        "iptables", "30,000", "66.4", "710", "24,480", "65.1", "2,396", "0.82x",
    )  # fmt: skip
    assert table.rows[1][-1] == "1.00x"
    assert table.rows[2] == ("userspace", *["not supported"] * 7)
    assert table.rows[3] == ("nginx", *["failed"] * 7)


def test_a_ratio_between_runs_of_different_generators_is_not_shown() -> None:
    data = udp_json()
    data["results"][0]["vip"]["generator"] = {**GENERATOR, "flows": 8}
    assert throughput_table(data).rows[0][-1] == "-"


def test_the_flow_move_table_gives_p50_p99_and_the_moves_that_did_not_happen() -> None:
    data = udp_json()
    data["results"][1]["flow_move"] |= {"moved": 2, "not_moved": 1, "move_p99_ms": None}
    table = flow_move_table(data)
    assert table.headers[-1] == "not moved within 10 s"
    assert table.rows[0] == ("iptables", "3", "55.4", "59.9", "50.0", "0")
    assert table.rows[1] == ("nftables", "3", "56.3", "-", "50.0", "1")
    assert table.rows[2] == ("userspace", *["not supported"] * 5)


def test_the_notes_name_the_generator_its_settings_the_runs_and_every_proxy_without_figures() -> (
    None
):
    notes = udp_notes(udp_json())
    assert notes[0].startswith("Generator: harness UDP request/response loop; 4 flows, 1 round(s)")
    assert "source port 12345" in notes[0] and "one run of the benchmark, 6.5 s" in notes[0]
    assert "userspace: not supported (does not declare the udp feature)" in notes
    assert "nginx: no figures (HarnessError: the fixed UDP flow stopped)" in notes


def test_two_plots_of_the_measured_proxies_with_machine_and_generator_in_the_captions() -> None:
    plots = udp_plots(udp_json())
    assert [p.title for p in plots] == [
        "UDP flow move after its backend is deleted, p50 and p99",
        "UDP request/response through the VIP and its ceiling",
    ]
    for plot in plots:
        assert plot.svg.startswith("<svg") and "iptables" in plot.svg and "nftables" in plot.svg
        assert "userspace" not in plot.svg and "nginx" not in plot.svg
        assert plot.caption.startswith("Measured on vm, 2 CPUs") and "Generator:" in plot.caption
    nothing = {**udp_json(), "results": [{"proxy": "nginx", "not_supported": "tcp only"}]}
    assert udp_plots(nothing) == []


def test_the_section_is_there_with_udp_json_and_left_out_without_it(tmp_path: Path) -> None:
    sections, malformed = build_sections(load_sources([write(tmp_path / "run", udp_json())]))
    udp = next(s for s in sections if s.title == "UDP")
    assert malformed == {} and len(udp.tables) == 2 and len(udp.plots) == 2
    assert udp.notes[0].startswith("udp.json: measured 2026-11-30T07:17:51Z on vm")
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    (empty_dir / "rule_sync.json").write_text('{"results": []}')
    empty = load_sources([empty_dir])
    assert "udp.json" in OPTIONAL_FILES and "udp.json" not in empty.missing
    without = build_sections(empty)[0]
    assert all(s.title != "UDP" for s in without)
    assert "udp" not in markdown("report", [], without).lower()


def test_a_malformed_udp_json_is_one_note_and_no_plot(tmp_path: Path) -> None:
    broken = copy.deepcopy(udp_json())
    broken["results"][0]["pod"]["requests_per_s"] = "fast"
    for name, data in (("shape", broken), ("schema", {**udp_json(), "schema": "harness.udp/v9"})):
        sections, malformed = build_sections(load_sources([write(tmp_path / name, data)]))
        udp = next(s for s in sections if s.title == "UDP")
        assert udp.plots == () and udp.tables == () and "udp.json" in malformed
        (note,) = udp.notes
        assert note.startswith("udp.json: malformed, skipped (") and "\n" not in note


def test_the_page_draws_the_udp_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_report([write(tmp_path / "run", udp_json())], out, history_root=tmp_path / "published")
    page = (out / "index.html").read_text()
    assert page.count("<h2>UDP</h2>") == 1
    assert "UDP flow move after its backend is deleted, p50 and p99" in page
    assert "| userspace | not supported |" in (out / "report.md").read_text()
