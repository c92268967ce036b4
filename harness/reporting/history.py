"""The report's history: one row of headline figures per published report, so a trend shows.

Published reports are the directories directly under the history root (reports/) that hold a
run manifest (run.json): the dated directories a person promoted (README.md, "Benchmarks and
reports"). Runs under reports/runs/ are not published and are left out. Rows are derived from
the published figure files every time and never stored, so reporting a run again cannot add a
row: rows are keyed by run (the manifest's `run`), one row per run, and this report's own row
takes the place of a published row of the same run. A history shows only rows measured no later
than the report itself, so re-rendering a published report gives the same page.

`history_entry` is pure: it picks a few figures from each source that has them (a file lacking
them contributes nothing, never an error). `published` only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.reporting.loadruns import like_ratio
from harness.reporting.provenance import describe_host
from harness.reporting.render import MISSING, Table
from harness.reporting.runs import MANIFEST
from harness.reporting.sources import Sources, load_sources, read_manifest
from harness.reporting.tables import SHAPE_ERRORS, fmt

SHOWN = 10
"""How many of the newest history rows the report shows."""
THIS_REPORT = "this report"

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
    """Per proxy, per VIP run: requests/s and the ratio to its ceiling (None unless it compares
    like with like, `harness.reporting.loadruns.like_ratio`)."""
    return {
        result["proxy"]: {
            name: [run.get("requests_per_s"), like_ratio(run, result["runs"])]
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
        row = _pick(data, lambda d: {"target": d.get("target"),
                                     "p50": d["programming_latency_ms"].get("p50"),
                                     "p99": d["programming_latency_ms"].get("p99")})  # fmt: skip
        if row is not None:
            found[name] = row
    return found


def _mutants(data: Json) -> dict[str, Any]:
    """How many mutants were caught, and the correct targets' false alarms: one count in
    harness.mutants/v1 (the model's), one per target in v2."""
    if "references" in data:
        alarms = {str(name): r["false_alarms"] for name, r in data["references"].items()}
        return {"caught": data["caught"], "false_alarms": alarms}
    return {"caught": data["caught"], "false_alarms": data["reference"]["false_alarms"]}


def _churn(data: Json) -> dict[str, Any]:
    """Per implementation with figures: its failed requests while usable endpoints existed."""
    return {r["proxy"]: r["breaking_failures"] for r in data["results"] if "failed" not in r}


def identity(sources: Sources) -> dict[str, Any]:
    """`run`, `date`, `host` and `profile` of the figures in `sources`: the first input's run
    (its manifest's `run`, else its directory's name), the newest measurement date among the
    files, the first input's machine (else the machine most files name) and its profile."""
    first = next(iter(sources.manifests), None)
    manifest: Json = (sources.manifests.get(first) if first is not None else None) or {}
    run = str(manifest.get("run") or (first.name if first is not None else "-"))
    dates = [p.measured_at for p in sources.provenance.values() if p.measured_at]
    hosts = Counter(p.host for p in sources.provenance.values() if p.host)
    host = describe_host(manifest.get("host"))
    if host is None and hosts:
        host = hosts.most_common(1)[0][0]
    profile = manifest.get("profile")
    return {"run": run, "date": max(dates) if dates else None, "host": host,
            "profile": profile if isinstance(profile, str) else None}  # fmt: skip


def history_entry(sources: Sources) -> dict[str, Any]:
    """The headline figures of one report, as one JSON object keyed by its run."""
    figures = sources.figures
    entry: dict[str, Any] = {
        **identity(sources),
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
        "mutants": _pick(figures.get("mutants.json"), _mutants),
        "churn_failures": _pick(figures.get("churn.json"), _churn),
    }
    return {key: value for key, value in entry.items() if value is not None}


def published(root: Path, exclude: Path | None = None) -> list[dict[str, Any]]:
    """One entry per run published under `root` (see the module docstring), in directory
    order, leaving out `exclude` (the directory a report is about to replace); a run published
    twice counts once (its first directory)."""
    if not root.is_dir():
        return []
    left_out = exclude.resolve() if exclude is not None else None
    entries: dict[str, dict[str, Any]] = {}
    for directory in sorted(root.iterdir()):
        if directory.resolve() == left_out or not (directory / MANIFEST).is_file():
            continue
        if read_manifest(directory) is not None:
            entry = history_entry(load_sources([directory]))
            entries.setdefault(entry["run"], entry)
    return list(entries.values())


def with_this_report(entries: Sequence[Json], this: Json) -> list[dict[str, Any]]:
    """`entries` with `this` report's entry in place of any of the same run, marked as this
    report, keeping only those measured no later than it, oldest first."""
    date = this.get("date")
    kept = [dict(entry) for entry in entries if entry.get("run") != this.get("run")]
    if date is not None:
        kept = [entry for entry in kept if entry.get("date") is not None and entry["date"] <= date]
    rows = [*kept, {**this, "this_report": True}]
    return sorted(rows, key=_age)


def _age(entry: Json) -> tuple[str, bool, str]:
    """Oldest first; this report after a published run of the same date."""
    return str(entry.get("date") or ""), bool(entry.get("this_report")), str(entry.get("run"))


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
        labels = [THIS_REPORT] if entry.get("this_report") else []
        if entry.get("profile") not in (None, "full"):
            labels.append(f"profile {entry['profile']}")
        run = fmt(entry.get("run")) + (f" ({', '.join(labels)})" if labels else "")
        rows.append(
            (
                run,
                fmt(entry.get("date")),
                fmt(entry.get("host")),
                _ratios(entry, "wrk_vip_keepalive"),
                _ratios(entry, "wrk_vip_fresh"),
                fmt(mutants.get("caught")) if isinstance(mutants, Mapping) else MISSING,
                fmt(entry.get("model_events_per_s")),
            )
        )
    headers: tuple[str, ...] = (
        "run",
        "measured",
        "host",
        "wrk VIP keep-alive x ceiling",
        "wrk VIP fresh x ceiling",
    )
    headers += ("mutants caught", "model events/s")
    title = f"History: this report and the reports published before it (newest {shown})"
    return Table(title, headers, tuple(rows))
