"""Writing one target into the deploy repository: a commit, a PR for a protected environment, or (dry
run) the diff. The tenancy rules (bot.deploy.tenancy) decide which deploy repository a model repository
may write to; Helm (bot.deploy.helm) judges every values file before it is committed or proposed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config.deploy_allowlist import DeployAllowlist
from bot.config.repo import RepoConfig
from bot.context import GitHubAppPort
from bot.deploy.chart import ModelServerChart
from bot.deploy.gitops import DeployRepo, Edit, RetryPolicy
from bot.deploy.helm import check_values
from bot.deploy.manifest import ManifestError, Plan, commit_message, plan_deploy, pr_branch_name, values_path
from bot.deploy.render import refused
from bot.deploy.targets import DeployFailure, Result, Target, not_written
from bot.deploy.tenancy import decide
from bot.github.installations import Installations, from_table
from bot.github.pulls import open_or_update_pull

log = logging.getLogger(__name__)


class DeployWriter:
    def __init__(
        self,
        github: GitHubAppPort,
        engine: AsyncEngine,
        *,
        chart: ModelServerChart,
        web_url: str,
        data_dir: Path,
        bot_login: str,
        retry: RetryPolicy | None = None,
        allowlist: DeployAllowlist | None = None,
    ) -> None:
        self.github = github
        self.chart = chart
        self.web_url = web_url
        self.data_dir = data_dir
        self.bot_login = bot_login
        self.retry = retry
        self.allowlist = allowlist or DeployAllowlist.default()  # MODELSHIP_DEPLOY_ALLOWLIST
        self.installations = Installations(github, from_table(engine))
        self._repos: dict[str, DeployRepo] = {}

    async def target_repo(self, model_repo: str, model_installation: int, deploy_name: str) -> tuple[DeployRepo, int]:
        """The deploy repository ``model_repo`` may use, with its installation; DeployFailure naming the rule
        (bot.deploy.tenancy) otherwise. Every read and write of a deploy repository comes through here."""
        deploy_installation = await self.installations(deploy_name)
        refusal = decide(model_repo, model_installation, deploy_name, deploy_installation, self.allowlist)
        if refusal is not None:
            log.warning("deploy from %s to %s refused (%s): %s", model_repo, deploy_name, refusal.rule, refusal)
            raise DeployFailure(str(refusal))
        assert deploy_installation is not None
        return await self._deploy_repo(deploy_name, deploy_installation), deploy_installation

    async def _deploy_repo(self, full_name: str, installation_id: int) -> DeployRepo:
        repo = self._repos.get(full_name)
        if repo is None:
            github = self.github
            workdir = self.data_dir / "deploy" / full_name.replace("/", "__")
            repo = DeployRepo(
                await github.clone_url(full_name, installation_id),
                workdir,
                token=github.git_token(installation_id),
                author_name=self.bot_login,
                author_email=f"{self.bot_login}@users.noreply.github.com",
                retry=self.retry,
            )
            self._repos[full_name] = repo
        return repo

    async def write(
        self,
        gh: GitHubAPI,
        repo: str,
        config: RepoConfig,
        target: Target,
        *,
        installation_id: int,
        actor: str,
        action: str = "deploy",
        dry_run: bool = False,
        reason: str | None = None,
    ) -> Result:
        """Plan and write one target: a commit, a deploy-repo PR, or (dry run) the diff."""
        assert config.deploy is not None
        deploy_name = config.deploy.repository
        ref, env = target.ref, target.env
        path = values_path(env, ref.name, config.deploy.path_template)
        plans: list[Plan] = []

        def edit(text: str | None) -> str | None:
            # Helm itself judges the new values (schema with Go's regexps, templates): it runs here, in
            # the deploy repository's worker thread, before anything is committed or proposed.
            plan = plan_deploy(text, ref, env=env)
            plans.append(plan)
            if plan.text is not None:
                check_values(self.chart.path, plan.text)
            return plan.text

        source_url = f"{self.web_url}/{ref.repository}/pull/{ref.source_pr}" if ref.source_pr else None
        message = commit_message(
            ref,
            env,
            action=action,
            source_pr_url=source_url,
            metrics=target.metrics,
            actor=actor,
            reason=reason,
            override=target.override,
        )
        deploy, deploy_installation = await self.target_repo(repo, installation_id, deploy_name)
        try:
            if dry_run:
                diff = await deploy.preview({path: edit})
                return Result(env, ref.name, "dry-run", plans[-1].reason if plans else "", ref, diff=diff)
            if target.via_pr:
                return await self._propose(deploy, deploy_name, deploy_installation, target, path, edit, message, plans)
            done = await deploy.commit({path: edit}, message)
        except ManifestError as exc:  # Helm's refusal, or a values file that is not a YAML mapping
            return Result(env, ref.name, "invalid", refused(exc, path, deploy_name), ref)
        if done.changed:
            return Result(env, ref.name, "deployed", "", ref, deploy_commit=done.sha)
        return not_written(env, ref, plans)

    async def _propose(
        self,
        deploy: DeployRepo,
        deploy_name: str,
        deploy_installation: int,
        target: Target,
        path: str,
        edit: Edit,
        message: str,
        plans: list[Plan],
    ) -> Result:
        ref = target.ref
        branch = pr_branch_name(target.env, ref.name)
        done = await deploy.open_or_update_pr_branch(branch, {path: edit}, message)
        if plans and not plans[-1].changed and plans[-1].reason != "unchanged":
            return not_written(target.env, ref, plans)
        deploy_gh = await self.github.for_installation(deploy_installation)
        title, _, rest = message.partition("\n")
        pull = await open_or_update_pull(deploy_gh, deploy_name, branch, deploy.branch, title, rest.strip() or title)
        if pull is None:
            return not_written(target.env, ref, plans)
        state = "proposed" if done.changed else "unchanged"
        return Result(target.env, ref.name, state, "", ref, deploy_pr=int(pull["number"]))
