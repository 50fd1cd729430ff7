"""An incident's evidence read back from the guard's Markdown and drawn as SVG on the server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bot.ui.evidence import Chart, parse, svg
from tests.ui.test_dashboard_browser import EVIDENCE


def test_the_guards_markdown_gives_the_table_the_query_and_the_series() -> None:
    found = parse(EVIDENCE.format(bad="abc1234"))
    assert found.table[0][:3] == ["Check", "Window", "Observed"]
    assert found.table[1][:4] == ["error_rate", "5s", "0.31", "≤ 0.02"]
    assert found.promql and "model_errors_total" in found.promql[0]
    [chart] = found.charts
    assert chart.values == [0.01, 0.29, 0.3, 0.31] and chart.thresholds == [0.02]
    assert chart.labels[0] == "10:00:01"


def test_the_svg_is_well_formed_escaped_and_puts_the_threshold_below_the_breach() -> None:
    drawn = svg(Chart('<script>"x"</script>', ["a", "b"], [0.1, 0.5], [0.2]))
    root = ET.fromstring(drawn)
    ns = "{http://www.w3.org/2000/svg}"
    assert "<script>" not in drawn and root.find(f"{ns}title").text == '<script>"x"</script>'
    threshold_y = float(root.find(f"{ns}line").get("y1"))
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{ns}polyline").get("points").split()]
    assert points[0][1] > threshold_y > points[1][1]  # SVG y grows downwards: 0.1 under, 0.5 over the 0.2 line
