"""The report's churn section, from churn.json (bench/test_churn.py, `harness.reporting.churn`).

Pure: parsed JSON in, `Table`s, notes and `Plot`s out. `churn_tables` shows every implementation
against every cause of failure, with whether it kept the promise (zero failed requests while
usable endpoints exist), and every implementation against every churn phase; `churn_notes`
names the generator and its settings and lists the failures that broke the promise;
`churn_plots` draws failures per cause per implementation and requests/s over the run, each
caption naming the machine, the generator, its settings and the number of runs. A file lacking
a field a table needs raises what `harness.reporting.tables.SHAPE_ERRORS` lists (the section
names the file as malformed); a plot that cannot be drawn is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.reporting import svg
from harness.reporting.churn import CAUSES
from harness.reporting.plots import drawable
from harness.reporting.provenance import describe_host
from harness.reporting.render import MISSING, Plot, Table
from harness.reporting.tables import fmt

Json = Mapping[str, Any]

SHOWN_FAILURES = 5
"""How many of the failures that broke the promise a note names per implementation."""
FAILED = "failed"


def cause_title(cause: str) -> str:
    """`wrong_pod` as a heading: `wrong pod`."""
    return cause.replace("_", " ")


def promise_cell(result: Json) -> str:
    """`kept`, or `broken (N)`: N failed requests while usable endpoints existed."""
    if result["promise_kept"]:
        return "kept"
    return f"broken ({fmt(result['breaking_failures'])})"


def _count(value: object) -> int:
    """A failure count; TypeError for anything but a whole number."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a count, got {value!r}")
    return value


def causes_table(data: Json) -> Table:
    """Implementation x cause: requests, requests/s, failures per cause and the promise."""
    headers = ("proxy", "requests", "req/s", *(cause_title(c) for c in CAUSES), "promise")
    rows = []
    for result in data["results"]:
        if FAILED in result:
            rows.append((str(result["proxy"]), *([FAILED] * (len(headers) - 1))))
            continue
        failures: Json = result["failures"]
        rows.append(
            (
                str(result["proxy"]),
                fmt(_count(result["requests"])),
                fmt(result.get("requests_per_s"), 0),
                *(fmt(_count(failures.get(cause, 0))) for cause in CAUSES),
                promise_cell(result),
            )
        )
    title = "Failed requests under churn, by cause (promise: none while usable endpoints exist)"
    return Table(title, headers, tuple(rows))


def failures_text(failures: Json) -> str:
    """`0`, or `2 reset, 1 timeout`: a phase's failures by cause."""
    parts = [f"{_count(failures[c])} {cause_title(c)}" for c in CAUSES if failures.get(c)]
    return ", ".join(parts) or "0"


def phases_table(data: Json) -> Table:
    """Implementation x churn phase: the phase's requests and its failures by cause."""
    results = [r for r in data["results"] if FAILED not in r]
    phases = list(dict.fromkeys(_phase(p) for r in results for p in r["phases"]))
    rows = []
    for result in results:
        by_phase = {_phase(p): p for p in result["phases"]}
        cells = [
            MISSING
            if phase not in by_phase
            else f"{fmt(_count(by_phase[phase]['requests']))} sent,"
            f" {failures_text(by_phase[phase]['failures'])} failed"
            for phase in phases
        ]
        rows.append((str(result["proxy"]), *cells))
    return Table("Requests and failures per churn phase", ("proxy", *phases), tuple(rows))


def _phase(phase: Json) -> str:
    """A phase's name; TypeError (a malformed file) for anything but a string."""
    name = phase["phase"]
    if not isinstance(name, str):
        raise TypeError(f"a churn phase is named {name!r}, not a string")
    return name


def churn_tables(data: Json) -> list[Table]:
    """The causes table, then the phases table."""
    return [causes_table(data), phases_table(data)]


def settings_line(data: Json) -> str:
    """The generator and its settings, in one line."""
    settings: Json = data.get("settings") or {}
    return (
        f"Generator: {settings.get('generator', 'not recorded')}; {settings.get('rate_per_s', '?')}"
        f" requests/s from {settings.get('client', '?')} by {settings.get('senders', 1)}"
        " sender(s), each request within"
        f" {settings.get('timeout_s', '?')} s; {settings.get('pods', '?')} pods behind one"
        f" Service, {settings.get('surge', '?')} more when scaled up;"
        f" {settings.get('changes', '?')} changes, {settings.get('pause_ms', '?')} ms apart;"
        f" graceful deletions of {settings.get('grace_s', '?')} s (model time); one run of the"
        f" benchmark, {data.get('duration_s', '?')} s in all"
    )


def churn_notes(data: Json) -> list[str]:
    """The settings, the rule, then per implementation the failures that broke the promise (the
    first `SHOWN_FAILURES`) and those excused, and every implementation that gave no figures."""
    notes = [
        settings_line(data),
        "A request fails by its error (refused, reset, timeout, other) or as wrong pod: answered"
        " by a pod usable in no model state the target was in while it ran. A failure while no"
        " endpoint was usable is counted but does not break the promise. A sender waits up to"
        " the timeout for a request that gets no answer, so an outage shows as about one"
        " timeout per sender per timeout's length, and as a dip in requests/s.",
    ]
    for result in data["results"]:
        proxy = str(result["proxy"])
        if FAILED in result:
            notes.append(f"{proxy}: no figures ({result[FAILED]})")
            continue
        shown = [
            f"{cause_title(str(f['cause']))} in {f['phase']} at {fmt(f['at_s'], 2)} s"
            + (f" from {f['pod']}" if f.get("pod") else "")
            for f in result["breaking"][:SHOWN_FAILURES]
        ]
        if shown:
            more = _count(result["breaking_failures"]) - len(shown)
            tail = f", and {more} more" if more > 0 else ""
            notes.append(f"{proxy}: promise broken by {'; '.join(shown)}{tail}")
        excused = _count(result.get("failures_without_usable_endpoints", 0))
        if excused:
            notes.append(f"{proxy}: {excused} failure(s) while no endpoint was usable (excused)")
    return notes


def _caption(data: Json) -> str:
    host = describe_host(data.get("host")) or "machine not recorded"
    return f"Measured on {host}. {settings_line(data)}."


def failures_plot(data: Json) -> Plot | None:
    """Failures per cause per implementation (grouped bars); None without any figures."""
    results = [r for r in data["results"] if FAILED not in r]
    if not results:
        return None
    series = [
        svg.Series(cause_title(c), tuple(float(_count(r["failures"][c])) for r in results))
        for c in CAUSES
    ]
    title = "Failed requests under churn, per cause"
    proxies = [f"{r['proxy']} ({'kept' if r['promise_kept'] else 'broken'})" for r in results]
    chart = svg.bar_chart(title, proxies, series, y_label="failed requests", x_label="proxy")
    return Plot(title, chart, _caption(data))


def rate_plot(data: Json) -> Plot | None:
    """Requests/s over the run, one line per implementation; None without any figures."""
    series = [
        svg.Series(str(r["proxy"]), points=tuple((float(t), float(v)) for t, v in points))
        for r in data["results"]
        if FAILED not in r and len(points := r.get("rate_over_time") or []) > 1
    ]
    if not series:
        return None
    title = "Requests/s under churn, over the run"
    chart = svg.line_chart(title, series, y_label="requests/s", x_label="seconds since start")
    return Plot(title, chart, _caption(data))


def churn_plots(data: Json) -> list[Plot]:
    """Every churn plot the figures allow (a malformed file gives none)."""
    return drawable((failures_plot, rate_plot), data)
