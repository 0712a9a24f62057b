"""SVG chart layout: bars proportional to their values on a round axis, gaps shown as n/a."""

from dataclasses import dataclass
from datetime import date, timedelta

from incidents.charts import LEFT, bar_chart, line_chart


@dataclass
class Measures:
    mtta: timedelta | None
    mttc: timedelta | None = None
    mttr: timedelta | None = None

    def value(self, key: str) -> timedelta | None:
        return getattr(self, key)


def test_bars_are_proportional_on_a_round_axis() -> None:
    chart = bar_chart(
        title="t",
        rows=[("payments-prod", "2 cases", "/x", Measures(timedelta(minutes=30), timedelta(hours=2))),
              ("analytics-dev", "1 case", "", Measures(timedelta(minutes=15)))],
    )  # fmt: skip
    first, second = chart.groups
    mtta, mttc, mttr = first.bars
    # the longest value (2 h) fits under a round maximum: 4 ticks of 30 min
    assert [tick.label for tick in chart.ticks] == ["0 min", "30 min", "1 h", "1 h 30 min", "2 h"]
    assert mttc.width == chart.plot_width
    assert mtta.width == chart.plot_width / 4
    assert second.bars[0].width == chart.plot_width / 8
    assert mttr.width == 0 and mttr.label == "MTTR n/a"
    assert mtta.x == LEFT and mtta.label == "MTTA 30 min"
    assert chart.ticks[0].position == LEFT and chart.ticks[-1].position == LEFT + chart.plot_width


def test_long_values_get_whole_day_ticks_and_long_labels_are_shortened() -> None:
    label = "PrivilegeEscalation:Kubernetes/PrivilegedContainerInTheKubeSystemNamespace"
    chart = bar_chart(title="t", rows=[(label, "", "", Measures(timedelta(days=100)))])
    assert [tick.label for tick in chart.ticks] == ["0 min", "30 d", "60 d", "90 d", "120 d"]
    beyond = bar_chart(title="t", rows=[(label, "", "", Measures(timedelta(days=200, hours=5)))])
    assert beyond.ticks[-1].label == "204 d"  # whole days past the table
    assert chart.groups[0].label.endswith("…") and len(chart.groups[0].label) == 46


def test_line_chart_skips_missing_values_and_scales_to_the_plot() -> None:
    points = [(date(2026, 11, d), Measures(timedelta(hours=h) if h else None)) for d, h in ((1, 1), (2, 0), (3, 2))]
    chart = line_chart(title="t", points=points)
    mtta = next(line for line in chart.lines if line.series == "mtta")
    assert len(mtta.dots) == 2  # the day without a value has no dot
    (x1, y1, _), (x3, y3, label) = mtta.dots
    assert x1 == chart.left and x3 == chart.left + chart.plot_width
    assert y3 < y1 and label == "2026-11-03 MTTA 2 h"
    assert not bar_chart(title="t", rows=[]).groups and bar_chart(title="t", rows=[]).empty
