"""A report's output directory: the pages, the figure files they show, and their manifest.

Contract: `write_output` writes only into its directory: report.md, index.html, results.json
(the report's figures for machines), run.json (the
manifest, dating every figure file, see `harness.reporting.provenance`) and a copy of every
figure file the report read, so the directory holds exactly the figures its pages show and can
be read again, moved or committed as it is. Figure files a previous report left there that this
one does not show are removed. Every file is written to a temporary name and renamed over its
target. `check_output` refuses (UsageError, one line) a directory holding anything but a previous
report or the report's own first input, so a report never deletes or overwrites files it did
not write. Nothing here reads the clock: the same inputs give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.reporting.runs import MANIFEST, RUN_SCHEMA, write_json_atomically
from harness.reporting.sources import Sources, figure_paths, read_manifest

REPORT_MARKDOWN = "report.md"
REPORT_HTML = "index.html"
REPORT_SUMMARY = "results.json"
"""The report's figures for machines (`harness.reporting.summary`); a page, never read as a
conformance results file (`harness.reporting.sources.figure_paths`)."""
PAGES = (REPORT_MARKDOWN, REPORT_HTML, REPORT_SUMMARY)
CARRIED = ("run", "started_at", "host", "profile", "command", "notes")
"""Manifest fields a report keeps from its first input's manifest."""


def is_report(directory: Path) -> bool:
    """Whether `directory` holds a report this module wrote (its manifest lists its pages)."""
    manifest = read_manifest(directory)
    return manifest is not None and "pages" in manifest


def check_output(directory: Path, inputs: Sequence[Path]) -> None:
    """UsageError unless `directory` may be written: it does not exist, is empty, holds a
    previous report, or is the first input (rendered again in place)."""
    try:
        usable = not directory.is_dir() or not any(directory.iterdir()) or is_report(directory)
    except OSError as error:  # a path longer than the system allows, say
        raise UsageError(f"report: cannot use --output {directory} ({error.strerror})") from None
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"report: --output {directory} is a file; give a directory")
    if usable:
        return
    if inputs and directory.resolve() == inputs[0].resolve():
        return
    raise UsageError(f"report: --output {directory} holds files that are not a report; give a new"
                     " or empty directory (to publish a run: reports/YYYY-MM-DD)")  # fmt: skip


def manifest_of(sources: Sources, run: str) -> dict[str, Any]:
    """The output's manifest: the first input's run description, and every figure file's
    provenance (so copies keep the date and machine of the original)."""
    first = next(iter(sources.manifests.values()), None) or {}
    carried = {key: first[key] for key in CARRIED if key in first}
    files = {name: sources.provenance[name].as_json() for name in sorted(sources.paths)}
    return {"schema": RUN_SCHEMA, **carried, "run": run, "files": files, "pages": list(PAGES)}


def _copy(source: Path, target: Path) -> None:
    if target.exists() and target.samefile(source):
        return
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(source.read_bytes())
    os.replace(temporary, target)


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_output(
    directory: Path, sources: Sources, manifest: Mapping[str, Any], pages: Mapping[str, str]
) -> list[Path]:
    """Write `pages` (file name -> text), the figure files of `sources` and `manifest` into
    `directory` (created if needed); returns the pages' and the manifest's paths."""
    directory.mkdir(parents=True, exist_ok=True)
    # the manifest first: an output left half-written is still a report, written again next time
    write_json_atomically(directory / MANIFEST, manifest)
    for name, path in sources.paths.items():
        _copy(path, directory / name)
    for path in figure_paths(directory):
        if path.name not in sources.paths and path.name not in sources.malformed:
            path.unlink()
    written = []
    for name, text in pages.items():
        _write_text(directory / name, text)
        written.append(directory / name)
    return [*written, directory / MANIFEST]
