"""Small inline-SVG charts for the HTML report: columns over categories and horizontal bars.

Each chart is an `<svg class="chart" data-chart=NAME data-bars=N>`; each bar is a
`<rect class="bar" data-series=... data-value=...>` with a `<title>` tooltip, so a
browser (or a test reading the DOM) can tell what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    color: str


def nice_step(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def axis(top_value: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, tick step): about `ticks` round steps covering `top_value`."""
    step = nice_step(top_value / ticks) if top_value > 0 else 1
    return max(math.ceil(top_value / step), 1) * step, step


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _attr(value: float) -> str:
    return f"{value:.6g}"


def column_chart(
    name: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    line: Series | None = None,
    y_format: Format = _number,
    title: str = "",
    width: int = 720,
    height: int = 260,
) -> str:
    """Grouped columns per category, with an optional line (e.g. the backlog) on top."""
    left, right, top, bottom = 48, 36, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values] + list(line.values if line else [])
    top_value, step = axis(max(values, default=0))
    n = max(len(categories), 1)
    slot = plot_w / n
    bar_w = max(min(slot * 0.8 / max(len(series), 1), 28), 1)

    def y(value: float) -> float:
        return top + plot_h - plot_h * value / top_value

    parts = _grid(left, width - right, top_value, step, y, y_format)
    bars = 0
    for i, category in enumerate(categories):
        group_w = bar_w * len(series)
        x0 = left + slot * i + (slot - group_w) / 2
        for j, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            bars += 1
            x = x0 + j * bar_w
            parts.append(
                f'<rect class="bar" data-series="{escape(s.name)}" data-value="{_attr(value)}" '
                f'x="{x:.1f}" y="{y(value):.1f}" width="{bar_w:.1f}" '
                f'height="{top + plot_h - y(value):.1f}" fill="{s.color}">'
                f"<title>{escape(category)}: {y_format(value)} {escape(s.name)}</title></rect>"
            )
    if line is not None:
        parts += _line(line, categories, lambda i: left + slot * i + slot / 2, y, y_format)
    parts += _x_labels(categories, left, slot, top + plot_h, width)
    return _svg(name, width, height, bars, title, parts)


def bar_rows(
    name: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    x_format: Format = _number,
    notes: Sequence[str] | None = None,
    max_value: float | None = None,
    title: str = "",
    width: int = 720,
) -> str:
    """One horizontal bar per label, the series stacked left to right, a note after each."""
    left = min(max((len(label) for label in labels), default=4) * 7 + 16, 220)
    right, row_h, top = 150, 24, 8
    height = top + row_h * max(len(labels), 1) + 8
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    scale_max = max_value or axis(max(totals, default=0))[0]
    plot_w = width - left - right
    parts = []
    bars = 0
    for i, label in enumerate(labels):
        y = top + i * row_h
        parts.append(
            f'<text class="label" x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(_short(label, 30))}</text>'
        )
        x = float(left)
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            bars += 1
            w = max(plot_w * value / scale_max, 1)
            parts.append(
                f'<rect class="bar" data-series="{escape(s.name)}" data-value="{_attr(value)}" '
                f'x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{s.color}">'
                f"<title>{escape(label)}: {x_format(value)} {escape(s.name)}</title></rect>"
            )
            x += w
        parts.append(
            f'<text class="value" x="{x + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">'
            f"{escape(notes[i] if notes else x_format(totals[i]))}</text>"
        )
    return _svg(name, width, height, bars, title, parts)


def _grid(
    x1: float,
    x2: float,
    top_value: float,
    step: float,
    y: Callable[[float], float],
    fmt: Format,
) -> list[str]:
    parts = []
    for k in range(round(top_value / step) + 1):
        value = step * k
        yy = y(value)
        parts.append(f'<line class="grid" x1="{x1}" x2="{x2}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{x1 - 6}" y="{yy + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    return parts


def _line(
    line: Series,
    categories: Sequence[str],
    x: Callable[[int], float],
    y: Callable[[float], float],
    fmt: Format,
) -> list[str]:
    points = [(x(i), y(v)) for i, v in enumerate(line.values)]
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    parts = [f'<polyline class="line" points="{path}" fill="none" stroke="{line.color}"/>']
    for i, (px, py) in enumerate(points):
        parts.append(
            f'<circle class="point" data-series="{escape(line.name)}" '
            f'data-value="{_attr(line.values[i])}" cx="{px:.1f}" cy="{py:.1f}" r="3" '
            f'fill="{line.color}"><title>{escape(categories[i])}: '
            f"{fmt(line.values[i])} {escape(line.name)}</title></circle>"
        )
    return parts


def _x_labels(
    categories: Sequence[str], left: float, slot: float, base: float, width: int
) -> list[str]:
    # Show every k-th label so that they never overlap (about 64 px each).
    every = max(1, math.ceil(len(categories) * 64 / max(width - left, 1)))
    parts = [f'<line class="axis" x1="{left}" x2="{width}" y1="{base}" y2="{base}"/>']
    for i, category in enumerate(categories):
        if i % every:
            continue
        parts.append(
            f'<text class="tick" x="{left + slot * i + slot / 2:.1f}" y="{base + 16}" '
            f'text-anchor="middle">{escape(short_labels(category))}</text>'
        )
    return parts


def _svg(name: str, width: int, height: int, bars: int, title: str, parts: list[str]) -> str:
    label = escape(title or name)
    return (
        f'<svg class="chart" data-chart="{escape(name)}" data-bars="{bars}" role="img" '
        f'aria-label="{label}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        + "".join(parts)
        + "</svg>"
    )


def short_labels(category: str) -> str:
    """Day buckets (2026-11-02) show as 11-02 under the axis; the tooltip keeps the year."""
    return category[5:] if len(category) == 10 and category[4] == "-" else category


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
