"""Reports from the figure files in reports/: index.md, index.html and a line in history.jsonl.

`write_reports(reports_dir)` reads every figure file the benchmarks, the mutation report and
conformance runs leave there (`harness.reporting.sources`), builds one page showing every
implementation side by side (`sections`, `tables`), writes it as Markdown and as plain HTML
(`render`), and appends the run's headline figures to the history (`history`).

Contract: it writes only index.md, index.html and history.jsonl (through a temporary file
renamed over it) in `reports_dir`, which it creates if needed; it never changes a figure file. A
missing figure file is a note in the report, a malformed one a line naming it; neither is an
error. It sends no traffic and starts nothing; it takes well under a second.
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

from harness.reporting.history import append_history, history_entry, history_table
from harness.reporting.render import Section, markdown, page_html
from harness.reporting.sections import build_sections, sources_section
from harness.reporting.sources import load_sources

__all__ = ["write_reports"]

TITLE = "Service load-balancing harness: report"


def host_description() -> str:
    """This machine, as the report names it: host name, CPUs, kernel."""
    return f"{platform.node()} ({os.cpu_count()} CPUs, kernel {platform.release()})"


def write_reports(
    reports_dir: Path,
    *,
    now: datetime.datetime | None = None,
    host: str | None = None,
) -> list[Path]:
    """Write index.md and index.html from the figure files in `reports_dir` and append one line
    to history.jsonl (newest 365 kept); returns the three paths. `now` (UTC) and `host` default
    to the clock and this machine."""
    moment = now or datetime.datetime.now(datetime.UTC)
    date = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = host or host_description()
    reports_dir.mkdir(parents=True, exist_ok=True)
    sources = load_sources(reports_dir)
    sections, malformed = build_sections(sources)
    history_path = reports_dir / "history.jsonl"
    history = append_history(history_path, history_entry(sources, date, machine))
    sections += [Section("History", (history_table(history),)), sources_section(sources, malformed)]
    preamble = [f"Generated {date} on {machine} from the figure files in {reports_dir}."]
    markdown_path, html_path = reports_dir / "index.md", reports_dir / "index.html"
    markdown_path.write_text(markdown(TITLE, preamble, sections), encoding="utf-8")
    html_path.write_text(page_html(TITLE, preamble, sections), encoding="utf-8")
    return [markdown_path, html_path, history_path]
