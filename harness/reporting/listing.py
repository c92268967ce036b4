"""reports/index.html: one page listing every dated report under a reports root, newest first.

A dated report is a directory directly under the root whose manifest (run.json) lists the pages
a report wrote (`harness.reporting.output.is_report`). Each row links to the report's
index.html and report.md and shows its run, measurement date, machine, profile and the
regressions its results.json flagged (older reports, written before results.json, show `-`).
Contract: it reads the root and writes only the root's index.html, through a temporary file; it
reads no clock, so the same reports give the same bytes. Like every report page it loads nothing.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from harness.reporting.history import history_entry
from harness.reporting.output import REPORT_HTML, REPORT_MARKDOWN, REPORT_SUMMARY, is_report
from harness.reporting.render import MISSING, POLICY
from harness.reporting.sources import load_sources

LISTING = "index.html"
TITLE = "Service load-balancing harness: every dated report"


def _regressions(directory: Path) -> str:
    try:
        data: Any = json.loads((directory / REPORT_SUMMARY).read_text(encoding="utf-8"))
        flagged = data["regressions"]
    except (OSError, ValueError, KeyError, TypeError):
        return MISSING
    if not isinstance(flagged, list):
        return MISSING
    return ", ".join(str(name) for name in flagged) or "none"


def listing_html(root: Path) -> str:
    """The listing page of the dated reports under `root`."""
    escape = html.escape
    rows = []
    for directory in sorted((d for d in root.iterdir() if is_report(d)), reverse=True):
        entry = history_entry(load_sources([directory]))
        name = escape(directory.name)
        cells = [
            f'<a href="{name}/{REPORT_HTML}">{name}</a> (<a href="{name}/{REPORT_MARKDOWN}">'
            "md</a>)",
            escape(str(entry.get("run") or MISSING)),
            escape(str(entry.get("date") or MISSING)),
            escape(str(entry.get("host") or MISSING)),
            escape(str(entry.get("profile") or MISSING)),
            escape(_regressions(directory)),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    headers = ("report", "run", "measured", "machine", "profile", "regressions flagged")
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
                f"<title>{escape(TITLE)}</title>",
                "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                "td,th{border:1px solid #999;padding:2px 6px;text-align:left}</style>",
                "</head><body>",
                f"<h1>{escape(TITLE)}</h1>",
                "<table>",
                "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>",
                *rows,
                "</table>",
                "</body></html>",
            ]
        )
        + "\n"
    )


def write_listing(root: Path) -> Path:
    """Write `root`/index.html (see the module docstring); returns its path."""
    path = root / LISTING
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(listing_html(root), encoding="utf-8")
    os.replace(temporary, path)
    return path
