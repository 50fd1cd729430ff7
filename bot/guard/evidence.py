"""Markdown evidence for a rollback PR: each failing check, its query and values, and a Mermaid chart."""

from __future__ import annotations

import time

from bot.guard.checks import CheckOutcome, Evaluation


def render_evidence(evaluation: Evaluation) -> str:
    d = evaluation.deployment
    lines = [
        f"**{d.model}** version `{d.version}` in **{d.env}** is {evaluation.decision.health}.",
        "",
        "| Check | Window | Observed | Threshold | Breaches in a row |",
        "| --- | --- | --- | --- | --- |",
    ]
    failing = evaluation.failing or list(evaluation.outcomes)
    for o in failing:
        lines.append(
            f"| `{o.check.key}` | {o.check.window} | {o.result.describe()} | {o.check.threshold()} "
            f"| {o.verdict.state.consecutive_failures} of {o.check.failure_limit} |"
        )
    for o in failing:
        lines += ["", f"<details><summary><code>{o.check.key}</code> query and recent values</summary>", ""]
        lines += ["```promql", o.query, "```", ""]
        chart = mermaid_chart(o)
        if chart:
            lines += [chart, ""]
        lines.append("</details>")
    return "\n".join(lines)


def mermaid_chart(outcome: CheckOutcome) -> str:
    """A line chart of the check's recent values with its threshold; empty without values."""
    points = outcome.verdict.state.observations
    if not points:
        return ""
    check = outcome.check
    values = [v for _, v in points]
    bounds = [b for b in (check.max, check.min) if b is not None]
    low, high = min(0.0, *values, *bounds), max(*values, *bounds)
    high = high if high > low else low + 1.0
    top = high + 0.1 * (high - low)  # headroom so the worst value is not on the frame
    labels = ", ".join(f'"{time.strftime("%H:%M:%S", time.gmtime(t))}"' for t, _ in points)
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{check.key} ({check.threshold()}), UTC"',
        f"    x-axis [{labels}]",
        f'    y-axis "{check.template}" {low:g} --> {top:.6g}',
        f"    line [{', '.join(f'{v:.6g}' for v in values)}]",
    ]
    lines += [f"    line [{', '.join(f'{b:g}' for _ in values)}]" for b in bounds]
    lines.append("```")
    return "\n".join(lines)
