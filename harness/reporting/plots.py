"""The report's plots, from the figure files and the history: each an inline SVG (`svg`).

Pure: parsed JSON in, `Plot`s (`harness.reporting.render`) out. A plot is made only when its
figures exist, and a figure file lacking a field a plot reads gives no plot (its table already
names the file as malformed), so plotting never fails a report. Every plot's caption names the
machine, the generator and its settings and the number of runs its figures come from.

Plots: throughput per implementation against its direct-to-pod ceiling (throughput.json),
latency percentiles (throughput.json), requests per pod (throughput.json's `distribution`),
programming time against scale on log axes (rule_sync.json, local_scale.json), and the trend of
each headline figure over the history (`harness.reporting.regressions.headline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.reporting import svg
from harness.reporting.loadruns import PERCENTILES, latency_us
from harness.reporting.provenance import describe_host
from harness.reporting.regressions import headline
from harness.reporting.render import Plot
from harness.reporting.tables import SHAPE_ERRORS

Json = Mapping[str, Any]
Builder = Callable[[Json], Plot | None]

THROUGHPUT_RUNS = ("wrk_vip_keepalive", "wrk_vip_fresh", "locust_vip_keepalive", "locust_vip_fresh")
CEILINGS = {"keepalive": "wrk_pod_keepalive", "fresh": "wrk_pod_fresh"}
LATENCY_RUNS = ("wrk_vip_keepalive", "wrk_vip_fresh", "locust_vip_keepalive", "locust_vip_fresh")
TREND_GROUPS = (
    ("x", "Throughput through the VIP, ratio to the ceiling", "x ceiling"),
    ("req/s", "Throughput through the VIP", "requests/s"),
    ("ms", "Programming and sync times", "ms"),
    ("s", "Local cluster at scale, total time", "s"),
    ("events/s", "Model target speed", "events/s"),
    ("failed requests", "Failed requests under churn", "failed requests"),
)
"""Trend plots: the headline figures of one unit, with its title and axis label."""


def _safe(build: Callable[[], Plot | None]) -> Plot | None:
    try:
        return build()
    except SHAPE_ERRORS:
        return None


def _machine(data: Json) -> str:
    return describe_host(data.get("host") or data.get("machine")) or "machine not recorded"


def _ok_results(data: Json) -> list[Json]:
    return [r for r in data["results"] if "failed" not in r and isinstance(r.get("runs"), Mapping)]


def _rate(run: Json | None) -> float | None:
    if not isinstance(run, Mapping) or "failed" in run:
        return None
    value = run.get("requests_per_s")
    return float(value) if isinstance(value, int | float) else None


def _throughput_caption(data: Json) -> str:
    settings = data.get("settings") or {}
    rounds = settings.get("wrk_rounds", "?")
    given = settings.get("locust_workers")
    workers = f"a master and {given} worker(s), " if given is not None else ""
    return (
        f"Measured on {_machine(data)}. Generators: wrk ({settings.get('wrk_threads', '?')}"
        f" threads, {settings.get('connections', '?')} connections, {rounds} round(s) of"
        f" {settings.get('wrk_seconds', '?')} s, median shown) and locust"
        f" ({workers}{settings.get('connections', '?')} users,"
        f" {settings.get('locust_seconds', '?')} s);"
        f" {settings.get('pods', '?')} pods behind one Service; one run of the benchmark. The"
        " dashed mark is the ceiling: wrk straight to one pod with keep-alive, no proxy,"
        " measured beside each proxy's runs (ratios compare wrk with wrk, in one run)."
    )


def throughput_plot(data: Json) -> Plot | None:
    results = _ok_results(data)
    names = [name for name in THROUGHPUT_RUNS if any(_rate(r["runs"].get(name)) for r in results)]
    if not results or not names:
        return None
    proxies = [str(r["proxy"]) for r in results]
    series = [svg.Series(name, tuple(_rate(r["runs"].get(name)) for r in results))
              for name in names]  # fmt: skip
    ceiling = svg.Reference(
        "direct to pod (wrk, keep-alive)",
        tuple(_rate(r["runs"].get(CEILINGS["keepalive"])) for r in results),
    )
    title = "Throughput per implementation, with the direct-to-pod ceiling"
    chart = svg.bar_chart(title, proxies, series, y_label="requests/s", x_label="proxy",
                          reference=ceiling)  # fmt: skip
    return Plot(title, chart, _throughput_caption(data))


def latency_plot(data: Json) -> Plot | None:
    """Latency p50/p90/p99 in microseconds of every VIP run, wrk's and locust's, per proxy."""
    results = _ok_results(data)
    categories: list[str] = []
    values: dict[int, list[float | None]] = {percent: [] for percent in PERCENTILES}
    for result in results:
        for name in LATENCY_RUNS:
            run = result["runs"].get(name)
            if _rate(run) is None:
                continue
            tool, _, mode = name.partition("_vip_")
            categories.append(f"{result['proxy']} {tool} {mode}")
            for percent in PERCENTILES:
                values[percent].append(latency_us(run, percent))
    series = [svg.Series(f"p{p}", tuple(v)) for p, v in values.items() if any(v)]
    if not categories or not series:
        return None
    title = "Latency percentiles through the VIP (µs)"
    chart = svg.bar_chart(title, categories, series, y_label="µs",
                          x_label="proxy, generator, connections")  # fmt: skip
    return Plot(title, chart, _throughput_caption(data))


def distribution_plot(data: Json) -> Plot | None:
    """Requests answered by each pod, per proxy, in the locust run with fresh connections
    (each request a new connection, so each is balanced afresh)."""
    results = _ok_results(data)
    counts = {}
    for result in results:
        spread = (result["runs"].get("locust_vip_fresh") or {}).get("distribution") or {}
        if spread.get("counts"):
            counts[str(result["proxy"])] = {str(k): float(v) for k, v in spread["counts"].items()}
    if not counts:
        return None
    pods = sorted({pod for per_pod in counts.values() for pod in per_pod})
    series = [svg.Series(proxy, tuple(per_pod.get(pod, 0.0) for pod in pods))
              for proxy, per_pod in counts.items()]  # fmt: skip
    title = "Requests per pod (locust, fresh connections)"
    chart = svg.bar_chart(title, pods, series, y_label="requests", x_label="pod")
    return Plot(title, chart, _throughput_caption(data))


def scale_plot(rule_sync: Json | None, local_scale: Json | None) -> Plot | None:
    """Programming time against the number of endpoints, log-log: the proxies' sync after one
    change, the bare rule command and the full sync (rule_sync.json), and the local cluster's
    total time to build and program (local_scale.json; its pods are its endpoints)."""
    points: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, size: object, value: object) -> None:
        if isinstance(size, int | float) and isinstance(value, int | float) and value > 0:
            points.setdefault(name, []).append((float(size), float(value)))

    captions = []
    if rule_sync is not None:
        size = rule_sync.get("endpoints")
        for result in rule_sync["results"]:
            add(f"{result['proxy']} sync after one change", size, result["sync_median_ms"]["all"])
            add(f"{result['proxy']} bare command", size, result["bare_median_ms"]["all"])
            add(f"{result['proxy']} full sync", size, result.get("full_sync_ms"))
        captions.append(
            f"rule_sync.json: {rule_sync.get('services', '?')} Services,"
            f" {rule_sync.get('endpoints', '?')} endpoints, median of"
            f" {rule_sync.get('rounds', '?')} rounds, on {_machine(rule_sync)}"
        )
    if local_scale is not None:
        for result in local_scale["results"]:
            add(f"{result['proxy']} local cluster total", result["pods"],
                1000.0 * float(result["total_s"]))  # fmt: skip
        captions.append(f"local_scale.json: one run per proxy, on {_machine(local_scale)}")
    if not points:
        return None
    series = [svg.Series(name, points=tuple(sorted(p))) for name, p in sorted(points.items())]
    title = "Programming time against scale (log axes)"
    chart = svg.line_chart(title, series, y_label="ms", x_label="endpoints", log_x=True,
                           log_y=True)  # fmt: skip
    sizes = len({x for p in points.values() for x, _ in p})
    return Plot(title, chart, "; ".join(captions) + f". {sizes} size(s) measured so far.")


def _short(name: str) -> str:
    """A headline figure's name without what its plot's title already says."""
    return name.removeprefix("throughput ").removesuffix(" x ceiling")


def trend_plots(rows: Sequence[Json]) -> list[Plot]:
    """One plot per unit of headline figure, over every history row (oldest first) that has
    it; a figure seen in only one run has no trend and is left out."""
    figures = [headline(row) for row in rows]
    labels = [str(row.get("date") or row.get("run") or "?")[:10] for row in rows]
    machines = sorted({str(row["host"]) for row in rows if row.get("host")})
    plots = []
    for unit, title, y_label in TREND_GROUPS:
        names = sorted({n for f in figures for n, fig in f.items() if fig.unit == unit})
        series = [
            svg.Series(_short(name), points=tuple((float(i), f[name].value)
                                                  for i, f in enumerate(figures) if name in f))
            for name in names
        ]  # fmt: skip
        series = [s for s in series if len(s.points) > 1]
        if not series:
            continue
        chart = svg.line_chart(f"Trend: {title}", series, y_label=y_label, x_label="run",
                               x_labels=labels)  # fmt: skip
        caption = (
            f"{len(rows)} runs, oldest first, each point one run's published figure, measured"
            f" on {', '.join(machines) or 'machines not recorded'}; generators and settings as"
            " in each dated report."
        )
        plots.append(Plot(f"Trend: {title}", chart, caption))
    return plots


def figure_plots(figures: Mapping[str, Json]) -> list[Plot]:
    """Every plot the figure files of one report allow, in the order the report shows them."""
    throughput = figures.get("throughput.json")
    built: list[Plot | None] = []
    if throughput is not None:
        built += [
            _safe(lambda: throughput_plot(throughput)),
            _safe(lambda: latency_plot(throughput)),
            _safe(lambda: distribution_plot(throughput)),
        ]
    built.append(
        _safe(lambda: scale_plot(figures.get("rule_sync.json"), figures.get("local_scale.json")))
    )
    return [plot for plot in built if plot is not None]


def drawable(builders: Sequence[Builder], data: Json) -> list[Plot]:
    """The plots `builders` make of one figure file's `data`, in order: a builder that gives
    None (nothing to draw) or raises what `SHAPE_ERRORS` lists (a malformed file, which its
    table names) gives no plot. Never raises for the file's content."""
    plots = []
    for build in builders:
        try:
            plot = build(data)
        except SHAPE_ERRORS:
            plot = None
        if plot is not None:
            plots.append(plot)
    return plots
