"""pull_request closed + merged into the default branch: queue the deploy job (bot.deploy.service)."""

from __future__ import annotations

import logging

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.config.repo import RepoConfigError
from bot.context import Services, need
from bot.deploy.service import enqueue_merge
from bot.deploy.targets import DeployFailure, MergeRequest, iso_seconds

log = logging.getLogger(__name__)
router = routing.Router()


@router.register("pull_request", action="closed")
async def on_merged(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    if gh is None:
        return  # not delivered through an installation: nothing we may act on
    data = event.data
    pr, repository = data["pull_request"], data["repository"]
    if not pr.get("merged") or not pr.get("merge_commit_sha"):
        return  # closed without merging: nothing shipped
    if pr["base"]["ref"] != repository.get("default_branch"):
        return  # only the default branch is deployed
    repo = repository["full_name"]
    try:
        # Policy from the base the PR was reviewed against, never from the PR's own copy.
        config = await need(services.deploy, "deploy").config_at(gh, repo, pr["base"]["sha"])
    except (RepoConfigError, DeployFailure) as exc:
        log.info("merge of %s#%s not deployed: %s", repo, pr["number"], exc)
        return
    if config is None or config.deploy is None or not config.environments:
        return
    request = MergeRequest(
        repo=repo,
        number=int(pr["number"]),
        installation_id=int(data["installation"]["id"]),
        merge_sha=str(pr["merge_commit_sha"]),
        base_sha=str(pr["base"]["sha"]),
        head_sha=str(pr["head"]["sha"]),
        merged_at=iso_seconds(pr.get("merged_at")),
        actor=str((pr.get("merged_by") or data.get("sender") or {}).get("login", "")),
        deploy_repo=config.deploy.repository,
    )
    async with services.engine.begin() as conn:
        await enqueue_merge(conn, request)
