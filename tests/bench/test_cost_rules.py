"""The structure rule of programming_cost.json (bench/cost_rules.py) on synthetic files: a file
as the benchmark writes it holds; each kind of breach is named in one line. No traffic, fast."""

from __future__ import annotations

from cost_rules import structure_problems

from tests.reporting.programming_cost_files import programming_cost_json


def test_a_file_as_the_benchmark_writes_it_holds() -> None:
    assert structure_problems(programming_cost_json()) == []
    failed = programming_cost_json()
    failed["results"][0] = {"proxy": "iptables", "failed": "nft is missing"}
    assert structure_problems(failed) == []


def test_missing_goals_figures_and_reasons_are_named() -> None:
    data = programming_cost_json()
    del data["goals"]["proxy_over_bare_at_most"]
    data["results"][0]["sizes"][1]["first_packet_us"] = "fast"
    data["results"][1] = {"proxy": "nftables", "failed": ""}
    assert structure_problems(data) == [
        "goal proxy_over_bare_at_most is not stated",
        "iptables size 1: first_packet_us is 'fast', not a number > 0",
        "nftables: failed without a reason",
    ]


def test_medians_out_of_their_samples_order_are_named() -> None:
    data = programming_cost_json()
    size = data["results"][1]["sizes"][0]
    size["change_apply_ms"] = 9.0  # more than its sync until it ended (8.5)
    size["full_programmed_ms"] = 41.0  # programmed after its sync (40) ended
    size["restart_to_serve_ms"] = 39.0  # served before the full sync (40) ended
    size["change_rounds"] = 3
    assert structure_problems(data) == [
        "nftables size 0: 3 changes, not there and back",
        "nftables size 0: change_apply_ms 9.0 exceeds change_programmed_ms 8.5",
        "nftables size 0: full_programmed_ms 41.0 exceeds full_sync_ms 40.0",
        "nftables size 0: full_sync_ms 40.0 exceeds restart_to_serve_ms 39.0",
    ]


def test_sizes_that_do_not_grow_or_differ_between_proxies_are_named() -> None:
    data = programming_cost_json()
    sizes = data["results"][0]["sizes"]
    sizes[0], sizes[1] = sizes[1], sizes[0]
    data["results"][1]["sizes"] = data["results"][1]["sizes"][:2]
    problems = structure_problems(data)
    assert problems[0] == "iptables: sizes [100, 10, 10000] do not grow strictly"
    assert problems[1].startswith("proxies measured different sizes:")
    assert len(problems) == 2


def test_a_failed_size_needs_a_reason_and_a_restart_with_flows_one_outcome() -> None:
    data = programming_cost_json()
    data["results"][0]["sizes"][2] = {"endpoints": 10_000, "services": 5_000, "failed": "why"}
    assert structure_problems(data) == []
    data["results"][0]["sizes"][2]["failed"] = ""
    size = data["results"][1]["sizes"][0]
    size["flows_sync_failed"] = "timed out"  # beside flows_sync_ms: one of the two
    other = data["results"][1]["sizes"][1]
    del other["flows_sync_ms"]
    other["flows_sync_failed"] = ""
    assert structure_problems(data) == [
        "iptables size 2: failed without a reason",
        "nftables size 0: flows_sync_ms or flows_sync_failed, one of the two, is needed",
        "nftables size 1: flows_sync_failed without a reason",
    ]


def test_the_rule_tool_and_a_variant_are_lines_and_no_result_is_measured_twice() -> None:
    data = programming_cost_json()
    data["results"][1]["tool"] = "nftables v1.0.6 (Lester Gooch #5)"
    data["results"].append({**data["results"][1], "variant": "nft v1.1.3"})
    assert structure_problems(data) == []
    data["results"][0]["tool"] = ""
    data["results"].append({**data["results"][1], "variant": None})
    assert structure_problems(data) == [
        "iptables: tool is '', not a line",
        "nftables: variant is None, not a line",
        "nftables: measured twice",
    ]


def test_a_floor_when_given_is_a_number_above_zero() -> None:
    data = programming_cost_json()
    data["results"][1]["sizes"][0].update(floor_bare_ms=12.0, floor_goto_bare_ms=14.0)
    assert structure_problems(data) == []
    data["results"][1]["sizes"][0].update(floor_bare_ms=0, floor_goto_bare_ms="14")
    assert structure_problems(data) == [
        "nftables size 0: floor_bare_ms is 0, not a number > 0",
        "nftables size 0: floor_goto_bare_ms is '14', not a number > 0",
    ]
