"""Load the evaluation dataset (CSV or Parquet) and fingerprint it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.schema import DatasetInfo, Task
from pipelines.errors import PipelineError
from pipelines.files import sha256_file
from pipelines.models import label_strings


@dataclass(frozen=True)
class Dataset:
    features: pd.DataFrame
    target: pd.Series
    info: DatasetInfo

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.features.columns]


def read_table(path: Path, display: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:
        raise PipelineError("dataset_invalid", f"could not read `{display}`: {type(exc).__name__}: {exc}") from exc
    raise PipelineError("dataset_invalid", f"`{display}`: unsupported dataset format `{suffix}`; use .csv or .parquet")


def load_dataset(path: Path, target: str, task: Task, display: str) -> Dataset:
    if not path.is_file():
        raise PipelineError(
            "missing_dataset", f"dataset file `{display}` does not exist; check `models[].dataset.path`"
        )
    frame = read_table(path, display)
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise PipelineError(
            "missing_target",
            f"target column `{target}` is not in `{display}`; its columns are: {shown}. Fix `models[].dataset.target`",
        )
    if frame.empty:
        raise PipelineError("dataset_invalid", f"`{display}` has no rows")
    if frame[target].isna().any():
        raise PipelineError("dataset_invalid", f"target column `{target}` in `{display}` has empty values")
    y = frame[target]
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise PipelineError("dataset_invalid", f"task is regression but target column `{target}` is not numeric")
    features = frame.drop(columns=[target])
    balance = dict(sorted(Counter(label_strings(y.to_numpy())).items())) if task == "classification" else None
    info: DatasetInfo = {
        "path": display,
        "sha256": sha256_file(path),
        "rows": len(frame),
        "n_features": features.shape[1],
        "class_balance": balance,
    }
    return Dataset(features=features, target=y, info=info)
