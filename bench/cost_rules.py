"""What every programming_cost.json must hold, whatever the machine's speed: its structure and
the relations its medians obey by construction, never their values. Pure: the report's dict in,
one line per breach out (empty when it holds).

- the goals the report judges against are stated (`GOALS`, numbers);
- every proxy gave figures (`sizes`, at least one) or says why not (`failed`, a line); the
  version of its rule tool (`tool`) and the name of a variant (`variant`, another `nft`), when
  given, are lines, and no proxy and variant is measured twice;
- every size has every figure (`FIGURES`, numbers > 0) and its counts (`COUNTS`, whole numbers
  >= 1; the changes go there and back, so their count is even), and at least one endpoint per
  Service, or says why not (`failed`, a line, beside its endpoints and Services); the floors
  (`FLOORS`), when given, are numbers > 0;
- every measured size has the restart with tracked connections: how many (`flows_tracked`, a
  whole number) and its sync (`flows_sync_ms`, a number > 0) or why it failed
  (`flows_sync_failed`, a line), not both;
- a proxy's sizes grow strictly in endpoints, and every proxy measured the same sizes, so a ratio
  between proxies or sizes compares figures of one run at the same scale;
- each median keeps the order of the samples it comes from: a change or restart is served no
  sooner than the sync in it ended, the rule command is a part of its sync, and a sync is
  programmed (its rule command returned) no sooner than the command ran and no later than it
  ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.reporting.programming_cost import result_label

GOALS = (
    "proxy_over_bare_at_most",
    "nftables_change_growth_at_most",
    "nftables_first_packet_growth_at_most",
)
FIGURES = (
    "change_sync_ms",
    "change_apply_ms",
    "change_programmed_ms",
    "change_to_serve_ms",
    "change_bare_ms",
    "full_sync_ms",
    "full_apply_ms",
    "full_programmed_ms",
    "restart_to_serve_ms",
    "full_bare_ms",
    "first_packet_us",
)
COUNTS = ("endpoints", "services", "change_rounds", "full_rounds", "connections")
FLOORS = ("floor_bare_ms", "floor_goto_bare_ms")
"""Figures a size may have (files from before they were measured lack them; iptables has no
goto floor): numbers > 0 when given."""
ORDERED = (
    ("change_apply_ms", "change_programmed_ms"),
    ("change_programmed_ms", "change_sync_ms"),
    ("change_sync_ms", "change_to_serve_ms"),
    ("full_apply_ms", "full_programmed_ms"),
    ("full_programmed_ms", "full_sync_ms"),
    ("full_sync_ms", "restart_to_serve_ms"),
)
"""(smaller, larger): pairs of medians whose every sample pair is ordered so."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _reason(where: str, value: object, what: str = "failed") -> list[str]:
    """A breach unless `value` is a line saying why something `what`."""
    return [] if isinstance(value, str) and value else [f"{where}: {what} without a reason"]


def _failed_problems(where: str, size: Mapping[str, Any]) -> list[str]:
    counts = ("endpoints", "services")
    return _reason(where, size["failed"]) + [
        f"{where}: {key} is {size.get(key)!r}, not a whole number >= 1"
        for key in counts
        if not _is_count(size.get(key))
    ]


def _flows_problems(where: str, size: Mapping[str, Any]) -> list[str]:
    found = []
    if not (_is_count(size.get("flows_tracked")) or size.get("flows_tracked") == 0):
        found.append(f"{where}: flows_tracked is {size.get('flows_tracked')!r}, not a count")
    timed, failed = size.get("flows_sync_ms"), size.get("flows_sync_failed")
    if (timed is None) == (failed is None):
        found.append(f"{where}: flows_sync_ms or flows_sync_failed, one of the two, is needed")
    elif timed is not None and not (_is_number(timed) and timed > 0):
        found.append(f"{where}: flows_sync_ms is {timed!r}, not a number > 0")
    elif failed is not None:
        found += _reason(where, failed, "flows_sync_failed")
    return found


def _size_problems(where: str, size: Mapping[str, Any]) -> list[str]:
    if "failed" in size:
        return _failed_problems(where, size)
    found = _flows_problems(where, size)
    found += [f"{where}: {key} is {size.get(key)!r}, not a number > 0" for key in FIGURES
             if not (_is_number(size.get(key)) and size[key] > 0)]  # fmt: skip
    found += [f"{where}: {key} is {size.get(key)!r}, not a whole number >= 1" for key in COUNTS
              if not _is_count(size.get(key))]  # fmt: skip
    found += [f"{where}: {key} is {size[key]!r}, not a number > 0" for key in FLOORS
              if key in size and not (_is_number(size[key]) and size[key] > 0)]  # fmt: skip
    if found:
        return found
    if size["change_rounds"] % 2:
        found.append(f"{where}: {size['change_rounds']} changes, not there and back")
    if size["services"] > size["endpoints"]:
        found.append(f"{where}: {size['services']} Services for {size['endpoints']} endpoints")
    found += [f"{where}: {small} {size[small]} exceeds {large} {size[large]}"
              for small, large in ORDERED if size[small] > size[large]]  # fmt: skip
    return found


def structure_problems(report: Mapping[str, Any]) -> list[str]:
    """One line per breach of the rules in the module docstring."""
    goals = report.get("goals")
    goals = goals if isinstance(goals, Mapping) else {}
    found = [f"goal {key} is not stated" for key in GOALS if not _is_number(goals.get(key))]
    scales: dict[str, list[object]] = {}
    labels: list[str] = []
    for result in report.get("results") or []:
        proxy = result_label(result)
        found += [
            f"{proxy}: {key} is {result[key]!r}, not a line"
            for key in ("tool", "variant")
            if key in result and not (isinstance(result[key], str) and result[key])
        ]
        if proxy in labels:
            found.append(f"{proxy}: measured twice")
        labels.append(proxy)
        if "failed" in result:
            found += _reason(proxy, result["failed"])
            continue
        sizes = result.get("sizes")
        if not isinstance(sizes, list) or not sizes:
            found.append(f"{proxy}: neither sizes nor a reason it failed")
            continue
        size_problems = [
            p for n, s in enumerate(sizes) for p in _size_problems(f"{proxy} size {n}", s)
        ]
        found += size_problems
        if size_problems:
            continue
        endpoints = [size["endpoints"] for size in sizes]
        if endpoints != sorted(set(endpoints)):
            found.append(f"{proxy}: sizes {endpoints} do not grow strictly")
        scales[proxy] = [(size["endpoints"], size["services"]) for size in sizes]
    if len({repr(scale) for scale in scales.values()}) > 1:
        found.append(f"proxies measured different sizes: {scales}")
    return found
