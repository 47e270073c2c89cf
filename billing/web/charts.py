"""The stacked daily-cost chart, laid out in Python and drawn as inline SVG by the template.

No JavaScript: every bar carries a ``<title>`` (the tooltip), and the table under the chart
holds the same figures for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.translation import gettext as _

from billing.queries import DailyCosts

PALETTE = ["#206bc4", "#f76707", "#2fb344", "#ae3ec9", "#d63939", "#17a2b8", "#f59f00",
           "#d6336c", "#8c6d46", "#1d273b"]
OTHER_COLOR = "#9aa0ac"
MAX_SERIES = len(PALETTE)

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 26


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_bottom: int = HEIGHT - BOTTOM
    empty: bool = True


def _nice_ceiling(value: Decimal) -> Decimal:
    """A round axis maximum ≥ value: 1, 2, 2.5, 5 × a power of ten."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent)


def stacked_daily(daily: DailyCosts) -> Chart:
    """One bar per day, one coloured block per cluster (the biggest spenders first; the rest
    are grouped as "other")."""
    chart = Chart()
    totals: dict[int, Decimal] = {}
    for (_day, cid), amount in daily.amounts.items():
        totals[cid] = totals.get(cid, Decimal(0)) + amount
    ranked = sorted(daily.clusters, key=lambda c: (-totals.get(c[0], Decimal(0)), c[1]))
    shown = ranked if len(ranked) <= MAX_SERIES else ranked[:MAX_SERIES - 1]
    colors = {cid: PALETTE[i] for i, (cid, _name) in enumerate(shown)}
    names = dict(daily.clusters)
    chart.legend = [(colors[cid], name) for cid, name in shown]
    if len(shown) < len(ranked):
        chart.legend.append((OTHER_COLOR, _("other clusters")))
    top = _nice_ceiling(daily.max_day_total)
    plot_h = chart.plot_bottom - TOP
    plot_w = chart.plot_right - chart.plot_left
    n = max(len(daily.days), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.72, 1.0)
    for i in range(5):
        value = top * i / 4
        y = chart.plot_bottom - plot_h * i / 4
        chart.y_ticks.append((round(y, 1), f"{value:.2f}"))
    for index, day in enumerate(daily.days):
        x = chart.plot_left + slot * index + (slot - bar_w) / 2
        if index % 5 == 0 or index == n - 1:
            chart.x_labels.append((round(x + bar_w / 2, 1), f"{day:%d}"))
        y = float(chart.plot_bottom)
        blocks: list[tuple[str, str, Decimal]] = []
        other = Decimal(0)
        for cid, _name in ranked:
            amount = daily.amounts.get((index, cid), Decimal(0))
            if not amount:
                continue
            if cid in colors:
                blocks.append((colors[cid], names[cid], amount))
            else:
                other += amount
        if other:
            blocks.append((OTHER_COLOR, _("other clusters"), other))
        for color, name, amount in blocks:
            h = float(amount / top) * plot_h
            y -= h
            chart.bars.append(Bar(round(x, 2), round(y, 2), round(bar_w, 2), round(h, 2), color,
                                  f"{day:%Y-%m-%d} · {name}: CHF {amount}"))
            chart.empty = False
    return chart
