"""Plots as inline SVG, drawn by the harness itself: grouped bars and lines, linear or log axes.

Pure: numbers in, one `<svg>` element as text out. No script, no font or style sheet from
elsewhere, no clock and no randomness, so a page embedding these needs no network to be viewed
and the same figures give the same bytes. Every text is escaped. A plot with nothing to draw
is never made (the callers in `harness.reporting.plots` leave it out), so every SVG here has
drawn marks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.reporting.render import number_text

WIDTH = 760
HEIGHT = 340
LEFT, RIGHT, TOP, BOTTOM = 78, 210, 34, 84
LEGEND_CHARACTERS = 32
CHARACTER_PX = 6.5
"""About how wide one character of the 11 px sans-serif font is."""
"""Margins: axis labels on the left and bottom, the legend on the right."""
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
CEILING_COLOUR = "#444"


@dataclass(frozen=True)
class Series:
    """One named series: a value per category (bars; None where not measured), or (x, y)
    points (lines)."""

    name: str
    values: tuple[float | None, ...] = ()
    points: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Reference:
    """A horizontal reference mark per category (bars), e.g. each proxy's direct-to-pod
    ceiling; None where there is none."""

    name: str
    values: tuple[float | None, ...]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _num(value: float) -> str:
    """A coordinate with at most one decimal, so bytes do not depend on float noise."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def tick_label(value: float) -> str:
    """A tick's text: `1.2k`, `35`, `0.25`."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if magnitude >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:.3g}"


def linear_ticks(high: float, count: int = 5) -> list[float]:
    """0 to at least `high` in round steps (1, 2 or 5 times a power of ten)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * i for i in range(math.ceil(high / step - 1e-9) + 1)]


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten from below `low` to above `high` (both > 0)."""
    start, stop = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [10.0**e for e in range(start, max(stop, start + 1) + 1)]


@dataclass(frozen=True)
class Axis:
    """A value axis mapped onto [`start`, `end`] pixels, linear or log."""

    ticks: tuple[float, ...]
    log: bool
    start: float
    end: float

    def at(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        if self.log:
            value, low, high = math.log10(value), math.log10(low), math.log10(high)
        share = (value - low) / (high - low) if high != low else 0.0
        return self.start + share * (self.end - self.start)


def value_axis(values: Sequence[float], log: bool, start: float, end: float) -> Axis:
    if log:
        positive = [v for v in values if v > 0] or [1.0]
        return Axis(tuple(log_ticks(min(positive), max(positive))), True, start, end)
    return Axis(tuple(linear_ticks(max([0.0, *values]))), False, start, end)


def _frame(title: str, y_label: str, x_label: str) -> list[str]:
    """The element's opening, its accessible title and the axis labels."""
    plot_bottom = HEIGHT - BOTTOM
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{WIDTH}"'
        f' height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{_esc(title)}" font-family="sans-serif" font-size="11">',
        f"<title>{_esc(title)}</title>",
        f'<text x="{WIDTH // 2}" y="18" text-anchor="middle" font-size="13">{_esc(title)}</text>',
        f'<text transform="translate(14,{(TOP + plot_bottom) // 2}) rotate(-90)"'
        f' text-anchor="middle">{_esc(y_label)}</text>',
        f'<text x="{(LEFT + WIDTH - RIGHT) // 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{_esc(x_label)}</text>",
    ]


def _y_grid(axis: Axis) -> list[str]:
    lines = []
    for tick in axis.ticks:
        y = _num(axis.at(tick))
        lines.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" dominant-baseline="middle">'
            f"{tick_label(tick)}</text>"
        )
    lines.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#000"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}"'
        ' stroke="#000"/>'
    )
    return lines


def _shorten(text: str) -> str:
    return text if len(text) <= LEGEND_CHARACTERS else text[: LEGEND_CHARACTERS - 1] + "…"


def category_label(text: str, x: float, width: float) -> str:
    """A category's label under its group, slanted when it is wider than the group."""
    y = HEIGHT - BOTTOM + 14
    if len(text) * CHARACTER_PX <= width:
        return f'<text x="{_num(x)}" y="{y}" text-anchor="middle">{_esc(text)}</text>'
    return (
        f'<text transform="translate({_num(x)},{y}) rotate(-25)" text-anchor="end">'
        f"{_esc(text)}</text>"
    )


def _legend(names: Sequence[tuple[str, str]]) -> list[str]:
    """(name, colour) swatches, top right; as many as fit, then a line saying how many more
    (each mark's tooltip names its series)."""
    room = (HEIGHT - BOTTOM - TOP) // 16
    shown = names if len(names) <= room else names[: room - 1]
    lines = []
    if len(shown) < len(names):
        lines.append(
            f'<text x="{WIDTH - RIGHT + 12}" y="{TOP + 13 + 16 * len(shown)}">'
            f"… and {len(names) - len(shown)} more (hover a mark)</text>"
        )
    for index, (name, colour) in enumerate(shown):
        y = TOP + 4 + 16 * index
        lines.append(
            f'<rect x="{WIDTH - RIGHT + 12}" y="{y}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT + 27}" y="{y + 9}">{_esc(_shorten(name))}'
            f"<title>{_esc(name)}</title></text>"
        )
    return lines


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str,
    x_label: str = "",
    reference: Reference | None = None,
    log_y: bool = False,
) -> str:
    """Grouped bars: one group per category, one bar per series (a missing value leaves a
    gap), and optionally a black mark per category at `reference` (drawn over the bars)."""
    values = [v for s in series for v in s.values if v is not None]
    values += [v for v in (reference.values if reference else ()) if v is not None]
    axis = value_axis(values, log_y, HEIGHT - BOTTOM, TOP)
    lines = [*_frame(title, y_label, x_label), *_y_grid(axis)]
    group = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    bar = group * 0.8 / max(len(series), 1)
    floor = axis.at(axis.ticks[0])
    for index, category in enumerate(categories):
        left = LEFT + index * group + group * 0.1
        for number, one in enumerate(series):
            value = one.values[index] if index < len(one.values) else None
            if value is None or (log_y and value <= 0):
                continue
            top = axis.at(value)
            lines.append(
                f'<rect class="mark" x="{_num(left + number * bar)}" y="{_num(top)}"'
                f' width="{_num(max(bar - 1, 1))}" height="{_num(max(floor - top, 0.5))}"'
                f' fill="{COLOURS[number % len(COLOURS)]}"><title>{_esc(one.name)},'
                f" {_esc(category)}: {number_text(value)}</title></rect>"
            )
        mark = reference.values[index] if reference and index < len(reference.values) else None
        if reference is not None and mark is not None and (mark > 0 or not log_y):
            y = _num(axis.at(mark))
            lines.append(
                f'<line class="mark" x1="{_num(left - 2)}" x2="{_num(left + group * 0.8 + 2)}"'
                f' y1="{y}" y2="{y}" stroke="{CEILING_COLOUR}" stroke-width="2"'
                f' stroke-dasharray="5,3"><title>{_esc(reference.name)}, {_esc(category)}:'
                f" {number_text(mark)}</title></line>"
            )
        lines.append(category_label(category, LEFT + (index + 0.5) * group, group))
    names = [(s.name, COLOURS[i % len(COLOURS)]) for i, s in enumerate(series)]
    if reference is not None:
        names.append((f"- - {reference.name}", CEILING_COLOUR))
    return "\n".join([*lines, *_legend(names), "</svg>"])


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    y_label: str,
    x_label: str,
    x_labels: Sequence[str] = (),
    log_x: bool = False,
    log_y: bool = False,
) -> str:
    """Lines with a dot per point. With `x_labels`, x is the label's index (runs in order);
    else a numeric axis (log when `log_x`)."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    y_axis = value_axis(ys, log_y, HEIGHT - BOTTOM, TOP)
    if x_labels:
        span = max(len(x_labels) - 1, 1)
        x_axis = Axis((0.0, float(span)), False, LEFT + 20, WIDTH - RIGHT - 20)
    else:
        x_axis = value_axis(xs, log_x, LEFT + 10, WIDTH - RIGHT - 10)
    lines = [*_frame(title, y_label, x_label), *_y_grid(y_axis)]
    ticks = list(enumerate(x_labels)) if x_labels else list(enumerate(x_axis.ticks))
    room = (x_axis.end - x_axis.start) / max(len(ticks) - 1, 1)
    for position, label in ticks:
        at = x_axis.at(float(position)) if x_labels else x_axis.at(float(label))
        text = str(label) if x_labels else tick_label(float(label))
        lines.append(category_label(text, at, room))

    def at_x(value: float) -> str:
        return str(x_labels[int(value)]) if x_labels else number_text(value)

    for number, one in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        drawn = [(x, y) for x, y in one.points if not ((log_x and x <= 0) or (log_y and y <= 0))]
        coordinates = [(x_axis.at(x), y_axis.at(y)) for x, y in drawn]
        if len(coordinates) > 1:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y in coordinates)
            lines.append(f'<polyline points="{path}" fill="none" stroke="{colour}"/>')
        for (x, y), (value_x, value_y) in zip(coordinates, drawn, strict=True):
            lines.append(
                f'<circle class="mark" cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{colour}">'
                f"<title>{_esc(one.name)}: {_esc(at_x(value_x))}, {number_text(value_y)}"
                "</title></circle>"
            )
    names = [(s.name, COLOURS[i % len(COLOURS)]) for i, s in enumerate(series)]
    return "\n".join([*lines, *_legend(names), "</svg>"])
