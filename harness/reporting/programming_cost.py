"""The report's programming-cost section, from programming_cost.json
(bench/test_programming_cost.py; issue 13, item 5, the kube-proxy nftables comparison of
KEP-3866).

The file holds, per proxy (iptables, nftables; the nftables proxy once more per other `nft` it
ran with, a `variant` named after that `nft`'s version; each result with its rule tool's
version line, `tool`) and per size (endpoints in Services), the medians of: one endpoint
change's sync and its time until a fresh connection through the VIP is served by the new pod,
the same change's transaction applied with the bare rule command, a fresh proxy instance's full
sync and the bare command applying its transaction, the bare command's floors, and the
first-packet latency (connect time) through the VIP; and one more restart's sync with the
node's tracked connections left (`flows_*`, shown as a note). A size that could not be
measured names why (`failed`).

Pure: parsed JSON in, `Table`s, notes and one `Plot` out; no clock, no files. `cost_ratios`
computes the issue's ratios from the figures of the one file (so every ratio compares figures
of one run): the iptables full sync's growth from the smallest to the largest size, the
nftables change programming's growth (goal: within 2x), each proxy's programming over the bare
command at its worst size (goal: within 1.5x), with the whole sync's beside it (shown, no goal),
and the nftables first-packet latency's growth (goal: within 1.5x). Programming is the sync up
to the end of its rule command (`*_programmed_ms`); a file written before that was measured is
judged on its whole sync, as then. A file lacking a field a table needs raises what
`harness.reporting.tables.SHAPE_ERRORS` lists (the section names the file as malformed); the
plot is then left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.reporting import svg
from harness.reporting.provenance import describe_host
from harness.reporting.render import MISSING, Plot, Table, number_text
from harness.reporting.tables import SHAPE_ERRORS

Json = Mapping[str, Any]

FILE = "programming_cost.json"
TITLE = "Programming cost at scale"
PLOT_TITLE = "Programming time against endpoints (log-log)"
FAILED = "failed"
DEFAULT_GOALS: Mapping[str, float] = {
    "proxy_over_bare_at_most": 1.5,
    "nftables_change_growth_at_most": 2.0,
    "nftables_first_packet_growth_at_most": 1.5,
}
"""The issue's goals, used for a file that does not state its own."""
PLOTTED = (("change_sync_ms", "one change, sync"), ("full_sync_ms", "full sync"))
"""The measures the plot draws per proxy: a field of each size, and its legend."""


FLOOR = "floor_bare_ms"
"""The bare command's floor at a size (bench/test_programming_cost.py `measure_floor`)."""
GOTO_FLOOR = "floor_goto_bare_ms"
"""The same floor with a goto, which the kernel validates (nftables sizes only)."""
FLOORS = (
    (FLOOR, "bare command's floor", "shown (what any nft -f transaction costs)"),
    (
        GOTO_FLOOR,
        "bare command's floor with a goto",
        "shown (what any change adding a goto costs: the kernel validates the table)",
    ),
)
"""Each floor's field, its name in a ratio and what the ratio is shown for (no goal)."""


def _number(value: object) -> float:
    """A figure; TypeError (a malformed file) for anything but a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def measured(data: Json) -> list[Json]:
    """The proxies that gave figures, each with the sizes that gave figures (`sizes`) and those
    that failed (`failed_sizes`), both sorted by endpoints."""
    found: list[Json] = []
    for result in data["results"]:
        if FAILED in result:
            continue
        every = sorted(result["sizes"], key=lambda size: _number(size["endpoints"]))
        sizes = [size for size in every if FAILED not in size]
        failed = [size for size in every if FAILED in size]
        found.append({**result, "sizes": sizes, "failed_sizes": failed})
    return found


def result_label(result: Json) -> str:
    """How a result is named everywhere in the section: its proxy, with its variant in
    brackets when it has one (`nftables (nft v1.1.3)`: the same proxy run with another `nft`)."""
    variant = result.get("variant")
    return f"{result.get('proxy')} ({variant})" if variant else str(result.get("proxy"))


def _quotient(top: object, bottom: object) -> float | None:
    """`top` / `bottom`, or None when `bottom` is 0 (no ratio to show)."""
    denominator = _number(bottom)
    return _number(top) / denominator if denominator > 0 else None


def _ratio_cell(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


PROGRAMMED = "programmed_ms"
"""The suffix of a sync's figure up to the end of its rule command (`change_programmed_ms`,
`full_programmed_ms`): what the data plane waits for, without the conntrack housekeeping that
follows (files written before it was measured lack it)."""


def _programmed_cell(size: Json, key: str) -> str:
    """`key`'s programmed figure over its bare command, or MISSING in a file without it."""
    if f"{key}_{PROGRAMMED}" not in size:
        return MISSING
    return _ratio_cell(_quotient(size[f"{key}_{PROGRAMMED}"], size[f"{key}_bare_ms"]))


def _programming_key(sizes: Sequence[Json], key: str) -> str:
    """The figure a ratio of `key` ("change", "full") compares: its programmed figure when
    every size has one, else (an older file) its whole sync."""
    if sizes and all(f"{key}_{PROGRAMMED}" in size for size in sizes):
        return f"{key}_{PROGRAMMED}"
    return f"{key}_sync_ms"


def cost_table(data: Json) -> Table:
    """Proxy x size: the change's sync (the rule command's share), the bare command, their
    ratio, the change programmed over the bare command, the change served; the full sync, its
    bare command, their ratio, programmed over bare, a restart served; the first-packet
    latency."""
    headers = (
        "proxy", "endpoints", "Services", "change: sync ms (apply)", "bare ms", "sync/bare",
        "programmed/bare", "served ms", "full sync ms (apply)", "bare ms", "sync/bare",
        "programmed/bare", "restart served ms", "first packet µs",
    )  # fmt: skip
    rows = []
    for result in measured(data):
        for size in result["failed_sizes"]:
            scale = (
                number_text(_number(size["endpoints"])),
                number_text(_number(size["services"])),
            )
            rows.append((result_label(result), *scale, *([FAILED] * (len(headers) - 3))))
        for size in result["sizes"]:
            rows.append((
                result_label(result),
                number_text(_number(size["endpoints"])),
                number_text(_number(size["services"])),
                f"{number_text(_number(size['change_sync_ms']))}"
                f" ({number_text(_number(size['change_apply_ms']))})",
                number_text(_number(size["change_bare_ms"])),
                _ratio_cell(_quotient(size["change_sync_ms"], size["change_bare_ms"])),
                _programmed_cell(size, "change"),
                number_text(_number(size["change_to_serve_ms"])),
                f"{number_text(_number(size['full_sync_ms']))}"
                f" ({number_text(_number(size['full_apply_ms']))})",
                number_text(_number(size["full_bare_ms"])),
                _ratio_cell(_quotient(size["full_sync_ms"], size["full_bare_ms"])),
                _programmed_cell(size, "full"),
                number_text(_number(size["restart_to_serve_ms"])),
                number_text(_number(size["first_packet_us"])),
            ))  # fmt: skip
    title = f"Programming cost against scale ({FILE}; medians, counts in the notes)"
    return Table(title, headers, tuple(rows))


@dataclass(frozen=True)
class Ratio:
    """One ratio of the run's figures: what it compares, its value (None when a figure it
    needs is 0 or absent), its goal in words, and whether it meets it (None: no bound)."""

    name: str
    value: float | None
    goal: str
    met: bool | None


def _at_most(name: str, value: float | None, bound: float) -> Ratio:
    met = None if value is None else value <= bound
    return Ratio(name, value, f"at most {bound:g}x", met)


def _growth(sizes: Sequence[Json], key: str) -> tuple[float | None, str]:
    """The figure `key` at the largest size over that at the smallest, and the span in words."""
    low, high = sizes[0], sizes[-1]
    span = f"{number_text(_number(low['endpoints']))} to {number_text(_number(high['endpoints']))}"
    return _quotient(high[key], low[key]), f"{span} endpoints"


def cost_ratios(data: Json) -> list[Ratio]:
    """The issue's ratios from the one file (see the module docstring), those of the nftables
    proxy once per `nft` it ran with (its variants); a ratio whose proxy gave no figures, or
    that needs two sizes where there is one, is left out."""
    goals = {**DEFAULT_GOALS, **(data.get("goals") or {})}
    results = measured(data)
    ratios = []
    for result in results:
        if result["proxy"] == "iptables" and len(result["sizes"]) > 1:
            value, span = _growth(result["sizes"], "full_sync_ms")
            met = None if value is None else value > 1
            name = f"{result_label(result)} full sync, growth from {span}"
            ratios.append(Ratio(name, value, "grows", met))
    nftables = [r for r in results if r["proxy"] == "nftables" and len(r["sizes"]) > 1]
    for result in nftables:
        ratios += _change_growth(result, _number(goals["nftables_change_growth_at_most"]))
    for result in results:
        ratios += _over_bare(result, _number(goals["proxy_over_bare_at_most"]))
    for result in nftables:
        bound = _number(goals["nftables_first_packet_growth_at_most"])
        value, span = _growth(result["sizes"], "first_packet_us")
        name = f"{result_label(result)} first-packet latency, growth from {span}"
        ratios.append(_at_most(name, value, bound))
    return ratios


def _change_growth(result: Json, bound: float) -> list[Ratio]:
    """An nftables result's one-change growth against its goal, and its bare command's floor's
    growth beside it (no goal: what any `nft -f` transaction costs with that `nft`)."""
    sizes, label = result["sizes"], result_label(result)
    figure = _programming_key(sizes, "change")
    value, span = _growth(sizes, figure)
    what = "programming" if figure.endswith(PROGRAMMED) else "sync"
    ratios = [_at_most(f"{label} one-change {what}, growth from {span}", value, bound)]
    for key, floor, goal in FLOORS:
        if all(key in size for size in sizes):  # files from before it was measured lack it
            value, span = _growth(sizes, key)
            ratios.append(Ratio(f"{label} {floor}, growth from {span}", value, goal, None))
    return ratios


def _over_bare(result: Json, bound: float) -> list[Ratio]:
    """A result's programming over the bare command at its worst size, one change and full
    sync, against the goal; its whole sync's beside each (conntrack housekeeping included)."""
    sizes, ratios = result["sizes"], []
    for key, what in (("change", "one-change"), ("full", "full")):
        figure = _programming_key(sizes, key)
        for measure in dict.fromkeys((figure, f"{key}_sync_ms")):
            quotients = [_quotient(s[measure], s[f"{key}_bare_ms"]) for s in sizes]
            known = [q for q in quotients if q is not None]
            worst = max(known) if known else None
            part = "programming" if measure.endswith(PROGRAMMED) else "sync"
            name = (
                f"{result_label(result)} {what} {part} over the bare command,"
                f" worst of {len(sizes)} size(s)"
            )
            if measure == figure:
                ratios.append(_at_most(name, worst, bound))
            else:  # the whole sync beside it: conntrack housekeeping included, no goal
                ratios.append(Ratio(name, worst, "shown (with conntrack housekeeping)", None))
    return ratios


def ratios_table(data: Json) -> Table:
    """Every ratio of `cost_ratios` beside its goal."""
    rows = tuple(
        (
            ratio.name,
            _ratio_cell(ratio.value),
            ratio.goal,
            MISSING if ratio.met is None else ("yes" if ratio.met else "NO"),
        )
        for ratio in cost_ratios(data)
    )
    title = "Ratios measured in this run, beside the goals (issue 13)"
    return Table(title, ("ratio", "measured", "goal", "met"), rows)


def settings_line(data: Json) -> str:
    """The machine and what each figure is a median of, in one line."""
    settings: Json = data.get("settings") or {}
    host = describe_host(data.get("host")) or "machine not recorded"
    return (
        f"Measured on {host}, one run of the benchmark (profile {data.get('profile', '?')}):"
        f" medians of {settings.get('change_rounds', '?')} endpoint changes (there and back),"
        f" {settings.get('full_rounds', '?')} full sync(s) after a proxy restart and"
        f" {settings.get('connections', '?')} fresh connection(s) from"
        f" {settings.get('client', '?')} for the first-packet latency"
    )


def cost_notes(data: Json) -> list[str]:
    """The settings, how each figure was measured, and every proxy that gave no figures."""
    settings: Json = data.get("settings") or {}
    notes = [
        settings_line(data),
        "sync: the proxy's whole sync (choosing and rendering the rules, the rule command, whose"
        " share is in brackets, and clearing stale conntrack entries); programmed: the same sync"
        " up to the end of its rule command, when new connections follow the new rules (the"
        " point where kube-proxy observes network_programming_duration_seconds; its conntrack"
        " cleanup, CleanStaleEntries, comes last in syncProxyRules too, and needs a walk of the"
        " kernel's whole conntrack hash table); bare: the plain kernel"
        " command (iptables-restore --noflush, nft -f) applying the same transaction from the"
        " same rules; served: from the change (or the restart) to a fresh connection through the"
        " VIP answered by the right pod",
    ]
    notes += [f"{key}: {settings[key]}" for key in ("probe", "bulk", "first_packet")
              if settings.get(key)]  # fmt: skip
    notes += [f"{result_label(r)}: no figures ({r[FAILED]})" for r in data["results"]
              if FAILED in r]  # fmt: skip
    notes += [f"{result_label(r)} ran {r['tool']}" for r in data["results"] if r.get("tool")]
    for result in measured(data):
        notes += [
            f"{result_label(result)} at {number_text(_number(size['endpoints']))} endpoints: no"
            f" figures ({size[FAILED]})"
            for size in result["failed_sizes"]
        ]
        floors = [_floor_text(size) for size in result["sizes"] if FLOOR in size]
        if floors:
            notes.append(
                f"{result_label(result)}, the bare command's floor (the smallest transaction"
                " that commits and changes nothing a Service owns: what a one-endpoint change"
                " cannot get under; nft 1.0.6 lists every chain of the namespace before any"
                " transaction, nft 1.1.3 no chain but every set; with a goto, as every endpoint"
                " change has, the kernel also validates every chain reachable from the base"
                f" chains, nft_table_validate): {'; '.join(floors)}"
            )
        flows = [_flows_text(size) for size in result["sizes"] if "flows_tracked" in size]
        if flows:
            notes.append(
                f"{result_label(result)}, full sync after a restart that left the node's tracked"
                " connections (the proxy clears every newly programmed Service port's"
                f" untranslated conntrack entries, one table walk each): {'; '.join(flows)}"
            )
    return notes


def _floor_text(size: Json) -> str:
    """`10,000 endpoints: 56 ms (with a goto 66 ms) with 15,002 chains` (the goto floor and the
    chains left out when not recorded)."""
    chains = f" with {number_text(_number(size['chains']))} chains" if "chains" in size else ""
    goto = (
        f" (with a goto {number_text(_number(size[GOTO_FLOOR]))} ms)" if GOTO_FLOOR in size else ""
    )
    floor = number_text(_number(size[FLOOR]))
    return f"{number_text(_number(size['endpoints']))} endpoints: {floor} ms{goto}{chains}"


def _flows_text(size: Json) -> str:
    """`10 endpoints: 220 ms with 31 tracked`, or `... failed (why) with 31 tracked`."""
    outcome = (
        f"failed ({size['flows_sync_failed']})"
        if size.get("flows_sync_failed")
        else f"{number_text(_number(size['flows_sync_ms']))} ms"
    )
    tracked = number_text(_number(size["flows_tracked"]))
    return f"{number_text(_number(size['endpoints']))} endpoints: {outcome} with {tracked} tracked"


def cost_tables(data: Json) -> tuple[list[Table], list[str]]:
    """The section's tables (figures, then ratios) and notes."""
    return [cost_table(data), ratios_table(data)], cost_notes(data)


def cost_plot(data: Json) -> Plot | None:
    """Programming time against endpoints on log axes: the one-change sync and the full sync
    of each proxy (KEP-3866's shape); None without a drawable point or for a malformed file."""
    try:
        series = [
            svg.Series(
                f"{result_label(result)} {label}",
                points=tuple(
                    (_number(size["endpoints"]), _number(size[key])) for size in result["sizes"]
                ),
            )
            for result in measured(data)
            for key, label in PLOTTED
        ]
    except SHAPE_ERRORS:
        return None
    series = [s for s in series if any(x > 0 and y > 0 for x, y in s.points)]
    if not series:
        return None
    chart = svg.line_chart(PLOT_TITLE, series, y_label="ms", x_label="endpoints", log_x=True,
                           log_y=True)  # fmt: skip
    return Plot(PLOT_TITLE, chart, f"{settings_line(data)}. Both axes logarithmic.")


def cost_plots(data: Json) -> list[Plot]:
    """`cost_plot` as the list a section takes: empty when there is nothing to draw."""
    plot = cost_plot(data)
    return [plot] if plot is not None else []
