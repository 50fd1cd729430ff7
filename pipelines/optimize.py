"""Convert, optimize and quantize each model, check parity, time every variant, pick one to ship.

    python -m pipelines.optimize --spec SPEC.json --out OUT.json [--scratch DIR]

Variant files are kept next to OUT.json under variants/<model>/; the report
(contract.schema.OptimizationReport) names the chosen one and its sha256. A conversion or quantizer
failure is a row in the report, never a failed run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from contract.metrics import size_mb
from contract.schema import (
    SCHEMA_VERSION,
    ModelOptimization,
    ModelSpec,
    OptimizationReport,
    OptimizeSettings,
    OptimizeSpec,
    Task,
    Variant,
    VariantLatency,
    VariantName,
    VariantStatus,
)
from pipelines import quantize, selection
from pipelines.convert import ConversionError, describe_estimator, to_onnx_bytes
from pipelines.errors import PipelineError
from pipelines.evaluate import (
    BATCH_ROUNDS,
    DEFAULT_REPETITIONS,
    Quality,
    cli_args,
    error_info,
    exit_now,
    failed,
    score,
    single_rows,
    write_json,
)
from pipelines.files import sha256_file
from pipelines.models import OnnxPredictor, Predictor, label_strings, load_model
from pipelines.prepare import Prepared, prepare, safe_name
from pipelines.spec import check_model, read_spec
from pipelines.timing import bootstrap_interval, mean, measure, p95, percentiles

DEFAULT_TOLERANCE = 1e-4
CALIBRATION_ROWS = 128
TIMING_BUDGET_S = 1.0  # per variant, single-row timing; see timing.measure


@dataclass
class Measured:
    """A variant that loaded and predicted: everything needed to time it alongside the others."""

    variant: Variant
    predictor: Predictor
    batch: Any
    rows: list[Any]
    quality: Quality
    cold_start_ms: float


def _variant(name: VariantName, status: VariantStatus, reason: str | None) -> Variant:
    return {
        "name": name,
        "status": status,
        "reason": reason,
        "path": None,
        "sha256": None,
        "size_bytes": None,
        "latency": None,
        "parity": None,
        "metrics": {},
        "metric_delta": {},
        "gates": {},
    }


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


class ModelOptimizer:
    def __init__(self, spec: ModelSpec, settings: OptimizeSettings, prepared: Prepared, out_dir: Path) -> None:
        self.spec = spec
        self.task: Task = spec["task"]
        self.settings = settings
        self.prepared = prepared
        self.out_dir = out_dir
        self.vdir = out_dir / "variants" / safe_name(spec["name"])
        self.vdir.mkdir(parents=True, exist_ok=True)
        self.tolerance = float(settings.get("parity_tolerance", DEFAULT_TOLERANCE))
        self.original = self._measure_original()

    def _parity_view(self, quality: Quality) -> tuple[list[str] | np.ndarray, np.ndarray | None]:
        if self.task == "regression":
            return np.asarray(quality.scored.labels, dtype=float).ravel(), None
        return label_strings(quality.scored.labels), quality.scored.proba

    def _measure_original(self) -> Measured:
        prepared = self.prepared
        predictor = prepared.model.predictor
        batch = predictor.prepare(prepared.dataset.features)
        rows = single_rows(predictor, prepared.dataset)
        quality = score(predictor, batch, prepared.dataset, self.task)

        def cold() -> None:
            fresh = load_model(prepared.path, self.task, bool(self.spec.get("allow_pickle")), self.spec["path"])
            fresh.predictor.predict(rows[0])

        variant = _variant("original", "ok", None)
        variant |= {
            "path": prepared.info["path"],
            "sha256": prepared.info["sha256"],
            "size_bytes": prepared.info["size_bytes"],
        }
        variant["parity"] = selection.parity(
            self.task, self.tolerance, self._parity_view(quality), self._parity_view(quality)
        )
        return Measured(variant, predictor, batch, rows, quality, _timed(cold))

    def _measure_onnx(self, name: VariantName, path: Path) -> Measured | Variant:
        try:
            content = path.read_bytes()
            predictor = OnnxPredictor(content, self.task)
            known = self.original.predictor.classes
            if self.task == "classification" and known is not None and predictor.classes is None:
                predictor.set_classes(known)
            predictor.check_features(self.prepared.dataset.columns)
            batch = predictor.prepare(self.prepared.dataset.features)
            rows = single_rows(predictor, self.prepared.dataset)
            quality = score(predictor, batch, self.prepared.dataset, self.task)
            cold = _timed(lambda: OnnxPredictor(path.read_bytes(), self.task).predict(rows[0]))
        except PipelineError as exc:
            return _variant(name, "failed", f"{name} does not run: {exc.message}")
        except Exception as exc:
            return _variant(name, "failed", f"{name} does not run: {type(exc).__name__}: {exc}")
        variant = _variant(name, "ok", None)
        variant |= {
            "path": str(path.relative_to(self.out_dir)),
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
        }
        variant["parity"] = selection.parity(
            self.task, self.tolerance, self._parity_view(self.original.quality), self._parity_view(quality)
        )
        return Measured(variant, predictor, batch, rows, quality, cold)

    def _fp32_source(self) -> tuple[Path | None, list[Measured | Variant]]:
        """The float ONNX file the other variants derive from, and the onnx_fp32 row."""
        if self.prepared.model.format == "onnx":
            return self.prepared.path, [
                _variant("onnx_fp32", "not_applicable", "the model is already ONNX; taken as is")
            ]
        if not self.settings.get("onnx", True):
            return None, [_variant("onnx_fp32", "not_applicable", "`optimize.onnx` is false")]
        target = self.vdir / "onnx_fp32.onnx"
        try:
            target.write_bytes(to_onnx_bytes(self.prepared.model.estimator, self.prepared.dataset.features))
        except ConversionError as exc:
            return None, [_variant("onnx_fp32", "failed", str(exc))]
        return target, [self._measure_onnx("onnx_fp32", target)]

    def _derived(self, source: Path | None) -> list[Measured | Variant]:
        if source is None:
            why = "no ONNX model to start from (see onnx_fp32)"
            return [_variant(n, "not_applicable", why) for n in ("onnx_optimized", "int8_dynamic", "int8_static")]
        out: list[Measured | Variant] = []
        target = self.vdir / "onnx_optimized.onnx"
        try:
            quantize.optimize_graph(source, target)
            out.append(self._measure_onnx("onnx_optimized", target))
        except Exception as exc:
            out.append(_variant("onnx_optimized", "failed", f"ONNX Runtime optimizer: {type(exc).__name__}: {exc}"))
        mode = self.settings.get("quantize", "both")
        blocked = quantize.not_quantizable_reason(source)
        kinds: tuple[tuple[str, VariantName], ...] = (("dynamic", "int8_dynamic"), ("static", "int8_static"))
        for kind, name in kinds:
            if mode not in (kind, "both"):
                out.append(_variant(name, "not_applicable", f"not requested (`optimize.quantize: {mode}`)"))
            elif blocked:
                out.append(_variant(name, "not_applicable", blocked))
            else:
                out.append(self._quantized(name, kind, source))
        return out

    def _quantized(self, name: VariantName, kind: str, source: Path) -> Measured | Variant:
        target = self.vdir / f"{name}.onnx"
        try:
            if kind == "dynamic":
                quantize.quantize_dynamic(source, target)
            else:
                probe = OnnxPredictor(source.read_bytes(), self.task)
                feeds = probe.prepare(self.prepared.dataset.features)
                if len(feeds) != 1:
                    return _variant(name, "not_applicable", "static calibration needs a single tensor input")
                ((input_name, data),) = feeds.items()
                rng = np.random.default_rng(0)
                sample = data[
                    rng.permutation(len(data))[: int(self.settings.get("calibration_rows", CALIBRATION_ROWS))]
                ]
                quantize.quantize_static(source, target, input_name, sample)
        except quantize.NothingQuantized as exc:
            return _variant(name, "not_applicable", str(exc))
        except Exception as exc:
            return _variant(name, "failed", f"{kind} quantization failed: {type(exc).__name__}: {exc}")
        return self._measure_onnx(name, target)

    def run(self, repetitions: int) -> list[Variant]:
        source, first = self._fp32_source()
        rows = [self.original, *first, *self._derived(source)]
        measured = [r for r in rows if isinstance(r, Measured)]
        timings = measure(
            {m.variant["name"]: m.predictor.predict for m in measured},
            {m.variant["name"]: m.rows for m in measured},
            {m.variant["name"]: (m.batch, len(self.prepared.dataset.features)) for m in measured},
            repetitions,
            max(BATCH_ROUNDS, 10),
            budget_s=float(self.settings.get("timing_budget_s", TIMING_BUDGET_S)),
        )
        baseline: dict[str, float] = {}
        for m in measured:  # the original comes first, so it is the baseline for every delta
            t = timings[m.variant["name"]]
            p50, p95_ms, p99 = percentiles(t.single_ms)
            lo, hi = bootstrap_interval(t.single_ms, p95)
            blo, bhi = bootstrap_interval(t.batch_rows_per_s, mean)
            latency: VariantLatency = {
                "p50_ms": p50,
                "p95_ms": p95_ms,
                "p99_ms": p99,
                "p95_ci_ms": {"low": lo, "high": hi},
                "batch_rows_per_s": mean(np.asarray(t.batch_rows_per_s)),
                "batch_ci_rows_per_s": {"low": blo, "high": bhi},
                "cold_start_ms": m.cold_start_ms,
                "repetitions": len(t.single_ms),
            }
            metrics = m.quality.metrics | {
                "latency_p50_ms": p50,
                "latency_p95_ms": p95_ms,
                "latency_p99_ms": p99,
                "batch_rows_per_s": latency["batch_rows_per_s"],
                "model_size_bytes": float(m.variant["size_bytes"] or 0),
                "size_mb": size_mb(m.variant["size_bytes"] or 0),
            }
            baseline = baseline or metrics
            m.variant |= {
                "latency": latency,
                "metrics": metrics,
                "metric_delta": {k: v - baseline[k] for k, v in metrics.items() if k in baseline},
                "gates": selection.gates(self.spec.get("gates") or {}, metrics, baseline),
            }
        return [r.variant if isinstance(r, Measured) else r for r in rows]


def optimize_model(
    spec: ModelSpec,
    settings: OptimizeSettings,
    repo_dir: Path,
    out_dir: Path,
    scratch: Path,
    repetitions: int,
) -> ModelOptimization:
    prepared = prepare(spec, repo_dir, scratch)
    estimator = prepared.model.estimator
    variants = ModelOptimizer(spec, settings, prepared, out_dir).run(repetitions)
    chosen = selection.choose(
        variants,
        str(settings.get("select", "auto")),
        prepared.info["path"],
        prepared.info["sha256"],
        original_is_onnx=prepared.model.format == "onnx",
    )
    return {
        "name": spec["name"],
        "task": spec["task"],
        "estimator": describe_estimator(estimator) if estimator is not None else "ONNX model",
        "variants": variants,
        "chosen": chosen,
        "error": None,
    }


def optimize(spec: OptimizeSpec, out_dir: Path, scratch: Path) -> OptimizationReport:
    settings: OptimizeSettings = spec.get("optimize") or {}
    repetitions = max(int((spec.get("latency") or {}).get("repetitions", DEFAULT_REPETITIONS)), 1)
    repo_dir = Path(spec["repo_dir"])
    results: list[ModelOptimization] = []
    for index, entry in enumerate(spec["models"]):
        try:
            results.append(optimize_model(check_model(entry, index), settings, repo_dir, out_dir, scratch, repetitions))
        except Exception as exc:  # one model's failure is its own row; the others still run
            row = failed(entry, index, error_info(exc))
            results.append(
                {
                    "name": row["name"],
                    "task": row["task"],
                    "estimator": None,
                    "variants": [],
                    "chosen": None,
                    "error": row["error"],
                }
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "select": str(settings.get("select", "auto")),
        "models": results,
        "error": None,
    }


def main(argv: list[str] | None = None) -> int:
    args = cli_args(argv, "python -m pipelines.optimize")
    tempfile.tempdir = str(args.scratch)  # the quantizer's calibration writes temporary models
    report: OptimizationReport
    try:
        report = optimize(cast(OptimizeSpec, read_spec(args.spec)), args.out.parent, args.scratch)
    except PipelineError as exc:
        report = {"schema_version": SCHEMA_VERSION, "select": "auto", "models": [], "error": exc.info()}
    write_json(report, args.out)
    return 0 if report["error"] is None else 2


if __name__ == "__main__":
    exit_now(main())
