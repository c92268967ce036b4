"""Tables built from figure files, one builder per kind of figure. Pure: JSON in, `Table` out.

Every builder takes the parsed JSON of one file (or, for conformance results, of every results
file) and returns formatted tables. A file lacking a field a builder needs raises KeyError,
TypeError or ValueError; `harness.reporting.sections` turns that into a one-line "malformed"
note naming the file. Absent optional figures show as `-`.

The files and their writers: throughput.json (bench/test_throughput.py), rule_sync.json
(bench/test_rule_sync.py), local_scale.json (bench/test_local_scale.py), model_throughput.json
(bench/test_model_throughput.py), mutants.json (`harness.mutation.mutation_report`),
results*.json (`harness.results.results_json`), conformance*.yaml
(`harness.results.conformance_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from harness.kube.metrics import metrics_text
from harness.reporting.loadruns import (
    PERCENTILES,
    comparable,
    generator_text,
    latency_us,
    like_ratio,
    us_text,
)
from harness.reporting.provenance import Provenance
from harness.reporting.render import MISSING, Table

Json = Mapping[str, Any]

SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)
"""What a builder raises when a well-formed JSON file lacks the fields it needs (or holds a
number no float can: JSON integers have no bound)."""

THROUGHPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("wrk_pod_keepalive", "wrk to a pod, keep-alive (ceiling) req/s"),
    ("wrk_vip_keepalive", "wrk VIP keep-alive req/s (x ceiling)"),
    ("wrk_vip_fresh", "wrk VIP fresh conn. req/s (x ceiling)"),
    ("locust_vip_keepalive", "locust VIP keep-alive req/s (x ceiling)"),
    ("locust_vip_fresh", "locust VIP fresh conn. req/s (x ceiling)"),
)
"""The throughput overview's columns: a run name in throughput.json and its heading."""


def fmt(value: object, digits: int = 1) -> str:
    """A figure as a cell: `-` for None, yes/no for booleans, thousands separators for numbers."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _number(value: object) -> float | None:
    """`value` if it is a number (not a boolean); TypeError for anything else but None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def rate_cell(run: Json | None, runs: Json) -> str:
    """`55,061 (0.84)`: a run's requests/s and its ratio to its ceiling (a run of `runs`, when
    it has one that compares like with like, `loadruns.comparable`)."""
    if run is None:
        return MISSING
    if "failed" in run:
        return "failed"
    rate = fmt(_number(run.get("requests_per_s")), 0)
    ratio = like_ratio(run, runs)
    return rate if ratio is None else f"{rate} ({ratio:.2f})"


def _spread(run: Json | None) -> str:
    """`10/10, J 0.999`: pods reached of the Service's pods, and Jain's index."""
    spread = (run or {}).get("distribution")
    if not spread:
        return MISSING
    return f"{spread['pods_reached']}/{spread['pods']}, J {fmt(_number(spread['jain']), 3)}"


def throughput_overview(data: Json) -> Table:
    """Every proxy side by side: the ceiling, and each VIP run's rate and ratio to its ceiling
    (the pod run of the same tool and connection mode), plus how requests spread over pods."""
    headers = ("proxy", *(title for _, title in THROUGHPUT_COLUMNS))
    headers += ("pods reached, fresh", "pods reached, keep-alive")
    rows = []
    for result in data["results"]:
        if "failed" in result:
            rows.append((str(result["proxy"]), *(["failed"] * (len(headers) - 1))))
            continue
        runs: Json = result["runs"]
        rows.append(
            (
                str(result["proxy"]),
                *(rate_cell(runs.get(name), runs) for name, _ in THROUGHPUT_COLUMNS),
                _spread(runs.get("locust_vip_fresh")),
                _spread(runs.get("locust_vip_keepalive")),
            )
        )
    return Table(
        "Throughput through the Service VIP (medians; ratio to the ceiling in brackets)",
        headers,
        tuple(rows),
    )


def throughput_runs(result: Json) -> Table:
    """One proxy's runs in full: generator, rate, ratio and which run was its ceiling (the same
    generator with the same settings), latency percentiles in microseconds, errors, and how the
    answers spread over the Service's pods."""
    headers: tuple[str, ...] = ("run", "generator", "req/s", "x ceiling", "ceiling")
    headers += tuple(f"p{p} µs" for p in PERCENTILES)
    headers += ("requests", "errors", "pods reached", "Jain", "max/mean")
    rows = []
    for name, run in result["runs"].items():
        if "failed" in run:
            rows.append((str(name), "failed", *([MISSING] * (len(headers) - 2))))
            continue
        spread = run.get("distribution") or {}
        rows.append(
            (
                str(name),
                generator_text(run),
                fmt(_number(run["requests_per_s"]), 0),
                fmt(like_ratio(run, result["runs"]), 3),
                fmt(run.get("ceiling") if comparable(run, result["runs"]) else None),
                *(us_text(latency_us(run, p)) for p in PERCENTILES),
                fmt(run["requests"]),
                fmt(run["errors"]),
                fmt(spread.get("pods_reached")),
                fmt(_number(spread.get("jain")), 3),
                fmt(_number(spread.get("max_over_mean")), 2),
            )
        )
    return Table(f"{result['proxy']}: every run", headers, tuple(rows))


def locust_calibration(calibration: Json) -> Table:
    """The generator's calibration against one pod (throughput.json v2 `calibration`): each
    run of the harness's and the bare locustfile, its workers, rate, ratio to the run it is
    compared with (one setting apart: the workers or the locustfile) and latencies in µs."""
    headers: tuple[str, ...] = ("run", "generator", "req/s", "ratio", "compared with")
    headers += tuple(f"p{p} µs" for p in PERCENTILES)
    rows = []
    for name, run in calibration["runs"].items():
        if "failed" in run:
            rows.append((str(name), generator_text(run), "failed", *([MISSING] * 5)))
            continue
        rows.append(
            (
                str(name),
                generator_text(run),
                fmt(_number(run["requests_per_s"]), 0),
                fmt(_number(run.get("ratio_to_ceiling")), 3),
                fmt(run.get("ceiling")),
                *(us_text(latency_us(run, p)) for p in PERCENTILES),
            )
        )
    rounds = calibration.get("rounds", "?")
    title = (
        f"Locust calibration against one pod, keep-alive ({calibration.get('proxy', '?')}"
        f" cluster; medians of {rounds} round(s); ratios: medians of each round's ratio)"
    )
    return Table(title, headers, tuple(rows))


def _times(value: float | None, digits: int) -> str:
    """`1.40x`, or `-` for no figure."""
    return MISSING if value is None else f"{value:.{digits}f}x"


def calibration_lines(calibration: Json) -> list[str]:
    """The calibration's two headline sentences: what the harness's locustfile costs against
    the bare one, and how the rate grows with workers (and where it stops)."""
    workers, cpus = calibration.get("workers", "?"), calibration.get("cpus", "?")
    over_bare = _number(calibration.get("harness_over_bare"))
    lines = [
        f"harness locustfile / bare one-task FastHttpUser locustfile, {workers} workers each,"
        f" same pod, same run: {_times(over_bare, 3)}"
    ]
    scaled = calibration["scaling"]
    steps = [
        f"{count} worker{'' if count == 1 else 's'} {_times(_number(ratio), 2)}"
        for count, ratio in zip(scaled["workers"], scaled["x_one_worker"], strict=True)
    ]
    stops = scaled.get("stops_at")
    where = (
        f"stops scaling at {stops} workers (gains less than"
        f" {fmt(_number(scaled.get('gain_threshold')), 2)}x over one fewer)"
        if stops is not None
        else "still gaining at the largest count measured"
    )
    lines.append(f"workers against one worker ({cpus} CPUs): {', '.join(steps)}; {where}")
    return lines


def throughput_failures(data: Json) -> list[str]:
    """One line per proxy, and per run, that gave no figures."""
    lines = [f"{r['proxy']}: {r['failed']}" for r in data["results"] if "failed" in r]
    return lines + [
        f"{result['proxy']} {name}: {run['failed']}"
        for result in data["results"]
        for name, run in result.get("runs", {}).items()
        if "failed" in run
    ]


def latency_row(name: str, data: Json, origin: Provenance) -> tuple[str, ...]:
    """One conformance run (results file `name`, measured as `origin` says): target, where and
    when, properties passed, latency."""
    latency = data["programming_latency_ms"]
    properties: Sequence[Json] = data["properties"]
    held = sum(p["status"] == "passed" for p in properties)
    return (
        str(data["target"]),
        name,
        origin.origin,
        fmt(origin.measured_at),
        f"{held} of {len(properties)}",
        fmt(_number(latency.get("p50")), 1),
        fmt(_number(latency.get("p99")), 1),
        fmt(latency.get("samples")),
    )


def versions_line(name: str, data: Json) -> str | None:
    """One line for results file `name`: the versions its run recorded, then every failure
    that matched a known upstream issue; None for a file written before schema v3, which
    recorded neither (so that a published report renders again byte for byte)."""
    versions = data.get("versions")
    if not isinstance(versions, Mapping):
        return None
    line = f"{name}: versions " + ", ".join(f"{k} {fmt(v)}" for k, v in versions.items())
    for prop in data["properties"]:
        for issue in prop.get("known_issues") or ():
            line += f"; {prop['name']} failed, {issue['text']} ({issue['link']})"
    return line


def proxy_metrics_line(name: str, data: Json) -> str | None:
    """One line for results file `name`: the proxy's own sync metrics beside the harness's
    latency (`harness.kube.metrics.metrics_text`); None where the run recorded none."""
    metrics = data.get("proxy_metrics")
    text = metrics_text(metrics) if isinstance(metrics, dict) else None
    return f"{name}: {text}" if text else None


def programming_latency(rows: Iterable[tuple[str, ...]]) -> Table:
    """Programming latency p50/p99 of every conformance run (`latency_row`s), by target."""
    headers: tuple[str, ...] = ("target", "file", "from", "started", "properties passed")
    headers += ("p50 ms", "p99 ms", "samples")
    ordered = tuple(sorted(rows, key=lambda row: (row[0], row[3])))
    return Table("Programming latency in conformance runs (results files)", headers, ordered)


def rule_sync(data: Json) -> Table:
    """A kernel-rule proxy's sync after one endpoint change vs the bare rule command."""
    rows = []
    for result in data["results"]:
        rows.append(
            (
                str(result["proxy"]),
                fmt(data.get("endpoints")),
                fmt(_number(result["sync_median_ms"]["all"]), 1),
                fmt(_number(result["bare_median_ms"]["all"]), 1),
                fmt(_number(result.get("ratio")), 3),
                fmt(_number(result.get("full_sync_ms")), 1),
                fmt(_number(result.get("remove_with_stale_flow_median_ms")), 1),
            )
        )
    headers: tuple[str, ...] = (
        "proxy",
        "endpoints",
        "sync, median ms",
        "bare command, median ms",
        "ratio",
    )
    headers += ("full sync ms", "removal with a stale flow, median ms")
    goal = data.get("goal_ratio")
    title = "Rule sync after one endpoint change (rule_sync.json)"
    return Table(title + (f"; goal ratio <= {goal}" if goal else ""), headers, tuple(rows))


def kube_scale(data: Json) -> Table:
    """Setup and teardown of the same pods and Services through the kube target's API path and
    on the local cluster (bench/test_kube_scale.py), with the ratio and its goal."""
    sizes, goal = data["sizes"], data.get("goal") or {}
    sides = [("kube (API)", data["kube"]), ("local cluster", data["local"])]
    rows = []
    for name, side in sides:
        if name == "local cluster" and isinstance(side, str):  # skipped: its reason
            rows.append((name, str(side), MISSING, MISSING, MISSING))
            continue
        rows.append(
            (
                name,
                fmt(side["pods"]),
                fmt(_number(side["setup_s"]), 2),
                fmt(_number(side["teardown_s"]), 2),
                fmt(_number(side["total_s"]), 2),
            )
        )
    ratio = fmt(_number(data.get("kube_over_local")), 2)
    title = (
        f"{fmt(sizes['pods'])} pods and {fmt(sizes['services'])} Services through the API"
        f" (kube_scale.json): kube/local {ratio}x; goal at most"
        f" {fmt(goal.get('kube_over_local_at_most'))}x"
    )
    return Table(title, ("side", "pods", "setup s", "teardown s", "total s"), tuple(rows))


def local_scale(data: Json) -> Table:
    """The local cluster at scale, one row per proxy, against the goals recorded with it."""
    goals = data.get("goals") or {}
    rows = []
    for result in data["results"]:
        rows.append(
            (
                str(result["proxy"]),
                fmt(result["pods"]),
                fmt(result["services"]),
                fmt(_number(result.get("build_s")), 2),
                fmt(_number(result["total_s"]), 2),
                fmt(_number(result["rss_mib"]), 1),
                fmt(_number(result.get("readiness_flip_apply_s")), 3),
                fmt(result.get("services_answering")),
                fmt(len(result.get("left_behind") or [])),
            )
        )
    headers: tuple[str, ...] = (
        "proxy",
        "pods",
        "services",
        "build s",
        "total s",
        "RSS MiB",
        "readiness flip s",
    )
    headers += ("Services answering", "left behind")
    goal = f"; goals: total < {fmt(goals.get('total_s'))} s, RSS < {fmt(goals.get('rss_mib'))} MiB"
    return Table("Local cluster at scale (local_scale.json)" + goal, headers, tuple(rows))


def several_nodes_scale(data: Json) -> Table | None:
    """The local cluster of several nodes at scale (`several_nodes` in local_scale.json, issue
    11's figure), against its goals; None for a file made before it was measured."""
    several = data.get("several_nodes")
    if not several:
        return None
    goals = several.get("goals") or {}
    headers = ("proxy", "nodes", "pods", "Services", "type", "setup s", "teardown s", "total s",
               "RSS MiB", "Services answering", "left behind", "meets goals")  # fmt: skip
    rows = tuple(
        (
            str(result["proxy"]),
            fmt(result["nodes"]),
            fmt(result["pods"]),
            fmt(result["services"]),
            str(result.get("service_type", MISSING)),
            fmt(_number(result.get("setup_s")), 2),
            fmt(_number(result.get("teardown_s")), 2),
            fmt(_number(result["total_s"]), 2),
            fmt(_number(result["rss_mib"]), 1),
            fmt(result.get("services_answering")),
            fmt(len(result.get("left_behind") or [])),
            "yes" if result.get("meets_goals") else "no",
        )
        for result in several["results"]
    )
    goal = f"; goals: total < {fmt(goals.get('total_s'))} s, RSS < {fmt(goals.get('rss_mib'))} MiB"
    return Table("Several nodes at scale (local_scale.json)" + goal, headers, rows)


def model_speed(data: Json) -> Table:
    """Events applied and checked per second on the model target."""
    rows = []
    for key, value in data.items():
        if isinstance(value, Mapping) and "events_per_s_median" in value:
            rows.append(
                (
                    key.replace("_", " "),
                    fmt(value["events_per_s_median"]),
                    fmt(value.get("events_per_s_min")),
                    fmt(value.get("events_per_s_max")),
                    fmt(data.get("goal_events_per_s")),
                )
            )
    headers = ("replay", "events/s median", "min", "max", "goal")
    return Table("Model target speed (model_throughput.json)", headers, tuple(rows))


def mutation(data: Json) -> Table:
    """Each mutant: whether the suite caught it, the property that did, and the length of the
    shrunk counterexample."""
    rows = []
    for name, found in data["mutants"].items():
        caught = bool(found["caught"])
        rows.append(
            (
                str(name),
                fmt(caught),
                fmt(found.get("property")) if caught else MISSING,
                fmt(found.get("counterexample_events")) if caught else MISSING,
                fmt(found.get("examples_run")),
                fmt(_number(found.get("seconds")), 1),
            )
        )
    headers = ("mutant", "caught", "caught by", "counterexample events", "examples run", "s")
    return Table("Mutants (mutants.json)", headers, tuple(rows))


def mutation_notes(data: Json) -> list[str]:
    """The correct targets' false alarms next to the budget, and the totals, as lines
    (harness.mutants/v2; a v1 file has one `reference`, the model, searched per property)."""
    if "references" not in data:
        return _mutation_notes_v1(data)
    lines = [
        f"caught {data.get('caught', MISSING)} with the {fmt(data.get('profile'))} profile;"
        f" median counterexample {fmt(data.get('median_counterexample_events'))} events"
        f" (seed {fmt(data.get('seed'))})"
    ]
    for name, reference in data["references"].items():
        failed = ", ".join(reference.get("failed") or []) or "none"
        lines.append(
            f"{name} (correct): {fmt(reference['false_alarms'])} false alarm(s) in"
            f" {fmt(reference.get('examples'))} examples ({fmt(reference.get('events'))} events),"
            f" measured rate {fmt(reference.get('measured_rate'), 4)} per property against a"
            f" budget of {fmt(reference.get('budget_per_run'), 4)} per run; failed: {failed}"
        )
    return lines


def _mutation_notes_v1(data: Json) -> list[str]:
    reference = data["reference"]
    failed = ", ".join(reference.get("failed") or []) or "none"
    return [
        f"caught {data.get('caught', MISSING)}; median counterexample"
        f" {fmt(data.get('median_counterexample_events'))} events"
        f" ({fmt(data.get('examples_per_property'))} examples x"
        f" {fmt(data.get('steps_per_example'))} steps per property, seed {fmt(data.get('seed'))})",
        f"reference (model target): {fmt(reference['false_alarms'])} false alarm(s) in"
        f" {fmt(reference.get('events'))} events, {fmt(reference.get('examples_per_property'))}"
        f" examples per property; failed: {failed}",
    ]


def sources_table(
    read: Mapping[str, str], missing: Mapping[str, str], malformed: Mapping[str, str]
) -> Table:
    """Every figure file: read (from which directory), missing (with the command that makes it)
    or malformed (why)."""
    rows = [(name, "read", f"from {origin}") for name, origin in read.items()]
    rows += [
        (name, "missing, skipped", f"made by `{command}`") for name, command in missing.items()
    ]
    rows += [(name, "malformed, skipped", reason) for name, reason in malformed.items()]
    return Table("Read, missing or malformed", ("file", "status", "note"), tuple(sorted(rows)))


def coverage(results: Mapping[str, Json]) -> Table | None:
    """How often each conformance run (results files of schema v2) checked and reached each
    state feature, one column per run; None when no run recorded coverage."""
    runs = {name: data["coverage"] for name, data in results.items() if "coverage" in data}
    if not runs:
        return None
    features = sorted({feature for counts in runs.values() for feature in counts})
    rows = tuple(
        (
            feature,
            *(
                f"{fmt(counts[feature]['checked'])}/{fmt(counts[feature]['reached'])}"
                if feature in counts
                else MISSING
                for counts in runs.values()
            ),
        )
        for feature in features
    )
    return Table("State coverage, checked/reached (results files)", ("feature", *runs), rows)


def search_rate(data: Json) -> Table:
    """Distinct sequences per minute, the per-property searches against the one search."""
    rows = tuple(
        (
            fmt(run["seed"]),
            fmt(run["old"]["distinct"]),
            fmt(_number(run["old"]["seconds"]), 0),
            fmt(run["new"]["distinct"]),
            fmt(_number(run["new"]["seconds"]), 0),
            _timed(run.get("pytest_benchmark")),
        )
        for run in data["runs"]
    )
    headers = (
        *("seed", "old: distinct", "old: s", "one search: distinct", "one search: s"),
        "pytest-benchmark: s",
    )
    return Table("Distinct sequences explored (search_rate.json)", headers, rows)


def _timed(timed: Json) -> str:
    """pytest-benchmark's median seconds of a timed run; MISSING in older files or when it was
    disabled."""
    if timed is None:
        return MISSING
    return fmt(_number(timed["seconds_median"]), 1)


def search_rate_notes(data: Json) -> list[str]:
    return [
        f"per minute: {fmt(_number(data['old_per_minute_median']), 1)} before,"
        f" {fmt(_number(data['new_per_minute_median']), 1)} with the one search; ratio"
        f" {fmt(_number(data['ratio_median']), 1)} (goal {fmt(data['goal_ratio'])},"
        f" met: {fmt(data['meets_goal'])}); baseline: {data['baseline']}"
    ]


def false_alarms(data: Json) -> Table:
    """Each correct proxy's false alarms in its examples, with the budget."""
    rows = tuple(
        (
            str(run["proxy"]),
            fmt(run["examples"]),
            fmt(run["events"]),
            fmt(run["cpu_hogs"]),
            fmt(len(run["false_alarms"])),
            fmt(_number(run["measured_rate"]), 4),
            fmt(_number(run["budget_per_run"]), 4),
        )
        for run in data["runs"]
    )
    headers = ("proxy", "examples", "events", "busy cores", "false alarms", "rate", "budget")
    return Table("False alarms of the correct proxies (false_alarms.json)", headers, rows)


def time_to_verdict(data: Json) -> Table:
    """Seconds to the first verdict on each broken proxy against the correct proxy's run."""
    correct = data["correct"]
    rows = [(str(correct["proxy"]), "correct", fmt(_number(correct["seconds"]), 0), MISSING)]
    rows += [
        (
            str(run["proxy"]),
            fmt(_number(run["first_verdict_s"]), 0),
            fmt(_number(run["seconds"]), 0),
            fmt(_number(run["ratio_to_correct"]), 2),
        )
        for run in data["broken"]
    ]
    headers = ("proxy", "first verdict, s", "whole run, s", "first verdict / correct run")
    return Table("Time to the first verdict (time_to_verdict.json)", headers, tuple(rows))


def _implementations(
    documents: Mapping[str, Json], name_of: Callable[[Json], object]
) -> tuple[str, ...]:
    """A column heading per file: its implementation's name, with the file name where two files
    name the same implementation."""
    named = [str(name_of(data) or file) for file, data in documents.items()]
    return tuple(
        name if named.count(name) == 1 else f"{name} ({file})"
        for name, file in zip(named, documents, strict=True)
    )


def _matrix(title: str, first: str, columns: Sequence[Mapping[str, str]], headers: Sequence[str],
            rows: Sequence[str]) -> Table:  # fmt: skip
    """Rows against columns, `-` where a column has no cell for a row."""
    cells = tuple((row, *(column.get(row, MISSING) for column in columns)) for row in rows)
    return Table(title, (first, *headers), cells)


def conformance_matrix(results: Mapping[str, Json]) -> Table | None:
    """Every property (rows) against every implementation that ran the suite (one column per
    results file, headed by its target): passed, failed, flaky, skipped... as recorded; `-` where
    that run did not check the property. None when there is no results file."""
    if not results:
        return None
    columns = [{str(p["name"]): str(p["status"]) + (" (flaky)" if p.get("flaky") else "")
                for p in data["properties"]}
               for data in results.values()]  # fmt: skip
    headers = _implementations(results, lambda data: data.get("target"))
    properties = sorted({prop for column in columns for prop in column})
    title = "Conformance matrix: implementation x property (results files)"
    return _matrix(title, "property", columns, headers, properties)


def feature_matrix(reports: Mapping[str, Json]) -> Table | None:
    """Every feature (rows: core first, then extended, each as the reports list them) against
    every implementation (one column per conformance report, headed by its implementation):
    passed, failed, skipped, unsupported or not-tested; `-` where a report lacks the feature.
    None when there is no conformance report."""
    if not reports:
        return None
    columns: list[dict[str, str]] = []
    rows: dict[str, None] = {}
    for data in reports.values():
        column: dict[str, str] = {}
        for profile in data["profiles"]:
            for feature in profile["features"]:
                row = f"{feature['name']} ({profile['name']})"
                rows.setdefault(row)
                column[row] = str(feature["status"])
        columns.append(column)
    headers = _implementations(reports, lambda data: data["implementation"]["name"])
    order = sorted(rows, key=lambda row: not row.endswith(" (core)"))  # stable: as listed
    title = "Conformance profiles: implementation x feature (conformance reports)"
    return _matrix(title, "feature (profile)", columns, headers, order)
