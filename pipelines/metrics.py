"""Quality metrics: pure functions from predictions to plain floats, all computed by scikit-learn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from contract.schema import ConfusionMatrix, PerClassRow


@dataclass(frozen=True)
class ClassificationResult:
    metrics: dict[str, float]
    per_class: list[PerClassRow]
    confusion: ConfusionMatrix
    y_score: list[float] | None  # positive-class probability when binary


def _finite(values: dict[str, float]) -> dict[str, float]:
    # JSON has no NaN, and an undefined metric (e.g. ROC-AUC with one class present) is absent, not 0.
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def label_order(y_true: list[str], y_pred: list[str], classes: list[str] | None) -> list[str]:
    """The model's class order first (that is the probability column order), then any stray label."""
    known = list(classes or [])
    extra = sorted((set(y_true) | set(y_pred)) - set(known))
    return known + extra


def classification(
    y_true: list[str], y_pred: list[str], proba: np.ndarray | None, classes: list[str] | None
) -> ClassificationResult:
    labels = label_order(y_true, y_pred, classes)
    out: dict[str, float] = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out |= {f"precision_{avg}": p, f"recall_{avg}": r, f"f1_{avg}": f}
    binary = len(labels) == 2
    positive = labels[1] if binary else None
    if positive is not None:
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, pos_label=positive, average="binary", zero_division=0
        )
        out |= {"precision": p, "recall": r, "f1": f}
    else:  # no single positive class: the headline numbers are the macro averages
        out |= {"precision": out["precision_macro"], "recall": out["recall_macro"], "f1": out["f1_macro"]}

    y_score: list[float] | None = None
    if proba is not None and classes is not None and proba.shape[1] == len(classes):
        out |= _probabilistic(y_true, proba, classes)
        if positive is not None and len(classes) == 2:
            y_score = proba[:, classes.index(positive)].astype(float).tolist()

    p_c, r_c, f_c, s_c = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_class: list[PerClassRow] = [
        {
            "label": lab,
            "precision": float(p_c[i]),
            "recall": float(r_c[i]),
            "f1": float(f_c[i]),
            "support": int(s_c[i]),
        }
        for i, lab in enumerate(labels)
    ]
    matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
    return ClassificationResult(
        metrics=_finite(out),
        per_class=per_class,
        confusion={"labels": labels, "matrix": matrix.astype(int).tolist()},
        y_score=y_score,
    )


def _probabilistic(y_true: list[str], proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    present = set(y_true)
    if not present <= set(classes):
        return out  # a true label the model cannot score: both metrics are undefined
    if len(present) > 1:
        if len(classes) == 2:
            out["roc_auc"] = skm.roc_auc_score([t == classes[1] for t in y_true], proba[:, 1])
        elif present == set(classes):
            out["roc_auc"] = skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
    # float32 runtimes give probabilities off by ~1e-7 (even 1.0000004); snap them back so log loss
    # compares like with like instead of rejecting the row.
    clipped = np.clip(proba, 0.0, 1.0)
    sums = clipped.sum(axis=1, keepdims=True)
    normalised = np.divide(clipped, sums, out=np.zeros_like(clipped), where=sums > 0)
    out["log_loss"] = skm.log_loss(y_true, normalised, labels=classes)
    return out


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return _finite(
        {
            "mae": skm.mean_absolute_error(y_true, y_pred),
            "rmse": math.sqrt(skm.mean_squared_error(y_true, y_pred)),
            "r2": skm.r2_score(y_true, y_pred) if len(y_true) > 1 else math.nan,
            "mape": skm.mean_absolute_percentage_error(y_true, y_pred),
        }
    )
