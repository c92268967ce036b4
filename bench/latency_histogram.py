"""A latency histogram in microseconds, HDR-style: exact to the microsecond below 1 ms, three
significant digits above (a value is off by at most 0.5 %). Shared by bench/locustfile.py (which
runs inside every locust worker, so this module imports nothing beyond the standard library)
and bench/load_results.py (which merges the workers' files).

Why not locust's own statistics: locust rounds every response time to whole milliseconds below
100 ms (`locust.stats`), so sub-millisecond paths read 0 or 1 ms. FastHttpUser's `request` event
carries the response time as float milliseconds from `time.perf_counter` (locust 2.47,
`contrib/fasthttp.py`); each worker counts those into this histogram and writes it to a file of
its own when its test stops (`write`), one file per worker process, merged afterwards (`merge`).

File format (JSON): `{"schema": SCHEMA, "pid": PID, "histogram_us": {"MICROSECONDS": COUNT}}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

SCHEMA = "harness.latency-histogram/v1"
SIGNIFICANT_DIGITS = 3
FILE_PATTERN = "latency-*.json"


def bucket_us(value_us: float) -> int:
    """The histogram bucket of a latency of `value_us` microseconds: the value rounded to whole
    microseconds, then to SIGNIFICANT_DIGITS digits when it has more (never negative)."""
    whole = max(0, round(value_us))
    digits = len(str(whole))
    if digits <= SIGNIFICANT_DIGITS:
        return whole
    step: int = 10 ** (digits - SIGNIFICANT_DIGITS)
    return round(whole / step) * step


class Recorder:
    """Counts latencies into buckets; `write` puts them in `directory` under this process's id
    (replacing an earlier write of the same process, so writing twice is harmless)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add_ms(self, response_time_ms: float) -> None:
        """Count one response time given in (float) milliseconds, as locust reports it."""
        key = bucket_us(response_time_ms * 1000.0)
        self.counts[key] = self.counts.get(key, 0) + 1

    def write(self, directory: Path) -> Path | None:
        """The file written (atomically: a reader never sees half of it); None when nothing
        was counted (a locust master runs no users) so that no empty file is left."""
        if not self.counts:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"latency-{os.getpid()}.json"
        partial = path.with_suffix(".partial")
        histogram = {str(key): count for key, count in sorted(self.counts.items())}
        partial.write_text(
            json.dumps({"schema": SCHEMA, "pid": os.getpid(), "histogram_us": histogram})
        )
        partial.replace(path)
        return path


def merge(files: Iterable[Mapping[str, object]]) -> dict[int, int]:
    """One histogram from the parsed files of several workers: counts summed per bucket.
    ValueError naming the problem if a file is not a histogram of SCHEMA."""
    merged: dict[int, int] = {}
    for data in files:
        histogram = data.get("histogram_us")
        if data.get("schema") != SCHEMA or not isinstance(histogram, Mapping):
            raise ValueError(f"not a {SCHEMA} file: {str(data)[:80]}")
        for key, count in histogram.items():
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"bad count {count!r} for {key!r} µs")
            merged[int(key)] = merged.get(int(key), 0) + count
    return merged
