"""The figure files a report reads from reports/, and reading them.

Contract: `load_sources` only reads. A file that is absent is listed as missing; one that is not
JSON (or not the kind of JSON its name promises) is listed as malformed with a one-line reason;
neither raises. Whether a well-formed JSON file has the fields a table needs is decided later, by
the table builders (`harness.reporting.sections`), which name the file the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results import RESULTS_SCHEMA

RESULTS_PATTERN = "results*.json"
FIGURE_FILES: Mapping[str, str] = {
    "throughput.json": "pytest bench/test_throughput.py",
    "model_throughput.json": "pytest bench/test_model_throughput.py",
    "local_scale.json": "pytest bench/test_local_scale.py",
    "rule_sync.json": "pytest bench/test_rule_sync.py",
    "mutants.json": "harness report --mutants",
    "benchmarks.json": "tox -e bench",
}
"""Each figure file the report reads, and the command that makes it (shown when it is missing)."""
RESULTS_COMMAND = "harness run --results reports/results-NAME.json"

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Sources:
    """What was found in one reports directory.

    `figures`: figure file name -> its JSON object; `results`: conformance results file name ->
    its JSON object (schema harness.results/v1), in name order; `missing`: figure files not
    there; `malformed`: file name -> why it could not be used (one line).
    """

    figures: Mapping[str, Json] = field(default_factory=dict)
    results: Mapping[str, Json] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    malformed: Mapping[str, str] = field(default_factory=dict)


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


def load_sources(directory: Path) -> Sources:
    """Read every figure file and every `results*.json` in `directory` (see the module
    docstring); a missing directory is simply a directory with every file missing."""
    figures: dict[str, Json] = {}
    results: dict[str, Json] = {}
    missing: list[str] = []
    malformed: dict[str, str] = {}
    for name in FIGURE_FILES:
        path = directory / name
        if not path.is_file():
            missing.append(name)
            continue
        try:
            figures[name] = read_json_object(path)
        except (OSError, ValueError) as error:
            malformed[name] = one_line(error) if isinstance(error, OSError) else str(error)
    paths = sorted(directory.glob(RESULTS_PATTERN)) if directory.is_dir() else []
    for path in paths:
        try:
            data = read_json_object(path)
        except (OSError, ValueError) as error:
            malformed[path.name] = one_line(error) if isinstance(error, OSError) else str(error)
            continue
        if data.get("schema") != RESULTS_SCHEMA:
            malformed[path.name] = f"schema {data.get('schema')!r}, not {RESULTS_SCHEMA!r}"
            continue
        results[path.name] = data
    return Sources(figures, results, tuple(missing), malformed)
