"""Where and when each figure file was measured. Pure: JSON in, `Provenance` out.

A figure file dates itself when it has `measured_at` (written by every benchmark) or
`started_at` (throughput.json, conformance results), and names its machine with `host` or
`machine`. Files that do not (figures measured before they recorded it) are dated by the `files`
entry of their directory's manifest (`harness.reporting.runs`), and failing that by the run's own
`started_at` and `host`. A file dated by none of them is reported as "date not recorded", never
given a date it does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Json = Mapping[str, Any]

UNKNOWN_DATE = "date not recorded"
UNKNOWN_HOST = "machine not recorded"


@dataclass(frozen=True)
class Provenance:
    """One figure file's origin: when it was measured (ISO UTC), on which machine (one line),
    the directory it was first written to, and a note on how the date is known."""

    measured_at: str | None
    host: str | None
    origin: str
    note: str | None = None

    def line(self) -> str:
        """`measured 2026-11-26T21:48:37Z on vm, 2 CPUs, ... (reports/runs/X)`."""
        when = f"measured {self.measured_at}" if self.measured_at else UNKNOWN_DATE
        text = f"{when} on {self.host or UNKNOWN_HOST}, from {self.origin}"
        return f"{text}; {self.note}" if self.note else text

    def as_json(self) -> dict[str, str]:
        """The manifest entry that dates this file again when it is read back."""
        entry = {"measured_at": self.measured_at, "host": self.host, "from": self.origin,
                 "note": self.note}  # fmt: skip
        return {key: value for key, value in entry.items() if value is not None}


def describe_host(value: object) -> str | None:
    """A recorded machine as one line: a string as it is; a mapping's name, CPUs, kernel and
    Python, those present; None for anything else."""
    if isinstance(value, str):
        return value or None
    if not isinstance(value, Mapping):
        return None
    labels = (("name", "{}"), ("cpus", "{} CPUs"), ("kernel", "kernel {}"), ("python", "Python {}"))
    parts = [form.format(value[key]) for key, form in labels if value.get(key) is not None]
    return ", ".join(parts) or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def resolve(data: Json, origin: str, manifest: Json | None, name: str) -> Provenance:
    """The provenance of figure file `name` (parsed as `data`) found in directory `origin`,
    whose manifest is `manifest` (None when the directory has none). See the module docstring
    for the order in which dates and machines are looked up."""
    run: Json = manifest or {}
    files = run.get("files")
    entry = files.get(name) if isinstance(files, Mapping) else None
    recorded: Json = entry if isinstance(entry, Mapping) else {}
    measured_at = (
        _text(data.get("measured_at"))
        or _text(data.get("started_at"))
        or _text(recorded.get("measured_at"))
    )
    note = _text(recorded.get("note"))
    if measured_at is None and _text(run.get("started_at")):
        measured_at = str(run["started_at"])
        note = note or "date of the run that wrote it"
    host = (
        describe_host(data.get("host"))
        or describe_host(data.get("machine"))
        or describe_host(recorded.get("host"))
        or describe_host(run.get("host"))
    )
    return Provenance(measured_at, host, _text(recorded.get("from")) or origin, note)
