"""The report's inline SVG charts: every mark inside the drawing, no network reference, empty data said in words."""
from __future__ import annotations

import re
from datetime import date, timedelta

from recsys_tasks.report import svg


def _points(markup: str) -> list[tuple[float, float]]:
    coords = re.findall(r'points="([^"]+)"', markup)
    return [tuple(map(float, p.split(","))) for c in coords for p in c.split()]


def test_line_chart_keeps_every_point_inside_the_plot():
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(10)]
    series = {"ndcg": [(d, 0.3 + 0.017 * i) for i, d in enumerate(days)],  # tops out at 0.453, between two ticks
              "recall": [(d, 0.83 - 0.01 * i) for i, d in enumerate(days)]}
    markup = svg.line_chart(series, "Quality")
    points = _points(markup)
    assert len(points) == 20
    top, bottom = svg.MARGIN["top"], svg.HEIGHT - svg.MARGIN["bottom"]
    left, right = svg.MARGIN["left"], svg.WIDTH - svg.MARGIN["right"]
    assert all(left - 0.01 <= x <= right + 0.01 and top - 0.01 <= y <= bottom + 0.01 for x, y in points), points
    assert "ndcg" in markup and "recall" in markup and "03-01" in markup


def test_higher_values_are_drawn_higher():
    (low, high) = _points(svg.line_chart({"s": [(0, 1.0), (1, 9.0)]}, "t"))
    assert high[1] < low[1] and high[0] > low[0]


def test_nice_ticks_cover_the_range():
    for low, high in [(0, 0.47), (0.55, 0.73), (0, 12.3), (3, 3)]:
        ticks = svg._nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 7


def test_empty_data_is_said_in_words():
    assert 'class="empty"' in svg.line_chart({"a": []}, "Feedback")
    assert 'class="empty"' in svg.histogram({}, "Scores")
    assert 'class="empty"' in svg.bar_chart([], "Quarantine")


def test_histogram_bars_share_sums_to_one_per_group():
    markup = svg.histogram({"model": [0.1, 0.2, 0.2, 0.9], "popularity": [0.5] * 3}, "Scores", bins=4)
    shares = [float(s) for s in re.findall(r":\s([0-9.]+)%</title>", markup)]
    assert abs(sum(shares) - 200.0) < 0.5  # two groups, each 100%


def test_charts_reference_nothing_outside_the_page():
    markup = "".join([svg.line_chart({"a": [(1, 2), (2, 3)]}, "x"), svg.bar_chart([("rule", 3)], "y"),
                      svg.histogram({"g": [1, 2]}, "z")])
    assert set(re.findall(r'https?://[^"\s]+', markup)) == {"http://www.w3.org/2000/svg"}
    assert "<script" not in markup
