"""The figure files a report reads from one or more run directories, and reading them.

Contract: `load_sources` only reads. Each figure file is taken from the first directory that has
it, so a report of one run shows that run's figures only, and a report given older directories
after it shows their figures where the run has none, each dated (`provenance`). A file that is
absent everywhere is listed as missing; one that is not JSON (or not the kind of JSON its name
promises) is listed as malformed with a one-line reason; neither raises. Whether a well-formed
JSON file has the fields a table needs is decided later, by the table builders
(`harness.reporting.sections`), which name the file the same way.

`check_input` is the one place that refuses a directory: missing, not a directory, or holding no
figure file at all is a usage error (exit 2) naming the directory and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.reporting.provenance import Provenance, resolve
from harness.reporting.runs import MANIFEST, RUN_SCHEMA
from harness.results import RESULTS_SCHEMA

READABLE_RESULTS = ("harness.results/v1", RESULTS_SCHEMA)
"""Results files a report reads: this harness's, and the v1 files published before it."""

RESULTS_PATTERN = "results*.json"
FIGURE_FILES: Mapping[str, str] = {
    "throughput.json": "pytest bench/test_throughput.py",
    "model_throughput.json": "pytest bench/test_model_throughput.py",
    "local_scale.json": "pytest bench/test_local_scale.py",
    "rule_sync.json": "pytest bench/test_rule_sync.py",
    "mutants.json": "harness report --mutants",
    "search_rate.json": "pytest bench/test_search_rate.py",
    "false_alarms.json": "pytest bench/test_false_alarms.py",
    "time_to_verdict.json": "pytest bench/test_time_to_verdict.py",
}
"""Each figure file the report reads, and the command that makes it (shown when it is missing)."""
RESULTS_COMMAND = "harness run --results reports/runs/RUN/results-NAME.json"
MAKE_A_RUN = "run `tox -e bench` (or `harness report --mutants`) to make one under reports/runs/"

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Sources:
    """What was found in the input directories.

    `figures`: figure file name -> its JSON object; `results`: conformance results file name ->
    its JSON object (schema harness.results/v1), in name order; `paths` and `provenance`: where
    each of those was read and where and when it was measured; `missing`: figure files found
    nowhere; `malformed`: file name -> why it could not be used (one line); `manifests`: each
    input directory's manifest (None when it has none), in the order given.
    """

    figures: Mapping[str, Json] = field(default_factory=dict)
    results: Mapping[str, Json] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    malformed: Mapping[str, str] = field(default_factory=dict)
    paths: Mapping[str, Path] = field(default_factory=dict)
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    manifests: Mapping[Path, Json | None] = field(default_factory=dict)


def one_line(error: BaseException) -> str:
    """An exception as one short line: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def read_json_object(path: Path) -> Json:
    """The JSON object in `path`; ValueError (one line) for anything else, OSError if unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    return data


def read_manifest(directory: Path) -> Json | None:
    """`directory`'s run.json if it is a readable manifest of schema harness.run/v1, else None
    (a report still reads the figures; they are then dated by their own fields only)."""
    try:
        data = read_json_object(directory / MANIFEST)
    except (OSError, ValueError):
        return None
    return data if data.get("schema") == RUN_SCHEMA else None


def figure_paths(directory: Path) -> list[Path]:
    """Every figure file and results file in `directory` (none if it is not a directory)."""
    if not directory.is_dir():
        return []
    named = [directory / name for name in FIGURE_FILES if (directory / name).is_file()]
    return named + sorted(directory.glob(RESULTS_PATTERN))


def check_input(directory: Path) -> None:
    """UsageError (one line: the directory and the fix) unless `directory` exists and holds at
    least one figure file."""
    if not directory.exists():
        raise UsageError(f"report: input directory {directory} not found; {MAKE_A_RUN}, or give"
                         " --input DIR of an existing run")  # fmt: skip
    if not directory.is_dir():
        raise UsageError(f"report: --input {directory} is not a directory; give a run's directory")
    if not figure_paths(directory):
        expected = ", ".join([*FIGURE_FILES, RESULTS_PATTERN])
        raise UsageError(f"report: {directory} holds no figure file ({expected}); {MAKE_A_RUN}")


def _read(path: Path) -> tuple[Json | None, str | None]:
    """(the JSON object, None) or (None, why it cannot be used)."""
    try:
        data = read_json_object(path)
    except OSError as error:
        return None, one_line(error)
    except ValueError as error:
        return None, str(error)
    if path.match(RESULTS_PATTERN) and data.get("schema") not in READABLE_RESULTS:
        readable = " or ".join(repr(s) for s in READABLE_RESULTS)
        return None, f"schema {data.get('schema')!r}, not {readable}"
    return data, None


def load_sources(directories: Sequence[Path]) -> Sources:
    """Read every figure file and every `results*.json` of `directories`, each name from the
    first directory that has it (see the module docstring). A directory that does not exist is
    simply one with every file missing."""
    manifests = {directory: read_manifest(directory) for directory in directories}
    figures: dict[str, Json] = {}
    results: dict[str, Json] = {}
    paths: dict[str, Path] = {}
    provenance: dict[str, Provenance] = {}
    malformed: dict[str, str] = {}
    for directory in directories:
        for path in figure_paths(directory):
            name = path.name
            if name in paths or name in malformed:
                continue
            data, problem = _read(path)
            if data is None:
                malformed[name] = str(problem)
                continue
            (results if name not in FIGURE_FILES else figures)[name] = data
            paths[name] = path
            provenance[name] = resolve(data, str(directory), manifests[directory], name)
    missing = tuple(name for name in FIGURE_FILES if name not in figures and name not in malformed)
    ordered_results = {name: results[name] for name in sorted(results)}
    return Sources(figures, ordered_results, missing, malformed, paths, provenance, manifests)
