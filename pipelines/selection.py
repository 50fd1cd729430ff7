"""Pure decisions: parity, gates, and which variant to ship."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from contract.schema import Chosen, GateSpec, Parity, Task, Variant, VariantName

FP32: tuple[VariantName, ...] = ("onnx_fp32", "onnx_optimized")
INT8: tuple[VariantName, ...] = ("int8_dynamic", "int8_static")


def parity(
    task: Task,
    tolerance: float,
    original: tuple[list[str] | np.ndarray, np.ndarray | None],
    variant: tuple[list[str] | np.ndarray, np.ndarray | None],
) -> Parity:
    """Compare a variant's (labels or values, probabilities) with the original's on the same rows.

    Regression tolerance is relative to the prediction scale (float32 cannot hold 1e-4 absolute on
    values in the thousands); classification probabilities are already on [0, 1]. A label that flips
    only where the original's top two probabilities tie within the tolerance (a forest's 10-10 vote)
    is rounding, not a different model, so it does not break parity; any other flip does.
    """
    if task == "regression":
        base = np.asarray(original[0], dtype=float)
        err = float(np.max(np.abs(np.asarray(variant[0], dtype=float) - base))) if len(base) else 0.0
        bound = tolerance * max(1.0, float(np.max(np.abs(base))) if len(base) else 1.0)
        return {
            "label_agreement": None,
            "max_abs_prob_diff": None,
            "max_abs_error": err,
            "tolerance": tolerance,
            "holds": err <= bound,
        }
    same = np.asarray(original[0]) == np.asarray(variant[0])
    agreement = float(np.mean(same)) if len(same) else 1.0
    diff: float | None = None
    flips_are_ties = bool(same.all())
    base_proba, proba = original[1], variant[1]
    if base_proba is not None and proba is not None and base_proba.shape == proba.shape:
        diff = float(np.max(np.abs(base_proba - proba))) if base_proba.size else 0.0
        if base_proba.shape[1] >= 2:
            top2 = np.sort(base_proba, axis=1)[:, -2:]
            tied = (top2[:, 1] - top2[:, 0]) <= tolerance
            flips_are_ties = bool(np.all(same | tied))
    holds = flips_are_ties and (diff is None or diff <= tolerance)
    return {
        "label_agreement": agreement,
        "max_abs_prob_diff": diff,
        "max_abs_error": None,
        "tolerance": tolerance,
        "holds": holds,
    }


def gates(
    specs: Mapping[str, GateSpec], metrics: Mapping[str, float], baseline: Mapping[str, float]
) -> dict[str, bool]:
    """One verdict per gated metric; a missing value never passes."""
    out: dict[str, bool] = {}
    for name, spec in specs.items():
        value = metrics.get(name)
        if value is None:
            out[name] = False
            continue
        ok = spec.get("min", -np.inf) <= value <= spec.get("max", np.inf)
        if "min_delta" in spec or "max_delta" in spec:
            base = baseline.get(name)
            ok = (
                ok
                and base is not None
                and (spec.get("min_delta", -np.inf) <= value - base <= spec.get("max_delta", np.inf))
            )
        out[name] = bool(ok)
    return out


def _p95(variant: Variant) -> float:
    return variant["latency"]["p95_ms"] if variant["latency"] else float("inf")


def _why_not(variant: Variant) -> str:
    if variant["status"] != "ok":
        return f"{variant['name']} {variant['status'].replace('_', ' ')}"
    parity = variant["parity"]
    if not (parity and parity["holds"]):
        if parity is None:
            return f"{variant['name']} has no parity check"
        gap = parity["max_abs_prob_diff"] if parity["max_abs_prob_diff"] is not None else parity["max_abs_error"]
        detail = [f"max |Δ| {gap:.2g} vs tolerance {parity['tolerance']:.2g}"] if gap is not None else []
        if parity["label_agreement"] is not None and parity["label_agreement"] < 1:
            detail.append(f"labels agree {parity['label_agreement']:.2%}")
        return f"{variant['name']} breaks parity ({', '.join(detail)})"
    failed = [g for g, ok in variant["gates"].items() if not ok]
    return f"{variant['name']} fails gate {', '.join(failed)}"


def eligible(variant: Variant) -> bool:
    return (
        variant["status"] == "ok"
        and variant["latency"] is not None
        and variant["parity"] is not None
        and variant["parity"]["holds"]
        and all(variant["gates"].values())
    )


def choose(
    variants: list[Variant], select: str, original_path: str, original_sha256: str, original_is_onnx: bool
) -> Chosen | None:
    """`auto`: the fastest (single-row p95) eligible variant; a named family: its fastest eligible one.

    When nothing qualifies the original is kept: it is what the repository already ships.
    """
    by_name = {v["name"]: v for v in variants}
    onnx_original: tuple[VariantName, ...] = ("original",) if original_is_onnx else ()
    pools: dict[str, tuple[VariantName, ...]] = {
        "original": ("original",),
        "fp32": onnx_original + FP32,
        "int8": INT8,
    }
    pool = pools.get(select, tuple(by_name))
    candidates = [by_name[n] for n in pool if n in by_name]
    winners = sorted((v for v in candidates if eligible(v)), key=_p95)
    original = by_name.get("original")
    if winners:
        best = winners[0]
        reason = f"{best['name']}: fastest variant that holds parity and passes every gate"
        if best["name"] != "original" and original and original["latency"] and best["latency"]:
            ours, theirs = best["latency"]["p95_ms"], original["latency"]["p95_ms"]
            reason += f" (p95 {ours:.3g} ms vs original {theirs:.3g} ms)"
        skipped = [
            _why_not(v)
            for v in candidates
            if v is not best and v["status"] == "ok" and not eligible(v) and _p95(v) < _p95(best)
        ]
        if skipped:
            reason += "; faster but not eligible: " + "; ".join(skipped)
        if select != "auto":
            reason = f"select: {select} → " + reason
    elif original is not None:
        why = "; ".join(_why_not(v) for v in candidates) or f"no {select} variant was produced"
        best, reason = original, f"kept the original: {why}"
    else:
        return None
    if best["name"] == "original":
        return {
            "variant": "original",
            "location": "repo",
            "path": original_path,
            "sha256": original_sha256,
            "reason": reason,
        }
    assert best["path"] is not None and best["sha256"] is not None
    return {
        "variant": best["name"],
        "location": "out",
        "path": best["path"],
        "sha256": best["sha256"],
        "reason": reason,
    }
