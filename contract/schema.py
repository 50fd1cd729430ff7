"""Shapes of the JSON documents exchanged between the bot and the sandbox (the wire schema).

The bot imports this module, so it must stay stdlib-only: importing numpy, scikit-learn or
onnxruntime here would pull them into the service process.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1

Task = Literal["classification", "regression"]
ModelFormat = Literal["onnx", "skops", "pickle", "joblib"]

ErrorKind = Literal[
    "invalid_spec",
    "invalid_path",
    "missing_model",
    "missing_dataset",
    "unsupported_format",
    "pickle_not_allowed",
    "untrusted_types",
    "load_failed",
    "dataset_invalid",
    "missing_target",
    "feature_mismatch",
    "unknown_metric",
    "train_failed",
    "predict_failed",
    "internal_error",
]

# The metric names are in contract.metrics (the one catalogue).


# ---------------------------------------------------------------- input spec (written by the bot)


class DatasetSpec(TypedDict):
    path: str
    target: str


class TrainSpec(TypedDict):
    command: str


class GateSpec(TypedDict, total=False):
    min: float
    max: float
    min_delta: float
    max_delta: float


class ModelSpec(TypedDict):
    name: str
    path: str
    task: Task
    dataset: DatasetSpec
    allow_pickle: NotRequired[bool]
    train: NotRequired[TrainSpec | None]
    metrics: NotRequired[list[str]]
    gates: NotRequired[dict[str, GateSpec]]


class LatencySpec(TypedDict, total=False):
    repetitions: int


class OptimizeSettings(TypedDict, total=False):
    onnx: bool
    quantize: Literal["dynamic", "static", "both", "none"]
    parity_tolerance: float
    select: Literal["auto", "original", "fp32", "int8"]
    calibration_rows: int
    timing_budget_s: float  # per variant: stop single-row timing after this much (at least 20 samples)


class EvaluateSpec(TypedDict):
    repo_dir: str
    models: list[ModelSpec]
    latency: NotRequired[LatencySpec]


class OptimizeSpec(EvaluateSpec):
    optimize: NotRequired[OptimizeSettings]


# ---------------------------------------------------------------- evaluation result


class ErrorInfo(TypedDict):
    kind: ErrorKind
    message: str


class ModelInfo(TypedDict):
    path: str
    format: ModelFormat
    sha256: str
    size_bytes: int


class DatasetInfo(TypedDict):
    path: str
    sha256: str
    rows: int
    n_features: int
    class_balance: dict[str, int] | None  # label -> row count; None for regression


class PerClassRow(TypedDict):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class ConfusionMatrix(TypedDict):
    labels: list[str]
    matrix: list[list[int]]  # rows: true label, columns: predicted label


class LatencyInfo(TypedDict):
    p50_ms: float
    p95_ms: float
    p99_ms: float
    batch_rows_per_s: float
    repetitions: int


class Predictions(TypedDict):
    y_true: list[str] | list[float]  # labels as strings for classification, values for regression
    y_pred: list[str] | list[float]
    y_score: list[float] | None  # positive-class probability for binary classification, else None


class ModelResult(TypedDict):
    name: str
    task: Task
    model: ModelInfo | None
    dataset: DatasetInfo | None
    metrics: dict[str, float]
    per_class: list[PerClassRow]
    confusion_matrix: ConfusionMatrix | None
    latency: LatencyInfo | None
    predictions: Predictions | None
    error: ErrorInfo | None


class EvaluationReport(TypedDict):
    schema_version: int
    models: list[ModelResult]
    error: ErrorInfo | None  # the spec itself was unusable; `models` is then empty


# ---------------------------------------------------------------- optimization result

VariantName = Literal["original", "onnx_fp32", "onnx_optimized", "int8_dynamic", "int8_static"]
VariantStatus = Literal["ok", "not_applicable", "failed"]


class Interval(TypedDict):
    low: float
    high: float


class VariantLatency(TypedDict):
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p95_ci_ms: Interval  # 95 % bootstrap interval of the p95
    batch_rows_per_s: float
    batch_ci_rows_per_s: Interval
    cold_start_ms: float
    repetitions: int  # single-row samples actually taken (a slow variant may stop at its time budget)


class Parity(TypedDict):
    label_agreement: float | None  # fraction of rows with the same label as the original (classification)
    max_abs_prob_diff: float | None  # classification, when both sides give probabilities
    max_abs_error: float | None  # regression: against the original's predictions
    tolerance: float
    holds: bool


class Variant(TypedDict):
    name: VariantName
    status: VariantStatus
    reason: str | None  # why not applicable / the failure, naming the estimator
    path: str | None  # relative to the output directory, or to the repository for "original"
    sha256: str | None
    size_bytes: int | None
    latency: VariantLatency | None
    parity: Parity | None
    metrics: dict[str, float]
    metric_delta: dict[str, float]  # variant minus original
    gates: dict[str, bool]  # gate name -> passed


class Chosen(TypedDict):
    variant: VariantName
    location: Literal["repo", "out"]
    path: str
    sha256: str
    reason: str


class ModelOptimization(TypedDict):
    name: str
    task: Task
    estimator: str | None  # e.g. "Pipeline(StandardScaler → MLPClassifier)"
    variants: list[Variant]
    chosen: Chosen | None
    error: ErrorInfo | None


class OptimizationReport(TypedDict):
    schema_version: int
    select: str
    models: list[ModelOptimization]
    error: ErrorInfo | None


class ReviewReport(TypedDict):
    """What `python -m pipelines.review` writes: both steps from one process, in one document."""

    schema_version: int
    evaluation: EvaluationReport
    optimization: OptimizationReport | None  # None with --no-optimize or when the spec was unusable
