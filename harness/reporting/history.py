"""reports/history.jsonl: one line of headline figures per report, so nightly runs build a trend.

`history_entry` is pure: it picks a few figures from each source that has them (a file lacking
them contributes nothing, never an error). `append_history` keeps the newest `MAX_LINES` lines
and replaces the file in one rename, so a reader never sees half a file. Lines that are not JSON
objects are dropped when the file is next written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.reporting.render import MISSING, Table
from harness.reporting.sources import Sources
from harness.reporting.tables import SHAPE_ERRORS, fmt

MAX_LINES = 365
HISTORY_SCHEMA = "harness.history/v1"
SHOWN = 10
"""How many of the newest history lines the report shows."""

Json = Mapping[str, Any]


def _pick(data: Json | None, pick: Callable[[Json], Any]) -> Any:
    """`pick(data)`, or None when `data` is absent or lacks what `pick` reads."""
    if data is None:
        return None
    try:
        return pick(data)
    except SHAPE_ERRORS:
        return None


def _throughput(data: Json) -> dict[str, Any]:
    """Per proxy, per VIP run: requests/s and the ratio to its ceiling."""
    return {
        result["proxy"]: {
            name: [run.get("requests_per_s"), run.get("ratio_to_ceiling")]
            for name, run in result["runs"].items()
            if "_vip_" in name and "failed" not in run
        }
        for result in data["results"]
        if "failed" not in result
    }


def _latency(results: Mapping[str, Json]) -> dict[str, Any]:
    """Per conformance results file: target, p50 and p99 (ms)."""
    found = {}
    for name, data in results.items():
        latency = _pick(data, lambda d: d["programming_latency_ms"])
        if latency is not None:
            found[name] = {"target": data.get("target"), "p50": latency.get("p50"),
                           "p99": latency.get("p99")}  # fmt: skip
    return found


def history_entry(sources: Sources, date: str, host: str) -> dict[str, Any]:
    """The headline figures of one report, as one JSON object."""
    figures = sources.figures
    entry: dict[str, Any] = {
        "schema": HISTORY_SCHEMA,
        "date": date,
        "host": host,
        "files": sorted([*figures, *sources.results]),
        "throughput": _pick(figures.get("throughput.json"), _throughput),
        "programming_latency_ms": _latency(sources.results) or None,
        "rule_sync_median_ms": _pick(
            figures.get("rule_sync.json"),
            lambda d: {r["proxy"]: r["sync_median_ms"]["all"] for r in d["results"]},
        ),
        "scale_total_s": _pick(
            figures.get("local_scale.json"),
            lambda d: {r["proxy"]: r["total_s"] for r in d["results"]},
        ),
        "model_events_per_s": _pick(
            figures.get("model_throughput.json"),
            lambda d: d["all_checks_but_per_step_fairness"]["events_per_s_median"],
        ),
        "mutants": _pick(
            figures.get("mutants.json"),
            lambda d: {"caught": d["caught"], "false_alarms": d["reference"]["false_alarms"]},
        ),
    }
    return {key: value for key, value in entry.items() if value is not None}


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every JSON-object line of the history file (none if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def append_history(path: Path, entry: Json, max_lines: int = MAX_LINES) -> list[dict[str, Any]]:
    """Append `entry`, keep the newest `max_lines` entries, and return them (oldest first)."""
    entries = [*read_history(path), dict(entry)][-max_lines:]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    os.replace(temporary, path)
    return entries


def _ratios(entry: Json, run: str) -> str:
    throughput = entry.get("throughput")
    if not isinstance(throughput, Mapping):
        return MISSING
    cells = []
    for proxy, runs in throughput.items():
        figures = runs.get(run) if isinstance(runs, Mapping) else None
        if isinstance(figures, list) and len(figures) == 2 and figures[1] is not None:
            cells.append(f"{proxy} {fmt(figures[1], 2)}")
    return ", ".join(cells) or MISSING


def history_table(entries: Sequence[Json], shown: int = SHOWN) -> Table:
    """The newest `shown` entries, newest first: a few headline figures per report."""
    rows = []
    for entry in list(entries)[-shown:][::-1]:
        mutants = entry.get("mutants")
        rows.append(
            (
                fmt(entry.get("date")),
                fmt(entry.get("host")),
                _ratios(entry, "wrk_vip_keepalive"),
                _ratios(entry, "wrk_vip_fresh"),
                fmt(mutants.get("caught")) if isinstance(mutants, Mapping) else MISSING,
                fmt(entry.get("model_events_per_s")),
            )
        )
    headers: tuple[str, ...] = (
        "date",
        "host",
        "wrk VIP keep-alive x ceiling",
        "wrk VIP fresh x ceiling",
    )
    headers += ("mutants caught", "model events/s")
    return Table(f"History (newest {shown} of at most {MAX_LINES} runs)", headers, tuple(rows))
