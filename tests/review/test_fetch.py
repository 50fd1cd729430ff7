"""Fetching a PR over git (devhub's git hosting and fault API): a transient failure is retried with back-off
inside the job, a refused token is renewed once around those retries, and a permanent failure (a missing
repository, a refused tree, a token refused twice) ends at once with the kind the job system acts on."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.config.repo import ModelSpec
from bot.errors import Backoff, Failure, RetriesExhausted, classify
from bot.github.git import TokenSource
from bot.review.checkout import Checkout, CheckoutError, ExportLimits, TreeRefused, fetch_pull_request
from bot.review.integrity import git_hashes
from devkit.devhub import Fault, RunningDevHub
from devkit.devhub.lfs import object_path

REPO = "acme/fetched"


@dataclass
class HubTokens:
    """Installation tokens minted by devhub, as the bot's token cache would hand them out."""

    running: RunningDevHub
    installation_id: int
    minted: list[str] = field(default_factory=list)
    invalidated: int = 0
    current: str | None = None

    async def get(self) -> str:
        if self.current is None:
            self.current = self.running.hub.issue_token(self.installation_id).value
            self.minted.append(self.current)
        return self.current

    def invalidate(self) -> None:
        self.invalidated += 1
        self.current = None


@dataclass
class Pull:
    running: RunningDevHub
    tokens: HubTokens
    number: int
    base_sha: str
    head_sha: str
    sleeps: list[float] = field(default_factory=list)
    repo: str = REPO

    @property
    def url(self) -> str:
        return f"{self.running.base_url}/{self.repo}.git"

    async def fetch(
        self,
        tmp_path: Path,
        *,
        url: str | None = None,
        token: TokenSource | None = None,
        limits: ExportLimits | None = None,
    ) -> Checkout:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        return await fetch_pull_request(
            url or self.url,
            token or self.tokens,
            tmp_path / "cache",
            tmp_path / "work",
            base_ref="main",
            base_sha=self.base_sha,
            head_sha=self.head_sha,
            number=self.number,
            retry=Backoff(attempts=4, base_s=0.01, cap_s=0.02, rng=random.Random(7)),
            what=f"git fetch of {REPO}",
            limits=limits,
            sleep=sleep,
        )

    def git_statuses(self) -> list[int]:
        return [r.status for r in self.running.hub.faults.log if f"/{REPO}.git/" in r.path]


@pytest.fixture
async def pull(devhub: RunningDevHub) -> Pull:
    hub = devhub.hub
    await hub.create_repo(REPO, {"README.md": "# models\n", "model/params.json": '{"c": 1.0}\n'})
    await hub.create_app()
    installation_id = await hub.install("acme", [REPO])
    await hub.push(REPO, "tune", {"model/params.json": '{"c": 2.0}\n'})
    number = await hub.open_pr(REPO, "tune", user="bob")
    p = hub.pull(REPO, number)
    return Pull(devhub, HubTokens(devhub, installation_id), number, p.base_sha, p.head_sha)


def git_error(count: int, status: int = 500) -> Fault:
    return Fault("error", count=count, status=status, path=rf"/{REPO}\.git/")


async def test_a_flaky_git_host_and_a_token_revoked_on_arrival_still_fetch_the_pull_request(
    pull: Pull, tmp_path: Path
) -> None:
    hub = pull.running.hub
    hub.add_fault(git_error(2))
    hub.add_fault(Fault("revoke_token", path=rf"^/{REPO}\.git$"))

    checkout = await pull.fetch(tmp_path)

    assert (checkout.head_dir / "model" / "params.json").read_text() == '{"c": 2.0}\n'
    assert (checkout.base_dir / "model" / "params.json").read_text() == '{"c": 1.0}\n'
    assert pull.git_statuses()[:2] == [500, 500]
    assert len(pull.sleeps) == 2  # two back-offs for the two 500s, none for the refused token
    assert pull.tokens.invalidated == 1 and len(set(pull.tokens.minted)) == 2  # renewed once, around the retries
    assert [r.status for r in hub.faults.log if r.fault == "revoke_token"] == [401]


async def test_a_git_host_that_stays_down_ends_in_retries_exhausted_within_the_budget(
    pull: Pull, tmp_path: Path
) -> None:
    pull.running.hub.add_fault(git_error(100))

    with pytest.raises(RetriesExhausted) as info:
        await pull.fetch(tmp_path)

    assert str(info.value).startswith(f"git fetch of {REPO}: gave up after 4 attempts")
    assert "The requested URL returned error: 500" in str(info.value)
    assert classify(info.value) is Failure.INFRASTRUCTURE
    assert pull.git_statuses() == [500] * 4 and len(pull.sleeps) == 3
    assert pull.tokens.invalidated == 0


async def test_a_404_is_permanent_and_not_retried(pull: Pull, tmp_path: Path) -> None:
    # A missing repository stays missing (bot.github.git.classify: a 404 or "not found" is permanent).
    pull.running.hub.add_fault(git_error(100, status=404))

    with pytest.raises(CheckoutError, match="not found") as info:
        await pull.fetch(tmp_path)

    assert classify(info.value) is Failure.INFRASTRUCTURE
    assert pull.git_statuses() == [404]
    assert pull.sleeps == [] and pull.tokens.invalidated == 0


async def test_a_token_refused_after_its_renewal_is_final_and_never_backed_off(pull: Pull, tmp_path: Path) -> None:
    @dataclass
    class Revoked:
        invalidated: int = 0

        async def get(self) -> str:
            return "ghs_" + "0" * 36  # never valid

        def invalidate(self) -> None:
            self.invalidated += 1

    revoked = Revoked()
    with pytest.raises(CheckoutError, match="freshly minted installation token was refused too") as info:
        await pull.fetch(tmp_path, token=revoked)

    assert revoked.invalidated == 1 and pull.sleeps == []
    assert classify(info.value) is Failure.INFRASTRUCTURE
    assert "ghs_" not in str(info.value)


async def test_a_refused_tree_is_an_input_failure_and_not_retried(pull: Pull, tmp_path: Path) -> None:
    with pytest.raises(TreeRefused, match="MODELSHIP_SANDBOX_EXPORT_MAX_FILES") as info:
        await pull.fetch(tmp_path, limits=ExportLimits(max_files=1))

    assert classify(info.value) is Failure.INPUT
    assert pull.sleeps == [] and pull.git_statuses().count(200) >= 1


def lfs_pointer(data: bytes) -> str:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    )


def store_lfs_object(running: RunningDevHub, data: bytes, repo: str = REPO) -> None:
    """What `git lfs push` leaves on the server (devhub's own LFS store; tests/devkit/devhub/test_lfs.py pushes
    with the real client)."""
    target = object_path(running.hub.git.path(repo), hashlib.sha256(data).hexdigest())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


async def private_lfs_pull(running: RunningDevHub, base: bytes, head: bytes, *, store: bool = True) -> Pull:
    """A private repository (anonymous LFS is refused there) whose PR changes an LFS-tracked model."""
    hub, name = running.hub, "acme/private-lfs"
    tracked = {".gitattributes": "*.onnx filter=lfs diff=lfs merge=lfs -text\n"}
    await hub.create_repo(name, {**tracked, "models/m.onnx": lfs_pointer(base)}, private=True)
    await hub.create_app()
    installation_id = await hub.install("acme", [name])
    await hub.push(name, "retrain", {"models/m.onnx": lfs_pointer(head), "models/copy.onnx": lfs_pointer(head)})
    if store:
        store_lfs_object(running, base, name)
        store_lfs_object(running, head, name)
    number = await hub.open_pr(name, "retrain", user="bob")
    p = hub.pull(name, number)
    return Pull(running, HubTokens(running, installation_id), number, p.base_sha, p.head_sha, repo=name)


async def test_lfs_tracked_models_are_fetched_as_their_bytes_and_hashed_as_such(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    base, head = os.urandom(5000), os.urandom(70_000)
    pull = await private_lfs_pull(devhub, base, head)

    checkout = await pull.fetch(tmp_path)

    assert (checkout.base_dir / "models" / "m.onnx").read_bytes() == base
    assert (checkout.head_dir / "models" / "m.onnx").read_bytes() == head
    assert (checkout.head_dir / "models" / "copy.onnx").read_bytes() == head  # one object at two paths
    policy = ModelSpec.model_validate(
        {"name": "m", "path": "models/m.onnx", "task": "regression", "dataset": {"path": "d.csv", "target": "y"}}
    )
    assert git_hashes(checkout.head_dir, [policy]) == {"m": hashlib.sha256(head).hexdigest()}
    assert not list(checkout.head_dir.glob(".lfs-*"))  # nothing staged is left behind
    batches = [r for r in devhub.hub.faults.log if r.path.endswith("/info/lfs/objects/batch")]
    assert [r.status for r in batches] == [200, 200]  # private: the token reached the batch API, in a header


async def test_an_lfs_object_missing_on_the_server_fails_the_review_naming_the_path(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    pull = await private_lfs_pull(devhub, b"base", b"head", store=False)

    with pytest.raises(TreeRefused) as info:
        await pull.fetch(tmp_path)

    assert "`models/m.onnx`" in str(info.value) and "404 Object does not exist" in str(info.value)
    assert info.value.hint is not None and "git lfs push" in info.value.hint
    assert classify(info.value) is Failure.INPUT and pull.sleeps == []


async def test_the_export_cap_counts_lfs_objects_at_their_real_size_before_downloading(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    big = os.urandom(200_000)
    pull = await private_lfs_pull(devhub, b"small", big)

    with pytest.raises(TreeRefused, match="MODELSHIP_SANDBOX_EXPORT_MAX_BYTES") as info:
        await pull.fetch(tmp_path, limits=ExportLimits(max_bytes=100_000))

    assert "`models/copy.onnx` alone is 200000 bytes" in str(info.value)
    downloads = [r.path.rsplit("/", 1)[-1] for r in devhub.hub.faults.log if r.method == "GET" and "/lfs/" in r.path]
    assert downloads == [hashlib.sha256(b"small").hexdigest()]  # the base's; the head's was refused from its pointer


async def test_an_lfs_server_error_is_retried_like_git(devhub: RunningDevHub, tmp_path: Path) -> None:
    pull = await private_lfs_pull(devhub, b"base", b"head")
    devhub.hub.add_fault(Fault("error", count=1, status=502, path=r"/info/lfs/objects/batch$"))

    checkout = await pull.fetch(tmp_path)

    assert (checkout.head_dir / "models" / "m.onnx").read_bytes() == b"head"
    assert len(pull.sleeps) == 1
