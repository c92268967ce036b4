"""What each locust worker tallies of the answers it got: their latencies, in a microsecond
histogram, and which pod sent each one. Shared by bench/locustfile.py (which runs inside every
locust worker, so this module imports nothing beyond the standard library and pod_identity) and
bench/load_results.py (which merges the workers' files).

Latencies: locust rounds its own to whole milliseconds below 100 ms (`locust.stats`), so
sub-millisecond paths read 0 or 1 ms. FastHttpUser's `request` event carries the response time
as float milliseconds from `time.perf_counter` (locust 2.47, `contrib/fasthttp.py`; HttpUser's
likewise); the histogram is HDR-style: exact to the microsecond below 1 ms, three significant
digits above (a value is off by at most 0.5 %).

Pods: the local cluster's pods answer `POD UID` (bench/pod_identity.py); an answer that names no
pod is counted apart (`not_a_pod`), as an error of the run. Counting here, rather than renaming
each request in locust's statistics, keeps the harness's locustfile as cheap as a bare one.

Each worker writes its tally to a file of its own when its test stops (`Tally.write`); the
files are merged afterwards (`merge`). File format (JSON): `{"schema": SCHEMA, "pid": PID,
"histogram_us": {"MICROSECONDS": COUNT}, "backends": {"POD": COUNT}, "not_a_pod": COUNT}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pod_identity import pod_of

SCHEMA = "harness.worker-tally/v1"
SIGNIFICANT_DIGITS = 3
FILE_PATTERN = "tally-*.json"


def bucket_us(value_us: float) -> int:
    """The histogram bucket of a latency of `value_us` microseconds: the value rounded to whole
    microseconds, then to SIGNIFICANT_DIGITS digits when it has more (never negative)."""
    whole = max(0, round(value_us))
    digits = len(str(whole))
    if digits <= SIGNIFICANT_DIGITS:
        return whole
    step: int = 10 ** (digits - SIGNIFICANT_DIGITS)
    return round(whole / step) * step


@dataclass
class Tally:
    """Latency buckets (µs) and answers per pod, of one process or merged over several."""

    histogram_us: dict[int, int] = field(default_factory=dict)
    backends: dict[str, int] = field(default_factory=dict)
    not_a_pod: int = 0

    def add_latency_ms(self, response_time_ms: float) -> None:
        """Count one response time given in (float) milliseconds, as locust reports it."""
        key = bucket_us(response_time_ms * 1000.0)
        self.histogram_us[key] = self.histogram_us.get(key, 0) + 1

    def add_answer(self, body: bytes) -> None:
        """Count the pod a good answer's `body` names, or one answer that names none."""
        pod = pod_of(body.decode("ascii", errors="replace"))
        if pod is None:
            self.not_a_pod += 1
        else:
            self.backends[pod] = self.backends.get(pod, 0) + 1

    def write(self, directory: Path) -> Path | None:
        """The file written under this process's id (atomically: a reader never sees half of
        it; a later write replaces it); None when nothing was counted (a locust master runs no
        users), so that no empty file is left."""
        if not self.histogram_us and not self.backends and not self.not_a_pod:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"tally-{os.getpid()}.json"
        partial = path.with_suffix(".partial")
        data = {
            "schema": SCHEMA,
            "pid": os.getpid(),
            "histogram_us": {str(key): n for key, n in sorted(self.histogram_us.items())},
            "backends": dict(sorted(self.backends.items())),
            "not_a_pod": self.not_a_pod,
        }
        partial.write_text(json.dumps(data))
        partial.replace(path)
        return path


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad count {value!r} for {what}")
    return value


def merge(files: Iterable[Mapping[str, object]]) -> Tally:
    """One tally from the parsed files of several workers: counts summed. ValueError naming
    the problem if a file is not a tally of SCHEMA."""
    merged = Tally()
    for data in files:
        histogram, backends = data.get("histogram_us"), data.get("backends")
        if data.get("schema") != SCHEMA or not isinstance(histogram, Mapping):
            raise ValueError(f"not a {SCHEMA} file: {str(data)[:80]}")
        for key, count in histogram.items():
            bucket = int(key)
            merged.histogram_us[bucket] = merged.histogram_us.get(bucket, 0) + _count(
                count, f"{key} µs"
            )
        for pod, count in (backends if isinstance(backends, Mapping) else {}).items():
            merged.backends[str(pod)] = merged.backends.get(str(pod), 0) + _count(count, pod)
        merged.not_a_pod += _count(data.get("not_a_pod", 0), "not_a_pod")
    return merged
