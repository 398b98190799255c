"""Charts as inline SVG, drawn here on the server.

Pages must open fast, with no JavaScript and nothing from the network: an
SVG of a few dozen rectangles needs no library. Each bar carries a
``<title>`` (hover shows its exact counts), the y-axis has ticks at round
whole numbers, and colours follow the build status, with a legend in the
page's text beside the chart. Charts scale with their container (viewBox),
so they fit a phone's width.
"""

from __future__ import annotations

import datetime as dt
import math
from html import escape
from typing import Mapping, Sequence

from markupsafe import Markup

COLOURS = {"FAILURE": "#d62728", "SUCCESS": "#2ca02c", "TIMED_OUT": "#ff7f0e", "POST_FAILURE": "#9467bd",
           "RETRY_LIMIT": "#8c564b"}
OTHER = "#7f7f7f"
STATUS_ORDER = ("FAILURE", "TIMED_OUT", "POST_FAILURE", "RETRY_LIMIT", "SUCCESS")
RATE_COLOUR = "#1f77b4"


def colour(status: str) -> str:
    return COLOURS.get(status, OTHER)


def _ordered(statuses: Sequence[str]) -> list[str]:
    known = [s for s in STATUS_ORDER if s in statuses]
    return known + sorted(s for s in statuses if s not in STATUS_ORDER)


def ticks(peak: float, most: int = 5) -> list[int]:
    """Whole-number y ticks from 0 past ``peak``: steps of 1, 2 or 5 times a
    power of ten, at most ``most`` + 1 of them."""
    peak = max(int(math.ceil(peak)), 1)
    step = 1
    while True:
        for factor in (1, 2, 5):
            candidate = step * factor
            if math.ceil(peak / candidate) <= most:
                top = candidate * math.ceil(peak / candidate)
                return list(range(0, top + 1, candidate))
        step *= 10


def _label(moment: dt.datetime, unit: str) -> str:
    return f"{moment:%Y-%m-%d}" if unit == "day" else f"{moment:%Y-%m-%d %H}:00 UTC"


def bar_chart(series: Mapping[str, Sequence[int]], buckets: Sequence[dt.datetime], label: str, unit: str = "day",
              width: int = 600, height: int = 170, chart_id: str = "") -> Markup:
    """Stacked bars of distinct builds per bucket (a day or an hour), one colour per build status."""
    left, right, top, bottom = 40, 8, 8, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    statuses = _ordered([s for s in series if any(series[s])])
    n = len(buckets)
    totals = [sum(series[s][i] for s in statuses) for i in range(n)]
    scale = ticks(max(totals, default=0))
    axis_max = scale[-1]
    slot = plot_w / max(n, 1)
    bar_w = max(slot * 0.8, 1.0)
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    parts = [
        f'<svg class="chart {unit}"{ident} xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" data-axis-max="{axis_max}" preserveAspectRatio="xMinYMin meet">',
        f'<title>{escape(label)}</title>',
        f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fcfcfc" stroke="#ccc"/>',
    ]
    for value in scale:
        y = top + plot_h - plot_h * value / axis_max
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        parts.append(f'<text class="tick" x="{left - 4}" y="{y + 3.5:.1f}" text-anchor="end" font-size="12">'
                     f'{value}</text>')
    every = max(1, math.ceil(n / 10))  # at most about ten bucket labels
    for i, moment in enumerate(buckets):
        if (n - 1 - i) % every == 0:
            text = f"{moment:%m-%d}" if unit == "day" else f"{moment:%H}h"
            parts.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 7}" text-anchor="middle" '
                         f'font-size="12">{text}</text>')
    for i, moment in enumerate(buckets):
        if not totals[i]:
            continue
        y = top + plot_h
        breakdown = ", ".join(f"{s} {series[s][i]}" for s in statuses if series[s][i])
        when = _label(moment, unit)
        for status in statuses:
            value = series[status][i]
            if not value:
                continue
            h = plot_h * value / axis_max
            y -= h
            parts.append(
                f'<rect class="bar" data-bucket="{moment:%Y-%m-%dT%H:%M}" data-status="{escape(status)}" '
                f'x="{left + i * slot + (slot - bar_w) / 2:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                f'fill="{colour(status)}"><title>{when}: {totals[i]} build{"s" if totals[i] != 1 else ""} '
                f'({escape(breakdown)})</title></rect>')
    if not statuses:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
                     f'fill="#777">no hits</text>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch" style="background:{colour(s)}"></span>{escape(s)} '
                     f'({sum(series[s])})</li>' for s in statuses)
    return Markup(f'<figure class="chart">{"".join(parts)}'
                  f'<figcaption>{escape(label)}{f"<ul class=legend>{legend}</ul>" if legend else ""}'
                  f'</figcaption></figure>')


def sparkline(values: Sequence[int], buckets: Sequence[dt.datetime], label: str, width: int = 120,
              height: int = 28) -> Markup:
    """Builds hit per day, tiny, for the overview's rows; its title gives the figures."""
    peak = max(values, default=0)
    total = sum(values)
    slot = width / max(len(values), 1)
    parts = [f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
             f'<title>{escape(label)}: {total} builds, at most {peak} a day</title>',
             f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="#ccc"/>']
    for i, value in enumerate(values):
        if value:
            h = max((height - 2) * value / peak, 1.5)
            day = f"{buckets[i]:%Y-%m-%d}" if i < len(buckets) else ""
            parts.append(f'<rect x="{i * slot + 0.5:.1f}" y="{height - 1 - h:.1f}" width="{max(slot - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="#555"><title>{day}: {value}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rate_chart(days: Sequence[dt.datetime], failures: Sequence[int], uncategorized: Sequence[int],
               label: str, width: int = 600, height: int = 170) -> Markup:
    """The classification rate per day, 0-100%; a day with no failure has no bar."""
    left, right, top, bottom = 40, 8, 8, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(days)
    slot = plot_w / max(n, 1)
    bar_w = max(slot * 0.8, 1.0)
    parts = [f'<svg class="chart rate" id="rate-chart" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" data-axis-max="100">',
             f'<title>{escape(label)}</title>',
             f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fcfcfc" '
             f'stroke="#ccc"/>']
    for value in (0, 25, 50, 75, 100):
        y = top + plot_h - plot_h * value / 100
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e6e6e6"/>')
        parts.append(f'<text class="tick" x="{left - 4}" y="{y + 3.5:.1f}" text-anchor="end" font-size="12">'
                     f'{value}%</text>')
    every = max(1, math.ceil(n / 10))
    for i, day in enumerate(days):
        if (n - 1 - i) % every == 0:
            parts.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 7}" text-anchor="middle" '
                         f'font-size="12">{day:%m-%d}</text>')
        if not failures[i]:
            continue
        classified = failures[i] - uncategorized[i]
        rate = 100.0 * classified / failures[i]
        h = plot_h * rate / 100
        parts.append(f'<rect class="bar" data-bucket="{day:%Y-%m-%dT%H:%M}" x="{left + i * slot + (slot - bar_w) / 2:.2f}" '
                     f'y="{top + plot_h - h:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{RATE_COLOUR}">'
                     f'<title>{day:%Y-%m-%d}: {classified} of {failures[i]} failed builds classified '
                     f'({rate:.1f}%)</title></rect>')
    parts.append("</svg>")
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption>{escape(label)}</figcaption></figure>')


__all__ = ["bar_chart", "colour", "rate_chart", "sparkline", "ticks"]
