"""Readers of load-generator output, and the distribution figures of a run. Pure: no I/O.

wrk's text output (with `--latency`) and locust's `--json-file` become one `LoadResult`; several
rounds of one measurement become one median summary (`summarise`). Locust's per-backend counts
are the stats entries named `backend:POD` (bench/pod_identity.py, shared with the locustfile).

Latency resolution differs by tool: wrk keeps microseconds (HdrHistogram); locust keeps whole
milliseconds below 100 ms (`locust.stats` rounds response times into its histogram), so its
p50/p99 are only good to 1 ms.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pod_identity import BACKEND_PREFIX

from harness.checks.fairness import jain_index

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class LoadResult:
    """What one bounded run of a load generator measured.

    `requests` counts completed answers (wrk) or every request reported (locust, failures
    included); `errors` counts socket errors and non-2xx answers (wrk) or locust's failures.
    `backends` maps pod name to answers (locust only; wrk does not read bodies).
    """

    tool: str
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    backends: Mapping[str, int] = field(default_factory=dict)


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(stdout: str) -> LoadResult:
    """wrk's report (run with `--latency`); ValueError if it holds no request total."""
    total = re.search(rf"(\d+) requests in {_TIME}", stdout)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", stdout)
    if total is None or rate is None:
        raise ValueError(f"not a wrk report: {stdout.strip()[:200]!r}")
    percentiles = {
        int(match[1]): _ms(match[2], match[3])
        for match in re.finditer(rf"^\s+(50|99)%\s+{_TIME}", stdout, re.MULTILINE)
    }
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", stdout
    )
    bad_status = re.search(r"Non-2xx or 3xx responses: (\d+)", stdout)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(bad_status[1]) if bad_status else 0
    return LoadResult(
        tool="wrk",
        requests=int(total[1]),
        errors=errors,
        duration_s=_ms(total[2], total[3]) / 1000,
        requests_per_s=float(rate[1]),
        latency_p50_ms=percentiles.get(50),
        latency_p99_ms=percentiles.get(99),
    )


def histogram_percentile(histogram: Mapping[float, int], percent: float) -> float | None:
    """Nearest-rank percentile of a {value: count} histogram (None when it is empty)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(percent / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def steady_rate(per_second: Mapping[int, int], requests: int, duration_s: float) -> float:
    """Median requests per whole second, leaving out the first and last (partial) seconds;
    the mean rate over the run when fewer than one whole second remains."""
    seconds = sorted(per_second)[1:-1]
    if seconds:
        return float(statistics.median(per_second[second] for second in seconds))
    return requests / duration_s if duration_s > 0 else 0.0


def parse_locust(entries: Sequence[Mapping[str, Any]]) -> LoadResult:
    """Locust's `--json-file` content: a list of stats entries, one per (method, name)."""
    histogram: Counter[float] = Counter()
    per_second: Counter[int] = Counter()
    backends: dict[str, int] = {}
    requests = errors = 0
    starts, ends = [], []
    for entry in entries:
        requests += int(entry["num_requests"])
        errors += int(entry["num_failures"])
        histogram.update({float(ms): int(n) for ms, n in entry["response_times"].items()})
        per_second.update({int(float(t)): int(n) for t, n in entry["num_reqs_per_sec"].items()})
        starts.append(float(entry["start_time"]))
        ends.append(float(entry.get("last_request_timestamp") or entry["start_time"]))
        name = str(entry["name"])
        if name.startswith(BACKEND_PREFIX):
            pod = name.removeprefix(BACKEND_PREFIX)
            backends[pod] = backends.get(pod, 0) + int(entry["num_requests"])
    duration_s = max(ends) - min(starts) if entries else 0.0
    return LoadResult(
        tool="locust",
        requests=requests,
        errors=errors,
        duration_s=duration_s,
        requests_per_s=steady_rate(per_second, requests, duration_s),
        latency_p50_ms=histogram_percentile(histogram, 50),
        latency_p99_ms=histogram_percentile(histogram, 99),
        backends=backends,
    )


def distribution(backends: Mapping[str, int], pods: Sequence[str]) -> dict[str, Any]:
    """How answers spread over the Service's `pods`: counts (zeros included), how many pods
    answered, Jain's index and max/mean; answers from pods outside `pods` are listed apart."""
    counts = [backends.get(pod, 0) for pod in pods]
    mean = sum(counts) / len(counts) if counts else 0.0
    return {
        "counts": dict(zip(pods, counts, strict=True)),
        "pods": len(pods),
        "pods_reached": sum(count > 0 for count in counts),
        "jain": round(jain_index(counts), 4) if sum(counts) else None,
        "max_over_mean": round(max(counts) / mean, 3) if mean else None,
        "outside_service": sorted(set(backends) - set(pods)),
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def summarise(rounds: Sequence[LoadResult]) -> dict[str, Any]:
    """Medians over the rounds of one measurement, with totals and every round's rate."""
    if not rounds:
        raise ValueError("no rounds to summarise")
    backends: Counter[str] = Counter()
    for result in rounds:
        backends.update(result.backends)
    return {
        "tool": rounds[0].tool,
        "rounds": len(rounds),
        "requests_per_s": _median([r.requests_per_s for r in rounds]),
        "latency_p50_ms": _median([r.latency_p50_ms for r in rounds]),
        "latency_p99_ms": _median([r.latency_p99_ms for r in rounds]),
        "requests": sum(r.requests for r in rounds),
        "errors": sum(r.errors for r in rounds),
        "round_requests_per_s": [round(r.requests_per_s, 1) for r in rounds],
        "backends": dict(backends),
    }
