"""What people read about deploys: the sticky Deploy comment, chat-ops replies, the status section, the
GitHub Deployment's description and statuses, and why a values file was refused.

Pure: rows (bot.store.deployments) and results (bot.deploy.targets) in, Markdown or request bodies out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.chatops.status import cell
from bot.deploy.helm import HelmRefused
from bot.deploy.manifest import ManifestError, ModelRef
from bot.deploy.rollout import duration
from bot.deploy.targets import Result
from bot.github.sticky import marker
from bot.store.deployments import COMMITTED, LIVE, NOT_LIVE, ROLLING_OUT

MARK = marker("deploy")
MAX_DESCRIPTION = 140  # GitHub's limit for a deployment (status) description

Row = Mapping[Any, Any]  # a deployments row (SQLAlchemy RowMapping, or a dict)

_STATE_LABEL = {
    "deployed": "✅ deployed",
    "pending": "⏳ deploy PR open",
    "failed": "❌ failed",
    "skipped": "⏭️ skipped",
    "superseded": "superseded",
    "rolled_back": "↩️ rolled back",
    "abandoned": "🚫 deploy PR closed unmerged",
}


def newest_per_target(rows: Iterable[Row]) -> list[Row]:
    """The newest row of each (environment, model) among ``rows`` (oldest first)."""
    newest: dict[tuple[str, str], Row] = {}
    for row in rows:
        newest[(row["environment"], row["model"])] = row
    return list(newest.values())


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _time(at: datetime | None) -> str:
    stamp = _utc(at)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC") if stamp is not None else ""


def took(row: Row) -> float | None:
    """Seconds from the deploy commit to live (None: not live)."""
    committed, live = _utc(row.get("committed_at")), _utc(row.get("live_at"))
    return (live - committed).total_seconds() if committed is not None and live is not None else None


def _deploy_cell(row: Row, web_url: str) -> str:
    label = str(_STATE_LABEL.get(row["state"], row["state"]))
    if row["deploy_commit"]:
        link = f"[{row['deploy_commit'][:7]}]({web_url}/{row['deploy_repo']}/commit/{row['deploy_commit']})"
        at = _time(row.get("committed_at"))
        return f"{label}: committed {link}" + (f" at {at}" if at else "")
    if row["deploy_pr"]:
        link = f"[{row['deploy_repo']}#{row['deploy_pr']}]({web_url}/{row['deploy_repo']}/pull/{row['deploy_pr']})"
        return f"{label}: {link}"
    return label


def _live_cell(row: Row) -> str:
    phase = row.get("rollout")
    if phase == LIVE:
        seconds = took(row)
        after = f" ({duration(seconds)} after the commit)" if seconds is not None else ""
        return f"✅ live at {_time(row.get('live_at'))}{after}"
    if phase == NOT_LIVE:
        return "❌ not live (below)"
    if phase == ROLLING_OUT:
        return f"🔄 rolling out: {cell(row.get('rollout_detail'), 500) or 'replicas are changing'}"
    if phase == COMMITTED:
        if row.get("rollout_detail"):  # what the tracker saw; a stuck rollout's cause leads it
            return f"⏳ not serving it yet: {cell(row['rollout_detail'], 500)}"
        return "⏳ waiting for the replicas to serve it"
    return "—"


def _guard_cell(row: Row) -> str:
    if row["state"] == "rolled_back":
        return "↩️ rolled back"
    return {"healthy": "✅ healthy", "degraded": "❌ degraded", "inconclusive": "❔ inconclusive"}.get(
        row["health"], "—"
    )


def render_section(rows: Sequence[Row], web_url: str) -> str:
    """The PR's dossier (its sticky Deploy comment): per environment and model of this PR, the deploy (commit
    and when), live (when every replica served it, and how long that took) and the guard's verdict."""
    lines = [
        MARK,
        "### Modelship · Deploy",
        "",
        "| Environment | Model | Version | Deploy | Live | Guard |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['environment']}` | `{row['model']}` | `{row['version'][:7]}` ({row['variant']}) "
            f"| {_deploy_cell(row, web_url)} | {_live_cell(row)} | {_guard_cell(row)} |"
        )
    for row in rows:
        # Failures and skips say why; a deployed row with a detail says what was overridden (`--force`).
        if row["detail"] and row["state"] in ("failed", "skipped", "deployed"):
            lines += ["", f"**{row['environment']} / {row['model']}** — {row['state']}:", "", row["detail"]]
        if row.get("rollout") == NOT_LIVE:
            why = row.get("rollout_detail") or "not live by the progress deadline"
            lines += ["", f"**{row['environment']} / {row['model']}** — not live:", "", why]
    return "\n".join(lines) + "\n"


def describe(results: Iterable[Result], web_url: str, deploy_repo: str) -> str:
    """A chat-ops reply body for the results of one command."""
    out: list[str] = []
    for r in results:
        head = f"**{r.env} / {r.model}**"
        if r.state == "deployed" and r.deploy_commit:
            note = f" ({r.detail})" if r.detail else ""  # an override says so (`--force`)
            out.append(
                f"{head}: committed [{r.deploy_commit[:7]}]({web_url}/{deploy_repo}/commit/{r.deploy_commit}){note}."
            )
        elif r.state == "proposed" and r.deploy_pr:
            out.append(f"{head}: opened or updated {deploy_repo}#{r.deploy_pr} (protected environment).")
        elif r.state == "dry-run":
            diff = r.diff.strip() or "(no change: nothing would be written)"
            note = f" ({r.detail})" if r.detail and r.detail != "update" else ""
            out.append(
                f"{head}: dry run, nothing was written{note}. The deploy repository would change by:\n\n"
                f"```diff\n{diff}\n```"
            )
        elif r.state == "unchanged":
            out.append(f"{head}: already at this version; nothing to write.")
        else:
            out.append(f"{head}: {r.state} — {r.detail}")
    return "\n\n".join(out) or "Nothing to do."


def _state_and_rollout(row: Row) -> str:
    """`deployed · live`: the row's state and, for a deploy that ran, how far its rollout got."""
    phase = row.get("rollout")
    return f"{row['state']} · {str(phase).replace('_', ' ')}" if phase else str(row["state"])


def render_status(rows: Iterable[Row]) -> str:
    """The Deployments section of `/modelship status`: the newest state of each environment and model."""
    newest = {(row["environment"], row["model"]): row for row in newest_per_target(rows)}
    lines = ["**Deployments**", ""]
    if not newest:
        return "\n".join([*lines, "Nothing deployed from this repository yet.", ""])
    lines += ["| Environment | Model | Version | State | Health | Detail |", "| --- | --- | --- | --- | --- | --- |"]
    for (env, model), row in sorted(newest.items()):
        lines.append(
            f"| {cell(env)} | {cell(model)} | `{row['version'][:7]}` | {_state_and_rollout(row)} | {row['health']} "
            f"| {cell(row['detail'], 120)} |"
        )
    return "\n".join(lines) + "\n"  # a blank line ends the table before the next section


def refused(exc: ManifestError, path: str, deploy_repo: str) -> str:
    """Why a values file was not committed: Helm's own words, or why the file cannot be edited at all."""
    if isinstance(exc, HelmRefused):
        named = exc.refusal.values
        naming = f" ({', '.join(f'`{v}`' for v in named)})" if named else ""
        return (
            f"Helm refused to render charts/model-server with the values for `{path}` in `{deploy_repo}`"
            f"{naming}, so nothing was committed:\n```\n{exc.refusal.message}\n```"
        )
    problems = "\n".join(f"- `{p.replace('`', chr(39))}`" for p in exc.problems)
    return f"the values file `{path}` in `{deploy_repo}` cannot be edited, so nothing was committed:\n{problems}"


def github_deployment(ref: ModelRef, env: str, deploy_repo: str) -> dict[str, Any]:
    """The body that creates the GitHub Deployment of one version in one environment."""
    return {
        "ref": ref.revision,
        "environment": env,
        "auto_merge": False,
        "required_contexts": [],
        "description": f"{ref.name} {ref.short} ({ref.variant})"[:MAX_DESCRIPTION],
        "payload": {"model": ref.name, "deploy_repository": deploy_repo, "sha256": ref.sha256},
        "production_environment": env == "production",
    }


def github_statuses(
    row: Row, web_url: str, deploy_repo: str, failure: str = "failure", *, live_tracking: bool = False
) -> list[dict[str, Any]]:
    """The statuses a new GitHub Deployment gets for its row, in order. ``failure``: the status of a
    failed row (``failure``: refused; ``error``: it broke). With ``live_tracking`` a committed deploy is
    only ``in_progress``: bot.deploy.live adds ``success`` once every replica serves it."""
    if row["state"] == "deployed" and row["deploy_commit"]:
        commit_url = f"{web_url}/{deploy_repo}/commit/{row['deploy_commit']}"
        committed = f"committed {row['deploy_commit'][:7]} to {deploy_repo}"
        progress = {"state": "in_progress", "log_url": commit_url, "environment_url": commit_url}
        if live_tracking:
            return [progress | {"description": f"{committed}; waiting until every replica serves it"}]
        return [
            progress,
            {"state": "success", "log_url": commit_url, "environment_url": commit_url, "description": committed},
        ]
    if row["state"] == "pending" and row["deploy_pr"]:
        pr_url = f"{web_url}/{deploy_repo}/pull/{row['deploy_pr']}"
        return [{"state": "queued", "log_url": pr_url, "description": f"waiting for {deploy_repo}#{row['deploy_pr']}"}]
    return [{"state": failure, "description": (row["detail"] or "failed")[:MAX_DESCRIPTION]}]


def rollout_status(row: Row, web_url: str) -> dict[str, Any] | None:
    """The GitHub Deployment status that says a deployment's rollout phase (None: GitHub shows it already:
    ``in_progress`` is posted at the commit). ``log_url`` is the PR's dossier when a PR shipped it."""
    phase = row.get("rollout")
    if phase not in (LIVE, NOT_LIVE):
        return None
    log_url, commit_url = _status_urls(row, web_url)
    if phase == LIVE:
        seconds = took(row)
        after = f" {duration(seconds)} after the commit" if seconds is not None else ""
        description = f"live: every ready replica serves {row['sha256'][:12]}{after}"
        state = "success"
    else:
        description = str(row.get("rollout_detail") or "not live by the progress deadline")
        state = "failure"
    return {
        "state": state,
        "log_url": log_url,
        "environment_url": commit_url,
        "description": description[:MAX_DESCRIPTION],
    }


def stuck_status(row: Row, detail: str, web_url: str) -> dict[str, Any]:
    """The ``in_progress`` GitHub Deployment status that says why a rollout is stuck: ``detail`` leads with the
    cause (bot.deploy.kube_rollout.with_rollout), cut to GitHub's 140 characters with an ellipsis."""
    log_url, commit_url = _status_urls(row, web_url)
    return {"state": "in_progress", "log_url": log_url, "environment_url": commit_url, "description": clip(detail)}


def clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _status_urls(row: Row, web_url: str) -> tuple[str, str]:
    """A Deployment status's ``log_url`` (the PR's dossier when a PR shipped it, else the commit) and
    ``environment_url`` (the deploy commit)."""
    commit_url = f"{web_url}/{row['deploy_repo']}/commit/{row['deploy_commit']}" if row["deploy_commit"] else ""
    log_url = f"{web_url}/{row['repo']}/pull/{row['source_pr']}" if row.get("source_pr") else commit_url
    return log_url, commit_url
