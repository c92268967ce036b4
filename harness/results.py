"""Conformance results: the terminal summary, the JSON results file and JUnit XML.

Like Sonobuoy's results, each property is passed, failed, skipped or (when the run ended early)
not judged, and a failure carries its shrunk counterexample, the path of its failure file, how
often it reproduced on fresh targets and the command that replays it. Three outcomes are kept
apart everywhere (summary, results file, JUnit, exit code): violations (1), usage errors (2,
raised before a run starts) and environment or harness errors (3); an interrupted run is 130.
Every run also reports what its search explored (examples, distinct sequences, events) and its
state coverage (`harness.coverage`). Details are printed whole, never cut.
"""

from __future__ import annotations

import json
import platform
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from harness import __version__
from harness.checks import PROPERTIES
from harness.checks.latency import percentile
from harness.conformance import PropertyResult, Status, SuiteResult
from harness.coverage import FEATURES
from harness.errors import EXIT_HARNESS, EXIT_OK, EXIT_VIOLATION
from harness.failures import replay_command
from harness.files import write_atomically

RESULTS_SCHEMA = "harness.results/v3"  # v3: `versions`, and `known_issues` per property
EXIT_INTERRUPTED = 130
WIDTH = 100


@dataclass
class RunReport:
    """Everything one `harness run` found, with how it was asked for."""

    suite: SuiteResult
    profile: str
    duration_s: float
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    @property
    def target(self) -> str:
        return self.suite.target_name or self.suite.options.run.target

    @property
    def outcome(self) -> str:
        if self.suite.interrupted:
            return "interrupted"
        if self.suite.error is not None:
            return "error"
        return "violations" if self.suite.failed else "passed"

    @property
    def exit_code(self) -> int:
        return {
            "interrupted": EXIT_INTERRUPTED,
            "error": EXIT_HARNESS,
            "violations": EXIT_VIOLATION,
            "passed": EXIT_OK,
        }[self.outcome]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def latency_text(latencies: Sequence[float]) -> str:
    return f"{_ms(percentile(latencies, 50))}/{_ms(percentile(latencies, 99))} ms"


def _limits_text(report: RunReport) -> str:
    limits = report.suite.options.limits
    budget = f", budget {limits.budget_s:g}s" if limits.budget_s else ""
    return f"{limits.examples} examples x {limits.steps} steps{budget}"


def _replay(result: PropertyResult, report: RunReport) -> str:
    assert result.failure_file is not None
    return replay_command(result.failure_file, report.suite.options.run)


def _detail(result: PropertyResult) -> str:
    if result.status == Status.FAILED:
        flaky = " (flaky: did not fail on every replay)" if result.flaky else ""
        return (
            f"{len(result.counterexample)} events, reproduced {result.reproduced}{flaky}:"
            f" {result.message}"
        )
    return result.message


def print_summary(report: RunReport, out: TextIO) -> None:
    """The summary: the run, a row per property (details wrapped, never cut), coverage, then
    how to replay each failure."""
    suite, stats = report.suite, report.suite.stats
    out.write(
        f"\ntarget {report.target}   seed {suite.options.seed}   profile {report.profile}:"
        f" {_limits_text(report)}   took {report.duration_s:.1f}s\n"
        f"searched {stats.examples} examples, {stats.distinct_sequences} distinct sequences,"
        f" {stats.events} events (stopped: {stats.stopped or report.outcome})\n"
    )
    out.write(f"versions: {versions_text(suite.versions)}\n")
    name_width = max([22, *(len(r.name) + 2 for r in suite.results)])
    out.write(f"{'property':<{name_width}}{'result':<9}detail\n")
    indent = " " * (name_width + 9)
    for r in suite.results:
        lines = textwrap.wrap(_detail(r), WIDTH - len(indent)) or [""]
        out.write(f"{r.name:<{name_width}}{r.status.value:<9}{lines[0]}\n")
        out.writelines(f"{indent}{line}\n" for line in lines[1:])
    counts = {s: sum(r.status == s for r in suite.results) for s in Status}
    out.write(
        f"properties: {counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed,"
        f" {counts[Status.SKIPPED]} skipped, {counts[Status.ERROR]} not judged;"
        f" programming latency p50/p99 {latency_text(stats.latencies_s)}"
        f" over {len(stats.latencies_s)} changes\n"
    )
    print_coverage(report, out)
    if suite.error is not None:
        out.write(f"\nthe run ended early with an environment or harness error: {suite.error}\n")
    if suite.interrupted:
        out.write("\nthe run was interrupted; what it found so far is above\n")
    for r in suite.failed:
        out.write(f"\n{r.name} failed. Shrunk counterexample ({len(r.counterexample)} events):\n")
        for index, event in enumerate(r.counterexample, 1):
            out.write(f"  {index:>2}. {event}\n")
        out.write(f"  saved to {r.failure_file}\n  replay: {_replay(r, report)}\n")


def versions_text(versions: dict[str, str]) -> str:
    """`harness 0.1.0, proxy iptables: iptables v1.8.9, server v1.30.2`: every version known."""
    return ", ".join(f"{name} {value}" for name, value in versions.items()) or "unknown"


def print_coverage(report: RunReport, out: TextIO) -> None:
    """How often each state feature was checked (and reached), three to a line."""
    coverage = report.suite.coverage
    cells = [f"{name} {coverage.checked[name]}/{coverage.reached[name]}" for name in FEATURES]
    width = max(len(cell) for cell in cells) + 2
    out.write("coverage, checked/reached per state feature:\n")
    for start in range(0, len(cells), 3):
        out.write("  " + "".join(f"{cell:<{width}}" for cell in cells[start : start + 3]).rstrip())
        out.write("\n")


def results_json(report: RunReport) -> dict[str, Any]:
    suite, stats, options = report.suite, report.suite.stats, report.suite.options
    return {
        "schema": RESULTS_SCHEMA,
        "harness_version": __version__,
        "outcome": report.outcome,
        "error": suite.error,
        "target": report.target,
        "run": options.run.to_json(),
        "seed": options.seed,
        "profile": report.profile,
        "limits": {
            "examples": options.limits.examples,
            "steps": options.limits.steps,
            "budget_s": options.limits.budget_s,
        },
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 3),
        "host": {"python": platform.python_version(), "kernel": platform.release()},
        "versions": dict(suite.versions),
        "search": {
            "examples": stats.examples,
            "distinct_sequences": stats.distinct_sequences,
            "events": stats.events,
            "stopped": stats.stopped,
        },
        "deadline_s": options.config.deadline_s,
        "false_alarm_budget": {
            **options.config.budget.to_json(),
            "per_check": options.config.budget.per_check,
        },
        "programming_latency_ms": {
            "p50": _round_ms(percentile(stats.latencies_s, 50)),
            "p99": _round_ms(percentile(stats.latencies_s, 99)),
            "samples": len(stats.latencies_s),
        },
        "coverage": suite.coverage.to_json(),
        "properties": [
            {
                "name": r.name,
                "description": PROPERTIES.get(r.name, ""),
                "status": r.status.value,
                "message": r.message,
                "flaky": r.flaky,
                "reproduced": r.reproduced,
                "found_after_s": None if r.found_after_s is None else round(r.found_after_s, 3),
                "counterexample": [e.to_json() for e in r.counterexample],
                "failure_file": str(r.failure_file) if r.failure_file else None,
                "replay": _replay(r, report) if r.failure_file else None,
                "known_issues": [m.to_json() for m in r.known_issues],
            }
            for r in suite.results
        ],
    }


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def write_json(report: RunReport, path: Path) -> None:
    write_atomically(path, json.dumps(results_json(report), indent=2) + "\n")


def write_junit(report: RunReport, path: Path) -> None:
    """JUnit XML: one testsuite per run, one testcase per property; a property not judged
    because the run ended early is an `error`, never a `failure`."""
    suite = report.suite
    element = ElementTree.Element(
        "testsuite",
        name=f"harness conformance ({report.target})",
        tests=str(len(suite.results)),
        failures=str(len(suite.failed)),
        errors=str(sum(r.status == Status.ERROR for r in suite.results)),
        skipped=str(sum(r.status == Status.SKIPPED for r in suite.results)),
        time=f"{report.duration_s:.3f}",
        timestamp=report.started_at,
    )
    properties = ElementTree.SubElement(element, "properties")
    facts = {
        "seed": suite.options.seed,
        "profile": report.profile,
        "outcome": report.outcome,
        "examples": suite.stats.examples,
        "distinct_sequences": suite.stats.distinct_sequences,
        "events": suite.stats.events,
        **{f"coverage.{k}": v["checked"] for k, v in suite.coverage.to_json().items()},
        **{f"version.{name}": value for name, value in suite.versions.items()},
    }
    for name, value in facts.items():
        ElementTree.SubElement(properties, "property", name=name, value=str(value))
    for r in suite.results:
        case = ElementTree.SubElement(
            element, "testcase", classname=f"harness.{report.target}", name=r.name
        )
        if r.status == Status.SKIPPED:
            ElementTree.SubElement(case, "skipped", message=r.message)
        elif r.status == Status.ERROR:
            ElementTree.SubElement(case, "error", message=r.message, type="NotJudged")
        elif r.status == Status.FAILED:
            failure = ElementTree.SubElement(case, "failure", message=r.message, type="Violation")
            failure.text = "\n".join(
                [f"{i}. {e}" for i, e in enumerate(r.counterexample, 1)]
                + [f"reproduced {r.reproduced}", f"replay: {_replay(r, report)}"]
                + [f"known issue: {m.text} ({m.issue.link})" for m in r.known_issues]
            )
    text = ElementTree.tostring(element, encoding="unicode", xml_declaration=True)
    write_atomically(path, text + "\n")
