"""PromQL templates: repositories pick them by name and cannot change a query's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.guard.templates import TemplateError, load_templates, parse_template
from bot.settings import SOURCE_ROOT

PROMQL = SOURCE_ROOT / "config" / "promql"  # the default of MODELSHIP_PROMQL_DIR


def test_the_shipped_templates_cover_the_documented_checks() -> None:
    templates = load_templates(PROMQL)
    assert {"error_rate", "latency_p95", "prediction_drift", "input_drift"} <= templates.keys()
    assert all(t.description for t in templates.values())


def test_rendering_fills_the_deployment_and_window() -> None:
    query = load_templates(PROMQL)["error_rate"].render(model="iris", version="3", env="production", window="5m")
    assert 'model="iris",version="3",env="production",status=~"5.."}[5m]' in query
    assert "{" + "model}" not in query


def test_a_model_name_cannot_break_out_of_its_label_matcher() -> None:
    query = load_templates(PROMQL)["error_rate"].render(model='x"} or up{a="', version="1", env="e", window="5m")
    assert 'model="x\\"} or up{a=\\""' in query


@pytest.mark.parametrize("window", ["5m) or vector(1", "", "five"])
def test_a_window_must_be_a_duration(window: str) -> None:
    with pytest.raises(TemplateError, match="not a duration"):
        load_templates(PROMQL)["latency_p95"].render(model="m", version="1", env="e", window=window)


def test_declared_defaults_can_be_overridden_but_nothing_else() -> None:
    drift = load_templates(PROMQL)["prediction_drift"]
    assert "[6h]" in drift.render(model="m", version="1", env="e", window="5m", baseline="6h")
    assert "[1h]" in drift.render(model="m", version="1", env="e", window="5m")
    with pytest.raises(TemplateError, match="no placeholder quantile"):
        drift.render(model="m", version="1", env="e", window="5m", quantile="0.5")


def test_a_template_with_an_undeclared_placeholder_is_refused() -> None:
    with pytest.raises(TemplateError, match="unknown placeholders namespace"):
        parse_template('name: t\nquery: up{namespace="{namespace}"}\n', source="t.yml")


def test_a_directory_without_templates_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no PromQL templates"):
        load_templates(tmp_path)
    assert PROMQL.is_dir()
