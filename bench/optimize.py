"""Benchmark: scikit-learn vs each ONNX variant, single-row p95 and batch throughput, in one run.

    .venv/bin/python bench/optimize.py [--repetitions 200] [--rows 5000]

Trains the three sample models (logistic regression, random forest of 100 trees, MLP) on scikit-learn's
bundled breast-cancer data, runs the same `pipelines.optimize` the sandbox runs (variants interleaved),
and prints a table with speedups against scikit-learn. Then times the whole optimize step on
examples/sample-model-repo, against the issue's budget of 5 s added to a review.
Targets (issue 4): single-row speedup >= 10x for the random forest and the logistic regression.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import skops.io as sio  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from contract.schema import ModelSpec, OptimizationReport, OptimizeSpec  # noqa: E402
from pipelines.optimize import optimize  # noqa: E402

MODELS = {
    "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "random_forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0),
    "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier((128, 64), max_iter=300, random_state=0)),
}
TARGETS = {"logistic_regression": 10.0, "random_forest": 10.0}


def build_repo(root: Path, rows: int) -> list[ModelSpec]:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    X, y = frame.drop(columns=["label"]).to_numpy(), frame["label"].to_numpy()
    (root / "models").mkdir()
    (root / "data").mkdir()
    # The batch is the evaluation set: repeat the data up to `rows` so throughput is measured at size.
    reps = -(-rows // len(frame))
    pd.concat([frame] * reps, ignore_index=True).iloc[:rows].to_csv(root / "data/eval.csv", index=False)
    specs: list[ModelSpec] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in MODELS.items():
            sio.dump(make().fit(X, y), root / f"models/{name}.skops")
            specs.append(
                {
                    "name": name,
                    "path": f"models/{name}.skops",
                    "task": "classification",
                    "dataset": {"path": "data/eval.csv", "target": "label"},
                }
            )
    return specs


def table(report: OptimizationReport) -> str:
    head = (
        f"{'model':<20} {'variant':<15} {'size KB':>8} {'p95 ms':>9} {'95% CI':>17} {'speedup':>8} "
        f"{'batch rows/s':>13} {'speedup':>8} {'parity':>7}  chosen"
    )
    lines = [head, "-" * len(head)]
    for model in report["models"]:
        by_name = {v["name"]: v for v in model["variants"]}
        base = by_name["original"]["latency"]
        assert base is not None
        for v in model["variants"]:
            chosen = "✓" if model["chosen"] and model["chosen"]["variant"] == v["name"] else ""
            lat = v["latency"]
            if lat is None:
                lines.append(f"{model['name']:<20} {v['name']:<15} {v['status']}: {(v['reason'] or '')[:70]}")
                continue
            ci = f"[{lat['p95_ci_ms']['low']:.3f}, {lat['p95_ci_ms']['high']:.3f}]"
            parity = "holds" if v["parity"] and v["parity"]["holds"] else "BREAKS"
            lines.append(
                f"{model['name']:<20} {v['name']:<15} {(v['size_bytes'] or 0) / 1024:>8.1f} {lat['p95_ms']:>9.3f} "
                f"{ci:>17} {base['p95_ms'] / lat['p95_ms']:>7.1f}x {lat['batch_rows_per_s']:>13,.0f} "
                f"{lat['batch_rows_per_s'] / base['batch_rows_per_s']:>7.1f}x {parity:>7}  {chosen}"
            )
    return "\n".join(lines)


def verdicts(report: OptimizationReport) -> list[str]:
    out = []
    for model in report["models"]:
        target = TARGETS.get(model["name"])
        rows = {v["name"]: v["latency"] for v in model["variants"] if v["latency"]}
        if target is None or "original" not in rows:
            continue
        best = min(lat["p95_ms"] for name, lat in rows.items() if name != "original")
        speedup = rows["original"]["p95_ms"] / best
        out.append(
            f"{model['name']}: best single-row speedup {speedup:.1f}x "
            f"(target >= {target:.0f}x) {'PASS' if speedup >= target else 'MISS'}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "repo").mkdir()
        specs = build_repo(root / "repo", args.rows)
        spec: OptimizeSpec = {
            "repo_dir": str(root / "repo"),
            "models": specs,
            "latency": {"repetitions": args.repetitions},
            "optimize": {"quantize": "both", "parity_tolerance": 1e-4, "select": "auto"},
        }
        report = optimize(spec, root / "out", root)
        print(f"single row: p95 over {args.repetitions} interleaved calls; batch: {args.rows} rows; one thread\n")
        print(table(report))
        print()
        print("\n".join(verdicts(report)))

        sample: OptimizeSpec = {
            "repo_dir": str(ROOT / "examples/sample-model-repo"),
            "models": [
                {
                    "name": "churn",
                    "path": "models/churn.skops",
                    "task": "classification",
                    "dataset": {"path": "data/eval.csv", "target": "label"},
                }
            ],
            "latency": {"repetitions": args.repetitions},
            "optimize": {"quantize": "dynamic", "select": "auto"},
        }
        start = time.perf_counter()
        optimize(sample, root / "sample-out", root)
        took = time.perf_counter() - start
        print(
            f"optimize step on examples/sample-model-repo (in-process, libraries imported): {took:.2f} s "
            "(target <= 5 s) "
            f"{'PASS' if took <= 5 else 'MISS'}"
        )


if __name__ == "__main__":
    main()
