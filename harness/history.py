"""The record of a run: one JSON object per step, in order (Jepsen's history).

Each record holds the event, when it was applied (target clock), what was observed per Service
(convergence time, usable backends the model expected, hits and errors seen) and every verdict.
Failure reports, replays and benchmark summaries read this record and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HISTORY_SCHEMA = "harness.history/v1"


@dataclass
class History:
    records: list[dict[str, Any]] = field(default_factory=list)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def latencies_s(self) -> list[float]:
        """Every programming latency observed, in seconds."""
        return [
            observed["latency_s"]
            for record in self.records
            for observed in record.get("services", {}).values()
            if observed.get("latency_s") is not None
        ]

    def to_json(self) -> list[dict[str, Any]]:
        return list(self.records)

    def write_jsonl(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            out.write(json.dumps({"schema": HISTORY_SCHEMA}) + "\n")
            for record in self.records:
                out.write(json.dumps(record) + "\n")
