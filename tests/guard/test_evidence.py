"""The evidence a rollback PR carries: the failing check, its query, values against the threshold, a chart."""

from __future__ import annotations

from bot.guard.analysis import CheckConfig, CheckState, analyse
from bot.guard.checks import CheckOutcome, Deployment, Evaluation
from bot.guard.evidence import mermaid_chart, render_evidence
from bot.guard.prometheus import QueryResult

CHECK = CheckConfig(template="error_rate", max=0.02, window="5m", failure_limit=2, initial_delay=0)
QUERY = 'sum(rate(modelship_model_requests_total{status=~"5.."}[5m])) / sum(...)'


def rolled_back() -> Evaluation:
    state, outcome = CheckState(first_seen=0.0), None
    for now, value in ((60.0, 0.001), (120.0, 0.3), (180.0, 0.45)):
        result = QueryResult.of(value)
        verdict = analyse(CHECK, state, result, now)
        outcome, state = CheckOutcome(CHECK, QUERY, result, verdict), verdict.state
    assert outcome is not None
    return Evaluation(Deployment("production", "iris", "2"), (outcome,))


def test_the_evidence_names_the_check_window_value_threshold_and_query() -> None:
    text = render_evidence(rolled_back())
    assert "**iris** version `2` in **production** is degraded." in text
    assert "| `error_rate` | 5m | 0.45 | max 0.02 | 2 of 2 |" in text
    assert QUERY in text


def test_the_chart_plots_recent_values_against_the_threshold() -> None:
    chart = mermaid_chart(rolled_back().outcomes[0])
    assert chart.startswith("```mermaid\nxychart-beta")
    assert '"00:01:00", "00:02:00", "00:03:00"' in chart
    assert "line [0.001, 0.3, 0.45]" in chart and "line [0.02, 0.02, 0.02]" in chart
