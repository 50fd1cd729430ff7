"""The spec the bot writes for the sandbox is what the sandbox accepts: one metric catalogue on both sides."""

from __future__ import annotations

import pytest

from bot.config.repo import parse_repo_config
from bot.review.evaluation import pipeline_spec
from contract.metrics import METRICS_BY_TASK, OPERATIONAL_METRICS
from pipelines.errors import PipelineError
from pipelines.spec import check_metrics, check_model

CONFIG = """
version: 1
models:
  - name: churn
    path: models/churn.skops
    task: classification
    dataset: {path: data/eval.csv, target: label}
    gates:
      accuracy: {min: 0.8}
      size_mb: {max: 5}
      latency_p95_ms: {max: 20}
"""


def test_a_size_mb_gate_reaches_the_sandbox_and_the_sandbox_accepts_it() -> None:
    spec = pipeline_spec(parse_repo_config(CONFIG), "/work/head", None)

    (model,) = spec["models"]
    assert model["gates"] == {"accuracy": {"min": 0.8}, "size_mb": {"max": 5}, "latency_p95_ms": {"max": 20}}
    assert check_model(model, 0)["name"] == "churn"


@pytest.mark.parametrize("task", sorted(METRICS_BY_TASK))
def test_every_metric_the_config_allows_is_one_the_sandbox_knows(task: str) -> None:
    check_metrics([*METRICS_BY_TASK[task], *OPERATIONAL_METRICS], task, "models[0]")

    with pytest.raises(PipelineError, match="unknown metric `accuracy_top5`"):
        check_metrics(["accuracy_top5"], task, "models[0]")
