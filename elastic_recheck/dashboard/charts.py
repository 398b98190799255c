"""Trend charts as inline SVG, drawn here on the server.

Hundreds of charts on one page must open fast and with no network: an SVG
of a few hundred rectangles per bug needs no JavaScript library at all, and
each bar carries a ``<title>`` so hovering shows its hour and count.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Mapping, Sequence

from markupsafe import Markup

COLOURS = {"FAILURE": "#d62728", "SUCCESS": "#2ca02c", "TIMED_OUT": "#ff7f0e", "POST_FAILURE": "#9467bd"}
OTHER = "#7f7f7f"
STATUS_ORDER = ("FAILURE", "TIMED_OUT", "POST_FAILURE", "SUCCESS")


def colour(status: str) -> str:
    return COLOURS.get(status, OTHER)


def _ordered(statuses: Sequence[str]) -> list[str]:
    known = [s for s in STATUS_ORDER if s in statuses]
    return known + sorted(s for s in statuses if s not in STATUS_ORDER)


def hourly_chart(
    series: Mapping[str, Sequence[int]],
    hours: Sequence[dt.datetime],
    label: str,
    width: int = 720,
    height: int = 140,
) -> Markup:
    """Stacked bars of distinct builds per hour, one colour per build status."""
    left, right, top, bottom = 34, 8, 8, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    statuses = _ordered(list(series))
    n = len(hours)
    totals = [sum(series[s][i] for s in statuses) for i in range(n)] if statuses else [0] * n
    peak = max(totals, default=0) or 1
    bar_w = plot_w / max(n, 1)
    parts = [
        f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">0</text>',
    ]
    for i, hour in enumerate(hours):  # day ticks at midnight UTC
        if hour.hour == 0:
            x = left + i * bar_w
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#e4e4e4"/>')
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 12}" text-anchor="middle" font-size="9">'
                         f'{hour:%m-%d}</text>')
    for i, hour in enumerate(hours):
        if not totals[i]:
            continue
        y = top + plot_h
        for status in statuses:
            value = series[status][i]
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect class="bar" x="{left + i * bar_w:.2f}" y="{y:.2f}" width="{max(bar_w - 0.5, 1):.2f}" '
                f'height="{h:.2f}" fill="{colour(status)}"><title>{hour:%Y-%m-%d %H}:00 UTC — '
                f'{escape(status)}: {value}</title></rect>'
            )
    x = left
    for status in statuses:  # the legend
        total = sum(series[status])
        parts.append(f'<rect x="{x}" y="{height - 12}" width="9" height="9" fill="{colour(status)}"/>')
        text = f"{status} ({total})"
        parts.append(f'<text x="{x + 12}" y="{height - 4}" font-size="10">{escape(text)}</text>')
        x += 24 + 6 * len(text)
    if not statuses:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="11" '
                     f'fill="#888">no hits in the window</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = ["colour", "hourly_chart"]
