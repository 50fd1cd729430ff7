"""Chat-ops at the edges: read a PR comment's commands, gather the facts, decide, act, answer, audit.

The decision is ``dispatch.decide`` (pure); this module looks things up, carries out what was
decided and talks back. Commands are services keyed by command name in ``Services.commands``, one
literal in the composition root (bot.app): the built-in ones live here, deploy's and the guard's in
their packages. A command the service was built without answers "not available yet".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gidgethub.abc import GitHubAPI
from sqlalchemy import select

from bot.chatops import replies, status, store
from bot.chatops.authz import PrState, has_write
from bot.chatops.dispatch import Facts, Reaction, Reply, Run, decide
from bot.chatops.lookups import PrLookups, collaborator_permission, from_fork, team_refs
from bot.chatops.parser import ParsedCommand, ParseError, parse_comment
from bot.chatops.ratelimit import Verdict
from bot.chatops.trust import head_when_commented, may_run_sandbox
from bot.config.repo import CONFIG_PATH, Environment, RepoConfigError
from bot.context import Services, need
from bot.github.sticky import MAX_COMMENT
from bot.review.jobs import ReviewRequest, enqueue_review

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandContext:
    """What a command service gets: the command, where it was given, by whom, and the collaborators."""

    command: ParsedCommand
    run: Run
    repo: str
    number: int
    installation_id: int
    actor: str
    gh: GitHubAPI
    services: Services
    lookups: PrLookups  # memoised GitHub answers: `await ctx.lookups.pull()`, `.config(ref)`…

    def reply(self, body: str) -> str:
        return replies.reply(self.command.line, body)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    body: str  # the whole reply section, quoting the command (use ``CommandContext.reply``)
    result: str  # one line for the audit log


CommandService = Callable[[CommandContext], Awaitable[Outcome]]
StatusSection = Callable[[CommandContext], Awaitable[str]]


# --------------------------------------------------------------------------- the comment


@dataclass(frozen=True)
class _Answer:
    body: str
    reaction: Reaction | None
    decision: str
    result: str
    ok: bool


async def handle_comment(
    payload: dict[str, Any], gh: GitHubAPI, services: Services, *, now: Callable[[], float] = time.time
) -> None:
    """Run the commands of a new PR comment (the caller has applied ``filters.ignore_reason``)."""
    comment, repo = payload["comment"], payload["repository"]["full_name"]
    number, actor = int(payload["issue"]["number"]), payload["sender"]["login"]
    installation_id = int(payload["installation"]["id"])
    items = parse_comment(comment.get("body") or "", app_slug=services.app_slug)
    if not items:
        return
    if await _already_handled(services, repo, comment["id"]):
        return  # a retried job: the commands ran (and were audited) once already
    audit = _Audit(repo, number, actor, comment["id"])
    reactions = f"/repos/{repo}/issues/comments/{comment['id']}/reactions"
    rate_limiter = need(services.limiter, "chat-ops rate limiter")
    verdict = await rate_limiter.check(actor.lower(), now())
    if verdict is Verdict.DENY:
        # The flood was answered once already; answering again would make the bot the flood.
        await audit.save(services, [(i, _skipped("rate limited (already told)")) for i in items])
        return
    await gh.post(reactions, data={"content": "eyes"})
    if verdict is Verdict.DENY_AND_NOTIFY:
        wait = await rate_limiter.retry_after(actor.lower(), now())
        body = replies.rate_limited(items[0].line, actor=actor, retry_after=wait)
        await audit.save(services, [(i, _skipped("rate limited")) for i in items])
        await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
        await gh.post(reactions, data={"content": "confused"})
        return
    lookups = PrLookups(gh, repo, number, deploy_root=services.deploy_root)
    answers: list[tuple[ParsedCommand | ParseError, _Answer]] = []
    commented_at = _created_at(comment)
    for item in items:
        answer = await _answer(item, actor, installation_id, gh, services, lookups, commented_at)
        answers.append((item, answer))
    await audit.save(services, answers)
    await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": _join([a.body for _, a in answers])})
    final = _final_reaction([a.reaction for _, a in answers])
    if final is not None:
        await gh.post(reactions, data={"content": final})


async def _answer(
    item: ParsedCommand | ParseError,
    actor: str,
    installation_id: int,
    gh: GitHubAPI,
    services: Services,
    lookups: PrLookups,
    commented_at: int | None = None,
) -> _Answer:
    try:
        facts = await _facts(item, actor, services, lookups, commented_at)
        if isinstance(facts, _Answer):
            return facts
        outcome = decide(item, facts)
        if isinstance(outcome, Reply):
            return _answer_of(outcome)
        ctx = CommandContext(
            outcome.command, outcome, lookups.repo, lookups.number, installation_id, actor, gh, services, lookups
        )
        done = await services.commands[outcome.command.name](ctx)
        return _Answer(done.body, "rocket" if done.ok else "confused", "allowed", done.result, done.ok)
    except Exception as exc:
        # One broken command must not swallow the answers to the others, nor stay unanswered.
        log.exception("chat-ops command %r failed", item.line)
        body = replies.reply(
            item.line,
            f"Something went wrong running this ({type(exc).__name__}); nothing more was done. "
            "Try again in a minute; if it keeps failing, the Modelship logs have the details.",
        )
        return _Answer(body, "confused", "allowed", f"error: {type(exc).__name__}", False)


@dataclass(frozen=True)
class ActionResult:
    """What a command given outside a comment (a dashboard button) decided and did."""

    allowed: bool
    decision: str  # "allowed", or why not (the same sentence a comment would get)
    result: str  # the audit log's one line
    ok: bool
    body: str  # the reply a comment would have got (Markdown)


async def run_action(
    line: str, *, repo: str, number: int, actor: str, installation_id: int, gh: GitHubAPI, services: Services
) -> ActionResult:
    """Run one chat-ops command line as if ``actor`` had commented it on PR ``number``: the same parser,
    authorization (write access, the environment's ``allowed`` and ``requires``), command service and audit
    log (marked ``via: dashboard``), without a comment or reactions."""
    parsed = parse_comment(line, app_slug=services.app_slug)
    if len(parsed) != 1 or not isinstance(parsed[0], ParsedCommand):
        raise ValueError(f"not one chat-ops command: {line!r}")
    item = parsed[0]
    lookups = PrLookups(gh, repo, number, deploy_root=services.deploy_root)
    answer = await _answer(item, actor, installation_id, gh, services, lookups)
    entry = store.AuditEntry(
        repo,
        number,
        actor,
        None,
        item.name,
        item.line,
        {"args": item.args, "flags": item.flags, "via": "dashboard"},
        answer.decision,
        answer.result,
        answer.ok,
    )
    async with services.engine.begin() as conn:
        await store.record(conn, [entry])
    return ActionResult(answer.decision == "allowed", answer.decision, answer.result, answer.ok, answer.body)


def _answer_of(reply: Reply) -> _Answer:
    result = "waiting for ok-to-test" if reply.reaction is None else "replied"
    return _Answer(reply.body, reply.reaction, reply.decision, result, reply.reaction != "confused")


def _created_at(comment: dict[str, Any]) -> int | None:
    try:
        return store.epoch_seconds(str(comment["created_at"]))
    except (KeyError, ValueError):
        return None


async def _facts(
    item: ParsedCommand | ParseError, actor: str, services: Services, lookups: PrLookups, commented_at: int | None
) -> Facts | _Answer:
    available = frozenset(services.commands)
    bare = Facts(actor, None, PrState(False, None, False, None), "", available=available, app_slug=services.app_slug)
    if not isinstance(item, ParsedCommand) or item.wants_help or not item.spec.mutating:
        return bare  # help, status and parse errors need no lookups
    permission = await lookups.permission(actor)
    if not has_write(permission):
        return Facts(actor, permission, bare.pr, "", available=available, app_slug=services.app_slug)
    spec = item.spec
    environments: dict[str, Environment] = {}
    teams: frozenset[str] = frozenset()
    rule = None
    if spec.needs_env:
        base_ref = (await lookups.pull())["base"]["ref"]
        config = await lookups.config(base_ref)
        if isinstance(config, RepoConfigError):
            return _config_problem(item, config, base_ref)
        environments = dict(config.environments) if config else {}
        rule = environments.get(item.env or "")
        # Team lookups only when the rule names teams and does not name the actor outright.
        if rule is not None and f"user:{actor.lower()}" not in {a.lower() for a in rule.allowed}:
            teams = await lookups.teams(actor, team_refs(rule.allowed, lookups.repo.partition("/")[0]))
    requires = set(rule.requires) if rule is not None else set()
    pr = await lookups.pr_state(
        need_approved="approved" in requires, need_mergeable="mergeable" in requires, need_author=spec.sandbox
    )
    head_sha = (await lookups.pull())["head"]["sha"]
    approvals: tuple[tuple[str, str], ...] = ()
    commented_head: str | None = None
    if spec.sandbox:
        async with services.engine.connect() as conn:
            approvals = tuple((a.sha, a.approver) for a in await store.approvals(conn, lookups.repo, lookups.number))
    if item.name == "ok-to-test" and "sha" not in item.args and commented_at is not None:
        async with services.engine.connect() as conn:
            events = await store.head_events(conn, lookups.repo, lookups.number)
        commented_head = head_when_commented(events, commented_at)
    return Facts(
        actor,
        permission,
        pr,
        head_sha,
        actor_teams=teams,
        environments=environments,
        approvals=approvals,
        commented_head=commented_head,
        available=available,
        app_slug=services.app_slug,
    )


def _config_problem(item: ParsedCommand, error: RepoConfigError, ref: str) -> _Answer:
    problems = "\n".join(f"- {p}" for p in error.problems[:10])
    body = replies.reply(
        item.line,
        f"`{CONFIG_PATH}` on the base branch `{status.cell(ref)}` is invalid, so I can't check the rules for "
        f"this command. Fix it there (the PR's own copy does not count):\n\n{problems}",
    )
    return _Answer(body, "confused", "invalid config", "config problem", False)


def _skipped(why: str) -> _Answer:
    return _Answer("", None, why, "skipped", False)


def _final_reaction(reactions: Sequence[Reaction | None]) -> Reaction | None:
    if "confused" in reactions:
        return "confused"
    return "rocket" if "rocket" in reactions else None


def _join(bodies: Sequence[str]) -> str:
    body = "\n---\n\n".join(b.strip() + "\n" for b in bodies)
    if len(body) > MAX_COMMENT:
        note = "\n\n… (cut: the answers were longer than a GitHub comment may be)"
        body = body[: MAX_COMMENT - len(note)] + note
    return body


async def _already_handled(services: Services, repo: str, comment_id: int) -> bool:
    async with services.engine.connect() as conn:
        found = await conn.scalar(
            select(store.AUDIT.c.id).where(store.AUDIT.c.repo == repo, store.AUDIT.c.comment_id == comment_id).limit(1)
        )
    return found is not None


@dataclass(frozen=True)
class _Audit:
    repo: str
    number: int
    actor: str
    comment_id: int

    async def save(self, services: Services, answers: Sequence[tuple[ParsedCommand | ParseError, _Answer]]) -> None:
        entries = [
            store.AuditEntry(
                self.repo,
                self.number,
                self.actor,
                self.comment_id,
                item.name if isinstance(item, ParsedCommand) else (item.command or "(unknown)"),
                item.line,
                {"args": item.args, "flags": item.flags} if isinstance(item, ParsedCommand) else {},
                answer.decision,
                answer.result,
                answer.ok,
            )
            for item, answer in answers
        ]
        async with services.engine.begin() as conn:
            await store.record(conn, entries)


# --------------------------------------------------------------------------- built-in commands


async def _review_request(ctx: CommandContext, trigger: str, model: str | None = None) -> ReviewRequest:
    pull = await ctx.lookups.pull()
    return ReviewRequest(
        repo=ctx.repo,
        number=ctx.number,
        installation_id=ctx.installation_id,
        head_sha=pull["head"]["sha"],
        base_sha=pull["base"]["sha"],
        base_ref=pull["base"]["ref"],
        trigger=trigger,
        actor=ctx.actor,
        model=model,
    )


async def _unknown_model(ctx: CommandContext, model: str) -> str | None:
    """Why ``model`` can't be reviewed, or None when the base branch's config lists it."""
    pull = await ctx.lookups.pull()
    config = await ctx.lookups.config(pull["base"]["ref"])
    if config is None:
        return f"there is no `{CONFIG_PATH}` on the base branch, so there is no model `{model}` to review."
    if isinstance(config, RepoConfigError):
        problems = "; ".join(str(p) for p in config.problems[:5])
        return f"`{CONFIG_PATH}` on the base branch is invalid ({status.cell(problems, 300)})."
    if config.model(model) is None:
        names = ", ".join(f"`{m.name}`" for m in config.models)
        return f"`{model}` is not a model of `{CONFIG_PATH}` on the base branch (models: {names})."
    return None


async def run_review(ctx: CommandContext) -> Outcome:
    """``evaluate [model]`` and ``optimize [model]``: queue a review job (it supersedes older ones)."""
    model = ctx.command.args.get("model")
    if model is not None and (problem := await _unknown_model(ctx, model)):
        return Outcome(False, ctx.reply(problem), "unknown model")
    request = await _review_request(ctx, ctx.command.name, model)
    async with ctx.services.engine.begin() as conn:
        await enqueue_review(conn, request)
    what = "An evaluation" if ctx.command.name == "evaluate" else "An evaluation with optimization"
    scope = f" of model `{model}`" if model else ""
    body = f"{what}{scope} of `{request.head_sha[:7]}` is queued; the review comment will show the results."
    return Outcome(True, ctx.reply(body), f"queued review ({ctx.command.name})")


async def run_ok_to_test(ctx: CommandContext) -> Outcome:
    sha = ctx.run.approve_sha
    if sha is None:  # decide always sets it for ok-to-test
        raise ValueError("ok-to-test without a SHA to approve")
    request = await _review_request(ctx, "ok-to-test")
    if request.head_sha.lower() != sha:
        # The head moved after the comment: approve what the approver saw, run nothing for the rest.
        async with ctx.services.engine.begin() as conn:
            await store.approve(conn, ctx.repo, ctx.number, sha, ctx.actor)
        body = replies.approved_older_head(ctx.command.line, approved_sha=sha, head_sha=request.head_sha)
        return Outcome(True, body, f"approved {sha[:12]} (head when commented); head is now {request.head_sha[:12]}")
    async with ctx.services.engine.begin() as conn:
        await store.approve(conn, ctx.repo, ctx.number, sha, ctx.actor)
        await enqueue_review(conn, request)
    body = replies.approval_recorded(ctx.command.line, head_sha=sha).rstrip() + " The evaluation is queued.\n"
    return Outcome(True, body, f"approved {sha[:12]}; queued review")


async def run_hold(ctx: CommandContext) -> Outcome:
    async with ctx.services.engine.begin() as conn:
        created = await store.hold(conn, ctx.repo, ctx.number, ctx.actor)
    text = "On hold: deploys of this PR are blocked until someone with write access comments `/modelship unhold`."
    if not created:
        text = "This PR was on hold already; it stays on hold until `/modelship unhold`."
    return Outcome(True, ctx.reply(text), "held" if created else "already held")


async def run_unhold(ctx: CommandContext) -> Outcome:
    async with ctx.services.engine.begin() as conn:
        removed = await store.unhold(conn, ctx.repo, ctx.number)
    text = "Hold lifted: deploys of this PR may go ahead." if removed else "This PR was not on hold; nothing changed."
    return Outcome(True, ctx.reply(text), "unheld" if removed else "was not held")


async def run_cancel(ctx: CommandContext) -> Outcome:
    async with ctx.services.engine.begin() as conn:
        cancelled = await store.cancel(conn, ctx.repo, ctx.number, ctx.actor)
    if not cancelled:
        return Outcome(True, ctx.reply("Nothing to cancel: this PR has no queued or running jobs."), "nothing")
    listed = "\n".join(f"- #{j.id} {j.kind}{f' ({j.trigger})' if j.trigger else ''}, was {j.state}" for j in cancelled)
    body = f"Cancelled {len(cancelled)} job(s); a running one stops within seconds:\n\n{listed}"
    return Outcome(True, ctx.reply(body), f"cancelled {', '.join(f'#{j.id}' for j in cancelled)}")


async def run_status(ctx: CommandContext) -> Outcome:
    pull = await ctx.lookups.pull()
    async with ctx.services.engine.connect() as conn:
        jobs = await store.jobs(conn, ctx.repo, ctx.number)
        hold = await store.held(conn, ctx.repo, ctx.number)
        approvals = await store.approvals(conn, ctx.repo, ctx.number)
        audit = await store.recent(conn, ctx.repo, ctx.number)
    sections = [await section(ctx) for section in ctx.services.status_sections]
    body = status.render(
        head_sha=pull["head"]["sha"], jobs=jobs, hold=hold, approvals=approvals, audit=audit, sections=sections
    )
    return Outcome(True, ctx.reply(body), "status shown")


# --------------------------------------------------------------------------- untrusted PRs


async def sandbox_allowed(services: Services, gh: GitHubAPI, repo: str, pr_payload: dict[str, Any]) -> tuple[bool, str]:
    """May the review runner run this PR's head in the sandbox? (allowed, why / what to post).

    Yes when the PR is not from a fork and its author has write access or more, or when an
    ``ok-to-test`` approved exactly the current head. When not, the text is the comment to post.
    """
    number, head = int(pr_payload["number"]), str(pr_payload["head"]["sha"])
    author = (pr_payload.get("user") or {}).get("login", "")
    fork = from_fork(pr_payload)
    permission = None if fork or not author else await collaborator_permission(gh, repo, author)
    async with services.engine.connect() as conn:
        approvals = await store.approvals(conn, repo, number)
    pr = PrState(approved=False, mergeable=None, from_fork=fork, author_permission=permission)
    pairs = [(a.sha, a.approver) for a in approvals]
    if may_run_sandbox(pr, permission, pairs, head):
        approver = next((a.approver for a in approvals if a.sha.lower() == head.lower()), None)
        if approver is not None and (fork or not has_write(permission)):
            return True, f"ok-to-test by {approver} covers {head[:12]}"
        return True, f"{author} has {permission} access and the PR is not from a fork"
    if approvals:
        return False, replies.new_push_needs_approval(old_sha=approvals[-1].sha, new_sha=head)
    return False, replies.fork_waiting(head_sha=head, author=author)
