"""Line charts drawn on the server as plain SVG (the Training tab's loss and learning-rate
charts). A Vega chart in the page costs the browser ~0.4 s of CPU per redraw on a 2-core
machine, while the run it shows needs both cores (bench/README.md, "The app's own cost");
an SVG string written into the page by its poll costs a small fraction of that. No Gradio:
text in, text out.

Titles, axis titles and series names may hold i18n markers (m()); they land in SVG text
nodes, which the page script translates like any other text."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 560, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 12, 46  # room for tick labels and axis titles
TICKS = 5  # about this many ticks on each axis
EMPTY_HEIGHT = 90  # a chart without points: a low frame that says why


@dataclass
class Series:
    name: str  # shown in the legend (a marker is fine)
    color: str  # a CSS colour
    points: list[tuple[float, float]] = field(default_factory=list)  # (x, y), x ascending


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """About `count` round values (1, 2 or 5 × 10^k apart) that cover [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"chart bounds must be finite, got {low!r}..{high!r}")
    if high < low:
        low, high = high, low
    if high == low:  # one value: a band around it, not below 0 for a value that is not
        pad = abs(low) * 0.1 or 1.0
        low, high = (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad
    raw = (high - low) / max(1, count - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, step: float, scientific: bool) -> str:
    if scientific:
        return "0" if value == 0 else f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return f"{value:.{decimals}f}"


def line_chart(series: list[Series], *, title: str, x_title: str, y_title: str,
               empty: str, scientific: bool = False, width: int = WIDTH,
               height: int = HEIGHT) -> str:
    """One chart: a title line (and a legend when there is more than one series) above an
    SVG with axes, grid, and a line and dots per series (each dot's tooltip gives its x
    and y). x is a step: its ticks are whole numbers. No points at all: a low dashed
    frame with `empty` in it."""
    esc = html.escape
    drawn = [s for s in series if s.points]
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    view_h = height if drawn else EMPTY_HEIGHT
    out = [f"<svg class='wb-chart-svg' viewBox='0 0 {width} {view_h}' "
           f"preserveAspectRatio='xMidYMid meet' role='img'><title>{esc(title)}</title>"]
    if not drawn:  # a low frame: no axes to read yet, the page stays short
        out.append(f"<rect x='8' y='{TOP}' width='{width - 16}' height='{view_h - 2 * TOP}' "
                   f"class='wb-chart-frame'/><text x='{width / 2}' "
                   f"y='{view_h / 2 + 4}' text-anchor='middle' class='wb-chart-empty'>"
                   f"{esc(empty)}</text></svg>")
        return _wrap(title, "".join(out), [])
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    # steps: no tick between two steps (unless no tick is whole); one tick alone gets the
    # steps either side
    ticks = nice_ticks(min(xs), max(xs))
    x_ticks = sorted({int(v) for v in ticks if float(v).is_integer()}) or ticks
    if len(x_ticks) < 2:
        x_ticks = [x_ticks[0] - 1, x_ticks[0] + 1]
    y_ticks = nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    y_step = y_ticks[1] - y_ticks[0]
    x_step = x_ticks[1] - x_ticks[0]
    for v in y_ticks:  # horizontal grid lines with their labels
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{py(v):.1f}' "
                   f"y2='{py(v):.1f}' class='wb-chart-grid'/><text x='{LEFT - 6}' "
                   f"y='{py(v) + 4:.1f}' text-anchor='end' class='wb-chart-tick'>"
                   f"{tick_label(v, y_step, scientific)}</text>")
    for v in x_ticks:
        out.append(f"<line x1='{px(v):.1f}' x2='{px(v):.1f}' y1='{TOP + plot_h}' "
                   f"y2='{TOP + plot_h + 4}' class='wb-chart-axis'/><text x='{px(v):.1f}' "
                   f"y='{TOP + plot_h + 17}' text-anchor='middle' class='wb-chart-tick'>"
                   f"{tick_label(v, x_step, False)}</text>")
    out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{TOP + plot_h}' "
               f"y2='{TOP + plot_h}' class='wb-chart-axis'/>"
               f"<line x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{TOP + plot_h}' "
               f"class='wb-chart-axis'/>")
    out.append(f"<text x='{LEFT + plot_w / 2}' y='{height - 6}' text-anchor='middle' "
               f"class='wb-chart-axis-title'>{esc(x_title)}</text>"
               f"<text transform='translate(14 {TOP + plot_h / 2}) rotate(-90)' "
               f"text-anchor='middle' class='wb-chart-axis-title'>{esc(y_title)}</text>")
    radius = 3 if max(len(s.points) for s in drawn) <= 60 else 2
    for s in drawn:
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        out.append(f"<g class='wb-chart-series'><polyline class='wb-chart-line' "
                   f"points='{coords}' fill='none' stroke='{esc(s.color)}' "
                   f"stroke-width='2'/>")
        for x, y in s.points:
            out.append(f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='{radius}' "
                       f"fill='{esc(s.color)}'><title>{esc(s.name)} · "
                       f"{esc(x_title)} {x:g}: {y:.4g}</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    return _wrap(title, "".join(out), series if len(series) > 1 else [])


def _wrap(title: str, svg: str, legend: list[Series]) -> str:
    """The title line (with the legend, HTML: it sizes itself to the translated names)
    above the SVG."""
    keys = "".join(f"<span class='wb-chart-key'><i style='background:{html.escape(s.color)}'>"
                   f"</i>{html.escape(s.name)}</span>" for s in legend)
    return (f"<div class='wb-chart'><div class='wb-chart-head'><span class='wb-chart-title'>"
            f"{html.escape(title)}</span><span class='wb-chart-legend'>{keys}</span></div>"
            f"{svg}</div>")
