"""Conformance results: the terminal summary, the JSON results file, JUnit XML and the
conformance report (YAML, `harness.conformance/v1`: each feature of `harness.features`).

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
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

import yaml
from jsonschema import Draft202012Validator

from harness import __version__
from harness.checks import PROPERTIES
from harness.checks.latency import percentile
from harness.conformance import PropertyResult, Status, SuiteResult
from harness.coverage import FEATURES
from harness.documents import BadDocument, check_schema, shorten
from harness.errors import EXIT_HARNESS, EXIT_OK, EXIT_VIOLATION
from harness.failures import replay_command
from harness.features import (
    NOT_SUPPORTED,
    PROFILES,
    FeatureResult,
    FeatureStatus,
    PropertyOutcome,
    judge_features,
    unsupported_properties,
)
from harness.files import write_atomically
from harness.kube.metrics import metrics_text
from harness.protocols import environment_notes

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
    metrics = metrics_text(suite.proxy_metrics)
    if metrics:
        out.write(f"{metrics}\n")
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
        "proxy_metrics": suite.proxy_metrics,
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


CONFORMANCE_SCHEMA = "harness.conformance/v1"
CONFORMANCE_KIND = "ConformanceReport"


def conformance_path(results: Path) -> Path:
    """Where the conformance report goes by default, next to the results file `results`:
    `results-NAME.json` -> `conformance-NAME.yaml`, any other `X.json` -> `conformance-X.yaml`
    (so `harness report` finds it in the run directory beside the results)."""
    stem = results.stem
    rest = stem[len("results") :] if stem.startswith("results") else f"-{stem}"
    return results.with_name(f"conformance{rest}.yaml")


def _profile_result(results: Sequence[FeatureResult]) -> str:
    statuses = {r.status for r in results}
    if FeatureStatus.FAILED in statuses:
        return "failed"
    return "partial" if FeatureStatus.SKIPPED in statuses else "passed"


def conformance_report(
    report: RunReport, supported: frozenset[str], declared_by: str
) -> dict[str, Any]:
    """The conformance report (schema `harness.conformance/v1`, modelled on the Gateway API's
    ConformanceReport): the implementation and its versions, the harness version, and per
    profile each feature's status with the properties behind it (`harness.features`)."""
    suite = report.suite
    outcomes = [
        PropertyOutcome(r.name, r.status.value, tuple(r.counterexample)) for r in suite.results
    ]
    judged = judge_features(outcomes, supported, suite.coverage.checked)
    notes = environment_notes(report.target)
    versions = dict(suite.versions)
    not_supported = set(unsupported_properties(supported))
    profiles = []
    for profile in PROFILES:
        results = [r for r in judged if r.feature.profile == profile]
        profiles.append(
            {
                "name": profile,
                "result": _profile_result(results),
                "statistics": {
                    status.value: sum(r.status == status for r in results)
                    for status in FeatureStatus
                },
                "supportedFeatures": sorted(
                    r.feature.name for r in results if r.feature.name in supported
                ),
                "unsupportedFeatures": sorted(
                    r.feature.name for r in results if r.feature.name not in supported
                ),
                "features": [
                    {
                        "name": r.feature.name,
                        "description": r.feature.description,
                        "status": r.status.value,
                        "reason": _with_note(r.reason, notes.get(r.feature.name)),
                        "properties": dict(r.properties),
                        **({"discountedFailures": list(r.discounted)} if r.discounted else {}),
                    }
                    for r in results
                ],
            }
        )
    return {
        "apiVersion": CONFORMANCE_SCHEMA,
        "kind": CONFORMANCE_KIND,
        "date": report.started_at,
        "implementation": {
            "name": report.target,
            "version": versions.get("proxy") or versions.get("server") or f"harness {__version__}",
            "versions": versions,
            "featuresDeclaredBy": declared_by,
        },
        "harnessVersion": __version__,
        "run": {"seed": suite.options.seed, "profile": report.profile, "outcome": report.outcome},
        "profiles": profiles,
        "properties": [
            {
                "name": r.name,
                "status": "skipped" if r.name in not_supported else r.status.value,
                **({"reason": NOT_SUPPORTED} if r.name in not_supported else {}),
            }
            for r in suite.results
        ],
    }


def _with_note(reason: str, note: str | None) -> str:
    """A feature's reason with what the environment says of it (`harness.protocols`)."""
    return f"{reason}; {note}" if note else reason


def write_conformance(
    report: RunReport, supported: frozenset[str], declared_by: str, path: Path
) -> None:
    """Write the conformance report to `path` as YAML, whole or not at all."""
    document = conformance_report(report, supported, declared_by)
    write_atomically(path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


MAX_CONFORMANCE_BYTES = 4 * 1024 * 1024


@cache
def _conformance_validator() -> Draft202012Validator:
    schema = json.loads(files("harness").joinpath("schemas/conformance-report.json").read_text())
    return Draft202012Validator(schema)


def conformance_problem(document: object) -> str | None:
    """Why `document` is not a conformance report of schema `harness.conformance/v1` (one line:
    the first violation of harness/schemas/conformance-report.json and where), or None."""
    error = next(iter(_conformance_validator().iter_errors(document)), None)
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "the top level"
    return f"at {where}: {shorten(error.message, 160)}"


def read_conformance(path: Path) -> dict[str, Any]:
    """The conformance report in the YAML file at `path`. Raises BadDocument (one line) for a
    file too large, not YAML, or not of the schema; OSError when it cannot be read at all."""
    size = path.stat().st_size
    if size > MAX_CONFORMANCE_BYTES:
        raise BadDocument(f"is {size:,} bytes, more than a conformance report may have")
    try:
        document = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadDocument(f"is not UTF-8 text (byte {error.start}: {error.reason})") from None
    except yaml.YAMLError as error:
        raise BadDocument(f"is not valid YAML ({shorten(str(error), 160)})") from None
    if not isinstance(document, dict):
        raise BadDocument("does not hold a YAML mapping")
    check_schema(document, (CONFORMANCE_SCHEMA,), field="apiVersion")
    problem = conformance_problem(document)
    if problem is not None:
        raise BadDocument(f"is not a conformance report: {problem}")
    return document
