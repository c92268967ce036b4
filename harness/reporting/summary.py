"""results.json: a report's figures for machines to read, beside report.md and index.html.

Schema `harness.report/v1`:

    {"schema": "harness.report/v1", "run": ..., "date": ..., "host": ..., "profile": ...,
     "headline": {FIGURE: {"value": ..., "unit": ..., "higher_is_better": ...}},
     "regression_rule": "...", "regressions": [FIGURE, ...],
     "verdicts": [{"figure": ..., "value": ..., "median": ..., "threshold": ..., ...}],
     "conformance": {RESULTS_FILE: {"target": ..., "properties": {NAME: STATUS}}},
     "files": [FIGURE_FILE, ...]}

`harness report --fail-on-regression` and the nightly workflow read `regressions`; the list of
dated reports (`harness.reporting.listing`) reads `regressions` and `run`. Pure, and free of the
clock: the same report gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.reporting.regressions import RULE, Verdict, headline

SUMMARY_SCHEMA = "harness.report/v1"

Json = Mapping[str, Any]


def _conformance(results: Mapping[str, Json]) -> dict[str, Any]:
    matrix: dict[str, Any] = {}
    for name, data in results.items():
        properties = data.get("properties")
        if not isinstance(properties, list):
            continue
        statuses = {str(p.get("name")): p.get("status") for p in properties if isinstance(p, dict)}
        matrix[name] = {"target": data.get("target"), "properties": statuses}
    return matrix


def summary(this: Json, verdicts: Sequence[Verdict], results: Mapping[str, Json]) -> dict[str, Any]:
    """results.json of the report whose history entry is `this` (see the module docstring)."""
    figures = {
        name: {"value": f.value, "unit": f.unit, "higher_is_better": f.higher_is_better}
        for name, f in headline(this).items()
    }
    return {
        "schema": SUMMARY_SCHEMA,
        **{key: this.get(key) for key in ("run", "date", "host", "profile")},
        "headline": figures,
        "regression_rule": RULE,
        "regressions": [v.name for v in verdicts if v.regressed],
        "verdicts": [v.as_json() for v in verdicts],
        "conformance": _conformance(results),
        "files": list(this.get("files") or []),
    }
