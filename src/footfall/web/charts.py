"""Charts as inline SVG, drawn on the server: no chart library, no script needed to read them.

Every point carries its label and value twice: in a `<title>` (the browser shows it on hover
and screen readers read it) and in `data-*` attributes (dashboard.js shows a tooltip on focus
and hover from them; tests read them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

# Inner margins of the time series, in SVG units: room for the y labels and the x labels.
_LEFT, _RIGHT, _TOP, _BOTTOM = 52.0, 16.0, 12.0, 30.0
# At most this many x labels, so they never overlap at the chart's width.
_MAX_X_LABELS = 8


def nice_ticks(top: float, count: int = 4, *, integers: bool = False) -> list[float]:
    """Tick values from 0 to a round number at or above `top`, about `count` steps; whole
    numbers only with `integers` (counts of visitors have no 0.5)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integers else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw)
    if integers:
        step = max(step, 1)
    steps = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(steps + 1)]


def compact(value: float) -> str:
    """12, 1.2k, 3.4M: short enough for an axis label."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".removesuffix(".0")
            return text + suffix
    return f"{value:g}"


def _fmt(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def time_series(
    points: Sequence[tuple[str, float]],
    *,
    series: str = "Visitors",
    width: int = 800,
    height: int = 240,
    value_text: Callable[[float], str] = lambda v: f"{v:,.0f}",
    label_text: Callable[[str], str] = lambda s: s,
    integers: bool = True,
    max_labels: int = _MAX_X_LABELS,
    css_class: str = "chart",
) -> str:
    """A line chart of (label, value) points in order, with y gridlines and axis labels.

    The SVG scales to its container's width keeping its proportions (viewBox), so its text is
    never stretched: draw a narrower one for small screens rather than squeezing a wide one."""
    n = len(points)
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    ticks = nice_ticks(max((v for _, v in points), default=0.0), integers=integers)
    top = ticks[-1]

    def x_at(i: int) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y_at(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="{escape(css_class)}" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(series)} over time" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(series)} over time</title>",
    ]
    # Gridlines and y labels.
    parts.append('<g class="grid">')
    for t in ticks:
        gy = _fmt(y_at(t))
        parts.append(f'<line x1="{_fmt(_LEFT)}" x2="{_fmt(width - _RIGHT)}" y1="{gy}" y2="{gy}"/>')
        parts.append(f'<text class="ylabel" x="{_fmt(_LEFT - 8)}" y="{gy}" dy="0.32em" text-anchor="end">'
                     f"{escape(compact(t))}</text>")
    parts.append("</g>")
    # X labels: evenly spaced, first and last always shown.
    if n:
        every = max(1, math.ceil(n / max_labels))
        shown = sorted({*range(0, n, every), n - 1}) if n > 1 else [0]
        if n > 1 and len(shown) > 1 and shown[-1] - shown[-2] < every:
            shown.pop(-2)  # the last label would crowd its neighbour
        parts.append('<g class="xlabels">')
        for i in shown:
            anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
            parts.append(f'<text x="{_fmt(x_at(i))}" y="{_fmt(height - 8)}" text-anchor="{anchor}">'
                         f"{escape(label_text(points[i][0]))}</text>")
        parts.append("</g>")
    # The line and the area under it.
    if n:
        coords = [(x_at(i), y_at(v)) for i, (_, v) in enumerate(points)]
        line = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in coords)
        base = _fmt(_TOP + plot_h)
        parts.append(f'<path class="area" d="M{_fmt(coords[0][0])},{base} L{line.replace(" ", " L")} '
                     f'L{_fmt(coords[-1][0])},{base} Z"/>')
        parts.append(f'<polyline class="line" points="{line}"/>')
        # One point per value; the wide invisible band makes hovering easy.
        band = plot_w / max(n - 1, 1)
        parts.append('<g class="points">')
        for (label, value), (x, y) in zip(points, coords, strict=True):
            text = f"{label_text(label)}: {value_text(value)} {series.lower()}"
            parts.append(
                f'<g class="pt" data-label="{escape(label_text(label))}" data-value="{escape(value_text(value))}">'
                f'<rect class="hit" x="{_fmt(x - band / 2)}" y="{_fmt(_TOP)}" width="{_fmt(band)}" '
                f'height="{_fmt(plot_h)}"/>'
                f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="3"/><title>{escape(text)}</title></g>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def columns(values: Sequence[float], *, labels: Sequence[str] | None = None, width: int = 300, height: int = 48,
            series: str = "pageviews") -> str:
    """Small columns (e.g. pageviews per minute), each with a hover title; no axes."""
    n = max(len(values), 1)
    top = max(values, default=0.0) or 1.0
    slot = width / n
    parts = [
        f'<svg class="columns" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(series)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, v in enumerate(values):
        h = (height - 2) * v / top
        label = labels[i] if labels else str(i)
        parts.append(
            f'<rect x="{_fmt(i * slot + 1)}" y="{_fmt(height - h)}" width="{_fmt(max(slot - 2, 1))}" '
            f'height="{_fmt(h)}" data-value="{v:g}"><title>{escape(label)}: {v:g} {escape(series)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def share(value: float, top: float) -> float:
    """A row's bar length in percent of the list's largest value."""
    return 0.0 if top <= 0 else round(100.0 * value / top, 1)
