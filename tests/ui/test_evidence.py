"""An incident's evidence read back from the guard's Markdown and drawn as SVG on the server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bot.guard.evidence import render_evidence
from bot.ui.evidence import Chart, parse, svg
from tests.guard.test_evidence import QUERY, rolled_back


def test_the_guards_markdown_gives_the_table_the_query_and_the_series() -> None:
    """What the guard writes (bot.guard.evidence), read back: the page shows what the rollback PR says."""
    found = parse(render_evidence(rolled_back()))
    assert found.table[0] == ["Check", "Window", "Observed", "Threshold", "Breaches in a row"]
    assert found.table[1] == ["error_rate", "5m", "0.45", "max 0.02", "2 of 2"]
    assert found.promql == [QUERY]
    [chart] = found.charts
    assert chart.values == [0.001, 0.3, 0.45] and chart.thresholds == [0.02]
    assert chart.labels == ["00:01:00", "00:02:00", "00:03:00"] and chart.title == "error_rate (max 0.02), UTC"


def test_the_svg_is_well_formed_escaped_and_puts_the_threshold_below_the_breach() -> None:
    drawn = svg(Chart('<script>"x"</script>', ["a", "b"], [0.1, 0.5], [0.2]))
    root = ET.fromstring(drawn)
    ns = "{http://www.w3.org/2000/svg}"
    assert "<script>" not in drawn and root.find(f"{ns}title").text == '<script>"x"</script>'
    threshold_y = float(root.find(f"{ns}line").get("y1"))
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{ns}polyline").get("points").split()]
    assert points[0][1] > threshold_y > points[1][1]  # SVG y grows downwards: 0.1 under, 0.5 over the 0.2 line
