"""What people read about deploys: the sticky Deploy comment, chat-ops replies, the status section, the
GitHub Deployment's description and statuses, and why a values file was refused.

Pure: rows (bot.store.deployments) and results (bot.deploy.targets) in, Markdown or request bodies out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.chatops.status import cell
from bot.deploy.helm import HelmRefused
from bot.deploy.manifest import ManifestError, ModelRef
from bot.deploy.targets import Result
from bot.github.sticky import marker

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


def render_section(rows: Sequence[Row], web_url: str) -> str:
    """The sticky Deploy comment: the newest state of each (environment, model) of this PR."""
    lines = [
        MARK,
        "### Modelship · Deploy",
        "",
        "| Environment | Model | Version | State | Where |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        where = ""
        if row["deploy_commit"]:
            where = f"[{row['deploy_commit'][:7]}]({web_url}/{row['deploy_repo']}/commit/{row['deploy_commit']})"
        elif row["deploy_pr"]:
            where = f"[{row['deploy_repo']}#{row['deploy_pr']}]({web_url}/{row['deploy_repo']}/pull/{row['deploy_pr']})"
        lines.append(
            f"| `{row['environment']}` | `{row['model']}` | `{row['version'][:7]}` ({row['variant']}) "
            f"| {_STATE_LABEL.get(row['state'], row['state'])} | {where} |"
        )
    problems = [r for r in rows if r["detail"] and r["state"] in ("failed", "skipped")]
    for row in problems:
        lines += ["", f"**{row['environment']} / {row['model']}** — {row['state']}:", "", row["detail"]]
    return "\n".join(lines) + "\n"


def describe(results: Iterable[Result], web_url: str, deploy_repo: str) -> str:
    """A chat-ops reply body for the results of one command."""
    out: list[str] = []
    for r in results:
        head = f"**{r.env} / {r.model}**"
        if r.state == "deployed" and r.deploy_commit:
            out.append(f"{head}: committed [{r.deploy_commit[:7]}]({web_url}/{deploy_repo}/commit/{r.deploy_commit}).")
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


def render_status(rows: Iterable[Row]) -> str:
    """The Deployments section of `/modelship status`: the newest state of each environment and model."""
    newest = {(row["environment"], row["model"]): row for row in newest_per_target(rows)}
    lines = ["**Deployments**", ""]
    if not newest:
        return "\n".join([*lines, "Nothing deployed from this repository yet.", ""])
    lines += ["| Environment | Model | Version | State | Health | Detail |", "| --- | --- | --- | --- | --- | --- |"]
    for (env, model), row in sorted(newest.items()):
        lines.append(
            f"| {cell(env)} | {cell(model)} | `{row['version'][:7]}` | {row['state']} | {row['health']} "
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


def github_statuses(row: Row, web_url: str, deploy_repo: str, failure: str = "failure") -> list[dict[str, Any]]:
    """The statuses a new GitHub Deployment gets for its row, in order. ``failure``: the status of a
    failed row (``failure``: refused; ``error``: it broke)."""
    if row["state"] == "deployed" and row["deploy_commit"]:
        commit_url = f"{web_url}/{deploy_repo}/commit/{row['deploy_commit']}"
        return [
            {"state": "in_progress", "log_url": commit_url},
            {
                "state": "success",
                "log_url": commit_url,
                "environment_url": commit_url,
                "description": f"committed {row['deploy_commit'][:7]} to {deploy_repo}",
            },
        ]
    if row["state"] == "pending" and row["deploy_pr"]:
        pr_url = f"{web_url}/{deploy_repo}/pull/{row['deploy_pr']}"
        return [{"state": "queued", "log_url": pr_url, "description": f"waiting for {deploy_repo}#{row['deploy_pr']}"}]
    return [{"state": failure, "description": (row["detail"] or "failed")[:MAX_DESCRIPTION]}]
