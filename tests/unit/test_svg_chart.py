"""The server-drawn SVG line charts of the Training tab (workbench/ui/svg_chart.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from workbench.ui import svg_chart
from workbench.ui.svg_chart import Series, line_chart, nice_ticks, tick_label


def test_nice_ticks_are_round_and_cover_the_values():
    assert nice_ticks(0.93, 2.71) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # steps of 1, 2 or 5
    assert nice_ticks(1, 50) == [0, 20, 40, 60]
    assert nice_ticks(0, 2e-4) == pytest.approx([0, 5e-5, 1e-4, 1.5e-4, 2e-4])
    assert nice_ticks(3.0, 3.0) == pytest.approx([2.6, 2.8, 3.0, 3.2, 3.4])  # one value
    assert nice_ticks(0, 0) == pytest.approx([0, 0.5, 1.0])  # a learning rate of 0 at first
    assert nice_ticks(-2, -2) == pytest.approx([-2.2, -2.1, -2.0, -1.9, -1.8])
    assert nice_ticks(5, 1) == nice_ticks(1, 5)
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0, float("nan"))


def test_tick_labels_show_as_many_decimals_as_the_step_needs():
    assert tick_label(2.4, 0.4, False) == "2.4"
    assert tick_label(40, 20, False) == "40"
    assert tick_label(0.05, 0.05, False) == "0.05"
    assert tick_label(1.5e-4, 5e-5, True) == "1.5e-04"
    assert tick_label(0, 5e-5, True) == "0"


def _svg(chart: str) -> ET.Element:
    return ET.fromstring(chart)  # well-formed: the page and the tests can parse it


def test_a_chart_draws_each_series_inside_its_frame():
    loss = Series("train <loss>", "#2563eb", [(1, 3.0), (2, 2.5), (3, 2.0)])
    evals = Series("eval", "#f97316", [(2, 2.8)])
    root = _svg(line_chart([loss, evals], title="Loss", x_title="Step", y_title="Loss",
                           empty="none"))
    svg = root.find("svg")
    _, _, width, height = map(float, svg.get("viewBox").split())
    lines = svg.findall(".//polyline")
    assert len(lines) == 2
    xy = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert all(0 <= x <= width and 0 <= y <= height for x, y in xy)
    # a falling loss is drawn falling: SVG y grows downwards
    assert xy[0][0] < xy[1][0] < xy[2][0] and xy[0][1] < xy[1][1] < xy[2][1]
    tips = [c.find("title").text for c in svg.iter("circle")]
    assert tips[0] == "train <loss> · Step 1: 3" and len(tips) == 4
    # the legend names both series, in HTML beside the title (the name is escaped)
    legend = root.find(".//span[@class='wb-chart-legend']")
    assert [k.text or "".join(k.itertext()) for k in legend] == ["train <loss>", "eval"]
    assert "&lt;loss&gt;" in line_chart([loss, evals], title="t", x_title="x", y_title="y",
                                        empty="e")
    labels = [t.text for t in svg.iter("text") if t.get("class") == "wb-chart-tick"]
    assert "2.0" in labels and "3.0" in labels and "1" in labels and "3" in labels


def test_steps_get_whole_number_ticks_and_one_series_no_legend():
    one = Series("lr", "#2563eb", [(1, 2e-4), (2, 1e-4)])
    root = _svg(line_chart([one], title="LR", x_title="Step", y_title="LR", empty="-",
                           scientific=True))
    ticks = [t.text for t in root.iter("text") if t.get("class") == "wb-chart-tick"]
    assert {"1", "2"} <= set(ticks) and not any("." in t and "e" not in t for t in ticks)
    assert "2.0e-04" in ticks
    assert len(root.find(".//span[@class='wb-chart-legend']")) == 0


def test_no_points_draws_an_empty_frame_that_says_so():
    root = _svg(line_chart([Series("loss", "#000")], title="Loss", x_title="Step",
                           y_title="Loss", empty="No points yet"))
    assert root.find(".//polyline") is None
    assert "No points yet" in [t.text for t in root.iter("text")]
    assert root.find("svg").get("viewBox") == f"0 0 {svg_chart.WIDTH} {svg_chart.EMPTY_HEIGHT}"
    assert svg_chart.WIDTH > 0  # the default size the Training tab's charts scale from
