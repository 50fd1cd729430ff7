"""Validate the spec the bot writes. Top-level problems stop the run; a bad model entry fails only itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from contract.metrics import METRIC_NAMES, METRICS_BY_TASK, OPERATIONAL_METRICS
from contract.schema import EvaluateSpec, ModelSpec
from pipelines.errors import PipelineError


def read_spec(path: Path) -> EvaluateSpec:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError("invalid_spec", f"cannot read spec `{path}`: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("repo_dir"), str):
        raise PipelineError("invalid_spec", "the spec must be an object with a string `repo_dir`")
    if not isinstance(raw.get("models"), list):
        raise PipelineError("invalid_spec", "the spec must have a `models` list")
    return cast(EvaluateSpec, raw)


def _require(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind):
        raise PipelineError("invalid_spec", f"{where}: `{key}` must be a {kind.__name__}")
    return value


def check_model(entry: object, index: int) -> ModelSpec:
    where = f"models[{index}]"
    if not isinstance(entry, dict):
        raise PipelineError("invalid_spec", f"{where} must be an object")
    _require(entry, "name", str, where)
    _require(entry, "path", str, where)
    if entry.get("task") not in ("classification", "regression"):
        raise PipelineError("invalid_spec", f"{where}: `task` must be `classification` or `regression`")
    dataset = _require(entry, "dataset", dict, where)
    _require(dataset, "path", str, f"{where}.dataset")
    _require(dataset, "target", str, f"{where}.dataset")
    train = entry.get("train")
    if train is not None and not (isinstance(train, dict) and isinstance(train.get("command"), str)):
        raise PipelineError("invalid_spec", f"{where}: `train` must be null or {{command: <string>}}")
    check_metrics(entry.get("metrics") or [], entry["task"], where)
    return cast(ModelSpec, entry)


def check_metrics(names: list[str], task: str, where: str) -> None:
    own = METRICS_BY_TASK[task]
    for name in names:
        if name not in METRIC_NAMES:
            raise PipelineError(
                "unknown_metric",
                f"{where}: unknown metric `{name}`; known: {', '.join(sorted(METRIC_NAMES))}",
            )
        if name not in own and name not in OPERATIONAL_METRICS:
            raise PipelineError("unknown_metric", f"{where}: metric `{name}` does not apply to {task}")
