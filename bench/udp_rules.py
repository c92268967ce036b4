"""What every udp.json must hold, whatever the machine's speed: its structure and what must be
true of the harness's own proxies, never its figures' values. Pure: the report's dict in, one
line per breach out (empty when it holds).

- one result per proxy, each exactly one of: figures, `not_supported` (a reason, and no number
  at all: a proxy that does not declare `udp` is never measured), or `failed` (a breach);
- figures: the ceiling (`pod`) and the VIP (`vip`) made by the same generator with the same
  settings, both answered, with requests/s and latency p50/p90/p99 in microseconds; the VIP's
  ratio names `pod` as its ceiling, measured beside it;
- the flow moved at every one of the `moves` planned (the proxy deleted the stale conntrack
  entry), each time to another pod, with p50 <= p99.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from load_results import PERCENTILES

NOT_SUPPORTED = "not_supported"
"""The key of a result for a proxy that does not declare `udp`: its reason."""
FIGURES = ("pod", "vip", "flow_move")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _run_problems(where: str, run: Mapping[str, Any]) -> list[str]:
    found = [
        f"{where}: latency_p{p}_us is {run.get(f'latency_p{p}_us')!r}, not microseconds"
        for p in PERCENTILES
        if not _number(run.get(f"latency_p{p}_us"))
    ]
    if not (_number(run.get("requests_per_s")) and run.get("requests", 0) > 0):
        found.append(f"{where}: no request answered")
    return found


def _throughput_problems(proxy: str, result: Mapping[str, Any]) -> list[str]:
    pod, vip = result["pod"], result["vip"]
    found = _run_problems(f"{proxy} pod", pod) + _run_problems(f"{proxy} vip", vip)
    if pod.get("generator") != vip.get("generator") or not pod.get("generator"):
        found.append(f"{proxy}: VIP run by {vip.get('generator')}, its ceiling by"
                     f" {pod.get('generator')}")  # fmt: skip
    if vip.get("ceiling") != "pod" or not _number(vip.get("ratio_to_ceiling")):
        found.append(f"{proxy}: the VIP's ratio is not to its own pod run")
    return found


def _move_problems(proxy: str, moves: Mapping[str, Any], planned: object) -> list[str]:
    found = []
    if moves["moves"] != planned or len(moves["samples"]) != planned:
        found.append(f"{proxy}: {moves['moves']} flow moves ({len(moves['samples'])} timed),"
                     f" planned {planned}")  # fmt: skip
    if moves["not_moved"]:
        found.append(f"{proxy}: the fixed UDP flow did not move {moves['not_moved']} time(s)"
                     " after its backend was deleted (stale conntrack entry?)")  # fmt: skip
    if any(sample["to"] == sample["from"] for sample in moves["samples"]):
        found.append(f"{proxy}: a move ended on the deleted pod")
    p50, p99 = moves["move_p50_ms"], moves["move_p99_ms"]
    if moves["moved"] and not (_number(p50) and _number(p99) and p50 <= p99):
        found.append(f"{proxy}: flow-move p50 {p50!r} and p99 {p99!r}")
    return found


def udp_problems(report: Mapping[str, Any]) -> list[str]:
    """Every breach of the module docstring's rules in `report` (udp.json), one line each."""
    found: list[str] = []
    planned = (report.get("settings") or {}).get("moves")
    for result in report["results"]:
        proxy = str(result.get("proxy"))
        present = [key for key in FIGURES if key in result]
        if "failed" in result:
            found.append(f"{proxy}: {result['failed']}")
        elif NOT_SUPPORTED in result:
            if present or not result[NOT_SUPPORTED]:
                found.append(f"{proxy}: not supported, yet with figures {present} or no reason")
        elif present != list(FIGURES):
            found.append(f"{proxy}: figures {present}, expected {list(FIGURES)}")
        else:
            found += _throughput_problems(proxy, result)
            found += _move_problems(proxy, result["flow_move"], planned)
    return found
