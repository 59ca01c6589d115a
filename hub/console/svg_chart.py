"""Line charts drawn on the server as SVG: hubs run air-gapped, so the console ships no
chart library and needs no script to show a chart (a printed page shows it too).

`line_chart` takes series of (time, value) points and returns one self-contained `<svg>`
element: axes with labelled gridlines, one polyline per series in a fixed palette, a dot
per point whose `<title>` tells its time and value (a browser shows it on hover), and a
legend. Every label is escaped; the caller's text never becomes markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from markupsafe import Markup

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
"""Distinct on white and for the common colour-vision deficiencies (first four)."""

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 28, 44


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[datetime, float]]


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _fmt_time(moment: datetime, span_seconds: float) -> str:
    return moment.strftime("%Y-%m-%d" if span_seconds >= 3 * 86400 else "%m-%d %H:%M")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    chart_id: str,
    width: int = 640,
    height: int = 240,
    y_max: float = 1.0,
    y_ticks: int = 4,
    y_format: Callable[[float], str] = percent,
) -> Markup:
    """One SVG chart of `series` over their common time range; values from 0 to y_max."""
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    height += 14 * max(0, (len(series) - 1) // 4)  # a legend row per four series
    times = [t for s in series for t, _ in s.points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
        f'role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{MARGIN_LEFT}" y="16" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    for tick in range(y_ticks + 1):
        value = y_max * tick / y_ticks
        y = MARGIN_TOP + plot_h - plot_h * tick / y_ticks
        parts.append(f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{MARGIN_LEFT + plot_w}" '
                     f'y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(y_format(value))}</text>")
    parts.append(f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" '
                 f'x2="{MARGIN_LEFT + plot_w}" y2="{MARGIN_TOP + plot_h}" stroke="#333"/>')
    if not times:
        parts.append(f'<text x="{MARGIN_LEFT + plot_w / 2}" y="{MARGIN_TOP + plot_h / 2}" '
                     'text-anchor="middle" fill="#666">no data yet</text></svg>')
        return Markup("".join(parts))  # noqa: S704 - built from escaped parts only

    start, end = min(times), max(times)
    span = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        if span == 0:
            return MARGIN_LEFT + plot_w / 2
        return MARGIN_LEFT + plot_w * (moment - start).total_seconds() / span

    def y_of(value: float) -> float:
        clipped = min(max(value, 0.0), y_max)
        return MARGIN_TOP + plot_h - plot_h * clipped / y_max

    ticks = [start] if span == 0 else [start + (end - start) * i / 4 for i in range(5)]
    for moment in ticks:
        x = x_of(moment)
        parts.append(f'<text x="{x:.1f}" y="{MARGIN_TOP + plot_h + 16}" text-anchor="middle">'
                     f"{escape(_fmt_time(moment, span))}</text>")
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = sorted(one.points)
        coords = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in points)
        label = escape(one.label)
        parts.append(f'<g class="series" data-series="{label}">')
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{coords}"/>')
        for t, v in points:
            parts.append(
                f'<circle cx="{x_of(t):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="{colour}">'
                f"<title>{label} {escape(t.isoformat(timespec='minutes'))}: "
                f"{escape(y_format(v))}</title></circle>")
        parts.append("</g>")
        lx = MARGIN_LEFT + (index % 4) * (plot_w / 4)
        ly = height - 10 - (index // 4) * 14
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 8}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14:.1f}" y="{ly + 1}">{label}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from escaped parts only
