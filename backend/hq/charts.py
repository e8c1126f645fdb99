"""The HQ console's charts, drawn here as SVG: the page needs no script, and no chart library from the internet."""

from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 24, 36  # the margins: the axis labels on the left, the legend on the right
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#6b7280")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: list[int]  # one a day


def _scale(top: int) -> int:
    """A round number at or above `top` for the axis to end at."""
    if top <= 0:
        return 1
    step = 10 ** (len(str(top)) - 1)
    return -(-top // step) * step


def _frame(kind: str, title: str, days: list[date], top: int, label) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" class="axis"/>',
    ]
    for tick in range(5):
        value = top * tick // 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label(value))}</text>')
    every = max(1, len(days) // 8)
    for index, day in enumerate(days):
        if index % every == 0:
            x = LEFT + plot_w * (index + 0.5) / max(len(days), 1)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 12}" text-anchor="middle">{day.strftime("%m-%d")}</text>')
    return parts


def _legend(series: list[Series]) -> list[str]:
    parts = []
    for index, item in enumerate(series):
        y = TOP + 16 * index
        colour = COLOURS[index % len(COLOURS)]
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 28}" y="{y + 9}">{escape(item.name)}</text>')
    return parts


def lines(kind: str, title: str, days: list[date], series: list[Series], label=str) -> str:
    """One line a series over the days (sales per store and day)."""
    top = _scale(max((value for item in series for value in item.values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(kind, title, days, top, label)
    for index, item in enumerate(series):
        points = " ".join(
            f"{LEFT + plot_w * (day + 0.5) / max(len(days), 1):.1f},{TOP + plot_h - plot_h * value / top:.1f}"
            for day, value in enumerate(item.values)
        )
        colour = COLOURS[index % len(COLOURS)]
        parts.append(
            f'<polyline data-series="{escape(item.name)}" data-total="{sum(item.values)}" points="{points}" '
            f'fill="none" stroke="{colour}" stroke-width="2"/>'
        )
    return "".join(parts + _legend(series) + ["</svg>"])


def stacked_bars(kind: str, title: str, days: list[date], series: list[Series], label=str) -> str:
    """A bar a day, stacked by series (new members by channel)."""
    totals = [sum(item.values[day] for item in series) for day in range(len(days))]
    top = _scale(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(kind, title, days, top, label)
    slot = plot_w / max(len(days), 1)
    for day in range(len(days)):
        base = TOP + plot_h
        for index, item in enumerate(series):
            value = item.values[day]
            if value <= 0:
                continue
            height = plot_h * value / top
            base -= height
            x, colour = LEFT + slot * day + slot * 0.15, COLOURS[index % len(COLOURS)]
            parts.append(
                f'<rect data-series="{escape(item.name)}" data-value="{value}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{colour}"/>'
            )
    return "".join(parts + _legend(series) + ["</svg>"])
