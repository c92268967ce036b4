"""Conformance results: the terminal summary, the JSON results file and JUnit XML.

Like Sonobuoy's results, each property is passed, failed or skipped, and a failure carries its
shrunk counterexample, the path of its failure file and the command that replays it.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from harness import __version__
from harness.checks import PROPERTIES
from harness.checks.latency import percentile
from harness.conformance import PropertyResult, Status

RESULTS_SCHEMA = "harness.results/v1"


@dataclass
class RunReport:
    """Everything one `harness run` found."""

    target: str
    seed: int
    examples: int
    steps: int
    results: list[PropertyResult]
    duration_s: float
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    @property
    def failed(self) -> list[PropertyResult]:
        return [r for r in self.results if r.status == Status.FAILED]

    @property
    def latencies_s(self) -> list[float]:
        return [value for r in self.results for value in r.latencies_s]


def replay_command(result: PropertyResult, target: str) -> str:
    return f"harness replay {result.failure_file} --target {target}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def latency_text(latencies: Sequence[float]) -> str:
    return f"{_ms(percentile(latencies, 50))}/{_ms(percentile(latencies, 99))} ms"


def print_summary(report: RunReport, out: TextIO) -> None:
    """The one-screen summary: a row per property, then how to replay each failure."""
    out.write(
        f"\ntarget {report.target}   seed {report.seed}   "
        f"{report.examples} examples x {report.steps} steps per property   "
        f"{report.duration_s:.1f}s\n"
    )
    out.write(
        f"{'property':<22}{'result':<9}{'examples':>9}{'events':>8}  "
        f"{'latency p50/p99':<18}detail\n"
    )
    for r in report.results:
        detail = r.message if r.status != Status.PASSED else ""
        if r.status == Status.FAILED:
            detail = f"{len(r.counterexample)} events: {r.message}"
            if r.flaky:
                detail += " (flaky: did not fail on every replay)"
        out.write(
            f"{r.name:<22}{r.status.value:<9}{r.examples:>9}{r.events:>8}  "
            f"{latency_text(r.latencies_s):<18}{detail[:110]}\n"
        )
    total_events = sum(r.events for r in report.results)
    counts = {s: sum(r.status == s for r in report.results) for s in Status}
    out.write(
        f"properties: {counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed,"
        f" {counts[Status.SKIPPED]} skipped; {total_events} events;"
        f" programming latency p50/p99 {latency_text(report.latencies_s)}\n"
    )
    for r in report.failed:
        out.write(f"\n{r.name} failed. Shrunk counterexample ({len(r.counterexample)} events):\n")
        for index, event in enumerate(r.counterexample, 1):
            out.write(f"  {index:>2}. {event}\n")
        out.write(f"  saved to {r.failure_file}\n  replay: {replay_command(r, report.target)}\n")


def results_json(report: RunReport) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "harness_version": __version__,
        "target": report.target,
        "seed": report.seed,
        "examples_per_property": report.examples,
        "steps_per_example": report.steps,
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 3),
        "host": {"python": platform.python_version(), "kernel": platform.release()},
        "programming_latency_ms": {
            "p50": _round_ms(percentile(report.latencies_s, 50)),
            "p99": _round_ms(percentile(report.latencies_s, 99)),
            "samples": len(report.latencies_s),
        },
        "properties": [
            {
                "name": r.name,
                "description": PROPERTIES.get(r.name, ""),
                "status": r.status.value,
                "examples": r.examples,
                "events": r.events,
                "duration_s": round(r.duration_s, 3),
                "message": r.message,
                "flaky": r.flaky,
                "counterexample": [e.to_json() for e in r.counterexample],
                "failure_file": str(r.failure_file) if r.failure_file else None,
                "replay": replay_command(r, report.target) if r.failure_file else None,
                "programming_latency_ms": {
                    "p50": _round_ms(percentile(r.latencies_s, 50)),
                    "p99": _round_ms(percentile(r.latencies_s, 99)),
                },
            }
            for r in report.results
        ],
    }


def _round_ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def write_json(report: RunReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results_json(report), indent=2) + "\n")


def write_junit(report: RunReport, path: Path) -> None:
    """JUnit XML: one testsuite per run, one testcase per property."""
    suite = ElementTree.Element(
        "testsuite",
        name=f"harness conformance ({report.target})",
        tests=str(len(report.results)),
        failures=str(len(report.failed)),
        skipped=str(sum(r.status == Status.SKIPPED for r in report.results)),
        time=f"{report.duration_s:.3f}",
        timestamp=report.started_at,
    )
    for r in report.results:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"harness.{report.target}",
            name=r.name,
            time=f"{r.duration_s:.3f}",
        )
        if r.status == Status.SKIPPED:
            ElementTree.SubElement(case, "skipped", message=r.message)
        elif r.status == Status.FAILED:
            failure = ElementTree.SubElement(case, "failure", message=r.message, type="Violation")
            failure.text = "\n".join(
                [f"{i}. {e}" for i, e in enumerate(r.counterexample, 1)]
                + [f"replay: {replay_command(r, report.target)}"]
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
