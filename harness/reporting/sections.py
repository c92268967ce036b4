"""The report's sections, assembled from the sources. Pure: `Sources` in, sections out.

Every figure file's tables come with a note saying where and when it was measured
(`harness.reporting.provenance`), so a figure is never shown without its date. A figure file that
is missing becomes a note in its section saying how to make it; one that could not be read, or
lacks a field its table needs, becomes one line naming it (the reading error, or the builder's
KeyError/TypeError/ValueError, shortened), and the rest of the report goes on. The last section
lists every file, where it came from and what became of it. The first section says which
headline figures regressed against the runs before (`harness.reporting.regressions`); plots
(`harness.reporting.plots`) sit in the sections of the figures they draw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reporting import tables
from harness.reporting.churn_report import churn_notes, churn_plots, churn_tables
from harness.reporting.plots import figure_plots
from harness.reporting.programming_cost import cost_plots, cost_tables
from harness.reporting.regressions import RULE, Verdict
from harness.reporting.render import MISSING, Plot, Section, Table, number_text
from harness.reporting.sources import FIGURE_FILES, RESULTS_COMMAND, Sources, one_line
from harness.reporting.tables import SHAPE_ERRORS
from harness.reporting.udp_report import udp_notes, udp_plots, udp_tables

Build = Callable[[Any], tuple[list[Table], list[str]]]


@dataclass
class Assembly:
    """Sections being built, and the files found malformed while building them."""

    sources: Sources
    malformed: dict[str, str] = field(default_factory=dict)

    def part(self, name: str, build: Build) -> tuple[list[Table], list[str]]:
        """Tables and notes from figure file `name`, or a one-line note why there are none."""
        if name in self.sources.malformed:
            return [], [f"{name}: malformed, skipped ({self.sources.malformed[name]})"]
        if name not in self.sources.figures:
            return [], [f"{name}: not in this report's input (made by `{FIGURE_FILES[name]}`)"]
        try:
            built, notes = build(self.sources.figures[name])
        except SHAPE_ERRORS as error:
            return [], [self.found_malformed(name, error)]
        return built, [f"{name}: {self.sources.provenance[name].line()}", *notes]

    def optional_part(self, name: str, build: Build) -> tuple[list[Table], list[str]]:
        """`part` for an optional figure file (`OPTIONAL_FILES`): nothing at all when it was not
        given, so a report made before the file existed renders again byte for byte."""
        if name not in self.sources.figures and name not in self.sources.malformed:
            return [], []
        return self.part(name, build)

    def found_malformed(self, name: str, error: BaseException) -> str:
        """Record `name` as malformed; the one-line note that says so."""
        self.malformed[name] = one_line(error)
        return f"{name}: malformed, skipped ({one_line(error)})"


def section(
    title: str, parts: Sequence[tuple[list[Table], list[str]]], plots: Sequence[Plot] = ()
) -> Section:
    """A section of `plots`, then the tables and notes of `parts`, in order."""
    return Section(
        title,
        tuple(table for part in parts for table in part[0]),
        tuple(note for part in parts for note in part[1]),
        tuple(plots),
    )


def _throughput(data: Any) -> tuple[list[Table], list[str]]:
    settings = data.get("settings") or {}
    notes = [
        f"{data.get('duration_s', '?')} s in all; {settings.get('pods', '?')} pods behind one"
        f" Service; {settings.get('connections', '?')} connections / users",
        "ceiling: the same generator with the same settings (tool, threads or workers,"
        " connections or users) and connection mode, to one pod, no proxy, measured beside each"
        " proxy's runs; a pod run is a ceiling and has no ratio (wrk and locust are never"
        " compared with each other)",
        "wrk figures are medians over rounds; locust's over whole seconds of one run, a"
        " headless master with its workers; latencies in microseconds (wrk's --latency"
        " distribution; locust's from the workers' own histograms)",
        *tables.throughput_failures(data),
    ]
    if data.get("schema") == "harness.throughput/v1":
        notes.append(
            "a harness.throughput/v1 file: its locust latencies were locust's whole"
            " milliseconds and are not shown, nor its ratios between generators (locust against"
            " wrk, --processes against one process)"
        )
    runs = [tables.throughput_runs(r) for r in data["results"] if "failed" not in r]
    calibration = data.get("calibration")
    if not calibration:
        return [tables.throughput_overview(data), *runs], notes
    notes += tables.calibration_lines(calibration)
    calibrated = [tables.locust_calibration(calibration)]
    return [tables.throughput_overview(data), *runs, *calibrated], notes


def _kube_throughput(data: Any) -> tuple[list[Table], list[str]]:
    """A real cluster's figures (bench/test_kube_throughput.py): locust in the cluster."""
    settings = data.get("settings") or {}
    notes = [
        f"a real cluster: locust in the cluster ({settings.get('locust_workers', '?')} worker"
        f" pods spread over its nodes, {settings.get('connections', '?')} users,"
        f" {settings.get('locust_seconds', '?')} s), {settings.get('pods', '?')} pods behind one"
        " Service; the ceiling is the same run against one pod's IP",
        *tables.throughput_failures(data),
    ]
    runs = [tables.throughput_runs(r) for r in data["results"] if "failed" not in r]
    return [tables.throughput_overview(data), *runs], notes


def _rule_sync(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.rule_sync(data)], []


def _local_scale(data: Any) -> tuple[list[Table], list[str]]:
    several = tables.several_nodes_scale(data)
    return [tables.local_scale(data), *([several] if several is not None else [])], []


def _kube_scale(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.kube_scale(data)], [f"API server: {data['api_server']}"]


def _model_speed(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.model_speed(data)], []


def _mutation(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.mutation(data)], tables.mutation_notes(data)


def _results(assembly: Assembly) -> tuple[list[Table], list[str]]:
    """The programming-latency table: a row per well-formed results file, with a line of its
    versions and known issues (`tables.versions_line`) and one of the proxy's own sync metrics
    where the run recorded them (`tables.proxy_metrics_line`); a note per other."""
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for name, data in assembly.sources.results.items():
        try:
            row = tables.latency_row(name, data, assembly.sources.provenance[name])
            lines = (tables.versions_line(name, data), tables.proxy_metrics_line(name, data))
            rows.append(row)
            notes.extend(line for line in lines if line)
        except SHAPE_ERRORS as error:
            notes.append(assembly.found_malformed(name, error))
    if not assembly.sources.results:
        notes.append(f"no results*.json in this report's input (made by `{RESULTS_COMMAND}`)")
    built = [tables.programming_latency(rows)] if rows else []
    try:
        covered = tables.coverage(assembly.sources.results)
    except SHAPE_ERRORS as error:
        notes.append(f"results files: coverage not shown ({one_line(error)})")
        covered = None
    return built + ([covered] if covered else []), notes


def _matrix(assembly: Assembly) -> tuple[list[Table], list[str]]:
    """Every feature against every implementation (`tables.feature_matrix`, from the conformance
    reports), then every property against every implementation (`tables.conformance_matrix`,
    from the results files); a note for each that is missing or malformed."""
    built: list[Table] = []
    notes: list[str] = []
    matrices = (
        (
            tables.feature_matrix,
            assembly.sources.conformance,
            "conformance reports",
            "conformance*.yaml",
        ),
        (tables.conformance_matrix, assembly.sources.results, "results files", "results*.json"),
    )
    for build, documents, kind, pattern in matrices:
        try:
            matrix = build(documents)
        except SHAPE_ERRORS as error:
            notes.append(f"{kind}: matrix not shown ({one_line(error)})")
            continue
        if matrix is None:
            notes.append(f"no {pattern} in this report's input (made by `{RESULTS_COMMAND}`)")
        else:
            built.append(matrix)
    return built, notes


def regression_section(verdicts: Sequence[Verdict]) -> Section:
    """The report's first section: every regressed headline figure, the rule, and every
    figure's verdict."""
    flagged = [f"REGRESSION: {v.line()}" for v in verdicts if v.regressed]
    judged = sum(v.judged for v in verdicts)
    notes = flagged or [f"No regression among {judged} judged figure(s)."]
    rows = tuple(
        (
            v.name,
            f"{number_text(v.value)} {v.unit}",
            MISSING if v.median is None else number_text(v.median),
            MISSING if v.threshold is None else number_text(v.threshold),
            str(len(v.earlier)),
            "REGRESSED" if v.regressed else ("ok" if v.judged else "not judged"),
        )
        for v in verdicts
    )
    headers = ("figure", "this run", "median, earlier", "threshold", "earlier runs", "verdict")
    table = Table("Headline figures against the runs before this one", headers, rows)
    return Section("Regressions", (table,), (*notes, RULE))


def _search_rate(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.search_rate(data)], tables.search_rate_notes(data)


def _false_alarms(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.false_alarms(data)], []


def _time_to_verdict(data: Any) -> tuple[list[Table], list[str]]:
    return [tables.time_to_verdict(data)], []


def _churn(data: Any) -> tuple[list[Table], list[str]]:
    return churn_tables(data), churn_notes(data)


def churn_sections(assembly: Assembly) -> list[Section]:
    """The churn section, with its plots, when churn.json was given (read or malformed); none
    when it was not: churn.json is optional (`harness.reporting.sources.OPTIONAL_FILES`)."""
    name = "churn.json"
    part = assembly.optional_part(name, _churn)
    if part == ([], []):
        return []
    plots = churn_plots(assembly.sources.figures[name]) if part[0] else []
    return [section("Churn", [part], plots)]


def _udp(data: Any) -> tuple[list[Table], list[str]]:
    return udp_tables(data), udp_notes(data)


def optional_section(
    assembly: Assembly, name: str, title: str, build: Build, draw: Callable[[Any], list[Plot]]
) -> list[Section]:
    """Section `title` of optional figure file `name` (`OPTIONAL_FILES`): its tables and notes
    (`build`) and, when they were built, its plots (`draw`); a one-note section when the file is
    malformed; no section at all when it was not given."""
    part = assembly.optional_part(name, build)
    if part == ([], []):
        return []
    plots = draw(assembly.sources.figures[name]) if part[0] else []
    return [section(title, [part], plots)]


def build_sections(sources: Sources) -> tuple[list[Section], dict[str, str]]:
    """Every section of the report, and every file found malformed (at reading or building)."""
    assembly = Assembly(sources)
    plots = {plot.title: plot for plot in figure_plots(sources.figures)}
    scale = [plot for title, plot in plots.items() if "scale" in title]
    sections = [
        section("Conformance matrix", [_matrix(assembly)]),
        section(
            "Throughput",
            [
                assembly.part("throughput.json", _throughput),
                assembly.optional_part("kube_throughput.json", _kube_throughput),
            ],
            [plot for plot in plots.values() if plot not in scale],
        ),
        *churn_sections(assembly),
        *optional_section(assembly, "udp.json", "UDP", _udp, udp_plots),
        section(
            "Programming latency",
            [_results(assembly), assembly.part("rule_sync.json", _rule_sync)],
            scale,
        ),
        *optional_section(
            assembly, "programming_cost.json", "Programming cost at scale", cost_tables, cost_plots
        ),
        section(
            "Scale and speed",
            [
                assembly.part("local_scale.json", _local_scale),
                assembly.optional_part("kube_scale.json", _kube_scale),
                assembly.part("model_throughput.json", _model_speed),
            ],
        ),
        section("Mutation testing", [assembly.part("mutants.json", _mutation)]),
        section(
            "Detection power",
            [
                assembly.part("search_rate.json", _search_rate),
                assembly.part("false_alarms.json", _false_alarms),
                assembly.part("time_to_verdict.json", _time_to_verdict),
            ],
        ),
    ]
    return sections, {**sources.malformed, **assembly.malformed}


def sources_section(sources: Sources, malformed: Mapping[str, str]) -> Section:
    """Which files were read, skipped as missing, or named as malformed."""
    read = {
        name: sources.provenance[name].origin
        for name in [*sources.figures, *sources.results, *sources.conformance]
        if name not in malformed
    }
    missing = {name: FIGURE_FILES[name] for name in sources.missing}
    return Section("Figure files", (tables.sources_table(read, missing, malformed),))
