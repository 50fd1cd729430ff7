"""The REST subset of GitHub's API that the bot uses, with GitHub's auth rules and error shapes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devkit.devhub import render
from devkit.devhub.auth import AuthError, bearer, verify_app_jwt
from devkit.devhub.githttp import RefUpdate
from devkit.devhub.gitstore import ZERO_SHA, MergeConflict
from devkit.devhub.http import GitHubError, invalid, json_response, not_found, paginate
from devkit.devhub.hub import DevHub
from devkit.devhub.model import (
    App,
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    Installation,
    Pull,
    Repo,
    Review,
    Status,
    iso,
    next_id,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_COMMENT = 65536
MAX_SUMMARY = 65535
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
STATUS_STATES = ("error", "failure", "pending", "success")
DEPLOY_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


async def body_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise GitHubError(400, "Problems parsing JSON") from exc
    if not isinstance(data, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return data


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise not_found() from None


def _require(data: dict[str, Any], resource: str, *names: str) -> None:
    for name in names:
        if data.get(name) in (None, ""):
            raise invalid(resource, name)


class Rest:
    def __init__(self, hub: DevHub) -> None:
        self.hub = hub

    # -- auth ---------------------------------------------------------------------------------
    def app_auth(self, request: web.Request) -> App:
        token = bearer(request.headers)
        if token is None:
            raise GitHubError(401, "A JSON web token could not be decoded")
        try:
            return verify_app_jwt(token, self.hub.apps)
        except AuthError as exc:
            raise GitHubError(401, str(exc)) from exc

    def installation_auth(self, request: web.Request) -> Installation:
        token = bearer(request.headers)
        if token is None:
            raise GitHubError(401, "Requires authentication")
        installation = self.hub.token_installation(token)
        if installation is None:
            raise GitHubError(401, "Bad credentials")
        return installation

    def repo_auth(self, request: web.Request) -> tuple[Installation, Repo]:
        installation = self.installation_auth(request)
        full_name = f"{request.match_info['owner']}/{request.match_info['repo']}"
        # GitHub hides repositories a token cannot see behind a 404, never a 403.
        if full_name not in installation.repos or full_name not in self.hub.repos:
            raise not_found()
        return installation, self.hub.repos[full_name]

    def actor(self, installation: Installation) -> Any:
        return self.hub.bot_account(self.hub.apps[installation.app_id])

    def _pull(self, repo: Repo, number: str) -> Pull:
        pull = self.hub.pulls[repo.full_name].get(_int(number))
        if pull is None:
            raise not_found()
        return pull

    def _comment(self, repo: Repo, comment_id: str) -> Comment:
        comment = self.hub.comments.get(_int(comment_id))
        if comment is None or comment.repo != repo.full_name:
            raise not_found()
        return comment

    async def _resolve(self, repo: Repo, ref: str) -> str | None:
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            sha: str | None = await asyncio.to_thread(self.hub.git.resolve, repo.full_name, candidate)
            if sha:
                return sha
        return None

    # -- apps ---------------------------------------------------------------------------------
    async def get_app(self, request: web.Request) -> web.Response:
        return json_response(render.app(self.app_auth(request), self.hub.urls))

    async def list_installations(self, request: web.Request) -> web.Response:
        app = self.app_auth(request)
        items = [
            render.installation(i, app, self.hub.urls) for i in self.hub.installations.values() if i.app_id == app.id
        ]
        page, headers = paginate(request, items)
        return json_response(page, headers=headers)

    async def get_installation(self, request: web.Request) -> web.Response:
        app = self.app_auth(request)
        installation = self.hub.installations.get(_int(request.match_info["installation_id"]))
        if installation is None or installation.app_id != app.id:
            raise not_found()
        return json_response(render.installation(installation, app, self.hub.urls))

    async def create_token(self, request: web.Request) -> web.Response:
        app = self.app_auth(request)
        installation = self.hub.installations.get(_int(request.match_info["installation_id"]))
        if installation is None or installation.app_id != app.id:
            raise not_found()
        await body_json(request)
        token = self.hub.issue_token(installation.id)
        return json_response(
            {
                "token": token.value,
                "expires_at": iso(token.expires_at),
                "permissions": render.APP_PERMISSIONS,
                "repository_selection": "selected",
            },
            201,
        )

    async def get_repo_installation(self, request: web.Request) -> web.Response:
        app = self.app_auth(request)
        installation = self.hub.installation_for(f"{request.match_info['owner']}/{request.match_info['repo']}")
        if installation is None or installation.app_id != app.id:
            raise not_found()
        return json_response(render.installation(installation, app, self.hub.urls))

    async def installation_repos(self, request: web.Request) -> web.Response:
        installation = self.installation_auth(request)
        repos = [render.repo(self.hub.repos[n], self.hub.urls) for n in sorted(installation.repos)]
        page, headers = paginate(request, repos)
        return json_response(
            {"total_count": len(repos), "repositories": page, "repository_selection": "selected"},
            headers=headers,
        )

    # -- repositories -------------------------------------------------------------------------
    async def get_repo(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        return json_response(
            render.repo(repo, self.hub.urls, open_issues=self.hub.open_count(repo.full_name))
            | {"permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}}
        )

    async def get_permission(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        login = request.match_info["username"]
        user = self.hub.users.get(login)
        if user is None:
            raise not_found()
        role = self.hub.permission_of(repo.full_name, login)
        # `permission` keeps GitHub's legacy four values; `role_name` has the real role.
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        rank = ("read", "triage", "write", "maintain", "admin")
        level = rank.index(role) if role in rank else -1
        collaborator = render.user(user, self.hub.urls) | {
            "permissions": {
                "pull": level >= 0,
                "triage": level >= 1,
                "push": level >= 2,
                "maintain": level >= 3,
                "admin": level >= 4,
            },
            "role_name": role,
        }
        return json_response({"permission": legacy, "role_name": role, "user": collaborator})

    async def get_team_membership(self, request: web.Request) -> web.Response:
        # An installation token (chat-ops) or a signed-in user's token (the dashboard's team restriction).
        if self.hub.token_user(bearer(request.headers)) is None:
            self.installation_auth(request)
        org, team, login = (request.match_info[k] for k in ("org", "team_slug", "username"))
        role = self.hub.teams.get((org, team), {}).get(login)
        if role is None:
            return web.Response(status=404)  # GitHub documents this 404 without a body
        url = f"{self.hub.base_url}/organizations/{self.hub.account(org).id}/team/{team}/memberships/{login}"
        return json_response({"url": url, "role": role, "state": "active"})

    # -- pulls --------------------------------------------------------------------------------
    async def list_pulls(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        state = request.query.get("state", "open")
        head, base = request.query.get("head"), request.query.get("base")
        pulls = [
            p
            for p in sorted(self.hub.pulls[repo.full_name].values(), key=lambda p: -p.number)
            if (state == "all" or p.state == state)
            and (base is None or p.base_ref == base)
            and (head is None or f"{self.hub.repos[p.head_repo].owner.login}:{p.head_ref}" == head)
        ]
        page, headers = paginate(request, pulls)
        items = [await self.hub.pull_json(repo.full_name, p) for p in page]
        for item in items:  # the list endpoint returns the simple shape, without merge state or stats
            for key in (
                "merged",
                "mergeable",
                "rebaseable",
                "mergeable_state",
                "merged_by",
                "comments",
                "review_comments",
                "maintainer_can_modify",
                "commits",
                "additions",
                "deletions",
                "changed_files",
            ):
                item.pop(key)
        return json_response(items, headers=headers)

    async def get_pull(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        return json_response(await self.hub.pull_json(repo.full_name, pull, read=True))

    async def create_pull(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        data = await body_json(request)
        _require(data, "PullRequest", "head", "base")
        head = str(data["head"]).split(":", 1)[-1]
        for p in self.hub.pulls[repo.full_name].values():
            if (
                p.state == "open"
                and p.head_ref == head
                and p.base_ref == data["base"]
                and p.head_repo == repo.full_name
            ):
                raise GitHubError(
                    422,
                    "Validation Failed",
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {repo.owner.login}:{head}.",
                        }
                    ],
                )
        head_sha = await self._resolve(repo, f"refs/heads/{head}")
        base_sha = await self._resolve(repo, f"refs/heads/{data['base']}")
        if head_sha is None:
            raise invalid("PullRequest", "head", "invalid")
        if base_sha is None:
            raise invalid("PullRequest", "base", "invalid")
        if await asyncio.to_thread(self.hub.git.is_ancestor, repo.full_name, head_sha, base_sha):
            raise GitHubError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {data['base']} and {head}",
                    }
                ],
            )
        if not data.get("title"):
            raise invalid("PullRequest", "title")
        number = await self.hub.open_pr(
            repo.full_name,
            head,
            str(data["base"]),
            str(data["title"]),
            self.actor(installation).login,
            data.get("body"),
            draft=bool(data.get("draft")),
        )
        return json_response(await self.hub.pull_json(repo.full_name, self.hub.pull(repo.full_name, number)), 201)

    async def update_pull(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        data = await body_json(request)
        if "base" in data and data["base"] != pull.base_ref:
            raise GitHubError(422, "devhub does not change a pull request's base branch")
        if data.get("state") == "open" and pull.state == "closed":
            raise GitHubError(422, "devhub does not reopen pull requests")
        if "title" in data and not data["title"]:
            raise invalid("PullRequest", "title")
        who = self.actor(installation).login
        await self.hub.edit_pr(repo.full_name, pull.number, who, title=data.get("title"), body=data.get("body"))
        if data.get("state") == "closed" and pull.state == "open":
            await self.hub.close_pr(repo.full_name, pull.number, who)
        return json_response(await self.hub.pull_json(repo.full_name, pull))

    async def merge_pull(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        data = await body_json(request)
        if pull.state != "open":
            raise GitHubError(405, "Pull Request is not mergeable")
        if data.get("sha") and data["sha"] != pull.head_sha:
            raise GitHubError(409, "Head branch was modified. Review and try the merge again.")
        method = data.get("merge_method", "merge")
        if method not in ("merge", "squash"):
            raise GitHubError(422, f"Merge method {method} is not supported by devhub (use merge or squash)")
        try:
            sha = await self.hub.merge_pr(
                repo.full_name,
                pull.number,
                self.actor(installation).login,
                method,
                data.get("commit_title"),
                data.get("commit_message"),
            )
        except MergeConflict as exc:
            raise GitHubError(405, "Pull Request is not mergeable") from exc
        return json_response({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    async def list_files(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        files = await asyncio.to_thread(self.hub.git.diff, repo.full_name, pull.base_sha, pull.head_sha)
        page, headers = paginate(request, files[:3000])
        return json_response([render.diff_entry(f, repo, pull.head_sha, self.hub.urls) for f in page], headers=headers)

    async def list_reviews(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        reviews = [r for r in self.hub.reviews if r.repo == repo.full_name and r.pull_number == pull.number]
        page, headers = paginate(request, reviews)
        return json_response([render.review(r, repo, self.hub.urls) for r in page], headers=headers)

    async def create_review(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        data = await body_json(request)
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
        state = states.get(data.get("event", "COMMENT"))
        if state is None:
            raise invalid("PullRequestReview", "event", "invalid")
        review = Review(
            next_id(),
            repo.full_name,
            pull.number,
            self.actor(installation),
            state,
            data.get("body", ""),
            data.get("commit_id", pull.head_sha),
        )
        self.hub.reviews.append(review)
        return json_response(render.review(review, repo, self.hub.urls))

    async def get_issue(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        count = sum(c.repo == repo.full_name and c.issue_number == pull.number for c in self.hub.comments.values())
        return json_response(render.issue_for_pull(pull, repo, self.hub.urls, comments=count))

    # -- comments and reactions ---------------------------------------------------------------
    def _comment_body(self, data: dict[str, Any]) -> str:
        _require(data, "IssueComment", "body")
        body = str(data["body"])
        if len(body) > MAX_COMMENT:
            raise GitHubError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": f"body is too long (maximum is {MAX_COMMENT} characters)",
                    }
                ],
            )
        return body

    async def create_comment(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        body = self._comment_body(await body_json(request))
        comment = Comment(next_id(), repo.full_name, pull.number, self.actor(installation), body)
        self.hub.comments[comment.id] = comment
        await self.hub.comment_event(comment, "created", comment.user)
        return json_response(
            render.comment(comment, repo, self.hub.urls),
            201,
            {"Location": f"{self.hub.urls.repo_api(repo.full_name)}/issues/comments/{comment.id}"},
        )

    async def list_comments(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        pull = self._pull(repo, request.match_info["number"])
        comments = sorted(
            (c for c in self.hub.comments.values() if c.repo == repo.full_name and c.issue_number == pull.number),
            key=lambda c: c.id,
        )
        if since := request.query.get("since"):
            comments = [c for c in comments if iso(c.updated_at) >= since]
        page, headers = paginate(request, comments)
        return json_response([render.comment(c, repo, self.hub.urls) for c in page], headers=headers)

    async def get_comment(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        return json_response(render.comment(self._comment(repo, request.match_info["comment_id"]), repo, self.hub.urls))

    async def update_comment(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        comment = self._comment(repo, request.match_info["comment_id"])
        body = self._comment_body(await body_json(request))
        if comment.user.login != self.actor(installation).login:
            raise GitHubError(403, "Resource not accessible by integration")
        old, comment.body, comment.updated_at = comment.body, body, time.time()
        await self.hub.comment_event(comment, "edited", comment.user, {"changes": {"body": {"from": old}}})
        return json_response(render.comment(comment, repo, self.hub.urls))

    async def delete_comment(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        comment = self._comment(repo, request.match_info["comment_id"])
        if comment.user.login != self.actor(installation).login:
            raise GitHubError(403, "Resource not accessible by integration")
        await self.hub.delete_comment(comment.id)
        return web.Response(status=204)

    async def create_reaction(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        comment = self._comment(repo, request.match_info["comment_id"])
        content = (await body_json(request)).get("content")
        if content not in REACTIONS:
            raise invalid("Reaction", "content", "invalid")
        reaction, created = self.hub.react(comment.id, self.actor(installation), content)
        return json_response(render.reaction(reaction, self.hub.urls), 201 if created else 200)

    # -- checks and statuses ------------------------------------------------------------------
    def _check_fields(self, run: CheckRun, data: dict[str, Any]) -> None:
        status = data.get("status", run.status)
        if status not in CHECK_STATUSES:
            raise invalid("CheckRun", "status", "invalid")
        conclusion = data.get("conclusion", run.conclusion)
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise invalid("CheckRun", "conclusion", "invalid")
        if "conclusion" in data and conclusion is not None:
            status = "completed"  # GitHub completes a run as soon as it gets a conclusion
        if status == "completed" and conclusion is None:
            raise invalid("CheckRun", "conclusion", "missing_field", "conclusion is required when status is completed")
        output = data.get("output")
        if output is not None:
            if len(output.get("summary") or "") > MAX_SUMMARY:
                raise invalid(
                    "CheckRun",
                    "output.summary",
                    "custom",
                    f"output.summary is too long (maximum is {MAX_SUMMARY} characters)",
                )
            if len(output.get("annotations") or []) > 50:
                raise invalid("CheckRun", "output.annotations", "custom", "at most 50 annotations per request")
            run.output = {k: output.get(k) for k in ("title", "summary", "text")} | {
                "annotations": [*run.output.get("annotations", []), *(output.get("annotations") or [])]
            }
        run.status, run.conclusion = status, conclusion
        for key in ("name", "details_url", "external_id"):
            if key in data:
                setattr(run, key, data[key])
        if "actions" in data:
            run.actions = data["actions"]
        if status == "completed" and run.completed_at is None:
            run.completed_at = time.time()

    def _check_json(self, run: CheckRun, repo: Repo) -> dict[str, Any]:
        pulls = [p for p in self.hub.pulls[repo.full_name].values() if p.head_sha == run.head_sha and p.state == "open"]
        return render.check_run(run, repo, self.hub.apps[run.app_id], self.hub.urls, pulls)

    async def create_check(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        data = await body_json(request)
        _require(data, "CheckRun", "name", "head_sha")
        if await self._resolve(repo, str(data["head_sha"])) is None:
            raise invalid("CheckRun", "head_sha", "invalid", "No commit found for SHA: " + str(data["head_sha"]))
        run = CheckRun(next_id(), repo.full_name, installation.app_id, str(data["name"]), str(data["head_sha"]))
        self._check_fields(run, data)
        self.hub.check_runs[run.id] = run
        return json_response(self._check_json(run, repo), 201)

    def _run(self, repo: Repo, run_id: str) -> CheckRun:
        run = self.hub.check_runs.get(_int(run_id))
        if run is None or run.repo != repo.full_name:
            raise not_found()
        return run

    async def update_check(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        run = self._run(repo, request.match_info["check_run_id"])
        if run.app_id != installation.app_id:
            raise GitHubError(403, f"Invalid app_id `{run.app_id}` - check run can only be modified by its creator")
        self._check_fields(run, await body_json(request))
        return json_response(self._check_json(run, repo))

    async def get_check(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        return json_response(self._check_json(self._run(repo, request.match_info["check_run_id"]), repo))

    async def list_checks(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        sha = await self._resolve(repo, request.match_info["ref"])
        if sha is None:
            raise GitHubError(422, "No commit found for SHA: " + request.match_info["ref"])
        name, status = request.query.get("check_name"), request.query.get("status")
        runs = [
            r
            for r in sorted(self.hub.check_runs.values(), key=lambda r: -r.id)
            if r.repo == repo.full_name
            and r.head_sha == sha
            and (name is None or r.name == name)
            and (status is None or r.status == status)
        ]
        if request.query.get("filter", "latest") == "latest":
            latest: dict[str, CheckRun] = {}
            for r in runs:
                latest.setdefault(r.name, r)
            runs = list(latest.values())
        page, headers = paginate(request, runs)
        return json_response(
            {"total_count": len(runs), "check_runs": [self._check_json(r, repo) for r in page]},
            headers=headers,
        )

    async def create_status(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        data = await body_json(request)
        if data.get("state") not in STATUS_STATES:
            raise invalid("Status", "state", "invalid" if "state" in data else "missing_field")
        sha = await self._resolve(repo, request.match_info["sha"])
        if sha is None:
            raise GitHubError(422, "No commit found for SHA: " + request.match_info["sha"])
        status = Status(
            next_id(),
            repo.full_name,
            sha,
            data["state"],
            data.get("context") or "default",
            data.get("description"),
            data.get("target_url"),
            self.actor(installation),
        )
        self.hub.statuses.append(status)
        return json_response(render.status(status, repo, self.hub.urls), 201)

    async def _statuses(self, repo: Repo, ref: str) -> tuple[str, list[Status]]:
        sha = await self._resolve(repo, ref)
        if sha is None:
            raise not_found()
        return sha, [s for s in reversed(self.hub.statuses) if s.repo == repo.full_name and s.sha == sha]

    async def combined_status(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        sha, statuses = await self._statuses(repo, request.match_info["ref"])
        latest: dict[str, Status] = {}
        for s in statuses:
            latest.setdefault(s.context, s)
        return json_response(render.combined_status(sha, list(latest.values()), repo, self.hub.urls))

    async def list_statuses(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        _, statuses = await self._statuses(repo, request.match_info["ref"])
        page, headers = paginate(request, statuses)
        return json_response([render.status(s, repo, self.hub.urls) for s in page], headers=headers)

    # -- git data and contents ----------------------------------------------------------------
    async def get_ref(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        ref = "refs/" + request.match_info["ref"]
        sha = (await asyncio.to_thread(self.hub.git.refs, repo.full_name)).get(ref)
        if sha is None:
            raise not_found()
        return json_response(render.git_ref(repo, ref, sha, self.hub.urls))

    async def create_ref(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        data = await body_json(request)
        _require(data, "Reference", "ref", "sha")
        ref, sha = str(data["ref"]), str(data["sha"])
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise GitHubError(422, "Reference name must start with 'refs/' and have at least two slashes.")
        if ref in (await asyncio.to_thread(self.hub.git.refs, repo.full_name)):
            raise GitHubError(422, "Reference already exists")
        if await self._resolve(repo, sha) != sha:
            raise GitHubError(422, "Object does not exist")
        await asyncio.to_thread(self.hub.git.update_ref, repo.full_name, ref, sha, ZERO_SHA)
        await self.hub.pushed(repo.full_name, [RefUpdate(ref, ZERO_SHA, sha)], self.actor(installation))
        return json_response(
            render.git_ref(repo, ref, sha, self.hub.urls),
            201,
            {"Location": f"{self.hub.urls.repo_api(repo.full_name)}/git/{ref}"},
        )

    async def update_ref(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        ref = "refs/" + request.match_info["ref"]
        data = await body_json(request)
        _require(data, "Reference", "sha")
        old = (await asyncio.to_thread(self.hub.git.refs, repo.full_name)).get(ref)
        if old is None:
            raise GitHubError(422, "Reference does not exist")
        sha = str(data["sha"])
        if await self._resolve(repo, sha) != sha:
            raise GitHubError(422, "Object does not exist")
        if not data.get("force") and not await asyncio.to_thread(self.hub.git.is_ancestor, repo.full_name, old, sha):
            raise GitHubError(422, "Update is not a fast forward")
        await asyncio.to_thread(self.hub.git.update_ref, repo.full_name, ref, sha, old)
        await self.hub.pushed(repo.full_name, [RefUpdate(ref, old, sha)], self.actor(installation))
        return json_response(render.git_ref(repo, ref, sha, self.hub.urls))

    async def get_content(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        ref = request.query.get("ref") or repo.default_branch
        sha = await self._resolve(repo, ref)
        if sha is None:
            raise GitHubError(404, f"No commit found for the ref {ref}")
        path = request.match_info["path"].strip("/")
        entry = await asyncio.to_thread(self.hub.git.entry, repo.full_name, sha, path)
        if entry is None:
            raise not_found()
        if entry.kind == "tree":
            entries = await asyncio.to_thread(self.hub.git.list_dir, repo.full_name, sha, path)
            return json_response([render.content_entry(e, repo, ref, self.hub.urls) for e in entries])
        data = await asyncio.to_thread(self.hub.git.read, repo.full_name, sha, path)
        return json_response(render.content_entry(entry, repo, ref, self.hub.urls, data))

    # -- deployments --------------------------------------------------------------------------
    def _deployment(self, repo: Repo, deployment_id: str) -> Deployment:
        deployment = self.hub.deployments.get(_int(deployment_id))
        if deployment is None or deployment.repo != repo.full_name:
            raise not_found()
        return deployment

    async def create_deployment(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        data = await body_json(request)
        _require(data, "Deployment", "ref")
        sha = await self._resolve(repo, str(data["ref"]))
        if sha is None:
            raise GitHubError(422, f"No ref found for: {data['ref']}")
        environment = data.get("environment") or "production"
        payload = data.get("payload", {})
        if isinstance(payload, str):
            try:
                payload = json.loads(payload) if payload else {}
            except ValueError as exc:
                raise invalid("Deployment", "payload", "invalid") from exc
        deployment = Deployment(
            next_id(),
            repo.full_name,
            sha,
            str(data["ref"]),
            data.get("task") or "deploy",
            environment,
            payload,
            data.get("description"),
            self.actor(installation),
            bool(data.get("transient_environment", False)),
            bool(data.get("production_environment", environment == "production")),
        )
        self.hub.deployments[deployment.id] = deployment
        return json_response(render.deployment(deployment, repo, self.hub.urls), 201)

    async def list_deployments(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        q = request.query
        items = [
            d
            for d in sorted(self.hub.deployments.values(), key=lambda d: -d.id)
            if d.repo == repo.full_name
            and all(q.get(k) in (None, getattr(d, k)) for k in ("sha", "ref", "task", "environment"))
        ]
        page, headers = paginate(request, items)
        return json_response([render.deployment(d, repo, self.hub.urls) for d in page], headers=headers)

    async def create_deployment_status(self, request: web.Request) -> web.Response:
        installation, repo = self.repo_auth(request)
        deployment = self._deployment(repo, request.match_info["deployment_id"])
        data = await body_json(request)
        if data.get("state") not in DEPLOY_STATES:
            raise invalid("DeploymentStatus", "state", "invalid" if "state" in data else "missing_field")
        status = DeploymentStatus(
            next_id(),
            data["state"],
            data.get("description", ""),
            data.get("environment") or deployment.environment,
            data.get("target_url", ""),
            data.get("log_url") or data.get("target_url", ""),
            data.get("environment_url", ""),
            self.actor(installation),
        )
        deployment.statuses.append(status)
        return json_response(render.deployment_status(status, deployment, repo, self.hub.urls), 201)

    async def list_deployment_statuses(self, request: web.Request) -> web.Response:
        _, repo = self.repo_auth(request)
        deployment = self._deployment(repo, request.match_info["deployment_id"])
        page, headers = paginate(request, list(reversed(deployment.statuses)))
        return json_response(
            [render.deployment_status(s, deployment, repo, self.hub.urls) for s in page], headers=headers
        )

    # -- routing ------------------------------------------------------------------------------
    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        r = "/repos/{owner}/{repo}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/app", self.get_app),
            ("GET", "/app/installations", self.list_installations),
            ("GET", "/app/installations/{installation_id}", self.get_installation),
            ("POST", "/app/installations/{installation_id}/access_tokens", self.create_token),
            ("GET", "/installation/repositories", self.installation_repos),
            ("GET", f"{r}", self.get_repo),
            ("GET", f"{r}/installation", self.get_repo_installation),
            ("GET", f"{r}/collaborators/{{username}}/permission", self.get_permission),
            ("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}", self.get_team_membership),
            ("GET", f"{r}/pulls", self.list_pulls),
            ("POST", f"{r}/pulls", self.create_pull),
            ("GET", f"{r}/pulls/{{number}}", self.get_pull),
            ("PATCH", f"{r}/pulls/{{number}}", self.update_pull),
            ("PUT", f"{r}/pulls/{{number}}/merge", self.merge_pull),
            ("GET", f"{r}/pulls/{{number}}/files", self.list_files),
            ("GET", f"{r}/pulls/{{number}}/reviews", self.list_reviews),
            ("POST", f"{r}/pulls/{{number}}/reviews", self.create_review),
            ("GET", f"{r}/issues/{{number}}", self.get_issue),
            ("GET", f"{r}/issues/{{number}}/comments", self.list_comments),
            ("POST", f"{r}/issues/{{number}}/comments", self.create_comment),
            ("GET", f"{r}/issues/comments/{{comment_id}}", self.get_comment),
            ("PATCH", f"{r}/issues/comments/{{comment_id}}", self.update_comment),
            ("DELETE", f"{r}/issues/comments/{{comment_id}}", self.delete_comment),
            ("POST", f"{r}/issues/comments/{{comment_id}}/reactions", self.create_reaction),
            ("POST", f"{r}/check-runs", self.create_check),
            ("GET", f"{r}/check-runs/{{check_run_id}}", self.get_check),
            ("PATCH", f"{r}/check-runs/{{check_run_id}}", self.update_check),
            ("GET", f"{r}/commits/{{ref:.+}}/check-runs", self.list_checks),
            ("GET", f"{r}/commits/{{ref:.+}}/status", self.combined_status),
            ("GET", f"{r}/commits/{{ref:.+}}/statuses", self.list_statuses),
            ("POST", f"{r}/statuses/{{sha}}", self.create_status),
            ("GET", f"{r}/git/ref/{{ref:.+}}", self.get_ref),
            ("POST", f"{r}/git/refs", self.create_ref),
            ("PATCH", f"{r}/git/refs/{{ref:.+}}", self.update_ref),
            ("GET", f"{r}/contents/{{path:.+}}", self.get_content),
            ("GET", f"{r}/deployments", self.list_deployments),
            ("POST", f"{r}/deployments", self.create_deployment),
            ("GET", f"{r}/deployments/{{deployment_id}}/statuses", self.list_deployment_statuses),
            ("POST", f"{r}/deployments/{{deployment_id}}/statuses", self.create_deployment_status),
        ]
        return [web.route(method, prefix + path, handler) for method, path, handler in table]
