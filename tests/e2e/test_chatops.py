"""Chat-ops end to end: people comment on PRs in devhub, the real bot reads, decides, acts and answers.

One devhub and one bot serve the whole module (each test works in its own repository), so the
permission matrix stays fast. "Ran" is judged by what happened — review jobs queued, holds and
approvals stored, jobs cancelled, deploy services called — never by the reply text alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import delete, insert, select

from bot.chatops import store
from bot.chatops.ratelimit import RateLimiter
from bot.chatops.service import CommandContext, CommandService, Outcome, sandbox_allowed
from bot.store.base import utcnow
from bot.store.chatops_models import ChatopsApproval, ChatopsAudit, ChatopsHold
from bot.store.models import Job
from bot.store.queue import ClaimedJob, job_row
from devkit.devhub import DevHub, Fault, start
from tests.fixtures.bot import RunningBot, bot_running, settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key

BOT = "modelship[bot]"
CHATOPS_TRIGGERS = ("evaluate", "optimize", "ok-to-test")
CONFIG = """\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/eval.csv, target: label}
environments:
  staging: {}
  production:
    allowed: ["team:ml-release", "user:alice"]
    requires: [approved, mergeable]
deploy: {repository: acme/deploy}
"""
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
WRITERS = {"admin", "maintain", "write"}


@dataclass
class DeployDouble:
    """Stands in for the deploy/guard services, which plug into the chat-ops registry."""

    calls: list[tuple[str, str, str | None, int]] = field(default_factory=list)

    async def __call__(self, ctx: CommandContext) -> Outcome:
        self.calls.append((ctx.command.name, ctx.actor, ctx.command.env, ctx.number))
        return Outcome(True, ctx.reply(f"{ctx.command.name} done (test double)"), "test double")


FEATURE_COMMANDS = ("deploy", "promote", "rollback", "unpin")


def plug(world: World, name: str, service: CommandService) -> None:
    """Put a command service in place of the one bot.app built (a test double for deploy or the guard)."""
    world.services.commands = {**world.services.commands, name: service}


def unplug_features(world: World) -> None:
    """The running service as if built without deploy and the guard: their commands are "not available yet"."""
    world.services.commands = {k: v for k, v in world.services.commands.items() if k not in FEATURE_COMMANDS}


@dataclass
class World:
    hub: DevHub
    bot: RunningBot
    reviews: list[ClaimedJob]

    @property
    def services(self) -> Any:
        return self.bot.service.services


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("chatops")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    reviews: list[ClaimedJob] = []

    async def record_review(job: ClaimedJob) -> None:
        reviews.append(job)  # the review runner is another feature; here it only has to be reached

    try:
        async with bot_running(running, tmp) as bot:
            cast(dict[str, Any], bot.service.workers.runners)["review"] = record_review
            bot.service.services.limiter = RateLimiter(capacity=10_000, per_second=1_000)
            yield World(running.hub, bot, reviews)
    finally:
        await running.stop()
    assert violations(running.hub) == []


def violations(hub: DevHub, start: int = 0) -> list[str]:
    return list(hub.contract_violations[start:])


@pytest.fixture(autouse=True)
def contract_kept(world: World) -> Iterator[None]:
    """Every reply, reaction and lookup of each test passes devhub's OpenAPI validation."""
    before = len(world.hub.contract_violations)
    yield
    assert violations(world.hub, before) == []


# --------------------------------------------------------------------------- helpers


async def new_repo(world: World, name: str, config: str = CONFIG, people: dict[str, str] | None = None) -> str:
    repo = f"acme/{name}"
    files: dict[str, bytes | str | None] = {
        "README.md": "# models\n",
        "models/churn.onnx": b"v1",
        ".modelship.yml": config,
    }
    await world.hub.create_repo(repo, files)
    await world.hub.install("acme", [repo])
    for user, permission in {"alice": "write", **(people or {})}.items():
        world.hub.set_permission(repo, user, permission)
    return repo


async def open_pr(world: World, repo: str, branch: str, *, user: str = "alice") -> int:
    await world.hub.push(repo, branch, {"models/churn.onnx": f"{branch}".encode()}, author=user)
    number = await world.hub.open_pr(repo, branch, user=user)
    await settle(world)
    return number


async def settle(world: World, timeout: float = 20.0) -> None:
    """Wait until no job is running or due (the matrix parks future-dated sentinel jobs in the queue)."""
    await settle_jobs(world.services.engine, horizon=5, timeout=timeout)


async def say(world: World, repo: str, number: int, body: str, user: str) -> int:
    comment_id = await world.hub.comment(repo, number, body, user=user)
    await settle(world)
    return comment_id


def replies_after(world: World, repo: str, number: int, comment_id: int) -> list[str]:
    return [
        c.body
        for c in sorted(world.hub.comments.values(), key=lambda c: c.id)
        if c.repo == repo and c.issue_number == number and c.user.login == BOT and c.id > comment_id
    ]


def reactions(world: World, comment_id: int) -> list[str]:
    return [r.content for r in world.hub.comments[comment_id].reactions if r.user.login == BOT]


async def chatops_reviews(world: World, repo: str, number: int | None = None) -> list[dict[str, Any]]:
    """Review jobs queued by chat-ops (not by pull_request events), as their payloads."""
    async with world.services.engine.connect() as conn:
        payloads = (await conn.execute(select(Job.payload).where(Job.kind == "review").order_by(Job.id))).scalars()
        return [
            p
            for p in payloads
            if p["repo"] == repo and p["trigger"] in CHATOPS_TRIGGERS and (number is None or p["number"] == number)
        ]


async def audit_rows(world: World, repo: str) -> list[Any]:
    async with world.services.engine.connect() as conn:
        return list((await conn.execute(select(ChatopsAudit).where(ChatopsAudit.repo == repo))).all())


async def installation_client(world: World, repo: str) -> Any:
    installation = world.hub.installation_for(repo)
    assert installation is not None
    return await world.services.github.for_installation(installation.id)


# --------------------------------------------------------------------------- the permission matrix


MATRIX_COMMANDS = (
    "help",
    "status",
    "evaluate",
    "optimize",
    "ok-to-test",
    "hold",
    "unhold",
    "cancel",
    "deploy staging",
    "promote staging",
    "rollback staging",
    "unpin staging",
)


async def test_permission_matrix_runs_only_what_each_role_may(world: World) -> None:
    """{admin, maintain, write, triage, read, none} × every command: run or deny, zero unauthorized runs."""
    people = {f"u-{p}": p for p in PERMISSIONS}
    repo = await new_repo(world, "matrix", people=people)
    prs = {user: await open_pr(world, repo, f"pr-{user}") for user in people}
    double = DeployDouble()
    for name in ("deploy", "promote", "rollback", "unpin"):
        plug(world, name, double)
    outcomes: dict[tuple[str, str], bool] = {}
    try:
        for command in MATRIX_COMMANDS:
            await prepare(world, repo, command, prs)
            comment_ids = await asyncio.gather(
                *(world.hub.comment(repo, prs[user], f"/modelship {command}", user=user) for user in people)
            )
            await settle(world)
            for (user, permission), comment_id in zip(people.items(), comment_ids, strict=True):
                ran = await effect_seen(world, repo, command, user, prs[user], double)
                outcomes[(permission, command)] = ran
                answer = replies_after(world, repo, prs[user], comment_id)
                assert len(answer) == 1 and answer[0].startswith(f"> /modelship {command}"), (permission, command)
                assert reactions(world, comment_id) == ["eyes", "rocket" if ran else "confused"], (permission, command)
                if not ran:
                    assert f"Sorry @{user}" in answer[0], answer[0]
    finally:
        unplug_features(world)
        async with world.services.engine.begin() as conn:
            await conn.execute(delete(Job).where(Job.kind == "sentinel"))

    expected = {(p, c): c in ("help", "status") or p in WRITERS for p in PERMISSIONS for c in MATRIX_COMMANDS}
    wrong = {cell: ran for cell, ran in outcomes.items() if ran != expected[cell]}
    assert wrong == {}, f"cells that ran (True) or were denied (False) against the rules: {wrong}"
    # Zero unauthorized runs, counted from the effects themselves.
    writers = {u for u, p in people.items() if p in WRITERS}
    assert {p["actor"] for p in await chatops_reviews(world, repo)} == writers
    assert {actor for _, actor, _, _ in double.calls} == writers
    assert len(double.calls) == 4 * len(writers)


async def prepare(world: World, repo: str, command: str, prs: dict[str, int]) -> None:
    """Give the command something to change, so that a denial is visible as "nothing changed"."""
    async with world.services.engine.begin() as conn:
        for number in prs.values():
            if command == "unhold":
                await store.hold(conn, repo, number, "setup")
            if command == "hold":
                await store.unhold(conn, repo, number)
            if command == "cancel":
                later = job_row("sentinel", store.serial_key(repo, number), now=utcnow() + timedelta(hours=1))
                await conn.execute(insert(Job), [later])


async def effect_seen(world: World, repo: str, command: str, user: str, number: int, double: DeployDouble) -> bool:
    name = command.split()[0]
    async with world.services.engine.connect() as conn:
        if name == "hold":
            return await store.held(conn, repo, number) is not None
        if name == "unhold":
            return await store.held(conn, repo, number) is None
        if name == "cancel":
            states = (
                await conn.execute(
                    select(Job.state).where(Job.kind == "sentinel", Job.serial_key == store.serial_key(repo, number))
                )
            ).scalars()
            return "cancelled" in set(states)
        if name == "ok-to-test":
            approvers = (
                await conn.execute(
                    select(ChatopsApproval.approver).where(ChatopsApproval.repo == repo, ChatopsApproval.pr == number)
                )
            ).scalars()
            return user in set(approvers)
    if name in ("evaluate", "optimize"):
        return any(p["actor"] == user and p["trigger"] == name for p in await chatops_reviews(world, repo, number))
    if name in ("deploy", "promote", "rollback", "unpin"):
        return (name, user, "staging", number) in double.calls
    # help and status change nothing: they "ran" when the answer is the help table / the status.
    marker = "| Command |" if name == "help" else "**Status of this pull request**"
    return any(marker in body for body in replies_after(world, repo, number, 0))


# --------------------------------------------------------------------------- environments


async def test_environment_allow_lists_and_requirements(world: World) -> None:
    people = {"carol": "write", "dave": "write", "erin": "read"}
    repo = await new_repo(world, "envs", people=people)
    world.hub.add_team_member("acme", "ml-release", "carol")
    world.hub.add_team_member("acme", "ml-release", "erin")
    number = await open_pr(world, repo, "retrain")
    double = DeployDouble()
    plug(world, "deploy", double)
    plug(world, "promote", double)
    try:
        unapproved = await say(world, repo, number, "/modelship deploy production", "carol")
        assert "requires an approving review" in replies_after(world, repo, number, unapproved)[0]
        assert double.calls == []

        await world.hub.approve(repo, number, "bob")
        await say(world, repo, number, "/modelship deploy production", "carol")  # team member
        await say(world, repo, number, "/modelship promote production", "alice")  # listed user
        assert double.calls == [("deploy", "carol", "production", number), ("promote", "alice", "production", number)]

        outsider = await say(world, repo, number, "/modelship deploy production", "dave")
        assert "limited to the people and teams" in replies_after(world, repo, number, outsider)[0]
        reader = await say(world, repo, number, "/modelship deploy production", "erin")
        assert "needs write access" in replies_after(world, repo, number, reader)[0]
        staging = await say(world, repo, number, "/modelship deploy staging", "dave")  # no rules there
        unknown = await say(world, repo, number, "/modelship deploy qa", "dave")
        assert "environment `qa` is not configured" in replies_after(world, repo, number, unknown)[0]
        assert reactions(world, staging) == ["eyes", "rocket"]

        await world.hub.push(repo, "main", {"models/churn.onnx": b"conflicting"})  # base moves: a conflict
        conflict = await say(world, repo, number, "/modelship deploy production", "carol")
        assert "resolve the conflicts" in replies_after(world, repo, number, conflict)[0]
    finally:
        unplug_features(world)
    assert double.calls == [
        ("deploy", "carol", "production", number),
        ("promote", "alice", "production", number),
        ("deploy", "dave", "staging", number),
    ]


async def test_commands_without_a_service_say_what_is_missing(world: World) -> None:
    repo = await new_repo(world, "missing")
    number = await open_pr(world, repo, "b")
    # A server where the deploy and guard features are not installed.
    saved = world.services.commands
    unplug_features(world)
    try:
        comment = await say(
            world, repo, number, "/modelship deploy staging\n/modelship rollback staging to v3", "alice"
        )
    finally:
        world.services.commands = saved
    [answer] = replies_after(world, repo, number, comment)
    assert answer.count("This is not available yet") == 2 and "> /modelship rollback staging to v3" in answer
    assert reactions(world, comment) == ["eyes", "confused"]


async def test_an_invalid_base_config_is_named_and_nothing_runs(world: World) -> None:
    repo = await new_repo(world, "badconfig", config=CONFIG.replace("version: 1", "version: 2"))
    number = await open_pr(world, repo, "b")
    double = DeployDouble()
    plug(world, "deploy", double)
    try:
        comment = await say(world, repo, number, "/modelship deploy staging", "alice")
    finally:
        unplug_features(world)
    [answer] = replies_after(world, repo, number, comment)
    assert "`.modelship.yml` on the base branch `main` is invalid" in answer and "version: 1" in answer
    assert double.calls == []


async def test_evaluate_names_an_unknown_model(world: World) -> None:
    repo = await new_repo(world, "models")
    number = await open_pr(world, repo, "b")
    comment = await say(world, repo, number, "/modelship evaluate fraud", "alice")
    assert "`fraud` is not a model" in replies_after(world, repo, number, comment)[0]
    await say(world, repo, number, "/modelship evaluate churn", "alice")
    assert [(p["trigger"], p["model"]) for p in await chatops_reviews(world, repo)] == [("evaluate", "churn")]


# --------------------------------------------------------------------------- untrusted PRs


async def test_fork_pr_runs_nothing_until_ok_to_test_of_the_exact_head(world: World) -> None:
    repo = await new_repo(world, "forked")
    await world.hub.fork(repo, "mallory")
    await world.hub.push("mallory/forked", "evil", {"models/churn.onnx": b"evil"}, author="mallory")
    number = await world.hub.open_pr(repo, "evil", user="mallory", from_fork=True)
    await settle(world)
    gh = await installation_client(world, repo)

    async def allowed() -> tuple[bool, str]:
        return await sandbox_allowed(world.services, gh, repo, await gh.getitem(f"/repos/{repo}/pulls/{number}"))

    await say(world, repo, number, "/modelship evaluate\n/modelship ok-to-test", "mallory")  # read access
    waiting = await say(world, repo, number, "/modelship evaluate", "alice")
    assert "has not been approved for sandbox runs" in replies_after(world, repo, number, waiting)[0]
    assert reactions(world, waiting) == ["eyes"]
    ok, message = await allowed()
    assert not ok and "ok-to-test" in message
    assert await chatops_reviews(world, repo) == [], "no sandbox run before ok-to-test"

    old_head = world.hub.pull(repo, number).head_sha
    await say(world, repo, number, "/modelship ok-to-test", "alice")
    assert await allowed() == (True, f"ok-to-test by alice covers {old_head[:12]}")
    await say(world, repo, number, "/modelship evaluate", "alice")
    assert [(p["trigger"], p["head_sha"]) for p in await chatops_reviews(world, repo)] == [
        ("ok-to-test", old_head),
        ("evaluate", old_head),
    ]

    await world.hub.push("mallory/forked", "evil", {"models/churn.onnx": b"eviler"}, author="mallory")
    await settle(world)
    new_head = world.hub.pull(repo, number).head_sha
    ok, message = await allowed()
    assert not ok and f"does not cover `{new_head[:7]}`" in message
    again = await say(world, repo, number, "/modelship evaluate", "alice")
    assert "has not been approved" in replies_after(world, repo, number, again)[0]
    stale = await say(world, repo, number, f"/modelship ok-to-test {old_head[:10]}", "alice")
    assert "is not the head of this pull request" in replies_after(world, repo, number, stale)[0]
    assert len(await chatops_reviews(world, repo)) == 2, "the new push ran nothing"
    assert (await allowed())[0] is False


async def fork_pr(world: World, name: str) -> tuple[str, int]:
    repo = await new_repo(world, name)
    await world.hub.fork(repo, "mallory")
    await world.hub.push(f"mallory/{name}", "evil", {"models/churn.onnx": b"evil"}, author="mallory")
    number = await world.hub.open_pr(repo, "evil", user="mallory", from_fork=True)
    await settle(world)
    return repo, number


async def ok_to_test_then_push(world: World, repo: str, number: int, *, push_in_next_second: bool) -> int:
    """alice comments a bare ok-to-test; mallory pushes before the bot reads the PR (its 👀 is slowed)."""
    fork = f"mallory/{repo.split('/')[1]}"
    world.hub.add_fault(Fault("slow", delay=2.5, method="POST", path=r"/issues/comments/\d+/reactions$"))
    await asyncio.sleep(1.05 - time.time() % 1)  # start of a second, a second after the PR was opened
    comment_id = await world.hub.comment(repo, number, "/modelship ok-to-test", user="alice")
    if push_in_next_second:
        await asyncio.sleep(1.05 - time.time() % 1)
    await world.hub.push(fork, "evil", {"models/churn.onnx": b"pushed after the comment"}, author="mallory")
    commented, pushed = world.hub.comments[comment_id].created_at, world.hub.pull(repo, number).updated_at
    assert int(pushed) - int(commented) == (1 if push_in_next_second else 0), "the machine was too slow"
    await settle(world)
    return comment_id


async def test_a_push_right_after_a_bare_ok_to_test_is_not_approved(world: World) -> None:
    repo, number = await fork_pr(world, "race-later")
    reviewed = world.hub.pull(repo, number).head_sha
    gh = await installation_client(world, repo)

    comment_id = await ok_to_test_then_push(world, repo, number, push_in_next_second=True)

    head = world.hub.pull(repo, number).head_sha
    assert head != reviewed
    async with world.services.engine.connect() as conn:
        assert [(a.sha, a.approver) for a in await store.approvals(conn, repo, number)] == [(reviewed, "alice")]
    [answer] = replies_after(world, repo, number, comment_id)
    assert f"Approved commit `{reviewed[:7]}`, the head when you commented" in answer
    assert f"the head is now `{head[:7]}`" in answer and f"ok-to-test {head[:7]}" in answer
    assert await chatops_reviews(world, repo) == [], "nothing runs for the push after the comment"
    ok, _ = await sandbox_allowed(world.services, gh, repo, await gh.getitem(f"/repos/{repo}/pulls/{number}"))
    assert ok is False


async def test_a_push_in_the_same_second_as_a_bare_ok_to_test_approves_nothing(world: World) -> None:
    repo, number = await fork_pr(world, "race-same-second")

    comment_id = await ok_to_test_then_push(world, repo, number, push_in_next_second=False)

    head = world.hub.pull(repo, number).head_sha
    async with world.services.engine.connect() as conn:
        assert await store.approvals(conn, repo, number) == []
    [answer] = replies_after(world, repo, number, comment_id)
    assert "nothing was approved" in answer and f"`/modelship ok-to-test {head[:7]}`" in answer
    assert reactions(world, comment_id) == ["eyes", "confused"]
    assert await chatops_reviews(world, repo) == []


async def test_a_pr_by_an_author_without_write_access_is_untrusted(world: World) -> None:
    repo = await new_repo(world, "outsider", people={"zoe": "read", "bob": "maintain"})
    trusted = await open_pr(world, repo, "mine", user="bob")
    untrusted = await open_pr(world, repo, "theirs", user="zoe")
    gh = await installation_client(world, repo)
    for number, expected in ((trusted, True), (untrusted, False)):
        pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
        assert (await sandbox_allowed(world.services, gh, repo, pull))[0] is expected
    await say(world, repo, untrusted, "/modelship evaluate", "bob")
    await say(world, repo, trusted, "/modelship evaluate", "bob")
    assert [p["number"] for p in await chatops_reviews(world, repo)] == [trusted]


# --------------------------------------------------------------------------- loops, noise, feedback


async def test_no_loops_and_no_noise(world: World) -> None:
    repo = await new_repo(world, "loops")
    number = await open_pr(world, repo, "b")
    world.hub.account("dependabot[bot]", "Bot")
    help_comment = await say(world, repo, number, "/modelship help", "alice")
    answer = replies_after(world, repo, number, help_comment)
    assert len(answer) == 1 and "/modelship deploy" in answer[0], "the reply quotes and mentions commands…"
    # …and is delivered back to the bot like any comment, which must trigger nothing.
    await say(world, repo, number, "/modelship evaluate\n/modelship hold", BOT)
    await say(world, repo, number, "/modelship evaluate\n/modelship hold", "dependabot[bot]")
    edited = await say(world, repo, number, "looks good", "alice")
    await world.hub.edit_comment(edited, "/modelship hold")
    deleted = await say(world, repo, number, "/modelship help", "alice")
    await world.hub.delete_comment(deleted)
    await say(world, repo, number, "Plain talk, and a quoted\n> /modelship hold\n```\n/modelship hold\n```", "alice")
    await settle(world)

    assert [r.command for r in await audit_rows(world, repo)] == ["help", "help"]
    async with world.services.engine.connect() as conn:
        assert await store.held(conn, repo, number) is None
    assert await chatops_reviews(world, repo) == []
    bot_replies = [b for b in replies_after(world, repo, number, help_comment) if b.startswith(">")]
    assert len(bot_replies) == 2 and reactions(world, edited) == []


async def test_reactions_acknowledge_then_report(world: World) -> None:
    repo = await new_repo(world, "reactions", people={"rita": "read"})
    number = await open_pr(world, repo, "b")
    done = await say(world, repo, number, "/modelship hold", "alice")
    denied = await say(world, repo, number, "/modelship unhold", "rita")
    typo = await say(world, repo, number, "/modelship deplyo staging", "alice")
    assert reactions(world, done) == ["eyes", "rocket"]
    assert reactions(world, denied) == ["eyes", "confused"]
    assert reactions(world, typo) == ["eyes", "confused"]
    assert "`deploy`" in replies_after(world, repo, number, typo)[0]


async def test_a_failed_permission_lookup_denies(world: World) -> None:
    repo = await new_repo(world, "lookup")
    number = await open_pr(world, repo, "b")
    world.hub.add_fault(Fault("error", status=403, path=r"/collaborators/alice/permission"))
    comment = await say(world, repo, number, "/modelship hold", "alice")
    assert "did not tell us your permission" in replies_after(world, repo, number, comment)[0]
    async with world.services.engine.connect() as conn:
        assert await store.held(conn, repo, number) is None


async def test_a_flood_is_answered_once(world: World) -> None:
    repo = await new_repo(world, "flood")
    number = await open_pr(world, repo, "b")
    generous = world.services.limiter
    world.services.limiter = RateLimiter(capacity=2, per_second=0.001)
    try:
        first = await say(world, repo, number, "/modelship help", "alice")
        for _ in range(4):
            await say(world, repo, number, "/modelship hold", "alice")
    finally:
        world.services.limiter = generous
    answers = replies_after(world, repo, number, first)
    assert len(answers) == 3 and "more commands than I take at once" in answers[2]
    assert [r.result for r in await audit_rows(world, repo)] == ["replied", "held", "skipped", "skipped", "skipped"]


# --------------------------------------------------------------------------- status, cancel, audit


async def test_cancel_stops_the_prs_running_review(world: World) -> None:
    repo = await new_repo(world, "cancel")
    number = await open_pr(world, repo, "b")
    started, finished = asyncio.Event(), []
    runners = cast(dict[str, Any], world.bot.service.workers.runners)
    recorder = runners["review"]

    async def slow_review(job: ClaimedJob) -> None:
        started.set()
        await asyncio.sleep(30)
        finished.append(job)

    runners["review"] = slow_review
    try:
        await world.hub.comment(repo, number, "/modelship evaluate", user="alice")
        await asyncio.wait_for(started.wait(), 20)
        comment = await world.hub.comment(repo, number, "/modelship cancel", user="alice")
        for _ in range(200):  # the review keeps running, so wait for the reply rather than an idle queue
            if replies := replies_after(world, repo, number, comment):
                break
            await asyncio.sleep(0.05)
        answer = replies[0]
        # The running review stops once the cancelling job ends (at the latest at its 5 s heartbeat).
        for _ in range(100):
            if not (await world.bot.service.services.queue.depth()).get("running"):
                break
            await asyncio.sleep(0.1)
    finally:
        runners["review"] = recorder
    async with world.services.engine.connect() as conn:
        review = [j for j in await store.jobs(conn, repo, number) if j.trigger == "evaluate"]
    assert [(j.kind, j.state, j.last_error) for j in review] == [("review", "cancelled", "cancelled by alice")]
    assert "Cancelled 1 job(s)" in answer and f"#{review[0].id} review (evaluate), was running" in answer
    assert finished == [], "the cancelled review was stopped, not run to its end"


async def test_status_shows_jobs_hold_approvals_and_the_command_log(world: World) -> None:
    repo = await new_repo(world, "status", people={"rita": "read"})
    number = await open_pr(world, repo, "b")
    await say(world, repo, number, "/modelship evaluate\n/modelship hold\n/modelship ok-to-test", "alice")
    await say(world, repo, number, "/modelship unhold", "rita")
    comment = await say(world, repo, number, "/modelship status", "rita")
    [answer] = replies_after(world, repo, number, comment)
    head = world.hub.pull(repo, number).head_sha
    assert f"head `{head[:7]}`" in answer
    assert "review (evaluate) | cancelled" in answer and "review (ok-to-test) | done" in answer
    assert "On hold since" in answer and "(by alice)" in answer
    assert f"`{head[:7]}` (current head) by alice" in answer
    assert "**Deployments**" in answer and "**Guard**" in answer  # sections the features plug into `status`
    assert "`/modelship unhold`" in answer and "denied:" in answer
    rows = await audit_rows(world, repo)
    assert [(r.actor, r.command, r.ok) for r in rows] == [
        ("alice", "evaluate", True),
        ("alice", "hold", True),
        ("alice", "ok-to-test", True),
        ("rita", "unhold", False),
        ("rita", "status", True),
    ]
    async with world.services.engine.connect() as conn:
        holds = (await conn.execute(select(ChatopsHold.actor).where(ChatopsHold.repo == repo))).scalars()
        assert list(holds) == ["alice"]
