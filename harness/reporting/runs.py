"""Run directories: where one benchmark run's figure files go, and the manifest that dates them.

A run directory holds figure files (`harness.reporting.sources.FIGURE_FILES`, results*.json) and
`run.json`, a manifest with schema `harness.run/v1`:

    {"schema": "harness.run/v1", "run": "20261129T193000Z", "started_at": "2026-11-29T19:30:00Z",
     "host": {"name": ..., "cpus": ..., "kernel": ..., "python": ...}, "profile": "full",
     "command": "pytest bench",
     "files": {"NAME": {"measured_at": ..., "host": ..., "from": ..., "note": ...}},
     "notes": ["..."]}

Only `schema` is required; `files` dates a figure file that does not date itself (see
`harness.reporting.provenance`). New runs go under `RUNS_DIR` (reports/runs/, ignored by git),
each named by its UTC start time; a run promoted into the repository is a dated directory under
reports/ with the same layout (README.md, "Benchmarks and reports").

Contract: `start_run` creates one directory and writes one manifest; nothing here changes a file
it did not create, and every file is written to a temporary name and renamed over its target, so a
reader never sees half a file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.reporting.formats import WRITTEN

__all__ = [
    "MANIFEST",
    "RUNS_DIR",
    "RUN_SCHEMA",
    "iso_time",
    "machine",
    "new_run_directory",
    "newest_run",
    "start_run",
    "write_figures",
    "write_json_atomically",
]

RUNS_DIR = Path("reports/runs")
"""Where new runs go, relative to the checkout (ignored by git)."""
RUN_SCHEMA = "harness.run/v1"
MANIFEST = "run.json"

Json = Mapping[str, Any]


def iso_time(moment: datetime.datetime) -> str:
    """`2026-11-29T19:30:00Z`: how every figure file and manifest writes a UTC time."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine() -> dict[str, Any]:
    """This machine as figure files record it: host name, CPUs, kernel, Python."""
    return {
        "name": platform.node(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def write_json_atomically(path: Path, data: Json) -> None:
    """Write `data` as indented JSON to `path` through a temporary file renamed over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_figures(directory: Path, name: str, figures: Json, started: datetime.datetime) -> Path:
    """Write figure file `name` into `directory`: `figures`, with the schema of its kind
    (`harness.reporting.formats.WRITTEN`), dated `started` and naming this machine (fields
    `schema`, `measured_at` and `host`, unless `figures` has its own). Returns its path."""
    path = directory / name
    stamped = {"measured_at": iso_time(started), "host": machine(), **figures}
    if name in WRITTEN:
        stamped = {"schema": WRITTEN[name], **stamped}
    write_json_atomically(path, stamped)
    return path


def new_run_directory(runs_dir: Path, now: datetime.datetime) -> Path:
    """A path under `runs_dir` named by `now` (`20261129T193000Z`) that does not exist yet
    (`-2`, `-3`... appended when runs start in the same second). Creates nothing."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate, number = runs_dir / stamp, 1
    while candidate.exists():
        number += 1
        candidate = runs_dir / f"{stamp}-{number}"
    return candidate


def start_run(
    directory: Path, *, profile: str, command: str, now: datetime.datetime | None = None
) -> Path:
    """Create `directory` (and its parents) and write its manifest, unless it already has one
    (then it is left as it is: a run given by hand may be added to). Returns `directory`."""
    moment = now or datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / MANIFEST
    if not manifest.exists():
        write_json_atomically(
            manifest,
            {
                "schema": RUN_SCHEMA,
                "run": directory.name,
                "started_at": iso_time(moment),
                "host": machine(),
                "profile": profile,
                "command": command,
            },
        )
    return directory


def newest_run(runs_dir: Path) -> Path | None:
    """The run directory under `runs_dir` that started last (names sort by start time), or
    None when there is none."""
    if not runs_dir.is_dir():
        return None
    runs = sorted(path for path in runs_dir.iterdir() if (path / MANIFEST).is_file())
    return runs[-1] if runs else None
