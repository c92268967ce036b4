"""Readers of load-generator output, and the distribution figures of a run. Pure: no I/O.

wrk's text output (with `--latency`) and locust's `--json-file` become one `LoadResult`; several
rounds of one measurement become one median summary (`summarise`). Locust's per-backend counts
come from the workers' own tallies (bench/worker_tally.py), summed over the workers.

Latencies are microseconds, p50/p90/p99, for both tools: wrk's `--latency` distribution (from
its HdrHistogram, printed to 0.01 us); for locust, the workers' own microsecond histograms
(bench/worker_tally.py), merged, never locust's statistics (whole milliseconds below
100 ms). A locust run without those histograms (the bare calibration locustfile) has no latency.

Ratios compare like with like (`ratio_to`): a run and its ceiling must have been made by the
same generator with the same settings (`Generator`: tool, threads or workers, connections or
users), or there is no ratio.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker_tally import merge

from harness.checks.fairness import jain_index

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
PERCENTILES = (50, 90, 99)
"""The latency percentiles every run reports, as `latency_pNN_us`."""


@dataclass(frozen=True)
class Generator:
    """What made a run, as far as a ratio between two runs depends on it: the tool, its
    processes (wrk threads, locust workers) and its concurrency (wrk connections, locust users),
    and for locust the locustfile. Two runs are comparable only when these are equal."""

    tool: str
    processes: int
    concurrency: int
    script: str = ""

    def describe(self) -> dict[str, Any]:
        """The settings as they are written into a run's figures (`generator`)."""
        kind = {"wrk": ("threads", "connections")}.get(self.tool, ("workers", "users"))
        named = {"tool": self.tool, kind[0]: self.processes, kind[1]: self.concurrency}
        return {**named, "script": self.script} if self.script else named


@dataclass(frozen=True)
class LoadResult:
    """What one bounded run of a load generator measured.

    `requests` counts completed answers (wrk) or every request reported (locust, failures
    included); `errors` counts socket errors and non-2xx answers (wrk) or locust's failures.
    `latency_us` maps each of PERCENTILES to microseconds (None where not measured).
    `backends` maps pod name to answers (locust only; wrk does not read bodies).
    """

    tool: str
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    latency_us: Mapping[int, float | None]
    backends: Mapping[str, int] = field(default_factory=dict)


def _us(value: str, unit: str) -> float:
    return round(float(value) * _UNITS_US[unit], 3)


def parse_wrk(stdout: str) -> LoadResult:
    """wrk's report (run with `--latency`); ValueError if it holds no request total."""
    total = re.search(rf"(\d+) requests in {_TIME}", stdout)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", stdout)
    if total is None or rate is None:
        raise ValueError(f"not a wrk report: {stdout.strip()[:200]!r}")
    printed = {
        int(match[1]): _us(match[2], match[3])
        for match in re.finditer(rf"^\s+(\d+)%\s+{_TIME}", stdout, re.MULTILINE)
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
        duration_s=_us(total[2], total[3]) / 1e6,
        requests_per_s=float(rate[1]),
        latency_us={percent: printed.get(percent) for percent in PERCENTILES},
    )


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def histogram_percentile(histogram: Mapping[int, int], percent: float) -> float | None:
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


def parse_locust(
    entries: Sequence[Mapping[str, Any]], tallies: Sequence[Mapping[str, Any]] = ()
) -> LoadResult:
    """Locust's `--json-file` content (a list of stats entries, one per (method, name), summed
    by the master over its workers) and the workers' tally files, parsed
    (`worker_tally.merge`): latencies and per-pod counts come from the tallies (none: no
    latency, no counts), and an answer naming no pod is an error. ValueError when a tally file
    is malformed."""
    tally = merge(tallies)
    per_second: Counter[int] = Counter()
    requests, errors = 0, tally.not_a_pod
    starts, ends = [], []
    for entry in entries:
        requests += int(entry["num_requests"])
        errors += int(entry["num_failures"])
        per_second.update({int(float(t)): int(n) for t, n in entry["num_reqs_per_sec"].items()})
        starts.append(float(entry["start_time"]))
        ends.append(float(entry.get("last_request_timestamp") or entry["start_time"]))
    duration_s = max(ends) - min(starts) if entries else 0.0
    return LoadResult(
        tool="locust",
        requests=requests,
        errors=errors,
        duration_s=duration_s,
        requests_per_s=steady_rate(per_second, requests, duration_s),
        latency_us={p: _float(histogram_percentile(tally.histogram_us, p)) for p in PERCENTILES},
        backends=tally.backends,
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


def summarise(rounds: Sequence[LoadResult], generator: Generator) -> dict[str, Any]:
    """Medians over the rounds of one measurement made by `generator`, with totals and every
    round's rate; latencies as `latency_pNN_us`."""
    if not rounds:
        raise ValueError("no rounds to summarise")
    if any(result.tool != generator.tool for result in rounds):
        raise ValueError(f"rounds of another tool than {generator.tool}")
    backends: Counter[str] = Counter()
    for result in rounds:
        backends.update(result.backends)
    return {
        "tool": generator.tool,
        "generator": generator.describe(),
        "rounds": len(rounds),
        "requests_per_s": _median([r.requests_per_s for r in rounds]),
        **{f"latency_p{p}_us": _median([r.latency_us.get(p) for r in rounds]) for p in PERCENTILES},
        "requests": sum(r.requests for r in rounds),
        "errors": sum(r.errors for r in rounds),
        "round_requests_per_s": [round(r.requests_per_s, 1) for r in rounds],
        "backends": dict(backends),
    }


def ratio_to(
    figures: Mapping[str, Any],
    ceiling: Mapping[str, Any],
    name: str,
    varying: Collection[str] = (),
    ratio: float | None = None,
) -> dict[str, Any]:
    """`figures` with `ceiling: name` and its requests/s as a fraction of the ceiling's, rounded
    to 3 digits (None when either run failed or gave no rate); `ratio` instead when given (the
    `paired_ratio` of runs of several rounds).

    Like with like: ValueError when the two were not made by the same generator with the same
    settings (their `generator`, which failed runs carry too), but for the settings named in
    `varying`, the one thing the ratio is meant to measure (`workers` for scaling, `script` for
    the cost of a locustfile); a ratio across tools or worker counts measures the tools."""
    mine, theirs = (
        {k: v for k, v in (run.get("generator") or {}).items() if k not in varying}
        for run in (figures, ceiling)
    )
    if not mine or mine != theirs:
        raise ValueError(
            f"not like with like: {figures.get('generator')} against {name}'s"
            f" {ceiling.get('generator')}"
        )
    rate, top = figures.get("requests_per_s"), ceiling.get("requests_per_s")
    if ratio is None:
        ratio = round(rate / top, 3) if rate is not None and top else None
    return {**figures, "ceiling": name, "ratio_to_ceiling": ratio}


SCALING_GAIN = 1.1
"""Adding workers "stops scaling" at the first count whose rate is below this multiple of the
previous (smaller) count's: one more worker then buys less than a tenth more requests/s."""


def scaling(rates: Mapping[int, float | None], x_one: Mapping[int, float | None]) -> dict[str, Any]:
    """How one setup's rate grows with the worker count: `rates` maps workers to req/s and
    `x_one` to the rate as a multiple of the one-worker rate (each the median of rounds run
    side by side, `paired_ratio`; None where a run failed). `stops_at` is the first count whose
    multiple is below SCALING_GAIN x the previous count's, None when every step gained."""
    counts = sorted(rates)
    stops_at = None
    for smaller, larger in itertools.pairwise(counts):
        low, high = x_one.get(smaller), x_one.get(larger)
        if low and high is not None and high < SCALING_GAIN * low:
            stops_at = larger
            break
    return {
        "workers": counts,
        "requests_per_s": [rates[count] for count in counts],
        "x_one_worker": [x_one.get(count) for count in counts],
        "gain_threshold": SCALING_GAIN,
        "stops_at": stops_at,
    }


def paired_ratio(
    runs: Sequence[LoadResult | None], ceilings: Sequence[LoadResult | None]
) -> float | None:
    """The median over rounds of each round's rate over its ceiling's (the two measured side
    by side, so drift on a shared machine hits both alike), rounded to 3 digits; rounds where
    either run failed (None) or the ceiling gave no rate are left out; None when none is left."""
    ratios = [
        run.requests_per_s / ceiling.requests_per_s
        for run, ceiling in zip(runs, ceilings, strict=True)
        if run is not None and ceiling is not None and ceiling.requests_per_s > 0
    ]
    return round(statistics.median(ratios), 3) if ratios else None
