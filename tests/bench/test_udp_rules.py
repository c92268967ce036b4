"""The UDP benchmark's structure rule (bench/udp_rules.py) and its percentile
(bench/udp_load.py), on the figures of tests/reporting/test_udp_report.py: the file the report is
tested on is one the benchmark would accept, and each breach is caught. No traffic, fast."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from udp_load import percentile
from udp_rules import udp_problems

from tests.reporting.test_udp_report import udp_json


def accepted() -> dict[str, Any]:
    """udp.json as the report's tests write it, without the failed proxy (a breach here)."""
    data = udp_json()
    data["results"] = [r for r in data["results"] if "failed" not in r]
    return data


def test_the_reports_figures_hold_and_a_failed_proxy_is_a_breach() -> None:
    assert udp_problems(accepted()) == []
    assert udp_problems(udp_json()) == ["nginx: HarnessError: the fixed UDP flow stopped"]


def breach(change: str) -> list[str]:
    data = copy.deepcopy(accepted())
    iptables = data["results"][0]
    if change == "unsupported with figures":
        data["results"][2]["vip"] = iptables["vip"]
    elif change == "latency in ms":
        del iptables["vip"]["latency_p99_us"]
    elif change == "nothing answered":
        iptables["pod"]["requests"] = 0
    elif change == "generators differ":
        iptables["vip"]["generator"] = {**iptables["vip"]["generator"], "flows": 8}
    elif change == "ratio to elsewhere":
        iptables["vip"]["ceiling"] = "throughput.json"
    elif change == "not moved":
        iptables["flow_move"] |= {"moved": 2, "not_moved": 1}
    elif change == "moved to itself":
        iptables["flow_move"]["samples"][0]["to"] = iptables["flow_move"]["samples"][0]["from"]
    elif change == "fewer moves":
        iptables["flow_move"]["samples"].pop()
    elif change == "p50 above p99":
        iptables["flow_move"]["move_p50_ms"] = 1e6
    elif change == "figures missing":
        del iptables["flow_move"]
    return udp_problems(data)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("unsupported with figures", "userspace: not supported, yet with figures ['vip']"),
        ("latency in ms", "iptables vip: latency_p99_us is None, not microseconds"),
        ("nothing answered", "iptables pod: no request answered"),
        ("generators differ", "iptables: VIP run by"),
        ("ratio to elsewhere", "iptables: the VIP's ratio is not to its own pod run"),
        ("not moved", "iptables: the fixed UDP flow did not move 1 time(s)"),
        ("moved to itself", "iptables: a move ended on the deleted pod"),
        ("fewer moves", "iptables: 3 flow moves (2 timed), planned 3"),
        ("p50 above p99", "iptables: flow-move p50 1000000.0 and p99 59.9"),
        ("figures missing", "iptables: figures ['pod', 'vip'], expected"),
    ],
)
def test_each_breach_is_one_line_naming_the_proxy(change: str, expected: str) -> None:
    found = breach(change)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0  # fewer than 100: the largest
    values = [float(v) for v in range(1, 201)]
    assert (percentile(values, 50), percentile(values, 99)) == (100.0, 198.0)
