"""The dashboard's SVG charts: data drawn, emptiness said, text escaped."""

from __future__ import annotations

from switchboard.analytics.charts import Series, bar_chart, hbar_chart, line_chart


def test_bars_draw_one_rect_per_non_zero_value() -> None:
    svg = bar_chart(["a", "b", "c"], [Series("in", [1, 0, 3]), Series("out", [2, 2, None])])
    assert 'data-points="4"' in svg
    assert svg.count('class="bar"') == 4
    stacked = bar_chart(["a"], [Series("in", [1]), Series("out", [2])], stacked=True)
    assert stacked.count('class="bar"') == 2


def test_empty_charts_say_so_and_draw_nothing() -> None:
    for svg in (
        bar_chart(["a"], [Series("in", [0])]),
        line_chart(["a", "b"], [Series("p50", [None, None])]),
        hbar_chart([]),
    ):
        assert 'data-points="0"' in svg
        assert "No data in this range" in svg
        assert "<rect" not in svg


def test_lines_break_at_gaps_and_text_is_escaped() -> None:
    svg = line_chart(["<b>", "2", "3", "4"], [Series("<script>", [1, 2, None, 4])])
    assert svg.count("<polyline") == 1  # the single point after the gap is only a dot
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&lt;b&gt;" in svg
    bars = hbar_chart([("x" * 40, 3, "<i>")])
    assert "<i>" not in bars
    assert "…" in bars
