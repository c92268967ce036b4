"""The figure files a report reads from one or more run directories, and reading them.

Contract: `load_sources` only reads. Each figure file is taken from the first directory that has
it, so a report of one run shows that run's figures only, and a report given older directories
after it shows their figures where the run has none, each dated (`provenance`). A file that is
absent everywhere is listed as missing; one that is not a JSON object, or names a schema this
harness does not read (`harness.reporting.formats`), is listed as malformed with a one-line
reason (`harness.documents`); neither raises, whatever the file holds. A directory's manifest of
an unknown schema is listed as malformed too (its figures are still read). Whether a well-formed
JSON file has the fields a table needs is decided later, by the table builders
(`harness.reporting.sections`), which name the file the same way.

`check_input` is the one place that refuses a directory: missing, not a directory, or holding no
figure file at all is a usage error (exit 2) naming the directory and the fix.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.documents import BadDocument, check_schema, read_document
from harness.errors import UsageError
from harness.reporting.formats import CONFORMANCE_PATTERN, RESULTS_PATTERN, UNVERSIONED, readable
from harness.reporting.provenance import Provenance, resolve
from harness.reporting.runs import MANIFEST, RUN_SCHEMA
from harness.results import read_conformance

FIGURE_FILES: Mapping[str, str] = {
    "throughput.json": "pytest bench/test_throughput.py",
    "model_throughput.json": "pytest bench/test_model_throughput.py",
    "local_scale.json": "pytest bench/test_local_scale.py",
    "rule_sync.json": "pytest bench/test_rule_sync.py",
    "mutants.json": "harness report --mutants",
    "search_rate.json": "pytest bench/test_search_rate.py",
    "false_alarms.json": "pytest bench/test_false_alarms.py",
    "time_to_verdict.json": "pytest bench/test_time_to_verdict.py",
    "churn.json": "pytest bench/test_churn.py",
    "kube_scale.json": "pytest bench/test_kube_scale.py",
    "kube_throughput.json": "HARNESS_KUBECONFIG=... pytest bench/test_kube_throughput.py",
    "udp.json": "pytest bench/test_udp.py",
    "programming_cost.json": "pytest bench/test_programming_cost.py",
}
"""Each figure file the report reads, and the command that makes it (shown when it is missing)."""
OPTIONAL_FILES = frozenset(
    {"churn.json", "kube_scale.json", "kube_throughput.json", "udp.json", "programming_cost.json"}
)
"""Figure files whose absence is not listed as missing: their section is simply left out, so
that a report published before they existed renders again byte for byte."""
RESULTS_COMMAND = "harness run --results reports/runs/RUN/results-NAME.json"
MAKE_A_RUN = "run `tox -e bench` (or `harness report --mutants`) to make one under reports/runs/"

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Sources:
    """What was found in the input directories.

    `figures`: figure file name -> its JSON object; `results`: conformance results file name ->
    its JSON object (schema harness.results/v1 or v2), in name order; `conformance`:
    conformance report name (`conformance*.yaml`) -> its document, in name order; `paths` and
    `provenance`: where each of those was read and where and when it was measured; `missing`:
    figure files found nowhere; `malformed`: file name (or a manifest's path) -> why it could
    not be used (one line); `manifests`: each input directory's manifest (None when it has none
    or it is unusable), in the order given.
    """

    figures: Mapping[str, Json] = field(default_factory=dict)
    results: Mapping[str, Json] = field(default_factory=dict)
    conformance: Mapping[str, Json] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    malformed: Mapping[str, str] = field(default_factory=dict)
    paths: Mapping[str, Path] = field(default_factory=dict)
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    manifests: Mapping[Path, Json | None] = field(default_factory=dict)


def one_line(error: BaseException) -> str:
    """An exception as one short line: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _manifest(directory: Path) -> tuple[Json | None, str | None]:
    """(`directory`'s manifest, None), or (None, why its run.json cannot be used), or
    (None, None) when it has none."""
    try:
        data = read_document(directory / MANIFEST)
        check_schema(data, (RUN_SCHEMA,))
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, one_line(error)
    except BadDocument as error:
        return None, str(error)
    return data, None


def read_manifest(directory: Path) -> Json | None:
    """`directory`'s run.json if it is a readable manifest of schema harness.run/v1, else None
    (a report still reads the figures; they are then dated by their own fields only)."""
    return _manifest(directory)[0]


def figure_paths(directory: Path) -> list[Path]:
    """Every figure file and results file in `directory` (none if it is not a directory). A
    file its manifest lists among the pages of a report (a report's own results.json, its
    summary, `harness.reporting.summary`) is a page, not a figure file, and is left out."""
    if not directory.is_dir():
        return []
    named = [directory / name for name in FIGURE_FILES if (directory / name).is_file()]
    pages = (read_manifest(directory) or {}).get("pages")
    own = set(pages) if isinstance(pages, list) else set()
    found = [*directory.glob(RESULTS_PATTERN), *directory.glob(CONFORMANCE_PATTERN)]
    return named + sorted(p for p in found if p.name not in own)


def check_input(directory: Path) -> None:
    """UsageError (one line: the directory and the fix) unless `directory` exists and holds at
    least one figure file."""
    try:
        found = directory.exists() and directory.is_dir() and bool(figure_paths(directory))
    except OSError as error:  # a path longer than the system allows, say
        raise UsageError(f"report: cannot read --input {directory} ({error.strerror})") from None
    if found:
        return
    if not directory.exists():
        raise UsageError(f"report: input directory {directory} not found; {MAKE_A_RUN}, or give"
                         " --input DIR of an existing run")  # fmt: skip
    if not directory.is_dir():
        raise UsageError(f"report: --input {directory} is not a directory; give a run's directory")
    expected = ", ".join([*FIGURE_FILES, RESULTS_PATTERN, CONFORMANCE_PATTERN])
    raise UsageError(f"report: {directory} holds no figure file ({expected}); {MAKE_A_RUN}")


def _read(path: Path) -> tuple[Json | None, str | None]:
    """(the JSON object, None) or (None, why it cannot be used): not a JSON object, or not of a
    schema this harness reads (a file of the `UNVERSIONED` kinds may name none)."""
    try:
        if fnmatch.fnmatchcase(path.name, CONFORMANCE_PATTERN):
            return read_conformance(path), None
        data = read_document(path)
        if not (path.name in UNVERSIONED and "schema" not in data):
            check_schema(data, readable(path.name))
    except OSError as error:
        return None, one_line(error)
    except BadDocument as error:
        return None, str(error)
    return data, None


def load_sources(directories: Sequence[Path]) -> Sources:
    """Read every figure file and every `results*.json` of `directories`, each name from the
    first directory that has it (see the module docstring). A directory that does not exist is
    simply one with every file missing."""
    read = {directory: _manifest(directory) for directory in directories}
    manifests = {directory: manifest for directory, (manifest, _) in read.items()}
    figures: dict[str, Json] = {}
    results: dict[str, Json] = {}
    conformance: dict[str, Json] = {}
    paths: dict[str, Path] = {}
    provenance: dict[str, Provenance] = {}
    malformed = {
        f"{directory / MANIFEST}": problem
        for directory, (_, problem) in read.items()
        if problem is not None
    }
    for directory in directories:
        for path in figure_paths(directory):
            name = path.name
            if name in paths or name in malformed:
                continue
            data, problem = _read(path)
            if data is None:
                malformed[name] = str(problem)
                continue
            kind = figures if name in FIGURE_FILES else results
            if fnmatch.fnmatchcase(name, CONFORMANCE_PATTERN):
                kind, data = conformance, {"started_at": data.get("date"), **data}
            kind[name] = data
            paths[name] = path
            provenance[name] = resolve(data, str(directory), manifests[directory], name)
    missing = tuple(
        name
        for name in FIGURE_FILES
        if name not in figures and name not in malformed and name not in OPTIONAL_FILES
    )
    return Sources(
        figures,
        {name: results[name] for name in sorted(results)},
        {name: conformance[name] for name in sorted(conformance)},
        missing,
        malformed,
        paths,
        provenance,
        manifests,
    )
