"""What ``modelship status`` and the chat-ops ``status`` command show of the guard.

Each environment's running version, health, last check values and alerts, and the rollback
incidents; ``render`` is pure, ``status_text`` reads the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.guard import store
from bot.guard.store import IncidentView, StoredCheck
from bot.store.deployments import DeploymentView, current_deployments


def _cell(text: str | None, limit: int = 120) -> str:
    if not text:
        return ""
    text = " ".join(text.split()).replace("|", "\\|").replace("@", "@\u200b")
    return text if len(text) <= limit else text[:limit] + "…"


def _checks(checks: Mapping[str, StoredCheck]) -> str:
    if not checks:
        return "not checked yet"
    parts = []
    for key, c in sorted(checks.items()):
        value = f"{c.state.last_value:.4g}" if c.state.last_value is not None else (c.state.last_outcome or "n/a")
        parts.append(f"{key}={value} ({c.decision or 'pending'})")
    return "; ".join(parts)


def render(
    deployments: Sequence[DeploymentView],
    checks: Mapping[int, Mapping[str, StoredCheck]],
    incidents: Sequence[IncidentView],
) -> str:
    lines = ["**Guard**", ""]
    if deployments:
        lines += [
            "| Repository | Environment | Model | Version | Health | Pinned | Last checks |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for d in deployments:
            lines.append(
                f"| {d.repo} | {d.environment} | {d.model} | `{d.short}` | {d.health} | "
                f"{'yes' if d.pinned else 'no'} | {_cell(_checks(checks.get(d.id, {})), 300)} |"
            )
    else:
        lines.append("No deployments yet.")
    alerts = [
        (d, c)
        for d in deployments
        for c in checks.get(d.id, {}).values()
        if c.state.alert_open or c.decision in ("error", "error-alert")
    ]
    if alerts:
        lines += ["", "**Alerts** (Prometheus queries failing: never a rollback)", ""]
        for d, c in alerts:
            level = "ALERT" if c.state.alert_open else "error"
            lines.append(
                f"- {level}: {d.repo} {d.environment} {d.model} `{c.check_key}`: "
                f"{c.state.consecutive_errors} failed queries in a row: {_cell(c.state.last_error, 200)}"
            )
    opened = [i for i in incidents if i.is_open or i.state == "failed"]
    lines += ["", "**Open incidents**", ""]
    if opened:
        for i in opened:
            pr = f"PR {i.pr_url}" if i.pr_url else "PR not opened yet"
            error = f"; last error: {_cell(i.last_error, 200)}" if i.last_error else ""
            target = f"`{i.target_version[:7]}`" if i.target_version else "nothing to restore"
            lines.append(
                f"- {i.repo} {i.environment} {i.model}: `{i.bad_version[:7]}` -> {target}, {pr} "
                f"({i.state}, {i.trigger}){error}"
            )
    else:
        lines.append("None.")
    return "\n".join(lines)


async def status_text(engine: AsyncEngine, repo: str | None = None) -> str:
    async with engine.connect() as conn:
        deployments = await current_deployments(conn, repo)
        checks = await store.load_states(conn, deployments)
        incidents = await store.incidents(conn, repo=repo, limit=50)
    return render(deployments, checks, incidents)
