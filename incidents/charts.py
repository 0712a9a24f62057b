"""Server-rendered SVG charts: the layout is worked out here, the template only prints coordinates.

No chart library and no script (the CSP allows neither inline script nor inline style): colours come
from CSS classes (`s-mtta`, `s-mttc`, `s-mttr`), and every value is also printed as text, so nothing
depends on colour alone.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from incidents.sla import short_duration

SERIES = (("mtta", "MTTA"), ("mttc", "MTTC"), ("mttr", "MTTR"))
NICE_STEPS_MINUTES = (1, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440, 2880, 7 * 1440, 14 * 1440, 30 * 1440)


class HasMeasures(Protocol):
    def value(self, key: str) -> timedelta | None: ...


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


def _ticks(longest: timedelta, length: float, count: int = 4) -> tuple[float, list[Tick]]:
    """A round axis maximum (in minutes) and its ticks, spread over `length` pixels."""
    minutes = max(longest.total_seconds() / 60, 1)
    step = next((s for s in NICE_STEPS_MINUTES if s * count >= minutes), 0)
    if not step:  # beyond the table: whole days
        step = math.ceil(minutes / count / 1440) * 1440
    top = step * count
    ticks = [Tick(length * i / count, short_duration(timedelta(minutes=step * i))) for i in range(count + 1)]
    return top, ticks


@dataclass(frozen=True)
class Bar:
    series: str
    x: float
    y: float
    width: float
    height: float
    label: str  # "MTTA 42 min", for the tooltip and the text at the bar's end
    text_x: float
    text_y: float


@dataclass(frozen=True)
class BarGroup:
    label: str
    sublabel: str
    url: str
    y: float
    label_y: float
    sublabel_y: float
    bars: list[Bar]


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    plot_left: int
    plot_width: int
    groups: list[BarGroup]
    ticks: list[Tick]
    series: Sequence[tuple[str, str]]
    empty: bool


BAR_HEIGHT = 15
GROUP_GAP = 16
LEFT = 350
RIGHT = 130
TOP = 24


def bar_chart(*, title: str, rows: Sequence[tuple[str, str, str, HasMeasures]], width: int = 760) -> BarChart:
    """Horizontal grouped bars, one group per row of (label, sublabel, link, measures)."""
    plot_width = width - LEFT - RIGHT
    values = [row[3].value(key) for row in rows for key, _ in SERIES]
    longest = max((v for v in values if v is not None), default=timedelta(0))
    top, ticks = _ticks(longest, plot_width)
    groups = []
    y = float(TOP)
    for label, sublabel, url, measures in rows:
        bars = []
        for i, (key, name) in enumerate(SERIES):
            value = measures.value(key)
            bar_width = 0.0 if value is None else plot_width * (value.total_seconds() / 60) / top
            text = f"{name} {short_duration(value) if value is not None else 'n/a'}"
            bars.append(
                Bar(
                    series=key,
                    x=LEFT,
                    y=y + i * BAR_HEIGHT,
                    width=max(bar_width, 0.0),
                    height=BAR_HEIGHT - 3,
                    label=text,
                    text_x=LEFT + bar_width + 5,
                    text_y=y + i * BAR_HEIGHT + BAR_HEIGHT - 5,
                )
            )
        short = label if len(label) <= 46 else label[:45] + "…"
        groups.append(BarGroup(short, sublabel, url, y, y + 1.3 * BAR_HEIGHT, y + 2.3 * BAR_HEIGHT, bars))
        y += len(SERIES) * BAR_HEIGHT + GROUP_GAP
    return BarChart(
        title=title,
        width=width,
        height=int(y) + 8,
        plot_left=LEFT,
        plot_width=plot_width,
        groups=groups,
        ticks=[Tick(LEFT + tick.position, tick.label) for tick in ticks],
        series=SERIES,
        empty=not rows,
    )


@dataclass(frozen=True)
class Line:
    series: str
    points: str  # the SVG polyline `points` attribute
    dots: list[tuple[float, float, str]]


@dataclass(frozen=True)
class LineChart:
    title: str
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    bottom: int
    lines: list[Line]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    series: Sequence[tuple[str, str]]
    empty: bool


def line_chart(
    *, title: str, points: Sequence[tuple[date, HasMeasures]], width: int = 1000, height: int = 240
) -> LineChart:
    """One line per measure over time; gaps (no value that day) simply connect the neighbours."""
    left, top, right, bottom_margin = 70, 16, 20, 34
    plot_width, plot_height = width - left - right, height - top - bottom_margin
    values = [p[1].value(key) for p in points for key, _ in SERIES]
    longest = max((v for v in values if v is not None), default=timedelta(0))
    top_minutes, ticks = _ticks(longest, plot_height)
    y_ticks = [Tick(top + plot_height - tick.position, tick.label) for tick in ticks]
    count = len(points)

    def x_of(i: int) -> float:
        return left + (plot_width * i / (count - 1) if count > 1 else plot_width / 2)

    lines = []
    for key, name in SERIES:
        dots = []
        for i, (day, measures) in enumerate(points):
            value = measures.value(key)
            if value is None:
                continue
            y = top + plot_height - plot_height * (value.total_seconds() / 60) / top_minutes
            dots.append((round(x_of(i), 1), round(y, 1), f"{day:%Y-%m-%d} {name} {short_duration(value)}"))
        lines.append(Line(key, " ".join(f"{x},{y}" for x, y, _ in dots), dots))
    every = max(1, count // 6)
    x_ticks = [Tick(round(x_of(i), 1), f"{day:%d %b}") for i, (day, _) in enumerate(points) if i % every == 0]
    return LineChart(
        title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        bottom=top + plot_height,
        lines=lines,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        series=SERIES,
        empty=not points,
    )
