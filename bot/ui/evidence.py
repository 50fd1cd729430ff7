"""An incident's evidence, read back from the Markdown the guard wrote (bot.guard.evidence): the
values-vs-threshold table, each check's PromQL, and its chart drawn as inline SVG on the server.

Pure: text in, values and SVG markup out. Every string placed in the SVG is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

_CHART = re.compile(r"```mermaid\n(.*?)```", re.S)
_PROMQL = re.compile(r"```promql\n(.*?)```", re.S)
_TITLE = re.compile(r'^\s*title "(.*)"\s*$', re.M)
_X = re.compile(r"^\s*x-axis \[(.*)\]\s*$", re.M)
_LINE = re.compile(r"^\s*line \[(.*)\]\s*$", re.M)


@dataclass(frozen=True)
class Chart:
    title: str
    labels: list[str]
    values: list[float]
    thresholds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    table: list[list[str]]  # header first
    promql: list[str]
    charts: list[Chart]


def parse(markdown: str) -> Evidence:
    table = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]
    charts = []
    for block in _CHART.findall(markdown):
        lines = [[float(v) for v in m.split(",") if v.strip()] for m in _LINE.findall(block)]
        if not lines:
            continue
        title = _TITLE.search(block)
        x = _X.search(block)
        labels = [s.strip().strip('"') for s in x.group(1).split(",")] if x else []
        thresholds = [series[0] for series in lines[1:] if series]
        charts.append(Chart(title.group(1) if title else "", labels, lines[0], thresholds))
    return Evidence(table, [q.strip() for q in _PROMQL.findall(markdown)], charts)


def svg(chart: Chart, width: int = 640, height: int = 240) -> str:
    """A line chart of the values with a dashed line per threshold, labelled for screen readers."""
    pad_l, pad_r, pad_t, pad_b = 56, 16, 28, 36
    values = chart.values
    low = min(0.0, *values, *chart.thresholds)
    high = max(*values, *chart.thresholds)
    high = high if high > low else low + 1.0
    high += 0.1 * (high - low)
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(i: int) -> float:
        return pad_l + (plot_w * i / max(1, len(values) - 1))

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (v - low) / (high - low))

    title = html.escape(chart.title)
    desc = html.escape(
        f"values {', '.join(f'{v:g}' for v in values)}; threshold {', '.join(f'{t:g}' for t in chart.thresholds)}"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{title}</title><desc id="chart-desc">{desc}</desc>',
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#888"/>',
        f'<text x="{pad_l}" y="18" font-size="13" fill="#111">{title}</text>',
    ]
    for tick in (low, (low + high) / 2, high):
        at = f'x="{pad_l - 6}" y="{y(tick) + 4:.1f}"'
        parts.append(f'<text {at} font-size="11" text-anchor="end" fill="#333">{tick:.3g}</text>')
    for t in chart.thresholds:
        parts.append(
            f'<line class="threshold" x1="{pad_l}" x2="{pad_l + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            'stroke="#b00020" stroke-dasharray="6 4" stroke-width="1.5"/>'
        )
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    parts.append(f'<polyline class="values" points="{points}" fill="none" stroke="#0b5394" stroke-width="2"/>')
    for i, v in enumerate(values):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="#0b5394"/>')
    for i, label in enumerate(chart.labels[: len(values)]):
        if len(values) <= 8 or i % max(1, len(values) // 6) == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 12}" font-size="10" text-anchor="middle" fill="#333">'
                f"{html.escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
