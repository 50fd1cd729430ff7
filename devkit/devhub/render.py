"""Render devhub's records as the JSON objects GitHub returns and sends (pure functions)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from devkit.devhub.gitstore import FileChange, TreeEntry
from devkit.devhub.model import (
    Account,
    App,
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    Installation,
    Pull,
    Reaction,
    Repo,
    Review,
    Status,
    iso,
)

APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "deployments": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
    "members": "read",
}
APP_EVENTS = ["check_run", "issue_comment", "pull_request", "push", "pull_request_review"]


def node_id(kind: str, id: int) -> str:
    return base64.b64encode(f"0:{kind}{id}".encode()).decode()


@dataclass(frozen=True)
class Urls:
    api: str  # REST root, e.g. http://127.0.0.1:8080 (also served under /api/v3)
    web: str  # html root
    git: str = ""  # git root (clone_url); the html root when empty

    @property
    def git_root(self) -> str:
        return self.git or self.web

    def repo_api(self, full_name: str) -> str:
        return f"{self.api}/repos/{full_name}"


def user(u: Account, urls: Urls) -> dict[str, Any]:
    api = f"{urls.api}/users/{u.login}"
    return {
        "login": u.login,
        "id": u.id,
        "node_id": node_id("U", u.id),
        "avatar_url": f"{urls.web}/avatars/{u.login}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{urls.web}/{u.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": u.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def org_simple(o: Account, urls: Urls) -> dict[str, Any]:
    api = f"{urls.api}/orgs/{o.login}"
    return {
        "login": o.login,
        "id": o.id,
        "node_id": node_id("O", o.id),
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{urls.web}/avatars/{o.login}",
        "description": None,
    }


def repo(r: Repo, urls: Urls, *, open_issues: int = 0) -> dict[str, Any]:
    api = urls.repo_api(r.full_name)
    templated = {
        "archive_url": "/{archive_format}{/ref}",
        "assignees_url": "/assignees{/user}",
        "blobs_url": "/git/blobs{/sha}",
        "branches_url": "/branches{/branch}",
        "collaborators_url": "/collaborators{/collaborator}",
        "comments_url": "/comments{/number}",
        "commits_url": "/commits{/sha}",
        "compare_url": "/compare/{base}...{head}",
        "contents_url": "/contents/{+path}",
        "contributors_url": "/contributors",
        "deployments_url": "/deployments",
        "downloads_url": "/downloads",
        "events_url": "/events",
        "forks_url": "/forks",
        "git_commits_url": "/git/commits{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "hooks_url": "/hooks",
        "issue_comment_url": "/issues/comments{/number}",
        "issue_events_url": "/issues/events{/number}",
        "issues_url": "/issues{/number}",
        "keys_url": "/keys{/key_id}",
        "labels_url": "/labels{/name}",
        "languages_url": "/languages",
        "merges_url": "/merges",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "pulls_url": "/pulls{/number}",
        "releases_url": "/releases{/id}",
        "stargazers_url": "/stargazers",
        "statuses_url": "/statuses/{sha}",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "tags_url": "/tags",
        "teams_url": "/teams",
        "trees_url": "/git/trees{/sha}",
    }
    host = urls.web.split("://", 1)[-1]
    return {
        "id": r.id,
        "node_id": node_id("R", r.id),
        "name": r.name,
        "full_name": r.full_name,
        "private": r.private,
        "owner": user(r.owner, urls),
        "html_url": f"{urls.web}/{r.full_name}",
        "description": None,
        "fork": False,
        "url": api,
        **{key: api + suffix for key, suffix in templated.items()},
        "clone_url": f"{urls.git_root}/{r.full_name}.git",
        "git_url": f"git://{host}/{r.full_name}.git",
        "ssh_url": f"git@{host}:{r.full_name}.git",
        "svn_url": f"{urls.web}/{r.full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "size": 0,
        "forks": 0,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers": 0,
        "watchers_count": 0,
        "open_issues": open_issues,
        "open_issues_count": open_issues,
        "network_count": 0,
        "subscribers_count": 0,
        "default_branch": r.default_branch,
        "visibility": "private" if r.private else "public",
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "is_template": False,
        "topics": [],
        "license": None,
        "allow_forking": True,
        "web_commit_signoff_required": False,
        "pushed_at": iso(r.pushed_at),
        "created_at": iso(r.created_at),
        "updated_at": iso(r.pushed_at),
    }


def app(a: App, urls: Urls) -> dict[str, Any]:
    return {
        "id": a.id,
        "slug": a.slug,
        "node_id": node_id("A", a.id),
        "client_id": a.client_id,
        "owner": user(a.owner, urls),
        "name": a.name,
        "description": "A GitHub App simulated by devhub",
        "external_url": urls.web,
        "html_url": f"{urls.web}/apps/{a.slug}",
        "created_at": iso(a.created_at),
        "updated_at": iso(a.created_at),
        "permissions": APP_PERMISSIONS,
        "events": APP_EVENTS,
    }


def installation(i: Installation, a: App, urls: Urls) -> dict[str, Any]:
    return {
        "id": i.id,
        "account": user(i.account, urls),
        "repository_selection": "selected",
        "access_tokens_url": f"{urls.api}/app/installations/{i.id}/access_tokens",
        "repositories_url": f"{urls.api}/installation/repositories",
        "html_url": f"{urls.web}/settings/installations/{i.id}",
        "app_id": a.id,
        "app_slug": a.slug,
        "client_id": a.client_id,
        "target_id": i.account.id,
        "target_type": i.account.type,
        "permissions": APP_PERMISSIONS,
        "events": APP_EVENTS,
        "created_at": iso(i.created_at),
        "updated_at": iso(i.created_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def author_association(r: Repo, login: str) -> str:
    if login == r.owner.login:
        return "OWNER"
    return "COLLABORATOR" if r.collaborators.get(login, "none") != "none" else "NONE"


def _branch(label_repo: Repo, ref: str, sha: str, urls: Urls) -> dict[str, Any]:
    return {
        "label": f"{label_repo.owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user(label_repo.owner, urls),
        "repo": repo(label_repo, urls),
    }


def _mergeable_state(p: Pull, mergeable: bool | None) -> str:
    if p.merged or mergeable is None:
        return "unknown"
    if not mergeable:
        return "dirty"
    return "draft" if p.draft else "clean"


def pull(
    p: Pull,
    base: Repo,
    head: Repo,
    urls: Urls,
    *,
    stats: tuple[int, int, int, int],
    mergeable: bool | None,
    comments: int,
) -> dict[str, Any]:
    """stats = (commits, additions, deletions, changed_files)."""
    api = f"{urls.repo_api(base.full_name)}/pulls/{p.number}"
    html = f"{urls.web}/{base.full_name}/pull/{p.number}"
    issue = f"{urls.repo_api(base.full_name)}/issues/{p.number}"
    commits, additions, deletions, changed = stats
    state = _mergeable_state(p, mergeable)
    return {
        "url": api,
        "id": p.id,
        "node_id": node_id("PR", p.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{urls.repo_api(base.full_name)}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments",
        "statuses_url": f"{urls.repo_api(base.full_name)}/statuses/{p.head_sha}",
        "number": p.number,
        "state": p.state,
        "locked": False,
        "title": p.title,
        "user": user(p.user, urls),
        "body": p.body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": iso(p.closed_at) if p.closed_at else None,
        "merged_at": iso(p.merged_at) if p.merged_at else None,
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch(head, p.head_ref, p.head_sha, urls),
        "base": _branch(base, p.base_ref, p.base_sha, urls),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue},
            "comments": {"href": f"{issue}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{urls.repo_api(base.full_name)}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": f"{urls.repo_api(base.full_name)}/statuses/{p.head_sha}"},
        },
        "author_association": author_association(base, p.user.login),
        "auto_merge": None,
        "draft": p.draft,
        "merged": p.merged,
        "mergeable": mergeable,
        "rebaseable": mergeable,
        "mergeable_state": state,
        "merged_by": user(p.merged_by, urls) if p.merged_by else None,
        "comments": comments,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": commits,
        "additions": additions,
        "deletions": deletions,
        "changed_files": changed,
    }


def issue_for_pull(p: Pull, base: Repo, urls: Urls, *, comments: int) -> dict[str, Any]:
    """The issue half of a pull request, as `issue_comment` payloads and GET /issues/{n} carry it."""
    api = f"{urls.repo_api(base.full_name)}/issues/{p.number}"
    html = f"{urls.web}/{base.full_name}/pull/{p.number}"
    pulls_api = f"{urls.repo_api(base.full_name)}/pulls/{p.number}"
    return {
        "url": api,
        "repository_url": urls.repo_api(base.full_name),
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": html,
        "id": p.id,
        "node_id": node_id("I", p.id),
        "number": p.number,
        "title": p.title,
        "user": user(p.user, urls),
        "labels": [],
        "state": p.state,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": comments,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": iso(p.closed_at) if p.closed_at else None,
        "author_association": author_association(base, p.user.login),
        "active_lock_reason": None,
        "draft": p.draft,
        "body": p.body,
        "state_reason": None,
        "reactions": reactions_rollup([], api),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
        "pull_request": {
            "url": pulls_api,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso(p.merged_at) if p.merged_at else None,
        },
    }


def reactions_rollup(reactions: list[Reaction], url: str) -> dict[str, Any]:
    counts = {k: 0 for k in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")}
    for r in reactions:
        counts[r.content] += 1
    return {"url": f"{url}/reactions", "total_count": len(reactions), **counts}


def comment(c: Comment, r: Repo, urls: Urls, *, pull_request: bool = True) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/issues/comments/{c.id}"
    kind = "pull" if pull_request else "issues"
    return {
        "id": c.id,
        "node_id": node_id("IC", c.id),
        "url": api,
        "html_url": f"{urls.web}/{r.full_name}/{kind}/{c.issue_number}#issuecomment-{c.id}",
        "issue_url": f"{urls.repo_api(r.full_name)}/issues/{c.issue_number}",
        "body": c.body,
        "user": user(c.user, urls),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "author_association": author_association(r, c.user.login),
        "performed_via_github_app": None,
        "reactions": reactions_rollup(c.reactions, api),
    }


def reaction(x: Reaction, urls: Urls) -> dict[str, Any]:
    return {
        "id": x.id,
        "node_id": node_id("RE", x.id),
        "user": user(x.user, urls),
        "content": x.content,
        "created_at": iso(x.created_at),
    }


def review(v: Review, r: Repo, urls: Urls) -> dict[str, Any]:
    pr_api = f"{urls.repo_api(r.full_name)}/pulls/{v.pull_number}"
    html = f"{urls.web}/{r.full_name}/pull/{v.pull_number}#pullrequestreview-{v.id}"
    return {
        "id": v.id,
        "node_id": node_id("PRR", v.id),
        "user": user(v.user, urls),
        "body": v.body,
        "state": v.state,
        "html_url": html,
        "pull_request_url": pr_api,
        "commit_id": v.commit_id,
        "submitted_at": iso(v.submitted_at),
        "author_association": author_association(r, v.user.login),
        "_links": {"html": {"href": html}, "pull_request": {"href": pr_api}},
    }


def check_run(c: CheckRun, r: Repo, a: App, urls: Urls, pulls: list[Pull]) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/check-runs/{c.id}"
    output = {"title": None, "summary": None, "text": None, **c.output}
    return {
        "id": c.id,
        "node_id": node_id("CR", c.id),
        "head_sha": c.head_sha,
        "external_id": c.external_id,
        "url": api,
        "html_url": f"{urls.web}/{r.full_name}/runs/{c.id}",
        "details_url": c.details_url,
        "status": c.status,
        "conclusion": c.conclusion,
        "started_at": iso(c.started_at) if c.started_at else None,
        "completed_at": iso(c.completed_at) if c.completed_at else None,
        "output": {
            "title": output["title"],
            "summary": output["summary"],
            "text": output["text"],
            "annotations_count": len(output.get("annotations", [])),
            "annotations_url": f"{api}/annotations",
        },
        "name": c.name,
        "check_suite": {"id": c.id},
        "app": app(a, urls),
        "pull_requests": [pull_minimal(p, r, urls) for p in pulls],
    }


def pull_minimal(p: Pull, r: Repo, urls: Urls) -> dict[str, Any]:
    def side(ref: str, sha: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "sha": sha,
            "repo": {"id": r.id, "url": urls.repo_api(r.full_name), "name": r.name},
        }

    return {
        "id": p.id,
        "number": p.number,
        "url": f"{urls.repo_api(r.full_name)}/pulls/{p.number}",
        "head": side(p.head_ref, p.head_sha),
        "base": side(p.base_ref, p.base_sha),
    }


def status(s: Status, r: Repo, urls: Urls) -> dict[str, Any]:
    return {
        "url": f"{urls.repo_api(r.full_name)}/statuses/{s.sha}",
        "avatar_url": f"{urls.web}/avatars/{s.creator.login}",
        "id": s.id,
        "node_id": node_id("SC", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "creator": user(s.creator, urls),
    }


def combined_status(sha: str, statuses: list[Status], r: Repo, urls: Urls) -> dict[str, Any]:
    states = {s.state for s in statuses}
    overall = (
        "failure" if states & {"failure", "error"} else "pending" if "pending" in states or not statuses else "success"
    )
    return {
        "state": overall,
        "sha": sha,
        "total_count": len(statuses),
        "statuses": [status(s, r, urls) for s in statuses],
        "repository": minimal_repo(r, urls),
        "commit_url": f"{urls.repo_api(r.full_name)}/commits/{sha}",
        "url": f"{urls.repo_api(r.full_name)}/commits/{sha}/status",
    }


def minimal_repo(r: Repo, urls: Urls) -> dict[str, Any]:
    full = repo(r, urls)
    for key in ("network_count", "subscribers_count", "has_discussions", "web_commit_signoff_required"):
        full.pop(key, None)
    return full


def deployment(d: Deployment, r: Repo, urls: Urls) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/deployments/{d.id}"
    return {
        "url": api,
        "id": d.id,
        "node_id": node_id("DE", d.id),
        "sha": d.sha,
        "ref": d.ref,
        "task": d.task,
        "payload": d.payload,
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.description,
        "creator": user(d.creator, urls),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.statuses[-1].created_at if d.statuses else d.created_at),
        "statuses_url": f"{api}/statuses",
        "repository_url": urls.repo_api(r.full_name),
        "transient_environment": d.transient_environment,
        "production_environment": d.production_environment,
        "performed_via_github_app": None,
    }


def deployment_status(s: DeploymentStatus, d: Deployment, r: Repo, urls: Urls) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/deployments/{d.id}"
    return {
        "url": f"{api}/statuses/{s.id}",
        "id": s.id,
        "node_id": node_id("DES", s.id),
        "state": s.state,
        "creator": user(s.creator, urls),
        "description": s.description,
        "environment": s.environment,
        "target_url": s.target_url,
        "log_url": s.log_url,
        "environment_url": s.environment_url,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "deployment_url": api,
        "repository_url": urls.repo_api(r.full_name),
        "performed_via_github_app": None,
    }


CONTENTS_LIMIT = 1024 * 1024  # bytes the contents API hands over inline (base64)


def content_entry(e: TreeEntry, r: Repo, ref: str, urls: Urls, data: bytes | None = None) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/contents/{e.path}?ref={ref}"
    kind = "file" if e.kind == "blob" else "dir"
    html = f"{urls.web}/{r.full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{e.path}"
    git = f"{urls.repo_api(r.full_name)}/git/{'blobs' if kind == 'file' else 'trees'}/{e.sha}"
    body: dict[str, Any] = {
        "type": kind,
        "size": e.size,
        "name": e.path.rsplit("/", 1)[-1],
        "path": e.path,
        "sha": e.sha,
        "url": api,
        "git_url": git,
        "html_url": html,
        "download_url": f"{urls.web}/{r.full_name}/raw/{ref}/{e.path}" if kind == "file" else None,
        "_links": {"self": api, "git": git, "html": html},
    }
    if data is not None and len(data) > CONTENTS_LIMIT:
        # Over 1 MB GitHub still answers 200, with an empty content and encoding "none" (the docs' size limits).
        body |= {"encoding": "none", "content": ""}
    elif data is not None:
        # GitHub wraps base64 at 60 columns; clients must tolerate the newlines.
        encoded = base64.b64encode(data).decode()
        body |= {
            "encoding": "base64",
            "content": "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)),
        }
    return body


def git_ref(r: Repo, ref: str, sha: str, urls: Urls) -> dict[str, Any]:
    return {
        "ref": ref,
        "node_id": node_id("REF", abs(hash((r.id, ref))) % 10**9),
        "url": f"{urls.repo_api(r.full_name)}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{urls.repo_api(r.full_name)}/git/commits/{sha}"},
    }


def diff_entry(f: FileChange, r: Repo, head_sha: str, urls: Urls) -> dict[str, Any]:
    return {
        "sha": f.blob_sha,
        "filename": f.path,
        "status": f.status,
        "additions": f.additions,
        "deletions": f.deletions,
        "changes": f.additions + f.deletions,
        "blob_url": f"{urls.web}/{r.full_name}/blob/{head_sha}/{f.path}",
        "raw_url": f"{urls.web}/{r.full_name}/raw/{head_sha}/{f.path}",
        "contents_url": f"{urls.repo_api(r.full_name)}/contents/{f.path}?ref={head_sha}",
        **({"patch": f.patch} if f.patch else {}),
    }
