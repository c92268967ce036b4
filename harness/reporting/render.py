"""Tables and sections, and how they are written as Markdown and as plain HTML. Pure.

The report is a list of `Section`s; a section holds tables and notes (a skipped or malformed
figure file, a caveat). Cells are already-formatted strings, so both renderings show the same
text. A section may also hold plots (inline SVG made by `harness.reporting.svg`): the HTML page
draws them, the Markdown names each with its caption and points to index.html. The HTML is one
self-contained page with no script, whose Content-Security-Policy forbids loading anything
(so it needs no network, and a page that tried would show it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""The page may load nothing: no script, image, font or style sheet from anywhere."""
MISSING = "-"
"""What a cell shows for a figure that was not measured or not recorded."""


@dataclass(frozen=True)
class Table:
    """A titled grid of formatted cells; every row has one cell per header."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"table {self.title!r}: row {row} does not fit {self.headers}")


@dataclass(frozen=True)
class Plot:
    """One plot: its SVG element (trusted markup: built by `harness.reporting.svg`, which
    escapes every text), and a caption saying what was measured where, how and how often."""

    title: str
    svg: str
    caption: str


@dataclass(frozen=True)
class Section:
    """A part of the report: plots, tables, then one-line notes."""

    title: str
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = ()
    plots: tuple[Plot, ...] = ()


def number_text(value: float) -> str:
    """A figure as text: `44,000`, `51.93`, `0.841` (four significant digits below 1,000)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> list[str]:
    """A table as Markdown lines: a bold title, then a pipe table (or a line saying it is empty)."""
    lines = [f"**{table.title}**", ""]
    if not table.rows:
        return [*lines, "(no rows)", ""]
    lines.append("| " + " | ".join(_markdown_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def markdown(title: str, preamble: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole report as Markdown: a title, preamble lines, then every section."""
    lines = [f"# {title}", "", *preamble, ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for plot in section.plots:
            lines += [f"*Plot (in index.html): {plot.title}.* {plot.caption}", ""]
        for table in section.tables:
            lines += table_markdown(table)
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _html_table(table: Table) -> list[str]:
    escape = html.escape
    lines = [f"<h3>{escape(table.title)}</h3>"]
    if not table.rows:
        return [*lines, "<p>(no rows)</p>"]
    lines.append("<table>")
    lines.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.headers) + "</tr>")
    lines += [
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    ]
    return [*lines, "</table>"]


def page_html(title: str, preamble: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole report as one HTML page (no script, a few lines of inline style)."""
    escape = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        f"<title>{escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #999;padding:2px 6px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}figure{margin:0 0 1.5em}"
        "figcaption{max-width:720px;font-size:90%;color:#333}</style>",
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        *[f"<p>{escape(line)}</p>" for line in preamble],
    ]
    for section in sections:
        lines.append(f"<h2>{escape(section.title)}</h2>")
        for plot in section.plots:
            lines += ["<figure>", plot.svg, f"<figcaption>{escape(plot.caption)}</figcaption>",
                      "</figure>"]  # fmt: skip
        for table in section.tables:
            lines += _html_table(table)
        if section.notes:
            lines += ["<ul>", *[f"<li>{escape(note)}</li>" for note in section.notes], "</ul>"]
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"
