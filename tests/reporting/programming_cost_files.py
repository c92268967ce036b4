"""Synthetic programming_cost.json files (the shape bench/test_programming_cost.py writes), for
the report's and the structure rule's tests: figures chosen so every ratio is known by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SCALES = ((10, 10), (100, 50), (10_000, 5_000))
"""(endpoints, Services) per size, smallest first."""
FIGURES = {
    "iptables": {
        "change_sync_ms": (20.0, 22.0, 30.0),
        "change_apply_ms": (10.0, 11.0, 15.0),
        "change_programmed_ms": (11.0, 12.0, 16.0),
        "change_to_serve_ms": (21.0, 23.0, 32.0),
        "change_bare_ms": (10.0, 10.0, 12.0),
        "full_sync_ms": (50.0, 200.0, 5000.0),
        "full_apply_ms": (20.0, 80.0, 2000.0),
        "full_programmed_ms": (25.0, 100.0, 2600.0),
        "restart_to_serve_ms": (60.0, 210.0, 5100.0),
        "full_bare_ms": (20.0, 100.0, 2500.0),
        "first_packet_us": (25.0, 26.0, 40.0),
    },
    "nftables": {
        "change_sync_ms": (10.0, 12.0, 15.0),
        "change_apply_ms": (8.0, 9.0, 10.0),
        "change_programmed_ms": (8.5, 9.5, 12.0),
        "change_to_serve_ms": (11.0, 13.0, 16.0),
        "change_bare_ms": (8.0, 9.0, 12.0),
        "full_sync_ms": (40.0, 100.0, 1000.0),
        "full_apply_ms": (30.0, 60.0, 700.0),
        "full_programmed_ms": (32.0, 70.0, 750.0),
        "restart_to_serve_ms": (50.0, 110.0, 1100.0),
        "full_bare_ms": (35.0, 70.0, 800.0),
        "first_packet_us": (25.0, 25.0, 30.0),
    },
}


def sizes_of(proxy: str) -> list[dict[str, Any]]:
    return [
        {
            "endpoints": endpoints,
            "services": services,
            **{key: values[index] for key, values in FIGURES[proxy].items()},
            "change_rounds": 4,
            "full_rounds": 3,
            "connections": 21,
            "change_lines_max": 9,
            "full_lines": 100,
            "flows_tracked": 30,
            "flows_sync_ms": 2 * FIGURES[proxy]["full_sync_ms"][index],
        }
        for index, (endpoints, services) in enumerate(SCALES)
    ]


def programming_cost_json() -> dict[str, Any]:
    """A whole file, as write_figures stamps it; a fresh copy each call (tests edit it)."""
    return copy.deepcopy(
        {
            "schema": "harness.programming_cost/v1",
            "measured_at": "2026-11-30T06:00:00Z",
            "host": {"name": "vm", "cpus": 2, "kernel": "6.1", "python": "3.11.2"},
            "benchmark": "programming cost at scale",
            "profile": "full",
            "settings": {
                "client": "client-1",
                "change_rounds": 4,
                "full_rounds": 3,
                "connections": 21,
                "probe": "one Service of two real pods",
                "bulk": "slices no pod backs",
                "first_packet": "connect time",
            },
            "goals": {
                "proxy_over_bare_at_most": 1.5,
                "nftables_change_growth_at_most": 2.0,
                "nftables_first_packet_growth_at_most": 1.5,
            },
            "results": [
                {"proxy": "iptables", "sizes": sizes_of("iptables")},
                {"proxy": "nftables", "sizes": sizes_of("nftables")},
            ],
        }
    )


def write(directory: Path, data: object) -> Path:
    """`data` as `directory`/programming_cost.json (the directory made); returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "programming_cost.json").write_text(json.dumps(data))
    return directory
