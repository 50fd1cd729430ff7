"""DeployRepo against real git over smart HTTP: devhub (the GitHub simulator) with installation tokens."""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
from pathlib import Path

import pytest

from bot.deploy.gitops import DeployError, DeployRepo, Edit, RepoLocks, RetryPolicy
from bot.deploy.helm import check_values
from bot.deploy.manifest import ModelRef, plan_deploy, values_path
from bot.github.git import StaticToken, credentials, redact
from devkit.devhub import Fault
from tests.deploy.conftest import DeployHub, git

CHART = Path(__file__).parents[2] / "charts/model-server"


def ref(name: str, sequence: int, revision: str | None = None) -> ModelRef:
    return ModelRef(
        name=name,
        repository="acme/models",
        revision=revision or f"{sequence:040x}",
        path=f"models/{name}/model.onnx",
        sha256=f"{sequence:064x}",
        variant="onnx",
        sequence=sequence,
        source_pr=sequence,
    )


def deploy_edit(model: ModelRef) -> Edit:
    def edit(text: str | None) -> str | None:
        planned = plan_deploy(text, model).text
        if planned is not None:
            check_values(CHART, planned)  # as the writer does: Helm judges before anything is committed
        return planned

    return edit


def make_repo(hub: DeployHub, url: str, workdir: Path, **kwargs: object) -> DeployRepo:
    kwargs.setdefault("retry", RetryPolicy(conflict_attempts=40, base_s=0.02, cap_s=0.5, rng=random.Random(7)))
    return DeployRepo(url, workdir, token=StaticToken(hub.token), **kwargs)  # type: ignore[arg-type]


async def test_a_merge_becomes_one_pushed_commit_and_a_redelivery_makes_none(
    deploy_hub: DeployHub, workdir: Path
) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    path = values_path("staging", "iris")

    first = await repo.commit({path: deploy_edit(ref("iris", 100))}, "deploy iris")
    again = await repo.commit({path: deploy_edit(ref("iris", 100))}, "deploy iris")

    assert first.changed and not again.changed
    assert again.sha == first.sha
    assert deploy_hub.commits() == [first.sha, *deploy_hub.commits()[1:]]
    assert len(deploy_hub.commits()) == 2  # seed + one deploy
    assert "sequence: 100" in deploy_hub.show(path)


async def test_an_older_version_never_overwrites_a_newer_one(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    path = values_path("prod", "iris")

    await repo.commit({path: deploy_edit(ref("iris", 200))}, "deploy newer")
    late = await repo.commit({path: deploy_edit(ref("iris", 150))}, "deploy older, delivered late")

    assert not late.changed
    assert "sequence: 200" in deploy_hub.show(path)


async def test_comments_in_the_values_file_survive_a_deploy(deploy_hub: DeployHub, workdir: Path) -> None:
    path = values_path("prod", "iris")
    human = (
        "# Production: owned by the platform team\n"
        "replicaCount: 3  # SLA needs 3\n"
        "model:\n"
        "  name: iris\n"
        "  repository: acme/models\n"
        f"  revision: '{1:040x}'\n"
        "  path: models/iris/model.onnx\n"
        f"  sha256: '{1:064x}'  # checked by the server at start-up\n"
        "  sequence: 1\n"
    )
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    await repo.commit({path: lambda _: human}, "a human writes the production values")

    await repo.commit({path: deploy_edit(ref("iris", 300))}, "deploy")

    text = deploy_hub.show(path)
    assert text.startswith("# Production: owned by the platform team\nreplicaCount: 3  # SLA needs 3\n")
    assert f"sha256: '{300:064x}'  # checked by the server at start-up" in text


async def test_a_push_that_loses_a_race_is_redone_on_the_new_head(
    deploy_hub: DeployHub, workdir: Path, tmp_path: Path
) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    other = tmp_path / "other"
    auth = credentials(deploy_hub.token).env
    await asyncio.to_thread(git, "clone", "-q", deploy_hub.url, str(other), env=auth)
    raced = False

    def edit_while_someone_else_pushes(text: str | None) -> str | None:
        nonlocal raced
        if not raced:  # someone pushes between our fetch and our push
            raced = True
            (other / "theirs.txt").write_text("theirs\n")
            git("add", "theirs.txt", cwd=other)
            git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "theirs", cwd=other)
            git("push", "-q", "origin", "HEAD:main", cwd=other, env=auth)
        return "ours\n"

    result = await repo.commit({"ours.txt": edit_while_someone_else_pushes}, "ours")

    assert result.attempts == 2
    assert set(deploy_hub.files()) >= {"ours.txt", "theirs.txt"}
    assert deploy_hub.commits()[0] == result.sha


@pytest.mark.slow
async def test_fifty_concurrent_merges_from_racing_clones_all_land(deploy_hub: DeployHub, tmp_path: Path) -> None:
    replicas = [  # separate clones and separate locks: like five bot processes, so pushes race
        make_repo(deploy_hub, deploy_hub.url, tmp_path / f"replica-{i}", locks=RepoLocks()) for i in range(5)
    ]
    models = [ref(f"model-{i:02d}", 1000 + i) for i in range(50)]

    results = await asyncio.gather(
        *(
            replicas[i % 5].commit({values_path("staging", m.name): deploy_edit(m)}, f"deploy {m.name}")
            for i, m in enumerate(models)
        )
    )

    assert all(r.changed for r in results)
    assert len(deploy_hub.commits()) == 51  # seed + 50: no lost update
    assert deploy_hub.first_parent_chain() == deploy_hub.commits()  # linear: every push fast-forwarded
    assert sum(r.attempts for r in results) > 50, "the clones should have raced at least once"
    updates = deploy_hub.ref_updates()
    assert len(updates) == 50
    for old, new in updates:  # no force push: each update of main contains the previous head
        subprocess.run(["git", "merge-base", "--is-ancestor", old, new], cwd=deploy_hub.bare, check=True)
    for m in models:
        text = deploy_hub.show(values_path("staging", m.name))
        check_values(CHART, text)  # Helm renders what landed
        assert f"sequence: {m.sequence}" in text


async def test_an_unreachable_remote_is_retried_then_fails_clearly_without_leaking_the_token(workdir: Path) -> None:
    sleeps: list[float] = []

    async def no_sleep(delay: float) -> None:
        sleeps.append(delay)

    repo = DeployRepo(
        "http://127.0.0.1:9/acme/deploy.git", workdir, token=StaticToken("ghs_secret_token"), sleep=no_sleep
    )

    with pytest.raises(DeployError) as failure:
        await repo.commit({"a.txt": lambda _: "a\n"}, "never lands")

    message = str(failure.value)
    assert "is unreachable: gave up after 4 attempts" in message and "127.0.0.1:9/acme/deploy.git" in message
    assert "ghs_secret_token" not in message
    assert len(sleeps) == 3


async def test_an_outage_during_the_push_leaves_nothing_half_written(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir, sleep=lambda _: asyncio.sleep(0))
    before = deploy_hub.commits()
    # Fetches work, every push gets a 503 until the outage ends.
    outage = Fault("git_unavailable", count=1000, path=r"/git-receive-pack$", status=503)
    deploy_hub.running.hub.faults.add(outage)
    with pytest.raises(DeployError, match="unreachable"):
        await repo.commit({"a.txt": lambda _: "a\n"}, "never lands")
    assert outage.count < 1000  # the pushes reached the remote and were refused
    deploy_hub.running.hub.faults.pending.remove(outage)

    assert deploy_hub.commits() == before
    assert git("status", "--porcelain", cwd=workdir) == ""
    assert not (workdir / "a.txt").exists()
    assert (await repo.commit({"a.txt": lambda _: "a\n"}, "lands once the remote is back")).changed


async def test_wrong_credentials_fail_at_once_with_an_actionable_message(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = DeployRepo(deploy_hub.url, workdir, token=StaticToken("ghs_expired_token"))
    with pytest.raises(DeployError) as failure:
        await repo.commit({"a.txt": lambda _: "a\n"}, "never lands")

    assert "refused our credentials" in str(failure.value)
    assert "ghs_expired_token" not in str(failure.value)


async def test_values_helm_refuses_stop_the_commit(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    bad = ModelRef("iris", "acme/models", "not-a-sha", "models/iris/model.onnx", "f" * 64, sequence=5)

    with pytest.raises(ValueError, match="at '/model/revision': 'not-a-sha' does not match pattern"):
        await repo.commit({values_path("prod", "iris"): deploy_edit(bad)}, "deploy")

    assert len(deploy_hub.commits()) == 1
    assert git("status", "--porcelain", cwd=workdir) == ""


async def test_a_protected_environment_gets_one_branch_updated_in_place(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    path = values_path("prod", "iris")
    branch = "modelship/deploy/prod/iris"

    first = await repo.open_or_update_pr_branch(branch, {path: deploy_edit(ref("iris", 10))}, "deploy 10")
    await repo.commit({"README.md": lambda _: "# moved on\n"}, "main moves")  # base moves meanwhile
    second = await repo.open_or_update_pr_branch(branch, {path: deploy_edit(ref("iris", 11))}, "deploy 11")
    third = await repo.open_or_update_pr_branch(branch, {path: deploy_edit(ref("iris", 11))}, "deploy 11")

    assert first.changed and second.changed and not third.changed
    assert sorted(deploy_hub.branches()) == sorted(["main", branch])
    assert "sequence: 11" in deploy_hub.show(path, ref=branch)
    assert deploy_hub.show("README.md", ref=branch) == "# moved on\n"  # base merged in, no force push
    assert path not in deploy_hub.files()  # main untouched until the PR merges
    subprocess.run(["git", "merge-base", "--is-ancestor", first.sha, second.sha], cwd=deploy_hub.bare, check=True)


async def test_preview_shows_the_diff_without_writing(deploy_hub: DeployHub, workdir: Path) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    path = values_path("staging", "iris")

    diff = await repo.preview({path: deploy_edit(ref("iris", 7))})

    assert f"+++ b/{path}" in diff and "+  sequence: 7" in diff
    assert len(deploy_hub.commits()) == 1
    assert await repo.read(path) is None


def test_redact_hides_userinfo_and_known_secrets() -> None:
    url = "https://x-access-token:ghs_abc%2Fdef@github.com/acme/deploy.git"
    assert (
        redact(f"fatal: unable to access '{url}'") == "fatal: unable to access 'https://***@github.com/acme/deploy.git'"
    )
    assert redact("token ghs_abc in text", "ghs_abc") == "token *** in text"


async def test_a_cancelled_deploy_keeps_the_clone_locked_until_its_git_work_ends(
    deploy_hub: DeployHub, workdir: Path
) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    release, entered = threading.Event(), threading.Event()

    def slow_edit(_: str | None) -> str:
        entered.set()
        release.wait(10)
        return "first\n"

    first = asyncio.create_task(repo.commit({"first.txt": slow_edit}, "first"))
    await asyncio.to_thread(entered.wait, 10)
    first.cancel()
    second = asyncio.create_task(repo.commit({"second.txt": lambda _: "second\n"}, "second"))
    await asyncio.sleep(0.2)
    assert not second.done(), "the second deploy must wait for the first one's thread"

    release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await second).changed
    assert {"first.txt", "second.txt"} <= set(deploy_hub.files())  # git work, once started, completes


# --------------------------------------------------------------------------- where a write may land


def commit_symlink(deploy_hub: DeployHub, tmp_path: Path, link: str, target: str) -> None:
    """Someone with push access to the deploy repository commits a symlink (git keeps it as a link)."""
    clone = tmp_path / "human"
    git("clone", "-q", str(deploy_hub.bare), str(clone))
    (clone / link).parent.mkdir(parents=True, exist_ok=True)
    (clone / link).symlink_to(target)
    git("add", link, cwd=clone)
    git("-c", "user.name=h", "-c", "user.email=h@example.com", "commit", "-qm", "link", cwd=clone)
    git("push", "-q", "origin", "HEAD:main", cwd=clone)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        (".git/hooks/post-commit", "into the clone's .git directory"),
        ("environments/../.git/config", "into the clone's .git directory"),
        (".github/workflows/deploy.yml", "never writes inside .git or .github"),
        ("../outside.yaml", "outside the deploy repository's work tree"),
    ],
)
async def test_a_write_into_git_github_or_out_of_the_clone_is_refused(
    deploy_hub: DeployHub, workdir: Path, path: str, why: str
) -> None:
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    before = deploy_hub.commits()

    with pytest.raises(DeployError, match="refusing to write") as refused:
        await repo.commit({path: lambda _: "#!/bin/sh\necho owned\n"}, "deploy")

    assert why in str(refused.value)
    assert deploy_hub.commits() == before
    assert not (workdir / ".git" / "hooks" / "post-commit").exists()
    assert not (workdir.parent / "outside.yaml").exists()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("../../.git/hooks", "into the clone's .git directory"),
        ("../../.github/workflows", "never writes inside .git or .github"),
        ("OUTSIDE", "outside the deploy repository's work tree"),
    ],
)
async def test_a_symlink_in_the_deploy_repository_cannot_redirect_a_deploy(
    deploy_hub: DeployHub, workdir: Path, tmp_path: Path, target: str, why: str
) -> None:
    """``environments/staging/iris`` is a committed link: the valid-looking values path resolves elsewhere."""
    outside = tmp_path / "outside"
    outside.mkdir()
    commit_symlink(deploy_hub, tmp_path, "environments/staging/iris", str(outside) if target == "OUTSIDE" else target)
    repo = make_repo(deploy_hub, deploy_hub.url, workdir)
    before = deploy_hub.commits()
    path = values_path("staging", "iris")  # environments/staging/iris/values.yaml

    with pytest.raises(DeployError, match="refusing to write") as refused:
        await repo.commit({path: deploy_edit(ref("iris", 3))}, "deploy")
    with pytest.raises(DeployError, match="refusing to write"):
        await repo.open_or_update_pr_branch("modelship/deploy/staging/iris", {path: deploy_edit(ref("iris", 3))}, "pr")

    assert why in str(refused.value)
    assert deploy_hub.commits() == before and deploy_hub.branches() == ["main"]
    assert not (workdir / ".git" / "hooks" / "values.yaml").exists()
    assert not (outside / "values.yaml").exists()
