"""Render the Optimization section of the sticky comment from the sandbox's optimization report (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.review.report import code, text

_NAMES = {
    "original": "original",
    "onnx_fp32": "ONNX fp32",
    "onnx_optimized": "ONNX optimized",
    "int8_dynamic": "int8 dynamic",
    "int8_static": "int8 static",
}


def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "—"


def _ms(latency: Mapping[str, Any] | None) -> str:
    if not latency:
        return "—"
    ci = latency.get("p95_ci_ms") or {}
    low, high = ci.get("low"), ci.get("high")
    interval = f" ({low:.3g}–{high:.3g})" if isinstance(low, int | float) and isinstance(high, int | float) else ""
    return f"{latency['p95_ms']:.3g} ms{interval}"


def _throughput(latency: Mapping[str, Any] | None) -> str:
    if not latency:
        return "—"
    return f"{latency['batch_rows_per_s']:,.0f} rows/s"


def _delta(deltas: Mapping[str, float], primary: str) -> str:
    if primary in deltas:
        return f"{primary} {deltas[primary]:+.4f}"
    if deltas:
        name, value = next(iter(deltas.items()))
        return f"{name} {value:+.4f}"
    return "—"


def _parity(parity: Mapping[str, Any] | None) -> str:
    if not parity:
        return "—"
    parts = []
    if parity.get("label_agreement") is not None:
        parts.append(f"{parity['label_agreement']:.2%} labels")
    diff = parity.get("max_abs_prob_diff", parity.get("max_abs_error"))
    if diff is not None:
        parts.append(f"max Δ {diff:.2g}")
    return ("✅ " if parity.get("holds") else "❌ ") + ", ".join(parts)


@dataclass(frozen=True)
class VariantRow:
    """One row of a model's optimization table, its cells already formatted (plain text, unescaped)."""

    label: str
    ok: bool
    size: str = "—"
    latency: str = "—"
    throughput: str = "—"
    delta: str = "—"
    parity: str = "—"
    chosen: bool = False
    reason: str = ""  # why a variant that is not ok was not built: "not applicable: …" / "failed: …"


def variant_rows(model: Mapping[str, Any]) -> list[VariantRow]:
    """The optimization table of one model of the sandbox's report: what the PR comment and the dashboard
    both show (each escapes for its own medium)."""
    chosen = (model.get("chosen") or {}).get("variant")
    primary = "accuracy" if model.get("task") == "classification" else "mae"
    rows = []
    for v in model.get("variants", []):
        label = _NAMES.get(v.get("name", ""), str(v.get("name", "?")))
        if v.get("status") != "ok":
            status = "not applicable" if v.get("status") == "not_applicable" else "failed"
            rows.append(VariantRow(label, False, reason=f"{status}: {v.get('reason') or ''}"))
            continue
        rows.append(
            VariantRow(
                label,
                True,
                size=_size(v.get("size_bytes")),
                latency=_ms(v.get("latency")),
                throughput=_throughput(v.get("latency")),
                delta=_delta(v.get("metric_delta") or {}, primary),
                parity=_parity(v.get("parity")),
                chosen=v.get("name") == chosen,
            )
        )
    return rows


def variant_name(name: str) -> str:
    return _NAMES.get(name, name)


def render_optimization(report: Mapping[str, Any] | None) -> str | None:
    """Markdown for the comment, or None when the review did not optimize."""
    if not report:
        return None
    if report.get("error"):
        return f"⚠️ Optimization did not run: {text(report['error'].get('message', ''), 400)}"
    sections = []
    for model in report.get("models", []):
        name = code(model.get("name", "?"), 60)
        if model.get("error"):
            sections.append(f"**{name}**: ⚠️ {text(model['error'].get('message', ''), 400)}")
            continue
        rows = [
            f"**{name}**" + (f" — {text(model['estimator'], 120)}" if model.get("estimator") else ""),
            "",
            "| Variant | Size | p95 latency (95% CI) | Throughput | Metric Δ | Parity | Chosen |",
            "|---|---:|---:|---:|---|---|:-:|",
        ]
        for v in variant_rows(model):
            label = v.label if v.label in _NAMES.values() else text(v.label, 40)
            if not v.ok:
                status, _, why = v.reason.partition(": ")
                rows.append(f"| {label} | — | {status}: {text(why, 300)} | | | | |")
                continue
            mark = "✓" if v.chosen else ""
            rows.append(f"| {label} | {v.size} | {v.latency} | {v.throughput} | {v.delta} | {v.parity} | {mark} |")
        if model.get("chosen"):
            c = model["chosen"]
            rows += [
                "",
                f"Chosen: **{_NAMES.get(c['variant'], c['variant'])}** "
                f"(`sha256:{c['sha256'][:12]}`) — {text(c.get('reason', ''), 300)}",
            ]
        sections.append("\n".join(rows))
    return "\n\n".join(sections) or None
