"""How the report reads a throughput run (throughput.json, bench/test_throughput.py): its
latencies, its generator, and whether its ratio compares like with like. Pure.

v2 files give latencies as `latency_pNN_us`, microseconds: wrk's `--latency` distribution, and
for locust the workers' own histograms. v1 files gave `latency_pNN_ms`: wrk's are read as
microseconds; locust's were rounded to whole milliseconds ("0.000 ms" on sub-millisecond
paths) and are not shown. A ratio is shown only between runs of the same generator with the
same settings (`comparable`); v1 files compared locust with wrk, and locust's `--processes`
run with one process: those ratios are not shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.reporting.render import MISSING

PERCENTILES = (50, 90, 99)
"""The percentiles every run reports and the report shows."""


def latency_us(run: Mapping[str, Any], percent: int) -> float | None:
    """A run's latency percentile `percent` in microseconds (None when it has none, or only
    locust's whole milliseconds of a v1 file); TypeError when the field is not a number."""
    sources = [(f"latency_p{percent}_us", 1.0)]
    sources += [] if run.get("tool") == "locust" else [(f"latency_p{percent}_ms", 1000.0)]
    for key, scale in sources:
        value = run.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{key} is {value!r}, not a number")
        return float(value) * scale
    return None


def us_text(value: float | None) -> str:
    """Microseconds as a cell, three significant digits at least and never rounded to zero:
    `-`, `7.25`, `48.1`, `183`, `3,240`."""
    if value is None:
        return MISSING
    if abs(value) < 10:
        return f"{value:.2f}"
    if abs(value) < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def generator_text(run: Mapping[str, Any]) -> str:
    """The generator of a run in a few words: `wrk 2 threads, 10 conn.`, `locust 2 workers,
    10 users, locustfile.py (fast)`; `-` for a run that names none (a v1 file)."""
    generator = run.get("generator")
    if not isinstance(generator, Mapping):
        return MISSING
    tool = str(generator.get("tool", "?"))
    if "threads" in generator:
        return f"{tool} {generator['threads']} threads, {generator.get('connections', '?')} conn."
    workers = generator.get("workers", "?")
    text = (
        f"{tool} {workers} worker{'' if workers == 1 else 's'}, {generator.get('users', '?')} users"
    )
    return f"{text}, {generator['script']}" if generator.get("script") else text


def comparable(run: Mapping[str, Any], runs: Mapping[str, Any]) -> bool:
    """Whether `run`'s ratio to its ceiling (a run of `runs`, the same proxy's) compares like
    with like: both name the same generator (v2), or, in a v1 file that names none, both were
    made by the same tool with as many `processes` (locust's `--processes`)."""
    ceiling = runs.get(str(run.get("ceiling")))
    if not isinstance(ceiling, Mapping):
        return False
    if "generator" in run or "generator" in ceiling:
        return bool(run.get("generator")) and run.get("generator") == ceiling.get("generator")
    same_processes = run.get("processes", 1) == ceiling.get("processes", 1)
    return run.get("tool") == ceiling.get("tool") and same_processes


def like_ratio(run: Mapping[str, Any], runs: Mapping[str, Any]) -> float | None:
    """`run`'s ratio to its ceiling when that compares like with like (`comparable`), else
    None; TypeError when the ratio is not a number."""
    value = run.get("ratio_to_ceiling")
    if value is None or not comparable(run, runs):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"ratio_to_ceiling is {value!r}, not a number")
    return float(value)
