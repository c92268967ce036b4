"""What every throughput.json must hold, whatever the machine's speed: its structure, never its
figures' values. Pure: the report's dict in, one line per breach out (empty when it holds).

- every run that gave figures names its `generator` and, unless it ran the bare calibration
  locustfile (which records no latencies), latency p50/p90/p99 in microseconds
  (`latency_pNN_us`, numbers);
- every ratio names its ceiling, a run of the same proxy's runs (or of the calibration's): one
  measured in the same session, never a figure from elsewhere; the two runs' generators are
  equal (per proxy) or differ in exactly one setting (calibration: `workers` or `script`);
  a locust ratio of one-round runs is the quotient of the two rates (over several rounds it
  is the median of each round's quotient, which the medians alone cannot check);
- the calibration is there when any proxy gave figures, with the harness-over-bare ratio and
  the scaling over every worker count measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from load_results import PERCENTILES

BARE_SCRIPT = "locustfile_bare.py"


def _latency_problems(where: str, run: Mapping[str, Any]) -> list[str]:
    if (run.get("generator") or {}).get("script") == BARE_SCRIPT:
        return []
    return [
        f"{where}: latency_p{p}_us is {run.get(f'latency_p{p}_us')!r}, not microseconds"
        for p in PERCENTILES
        if not isinstance(run.get(f"latency_p{p}_us"), int | float)
    ]


def _differences(one: Mapping[str, Any], other: Mapping[str, Any]) -> set[str]:
    return {key for key in {*one, *other} if one.get(key) != other.get(key)}


def _ratio_problems(
    where: str, run: Mapping[str, Any], runs: Mapping[str, Any], varies: tuple[str, ...]
) -> list[str]:
    name = run.get("ceiling")
    if name is None:
        return []
    ceiling = runs.get(name)
    if not isinstance(ceiling, Mapping):
        return [f"{where}: its ceiling {name!r} is not a run of the same session"]
    differ = _differences(run.get("generator") or {}, ceiling.get("generator") or {})
    if not run.get("generator") or not differ <= set(varies):
        return [f"{where}: compared with {name}, a run of another generator ({sorted(differ)})"]
    rate, top = run.get("requests_per_s"), ceiling.get("requests_per_s")
    ratio = run.get("ratio_to_ceiling")
    one_round = run.get("rounds") == ceiling.get("rounds") == 1
    if run.get("tool") != "locust" or not one_round or ratio is None or not rate or not top:
        return []
    if abs(float(ratio) - float(rate) / float(top)) > 0.001:
        return [f"{where}: ratio {ratio} is not {rate} / {top}"]
    return []


def _proxy_varies(ceiling: str) -> tuple[str, ...]:
    """A proxy's ratios vary nothing: a VIP run against the pod run of the same generator."""
    return ()


def _calibration_varies(ceiling: str) -> tuple[str, ...]:
    """A calibration ratio varies one setting: the worker count (against the one-worker run
    of the harness's locustfile) or the locustfile (against the bare one)."""
    return ("workers",) if ceiling.startswith("locust_") else ("script",)


def _runs_problems(
    where: str, runs: Mapping[str, Any], varies: Callable[[str], tuple[str, ...]]
) -> list[str]:
    found = []
    for name, run in runs.items():
        if "failed" in run:
            continue
        at = f"{where} {name}"
        if not run.get("generator"):
            found.append(f"{at}: no generator named")
        found += _latency_problems(at, run)
        found += _ratio_problems(at, run, runs, varies(str(run.get("ceiling"))))
    return found


def structure_problems(report: Mapping[str, Any]) -> list[str]:
    """One line per breach of the rules in the module docstring."""
    found = []
    gave_figures = False
    for result in report["results"]:
        if "failed" in result:
            continue
        gave_figures = True
        found += _runs_problems(str(result["proxy"]), result["runs"], _proxy_varies)
    calibration = report.get("calibration")
    if calibration is None:
        return found + (["no calibration of the generator"] if gave_figures else [])
    found += _runs_problems("calibration", calibration["runs"], _calibration_varies)
    for key in ("harness_over_bare", "scaling"):
        if key not in calibration:
            found.append(f"calibration: no {key}")
    scaled = (calibration.get("scaling") or {}).get("workers") or []
    missing = [w for w in scaled if f"locust_pod_keepalive_w{w}" not in calibration["runs"]]
    if missing:
        found.append(f"calibration: no run with {missing} workers")
    return found
