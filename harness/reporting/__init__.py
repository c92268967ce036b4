"""Reports from a run's figure files: report.md, index.html, results.json and run.json.

`write_report(inputs, output)` reads the figure files of one run directory (or of several, each
file from the first that has it; `harness.reporting.sources`), builds one page showing every
implementation side by side with where and when each figure was measured (`sections`, `tables`,
`provenance`), draws plots of them as inline SVG (`plots`, `svg`), adds the history of published
reports with a trend plot per headline figure (`history`), judges each headline figure against
the last runs before it and flags regressions at the top (`regressions`), and writes the page as
Markdown and as self-contained HTML, with results.json (`summary`), a copy of the figures it
shows and their manifest (`output`). When `output` is a dated directory directly under
`history_root` (publishing), the root's index.html listing every dated report is written again
(`listing`).

Contract: it reads its inputs and the published reports under `history_root` and writes only
into `output` (and, when publishing, `history_root`/index.html); it never changes an input
(unless the output is the first input, rendered again in place, which rewrites the same
figures), appends to no file and reads no clock, so reporting the same run twice gives the same
bytes. A missing or empty input, or an output holding other
files, is a UsageError (exit 2) in one line, before anything is written; an output that cannot
be written is an EnvironmentProblem (exit 3) in one line. It sends no traffic and starts
nothing; it takes well under a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem
from harness.reporting.history import history_entry, history_table, published, with_this_report
from harness.reporting.listing import write_listing
from harness.reporting.output import (
    REPORT_HTML,
    REPORT_MARKDOWN,
    REPORT_SUMMARY,
    check_output,
    manifest_of,
    write_output,
)
from harness.reporting.plots import trend_plots
from harness.reporting.provenance import UNKNOWN_HOST
from harness.reporting.regressions import Verdict, judge
from harness.reporting.render import Section, markdown, page_html
from harness.reporting.sections import build_sections, regression_section, sources_section
from harness.reporting.sources import Sources, check_input, load_sources
from harness.reporting.summary import summary

__all__ = ["PUBLISHED_DIR", "Written", "write_report"]

TITLE = "Service load-balancing harness: report"
PUBLISHED_DIR = Path("reports")
"""Where published (dated) reports live, relative to the checkout."""


def preamble(sources: Sources, this: Mapping[str, Any]) -> list[str]:
    """What the report is of: the run, its machine, its directories and the dates measured."""
    manifest = next(iter(sources.manifests.values()), None) or {}
    profile = f", profile {manifest['profile']}" if manifest.get("profile") else ""
    lines = [f"Run {this['run']}{profile}, on {this.get('host') or UNKNOWN_HOST}."]
    origins = sorted({p.origin for p in sources.provenance.values()})  # the same when re-rendered
    lines.append(f"Figures from {', '.join(origins)}.")
    if len(origins) > 1:
        lines.append(
            "The figures come from more than one directory: each section says where and when"
            " its figures were measured."
        )
    dates = sorted({p.measured_at for p in sources.provenance.values() if p.measured_at})
    if dates:
        lines.append(f"Measured {dates[0]}" + (f" to {dates[-1]}." if len(dates) > 1 else "."))
    undated = sorted(name for name, p in sources.provenance.items() if not p.measured_at)
    if undated:
        lines.append(f"No measurement date recorded for: {', '.join(undated)}.")
    return lines


@dataclass(frozen=True)
class Written:
    """What `write_report` wrote (report.md, index.html, results.json, run.json, and the
    listing when publishing) and its verdict on every headline figure."""

    paths: tuple[Path, ...]
    verdicts: tuple[Verdict, ...]

    @property
    def regressions(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.regressed)


def earlier_runs(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The history rows before this report's row (oldest first) of the same profile: a quick
    run is never judged against full ones."""
    this = next(row for row in rows if row.get("this_report"))
    before = rows[: list(rows).index(this)]
    return [row for row in before if row.get("profile") == this.get("profile")]


def write_report(
    inputs: Sequence[Path], output: Path, *, history_root: Path = PUBLISHED_DIR
) -> Written:
    """Write the report of `inputs` into `output` (see the module docstring)."""
    if not inputs:
        raise ValueError("write_report needs at least one input directory")
    for directory in inputs:
        check_input(directory)
    check_output(output, inputs)
    sources = load_sources(inputs)
    sections, malformed = build_sections(sources)
    this = history_entry(sources)
    rows = with_this_report(published(history_root, exclude=output), this)
    earlier = earlier_runs(rows)
    verdicts = judge(this, earlier)
    trends = tuple(trend_plots([*earlier, this]))
    history = Section("History", (history_table(rows),), plots=trends)
    sections = [regression_section(verdicts), *sections, history]
    sections.append(sources_section(sources, malformed))
    lines = preamble(sources, this)
    results = summary(this, verdicts, sources.results)
    pages = {
        REPORT_MARKDOWN: markdown(TITLE, lines, sections),
        REPORT_HTML: page_html(TITLE, lines, sections),
        REPORT_SUMMARY: json.dumps(results, indent=2) + "\n",
    }
    try:
        paths = write_output(output, sources, manifest_of(sources, this["run"]), pages)
        if history_root.is_dir() and output.resolve().parent == history_root.resolve():
            paths.append(write_listing(history_root))
    except OSError as error:
        raise EnvironmentProblem(
            f"report: cannot write {output}: {error.strerror or error}; give a writable --output"
        ) from None
    return Written(tuple(paths), tuple(verdicts))
