"""The report's UDP section, from udp.json (bench/test_udp.py; issue 12, "Figures").

Pure: parsed JSON in, `Table`s, notes and `Plot`s out. `udp_tables` shows, per implementation,
UDP request/response through the VIP beside the direct-to-pod ceiling measured in the same run
with the same generator and settings (requests/s, latency p50/p99 in µs, the VIP's ratio, shown
only when the two runs name the same generator: `loadruns.like_ratio`), and the time a
fixed-5-tuple flow took to move after its backend was deleted (p50/p99, the moves that did not
happen within the limit). An implementation that does not declare `udp` is a row "not
supported" in every cell, never a number. `udp_notes` names the generator, its settings and the
number of runs; `udp_plots` draws the flow-move p50/p99 per implementation and the throughput
per implementation beside its ceiling, each caption naming the machine, the generator, its
settings and the number of runs. A file lacking a field a table needs raises what
`harness.reporting.tables.SHAPE_ERRORS` lists (the section names the file as malformed); a plot
that cannot be drawn is left out. Nothing here reads a file or a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.reporting import svg
from harness.reporting.loadruns import latency_us, like_ratio, us_text
from harness.reporting.plots import drawable
from harness.reporting.provenance import describe_host
from harness.reporting.render import MISSING, Plot, Table
from harness.reporting.tables import _number, fmt

Json = Mapping[str, Any]

NOT_SUPPORTED = "not_supported"
"""A result's key when the implementation does not declare `udp`: its reason."""
FAILED = "failed"
UNSUPPORTED_CELL = "not supported"
MEASURED_WITH = "same generator and settings, measured side by side"


def _count(value: object) -> int:
    """A whole count; TypeError (a malformed file) for anything else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a count, got {value!r}")
    return value


def _proxy(result: Json) -> str:
    name = result["proxy"]
    if not isinstance(name, str):
        raise TypeError(f"a proxy is named {name!r}, not a string")
    return name


def _absent(result: Json) -> str | None:
    """The cell every figure of `result` shows when it has none: not supported, or failed."""
    if NOT_SUPPORTED in result:
        return UNSUPPORTED_CELL
    if FAILED in result:
        return FAILED
    return None


def _measured(data: Json) -> list[Json]:
    """The results with figures (neither unsupported nor failed)."""
    return [r for r in data["results"] if _absent(r) is None]


def _run_cells(run: Json) -> tuple[str, str, str]:
    """A run's requests/s and latency p50/p99 in µs, as cells."""
    rate = _number(run["requests_per_s"])
    return (fmt(rate, 0), us_text(latency_us(run, 50)), us_text(latency_us(run, 99)))


def vip_ratio(result: Json) -> float | None:
    """The VIP's ratio to its ceiling, when the two runs compare like with like, else None."""
    return like_ratio(result["vip"], {"pod": result["pod"]})


def _rows(
    data: Json, headers: tuple[str, ...], cells: Callable[[Json], tuple[str, ...]]
) -> tuple[tuple[str, ...], ...]:
    """A row per implementation: its name, then `cells` of its figures, or, without figures,
    "not supported" or "failed" in every cell (never a number)."""
    rows = []
    for result in data["results"]:
        absent = _absent(result)
        figures = cells(result) if absent is None else (absent,) * (len(headers) - 1)
        rows.append((_proxy(result), *figures))
    return tuple(rows)


def _throughput_cells(result: Json) -> tuple[str, ...]:
    ratio = vip_ratio(result)
    shown = MISSING if ratio is None else f"{ratio:.2f}x"
    return (*_run_cells(result["pod"]), *_run_cells(result["vip"]), shown)


def throughput_table(data: Json) -> Table:
    """Implementation x (ceiling, VIP): requests/s, p50, p99 in µs, and the VIP/pod ratio."""
    headers = ("proxy", "pod req/s (ceiling)", "pod p50 µs", "pod p99 µs", "VIP req/s",
               "VIP p50 µs", "VIP p99 µs", "VIP / pod")  # fmt: skip
    title = f"UDP request/response through the VIP against direct-to-pod ({MEASURED_WITH})"
    return Table(title, headers, _rows(data, headers, _throughput_cells))


def _ms(value: object) -> str:
    number = _number(value)
    return MISSING if number is None else f"{number:,.1f}"


def _move_cells(result: Json) -> tuple[str, ...]:
    moves: Json = result["flow_move"]
    return (
        fmt(_count(moves["moves"])),
        _ms(moves["move_p50_ms"]),
        _ms(moves["move_p99_ms"]),
        _ms(moves.get("apply_p50_ms")),
        fmt(_count(moves["not_moved"])),
    )


def flow_move_table(data: Json) -> Table:
    """Implementation x flow-move figures: moves, p50/p99 ms, apply p50 ms, not moved."""
    limit = (data.get("settings") or {}).get("move_limit_s", "?")
    headers = ("proxy", "moves", "move p50 ms", "move p99 ms", "apply p50 ms",
               f"not moved within {limit} s")  # fmt: skip
    title = "Time for a fixed-5-tuple UDP flow to move after its backend is deleted"
    return Table(title, headers, _rows(data, headers, _move_cells))


def udp_tables(data: Json) -> list[Table]:
    """The throughput table, then the flow-move table."""
    return [throughput_table(data), flow_move_table(data)]


def settings_line(data: Json) -> str:
    """The generators and their settings, in one line."""
    settings: Json = data.get("settings") or {}
    rounds = settings.get("rounds", "?")
    return (
        f"Generator: {settings.get('generator', 'not recorded')}; {settings.get('flows', '?')}"
        f" flows, {rounds} round(s) of {settings.get('seconds', '?')} s to one pod and through"
        f" the VIP in turn, each request within {settings.get('timeout_ms', '?')} ms;"
        f" {settings.get('pods', '?')} pods behind one UDP Service, from"
        f" {settings.get('client', '?')}. Flow move: one flow from source port"
        f" {settings.get('source_port', '?')}, a datagram every"
        f" {settings.get('interval_ms', '?')} ms, its backend deleted (grace 0)"
        f" {settings.get('moves', '?')} times, each wait at most"
        f" {settings.get('move_limit_s', '?')} s; one run of the benchmark,"
        f" {data.get('duration_s', '?')} s in all"
    )


def udp_notes(data: Json) -> list[str]:
    """The settings, how to read the figures, and every implementation without figures."""
    notes = [
        settings_line(data),
        "Ceiling: the same generator with the same settings to one pod directly, no proxy,"
        " measured in the same run beside the VIP (rounds interleaved); the ratio is the median"
        " of each round's VIP/pod ratio. On a shared machine a ratio near 1 means no cost"
        " measurable here. Latencies in microseconds.",
        "Flow move: from the deletion being handed to the target (the event) to the first answer"
        " from another backend; the proxy must delete the flow's conntrack entry (kube-proxy's"
        " conntrack cleanup), or the flow, never idle, stays on the deleted pod's address."
        " `apply` is the time the target took to realise the deletion, the proxy's sync"
        " included. p99 is the nearest rank: with fewer than 100 moves, the largest.",
    ]
    for result in data["results"]:
        if NOT_SUPPORTED in result:
            notes.append(f"{_proxy(result)}: not supported ({result[NOT_SUPPORTED]})")
        elif FAILED in result:
            notes.append(f"{_proxy(result)}: no figures ({result[FAILED]})")
    return notes


def _caption(data: Json) -> str:
    host = describe_host(data.get("host")) or "machine not recorded"
    return f"Measured on {host}. {settings_line(data)}."


def flow_move_plot(data: Json) -> Plot | None:
    """Flow-move p50 and p99 (ms) per implementation with figures; None without any."""
    results = _measured(data)
    if not results:
        return None
    series = [
        svg.Series(name, tuple(_number(r["flow_move"][key]) for r in results))
        for name, key in (("p50", "move_p50_ms"), ("p99", "move_p99_ms"))
    ]
    title = "UDP flow move after its backend is deleted, p50 and p99"
    proxies = [_proxy(r) for r in results]
    chart = svg.bar_chart(title, proxies, series, y_label="ms", x_label="proxy")
    return Plot(title, chart, _caption(data))


def throughput_plot(data: Json) -> Plot | None:
    """Requests/s per implementation through the VIP, beside its direct-to-pod ceiling; None
    without any figures."""
    results = _measured(data)
    if not results:
        return None
    series = [
        svg.Series(name, tuple(_number(r[run]["requests_per_s"]) for r in results))
        for name, run in (("direct to pod (ceiling)", "pod"), ("through the VIP", "vip"))
    ]
    title = "UDP request/response through the VIP and its ceiling"
    proxies = [_proxy(r) for r in results]
    chart = svg.bar_chart(title, proxies, series, y_label="requests/s", x_label="proxy")
    return Plot(title, chart, _caption(data))


def udp_plots(data: Json) -> list[Plot]:
    """Every UDP plot the figures allow (a malformed file gives none)."""
    return drawable((flow_move_plot, throughput_plot), data)
