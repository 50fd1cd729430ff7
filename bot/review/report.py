"""Render the review as the one sticky PR comment and as the `modelship/review` check run.

Pure: values in, strings out. Everything that came from the PR (labels, names, error messages)
is untrusted, so it is escaped before it reaches Markdown — no HTML, no table breaks, no @mentions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.config.repo import CONFIG_PATH, ConfigProblem
from bot.review.compare import MetricComparison, ModelComparison, ReviewComparison
from bot.review.gates import GateResult
from bot.review.parse import Evaluation
from contract.metrics import OPERATIONAL_METRICS

REVIEW_MARKER = "<!-- modelship:review -->"
COMMENT_LIMIT = 65_536  # GitHub's maximum issue comment body
SUMMARY_LIMIT = 65_535  # GitHub's maximum check run output.summary (and output.text)
CHECK_NAME = "modelship/review"

VERDICT_LABEL = {
    "better": "🟢 better",
    "worse": "🔴 worse",
    "within_noise": "⚪ within noise",
    "failed": "❌ failed",
    "n/a": "➖ n/a",
}
GATE_LABEL = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped"}
_RERUN_HINT = "Comment `/modelship evaluate` to rerun the evaluation, or `/modelship help` for all commands."


# --------------------------------------------------------------------------- escaping and numbers


def text(value: object, limit: int = 300) -> str:
    """Untrusted text as inert inline Markdown: one line, HTML escaped, pipes and mentions defused."""
    raw = " ".join(str(value).split())
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    escaped = re.sub(r"([\\*_\[\]~#|])", r"\\\1", html.escape(raw, quote=False)).replace("`", "'")
    # A zero-width space after @ stops GitHub from notifying whoever a label happens to name.
    return escaped.replace("@", "@\u200b") if escaped else "—"


def code(value: object, limit: int = 120) -> str:
    raw = " ".join(str(value).split()).replace("`", "'")
    return f"`{raw[:limit]}`" if raw else "—"


def number(value: float | None, metric: str | None = None) -> str:
    if value is None:
        return "—"
    if metric in OPERATIONAL_METRICS:  # milliseconds, megabytes, rows/s: two decimals are plenty
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def signed(value: float | None, metric: str | None = None) -> str:
    return "—" if value is None else ("+" if value >= 0 else "−") + number(abs(value), metric)


def interval(row: MetricComparison) -> str:
    """The 95% interval of a row's delta, as the PR comment and the dashboard show it."""
    return f"[{signed(row.ci.low)}, {signed(row.ci.high)}]" if row.ci else "—"


def _metric_label(row: MetricComparison) -> str:
    return f"{row.name} {'↑' if row.higher_is_better else '↓'}"


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class _Model:
    """One model's rendering: the part always shown, and the part folded when space runs out."""

    core: str
    details: str


def _headline(review: ReviewComparison) -> str:
    failed_models = [m.name for m in review.models if m.status == "head_failed"]
    failed_gates = sum(1 for m in review.models for g in m.gates if g.status == "fail")
    verdicts: list[str] = [r.verdict for m in review.models for r in m.metrics]
    tally = ", ".join(
        f"{verdicts.count(v)} {label}"
        for v, label in (("better", "better"), ("worse", "worse"), ("within_noise", "within noise"))
        if verdicts.count(v)
    )
    tally = f" — metrics: {tally}" if tally else ""
    if not review.models:
        return "⚠️ **Modelship review: no models configured**"
    if failed_models:
        names = ", ".join(code(n) for n in failed_models)
        return f"❌ **Modelship review: failed to evaluate {names}**{tally}"
    if failed_gates:
        plural = "gate" if failed_gates == 1 else "gates"
        return f"❌ **Modelship review: {failed_gates} {plural} failed**{tally}"
    return f"✅ **Modelship review: all gates pass**{tally}"


def _metrics_table(model: ModelComparison) -> str:
    lines = ["| Metric | Base | Head | Δ | 95% CI of Δ | Verdict |", "|---|---:|---:|---:|---|---|"]
    for row in model.metrics:
        ci = interval(row)
        verdict = VERDICT_LABEL[row.verdict]
        # A failed or new model says why once, above the table; per-row notes are for the odd metric.
        if row.note and row.verdict == "n/a" and model.status == "compared":
            verdict += f" ({text(row.note, 80)})"
        base, head, delta = number(row.base, row.name), number(row.head, row.name), signed(row.delta, row.name)
        cells = [_metric_label(row), base, head, delta, ci, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_rule(gate: GateResult) -> str:
    sign = "≥" if gate.rule.startswith("min") else "≤"
    subject = "Δ " if gate.rule.endswith("delta") else ""
    return f"{subject}{sign} {gate.threshold:g}"


def gate_value(gate: GateResult) -> str:
    return signed(gate.value, gate.metric) if gate.rule.endswith("delta") else number(gate.value, gate.metric)


def _gates_table(gates: Sequence[GateResult]) -> str:
    if not gates:
        return "_No gates configured for this model: add `gates:` in `.modelship.yml` to enforce a policy._"
    lines = ["| Gate | Rule | Value | Result |", "|---|---|---:|---|"]
    for gate in gates:
        value = gate_value(gate)
        result = GATE_LABEL[gate.status]
        if gate.status != "pass":
            result += f" — {text(gate.reason, 160)}"
        lines.append(f"| {gate.metric} | {gate_rule(gate)} | {value} | {result} |")
    return "\n".join(lines)


def _plain(value: float | None) -> str:
    """A number Mermaid parses: no exponent, no thousands separator."""
    return f"{value or 0.0:.6f}".rstrip("0").rstrip(".") or "0"


def _chart(model: ModelComparison) -> str:
    rows = [r for r in model.metrics if r.name not in OPERATIONAL_METRICS and r.base is not None and r.head is not None]
    if not rows:
        return ""
    values = [v for r in rows for v in (r.base, r.head) if v is not None]
    low, high = min(0.0, *values), max(values)
    axis = "0 --> 1" if low >= 0 and high <= 1 else f"{_plain(low)} --> {_plain(high * 1.05 if high > 0 else 1)}"
    name = re.sub(r"[^A-Za-z0-9 ._-]", "", model.name)[:40]
    labels = ", ".join(f'"{r.name}"' for r in rows)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{name}: base (first bar) vs head (second bar)"',
            f"    x-axis [{labels}]",
            f'    y-axis "value" {axis}',
            f"    bar [{', '.join(_plain(r.base) for r in rows)}]",
            f"    bar [{', '.join(_plain(r.head) for r in rows)}]",
            "```",
        ]
    )


def _per_class(base: Evaluation | None, head: Evaluation | None) -> str:
    if not (base and base.per_class) and not (head and head.per_class):
        return ""
    base_rows = {r.label: r for r in base.per_class} if base else {}
    head_rows = {r.label: r for r in head.per_class} if head else {}
    labels = list(dict.fromkeys([*base_rows, *head_rows]))
    lines = [
        "**Per class** (base → head)",
        "",
        "| Class | Precision | Recall | F1 | Support |",
        "|---|---|---|---|---:|",
    ]
    for label in labels:
        b, h = base_rows.get(label), head_rows.get(label)
        cells = [
            f"{number(getattr(b, attr, None))} → {number(getattr(h, attr, None))}"
            for attr in ("precision", "recall", "f1")
        ]
        support = h.support if h else (b.support if b else None)
        lines.append(f"| {text(label, 60)} | {' | '.join(cells)} | {support if support is not None else '—'} |")
    return "\n".join(lines)


def _confusion(side: str, evaluation: Evaluation | None) -> str:
    if evaluation is None or not evaluation.confusion_matrix:
        return ""
    labels = [text(label, 30) for label in evaluation.confusion_labels] or [
        str(i) for i in range(len(evaluation.confusion_matrix))
    ]
    lines = [
        f"**Confusion matrix — {side}** (rows: true, columns: predicted)",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for label, row in zip(labels, evaluation.confusion_matrix, strict=False):
        lines.append(f"| {label} | " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def _balance(balance: Mapping[str, float], shown: int = 20) -> str:
    """Rows per class (the pipeline sends counts) as shares, largest first."""
    total = sum(balance.values())
    items = sorted(balance.items(), key=lambda item: -item[1])
    parts = [
        f"{text(label, 30)}: {count:g} ({count / total:.1%})" if total > 0 else f"{text(label, 30)}: {count:g}"
        for label, count in items[:shown]
    ]
    if len(items) > shown:
        parts.append(f"… {len(items) - shown} more")
    return ", ".join(parts)


def _fingerprints(model: ModelComparison) -> str:
    lines = [
        "**Fingerprints**",
        "",
        "| | Model sha256 | Dataset | Dataset sha256 | Rows | Features | Class balance |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for side, evaluation in (("base", model.base), ("head", model.head)):
        if evaluation is None:
            lines.append(f"| {side} | — | — | — | — | — | — |")
            continue
        data = evaluation.dataset
        balance = _balance(data.class_balance) if data and data.class_balance else "—"
        cells = [
            side,
            code(evaluation.model_sha256, 16) if evaluation.model_sha256 else "—",
            code(data.path) if data and data.path else "—",
            code(data.sha256, 16) if data and data.sha256 else "—",
            str(data.rows) if data and data.rows is not None else "—",
            str(data.n_features) if data and data.n_features is not None else "—",
            balance,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _details(model: ModelComparison) -> str:
    parts = [
        _per_class(model.base, model.head),
        _confusion("base", model.base),
        _confusion("head", model.head),
        _fingerprints(model),
    ]
    body = "\n\n".join(p for p in parts if p)
    return (
        f"<details><summary>Per-class metrics, confusion matrices and fingerprints — {text(model.name, 60)}"
        f"</summary>\n\n{body}\n\n</details>"
    )


def _model_section(model: ModelComparison) -> _Model:
    gates_ok = "✅ gates pass" if model.passed else "❌ gates fail"
    status = {
        "compared": "",
        "new": " · new model (no base to compare)",
        "base_failed": " · base failed to evaluate",
        "head_failed": " · head failed to evaluate",
    }[model.status]
    parts = [f"### {code(model.name, 60)} ({model.task}) — {gates_ok}{status}"]
    if model.status == "head_failed":
        parts.append(f"> ❌ **The head model failed to evaluate:** {text(model.error or 'unknown error', 1000)}")
    if model.status == "base_failed" and model.base is not None:
        parts.append(
            f"> ⚠️ The base model failed to evaluate ({text(model.base.error or 'unknown error', 500)}); "
            "head values are shown without deltas."
        )
    if model.dataset_warning:
        parts.append(f"> [!WARNING]\n> **Dataset changed.** {text(model.dataset_warning, 600)}")
    parts.append(_metrics_table(model))
    if model.mcnemar is not None:
        test = model.mcnemar
        method = "exact binomial" if test.method == "exact" else "χ² with continuity correction"
        parts.append(
            f"McNemar's test on accuracy: {test.base_only_correct} rows only the base got right, "
            f"{test.head_only_correct} only the head; p = {test.p_value:.3g} ({method})."
        )
    elif model.status == "compared" and not model.paired:
        parts.append("_Intervals are unpaired: base and head were not evaluated on the same rows._")
    parts.append("**Gates**\n\n" + _gates_table(model.gates))
    chart = _chart(model)
    if chart:
        parts.append(chart)
    return _Model("\n\n".join(parts), _details(model))


def _footer(head_sha: str | None, base_sha: str | None) -> str:
    shas = ""
    if head_sha:
        shas = f"Head {code(head_sha[:12])}" + (f" against base {code(base_sha[:12])}" if base_sha else "") + ". "
    return (
        f"<sub>{shas}Deltas are head − base; intervals are 95% paired bootstrap intervals on the same "
        f"evaluation rows. {_RERUN_HINT}</sub>"
    )


# --------------------------------------------------------------------------- size cap


def fit(body: str, limit: int) -> str:
    """Cut the middle of ``body`` on line boundaries so that it fits ``limit``, and say so."""
    if len(body) <= limit:
        return body
    notice = "\n\n> ✂️ **{n:,} characters were cut here** to stay within GitHub's size limit.\n\n"
    lines = body.split("\n")
    budget = limit - len(notice) - 40
    head: list[str] = []
    tail: list[str] = []
    head_size = tail_size = 0
    # Keep both the start (the verdict) and the end (the hints): take about two lines from the top
    # for each one from the bottom, until the next line no longer fits.
    i, j = 0, len(lines) - 1
    while i <= j:
        take_head = head_size <= tail_size * 2
        line = lines[i] if take_head else lines[j]
        if head_size + tail_size + len(line) + 1 > budget:
            break
        if take_head:
            head.append(line)
            head_size += len(line) + 1
            i += 1
        else:
            tail.append(line)
            tail_size += len(line) + 1
            j -= 1
    top, bottom = "\n".join(head), "\n".join(reversed(tail))
    # An odd number of fences means the cut fell inside a code block: close it, reopen after.
    if top.count("```") % 2:
        top += "\n```"
    if bottom.count("```") % 2:
        bottom = "```\n" + bottom
    cut = len(body) - len(top) - len(bottom)
    result = top + notice.format(n=max(cut, 0)) + bottom
    return result if len(result) <= limit else result[:limit]


def _assemble(
    review: ReviewComparison,
    *,
    marker: bool,
    fold: bool,
    head_sha: str | None,
    base_sha: str | None,
    optimization: str | None,
    deploy: str | None,
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> str:
    parts = [REVIEW_MARKER] if marker else []
    if problems:
        parts.append(_verification_failed(problems))
    parts.append(_headline(review))
    if notes:
        # Written by the bot from validated config values and its own hashes: Markdown as is.
        # A note that starts with ℹ️ is information (a reused sandbox result), the others warnings.
        parts.append("\n".join(f"> {n[:400]}" if n.startswith("ℹ️") else f"> ⚠️ {n[:400]}" for n in notes))
    for model in review.models:
        section = _model_section(model)
        parts.append(section.core)
        if fold:
            parts.append(f"<sub>Details for {code(model.name, 60)} are folded away to fit GitHub's size limit.</sub>")
        else:
            parts.append(section.details)
    if optimization:
        parts.append("## Optimization\n\n" + optimization.strip())
    if deploy:
        parts.append("## Deploy\n\n" + deploy.strip())
    parts.append(_footer(head_sha, base_sha))
    return "\n\n".join(parts) + "\n"


def _verification_failed(problems: Sequence[str]) -> str:
    lines = "\n".join(f"- {p[:400]}" for p in problems)  # the bot's own words (validated names, hex)
    return (
        "❌ **Modelship review: the sandbox's result failed the bot's own verification.** The numbers below "
        "came from a run that reported other bytes than the bot hashed, so they prove nothing and nothing "
        f"from this head can be deployed:\n\n{lines}"
    )


def render_review_comment(
    review: ReviewComparison,
    *,
    head_sha: str | None = None,
    base_sha: str | None = None,
    optimization: str | None = None,
    deploy: str | None = None,
    limit: int = COMMENT_LIMIT,
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> str:
    """The sticky comment body; ``optimization`` and ``deploy`` are pre-rendered Markdown sections.

    ``notes`` are warnings shown under the headline (e.g. a limit the server lowered); ``problems``
    are verification failures that void the review.
    """
    options: dict[str, Any] = {
        "head_sha": head_sha,
        "base_sha": base_sha,
        "optimization": optimization,
        "deploy": deploy,
        "notes": notes,
        "problems": problems,
    }
    body = _assemble(review, marker=True, fold=False, **options)
    if len(body) <= limit:
        return body
    body = _assemble(review, marker=True, fold=True, **options)
    return fit(body, limit)


def render_check_run(
    review: ReviewComparison,
    *,
    head_sha: str | None = None,
    base_sha: str | None = None,
    optimization: str | None = None,
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> dict[str, str]:
    """Output and conclusion for the `modelship/review` check run."""
    failed_models = [m.name for m in review.models if m.status == "head_failed"]
    failed_gates = [g for m in review.models for g in m.gates if g.status == "fail"]
    if problems:
        title = "Sandbox result failed verification: " + problems[0]
    elif failed_models:
        title = "Failed to evaluate " + ", ".join(failed_models)
    elif failed_gates:
        title = f"{len(failed_gates)} gate{'s' if len(failed_gates) != 1 else ''} failed"
    else:
        title = f"All gates pass ({len(review.models)} model{'s' if len(review.models) != 1 else ''})"
    options: dict[str, Any] = {
        "head_sha": head_sha,
        "base_sha": base_sha,
        "optimization": optimization,
        "deploy": None,
        "notes": notes,
        "problems": problems,
    }
    summary = fit(_assemble(review, marker=False, fold=True, **options), SUMMARY_LIMIT)
    details = "\n\n".join(_model_section(m).details for m in review.models)
    return {
        "title": title[:200],
        "summary": summary,
        "text": fit(details, SUMMARY_LIMIT),
        "conclusion": "success" if review.passed and not problems else "failure",
    }


# --------------------------------------------------------------------------- other sticky states


def render_config_error(problems: Sequence[ConfigProblem], *, path: str = CONFIG_PATH, ref: str | None = None) -> str:
    """The sticky comment when the base branch's config is invalid: every problem with key and line."""
    where = f" on {code(ref)}" if ref else ""
    lines = [
        REVIEW_MARKER,
        f"❌ **Modelship review: {code(path)}{where} is invalid**, so nothing was evaluated.",
        "",
        "| Line | Key | Problem |",
        "|---:|---|---|",
    ]
    shown = list(problems)[:100]
    for problem in shown:
        line = str(problem.line) if problem.line is not None else "—"
        lines.append(f"| {line} | {code(problem.key or '(top level)')} | {text(problem.message, 400)} |")
    if len(problems) > len(shown):
        lines.append(f"\n…and {len(problems) - len(shown)} more problems.")
    lines += [
        "",
        "The config is read from the PR's base branch: fix it there (merge the fix first), then comment "
        "`/modelship evaluate` here. The JSON Schema for editors is `config/modelship.schema.json`.",
    ]
    return fit("\n".join(lines) + "\n", COMMENT_LIMIT)


def render_config_error_check_run(problems: Sequence[ConfigProblem], *, path: str = CONFIG_PATH) -> dict[str, str]:
    first = problems[0] if problems else None
    title = f"Invalid {path}" + (f": line {first.line}, {first.key or 'top level'}" if first and first.line else "")
    body = render_config_error(problems, path=path).replace(REVIEW_MARKER + "\n", "", 1)
    return {"title": title[:200], "summary": fit(body, SUMMARY_LIMIT), "text": "", "conclusion": "failure"}


def render_waiting_for_approval(*, head_sha: str, author: str, app_slug: str = "modelship") -> str:
    """The sticky comment for a PR whose code must not run before a maintainer approves this SHA."""
    return (
        f"{REVIEW_MARKER}\n"
        f"⏸️ **Modelship review: waiting for approval.** This PR comes from a fork or from an author "
        f"without write access ({code(author, 60)}), so nothing from it runs until a maintainer approves.\n\n"
        f"A maintainer can comment `/modelship ok-to-test` (or `@{app_slug} ok-to-test`) to evaluate "
        f"head {code(head_sha[:12])}. The approval covers this commit only: "
        "a new push needs a new approval.\n"
    )


def render_in_progress(*, head_sha: str, models: Sequence[str] = ()) -> str:
    names = ", ".join(code(m, 60) for m in models)
    what = f" {names}" if names else ""
    return (
        f"{REVIEW_MARKER}\n⏳ **Modelship review: evaluating{what}** on head {code(head_sha[:12])}… "
        "This comment is updated when the results are in.\n"
    )


def is_review_comment(body: str | None) -> bool:
    """Whether a comment is the sticky review comment (also check that the bot wrote it)."""
    return bool(body) and REVIEW_MARKER in (body or "")


def render_tree_refused(reason: str, *, head_sha: str, hint: str | None = None) -> tuple[str, dict[str, str]]:
    """Comment and check-run output when the PR's tree cannot be exported for the sandbox (nothing ran)."""
    body = (
        f"{REVIEW_MARKER}\n❌ **Modelship review: head `{head_sha[:12]}` cannot be reviewed.** Nothing from it "
        f"was run.\n\n{text(reason, 1000)}\n\n"
        + (
            hint
            or "Remove the offending file (symbolic links must stay inside the repository) or ask an operator "
            "about the export limits."
        )
        + "\n"
    )
    check = {
        "title": "The PR's files cannot be reviewed",
        "summary": text(reason, 1000),
        "text": "",
        "conclusion": "failure",
    }
    return body, check


RERUN = "Comment `/modelship evaluate` on this PR to run the review again."


def render_review_failed(
    *, head_sha: str, failure: str, error: str, job_id: int, attempts: int
) -> tuple[str, dict[str, str]]:
    """The sticky comment and the completed check run of a review that ended without a result.

    ``failure`` is a ``bot.errors.Failure`` value. A problem in the PR fails the check; anything else
    cancels it — never ``neutral``, which branch protection would count as passing.
    """
    kind, _, message = error.partition(": ")
    sha = code(head_sha[:12])
    operator = f"An operator can see job {job_id} with `modelship jobs`."
    if failure == "input":
        title, conclusion = "The review cannot run on this PR", "failure"
        lead = f"❌ **Modelship review failed** on head {sha}: {code(message or kind, 1000)}"
        advice = f"Fix this in the PR (or in `{CONFIG_PATH}` on the base branch) and push. {RERUN}"
    elif failure == "bug":
        title, conclusion = "The review stopped on an internal error", "cancelled"
        lead = f"⚠️ **Modelship review stopped by an internal error** ({code(kind, 80)}) on head {sha}."
        advice = f"This is not a problem in your PR. {operator} {RERUN}"
    else:
        title, conclusion = "The review could not run", "cancelled"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        lead = f"⚠️ **Modelship review could not run**{tries} on head {sha}: {code(message or kind, 1000)}"
        advice = (
            "This is not a problem in your PR: a service the review needs (git hosting, the GitHub API or "
            f"the evaluation sandbox) failed. {RERUN} {operator}"
        )
    comment = f"{REVIEW_MARKER}\n{lead}\n\n{advice}\n"
    summary = f"{lead}\n\n{advice}\n"
    return comment, {"title": title, "summary": fit(summary, SUMMARY_LIMIT), "text": "", "conclusion": conclusion}


def render_published(published: Mapping[str, tuple[str, str | None, str | None]], registry: str) -> str | None:
    """The comment's Deploy section for published variants: ``model -> (variant, reference, why not)``.

    The reference is the bot's (registry/repo@sha256:…, validated digests); ``why`` is the registry's
    answer, shown as code. None when nothing was kept to publish.
    """
    if not published:
        return None
    lines = []
    for model, (variant, reference, why) in published.items():
        if reference:
            lines.append(f"- {code(model, 60)} ({code(variant, 40)}) published as {code(reference, 300)}")
        else:
            lines.append(
                f"- ⚠️ {code(model, 60)} ({code(variant, 40)}) was **not published** to {code(registry, 120)}: "
                f"{code(why or 'unknown error', 300)}. A deploy publishes it from the kept files, or says why not."
            )
    return "\n".join(lines)
