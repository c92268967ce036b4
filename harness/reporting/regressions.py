"""Headline figures of a report, and which of them regressed against the runs before it.

A history entry (`harness.reporting.history.history_entry`) holds a few figures per report;
`headline` flattens them into named numbers, each knowing whether higher or lower is better.
`judge` compares this report's figures with the same figures of the last `WINDOW` earlier runs:

    noise     = 1.4826 x MAD (median absolute deviation from their median), the standard
                deviation a normal spread with that MAD would have; when the earlier runs have
                a MAD of 0 (at least half identical), 1.2533 x their mean absolute deviation
                instead; when that is 0 too the figure is deterministic and any change is real
    threshold = THRESHOLD_NOISES x noise
    regressed = worse than the median by more than the threshold

A figure needs at least `MIN_EARLIER` earlier values to be judged; with fewer it is listed as
not judged. So the threshold is the spread the figure showed on earlier nights, measured, not a
guessed percentage; `RULE` states it in the report. Pure: no clock, no files.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.reporting.render import number_text

WINDOW = 7
MIN_EARLIER = 3
THRESHOLD_NOISES = 3.0
MAD_TO_SIGMA = 1.4826
MEAN_DEVIATION_TO_SIGMA = 1.2533
RULE = (
    f"A figure is flagged when it is worse than the median of the same figure in the last"
    f" {WINDOW} earlier runs by more than {THRESHOLD_NOISES:g} x their noise (noise: 1.4826 x"
    f" the median absolute deviation of those runs; 1.2533 x the mean absolute deviation when"
    f" that is 0; none when every earlier run gave the same figure, so any change is flagged)."
    f" A figure with fewer than {MIN_EARLIER} earlier runs is not judged."
)

JUDGED_GENERATOR = "wrk_"
"""Throughput figures are judged for wrk's runs only: wrk is the calibrated generator (its
ceiling measured the same way in the same run); locust's runs are shown, not judged."""

CHURN_UNIT = "failed requests"
"""The unit of the churn figures: requests that failed while usable endpoints existed (the
promise is none; `harness.reporting.churn`)."""

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Figure:
    """One headline number: its value and whether a higher value is better."""

    value: float
    higher_is_better: bool
    unit: str


@dataclass(frozen=True)
class Verdict:
    """One figure of this report against its earlier runs; `median`, `noise` and `threshold`
    are None when it was not judged (fewer than MIN_EARLIER earlier values)."""

    name: str
    value: float
    unit: str
    higher_is_better: bool
    earlier: tuple[float, ...]
    median: float | None
    noise: float | None
    threshold: float | None
    regressed: bool

    @property
    def judged(self) -> bool:
        return self.median is not None

    def line(self) -> str:
        """`throughput iptables wrk_vip_keepalive ratio: 0.71, median of 7 earlier runs 0.95,
        threshold 0.03 (worse by 0.24; higher is better)`."""
        better = "higher" if self.higher_is_better else "lower"
        if self.median is None or self.threshold is None:
            return (f"{self.name}: {number_text(self.value)} {self.unit}, not judged"
                    f" ({len(self.earlier)} earlier run(s), {MIN_EARLIER} needed)")  # fmt: skip
        return (
            f"{self.name}: {number_text(self.value)} {self.unit}, median of"
            f" {len(self.earlier)} earlier runs {number_text(self.median)}, threshold"
            f" {number_text(self.threshold)} (worse by"
            f" {number_text(self.worse_by())}; {better} is better)"
        )

    def worse_by(self) -> float:
        """How much worse than the median (negative when better); 0 when not judged."""
        if self.median is None:
            return 0.0
        delta = self.median - self.value
        return delta if self.higher_is_better else -delta

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "value": self.value,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "earlier": list(self.earlier),
            "median": self.median,
            "noise": self.noise,
            "threshold": self.threshold,
            "regressed": self.regressed,
        }


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def headline(entry: Json) -> dict[str, Figure]:
    """The named numbers of one history entry (a figure absent or malformed is left out)."""
    found: dict[str, Figure] = {}

    def put(name: str, value: object, higher: bool, unit: str) -> None:
        number = _number(value)
        if number is not None:
            found[name] = Figure(number, higher, unit)

    throughput = entry.get("throughput")
    if isinstance(throughput, Mapping):
        for proxy, runs in throughput.items():
            for run, figures in runs.items() if isinstance(runs, Mapping) else ():
                judged = str(run).startswith(JUDGED_GENERATOR)
                if judged and isinstance(figures, list) and len(figures) == 2:
                    put(f"throughput {proxy} {run}", figures[0], True, "req/s")
                    put(f"throughput {proxy} {run} x ceiling", figures[1], True, "x")
    for key, label, higher, unit in (
        ("rule_sync_median_ms", "rule sync {} median", False, "ms"),
        ("scale_total_s", "local scale {} total", False, "s"),
        ("churn_failures", "churn {} failed requests", False, CHURN_UNIT),
    ):
        values = entry.get(key)
        if isinstance(values, Mapping):
            for proxy, value in values.items():
                put(label.format(proxy), value, higher, unit)
    latency = entry.get("programming_latency_ms")
    if isinstance(latency, Mapping):
        for name, row in latency.items():
            if isinstance(row, Mapping):
                put(f"programming latency {row.get('target') or name} p50", row.get("p50"),
                    False, "ms")  # fmt: skip
                put(f"programming latency {row.get('target') or name} p99", row.get("p99"),
                    False, "ms")  # fmt: skip
    put("model events/s", entry.get("model_events_per_s"), True, "events/s")
    return dict(sorted(found.items()))


def noise_of(values: Sequence[float]) -> float:
    """The spread of `values` as a standard deviation (see the module docstring)."""
    middle = statistics.median(values)
    mad = statistics.median(abs(v - middle) for v in values)
    if mad > 0:
        return MAD_TO_SIGMA * mad
    return MEAN_DEVIATION_TO_SIGMA * statistics.fmean(abs(v - middle) for v in values)


def judge_one(name: str, figure: Figure, earlier: Sequence[float]) -> Verdict:
    """`figure` against its `earlier` values (oldest first; the last WINDOW are used)."""
    window = tuple(earlier[-WINDOW:])
    if len(window) < MIN_EARLIER:
        return Verdict(name, figure.value, figure.unit, figure.higher_is_better, window,
                       None, None, None, False)  # fmt: skip
    middle = statistics.median(window)
    noise = noise_of(window)
    threshold = THRESHOLD_NOISES * noise
    delta = middle - figure.value if figure.higher_is_better else figure.value - middle
    return Verdict(name, figure.value, figure.unit, figure.higher_is_better, window, middle,
                   noise, threshold, delta > threshold)  # fmt: skip


def judge(this: Json, earlier_entries: Sequence[Json]) -> list[Verdict]:
    """Every headline figure of `this` entry against the `earlier_entries` (oldest first) that
    have it, in name order."""
    earlier = [headline(entry) for entry in earlier_entries]
    return [
        judge_one(name, figure, [e[name].value for e in earlier if name in e])
        for name, figure in headline(this).items()
    ]
