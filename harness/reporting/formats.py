"""Which versions of each figure file a report reads, and which it writes.

Every figure file names its format in `schema` (`harness.KIND/vN`). Most of the benchmarks' own
files were first written without one (`UNVERSIONED`); those are read as the first version of
their kind, as reports/2026-11-26/ holds them, and new ones are written with it
(`harness.reporting.runs.write_figures`). A file of any other version is
refused by the report with one line naming the version read and the ones understood
(`harness.reporting.sources`). Pure data.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from harness.mutation import MUTANTS_SCHEMA
from harness.results import RESULTS_SCHEMA

RESULTS_PATTERN = "results*.json"
CONFORMANCE_PATTERN = "conformance*.yaml"
"""Conformance reports (`harness.results.write_conformance`), YAML, read for the feature matrix."""
WRITTEN: Mapping[str, str] = {
    "throughput.json": "harness.throughput/v2",
    "model_throughput.json": "harness.model_throughput/v1",
    "local_scale.json": "harness.local_scale/v1",
    "rule_sync.json": "harness.rule_sync/v1",
    "search_rate.json": "harness.search_rate/v1",
    "false_alarms.json": "harness.false_alarms/v1",
    "time_to_verdict.json": "harness.time_to_verdict/v1",
    "churn.json": "harness.churn/v1",
    "kube_scale.json": "harness.kube_scale/v1",
    "kube_throughput.json": "harness.kube_throughput/v1",
    "udp.json": "harness.udp/v1",
    "programming_cost.json": "harness.programming_cost/v1",
    "mutants.json": MUTANTS_SCHEMA,
    RESULTS_PATTERN: RESULTS_SCHEMA,
}
"""The schema each figure file is written with (results files by `harness run --results`)."""
READABLE: Mapping[str, tuple[str, ...]] = {
    **{name: (schema,) for name, schema in WRITTEN.items()},
    "mutants.json": ("harness.mutants/v1", MUTANTS_SCHEMA),
    "throughput.json": ("harness.throughput/v1", "harness.throughput/v2"),
    RESULTS_PATTERN: ("harness.results/v1", "harness.results/v2", RESULTS_SCHEMA),
}
"""The schemas a report reads, per figure file. throughput v2 (latencies `latency_pNN_us`, locust
runs with `workers`, a `calibration` of the generator) replaced v1 (`latency_pNN_ms`, locust's
whole milliseconds); a v1 file's latencies are shown converted to microseconds."""
UNVERSIONED = (
    "model_throughput.json",
    "local_scale.json",
    "rule_sync.json",
    "search_rate.json",
    "false_alarms.json",
    "time_to_verdict.json",
)
"""Files first written without a schema: a file of these without one is read as their v1."""


def readable(name: str) -> tuple[str, ...]:
    """The schemas a report reads for figure file `name` (a results file by its pattern);
    KeyError for a file that is neither."""
    if name in READABLE:
        return READABLE[name]
    if fnmatch.fnmatchcase(name, RESULTS_PATTERN):
        return READABLE[RESULTS_PATTERN]
    raise KeyError(f"{name} is not a figure file")
